//! The plan and the classifier against the NAT model, through the real Binding responder: every
//! mapping × filtering × allocation combination over UDP and TCP, with contention and with loss.
//! Each run checks the verdicts against the model's configuration and the prediction against
//! the port the model really hands the next flow.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::sim::{Lab, Loss, Run};
use super::*;
use crate::core::nat_model::{Contention, NatConfig, NatModel, PortAllocation};
use crate::core::Transport;

const PUBLIC_IP: [u8; 4] = [198, 51, 100, 1];
const BEHAVIOURS: [Behaviour; 3] = [
    Behaviour::EndpointIndependent,
    Behaviour::AddressDependent,
    Behaviour::AddressAndPortDependent,
];
const ALLOCATIONS: [PortAllocation; 4] = [
    PortAllocation::Preserving,
    PortAllocation::Sequential {
        start: 40000,
        step: 1,
    },
    PortAllocation::Sequential {
        start: 50000,
        step: -2,
    },
    PortAllocation::Random { seed: 11 },
];
/// A peer the predicted flow goes to: never probed, so its flow is surely new.
const PEER: &str = "203.0.113.9:41000";

/// One NAT configuration of the matrix.
#[derive(Debug, Clone)]
struct Case {
    transport: Transport,
    config: NatConfig,
}

fn matrix() -> Vec<Case> {
    let mut cases = Vec::new();
    for transport in [Transport::Udp, Transport::Tcp] {
        for mapping in BEHAVIOURS {
            for filtering in BEHAVIOURS {
                for allocation in ALLOCATIONS {
                    let mut config =
                        NatConfig::new(IpAddr::from(PUBLIC_IP), mapping, filtering, allocation);
                    config.hairpin = cases.len() % 2 == 0;
                    cases.push(Case { transport, config });
                }
            }
        }
    }
    cases
}

fn lab(case: &Case, loss: Loss) -> Lab {
    let mut lab = Lab::new(NatModel::new(case.config.clone()), case.transport, 7);
    lab.loss = loss;
    lab
}

/// Runs the default plan and analyses it for a flow opened when the plan ends.
fn fingerprint(lab: &mut Lab) -> (Run, TransportReport) {
    let run = lab.fingerprint(&PlanConfig::default());
    let options = PredictOptions {
        since_last: run.end() - run.last_sample_at(),
        ..PredictOptions::default()
    };
    let report = analyse(&run.observations, &options);
    (run, report)
}

/// The flow a punch would open when the plan ends: a fresh socket toward a new peer.
fn next_flow(lab: &mut Lab, run: &Run) -> (u16, u16) {
    let local = lab.bind();
    let public = lab
        .nat
        .outbound(run.end(), local, PEER.parse().unwrap())
        .unwrap();
    (local.port(), public.port())
}

fn expected_pattern(allocation: PortAllocation) -> (Pattern, Option<i32>) {
    match allocation {
        PortAllocation::Preserving => (Pattern::Preserving, None),
        PortAllocation::Sequential { step, .. } => (Pattern::Sequential, Some(step)),
        PortAllocation::Random { .. } => (Pattern::Random, None),
    }
}

/// Every verdict of `report` against the model it was measured through.
fn assert_verdicts(case: &Case, report: &TransportReport) {
    let config = &case.config;
    let name = format!("{case:?}");
    assert_eq!(
        report.public_address.map(|a| a.ip()),
        Some(config.public_ip),
        "{name}"
    );
    assert_eq!(report.behind_nat, Some(true), "{name}");
    assert!(report.full_mode, "{name}");
    assert_eq!(report.mapping, Some(config.mapping), "{name}");
    match case.transport {
        Transport::Udp => {
            assert_eq!(report.filtering, Some(config.filtering), "{name}");
            let support = (config.filtering != Behaviour::AddressAndPortDependent)
                .then_some(ChangeRequestSupport::Honoured);
            assert_eq!(report.change_request, support, "{name}");
        }
        Transport::Tcp => assert_eq!(report.filtering, None, "{name}"),
    }
    assert_eq!(report.hairpinning, Some(config.hairpin), "{name}");
    assert_eq!(report.alg, Some(false), "{name}");
    let (pattern, delta) = expected_pattern(config.allocation);
    assert_eq!(report.allocation.pattern, Some(pattern), "{name}");
    assert_eq!(report.allocation.delta, delta, "{name}");
    assert!(
        report.allocation.confidence >= 0.75,
        "{name}: {:?}",
        report.allocation
    );
}

