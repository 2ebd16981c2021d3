//! The TCP birthday punch: a random-port NAT against a port-preserving, port-restricted one
//! (issue 4), the two halves of the plan's `birthday` strategy over TCP.
//!
//! Why a birthday and not a direct aim: the random side's NAT gives each new flow a random
//! public port, and the cone side's NAT only admits segments from an address and port it has
//! sent to. So the random side's SYN to the cone's fixed port is dropped by the cone's NAT
//! (there is no entry for it), and the cone side cannot aim at a port it does not know.
//!
//! * The random side **holds** `k` kernel sockets, each `connect()`ing to the cone's one public
//!   port (full TTL: the cone's NAT drops them silently, LAB-NOTES). Each opens a conntrack
//!   entry in SYN_SENT at an unknown random public port of its NAT, kept alive by the kernel's
//!   own SYN retransmissions (1 s, 3 s, 7 s) with the same ISN.
//! * The cone side **sprays** crafted SYNs (full TTL, so they reach the far NAT) from its one
//!   punched port to distinct random ports of the random NAT, at the plan's rate, with an RST
//!   guard on the punched port. A spray SYN that lands on one of the `k` ports matches that
//!   entry's reply direction: the random NAT forwards it to the holding socket, which is in
//!   SYN_SENT, so the kernel takes it as a simultaneous open and answers SYN-ACK (its own ISN,
//!   acking ours). That SYN-ACK matches the spray SYN's entry in the cone's NAT and reaches the
//!   cone host, where the sniffer sees it and a socket adopts the 4-tuple from the crafted ISN
//!   ([`crate::io::adopt`]) and sends the final ACK. A holder SYN retransmitted after the spray
//!   opened its tuple arrives as a SYN instead and is adopted the same way.
//!
//! Odds: `1 − (1 − k/N)ⁿ` for `n` spray SYNs ([`crate::core::punch::birthday`]); spray SYNs
//! that reach the random NAT before the holders' SYNs left (the holder starts one relay later
//! and opens its sockets at the rate cap) are wasted, which is why the TCP plan sprays more
//! than the UDP one. The spray stops as soon as a connection is adopted.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use socket2::{Domain, SockAddr, Socket, Type};

use crate::io::adopt;
use crate::io::caps;
use crate::io::punch_tcp::{TcpPunch, TcpPunched};
use crate::io::raw_tcp::{self, CraftedSyn, Family, RawTcp};
use crate::io::rst_guard::RstGuard;
use crate::io::simopen::{reusable_socket, PunchError, Punched, Via};
use crate::wire::tcp_syn::SegmentKind;

/// Longest a poll waits, so that a stop flag and the deadline are seen promptly.
const POLL_SLICE: Duration = Duration::from_millis(50);

/// TTL of the spray's SYNs: they must cross the far NAT.
pub(crate) const SPRAY_TTL: u8 = 64;

fn unspecified(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

fn stopped(stop: Option<&AtomicBool>) -> bool {
    stop.is_some_and(|flag| flag.load(Ordering::Relaxed))
}

/// One holding socket: where it connects.
struct Holder {
    socket: Socket,
    target: u16,
}

/// The random side: `sockets` kernel sockets, socket `m` connecting to far port
/// `far_ports[m mod len]` (one port against a cone), opened at the plan's rate; the first that
/// completes a handshake is the connection.
pub fn hold(
    spec: &TcpPunch,
    sockets: u32,
    stop: Option<&AtomicBool>,
) -> Result<TcpPunched, PunchError> {
    if spec.far_ports.is_empty() || sockets == 0 {
        return Err(PunchError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the plan gives the holding side no far port or no socket",
        )));
    }
    let t0 = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(spec.rate.max(1)));
    let any = SocketAddr::new(unspecified(spec.peer_ip), 0);
    let mut holders: Vec<Holder> = Vec::with_capacity(sockets as usize);
    let mut opened = 0u32;
    let mut last_error: Option<io::Error> = None;
    loop {
        if stopped(stop) {
            return Err(PunchError::Stopped);
        }
        let now = Instant::now();
        if now >= spec.deadline {
            return Err(PunchError::TimedOut {
                attempts: opened,
                last_error,
            });
        }
        // Open every socket that is due (a late wake-up opens a few at once, never more than
        // the rate allows on average).
        while opened < sockets && t0 + interval.saturating_mul(opened) <= now {
            let m = opened as usize;
            opened += 1;
            let target = spec.far_ports[m % spec.far_ports.len()];
            let socket = Socket::new(Domain::for_address(any), Type::STREAM, None)?;
            socket.set_nonblocking(true)?;
            match socket.connect(&SockAddr::from(SocketAddr::new(spec.peer_ip, target))) {
                Ok(()) => {}
                Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(err) => {
                    last_error = Some(err);
                    continue;
                }
            }
            holders.push(Holder { socket, target });
        }
        let next_open = (opened < sockets).then(|| t0 + interval.saturating_mul(opened));
        let wake = next_open.map_or(spec.deadline, |due| due.min(spec.deadline));
        let timeout = wake.saturating_duration_since(now).min(POLL_SLICE);
        let mut fds: Vec<libc::pollfd> = holders
            .iter()
            .map(|h| libc::pollfd {
                fd: h.socket.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            })
            .collect();
        let millis = timeout.as_millis().max(1) as libc::c_int;
        // SAFETY: poll(2) on a vector of pollfd we own, with its exact length.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err.into());
        }
        if rc == 0 {
            continue;
        }
        let mut failed = Vec::new();
        for (i, fd) in fds.iter().enumerate() {
            if fd.revents == 0 {
                continue;
            }
            let connected = match holders[i].socket.take_error()? {
                None => holders[i].socket.peer_addr().is_ok(),
                Some(err) => {
                    // Reset or timed out: that socket's entry is gone; the others go on.
                    last_error = Some(err);
                    failed.push(i);
                    false
                }
            };
            if connected {
                let holder = holders.swap_remove(i);
                // The other holders close in SYN_SENT: nothing is sent, their NAT entries
                // simply age out.
                drop(holders);
                let stream = TcpStream::from(holder.socket);
                stream.set_nonblocking(false)?;
                let port_through = holder.target;
                return Ok(TcpPunched {
                    offset: spec.far_ports.iter().position(|&p| p == port_through),
                    port_through,
                    packets_sent: opened,
                    punched: Punched {
                        stream,
                        via: Via::Connect,
                        attempts: opened,
                        elapsed: t0.elapsed(),
                    },
                    crafted: false,
                    rsts_kept: 0,
                });
            }
        }
        for i in failed.into_iter().rev() {
            holders.swap_remove(i);
        }
    }
}

