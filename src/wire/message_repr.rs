//! [`MessageRepr`]: the owned form of a whole STUN message (class, method, transaction ID and
//! every attribute in order), the Repr half of the smoltcp pair whose checked view is
//! [`Message`].
//!
//! The server does not use it: a Binding answer reads the request through the view and writes
//! the answer straight into a reusable buffer with [`MessageBuilder`], with no allocation per
//! request (a Repr holds a `Vec` per attribute). The Repr is for code that wants a message as a
//! value, to build, compare or store: tests, property tests, fuzzing, tools. Its
//! [`MessageRepr::emit`] goes through the same builder, so both paths write identical bytes.
//! Values are kept raw: decoding an attribute is [`attr`](crate::wire::attr)'s job, and
//! MESSAGE-INTEGRITY and FINGERPRINT are attributes like the others (re-emitting a parsed
//! message reproduces them byte for byte; [`MessageBuilder`] computes fresh ones).

use crate::wire::attr::AttrType;
use crate::wire::builder::MessageBuilder;
use crate::wire::stun::{
    padded, Class, Message, MessageType, Method, TransactionId, ATTR_HEADER_LEN, HEADER_LEN,
    MAGIC_COOKIE,
};

/// One attribute, owned: its type and its value without padding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttributeRepr {
    pub kind: AttrType,
    pub value: Vec<u8>,
}

/// A whole STUN message, owned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageRepr {
    pub class: Class,
    pub method: Method,
    /// Bytes 4..8 as received: [`MAGIC_COOKIE`] for RFC 5389/8489 messages; for an RFC 3489
    /// message, the first four bytes of its 128-bit transaction ID.
    pub cookie: [u8; 4],
    pub transaction_id: TransactionId,
    /// Every attribute in order, duplicates included.
    pub attributes: Vec<AttributeRepr>,
}

impl MessageRepr {
    /// An RFC 8489 message without attributes yet.
    pub fn new(class: Class, method: Method, transaction_id: TransactionId) -> Self {
        MessageRepr {
            class,
            method,
            cookie: MAGIC_COOKIE.to_be_bytes(),
            transaction_id,
            attributes: Vec::new(),
        }
    }

    /// Reads a checked message. [`Message::parse`] has refused everything a Repr could not
    /// hold, so this cannot fail; padding bytes are not kept (emit writes zeros).
    pub fn parse(message: &Message<'_>) -> MessageRepr {
        let legacy = message.legacy_transaction_id();
        MessageRepr {
            class: message.class(),
            method: message.method(),
            cookie: legacy[..4].try_into().expect("4 bytes"),
            transaction_id: message.transaction_id(),
            attributes: message
                .attributes()
                .map(|attribute| AttributeRepr {
                    kind: attribute.kind,
                    value: attribute.value.to_vec(),
                })
                .collect(),
        }
    }

    /// The message type (method and class together).
    pub fn message_type(&self) -> MessageType {
        MessageType::new(self.method, self.class)
    }

    /// True unless this is an RFC 3489 message.
    pub fn has_magic_cookie(&self) -> bool {
        self.cookie == MAGIC_COOKIE.to_be_bytes()
    }

