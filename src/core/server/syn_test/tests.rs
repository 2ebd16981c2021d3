//! The TCP filtering test's decisions: who gets a SYN, from where, how many, and what the answer
//! says, on a virtual clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::core::binding::FullMode;
use crate::core::events::Command;
use crate::core::server::ServerConfig;
use crate::wire::attr::{decode_address, decode_error_code, decode_u32, decode_xor_address};
use crate::wire::stun::{Class, Message, MessageType, Method};
use crate::wire::{MessageBuilder, TransactionId};

const PRIMARY: &str = "192.0.2.1:3478";
const ALTERNATE: &str = "192.0.2.2:3479";
/// The requester's public address: the connection's source.
const CLIENT: &str = "198.51.100.7:40000";
const CONN: ConnId = 7;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn full_mode() -> FullMode {
    FullMode {
        primary: addr(PRIMARY),
        alternate: addr(ALTERNATE),
    }
}

fn core_with(full: bool, rate: Option<u32>) -> (ServerCore, Instant) {
    let now = Instant::now();
    let config = ServerConfig {
        full_modes: if full { vec![full_mode()] } else { Vec::new() },
        answer_rate: rate,
        ..ServerConfig::new("s")
    };
    (ServerCore::new(config, now, 1), now)
}

fn enabled() -> (ServerCore, Instant) {
    let (mut core, now) = core_with(true, None);
    core.enable_syn_tests();
    (core, now)
}

/// A Binding request with CHANGE-REQUEST, and NL-SYN-WAIT when `wait_ms` is given.
fn change_request(tid: u8, change_ip: bool, wait_ms: Option<u32>) -> Vec<u8> {
    let mut buf = Vec::new();
    let ty = MessageType::new(Method::BINDING, Class::Request);
    let mut builder = MessageBuilder::new(&mut buf, ty, TransactionId([tid; 12]));
    let change = ChangeRequest {
        change_ip,
        change_port: true,
    };
    builder.attribute(AttrType::CHANGE_REQUEST, &change.encode());
    if let Some(ms) = wait_ms {
        builder.u32(natlens::SYN_WAIT, ms);
    }
    builder.fingerprint();
    builder.finish().to_vec()
}

/// Hands `request` to the core over TCP connection `conn`; the immediate answer, if any.
fn send(core: &mut ServerCore, now: Instant, conn: ConnId, request: &[u8]) -> Option<Vec<u8>> {
    let mut reply = Vec::new();
    let answered = core.handle_tcp(now, conn, addr(PRIMARY), addr(CLIENT), request, &mut reply);
    answered.then_some(reply)
}

/// The messages the core queued for connections, in order.
fn sent(core: &mut ServerCore) -> Vec<(ConnId, Vec<u8>)> {
    std::iter::from_fn(|| core.poll_command())
        .filter_map(|command| match command {
            Command::Send {
                route: Route::Tcp { conn },
                bytes,
            } => Some((conn, bytes)),
            _ => None,
        })
        .collect()
}

/// NL-SYN-ANSWERED and RESPONSE-ORIGIN of a success answer to transaction `tid`.
fn verdict(bytes: &[u8], tid: u8) -> (u32, SocketAddr) {
    let message = Message::parse(bytes).unwrap();
    assert_eq!(message.class(), Class::Success);
    assert_eq!(message.transaction_id(), TransactionId([tid; 12]));
    let tid = message.transaction_id();
    let mapped = message.get(AttrType::XOR_MAPPED_ADDRESS).unwrap().value;
    assert_eq!(decode_xor_address(mapped, &tid).unwrap(), addr(CLIENT));
    let other = message.get(AttrType::OTHER_ADDRESS).unwrap().value;
    assert_eq!(decode_address(other).unwrap(), addr(ALTERNATE));
    assert!(message.get(AttrType::FINGERPRINT).is_some());
    let answered = decode_u32(message.get(natlens::SYN_ANSWERED).unwrap().value).unwrap();
    let origin = message.get(AttrType::RESPONSE_ORIGIN).unwrap().value;
    (answered, decode_address(origin).unwrap())
}

fn error_of(bytes: &[u8]) -> (u16, String) {
    let message = Message::parse(bytes).unwrap();
    assert_eq!(message.class(), Class::Error);
    let (code, reason) =
        decode_error_code(message.get(AttrType::ERROR_CODE).unwrap().value).unwrap();
    (code, reason.to_owned())
}

#[test]
fn without_a_raw_socket_the_test_is_refused_with_the_reason() {
    let (mut core, now) = core_with(true, None);
    let answer = send(&mut core, now, CONN, &change_request(1, true, None)).unwrap();
    assert_eq!(error_of(&answer), (420, NO_RAW_REASON.to_owned()));
    assert_eq!(core.poll_syn(), None);
}

#[test]
fn a_server_without_a_second_address_refuses_as_before() {
    let (mut core, now) = core_with(false, None);
    core.enable_syn_tests();
    let answer = send(&mut core, now, CONN, &change_request(1, true, None)).unwrap();
    assert_eq!(error_of(&answer).0, 420);
    assert_eq!(core.poll_syn(), None);
}

