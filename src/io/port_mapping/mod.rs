//! The port-mapping protocols a home gateway may speak — PCP (RFC 6887), NAT-PMP (RFC 6886),
//! UPnP IGD — asked the way `natlens nat` probes them (all three in parallel, within a LAN
//! budget) and the way a punch uses them (a mapping for one socket, deleted afterwards, on
//! Ctrl-C too).
//!
//! Answers from another address, malformed or oversized ones are ignored and counted (the
//! decoders in `wire::natpmp` and `wire::pcp` never panic); every wait has a deadline.

mod exchange;
#[cfg(test)]
mod fake_gateway_tests;
pub mod gateway;
mod guard;
pub mod pcp;
pub mod pmp;
pub mod probe;
pub mod prove;
mod trial;
pub mod upnp;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Context};

pub use crate::core::port_mapping::MappingProtocol;
use crate::core::Transport;
pub use gateway::Gateway;
pub use guard::LeaseGuard;
pub use probe::probe;

/// How long one request waits for the gateway's answer (a LAN gateway answers in
/// milliseconds; RFC 6886's 250 ms first retry is the whole budget here).
pub const REQUEST_BUDGET: Duration = Duration::from_millis(250);

/// A mapping the gateway granted.
#[derive(Debug, Clone)]
pub struct Lease {
    pub protocol: MappingProtocol,
    pub transport: Transport,
    /// The local socket the mapping forwards to (the host's address toward the gateway).
    pub internal: SocketAddr,
    /// The gateway's external address and the mapped port.
    pub external: SocketAddr,
    /// What the gateway granted (UPnP: what was asked; 0 would mean "until deleted").
    pub lifetime: Duration,
    /// The gateway that granted it.
    pub gateway: Gateway,
    /// How to delete it.
    handle: Handle,
}

/// What deleting a lease needs beyond its public fields.
#[derive(Debug, Clone)]
enum Handle {
    /// PCP deletes with the nonce that created the mapping.
    Pcp {
        nonce: crate::wire::pcp::Nonce,
    },
    NatPmp,
    Upnp {
        device: Box<igd_next::Gateway>,
    },
}

/// Asks the default gateway (PCP first, then NAT-PMP, then UPnP) for `internal`'s port.
pub fn request_mapping(
    transport: Transport,
    internal: SocketAddr,
    lifetime: Duration,
) -> anyhow::Result<Lease> {
    let gateway = Gateway::default_route().context("finding the default gateway")?;
    request_mapping_from(&gateway, transport, internal, lifetime)
}

/// [`request_mapping`] from a given gateway.
pub fn request_mapping_from(
    gateway: &Gateway,
    transport: Transport,
    internal: SocketAddr,
    lifetime: Duration,
) -> anyhow::Result<Lease> {
    let every = [
        MappingProtocol::Pcp,
        MappingProtocol::NatPmp,
        MappingProtocol::Upnp,
    ];
    request_mapping_via(gateway, &every, transport, internal, lifetime)
}

/// [`request_mapping_from`] in the protocols listed only (in PCP, NAT-PMP, UPnP order): those
/// a probe found present, so a gateway that speaks none costs no request budget at all.
pub fn request_mapping_via(
    gateway: &Gateway,
    protocols: &[MappingProtocol],
    transport: Transport,
    internal: SocketAddr,
    lifetime: Duration,
) -> anyhow::Result<Lease> {
    let internal = if internal.ip().is_unspecified() {
        SocketAddr::new(gateway.local_ip, internal.port())
    } else {
        internal
    };
    let secs = u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX).max(1);
    let lease = |protocol, external: SocketAddr, granted: u32, handle| Lease {
        protocol,
        transport,
        internal,
        external,
        lifetime: Duration::from_secs(granted.into()),
        gateway: *gateway,
        handle,
    };
    let mut failures = Vec::new();
    let nonce = rand::random();
    let asked = |protocol| protocols.contains(&protocol);
    // What an interrupt mid-request must delete: the external address is not known yet.
    let unknown_external = SocketAddr::new(gateway.ip(), 0);
    if asked(MappingProtocol::Pcp) {
        let pending = lease(
            MappingProtocol::Pcp,
            unknown_external,
            0,
            Handle::Pcp { nonce },
        );
        let _in_flight = guard::InFlight::register(pending);
        match pcp::map(gateway, transport, internal, secs, nonce, REQUEST_BUDGET) {
            Ok(answer) => {
                let handle = Handle::Pcp { nonce };
                let granted = answer.lifetime_secs;
                return Ok(lease(
                    MappingProtocol::Pcp,
                    answer.external,
                    granted,
                    handle,
                ));
            }
            Err(e) => failures.push(format!("PCP: {e}")),
        }
    }
    if asked(MappingProtocol::NatPmp) {
        let pending = lease(MappingProtocol::NatPmp, unknown_external, 0, Handle::NatPmp);
        let _in_flight = guard::InFlight::register(pending);
        match pmp::map(gateway, transport, internal.port(), secs, REQUEST_BUDGET) {
            Ok(g) => {
                let external = SocketAddr::new(g.external_address.into(), g.external_port);
                let granted = g.lifetime_secs;
                return Ok(lease(
                    MappingProtocol::NatPmp,
                    external,
                    granted,
                    Handle::NatPmp,
                ));
            }
            Err(e) => failures.push(format!("NAT-PMP: {e}")),
        }
    }
    if asked(MappingProtocol::Upnp) {
        match upnp::map(gateway, transport, internal, secs, REQUEST_BUDGET * 4) {
            Ok((device, external)) => {
                let handle = Handle::Upnp {
                    device: Box::new(device),
                };
                return Ok(lease(MappingProtocol::Upnp, external, secs, handle));
            }
            Err(e) => failures.push(format!("UPnP: {e:#}")),
        }
    }
    if failures.is_empty() {
        failures.push("it speaks none of PCP, NAT-PMP and UPnP IGD".into());
    }
    Err(anyhow!(
        "the gateway {} granted no mapping ({})",
        gateway.ip(),
        failures.join("; ")
    ))
}

/// Deletes the mapping (PCP/NAT-PMP lifetime 0, UPnP DeletePortMapping). Idempotent: deleting
/// a mapping that is gone already succeeds.
pub fn delete_mapping(lease: &Lease) -> anyhow::Result<()> {
    let gateway = &lease.gateway;
    match &lease.handle {
        Handle::Pcp { nonce } => pcp::unmap(
            gateway,
            lease.transport,
            lease.internal,
            *nonce,
            REQUEST_BUDGET,
        ),
        Handle::NatPmp => pmp::unmap(
            gateway,
            lease.transport,
            lease.internal.port(),
            REQUEST_BUDGET,
        ),
        Handle::Upnp { device } => upnp::unmap(device, lease.transport, lease.external.port()),
    }
}
