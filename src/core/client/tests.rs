//! Virtual-clock tests of the client session. Server messages are built by hand with
//! `MessageBuilder`, as a server would put them on the wire.

use super::*;
use crate::wire::attr::{self, AttrType};
use crate::wire::natlens::error;
use crate::wire::natlens::Transports;
use crate::wire::{MessageBuilder, MessageType, Method};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

const ALICE_PUBLIC: &str = "198.51.100.7:40001";
const BOB_PUBLIC: &str = "203.0.113.9:51000";

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn start(transport: Transport) -> (ClientSession<StdRng>, Instant) {
    let now = Instant::now();
    let config = ClientConfig::new("alice", transport, Duration::from_secs(15));
    (
        ClientSession::new(config, now, StdRng::seed_from_u64(7)),
        now,
    )
}

fn sent(session: &mut ClientSession<StdRng>) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| session.poll_transmit()).collect()
}

fn events(session: &mut ClientSession<StdRng>) -> Vec<ClientEvent> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

/// The one message sent, checked to be a request of `method`.
fn one_request(session: &mut ClientSession<StdRng>, method: Method) -> Vec<u8> {
    let mut sent = sent(session);
    assert_eq!(sent.len(), 1, "expected one message");
    let bytes = sent.remove(0);
    let message = Message::parse(&bytes).unwrap();
    assert_eq!(
        message.message_type(),
        MessageType::new(method, Class::Request)
    );
    bytes
}

