//! How many NAT layers the evidence shows, where, and whether one is a carrier-grade NAT.
//!
//! The rules, in the order they are applied:
//! 1. The server sees this host's own address: no NAT (0 layers, CGNAT false).
//! 2. The server sees another address: a NAT, the first gateway (hop 1).
//! 3. A hop beyond the first answering from inside space (RFC 6598 shared 100.64.0.0/10 or
//!    private) is a router that still has to translate: another NAT layer, at the last such hop.
//!    In shared space it is a carrier's: CGNAT true.
//! 4. The gateway's external address (NAT-PMP, PCP, UPnP) in shared space, or other than the
//!    public address the server saw: a NAT upstream of the gateway (in shared space: CGNAT true).
//! 5. PCP ADDRESS_MISMATCH: a NAT upstream of the PCP server.
//! 6. Keepalives with TTL k keep the mapping and lower ones do not: the outermost NAT is hop k;
//!    k > 1 means a NAT beyond the gateway.
//! 7. CGNAT is false only when every hop from 2 up to the first one in public space (or the
//!    server) answered and none was inside space; null when a hop in that stretch was silent
//!    (it may hide a carrier NAT), when no hop beyond the gateway answered, and when a second
//!    layer was found in space that does not say whose it is (private, or unknown).
//!
//! The hops' quotes are no evidence: RFC 5508 NATs translate them back (see [`super`]).

use std::net::IpAddr;

use serde::Serialize;

use super::class::{classify, AddressClass};
use super::Hop;

/// Everything the verdict weighs. Fields other probes fill stay `None` when they did not run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathEvidence {
    /// The TTL-limited probe's hops.
    pub hops: Vec<Hop>,
    /// The public address the STUN server saw.
    pub public_address: Option<IpAddr>,
    /// The gateway's external address from NAT-PMP, PCP or UPnP.
    pub gateway_external: Option<IpAddr>,
    /// PCP answered ADDRESS_MISMATCH.
    pub pcp_address_mismatch: Option<bool>,
    /// The smallest keepalive TTL that kept a mapping alive (`--lifetime`).
    pub ttl_refresh_outermost_nat_hop: Option<u8>,
}

/// One NAT layer found: at which hop and address, when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NatLayer {
    pub hop: Option<u8>,
    pub address: Option<IpAddr>,
}

/// `natlens nat`'s `path` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathReport {
    pub hops: Vec<Hop>,
    /// NAT layers found; `None` when nothing was measured that could say.
    pub nat_layers: Option<u8>,
    /// Where each layer is, innermost first.
    pub layers: Vec<NatLayer>,
    pub cgnat: Option<bool>,
    pub cgnat_reason: String,
    /// The facts behind the verdict, one sentence each.
    pub evidence: Vec<String>,
    /// Answers and ICMP errors that matched none of the probes.
    pub ignored: u32,
}

/// The verdict over `evidence`; `host` is this host's own address toward the server.
pub fn judge(evidence: &PathEvidence, host: Option<IpAddr>, ignored: u32) -> PathReport {
    let mut judged = Judged::default();
    let behind = match (evidence.public_address, host) {
        (Some(public), Some(host)) => Some(public != host),
        _ => None,
    };
    let (nat_layers, cgnat, cgnat_reason) = if behind == Some(false) {
        judged.say(format!(
            "the server sees this host's own address {}",
            host.expect("compared")
        ));
        (
            Some(0),
            Some(false),
            "no NAT between this host and the server".to_owned(),
        )
    } else {
        if behind == Some(true) {
            judged.gateway(evidence, host);
        }
        judged.inside_hops(&evidence.hops);
        judged.upstream(evidence);
        let (cgnat, reason) = judged.cgnat(&evidence.hops);
        let layers =
            (behind.is_some() || !judged.layers.is_empty()).then_some(judged.layers.len() as u8);
        (layers, cgnat, reason)
    };
    PathReport {
        hops: evidence.hops.clone(),
        nat_layers,
        layers: judged.layers,
        cgnat,
        cgnat_reason,
        evidence: judged.evidence,
        ignored,
    }
}