    /// Bytes [`MessageRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + self
                .attributes
                .iter()
                .map(|attribute| ATTR_HEADER_LEN + padded(attribute.value.len()))
                .sum::<usize>()
    }

    /// Writes the message into `buf` (cleared first) and returns the bytes. Panics, as the
    /// builder does, when an attribute or the whole message is longer than a length field
    /// holds.
    pub fn emit<'b>(&self, buf: &'b mut Vec<u8>) -> &'b [u8] {
        let ty = self.message_type();
        let mut builder = if self.has_magic_cookie() {
            MessageBuilder::new(buf, ty, self.transaction_id)
        } else {
            let mut legacy = [0u8; 16];
            legacy[..4].copy_from_slice(&self.cookie);
            legacy[4..].copy_from_slice(&self.transaction_id.0);
            MessageBuilder::new_legacy(buf, ty, legacy)
        };
        for attribute in &self.attributes {
            builder.attribute(attribute.kind, &attribute.value);
        }
        builder.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::integrity;
    use crate::wire::rfc5769::{
        ipv4_response, ipv6_response, long_term_request, PASSWORD, SAMPLE_REQUEST,
    };
    use crate::wire::DecodeError;

    fn parsed(bytes: &[u8]) -> Result<MessageRepr, DecodeError> {
        Message::parse(bytes).map(|message| MessageRepr::parse(&message))
    }

    fn emitted(repr: &MessageRepr) -> Vec<u8> {
        let mut buf = Vec::new();
        repr.emit(&mut buf).to_vec()
    }

    fn attribute(kind: AttrType, value: &[u8]) -> AttributeRepr {
        AttributeRepr {
            kind,
            value: value.to_vec(),
        }
    }

    #[test]
    fn parse() {
        let repr = parsed(&SAMPLE_REQUEST).unwrap();
        assert_eq!((repr.class, repr.method), (Class::Request, Method::BINDING));
        assert!(repr.has_magic_cookie());
        assert_eq!(repr.transaction_id.0, SAMPLE_REQUEST[8..20]);
        let kinds: Vec<u16> = repr.attributes.iter().map(|a| a.kind.0).collect();
        assert_eq!(kinds, [0x8022, 0x0024, 0x8029, 0x0006, 0x0008, 0x8028]);
        assert_eq!(repr.attributes[0].value, b"STUN test client");
        // USERNAME's value stops at its length: the three spaces of padding are not kept.
        assert_eq!(repr.attributes[3].value, b"evtj:h6vY");
    }

    /// The long-term sample pads with zeros, so a Repr built attribute by attribute (the MAC
    /// copied as a value) writes the RFC's bytes exactly.
    #[test]
    fn construct_and_emit() {
        let bytes = long_term_request();
        let mut repr = MessageRepr::new(
            Class::Request,
            Method::BINDING,
            TransactionId(bytes[8..20].try_into().unwrap()),
        );
        repr.attributes = vec![
            attribute(AttrType::USERNAME, &bytes[24..42]),
            attribute(AttrType::NONCE, &bytes[48..76]),
            attribute(AttrType::REALM, &bytes[80..91]),
            attribute(AttrType::MESSAGE_INTEGRITY, &bytes[96..116]),
        ];
        assert_eq!(repr.buffer_len(), bytes.len());
        assert_eq!(emitted(&repr), bytes);
    }

    #[test]
    fn rfc_vectors_round_trip() {
        for bytes in [
            SAMPLE_REQUEST.to_vec(),
            ipv4_response(),
            ipv6_response(),
            long_term_request(),
        ] {
            let repr = parsed(&bytes).unwrap();
            let again = emitted(&repr);
            assert_eq!(again.len(), repr.buffer_len());
            assert_eq!(parsed(&again).as_ref(), Ok(&repr));
        }
        // Zero padding throughout: the same bytes, so the MAC still verifies.
        let long_term = long_term_request();
        assert_eq!(emitted(&parsed(&long_term).unwrap()), long_term);
        // Space padding becomes zeros: the bytes change and the MAC no longer matches them.
        let again = emitted(&parsed(&SAMPLE_REQUEST).unwrap());
        let message = Message::parse(&again).unwrap();
        assert!(!integrity::verify_message_integrity(&message, PASSWORD));
    }

    #[test]
    fn legacy_transaction_ids_round_trip() {
        let mut bytes = SAMPLE_REQUEST.to_vec();
        bytes.truncate(20);
        bytes[2..4].copy_from_slice(&[0, 0]);
        bytes[4..8].copy_from_slice(&[1, 2, 3, 4]);
        let repr = parsed(&bytes).unwrap();
        assert!(!repr.has_magic_cookie());
        assert_eq!(repr.cookie, [1, 2, 3, 4]);
        assert_eq!(emitted(&repr), bytes);
    }

    #[test]
    fn truncated_and_invalid_messages_are_refused() {
        assert_eq!(parsed(&SAMPLE_REQUEST[..19]), Err(DecodeError::TooShort));
        assert_eq!(
            parsed(&SAMPLE_REQUEST[..104]),
            Err(DecodeError::LengthMismatch)
        );
        let mut cut = SAMPLE_REQUEST;
        // Say 0x5C bytes of attributes where FINGERPRINT ends at 0x58 ...
        cut[3] = 0x5C;
        assert_eq!(parsed(&cut), Err(DecodeError::LengthMismatch));
        // ... and USERNAME runs past the end when it claims 0x40 bytes.
        let mut long_username = SAMPLE_REQUEST;
        long_username[63] = 0x40;
        assert_eq!(parsed(&long_username), Err(DecodeError::TruncatedAttribute));
        let mut rtp = SAMPLE_REQUEST;
        rtp[0] = 0x80;
        assert_eq!(parsed(&rtp), Err(DecodeError::NotStun));
    }
}
