//! The local transport addresses of natlens's sockets, which decide what the live capture keeps.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use super::frame::{Flow, Proto};

/// Addresses registered as sockets are bound. None is ever removed: a run is short, and a port
/// natlens used and closed is rarely taken by another program within it.
#[derive(Debug, Default)]
pub struct Watched {
    endpoints: Mutex<Vec<(Proto, SocketAddr)>>,
}

impl Watched {
    pub fn add(&self, proto: Proto, local: SocketAddr) {
        let local = SocketAddr::new(canonical(local.ip()), local.port());
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        if !endpoints.contains(&(proto, local)) {
            endpoints.push((proto, local));
        }
    }

    /// True when `addr` is one of natlens's `proto` sockets.
    pub fn owns(&self, proto: Proto, addr: SocketAddr) -> bool {
        let endpoints = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        endpoints
            .iter()
            .any(|&(p, local)| p == proto && owns(local, addr))
    }

    /// True when either end of `flow` is one of natlens's sockets. A socket bound to the
    /// wildcard address owns its port on every address.
    pub fn claims(&self, flow: &Flow) -> bool {
        let endpoints = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        endpoints.iter().any(|&(proto, local)| {
            proto == flow.proto && (owns(local, flow.src) || owns(local, flow.dst))
        })
    }
}

fn owns(local: SocketAddr, addr: SocketAddr) -> bool {
    local.port() == addr.port()
        && (local.ip().is_unspecified() || local.ip() == canonical(addr.ip()))
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is on the wire.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(proto: Proto, src: &str, dst: &str) -> Flow {
        Flow {
            proto,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
        }
    }

    #[test]
    fn a_socket_claims_what_it_sends_and_receives_and_nothing_else() {
        let watched = Watched::default();
        watched.add(Proto::Udp, "192.0.2.1:4000".parse().unwrap());
        assert!(watched.claims(&flow(Proto::Udp, "192.0.2.1:4000", "198.51.100.2:3478")));
        assert!(watched.claims(&flow(Proto::Udp, "198.51.100.2:3478", "192.0.2.1:4000")));
        assert!(!watched.claims(&flow(Proto::Tcp, "192.0.2.1:4000", "198.51.100.2:3478")));
        assert!(!watched.claims(&flow(Proto::Udp, "192.0.2.9:4000", "198.51.100.2:3478")));
        assert!(!watched.claims(&flow(Proto::Udp, "192.0.2.1:4001", "198.51.100.2:3478")));
    }

    #[test]
    fn a_wildcard_socket_owns_its_port_on_every_address() {
        let watched = Watched::default();
        watched.add(Proto::Tcp, "[::ffff:0.0.0.0]:5000".parse().unwrap());
        watched.add(Proto::Tcp, "0.0.0.0:5001".parse().unwrap());
        assert!(watched.claims(&flow(Proto::Tcp, "203.0.113.5:5001", "198.51.100.2:80")));
        assert!(watched.claims(&flow(Proto::Tcp, "198.51.100.2:80", "[2001:db8::1]:5000")));
    }
}
