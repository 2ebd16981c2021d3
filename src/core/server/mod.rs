//! The location server's core: Binding reflection, logins, keep-alives, call relay and
//! federation, as one sans-IO state machine.
//!
//! The shell calls [`ServerCore::handle_udp`] / [`ServerCore::handle_tcp`] for each received
//! message (the immediate answer goes into a caller-owned buffer, so the Binding hot path does
//! not allocate), [`ServerCore::handle_timeout`] when [`ServerCore::poll_timeout`] passes, and
//! drains [`ServerCore::poll_command`] and [`ServerCore::poll_event`] after each.
//!
//! This module holds the state and the dispatch; each job has its own file:
//! - `binding`: STUN Binding requests, answered by the stateless responder in
//!   [`crate::core::binding`];
//! - `sessions`: LOGIN, KEEPALIVE, LOGOUT, credentials and session expiry;
//! - `relay` and `legs`: CALL requests, and the server's own requests that carry them on (to a
//!   local callee or over federation links) with their answers, retransmissions and timeouts;
//! - `call_request`: the fields of a CALL the relay routes on;
//! - `federation`: links to other servers (a link introduces itself with the wire method
//!   PEER-HELLO);
//! - `request`: the one request context every handler takes, and the answers it writes;
//! - `mapping_probe`: PROBE-MAPPING, one packet to a client's mapped port (proving a
//!   port mapping from outside).
//!
//! Nothing here walks a hash map into its output: pending calls are kept by call number and
//! transactions in start order, so a replay with the same inputs yields the same commands and
//! events in the same order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::core::auth::Authenticator;
use crate::core::binding::{unknown_required, FullMode, Outcome, Received};
use crate::core::credentials::Credentials;
use crate::core::events::{Command, Event};
use crate::core::registry::{ConnId, Registry, Route};
use crate::core::replay::REPLAY_MEMORY;
use crate::core::stats::{Counters, Drop};
use crate::core::token_bucket::{SourceLimiter, MAX_SOURCES};
use crate::core::transaction::Transactions;
use crate::core::Transport;
use crate::wire::integrity;
use crate::wire::natlens::{self, error};
use crate::wire::stun::{Class, Message, Method};
use crate::wire::TransactionId;

mod binding;
mod call_request;
mod federation;
mod home_calls;
pub mod home_registry;
mod legs;
pub mod mapping_probe;
mod relay;
mod request;
mod sessions;
mod syn_test;

use relay::{Leg, Origin, PendingCall, Seen};
use request::{Request, NATLENS_REQUEST_UNDERSTOOD};
pub use syn_test::{SynOrder, DEFAULT_SYN_WAIT, MAX_SYN_WAIT, NO_RAW_REASON};

/// How long the server waits for a logged-in callee to answer a delivered call. A live callee
/// answers within one round trip; 5 s leaves room for the UDP retransmissions at 250, 500,
/// 1000 and 2000 ms that a lossy path needs.
pub const DELIVER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a server waits for a linked server's answer to a forwarded call: longer than
/// [`DELIVER_TIMEOUT`] plus a link round trip, so that the far side's own 408 arrives first.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(8);
/// How long a new federation link may take to introduce itself.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an answered call's response is kept for a UDP caller that retransmits: RFC 8489's
/// 39.5 s transaction lifetime.
pub const ANSWER_CACHE: Duration = Duration::from_millis(39_500);
/// Granularity of session expiry: expiry times are tens of seconds, so a 1 s sweep is exact
/// enough and keeps the work per sweep bounded.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Default `--max-sessions-per-ip`: a home or office NAT holds a handful of natlens users, a
/// carrier-grade NAT a few hundred; one address cannot take more than this of the server.
pub const DEFAULT_MAX_SESSIONS_PER_IP: usize = 256;
/// Default `--max-pending-calls`: calls waiting for a callee or a linked server. Each lives at most
/// [`FORWARD_TIMEOUT`], so this allows over 1,000 calls a second before it bites.
pub const DEFAULT_MAX_PENDING_CALLS: usize = 10_000;