/// The prediction names the port the model really gives the next flow.
fn assert_prediction(case: &Case, lab: &mut Lab, run: &Run, report: &TransportReport) {
    let (local, real) = next_flow(lab, run);
    let prediction = &report.prediction;
    match case.config.allocation {
        PortAllocation::Random { .. } => {
            assert_eq!(prediction.next_port, None, "{case:?}");
            assert!(prediction.candidates.is_empty());
        }
        _ => assert_eq!(
            prediction.expected_public_port(local),
            Some(real),
            "{case:?}: {prediction:?} {:?}",
            report.allocation.ports
        ),
    }
}

#[test]
fn every_combination_is_classified_and_predicted() {
    for case in matrix() {
        let mut lab = lab(&case, Loss::None);
        let (run, report) = fingerprint(&mut lab);
        assert_verdicts(&case, &report);
        assert_prediction(&case, &mut lab, &run, &report);
        assert!(run.plan.deadline <= plan::MAX_DEADLINE);
    }
}

#[test]
fn every_combination_survives_losing_each_first_transmission() {
    for case in matrix()
        .into_iter()
        .filter(|c| c.transport == Transport::Udp)
    {
        let mut lab = lab(&case, Loss::FirstAttempt);
        let (run, report) = fingerprint(&mut lab);
        assert_verdicts(&case, &report);
        assert_prediction(&case, &mut lab, &run, &report);
    }
}

#[test]
fn every_combination_survives_lost_probes() {
    // Two samples, one of them the last: a mid-burst hole to bridge and a trailing one whose
    // port the predictor must still count.
    let lost = vec![Socket::Sample(2), Socket::Sample(7)];
    for case in matrix() {
        let mut lab = lab(&case, Loss::Sockets(lost.clone()));
        let (run, report) = fingerprint(&mut lab);
        assert_verdicts(&case, &report);
        assert_eq!(report.allocation.answered, 6);
        assert_prediction(&case, &mut lab, &run, &report);
    }
}

#[test]
fn one_lost_mapping_test_still_decides_the_mapping() {
    for case in matrix()
        .into_iter()
        .filter(|c| c.transport == Transport::Udp)
    {
        let mut lab = lab(&case, Loss::None);
        let mut run = lab.fingerprint(&PlanConfig::default());
        // Forget the AltPort answer, as if every attempt had been lost.
        let alt_port = run
            .observations
            .iter_mut()
            .find(|o| o.socket == Socket::Mapping && o.target == Target::AltPort)
            .unwrap();
        alt_port.answer = None;
        let report = analyse(&run.observations, &PredictOptions::default());
        assert_eq!(report.mapping, Some(case.config.mapping), "{case:?}");
    }
}

#[test]
fn contention_shows_as_gaps_and_moves_the_prediction() {
    for case in matrix() {
        let PortAllocation::Sequential { step, .. } = case.config.allocation else {
            continue;
        };
        let mut case = case;
        // 20 flows per second from other hosts, as in docs/lab.md.
        case.config.contention = Some(Contention {
            every: Duration::from_millis(50),
        });
        let mut lab = lab(&case, Loss::None);
        let (run, report) = fingerprint(&mut lab);
        let allocation = &report.allocation;
        assert_eq!(allocation.delta, Some(step), "{case:?}");
        assert_eq!(allocation.jitter, Some(0.0), "bursts keep other flows out");
        assert_eq!(allocation.gaps.len(), 1, "{case:?}: {allocation:?}");
        assert_eq!(
            (allocation.gaps[0].after, allocation.gaps[0].before),
            (3, 4)
        );
        // Whole flows counted in one pause: the rate is within one flow per pause of 20/s.
        let rate = allocation.foreign_flows_per_second.unwrap();
        let resolution = 1.0 / plan::burst_pause(Some(lab.rtt)).as_secs_f64();
        assert!((rate - 20.0).abs() <= resolution, "{rate} ± {resolution}");
        let (_, real) = next_flow(&mut lab, &run);
        let candidates = &report.prediction.candidates;
        let rank = candidates.iter().position(|&p| p == real);
        assert!(
            rank.is_some_and(|r| r < 3),
            "{case:?}: {real} in {candidates:?}"
        );
        // The claim rules, blind to contention, name a port other flows have long taken.
        assert_ne!(report.prediction.two_probe.unwrap().next_port, Some(real));
    }
}

