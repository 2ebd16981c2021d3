//! The planner as a table: strategy, sockets, ports and packets for every kind of pair, the
//! schedule's pacing and growth, refusals and overrides, and the timing constants together.

use std::net::SocketAddr;
use std::time::Duration;

use crate::core::nat_model::DEFAULT_BINDING_TIMEOUT;
use crate::core::punch::birthday::{
    requests_for, BIRTHDAY_SOCKETS, TARGET_SUCCESS, TCP_TARGET_SUCCESS,
};
use crate::core::punch::fanout::MAX_FANOUT;
use crate::core::punch::handshake::LINGER;
use crate::core::punch::plan::*;
use crate::core::punch::profile::{DRIFT_WINDOW, PORT_RANGE};
use crate::core::punch::Role;
use crate::core::Transport;
use crate::wire::natlens::{Dependence, NatFacts, NatProfile, PortPattern, Transports};

use Dependence::{AddressAndPortDependent as Apd, EndpointIndependent as Ei};

/// Facts as an end with this NAT would send them.
fn facts(kind: &str, ip: [u8; 4]) -> NatFacts {
    let profile = |mapping, filtering, allocation, noise| {
        Some(NatProfile {
            mapping: Some(mapping),
            filtering: Some(filtering),
            allocation: Some(allocation),
            foreign_flows_per_second: noise,
        })
    };
    let observed = Some(SocketAddr::from((ip, 40000)));
    let transports = Transports {
        udp: true,
        tcp: false,
    };
    let (delta, predicted_ports, profile) = match kind {
        "cone" => (
            None,
            vec![40000],
            profile(Ei, Apd, PortPattern::Preserving, 0),
        ),
        "full" => (
            None,
            vec![40000],
            profile(Ei, Ei, PortPattern::Preserving, 0),
        ),
        "seq" => (
            Some(2),
            vec![40010, 40012, 40008],
            profile(Apd, Apd, PortPattern::Sequential, 20),
        ),
        "random" => (None, vec![], profile(Apd, Apd, PortPattern::Random, 0)),
        _ => unreachable!(),
    };
    NatFacts {
        observed,
        transports,
        delta,
        predicted_ports,
        profile,
        port_mapping: None,
        other_family: None,
    }
}

/// The UDP plan `role` computes for a call between `caller` and `callee`.
pub(super) fn plan_between(
    caller: &NatFacts,
    callee: &NatFacts,
    role: Role,
    call_id: u64,
    options: &PunchOptions,
) -> PunchPlan {
    let (own, peer) = match role {
        Role::Caller => (caller, callee),
        Role::Callee => (callee, caller),
    };
    make_plan(&PlanInput {
        role,
        transport: Transport::Udp,
        call_id,
        own,
        peer,
        options,
    })
}

fn plan_with(caller: &str, callee: &str, role: Role, options: &PunchOptions) -> PunchPlan {
    let (a, b) = (
        facts(caller, [198, 51, 100, 1]),
        facts(callee, [198, 51, 100, 2]),
    );
    plan_between(&a, &b, role, 99, options)
}

fn default_plan(caller: &str, callee: &str) -> PunchPlan {
    plan_with(caller, callee, Role::Caller, &PunchOptions::default())
}

/// One row: strategy, then per side (sockets, first-round far ports, all far ports, new
/// mappings at most).
type Row = (
    &'static str,
    &'static str,
    Strategy,
    [(usize, usize, usize, u32); 2],
);

