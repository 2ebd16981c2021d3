//! The handshake on its own: the three messages, a lost confirmation, strays and forgeries,
//! the deadline and a refused plan.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::core::punch::handshake::*;
use crate::core::punch::plan::{PunchOptions, PunchPlan, Strategy};
use crate::core::punch::plan::{DEFAULT_TIMEOUT, ROUND_INTERVAL};
use crate::core::punch::Role;
use crate::wire::natlens::NatFacts;
use crate::wire::punch::{Attempt, Punch, PunchRepr};
use crate::wire::TransactionId;

const A: &str = "198.51.100.1:40000";
const B: &str = "198.51.100.2:41000";
const STEP: Duration = Duration::from_millis(10);

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn plan(role: Role, call_id: u64) -> PunchPlan {
    let fixed = |a: &str| NatFacts {
        observed: Some(addr(a)),
        ..NatFacts::default()
    };
    let options = PunchOptions::default();
    super::plan_tests::plan_between(&fixed(A), &fixed(B), role, call_id, &options)
}

fn pair(t: Instant) -> (Handshake, Handshake) {
    let mut rng = SmallRng::seed_from_u64(5);
    (
        Handshake::new(&plan(Role::Caller, 77), t, &mut rng),
        Handshake::new(&plan(Role::Callee, 77), t, &mut rng),
    )
}

fn events(h: &mut Handshake) -> Vec<PunchEvent> {
    std::iter::from_fn(|| h.poll_event()).collect()
}

fn transmits(h: &mut Handshake) -> Vec<Transmit> {
    std::iter::from_fn(|| h.poll_transmit()).collect()
}

