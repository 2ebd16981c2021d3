//! NAT-PMP (RFC 6886) client: the external address, and mapping requests and deletions.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::time::Duration;

use anyhow::{anyhow, bail};

use super::exchange::{exchange, Answered};
use super::gateway::Gateway;
use crate::core::port_mapping::ProtocolProbe;
use crate::core::Transport;
use crate::wire::natpmp::{self, RequestRepr, ResponseBody, ResponseRepr, ResultCode};

/// An answer to an external-address request.
struct External {
    result: ResultCode,
    epoch: u32,
    address: Option<Ipv4Addr>,
}

fn socket_toward(gateway: &Gateway) -> std::io::Result<UdpSocket> {
    UdpSocket::bind((gateway.local_ip, 0))
}

fn ask_external(
    socket: &UdpSocket,
    gateway: &Gateway,
    budget: Duration,
) -> std::io::Result<Answered<External>> {
    let request = RequestRepr::ExternalAddress.to_bytes();
    exchange(socket, gateway.pmp, &request, budget, |bytes| {
        let response = ResponseRepr::parse(bytes).ok()?;
        match response.body {
            ResponseBody::ExternalAddress(address) => Some(External {
                result: response.result,
                epoch: response.epoch,
                address: Some(address),
            }),
            ResponseBody::HeadOnly { opcode: 128 } => Some(External {
                result: response.result,
                epoch: response.epoch,
                address: None,
            }),
            _ => None,
        }
    })
}

/// The probe: one external-address request.
pub fn probe(gateway: &Gateway, budget: Duration) -> ProtocolProbe {
    let mut probe = ProtocolProbe::default();
    let answered = match socket_toward(gateway).and_then(|s| ask_external(&s, gateway, budget)) {
        Ok(answered) => answered,
        Err(e) => {
            probe.error = Some(format!("NAT-PMP request failed: {e}"));
            return probe;
        }
    };
    probe.ignored = answered.ignored;
    let Some(external) = answered.answer else {
        probe.error = Some(format!(
            "no NAT-PMP answer within {} ms",
            budget.as_millis()
        ));
        return probe;
    };
    probe.present = true;
    probe.version = Some(natpmp::VERSION);
    probe.epoch = Some(external.epoch);
    if external.result == ResultCode::Success {
        probe.external_address = external.address.map(IpAddr::V4);
    } else {
        probe.result = Some(external.result.name());
    }
    probe
}

/// A mapping NAT-PMP granted.
pub struct Granted {
    pub external_address: Ipv4Addr,
    pub external_port: u16,
    pub lifetime_secs: u32,
}

/// Asks for `internal_port` (the same external port suggested) for `lifetime_secs`.
pub fn map(
    gateway: &Gateway,
    transport: Transport,
    internal_port: u16,
    lifetime_secs: u32,
    budget: Duration,
) -> anyhow::Result<Granted> {
    let socket = socket_toward(gateway)?;
    let external = ask_external(&socket, gateway, budget)?
        .answer
        .ok_or_else(|| anyhow!("no NAT-PMP answer from {}", gateway.pmp))?;
    let external_address = match (external.result, external.address) {
        (ResultCode::Success, Some(address)) => address,
        (result, _) => bail!("NAT-PMP external address: {}", result.name()),
    };
    let (external_port, lifetime_secs) = send_map(
        &socket,
        gateway,
        transport,
        internal_port,
        internal_port,
        lifetime_secs,
        budget,
    )?;
    Ok(Granted {
        external_address,
        external_port,
        lifetime_secs,
    })
}

/// Deletes the mapping of `internal_port` (lifetime 0, external port 0: RFC 6886 §3.4).
pub fn unmap(
    gateway: &Gateway,
    transport: Transport,
    internal_port: u16,
    budget: Duration,
) -> anyhow::Result<()> {
    let socket = socket_toward(gateway)?;
    send_map(&socket, gateway, transport, internal_port, 0, 0, budget)?;
    Ok(())
}

/// One map request; the granted (external port, lifetime).
fn send_map(
    socket: &UdpSocket,
    gateway: &Gateway,
    transport: Transport,
    internal_port: u16,
    suggested_external_port: u16,
    lifetime_secs: u32,
    budget: Duration,
) -> anyhow::Result<(u16, u32)> {
    let request = RequestRepr::Map {
        transport,
        internal_port,
        suggested_external_port,
        lifetime_secs,
    };
    let answered = exchange(socket, gateway.pmp, &request.to_bytes(), budget, |bytes| {
        let response = ResponseRepr::parse(bytes).ok()?;
        match response.body {
            ResponseBody::Map {
                transport: t,
                internal_port: port,
                external_port,
                lifetime_secs,
            } if t == transport && port == internal_port => {
                Some((response.result, external_port, lifetime_secs))
            }
            ResponseBody::HeadOnly { opcode } if opcode == 128 + request.to_bytes()[1] => {
                Some((response.result, 0, 0))
            }
            _ => None,
        }
    })?;
    match answered.answer {
        Some((ResultCode::Success, port, lifetime)) => Ok((port, lifetime)),
        Some((result, _, _)) => bail!("NAT-PMP refused the mapping: {}", result.name()),
        None => bail!("no NAT-PMP answer from {}", gateway.pmp),
    }
}
