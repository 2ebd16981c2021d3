//! The one fingerprint report (`natlens nat --json`), and the same facts in plain language.
//!
//! Schema rules: `schema_version` changes when a field changes meaning or disappears (adding
//! one does not); a fact that was not measured is `null`, never a guess; fields keep the order
//! they are declared in here.

use std::net::SocketAddr;

use serde::Serialize;

use crate::core::fingerprint::allocation::{Allocation, Pattern};
use crate::core::fingerprint::classify::{Behaviour, ChangeRequestSupport};
use crate::core::fingerprint::family::{Families, FamilyReport};
use crate::core::fingerprint::predict::{Prediction, Rule};
use crate::core::fingerprint::verdict::{Difficulty, Reach, Rfc3489Type};
use crate::core::Transport;

/// Version of the JSON schema below. 2 since IPv6 moved to `ipv6`: for a run against an IPv6
/// server the top-level `udp` and `tcp` no longer hold its results (they are IPv4's).
pub const SCHEMA_VERSION: u32 = 2;

/// Most allocations that can lie between two flows of one counter and still read as one: the
/// later transport's tests (four flows) and other hosts' flows for a few hundred milliseconds.
/// Two counters of their own sit this close only by chance.
pub const MAX_COUNTER_GAP: i64 = 64;

/// Everything `natlens nat` learned about one server's view of this host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub schema_version: u32,
    /// The server's primary address (the first server named).
    pub server: SocketAddr,
    /// Every server named, the first one being `server`. The mapping socket asked each of
    /// them, and the allocation samples went to them in turn.
    pub servers: Vec<SocketAddr>,
    /// The one-line verdict (see [`verdict::line`](super::verdict::line)); `None` until
    /// [`Report::settle`] and when no transport was measured.
    pub verdict: Option<String>,
    /// IPv4 (`natlens nat`; the punch's fingerprint: its server's family).
    pub udp: Option<TransportReport>,
    pub tcp: Option<TransportReport>,
    /// `natlens nat`'s IPv6 fingerprint, of the same shape; `None` when IPv6 was not probed.
    pub ipv6: Option<FamilyReport>,
    /// Which families were probed, and why one was not.
    pub families: Families,
    /// The port-mapping probe; `None` with `--port-mapping off`.
    pub port_mapping: Option<crate::core::port_mapping::PortMappingSummary>,
    /// The hops toward the server and the NAT layers on the way (`None` with `--no-path`).
    pub path: Option<crate::core::path::PathReport>,
}

/// The fingerprint of one transport.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransportReport {
    /// What the primary server saw as the mapping socket's source.
    pub public_address: Option<SocketAddr>,
    /// `false` when the public address equals the local one.
    pub behind_nat: Option<bool>,
    /// Shortest round trip to the server, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// The server sent OTHER-ADDRESS, so mapping and filtering could be tested.
    pub full_mode: bool,
    pub mapping: Option<Behaviour>,
    /// Whether the mapping socket's public address differed between servers at different IPs
    /// (tailscale netcheck's MappingVariesByDestIP): works with servers that do not speak
    /// RFC 5780. `None` without two servers at different IPs that both answered.
    pub mapping_varies_by_dest_ip: Option<bool>,
    /// Over UDP by RFC 5780's CHANGE-REQUEST answers; over TCP (RFC 5382) by the SYNs the
    /// server crafts from its other addresses (see [`super::tcp_filtering`]).
    pub filtering: Option<Behaviour>,
    /// Over TCP, why `filtering` is `null` (the server cannot craft SYNs, lacks RFC 5780, did
    /// not answer); `null` otherwise.
    pub filtering_reason: Option<String>,
    /// What the server did with CHANGE-REQUEST.
    pub change_request: Option<ChangeRequestSupport>,
    /// `null` when not measured, and when there is no NAT to hairpin through.
    pub hairpinning: Option<bool>,
    /// An ALG rewrote MAPPED-ADDRESS.
    pub alg: Option<bool>,
    pub allocation: Allocation,
    pub prediction: Prediction,
    /// The mapping lifetime (`--lifetime`, UDP only): every key `null` when not measured.
    #[serde(flatten)]
    pub lifetime: super::lifetime::LifetimeFacts,
    /// The classic RFC 3489 name; `None` when not determinable.
    pub rfc3489_type: Option<Rfc3489Type>,
    /// From what the punch planner can connect to (see [`super::verdict`]).
    pub difficulty: Option<Difficulty>,
    /// The planner's strategy toward each kind of peer.
    pub punch: Option<Reach>,
}