#[test]
fn a_sample_lost_before_the_nat_is_within_the_first_candidates() {
    for case in matrix() {
        let PortAllocation::Sequential { .. } = case.config.allocation else {
            continue;
        };
        let mut lab = lab(&case, Loss::BeforeNat(vec![Socket::Sample(7)]));
        let (run, report) = fingerprint(&mut lab);
        assert_eq!(report.allocation.pattern, Some(Pattern::Sequential));
        let (_, real) = next_flow(&mut lab, &run);
        // The predictor assumes the lost sample took its port (loss beyond the NAT is far more
        // common), so the truth is its second guess.
        assert_eq!(
            report
                .prediction
                .candidates
                .get(..3)
                .map(|c| c.contains(&real)),
            Some(true)
        );
        assert_ne!(report.prediction.next_port, Some(real));
    }
}

#[test]
fn random_loss_never_breaks_allocation_or_prediction() {
    for case in matrix()
        .into_iter()
        .filter(|c| c.transport == Transport::Udp)
    {
        let mut lab = lab(&case, Loss::Random(0.1));
        let (run, report) = fingerprint(&mut lab);
        let (pattern, delta) = expected_pattern(case.config.allocation);
        assert_eq!(report.allocation.pattern, Some(pattern), "{case:?}");
        assert_eq!(report.allocation.delta, delta, "{case:?}");
        if pattern != Pattern::Random {
            let (local, real) = next_flow(&mut lab, &run);
            let prediction = &report.prediction;
            let hit = prediction.expected_public_port(local) == Some(real)
                || prediction
                    .candidates
                    .get(..3)
                    .is_some_and(|c| c.contains(&real));
            assert!(hit, "{case:?}: {real} {prediction:?}");
        }
    }
}

#[test]
fn a_server_ignoring_change_request_is_caught_not_called_open() {
    for case in matrix()
        .into_iter()
        .filter(|c| c.transport == Transport::Udp)
    {
        let mut lab = lab(&case, Loss::None);
        lab.ignore_change = true;
        let (_, report) = fingerprint(&mut lab);
        assert_eq!(
            report.change_request,
            Some(ChangeRequestSupport::Ignored),
            "{case:?}"
        );
        assert_eq!(report.filtering, None, "{case:?}");
        assert_eq!(report.mapping, Some(case.config.mapping));
    }
}

#[test]
fn a_basic_server_measures_allocation_only() {
    for case in matrix() {
        let mut lab = lab(&case, Loss::None);
        lab.full_mode = false;
        let (run, report) = fingerprint(&mut lab);
        assert!(!report.full_mode);
        assert_eq!(
            (report.mapping, report.filtering, report.change_request),
            (None, None, None)
        );
        assert_eq!(report.hairpinning, Some(case.config.hairpin));
        let (pattern, _) = expected_pattern(case.config.allocation);
        assert_eq!(report.allocation.pattern, Some(pattern), "{case:?}");
        assert_prediction(&case, &mut lab, &run, &report);
    }
}

#[test]
fn an_alg_rewriting_mapped_address_is_detected() {
    let case = &matrix()[0];
    let mut lab = lab(case, Loss::None);
    lab.alg = true;
    let (_, report) = fingerprint(&mut lab);
    assert_eq!(report.alg, Some(true));
    assert_eq!(
        report.mapping,
        Some(case.config.mapping),
        "XOR-MAPPED still decides"
    );
}

#[test]
fn a_dead_server_measures_nothing() {
    let case = &matrix()[0];
    let mut lab = lab(case, Loss::Random(1.0));
    let (_, report) = fingerprint(&mut lab);
    assert_eq!(report.public_address, None);
    assert_eq!(report.allocation.pattern, None);
    assert_eq!(report.prediction.rule, None);
    assert_eq!(
        report.narrative(Transport::Udp),
        ["Over UDP, the server never answered, so nothing could be measured."]
    );
}

/// The documented JSON schema, pinned.
#[test]
fn report_json_is_stable() {
    let mut config = NatConfig::new(
        IpAddr::from(PUBLIC_IP),
        Behaviour::EndpointIndependent,
        Behaviour::AddressAndPortDependent,
        PortAllocation::Sequential {
            start: 40000,
            step: 1,
        },
    );
    config.hairpin = true;
    let case = Case {
        transport: Transport::Udp,
        config,
    };
    let mut lab = lab(&case, Loss::None);
    let (_, udp) = fingerprint(&mut lab);
    let server: SocketAddr = "192.0.2.1:3478".parse().unwrap();
    let mut report = Report::new(server);
    report.udp = Some(udp);
    report.settle();
    report.path = Some(golden_path());
    let json = serde_json::to_string_pretty(&report).unwrap();
    assert_eq!(
        json,
        include_str!("testdata/report.json").trim_end(),
        "\n{json}"
    );
}

