//! Property tests of the decoders that see network bytes, run in CI next to the recorded
//! cargo-fuzz runs (fuzz/, benches/results/fuzz-*.md):
//!
//! - arbitrary bytes never panic `Message::parse` and everything that reads a parsed message
//!   (attribute value codecs, natlens attributes and NAT facts, integrity and fingerprint checks,
//!   the PUNCH and DATA views and Reprs, the fingerprint prober's reading of an answer), nor the
//!   server core on UDP and TCP;
//! - parse∘emit = identity for every Repr (`MessageRepr`, `PunchRepr`, `FrameRepr`), and every
//!   STUN message the view accepts re-emits through `MessageRepr` to the same length and Repr;
//! - parse∘emit = identity: a message built with `MessageBuilder` (arbitrary method, class,
//!   transaction ID and attributes, natlens IDs, call IDs and NAT facts, with and without
//!   MESSAGE-INTEGRITY-SHA256 and FINGERPRINT) parses back to the same values and re-emits the
//!   same bytes; likewise PUNCH messages and every DATA frame kind;
//! - TCP framing yields the same messages however the stream is cut.
//!
//! Already covered in src and not repeated here: arbitrary bytes into the client session
//! (core/client/tests.rs), the punch handshake (core/punch/handshake_tests.rs), DATA frames
//! (wire/data.rs), and crafted TCP/IP parsing with its IPv4 and IPv6 build→parse round trip
//! (wire/tcp_syn_tests.rs).

use std::net::{Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use natlens::core::binding::{unknown_required, FullMode};
use natlens::core::events::Command;
use natlens::core::fingerprint::observation::Answer;
use natlens::core::server::{ServerConfig, ServerCore};
use natlens::wire::attr::{self, AttrType, ChangeRequest};
use natlens::wire::data::{self, Body, Frame as DataFrame, FrameRepr};
use natlens::wire::framing::{next_frame, Frame};
use natlens::wire::message_repr::{AttributeRepr, MessageRepr};
use natlens::wire::natlens::{
    self as nl, Dependence, NatFacts, NatProfile, PortPattern, Transports,
};
use natlens::wire::punch::{Attempt, Punch, PunchRepr};
use natlens::wire::{
    integrity, Class, Message, MessageBuilder, MessageType, Method, TransactionId,
};
use proptest::prelude::*;

const KEY: &[u8] = b"alice's key";

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

fn any_class() -> impl Strategy<Value = Class> {
    prop_oneof![
        Just(Class::Request),
        Just(Class::Indication),
        Just(Class::Success),
        Just(Class::Error),
    ]
}

fn any_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        any::<([u8; 4], u16)>().prop_map(SocketAddr::from),
        any::<([u8; 16], u16)>()
            .prop_map(|(ip, port)| SocketAddr::from((Ipv6Addr::from(ip), port))),
    ]
}

/// Types the test writes itself (natlens attributes, integrity, fingerprint): generic
/// attributes avoid them so that "the first occurrence counts" reads the value we wrote.
fn reserved(kind: u16) -> bool {
    let own = [
        nl::ID,
        nl::PEER_ID,
        nl::CALL_ID,
        nl::OBSERVED_ADDRESS,
        nl::TRANSPORTS,
        nl::DELTA,
        nl::PREDICTED_PORTS,
        nl::NAT_PROFILE,
        nl::PORT_MAPPING,
        nl::FAMILY_FACTS,
        AttrType::MESSAGE_INTEGRITY,
        AttrType::MESSAGE_INTEGRITY_SHA256,
        AttrType::FINGERPRINT,
    ];
    own.iter().any(|k| k.0 == kind)
}

fn any_generic_attribute() -> impl Strategy<Value = (AttrType, Vec<u8>)> {
    (
        any::<u16>().prop_filter("reserved", |k| !reserved(*k)),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(kind, value)| (AttrType(kind), value))
}

fn any_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.δ-]{1,20}"
}

fn any_dependence() -> impl Strategy<Value = Option<Dependence>> {
    prop_oneof![
        Just(None),
        Just(Some(Dependence::EndpointIndependent)),
        Just(Some(Dependence::AddressDependent)),
        Just(Some(Dependence::AddressAndPortDependent)),
    ]
}

