//! The lifetime probe against a virtual NAT on a virtual clock.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use super::*;

const SERVER: &str = "203.0.113.10:3478";
const PUBLIC_IP: &str = "198.51.100.1";
const RTT: Duration = Duration::from_millis(20);

/// A port-preserving NAT whose mappings expire after `lifetime` without refreshing traffic.
struct Nat {
    lifetime: Duration,
    outbound_refreshes: bool,
    inbound_refreshes: bool,
    /// Per slot: when its mapping was last refreshed (or made).
    refreshed: BTreeMap<Slot, Instant>,
    /// How many checks lose one of their two RESPONSE-PORT answers before the NAT.
    drop_copies: u32,
    /// How many hops away the NAT is: a packet sent with a smaller TTL never reaches it.
    hop: u8,
}

impl Nat {
    fn new(lifetime: Duration, outbound: bool, inbound: bool) -> Self {
        Nat {
            lifetime,
            outbound_refreshes: outbound,
            inbound_refreshes: inbound,
            refreshed: BTreeMap::new(),
            drop_copies: 0,
            hop: 1,
        }
    }

    fn alive(&self, slot: Slot, now: Instant) -> bool {
        self.refreshed
            .get(&slot)
            .is_some_and(|at| now.duration_since(*at) < self.lifetime)
    }

    fn outbound(&mut self, slot: Slot, ttl: Option<u8>, now: Instant) {
        if ttl.is_some_and(|ttl| ttl < self.hop) {
            return;
        }
        if !self.alive(slot, now) || self.outbound_refreshes {
            self.refreshed.insert(slot, now);
        }
    }

    /// An inbound packet to `slot`'s mapping: delivered when it is alive.
    fn inbound(&mut self, slot: Slot, now: Instant) -> bool {
        let alive = self.alive(slot, now);
        if alive && self.inbound_refreshes {
            self.refreshed.insert(slot, now);
        }
        alive
    }
}

fn port_of(slot: Slot) -> u16 {
    match slot {
        Slot::Control => 40_000,
        Slot::Rung(i) => 41_000 + i as u16,
        Slot::Refresh(Direction::Outbound) => 42_000,
        Slot::Refresh(Direction::Inbound) => 42_001,
        Slot::TtlRefresh(ttl) => 42_100 + u16::from(ttl),
    }
}

fn slot_of(port: u16, probe: &LifetimeProbe) -> Option<Slot> {
    probe.slots().into_iter().find(|s| port_of(*s) == port)
}

/// An answer on its way: (arrival at the NAT, its socket, tag, error code).
type InFlight = Reverse<(Instant, u64, Slot, u32, Option<u16>)>;

/// Runs the probe to its end; returns the facts and how long the run took.
fn run(nat: &mut Nat, max: Duration, refuse: bool) -> (LifetimeProbe, Duration) {
    let start = Instant::now();
    let server: SocketAddr = SERVER.parse().unwrap();
    let mut probe = LifetimeProbe::new(server, max, start);
    let mut flight: BinaryHeap<InFlight> = BinaryHeap::new();
    let mut now = start;
    let mut seq = 0;
    for _ in 0..100_000 {
        probe.handle_timeout(now);
        while let Some(tx) = probe.poll_transmit() {
            nat.outbound(tx.from, tx.ttl, now);
            let (to, error) = match tx.send {
                Send::Indication => continue,
                Send::Bind => (Some(tx.from), None),
                Send::Check { .. } if refuse => (Some(tx.from), Some(420)),
                Send::Check { port } => (slot_of(port, &probe), None),
            };
            if let Some(to) = to {
                seq += 1;
                flight.push(Reverse((now + RTT, seq, to, tx.tag, error)));
            }
        }
        if probe.status().finished {
            return (probe, now - start);
        }
        let next = probe.poll_timeout().expect("a timer while running");
        let arrival = flight.peek().map(|Reverse((at, ..))| *at);
        if arrival.is_some_and(|at| at <= next) {
            let Reverse((at, _, slot, tag, error)) = flight.pop().unwrap();
            now = at;
            if matches!(slot, Slot::Rung(_)) && tag > 0 && nat.drop_copies > 0 && error.is_none() {
                // The first of a check's two copies.
                if let Some(&Purpose::Copy(id)) = probe.tags.get(&tag) {
                    if probe.tags.get(&(tag + 1)) == Some(&Purpose::Copy(id)) {
                        nat.drop_copies -= 1;
                        continue;
                    }
                }
            }
            if let Some(code) = error {
                probe.handle_error(tag, code);
            } else if nat.inbound(slot, now) {
                let public = SocketAddr::new(PUBLIC_IP.parse().unwrap(), port_of(slot));
                probe.handle_answer(slot, tag, public, server, now);
            }
        } else {
            now = next.max(now);
        }
    }
    panic!("the probe never finished");
}

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

