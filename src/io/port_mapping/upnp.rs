//! UPnP IGD client through the `igd-next` crate (SSDP, the device description, SOAP): an
//! M-SEARCH unicast to the gateway's port 1900 first (multicast discovery is unreliable in
//! network namespaces and on some Wi-Fi), then the usual multicast one; GetExternalIPAddress;
//! AddPortMapping / DeletePortMapping.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use igd_next::{PortMappingProtocol, SearchOptions};

use super::gateway::Gateway;
use crate::core::port_mapping::ProtocolProbe;
use crate::core::Transport;

/// SSDP's multicast group and port.
const SSDP_MULTICAST: &str = "239.255.255.250:1900";
/// Largest device description read (miniupnpd's is about 3 KB).
const MAX_DESCRIPTION: u64 = 64 * 1024;
/// The WAN connection services igd-next drives, in the order it picks them.
const SERVICES: [&str; 3] = [
    "WANIPConnection:2",
    "WANIPConnection:1",
    "WANPPPConnection:1",
];

/// A gateway found by SSDP, with what its description says.
pub struct Found {
    pub device: igd_next::Gateway,
    /// `WANIPConnection:1` etc.; `None` when the description could not be read again.
    pub service: Option<String>,
    /// InternetGatewayDevice version.
    pub version: Option<u8>,
}

/// Finds the gateway's IGD within `budget`: unicast, then multicast with what is left.
pub fn discover(gateway: &Gateway, budget: Duration) -> anyhow::Result<Found> {
    discover_noting(gateway, budget, &AtomicBool::new(false))
}

/// [`discover`], setting `answered` at the first SSDP answer.
fn discover_noting(
    gateway: &Gateway,
    budget: Duration,
    answered: &AtomicBool,
) -> anyhow::Result<Found> {
    let start = Instant::now();
    let search = |to: SocketAddr, timeout: Duration| {
        igd_next::search_gateway(SearchOptions {
            bind_addr: SocketAddr::new(gateway.local_ip, 0),
            broadcast_address: to,
            timeout: Some(timeout),
            single_search_timeout: Some(timeout),
        })
    };
    // A closed unicast port proves nothing: miniupnpd on Linux binds its SSDP socket to the
    // multicast group itself, so a unicast M-SEARCH to the gateway's own address gets ICMP port
    // unreachable from a gateway that speaks UPnP. Multicast decides then.
    let unicast = match ssdp_port_state(gateway, budget / 2) {
        SsdpPort::Answers => {
            answered.store(true, Ordering::Relaxed);
            search(gateway.ssdp, budget / 2)
        }
        SsdpPort::Closed | SsdpPort::Silent => Err(igd_next::SearchError::NoResponseWithinTimeout),
    };
    let device = match unicast {
        Ok(device) => device,
        Err(_) => {
            let left = budget.saturating_sub(start.elapsed());
            let multicast = SSDP_MULTICAST.parse().expect("a socket address");
            search(multicast, left.max(Duration::from_millis(1)))
                .map_err(|e| anyhow!("no UPnP IGD answered SSDP: {e}"))?
        }
    };
    answered.store(true, Ordering::Relaxed);
    let description = read_description(
        device.addr,
        &device.root_url,
        budget.saturating_sub(start.elapsed()),
    )
    .unwrap_or_default();
    Ok(Found {
        service: service_in(&description),
        version: device_version_in(&description),
        device,
    })
}

/// igd-next's M-SEARCH for an InternetGatewayDevice (its own text is private).
const M_SEARCH: &str = "M-SEARCH * HTTP/1.1\r\nHost:239.255.255.250:1900\r\n\
    ST:urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nMan:\"ssdp:discover\"\r\nMX:3\r\n\r\n";

/// What the gateway's SSDP port did with a unicast M-SEARCH.
enum SsdpPort {
    /// Something answered: igd-next's unicast search will find it.
    Answers,
    /// ICMP port unreachable: no unicast SSDP listener (there may be a multicast one).
    Closed,
    /// Nothing within the wait: try multicast.
    Silent,
}

/// One unicast M-SEARCH on a connected socket (so an ICMP port unreachable is reported): an
/// absent IGD costs a round trip instead of the whole budget, which igd-next's unconnected
/// search socket would wait out.
fn ssdp_port_state(gateway: &Gateway, wait: Duration) -> SsdpPort {
    let ask = || -> std::io::Result<usize> {
        let socket = std::net::UdpSocket::bind((gateway.local_ip, 0))?;
        socket.connect(gateway.ssdp)?;
        socket.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        socket.send(M_SEARCH.as_bytes())?;
        socket.recv(&mut [0u8; 2048])
    };
    match ask() {
        Ok(_) => SsdpPort::Answers,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => SsdpPort::Closed,
        Err(_) => SsdpPort::Silent,
    }
}

