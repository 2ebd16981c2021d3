//! A datagram or TCP frame as every receiver first reads it: `Message::parse`, every getter,
//! every attribute through every value decoder, natlens's own attributes and NAT facts,
//! MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT, and the PUNCH decoder that shares the format.
//!
//! Beyond "never panics", two round trips must hold for whatever parses:
//! - the message as a `MessageRepr` re-emits (through `MessageBuilder`) to a message that parses
//!   back to the same Repr;
//! - decoded NAT facts (and a decoded PUNCH message) re-encode and decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natlens::core::binding::unknown_required;
use natlens::wire::attr::{self, ChangeRequest};
use natlens::wire::message_repr::MessageRepr;
use natlens::wire::natlens::{self as nl, NatFacts};
use natlens::wire::punch::{Punch, PunchRepr};
use natlens::wire::{integrity, Message, MessageBuilder};

fuzz_target!(|data: &[u8]| {
    if let Ok(view) = Punch::new_checked(data) {
        let punch = PunchRepr::parse(&view);
        let mut buf = Vec::new();
        let bytes = punch.emit(&mut buf);
        assert_eq!(bytes.len(), punch.buffer_len());
        let again = Punch::new_checked(bytes).map(|view| PunchRepr::parse(&view));
        assert_eq!(again, Ok(punch), "PUNCH emit∘parse");
    }
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
    }
    for kind in [nl::ID, nl::PEER_ID, nl::SERVER_NAME, nl::VIA] {
        let _ = nl::read_name(&message, kind);
    }
    let _ = nl::read_call_id(&message);
    let _ = nl::read_server_addresses(&message);
    let _ = unknown_required(&message, nl::NATLENS_REQUIRED);
    let _ = unknown_required(&message, nl::PUNCH_REQUIRED);
    let _ = integrity::check_fingerprint(&message);
    let _ = integrity::verify_message_integrity(&message, b"fuzz-key");
    let _ = integrity::verify_message_integrity_sha256(&message, b"fuzz-key");

    // Re-emit the message through its Repr and read it back.
    let repr = MessageRepr::parse(&message);
    let mut buf = Vec::new();
    let rebuilt = repr.emit(&mut buf);
    assert_eq!(rebuilt.len(), repr.buffer_len());
    assert_eq!(rebuilt.len(), data.len());
    let reparsed = Message::parse(rebuilt).expect("re-emitted message parses");
    assert_eq!(
        MessageRepr::parse(&reparsed),
        repr,
        "MessageRepr emit∘parse"
    );
    let ty = message.message_type();

    if let Ok(facts) = NatFacts::decode(&message) {
        let mut buf = Vec::new();
        let mut builder = MessageBuilder::new(&mut buf, ty, tid);
        facts.encode(&mut builder);
        let bytes = builder.finish().to_vec();
        let decoded = NatFacts::decode(&Message::parse(&bytes).expect("facts parse"));
        assert_eq!(decoded, Ok(facts), "NatFacts emit∘parse");
    }
});
