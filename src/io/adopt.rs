//! Adopting a connection on a 4-tuple that a crafted SYN opened: a kernel socket that carries
//! on from the crafted SYN's sequence number, so our own NAT's conntrack sees one consistent
//! TCP flow.
//!
//! Why not let a listener answer the peer's SYN? Linux conntrack tracks sequence numbers
//! (`nf_conntrack_tcp_be_liberal=0`, the default): the crafted SYN fixed our side's sequence
//! space for that 4-tuple, and a listener's SYN-ACK starts from its own random ISN, which our
//! NAT then marks INVALID and, like most routers, drops. In the lab that failed every time;
//! with `be_liberal=1` it worked every time. So the socket that takes over must use the
//! crafted ISN.
//!
//! How: when the sniffer ([`RawTcp::recv_from`]) sees the peer's SYN (ISN `y`) arrive on a
//! crafted 4-tuple (our ISN `x`), a socket is bound to the punched port and put into repair
//! mode (TCP_REPAIR, as CRIU restores connections): send sequence `x + 1`, receive sequence
//! `y + 1`, `connect()` (which in repair mode makes it ESTABLISHED without sending anything),
//! MSS, window scale and SACK as the peer's SYN offered; then out of repair mode. The SYN-ACK
//! (`x`, ack `y + 1`) is crafted and sent by the raw socket; the peer's ACK completes both
//! ends, and from then on it is an ordinary kernel connection. Timestamps are not offered in
//! the SYN-ACK, so the connection runs without them (RFC 7323 §2.2: both SYNs must carry them).
//!
//! No kernel socket may own the 4-tuple meanwhile: with a listener on the port, the peer's SYN
//! would create a request socket there and the repair `connect()` would fail EADDRNOTAVAIL.
//! Without one the kernel answers the peer's SYN with a RST, which the RST guard
//! ([`crate::io::rst_guard`]) keeps home. Needs CAP_NET_ADMIN (TCP_REPAIR).

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{SockAddr, Socket};

use crate::io::raw_tcp::{CraftedSyn, RawTcp};
use crate::io::simopen::reusable_socket;
use crate::wire::tcp_syn::{
    default_mss, SegmentKind, SegmentRepr, SynOptions, TcpFlags, LINUX_SYN_WINDOW,
    LINUX_WINDOW_SCALE,
};

/// The wait for the peer's ACK before the SYN-ACK is sent again (then doubled): a crafted
/// SYN-ACK has no kernel timer behind it, so a lost one must be resent by hand. 200 ms is the
/// kernel's minimum RTO; two doublings cover a slow path within about 1.4 s.
pub const SYN_ACK_RESEND: Duration = Duration::from_millis(200);
/// SYN-ACKs sent before giving up on the peer's ACK (the connection is returned anyway: the
/// peer's SYN retransmission will be answered by the established socket's challenge ACK).
/// Four: at 10% loss per WAN link a SYN-ACK/ACK round trip fails 19% of the time, and the
/// peer can adopt only on a SYN-ACK (0.7% lost with three tries, 0.13% with four; the fourth
/// costs 1.6 s only when the first three went unanswered).
pub const SYN_ACK_TRIES: u32 = 4;

/// `TCP_RECV_QUEUE` / `TCP_SEND_QUEUE` for TCP_REPAIR_QUEUE (linux/tcp.h).
const TCP_RECV_QUEUE: libc::c_int = 1;
const TCP_SEND_QUEUE: libc::c_int = 2;
/// Leave repair mode without the window probe (which would be an out-of-window ACK to a peer
/// still in SYN_SENT). Linux 4.19+; older kernels take 0 and send the probe.
const TCP_REPAIR_OFF_NO_WP: libc::c_int = -1;
/// TCPOPT_* codes for TCP_REPAIR_OPTIONS.
const TCPOPT_MSS: u32 = 2;
const TCPOPT_WINDOW: u32 = 3;
const TCPOPT_SACK_PERM: u32 = 4;
const TCPOPT_TIMESTAMP: u32 = 8;

#[repr(C)]
struct RepairOpt {
    code: u32,
    value: u32,
}

#[repr(C)]
struct RepairWindow {
    snd_wl1: u32,
    snd_wnd: u32,
    max_window: u32,
    rcv_wnd: u32,
    rcv_wup: u32,
}

