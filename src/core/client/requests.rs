//! Requests the session sends: LOGIN, KEEPALIVE, LOGOUT and CALL, signed under credentials,
//! as transactions with a retry policy cut to each request's budget.

use std::time::{Duration, Instant};

use rand::RngCore;

use crate::core::transaction::Retry;
use crate::wire::attr::AttrType;
use crate::wire::natlens::{self, error};
use crate::wire::{Class, Message, MessageBuilder, MessageType, Method, TransactionId};

use super::{ClientSession, State};

/// What a transaction in flight is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Pending {
    Login,
    Keepalive,
    Logout,
    Call { callee: String, call_id: u64 },
}

impl Pending {
    pub fn method(&self) -> Method {
        match self {
            Pending::Login => natlens::LOGIN,
            Pending::Keepalive => natlens::KEEPALIVE,
            Pending::Logout => natlens::LOGOUT,
            Pending::Call { .. } => natlens::CALL,
        }
    }
}

impl<R: RngCore> ClientSession<R> {
    pub(super) fn send_login(&mut self, now: Instant) {
        let budget = self.silence_budget();
        self.send_request(now, Pending::Login, budget, |_| {});
    }

    pub(super) fn send_keepalive(&mut self, now: Instant) {
        let interval = self.keepalive_interval();
        self.state = State::LoggedIn {
            next_keepalive: now + interval,
        };
        // A keepalive still in flight keeps trying; a second would only add load.
        if self
            .transactions
            .payloads()
            .any(|p| *p == Pending::Keepalive)
        {
            return;
        }
        let budget = self.silence_budget();
        self.send_request(now, Pending::Keepalive, budget, |_| {});
    }

    /// Builds a request (LOGIN, KEEPALIVE and LOGOUT carry NL-ID; CALL names only the callee,
    /// the server knows the caller from its session), queues it and starts its
    /// transaction with the configured retry cut to `budget`.
    pub(super) fn send_request(
        &mut self,
        now: Instant,
        pending: Pending,
        budget: Duration,
        attributes: impl FnOnce(&mut MessageBuilder<'_>),
    ) {
        let tid = self.fresh_tid();
        let mut bytes = Vec::new();
        let mut builder = MessageBuilder::new(
            &mut bytes,
            MessageType::new(pending.method(), Class::Request),
            tid,
        );
        if !matches!(pending, Pending::Call { .. }) {
            builder.attribute(natlens::ID, self.config.id.as_bytes());
        }
        attributes(&mut builder);
        let signed = self.sign(&pending, &mut builder);
        self.start(now, tid, pending, budget, bytes, signed.map(u8::from));
    }

    fn fresh_tid(&mut self) -> TransactionId {
        let mut tid = [0u8; 12];
        self.rng.fill_bytes(&mut tid);
        TransactionId(tid)
    }

    /// Adds USERNAME, REALM, NONCE and MESSAGE-INTEGRITY-SHA256 to a LOGIN or CALL when this
    /// end has a key and a nonce. `None` when credentials do not apply; `Some(signed)` else.
    pub(super) fn sign(&self, pending: &Pending, builder: &mut MessageBuilder<'_>) -> Option<bool> {
        let key = self.config.hmac_key?;
        if !matches!(pending, Pending::Login | Pending::Call { .. }) {
            return None;
        }
        let Some(nonce) = &self.nonce else {
            // The first LOGIN goes unsigned: only the server's 401 brings a nonce.
            return Some(false);
        };
        builder.attribute(AttrType::USERNAME, self.config.id.as_bytes());
        builder.attribute(AttrType::REALM, crate::core::credentials::REALM.as_bytes());
        builder.attribute(AttrType::NONCE, nonce.as_bytes());
        builder.message_integrity_sha256(&key);
        Some(true)
    }

    /// Queues a built request and starts its transaction. `signed_attempts` counts the signed
    /// sends of this request so far, for requests under credentials.
    fn start(
        &mut self,
        now: Instant,
        tid: TransactionId,
        pending: Pending,
        budget: Duration,
        bytes: Vec<u8>,
        signed_attempts: Option<u8>,
    ) {
        if let Some(attempts) = signed_attempts {
            self.auth_tries.insert(tid, (bytes.clone(), attempts));
        }
        let retry = retry_within(self.config.retry, budget);
        self.transmit.push_back(bytes.clone());
        self.transactions.start(now, tid, bytes, retry, pending);
    }

    /// A 401 or 438 to a LOGIN or CALL sent under credentials: take the server's nonce and send
    /// the request again, signed, as a new transaction. A 401 is retried only when the request
    /// was not signed yet (else the key is wrong); a 438 once more after that (the nonce went
    /// stale, or the server restarted). Returns true when the request was sent again.
    pub(super) fn retry_with_nonce(
        &mut self,
        now: Instant,
        tid: TransactionId,
        code: u16,
        message: &Message<'_>,
    ) -> bool {
        let Some((_, attempts)) = self.auth_tries.get(&tid) else {
            return false;
        };
        let retry = match code {
            error::UNAUTHORIZED => *attempts == 0,
            error::STALE_NONCE => *attempts < 2,
            _ => false,
        };
        let nonce = message
            .get(AttrType::NONCE)
            .and_then(|a| std::str::from_utf8(a.value).ok());
        let (Some(nonce), true) = (nonce, retry) else {
            return false;
        };
        self.nonce = Some(nonce.to_owned());
        let (original, attempts) = self.auth_tries.remove(&tid).expect("checked above");
        let pending = self.transactions.finish(&tid).expect("a request in flight");
        let budget = match pending {
            Pending::Call { .. } => self.config.call_timeout,
            _ => self.silence_budget(),
        };
        let new_tid = self.fresh_tid();
        let mut bytes = Vec::new();
        let mut builder = MessageBuilder::new(
            &mut bytes,
            MessageType::new(pending.method(), Class::Request),
            new_tid,
        );
        let old = Message::parse(&original).expect("our own request");
        for attribute in old
            .attributes()
            .filter(|a| !AUTH_ATTRIBUTES.contains(&a.kind))
        {
            builder.attribute(attribute.kind, attribute.value);
        }
        self.sign(&pending, &mut builder);
        self.start(now, new_tid, pending, budget, bytes, Some(attempts + 1));
        true
    }
}

/// The attributes the credential exchange adds; left out when a request is rebuilt with a new
/// nonce.
const AUTH_ATTRIBUTES: &[AttrType] = &[
    AttrType::USERNAME,
    AttrType::REALM,
    AttrType::NONCE,
    AttrType::MESSAGE_INTEGRITY_SHA256,
];

/// Cuts a retry policy so that the whole transaction ends within `budget`: UDP keeps the sends
/// that start before the budget runs out and waits for the rest of it after the last one.
pub fn retry_within(retry: Retry, budget: Duration) -> Retry {
    match retry {
        Retry::Stream { timeout } => Retry::Stream {
            timeout: timeout.min(budget),
        },
        Retry::Datagram {
            rto,
            sends,
            final_wait,
        } => {
            let (mut kept, mut last_send, mut gap) = (1, Duration::ZERO, rto);
            while kept < sends && last_send + gap < budget {
                last_send += gap;
                gap *= 2;
                kept += 1;
            }
            let left = budget.saturating_sub(last_send);
            let final_wait = if kept == sends {
                final_wait.min(left)
            } else {
                left
            };
            Retry::Datagram {
                rto,
                sends: kept,
                final_wait,
            }
        }
    }
}
