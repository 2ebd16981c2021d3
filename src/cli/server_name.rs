//! A server as people write it on the command line (`--server`, `--link`): a host name or an IP
//! literal, with or without a port, resolved once while the command line is parsed.
//!
//! Resolving at parse time keeps the rest of natlens on one `SocketAddr` (the drivers never see
//! a name) and makes a name that does not resolve what it is to the user: a bad value, reported
//! by clap with exit status 2 before anything is sent.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

pub use crate::io::raw_tcp::Family;

/// The port assumed when none is given: STUN's (RFC 8489), which `natlens server` listens on
/// by default.
pub const DEFAULT_PORT: u16 = 3478;

/// Looks a host name up: every address of `name`, each with `port`.
pub type Lookup<'a> = &'a dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>>;

/// A server as given on the command line and the one address natlens talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerName {
    /// What was given, as typed (`stun.lab.example`, `[::1]:3478`, `127.0.0.1`).
    pub text: String,
    /// The address every packet goes to.
    pub addr: SocketAddr,
    /// Every address a name resolved to, in the resolver's order; empty for an IP literal
    /// (nothing was looked up).
    pub resolved: Vec<SocketAddr>,
}

impl ServerName {
    /// clap's value parser: parses `HOST[:PORT]` and resolves a name with the system resolver.
    pub fn parse(text: &str) -> Result<ServerName, String> {
        ServerName::parse_with(text, &system_lookup, &has_route)
    }

    /// [`ServerName::parse`] with the resolver and the route check passed in (tests fake both).
    pub fn parse_with(
        text: &str,
        lookup: Lookup<'_>,
        routed: &dyn Fn(SocketAddr) -> bool,
    ) -> Result<ServerName, String> {
        let (host, port) = split(text)?;
        let (addr, resolved) = match host {
            Host::Ip(ip) => (SocketAddr::new(ip, port), Vec::new()),
            Host::Name(name) => {
                let resolved = resolve(name, port, lookup)?;
                (choose(&resolved, routed), resolved)
            }
        };
        Ok(ServerName {
            text: text.to_owned(),
            addr,
            resolved,
        })
    }

    /// True when the server was given by name (and [`ServerName::resolved`] says to what).
    pub fn is_name(&self) -> bool {
        !self.resolved.is_empty()
    }

    /// The address to use over `family`: [`ServerName::addr`] when it is of that family, else
    /// the first address of that family the name resolved to (the resolver's order, RFC 6724);
    /// `None` when the server has no address of that family (an IP literal of the other
    /// family, or a name without such an address). Lets a command probe or punch over both
    /// families of one dual-stack name.
    pub fn addr_of_family(&self, family: Family) -> Option<SocketAddr> {
        if Family::of(self.addr.ip()) == family {
            return Some(self.addr);
        }
        self.resolved
            .iter()
            .find(|addr| Family::of(addr.ip()) == family)
            .copied()
    }
}

/// A name with the address it stands for (`localhost:3478 (127.0.0.1:3478)`); an IP literal
/// as the address it is.
impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_name() {
            write!(f, "{} ({})", self.text, self.addr)
        } else {
            write!(f, "{}", self.addr)
        }
    }
}

/// The host part of `HOST[:PORT]`.
#[derive(Debug, PartialEq, Eq)]
enum Host<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

/// Splits `HOST[:PORT]`: `[v6]`, `[v6]:port`, a bare IPv4 or IPv6 literal, `v4:port`, `name`,
/// `name:port`. More than one colon without brackets is an IPv6 address without a port.
fn split(text: &str) -> Result<(Host<'_>, u16), String> {
    if text.is_empty() {
        return Err("an empty server: give HOST or HOST:PORT".into());
    }
    if let Some(bracketed) = text.strip_prefix('[') {
        return split_bracketed(bracketed);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok((Host::Ip(ip), DEFAULT_PORT));
    }
    let (host, port) = match text.split_once(':') {
        Some((host, port)) => (host, parse_port(port)?),
        None => (text, DEFAULT_PORT),
    };
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok((Host::Ip(IpAddr::V4(ip)), port));
    }
    if host.is_empty() {
        return Err("no host before the `:`".into());
    }
    validate_host_name(host)?;
    Ok((Host::Name(host), port))
}