impl PathReport {
    /// The human report's line: the hops, the layers, the CGNAT verdict with its reason.
    pub fn line(&self) -> String {
        let hops: Vec<String> = self
            .hops
            .iter()
            .map(|hop| match (hop.address, hop.server) {
                (Some(address), true) => format!("{address} (server)"),
                (Some(address), false) => address.to_string(),
                (None, _) => "*".to_owned(),
            })
            .collect();
        let hops = if hops.is_empty() {
            "no hop probed".to_owned()
        } else {
            hops.join(" > ")
        };
        let layers = match self.nat_layers {
            Some(1) => "1 NAT layer".to_owned(),
            Some(n) => format!("{n} NAT layers"),
            None => "NAT layers unknown".to_owned(),
        };
        let at: Vec<String> = self
            .layers
            .iter()
            .filter_map(|l| l.hop)
            .map(|h| h.to_string())
            .collect();
        let at = if at.is_empty() {
            String::new()
        } else {
            format!(" (at hop {})", at.join(", "))
        };
        let cgnat = match self.cgnat {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown",
        };
        format!(
            "Path: {hops}; {layers}{at}; CGNAT: {cgnat}, {}.",
            self.cgnat_reason
        )
    }
}

#[derive(Default)]
struct Judged {
    layers: Vec<NatLayer>,
    evidence: Vec<String>,
    /// Some evidence put a NAT in shared (carrier) space.
    shared: bool,
}

impl Judged {
    fn say(&mut self, sentence: String) {
        self.evidence.push(sentence);
    }

    /// Rule 2: the first gateway translates.
    fn gateway(&mut self, evidence: &PathEvidence, host: Option<IpAddr>) {
        let first = evidence.hops.iter().find(|h| h.ttl == 1 && !h.server);
        let address = first.and_then(|h| h.address);
        self.layers.push(NatLayer {
            hop: address.map(|_| 1),
            address,
        });
        self.say(format!(
            "the server sees {}, not this host's {}: a NAT",
            evidence.public_address.expect("behind a NAT"),
            host.expect("behind a NAT")
        ));
    }

    /// Rule 3: inside space beyond the first hop.
    fn inside_hops(&mut self, hops: &[Hop]) {
        let inside = |h: &&Hop| h.ttl >= 2 && !h.server && h.class.is_some_and(|c| c.is_inside());
        let Some(outer) = hops.iter().rev().find(inside) else {
            return;
        };
        let address = outer.address.expect("classified");
        let shared = outer.class == Some(AddressClass::Shared);
        self.shared |= shared;
        self.layers.push(NatLayer {
            hop: Some(outer.ttl),
            address: Some(address),
        });
        self.say(if shared {
            format!(
                "hop {} answers from {address}, RFC 6598 shared space beyond the gateway: \
                 a NAT layer in carrier space",
                outer.ttl
            )
        } else {
            format!(
                "hop {} answers from {address}, private space beyond the gateway: \
                 another NAT layer",
                outer.ttl
            )
        });
    }

    /// Rules 4 to 6: what the port-mapping protocols and the TTL-limited refresh say.
    fn upstream(&mut self, evidence: &PathEvidence) {
        let mut upstream_hop = None;
        let mut upstream = false;
        if let Some(external) = evidence.gateway_external {
            if classify(external) == AddressClass::Shared {
                self.shared = true;
                upstream = true;
                self.say(format!(
                    "the gateway's external address {external} is in RFC 6598 shared space: \
                     a carrier NAT upstream"
                ));
            } else if evidence.public_address.is_some_and(|p| p != external) {
                upstream = true;
                self.say(format!(
                    "the gateway's external address {external} is not the public address {}: \
                     another NAT upstream",
                    evidence.public_address.expect("compared")
                ));
            } else if evidence.public_address == Some(external) {
                self.say(format!(
                    "the gateway's external address {external} is the public address"
                ));
            }
        }
        if evidence.pcp_address_mismatch == Some(true) {
            upstream = true;
            self.say("PCP answered ADDRESS_MISMATCH: a NAT upstream of the PCP server".into());
        }
        if let Some(k) = evidence.ttl_refresh_outermost_nat_hop {
            self.say(format!(
                "keepalives with TTL {k} keep the mapping: the outermost NAT is hop {k}"
            ));
            if k > 1 {
                upstream = true;
                upstream_hop = Some(k);
                let class = evidence
                    .hops
                    .iter()
                    .find(|h| h.ttl == k)
                    .and_then(|h| h.class);
                self.shared |= class == Some(AddressClass::Shared);
            }
        }
        if upstream && self.layers.len() < 2 {
            if self.layers.is_empty() {
                // Upstream of a gateway that translates too.
                self.layers.push(NatLayer {
                    hop: None,
                    address: None,
                });
            }
            self.layers.push(NatLayer {
                hop: upstream_hop,
                address: None,
            });
        }
    }

