//! The TCP filtering test (RFC 5382): a Binding request over TCP with CHANGE-REQUEST is
//! answered by one SYN the server crafts from its other IP and/or other port to the address the
//! connection came from, and the answer to the request says whether that SYN was answered.
//!
//! A STUN server cannot answer a TCP request from another address (the answer must come back on
//! the connection), but it can send a SYN from another address: if the client's NAT lets it in,
//! the client's kernel answers with a SYN-ACK (a listener on the port) or a RST (none), which
//! the shell's raw socket sees and hands to [`ServerCore::handle_syn_reply`]. The server's own
//! kernel resets that SYN-ACK (no socket of its own knows the SYN), which is harmless.
//!
//! The limits, so that the test cannot be aimed at anyone: one SYN per request, only to the
//! request's own source address (the connection's peer, which completed a handshake, so it is
//! not forged), paid for from the source's answer budget like any UDP answer, at most
//! [`MAX_SYN_TESTS_PER_CONN`] waiting per connection and [`MAX_SYN_TESTS`] in all.
//!
//! Sans-IO: the shell drains [`ServerCore::poll_syn`] and sends each [`SynOrder`]; time comes in
//! through `handle_timeout`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::core::binding::{unknown_required, FullMode, SOFTWARE};
use crate::core::registry::{ConnId, Route};
use crate::core::stats::Drop;
use crate::core::Transport;
use crate::wire::answer::ErrorAnswer;
use crate::wire::attr::{self, AttrType, ChangeRequest};
use crate::wire::integrity;
use crate::wire::natlens::{self, error};
use crate::wire::stun::{Class, Message, MessageType, Method, TransactionId};
use crate::wire::MessageBuilder;

use super::ServerCore;

/// How long the server waits for the answer to its SYN when the request does not say
/// (NL-SYN-WAIT): a SYN and its SYN-ACK cross the path once each, one round trip.
pub const DEFAULT_SYN_WAIT: Duration = Duration::from_millis(250);
/// Shortest wait a request may ask for: below this, scheduling on the server alone may lose it.
pub const MIN_SYN_WAIT: Duration = Duration::from_millis(20);
/// Longest wait a request may ask for: each waiting test holds a little state.
pub const MAX_SYN_WAIT: Duration = Duration::from_secs(2);
/// Tests waiting for an answer on one connection: one per kind of change.
pub const MAX_SYN_TESTS_PER_CONN: usize = 2;
/// Tests waiting in all.
pub const MAX_SYN_TESTS: usize = 1024;
/// The reason phrase of the refusal when the shell cannot craft SYNs.
pub const NO_RAW_REASON: &str = "TCP filtering test off: the server lacks CAP_NET_RAW";
/// The reason phrase of the refusal when too many tests are waiting.
pub const BUSY_REASON: &str = "Too many TCP filtering tests";

/// One SYN for the shell to send: from one of our own addresses, to a requester.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynOrder {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub isn: u32,
}

/// A test waiting for the answer to its SYN.
#[derive(Debug, Clone)]
struct Pending {
    conn: ConnId,
    tid: TransactionId,
    /// The request ended with FINGERPRINT, so the answer does too.
    fingerprint: bool,
    /// Where the request arrived: OTHER-ADDRESS is computed from it.
    local: SocketAddr,
    order: SynOrder,
    deadline: Instant,
}

/// The tests in flight and the SYNs not sent yet.
#[derive(Debug, Default)]
pub(super) struct SynTests {
    /// Set by the shell once it holds a raw socket.
    enabled: bool,
    pending: Vec<Pending>,
    orders: VecDeque<SynOrder>,
}

/// What a Binding request over TCP asks of the filtering test: the change, and the wait.
fn syn_test_request(message: &Message<'_>) -> Option<(ChangeRequest, Duration)> {
    if message.class() != Class::Request || !message.has_magic_cookie() {
        return None;
    }
    let change = ChangeRequest::decode(message.get(AttrType::CHANGE_REQUEST)?.value).ok()?;
    // Anything the Binding responder would refuse, it refuses with its own answer.
    let valid = change.any()
        && message.get(AttrType::RESPONSE_PORT).is_none()
        && integrity::check_fingerprint(message) != Some(false)
        && unknown_required(message, crate::core::binding::BINDING_UNDERSTOOD).is_empty();
    if !valid {
        return None;
    }
    let wait = message
        .get(natlens::SYN_WAIT)
        .and_then(|a| attr::decode_u32(a.value).ok())
        .map_or(DEFAULT_SYN_WAIT, |ms| Duration::from_millis(u64::from(ms)))
        .clamp(MIN_SYN_WAIT, MAX_SYN_WAIT);
    Some((change, wait))
}

impl ServerCore {
    /// The shell holds a raw socket: TCP CHANGE-REQUESTs are answered by the test from now on
    /// rather than refused.
    pub fn enable_syn_tests(&mut self) {
        self.syn_tests.enabled = true;
    }

    /// The next SYN to send.
    pub fn poll_syn(&mut self) -> Option<SynOrder> {
        self.syn_tests.orders.pop_front()
    }