/// `[v6]` or `[v6]:port`, `bracketed` being what follows the `[`.
fn split_bracketed(bracketed: &str) -> Result<(Host<'_>, u16), String> {
    let (inside, after) = bracketed
        .split_once(']')
        .ok_or_else(|| "the IPv6 address has no closing `]`".to_string())?;
    let ip: Ipv6Addr = inside
        .parse()
        .map_err(|_| format!("`{inside}` is not an IPv6 address"))?;
    let port = match after {
        "" => DEFAULT_PORT,
        _ => match after.strip_prefix(':') {
            Some(port) => parse_port(port)?,
            None => return Err("write [IPV6]:PORT".into()),
        },
    };
    Ok((Host::Ip(IpAddr::V6(ip)), port))
}

/// A server's port: 1 to 65535 (0 asks the kernel for any port, which no server listens on).
fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(0) => Err("port 0 is no server's port; use 1 to 65535".into()),
        Err(_) if port.is_empty() => Err("no port after the `:`".into()),
        Ok(port) => Ok(port),
        Err(_) if port.contains(':') => {
            Err("an IPv6 address with a port goes in brackets, [IPV6]:PORT".into())
        }
        Err(_) => Err(format!("`{port}` is not a port (1 to 65535)")),
    }
}

/// A host name by RFC 1123 (letters, digits, `-`, and `_` which some internal names carry;
/// labels of 1 to 63 characters; one trailing dot allowed), refused before any lookup so that
/// a typo is not sent to a DNS server. A name whose last label is all digits is a mistyped
/// IPv4 address: no top-level domain is numeric.
fn validate_host_name(host: &str) -> Result<(), String> {
    let bare = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let numeric_end = bare
        .rsplit('.')
        .next()
        .is_some_and(|last| last.chars().all(|c| c.is_ascii_digit()));
    if bare.is_empty() || bare.len() > 253 || !bare.split('.').all(label_ok) || numeric_end {
        return Err(format!("`{host}` is neither an IP address nor a host name"));
    }
    Ok(())
}

/// Every address of `name`. Names under `.invalid` are answered here without asking anyone:
/// RFC 6761 reserves them never to resolve, so a query could only leak them to a DNS server.
fn resolve(name: &str, port: u16, lookup: Lookup<'_>) -> Result<Vec<SocketAddr>, String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    let tld = bare.rsplit('.').next().unwrap_or(bare);
    if tld.eq_ignore_ascii_case("invalid") {
        return Err(format!(
            "`{name}` does not resolve (names under .invalid never do)"
        ));
    }
    let resolved = lookup(name, port).map_err(|e| format!("`{name}` does not resolve: {e}"))?;
    if resolved.is_empty() {
        return Err(format!("`{name}` does not resolve: no address"));
    }
    Ok(resolved)
}

/// The one address natlens uses of a name's several: the first IPv4 one this host has a route
/// to, else the first such IPv6 one, else the first IPv4 (or IPv6) one at all (the run then
/// fails with the usual "cannot reach"). IPv4 first because a STUN server's IPv4 address is the
/// one NAT fingerprinting is about; within a family the resolver's order (RFC 6724) stands, so
/// the same answer always gives the same choice.
fn choose(resolved: &[SocketAddr], routed: &dyn Fn(SocketAddr) -> bool) -> SocketAddr {
    let v4_first = || {
        let v4 = resolved.iter().filter(|a| a.is_ipv4());
        v4.chain(resolved.iter().filter(|a| a.is_ipv6())).copied()
    };
    v4_first()
        .find(|addr| routed(*addr))
        .or_else(|| v4_first().next())
        .expect("resolve returns at least one address")
}

/// The system resolver (getaddrinfo: /etc/hosts, then DNS), A and AAAA; for a name under a
/// top-level domain RFC 6761 reserves for documentation and testing (`.example`, `.test`), the
/// hosts file only. Such names never exist in the public DNS, so a query for one could only
/// leak to whatever DNS server the host uses; a lab or a test names them in /etc/hosts.
fn system_lookup(name: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if is_reserved_for_testing(name) {
        let hosts = std::fs::read_to_string(HOSTS_FILE).unwrap_or_default();
        return Ok(hosts_file_lookup(&hosts, name, port));
    }
    Ok((name, port).to_socket_addrs()?.collect())
}

const HOSTS_FILE: &str = "/etc/hosts";

/// True for names under `.example` or `.test` (RFC 6761 sections 6.2 and 6.5).
fn is_reserved_for_testing(name: &str) -> bool {
    let bare = name.strip_suffix('.').unwrap_or(name);
    let tld = bare.rsplit('.').next().unwrap_or(bare);
    tld.eq_ignore_ascii_case("example") || tld.eq_ignore_ascii_case("test")
}

