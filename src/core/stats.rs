//! Counters the server keeps: answers, drops by reason, sessions by transport.

use serde::Serialize;

use crate::wire::DecodeError;

/// Why a received message got no answer, was refused, or a connection was closed. Each has a
/// counter, so that every budget that bites shows in the stats line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Drop {
    /// Not STUN, or a broken STUN header or attribute list.
    Malformed(DecodeError),
    /// A STUN indication: never answered.
    Indication,
    /// A response nobody asked for, or one matching no transaction.
    NotRequest,
    /// FINGERPRINT present but wrong.
    BadFingerprint,
    /// An RFC 3489 request for CHANGE-REQUEST the server cannot honour.
    ChangeUnsupported,
    /// A natlens method without the magic cookie (RFC 3489 only knows Binding).
    LegacyNonBinding,
    /// A method natlens does not implement, in a non-request class.
    UnknownMethod,
    /// A TCP frame larger than `--max-message`.
    OversizedFrame,
    /// A TCP connection that sent half a frame, or never logged in, within `--tcp-idle`.
    IdleConnection,
    /// A TCP connection whose peer stopped reading so its backlog passed `--max-tcp-backlog`.
    SlowReader,
    /// Too many TCP connections.
    ConnectionLimit,
    /// A retransmitted request already being handled.
    Duplicate,
    /// The source IP's answer token bucket was empty (`--answer-rate`): not answered.
    RateLimited,
    /// A login refused at `--max-sessions` (503).
    ServerFull,
    /// A login refused at `--max-sessions-per-ip` (486).
    PerIpLimit,
    /// A call refused at `--max-pending-calls` (503).
    PendingCallsLimit,
    /// LOGIN or CALL without credentials on a server that requires them (401 challenge).
    AuthRequired,
    /// Wrong key, unknown ID or USERNAME not the requester's ID (401); also a callee answer
    /// whose MESSAGE-INTEGRITY-SHA256 does not check out (ignored).
    AuthFailed,
    /// An expired, foreign or unparsable NONCE (438 with a new one).
    StaleNonce,
    /// An authenticated transaction replayed from another address or port: not answered.
    Replay,
}

impl Drop {
    /// Stable kebab-case name used in logs, NDJSON and the stats line.
    pub fn as_str(self) -> &'static str {
        match self {
            Drop::Malformed(error) => error.as_str(),
            Drop::Indication => "indication",
            Drop::NotRequest => "not-request",
            Drop::BadFingerprint => "bad-fingerprint",
            Drop::ChangeUnsupported => "change-unsupported",
            Drop::LegacyNonBinding => "legacy-non-binding",
            Drop::UnknownMethod => "unknown-method",
            Drop::OversizedFrame => "oversized-frame",
            Drop::IdleConnection => "idle-connection",
            Drop::SlowReader => "slow-reader",
            Drop::ConnectionLimit => "connection-limit",
            Drop::Duplicate => "duplicate",
            Drop::RateLimited => "rate-limited",
            Drop::ServerFull => "server-full",
            Drop::PerIpLimit => "per-ip-limit",
            Drop::PendingCallsLimit => "pending-calls-limit",
            Drop::AuthRequired => "auth-required",
            Drop::AuthFailed => "auth-failed",
            Drop::StaleNonce => "stale-nonce",
            Drop::Replay => "replay",
        }
    }
}

/// Running totals since start.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    /// Messages received (datagrams and TCP frames), valid or not.
    pub received: u64,
    /// Binding requests answered with a success.
    pub bindings: u64,
    /// Requests of any method answered with an error response.
    pub errors: u64,
    pub logins: u64,
    pub logouts: u64,
    pub expired: u64,
    pub calls: u64,
    pub relayed: u64,
    /// PROBE-MAPPING probes sent (one per accepted request).
    pub mapping_probes: u64,
    /// Drops by reason name, in a stable order for JSON.
    pub drops: std::collections::BTreeMap<&'static str, u64>,
}

impl Counters {
    pub fn drop(&mut self, reason: Drop) {
        *self.drops.entry(reason.as_str()).or_default() += 1;
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.values().sum()
    }
}