fn any_profile() -> impl Strategy<Value = Option<NatProfile>> {
    let pattern = prop_oneof![
        Just(None),
        Just(Some(PortPattern::Preserving)),
        Just(Some(PortPattern::Sequential)),
        Just(Some(PortPattern::Random)),
    ];
    proptest::option::of(
        (any_dependence(), any_dependence(), pattern, any::<u8>()).prop_map(
            |(mapping, filtering, allocation, foreign_flows_per_second)| NatProfile {
                mapping,
                filtering,
                allocation,
                foreign_flows_per_second,
            },
        ),
    )
}

fn any_facts() -> impl Strategy<Value = NatFacts> {
    (
        proptest::option::of(any_addr()),
        any::<(bool, bool)>(),
        proptest::option::of(any::<i32>()),
        proptest::collection::vec(any::<u16>(), 0..nl::MAX_PREDICTED_PORTS),
        any_profile(),
        proptest::option::of((any_addr(), any::<bool>())),
        proptest::option::of(any_family_side()),
    )
        .prop_map(
            |(observed, (udp, tcp), delta, predicted_ports, profile, mapping, other)| NatFacts {
                observed,
                transports: Transports { udp, tcp },
                delta,
                predicted_ports,
                profile,
                port_mapping: mapping.map(|(external, udp)| nl::PortMapping {
                    external,
                    transport: if udp {
                        nl::MappedTransport::Udp
                    } else {
                        nl::MappedTransport::Tcp
                    },
                }),
                other_family: other,
            },
        )
}

/// NL-FAMILY-FACTS: absent (with either family) or present, its family the address's own.
fn any_family_side() -> impl Strategy<Value = nl::FamilySide> {
    (
        any::<bool>(),
        proptest::option::of(any_addr()),
        proptest::option::of(any::<i32>()),
        proptest::collection::vec(any::<u16>(), 0..16),
        any_profile(),
    )
        .prop_map(|(v6, public, delta, predicted_ports, profile)| {
            let v6 = public.map_or(v6, |a| a.is_ipv6());
            nl::FamilySide {
                family: if v6 {
                    nl::IpFamily::Ipv6
                } else {
                    nl::IpFamily::Ipv4
                },
                public,
                delta,
                predicted_ports,
                profile,
            }
        })
}

/// Everything one built message carries.
#[derive(Debug, Clone)]
struct Spec {
    ty: MessageType,
    tid: TransactionId,
    generic: Vec<(AttrType, Vec<u8>)>,
    id: Option<String>,
    peer: Option<String>,
    call_id: Option<u64>,
    facts: Option<NatFacts>,
    integrity: bool,
    fingerprint: bool,
}

fn any_spec() -> impl Strategy<Value = Spec> {
    (
        (0u16..0x1000, any_class(), any::<[u8; 12]>()),
        proptest::collection::vec(any_generic_attribute(), 0..6),
        (
            proptest::option::of(any_name()),
            proptest::option::of(any_name()),
            proptest::option::of(any::<u64>()),
        ),
        proptest::option::of(any_facts()),
        any::<(bool, bool)>(),
    )
        .prop_map(
            |(
                (method, class, tid),
                generic,
                (id, peer, call_id),
                facts,
                (integrity, fingerprint),
            )| {
                Spec {
                    ty: MessageType::new(Method(method), class),
                    tid: TransactionId(tid),
                    generic,
                    id,
                    peer,
                    call_id,
                    facts,
                    integrity,
                    fingerprint,
                }
            },
        )
}

fn build(spec: &Spec) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut builder = MessageBuilder::new(&mut buf, spec.ty, spec.tid);
    for (kind, value) in &spec.generic {
        builder.attribute(*kind, value);
    }
    if let Some(id) = &spec.id {
        builder.attribute(nl::ID, id.as_bytes());
    }
    if let Some(peer) = &spec.peer {
        builder.attribute(nl::PEER_ID, peer.as_bytes());
    }
    if let Some(call_id) = spec.call_id {
        builder.attribute(nl::CALL_ID, &call_id.to_be_bytes());
    }
    if let Some(facts) = &spec.facts {
        facts.encode(&mut builder);
    }
    if spec.integrity {
        builder.message_integrity_sha256(KEY);
    }
    if spec.fingerprint {
        builder.fingerprint();
    }
    builder.finish().to_vec()
}