/// The probe: discovery and GetExternalIPAddress.
pub fn probe(gateway: &Gateway, budget: Duration) -> ProtocolProbe {
    probe_noting_discovery(gateway, budget, &AtomicBool::new(false))
}

/// [`probe`], setting `answered` at the gateway's first SSDP answer: from then on the rest
/// (a second M-SEARCH through igd-next, the description, SOAP) is worth waiting for.
pub fn probe_noting_discovery(
    gateway: &Gateway,
    budget: Duration,
    answered: &AtomicBool,
) -> ProtocolProbe {
    let mut probe = ProtocolProbe::default();
    let found = match discover_noting(gateway, budget, answered) {
        Ok(found) => found,
        Err(e) => {
            probe.error = Some(e.to_string());
            return probe;
        }
    };
    probe.present = true;
    probe.version = found.version;
    probe.service = found.service;
    match found.device.get_external_ip() {
        Ok(ip) => probe.external_address = Some(ip),
        Err(e) => probe.error = Some(format!("GetExternalIPAddress: {e}")),
    }
    probe
}

fn protocol(transport: Transport) -> PortMappingProtocol {
    match transport {
        Transport::Udp => PortMappingProtocol::UDP,
        Transport::Tcp => PortMappingProtocol::TCP,
    }
}

/// AddPortMapping for `internal` on the same external port, or any port when that one is taken.
pub fn map(
    gateway: &Gateway,
    transport: Transport,
    internal: SocketAddr,
    lifetime_secs: u32,
    budget: Duration,
) -> anyhow::Result<(igd_next::Gateway, SocketAddr)> {
    let device = discover(gateway, budget)?.device;
    let external_ip = device.get_external_ip().context("GetExternalIPAddress")?;
    let description = "natlens";
    let port = match device.add_port(
        protocol(transport),
        internal.port(),
        internal,
        lifetime_secs,
        description,
    ) {
        Ok(()) => internal.port(),
        Err(_) => device
            .add_any_port(protocol(transport), internal, lifetime_secs, description)
            .context("AddPortMapping")?,
    };
    Ok((device, SocketAddr::new(external_ip, port)))
}

/// DeletePortMapping; a mapping that is gone already is not an error.
pub fn unmap(
    device: &igd_next::Gateway,
    transport: Transport,
    external_port: u16,
) -> anyhow::Result<()> {
    match device.remove_port(protocol(transport), external_port) {
        Ok(()) | Err(igd_next::RemovePortError::NoSuchPortMapping) => Ok(()),
        Err(e) => Err(anyhow!("DeletePortMapping: {e}")),
    }
}

/// GETs the device description (igd-next reads it but keeps only the control URLs), at most
/// [`MAX_DESCRIPTION`] bytes within `budget`.
fn read_description(device: SocketAddr, path: &str, budget: Duration) -> std::io::Result<String> {
    let budget = budget.max(Duration::from_millis(20));
    let mut stream = TcpStream::connect_timeout(&device, budget)?;
    stream.set_read_timeout(Some(budget))?;
    stream.set_write_timeout(Some(budget))?;
    let host = match device.ip() {
        IpAddr::V4(_) => device.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]:{}", device.port()),
    };
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = Vec::new();
    stream.take(MAX_DESCRIPTION).read_to_end(&mut body)?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The first WAN connection service the description lists.
fn service_in(description: &str) -> Option<String> {
    SERVICES
        .iter()
        .filter_map(|service| {
            let position = description.find(&format!("urn:schemas-upnp-org:service:{service}"))?;
            Some((position, service))
        })
        .min()
        .map(|(_, service)| service.to_string())
}

/// N in `urn:schemas-upnp-org:device:InternetGatewayDevice:N`.
fn device_version_in(description: &str) -> Option<u8> {
    const DEVICE: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:";
    let start = description.find(DEVICE)? + DEVICE.len();
    let digits: String = description[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_names_service_and_version() {
        let description =
            "<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType>\
             <serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType>\
             <serviceType>urn:schemas-upnp-org:service:WANPPPConnection:1</serviceType>";
        assert_eq!(
            service_in(description).as_deref(),
            Some("WANIPConnection:2")
        );
        assert_eq!(device_version_in(description), Some(2));
        assert_eq!(service_in("garbage"), None);
        assert_eq!(
            device_version_in("urn:schemas-upnp-org:device:InternetGatewayDevice:x"),
            None
        );
    }
}
