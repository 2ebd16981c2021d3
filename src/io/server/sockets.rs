//! Binding the server's sockets: a UDP socket and a TCP listener on every address, the RFC 5780
//! full-mode set with `--alternate`, and their registration with epoll.

use std::io;
use std::net::SocketAddr;

use anyhow::{bail, Context};
use mio::net::{TcpListener, UdpSocket};
use mio::{Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use crate::core::binding::FullMode;
use crate::core::Transport;
use crate::io::udp_batch::SendBatch;

use super::{Listeners, Reporter, ServeOptions, UdpEndpoint, LISTENER_BASE};

/// A UDP socket and a TCP listener bound to the same address.
pub(super) type BoundPair = (UdpSocket, TcpListener, SocketAddr);

/// Socket buffers for the UDP sockets: absorbs bursts at 100k+ requests/s (the kernel caps it
/// at net.core.rmem_max unless run as root, which is fine).
const UDP_BUFFER: usize = 8 << 20;

/// Binds a UDP socket and a TCP listener on every `--listen` address, and for each
/// `--alternate` (one per IP family) the other three addresses of its RFC 5780 set.
pub(super) fn bind_all(options: &ServeOptions) -> anyhow::Result<(Vec<BoundPair>, Vec<FullMode>)> {
    one_alternate_per_family(&options.alternate)?;
    let mut bound = Vec::new();
    for addr in &options.listen {
        bound.push(bind_pair(*addr)?);
    }
    let mut full_modes = Vec::new();
    for &alternate in &options.alternate {
        let (full, extra) = full_mode(&options.listen, &bound, alternate)?;
        bound.extend(extra);
        full_modes.push(full);
    }
    Ok((bound, full_modes))
}

/// RFC 5780 pairs one alternate with one primary; two of one family would leave the server
/// unsure which OTHER-ADDRESS to name.
fn one_alternate_per_family(alternates: &[SocketAddr]) -> anyhow::Result<()> {
    for (i, first) in alternates.iter().enumerate() {
        if let Some(second) = alternates[i + 1..]
            .iter()
            .find(|other| other.is_ipv4() == first.is_ipv4())
        {
            let family = if first.is_ipv4() { "IPv4" } else { "IPv6" };
            bail!("--alternate {first} and {second}: give at most one --alternate per IP family ({family} twice)");
        }
    }
    Ok(())
}

/// Registers the bound sockets with epoll (UDP socket `i` as token `i`, its listener as
/// `LISTENER_BASE + i`) and reports each address listened on.
pub(super) fn watch_bound(
    poll: &Poll,
    bound: Vec<BoundPair>,
    full_modes: &[FullMode],
    reporter: &mut dyn Reporter,
) -> anyhow::Result<(Vec<UdpEndpoint>, Listeners)> {
    let mut udp = Vec::new();
    let mut listeners = Vec::new();
    for (i, (mut socket, mut listener, local)) in bound.into_iter().enumerate() {
        poll.registry()
            .register(&mut socket, Token(i), Interest::READABLE)?;
        poll.registry()
            .register(&mut listener, Token(LISTENER_BASE + i), Interest::READABLE)?;
        let full = full_modes.iter().find(|f| f.serves(&local));
        reporter.listening(Transport::Udp, local, full);
        reporter.listening(Transport::Tcp, local, full);
        udp.push(UdpEndpoint {
            socket,
            local,
            send: SendBatch::default(),
            backlog: false,
        });
        listeners.push((listener, local));
    }
    Ok((udp, listeners))
}

/// Binds UDP and TCP on the same address; with port 0, TCP takes the port UDP was given.
fn bind_pair(addr: SocketAddr) -> anyhow::Result<BoundPair> {
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last_error = None;
    for _ in 0..attempts {
        let udp = bind_udp(addr)?;
        let local = udp.local_addr()?;
        match bind_tcp(local) {
            Ok(listener) => {
                return Ok((
                    UdpSocket::from_std(udp),
                    TcpListener::from_std(listener),
                    local,
                ))
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(bind_error(
        "TCP",
        addr,
        last_error.expect("at least one attempt"),
    ))
}

fn new_socket(addr: SocketAddr, kind: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    if addr.is_ipv6() {
        // So that [::]:3478 and 0.0.0.0:3478 can both be given.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Asks for a large receive buffer: SO_RCVBUFFORCE when privileged (it ignores
/// net.core.rmem_max, often only 208 KiB), else SO_RCVBUF up to that cap.
fn set_receive_buffer(socket: &Socket, bytes: usize) {
    let value = bytes as libc::c_int;
    // SAFETY: setsockopt(2) on a socket we own, with a c_int value of the declared size.
    let forced = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if forced != 0 {
        let _ = socket.set_recv_buffer_size(bytes);
    }
}

/// Sends every IPv4 datagram with Don't Fragment set and the path MTU ignored
/// (IP_PMTUDISC_PROBE). The server's messages are a few hundred bytes at most, so DF never
/// bites; what it saves is the IP ID: an unconnected UDP socket that may fragment draws each
/// datagram's ID from a kernel-wide table hashed by destination (`__ip_select_ident`), a cache
/// miss per answer with a million clients (3.6% of the server's CPU during a million logins),
/// while a DF datagram carries ID 0 (RFC 6864).
fn set_dont_fragment(socket: &Socket) {
    let value: libc::c_int = libc::IP_PMTUDISC_PROBE;
    // SAFETY: setsockopt(2) on a socket we own, with a c_int value of the declared size.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn bind_udp(addr: SocketAddr) -> anyhow::Result<std::net::UdpSocket> {
    let socket = new_socket(addr, Type::DGRAM, Protocol::UDP).context("creating a UDP socket")?;
    set_receive_buffer(&socket, UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    if addr.is_ipv4() {
        set_dont_fragment(&socket);
    }
    socket
        .bind(&addr.into())
        .map_err(|err| bind_error("UDP", addr, err))?;
    Ok(socket.into())
}

/// A failed bind of `addr`, with the one hint that fits its cause.
pub(crate) fn bind_error(what: &str, addr: SocketAddr, err: io::Error) -> anyhow::Error {
    let context = match bind_hint(&err) {
        Some(hint) => format!("binding {what} {addr} ({hint})"),
        None => format!("binding {what} {addr}"),
    };
    anyhow::Error::new(err).context(context)
}

/// What a person can do about a bind that failed with `err`: another process holds the port,
/// the port is privileged, or the address is not this host's.
pub(crate) fn bind_hint(err: &io::Error) -> Option<&'static str> {
    match err.raw_os_error()? {
        libc::EADDRINUSE => Some("is another server using it? choose another address"),
        libc::EACCES => Some("a port below 1024 needs root or CAP_NET_BIND_SERVICE"),
        libc::EADDRNOTAVAIL => Some("not an address of this host"),
        _ => None,
    }
}

fn bind_tcp(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = new_socket(addr, Type::STREAM, Protocol::TCP)?;
    // Restarting the server must not wait for old connections in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Pairs `--alternate` with the first `--listen` of its family and binds the other three
/// addresses of the RFC 5780 set.
fn full_mode(
    listen: &[SocketAddr],
    bound: &[BoundPair],
    alternate: SocketAddr,
) -> anyhow::Result<(FullMode, Vec<BoundPair>)> {
    let Some(index) = listen
        .iter()
        .position(|addr| addr.is_ipv4() == alternate.is_ipv4())
    else {
        bail!("--alternate {alternate} needs a --listen address of the same IP family (each --alternate pairs with the first --listen of its family)");
    };
    let primary = bound[index].2;
    if primary.ip().is_unspecified() || alternate.ip().is_unspecified() {
        bail!("RFC 5780 full mode needs specific IPs: --listen {primary} and --alternate {alternate} must not be wildcards");
    }
    if primary.ip() == alternate.ip() || primary.port() == alternate.port() || alternate.port() == 0
    {
        bail!("--alternate {alternate} must differ from --listen {primary} in both IP and port (RFC 5780 §4.2)");
    }
    let full = FullMode { primary, alternate };
    let mut extra = Vec::new();
    for addr in full.addresses().into_iter().skip(1) {
        let (udp, tcp) = (
            bind_udp(addr)?,
            bind_tcp(addr).map_err(|err| bind_error("TCP", addr, err))?,
        );
        extra.push((UdpSocket::from_std(udp), TcpListener::from_std(tcp), addr));
    }
    Ok((full, extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(texts: &[&str]) -> Vec<SocketAddr> {
        texts.iter().map(|t| t.parse().unwrap()).collect()
    }

    #[test]
    fn one_alternate_per_family_is_accepted_two_of_one_are_not() {
        assert!(one_alternate_per_family(&addrs(&["192.0.2.2:3479"])).is_ok());
        assert!(
            one_alternate_per_family(&addrs(&["192.0.2.2:3479", "[2001:db8::2]:3479"])).is_ok()
        );
        let error = one_alternate_per_family(&addrs(&[
            "[2001:db8::2]:3479",
            "192.0.2.2:3479",
            "[2001:db8::3]:3479",
        ]))
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "--alternate [2001:db8::2]:3479 and [2001:db8::3]:3479: give at most one \
             --alternate per IP family (IPv6 twice)"
        );
    }
}