/// The cone side: crafted SYNs from the punched port to every far port in the plan's order, at
/// its rate, while the sniffer waits for the holder's SYN-ACK (or SYN) on one of those 4-tuples
/// and adopts it. `hint` gets the one line said when crafted SYNs cannot be sent.
pub fn spray(
    spec: &TcpPunch,
    stop: Option<&AtomicBool>,
    hint: &mut dyn FnMut(&str),
) -> Result<TcpPunched, PunchError> {
    let t0 = Instant::now();
    let raw = match RawTcp::open_then_drop_caps(Family::of(spec.peer_ip), 1 << caps::CAP_NET_ADMIN)
    {
        Ok(raw) => raw,
        Err(err) => {
            let line = format!(
                "a TCP birthday spray sends crafted SYNs and cannot run without them ({err})"
            );
            hint(&line);
            return Err(PunchError::Io(io::Error::other(line)));
        }
    };
    // The punched port: the session's, which the holder aims at through our NAT.
    let any = unspecified(spec.peer_ip);
    let port = reusable_socket(SocketAddr::new(any, spec.local_port))?
        .local_addr()?
        .as_socket()
        .map_or(spec.local_port, |a| a.port());
    let guard = RstGuard::install(port, spec.peer_ip)
        .map_err(|err| PunchError::Io(io::Error::other(format!("{err:#}"))))?;
    let result = (|| {
        let local_ip = raw_tcp::source_ip_for(spec.peer_ip)?;
        spray_and_adopt(
            spec,
            &raw,
            SocketAddr::new(local_ip, port),
            SPRAY_TTL,
            false,
            &[],
            stop,
        )
    })();
    let rsts_kept = guard.dropped().unwrap_or(0);
    let removed = guard.remove();
    let (stream, sent) = result?;
    removed.map_err(|err| PunchError::Io(io::Error::other(format!("{err:#}"))))?;
    let port_through = stream.peer_addr().map_or(0, |a| a.port());
    Ok(TcpPunched {
        offset: spec.far_ports.iter().position(|&p| p == port_through),
        port_through,
        packets_sent: sent,
        punched: Punched {
            stream,
            via: Via::Adopt,
            attempts: 0,
            elapsed: t0.elapsed(),
        },
        crafted: true,
        rsts_kept,
    })
}

/// Pause before the first resend round of a delivering spray; each later one doubles it. A
/// lost SYN (or SYN-ACK) on the one 4-tuple where the two fan-outs meet otherwise ends the punch
/// with "no TCP connection" (10% loss per WAN link loses 19% of them). A resent SYN is the
/// same segment (ISN, TSval): a retransmission on a 4-tuple both NATs already hold, so it
/// takes no new port on either.
pub(crate) const RESEND_FIRST: Duration = Duration::from_millis(500);

/// When resend round `round` (1 = the first resend) may start, counted from the end of the
/// round before: [`RESEND_FIRST`], doubled each round (exponential backoff, capped at 8 s).
pub(crate) fn resend_pause(round: u32) -> Duration {
    RESEND_FIRST.saturating_mul(1 << round.saturating_sub(1).min(4))
}

