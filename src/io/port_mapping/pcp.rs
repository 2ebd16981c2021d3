//! PCP (RFC 6887) client: ANNOUNCE, MAP and its deletion (the same nonce, lifetime 0).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};

use super::exchange::{exchange, Answered};
use super::gateway::Gateway;
use crate::core::port_mapping::ProtocolProbe;
use crate::core::Transport;
use crate::wire::pcp::{self, MapRepr, Opcode, RequestRepr, ResponseRepr, ResultCode};

/// Lifetime asked for the probe's MAP, deleted at once afterwards.
const PROBE_LIFETIME_SECS: u32 = 30;

fn protocol_number(transport: Transport) -> u8 {
    match transport {
        Transport::Udp => pcp::PROTOCOL_UDP,
        Transport::Tcp => pcp::PROTOCOL_TCP,
    }
}

/// A MAP request's answer.
pub struct MapAnswer {
    pub result: ResultCode,
    pub lifetime_secs: u32,
    pub epoch: u32,
    pub external: SocketAddr,
}

/// Sends a MAP for `internal` (its port, `gateway.local_ip` as the client address) and waits
/// for the answer carrying the same nonce, protocol and internal port.
pub fn send_map(
    gateway: &Gateway,
    transport: Transport,
    internal: SocketAddr,
    lifetime_secs: u32,
    nonce: pcp::Nonce,
    budget: Duration,
) -> anyhow::Result<Answered<MapAnswer>> {
    let socket = UdpSocket::bind((gateway.local_ip, 0))?;
    let map = MapRepr {
        nonce,
        protocol: protocol_number(transport),
        internal_port: internal.port(),
        external_port: if lifetime_secs == 0 {
            0
        } else {
            internal.port()
        },
        external_address: pcp::unspecified_v4(),
    };
    let request = RequestRepr {
        lifetime_secs,
        client_address: client_address(gateway, internal),
        map: Some(map),
    };
    Ok(exchange(
        &socket,
        gateway.pmp,
        &request.to_bytes(),
        budget,
        |bytes| {
            let response = ResponseRepr::parse(bytes).ok()?;
            if response.opcode != Opcode::Map {
                return None;
            }
            let answer_map = match response.map {
                Some(m)
                    if m.nonce == nonce
                        && m.internal_port == map.internal_port
                        && m.protocol == map.protocol =>
                {
                    m
                }
                Some(_) => return None,
                // An error answer too short to echo the payload is still the answer.
                None => MapRepr {
                    external_port: 0,
                    ..map
                },
            };
            Some(MapAnswer {
                result: response.result,
                lifetime_secs: response.lifetime_secs,
                epoch: response.epoch,
                external: SocketAddr::new(answer_map.external_address, answer_map.external_port),
            })
        },
    )?)
}

fn client_address(gateway: &Gateway, internal: SocketAddr) -> IpAddr {
    if internal.ip().is_unspecified() {
        gateway.local_ip
    } else {
        internal.ip()
    }
}

/// The probe: ANNOUNCE (is a PCP server there?), then a MAP for a socket of our own, deleted
/// at once, which yields the external address, the lifetime granted, and the result codes that
/// say the most (NOT_AUTHORIZED: present but refusing; ADDRESS_MISMATCH: a NAT in between).
pub fn probe(gateway: &Gateway, budget: Duration) -> ProtocolProbe {
    let start = Instant::now();
    let mut probe = ProtocolProbe::default();
    let announce = match announce(gateway, budget) {
        Ok(answered) => answered,
        Err(e) => {
            probe.error = Some(format!("PCP request failed: {e}"));
            return probe;
        }
    };
    probe.ignored = announce.ignored;
    let Some(response) = announce.answer else {
        probe.error = Some(format!("no PCP answer within {} ms", budget.as_millis()));
        return probe;
    };
    probe.present = true;
    probe.version = Some(pcp::VERSION);
    probe.epoch = Some(response.epoch);
    if response.result != ResultCode::Success {
        probe.result = Some(response.result.name());
        return probe;
    }
    map_probe(gateway, budget.saturating_sub(start.elapsed()), &mut probe);
    probe
}

fn announce(gateway: &Gateway, budget: Duration) -> anyhow::Result<Answered<ResponseRepr>> {
    let socket = UdpSocket::bind((gateway.local_ip, 0))?;
    let request = RequestRepr {
        lifetime_secs: 0,
        client_address: gateway.local_ip,
        map: None,
    };
    Ok(exchange(
        &socket,
        gateway.pmp,
        &request.to_bytes(),
        budget,
        |bytes| {
            ResponseRepr::parse(bytes)
                .ok()
                .filter(|r| r.opcode == Opcode::Announce)
        },
    )?)
}

fn map_probe(gateway: &Gateway, budget: Duration, probe: &mut ProtocolProbe) {
    // The port of a socket held for the while: the mapping points at nothing anyone else uses.
    let held = match UdpSocket::bind((gateway.local_ip, 0)).and_then(|s| Ok((s.local_addr()?, s))) {
        Ok(held) => held,
        Err(e) => {
            probe.error = Some(format!("PCP MAP probe: {e}"));
            return;
        }
    };
    let nonce = rand::random();
    let answered = match send_map(
        gateway,
        Transport::Udp,
        held.0,
        PROBE_LIFETIME_SECS,
        nonce,
        budget,
    ) {
        Ok(answered) => answered,
        Err(e) => {
            probe.error = Some(format!("PCP MAP probe: {e}"));
            return;
        }
    };
    probe.ignored += answered.ignored;
    let Some(answer) = answered.answer else {
        probe.error = Some("no answer to the PCP MAP probe".into());
        return;
    };
    probe.epoch = Some(answer.epoch);
    if answer.result != ResultCode::Success {
        probe.result = Some(answer.result.name());
        return;
    }
    probe.external_address = Some(answer.external.ip());
    probe.lifetime_s = Some(answer.lifetime_secs);
    if let Err(e) = unmap(gateway, Transport::Udp, held.0, nonce, budget) {
        probe.error = Some(format!("the PCP MAP probe's mapping was not deleted: {e}"));
    }
}

/// A mapping for `internal`; Ok only on SUCCESS.
pub fn map(
    gateway: &Gateway,
    transport: Transport,
    internal: SocketAddr,
    lifetime_secs: u32,
    nonce: pcp::Nonce,
    budget: Duration,
) -> anyhow::Result<MapAnswer> {
    let answer = send_map(gateway, transport, internal, lifetime_secs, nonce, budget)?
        .answer
        .ok_or_else(|| anyhow!("no PCP answer from {}", gateway.pmp))?;
    if answer.result != ResultCode::Success {
        bail!("PCP refused the mapping: {}", answer.result.name());
    }
    Ok(answer)
}

/// Deletes a mapping: the same MAP with lifetime 0 and the nonce that created it.
pub fn unmap(
    gateway: &Gateway,
    transport: Transport,
    internal: SocketAddr,
    nonce: pcp::Nonce,
    budget: Duration,
) -> anyhow::Result<()> {
    map(gateway, transport, internal, 0, nonce, budget).map(|_| ())
}