/// Reads a parsed message back into a spec: the inverse of `build`.
fn read(message: &Message<'_>) -> Spec {
    let special = |kind: AttrType| reserved(kind.0) || kind == AttrType::MESSAGE_INTEGRITY_SHA256;
    let generic = message
        .attributes()
        .filter(|a| !special(a.kind))
        .map(|a| (a.kind, a.value.to_vec()))
        .collect();
    let facts_present = [
        nl::OBSERVED_ADDRESS,
        nl::TRANSPORTS,
        nl::DELTA,
        nl::PREDICTED_PORTS,
        nl::NAT_PROFILE,
        nl::PORT_MAPPING,
        nl::FAMILY_FACTS,
    ]
    .iter()
    .any(|k| message.get(*k).is_some());
    Spec {
        ty: message.message_type(),
        tid: message.transaction_id(),
        generic,
        id: nl::read_name(message, nl::ID).map(|r| r.unwrap().to_owned()),
        peer: nl::read_name(message, nl::PEER_ID).map(|r| r.unwrap().to_owned()),
        call_id: nl::read_call_id(message).map(Result::unwrap),
        facts: facts_present.then(|| NatFacts::decode(message).unwrap()),
        integrity: message.get(AttrType::MESSAGE_INTEGRITY_SHA256).is_some(),
        fingerprint: message.get(AttrType::FINGERPRINT).is_some(),
    }
}

/// Calls everything a receiver may call on a parsed message.
fn read_everything(message: &Message<'_>) {
    let tid = message.transaction_id();
    let _ = (message.class(), message.body_len(), message.raw_type());
    let _ = (message.has_magic_cookie(), message.legacy_transaction_id());
    for attribute in message.attributes() {
        let value = attribute.value;
        let _ = attr::decode_address(value);
        let _ = attr::decode_xor_address(value, &tid);
        let _ = ChangeRequest::decode(value);
        let _ = attr::decode_error_code(value);
        let _ = attr::decode_text(value, 763);
        let _ = attr::decode_u32(value);
        let _ = attr::decode_response_port(value);
    }
    for kind in [nl::ID, nl::PEER_ID, nl::SERVER_NAME, nl::VIA] {
        let _ = nl::read_name(message, kind);
    }
    let _ = nl::read_call_id(message);
    let _ = NatFacts::decode(message);
    let _ = unknown_required(message, nl::NATLENS_REQUIRED);
    let _ = integrity::check_fingerprint(message);
    let _ = integrity::verify_message_integrity(message, KEY);
    let _ = integrity::verify_message_integrity_sha256(message, KEY);
    // The fingerprint prober's reading of a Binding answer.
    let _ = Answer::from_message(message, addr("192.0.2.1:3478"), Instant::now()).public();
}

/// The PUNCH view's getters and Repr on whatever it accepts.
fn read_punch(bytes: &[u8]) {
    if let Ok(punch) = Punch::new_checked(bytes) {
        let _ = (
            punch.is_echo(),
            punch.transaction_id(),
            punch.call_id(),
            punch.nonce(),
        );
        let _ = (
            punch.echo(),
            punch.target(),
            punch.mapped(),
            punch.attempt(),
        );
        let repr = PunchRepr::parse(&punch);
        let mut buf = Vec::new();
        assert_eq!(repr.emit(&mut buf).len(), repr.buffer_len());
    }
}

