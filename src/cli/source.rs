//! `--bind ADDR[:PORT]` and `--interface NAME`: where `nat`, `login`, `listen` and `call` send
//! from (applied by `io::source`).

use std::net::{IpAddr, SocketAddr};

use clap::Args;

use crate::io::source::Source;

#[derive(Debug, Clone, Default, Args)]
pub struct SourceArgs {
    /// Send from this address of this host (as stunclient's --localaddr): an IP, with an
    /// optional port; an IPv6 address with a port goes in brackets, [2001:db8::2]:40000. The
    /// port, when given, goes to one socket: `nat`'s mapping socket (the one whose public
    /// address is reported, over UDP and TCP alike), the session socket of `login`, `listen`
    /// and `call`; every other socket (allocation samples, the punch) takes a fresh port on the
    /// same address. An address this host does not have fails (EADDRNOTAVAIL); one of the
    /// other IP version than the server is a usage error.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = parse_bind)]
    pub bind: Option<BindAddr>,

    /// Send through this network interface whatever the routing table prefers
    /// (SO_BINDTODEVICE on every socket). Linux asks for CAP_NET_RAW: run as root or give the
    /// binary the capability (setcap cap_net_raw+ep).
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
}

/// `--bind`'s value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindAddr {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

/// Parses `IP`, `IP:PORT`, `[IPv6]:PORT` or a bare IPv6 address; port 0 is refused (leave the
/// port out for any port).
pub fn parse_bind(text: &str) -> Result<BindAddr, String> {
    let text = text.trim();
    let (ip, port) = if let Ok(ip) = text.parse::<IpAddr>() {
        (ip, None)
    } else {
        let addr: SocketAddr = text
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or IP:PORT"))?;
        (addr.ip(), Some(addr.port()))
    };
    if port == Some(0) {
        return Err(format!(
            "`{text}`: port 0 is any port; leave the port out instead"
        ));
    }
    Ok(BindAddr { ip, port })
}

impl SourceArgs {
    /// The source the sockets apply.
    pub fn source(&self) -> Source {
        Source {
            ip: self.bind.map(|bind| bind.ip),
            port: self.bind.and_then(|bind| bind.port),
            interface: self.interface.clone(),
        }
    }

    /// The source for talking to `server`: a --bind address of the other IP version is a
    /// usage error (exit status 2), reported the way clap reports one.
    pub fn source_toward(&self, server: SocketAddr) -> Source {
        if let Some(bind) = self.bind {
            if bind.ip.is_ipv4() != server.is_ipv4() {
                use clap::CommandFactory;
                crate::cli::Cli::command()
                    .error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!(
                            "--bind {} and the server {server} are of different IP versions",
                            bind.ip
                        ),
                    )
                    .exit();
            }
        }
        self.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_takes_an_ip_with_an_optional_port() {
        let parse = |text| parse_bind(text).map(|b| (b.ip.to_string(), b.port));
        assert_eq!(parse("127.0.0.2"), Ok(("127.0.0.2".into(), None)));
        assert_eq!(
            parse("127.0.0.2:4000"),
            Ok(("127.0.0.2".into(), Some(4000)))
        );
        assert_eq!(parse("::1"), Ok(("::1".into(), None)));
        assert_eq!(
            parse("[2001:db8::2]:40000"),
            Ok(("2001:db8::2".into(), Some(40000)))
        );
        assert!(parse("127.0.0.2:0").unwrap_err().contains("port 0"));
        assert!(parse("localhost").is_err());
        assert!(parse("127.0.0.2:70000").is_err());
    }
}
