//! Answers to the session's own requests: checked against what each request expects (and,
//! under credentials, against our key), then acted on.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::wire::attr::{self, AttrType};
use crate::wire::integrity;
use crate::wire::natlens::{self, error, NatFacts};
use crate::wire::{Class, Message, TransactionId};

use super::requests::Pending;
use super::{ClientEvent, ClientSession, Lost, State};

/// A checked response, ready to act on.
#[derive(Debug)]
pub(super) enum Answer {
    Error { code: u16, reason: String },
    Login(SocketAddr, Option<Duration>, Vec<SocketAddr>),
    Keepalive(Option<SocketAddr>),
    Logout,
    Call(NatFacts),
}

/// A response that matched a transaction but cannot be used; dropped as if lost.
#[derive(Debug)]
pub(super) struct Malformed;

impl From<attr::ValueError> for Malformed {
    fn from(_: attr::ValueError) -> Self {
        Malformed
    }
}

impl<R: RngCore> ClientSession<R> {
    pub(super) fn handle_response(&mut self, now: Instant, message: &Message<'_>) {
        let tid = message.transaction_id();
        let Some(pending) = self.transactions.payload(&tid) else {
            return self.stats.stray_responses += 1;
        };
        if pending.method() != message.method() {
            return self.stats.malformed += 1;
        }
        let Ok(answer) = read_answer(message, pending) else {
            // Dropped as if lost: a UDP retransmission may still bring a usable answer.
            return self.stats.malformed += 1;
        };
        if !matches!(answer, Answer::Error { .. }) && !self.answer_is_signed(&tid, message) {
            // RFC 8489 §9.2.5: a success answer to an authenticated request must carry the
            // server's MAC under our key. Without it the facts in a CALL answer could be anyone's,
            // and the punch would aim at whatever address they named.
            return self.stats.unsigned_answers += 1;
        }
        if let Answer::Error { code, .. } = &answer {
            if self.retry_with_nonce(now, tid, *code, message) {
                return;
            }
        }
        self.auth_tries.remove(&tid);
        let pending = self.transactions.finish(&tid).expect("checked above");
        self.apply(now, pending, answer);
    }

    /// True unless `tid`'s request went out signed and the answer lacks a valid
    /// MESSAGE-INTEGRITY-SHA256 under our key (errors are not signed: 401 and 438 cannot be).
    fn answer_is_signed(&self, tid: &TransactionId, message: &Message<'_>) -> bool {
        let signed = self
            .auth_tries
            .get(tid)
            .is_some_and(|&(_, signed_sends)| signed_sends > 0);
        match (signed, self.config.hmac_key) {
            (true, Some(key)) => integrity::verify_message_integrity_sha256(message, &key),
            _ => true,
        }
    }

    fn apply(&mut self, now: Instant, pending: Pending, answer: Answer) {
        match (pending, answer) {
            (Pending::Login, Answer::Login(observed, expiry, addresses)) => {
                self.server_addresses = addresses;
                self.logged_in(now, observed, expiry)
            }
            (Pending::Login, Answer::Error { code, reason }) => {
                self.close(ClientEvent::LoginRefused { code, reason })
            }
            (Pending::Keepalive, Answer::Keepalive(Some(observed))) => self.note_observed(observed),
            (Pending::Keepalive, Answer::Error { code, .. }) if code == error::NO_SESSION => {
                self.relogin(now)
            }
            // A newer login with this ID's key took the session over: give way, do not log in
            // again (that would take it back and the two ends would flap).
            (Pending::Keepalive, Answer::Error { code, reason }) if code == error::ID_TAKEN => {
                self.close(ClientEvent::LoginRefused { code, reason })
            }
            (Pending::Logout, _) => self.close(ClientEvent::LoggedOut),
            (Pending::Call { callee, call_id }, Answer::Call(facts)) => {
                self.events.push_back(ClientEvent::CallAnswered {
                    callee,
                    call_id,
                    facts,
                })
            }
            (Pending::Call { callee, call_id }, Answer::Error { code, reason }) => {
                self.events.push_back(ClientEvent::CallFailed {
                    callee,
                    call_id,
                    code: Some(code),
                    reason,
                });
                // The server does not know our session: it restarted between keepalives.
                let forgotten = code == error::NO_SESSION || code == error::NOT_LOGGED_IN;
                if forgotten && self.is_logged_in() {
                    self.relogin(now);
                }
            }
            // Other keepalive errors (400, 500): the next keepalive tries again.
            _ => {}
        }
    }

    pub(super) fn logged_in(
        &mut self,
        now: Instant,
        observed: SocketAddr,
        udp_expiry: Option<Duration>,
    ) {
        let State::LoggingIn { relogin } = self.state else {
            return;
        };
        self.udp_expiry = udp_expiry;
        self.lost_at = None;
        self.failover.logged_in();
        self.note_observed(observed);
        self.state = State::LoggedIn {
            next_keepalive: now + self.keepalive_interval(),
        };
        self.events.push_back(if relogin {
            ClientEvent::Relogin {
                observed,
                udp_expiry,
            }
        } else {
            ClientEvent::LoggedIn {
                observed,
                udp_expiry,
            }
        });
    }

    fn note_observed(&mut self, new: SocketAddr) {
        if let Some(old) = self.observed.replace(new) {
            if old != new {
                self.events
                    .push_back(ClientEvent::ObservedChanged { old, new });
            }
        }
    }

    pub(super) fn on_timeout(&mut self, pending: Pending) {
        match pending {
            Pending::Login => self.fail_over(Lost::Login),
            Pending::Keepalive => self.fail_over(Lost::Keepalive),
            Pending::Logout => self.close(ClientEvent::LoggedOut),
            Pending::Call { callee, call_id } => self.events.push_back(ClientEvent::CallFailed {
                callee,
                call_id,
                code: None,
                reason: "no answer from the server in time".into(),
            }),
        }
    }
}

/// Checks a response against what its transaction expects.
fn read_answer(message: &Message<'_>, pending: &Pending) -> Result<Answer, Malformed> {
    if message.class() == Class::Error {
        let value = message.get(AttrType::ERROR_CODE).ok_or(Malformed)?.value;
        let (code, reason) = attr::decode_error_code(value)?;
        return Ok(Answer::Error {
            code,
            reason: reason.to_owned(),
        });
    }
    let tid = message.transaction_id();
    let mapped = message
        .get(AttrType::XOR_MAPPED_ADDRESS)
        .map(|a| attr::decode_xor_address(a.value, &tid))
        .transpose()?;
    Ok(match pending {
        Pending::Login => {
            let expiry = message
                .get(natlens::EXPIRY)
                .map(|a| attr::decode_u32(a.value))
                .transpose()?;
            let expiry = expiry.map(|secs| Duration::from_secs(secs.into()));
            let addresses = natlens::read_server_addresses(message);
            Answer::Login(mapped.ok_or(Malformed)?, expiry, addresses)
        }
        // Accept a keepalive answer without an address: it still proves the session lives.
        Pending::Keepalive => Answer::Keepalive(mapped),
        Pending::Logout => Answer::Logout,
        Pending::Call { call_id, .. } => {
            // A server may echo NL-CALL-ID; if it does, it must be ours.
            if let Some(echoed) = natlens::read_call_id(message) {
                if echoed? != *call_id {
                    return Err(Malformed);
                }
            }
            Answer::Call(NatFacts::decode(message)?)
        }
    })
}
