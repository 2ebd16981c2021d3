//! Error answers (RFC 8489 §6.3.4): one writer for every error response natlens sends, so the
//! Binding responder, the server's natlens methods, the relay and the client all lay out
//! ERROR-CODE, UNKNOWN-ATTRIBUTES, REALM/NONCE, SOFTWARE and FINGERPRINT the same way.
//!
//! What an answer carries differs by who may provoke it: an answer to an unauthenticated
//! request stays lean (no SOFTWARE) so that it cannot amplify, a relayed call's failure names
//! the server, and a credential refusal carries a fresh nonce. The caller says which; the
//! attribute order is fixed here. Writing allocates nothing beyond the caller's buffer.

use crate::wire::attr::AttrType;
use crate::wire::stun::{Class, Message, MessageType, Method, TransactionId};
use crate::wire::MessageBuilder;

/// An error response to one request, described by what it carries.
#[derive(Debug, Clone, Copy)]
pub struct ErrorAnswer<'a> {
    method: Method,
    tid: TransactionId,
    code: u16,
    reason: &'a str,
    unknown: &'a [AttrType],
    challenge: Option<(&'a str, &'a str)>,
    software: Option<&'a str>,
    fingerprint: bool,
}

impl<'a> ErrorAnswer<'a> {
    /// An answer with ERROR-CODE only, to request `tid` of `method`.
    pub fn new(method: Method, tid: TransactionId, code: u16, reason: &'a str) -> Self {
        ErrorAnswer {
            method,
            tid,
            code,
            reason,
            unknown: &[],
            challenge: None,
            software: None,
            fingerprint: false,
        }
    }

    /// An answer to `request` that ends with FINGERPRINT when the request did (RFC 8489 §7.3:
    /// a client that fingerprints expects it back; one that does not may not parse it).
    pub fn to_request(request: &Message<'_>, code: u16, reason: &'a str) -> Self {
        let mirrored = request.get(AttrType::FINGERPRINT).is_some();
        Self::new(request.method(), request.transaction_id(), code, reason).fingerprint(mirrored)
    }

    /// Lists the comprehension-required attributes a 420 refuses (nothing when empty).
    pub fn unknown(mut self, kinds: &'a [AttrType]) -> Self {
        self.unknown = kinds;
        self
    }

    /// Adds REALM and NONCE, for a 401 or 438 (RFC 8489 §9.2).
    pub fn challenge(mut self, realm: &'a str, nonce: &'a str) -> Self {
        self.challenge = Some((realm, nonce));
        self
    }

    /// Adds SOFTWARE naming the implementation.
    pub fn software(mut self, software: &'a str) -> Self {
        self.software = Some(software);
        self
    }

    /// Ends the answer with FINGERPRINT, or not.
    pub fn fingerprint(mut self, fingerprint: bool) -> Self {
        self.fingerprint = fingerprint;
        self
    }

