//! Hardening tests of [`ServerCore`] on a virtual clock: credentials with nonces and replay
//! refusal, ID takeover, answer sizes (no amplification), token buckets and budgets.

use std::time::{Duration, Instant};

use super::*;
use crate::core::credentials::hmac_key;
use crate::core::credentials::{Credentials, REALM};
use crate::core::events::{Command, Event};
use crate::core::nonce::NONCE_LIFETIME;
use crate::core::registry::Route;
use crate::wire::attr::decode_error_code;
use crate::wire::attr::AttrType;
use crate::wire::natlens::Transports;
use crate::wire::natlens::{self, NatFacts};
use crate::wire::stun::{Class, Message, MessageType, Method};
use crate::wire::{MessageBuilder, TransactionId};

use super::tests::{addr, request, udp, LOCAL};

const ALICE: &str = "198.51.100.7:40001";
const BOB: &str = "203.0.113.9:50000";
const CAROL: &str = "192.0.2.77:1234";

/// One server core and a virtual clock.
struct Rig {
    core: ServerCore,
    now: Instant,
}

impl Rig {
    fn new(config: ServerConfig) -> Self {
        let now = Instant::now();
        Rig {
            core: ServerCore::new(config, now, 1),
            now,
        }
    }

    fn open() -> Self {
        Rig::new(ServerConfig::new("open"))
    }

    fn with_credentials() -> Self {
        Rig::new(ServerConfig {
            credentials: Some(Credentials::from_pairs([
                ("alice", "alice-key"),
                ("bob", "bob-key"),
                ("carol", "carol-key"),
            ])),
            nonce_secret: [42; 32],
            ..ServerConfig::new("locked")
        })
    }

    /// A datagram from `remote`; the immediate answer, if any.
    fn udp(&mut self, remote: &str, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut reply = Vec::new();
        self.core
            .handle_udp(self.now, addr(LOCAL), addr(remote), bytes, &mut reply)
            .map(|_| reply)
    }

    /// Messages the core sent on its own (deliveries, relayed answers), by route.
    fn sent(&mut self) -> Vec<(Route, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(command) = self.core.poll_command() {
            if let Command::Send { route, bytes } = command {
                out.push((route, bytes));
            }
        }
        out
    }

    fn drops(&self, reason: &str) -> u64 {
        self.core.counters().drops.get(reason).copied().unwrap_or(0)
    }

    /// The full exchange: unauthenticated LOGIN, 401 with a nonce, signed LOGIN. Returns the
    /// final answer and the nonce.
    fn log_in(&mut self, remote: &str, id: &str, key: &str, tid: u8) -> (Vec<u8>, String) {
        let challenge = self.udp(remote, &login(id, tid)).expect("a 401");
        assert_eq!(code(&challenge), Some(401));
        let nonce = nonce(&challenge);
        let answer = self
            .udp(remote, &signed_login(id, key, &nonce, tid + 1))
            .expect("an answer");
        (answer, nonce)
    }
}

/// Appends the credential attributes an end adds (RFC 8489 §9.2.3), MI-SHA256 last.
fn sign(builder: &mut MessageBuilder<'_>, id: &str, key: &str, nonce: &str) {
    builder.attribute(AttrType::USERNAME, id.as_bytes());
    builder.attribute(AttrType::REALM, REALM.as_bytes());
    builder.attribute(AttrType::NONCE, nonce.as_bytes());
    builder.message_integrity_sha256(&hmac_key(id, key));
}

fn login(id: &str, tid: u8) -> Vec<u8> {
    request(natlens::LOGIN, tid, |b| {
        b.attribute(natlens::ID, id.as_bytes());
    })
}

fn signed_login(id: &str, key: &str, nonce: &str, tid: u8) -> Vec<u8> {
    request(natlens::LOGIN, tid, |b| {
        b.attribute(natlens::ID, id.as_bytes());
        sign(b, id, key, nonce);
    })
}

fn call_attrs(b: &mut MessageBuilder<'_>, callee: &str, call_id: u64) {
    b.attribute(natlens::PEER_ID, callee.as_bytes());
    b.attribute(natlens::CALL_ID, &call_id.to_be_bytes());
    NatFacts {
        transports: Transports {
            udp: true,
            tcp: false,
        },
        delta: Some(1),
        predicted_ports: vec![40002, 40003],
        ..NatFacts::default()
    }
    .encode_claims(b);
}

