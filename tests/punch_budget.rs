//! natlens cannot be aimed at a third party: for any facts a server could relay and any punch
//! options, the plan sends only to the peer's public IP (as its server saw it), never more
//! packets than `--max-packets`, never faster than `--rate`, never after `--timeout`; and the
//! running handshake, fed forged probes from other addresses, sends nothing beyond its plan.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use natlens::core::punch::plan::MAX_TIMEOUT;
use natlens::core::punch::Strategy as PunchStrategy;
use natlens::core::punch::{make_plan, Handshake, PlanInput, PunchOptions, Role};
use natlens::core::Transport;
use natlens::wire::natlens::{Dependence, NatFacts, NatProfile, PortPattern, Transports};
use natlens::wire::punch::{Attempt, PunchRepr};
use natlens::wire::TransactionId;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn dependence() -> impl Strategy<Value = Option<Dependence>> {
    prop_oneof![
        Just(None),
        Just(Some(Dependence::EndpointIndependent)),
        Just(Some(Dependence::AddressDependent)),
        Just(Some(Dependence::AddressAndPortDependent)),
    ]
}

fn pattern() -> impl Strategy<Value = Option<PortPattern>> {
    prop_oneof![
        Just(None),
        Just(Some(PortPattern::Preserving)),
        Just(Some(PortPattern::Sequential)),
        Just(Some(PortPattern::Random)),
    ]
}

/// Facts as a (possibly hostile) end could send them; `observed` is what the server fills in.
fn facts() -> impl Strategy<Value = NatFacts> {
    (
        any::<[u8; 4]>(),
        1024u16..,
        proptest::option::of(-64i32..64),
        proptest::collection::vec(any::<u16>(), 0..300),
        (dependence(), dependence(), pattern(), any::<u8>()),
    )
        .prop_map(|(ip, port, delta, ports, (m, f, a, noise))| NatFacts {
            observed: Some(SocketAddr::from((ip, port))),
            transports: Transports {
                udp: true,
                tcp: true,
            },
            delta,
            predicted_ports: ports,
            profile: Some(NatProfile {
                mapping: m,
                filtering: f,
                allocation: a,
                foreign_flows_per_second: noise,
            }),
            port_mapping: None,
            other_family: None,
        })
}

fn options() -> impl Strategy<Value = PunchOptions> {
    (
        proptest::option::of(1u32..2000),
        proptest::option::of(-40i32..40),
        proptest::option::of(-40i32..40),
        0u64..60_000,
        1u32..5000,
        any::<bool>(),
        1u32..20_000,
        1u32..1024,
    )
        .prop_map(
            |(fanout, delta, preset_delta, timeout_ms, rate, force, max_packets, max_sockets)| {
                PunchOptions {
                    fanout,
                    delta,
                    preset_delta,
                    timeout: Duration::from_millis(timeout_ms),
                    rate,
                    force,
                    max_packets,
                    max_sockets,
                }
            },
        )
}

/// The most sends any window of one second may hold at `rate` packets per second: pacing is
/// one packet every 1/rate s, so a window starting on a send holds at most rate + 1.
fn max_in_a_second(times: &[Duration]) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut best = 0;
    let mut start = 0;
    for end in 0..sorted.len() {
        while sorted[end] - sorted[start] >= Duration::from_secs(1) {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn a_plan_aims_only_at_the_peer_and_stays_in_budget(
        own in facts(),
        peer in facts(),
        options in options(),
        caller in any::<bool>(),
        call_id in any::<u64>(),
    ) {
        let role = if caller { Role::Caller } else { Role::Callee };
        let plan = make_plan(&PlanInput {
            role,
            transport: Transport::Udp,
            call_id,
            own: &own,
            peer: &peer,
            options: &options,
        });
        let peer_ip = peer.observed.unwrap().ip();
        let own_ip = own.observed.unwrap().ip();
        let timeout = options.timeout.min(MAX_TIMEOUT);
        for (side, target_ip) in [(plan.local(), peer_ip), (plan.remote(), own_ip)] {
            for send in &side.sends {
                prop_assert_eq!(send.to.ip(), target_ip);
                prop_assert!(send.at < timeout);
                prop_assert!(send.socket < side.sockets.len());
            }
            prop_assert!(side.sends.len() <= options.max_packets as usize);
            let times: Vec<Duration> = side.sends.iter().map(|s| s.at).collect();
            prop_assert!(max_in_a_second(&times) <= options.rate as usize + 1);
        }
        if plan.strategy == PunchStrategy::Refused {
            prop_assert!(plan.local().sends.is_empty());
        }
    }

    #[test]
    fn a_running_handshake_sends_only_its_plan_whatever_arrives(
        own in facts(),
        peer in facts(),
        options in options(),
        forged_ip in any::<[u8; 4]>(),
        call_id in any::<u64>(),
    ) {
        let options = PunchOptions { timeout: options.timeout.min(Duration::from_secs(3)), ..options };
        let plan = make_plan(&PlanInput {
            role: Role::Caller,
            transport: Transport::Udp,
            call_id,
            own: &own,
            peer: &peer,
            options: &options,
        });
        let peer_ip = peer.observed.unwrap().ip();
        let forged = IpAddr::V4(Ipv4Addr::from(forged_ip));
        prop_assume!(forged != peer_ip);
        let start = Instant::now();
        let mut handshake = Handshake::new(&plan, start, &mut StdRng::seed_from_u64(call_id));
        let mut sent = Vec::new();
        let mut now = start;
        let mut rounds = 0;
        while let Some(next) = handshake.poll_timeout() {
            rounds += 1;
            prop_assert!(rounds < 100_000, "the handshake must end");
            now = next.max(now);
            handshake.handle_timeout(now);
            // A third party's probe carrying the right call ID, from an address that is not
            // the peer's: it must neither be answered nor redirect anything.
            let probe = PunchRepr {
                echo_response: false,
                tid: TransactionId([rounds as u8; 12]),
                call_id,
                nonce: 7,
                echo: None,
                target: None,
                mapped: None,
                attempt: Some(Attempt { index: 0, sent: 1 }),
            };
            let mut buf = Vec::new();
            handshake.handle_input(now, 0, SocketAddr::new(forged, 40000), probe.emit(&mut buf));
            while let Some(transmit) = handshake.poll_transmit() {
                sent.push((now - start, transmit.to));
            }
        }
        prop_assert!(sent.iter().all(|(_, to)| to.ip() == peer_ip), "only the peer's IP");
        prop_assert!(sent.len() <= options.max_packets as usize);
        prop_assert!(sent.len() == plan.local().sends.len(), "the plan, nothing added");
    }
}