/// A response from the server to `request`, with attributes written by `build`.
fn respond(request: &[u8], class: Class, build: impl FnOnce(&mut MessageBuilder<'_>)) -> Vec<u8> {
    let request = Message::parse(request).unwrap();
    let mut bytes = Vec::new();
    let ty = MessageType::new(request.method(), class);
    let mut builder = MessageBuilder::new(&mut bytes, ty, request.transaction_id());
    build(&mut builder);
    bytes
}

fn error(request: &[u8], code: u16, reason: &str) -> Vec<u8> {
    respond(request, Class::Error, |b| {
        b.error_code(code, reason);
    })
}

fn mapped(request: &[u8], observed: &str, expiry: Option<u32>) -> Vec<u8> {
    respond(request, Class::Success, |b| {
        b.xor_address(AttrType::XOR_MAPPED_ADDRESS, &addr(observed));
        if let Some(secs) = expiry {
            b.u32(natlens::EXPIRY, secs);
        }
    })
}

/// Starts a session and answers its LOGIN; returns it logged in, events drained.
fn logged_in(transport: Transport) -> (ClientSession<StdRng>, Instant) {
    let (mut session, now) = start(transport);
    let login = one_request(&mut session, natlens::LOGIN);
    session.handle_input(now, &mapped(&login, ALICE_PUBLIC, Some(45)));
    assert!(session.is_logged_in());
    events(&mut session);
    (session, now)
}

/// Runs every timer up to and including `until`.
fn advance(session: &mut ClientSession<StdRng>, until: Instant) {
    while let Some(at) = session.poll_timeout().filter(|at| *at <= until) {
        session.handle_timeout(at);
    }
}

/// A CALL request as the server delivers it to the callee.
fn delivered_call(tid: u8, extra: impl FnOnce(&mut MessageBuilder<'_>)) -> Vec<u8> {
    let mut bytes = Vec::new();
    let ty = MessageType::new(natlens::CALL, Class::Request);
    let mut b = MessageBuilder::new(&mut bytes, ty, TransactionId([tid; 12]));
    b.attribute(natlens::PEER_ID, b"bob");
    b.attribute(natlens::CALL_ID, &0x0123_4567_89ab_cdefu64.to_be_bytes());
    let facts = NatFacts {
        observed: Some(addr(BOB_PUBLIC)),
        transports: Transports {
            udp: true,
            tcp: false,
        },
        ..NatFacts::default()
    };
    facts.encode(&mut b);
    extra(&mut b);
    bytes
}

#[test]
fn login_carries_the_id_and_reports_observed_address() {
    let (mut session, now) = start(Transport::Udp);
    let login = one_request(&mut session, natlens::LOGIN);
    let message = Message::parse(&login).unwrap();
    assert_eq!(natlens::read_name(&message, natlens::ID), Some(Ok("alice")));
    session.handle_input(now, &mapped(&login, ALICE_PUBLIC, Some(45)));
    assert_eq!(
        events(&mut session),
        [ClientEvent::LoggedIn {
            observed: addr(ALICE_PUBLIC),
            udp_expiry: Some(Duration::from_secs(45)),
        }]
    );
    assert_eq!(session.observed(), Some(addr(ALICE_PUBLIC)));
    assert_eq!(session.poll_timeout(), Some(now + Duration::from_secs(15)));
}

#[test]
fn refused_login_closes_the_session() {
    let (mut session, now) = start(Transport::Udp);
    let login = one_request(&mut session, natlens::LOGIN);
    session.handle_input(now, &error(&login, error::ID_TAKEN, "ID already logged in"));
    assert_eq!(
        events(&mut session),
        [ClientEvent::LoginRefused {
            code: 409,
            reason: "ID already logged in".into()
        }]
    );
    assert!(session.is_closed());
    assert_eq!(session.poll_timeout(), None);
    // A late duplicate of the refusal is a stray now.
    session.handle_input(now, &error(&login, 409, "ID already logged in"));
    assert_eq!(session.stats().stray_responses, 1);
}

#[test]
fn udp_login_retransmits_then_gives_up_at_the_login_timeout() {
    let (mut session, start_at) = start(Transport::Udp);
    let first = one_request(&mut session, natlens::LOGIN);
    let mut sends_at = vec![0];
    while let Some(at) = session.poll_timeout() {
        session.handle_timeout(at);
        for bytes in sent(&mut session) {
            assert_eq!(bytes, first, "a retransmission repeats the request exactly");
            sends_at.push((at - start_at).as_millis());
        }
        if session.is_closed() {
            assert_eq!(at - start_at, LOGIN_TIMEOUT);
        }
    }
    // RFC 8489 §6.2.1 schedule, cut to the 10 s login budget.
    assert_eq!(sends_at, [0, 500, 1500, 3500, 7500]);
    assert_eq!(
        events(&mut session),
        [ClientEvent::ServerUnreachable { lost: Lost::Login }]
    );
    assert_eq!(session.stats().retransmissions, 4);
}

#[test]
fn an_unreachable_server_ends_the_first_login_at_once_and_only_it() {
    let (mut session, _) = start(Transport::Udp);
    one_request(&mut session, natlens::LOGIN);
    session.handle_unreachable();
    assert_eq!(
        events(&mut session),
        [ClientEvent::ServerUnreachable { lost: Lost::Login }]
    );
    assert!(session.is_closed());
    assert_eq!(session.poll_timeout(), None);
    // A logged-in session rides out the news: the server may be restarting.
    let (mut session, _) = logged_in(Transport::Udp);
    session.handle_unreachable();
    assert!(!session.is_closed());
    assert!(events(&mut session).is_empty());
}

#[test]
fn tcp_login_is_sent_once() {
    let (mut session, start_at) = start(Transport::Tcp);
    one_request(&mut session, natlens::LOGIN);
    assert_eq!(session.poll_timeout(), Some(start_at + LOGIN_TIMEOUT));
    session.handle_timeout(start_at + LOGIN_TIMEOUT);
    assert!(sent(&mut session).is_empty());
    assert_eq!(
        events(&mut session),
        [ClientEvent::ServerUnreachable { lost: Lost::Login }]
    );
}

#[test]
fn a_late_answer_to_a_retransmitted_login_still_counts() {
    let (mut session, now) = start(Transport::Udp);
    let login = one_request(&mut session, natlens::LOGIN);
    advance(&mut session, now + Duration::from_millis(1600));
    assert_eq!(sent(&mut session).len(), 2);
    session.handle_input(
        now + Duration::from_millis(1700),
        &mapped(&login, ALICE_PUBLIC, None),
    );
    assert!(session.is_logged_in());
}

#[test]
fn keepalives_follow_the_interval_and_fit_the_server_expiry() {
    let (mut session, now) = start(Transport::Udp);
    let login = one_request(&mut session, natlens::LOGIN);
    // The server forgets silent sessions after 30 s: a 15 s keepalive would leave no margin.
    session.handle_input(now, &mapped(&login, ALICE_PUBLIC, Some(30)));
    events(&mut session);
    assert_eq!(session.keepalive_interval(), Duration::from_secs(10));
    let mut sent_at = Vec::new();
    for round in 1..=3u64 {
        let due = now + Duration::from_secs(10 * round);
        assert_eq!(session.poll_timeout(), Some(due));
        session.handle_timeout(due);
        let keepalive = one_request(&mut session, natlens::KEEPALIVE);
        let message = Message::parse(&keepalive).unwrap();
        assert_eq!(natlens::read_name(&message, natlens::ID), Some(Ok("alice")));
        session.handle_input(due, &mapped(&keepalive, ALICE_PUBLIC, None));
        sent_at.push((due - now).as_secs());
    }
    assert_eq!(sent_at, [10, 20, 30]);
    assert!(events(&mut session).is_empty());
}

#[test]
fn tcp_keeps_alive_at_the_configured_interval() {
    let (mut session, now) = logged_in(Transport::Tcp);
    assert_eq!(session.keepalive_interval(), Duration::from_secs(15));
    session.handle_timeout(now + Duration::from_secs(15));
    one_request(&mut session, natlens::KEEPALIVE);
}

#[test]
fn keepalive_reports_a_new_public_address() {
    let (mut session, now) = logged_in(Transport::Udp);
    let at = now + Duration::from_secs(15);
    session.handle_timeout(at);
    let keepalive = one_request(&mut session, natlens::KEEPALIVE);
    session.handle_input(at, &mapped(&keepalive, "198.51.100.7:40777", None));
    assert_eq!(
        events(&mut session),
        [ClientEvent::ObservedChanged {
            old: addr(ALICE_PUBLIC),
            new: addr("198.51.100.7:40777"),
        }]
    );
}

#[test]
fn unanswered_keepalive_means_the_server_is_gone() {
    let (mut session, now) = logged_in(Transport::Udp);
    advance(&mut session, now + Duration::from_secs(15) + LOGIN_TIMEOUT);
    assert_eq!(
        events(&mut session),
        [ClientEvent::ServerUnreachable {
            lost: Lost::Keepalive
        }]
    );
    assert!(session.is_closed());
}

#[test]
fn answer_437_logs_in_again() {
    let (mut session, now) = logged_in(Transport::Udp);
    let at = now + Duration::from_secs(15);
    session.handle_timeout(at);
    let keepalive = one_request(&mut session, natlens::KEEPALIVE);
    session.handle_input(at, &error(&keepalive, error::NO_SESSION, "no such session"));
    assert!(!session.is_logged_in());
    let login = one_request(&mut session, natlens::LOGIN);
    session.handle_input(at, &mapped(&login, ALICE_PUBLIC, Some(45)));
    assert_eq!(
        events(&mut session),
        [ClientEvent::Relogin {
            observed: addr(ALICE_PUBLIC),
            udp_expiry: Some(Duration::from_secs(45)),
        }]
    );
    assert_eq!(
        session.poll_timeout(),
        Some(at + Duration::from_secs(15)),
        "keepalives restart from the new login"
    );
}

#[test]
fn refused_relogin_closes_the_session() {
    let (mut session, now) = logged_in(Transport::Tcp);
    session.handle_timeout(now + Duration::from_secs(15));
    let keepalive = one_request(&mut session, natlens::KEEPALIVE);
    session.handle_input(now, &error(&keepalive, 437, "no such session"));
    let login = one_request(&mut session, natlens::LOGIN);
    session.handle_input(now, &error(&login, 409, "ID already logged in"));
    assert!(matches!(
        events(&mut session).as_slice(),
        [ClientEvent::LoginRefused { code: 409, .. }]
    ));
    assert!(session.is_closed());
}

#[test]
fn incoming_call_is_answered_once_even_if_retransmitted() {
    let (mut session, now) = logged_in(Transport::Udp);
    let own = NatFacts {
        transports: Transports {
            udp: true,
            tcp: true,
        },
        delta: Some(2),
        ..NatFacts::default()
    };
    session.set_facts(own.clone());
    let request = delivered_call(5, |_| {});
    session.handle_input(now, &request);
    let answer = sent(&mut session);
    assert_eq!(answer.len(), 1);
    let message = Message::parse(&answer[0]).unwrap();
    assert_eq!(
        message.message_type(),
        MessageType::new(natlens::CALL, Class::Success)
    );
    assert_eq!(message.transaction_id(), TransactionId([5; 12]));
    assert_eq!(
        natlens::read_call_id(&message),
        Some(Ok(0x0123_4567_89ab_cdef))
    );
    assert_eq!(NatFacts::decode(&message).unwrap(), own);
    assert_eq!(
        events(&mut session),
        [ClientEvent::IncomingCall {
            caller: "bob".into(),
            call_id: 0x0123_4567_89ab_cdef,
            facts: NatFacts {
                observed: Some(addr(BOB_PUBLIC)),
                transports: Transports {
                    udp: true,
                    tcp: false
                },
                ..NatFacts::default()
            },
        }]
    );
    // The server's retransmission: same bytes back, no second event.
    session.handle_input(now + Duration::from_millis(500), &request);
    assert_eq!(sent(&mut session), answer);
    assert!(events(&mut session).is_empty());
    assert_eq!(session.stats().repeated_requests, 1);
}

#[test]
fn answers_are_forgotten_after_the_cache_ttl() {
    let (mut session, now) = logged_in(Transport::Tcp);
    let request = delivered_call(5, |_| {});
    session.handle_input(now, &request);
    sent(&mut session);
    session.handle_timeout(now + ANSWER_CACHE_TTL);
    session.handle_input(now + ANSWER_CACHE_TTL, &request);
    assert_eq!(events(&mut session).len(), 2, "a new call after the TTL");
}

#[test]
fn unknown_required_attribute_in_a_request_earns_420() {
    let (mut session, now) = logged_in(Transport::Udp);
    let request = delivered_call(6, |b| {
        b.attribute(AttrType(0x7777), b"new");
        b.attribute(AttrType(0xC777), b"optional is fine");
    });
    session.handle_input(now, &request);
    let answer = sent(&mut session).remove(0);
    let message = Message::parse(&answer).unwrap();
    assert_eq!(message.class(), Class::Error);
    let code = message.get(AttrType::ERROR_CODE).unwrap().value;
    assert_eq!(attr::decode_error_code(code).unwrap().0, 420);
    let listed = message.get(AttrType::UNKNOWN_ATTRIBUTES).unwrap().value;
    assert_eq!(listed, [0x77, 0x77]);
    assert!(events(&mut session).is_empty());
}

#[test]
fn broken_call_requests_and_other_methods_earn_400() {
    let (mut session, now) = logged_in(Transport::Udp);
    let mut bytes = Vec::new();
    let ty = MessageType::new(natlens::CALL, Class::Request);
    MessageBuilder::new(&mut bytes, ty, TransactionId([8; 12])).attribute(natlens::PEER_ID, b"bob");
    session.handle_input(now, &bytes);
    let mut binding = Vec::new();
    let ty = MessageType::new(Method::BINDING, Class::Request);
    MessageBuilder::new(&mut binding, ty, TransactionId([9; 12]));
    session.handle_input(now, &binding);
    for answer in sent(&mut session) {
        let message = Message::parse(&answer).unwrap();
        let code = message.get(AttrType::ERROR_CODE).unwrap().value;
        assert_eq!(attr::decode_error_code(code).unwrap().0, 400);
    }
    assert!(events(&mut session).is_empty());
}

#[test]
fn outgoing_call_is_answered_with_the_callee_facts() {
    let (mut session, now) = logged_in(Transport::Udp);
    let mine = NatFacts {
        observed: session.observed(),
        transports: Transports {
            udp: true,
            tcp: false,
        },
        ..NatFacts::default()
    };
    let call_id = session.call(now, "bob", &mine);
    let request = one_request(&mut session, natlens::CALL);
    let message = Message::parse(&request).unwrap();
    assert_eq!(
        natlens::read_name(&message, natlens::PEER_ID),
        Some(Ok("bob"))
    );
    assert_eq!(natlens::read_call_id(&message), Some(Ok(call_id)));
    assert!(
        message.get(natlens::OBSERVED_ADDRESS).is_none(),
        "only servers state observed addresses"
    );
    assert_eq!(
        NatFacts::decode(&message).unwrap().transports,
        mine.transports
    );
    let bob = NatFacts {
        observed: Some(addr(BOB_PUBLIC)),
        transports: Transports {
            udp: true,
            tcp: true,
        },
        delta: Some(1),
        predicted_ports: vec![51001, 51002],
        profile: None,
        port_mapping: None,
        other_family: None,
    };
    let answer = respond(&request, Class::Success, |b| {
        b.attribute(natlens::CALL_ID, &call_id.to_be_bytes());
        bob.encode(b);
    });
    session.handle_input(now, &answer);
    assert_eq!(
        events(&mut session),
        [ClientEvent::CallAnswered {
            callee: "bob".into(),
            call_id,
            facts: bob,
        }]
    );
}

#[test]
fn outgoing_call_fails_on_404_and_on_timeout() {
    let (mut session, now) = logged_in(Transport::Udp);
    let first = session.call(now, "carol", &NatFacts::default());
    let request = one_request(&mut session, natlens::CALL);
    session.handle_input(now, &error(&request, 404, "unknown peer"));
    let second = session.call(now, "dave", &NatFacts::default());
    advance(&mut session, now + CALL_TIMEOUT);
    assert_eq!(
        events(&mut session),
        [
            ClientEvent::CallFailed {
                callee: "carol".into(),
                call_id: first,
                code: Some(404),
                reason: "unknown peer".into(),
            },
            ClientEvent::CallFailed {
                callee: "dave".into(),
                call_id: second,
                code: None,
                reason: "no answer from the server in time".into(),
            }
        ]
    );
    assert!(
        session.is_logged_in(),
        "a failed call leaves the session up"
    );
}

#[test]
fn call_refused_as_not_logged_in_triggers_relogin() {
    let (mut session, now) = logged_in(Transport::Tcp);
    session.call(now, "bob", &NatFacts::default());
    let request = one_request(&mut session, natlens::CALL);
    session.handle_input(now, &error(&request, 403, "not logged in"));
    one_request(&mut session, natlens::LOGIN);
}

#[test]
fn logout_waits_for_the_answer_or_its_timeout() {
    let (mut session, now) = logged_in(Transport::Udp);
    session.logout(now);
    let logout = one_request(&mut session, natlens::LOGOUT);
    let message = Message::parse(&logout).unwrap();
    assert_eq!(natlens::read_name(&message, natlens::ID), Some(Ok("alice")));
    session.handle_input(now, &respond(&logout, Class::Success, |_| {}));
    assert_eq!(events(&mut session), [ClientEvent::LoggedOut]);
    assert!(session.is_closed());

    let (mut session, now) = logged_in(Transport::Udp);
    session.logout(now);
    advance(&mut session, now + LOGOUT_TIMEOUT);
    assert_eq!(events(&mut session), [ClientEvent::LoggedOut]);
}

#[test]
fn closing_fails_calls_in_flight() {
    // Over UDP a disconnect (the shell found the socket unusable) ends the session.
    let (mut session, now) = logged_in(Transport::Udp);
    let call_id = session.call(now, "bob", &NatFacts::default());
    session.handle_disconnect(now);
    assert_eq!(
        events(&mut session),
        [
            ClientEvent::ServerUnreachable {
                lost: Lost::Connection
            },
            ClientEvent::CallFailed {
                callee: "bob".into(),
                call_id,
                code: None,
                reason: "the session ended first".into(),
            }
        ]
    );
    assert_eq!(session.poll_timeout(), None);
}

/// Calls in flight fail in the order they were placed, on both teardowns (session closed,
/// TCP connection lost): with hash order (or transaction-ID order) they came out shuffled.
#[test]
fn both_teardowns_fail_calls_in_the_order_they_were_placed() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let (mut session, now) = logged_in(transport);
        let callees: Vec<String> = (0..16).map(|i| format!("callee{i}")).collect();
        let placed: Vec<(String, u64)> = callees
            .iter()
            .map(|callee| {
                let call_id = session.call(now, callee, &NatFacts::default());
                (callee.clone(), call_id)
            })
            .collect();
        session.handle_disconnect(now);
        let failed: Vec<(String, u64)> = events(&mut session)
            .into_iter()
            .filter_map(|event| match event {
                ClientEvent::CallFailed {
                    callee, call_id, ..
                } => Some((callee, call_id)),
                _ => None,
            })
            .collect();
        assert_eq!(failed, placed, "{transport:?}");
    }
}