fn signed_call(caller: &str, key: &str, nonce: &str, callee: &str, tid: u8) -> Vec<u8> {
    request(natlens::CALL, tid, |b| {
        call_attrs(b, callee, 7);
        sign(b, caller, key, nonce);
    })
}

/// A callee's answer to a delivered CALL, signed with `key` when given.
fn callee_answer(delivered: &[u8], id: &str, key: Option<&str>) -> Vec<u8> {
    let message = Message::parse(delivered).unwrap();
    let mut buf = Vec::new();
    let mut builder = MessageBuilder::new(
        &mut buf,
        MessageType::new(natlens::CALL, Class::Success),
        message.transaction_id(),
    );
    builder.attribute(natlens::CALL_ID, &7u64.to_be_bytes());
    if let Some(key) = key {
        builder.attribute(AttrType::USERNAME, id.as_bytes());
        builder.message_integrity_sha256(&hmac_key(id, key));
    }
    builder.finish().to_vec()
}

fn code(bytes: &[u8]) -> Option<u16> {
    Message::parse(bytes)
        .unwrap()
        .get(AttrType::ERROR_CODE)
        .map(|a| decode_error_code(a.value).unwrap().0)
}

fn nonce(bytes: &[u8]) -> String {
    let message = Message::parse(bytes).unwrap();
    assert_eq!(
        message.get(AttrType::REALM).map(|a| a.value),
        Some(REALM.as_bytes())
    );
    String::from_utf8(message.get(AttrType::NONCE).expect("NONCE").value.to_vec()).unwrap()
}

#[test]
fn right_key_logs_in_and_the_answer_is_signed() {
    let mut rig = Rig::with_credentials();
    let (answer, _) = rig.log_in(ALICE, "alice", "alice-key", 1);
    let message = Message::parse(&answer).unwrap();
    assert_eq!(message.class(), Class::Success);
    assert!(integrity::verify_message_integrity_sha256(
        &message,
        &hmac_key("alice", "alice-key")
    ));
    assert_eq!(rig.core.session_counts(), (1, 0));
    assert_eq!(rig.drops("auth-required"), 1);
}

#[test]
fn wrong_key_unknown_id_and_borrowed_username_are_refused() {
    let mut rig = Rig::with_credentials();
    let challenge = rig.udp(ALICE, &login("alice", 1)).unwrap();
    let nonce = nonce(&challenge);
    let wrong = rig
        .udp(ALICE, &signed_login("alice", "guess", &nonce, 2))
        .unwrap();
    assert_eq!(code(&wrong), Some(401));
    let stranger = rig
        .udp(ALICE, &signed_login("mallory", "x", &nonce, 3))
        .unwrap();
    assert_eq!(code(&stranger), Some(401));
    // Bob's valid credentials do not buy the ID "alice".
    let borrowed = request(natlens::LOGIN, 4, |b| {
        b.attribute(natlens::ID, b"alice");
        sign(b, "bob", "bob-key", &nonce);
    });
    assert_eq!(code(&rig.udp(ALICE, &borrowed).unwrap()), Some(401));
    assert_eq!(rig.core.session_counts(), (0, 0));
    assert_eq!(rig.drops("auth-failed"), 3);
}

#[test]
fn replays_are_refused_and_retransmissions_answered() {
    let mut rig = Rig::with_credentials();
    let challenge = rig.udp(ALICE, &login("alice", 1)).unwrap();
    let nonce = nonce(&challenge);
    let captured = signed_login("alice", "alice-key", &nonce, 2);
    let first = rig.udp(ALICE, &captured).unwrap();
    assert_eq!(Message::parse(&first).unwrap().class(), Class::Success);
    // The same datagram again from the same 5-tuple: a retransmission, answered alike.
    assert_eq!(rig.udp(ALICE, &captured).as_deref(), Some(&first[..]));
    // From another port of the same IP: a replay, dropped unanswered.
    assert_eq!(rig.udp("198.51.100.7:40999", &captured), None);
    assert_eq!(rig.drops("replay"), 1);
    // From another IP: the nonce is bound to Alice's IP, so it is stale there.
    let elsewhere = rig.udp(CAROL, &captured).unwrap();
    assert_eq!(code(&elsewhere), Some(438));
    // The session is still Alice's own.
    assert_eq!(rig.core.registry.get("alice").unwrap().route, udp(ALICE));
}