/// The DATA view's getters and Repr on whatever it accepts.
fn read_data(bytes: &[u8]) {
    if let Ok(frame) = DataFrame::new_checked(bytes) {
        let _ = (frame.marker(), frame.kind(), frame.nonce(), frame.seq());
        let _ = (frame.received(), frame.payload());
        if let Ok(repr) = FrameRepr::parse(&frame) {
            let mut out = vec![0; repr.buffer_len()];
            repr.emit(&mut DataFrame::new_unchecked(&mut out[..]));
        }
    }
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn server() -> ServerCore {
    let full = FullMode {
        primary: addr("192.0.2.1:3478"),
        alternate: addr("192.0.2.2:3479"),
    };
    let mut config = ServerConfig::new("props");
    config.max_sessions = 8;
    config.full_modes = vec![full];
    ServerCore::new(config, Instant::now(), 1)
}

/// Cuts `stream` at the given positions and frames it as the server's TCP shell does.
fn frame_chunked(stream: &[u8], cuts: &[usize]) -> (Vec<Vec<u8>>, Option<Frame>) {
    let mut positions: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    positions.push(stream.len());
    positions.sort_unstable();
    let (mut buffer, mut frames, mut from) = (Vec::new(), Vec::new(), 0);
    for to in positions {
        buffer.extend_from_slice(&stream[from..to]);
        from = to;
        loop {
            match next_frame(&buffer, 2048) {
                Frame::Complete(len) => frames.push(buffer.drain(..len).collect()),
                Frame::Partial => break,
                end => return (frames, Some(end)),
            }
        }
    }
    (frames, None)
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic_the_stun_decoders(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        if let Ok(message) = Message::parse(&bytes) {
            read_everything(&message);
            // Every message the view accepts becomes a Repr that re-emits to the same message
            // up to padding.
            let repr = MessageRepr::parse(&message);
            let mut buf = Vec::new();
            let again = repr.emit(&mut buf);
            prop_assert_eq!(again.len(), bytes.len());
            prop_assert_eq!(MessageRepr::parse(&Message::parse(again).unwrap()), repr);
        }
        read_punch(&bytes);
        read_data(&bytes);
        let _ = next_frame(&bytes, 2048);
    }

    /// Random bytes rarely get past the length checks; a valid header with a random body does.
    #[test]
    fn arbitrary_bodies_never_panic_the_stun_decoders(
        ty in any::<u16>(),
        tid in any::<[u8; 12]>(),
        body in proptest::collection::vec(any::<u8>(), 0..50).prop_map(|mut b| {
            b.truncate(b.len() / 4 * 4);
            b
        }),
    ) {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(ty & 0x3FFF).to_be_bytes());
        bytes.extend_from_slice(&(body.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&0x2112_A442u32.to_be_bytes());
        bytes.extend_from_slice(&tid);
        bytes.extend_from_slice(&body);
        if let Ok(message) = Message::parse(&bytes) {
            read_everything(&message);
        }
        read_punch(&bytes);
    }

    #[test]
    fn server_core_survives_arbitrary_datagrams_and_frames(
        datagrams in proptest::collection::vec(
            (0usize..5, proptest::collection::vec(any::<u8>(), 0..120)), 1..8),
    ) {
        let mut core = server();
        let mut locals = FullMode {
            primary: addr("192.0.2.1:3478"),
            alternate: addr("192.0.2.2:3479"),
        }
        .addresses()
        .to_vec();
        locals.push(addr("[2001:db8::1]:3478"));
        let remote = addr("198.51.100.7:40001");
        let now = Instant::now();
        let mut reply = Vec::new();
        for (local, bytes) in &datagrams {
            reply.clear();
            if core.handle_udp(now, locals[*local], remote, bytes, &mut reply).is_some() {
                prop_assert!(Message::parse(&reply).is_ok());
            }
            reply.clear();
            if core.handle_tcp(now, 1, locals[0], remote, bytes, &mut reply) {
                prop_assert!(Message::parse(&reply).is_ok());
            }
        }
        core.handle_timeout(now + Duration::from_secs(60));
        while let Some(command) = core.poll_command() {
            if let Command::Send { bytes, .. } = command {
                prop_assert!(Message::parse(&bytes).is_ok());
            }
        }
    }

    #[test]
    fn built_messages_parse_back_and_re_emit_the_same_bytes(spec in any_spec()) {
        let bytes = build(&spec);
        let message = Message::parse(&bytes).unwrap();
        let back = read(&message);
        prop_assert_eq!(back.ty, spec.ty);
        prop_assert_eq!(back.tid, spec.tid);
        prop_assert_eq!(&back.generic, &spec.generic);
        prop_assert_eq!(&back.id, &spec.id);
        prop_assert_eq!(&back.peer, &spec.peer);
        prop_assert_eq!(back.call_id, spec.call_id);
        // Facts that are all defaults still write TRANSPORTS, so they read back as Some.
        prop_assert_eq!(&back.facts, &spec.facts);
        prop_assert_eq!(back.integrity, spec.integrity);
        prop_assert_eq!(back.fingerprint, spec.fingerprint);
        prop_assert_eq!(integrity::verify_message_integrity_sha256(&message, KEY), spec.integrity);
        prop_assert!(!integrity::verify_message_integrity_sha256(&message, b"mallory's key"));
        prop_assert_eq!(integrity::check_fingerprint(&message), spec.fingerprint.then_some(true));
        prop_assert_eq!(build(&back), bytes);
    }

    #[test]
    fn message_reprs_round_trip(
        (method, class, cookie, tid) in (0u16..0x1000, any_class(), any::<bool>(), any::<[u8; 12]>()),
        attributes in proptest::collection::vec(
            (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..8),
    ) {
        let mut repr = MessageRepr::new(class, Method(method), TransactionId(tid));
        if !cookie {
            repr.cookie = [tid[0], 0x5A, tid[1], 0xA5];
        }
        repr.attributes = attributes
            .into_iter()
            .map(|(kind, value)| AttributeRepr { kind: AttrType(kind), value })
            .collect();
        let mut buf = Vec::new();
        let bytes = repr.emit(&mut buf).to_vec();
        prop_assert_eq!(bytes.len(), repr.buffer_len());
        // A random attribute may be a FINGERPRINT that is not last: the view refuses those.
        let fingerprint_early = repr.attributes.iter().rev().skip(1)
            .any(|a| a.kind == AttrType::FINGERPRINT);
        match Message::parse(&bytes) {
            Ok(message) => prop_assert_eq!(MessageRepr::parse(&message), repr),
            Err(error) => {
                prop_assert!(fingerprint_early);
                prop_assert_eq!(error, natlens::wire::DecodeError::BadFingerprint);
            }
        }
    }

    #[test]
    fn any_flipped_byte_breaks_integrity_or_fingerprint(
        spec in any_spec(),
        at in any::<usize>(),
        flip in 1u8..=255,
    ) {
        let mut spec = spec;
        spec.integrity = true;
        spec.fingerprint = true;
        let mut bytes = build(&spec);
        // Anywhere past the length field: a changed length is caught by parse itself.
        let at = 4 + at % (bytes.len() - 4);
        bytes[at] ^= flip;
        if let Ok(message) = Message::parse(&bytes) {
            let intact = integrity::verify_message_integrity_sha256(&message, KEY)
                && integrity::check_fingerprint(&message) == Some(true);
            prop_assert!(!intact, "a flipped byte at {} went unnoticed", at);
        }
    }

    #[test]
    fn punch_messages_round_trip(
        echo_response in any::<bool>(),
        tid in any::<[u8; 12]>(),
        (call_id, nonce, echo) in any::<(u64, u64, u64)>(),
        address in any_addr(),
        attempt in proptest::option::of(any::<(u32, u32)>()),
        with_echo in any::<bool>(),
    ) {
        let punch = PunchRepr {
            echo_response,
            tid: TransactionId(tid),
            call_id,
            nonce,
            echo: (echo_response || with_echo).then_some(echo),
            target: (!echo_response).then_some(address),
            mapped: echo_response.then_some(address),
            attempt: attempt.map(|(index, sent)| Attempt { index, sent }),
        };
        let mut buf = Vec::new();
        let bytes = punch.emit(&mut buf).to_vec();
        prop_assert_eq!(bytes.len(), punch.buffer_len());
        let view = Punch::new_checked(&bytes[..]);
        prop_assert_eq!(view.map(|view| PunchRepr::parse(&view)), Ok(punch));
        prop_assert_eq!(integrity::check_fingerprint(&Message::parse(&bytes).unwrap()), Some(true));
    }

    #[test]
    fn every_data_frame_kind_round_trips(
        kind in 0u8..4,
        seq in any::<u32>(),
        nonce in any::<u64>(),
        received in any::<u64>(),
        payload in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        let body = match kind {
            0 => Body::Data { seq, payload },
            1 => Body::Fin { seq },
            2 => Body::Ack { next: seq, received },
            _ => Body::Close,
        };
        let repr = FrameRepr { nonce, body };
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut DataFrame::new_unchecked(&mut bytes[..]));
        prop_assert!(data::is_data(&bytes));
        let view = DataFrame::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(FrameRepr::parse(&view), Ok(repr));
    }

    #[test]
    fn framing_cuts_the_same_messages_from_any_chunking(
        specs in proptest::collection::vec(any_spec(), 1..4),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let messages: Vec<Vec<u8>> = specs.iter().map(build).filter(|m| m.len() <= 2048).collect();
        let stream = messages.concat();
        let (frames, end) = frame_chunked(&stream, &cuts);
        prop_assert_eq!(end, None);
        prop_assert_eq!(frames, messages);
    }

    #[test]
    fn framing_of_arbitrary_streams_is_independent_of_chunking(
        stream in proptest::collection::vec(any::<u8>(), 0..300),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        prop_assert_eq!(frame_chunked(&stream, &cuts), frame_chunked(&stream, &[]));
    }
}
