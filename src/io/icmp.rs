//! ICMP errors on UDP sockets. With IP_RECVERR (IPV6_RECVERR) the kernel queues every ICMP
//! error about a socket's packets on the socket's error queue, with the quoted packet's
//! destination, its payload and the host that sent the error, for connected and unconnected
//! sockets alike. Without it an unconnected socket hears nothing at all, and a connected one
//! only a bare errno on its next call. [`read_errors`] drains the queue; what an error means
//! is decided by [`crate::core::unreachable`].
//!
//! With the option on, any ICMP error (even "fragmentation needed") also makes the socket's
//! next send or receive fail once with its errno: callers treat such a failure as "look at the
//! error queue", never as a broken socket.

use std::io;
use std::mem::{size_of, size_of_val, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, RawFd};

use crate::core::unreachable::{Icmp, IcmpError};

/// Largest quote kept: a STUN header is 20 bytes, a whole request rarely 100.
const MAX_QUOTE: usize = 512;

/// Errors read from one queue in one go at most (each ICMP error is queued once).
const MAX_QUEUED: usize = 64;

/// Asks the kernel to queue ICMP errors on `socket` (see the module doc).
pub fn enable(socket: &impl AsRawFd, ipv6: bool) -> io::Result<()> {
    set_recverr(socket, ipv6, true)
}

/// Stops queueing ICMP errors on `socket` and drops those queued, before the socket goes to
/// code that does not read the error queue (the punch): queued errors count against the
/// receive buffer, so a queue left to fill would crowd out the datagrams that matter.
pub fn disable(socket: &impl AsFd, ipv6: bool) -> io::Result<()> {
    let fd = socket.as_fd();
    set_recverr(&fd, ipv6, false)?;
    read_errors(fd.as_raw_fd());
    // The last error's errno would still fail the next call once: SO_ERROR reads and clears it.
    socket2::SockRef::from(&fd).take_error()?;
    Ok(())
}

fn set_recverr(socket: &impl AsRawFd, ipv6: bool, on: bool) -> io::Result<()> {
    let (level, name) = if ipv6 {
        (libc::SOL_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::SOL_IP, libc::IP_RECVERR)
    };
    let on = libc::c_int::from(on);
    // SAFETY: setsockopt(2) with a pointer to a c_int that lives across the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One ICMP error taken off a socket's error queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub icmp: Icmp,
    pub icmp_type: u8,
    pub code: u8,
    pub offender: Option<IpAddr>,
    pub to: SocketAddr,
    pub quote: Vec<u8>,
}

impl Queued {
    /// The error as the core judges it.
    pub fn as_error(&self) -> IcmpError<'_> {
        IcmpError {
            icmp: self.icmp,
            icmp_type: self.icmp_type,
            code: self.code,
            offender: self.offender,
            to: self.to,
            quote: &self.quote,
        }
    }
}

