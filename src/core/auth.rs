//! Server-side authentication of LOGIN and CALL: RFC 8489 §9.2 long-term credentials with a
//! server-issued, stateless nonce, plus replay refusal.
//!
//! Why long-term with nonces rather than short-term (§9.1): a short-term MAC over a request
//! proves the key but not freshness, so a captured LOGIN could be replayed at will. The nonce
//! gives freshness without per-client state: it is a MAC over its issue time and the client's
//! IP ([`crate::core::nonce`]); the last hole, a replay from the same IP while the nonce is
//! fresh, is closed by remembering authenticated transaction IDs ([`crate::core::replay`]).
//!
//! Exchange: a request without MESSAGE-INTEGRITY-SHA256 gets 401 with REALM and NONCE; the
//! client repeats it (new transaction) with USERNAME (= its ID), REALM, NONCE and
//! MESSAGE-INTEGRITY-SHA256 keyed with MD5(ID ":" realm ":" key). An expired or foreign nonce
//! gets 438 with a new one, a wrong key or unknown ID 401 again.

use std::net::IpAddr;
use std::time::Instant;

use crate::core::credentials::{Credentials, REALM};
use crate::core::nonce::{NonceCheck, NonceIssuer, NONCE_LIFETIME};
use crate::core::registry::Route;
use crate::core::replay::{ReplayCheck, ReplayGuard};
use crate::wire::attr::AttrType;
use crate::wire::integrity;
use crate::wire::stun::Message;

use crate::wire::natlens::error::{BAD_REQUEST, STALE_NONCE, UNAUTHORIZED};

/// Why a request was not authenticated, and so what to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No MESSAGE-INTEGRITY-SHA256: challenge with 401, REALM and NONCE.
    Challenge,
    /// MESSAGE-INTEGRITY-SHA256 without USERNAME, REALM or NONCE: 400.
    Incomplete,
    /// Nonce expired, from another process or for another IP: 438 with a new nonce.
    StaleNonce,
    /// Unknown ID, a USERNAME that is not the requester's ID, or a wrong MAC: 401.
    BadCredentials,
    /// An authenticated transaction seen before from another route: dropped unanswered.
    Replay,
}

impl Refusal {
    /// The error to answer with; `None` means drop silently.
    pub fn error(self) -> Option<(u16, &'static str)> {
        match self {
            Refusal::Challenge | Refusal::BadCredentials => Some((UNAUTHORIZED, "Unauthorized")),
            Refusal::Incomplete => Some((BAD_REQUEST, "Bad Request")),
            Refusal::StaleNonce => Some((STALE_NONCE, "Stale Nonce")),
            Refusal::Replay => None,
        }
    }

    /// Whether the error carries REALM and a fresh NONCE (RFC 8489 §9.2.4).
    pub fn with_nonce(self) -> bool {
        matches!(
            self,
            Refusal::Challenge | Refusal::StaleNonce | Refusal::BadCredentials
        )
    }
}

/// Credentials, nonces and replay memory of one server.
#[derive(Debug)]
pub struct Authenticator {
    credentials: Credentials,
    nonces: NonceIssuer,
    replay: ReplayGuard,
}

impl Authenticator {
    /// `secret` keys the nonces; it must be random per process.
    pub fn new(
        credentials: Credentials,
        secret: [u8; 32],
        now: Instant,
        replay_memory: usize,
    ) -> Self {
        Authenticator {
            credentials,
            nonces: NonceIssuer::new(secret, now),
            replay: ReplayGuard::new(replay_memory, NONCE_LIFETIME.as_secs() as u32),
        }
    }

    /// Checks that `message` from `route` (source IP `ip`) is authenticated as `id`; returns
    /// the HMAC key to sign the answer with.
    pub fn check(
        &mut self,
        now: Instant,
        message: &Message<'_>,
        route: Route,
        ip: IpAddr,
        id: &str,
    ) -> Result<[u8; 16], Refusal> {
        if message.get(AttrType::MESSAGE_INTEGRITY_SHA256).is_none() {
            return Err(Refusal::Challenge);
        }
        let (Some(username), Some(realm), Some(nonce)) = (
            message.get(AttrType::USERNAME),
            message.get(AttrType::REALM),
            message.get(AttrType::NONCE),
        ) else {
            return Err(Refusal::Incomplete);
        };
        let issued = match self.nonces.check(now, ip, nonce.value) {
            NonceCheck::Fresh { issued } => issued,
            NonceCheck::Stale | NonceCheck::Invalid => return Err(Refusal::StaleNonce),
        };
        if username.value != id.as_bytes() || realm.value != REALM.as_bytes() {
            return Err(Refusal::BadCredentials);
        }
        let key = self
            .credentials
            .hmac_key(id)
            .ok_or(Refusal::BadCredentials)?;
        if !integrity::verify_message_integrity_sha256(message, &key) {
            return Err(Refusal::BadCredentials);
        }
        match self.replay.check(message.transaction_id(), route, issued) {
            ReplayCheck::Fresh | ReplayCheck::Retransmission => Ok(key),
            ReplayCheck::Replay => Err(Refusal::Replay),
            ReplayCheck::NonceTooOld => Err(Refusal::StaleNonce),
        }
    }

    /// Checks a callee's answer to a delivered CALL: MESSAGE-INTEGRITY-SHA256 with the
    /// callee's key. No nonce is needed: the answer matches the server's own random
    /// transaction ID, which is what makes it fresh.
    pub fn check_answer(&self, message: &Message<'_>, callee: &str) -> bool {
        self.credentials
            .hmac_key(callee)
            .is_some_and(|key| integrity::verify_message_integrity_sha256(message, &key))
    }

    /// A fresh nonce for a client at `ip`.
    pub fn nonce(&self, now: Instant, ip: IpAddr) -> String {
        self.nonces.issue(now, ip)
    }

    /// Forgets what expired nonces can no longer bring back.
    pub fn sweep(&mut self, now: Instant) {
        self.replay.sweep(self.nonces.stamp(now));
    }

    /// Authenticated transactions remembered for replay refusal.
    pub fn remembered(&self) -> usize {
        self.replay.len()
    }
}