#[test]
fn plan_table() {
    let h = BIRTHDAY_SOCKETS as usize;
    let n = requests_for(TARGET_SUCCESS, BIRTHDAY_SOCKETS, PORT_RANGE) as usize;
    // seq: expected 1 (40010 is one step above 40008), U = 1 + 8 + 2 = 11.
    let rows: [Row; 12] = [
        (
            "cone",
            "cone",
            Strategy::Direct,
            [(1, 1, 1, 0), (1, 1, 1, 0)],
        ),
        (
            "cone",
            "full",
            Strategy::Direct,
            [(1, 1, 1, 0), (1, 1, 1, 0)],
        ),
        (
            "full",
            "seq",
            Strategy::Direct,
            [(1, 1, 1, 0), (1, 1, 1, 1)],
        ),
        (
            "random",
            "full",
            Strategy::Direct,
            [(1, 1, 1, 1), (1, 1, 1, 0)],
        ),
        (
            "cone",
            "seq",
            Strategy::Fanout,
            [(1, 12, 256, 0), (1, 1, 1, 1)],
        ),
        (
            "seq",
            "cone",
            Strategy::Fanout,
            [(1, 1, 1, 1), (1, 12, 256, 0)],
        ),
        // Equal uncertainty: the caller steps by 2 (11 + 11 + 1), the callee by 1.
        (
            "seq",
            "seq",
            Strategy::Fanout,
            [(1, 23, 256, 256), (1, 34, 256, 256)],
        ),
        (
            "random",
            "cone",
            Strategy::Birthday,
            [(h, 1, 1, h as u32), (1, n, n, 0)],
        ),
        (
            "cone",
            "random",
            Strategy::Birthday,
            [(1, n, n, 0), (h, 1, 1, h as u32)],
        ),
        (
            "random",
            "random",
            Strategy::Refused,
            [(0, 0, 0, 0), (0, 0, 0, 0)],
        ),
        (
            "seq",
            "random",
            Strategy::Refused,
            [(0, 0, 0, 0), (0, 0, 0, 0)],
        ),
        (
            "random",
            "seq",
            Strategy::Refused,
            [(0, 0, 0, 0), (0, 0, 0, 0)],
        ),
    ];
    for (caller, callee, strategy, sides) in rows {
        let plan = default_plan(caller, callee);
        let name = format!("{caller}×{callee}");
        assert_eq!(plan.strategy, strategy, "{name}: {}", plan.reason);
        for (side, want) in [&plan.caller, &plan.callee].into_iter().zip(sides) {
            let got = (
                side.sockets.len(),
                side.first_round,
                side.predicted_ports.len(),
                side.new_mappings,
            );
            assert_eq!(got, want, "{name} {:?}", side.role);
        }
        let other = plan_with(caller, callee, Role::Callee, &PunchOptions::default());
        assert_eq!(
            (&other.caller, &other.callee),
            (&plan.caller, &plan.callee),
            "{name}"
        );
        assert_eq!(other.expected_success, plan.expected_success, "{name}");
    }
}

#[test]
fn a_symmetric_side_accounts_for_the_ports_its_own_fan_out_takes() {
    let plan = default_plan("seq", "seq");
    // The caller steps by 2 through the callee's indices: 40008, 40012, 40016, …
    assert_eq!(&plan.caller.predicted_ports[..3], [40008, 40012, 40016]);
    // Its own destination k leaves from 40010 + k·2 (most likely offset 1 from 40008).
    assert_eq!(&plan.caller.own_ports[..3], [40010, 40012, 40014]);
    assert_eq!(
        plan.caller.own_ports.len(),
        plan.caller.predicted_ports.len()
    );
    // The callee steps by 1 through the caller's.
    assert_eq!(&plan.callee.predicted_ports[..3], [40008, 40010, 40012]);
    assert_eq!(plan.expected_success, 1.0);
    // A fixed side's flows all leave from its session port, most likely target first.
    let plan = default_plan("cone", "seq");
    assert_eq!(plan.caller.sockets, [LocalSocket::Session]);
    assert_eq!(plan.caller.own_ports, [40000]);
    assert_eq!(
        &plan.caller.predicted_ports[..4],
        [40010, 40012, 40008, 40014]
    );
}