#[test]
fn one_syn_from_the_changed_address_to_the_requester_only() {
    let (mut core, now) = enabled();
    assert_eq!(
        send(&mut core, now, CONN, &change_request(1, true, None)),
        None
    );
    assert_eq!(
        send(&mut core, now, CONN, &change_request(2, false, None)),
        None
    );
    let both = core.poll_syn().unwrap();
    let port = core.poll_syn().unwrap();
    assert_eq!(core.poll_syn(), None, "one SYN per request");
    assert_eq!((both.from, both.to), (addr(ALTERNATE), addr(CLIENT)));
    assert_eq!((port.from, port.to), (addr("192.0.2.1:3479"), addr(CLIENT)));
    assert_ne!(both.isn, port.isn);
}

#[test]
fn an_acknowledging_answer_from_the_requester_says_answered() {
    let (mut core, now) = enabled();
    send(&mut core, now, CONN, &change_request(1, true, None));
    let syn = core.poll_syn().unwrap();
    let later = now + Duration::from_millis(30);
    // Wrong acknowledgement, wrong source, wrong port: nothing.
    core.handle_syn_reply(later, syn.to, syn.from.port(), syn.isn);
    core.handle_syn_reply(
        later,
        addr("198.51.100.8:40000"),
        syn.from.port(),
        syn.isn + 1,
    );
    core.handle_syn_reply(later, syn.to, 3478, syn.isn.wrapping_add(1));
    assert!(sent(&mut core).is_empty());
    core.handle_syn_reply(later, syn.to, syn.from.port(), syn.isn.wrapping_add(1));
    let answers = sent(&mut core);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0, CONN);
    assert_eq!(verdict(&answers[0].1, 1), (1, addr(ALTERNATE)));
    // Answered once: the wait running out later adds nothing.
    core.handle_timeout(now + MAX_SYN_WAIT);
    assert!(sent(&mut core).is_empty());
}

#[test]
fn silence_until_the_wait_ends_says_not_answered() {
    let (mut core, now) = enabled();
    send(&mut core, now, CONN, &change_request(3, false, None));
    let syn = core.poll_syn().unwrap();
    assert_eq!(core.poll_timeout(), now + DEFAULT_SYN_WAIT);
    core.handle_timeout(now + DEFAULT_SYN_WAIT - Duration::from_millis(1));
    assert!(sent(&mut core).is_empty());
    core.handle_timeout(now + DEFAULT_SYN_WAIT);
    let answers = sent(&mut core);
    assert_eq!(answers.len(), 1);
    assert_eq!(verdict(&answers[0].1, 3), (0, syn.from));
}

#[test]
fn the_requested_wait_is_clamped() {
    for (asked, want) in [
        (Some(100), Duration::from_millis(100)),
        (Some(1), MIN_SYN_WAIT),
        (Some(600_000), MAX_SYN_WAIT),
        (None, DEFAULT_SYN_WAIT),
    ] {
        let (mut core, now) = enabled();
        send(&mut core, now, CONN, &change_request(1, true, asked));
        assert_eq!(core.syn_tests_deadline(), Some(now + want), "{asked:?}");
    }
}

#[test]
fn a_connection_holds_at_most_two_tests() {
    let (mut core, now) = enabled();
    send(&mut core, now, CONN, &change_request(1, true, None));
    send(&mut core, now, CONN, &change_request(2, false, None));
    let third = send(&mut core, now, CONN, &change_request(3, true, None)).unwrap();
    assert_eq!(error_of(&third), (503, BUSY_REASON.to_owned()));
    // Another connection still may.
    assert_eq!(
        send(&mut core, now, CONN + 1, &change_request(4, true, None)),
        None
    );
    assert_eq!(std::iter::from_fn(|| core.poll_syn()).count(), 3);
}

#[test]
fn the_requesters_answer_budget_pays_for_each_syn() {
    let (mut core, now) = core_with(true, Some(1));
    core.enable_syn_tests();
    let mut syns = 0;
    for (tid, conn) in (1..=20).zip(100..) {
        send(&mut core, now, conn, &change_request(tid, true, None));
        syns += std::iter::from_fn(|| core.poll_syn()).count();
    }
    assert!(
        (1..20).contains(&syns),
        "{syns} SYNs for 20 requests at once"
    );
    assert!(
        core.counters()
            .drops
            .get("rate-limited")
            .copied()
            .unwrap_or(0)
            > 0
    );
}

#[test]
fn a_closed_connection_gets_no_answer() {
    let (mut core, now) = enabled();
    send(&mut core, now, CONN, &change_request(1, true, None));
    core.tcp_closed(CONN);
    core.handle_timeout(now + MAX_SYN_WAIT);
    assert!(sent(&mut core).is_empty());
    assert_eq!(core.syn_tests_deadline(), None);
}

#[test]
fn a_plain_binding_over_tcp_is_answered_at_once() {
    let (mut core, now) = enabled();
    let mut buf = Vec::new();
    let ty = MessageType::new(Method::BINDING, Class::Request);
    MessageBuilder::new(&mut buf, ty, TransactionId([9; 12])).fingerprint();
    let answer = send(&mut core, now, CONN, &buf).unwrap();
    assert_eq!(Message::parse(&answer).unwrap().class(), Class::Success);
    assert_eq!(core.poll_syn(), None);
}