#[test]
fn the_ladder_is_fine_then_relative_and_ends_at_max() {
    let rungs = ladder(DEFAULT_MAX);
    assert_eq!(rungs[0], ms(1000));
    assert_eq!(rungs[1] - rungs[0], ms(500));
    assert_eq!(*rungs.last().unwrap(), DEFAULT_MAX);
    assert!(rungs.windows(2).all(|w| w[0] < w[1]));
    assert!(rungs.len() <= 70, "{} sockets", rungs.len());
    for w in rungs.windows(2).filter(|w| w[0] >= LINEAR_UNTIL) {
        assert!(w[1].as_secs_f64() / w[0].as_secs_f64() <= GEOMETRIC_RATIO + 0.001);
    }
    assert_eq!(ladder(ms(500)), [ms(1000)]);
}

#[test]
fn a_twenty_second_lifetime_is_found_within_three_percent_in_about_its_time() {
    let mut nat = Nat::new(ms(20_000), true, true);
    let (probe, took) = run(&mut nat, ms(40_000), false);
    assert_eq!(probe.failure(), None);
    let facts = probe.facts();
    let [lo, hi] = facts.mapping_lifetime_bracket_ms.unwrap();
    let (lo, hi) = (lo.unwrap(), hi.unwrap());
    assert!(lo < 20_000 && hi >= 20_000, "[{lo}, {hi}]");
    let found = facts.mapping_lifetime_ms.unwrap();
    assert!(found.abs_diff(20_000) <= 600, "{found}");
    assert_eq!(facts.mapping_keepalive_ms, Some(lo * 4 / 5));
    assert_eq!(facts.mapping_refreshed_by_outbound, Some(true));
    assert_eq!(facts.mapping_refreshed_by_inbound, Some(true));
    assert_eq!(facts.ttl_refresh_outermost_nat_hop, Some(1));
    assert!(took < ms(22_500), "took {took:?}");
    assert!(
        probe.refreshers.iter().all(|r| r.refreshes > 5),
        "refreshed along the ladder"
    );
    assert_eq!(
        probe.refreshers[Direction::Inbound as usize].delivered,
        probe.refreshers[Direction::Inbound as usize].refreshes,
        "every inbound refresh reached a live mapping"
    );
}

#[test]
fn a_nat_refreshing_on_outbound_only_is_told_apart() {
    let mut nat = Nat::new(ms(20_000), true, false);
    let (probe, _) = run(&mut nat, ms(40_000), false);
    let facts = probe.facts();
    assert_eq!(facts.mapping_refreshed_by_outbound, Some(true));
    assert_eq!(facts.mapping_refreshed_by_inbound, Some(false));
    // The lifetime counts from the last outbound packet here, a round trip before the answer
    // the probe counts from.
    assert!(facts.mapping_lifetime_ms.unwrap().abs_diff(20_000) <= 800);
}

#[test]
fn a_nat_refreshing_on_inbound_only_is_told_apart() {
    let mut nat = Nat::new(ms(15_000), false, true);
    let (probe, _) = run(&mut nat, ms(40_000), false);
    let facts = probe.facts();
    assert_eq!(facts.mapping_refreshed_by_outbound, Some(false));
    assert_eq!(facts.mapping_refreshed_by_inbound, Some(true));
    assert_eq!(
        facts.ttl_refresh_outermost_nat_hop, None,
        "no outbound refresh, no TTL evidence"
    );
    assert!(facts.mapping_lifetime_ms.unwrap().abs_diff(15_000) <= 600);
}