/// A path through a home gateway and a carrier NAT, as the lab's `--cgnat-a` builds it.
fn golden_path() -> crate::core::path::PathReport {
    use crate::core::path::{classify, judge, Hop, PathEvidence};
    let hop = |ttl: u8, address: &str, server: bool| {
        let address: IpAddr = address.parse().unwrap();
        Hop {
            ttl,
            address: Some(address),
            class: Some(classify(address)),
            rtt_ms: Some(f64::from(ttl) * 0.5),
            server,
        }
    };
    let evidence = PathEvidence {
        hops: vec![
            hop(1, "192.0.2.1", false),
            hop(2, "100.64.0.1", false),
            hop(3, "203.0.113.10", true),
        ],
        public_address: Some("203.0.113.1".parse().unwrap()),
        ..PathEvidence::default()
    };
    judge(&evidence, Some("192.0.2.10".parse().unwrap()), 1)
}

#[test]
fn narrative_explains_the_nat() {
    let mut config = NatConfig::new(
        IpAddr::from(PUBLIC_IP),
        Behaviour::AddressAndPortDependent,
        Behaviour::AddressAndPortDependent,
        PortAllocation::Sequential {
            start: 40000,
            step: 2,
        },
    );
    config.hairpin = false;
    let case = Case {
        transport: Transport::Udp,
        config,
    };
    let mut lab = lab(&case, Loss::None);
    let (_, udp) = fingerprint(&mut lab);
    let mut report = Report::new(lab.server.primary);
    report.udp = Some(udp.clone());
    let text = report.narrative().join(" ");
    for phrase in [
        "Over UDP, the server sees you as 198.51.100.1:",
        "new public port for every host and port",
        "only from the exact address and port",
        "in sequence, 2 at a time upward",
        &format!("should get port {}", udp.prediction.next_port.unwrap()),
        "does not hairpin",
        "punching toward the predicted ports",
    ] {
        assert!(text.contains(phrase), "{phrase:?} not in {text}");
    }
}

#[test]
fn narrative_ends_with_what_it_means_for_a_direct_connection() {
    use Behaviour::{AddressAndPortDependent as Apd, EndpointIndependent as Ei};
    let cases = [
        (
            Ei,
            PortAllocation::Preserving,
            false,
            "ordinary hole punching",
        ),
        (
            Apd,
            PortAllocation::Random { seed: 3 },
            false,
            "it needs many ports at once",
        ),
        (
            Apd,
            PortAllocation::Preserving,
            true,
            "could not be measured (and is not reported as open)",
        ),
    ];
    for (mapping, allocation, ignore_change, phrase) in cases {
        let config = NatConfig::new(IpAddr::from(PUBLIC_IP), mapping, Apd, allocation);
        let case = Case {
            transport: Transport::Udp,
            config,
        };
        let mut lab = lab(&case, Loss::None);
        lab.ignore_change = ignore_change;
        let (_, report) = fingerprint(&mut lab);
        let text = report.narrative(Transport::Udp).join(" ");
        assert!(text.contains(phrase), "{phrase:?} not in {text}");
    }
}

/// Confidence is a fit: a clean run is 1.0 whatever the allocation; other hosts' flows between
/// the bursts are gaps the sequential model explains, so they cost nothing; random ports fit
/// no regular pattern.
#[test]
fn confidence_measures_fit_on_clean_noisy_and_random_samples() {
    let confidence = |allocation, contention: Option<Duration>| {
        let mut config = NatConfig::new(
            IpAddr::from(PUBLIC_IP),
            Behaviour::AddressAndPortDependent,
            Behaviour::AddressAndPortDependent,
            allocation,
        );
        config.contention = contention.map(|every| Contention { every });
        let case = Case {
            transport: Transport::Udp,
            config,
        };
        let (_, report) = fingerprint(&mut lab(&case, Loss::None));
        report.allocation
    };
    let sequential = PortAllocation::Sequential {
        start: 40000,
        step: 1,
    };
    let clean = confidence(sequential, None);
    assert_eq!(clean.pattern, Some(Pattern::Sequential));
    assert_eq!(clean.confidence, 1.0, "{clean:?}");
    let noisy = confidence(sequential, Some(Duration::from_millis(20)));
    assert_eq!(noisy.pattern, Some(Pattern::Sequential));
    assert!(!noisy.gaps.is_empty(), "{noisy:?}");
    assert_eq!(noisy.confidence, 1.0, "gaps are explained: {noisy:?}");
    let preserving = confidence(PortAllocation::Preserving, None);
    assert_eq!(preserving.confidence, 1.0, "{preserving:?}");
    for seed in 1..20 {
        let random = confidence(PortAllocation::Random { seed }, None);
        assert_eq!(random.pattern, Some(Pattern::Random));
        assert!(random.confidence >= 6.0 / 7.0, "{random:?}");
    }
}

