//! The default gateway: where NAT-PMP, PCP and UPnP IGD requests go.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::wire::natpmp;

/// SSDP's port (UPnP discovery).
pub const SSDP_PORT: u16 = 1900;

/// Where the port-mapping protocols are asked. The ports are fields so that tests can put a
/// fake gateway on loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gateway {
    /// NAT-PMP and PCP (UDP 5351).
    pub pmp: SocketAddr,
    /// SSDP unicast M-SEARCH (UDP 1900).
    pub ssdp: SocketAddr,
    /// This host's address toward the gateway (PCP's client address, a mapping's internal one).
    pub local_ip: IpAddr,
}

impl Gateway {
    /// The gateway at `ip` on the standard ports.
    pub fn at(ip: IpAddr) -> io::Result<Gateway> {
        let pmp = SocketAddr::new(ip, natpmp::SERVER_PORT);
        Ok(Gateway {
            pmp,
            ssdp: SocketAddr::new(ip, SSDP_PORT),
            local_ip: crate::io::route::local_ip_toward(pmp)?,
        })
    }

    /// The IPv4 default route's gateway (port mapping is an IPv4 NAT affair).
    pub fn default_route() -> io::Result<Gateway> {
        let table = std::fs::read_to_string("/proc/net/route")?;
        let ip = default_gateway_in(&table).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no IPv4 default route with a gateway",
            )
        })?;
        Gateway::at(IpAddr::V4(ip))
    }

    pub fn ip(&self) -> IpAddr {
        self.pmp.ip()
    }
}

/// The gateway the kernel's main table routes `server` through: `Ok(None)` when no gateway
/// stands between (a loopback or on-link server, whose packets never cross the gateway's NAT:
/// asking it would be asking a box that is not on the path, or one outside this machine for
/// nothing), and for IPv6, where there is no NAT to map through.
pub fn toward(server: IpAddr) -> io::Result<Option<Gateway>> {
    let IpAddr::V4(server) = server else {
        return Ok(None);
    };
    if server.is_loopback() {
        return Ok(None);
    }
    let table = std::fs::read_to_string("/proc/net/route")?;
    match gateway_toward_in(&table, server) {
        Some(ip) => Gateway::at(IpAddr::V4(ip)).map(Some),
        None => Ok(None),
    }
}

/// One row of /proc/net/route: destination, gateway, flags, mask.
fn routes(table: &str) -> impl Iterator<Item = (u32, Ipv4Addr, u32, u32)> + '_ {
    // Host byte order (little-endian here), like the default gateway above.
    let hex = |text: &str| u32::from_str_radix(text, 16).ok();
    let address = |raw: u32| Ipv4Addr::from(raw.to_le_bytes());
    table.lines().skip(1).filter_map(move |line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let destination = u32::from(address(hex(fields.get(1)?)?));
        let gateway = address(hex(fields.get(2)?)?);
        let flags = hex(fields.get(3)?)?;
        let mask = u32::from(address(hex(fields.get(7)?)?));
        Some((destination, gateway, flags, mask))
    })
}

/// The longest-prefix route's gateway toward `server`, if that route has one.
fn gateway_toward_in(table: &str, server: Ipv4Addr) -> Option<Ipv4Addr> {
    let server = u32::from(server);
    routes(table)
        .filter(|(destination, _, _, mask)| server & mask == destination & mask)
        .max_by_key(|(_, _, _, mask)| mask.count_ones())
        .filter(|(_, _, flags, _)| flags & RTF_GATEWAY != 0)
        .map(|(_, gateway, _, _)| gateway)
}

/// RTF_GATEWAY in /proc/net/route's flags.
const RTF_GATEWAY: u32 = 0x2;

/// The gateway of the first default route in /proc/net/route's text (addresses are hex in
/// host byte order, which is little-endian on every platform natlens runs on).
fn default_gateway_in(table: &str) -> Option<Ipv4Addr> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (destination, gateway, flags) = (fields.get(1)?, fields.get(2)?, fields.get(3)?);
        let flags = u32::from_str_radix(flags, 16).ok()?;
        if *destination != "00000000" || flags & RTF_GATEWAY == 0 {
            return None;
        }
        let raw = u32::from_str_radix(gateway, 16).ok()?;
        Some(Ipv4Addr::from(raw.to_le_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_default_route() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                     eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\n\
                     eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n";
        assert_eq!(default_gateway_in(table), Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(default_gateway_in("Iface\n"), None);
        assert_eq!(default_gateway_in("h\nx 00000000 zz 0003\n"), None);
        let server = |ip: &str| gateway_toward_in(table, ip.parse().unwrap());
        assert_eq!(server("203.0.113.10"), Some(Ipv4Addr::new(192, 0, 2, 1)));
        // On-link: the /24 route has no gateway.
        assert_eq!(server("10.0.2.7"), None);
    }
}
