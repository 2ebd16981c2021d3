//! The verdict a network engineer pastes into a ticket: one line per transport in RFC 4787
//! words, the classic RFC 3489 name, and what the NAT means for hole punching.
//!
//! What it means for punching is not restated here: the punch planner
//! ([`crate::core::punch::make_plan`]) is asked, with this host's facts as a real call would
//! send them, against one representative peer of each [`PeerKind`]. A peer is *reached* when
//! the planner plans a way (direct, fan-out or birthday) rather than refusing. The
//! [`Difficulty`] follows from which kinds are reached:
//!
//! - easy: every peer kind;
//! - medium: not every kind, but a port-restricted cone peer without a birthday spray (a direct
//!   punch or a fan-out over predicted ports);
//! - hard: a port-restricted cone peer only by a birthday spray, or not at all.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Serialize;

use crate::core::fingerprint::allocation::Pattern;
use crate::core::fingerprint::classify::Behaviour;
use crate::core::fingerprint::report::{Report, TransportReport};
use crate::core::punch::{make_plan, NatSummary, PlanInput, PunchOptions, Role, Strategy};
use crate::core::Transport;
use crate::wire::natlens::{NatFacts, Transports};

/// The classic RFC 3489 name of what was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rfc3489Type {
    /// No NAT and nothing filtering.
    OpenInternet,
    /// No NAT, but a firewall lets in only hosts (or ports) this host sent to.
    SymmetricFirewall,
    /// Endpoint-independent mapping and filtering.
    FullCone,
    /// Endpoint-independent mapping, address-dependent filtering.
    RestrictedCone,
    /// Endpoint-independent mapping, address-and-port-dependent filtering.
    PortRestrictedCone,
    /// The mapping depends on the destination.
    Symmetric,
}

impl Rfc3489Type {
    pub fn as_str(self) -> &'static str {
        match self {
            Rfc3489Type::OpenInternet => "open internet",
            Rfc3489Type::SymmetricFirewall => "symmetric firewall",
            Rfc3489Type::FullCone => "full cone",
            Rfc3489Type::RestrictedCone => "restricted cone",
            Rfc3489Type::PortRestrictedCone => "port-restricted cone",
            Rfc3489Type::Symmetric => "symmetric",
        }
    }
}

/// How hard a direct connection to this host is (see the module doc for the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Difficulty {
    Easy,
    Medium,
    Hard,
}

impl Difficulty {
    pub fn as_str(self) -> &'static str {
        match self {
            Difficulty::Easy => "easy",
            Difficulty::Medium => "medium",
            Difficulty::Hard => "hard",
        }
    }
}

/// The kinds of peer the planner is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKind {
    /// No NAT, or a full cone: one known port that lets anyone in.
    Open,
    /// A port-restricted cone: one known port, open only to where it sent.
    Cone,
    /// Symmetric, handing out ports in sequence (+1).
    Sequential,
    /// Symmetric, with random ports.
    Random,
}

impl PeerKind {
    pub const ALL: [PeerKind; 4] = [
        PeerKind::Open,
        PeerKind::Cone,
        PeerKind::Sequential,
        PeerKind::Random,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PeerKind::Open => "open",
            PeerKind::Cone => "cone",
            PeerKind::Sequential => "sequential",
            PeerKind::Random => "random",
        }
    }

    /// The facts such a peer sends in a call, built the way a real end builds its own, at a
    /// documentation address of `like`'s family.
    fn facts(self, like: SocketAddr) -> NatFacts {
        use Behaviour::{AddressAndPortDependent as Apd, EndpointIndependent as Ei};
        let ip = match like.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(203, 0, 113, 200)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x200)),
        };
        let observed = SocketAddr::new(ip, 40_000);
        let (mapping, filtering, pattern) = match self {
            PeerKind::Open => (Ei, Ei, Pattern::Preserving),
            PeerKind::Cone => (Ei, Apd, Pattern::Preserving),
            PeerKind::Sequential => (Apd, Apd, Pattern::Sequential),
            PeerKind::Random => (Apd, Apd, Pattern::Random),
        };
        let sequential = pattern == Pattern::Sequential;
        let summary = NatSummary {
            mapping: Some(mapping),
            filtering: Some(filtering),
            pattern: Some(pattern),
            delta: sequential.then_some(1),
            foreign_flows_per_second: Some(0.0),
            candidates: if sequential {
                (40_001..=40_016).collect()
            } else {
                Vec::new()
            },
        };
        summary.facts(Some(observed), BOTH)
    }
}