#[test]
fn a_delivering_end_knows_when_each_far_flow_is_opened() {
    let plan = default_plan("seq", "seq");
    let at = plan.far_opened();
    assert_eq!(at.len(), plan.caller.predicted_ports.len());
    // The callee's own flows leave from 40010, 40012, … one per millisecond (1,000/s):
    // 40008 is before its first (open at once), 40012 its second, 40016 its fourth.
    let ms = |d: Duration| d.as_millis();
    assert_eq!(plan.callee.own_ports[..3], [40010, 40012, 40014]);
    assert_eq!(
        at[..3].iter().map(|&d| ms(d)).collect::<Vec<_>>(),
        [0, 1, 3]
    );
    // Never earlier for a later far port, never past the peer's last flow.
    assert!(at.windows(2).all(|w| w[0] <= w[1]));
    let flows = plan.callee.own_ports.len() as u128;
    assert!(at.iter().all(|&d| ms(d) <= flows));
    // A fixed peer opens its one flow at once; an unpredicted one gives nothing.
    assert!(default_plan("seq", "cone")
        .far_opened()
        .iter()
        .all(|d| d.is_zero()));
    assert!(default_plan("cone", "random").far_opened().is_empty());
}

#[test]
fn sends_are_paced_repeated_and_cut_by_the_budget() {
    let plan = default_plan("cone", "seq");
    let sends = &plan.caller.sends;
    let gap = Duration::from_secs(1) / DEFAULT_RATE;
    assert!(sends.windows(2).all(|w| w[1].at - w[0].at >= gap));
    // Round two starts one ROUND_INTERVAL after round one: 12 new destinations, then the
    // first 12 again.
    assert_eq!(sends[12].at, ROUND_INTERVAL);
    assert_eq!(sends[12].target, 12);
    assert_eq!(sends[24].to, sends[0].to);
    assert!(sends.iter().all(|s| s.at < DEFAULT_TIMEOUT));
    // It grows by 12 a round to all 256, whose round (256 ms at 1000/s) outlasts 200 ms.
    let last = sends.last().unwrap();
    assert_eq!(sends.iter().map(|s| s.target).max(), Some(255));
    assert!(
        last.at > DEFAULT_TIMEOUT - Duration::from_millis(300),
        "{last:?}"
    );
    let tight = PunchOptions {
        max_packets: 30,
        rate: 10,
        ..PunchOptions::default()
    };
    let plan = plan_with("cone", "seq", Role::Caller, &tight);
    assert_eq!(plan.caller.sends.len(), 30);
    // 12 packets at 10/s take 1.2 s: rounds stretch to fit.
    assert_eq!(plan.caller.sends[12].at, Duration::from_millis(1200));
    // --fanout caps the growth too.
    let capped = PunchOptions {
        fanout: Some(5),
        ..PunchOptions::default()
    };
    let plan = plan_with("cone", "seq", Role::Caller, &capped);
    assert_eq!(plan.caller.predicted_ports.len(), 5);
    assert_eq!(plan.caller.sends.len(), 5 * 50);
    // A spray goes out once.
    let plan = default_plan("cone", "random");
    let sprays = requests_for(TARGET_SUCCESS, BIRTHDAY_SOCKETS, PORT_RANGE) as usize;
    assert_eq!(plan.caller.sends.len(), sprays);
    assert!(plan.expected_success >= TARGET_SUCCESS);
}

