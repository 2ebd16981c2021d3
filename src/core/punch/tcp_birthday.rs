//! A TCP birthday's random side: `k` kernel sockets, each `connect()`ing to the cone's one
//! public port (full TTL: the cone's NAT drops them silently). Each opens a conntrack entry in
//! SYN_SENT at an unknown random public port of its NAT, kept alive by the kernel's own SYN
//! retransmissions with the same ISN. The cone side's spray SYN that lands on one of those
//! ports is taken by the kernel as a simultaneous open, and that socket connects. Sockets open
//! at the plan's rate. One that fails (an RST: behind an endpoint-independent firewall the
//! cone side's host itself answers a SYN that comes before its RST guard is up) is replaced
//! by a fresh socket, at a fresh random port, up to as many again as were planned: its entry
//! is gone, and without replacements a side whose first sockets all met the peer's host
//! before its guard held nothing (seen in the dual-stack lab under load: "no TCP connection
//! after 256 attempts (Connection refused)").

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::tcp::{Bind, Command, ConnectResult, SocketId, TcpSpec};

/// The holding sockets.
#[derive(Debug)]
pub(super) struct Holders {
    peer_ip: IpAddr,
    far_ports: Vec<u16>,
    /// Sockets to open in all: the planned ones and the replacements so far (at most as
    /// many replacements as planned sockets).
    total: u32,
    interval: Duration,
    start: Instant,
    opened: u32,
    /// When the last socket opened: a replacement waits an interval after it, so that a peer
    /// answering every SYN with an RST at once does not draw a burst.
    last_opened: Option<Instant>,
    planned: u32,
    /// Sockets still connecting, with the far port each aims at.
    live: Vec<(SocketId, u16)>,
}

impl Holders {
    /// `total` sockets toward the spec's far ports (socket `m` to `far_ports[m mod len]`).
    pub(super) fn new(spec: &TcpSpec, peer_ip: IpAddr, total: u32, start: Instant) -> Holders {
        let total = if spec.far_ports.is_empty() { 0 } else { total };
        Holders {
            peer_ip,
            far_ports: spec.far_ports.clone(),
            total,
            interval: spec.interval(),
            start,
            opened: 0,
            last_opened: None,
            planned: total,
            live: Vec::new(),
        }
    }

    pub(super) fn opened(&self) -> u32 {
        self.opened
    }

    /// When the next socket opens.
    pub(super) fn next_due(&self) -> Option<Instant> {
        (self.opened < self.total).then(|| {
            let scheduled = self.start + self.interval.saturating_mul(self.opened);
            match self.last_opened {
                Some(last) if self.opened >= self.planned => scheduled.max(last + self.interval),
                _ => scheduled,
            }
        })
    }

    /// Opens every socket that is due (a late wake-up opens a few at once, never more than
    /// the rate allows on average).
    pub(super) fn advance(&mut self, now: Instant, commands: &mut VecDeque<Command>) {
        while self.next_due().is_some_and(|due| due <= now) {
            let socket = SocketId(self.opened);
            let port = self.far_ports[self.opened as usize % self.far_ports.len()];
            self.opened += 1;
            self.last_opened = Some(now);
            self.live.push((socket, port));
            commands.push_back(Command::Connect {
                socket,
                bind: Bind::Any,
                to: SocketAddr::new(self.peer_ip, port),
            });
        }
    }

    /// The far port of a socket that connected (the others close: in SYN_SENT nothing is sent,
    /// their NAT entries age out); a failed one is dropped and the others go on.
    pub(super) fn handle_connect(
        &mut self,
        socket: SocketId,
        result: ConnectResult,
        commands: &mut VecDeque<Command>,
    ) -> Option<u16> {
        let index = self.live.iter().position(|&(s, _)| s == socket)?;
        let (_, port) = self.live.swap_remove(index);
        match result {
            ConnectResult::Connected => {
                for (other, _) in self.live.drain(..) {
                    commands.push_back(Command::Close { socket: other });
                }
                Some(port)
            }
            ConnectResult::Failed => {
                commands.push_back(Command::Close { socket });
                if self.total < 2 * self.planned {
                    self.total += 1;
                }
                None
            }
        }
    }
}