/// Runs timers up to `until` and collects the dials the session asks for.
fn dials_until(session: &mut ClientSession<StdRng>, until: Instant) -> Vec<Instant> {
    let mut dials = Vec::new();
    while let Some(at) = session.poll_timeout().filter(|at| *at <= until) {
        session.handle_timeout(at);
        if session.poll_connect() {
            dials.push(at);
        }
    }
    dials
}

#[test]
fn a_closed_tcp_connection_is_dialled_again_with_backoff_and_logged_in_again() {
    let (mut session, now) = logged_in(Transport::Tcp);
    let call_id = session.call(now, "bob", &NatFacts::default());
    sent(&mut session);
    session.handle_disconnect(now);
    assert_eq!(
        events(&mut session),
        [
            ClientEvent::CallFailed {
                callee: "bob".into(),
                call_id,
                code: None,
                reason: "the connection to the server closed".into(),
            },
            ClientEvent::ConnectionLost,
        ]
    );
    assert!(!session.is_closed());
    // Refused dials (the server is still down): 0, 0.1, 0.3, 0.7, 1.5 s, ... the waits double
    // up to the keepalive interval (15 s here, so not reached within 2 s).
    let dials = dials_until(&mut session, now + Duration::from_secs(2));
    let offsets: Vec<u128> = dials.iter().map(|at| (*at - now).as_millis()).collect();
    assert_eq!(offsets, [0, 100, 300, 700, 1500]);
    assert!(
        sent(&mut session).is_empty(),
        "nothing is sent while dialling"
    );
    // The server is back: the next dial succeeds and the session logs in again.
    let later = now + Duration::from_millis(3100);
    assert_eq!(dials_until(&mut session, later).len(), 1);
    session.handle_connected(later);
    let login = one_request(&mut session, natlens::LOGIN);
    session.handle_input(later, &mapped(&login, ALICE_PUBLIC, None));
    assert_eq!(
        events(&mut session),
        [ClientEvent::Relogin {
            observed: addr(ALICE_PUBLIC),
            udp_expiry: None
        }]
    );
    assert!(session.is_logged_in());
    // A second loss starts a fresh budget.
    session.handle_disconnect(later);
    assert_eq!(events(&mut session), [ClientEvent::ConnectionLost]);
}