const BOTH: Transports = Transports {
    udp: true,
    tcp: true,
};

/// The planner's strategy toward each peer kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Reach {
    pub open: Strategy,
    pub cone: Strategy,
    pub sequential: Strategy,
    pub random: Strategy,
}

impl Reach {
    pub fn toward(&self, kind: PeerKind) -> Strategy {
        match kind {
            PeerKind::Open => self.open,
            PeerKind::Cone => self.cone,
            PeerKind::Sequential => self.sequential,
            PeerKind::Random => self.random,
        }
    }

    /// The planner found a way (not refused).
    pub fn reaches(&self, kind: PeerKind) -> bool {
        self.toward(kind) != Strategy::Refused
    }

    /// The rule of the module doc.
    pub fn difficulty(&self) -> Difficulty {
        if PeerKind::ALL.iter().all(|&kind| self.reaches(kind)) {
            Difficulty::Easy
        } else if matches!(self.cone, Strategy::Direct | Strategy::Fanout) {
            Difficulty::Medium
        } else {
            Difficulty::Hard
        }
    }
}

/// The mapping the verdict goes by: the RFC 5780 test's, else "depends on the destination"
/// when two servers at different IPs saw different public addresses (at least address-dependent;
/// the planner is given the strictest).
fn effective_mapping(report: &TransportReport) -> Option<Behaviour> {
    report.mapping.or(match report.mapping_varies_by_dest_ip {
        Some(true) => Some(Behaviour::AddressAndPortDependent),
        _ => None,
    })
}

/// What the planner does toward each peer kind with this host's facts; `None` when the facts
/// hold nothing measured to plan with (no answer, or neither a mapping verdict nor an
/// allocation pattern).
pub fn reach(report: &TransportReport, transport: Transport) -> Option<Reach> {
    let public = report.public_address?;
    let mapping = effective_mapping(report);
    if report.allocation.pattern.is_none() && mapping != Some(Behaviour::EndpointIndependent) {
        return None;
    }
    let summary = NatSummary {
        mapping,
        ..NatSummary::from_report(report)
    };
    let own = summary.facts(Some(public), BOTH);
    let options = PunchOptions::default();
    let strategy = |kind: PeerKind| {
        let peer = kind.facts(public);
        let input = PlanInput {
            role: Role::Caller,
            transport,
            call_id: 0,
            own: &own,
            peer: &peer,
            options: &options,
        };
        make_plan(&input).strategy
    };
    Some(Reach {
        open: strategy(PeerKind::Open),
        cone: strategy(PeerKind::Cone),
        sequential: strategy(PeerKind::Sequential),
        random: strategy(PeerKind::Random),
    })
}

/// The RFC 3489 name; `None` when what it needs was not measured (over TCP, filtering needs
/// a natlens server that crafts SYNs; without it only "symmetric" can be named there).
pub fn rfc3489_type(report: &TransportReport) -> Option<Rfc3489Type> {
    report.public_address?;
    if report.behind_nat? {
        return match effective_mapping(report)? {
            Behaviour::EndpointIndependent => Some(match report.filtering? {
                Behaviour::EndpointIndependent => Rfc3489Type::FullCone,
                Behaviour::AddressDependent => Rfc3489Type::RestrictedCone,
                Behaviour::AddressAndPortDependent => Rfc3489Type::PortRestrictedCone,
            }),
            _ => Some(Rfc3489Type::Symmetric),
        };
    }
    Some(match report.filtering? {
        Behaviour::EndpointIndependent => Rfc3489Type::OpenInternet,
        _ => Rfc3489Type::SymmetricFirewall,
    })
}

