//! What the port-mapping probe found: per protocol (PCP, NAT-PMP, UPnP IGD) whether the gateway
//! speaks it and what it said, the gateway's external address, and whether that address is the
//! public one STUN saw (when it is not, another NAT sits upstream of the gateway). Plain data
//! and plain functions: the io shell fills [`ProtocolProbe`]s, this module summarises them.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use super::Transport;

/// The port-mapping protocols, in the order natlens asks for a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MappingProtocol {
    /// PCP (RFC 6887).
    Pcp,
    /// NAT-PMP (RFC 6886).
    NatPmp,
    /// UPnP IGD (WANIPConnection / WANPPPConnection).
    Upnp,
}

impl MappingProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            MappingProtocol::Pcp => "PCP",
            MappingProtocol::NatPmp => "NAT-PMP",
            MappingProtocol::Upnp => "UPnP IGD",
        }
    }
}

/// One protocol's answer to the probe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProtocolProbe {
    /// The gateway answered in this protocol (an error answer counts: the protocol is there).
    pub present: bool,
    /// NAT-PMP 0, PCP 2, UPnP: the InternetGatewayDevice version.
    pub version: Option<u8>,
    /// UPnP only: the WAN connection service, e.g. `WANIPConnection:1`, `WANPPPConnection:1`.
    pub service: Option<String>,
    /// The gateway's external address as this protocol reported it.
    pub external_address: Option<IpAddr>,
    /// Seconds the gateway granted to the probe's mapping (PCP's MAP probe).
    pub lifetime_s: Option<u32>,
    /// NAT-PMP/PCP epoch: seconds since the gateway's mapping table was (re)initialised.
    pub epoch: Option<u32>,
    /// The protocol's result code by name when it was not success (`NOT_AUTHORIZED`,
    /// `ADDRESS_MISMATCH`, `not_authorized`...).
    pub result: Option<String>,
    /// Why it is absent or incomplete (no answer within the budget, an HTTP error...).
    pub error: Option<String>,
    /// Answers ignored: from another address, malformed, oversized or not ours.
    pub ignored: u32,
}

/// The mapping `--port-mapping test` asked for, and whether it was proven from outside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappingTest {
    /// Which protocol granted it; `None` when none did.
    pub protocol: Option<MappingProtocol>,
    pub transport: Transport,
    pub internal: SocketAddr,
    pub external: Option<SocketAddr>,
    pub lifetime_s: Option<u32>,
    /// The server's packet to the external port arrived (true), did not (false), or the server
    /// cannot send one (null).
    pub proven: Option<bool>,
    /// The mapping was deleted afterwards.
    pub deleted: bool,
    pub error: Option<String>,
}

/// The whole probe, the `port_mapping` object of `natlens nat --json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PortMappingSummary {
    /// The default gateway asked; `None` when there is no default route.
    pub gateway: Option<IpAddr>,
    pub pcp: ProtocolProbe,
    pub nat_pmp: ProtocolProbe,
    pub upnp: ProtocolProbe,
    /// The gateway's external address (PCP's, else NAT-PMP's, else UPnP's).
    pub external_address: Option<IpAddr>,
    /// The gateway's external address is the public address STUN saw; false means another
    /// NAT upstream of the gateway; null when either is unknown.
    pub external_matches_public: Option<bool>,
    /// `--port-mapping test` only.
    pub test: Option<MappingTest>,
    /// Wall time of the probe.
    pub elapsed_ms: u64,
    /// Why the probe could not run at all (no default route...).
    pub error: Option<String>,
}

impl PortMappingSummary {
    /// Summarises the three probes.
    pub fn new(
        gateway: Option<IpAddr>,
        pcp: ProtocolProbe,
        nat_pmp: ProtocolProbe,
        upnp: ProtocolProbe,
    ) -> Self {
        let external_address = [&pcp, &nat_pmp, &upnp]
            .iter()
            .find_map(|probe| probe.external_address.filter(|ip| !ip.is_unspecified()));
        PortMappingSummary {
            gateway,
            pcp,
            nat_pmp,
            upnp,
            external_address,
            ..Default::default()
        }
    }

    /// A probe that could not start (`reason`: no default route...).
    pub fn failed(reason: String) -> Self {
        PortMappingSummary {
            error: Some(reason),
            ..Default::default()
        }
    }

    /// Compares the gateway's external address with the public address STUN saw.
    pub fn compare_with_public(&mut self, public: Option<IpAddr>) {
        self.external_matches_public = match (self.external_address, public) {
            (Some(external), Some(public)) => Some(external == public),
            _ => None,
        };
    }

    /// The protocols the gateway speaks, in asking order.
    pub fn present(&self) -> Vec<MappingProtocol> {
        [
            (MappingProtocol::Pcp, &self.pcp),
            (MappingProtocol::NatPmp, &self.nat_pmp),
            (MappingProtocol::Upnp, &self.upnp),
        ]
        .into_iter()
        .filter(|(_, probe)| probe.present)
        .map(|(protocol, _)| protocol)
        .collect()
    }

    /// A PCP server saw another source than our own address: a NAT between us and it.
    pub fn pcp_address_mismatch(&self) -> bool {
        self.pcp.result.as_deref() == Some("ADDRESS_MISMATCH")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answering(ip: &str) -> ProtocolProbe {
        ProtocolProbe {
            present: true,
            external_address: Some(ip.parse().unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn external_address_prefers_pcp_then_nat_pmp_then_upnp() {
        let summary = PortMappingSummary::new(
            None,
            ProtocolProbe::default(),
            answering("203.0.113.1"),
            answering("203.0.113.2"),
        );
        assert_eq!(
            summary.external_address,
            Some("203.0.113.1".parse().unwrap())
        );
        assert_eq!(
            summary.present(),
            [MappingProtocol::NatPmp, MappingProtocol::Upnp]
        );
    }

    #[test]
    fn external_address_is_compared_with_the_public_one() {
        let mut summary = PortMappingSummary::new(
            None,
            answering("100.64.0.2"),
            ProtocolProbe::default(),
            ProtocolProbe::default(),
        );
        summary.compare_with_public(Some("203.0.113.1".parse().unwrap()));
        assert_eq!(summary.external_matches_public, Some(false));
        summary.compare_with_public(Some("100.64.0.2".parse().unwrap()));
        assert_eq!(summary.external_matches_public, Some(true));
        summary.compare_with_public(None);
        assert_eq!(summary.external_matches_public, None);
        let mut none = PortMappingSummary::new(
            None,
            Default::default(),
            Default::default(),
            Default::default(),
        );
        none.compare_with_public(Some("203.0.113.1".parse().unwrap()));
        assert_eq!(none.external_matches_public, None);
    }
}
