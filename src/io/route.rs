//! The kernel's routing decision toward an address, asked without sending anything.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// The source IP the kernel routes toward `destination`: connecting a UDP socket looks the route
/// up and picks the source without sending a packet, so it costs no NAT mapping. An error means
/// no route.
pub fn local_ip_toward(destination: SocketAddr) -> io::Result<IpAddr> {
    let any: SocketAddr = match destination {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any)?;
    socket.connect(destination)?;
    Ok(socket.local_addr()?.ip())
}
