//! Raw sockets for crafted TCP SYNs ([`crate::wire::tcp_syn`]): the fan-out that opens our own
//! NAT toward the far ports the peer's SYN may come from, and a sniffer that notices the peer's
//! answer on those 4-tuples.
//!
//! A crafted SYN fixes our side's sequence space for its 4-tuple in our NAT's conntrack (Linux
//! tracks TCP windows: `nf_conntrack_tcp_be_liberal=0`). So the socket that carries the
//! connection on that tuple must continue from the crafted ISN; a listener answering with its
//! own ISN is marked INVALID by our own NAT and dropped. [`crate::io::adopt`] makes such a
//! socket (TCP_REPAIR) when the sniffer sees the peer's SYN or SYN-ACK on a crafted tuple. The
//! kernel's own `connect()` still sends the SYN to the predicted port, never crafted: a crafted
//! SYN there would race the kernel's on the same tuple.
//!
//! Opening needs CAP_NET_RAW. [`RawTcp::open`] turns EPERM/EACCES into
//! [`RawTcpError::NoCapability`], whose message is the one line natlens prints before falling
//! back to plain simultaneous open. [`RawTcp::open_then_drop_caps`] opens first and then drops
//! the calling thread's capabilities ([`crate::io::caps`]).

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::RngCore;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::io::caps;
use crate::wire::tcp_syn::{Segment, SegmentRepr};

/// What natlens prints (after `natlens: `) when it cannot open a raw socket.
pub const NO_CAP_NET_RAW: &str = "sending crafted SYNs needs CAP_NET_RAW: run as root or grant it \
with 'sudo setcap cap_net_raw+ep $(command -v natlens)'; falling back to plain simultaneous open";

/// How often to retry a send the kernel refused for lack of buffer space (ENOBUFS) before
/// giving up on that SYN: a full qdisc drains in well under this many milliseconds.
const ENOBUFS_RETRIES: u32 = 20;

/// Why a raw socket could not be opened.
#[derive(Debug)]
pub enum RawTcpError {
    /// EPERM or EACCES: the process lacks CAP_NET_RAW.
    NoCapability,
    /// Anything else (no IPv6 in this kernel, out of descriptors…).
    Io(io::Error),
}

impl fmt::Display for RawTcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawTcpError::NoCapability => f.write_str(NO_CAP_NET_RAW),
            RawTcpError::Io(err) => write!(f, "opening a raw socket for crafted SYNs: {err}"),
        }
    }
}

impl std::error::Error for RawTcpError {}

impl From<io::Error> for RawTcpError {
    fn from(err: io::Error) -> Self {
        match err.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => RawTcpError::NoCapability,
            _ => RawTcpError::Io(err),
        }
    }
}

/// IP family of a raw socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// Two raw sockets: one that sends whole IP packets (we write the IP header: TTL and all),
/// one that sees a copy of every TCP segment delivered to this host (to notice the peer's SYN
/// on a 4-tuple that a crafted SYN opened, see [`crate::io::adopt`]).
#[derive(Debug)]
pub struct RawTcp {
    socket: Socket,
    sniffer: Socket,
    family: Family,
}

/// A fan-out of crafted SYNs: from our punched port to one peer address, many far ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fanout {
    /// Our side: the LAN address the kernel would use toward the peer ([`source_ip_for`]) and
    /// the punched port.
    pub local: SocketAddr,
    /// The peer's public address.
    pub peer_ip: IpAddr,
    /// The far ports to open holes toward. Leave out the port the kernel `connect()`s to:
    /// a crafted SYN there would race the kernel's own on the same 4-tuple.
    pub ports: Vec<u16>,
    /// TTL / hop limit: enough to cross our NAT, too few to reach the far one (`--syn-ttl`);
    /// 64 for SYNs that go all the way.
    pub hop_limit: u8,
    /// Send no faster than this many SYNs per second (at least 1).
    pub rate_pps: u32,
}

/// One crafted SYN of a fan-out: where it went and the sequence space it opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CraftedSyn {
    /// The far port.
    pub port: u16,
    /// Its initial sequence number.
    pub isn: u32,
    /// Its TSval (timestamps option).
    pub tsval: u32,
}

/// What a fan-out did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutReport {
    /// SYNs handed to the kernel.
    pub sent: usize,
    /// Every SYN sent: a connection adopted on its 4-tuple must continue from its ISN and
    /// timestamp ([`crate::io::adopt`]).
    pub syns: Vec<CraftedSyn>,
    /// Far ports whose SYN could not be sent, with the error.
    pub failed: Vec<(u16, String)>,
    pub elapsed: Duration,
    /// True when the stop flag ended the fan-out early.
    pub stopped: bool,
}