impl Report {
    /// A report with no transport measured yet.
    pub fn new(server: SocketAddr) -> Self {
        Report {
            schema_version: SCHEMA_VERSION,
            server,
            servers: vec![server],
            verdict: None,
            udp: None,
            tcp: None,
            ipv6: None,
            families: Families::only(server),
            port_mapping: None,
            path: None,
        }
    }

    /// A run over both families: the IPv4 report (`None` when IPv4 was not probed: its
    /// `udp` and `tcp` are then null and `server` is IPv6's) with the IPv6 one inside, and the
    /// verdict naming each family probed ([`super::family::dual_line`]).
    pub fn dual(
        ipv4: Option<Report>,
        ipv6: Option<FamilyReport>,
        families: Families,
    ) -> Option<Report> {
        let mut report = match (ipv4, &ipv6) {
            (Some(report), _) => report,
            (None, Some(v6)) => Report {
                servers: Vec::new(),
                ..Report::new(v6.server)
            },
            (None, None) => return None,
        };
        report.verdict = super::family::dual_line(
            report.udp.is_some() || report.tcp.is_some(),
            report.verdict.as_deref(),
            ipv6.as_ref().and_then(|v6| v6.verdict.as_deref()),
        );
        report.ipv6 = ipv6;
        report.families = families;
        Some(report)
    }

    /// The public IP the server saw (UDP's, else TCP's).
    pub fn public_ip(&self) -> Option<std::net::IpAddr> {
        [&self.udp, &self.tcp]
            .into_iter()
            .flatten()
            .find_map(|t| t.public_address.map(|a| a.ip()))
    }

    /// Marks whether UDP and TCP draw their ports from one counter, `later` being the transport
    /// whose samples were taken last. On one counter (a sequential NAT with one pool for both,
    /// as the lab's routers and many home routers have) the other transport's samples took ports
    /// after the earlier one's, so the earlier one's prediction is stale: it takes the later
    /// one's, which is for the next flow of either kind.
    pub fn share_counter(&mut self, later: Transport) {
        let (Some(udp), Some(tcp)) = (&mut self.udp, &mut self.tcp) else {
            return;
        };
        let (earlier, later) = match later {
            Transport::Udp => (tcp, udp),
            Transport::Tcp => (udp, tcp),
        };
        let shared = one_counter(earlier, later);
        earlier.allocation.shared_counter = shared;
        later.allocation.shared_counter = shared;
        if shared == Some(true) {
            earlier.prediction.next_port = later.prediction.next_port;
            earlier.prediction.candidates = later.prediction.candidates.clone();
        }
    }

    /// Computes the one-line verdict from the transports' reports, once they are final (after
    /// [`Report::share_counter`], which may change a prediction).
    pub fn settle(&mut self) {
        self.verdict = super::verdict::line(self);
    }

    /// Plain-language sentences for people who are not NAT experts, UDP first.
    pub fn narrative(&self) -> Vec<String> {
        let udp = self.udp.iter().map(|r| (Transport::Udp, r));
        let tcp = self.tcp.iter().map(|r| (Transport::Tcp, r));
        udp.chain(tcp)
            .flat_map(|(transport, report)| report.narrative(transport))
            .collect()
    }
}

/// Whether two sequential transports read as one counter: the same step, the two discovery
/// flows (the run's first two) a few steps apart on the same public IP, and the later
/// transport's first answered sample a few steps past the earlier one's last. `None` unless
/// both are sequential.
fn one_counter(earlier: &TransportReport, later: &TransportReport) -> Option<bool> {
    let (a, b) = (&earlier.allocation, &later.allocation);
    if (a.pattern, b.pattern) != (Some(Pattern::Sequential), Some(Pattern::Sequential)) {
        return None;
    }
    let delta = i64::from(a.delta?);
    if b.delta? != a.delta? {
        return Some(false);
    }
    let steps = |from: u16, to: u16| {
        let diff = i64::from(to) - i64::from(from);
        (diff % delta == 0).then_some(diff / delta)
    };
    let (first_a, first_b) = (earlier.public_address?, later.public_address?);
    let last = a.ports.iter().rev().flatten().next()?;
    let first = b.ports.iter().flatten().next()?;
    let discoveries_adjacent =
        steps(first_a.port(), first_b.port()).is_some_and(|k| k != 0 && k.abs() <= MAX_COUNTER_GAP);
    let samples_continue = steps(*last, *first).is_some_and(|k| (1..=MAX_COUNTER_GAP).contains(&k));
    Some(first_a.ip() == first_b.ip() && discoveries_adjacent && samples_continue)
}