    /// A Binding request over TCP: handled here when it asks for the filtering test on a
    /// full-mode address. `Some(true)` when `reply` holds an answer now, `Some(false)` when the
    /// answer comes later (or never: rate-limited), `None` when it is an ordinary Binding.
    pub(super) fn syn_test(
        &mut self,
        message: &Message<'_>,
        conn: ConnId,
        local: SocketAddr,
        remote: SocketAddr,
        reply: &mut Vec<u8>,
    ) -> Option<bool> {
        let full = *self.config.full_modes.iter().find(|f| f.serves(&local))?;
        let (change, wait) = syn_test_request(message)?;
        let refuse = |reply: &mut Vec<u8>, code, reason| {
            ErrorAnswer::to_request(message, code, reason).write(reply);
        };
        if !self.syn_tests.enabled {
            self.counters.errors += 1;
            refuse(reply, error::UNKNOWN_ATTRIBUTE, NO_RAW_REASON);
            return Some(true);
        }
        // The SYN is an answer of sorts: the requester's budget pays for it.
        if let Some(limiter) = &mut self.limiter {
            if !limiter.allow(self.now, remote.ip()) {
                self.dropped(Drop::RateLimited, Transport::Tcp, Some(remote));
                return Some(false);
            }
        }
        let on_conn = self.syn_tests.pending.iter().filter(|p| p.conn == conn);
        if on_conn.count() >= MAX_SYN_TESTS_PER_CONN
            || self.syn_tests.pending.len() >= MAX_SYN_TESTS
        {
            self.counters.errors += 1;
            refuse(reply, error::SERVER_FULL, BUSY_REASON);
            return Some(true);
        }
        let order = SynOrder {
            from: full.source_for(local, change),
            to: remote,
            isn: self.rng.next_u32(),
        };
        self.syn_tests.orders.push_back(order);
        self.syn_tests.pending.push(Pending {
            conn,
            tid: message.transaction_id(),
            fingerprint: message.get(AttrType::FINGERPRINT).is_some(),
            local,
            order,
            deadline: self.now + wait,
        });
        Some(false)
    }

    /// A TCP segment the raw socket saw arrive: from `from` to our port `to_port`,
    /// acknowledging `ack`. It answers a waiting test when it comes from the test's requester
    /// to the port the SYN left from and acknowledges the SYN's sequence number.
    pub fn handle_syn_reply(&mut self, now: Instant, from: SocketAddr, to_port: u16, ack: u32) {
        self.now = now;
        let matching = self.syn_tests.pending.iter().position(|p| {
            p.order.to == from
                && p.order.from.port() == to_port
                && p.order.isn.wrapping_add(1) == ack
        });
        if let Some(i) = matching {
            let pending = self.syn_tests.pending.remove(i);
            self.answer_syn_test(&pending, true);
        }
    }

    /// Answers the tests whose wait is over: their SYN was not answered.
    pub(super) fn syn_tests_due(&mut self, now: Instant) {
        let (due, waiting): (Vec<Pending>, Vec<Pending>) =
            std::mem::take(&mut self.syn_tests.pending)
                .into_iter()
                .partition(|p| p.deadline <= now);
        self.syn_tests.pending = waiting;
        for pending in &due {
            self.answer_syn_test(pending, false);
        }
    }

    /// The earliest wait to end.
    pub(super) fn syn_tests_deadline(&self) -> Option<Instant> {
        self.syn_tests.pending.iter().map(|p| p.deadline).min()
    }

    /// A connection ended: its tests need no answer.
    pub(super) fn syn_tests_closed(&mut self, conn: ConnId) {
        self.syn_tests.pending.retain(|p| p.conn != conn);
    }

    /// The Binding success for a test, on its connection.
    fn answer_syn_test(&mut self, pending: &Pending, answered: bool) {
        let Some(full) = self
            .config
            .full_modes
            .iter()
            .find(|f| f.serves(&pending.local))
            .copied()
        else {
            return;
        };
        let bytes = syn_answer(pending, &full, answered);
        self.counters.bindings += 1;
        self.send(Route::Tcp { conn: pending.conn }, bytes);
    }
}

/// XOR-MAPPED-ADDRESS and MAPPED-ADDRESS (the requester), RESPONSE-ORIGIN (where the SYN came
/// from), OTHER-ADDRESS, SOFTWARE and NL-SYN-ANSWERED.
fn syn_answer(pending: &Pending, full: &FullMode, answered: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    let ty = MessageType::new(Method::BINDING, Class::Success);
    let mut builder = MessageBuilder::new(&mut out, ty, pending.tid);
    let remote = pending.order.to;
    builder.xor_address(AttrType::XOR_MAPPED_ADDRESS, &remote);
    builder.address(AttrType::MAPPED_ADDRESS, &remote);
    builder.address(AttrType::RESPONSE_ORIGIN, &pending.order.from);
    builder.address(AttrType::OTHER_ADDRESS, &full.other_address(pending.local));
    builder.attribute(AttrType::SOFTWARE, SOFTWARE.as_bytes());
    builder.u32(natlens::SYN_ANSWERED, u32::from(answered));
    if pending.fingerprint {
        builder.fingerprint();
    }
    out
}

#[cfg(test)]
mod tests;