/// A fingerprint over IPv6 through the NAT model: this host at `inside`, the NAT's outside
/// address `public`, an IPv6 full-mode server.
fn fingerprint_v6(
    inside: &str,
    public: &str,
    mapping: Behaviour,
    filtering: Behaviour,
    allocation: PortAllocation,
) -> (Lab, Run, TransportReport) {
    let config = NatConfig::new(public.parse().unwrap(), mapping, filtering, allocation);
    let case = Case {
        transport: Transport::Udp,
        config,
    };
    let mut lab = lab(&case, Loss::None);
    lab.inside = inside.parse().unwrap();
    lab.server = crate::core::binding::FullMode {
        primary: "[2001:db8::10]:3478".parse().unwrap(),
        alternate: "[2001:db8::11]:3479".parse().unwrap(),
    };
    let (run, report) = fingerprint(&mut lab);
    (lab, run, report)
}

/// NAT66 and NPTv6 through the model read as what they are, with mapping and allocation as
/// over IPv4.
#[test]
fn ipv6_translation_is_told_from_the_answers() {
    let sequential = PortAllocation::Sequential {
        start: 40000,
        step: 2,
    };
    let (ei, apd) = (
        Behaviour::EndpointIndependent,
        Behaviour::AddressAndPortDependent,
    );
    let (_, run, report) = fingerprint_v6("2001:db8:a::10", "2001:db8:ff::1", apd, apd, sequential);
    assert_eq!(
        family::translation_of(&run.observations),
        Some(Translation::Nat66)
    );
    assert_eq!(report.behind_nat, Some(true));
    assert_eq!(report.mapping, Some(apd));
    assert_eq!(report.allocation.pattern, Some(Pattern::Sequential));
    assert_eq!(report.allocation.delta, Some(2));
    let preserving = PortAllocation::Preserving;
    let (_, run, report) = fingerprint_v6("2001:db8:a::10", "2001:db8:ff::10", ei, ei, preserving);
    assert_eq!(
        family::translation_of(&run.observations),
        Some(Translation::Nptv6)
    );
    assert_eq!(report.allocation.pattern, Some(Pattern::Preserving));
}

/// The documented JSON schema of a dual-stack run, pinned: IPv4 where it always was, IPv6
/// (a NAT66) under `ipv6`, and the families summary.
#[test]
fn dual_stack_report_json_is_stable() {
    let sequential = PortAllocation::Sequential {
        start: 40000,
        step: 1,
    };
    let mut config = NatConfig::new(
        IpAddr::from(PUBLIC_IP),
        Behaviour::EndpointIndependent,
        Behaviour::AddressAndPortDependent,
        sequential,
    );
    config.hairpin = true;
    let case = Case {
        transport: Transport::Udp,
        config,
    };
    let (_, udp4) = fingerprint(&mut lab(&case, Loss::None));
    let mut ipv4 = Report::new("192.0.2.1:3478".parse().unwrap());
    ipv4.udp = Some(udp4);
    ipv4.settle();
    let (lab6, run6, udp6) = fingerprint_v6(
        "2001:db8:a::10",
        "2001:db8:ff::1",
        Behaviour::AddressAndPortDependent,
        Behaviour::AddressAndPortDependent,
        PortAllocation::Sequential {
            start: 50000,
            step: 2,
        },
    );
    let mut ipv6 = Report::new(lab6.server.primary);
    ipv6.udp = Some(udp6);
    ipv6.settle();
    let ipv6 = FamilyReport::new(ipv6, family::translation_of(&run6.observations));
    let families = Families {
        ipv4: FamilyStatus::probed("192.0.2.1:3478".parse().unwrap()),
        ipv6: FamilyStatus::probed(lab6.server.primary),
    };
    let mut report = Report::dual(Some(ipv4), Some(ipv6), families).unwrap();
    report.path = Some(golden_path());
    let json = serde_json::to_string_pretty(&report).unwrap();
    assert_eq!(
        json,
        include_str!("testdata/report_dual_stack.json").trim_end(),
        "\n{json}"
    );
}