impl RawTcp {
    /// Opens a raw socket that takes whole IP packets: IPv4 `IPPROTO_RAW` (which implies
    /// `IP_HDRINCL`), IPv6 `IPPROTO_RAW` (which Linux treats as `IPV6_HDRINCL`).
    pub fn open(family: Family) -> Result<RawTcp, RawTcpError> {
        let domain = match family {
            Family::V4 => Domain::IPV4,
            Family::V6 => Domain::IPV6,
        };
        let socket = Socket::new(domain, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))?;
        // Outgoing only: a raw IPPROTO_RAW socket receives nothing, and must not block a
        // punch on a full send queue.
        socket.set_nonblocking(true)?;
        let sniffer = Socket::new(domain, Type::RAW, Some(Protocol::TCP))?;
        sniffer.set_nonblocking(true)?;
        Ok(RawTcp {
            socket,
            sniffer,
            family,
        })
    }

    /// Opens the raw sockets, then drops every capability of the calling thread except those
    /// in `keep` (bits `1 << cap`; see [`crate::io::caps`] for what stays possible afterwards).
    /// Keep [`caps::CAP_NET_ADMIN`] to adopt connections on crafted 4-tuples
    /// ([`crate::io::adopt`] needs TCP_REPAIR); 0 drops everything.
    pub fn open_then_drop_caps(family: Family, keep: u64) -> Result<RawTcp, RawTcpError> {
        let raw = RawTcp::open(family)?;
        caps::keep_only(keep).map_err(RawTcpError::Io)?;
        Ok(raw)
    }

    /// Sends the crafted segments out of device `name` only (SO_BINDTODEVICE, --interface).
    pub fn bind_device(&self, name: &str) -> io::Result<()> {
        self.socket.bind_device(Some(name.as_bytes()))
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// The sniffer's descriptor, to poll it for readability.
    pub fn sniffer_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.sniffer.as_raw_fd()
    }

    /// The next TCP segment delivered to this host from `peer_ip`, if one is queued.
    ///
    /// `local_ip` stands in for the destination of IPv6 segments, whose raw copies come
    /// without the IP header.
    pub fn recv_from(&self, peer_ip: IpAddr, local_ip: IpAddr) -> io::Result<Option<SegmentRepr>> {
        let mut buf = [0u8; 1600];
        loop {
            // SAFETY: recvfrom(2) into a buffer and an address storage we own, with their sizes.
            let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut from_len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            let n = unsafe {
                libc::recvfrom(
                    self.sniffer_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_storage).cast(),
                    &mut from_len,
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(err),
                };
            }
            let packet = &buf[..n as usize];
            let segment = match self.family {
                Family::V4 => Segment::new_checked(packet).map(|s| SegmentRepr::parse(&s)),
                Family::V6 => {
                    // SAFETY: the kernel wrote a sockaddr_in6 for an AF_INET6 raw socket.
                    let from6 = unsafe { *(&from as *const _ as *const libc::sockaddr_in6) };
                    let src = IpAddr::from(from6.sin6_addr.s6_addr);
                    let with_header = ipv6_header(src, local_ip, packet);
                    Segment::new_checked(&with_header[..]).map(|s| SegmentRepr::parse(&s))
                }
            };
            match segment {
                Ok(segment) if segment.src.ip() == peer_ip => return Ok(Some(segment)),
                _ => continue,
            }
        }
    }

    /// Sends one crafted segment.
    pub fn send(&self, segment: &SegmentRepr) -> io::Result<()> {
        let mut buf = [0u8; 128];
        let len = segment
            .emit(&mut buf)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        if Family::of(segment.dst.ip()) != self.family {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "segment family differs from the raw socket's",
            ));
        }
        // The port must be 0 for a raw socket (IPv6 would read it as a protocol number).
        let to = SockAddr::from(SocketAddr::new(segment.dst.ip(), 0));
        let mut retries = 0;
        loop {
            match self.socket.send_to(&buf[..len], &to) {
                Ok(_) => return Ok(()),
                Err(err) if is_full(&err) && retries < ENOBUFS_RETRIES => {
                    retries += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Sends one SYN per far port, paced to `rate_pps`, each with a random ISN and timestamp.
    /// A `stop` flag that goes up ends the fan-out early.
    pub fn send_fanout(
        &self,
        fanout: &Fanout,
        stop: Option<&AtomicBool>,
        rng: &mut dyn RngCore,
    ) -> FanoutReport {
        self.send_fanout_filing(fanout, stop, rng, &mut |_| {})
    }

    /// [`RawTcp::send_fanout`], handing each SYN's record to `file` just before the SYN
    /// leaves: a sniffer on another thread can then adopt an answer while the fan-out is still
    /// going (the answer can only follow its SYN, so its record is always there first).
    pub fn send_fanout_filing(
        &self,
        fanout: &Fanout,
        stop: Option<&AtomicBool>,
        rng: &mut dyn RngCore,
        file: &mut dyn FnMut(CraftedSyn),
    ) -> FanoutReport {
        let interval = Duration::from_secs_f64(1.0 / f64::from(fanout.rate_pps.max(1)));
        let start = Instant::now();
        let mut report = FanoutReport {
            sent: 0,
            syns: Vec::new(),
            failed: Vec::new(),
            elapsed: Duration::ZERO,
            stopped: false,
        };
        for (i, &port) in fanout.ports.iter().enumerate() {
            if stop.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
                report.stopped = true;
                break;
            }
            pace(start + interval.saturating_mul(i as u32));
            let (syn, crafted) = craft_syn(
                fanout.local,
                SocketAddr::new(fanout.peer_ip, port),
                fanout.hop_limit,
                rng,
            );
            file(crafted);
            match self.send(&syn) {
                Ok(()) => {
                    report.sent += 1;
                    report.syns.push(crafted);
                }
                Err(err) => report.failed.push((port, err.to_string())),
            }
        }
        report.elapsed = start.elapsed();
        report
    }
}

/// A SYN from `local` to `peer` with an ISN and timestamp drawn from `rng`, and the record an
/// adoption on its 4-tuple needs. Made before it is sent, so a record can be filed first: the
/// answer may come back before a send call returns.
pub fn craft_syn(
    local: SocketAddr,
    peer: SocketAddr,
    hop_limit: u8,
    rng: &mut dyn RngCore,
) -> (SegmentRepr, CraftedSyn) {
    // Even TSval: an adopted socket continues from it, and Linux 6.7+ reads the low bit of a
    // TCP_TIMESTAMP value as "microsecond timestamps" (see adopt).
    syn_with(local, peer, hop_limit, rng.next_u32(), rng.next_u32() & !1)
}

/// A SYN from `local` to `peer` with the given ISN and TSval (even: see [`craft_syn`]), and
/// its record.
pub fn syn_with(
    local: SocketAddr,
    peer: SocketAddr,
    hop_limit: u8,
    isn: u32,
    tsval: u32,
) -> (SegmentRepr, CraftedSyn) {
    let syn = SegmentRepr::syn(local, peer, hop_limit, isn, tsval);
    let crafted = CraftedSyn {
        port: peer.port(),
        isn: syn.seq,
        tsval: tsval_of(&syn),
    };
    (syn, crafted)
}

fn tsval_of(syn: &SegmentRepr) -> u32 {
    syn.options.timestamps.map_or(0, |(tsval, _)| tsval)
}

/// An IPv6 header in front of a TCP segment received without one.
fn ipv6_header(src: IpAddr, dst: IpAddr, tcp: &[u8]) -> Vec<u8> {
    let octets = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.octets(),
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
    };
    let mut packet = vec![0x60, 0, 0, 0];
    packet.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    packet.extend_from_slice(&[6, 64]);
    packet.extend_from_slice(&octets(src));
    packet.extend_from_slice(&octets(dst));
    packet.extend_from_slice(tcp);
    packet
}

