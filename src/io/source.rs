//! Where natlens sends from: `--bind ADDR[:PORT]` and `--interface NAME`, applied to every
//! socket before it binds or connects.
//!
//! - `--interface` binds each socket to the device (SO_BINDTODEVICE), so its packets leave
//!   through that interface whatever the routing table prefers. Linux asks for CAP_NET_RAW.
//! - `--bind` fixes the source IP; its port, when given, goes to one socket only (which one is
//!   the command's to say: `nat`'s mapping socket, `login`'s session socket, the punch socket
//!   of `listen` and `call`). Every other socket takes a fresh port on the same IP.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// The source a command's sockets use. The default is the kernel's choice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    /// --bind's address.
    pub ip: Option<IpAddr>,
    /// --bind's port: for the one socket that takes it ([`Source::port_free`] for the others).
    pub port: Option<u16>,
    /// --interface.
    pub interface: Option<String>,
}

impl Source {
    /// The same source with no port: for the sockets that take a fresh one.
    pub fn port_free(&self) -> Source {
        Source {
            port: None,
            ..self.clone()
        }
    }

    /// The local address to bind toward `peer`: --bind's IP (else the wildcard of the peer's
    /// family) and port (else 0).
    pub fn local_for(&self, peer: SocketAddr) -> io::Result<SocketAddr> {
        let ip = match self.ip {
            Some(ip) if ip.is_ipv4() != peer.is_ipv4() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("--bind {ip} and {peer} are of different IP versions"),
                ))
            }
            Some(ip) => ip,
            None if peer.is_ipv4() => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        Ok(SocketAddr::new(ip, self.port.unwrap_or(0)))
    }

    /// Binds `socket` to --interface's device, if any. Every socket creation path calls this
    /// (through [`Source::bind`] or directly) before it binds or connects.
    pub fn apply(&self, socket: &Socket) -> io::Result<()> {
        let Some(name) = &self.interface else {
            return Ok(());
        };
        socket
            .bind_device(Some(name.as_bytes()))
            .map_err(|err| interface_error(name, err))
    }

    /// Applies the interface to `socket` and binds it to [`Source::local_for`] `peer`.
    pub fn bind(&self, socket: &Socket, peer: SocketAddr) -> io::Result<()> {
        let local = self.local_for(peer)?;
        self.bind_at(socket, local.ip())
    }

    /// Applies the interface to `socket` and binds it to `ip` (the routed source IP a prober
    /// found, or --bind's) and this source's port, if any.
    pub fn bind_at(&self, socket: &Socket, ip: IpAddr) -> io::Result<()> {
        self.apply(socket)?;
        let local = SocketAddr::new(ip, self.port.unwrap_or(0));
        socket
            .bind(&local.into())
            .map_err(|err| bind_error(local, err))
    }

    /// A UDP socket bound from this source toward `peer` (blocking).
    pub fn udp_socket(&self, peer: SocketAddr) -> io::Result<Socket> {
        let socket = Socket::new(Domain::for_address(peer), Type::DGRAM, Some(Protocol::UDP))?;
        self.bind(&socket, peer)?;
        Ok(socket)
    }

    /// A TCP connection to `peer` from this source, within `timeout`.
    pub fn tcp_connect(&self, peer: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        let socket = Socket::new(Domain::for_address(peer), Type::STREAM, Some(Protocol::TCP))?;
        if self.port.is_some() {
            // A fixed port dialled again after a reset must not wait out TIME_WAIT.
            socket.set_reuse_address(true)?;
        }
        self.bind(&socket, peer)?;
        // Bound before the SYN leaves, so that a --pcap capture knows the port to keep.
        crate::io::pcap::watch_tcp(&socket);
        socket.connect_timeout(&peer.into(), timeout)?;
        crate::io::pcap::tcp_connected(&socket);
        Ok(socket.into())
    }

    /// The source IP toward `peer`: --bind's, else the kernel's routing choice (through
    /// --interface's device when given). Nothing is sent.
    pub fn local_ip_toward(&self, peer: SocketAddr) -> io::Result<IpAddr> {
        if let Some(ip) = self.ip {
            self.local_for(peer)?;
            return Ok(ip);
        }
        if self.interface.is_none() {
            return crate::io::route::local_ip_toward(peer);
        }
        let socket = self.port_free().udp_socket(peer)?;
        socket.connect(&peer.into())?;
        let local = socket.local_addr()?.as_socket();
        local
            .map(|local| local.ip())
            .ok_or_else(|| io::Error::other("not an IP socket"))
    }
}

/// A bind failure worded for --bind: EADDRNOTAVAIL is an address this host does not have.
fn bind_error(local: SocketAddr, err: io::Error) -> io::Error {
    let text = match err.raw_os_error() {
        Some(libc::EADDRNOTAVAIL) => format!(
            "cannot bind {local}: {} is not an address of this host (--bind)",
            local.ip()
        ),
        Some(libc::EADDRINUSE) => format!("cannot bind {local}: the port is in use (--bind)"),
        Some(libc::EACCES) => format!(
            "cannot bind {local}: a privileged port; run as root or give natlens \
             CAP_NET_BIND_SERVICE (--bind)"
        ),
        _ => return err,
    };
    io::Error::new(err.kind(), text)
}

/// An SO_BINDTODEVICE failure worded for --interface.
fn interface_error(name: &str, err: io::Error) -> io::Error {
    let text = match err.raw_os_error() {
        Some(libc::EPERM) => format!(
            "--interface {name} needs CAP_NET_RAW: run as root or `sudo setcap cap_net_raw+ep` \
             the natlens binary"
        ),
        Some(libc::ENODEV) => format!("--interface {name}: no such network interface"),
        _ => format!("--interface {name}: {err}"),
    };
    io::Error::new(err.kind(), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_goes_to_one_socket() {
        let source = Source {
            ip: Some("127.0.0.1".parse().unwrap()),
            port: Some(40000),
            interface: None,
        };
        let peer: SocketAddr = "127.0.0.1:3478".parse().unwrap();
        assert_eq!(
            source.local_for(peer).unwrap(),
            "127.0.0.1:40000".parse().unwrap()
        );
        assert_eq!(
            source.port_free().local_for(peer).unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        let v6: SocketAddr = "[2001:db8::1]:3478".parse().unwrap();
        assert!(source.local_for(v6).is_err());
        assert_eq!(
            Source::default().local_for(v6).unwrap(),
            "[::]:0".parse().unwrap()
        );
    }

    #[test]
    fn an_address_of_another_host_says_so() {
        // 192.0.2.1 (TEST-NET-1) is not configured on this host.
        let source = Source {
            ip: Some("192.0.2.1".parse().unwrap()),
            ..Source::default()
        };
        let err = source
            .udp_socket("192.0.2.2:3478".parse().unwrap())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("192.0.2.1 is not an address of this host"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_interface_is_named() {
        let source = Source {
            interface: Some("natlens-none0".into()),
            ..Source::default()
        };
        let err = source
            .udp_socket("127.0.0.1:3478".parse().unwrap())
            .unwrap_err();
        let text = err.to_string();
        // Root gets ENODEV; anyone else is refused before the name is looked up.
        assert!(
            text.contains("no such network interface") || text.contains("CAP_NET_RAW"),
            "{text}"
        );
    }
}