#[test]
fn an_old_nonce_gets_438_with_a_new_one_that_works() {
    let mut rig = Rig::with_credentials();
    let challenge = rig.udp(ALICE, &login("alice", 1)).unwrap();
    let old = nonce(&challenge);
    rig.now += NONCE_LIFETIME;
    let stale = rig
        .udp(ALICE, &signed_login("alice", "alice-key", &old, 2))
        .unwrap();
    assert_eq!(code(&stale), Some(438));
    let fresh = nonce(&stale);
    assert_ne!(fresh, old);
    let answer = rig
        .udp(ALICE, &signed_login("alice", "alice-key", &fresh, 3))
        .unwrap();
    assert_eq!(code(&answer), None);
    assert_eq!(rig.drops("stale-nonce"), 1);
}

#[test]
fn authenticated_relogin_from_a_new_port_takes_the_id_over() {
    let mut rig = Rig::with_credentials();
    rig.log_in(ALICE, "alice", "alice-key", 1);
    let moved = "198.51.100.7:40777";
    let (answer, _) = rig.log_in(moved, "alice", "alice-key", 10);
    assert_eq!(code(&answer), None);
    assert_eq!(rig.core.registry.get("alice").unwrap().route, udp(moved));
    assert_eq!(rig.core.session_counts(), (1, 0));
    let events: Vec<Event> = std::iter::from_fn(|| rig.core.poll_event()).collect();
    assert!(events.iter().any(|e| matches!(e,
        Event::Logout { id, reason: "taken-over", .. } if id == "alice")));
}

#[test]
fn an_open_server_keeps_first_come_ownership() {
    let mut rig = Rig::open();
    assert_eq!(code(&rig.udp(ALICE, &login("alice", 1)).unwrap()), None);
    let again = rig.udp("198.51.100.7:40777", &login("alice", 2)).unwrap();
    assert_eq!(code(&again), Some(natlens::error::ID_TAKEN));
}

#[test]
fn a_call_reaches_only_the_named_callee_and_needs_its_signed_answer() {
    let mut rig = Rig::with_credentials();
    let (_, alice_nonce) = rig.log_in(ALICE, "alice", "alice-key", 1);
    rig.log_in(BOB, "bob", "bob-key", 10);
    rig.log_in(CAROL, "carol", "carol-key", 20);
    rig.sent();
    // Unsigned: challenged, nothing delivered.
    let unsigned = request(natlens::CALL, 30, |b| call_attrs(b, "bob", 7));
    assert_eq!(code(&rig.udp(ALICE, &unsigned).unwrap()), Some(401));
    assert!(rig.sent().is_empty());
    // Signed with the nonce from the login: delivered to Bob's route, and to no one else.
    let call = signed_call("alice", "alice-key", &alice_nonce, "bob", 31);
    assert_eq!(rig.udp(ALICE, &call), None, "answered later, by the relay");
    let sent = rig.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, udp(BOB));
    let delivered = sent[0].1.clone();
    let facts = NatFacts::decode(&Message::parse(&delivered).unwrap()).unwrap();
    assert_eq!(facts.observed, Some(addr(ALICE)));
    // An unsigned (or wrongly signed) answer is ignored; Carol's key does not fit either.
    for forged in [
        callee_answer(&delivered, "bob", None),
        callee_answer(&delivered, "bob", Some("carol-key")),
    ] {
        assert_eq!(rig.udp(BOB, &forged), None);
        assert!(rig.sent().is_empty());
    }
    assert_eq!(rig.drops("auth-failed"), 2);
    // Bob's signed answer goes back to Alice only.
    let signed = callee_answer(&delivered, "bob", Some("bob-key"));
    assert_eq!(rig.udp(BOB, &signed), None);
    let sent = rig.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, udp(ALICE));
    let relayed = Message::parse(&sent[0].1).unwrap();
    assert_eq!(relayed.class(), Class::Success);
    let bob_facts = NatFacts::decode(&relayed).unwrap();
    assert_eq!(bob_facts.observed, Some(addr(BOB)));
    // Carol received nothing at all (no delivery, no relayed facts).
    assert!(sent.iter().all(|(route, _)| *route != udp(CAROL)));
}

