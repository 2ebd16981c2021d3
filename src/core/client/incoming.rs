//! Requests the server sends us: a delivered CALL is answered with this end's facts (signed
//! under credentials); anything else is refused. Answers are cached so that a retransmitted
//! request gets the same bytes (RFC 8489 §6.3.1).

use std::time::Instant;

use rand::RngCore;

use crate::wire::answer::ErrorAnswer;
use crate::wire::attr::AttrType;
use crate::wire::natlens::{self, error, NatFacts};
use crate::wire::{Class, Message, MessageBuilder, MessageType};

use super::answers::Malformed;
use super::{ClientEvent, ClientSession, State, ANSWER_CACHE_MAX, ANSWER_CACHE_TTL};

#[derive(Debug)]
pub(super) struct CachedAnswer {
    pub bytes: Vec<u8>,
    pub expires: Instant,
}

impl<R: RngCore> ClientSession<R> {
    pub(super) fn handle_request(&mut self, now: Instant, message: &Message<'_>) {
        let tid = message.transaction_id();
        if let Some(answer) = self.answers.get(&tid) {
            // RFC 8489 §6.3.1: a retransmitted request gets the same answer, and no new event.
            self.stats.repeated_requests += 1;
            return self.transmit.push_back(answer.bytes.clone());
        }
        if self.state == State::Closed {
            return self.stats.ignored += 1;
        }
        let answer = self.answer_request(message);
        self.transmit.push_back(answer.clone());
        if self.answers.len() >= ANSWER_CACHE_MAX {
            // Ties (answers cached at the same instant) go by transaction ID, not hash order.
            let oldest = self
                .answers
                .iter()
                .min_by_key(|(tid, a)| (a.expires, **tid));
            if let Some(oldest) = oldest.map(|(tid, _)| *tid) {
                self.answers.remove(&oldest);
            }
        }
        let expires = now + ANSWER_CACHE_TTL;
        self.answers.insert(
            tid,
            CachedAnswer {
                bytes: answer,
                expires,
            },
        );
    }

    /// The answer to a request from the server; the only one a client understands is CALL.
    fn answer_request(&mut self, message: &Message<'_>) -> Vec<u8> {
        let mut bytes = Vec::new();
        let unknown = unknown_required(message);
        let refusal = if !unknown.is_empty() {
            // RFC 8489 §6.3.1.1: refuse with 420 and list what was not understood.
            (error::UNKNOWN_ATTRIBUTE, "Unknown Attribute")
        } else if message.method() != natlens::CALL {
            (
                error::BAD_REQUEST,
                "Bad Request: a client only answers CALL",
            )
        } else {
            match read_call(message) {
                Ok(call) => {
                    self.answer_call(message, call, &mut bytes);
                    return bytes;
                }
                Err(Malformed) => (
                    error::BAD_REQUEST,
                    "Bad Request: CALL needs NL-PEER-ID and NL-CALL-ID",
                ),
            }
        };
        let (code, reason) = refusal;
        ErrorAnswer::new(message.method(), message.transaction_id(), code, reason)
            .unknown(&unknown)
            .write(&mut bytes);
        bytes
    }

    /// Answers a delivered call with this end's facts, and reports it.
    fn answer_call(
        &mut self,
        message: &Message<'_>,
        (caller, call_id, facts): (String, u64, NatFacts),
        bytes: &mut Vec<u8>,
    ) {
        let success = MessageType::new(natlens::CALL, Class::Success);
        let mut builder = MessageBuilder::new(bytes, success, message.transaction_id());
        builder.attribute(natlens::CALL_ID, &call_id.to_be_bytes());
        self.facts.encode_claims(&mut builder);
        if let Some(key) = self.config.hmac_key {
            // A server with credentials relays only answers signed by the callee.
            builder.attribute(AttrType::USERNAME, self.config.id.as_bytes());
            builder.message_integrity_sha256(&key);
        }
        self.events.push_back(ClientEvent::IncomingCall {
            caller,
            call_id,
            facts,
        });
    }
}

/// Comprehension-required attribute types a natlens client does not know, each listed once.
fn unknown_required(message: &Message<'_>) -> Vec<AttrType> {
    let mut unknown: Vec<AttrType> = message
        .attributes()
        .map(|attribute| attribute.kind)
        .filter(|kind| {
            kind.is_comprehension_required() && !natlens::NATLENS_REQUIRED.contains(kind)
        })
        .collect();
    unknown.sort();
    unknown.dedup();
    unknown
}

/// Reads a delivered CALL: the caller's ID, the call ID and the caller's facts.
fn read_call(message: &Message<'_>) -> Result<(String, u64, NatFacts), Malformed> {
    let caller = natlens::read_name(message, natlens::PEER_ID).ok_or(Malformed)??;
    let call_id = natlens::read_call_id(message).ok_or(Malformed)??;
    let facts = NatFacts::decode(message)?;
    Ok((caller.to_owned(), call_id, facts))
}