/// Every ICMP error queued on `fd` (non-blocking; an empty list when there is none). Entries
/// that are not ICMP errors (a local error, say) are dropped.
pub fn read_errors(fd: RawFd) -> Vec<Queued> {
    let mut queued = Vec::new();
    for _ in 0..MAX_QUEUED {
        match read_one(fd) {
            Ok(Some(Some(error))) => queued.push(error),
            Ok(Some(None)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    queued
}

/// One entry of the error queue: `None` when it is empty, `Some(None)` for an entry that is
/// not an ICMP error.
fn read_one(fd: RawFd) -> io::Result<Option<Option<Queued>>> {
    let mut quote = [0u8; MAX_QUOTE];
    // u64s, so that the control buffer is aligned for cmsghdr.
    let mut control = [0u64; 64];
    let mut name = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut iov = libc::iovec {
        iov_base: quote.as_mut_ptr().cast(),
        iov_len: quote.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty one; its pointers are filled in below and
    // point at buffers that outlive the recvmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = name.as_mut_ptr().cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control) as _;
    let len = loop {
        // SAFETY: recvmsg(2) on a descriptor we were given, into the buffers set up above.
        let rc = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        if rc >= 0 {
            break rc as usize;
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(err),
        }
    };
    // SAFETY: the kernel wrote msg_namelen bytes of a socket address into `name`.
    let to = unsafe { socket2::SockAddr::new(name.assume_init(), msg.msg_namelen) }.as_socket();
    let Some(to) = to else {
        return Ok(Some(None));
    };
    let extended = extended_errors(&msg);
    let quote = quote[..len.min(MAX_QUOTE)].to_vec();
    Ok(Some(extended.into_iter().find_map(|bytes| {
        let (icmp, icmp_type, code, offender) = parse_extended_err(&bytes)?;
        Some(Queued {
            icmp,
            icmp_type,
            code,
            offender,
            to,
            quote: quote.clone(),
        })
    })))
}

/// The data of every IP_RECVERR / IPV6_RECVERR control message of `msg`.
fn extended_errors(msg: &libc::msghdr) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled, within
    // msg_controllen; each data slice ends where its cmsg_len says.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            let recverr = (header.cmsg_level == libc::SOL_IP
                && header.cmsg_type == libc::IP_RECVERR)
                || (header.cmsg_level == libc::SOL_IPV6 && header.cmsg_type == libc::IPV6_RECVERR);
            if recverr {
                let data = libc::CMSG_DATA(cmsg);
                let offset = data as usize - cmsg as usize;
                let len = (header.cmsg_len as usize).saturating_sub(offset);
                found.push(std::slice::from_raw_parts(data, len).to_vec());
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    found
}

/// Reads a `struct sock_extended_err` and the offender's address after it (SO_EE_OFFENDER):
/// `None` unless it came from ICMP or ICMPv6.
fn parse_extended_err(bytes: &[u8]) -> Option<(Icmp, u8, u8, Option<IpAddr>)> {
    let header = size_of::<libc::sock_extended_err>();
    let (&origin, &icmp_type, &code) = (bytes.get(4)?, bytes.get(5)?, bytes.get(6)?);
    let icmp = match origin {
        libc::SO_EE_ORIGIN_ICMP => Icmp::V4,
        libc::SO_EE_ORIGIN_ICMP6 => Icmp::V6,
        _ => return None,
    };
    Some((
        icmp,
        icmp_type,
        code,
        offender(&bytes[header.min(bytes.len())..]),
    ))
}

/// The IP of a `sockaddr_in` / `sockaddr_in6` in native layout; `None` for AF_UNSPEC.
fn offender(sockaddr: &[u8]) -> Option<IpAddr> {
    let family = u16::from_ne_bytes(sockaddr.get(..2)?.try_into().ok()?);
    match i32::from(family) {
        libc::AF_INET => {
            let octets: [u8; 4] = sockaddr.get(4..8)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(octets)))
        }
        libc::AF_INET6 => {
            let octets: [u8; 16] = sockaddr.get(8..24)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    fn extended(origin: u8, icmp_type: u8, code: u8, offender: &[u8]) -> Vec<u8> {
        let mut bytes = libc::ECONNREFUSED.to_ne_bytes().to_vec();
        bytes.extend_from_slice(&[origin, icmp_type, code, 0]);
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(offender);
        bytes
    }

    #[test]
    fn extended_errors_are_read_with_their_offender() {
        let mut v4 = (libc::AF_INET as u16).to_ne_bytes().to_vec();
        v4.extend_from_slice(&[0, 0, 192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            parse_extended_err(&extended(libc::SO_EE_ORIGIN_ICMP, 3, 3, &v4)),
            Some((Icmp::V4, 3, 3, Some("192.0.2.1".parse().unwrap())))
        );
        let mut v6 = (libc::AF_INET6 as u16).to_ne_bytes().to_vec();
        v6.extend_from_slice(&[0; 6]);
        v6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[0; 4]);
        assert_eq!(
            parse_extended_err(&extended(libc::SO_EE_ORIGIN_ICMP6, 1, 4, &v6)),
            Some((Icmp::V6, 1, 4, Some("2001:db8::1".parse().unwrap())))
        );
        let unspecified = [0u8; 16];
        assert_eq!(
            parse_extended_err(&extended(libc::SO_EE_ORIGIN_ICMP, 3, 1, &unspecified)),
            Some((Icmp::V4, 3, 1, None))
        );
        assert_eq!(
            parse_extended_err(&extended(libc::SO_EE_ORIGIN_LOCAL, 0, 0, &unspecified)),
            None
        );
        assert_eq!(parse_extended_err(&[0; 3]), None);
    }

    /// A datagram to a closed loopback port comes back as a queued port unreachable, quoting
    /// what was sent, on an unconnected socket.
    #[test]
    fn a_closed_loopback_port_queues_a_port_unreachable() {
        let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = closed.local_addr().unwrap();
        drop(closed);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable(&socket, false).unwrap();
        socket.send_to(b"natlens probe", to).unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        let queued = loop {
            let queued = read_errors(socket.as_raw_fd());
            if !queued.is_empty() || Instant::now() > deadline {
                break queued;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(queued.len(), 1, "{queued:?}");
        let error = &queued[0];
        assert_eq!((error.icmp, error.icmp_type, error.code), (Icmp::V4, 3, 3));
        assert_eq!(error.to, to);
        assert_eq!(error.offender, Some(to.ip()));
        assert_eq!(error.quote, b"natlens probe");
        assert!(read_errors(socket.as_raw_fd()).is_empty(), "read once");
    }

    /// A socket handed on with the option off queues nothing more, and what was queued is gone.
    #[test]
    fn a_disabled_socket_queues_nothing() {
        let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = closed.local_addr().unwrap();
        drop(closed);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable(&socket, false).unwrap();
        socket.send_to(b"first", to).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        disable(&socket, false).unwrap();
        assert!(read_errors(socket.as_raw_fd()).is_empty(), "drained");
        socket.send_to(b"second", to).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(read_errors(socket.as_raw_fd()).is_empty(), "not queued");
    }
}