#[test]
fn ttl_limited_refreshes_find_the_hop_of_a_far_nat() {
    for hop in [3, MAX_TTL_HOPS] {
        let mut nat = Nat::new(ms(10_000), true, true);
        nat.hop = hop;
        let (probe, _) = run(&mut nat, ms(20_000), false);
        assert_eq!(
            probe.facts().ttl_refresh_outermost_nat_hop,
            Some(hop),
            "NAT at hop {hop}"
        );
    }
    let mut nat = Nat::new(ms(10_000), true, true);
    nat.hop = MAX_TTL_HOPS + 1;
    let (probe, _) = run(&mut nat, ms(20_000), false);
    assert_eq!(probe.facts().ttl_refresh_outermost_nat_hop, None, "too far");
}

#[test]
fn a_short_lifetime_is_bracketed_by_the_fine_steps() {
    let mut nat = Nat::new(ms(3_200), true, true);
    let (probe, took) = run(&mut nat, ms(40_000), false);
    let facts = probe.facts();
    assert_eq!(
        facts
            .mapping_lifetime_bracket_ms
            .map(|[lo, hi]| [lo.map(|v| v / 100), hi.map(|v| v / 100)]),
        Some([Some(30), Some(35)])
    );
    assert!(took < ms(5_000), "took {took:?}");
}

#[test]
fn a_mapping_outliving_max_has_an_open_bracket() {
    let mut nat = Nat::new(ms(300_000), true, true);
    let (probe, took) = run(&mut nat, ms(12_000), false);
    let facts = probe.facts();
    assert_eq!(facts.mapping_lifetime_ms, None);
    let [lo, hi] = facts.mapping_lifetime_bracket_ms.unwrap();
    assert!(lo.unwrap() >= 12_000 && hi.is_none(), "{lo:?} {hi:?}");
    assert_eq!(facts.mapping_refreshed_by_outbound, None, "never tested");
    assert!(took < ms(13_000));
}

#[test]
fn one_lost_answer_does_not_end_the_ladder() {
    let mut nat = Nat::new(ms(20_000), true, true);
    nat.drop_copies = 30;
    let (probe, _) = run(&mut nat, ms(40_000), false);
    assert!(probe
        .facts()
        .mapping_lifetime_ms
        .is_some_and(|found| found.abs_diff(20_000) <= 600));
}

#[test]
fn a_server_refusing_response_port_fails_the_measurement() {
    let mut nat = Nat::new(ms(20_000), true, true);
    let (probe, took) = run(&mut nat, ms(40_000), true);
    assert!(probe.failure().unwrap().contains("RESPONSE-PORT"));
    assert_eq!(probe.facts(), LifetimeFacts::default());
    assert!(took < ms(2_000));
}

#[test]
fn answers_from_elsewhere_are_ignored() {
    let now = Instant::now();
    let server: SocketAddr = SERVER.parse().unwrap();
    let mut probe = LifetimeProbe::new(server, ms(5_000), now);
    probe.handle_timeout(now);
    let tx = probe.poll_transmit().unwrap();
    let public: SocketAddr = "198.51.100.1:40000".parse().unwrap();
    let elsewhere: SocketAddr = "203.0.113.99:3478".parse().unwrap();
    probe.handle_answer(tx.from, tx.tag, public, elsewhere, now);
    probe.handle_answer(tx.from, 9_999, public, server, now);
    assert_eq!(probe.ignored, 2);
    assert_eq!(probe.control.public, None);
    probe.handle_answer(tx.from, tx.tag, public, server, now);
    assert_eq!(probe.control.public, Some(public));
}

#[test]
fn sentences_say_what_was_measured() {
    assert!(LifetimeFacts::default().sentences().is_empty());
    let facts = LifetimeFacts {
        mapping_lifetime_ms: Some(19_600),
        mapping_lifetime_bracket_ms: Some([Some(19_000), Some(20_200)]),
        mapping_keepalive_ms: Some(15_200),
        mapping_refreshed_by_outbound: Some(true),
        mapping_refreshed_by_inbound: Some(false),
        ttl_refresh_outermost_nat_hop: Some(1),
    };
    assert_eq!(
        facts.sentences(),
        [
            "An idle UDP mapping lives between 19.0 s and 20.2 s: send a keepalive at least every 15.2 s.",
            "Outgoing packets alone keep a mapping alive.",
            "Incoming packets alone do not keep a mapping alive.",
        ]
    );
}