/// One transport's verdict, without the transport's name: "endpoint-independent mapping,
/// address-and-port-dependent filtering, preserving ports, no hairpin; reaches every peer kind
/// directly (easy)". What was not measured is left out, but for the mapping.
pub fn transport_line(report: &TransportReport, transport: Transport) -> String {
    let filtering = report
        .filtering
        .map(|filtering| format!("{} filtering", filtering.as_str()));
    compose(report, transport, filtering)
}

/// [`transport_line`] with the filtering clause given (or left out).
fn compose(report: &TransportReport, transport: Transport, filtering: Option<String>) -> String {
    if report.public_address.is_none() {
        return "no answer".into();
    }
    let mut facts = Vec::new();
    if report.behind_nat == Some(false) {
        facts.push("no NAT".to_string());
    } else {
        facts.push(mapping_words(report));
    }
    // Filtering is left out when not measured (over TCP without a SYN-crafting server), so that
    // two transports that agree on the rest share one clause.
    facts.extend(filtering);
    if report.behind_nat != Some(false) {
        facts.push(allocation_words(report));
    }
    match report.hairpinning {
        Some(true) => facts.push("hairpins".into()),
        Some(false) => facts.push("no hairpin".into()),
        None => {}
    }
    let mut line = facts.join(", ");
    if let Some(reach) = reach(report, transport) {
        line.push_str(&format!(
            "; {} ({})",
            punch_words(&reach),
            reach.difficulty().as_str()
        ));
    }
    line
}

fn mapping_words(report: &TransportReport) -> String {
    match (report.mapping, report.mapping_varies_by_dest_ip) {
        (Some(mapping), _) => format!("{} mapping", mapping.as_str()),
        (None, Some(true)) => "mapping varies by destination IP".into(),
        (None, Some(false)) => "mapping kept across server IPs".into(),
        (None, None) => "mapping not tested".into(),
    }
}

fn allocation_words(report: &TransportReport) -> String {
    let allocation = &report.allocation;
    match (allocation.pattern, allocation.delta) {
        (Some(Pattern::Preserving), _) => "preserving ports".into(),
        (Some(Pattern::Sequential), Some(delta)) => match report.prediction.next_port {
            Some(next) => format!("sequential ports {delta:+}, next {next}"),
            None => format!("sequential ports {delta:+}"),
        },
        (Some(Pattern::Sequential), None) => "sequential ports".into(),
        (Some(Pattern::Random), _) => "random ports".into(),
        (None, _) => "allocation unknown".into(),
    }
}

/// "reaches every peer kind directly", "reaches open, cone and sequential peers directly, not
/// random ones".
fn punch_words(reach: &Reach) -> String {
    let (reached, not): (Vec<PeerKind>, Vec<PeerKind>) =
        PeerKind::ALL.iter().partition(|&&kind| reach.reaches(kind));
    if not.is_empty() {
        return "reaches every peer kind directly".into();
    }
    let names = |kinds: &[PeerKind]| {
        let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        match names.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        }
    };
    if reached.is_empty() {
        return "reaches no peer kind directly".into();
    }
    format!(
        "reaches {} peers directly, not {} ones",
        names(&reached),
        names(&not)
    )
}

/// The whole verdict: one transport's line prefixed with its name; both in one clause when
/// they say the same, or the same but for a filtering only UDP measured, which is then marked
/// "(UDP)"; else each in turn, `UDP: … | TCP: …`. `None` when no transport was
/// measured.
pub fn line(report: &Report) -> Option<String> {
    match (report.udp.as_ref(), report.tcp.as_ref()) {
        (None, None) => None,
        (Some(udp), None) => Some(format!("UDP: {}", transport_line(udp, Transport::Udp))),
        (None, Some(tcp)) => Some(format!("TCP: {}", transport_line(tcp, Transport::Tcp))),
        (Some(udp), Some(tcp)) => Some(both(udp, tcp)),
    }
}