#[test]
fn a_replayed_call_from_another_port_is_dropped() {
    let mut rig = Rig::with_credentials();
    let (_, nonce) = rig.log_in(ALICE, "alice", "alice-key", 1);
    rig.log_in(BOB, "bob", "bob-key", 10);
    rig.sent();
    let call = signed_call("alice", "alice-key", &nonce, "bob", 31);
    rig.udp(ALICE, &call);
    assert_eq!(rig.sent().len(), 1);
    // Replayed from another port of Alice's IP: no session there, so refused before anything
    // else (403); from another session on that IP, the USERNAME is not that session's (401).
    let other = "198.51.100.7:40002";
    assert_eq!(code(&rig.udp(other, &call).unwrap()), Some(403));
    rig.log_in(other, "carol", "carol-key", 40);
    rig.sent();
    assert_eq!(code(&rig.udp(other, &call).unwrap()), Some(401));
    assert!(rig.sent().is_empty(), "nothing delivered to Bob again");
    // The same CALL again from Alice's own 5-tuple is a retransmission: no second delivery.
    assert_eq!(rig.udp(ALICE, &call), None);
    assert!(rig.sent().is_empty());
}

/// The amplification bound: for every request kind an unauthenticated source can send, the
/// answer's bytes per request byte must not exceed what the smallest Binding request earns.
#[test]
fn every_unauthenticated_answer_is_smaller_than_a_binding_answer() {
    let binding = request(Method::BINDING, 1, |_| {});
    let baseline = {
        let mut rig = Rig::open();
        let answer = rig.udp(ALICE, &binding).unwrap();
        eprintln!("binding: {} / {} bytes", answer.len(), binding.len());
        answer.len() as f64 / binding.len() as f64
    };
    let unknown_attr = AttrType(0x7F01);
    let kinds: Vec<(&str, bool, Vec<u8>)> = vec![
        ("binding+fingerprint", false, {
            let mut buf = Vec::new();
            let ty = MessageType::new(Method::BINDING, Class::Request);
            let mut b = MessageBuilder::new(&mut buf, ty, TransactionId([2; 12]));
            b.fingerprint();
            b.finish().to_vec()
        }),
        (
            "binding+padding",
            false,
            request(Method::BINDING, 3, |b| {
                b.attribute(AttrType::PADDING, &[0; 8]);
            }),
        ),
        (
            "binding+change-request (420)",
            false,
            request(Method::BINDING, 4, |b| {
                b.u32(AttrType::CHANGE_REQUEST, 6);
            }),
        ),
        (
            "binding+unknown (420)",
            false,
            request(Method::BINDING, 5, |b| {
                b.attribute(unknown_attr, &[]);
            }),
        ),
        ("rfc 3489 binding", false, {
            // No magic cookie: an RFC 3489 request, answered the RFC 3489 way.
            let mut bytes = request(Method::BINDING, 17, |_| {});
            bytes[4..8].copy_from_slice(&[1, 2, 3, 4]);
            bytes
        }),
        (
            "login without id",
            false,
            request(natlens::LOGIN, 6, |_| {}),
        ),
        ("login", false, login("a", 7)),
        ("login (credentials: 401)", true, login("a", 8)),
        (
            "login, bad nonce (credentials: 438)",
            true,
            signed_login("a", "k", "x", 9),
        ),
        (
            "login+unknown (420)",
            false,
            request(natlens::LOGIN, 10, |b| {
                b.attribute(natlens::ID, b"a");
                b.attribute(unknown_attr, &[]);
            }),
        ),
        (
            "keepalive (437)",
            false,
            request(natlens::KEEPALIVE, 11, |b| {
                b.attribute(natlens::ID, b"a");
            }),
        ),
        (
            "logout",
            false,
            request(natlens::LOGOUT, 12, |b| {
                b.attribute(natlens::ID, b"a");
            }),
        ),
        ("call (403)", false, request(natlens::CALL, 13, |_| {})),
        (
            "call (credentials: 403)",
            true,
            request(natlens::CALL, 14, |_| {}),
        ),
        (
            "peer-hello over udp",
            false,
            request(natlens::PEER_HELLO, 15, |_| {}),
        ),
        ("unknown method", false, request(Method(0x0FF), 16, |_| {})),
    ];
    for (name, credentials, bytes) in kinds {
        let mut rig = if credentials {
            Rig::with_credentials()
        } else {
            Rig::open()
        };
        let Some(answer) = rig.udp(ALICE, &bytes) else {
            continue;
        };
        let ratio = answer.len() as f64 / bytes.len() as f64;
        eprintln!(
            "{name}: {} / {} bytes = {ratio:.2}",
            answer.len(),
            bytes.len()
        );
        assert!(
            ratio <= baseline,
            "{name}: {} bytes for {} ({ratio:.2} > Binding's {baseline:.2})",
            answer.len(),
            bytes.len()
        );
    }
}