#[test]
fn refusals_say_why_and_what_force_would_give() {
    let plan = default_plan("random", "random");
    assert!(plan.reason.contains("--force"), "{}", plan.reason);
    assert!(plan.expected_success < 0.03, "{}", plan.expected_success);
    assert!(plan.caller.sends.is_empty() && plan.callee.sends.is_empty());
    let forced = PunchOptions {
        force: true,
        ..PunchOptions::default()
    };
    let plan = plan_with("seq", "random", Role::Caller, &forced);
    assert_eq!(plan.strategy, Strategy::Birthday);
    assert!(plan.expected_success < 0.01);
    assert!(plan.caller.sends.len() <= DEFAULT_MAX_PACKETS as usize);
    assert_eq!(plan.callee.sockets.len(), BIRTHDAY_SOCKETS as usize);
    let mut tcp = facts("cone", [198, 51, 100, 1]);
    let peer = facts("cone", [198, 51, 100, 2]);
    let input = |own: &NatFacts, transport| {
        make_plan(&PlanInput {
            role: Role::Caller,
            transport,
            call_id: 1,
            own,
            peer: &peer,
            options: &PunchOptions::default(),
        })
    };
    assert_eq!(input(&tcp, Transport::Tcp).strategy, Strategy::Direct);
    tcp.observed = None;
    let plan = input(&tcp, Transport::Udp);
    assert!(plan.reason.contains("public addresses"), "{}", plan.reason);
}

