//! Call relay, answer side: the server's own requests (a call delivered to a local callee or
//! forwarded over a link, a link's hello) as transactions, their answers, retransmissions and
//! timeouts, and the answer that goes back to the call's origin.
//!
//! Legs live in a [`crate::core::transaction::Transactions`] table, which yields them in the
//! order they started: retransmissions, timeouts and the legs cancelled when a connection
//! closes are handled in that order, so the commands and events that follow are too.

use std::time::Instant;

use rand::RngCore;

use crate::core::binding::SOFTWARE;
use crate::core::events::{call_id_text, Command, Event};
use crate::core::registry::Route;
use crate::core::stats::Drop;
use crate::core::transaction::{Due, Retry};
use crate::wire::answer::ErrorAnswer;
use crate::wire::attr::AttrType;
use crate::wire::natlens::{self, error, NatFacts};
use crate::wire::stun::{Class, Message, MessageType};
use crate::wire::{MessageBuilder, TransactionId};

use super::relay::{Leg, Origin, PendingCall, Seen};
use super::ServerCore;

impl ServerCore {
    /// Builds one of the server's own CALL requests with a fresh transaction ID.
    pub(super) fn call_request(&mut self, add: impl FnOnce(&mut MessageBuilder<'_>)) -> Vec<u8> {
        let tid = self.fresh_tid();
        let mut builder = MessageBuilder::new(
            &mut self.scratch,
            MessageType::new(natlens::CALL, Class::Request),
            tid,
        );
        add(&mut builder);
        builder.fingerprint();
        builder.finish().to_vec()
    }

    pub(super) fn fresh_tid(&mut self) -> TransactionId {
        let mut tid = [0u8; 12];
        self.rng.fill_bytes(&mut tid);
        TransactionId(tid)
    }

    pub(super) fn send_leg(&mut self, now: Instant, bytes: Vec<u8>, retry: Retry, leg: Leg) {
        let tid = TransactionId(bytes[8..20].try_into().expect("header"));
        self.send(leg.route(), bytes.clone());
        self.legs.start(now, tid, bytes, retry, leg);
    }

    /// A response to one of the server's own requests. False when it matches none.
    pub(super) fn response(&mut self, route: Route, message: &Message<'_>) -> bool {
        let tid = message.transaction_id();
        // Right transaction ID from the wrong sender: ignore the impostor, keep waiting.
        let leg = match self.legs.payload(&tid) {
            Some(leg) if leg.route() == route => *leg,
            _ => return false,
        };
        // With credentials, a local callee signs its answer: only the ID the call named can
        // supply the facts that go back to the caller. Anything else is ignored like an impostor.
        if let (Leg::Deliver { call, .. }, Some(auth)) = (leg, &self.auth) {
            let callee = self.calls.get(&call).map(|p| p.callee.as_str());
            if !callee.is_some_and(|callee| auth.check_answer(message, callee)) {
                self.dropped(Drop::AuthFailed, route.transport(), None);
                return true;
            }
        }
        let leg = self.legs.finish(&tid).expect("just seen");
        match leg {
            Leg::Hello { conn } => self.hello_answered(conn, message),
            Leg::Deliver { call, .. } | Leg::Forward { call, .. } => {
                self.leg_answered(call, leg, message)
            }
        }
        true
    }

    fn leg_answered(&mut self, key: u64, leg: Leg, message: &Message<'_>) {
        if message.class() == Class::Error {
            return self.leg_failed(key, leg_failure(message));
        }
        let Some(pending) = self.calls.remove(&key) else {
            return;
        };
        let mut facts = NatFacts::decode(message).unwrap_or_default();
        if let Leg::Deliver { .. } = leg {
            // The callee's public address is what this server saw.
            facts.observed = pending.callee_observed;
        }
        let bytes = {
            let ty = MessageType::new(natlens::CALL, Class::Success);
            let mut builder = MessageBuilder::new(&mut self.scratch, ty, pending.origin_tid);
            builder.attribute(natlens::PEER_ID, pending.callee.as_bytes());
            builder.attribute(natlens::CALL_ID, &pending.call_id.to_be_bytes());
            facts.encode(&mut builder);
            if let Some(key) = pending.caller_key {
                builder.message_integrity_sha256(&key);
            }
            builder.fingerprint();
            builder.finish().to_vec()
        };
        self.counters.relayed += 1;
        self.relayed(&pending, "answered", None);
        self.answer_origin(&pending, bytes);
    }

    pub(super) fn leg_failed(&mut self, key: u64, failure: (u16, &'static str)) {
        let Some(pending) = self.calls.get_mut(&key) else {
            return;
        };
        pending.waiting -= 1;
        if failure.0 == error::PEER_TIMEOUT {
            pending.failure = failure;
        }
        if pending.waiting > 0 {
            return;
        }
        let pending = self.calls.remove(&key).expect("present");
        let (code, reason) = pending.failure;
        let mut bytes = Vec::new();
        write_call_error(pending.origin_tid, code, reason, &mut bytes);
        self.counters.errors += 1;
        let outcome = match code {
            error::UNKNOWN_PEER => "not-found",
            error::PEER_TIMEOUT => "timeout",
            _ => "error",
        };
        self.relayed(&pending, outcome, Some(code));
        self.answer_origin(&pending, bytes);
    }

    pub(super) fn relayed(
        &mut self,
        pending: &PendingCall,
        outcome: &'static str,
        code: Option<u16>,
    ) {
        self.events.push_back(Event::Relay {
            call_id: call_id_text(pending.call_id),
            caller: pending.caller.clone(),
            callee: pending.callee.clone(),
            outcome,
            code,
        });
    }

    fn answer_origin(&mut self, pending: &PendingCall, bytes: Vec<u8>) {
        self.send(pending.origin.route(), bytes.clone());
        if let Some(seen) = self.seen.get_mut(&(pending.origin, pending.origin_tid)) {
            *seen = Seen::Answered {
                bytes,
                at: self.now,
            };
        }
    }

    /// Retransmits the legs due at `now` and gives up on those out of time, in start order.
    pub(super) fn legs_due(&mut self, now: Instant) {
        let (mut failed, mut resend) = (Vec::new(), Vec::new());
        for due in self.legs.poll_due(now) {
            match due {
                Due::Retransmit { bytes, payload, .. } => {
                    resend.push((payload.route(), bytes.to_vec()))
                }
                Due::TimedOut { payload, .. } => failed.push(payload),
            }
        }
        for (route, bytes) in resend {
            self.send(route, bytes);
        }
        for leg in failed {
            self.leg_lost(leg);
        }
    }

    fn leg_lost(&mut self, leg: Leg) {
        match leg {
            Leg::Hello { conn } => self.commands.push_back(Command::Close { conn }),
            Leg::Deliver { call, .. } | Leg::Forward { call, .. } => {
                self.leg_failed(call, (error::PEER_TIMEOUT, "Peer did not answer"))
            }
        }
    }

    /// A connection closed: the legs on it fail now (in start order), and calls that came in
    /// on it are forgotten, since their answer has nowhere to go.
    pub(super) fn legs_closed(&mut self, route: Route) {
        for (_, leg) in self.legs.cancel_where(|leg| leg.route() == route) {
            if !matches!(leg, Leg::Hello { .. }) {
                self.leg_lost(leg);
            }
        }
        let origin_gone = |origin: &Origin| origin.route() == route;
        self.calls
            .retain(|_, pending| !origin_gone(&pending.origin));
        self.seen.retain(|(origin, _), _| !origin_gone(origin));
    }
}

/// The failure a leg's error answer stands for: a timeout beats "not found" later on.
fn leg_failure(message: &Message<'_>) -> (u16, &'static str) {
    let code = message
        .get(AttrType::ERROR_CODE)
        .and_then(|a| crate::wire::attr::decode_error_code(a.value).ok());
    match code.map(|(code, _)| code) {
        Some(error::UNKNOWN_PEER) => (error::UNKNOWN_PEER, "Unknown peer"),
        Some(error::PEER_TIMEOUT) => (error::PEER_TIMEOUT, "Peer did not answer"),
        _ => (error::PEER_TIMEOUT, "Peer refused the call"),
    }
}

/// Writes the failure answer to a relayed call. Unlike the lean errors it names the server
/// (SOFTWARE) and always ends with FINGERPRINT: only a logged-in caller or a linked server
/// can provoke it.
pub(super) fn write_call_error(tid: TransactionId, code: u16, reason: &str, out: &mut Vec<u8>) {
    ErrorAnswer::new(natlens::CALL, tid, code, reason)
        .software(SOFTWARE)
        .fingerprint(true)
        .write(out);
}