fn both(udp: &TransportReport, tcp: &TransportReport) -> String {
    let (udp_line, tcp_line) = (
        transport_line(udp, Transport::Udp),
        transport_line(tcp, Transport::Tcp),
    );
    if udp_line == tcp_line {
        return format!("UDP and TCP: {udp_line}");
    }
    if let (Some(filtering), None) = (udp.filtering, tcp.filtering) {
        if compose(udp, Transport::Udp, None) == tcp_line {
            let marked = format!("{} filtering (UDP)", filtering.as_str());
            return format!(
                "UDP and TCP: {}",
                compose(udp, Transport::Udp, Some(marked))
            );
        }
    }
    format!("UDP: {udp_line} | TCP: {tcp_line}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fingerprint::allocation::Allocation;
    use crate::core::fingerprint::predict::{Prediction, Rule};
    use Behaviour::{
        AddressAndPortDependent as Apd, AddressDependent as Ad, EndpointIndependent as Ei,
    };

    const BEHAVIOURS: [Option<Behaviour>; 4] = [None, Some(Ei), Some(Ad), Some(Apd)];
    const PATTERNS: [Option<Pattern>; 4] = [
        None,
        Some(Pattern::Preserving),
        Some(Pattern::Sequential),
        Some(Pattern::Random),
    ];

    /// A report behind a NAT with these verdicts; a sequential one steps +1 from 40003 and
    /// predicts 40011.
    fn report(
        mapping: Option<Behaviour>,
        filtering: Option<Behaviour>,
        pattern: Option<Pattern>,
    ) -> TransportReport {
        let sequential = pattern == Some(Pattern::Sequential);
        let rule = match pattern {
            Some(Pattern::Preserving) => Some(Rule::LocalPort),
            Some(Pattern::Sequential) => Some(Rule::Sequential),
            _ => None,
        };
        TransportReport {
            public_address: "198.51.100.1:40000".parse().ok(),
            behind_nat: Some(true),
            rtt_ms: Some(20.0),
            full_mode: true,
            mapping,
            mapping_varies_by_dest_ip: None,
            filtering,
            filtering_reason: None,
            change_request: None,
            hairpinning: Some(false),
            alg: Some(false),
            allocation: Allocation {
                pattern,
                delta: sequential.then_some(1),
                jitter: sequential.then_some(0.0),
                confidence: 1.0,
                samples: 8,
                answered: 8,
                ports: Vec::new(),
                gaps: Vec::new(),
                foreign_flows_per_second: sequential.then_some(0.0),
                shared_counter: None,
            },
            prediction: Prediction {
                rule,
                next_port: sequential.then_some(40011),
                candidates: if sequential {
                    (40011..40027).collect()
                } else {
                    Vec::new()
                },
                two_probe: None,
                preset_delta: None,
            },
            lifetime: Default::default(),
            rfc3489_type: None,
            difficulty: None,
            punch: None,
        }
    }

    /// The TCP filtering the crafted SYNs measured reaches the RFC 3489 name, the punch
    /// verdict and the one line; a refused test leaves them as without it, with the reason.
    #[test]
    fn tcp_filtering_from_crafted_syns_reaches_the_verdict() {
        use crate::core::fingerprint::tcp_filtering::{
            apply, SynOutcome, SynTest, TcpFilteringRun, CHANGES,
        };
        let run = |outcome: SynOutcome| {
            let tests = CHANGES
                .into_iter()
                .map(|change| SynTest {
                    change,
                    outcome: outcome.clone(),
                })
                .collect();
            TcpFilteringRun::Ran(tests)
        };
        let before = report(Some(Ei), None, Some(Pattern::Preserving));
        assert_eq!(rfc3489_type(&before), None);
        let mut open = before.clone();
        apply(&mut open, Some(&run(SynOutcome::Answered)));
        assert_eq!(open.filtering, Some(Ei));
        assert_eq!(open.rfc3489_type, Some(Rfc3489Type::FullCone));
        let line = transport_line(&open, Transport::Tcp);
        assert!(line.contains("endpoint-independent filtering"), "{line}");
        let mut closed = before.clone();
        apply(&mut closed, Some(&run(SynOutcome::Unanswered)));
        assert_eq!(closed.rfc3489_type, Some(Rfc3489Type::PortRestrictedCone));
        assert_ne!(open.punch, None);
        let refused = SynOutcome::Refused {
            code: 420,
            reason: "TCP filtering test off: the server lacks CAP_NET_RAW".into(),
        };
        let mut unknown = before.clone();
        apply(&mut unknown, Some(&run(refused)));
        assert_eq!((unknown.filtering, unknown.rfc3489_type), (None, None));
        let reason = unknown.filtering_reason.as_deref().unwrap();
        assert!(reason.contains("lacks CAP_NET_RAW"), "{reason}");
        assert_eq!(
            transport_line(&unknown, Transport::Tcp),
            transport_line(&before, Transport::Tcp)
        );
    }

    fn no_nat(filtering: Option<Behaviour>) -> TransportReport {
        TransportReport {
            behind_nat: Some(false),
            hairpinning: None,
            ..report(Some(Ei), filtering, Some(Pattern::Preserving))
        }
    }

    #[test]
    fn rfc3489_names_every_combination() {
        use Rfc3489Type::*;
        for mapping in BEHAVIOURS {
            for filtering in BEHAVIOURS {
                for varies in [None, Some(false), Some(true)] {
                    let mut r = report(mapping, filtering, Some(Pattern::Preserving));
                    r.mapping_varies_by_dest_ip = varies;
                    let want = match (mapping, filtering, varies) {
                        (Some(Ei), Some(Ei), _) => Some(FullCone),
                        (Some(Ei), Some(Ad), _) => Some(RestrictedCone),
                        (Some(Ei), Some(Apd), _) => Some(PortRestrictedCone),
                        (Some(Ei), None, _) => None,
                        (Some(Ad | Apd), _, _) => Some(Symmetric),
                        // No RFC 5780 test: two server IPs can still prove it symmetric, but
                        // never a cone (a NAT may keep a port by luck).
                        (None, _, Some(true)) => Some(Symmetric),
                        (None, _, _) => None,
                    };
                    let context = format!("{mapping:?} {filtering:?} {varies:?}");
                    assert_eq!(rfc3489_type(&r), want, "{context}");
                    r.public_address = None;
                    assert_eq!(rfc3489_type(&r), None, "no answer: {context}");
                    r.public_address = "198.51.100.1:40000".parse().ok();
                    r.behind_nat = None;
                    assert_eq!(rfc3489_type(&r), None, "NAT unknown: {context}");
                }
            }
            let want = match mapping {
                None => None,
                Some(Ei) => Some(OpenInternet),
                Some(_) => Some(SymmetricFirewall),
            };
            assert_eq!(rfc3489_type(&no_nat(mapping)), want, "no NAT, {mapping:?}");
        }
    }

    /// What the planner does with each combination of this host's mapping, filtering and
    /// allocation, and the difficulty that follows.
    #[test]
    fn difficulty_follows_the_planner_for_every_combination() {
        for transport in [Transport::Udp, Transport::Tcp] {
            for mapping in BEHAVIOURS {
                for filtering in BEHAVIOURS {
                    for pattern in PATTERNS {
                        let r = report(mapping, filtering, pattern);
                        let context =
                            format!("{transport:?} {mapping:?} {filtering:?} {pattern:?}");
                        let fixed = mapping == Some(Ei)
                            || (mapping.is_none() && pattern == Some(Pattern::Preserving));
                        let Some(reach) = reach(&r, transport) else {
                            assert!(pattern.is_none() && mapping != Some(Ei), "{context}");
                            continue;
                        };
                        // An open peer takes anyone who aims at its one port.
                        assert_eq!(reach.open, Strategy::Direct, "{context}");
                        let want = if fixed {
                            Difficulty::Easy
                        } else if pattern == Some(Pattern::Sequential) {
                            Difficulty::Medium
                        } else {
                            Difficulty::Hard
                        };
                        assert_eq!(reach.difficulty(), want, "{context}: {reach:?}");
                        if fixed {
                            let open = matches!(filtering, Some(Ei | Ad));
                            let toward_random = if open {
                                Strategy::Direct
                            } else {
                                Strategy::Birthday
                            };
                            assert_eq!(reach.random, toward_random, "{context}");
                        } else {
                            assert_eq!(reach.random, Strategy::Refused, "{context}");
                            assert_eq!(reach.cone == Strategy::Fanout, want == Difficulty::Medium);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_line_reads_like_a_ticket() {
        let cone = report(Some(Ei), Some(Apd), Some(Pattern::Preserving));
        assert_eq!(
            transport_line(&cone, Transport::Udp),
            "endpoint-independent mapping, address-and-port-dependent filtering, preserving \
             ports, no hairpin; reaches every peer kind directly (easy)"
        );
        let symmetric = report(Some(Apd), Some(Apd), Some(Pattern::Sequential));
        assert_eq!(
            transport_line(&symmetric, Transport::Tcp),
            "address-and-port-dependent mapping, address-and-port-dependent filtering, \
             sequential ports +1, next 40011, no hairpin; reaches open, cone and sequential \
             peers directly, not random ones (medium)"
        );
        let random = report(Some(Apd), None, Some(Pattern::Random));
        assert_eq!(
            transport_line(&random, Transport::Tcp),
            "address-and-port-dependent mapping, random ports, no hairpin; reaches open and \
             cone peers directly, not sequential and random ones (hard)"
        );
        let mut basic = report(None, None, Some(Pattern::Sequential));
        basic.mapping_varies_by_dest_ip = Some(true);
        assert!(transport_line(&basic, Transport::Udp)
            .starts_with("mapping varies by destination IP, sequential ports +1"));
        assert_eq!(
            transport_line(&no_nat(Some(Ei)), Transport::Udp),
            "no NAT, endpoint-independent filtering; reaches every peer kind directly (easy)"
        );
        let mut silent = report(None, None, None);
        silent.public_address = None;
        assert_eq!(transport_line(&silent, Transport::Udp), "no answer");
    }

    #[test]
    fn one_line_for_the_report_merging_transports_that_agree() {
        let server = "192.0.2.1:3478".parse().unwrap();
        let mut both = Report::new(server);
        assert_eq!(line(&both), None);
        let cone = report(Some(Ei), None, Some(Pattern::Preserving));
        both.udp = Some(cone.clone());
        both.tcp = Some(cone);
        let text = line(&both).unwrap();
        assert!(
            text.starts_with("UDP and TCP: endpoint-independent mapping, "),
            "{text}"
        );
        assert!(!text.contains('\n'));
        // Filtering is only ever measured over UDP: said once, marked.
        both.udp = Some(report(Some(Ei), Some(Apd), Some(Pattern::Preserving)));
        assert_eq!(
            line(&both).unwrap(),
            "UDP and TCP: endpoint-independent mapping, address-and-port-dependent filtering \
             (UDP), preserving ports, no hairpin; reaches every peer kind directly (easy)"
        );
        // The transports disagree beyond filtering: each has its own clause.
        both.udp = Some(report(Some(Apd), Some(Ei), Some(Pattern::Sequential)));
        both.tcp = Some(report(Some(Apd), None, Some(Pattern::Random)));
        let text = line(&both).unwrap();
        assert!(text.starts_with("UDP: address-and-port-dependent mapping, endpoint-indep"));
        assert!(text.contains("(medium) | TCP: address-and-port-dependent mapping, random"));
        assert!(
            text.ends_with("not sequential and random ones (hard)"),
            "{text}"
        );
        both.udp = None;
        assert!(line(&both)
            .unwrap()
            .starts_with("TCP: address-and-port-dependent mapping"));
    }
}
