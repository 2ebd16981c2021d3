//! The raw sockets of the TCP filtering test ([`crate::core::server`]'s `syn_test`): one sends
//! the SYNs the core orders, one sees the answers (SYN-ACK or RST) come back.
//!
//! The receiving socket gets a copy of every TCP segment the host receives; a classic BPF
//! filter keeps only segments with RST, or with SYN and ACK both set, so that the server's
//! ordinary TCP traffic never wakes the loop for nothing.
//!
//! Opening needs CAP_NET_RAW. Without it the server says so once at start and the core refuses
//! TCP CHANGE-REQUESTs with that reason.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Interest, Poll, Token};

use crate::core::binding::FullMode;
use crate::core::server::SynOrder;
use crate::io::raw_tcp::RawTcpError;
use crate::wire::tcp_syn::{Segment, SegmentKind, SegmentRepr};

use super::{Reporter, Server};

/// TTL of the crafted SYNs: all the way to the client, as the kernel's own would go.
const SYN_HOP_LIMIT: u8 = 64;

/// The line the server prints when it cannot craft SYNs.
pub const TESTS_OFF: &str = "TCP filtering tests are off: crafting a SYN needs CAP_NET_RAW \
(run as root or 'sudo setcap cap_net_raw+ep $(command -v natlens)'); TCP CHANGE-REQUESTs are \
refused with that reason";

/// A SYN-ACK or RST that reached this host: who sent it, to which of our ports, and what it
/// acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynReply {
    pub from: SocketAddr,
    pub to_port: u16,
    pub ack: u32,
}

/// The two raw sockets of one address family.
#[derive(Debug)]
pub struct SynCrafter {
    sender: Socket,
    sniffer: Socket,
    v6: bool,
}

impl SynCrafter {
    /// Opens both sockets for the family of `ip`.
    pub fn open(ip: IpAddr) -> Result<SynCrafter, RawTcpError> {
        let (domain, v6) = match ip {
            IpAddr::V4(_) => (Domain::IPV4, false),
            IpAddr::V6(_) => (Domain::IPV6, true),
        };
        let sender = Socket::new(domain, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))?;
        sender.set_nonblocking(true)?;
        let sniffer = Socket::new(domain, Type::RAW, Some(Protocol::TCP))?;
        sniffer.set_nonblocking(true)?;
        attach_answer_filter(&sniffer, v6)?;
        Ok(SynCrafter {
            sender,
            sniffer,
            v6,
        })
    }

    /// The receiving socket's descriptor, for epoll.
    pub fn sniffer_fd(&self) -> RawFd {
        self.sniffer.as_raw_fd()
    }

    /// Sends the SYN of one order. A full send queue loses it: the test then reads as
    /// filtered, which a second run would correct, and the loop must never block.
    pub fn send(&self, order: &SynOrder) -> io::Result<()> {
        if order.from.is_ipv6() != self.v6 || order.to.is_ipv6() != self.v6 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the SYN's family differs from the raw socket's",
            ));
        }
        let syn = SegmentRepr::syn(order.from, order.to, SYN_HOP_LIMIT, order.isn, 0);
        let bytes = syn
            .to_bytes()
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        // The port must be 0 for a raw socket (IPv6 would read it as a protocol number).
        let to = SockAddr::from(SocketAddr::new(order.to.ip(), 0));
        self.sender.send_to(&bytes, &to).map(drop)
    }

    /// The next answer queued, skipping what does not parse; `None` when none is left.
    pub fn recv(&self) -> io::Result<Option<SynReply>> {
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1600];
        loop {
            let (n, from) = match self.sniffer.recv_from(&mut buf) {
                Ok(received) => received,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            // SAFETY: recv_from initialised the first `n` bytes.
            let packet: Vec<u8> = buf[..n]
                .iter()
                .map(|b| unsafe { b.assume_init() })
                .collect();
            if let Some(reply) = self.parse(&packet, &from) {
                return Ok(Some(reply));
            }
        }
    }

    /// An IPv4 copy starts with the IP header; an IPv6 one is the TCP segment alone, its
    /// source in the socket address.
    fn parse(&self, packet: &[u8], from: &SockAddr) -> Option<SynReply> {
        if self.v6 {
            let source = from.as_socket()?.ip();
            return tcp_reply(source, packet);
        }
        let segment = Segment::new_checked(packet).ok()?;
        let repr = SegmentRepr::parse(&segment);
        let answer = matches!(repr.kind(), SegmentKind::SynAck | SegmentKind::Rst);
        answer.then_some(SynReply {
            from: repr.src,
            to_port: repr.dst.port(),
            ack: repr.ack,
        })
    }
}