/// Adopts the connection on our crafted 4-tuple (our SYN was `crafted`) that the peer's
/// segment `peer` asks for: its SYN (we answer with a crafted SYN-ACK and wait for its ACK,
/// resending if need be) or its SYN-ACK to our SYN (we answer with the final ACK; should that
/// be lost, the peer's retransmitted SYN-ACK draws the kernel's own ACK from the adopted
/// socket). `local` is our address on that tuple (LAN address and punched port).
pub fn adopt(
    raw: &RawTcp,
    local: SocketAddr,
    peer: &SegmentRepr,
    crafted: CraftedSyn,
    device: Option<&str>,
) -> io::Result<TcpStream> {
    let handshake = Handshake::new(local, peer, crafted);
    let socket = handshake.repaired_socket(device)?;
    if peer.kind() == SegmentKind::SynAck {
        raw.send(&handshake.final_ack())?;
    } else {
        let syn_ack = handshake.syn_ack();
        let mut wait = SYN_ACK_RESEND;
        for _ in 0..SYN_ACK_TRIES {
            raw.send(&syn_ack)?;
            if peer_acked(raw, local, peer, crafted.isn, wait)? {
                break;
            }
            wait *= 2;
        }
    }
    let stream = TcpStream::from(socket);
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// The handshake as it will stand once our answer is through: who we are, what the peer
/// offered, where both sequence spaces start.
#[derive(Debug, Clone, Copy)]
pub struct Handshake {
    local: SocketAddr,
    peer: SegmentRepr,
    crafted: CraftedSyn,
}

impl Handshake {
    pub fn new(local: SocketAddr, peer: &SegmentRepr, crafted: CraftedSyn) -> Handshake {
        Handshake {
            local,
            peer: *peer,
            crafted,
        }
    }

    /// Timestamps are on when both SYNs carry them: ours always does, so it is the peer's
    /// SYN-ACK that decides; to a peer's SYN we answer without them.
    fn timestamps(&self) -> Option<u32> {
        let (peer_tsval, _) = self.peer.options.timestamps?;
        (self.peer.kind() == SegmentKind::SynAck).then_some(peer_tsval)
    }

    /// Our SYN-ACK to the peer's SYN.
    pub fn syn_ack(&self) -> SegmentRepr {
        let offered = self.peer.options;
        SegmentRepr {
            src: self.local,
            dst: self.peer.src,
            hop_limit: 64,
            seq: self.crafted.isn,
            ack: self.peer.seq.wrapping_add(1),
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window: LINUX_SYN_WINDOW,
            options: SynOptions {
                mss: Some(default_mss(self.local.ip())),
                sack_permitted: offered.sack_permitted,
                window_scale: offered.window_scale.map(|_| LINUX_WINDOW_SCALE),
                timestamps: None,
            },
        }
    }

    /// Our ACK of the peer's SYN-ACK.
    pub fn final_ack(&self) -> SegmentRepr {
        SegmentRepr {
            src: self.local,
            dst: self.peer.src,
            hop_limit: 64,
            seq: self.crafted.isn.wrapping_add(1),
            ack: self.peer.seq.wrapping_add(1),
            flags: TcpFlags::ACK,
            window: (u32::from(LINUX_SYN_WINDOW) >> self.our_shift()) as u16,
            options: SynOptions {
                timestamps: self
                    .timestamps()
                    .map(|peer_tsval| (self.crafted.tsval, peer_tsval)),
                ..SynOptions::default()
            },
        }
    }

    /// Our window shift once the handshake is done (0 unless both offered scaling).
    fn our_shift(&self) -> u8 {
        match self.peer.options.window_scale {
            Some(_) => LINUX_WINDOW_SCALE,
            None => 0,
        }
    }

    /// A socket on the punched port made ESTABLISHED to the peer in repair mode, carrying on
    /// from both ISNs with the options the handshake agreed.
    fn repaired_socket(&self, device: Option<&str>) -> io::Result<Socket> {
        let any = SocketAddr::new(unspecified(self.local), self.local.port());
        let socket = reusable_socket(any, device)?;
        let fd = socket.as_raw_fd();
        set_int(fd, libc::TCP_REPAIR, 1)?;
        set_int(fd, libc::TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)?;
        set_int(
            fd,
            libc::TCP_QUEUE_SEQ,
            self.crafted.isn.wrapping_add(1) as libc::c_int,
        )?;
        set_int(fd, libc::TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)?;
        set_int(
            fd,
            libc::TCP_QUEUE_SEQ,
            self.peer.seq.wrapping_add(1) as libc::c_int,
        )?;
        if self.timestamps().is_some() {
            // Our TSval continues from the crafted SYN's, which the peer keeps for PAWS. Even:
            // since Linux 6.7 the low bit switches the socket to microsecond timestamps, and
            // then the peer dropped everything we sent in about half the lab runs.
            let tsval = self.crafted.tsval.wrapping_add(1) & !1;
            set_int(fd, libc::TCP_TIMESTAMP, tsval as libc::c_int)?;
        }
        socket.connect(&SockAddr::from(self.peer.src))?;
        self.set_options(fd)?;
        self.set_window(fd)?;
        if set_int(fd, libc::TCP_REPAIR, TCP_REPAIR_OFF_NO_WP).is_err() {
            set_int(fd, libc::TCP_REPAIR, 0)?;
        }
        Ok(socket)
    }

    /// MSS we may send (the peer's), window scales both ways, SACK, timestamps.
    fn set_options(&self, fd: libc::c_int) -> io::Result<()> {
        let offered = self.peer.options;
        // RFC 9293 §3.7.1: without an MSS option, assume 536.
        let mut options = vec![RepairOpt {
            code: TCPOPT_MSS,
            value: u32::from(offered.mss.unwrap_or(536)),
        }];
        if let Some(shift) = offered.window_scale {
            // snd_wscale (theirs) in the low half, rcv_wscale (ours) in the high half.
            let value = u32::from(shift.min(14)) | (u32::from(LINUX_WINDOW_SCALE) << 16);
            options.push(RepairOpt {
                code: TCPOPT_WINDOW,
                value,
            });
        }
        if offered.sack_permitted {
            options.push(RepairOpt {
                code: TCPOPT_SACK_PERM,
                value: 0,
            });
        }
        if self.timestamps().is_some() {
            options.push(RepairOpt {
                code: TCPOPT_TIMESTAMP,
                value: 0,
            });
        }
        setsockopt(fd, libc::TCP_REPAIR_OPTIONS, options.as_slice())
    }

    /// The windows as they stand after the handshake: the peer's SYN window (never scaled in a
    /// SYN) for sending, ours as our SYN or SYN-ACK advertised it for receiving.
    fn set_window(&self, fd: libc::c_int) -> io::Result<()> {
        let window = RepairWindow {
            snd_wl1: self.peer.seq,
            snd_wnd: u32::from(self.peer.window),
            max_window: u32::from(self.peer.window),
            rcv_wnd: u32::from(LINUX_SYN_WINDOW),
            rcv_wup: self.peer.seq.wrapping_add(1),
        };
        setsockopt(fd, libc::TCP_REPAIR_WINDOW, std::slice::from_ref(&window))
    }
}

fn unspecified(like: SocketAddr) -> std::net::IpAddr {
    match like {
        SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// Waits up to `wait` for the peer's ACK of our SYN-ACK on this 4-tuple.
fn peer_acked(
    raw: &RawTcp,
    local: SocketAddr,
    peer_syn: &SegmentRepr,
    our_isn: u32,
    wait: Duration,
) -> io::Result<bool> {
    let until = Instant::now() + wait;
    let expected_ack = our_isn.wrapping_add(1);
    while Instant::now() < until {
        match raw.recv_from(peer_syn.src.ip(), local.ip())? {
            Some(segment)
                if segment.src == peer_syn.src
                    && segment.dst.port() == local.port()
                    && segment.kind() == SegmentKind::Other
                    && segment.flags & TcpFlags::ACK != 0
                    && segment.ack == expected_ack =>
            {
                return Ok(true)
            }
            Some(_) => {}
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    Ok(false)
}

/// Sets the IPPROTO_TCP option `option` of `fd` to `value`.
pub(crate) fn set_int(fd: libc::c_int, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    setsockopt(fd, option, std::slice::from_ref(&value))
}

fn setsockopt<T>(fd: libc::c_int, option: libc::c_int, value: &[T]) -> io::Result<()> {
    // SAFETY: setsockopt(2) reads exactly `size_of_val(value)` bytes from a live slice.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            option,
            value.as_ptr().cast(),
            std::mem::size_of_val(value) as libc::socklen_t,
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

    fn crafted() -> CraftedSyn {
        CraftedSyn {
            port: 40_002,
            isn: 77,
            tsval: 500,
        }
    }

    fn local() -> SocketAddr {
        "198.51.100.10:42000".parse().unwrap()
    }

    fn peer_syn() -> SegmentRepr {
        SegmentRepr::syn("203.0.113.1:40002".parse().unwrap(), local(), 63, 1000, 5)
    }

    #[test]
    fn the_syn_ack_answers_the_peer_syn_with_our_isn_and_no_timestamps() {
        let handshake = Handshake::new(local(), &peer_syn(), crafted());
        let answer = handshake.syn_ack();
        assert_eq!(answer.kind(), SegmentKind::SynAck);
        assert_eq!((answer.seq, answer.ack), (77, 1001));
        assert_eq!((answer.src, answer.dst), (local(), peer_syn().src));
        assert_eq!(answer.options.timestamps, None);
        assert!(answer.options.sack_permitted);
        assert_eq!(answer.options.window_scale, Some(7));
        let bare = SegmentRepr {
            options: SynOptions::default(),
            ..peer_syn()
        };
        let crafted = CraftedSyn {
            isn: u32::MAX,
            ..crafted()
        };
        let answer = Handshake::new(local(), &bare, crafted).syn_ack();
        assert_eq!((answer.seq, answer.ack), (u32::MAX, 1001));
        assert!(!answer.options.sack_permitted && answer.options.window_scale.is_none());
    }

    #[test]
    fn the_final_ack_continues_both_sequences_and_our_timestamps() {
        let peer_syn_ack = SegmentRepr {
            flags: TcpFlags::SYN | TcpFlags::ACK,
            ack: 78,
            options: SynOptions::linux(1460, 9000),
            ..peer_syn()
        };
        let ack = Handshake::new(local(), &peer_syn_ack, crafted()).final_ack();
        assert_eq!(ack.kind(), SegmentKind::Other);
        assert_eq!(ack.flags, TcpFlags::ACK);
        assert_eq!((ack.seq, ack.ack), (78, 1001));
        assert_eq!(ack.options.timestamps, Some((500, 9000)));
        assert_eq!(ack.window, 64_240 >> 7);
        assert_eq!(ack.options.mss, None);
    }
}