/// Crafted SYNs with `ttl` from `local` to every far port in order, at the plan's rate (SYN `i`
/// of the first round not before `not_before[i]` from the start either), on a thread; the
/// sniffer and adoption here. Returns the adopted stream and the SYNs sent. Also
/// the delivering half of a fan-out between two symmetric NATs ([`crate::io::punch_tcp`]),
/// which (`resend`) sends the same SYNs again in rounds with backoff until one is adopted.
pub(crate) fn spray_and_adopt(
    spec: &TcpPunch,
    raw: &RawTcp,
    local: SocketAddr,
    ttl: u8,
    resend: bool,
    not_before: &[Duration],
    stop: Option<&AtomicBool>,
) -> Result<(TcpStream, u32), PunchError> {
    let done = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<CraftedSyn>();
    let interval = Duration::from_secs_f64(1.0 / f64::from(spec.rate.max(1)));
    let over = || done.load(Ordering::Relaxed) || stopped(stop) || Instant::now() >= spec.deadline;
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            let mut rng = rand::rngs::StdRng::from_entropy();
            let mut sent = 0u32;
            let mut segments = Vec::with_capacity(spec.far_ports.len());
            for round in 0u32.. {
                if round > 0 {
                    if !resend {
                        break;
                    }
                    let until = Instant::now() + resend_pause(round);
                    while Instant::now() < until && !over() {
                        std::thread::sleep(POLL_SLICE.min(until - Instant::now()));
                    }
                }
                let start = Instant::now();
                for (i, &port) in spec.far_ports.iter().enumerate() {
                    if over() {
                        return sent;
                    }
                    // Round 0 also waits for the flow it is meant to meet (`not_before`).
                    let mut due = start + interval.saturating_mul(i as u32);
                    if round == 0 {
                        if let Some(&at) = not_before.get(i) {
                            due = due.max(start + at);
                        }
                    }
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    let syn = if round == 0 {
                        let (syn, crafted) = raw_tcp::craft_syn(
                            local,
                            SocketAddr::new(spec.peer_ip, port),
                            ttl,
                            &mut rng,
                        );
                        // Filed before it leaves: the answer can only follow.
                        if tx.send(crafted).is_err() {
                            return sent;
                        }
                        segments.push(syn);
                        syn
                    } else {
                        segments[i]
                    };
                    if raw.send(&syn).is_ok() {
                        sent += 1;
                    }
                }
            }
            sent
        });
        let adopted = adopt_first(spec, raw, local, &rx, stop);
        done.store(true, Ordering::Relaxed);
        let sent = sender.join().unwrap_or(0);
        adopted
            .map(|stream| (stream, sent))
            .map_err(|err| match err {
                PunchError::TimedOut { last_error, .. } => PunchError::TimedOut {
                    attempts: sent,
                    last_error,
                },
                other => other,
            })
    })
}

/// Waits for the peer's SYN-ACK answering one of our spray SYNs (or its SYN on one of their
/// 4-tuples) and adopts that connection.
fn adopt_first(
    spec: &TcpPunch,
    raw: &RawTcp,
    local: SocketAddr,
    rx: &mpsc::Receiver<CraftedSyn>,
    stop: Option<&AtomicBool>,
) -> Result<TcpStream, PunchError> {
    let mut crafted: HashMap<u16, CraftedSyn> = HashMap::new();
    loop {
        if stopped(stop) {
            return Err(PunchError::Stopped);
        }
        let now = Instant::now();
        if now >= spec.deadline {
            return Err(PunchError::TimedOut {
                attempts: 0,
                last_error: None,
            });
        }
        let mut fd = libc::pollfd {
            fd: raw.sniffer_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = spec
            .deadline
            .saturating_duration_since(now)
            .min(POLL_SLICE)
            .as_millis()
            .max(1) as libc::c_int;
        // SAFETY: poll(2) on one pollfd we own.
        let rc = unsafe { libc::poll(&mut fd, 1, millis) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err.into());
        }
        crafted.extend(rx.try_iter().map(|syn| (syn.port, syn)));
        while let Some(segment) = raw.recv_from(spec.peer_ip, local.ip())? {
            if segment.dst.port() != local.port() {
                continue;
            }
            let Some(&syn) = crafted.get(&segment.src.port()) else {
                continue;
            };
            match segment.kind() {
                SegmentKind::Syn => {}
                SegmentKind::SynAck if segment.ack == syn.isn.wrapping_add(1) => {}
                _ => continue,
            }
            return Ok(adopt::adopt(raw, local, &segment, syn)?);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivering_resends_back_off_from_half_a_second() {
        assert_eq!(resend_pause(1), RESEND_FIRST);
        assert_eq!(resend_pause(2), 2 * RESEND_FIRST);
        assert_eq!(resend_pause(3), 4 * RESEND_FIRST);
        assert_eq!(resend_pause(40), 16 * RESEND_FIRST);
    }
}
