//! A datagram or TCP frame as every receiver first reads it: `Message::parse`, every getter,
//! every attribute through every value decoder, natlens's own attributes and NAT facts,
//! MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT, and the PUNCH decoder that shares the format.
//!
//! Beyond "never panics", two round trips must hold for whatever parses:
//! - the attribute list re-emitted with `MessageBuilder` parses back to the same list;
//! - decoded NAT facts (and a decoded PUNCH message) re-encode and decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natlens::core::binding::unknown_required;
use natlens::core::punch::probe::PunchMessage;
use natlens::wire::attr::{self, ChangeRequest};
use natlens::wire::natlens::{self as nl, NatFacts};
use natlens::wire::{integrity, Message, MessageBuilder};

fuzz_target!(|data: &[u8]| {
    let _ = PunchMessage::parse(data).map(|punch| {
        let mut buf = Vec::new();
        let again = PunchMessage::parse(punch.emit(&mut buf));
        assert_eq!(again, Ok(punch), "PUNCH emit∘parse");
    });
    let Ok(message) = Message::parse(data) else {
        return;
    };
    let _ = (
        message.message_type(),
        message.class(),
        message.body_len(),
        message.raw_type(),
        message.legacy_transaction_id(),
    );
    let tid = message.transaction_id();
    let mut attributes = Vec::new();
    for attribute in message.attributes() {
        assert!(attribute.offset + 4 + attribute.value.len() <= data.len());
        let value = attribute.value;
        let _ = attribute.kind.is_comprehension_required();
        let _ = attr::decode_address(value);
        let _ = attr::decode_xor_address(value, &tid);
        let _ = ChangeRequest::decode(value).map(|c| (c.any(), c.encode()));
        let _ = attr::decode_error_code(value);
        let _ = attr::decode_text(value, 763);
        let _ = attr::decode_u32(value);
        let _ = attr::decode_response_port(value);
        attributes.push((attribute.kind, value));
    }
    for kind in [nl::ID, nl::PEER_ID, nl::SERVER_NAME, nl::VIA] {
        let _ = nl::read_name(&message, kind);
    }
    let _ = nl::read_call_id(&message);
    let _ = unknown_required(&message, nl::NATLENS_REQUIRED);
    let _ = unknown_required(&message, nl::PUNCH_REQUIRED);
    let _ = integrity::check_fingerprint(&message);
    let _ = integrity::verify_message_integrity(&message, b"fuzz-key");
    let _ = integrity::verify_message_integrity_sha256(&message, b"fuzz-key");

    // Re-emit the attribute list and read it back.
    let mut buf = Vec::new();
    let ty = message.message_type();
    let mut builder = if message.has_magic_cookie() {
        MessageBuilder::new(&mut buf, ty, tid)
    } else {
        MessageBuilder::new_legacy(&mut buf, ty, message.legacy_transaction_id())
    };
    for (kind, value) in &attributes {
        builder.attribute(*kind, value);
    }
    let rebuilt = builder.finish().to_vec();
    let reparsed = Message::parse(&rebuilt).expect("re-emitted message parses");
    let again: Vec<_> = reparsed.attributes().map(|a| (a.kind, a.value)).collect();
    assert_eq!(again, attributes, "attributes survive emit∘parse");
    assert_eq!(reparsed.message_type(), ty);
    assert_eq!(
        reparsed.legacy_transaction_id(),
        message.legacy_transaction_id()
    );

    if let Ok(facts) = NatFacts::decode(&message) {
        let mut buf = Vec::new();
        let mut builder = MessageBuilder::new(&mut buf, ty, tid);
        facts.encode(&mut builder);
        let bytes = builder.finish().to_vec();
        let decoded = NatFacts::decode(&Message::parse(&bytes).expect("facts parse"));
        assert_eq!(decoded, Ok(facts), "NatFacts emit∘parse");
    }
});