impl TransportReport {
    /// Sentences about this transport, ending with what they mean for a direct connection.
    pub fn narrative(&self, transport: Transport) -> Vec<String> {
        let name = transport.as_str().to_uppercase();
        let Some(public) = self.public_address else {
            return vec![format!(
                "Over {name}, the server never answered, so nothing could be measured."
            )];
        };
        let mut lines = vec![format!("Over {name}, the server sees you as {public}.")];
        // Without a NAT, mapping, allocation and hairpinning say nothing (the "mapping" is the
        // socket itself), and whatever filters is a firewall.
        if self.no_nat() {
            lines.push(
                "That is your own address: there is no NAT between you and the server.".into(),
            );
        } else {
            lines.extend(self.mapping_sentence());
        }
        lines.extend(self.filtering_sentence(transport));
        if !self.no_nat() {
            lines.extend(self.allocation_sentence());
        }
        lines.extend(self.oddities());
        lines.extend(self.lifetime.sentences());
        lines.push(self.verdict());
        lines
    }

    /// The public address is this host's own.
    fn no_nat(&self) -> bool {
        self.behind_nat == Some(false)
    }

    fn mapping_sentence(&self) -> Option<String> {
        Some(match self.mapping? {
            Behaviour::EndpointIndependent => MAPPING_EI.into(),
            Behaviour::AddressDependent => MAPPING_AD.into(),
            Behaviour::AddressAndPortDependent => MAPPING_APD.into(),
        })
    }

    fn filtering_sentence(&self, transport: Transport) -> Option<String> {
        let Some(filtering) = self.filtering else {
            let silent = self.full_mode && self.change_request.is_none();
            let unknown = if self.no_nat() {
                FIREWALL_UNKNOWN
            } else {
                FILTERING_UNKNOWN
            };
            return (transport == Transport::Udp && silent).then(|| unknown.into());
        };
        let [ei, ad, apd] = if self.no_nat() {
            [FIREWALL_EI, FIREWALL_AD, FIREWALL_APD]
        } else {
            [FILTERING_EI, FILTERING_AD, FILTERING_APD]
        };
        Some(match filtering {
            Behaviour::EndpointIndependent => ei.into(),
            Behaviour::AddressDependent => ad.into(),
            Behaviour::AddressAndPortDependent => apd.into(),
        })
    }

    fn allocation_sentence(&self) -> Option<String> {
        let allocation = &self.allocation;
        let sure = (allocation.confidence * 100.0).round();
        Some(match allocation.pattern? {
            Pattern::Preserving => format!(
                "It keeps your local port as the public port ({sure}% fit), \
                 so your next port is easy to predict."
            ),
            Pattern::Sequential => {
                let delta = allocation.delta?;
                let way = if delta > 0 { "upward" } else { "downward" };
                let shared = allocation.shared_counter == Some(true);
                let (counter, kind) = match shared {
                    true => (", from one counter for UDP and TCP", " of either kind"),
                    false => ("", ""),
                };
                let next = match self.prediction.next_port {
                    Some(port) => format!(": the next connection{kind} should get port {port}"),
                    None => String::new(),
                };
                let step = delta.abs();
                format!(
                    "It hands out ports in sequence, {step} at a time {way}{counter} \
                     ({sure}% fit){next}."
                )
            }
            Pattern::Random => format!(
                "It picks public ports at random ({sure}% fit), so the next port cannot be predicted."
            ),
        })
    }

    /// Hairpinning, ALGs and a server that ignored CHANGE-REQUEST.
    fn oddities(&self) -> Vec<String> {
        let hairpin = self
            .hairpinning
            .map(|h| if h { HAIRPIN } else { NO_HAIRPIN });
        let alg = (self.alg == Some(true)).then_some(ALG);
        let change = match self.change_request {
            Some(ChangeRequestSupport::Ignored) => Some(CHANGE_IGNORED),
            Some(ChangeRequestSupport::Refused) => Some(CHANGE_REFUSED),
            _ => None,
        };
        [hairpin, alg, change]
            .into_iter()
            .flatten()
            .map(String::from)
            .collect()
    }