/// Fixed configuration of one server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Federation name; must differ between linked servers.
    pub name: String,
    pub udp_expiry: Duration,
    pub max_sessions: usize,
    pub max_sessions_per_ip: usize,
    pub max_pending_calls: usize,
    /// RFC 5780 address sets; a socket whose address is in one answers in full mode.
    pub full_modes: Vec<FullMode>,
    /// ID → key; `None` runs the server open (anyone may log in as any free ID).
    pub credentials: Option<Credentials>,
    /// Keys the stateless nonces (and the answer buckets' hash); must be random per process.
    pub nonce_secret: [u8; 32],
    /// Answers per second per source IP over UDP; `None` for no limit.
    pub answer_rate: Option<u32>,
    /// The addresses a LOGIN success names (NL-SERVER-ADDRESS): the specific `--listen`
    /// addresses and `--advertise`'s; the first of each family counts.
    pub addresses: Vec<SocketAddr>,
}

impl ServerConfig {
    /// What a LOGIN success from `remote` names: the first address of each family, `remote`'s
    /// family first (its client knows that one already; the other is the news).
    pub fn addresses_for(&self, remote: SocketAddr) -> ServerAddresses {
        use crate::wire::natlens::IpFamily;
        let own = IpFamily::of(remote.ip());
        let mut found = ServerAddresses {
            addresses: [remote; 2],
            len: 0,
        };
        for family in [own, own.other()] {
            let first = (self.addresses.iter()).find(|a| IpFamily::of(a.ip()) == family);
            if let Some(&address) = first {
                found.addresses[found.len] = address;
                found.len += 1;
            }
        }
        found
    }

    /// An open server named `name` with the default budgets.
    pub fn new(name: impl Into<String>) -> Self {
        ServerConfig {
            name: name.into(),
            udp_expiry: Duration::from_secs(45),
            max_sessions: 100_000,
            max_sessions_per_ip: DEFAULT_MAX_SESSIONS_PER_IP,
            max_pending_calls: DEFAULT_MAX_PENDING_CALLS,
            full_modes: Vec::new(),
            credentials: None,
            nonce_secret: [0; 32],
            answer_rate: Some(crate::core::token_bucket::DEFAULT_RATE),
            addresses: Vec::new(),
        }
    }
}

/// What a LOGIN success names ([`ServerConfig::addresses_for`]): at most one address per
/// family, held inline because every login asks: a `Vec` was an allocation and a free per
/// login (building it was 0.27% of the server's CPU during a million logins in perf, its
/// malloc and free a share of libc's 3%).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerAddresses {
    addresses: [SocketAddr; 2],
    len: usize,
}

impl std::ops::Deref for ServerAddresses {
    type Target = [SocketAddr];

    fn deref(&self) -> &[SocketAddr] {
        &self.addresses[..self.len]
    }
}

/// The location server state machine.
#[derive(Debug)]
pub struct ServerCore {
    config: ServerConfig,
    registry: Registry,
    /// Calls waiting for their callee or their links, by call number (so in arrival order).
    calls: BTreeMap<u64, PendingCall>,
    next_call: u64,
    seen: HashMap<(Origin, TransactionId), Seen>,
    legs: Transactions<Leg>,
    /// Federation links: connection → the linked server's name.
    links: BTreeMap<ConnId, String>,
    counters: Counters,
    commands: VecDeque<Command>,
    events: VecDeque<Event>,
    scratch: Vec<u8>,
    /// Present when the server has credentials.
    auth: Option<Authenticator>,
    /// Routes whose session a newer authenticated login took over, and when: their
    /// KEEPALIVE gets 409 rather than 437, so the old client stops instead of logging in
    /// again and taking the ID back (two live clients would otherwise flap forever).
    taken_over: HashMap<Route, Instant>,
    limiter: Option<SourceLimiter>,
    /// TCP filtering tests waiting for the answer to their crafted SYN.
    syn_tests: syn_test::SynTests,
    /// Forward on miss through the shared registry (`--registry`); `None` without it.
    home: Option<home_calls::HomeCalls>,
    next_sweep: Instant,
    /// The latest time any input carried: timestamps for work that has no input of its own.
    now: Instant,
    rng: SmallRng,
}