#[test]
fn tcp_redials_are_capped_at_the_keepalive_interval_and_give_up_after_the_budget() {
    let now = Instant::now();
    let config = ClientConfig::new("alice", Transport::Tcp, Duration::from_millis(500));
    let mut session = ClientSession::new(config, now, StdRng::seed_from_u64(7));
    let login = one_request(&mut session, natlens::LOGIN);
    session.handle_input(now, &mapped(&login, ALICE_PUBLIC, None));
    events(&mut session);
    session.handle_disconnect(now);
    let dials = dials_until(
        &mut session,
        now + RECONNECT_BUDGET + Duration::from_secs(1),
    );
    let gaps: Vec<u128> = dials
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    assert_eq!(gaps[..4], [100, 200, 400, 500]);
    assert!(gaps.iter().all(|gap| *gap <= 500), "{gaps:?}");
    assert!(*dials.last().unwrap() < now + RECONNECT_BUDGET);
    assert_eq!(
        events(&mut session),
        [
            ClientEvent::ConnectionLost,
            ClientEvent::ServerUnreachable {
                lost: Lost::Connection
            }
        ]
    );
    assert!(session.is_closed());
}

#[test]
fn a_tcp_connection_closed_at_the_first_login_is_not_dialled_again() {
    let (mut session, now) = start(Transport::Tcp);
    session.handle_disconnect(now);
    assert_eq!(
        events(&mut session),
        [ClientEvent::ServerUnreachable {
            lost: Lost::Connection
        }]
    );
    assert!(!session.poll_connect());
}