    /// What it all means for a direct connection.
    fn verdict(&self) -> String {
        let open = self.mapping == Some(Behaviour::EndpointIndependent)
            || self.prediction.rule == Some(Rule::LocalPort);
        let filtered = matches!(
            self.filtering,
            Some(Behaviour::AddressDependent | Behaviour::AddressAndPortDependent)
        );
        if self.no_nat() && filtered {
            "So a direct connection works when both sides send first, as in ordinary hole \
             punching."
                .into()
        } else if self.no_nat() {
            "So a direct connection needs no tricks on this side.".into()
        } else if open {
            "So a direct connection should work with ordinary hole punching.".into()
        } else if self.prediction.rule == Some(Rule::Sequential) {
            "So a direct connection should work by punching toward the predicted ports.".into()
        } else if self.allocation.pattern == Some(Pattern::Random) {
            "So a direct connection is hard: it needs many ports at once on both sides, or a relay."
                .into()
        } else {
            "So whether a direct connection works could not be judged.".into()
        }
    }
}

const MAPPING_EI: &str = "Your NAT keeps the same public address for a socket whatever it talks \
    to, so the address above is the one a peer can use.";
const MAPPING_AD: &str = "Your NAT gives a socket a new public port for every host it talks to, \
    so a peer cannot use the address above and must guess a port.";
const MAPPING_APD: &str = "Your NAT gives a socket a new public port for every host and port it \
    talks to, so a peer cannot use the address above and must guess a port.";
const FILTERING_EI: &str =
    "Once you have sent a packet out, it lets in packets from anyone to that port.";
const FILTERING_AD: &str =
    "It lets in packets only from hosts you have sent to, so both sides have to send first.";
const FILTERING_APD: &str = "It lets in packets only from the exact address and port you have \
    sent to, so both sides have to send first, to the right port.";
const FILTERING_UNKNOWN: &str = "Whether it lets in packets you did not ask for could not be \
    told: the server's answers from its other addresses never came.";
const FIREWALL_EI: &str = "Nothing on the path filters what comes in: once you have sent a \
    packet out, anyone can send to that port.";
const FIREWALL_AD: &str = "A firewall on the path lets in packets only from hosts you have sent \
    to, so both sides have to send first.";
const FIREWALL_APD: &str = "A firewall on the path lets in packets only from the exact address \
    and port you have sent to, so both sides have to send first, to the right port.";
const FIREWALL_UNKNOWN: &str = "Whether a firewall lets in packets you did not ask for could not \
    be told: the server's answers from its other addresses never came.";
const HAIRPIN: &str = "It hairpins: two devices behind it can reach each other through its \
    public address.";
const NO_HAIRPIN: &str = "It does not hairpin: two devices behind it cannot reach each other \
    through its public address.";
const ALG: &str = "Something on the path rewrites addresses inside packets (an ALG); that can \
    break connections that carry addresses.";
const CHANGE_IGNORED: &str = "The server ignored the request to answer from its other address, \
    so filtering could not be measured (and is not reported as open).";