#[test]
fn a_smaller_fan_out_lowers_the_odds_and_the_dry_run_says_so() {
    let options = PunchOptions {
        fanout: Some(6),
        ..PunchOptions::default()
    };
    let plan = plan_with("cone", "seq", Role::Caller, &options);
    assert_eq!(plan.caller.predicted_ports.len(), 6);
    // Offsets 0..=11 equally likely, 6 covered.
    assert_eq!(plan.expected_success, 0.5);
    let text = plan.describe().join("\n");
    for needle in [
        "strategy: fanout",
        "expected success: 50.0%",
        "caller (this end)",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    let plan = plan_with("cone", "random", Role::Caller, &options);
    assert_eq!(plan.caller.predicted_ports.len(), 6);
    assert!(plan.expected_success < 0.03);
}

#[test]
fn overrides_reshape_the_far_sequence() {
    let options = PunchOptions {
        preset_delta: Some(1),
        ..PunchOptions::default()
    };
    // A random peer read with a preset delta is aimed at like a sequential one.
    let plan = plan_with("cone", "random", Role::Caller, &options);
    assert_eq!(plan.strategy, Strategy::Fanout);
    assert_eq!(plan.caller.predicted_ports[0], 40001);
}

/// Every timing constant against the others (tailscale `TestReportTimeouts`).
#[test]
fn timeouts_fit_together() {
    // Rounds retry several times before the default deadline.
    assert!(ROUND_INTERVAL * 10 <= DEFAULT_TIMEOUT);
    // No binding a punch relies on expires while it runs.
    assert!(DEFAULT_TIMEOUT <= MAX_TIMEOUT);
    assert!(MAX_TIMEOUT < UNREPLIED_UDP_TIMEOUT);
    assert!(UNREPLIED_UDP_TIMEOUT < DEFAULT_BINDING_TIMEOUT);
    assert!(ROUND_INTERVAL < UNREPLIED_UDP_TIMEOUT);
    // Lingering covers several of the peer's rounds and ends well inside a timeout.
    assert!(LINGER >= ROUND_INTERVAL * 5);
    assert!(LINGER < DEFAULT_TIMEOUT);
    // A birthday spray sized for TARGET_SUCCESS fits before the spray tail at the default
    // rate, and the holder's round fits in the tail.
    let sprays = requests_for(TARGET_SUCCESS, BIRTHDAY_SOCKETS, PORT_RANGE);
    let spray_time = Duration::from_secs(1) / DEFAULT_RATE * sprays;
    assert!(spray_time + SPRAY_TAIL <= DEFAULT_TIMEOUT);
    let holder_round = Duration::from_secs(1) / DEFAULT_RATE * BIRTHDAY_SOCKETS;
    assert!(holder_round.max(ROUND_INTERVAL) * 2 <= SPRAY_TAIL);
    // The packet budget does not cut a default-rate run short.
    assert!(
        u128::from(DEFAULT_MAX_PACKETS)
            >= DEFAULT_TIMEOUT.as_millis() * u128::from(DEFAULT_RATE) / 1000
    );
    const { assert!(BIRTHDAY_SOCKETS <= DEFAULT_MAX_SOCKETS) };
    // A full fan-out goes out well inside the drift window it was sized for.
    assert!(Duration::from_secs(1) / DEFAULT_RATE * MAX_FANOUT <= DRIFT_WINDOW);
}

#[test]
fn tcp_plans_every_pair_udp_plans_with_a_longer_birthday_spray() {
    let plan_tcp = |caller: &str, callee: &str, role: Role| {
        let (a, b) = (
            facts(caller, [198, 51, 100, 1]),
            facts(callee, [198, 51, 100, 2]),
        );
        let (own, peer) = match role {
            Role::Caller => (&a, &b),
            Role::Callee => (&b, &a),
        };
        let options = PunchOptions::default();
        let tcp = make_plan(&PlanInput {
            role,
            transport: Transport::Tcp,
            call_id: 99,
            own,
            peer,
            options: &options,
        });
        let udp = make_plan(&PlanInput {
            transport: Transport::Udp,
            role,
            call_id: 99,
            own,
            peer,
            options: &options,
        });
        (tcp, udp)
    };
    for (caller, callee) in [
        ("cone", "cone"),
        ("full", "seq"),
        ("seq", "cone"),
        ("seq", "seq"),
    ] {
        for role in [Role::Caller, Role::Callee] {
            let (tcp, udp) = plan_tcp(caller, callee, role);
            assert_ne!(tcp.strategy, Strategy::Refused, "{caller} x {callee}");
            assert_eq!(tcp.strategy, udp.strategy, "{caller} x {callee}");
            assert_eq!(tcp.transport, Transport::Tcp);
            // The same fan-out indices: the TCP facts pick the far ports.
            assert_eq!(tcp.caller.predicted_ports, udp.caller.predicted_ports);
            assert_eq!(tcp.callee.predicted_ports, udp.callee.predicted_ports);
        }
    }
    // Random against a full cone: direct, as over UDP (the random side aims at the open port).
    for (caller, callee) in [("random", "full"), ("full", "random")] {
        let (tcp, udp) = plan_tcp(caller, callee, Role::Caller);
        assert_eq!(tcp.strategy, Strategy::Direct, "{caller} x {callee}");
        assert_eq!(udp.strategy, Strategy::Direct, "{caller} x {callee}");
    }
    // Random against a port-restricted cone: a birthday either way, the random side holding
    // 256 sockets on the cone's one port, the cone spraying more than over UDP.
    for (caller, callee, holder) in [
        ("cone", "random", Role::Callee),
        ("random", "cone", Role::Caller),
    ] {
        let (tcp, udp) = plan_tcp(caller, callee, Role::Caller);
        assert_eq!(tcp.strategy, Strategy::Birthday, "{caller} x {callee}");
        assert_eq!(udp.strategy, Strategy::Birthday);
        let (hold, spray) = (tcp.side(holder), tcp.side(holder.peer()));
        assert_eq!(hold.sockets.len(), BIRTHDAY_SOCKETS as usize);
        assert_eq!(hold.predicted_ports, vec![40000]);
        let requests = requests_for(TCP_TARGET_SUCCESS, BIRTHDAY_SOCKETS, PORT_RANGE);
        assert_eq!(spray.predicted_ports.len(), requests as usize);
        assert!(requests > udp.side(holder.peer()).predicted_ports.len() as u32);
        assert!(
            tcp.expected_success >= TCP_TARGET_SUCCESS,
            "{}",
            tcp.expected_success
        );
        assert!(tcp.reason.contains("TCP"), "{}", tcp.reason);
    }
    // Random against random or sequential: refused over TCP as over UDP.
    for (caller, callee) in [("random", "random"), ("seq", "random"), ("random", "seq")] {
        let (tcp, _) = plan_tcp(caller, callee, Role::Callee);
        assert_eq!(tcp.strategy, Strategy::Refused, "{caller} x {callee}");
        assert!(tcp.reason.contains("--force"), "{}", tcp.reason);
    }
}