/// Every address `hosts` (the text of a hosts(5) file) gives `name`, in file order.
fn hosts_file_lookup(hosts: &str, name: &str, port: u16) -> Vec<SocketAddr> {
    let wanted = name.strip_suffix('.').unwrap_or(name);
    hosts
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let ip: IpAddr = fields.next()?.parse().ok()?;
            let mut names = fields;
            names
                .any(|alias| alias.eq_ignore_ascii_case(wanted))
                .then(|| SocketAddr::new(ip, port))
        })
        .collect()
}

/// True when the kernel has a route to `addr` (a lookup only: nothing is sent).
fn has_route(addr: SocketAddr) -> bool {
    crate::io::route::local_ip_toward(addr).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn reserved_names_are_looked_up_in_the_hosts_file_only() {
        assert!(is_reserved_for_testing("stun.lab.example"));
        assert!(is_reserved_for_testing("stun.Lab.TEST."));
        assert!(!is_reserved_for_testing("localhost"));
        assert!(!is_reserved_for_testing("stun.examples"));
        let hosts = "127.0.0.1 localhost\n\
                     # 192.0.2.9 stun.lab.example (a comment)\n\
                     192.0.2.1\tgw.lab.example stun.lab.example # the lab's server\n\
                     2001:db8::1 stun.lab.example\n";
        assert_eq!(
            hosts_file_lookup(hosts, "STUN.lab.example.", 3478),
            [addr("192.0.2.1:3478"), addr("[2001:db8::1]:3478")]
        );
        assert!(hosts_file_lookup(hosts, "other.lab.example", 3478).is_empty());
        // Not in the hosts file: does not resolve, and no DNS server was asked.
        let err = ServerName::parse_with(
            "nowhere.lab.example",
            &|name, port| Ok(hosts_file_lookup(hosts, name, port)),
            &|_| true,
        )
        .unwrap_err();
        assert_eq!(err, "`nowhere.lab.example` does not resolve: no address");
    }

    /// A resolver that knows two names and fails for the rest (nothing leaves the test).
    fn fake_lookup(name: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let ips: &[&str] = match name {
            "stun.lab.example" | "stun.lab.example." => &["2001:db8::1", "192.0.2.1", "192.0.2.2"],
            "v6only.lab.example" => &["2001:db8::7"],
            "empty.lab.example" => &[],
            _ => return Err(io::Error::other("Name or service not known")),
        };
        Ok(ips
            .iter()
            .map(|ip| SocketAddr::new(ip.parse().unwrap(), port))
            .collect())
    }

    fn parse(text: &str) -> Result<ServerName, String> {
        ServerName::parse_with(text, &fake_lookup, &|_| true)
    }

    fn parsed(text: &str) -> SocketAddr {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}")).addr
    }

    #[test]
    fn ip_literals_with_and_without_a_port() {
        assert_eq!(parsed("192.0.2.1"), addr("192.0.2.1:3478"));
        assert_eq!(parsed("192.0.2.1:5349"), addr("192.0.2.1:5349"));
        assert_eq!(parsed("[2001:db8::1]"), addr("[2001:db8::1]:3478"));
        assert_eq!(parsed("[2001:db8::1]:5349"), addr("[2001:db8::1]:5349"));
        assert_eq!(parsed("[::1]"), addr("[::1]:3478"));
        // More than one colon without brackets: an IPv6 address, no port.
        assert_eq!(parsed("2001:db8::1"), addr("[2001:db8::1]:3478"));
        assert_eq!(parsed("::1"), addr("[::1]:3478"));
        let literal = parse("192.0.2.1").unwrap();
        assert!(!literal.is_name());
        assert_eq!(literal.to_string(), "192.0.2.1:3478");
    }

    #[test]
    fn names_resolve_ipv4_first_in_the_resolver_order() {
        let name = parse("stun.lab.example").unwrap();
        assert_eq!(name.addr, addr("192.0.2.1:3478"));
        assert_eq!(name.resolved.len(), 3);
        assert!(name.is_name());
        assert_eq!(name.to_string(), "stun.lab.example (192.0.2.1:3478)");
        assert_eq!(parsed("stun.lab.example:5349"), addr("192.0.2.1:5349"));
        assert_eq!(parsed("stun.lab.example."), addr("192.0.2.1:3478"));
        assert_eq!(parsed("v6only.lab.example"), addr("[2001:db8::7]:3478"));
    }

    #[test]
    fn each_family_has_its_own_address() {
        let both = parse("stun.lab.example:5349").unwrap();
        assert_eq!(
            both.addr_of_family(Family::V4),
            Some(addr("192.0.2.1:5349"))
        );
        assert_eq!(
            both.addr_of_family(Family::V6),
            Some(addr("[2001:db8::1]:5349"))
        );
        let v6_only = parse("v6only.lab.example").unwrap();
        assert_eq!(v6_only.addr_of_family(Family::V4), None);
        let literal = parse("192.0.2.7").unwrap();
        assert_eq!(
            literal.addr_of_family(Family::V4),
            Some(addr("192.0.2.7:3478"))
        );
        assert_eq!(literal.addr_of_family(Family::V6), None);
        // The chosen address stands for its family even when the resolver listed another first.
        let v6_routed =
            ServerName::parse_with("stun.lab.example", &fake_lookup, &|a| a.is_ipv6()).unwrap();
        assert_eq!(v6_routed.addr_of_family(Family::V6), Some(v6_routed.addr));
    }

    #[test]
    fn a_family_without_a_route_is_passed_over() {
        let v6_only = |a: SocketAddr| a.is_ipv6();
        let name = ServerName::parse_with("stun.lab.example", &fake_lookup, &v6_only).unwrap();
        assert_eq!(name.addr, addr("[2001:db8::1]:3478"));
        let nowhere = ServerName::parse_with("stun.lab.example", &fake_lookup, &|_| false);
        assert_eq!(nowhere.unwrap().addr, addr("192.0.2.1:3478"));
    }

    #[test]
    fn a_name_that_does_not_resolve_is_named() {
        assert_eq!(
            parse("nosuch.lab.example:3478").unwrap_err(),
            "`nosuch.lab.example` does not resolve: Name or service not known"
        );
        assert_eq!(
            parse("empty.lab.example").unwrap_err(),
            "`empty.lab.example` does not resolve: no address"
        );
        // Not even asked: the fake resolver would have failed with another message.
        assert_eq!(
            ServerName::parse("stun.invalid").unwrap_err(),
            "`stun.invalid` does not resolve (names under .invalid never do)"
        );
    }

    #[test]
    fn bad_ports_and_bad_hosts_are_refused() {
        for (text, error) in [
            ("", "an empty server: give HOST or HOST:PORT"),
            ("192.0.2.1:0", "port 0 is no server's port; use 1 to 65535"),
            ("[::1]:0", "port 0 is no server's port; use 1 to 65535"),
            (
                "stun.lab.example:0",
                "port 0 is no server's port; use 1 to 65535",
            ),
            ("192.0.2.1:65536", "`65536` is not a port (1 to 65535)"),
            ("192.0.2.1:", "no port after the `:`"),
            ("stun.lab.example:http", "`http` is not a port (1 to 65535)"),
            ("[::1", "the IPv6 address has no closing `]`"),
            ("[::1]3478", "write [IPV6]:PORT"),
            (
                "[stun.lab.example]",
                "`stun.lab.example` is not an IPv6 address",
            ),
            (
                "2001:db8::1:port",
                "an IPv6 address with a port goes in brackets, [IPV6]:PORT",
            ),
            (":3478", "no host before the `:`"),
            (
                "stun lab.example",
                "`stun lab.example` is neither an IP address nor a host name",
            ),
            ("a..b", "`a..b` is neither an IP address nor a host name"),
            (
                "-stun.lab.example",
                "`-stun.lab.example` is neither an IP address nor a host name",
            ),
            (
                "192.0.2.300",
                "`192.0.2.300` is neither an IP address nor a host name",
            ),
        ] {
            assert_eq!(parse(text).unwrap_err(), error, "{text:?}");
        }
        let long_label = format!("{}.lab.example", "a".repeat(64));
        assert!(parse(&long_label).is_err());
    }

    /// The system resolver answers `localhost` from /etc/hosts: no DNS query.
    #[test]
    fn localhost_resolves_to_loopback() {
        let name = ServerName::parse("localhost:3479").unwrap();
        assert!(name.addr.ip().is_loopback(), "{name}");
        assert_eq!(name.addr.port(), 3479);
        assert!(name.is_name());
    }
}