const CHANGE_REFUSED: &str = "The server cannot answer from another address, so filtering could \
    not be measured.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fingerprint::predict::Prediction;

    /// What loopback shows: the own address, nothing translated, a verdict per transport.
    fn no_nat(filtering: Option<Behaviour>) -> TransportReport {
        TransportReport {
            public_address: "192.0.2.10:5000".parse().ok(),
            behind_nat: Some(false),
            rtt_ms: Some(0.1),
            full_mode: true,
            mapping: Some(Behaviour::EndpointIndependent),
            mapping_varies_by_dest_ip: None,
            filtering,
            filtering_reason: None,
            change_request: filtering.map(|_| ChangeRequestSupport::Honoured),
            hairpinning: None,
            alg: Some(false),
            allocation: Allocation {
                pattern: Some(Pattern::Preserving),
                delta: None,
                jitter: None,
                confidence: 0.88,
                samples: 8,
                answered: 8,
                ports: Vec::new(),
                gaps: Vec::new(),
                foreign_flows_per_second: None,
                shared_counter: None,
            },
            prediction: Prediction {
                rule: Some(Rule::LocalPort),
                next_port: None,
                candidates: Vec::new(),
                two_probe: None,
                preset_delta: None,
            },
            lifetime: Default::default(),
            rfc3489_type: None,
            difficulty: None,
            punch: None,
        }
    }

    #[test]
    fn without_a_nat_the_narrative_speaks_of_no_nat_and_of_a_firewall() {
        let cases = [
            (
                Some(Behaviour::EndpointIndependent),
                "Nothing on the path filters",
                "needs no tricks on this side",
            ),
            (
                Some(Behaviour::AddressAndPortDependent),
                "A firewall on the path lets in packets only from the exact address",
                "works when both sides send first, as in ordinary hole punching",
            ),
        ];
        for (filtering, firewall, verdict) in cases {
            let text = no_nat(filtering).narrative(Transport::Udp).join(" ");
            assert!(
                text.contains("there is no NAT between you and the server"),
                "{text}"
            );
            assert!(text.contains(firewall), "{text}");
            assert!(text.ends_with(&format!("{verdict}.")), "{text}");
            // Nothing that presumes a NAT: no mapping, allocation or hairpinning sentence.
            for nat_only in ["Your NAT", "It keeps", "hairpin", "It lets in"] {
                assert!(!text.contains(nat_only), "{nat_only:?} in {text}");
            }
        }
        let tcp = no_nat(None).narrative(Transport::Tcp);
        assert_eq!(tcp.len(), 3, "{tcp:?}");
    }

    /// A sequential NAT's report: discovery at `public`, eight samples from `first`.
    fn sequential(public: &str, first: u16, delta: i32) -> TransportReport {
        let port = |i: i32| u16::try_from(i32::from(first) + delta * i).unwrap();
        let mut report = no_nat(None);
        report.behind_nat = Some(true);
        report.public_address = public.parse().ok();
        report.allocation.pattern = Some(Pattern::Sequential);
        report.allocation.delta = Some(delta);
        report.allocation.ports = (0..8).map(|i| Some(port(i))).collect();
        report.prediction = Prediction {
            rule: Some(Rule::Sequential),
            next_port: Some(port(8)),
            candidates: vec![port(8), port(9)],
            two_probe: None,
            preset_delta: None,
        };
        report
    }

    fn both(udp: TransportReport, tcp: TransportReport) -> Report {
        let mut report = Report::new("203.0.113.10:3478".parse().unwrap());
        report.udp = Some(udp);
        report.tcp = Some(tcp);
        report
    }

    #[test]
    fn one_counter_for_udp_and_tcp_gives_both_the_later_prediction() {
        // The lab's seq:1 router: the two discoveries take 40000 and 40001, UDP samples
        // 40006-40013, TCP's tests 40014-40016 and its samples 40017-40024.
        let mut report = both(
            sequential("203.0.113.2:40001", 40006, 1),
            sequential("203.0.113.2:40000", 40017, 1),
        );
        report.share_counter(Transport::Tcp);
        let (udp, tcp) = (report.udp.as_ref().unwrap(), report.tcp.as_ref().unwrap());
        assert_eq!(udp.allocation.shared_counter, Some(true));
        assert_eq!(tcp.allocation.shared_counter, Some(true));
        assert_eq!(udp.prediction.next_port, Some(40025));
        assert_eq!(udp.prediction.candidates, tcp.prediction.candidates);
        let text = udp.narrative(Transport::Udp).join(" ");
        for phrase in [
            "from one counter for UDP and TCP",
            "either kind should get port 40025",
        ] {
            assert!(text.contains(phrase), "{phrase:?} not in {text}");
        }
    }

    #[test]
    fn separate_counters_keep_their_own_predictions() {
        let cases = [
            // One pool each, from the same first port: the discoveries coincide.
            ("203.0.113.2:40000", 40005, 1, "203.0.113.2:40000", 40004, 1),
            // TCP's samples do not continue UDP's.
            ("203.0.113.2:40001", 40006, 1, "203.0.113.2:40000", 50017, 1),
            // Different steps.
            ("203.0.113.2:40002", 40006, 2, "203.0.113.2:40000", 40017, 1),
            // Another public IP.
            ("203.0.113.2:40001", 40006, 1, "203.0.113.3:40000", 40017, 1),
        ];
        for (udp_public, udp_first, udp_delta, tcp_public, tcp_first, tcp_delta) in cases {
            let mut report = both(
                sequential(udp_public, udp_first, udp_delta),
                sequential(tcp_public, tcp_first, tcp_delta),
            );
            report.share_counter(Transport::Tcp);
            let udp = report.udp.as_ref().unwrap();
            assert_eq!(udp.allocation.shared_counter, Some(false), "{udp_public}");
            assert_eq!(
                udp.prediction.next_port,
                udp.allocation.ports[7]
                    .map(|p| { u16::try_from(i32::from(p) + udp_delta).unwrap() })
            );
        }
        // Not both sequential: nothing to compare.
        let mut report = both(sequential("203.0.113.2:40001", 40006, 1), no_nat(None));
        report.share_counter(Transport::Tcp);
        assert_eq!(report.udp.unwrap().allocation.shared_counter, None);
    }
}