#[test]
fn the_token_bucket_caps_answers_per_source_ip() {
    let mut rig = Rig::new(ServerConfig {
        answer_rate: Some(100),
        ..ServerConfig::new("limited")
    });
    let binding = request(Method::BINDING, 1, |_| {});
    let answered = (0..1000)
        .filter(|i| {
            let from = format!("198.51.100.7:{}", 1000 + i);
            rig.udp(&from, &binding).is_some()
        })
        .count();
    // Ports do not matter: the victim of a forged source is an IP.
    assert_eq!(answered, 200);
    assert_eq!(rig.drops("rate-limited"), 800);
    assert!(rig.udp(BOB, &binding).is_some(), "other IPs are unaffected");
    rig.now += Duration::from_secs(1);
    let answered = (0..1000)
        .filter(|_| rig.udp(ALICE, &binding).is_some())
        .count();
    assert_eq!(answered, 100);
}

#[test]
fn per_ip_and_pending_call_budgets_refuse_and_count() {
    let mut rig = Rig::new(ServerConfig {
        max_sessions_per_ip: 2,
        max_pending_calls: 1,
        ..ServerConfig::new("budget")
    });
    for port in 1..=2 {
        let answer = rig.udp(
            &format!("198.51.100.7:{port}"),
            &login(&format!("u{port}"), port as u8),
        );
        assert_eq!(code(&answer.unwrap()), None);
    }
    let third = rig.udp("198.51.100.7:3", &login("u3", 3)).unwrap();
    assert_eq!(code(&third), Some(natlens::error::QUOTA_REACHED));
    assert_eq!(rig.drops("per-ip-limit"), 1);
    rig.udp(BOB, &login("bob", 4)).unwrap();
    // One call waits for Bob; a second is refused while it does.
    let call = |tid| request(natlens::CALL, tid, |b| call_attrs(b, "bob", u64::from(tid)));
    assert_eq!(rig.udp("198.51.100.7:1", &call(5)), None);
    let refused = rig.udp("198.51.100.7:2", &call(6)).unwrap();
    assert_eq!(code(&refused), Some(natlens::error::SERVER_FULL));
    assert_eq!(rig.drops("pending-calls-limit"), 1);
}

#[test]
fn deliveries_to_one_address_spend_its_tokens() {
    // On an open server a session may be logged in from a forged address; the calls delivered
    // to it (each retransmitted) must stay within that address's budget.
    let mut rig = Rig::new(ServerConfig {
        answer_rate: Some(5),
        ..ServerConfig::new("open")
    });
    rig.udp(BOB, &login("victim", 1)).unwrap();
    // The attacker calls over TCP (not rate-limited: TCP sources cannot be forged).
    let tcp = |rig: &mut Rig, bytes: &[u8]| {
        let mut reply = Vec::new();
        rig.core
            .handle_tcp(rig.now, 1, addr(LOCAL), addr(ALICE), bytes, &mut reply);
    };
    tcp(&mut rig, &login("attacker", 2));
    let mut delivered = 0;
    for tid in 3..60u8 {
        let call = request(natlens::CALL, tid, |b| {
            call_attrs(b, "victim", u64::from(tid))
        });
        tcp(&mut rig, &call);
        delivered += rig.sent().iter().filter(|(r, _)| *r == udp(BOB)).count();
    }
    // Burst 10, one token spent by the login answer.
    assert_eq!(delivered, 9);
}
