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

    /// The human report's paragraph: which protocols the gateway speaks, its external address
    /// against the public one, and the test's outcome.
    pub fn line(&self) -> String {
        let Some(gateway) = self.gateway else {
            let why = self.error.as_deref().unwrap_or("no gateway");
            return format!("Port mapping: not probed ({why}).");
        };
        let spoken: Vec<String> = [
            (MappingProtocol::Pcp, &self.pcp),
            (MappingProtocol::NatPmp, &self.nat_pmp),
            (MappingProtocol::Upnp, &self.upnp),
        ]
        .into_iter()
        .filter(|(_, probe)| probe.present)
        .map(|(protocol, probe)| describe(protocol, probe))
        .collect();
        let mut text = if spoken.is_empty() {
            format!("Port mapping: the gateway {gateway} speaks none of PCP, NAT-PMP, UPnP IGD.")
        } else {
            format!(
                "Port mapping: the gateway {gateway} speaks {}.",
                spoken.join(", ")
            )
        };
        if let Some(external) = self.external_address {
            text += &match self.external_matches_public {
                Some(true) => format!(" Its external address {external} is the public address STUN saw."),
                Some(false) => format!(
                    " Its external address {external} is not the public address STUN saw: another NAT sits upstream."
                ),
                None => format!(" Its external address is {external}."),
            };
        }
        if let Some(test) = &self.test {
            text += &test_sentence(test);
        }
        text
    }

    /// A PCP server saw another source than our own address: a NAT between us and it.
    pub fn pcp_address_mismatch(&self) -> bool {
        self.pcp.result.as_deref() == Some("ADDRESS_MISMATCH")
    }
}

fn describe(protocol: MappingProtocol, probe: &ProtocolProbe) -> String {
    let mut text = protocol.as_str().to_owned();
    if let Some(service) = &probe.service {
        text += &format!(" ({service})");
    }
    if let Some(result) = &probe.result {
        text += &format!(" (answers {result})");
    }
    text
}

fn test_sentence(test: &MappingTest) -> String {
    let Some(protocol) = test.protocol else {
        let why = test.error.as_deref().unwrap_or("refused");
        return format!(" No mapping was granted: {why}.");
    };
    let external = test.external.map_or("?".to_owned(), |e| e.to_string());
    let proven = match test.proven {
        Some(true) => "the server's packet arrived through it",
        Some(false) => "the server's packet did not arrive",
        None => "the server cannot send through it to prove it",
    };
    let deleted = if test.deleted {
        "deleted"
    } else {
        "NOT deleted"
    };
    format!(
        " {} mapped {} to {external}: {proven}; mapping {deleted}.",
        protocol.as_str(),
        test.internal
    )
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

    /// The `port_mapping` object of `natlens nat --json`, pinned (documented under JSON OUTPUT).
    #[test]
    fn json_is_stable() {
        let mut summary = PortMappingSummary::new(
            Some("192.0.2.1".parse().unwrap()),
            ProtocolProbe {
                version: Some(2),
                lifetime_s: Some(120),
                epoch: Some(7),
                ..answering("203.0.113.1")
            },
            ProtocolProbe {
                present: false,
                error: Some("no NAT-PMP answer within 250 ms".into()),
                ignored: 1,
                ..Default::default()
            },
            ProtocolProbe {
                version: Some(2),
                service: Some("WANIPConnection:2".into()),
                ..answering("203.0.113.1")
            },
        );
        summary.compare_with_public(Some("203.0.113.1".parse().unwrap()));
        summary.test = Some(MappingTest {
            protocol: Some(MappingProtocol::Pcp),
            transport: Transport::Udp,
            internal: "192.0.2.10:40000".parse().unwrap(),
            external: Some("203.0.113.1:40000".parse().unwrap()),
            lifetime_s: Some(120),
            proven: None,
            deleted: true,
            error: None,
        });
        summary.elapsed_ms = 12;
        let json = serde_json::to_string(&summary).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"gateway":"192.0.2.1","#,
                r#""pcp":{"present":true,"version":2,"service":null,"external_address":"203.0.113.1","lifetime_s":120,"epoch":7,"result":null,"error":null,"ignored":0},"#,
                r#""nat_pmp":{"present":false,"version":null,"service":null,"external_address":null,"lifetime_s":null,"epoch":null,"result":null,"error":"no NAT-PMP answer within 250 ms","ignored":1},"#,
                r#""upnp":{"present":true,"version":2,"service":"WANIPConnection:2","external_address":"203.0.113.1","lifetime_s":null,"epoch":null,"result":null,"error":null,"ignored":0},"#,
                r#""external_address":"203.0.113.1","external_matches_public":true,"#,
                r#""test":{"protocol":"pcp","transport":"udp","internal":"192.0.2.10:40000","external":"203.0.113.1:40000","lifetime_s":120,"proven":null,"deleted":true,"error":null},"#,
                r#""elapsed_ms":12,"error":null}"#
            ),
            "\n{json}"
        );
        assert_eq!(
            summary.line(),
            "Port mapping: the gateway 192.0.2.1 speaks PCP, UPnP IGD (WANIPConnection:2). Its \
             external address 203.0.113.1 is the public address STUN saw. PCP mapped \
             192.0.2.10:40000 to 203.0.113.1:40000: the server cannot send through it to prove \
             it; mapping deleted."
        );
    }
}