#[test]
fn logging_out_while_dialling_ends_at_once() {
    let (mut session, now) = logged_in(Transport::Tcp);
    session.handle_disconnect(now);
    events(&mut session);
    session.logout(now);
    assert!(sent(&mut session).is_empty());
    assert_eq!(events(&mut session), [ClientEvent::LoggedOut]);
    assert!(session.is_closed());
}

#[test]
fn junk_is_counted_and_ignored() {
    let (mut session, now) = start(Transport::Udp);
    let login = one_request(&mut session, natlens::LOGIN);
    session.handle_input(now, b"");
    session.handle_input(now, b"GET / HTTP/1.1\r\n\r\nmore bytes here");
    session.handle_input(now, &login[..login.len() - 1]);
    // A response to a transaction we never started.
    let mut stray = login.clone();
    stray[8] ^= 0xFF;
    session.handle_input(now, &mapped(&stray, ALICE_PUBLIC, None));
    // Right transaction, wrong method.
    let mut wrong = mapped(&login, ALICE_PUBLIC, None);
    wrong[..2].copy_from_slice(
        &MessageType::new(natlens::CALL, Class::Success)
            .to_u16()
            .to_be_bytes(),
    );
    session.handle_input(now, &wrong);
    // Right transaction, no XOR-MAPPED-ADDRESS.
    session.handle_input(now, &respond(&login, Class::Success, |_| {}));
    let stats = session.stats();
    assert_eq!(stats.not_stun, 2);
    assert_eq!(stats.malformed, 3);
    assert_eq!(stats.stray_responses, 1);
    assert!(events(&mut session).is_empty());
    // The real answer still works.
    session.handle_input(now, &mapped(&login, ALICE_PUBLIC, None));
    assert!(session.is_logged_in());
}