/// Sleeps until `due` if it is still ahead: a cap on the rate, never a burst to catch up.
fn pace(due: Instant) {
    let now = Instant::now();
    if due > now {
        std::thread::sleep(due - now);
    }
}

fn is_full(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN))
}

/// The local address the kernel would send from toward `peer` (routing lookup only: a UDP
/// `connect()` sends nothing, so it costs no NAT mapping).
pub fn source_ip_for(peer: IpAddr) -> io::Result<IpAddr> {
    crate::io::route::local_ip_toward(SocketAddr::new(peer, 9))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eperm_and_eacces_mean_no_capability() {
        for errno in [libc::EPERM, libc::EACCES] {
            let err = RawTcpError::from(io::Error::from_raw_os_error(errno));
            assert!(matches!(err, RawTcpError::NoCapability));
            assert_eq!(format!("natlens: {err}").lines().count(), 1);
        }
        let other = RawTcpError::from(io::Error::from_raw_os_error(libc::EAFNOSUPPORT));
        assert!(matches!(other, RawTcpError::Io(_)));
    }

    #[test]
    fn the_hint_is_one_line_with_the_setcap_command() {
        assert!(!NO_CAP_NET_RAW.contains('\n'));
        assert!(NO_CAP_NET_RAW.contains("sudo setcap cap_net_raw+ep $(command -v natlens)"));
        assert!(NO_CAP_NET_RAW.ends_with("falling back to plain simultaneous open"));
    }

    #[test]
    fn source_ip_toward_loopback_is_loopback() {
        let ip = source_ip_for("127.0.0.1".parse().unwrap()).unwrap();
        assert!(ip.is_loopback());
    }
}