    /// Writes the answer into `out` (cleared first).
    pub fn write(&self, out: &mut Vec<u8>) {
        let ty = MessageType::new(self.method, Class::Error);
        let mut builder = MessageBuilder::new(out, ty, self.tid);
        builder.error_code(self.code, self.reason);
        if !self.unknown.is_empty() {
            builder.unknown_attributes(self.unknown);
        }
        if let Some((realm, nonce)) = self.challenge {
            builder.attribute(AttrType::REALM, realm.as_bytes());
            builder.attribute(AttrType::NONCE, nonce.as_bytes());
        }
        if let Some(software) = self.software {
            builder.attribute(AttrType::SOFTWARE, software.as_bytes());
        }
        if self.fingerprint {
            builder.fingerprint();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::attr::decode_error_code;
    use crate::wire::integrity;

    fn request(fingerprint: bool) -> Vec<u8> {
        let mut buf = Vec::new();
        let ty = MessageType::new(Method::BINDING, Class::Request);
        let mut builder = MessageBuilder::new(&mut buf, ty, TransactionId([3; 12]));
        builder.attribute(AttrType(0x7FFE), b"what");
        if fingerprint {
            builder.fingerprint();
        }
        builder.finish().to_vec()
    }

    #[test]
    fn attributes_come_in_the_fixed_order_and_fingerprint_mirrors_the_request() {
        for fingerprinted in [false, true] {
            let bytes = request(fingerprinted);
            let message = Message::parse(&bytes).unwrap();
            let mut out = Vec::new();
            ErrorAnswer::to_request(&message, 420, "Unknown Attribute")
                .unknown(&[AttrType(0x7FFE)])
                .challenge("realm", "nonce")
                .software("natlens")
                .write(&mut out);
            let answer = Message::parse(&out).unwrap();
            assert_eq!(
                answer.message_type(),
                message.message_type().response(Class::Error)
            );
            assert_eq!(answer.transaction_id(), message.transaction_id());
            let kinds: Vec<AttrType> = answer.attributes().map(|a| a.kind).collect();
            let mut expected = vec![
                AttrType::ERROR_CODE,
                AttrType::UNKNOWN_ATTRIBUTES,
                AttrType::REALM,
                AttrType::NONCE,
                AttrType::SOFTWARE,
            ];
            if fingerprinted {
                expected.push(AttrType::FINGERPRINT);
                assert_eq!(integrity::check_fingerprint(&answer), Some(true));
            }
            assert_eq!(kinds, expected);
            let code = decode_error_code(answer.get(AttrType::ERROR_CODE).unwrap().value);
            assert_eq!(code.unwrap().0, 420);
        }
    }

    #[test]
    fn a_plain_answer_carries_only_the_error_code() {
        let mut out = Vec::new();
        ErrorAnswer::new(Method::BINDING, TransactionId([1; 12]), 400, "Bad Request")
            .write(&mut out);
        let answer = Message::parse(&out).unwrap();
        let kinds: Vec<AttrType> = answer.attributes().map(|a| a.kind).collect();
        assert_eq!(kinds, [AttrType::ERROR_CODE]);
    }

    /// The four error answers natlens sends, each against the builder calls that wrote it
    /// before this writer existed: the bytes must not change.
    #[test]
    fn every_shape_matches_the_builder_calls_it_replaced() {
        let bytes = request(true);
        let message = Message::parse(&bytes).unwrap();
        let tid = message.transaction_id();
        let unknown = [AttrType(0x7FFE)];
        let by_hand = |add: &dyn Fn(&mut MessageBuilder<'_>)| {
            let mut out = Vec::new();
            let ty = message.message_type().response(Class::Error);
            let mut builder = MessageBuilder::new(&mut out, ty, tid);
            add(&mut builder);
            out
        };
        let written = |answer: ErrorAnswer<'_>| {
            let mut out = vec![0xAA; 3];
            answer.write(&mut out);
            out
        };
        // The Binding responder's 420.
        let binding = by_hand(&|b| {
            b.error_code(420, "Unknown Attribute");
            b.unknown_attributes(&unknown);
            b.attribute(AttrType::SOFTWARE, b"natlens x");
            b.fingerprint();
        });
        let answer = ErrorAnswer::to_request(&message, 420, "Unknown Attribute")
            .unknown(&unknown)
            .software("natlens x");
        assert_eq!(written(answer), binding);
        // The server's lean 401 with a nonce.
        let lean = by_hand(&|b| {
            b.error_code(401, "Unauthorized");
            b.attribute(AttrType::REALM, b"natlens");
            b.attribute(AttrType::NONCE, b"n0nce");
            b.fingerprint();
        });
        let answer =
            ErrorAnswer::to_request(&message, 401, "Unauthorized").challenge("natlens", "n0nce");
        assert_eq!(written(answer), lean);
        // A relayed call's failure.
        let call = by_hand(&|b| {
            b.error_code(408, "Peer did not answer");
            b.attribute(AttrType::SOFTWARE, b"natlens x");
            b.fingerprint();
        });
        let answer = ErrorAnswer::new(message.method(), tid, 408, "Peer did not answer")
            .software("natlens x")
            .fingerprint(true);
        assert_eq!(written(answer), call);
        // The client's refusal of a request it does not understand.
        let client = by_hand(&|b| {
            b.error_code(420, "Unknown Attribute");
            b.unknown_attributes(&unknown);
        });
        let answer =
            ErrorAnswer::new(message.method(), tid, 420, "Unknown Attribute").unknown(&unknown);
        assert_eq!(written(answer), client);
    }
}