/// The raw sockets of every family the server runs full mode in (IPv4, IPv6 or both).
#[derive(Debug, Default)]
pub struct SynCrafters(Vec<SynCrafter>);

impl SynCrafters {
    /// True when no family has its raw sockets: TCP CHANGE-REQUESTs are refused.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pair that sends and sees `family`'s segments.
    fn of_family(&self, v6: bool) -> Option<&SynCrafter> {
        self.0.iter().find(|crafter| crafter.v6 == v6)
    }
}

/// The raw sockets for each family of `full_modes`, all watched by `poll` as `token` (a
/// readiness event drains every sniffer); a family whose sockets cannot be had is left out
/// after one line saying why (the line once when it is the missing capability).
pub(super) fn open(
    poll: &Poll,
    full_modes: &[FullMode],
    token: Token,
    reporter: &mut dyn Reporter,
) -> SynCrafters {
    let mut crafters = SynCrafters::default();
    for v6 in [false, true] {
        let Some(full) = full_modes.iter().find(|f| f.primary.is_ipv6() == v6) else {
            continue;
        };
        match open_one(poll, full.primary.ip(), token, reporter) {
            Some(crafter) => crafters.0.push(crafter),
            // Without CAP_NET_RAW the other family fails alike: say it once.
            None if crafters.is_empty() => break,
            None => {}
        }
    }
    crafters
}

/// The raw sockets for a full-mode server whose primary address is `ip`, watched by `poll` as
/// `token`; `None`, after one line saying why, when they cannot be had.
fn open_one(
    poll: &Poll,
    ip: IpAddr,
    token: Token,
    reporter: &mut dyn Reporter,
) -> Option<SynCrafter> {
    let crafter = match SynCrafter::open(ip) {
        Ok(crafter) => crafter,
        Err(RawTcpError::NoCapability) => {
            reporter.warn(TESTS_OFF);
            return None;
        }
        Err(RawTcpError::Io(err)) => {
            reporter.warn(&format!(
                "TCP filtering tests are off: opening a raw socket: {err}"
            ));
            return None;
        }
    };
    let fd = crafter.sniffer_fd();
    if let Err(err) = poll
        .registry()
        .register(&mut SourceFd(&fd), token, Interest::READABLE)
    {
        reporter.warn(&format!(
            "TCP filtering tests are off: watching the raw socket: {err}"
        ));
        return None;
    }
    Some(crafter)
}

impl Server {
    /// Hands every queued SYN-ACK or RST to the core, then carries out what it answered.
    pub(super) fn syn_replies(&mut self, now: Instant, reporter: &mut dyn Reporter) {
        for crafter in &self.syn.0 {
            loop {
                match crafter.recv() {
                    Ok(Some(reply)) => {
                        self.core
                            .handle_syn_reply(now, reply.from, reply.to_port, reply.ack)
                    }
                    Ok(None) => break,
                    Err(err) => {
                        reporter.warn(&format!(
                            "reading the TCP filtering test's raw socket: {err}"
                        ));
                        break;
                    }
                }
            }
        }
        self.drain_core(now, reporter);
    }