#[test]
fn retry_budgets_cut_the_rfc_schedule() {
    let datagram = |sends, final_ms| Retry::Datagram {
        rto: Duration::from_millis(500),
        sends,
        final_wait: Duration::from_millis(final_ms),
    };
    let table = [
        (10_000, datagram(5, 2_500)),
        (39_500, Retry::RFC_DATAGRAM),
        (60_000, Retry::RFC_DATAGRAM),
        (2_000, datagram(3, 500)),
        (0, datagram(1, 0)),
    ];
    for (budget_ms, expected) in table {
        let budget = Duration::from_millis(budget_ms);
        assert_eq!(
            retry_within(Retry::RFC_DATAGRAM, budget),
            expected,
            "{budget_ms} ms"
        );
    }
    let stream = Retry::Stream {
        timeout: STREAM_TIMEOUT,
    };
    assert_eq!(
        retry_within(stream, LOGIN_TIMEOUT),
        Retry::Stream {
            timeout: LOGIN_TIMEOUT
        }
    );
}

#[test]
fn timeouts_fit_together() {
    // A retransmitted request from the server is answered from the cache for its whole life.
    assert!(ANSWER_CACHE_TTL >= STREAM_TIMEOUT);
    // Logging out never takes longer than logging in could.
    assert!(LOGOUT_TIMEOUT < LOGIN_TIMEOUT);
    // A login survives four lost datagrams.
    let Retry::Datagram { sends, .. } = retry_within(Retry::RFC_DATAGRAM, LOGIN_TIMEOUT) else {
        unreachable!()
    };
    assert!(sends >= 5);
    // The CLI's default keepalive (15 s) fits three times into the server's default expiry (45 s).
    let (session, _) = logged_in(Transport::Udp);
    assert_eq!(session.keepalive_interval(), Duration::from_secs(15));
}

proptest! {
    // Failing cases are kept beside this file (see test_support::proptest_config).
    #![proptest_config(crate::test_support::proptest_config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let (mut session, now) = logged_in(Transport::Udp);
        session.handle_input(now, &bytes);
        sent(&mut session);
        events(&mut session);
    }

    #[test]
    fn mutated_calls_never_panic(flips in proptest::collection::vec((0usize..200, any::<u8>()), 1..8)) {
        let (mut session, now) = logged_in(Transport::Udp);
        let mut request = delivered_call(3, |_| {});
        for (at, value) in flips {
            let len = request.len();
            request[at % len] = value;
        }
        session.handle_input(now, &request);
        session.handle_timeout(now + Duration::from_secs(1));
        prop_assert!(sent(&mut session).len() <= 1);
    }
}