    /// Rule 7.
    fn cgnat(&self, hops: &[Hop]) -> (Option<bool>, String) {
        if self.shared {
            return (
                Some(true),
                "a NAT layer in RFC 6598 shared address space (100.64.0.0/10), which carriers use"
                    .into(),
            );
        }
        if self.layers.len() >= 2 {
            return (
                None,
                "a NAT beyond the gateway, in address space that does not tell a carrier's \
                 from a second home router's"
                    .into(),
            );
        }
        if hops.iter().all(|h| h.address.is_none()) {
            return (None, "no hop answered the TTL-limited probes".into());
        }
        let outside = |h: &&Hop| h.server || h.class.is_some_and(AddressClass::counts_as_public);
        let Some(first_outside) = hops.iter().filter(|h| h.ttl >= 2).find(outside) else {
            return (
                None,
                "no hop beyond the gateway answered from public space".into(),
            );
        };
        let silent = hops
            .iter()
            .filter(|h| (2..first_outside.ttl).contains(&h.ttl))
            .find(|h| h.address.is_none());
        match silent {
            Some(hop) => (
                None,
                format!("hop {} did not answer: it may hide a carrier NAT", hop.ttl),
            ),
            None => (
                Some(false),
                "every hop between the gateway and public space answered, none from shared \
                 or private space"
                    .into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(ttl: u8, address: Option<&str>, server: bool) -> Hop {
        let address: Option<IpAddr> = address.map(|a| a.parse().unwrap());
        Hop {
            ttl,
            address,
            class: address.map(classify),
            rtt_ms: address.map(|_| 1.0),
            server,
        }
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    fn lab(hops: Vec<Hop>) -> PathEvidence {
        PathEvidence {
            hops,
            public_address: ip("203.0.113.1"),
            ..PathEvidence::default()
        }
    }

    const HOST: &str = "192.0.2.10";

    #[test]
    fn a_carrier_hop_makes_two_layers_and_cgnat() {
        let evidence = lab(vec![
            hop(1, Some("192.0.2.1"), false),
            hop(2, Some("100.64.0.1"), false),
            hop(3, Some("203.0.113.10"), true),
        ]);
        let report = judge(&evidence, ip(HOST), 0);
        assert_eq!(report.nat_layers, Some(2));
        assert_eq!(report.cgnat, Some(true));
        assert_eq!(
            report.layers.iter().map(|l| l.hop).collect::<Vec<_>>(),
            [Some(1), Some(2)]
        );
        assert!(
            report.evidence[1].contains("100.64.0.1"),
            "{:?}",
            report.evidence
        );
    }

    #[test]
    fn one_gateway_then_public_space_is_one_layer_without_cgnat() {
        let evidence = lab(vec![
            hop(1, Some("192.0.2.1"), false),
            hop(2, Some("203.0.113.10"), true),
        ]);
        let report = judge(&evidence, ip(HOST), 3);
        assert_eq!((report.nat_layers, report.cgnat), (Some(1), Some(false)));
        assert_eq!(report.ignored, 3);
        let public_hop = lab(vec![
            hop(1, Some("192.168.1.1"), false),
            hop(2, Some("8.8.4.1"), false),
        ]);
        assert_eq!(judge(&public_hop, ip("192.168.1.5"), 0).cgnat, Some(false));
    }

    #[test]
    fn the_own_address_means_no_nat() {
        let mut evidence = lab(vec![hop(1, Some("203.0.113.10"), true)]);
        evidence.public_address = ip("203.0.113.20");
        let report = judge(&evidence, ip("203.0.113.20"), 0);
        assert_eq!((report.nat_layers, report.cgnat), (Some(0), Some(false)));
        assert!(report.layers.is_empty());
    }

    #[test]
    fn silence_where_a_carrier_could_hide_leaves_cgnat_open() {
        let evidence = lab(vec![
            hop(1, Some("192.0.2.1"), false),
            hop(2, None, false),
            hop(3, Some("203.0.113.10"), true),
        ]);
        let report = judge(&evidence, ip(HOST), 0);
        assert_eq!((report.nat_layers, report.cgnat), (Some(1), None));
        assert!(
            report.cgnat_reason.contains("hop 2"),
            "{}",
            report.cgnat_reason
        );
        let nothing = lab(vec![hop(1, None, false), hop(2, None, false)]);
        let report = judge(&nothing, ip(HOST), 0);
        assert_eq!(report.cgnat, None);
        assert!(report.cgnat_reason.contains("no hop answered"));
        let only_gateway = lab(vec![hop(1, Some("192.0.2.1"), false), hop(2, None, false)]);
        assert_eq!(judge(&only_gateway, ip(HOST), 0).cgnat, None);
    }

    #[test]
    fn nothing_measured_says_null() {
        let report = judge(&PathEvidence::default(), None, 0);
        assert_eq!((report.nat_layers, report.cgnat), (None, None));
    }

    #[test]
    fn a_private_hop_beyond_the_gateway_is_a_layer_of_unknown_owner() {
        let evidence = lab(vec![
            hop(1, Some("192.168.1.1"), false),
            hop(2, Some("10.0.0.1"), false),
            hop(3, Some("203.0.113.10"), true),
        ]);
        let report = judge(&evidence, ip("192.168.1.5"), 0);
        assert_eq!((report.nat_layers, report.cgnat), (Some(2), None));
    }

    #[test]
    fn a_gateway_external_address_in_shared_space_is_a_carrier_nat() {
        let mut evidence = lab(vec![hop(1, Some("192.0.2.1"), false)]);
        evidence.gateway_external = ip("100.64.0.2");
        let report = judge(&evidence, ip(HOST), 0);
        assert_eq!((report.nat_layers, report.cgnat), (Some(2), Some(true)));
    }

    #[test]
    fn a_gateway_external_address_other_than_the_public_one_is_a_nat_upstream() {
        let mut evidence = lab(vec![hop(1, Some("192.0.2.1"), false)]);
        evidence.gateway_external = ip("192.168.0.2");
        let report = judge(&evidence, ip(HOST), 0);
        assert_eq!((report.nat_layers, report.cgnat), (Some(2), None));
        evidence.gateway_external = ip("203.0.113.1");
        evidence.hops.push(hop(2, Some("203.0.113.10"), true));
        let report = judge(&evidence, ip(HOST), 0);
        assert_eq!((report.nat_layers, report.cgnat), (Some(1), Some(false)));
        assert!(report
            .evidence
            .iter()
            .any(|e| e.contains("is the public address")));
    }

    #[test]
    fn pcp_address_mismatch_is_a_nat_upstream() {
        let mut evidence = lab(vec![hop(1, Some("192.0.2.1"), false)]);
        evidence.pcp_address_mismatch = Some(true);
        let report = judge(&evidence, ip(HOST), 0);
        assert_eq!(report.nat_layers, Some(2));
        assert!(report
            .evidence
            .iter()
            .any(|e| e.contains("ADDRESS_MISMATCH")));
    }

    #[test]
    fn ttl_refresh_places_the_outermost_nat() {
        let mut evidence = lab(vec![
            hop(1, Some("192.0.2.1"), false),
            hop(2, Some("100.64.0.1"), false),
            hop(3, Some("203.0.113.10"), true),
        ]);
        evidence.ttl_refresh_outermost_nat_hop = Some(2);
        let report = judge(&evidence, ip(HOST), 0);
        assert_eq!((report.nat_layers, report.cgnat), (Some(2), Some(true)));
        // Without the hop list, the refresh alone still finds the second layer.
        let mut blind = lab(vec![hop(1, None, false), hop(2, None, false)]);
        blind.ttl_refresh_outermost_nat_hop = Some(2);
        let report = judge(&blind, ip(HOST), 0);
        assert_eq!(report.nat_layers, Some(2));
        assert_eq!(report.layers[1].hop, Some(2));
        blind.ttl_refresh_outermost_nat_hop = Some(1);
        assert_eq!(judge(&blind, ip(HOST), 0).nat_layers, Some(1));
    }
}