#[test]
fn three_messages_confirm_both_ends() {
    let t = Instant::now();
    let (mut a, mut b) = pair(t);
    a.handle_timeout(t);
    let [request] = transmits(&mut a).try_into().unwrap();
    assert_eq!((request.socket, request.to), (0, addr(B)));
    b.handle_input(t + STEP, 0, addr(A), &request.bytes);
    let [echo] = transmits(&mut b).try_into().unwrap();
    assert_eq!(echo.to, addr(A));
    assert_eq!(
        events(&mut b),
        [PunchEvent::PeerHeard {
            socket: 0,
            from: addr(A)
        }]
    );
    a.handle_input(t + 2 * STEP, 0, addr(B), &echo.bytes);
    assert!(events(&mut a).contains(&PunchEvent::Connected {
        socket: 0,
        peer: addr(B)
    }));
    let [ack] = transmits(&mut a).try_into().unwrap();
    b.handle_input(t + 3 * STEP, 0, addr(A), &ack.bytes);
    assert_eq!(
        events(&mut b),
        [PunchEvent::Connected {
            socket: 0,
            peer: addr(A)
        }]
    );
    let outcome = b.outcome().unwrap();
    assert_eq!(outcome.elapsed, 3 * STEP);
    assert_eq!(outcome.inbound.first_through, Some(STEP));
    assert_eq!(outcome.inbound.port_through, Some(41000));
    assert_eq!(outcome.inbound.packets_sent, Some(1));
    // b answers the confirmation; the answer stops a's re-sending.
    let [answer] = transmits(&mut b).try_into().unwrap();
    a.handle_input(t + 4 * STEP, 0, addr(B), &answer.bytes);
    let a_outcome = a.outcome().unwrap();
    assert_eq!(a_outcome.outbound.port_through, Some(41000));
    assert_eq!(a_outcome.outbound.offset, Some(0));
    assert_eq!(a_outcome.outbound.first_through, Some(2 * STEP));
    assert_eq!(a.poll_timeout(), Some(t + 2 * STEP + LINGER));
    a.handle_timeout(t + 2 * STEP + LINGER);
    assert!(a.is_done());
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn a_lost_confirmation_is_sent_again_until_answered() {
    let t = Instant::now();
    let (mut a, mut b) = pair(t);
    a.handle_timeout(t);
    let [request] = transmits(&mut a).try_into().unwrap();
    b.handle_input(t + STEP, 0, addr(A), &request.bytes);
    let [echo] = transmits(&mut b).try_into().unwrap();
    a.handle_input(t + 2 * STEP, 0, addr(B), &echo.bytes);
    let _lost = transmits(&mut a);
    let again = t + 2 * STEP + ROUND_INTERVAL;
    assert_eq!(a.poll_timeout(), Some(again));
    a.handle_timeout(again);
    let [ack] = transmits(&mut a).try_into().unwrap();
    b.handle_input(again + STEP, 0, addr(A), &ack.bytes);
    assert!(b.outcome().unwrap().connected);
    let [answer] = transmits(&mut b).try_into().unwrap();
    a.handle_input(again + 2 * STEP, 0, addr(B), &answer.bytes);
    a.handle_timeout(again + ROUND_INTERVAL);
    assert!(transmits(&mut a).is_empty(), "answered: no more re-sends");
}

#[test]
fn strays_and_forgeries_never_count() {
    let t = Instant::now();
    let (mut a, mut b) = pair(t);
    a.handle_timeout(t);
    let [request] = transmits(&mut a).try_into().unwrap();
    // The right bytes from another address, and garbage from the peer.
    b.handle_input(t, 0, addr("203.0.113.5:41000"), &request.bytes);
    b.handle_input(t, 0, addr(A), b"not stun at all, 20+ bytes long");
    // Another call's request from the peer's address.
    let mut other = Handshake::new(&plan(Role::Caller, 78), t, &mut SmallRng::seed_from_u64(9));
    other.handle_timeout(t);
    let [stray] = transmits(&mut other).try_into().unwrap();
    b.handle_input(t, 0, addr(A), &stray.bytes);
    assert!(transmits(&mut b).is_empty());
    assert_eq!(b.dropped(), 3);
    // An echo of a nonce that is not ours, from the peer, with the right call ID.
    let forged = PunchRepr {
        echo_response: true,
        tid: TransactionId([1; 12]),
        call_id: 77,
        nonce: 1,
        echo: Some(a.nonce() ^ 1),
        target: None,
        mapped: None,
        attempt: None,
    };
    let mut bytes = Vec::new();
    forged.emit(&mut bytes);
    a.handle_input(t + STEP, 0, addr(B), &bytes);
    assert!(a.outcome().is_none());
    assert!(!events(&mut a)
        .iter()
        .any(|e| matches!(e, PunchEvent::Connected { .. })));
    // Our own request reflected back (a hairpin or a loop) is not the peer's.
    a.handle_input(t + STEP, 0, addr(B), &request.bytes);
    assert!(transmits(&mut a).is_empty());
    assert_eq!(a.dropped(), 2);
}

#[test]
fn silence_fails_at_the_deadline_with_a_reason() {
    let t = Instant::now();
    let (mut a, _) = pair(t);
    let mut now = t;
    while let Some(at) = a.poll_timeout() {
        now = at;
        a.handle_timeout(now);
        transmits(&mut a);
    }
    assert_eq!(now, t + DEFAULT_TIMEOUT);
    let outcome = a.outcome().unwrap();
    assert!(!outcome.connected);
    assert_eq!(outcome.outbound.packets_sent, Some(50));
    let reason = outcome.reason.as_deref().unwrap();
    assert!(
        reason.starts_with("no punch packet got through"),
        "{reason}"
    );
    assert!(matches!(
        events(&mut a).as_slice(),
        [PunchEvent::Failed { .. }]
    ));
}

#[test]
fn a_refused_plan_fails_at_once() {
    let mut plan = plan(Role::Caller, 1);
    plan.strategy = Strategy::Refused;
    plan.reason = "refused".into();
    let t = Instant::now();
    let mut h = Handshake::new(&plan, t, &mut SmallRng::seed_from_u64(1));
    assert!(h.is_done());
    assert_eq!(h.outcome().unwrap().reason.as_deref(), Some("refused"));
    assert_eq!(
        events(&mut h),
        [PunchEvent::Failed {
            reason: "refused".into()
        }]
    );
}

proptest! {
    // Failing cases are kept beside this file (see test_support::proptest_config).
    #![proptest_config(crate::test_support::proptest_config())]

    #[test]
    fn arbitrary_bytes_never_panic_nor_confirm(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let t = Instant::now();
        let (mut a, _) = pair(t);
        a.handle_input(t, 0, addr(B), &bytes);
        prop_assert!(a.outcome().is_none());
        prop_assert!(transmits(&mut a).len() <= 1);
    }

    #[test]
    fn mutated_requests_never_confirm(flips in proptest::collection::vec((0usize..100, any::<u8>()), 1..6)) {
        let t = Instant::now();
        let (mut a, mut b) = pair(t);
        a.handle_timeout(t);
        let [request] = transmits(&mut a).try_into().unwrap();
        b.handle_input(t, 0, addr(A), &request.bytes);
        let [mut echo] = transmits(&mut b).try_into().unwrap();
        for (at, value) in flips {
            let len = echo.bytes.len();
            echo.bytes[at % len] = value;
        }
        let intact = Punch::new_checked(&echo.bytes[..])
            .is_ok_and(|m| m.echo() == Some(a.nonce()) && m.call_id() == 77);
        a.handle_input(t, 0, addr(B), &echo.bytes);
        // FINGERPRINT catches nearly every flip; one that leaves a valid echo of our nonce is
        // still a real echo.
        prop_assert_eq!(a.outcome().is_some(), intact);
    }

    #[test]
    fn messages_round_trip(
        echo_response in any::<bool>(),
        call_id in any::<u64>(),
        nonce in any::<u64>(),
        echo in any::<u64>(),
        port in 1u16..,
        index in any::<u32>(),
        sent in any::<u32>(),
    ) {
        let address = SocketAddr::from(([198, 51, 100, 9], port));
        let message = PunchRepr {
            echo_response,
            tid: TransactionId([4; 12]),
            call_id,
            nonce,
            echo: Some(echo),
            target: (!echo_response).then_some(address),
            mapped: echo_response.then_some(address),
            attempt: Some(Attempt { index, sent }),
        };
        let mut buf = Vec::new();
        let bytes = message.emit(&mut buf).to_vec();
        let punch = Punch::new_checked(&bytes[..]);
        prop_assert_eq!(punch.map(|punch| PunchRepr::parse(&punch)), Ok(message));
    }
}