    /// Sends the SYNs the core ordered.
    pub(super) fn send_syns(&mut self, reporter: &mut dyn Reporter) {
        while let Some(order) = self.core.poll_syn() {
            let Some(crafter) = self.syn.of_family(order.to.is_ipv6()) else {
                continue;
            };
            if let Err(err) = crafter.send(&order) {
                reporter.warn(&format!(
                    "sending a TCP filtering test's SYN to {}: {err}",
                    order.to
                ));
            }
        }
    }
}

/// Reads ports, acknowledgement and flags from a bare TCP header.
fn tcp_reply(source: IpAddr, tcp: &[u8]) -> Option<SynReply> {
    if tcp.len() < 20 {
        return None;
    }
    let flags = tcp[13];
    let (syn, ack, rst) = (flags & 0x02 != 0, flags & 0x10 != 0, flags & 0x04 != 0);
    if !(rst || (syn && ack)) {
        return None;
    }
    let port = |at: usize| u16::from_be_bytes([tcp[at], tcp[at + 1]]);
    Some(SynReply {
        from: SocketAddr::new(source, port(0)),
        to_port: port(2),
        ack: u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]),
    })
}

/// A classic BPF program that accepts a TCP segment with RST set, or with SYN and ACK both
/// set, and drops every other. `v6`: the copy has no IP header in front.
fn answer_filter(v6: bool) -> Vec<libc::sock_filter> {
    const LDX_MSH: u16 = 0xb1; // BPF_LDX | BPF_B | BPF_MSH: X = 4 * (P[k] & 0xf)
    const LD_B_IND: u16 = 0x50; // BPF_LD | BPF_B | BPF_IND
    const LDX_IMM: u16 = 0x01; // BPF_LDX | BPF_W | BPF_IMM
    const JSET: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
    const AND: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
    const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET: u16 = 0x06; // BPF_RET | BPF_K
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let header_len = if v6 {
        op(LDX_IMM, 0, 0, 0)
    } else {
        op(LDX_MSH, 0, 0, 0)
    };
    vec![
        header_len,
        // A = TCP flags, 13 bytes into the TCP header.
        op(LD_B_IND, 0, 0, 13),
        op(JSET, 3, 0, 0x04),
        op(AND, 0, 0, 0x12),
        op(JEQ, 1, 0, 0x12),
        op(RET, 0, 0, 0),
        op(RET, 0, 0, 0xffff),
    ]
}

fn attach_answer_filter(socket: &Socket, v6: bool) -> io::Result<()> {
    let program = answer_filter(v6);
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: setsockopt(2) with a sock_fprog that points at `program`, alive for the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_tcp_header_reads_as_an_answer_only_with_rst_or_syn_ack() {
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&3479u16.to_be_bytes());
        tcp[8..12].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        let source: IpAddr = "2001:db8::7".parse().unwrap();
        for (flags, answer) in [
            (0x12, true),
            (0x04, true),
            (0x14, true),
            (0x02, false),
            (0x10, false),
        ] {
            tcp[13] = flags;
            let reply = tcp_reply(source, &tcp);
            assert_eq!(reply.is_some(), answer, "flags {flags:#x}");
            if let Some(reply) = reply {
                assert_eq!(reply.from, SocketAddr::new(source, 40000));
                assert_eq!((reply.to_port, reply.ack), (3479, 0x0102_0304));
            }
        }
        assert_eq!(tcp_reply(source, &tcp[..19]), None);
    }

    #[test]
    fn the_filter_jumps_stay_inside_the_program() {
        for v6 in [false, true] {
            let program = answer_filter(v6);
            let last = program.len() - 1;
            // Jumps (class BPF_JMP) only: a return ends the program.
            for (i, op) in program
                .iter()
                .enumerate()
                .filter(|(_, op)| op.code & 0x07 == 0x05)
            {
                assert!(i + 1 + usize::from(op.jt) <= last, "{i}");
                assert!(i + 1 + usize::from(op.jf) <= last, "{i}");
            }
        }
    }
}