impl ServerCore {
    /// `seed` feeds the transaction IDs of the server's own requests.
    pub fn new(config: ServerConfig, now: Instant, seed: u64) -> Self {
        let auth = config.credentials.clone().map(|credentials| {
            Authenticator::new(credentials, config.nonce_secret, now, REPLAY_MEMORY)
        });
        // The bucket map's hash key comes from the (random per process) nonce secret, which
        // the shell draws even for an open server.
        let hash_key = u64::from_le_bytes(config.nonce_secret[24..].try_into().expect("8 bytes"));
        let limiter = config
            .answer_rate
            .map(|rate| SourceLimiter::new(rate, MAX_SOURCES, now, hash_key ^ seed));
        ServerCore {
            auth,
            limiter,
            taken_over: HashMap::new(),
            config,
            registry: Registry::default(),
            calls: BTreeMap::new(),
            next_call: 0,
            seen: HashMap::new(),
            legs: Transactions::default(),
            links: BTreeMap::new(),
            counters: Counters::default(),
            commands: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Vec::with_capacity(512),
            syn_tests: syn_test::SynTests::default(),
            home: None,
            next_sweep: now + SWEEP_INTERVAL,
            now,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Logged-in sessions: (UDP, TCP).
    pub fn session_counts(&self) -> (usize, usize) {
        self.registry.counts()
    }

    /// True when a TCP connection carries a session or a federation link, so that the shell's
    /// idle timeout must leave it alone.
    pub fn holds_conn(&self, conn: ConnId) -> bool {
        self.links.contains_key(&conn) || self.registry.holds_route(&Route::Tcp { conn })
    }

    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        self.home_follow(&event);
        Some(event)
    }

    pub fn poll_timeout(&self) -> Instant {
        if self.expiry_pending() {
            // A mass expiry goes on in batches, as soon as the requests waiting are answered.
            return self.now;
        }
        let legs = self
            .legs
            .next_deadline()
            .map_or(self.next_sweep, |deadline| deadline.min(self.next_sweep));
        let due = self
            .syn_tests_deadline()
            .map_or(legs, |deadline| deadline.min(legs));
        let home = self.home.as_ref().and_then(|home| home.poll_timeout());
        home.map_or(due, |deadline| deadline.min(due))
    }

    /// Handles one datagram received on our socket `local` from `remote`. Returns the
    /// (from, to) addresses of the answer written into `reply`, if any.
    pub fn handle_udp(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
        reply: &mut Vec<u8>,
    ) -> Option<(SocketAddr, SocketAddr)> {
        self.counters.received += 1;
        self.now = now;
        let message = match Message::parse(bytes) {
            Ok(message) => message,
            Err(error) => {
                return self
                    .dropped(Drop::Malformed(error), Transport::Udp, Some(remote))
                    .then_some((local, remote))
            }
        };
        // Only requests are answered, so only they spend tokens. Checked before any work: a
        // flood from one (possibly forged) address costs a hash lookup per datagram.
        if message.class() == Class::Request {
            if let Some(limiter) = &mut self.limiter {
                if !limiter.allow(now, remote.ip()) {
                    self.counters.drop(Drop::RateLimited);
                    return None;
                }
            }
        }
        if message.method() == Method::BINDING {
            let rx = Received {
                transport: Transport::Udp,
                local,
                remote,
            };
            return match self.binding(&message, rx, reply) {
                Outcome::Reply { from, to, .. } => Some((from, to)),
                Outcome::Drop(_) => None,
            };
        }
        let route = Route::Udp { local, remote };
        let mut req = Request::new(now, route, remote, &message, reply);
        self.natlens(&mut req).then_some((local, remote))
    }

    /// Handles one whole STUN message from TCP connection `conn`. Returns true when an answer
    /// for the same connection was written into `reply`.
    pub fn handle_tcp(
        &mut self,
        now: Instant,
        conn: ConnId,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
        reply: &mut Vec<u8>,
    ) -> bool {
        self.counters.received += 1;
        self.now = now;
        let message = match Message::parse(bytes) {
            Ok(message) => message,
            Err(error) => {
                return self.dropped(Drop::Malformed(error), Transport::Tcp, Some(remote))
            }
        };
        if message.method() == Method::BINDING {
            if let Some(answered) = self.syn_test(&message, conn, local, remote, reply) {
                return answered;
            }
            let rx = Received {
                transport: Transport::Tcp,
                local,
                remote,
            };
            return matches!(self.binding(&message, rx, reply), Outcome::Reply { .. });
        }
        let mut req = Request::new(now, Route::Tcp { conn }, remote, &message, reply);
        req.local = Some(local);
        self.natlens(&mut req)
    }

    /// Counts and reports a drop the shell decided on (connection limits, idle or slow TCP).
    pub fn count_drop(&mut self, reason: Drop, transport: Transport, from: Option<SocketAddr>) {
        self.dropped(reason, transport, from);
    }

    /// Counts and reports a drop; returns false (no answer) for the callers' convenience.
    fn dropped(&mut self, reason: Drop, transport: Transport, from: Option<SocketAddr>) -> bool {
        self.counters.drop(reason);
        self.events.push_back(Event::Drop {
            reason: reason.as_str(),
            transport,
            from,
        });
        false
    }

    /// A natlens method. Returns true when `req.reply` holds an answer for the sender.
    fn natlens(&mut self, req: &mut Request<'_>) -> bool {
        let (transport, remote, message) = (req.transport(), req.remote, req.message);
        if !message.has_magic_cookie() {
            return self.dropped(Drop::LegacyNonBinding, transport, Some(remote));
        }
        if integrity::check_fingerprint(message) == Some(false) {
            return self.dropped(Drop::BadFingerprint, transport, Some(remote));
        }
        match message.class() {
            Class::Request => self.request(req),
            Class::Success | Class::Error => {
                if !self.response(req.route, message) {
                    self.dropped(Drop::NotRequest, transport, Some(remote));
                }
                false
            }
            Class::Indication => self.dropped(Drop::Indication, transport, Some(remote)),
        }
    }

    /// A natlens request: refused when it carries what natlens does not understand, else
    /// handed to the job its method belongs to.
    fn request(&mut self, req: &mut Request<'_>) -> bool {
        let unknown = unknown_required(req.message, NATLENS_REQUEST_UNDERSTOOD);
        if !unknown.is_empty() {
            self.counters.errors += 1;
            req.lean_error(
                error::UNKNOWN_ATTRIBUTE,
                "Unknown Attribute",
                &unknown,
                None,
            );
            return true;
        }
        let method = req.message.method();
        let session_method =
            [natlens::LOGIN, natlens::KEEPALIVE, natlens::LOGOUT].contains(&method);
        let id = match natlens::read_name(req.message, natlens::ID) {
            Some(Ok(id)) => Some(id),
            _ if session_method => {
                return self.refuse(req, error::BAD_REQUEST, "Missing or invalid NL-ID")
            }
            _ => None,
        };
        match (method, id) {
            (natlens::LOGIN, Some(id)) => self.login(req, id),
            (natlens::KEEPALIVE, Some(id)) => self.keepalive(req, id),
            (natlens::LOGOUT, Some(id)) => self.logout(req, id),
            (natlens::CALL, _) => self.call(req),
            (natlens::PEER_HELLO, _) => self.link_hello(req),
            (natlens::PROBE_MAPPING, _) => self.probe_mapping(req),
            _ => self.refuse(req, error::BAD_REQUEST, "Unknown method"),
        }
    }

    /// Answers `req` with a lean error and counts it. Always true: `req.reply` holds an answer.
    fn refuse(&mut self, req: &mut Request<'_>, code: u16, reason: &str) -> bool {
        self.counters.errors += 1;
        req.lean_error(code, reason, &[], None);
        true
    }

    /// Queues a message of the server's own. Over UDP it spends a token of the destination's
    /// bucket like any answer: on an open server a session can be logged in from a forged
    /// address, and delivered calls (retransmitted until answered) must not become a flood
    /// aimed at that address.
    fn send(&mut self, route: Route, bytes: Vec<u8>) {
        if let (Route::Udp { remote, .. }, Some(limiter)) = (route, &mut self.limiter) {
            if !limiter.allow(self.now, remote.ip()) {
                self.counters.drop(Drop::RateLimited);
                return;
            }
        }
        self.commands.push_back(Command::Send { route, bytes });
    }

    /// Time has passed: retransmit, give up on silent legs, expire sessions, forget old answers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.legs_due(now);
        self.syn_tests_due(now);
        self.home_due(now);
        if now >= self.next_sweep {
            self.sweep(now);
            self.next_sweep = now + SWEEP_INTERVAL;
        } else if self.expiry_pending() {
            self.expire_batch(now);
        }
    }

    fn sweep(&mut self, now: Instant) {
        self.expire_sessions(now);
        if let Some(limiter) = &mut self.limiter {
            limiter.sweep(now);
        }
        self.seen.retain(|_, seen| match seen {
            Seen::Pending => true,
            Seen::Answered { at, .. } => now.saturating_duration_since(*at) < ANSWER_CACHE,
        });
    }

    /// A TCP connection ended: free its session or link, fail what was in flight on it.
    pub fn tcp_closed(&mut self, conn: ConnId) {
        let route = Route::Tcp { conn };
        self.session_closed(route);
        self.link_closed(conn);
        self.legs_closed(route);
        self.syn_tests_closed(conn);
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod hardening_tests;
