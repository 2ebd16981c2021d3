//! The location server's core: Binding reflection, logins, keep-alives, call relay and
//! federation, as one sans-IO state machine.
//!
//! The shell calls [`ServerCore::handle_udp`] / [`ServerCore::handle_tcp`] for each received
//! message (the immediate answer goes into a caller-owned buffer, so the Binding hot path does
//! not allocate), [`ServerCore::handle_timeout`] when [`ServerCore::poll_timeout`] passes, and
//! drains [`ServerCore::poll_command`] and [`ServerCore::poll_event`] after each.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

use crate::core::auth::{Authenticator, Refusal};
use crate::core::binding::{self, FullMode, Outcome, Received, SOFTWARE};
use crate::core::credentials::{Credentials, REALM};
use crate::core::events::{call_id_text, Command, Event};
use crate::core::registry::{ConnId, Limits, LoginError, LoginOutcome, Registry, Route};
use crate::core::replay::REPLAY_MEMORY;
use crate::core::stats::{Counters, Drop};
use crate::core::token_bucket::{SourceLimiter, MAX_SOURCES};
use crate::core::transaction::{Due, Retry, Transactions};
use crate::core::Transport;
use crate::wire::attr::AttrType;
use crate::wire::natlens::{self, error, NatFacts};
use crate::wire::stun::{Class, Message, MessageType, Method};
use crate::wire::{integrity, MessageBuilder, TransactionId};

/// How long the server waits for a logged-in callee to answer a delivered call. A live callee
/// answers within one round trip; 5 s leaves room for the UDP retransmissions at 250, 500,
/// 1000 and 2000 ms that a lossy path needs.
pub const DELIVER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a server waits for a peer server's answer to a forwarded call: longer than
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
/// Default `--max-pending-calls`: calls waiting for a callee or a peer. Each lives at most
/// [`FORWARD_TIMEOUT`], so this allows over 1,000 calls a second before it bites.
pub const DEFAULT_MAX_PENDING_CALLS: usize = 10_000;

/// Fixed configuration of one server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Federation name; must differ between peers.
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
}

impl ServerConfig {
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
        }
    }
}

/// Where a call came from, and so where its answer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Origin {
    Client(Route),
    Peer(ConnId),
}

impl Origin {
    fn route(self) -> Route {
        match self {
            Origin::Client(route) => route,
            Origin::Peer(conn) => Route::Tcp { conn },
        }
    }
}

/// A call waiting for its callee or its peers.
#[derive(Debug)]
struct PendingCall {
    origin: Origin,
    origin_tid: TransactionId,
    call_id: u64,
    caller: String,
    callee: String,
    /// Legs (callee delivery or peer forwards) still unanswered.
    waiting: usize,
    /// The most telling failure so far: a timeout beats "not found", since it means the callee
    /// exists somewhere.
    failure: (u16, &'static str),
    /// The callee's public address, when delivered to a local session.
    callee_observed: Option<SocketAddr>,
    /// The caller's HMAC key when its CALL was authenticated here: the answer carrying the
    /// callee's facts is signed with it (RFC 8489 §9.2.4), so that no one on the path can
    /// hand the caller other facts and aim its punch at a third party.
    caller_key: Option<[u8; 16]>,
}

/// An outgoing request of the server's own.
#[derive(Debug, Clone, Copy)]
enum Leg {
    Deliver { call: u64, route: Route },
    Forward { call: u64, conn: ConnId },
    Hello { conn: ConnId },
}

impl Leg {
    fn route(self) -> Route {
        match self {
            Leg::Deliver { route, .. } => route,
            Leg::Forward { conn, .. } | Leg::Hello { conn } => Route::Tcp { conn },
        }
    }
}

/// The state of a call request seen from one origin, for retransmission handling.
#[derive(Debug)]
enum Seen {
    Pending,
    Answered { bytes: Vec<u8>, at: Instant },
}

/// The location server state machine.
#[derive(Debug)]
pub struct ServerCore {
    config: ServerConfig,
    registry: Registry,
    calls: HashMap<u64, PendingCall>,
    next_call: u64,
    seen: HashMap<(Origin, TransactionId), Seen>,
    legs: Transactions<Leg>,
    links: HashMap<ConnId, String>,
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
            calls: HashMap::new(),
            next_call: 0,
            seen: HashMap::new(),
            legs: Transactions::default(),
            links: HashMap::new(),
            counters: Counters::default(),
            commands: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Vec::with_capacity(512),
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

    /// Names of the peer servers with a live link.
    pub fn peer_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.links.values().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// True when a TCP connection carries a session or a federation link, so that the shell's
    /// idle timeout must leave it alone.
    pub fn holds_conn(&self, conn: ConnId) -> bool {
        self.links.contains_key(&conn) || self.registry.on_route(&Route::Tcp { conn }).is_some()
    }

    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Instant {
        self.legs
            .next_deadline()
            .map_or(self.next_sweep, |deadline| deadline.min(self.next_sweep))
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
        self.natlens(now, route, remote, &message, reply)
            .then_some((local, remote))
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
            let rx = Received {
                transport: Transport::Tcp,
                local,
                remote,
            };
            return matches!(self.binding(&message, rx, reply), Outcome::Reply { .. });
        }
        self.natlens(now, Route::Tcp { conn }, remote, &message, reply)
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

    fn binding(&mut self, message: &Message<'_>, rx: Received, reply: &mut Vec<u8>) -> Outcome {
        let full = self
            .config
            .full_modes
            .iter()
            .find(|full| full.serves(&rx.local));
        let outcome = binding::answer(message, rx, full, reply);
        match outcome {
            Outcome::Reply { error: false, .. } => self.counters.bindings += 1,
            Outcome::Reply { error: true, .. } => self.counters.errors += 1,
            Outcome::Drop(reason) => {
                self.dropped(reason, rx.transport, Some(rx.remote));
            }
        }
        outcome
    }

    /// A natlens method. Returns true when `reply` holds an answer for the sender.
    fn natlens(
        &mut self,
        now: Instant,
        route: Route,
        remote: SocketAddr,
        message: &Message<'_>,
        reply: &mut Vec<u8>,
    ) -> bool {
        let transport = route.transport();
        if !message.has_magic_cookie() {
            return self.dropped(Drop::LegacyNonBinding, transport, Some(remote));
        }
        if integrity::check_fingerprint(message) == Some(false) {
            return self.dropped(Drop::BadFingerprint, transport, Some(remote));
        }
        match message.class() {
            Class::Request => self.request(now, route, remote, message, reply),
            Class::Success | Class::Error => {
                if !self.response(route, message) {
                    self.dropped(Drop::NotRequest, transport, Some(remote));
                }
                false
            }
            Class::Indication => self.dropped(Drop::Indication, transport, Some(remote)),
        }
    }

    fn request(
        &mut self,
        now: Instant,
        route: Route,
        remote: SocketAddr,
        message: &Message<'_>,
        reply: &mut Vec<u8>,
    ) -> bool {
        let unknown = binding::unknown_required(message, KNOWN_REQUIRED);
        if !unknown.is_empty() {
            return self.error(
                message,
                error::UNKNOWN_ATTRIBUTE,
                "Unknown Attribute",
                &unknown,
                reply,
            );
        }
        let method = message.method();
        let session_method =
            [natlens::LOGIN, natlens::KEEPALIVE, natlens::LOGOUT].contains(&method);
        let id = match natlens::read_name(message, natlens::ID) {
            Some(Ok(id)) => Some(id),
            _ if session_method => {
                return self.error(
                    message,
                    error::BAD_REQUEST,
                    "Missing or invalid NL-ID",
                    &[],
                    reply,
                )
            }
            _ => None,
        };
        match (method, id) {
            (natlens::LOGIN, Some(id)) => self.login(now, route, remote, id, message, reply),
            (natlens::KEEPALIVE, Some(id)) => {
                self.keepalive(now, route, remote, id, message, reply)
            }
            (natlens::LOGOUT, Some(id)) => self.logout(route, id, message, reply),
            (natlens::CALL, _) => self.call(now, route, remote, message, reply),
            (natlens::PEER_HELLO, _) => self.peer_hello(route, remote, message, reply),
            _ => self.error(message, error::BAD_REQUEST, "Unknown method", &[], reply),
        }
    }

    fn error(
        &mut self,
        message: &Message<'_>,
        code: u16,
        reason: &str,
        unknown: &[AttrType],
        reply: &mut Vec<u8>,
    ) -> bool {
        self.counters.errors += 1;
        write_lean_error(message, code, reason, unknown, None, reply);
        true
    }

    fn login(
        &mut self,
        now: Instant,
        route: Route,
        remote: SocketAddr,
        id: &str,
        message: &Message<'_>,
        reply: &mut Vec<u8>,
    ) -> bool {
        let transport = route.transport();
        if let Route::Tcp { conn } = route {
            if self.links.contains_key(&conn) {
                return self.error(
                    message,
                    error::BAD_REQUEST,
                    "Federation links cannot log in",
                    &[],
                    reply,
                );
            }
        }
        let key = match self.authenticate(now, route, remote, id, message, reply) {
            Ok(key) => key,
            Err(answered) => return answered,
        };
        if key.is_some() {
            // The key proves this is the ID's owner (restarted, or on a new port or
            // network): the new login replaces the old session instead of waiting for it
            // to expire. Open servers keep first-come ownership (409).
            self.taken_over.remove(&route);
            if let Some(old) = self.registry.take_over(id, route) {
                self.taken_over.insert(old.route, now);
                self.events.push_back(Event::Logout {
                    id: old.id,
                    transport: old.route.transport(),
                    reason: "taken-over",
                });
            }
        }
        let limits = Limits {
            sessions: self.config.max_sessions,
            per_ip: self.config.max_sessions_per_ip,
        };
        let (code, reason) = match self.registry.login(now, id, route, remote, limits) {
            Ok(outcome) => {
                self.logged_in(id, transport, remote, outcome);
                let expiry = self.config.udp_expiry.as_secs() as u32;
                self.signed_success(message, key, reply, |builder| {
                    builder.xor_address(AttrType::XOR_MAPPED_ADDRESS, &remote);
                    if transport == Transport::Udp {
                        builder.u32(natlens::EXPIRY, expiry);
                    }
                });
                return true;
            }
            Err(LoginError::Taken) => (error::ID_TAKEN, "ID already logged in"),
            Err(LoginError::Full) => {
                self.counters.drop(Drop::ServerFull);
                (error::SERVER_FULL, "Server full")
            }
            Err(LoginError::PerIpLimit) => {
                self.counters.drop(Drop::PerIpLimit);
                (error::QUOTA_REACHED, "Too many sessions from this address")
            }
        };
        self.events.push_back(Event::LoginRefused {
            id: id.to_owned(),
            transport,
            from: remote,
            code,
            reason,
        });
        self.error(message, code, reason, &[], reply)
    }

    /// With credentials, checks that `message` is authenticated as `id`: `Ok(Some(key))` to go
    /// ahead (sign the answer with `key`), `Ok(None)` on an open server, `Err(answered)` when it
    /// was refused (`answered`: whether `reply` holds the refusal).
    fn authenticate(
        &mut self,
        now: Instant,
        route: Route,
        remote: SocketAddr,
        id: &str,
        message: &Message<'_>,
        reply: &mut Vec<u8>,
    ) -> Result<Option<[u8; 16]>, bool> {
        let Some(auth) = &mut self.auth else {
            return Ok(None);
        };
        let refusal = match auth.check(now, message, route, remote.ip(), id) {
            Ok(key) => return Ok(Some(key)),
            Err(refusal) => refusal,
        };
        let reason = match refusal {
            Refusal::Challenge => Drop::AuthRequired,
            Refusal::Incomplete | Refusal::BadCredentials => Drop::AuthFailed,
            Refusal::StaleNonce => Drop::StaleNonce,
            Refusal::Replay => Drop::Replay,
        };
        let nonce = refusal.with_nonce().then(|| auth.nonce(now, remote.ip()));
        if refusal == Refusal::Challenge {
            // The normal first step of every login: counted, but not logged line by line.
            self.counters.drop(reason);
        } else {
            self.dropped(reason, route.transport(), Some(remote));
        }
        let Some((code, text)) = refusal.error() else {
            return Err(false);
        };
        self.counters.errors += 1;
        write_lean_error(message, code, text, &[], nonce.as_deref(), reply);
        Err(true)
    }

    fn logged_in(
        &mut self,
        id: &str,
        transport: Transport,
        observed: SocketAddr,
        outcome: LoginOutcome,
    ) {
        if let LoginOutcome::Replaced(old) = &outcome {
            self.events.push_back(Event::Logout {
                id: old.id.clone(),
                transport,
                reason: "replaced",
            });
        }
        if outcome != LoginOutcome::Refreshed {
            self.counters.logins += 1;
            self.events.push_back(Event::Login {
                id: id.to_owned(),
                transport,
                observed,
            });
        }
    }

    fn keepalive(
        &mut self,
        now: Instant,
        route: Route,
        remote: SocketAddr,
        id: &str,
        message: &Message<'_>,
        reply: &mut Vec<u8>,
    ) -> bool {
        if self.registry.refresh(now, id, route).is_none() {
            if self.taken_over.contains_key(&route) {
                return self.error(
                    message,
                    error::ID_TAKEN,
                    "ID logged in elsewhere with its key",
                    &[],
                    reply,
                );
            }
            return self.error(
                message,
                error::NO_SESSION,
                "No such session: log in again",
                &[],
                reply,
            );
        }
        self.success(message, reply, |builder| {
            builder.xor_address(AttrType::XOR_MAPPED_ADDRESS, &remote);
        });
        true
    }

    fn logout(
        &mut self,
        route: Route,
        id: &str,
        message: &Message<'_>,
        reply: &mut Vec<u8>,
    ) -> bool {
        if let Some(session) = self.registry.logout(id, route) {
            self.counters.logouts += 1;
            self.events.push_back(Event::Logout {
                id: session.id,
                transport: route.transport(),
                reason: "logout",
            });
        }
        // Success even when there was nothing to log out: a retransmitted LOGOUT whose first
        // answer was lost must not look like a failure.
        self.success(message, reply, |_| {});
        true
    }

    fn peer_hello(
        &mut self,
        route: Route,
        remote: SocketAddr,
        message: &Message<'_>,
        reply: &mut Vec<u8>,
    ) -> bool {
        let Route::Tcp { conn } = route else {
            return self.error(
                message,
                error::BAD_REQUEST,
                "Federation runs over TCP",
                &[],
                reply,
            );
        };
        let Some(Ok(name)) = natlens::read_name(message, natlens::SERVER_NAME) else {
            return self.error(
                message,
                error::BAD_REQUEST,
                "Missing or invalid NL-SERVER-NAME",
                &[],
                reply,
            );
        };
        if name == self.config.name {
            self.commands.push_back(Command::Close { conn });
            return self.error(
                message,
                error::BAD_REQUEST,
                "Peer has this server's own name",
                &[],
                reply,
            );
        }
        let _ = remote;
        self.link_up(conn, name.to_owned());
        let own = self.config.name.clone();
        self.success(message, reply, |builder| {
            builder.attribute(natlens::SERVER_NAME, own.as_bytes());
        });
        true
    }

    fn link_up(&mut self, conn: ConnId, name: String) {
        self.events.push_back(Event::PeerUp {
            name: name.clone(),
            conn,
        });
        self.links.insert(conn, name);
    }

    /// Writes a success response to `message` into `reply`, with SOFTWARE and, when the
    /// request had one, FINGERPRINT around what `add` appends.
    fn success(
        &self,
        message: &Message<'_>,
        reply: &mut Vec<u8>,
        add: impl FnOnce(&mut MessageBuilder<'_>),
    ) {
        self.signed_success(message, None, reply, add)
    }

    /// [`Self::success`], with MESSAGE-INTEGRITY-SHA256 keyed with `key` after SOFTWARE
    /// (RFC 8489 §9.2.4: the answer to an authenticated request is signed).
    fn signed_success(
        &self,
        message: &Message<'_>,
        key: Option<[u8; 16]>,
        reply: &mut Vec<u8>,
        add: impl FnOnce(&mut MessageBuilder<'_>),
    ) {
        let ty = message.message_type().response(Class::Success);
        let mut builder = MessageBuilder::new(reply, ty, message.transaction_id());
        add(&mut builder);
        builder.attribute(AttrType::SOFTWARE, SOFTWARE.as_bytes());
        if let Some(key) = key {
            builder.message_integrity_sha256(&key);
        }
        if message.get(AttrType::FINGERPRINT).is_some() {
            builder.fingerprint();
        }
    }

    /// The server was asked to relay a call: from a logged-in client, or from a peer server.
    fn call(
        &mut self,
        now: Instant,
        route: Route,
        remote: SocketAddr,
        message: &Message<'_>,
        reply: &mut Vec<u8>,
    ) -> bool {
        let peer = match route {
            Route::Tcp { conn } => self.links.get(&conn).cloned().map(|name| (conn, name)),
            Route::Udp { .. } => None,
        };
        let origin = match &peer {
            Some((conn, _)) => Origin::Peer(*conn),
            None => Origin::Client(route),
        };
        // A call is authenticated at the caller's own server, as the session's ID; calls
        // forwarded over a federation link are vouched for by the peer (an operator link).
        let mut caller_key = None;
        if peer.is_none() && self.auth.is_some() {
            let Some(caller) = self.registry.on_route(&route).map(|s| s.id.clone()) else {
                return self.error(
                    message,
                    error::NOT_LOGGED_IN,
                    "Log in before calling",
                    &[],
                    reply,
                );
            };
            match self.authenticate(now, route, remote, &caller, message, reply) {
                Ok(key) => caller_key = key,
                Err(answered) => return answered,
            }
        }
        match self.seen.get(&(origin, message.transaction_id())) {
            Some(Seen::Pending) => return self.dropped(Drop::Duplicate, route.transport(), None),
            Some(Seen::Answered { bytes, .. }) => {
                reply.clear();
                reply.extend_from_slice(bytes);
                return true;
            }
            None => {}
        }
        if self.calls.len() >= self.config.max_pending_calls {
            self.dropped(Drop::PendingCallsLimit, route.transport(), Some(remote));
            return self.error(
                message,
                error::SERVER_FULL,
                "Too many calls in progress",
                &[],
                reply,
            );
        }
        let parsed = match &peer {
            Some(_) => parse_forwarded_call(message),
            None => self.parse_client_call(now, route, message),
        };
        let call = match parsed {
            Ok(call) => call,
            Err((code, reason)) => return self.error(message, code, reason, &[], reply),
        };
        let from = peer.map_or_else(|| "local".to_owned(), |(_, name)| name);
        self.counters.calls += 1;
        self.events.push_back(Event::Call {
            call_id: call_id_text(call.call_id),
            caller: call.caller.clone(),
            callee: call.callee.clone(),
            from,
        });
        if call.via.contains(&self.config.name) || call.via.len() >= natlens::MAX_VIA {
            return self.error(
                message,
                error::UNKNOWN_PEER,
                "Unknown peer (forwarding loop)",
                &[],
                reply,
            );
        }
        self.route_call(
            now,
            origin,
            message.transaction_id(),
            call,
            caller_key,
            reply,
        )
    }

    fn parse_client_call(
        &mut self,
        now: Instant,
        route: Route,
        message: &Message<'_>,
    ) -> Result<CallRequest, (u16, &'static str)> {
        let Some(session) = self.registry.touch_route(now, route) else {
            return Err((error::NOT_LOGGED_IN, "Log in before calling"));
        };
        let (caller, observed) = (session.id.clone(), session.observed);
        let mut call = parse_call_fields(message, caller)?;
        // The caller's public address is what this server saw, never what the caller claims.
        call.facts.observed = Some(observed);
        Ok(call)
    }

    /// Delivers a call to a local callee, forwards it to peers, or answers "not found".
    fn route_call(
        &mut self,
        now: Instant,
        origin: Origin,
        origin_tid: TransactionId,
        call: CallRequest,
        caller_key: Option<[u8; 16]>,
        reply: &mut Vec<u8>,
    ) -> bool {
        let key = self.next_call;
        self.next_call += 1;
        let mut pending = PendingCall {
            origin,
            origin_tid,
            call_id: call.call_id,
            caller: call.caller.clone(),
            callee: call.callee.clone(),
            waiting: 0,
            failure: (error::UNKNOWN_PEER, "Unknown peer"),
            callee_observed: None,
            caller_key,
        };
        if let Some(callee) = self.registry.get(&call.callee) {
            let route = callee.route;
            pending.callee_observed = Some(callee.observed);
            let bytes = self.call_request(|builder| {
                builder.attribute(natlens::PEER_ID, call.caller.as_bytes());
                builder.attribute(natlens::CALL_ID, &call.call_id.to_be_bytes());
                call.facts.encode(builder);
            });
            let retry = match route {
                Route::Udp { .. } => Retry::datagram_within(DELIVER_TIMEOUT),
                Route::Tcp { .. } => Retry::Stream {
                    timeout: DELIVER_TIMEOUT,
                },
            };
            self.send_leg(now, bytes, retry, Leg::Deliver { call: key, route });
            pending.waiting = 1;
        } else {
            let from_conn = match origin {
                Origin::Peer(conn) => Some(conn),
                Origin::Client(_) => None,
            };
            for conn in self.forward_targets(&call.via, from_conn) {
                let own = self.config.name.clone();
                let bytes = self.call_request(|builder| {
                    builder.attribute(natlens::ID, call.caller.as_bytes());
                    builder.attribute(natlens::PEER_ID, call.callee.as_bytes());
                    builder.attribute(natlens::CALL_ID, &call.call_id.to_be_bytes());
                    for name in call.via.iter().map(String::as_str).chain([own.as_str()]) {
                        builder.attribute(natlens::VIA, name.as_bytes());
                    }
                    call.facts.encode(builder);
                });
                self.send_leg(
                    now,
                    bytes,
                    Retry::Stream {
                        timeout: FORWARD_TIMEOUT,
                    },
                    Leg::Forward { call: key, conn },
                );
                pending.waiting += 1;
            }
        }
        if pending.waiting == 0 {
            self.relayed(&pending, "not-found", Some(error::UNKNOWN_PEER));
            self.counters.errors += 1;
            let (code, reason) = pending.failure;
            write_call_error(origin_tid, code, reason, reply);
            return true;
        }
        self.seen.insert((origin, origin_tid), Seen::Pending);
        self.calls.insert(key, pending);
        false
    }

    /// One link per peer server not already on the call's path and not where it came from.
    fn forward_targets(&self, via: &[String], from_conn: Option<ConnId>) -> Vec<ConnId> {
        let mut by_name: Vec<(&String, ConnId)> = self
            .links
            .iter()
            .filter(|(conn, name)| Some(**conn) != from_conn && !via.contains(name))
            .map(|(conn, name)| (name, *conn))
            .collect();
        by_name.sort();
        by_name.dedup_by(|a, b| a.0 == b.0);
        by_name.into_iter().map(|(_, conn)| conn).collect()
    }

    /// Builds one of the server's own CALL requests with a fresh transaction ID.
    fn call_request(&mut self, add: impl FnOnce(&mut MessageBuilder<'_>)) -> Vec<u8> {
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

    fn fresh_tid(&mut self) -> TransactionId {
        let mut tid = [0u8; 12];
        self.rng.fill_bytes(&mut tid);
        TransactionId(tid)
    }

    fn send_leg(&mut self, now: Instant, bytes: Vec<u8>, retry: Retry, leg: Leg) {
        let tid = TransactionId(bytes[8..20].try_into().expect("header"));
        self.send(leg.route(), bytes.clone());
        self.legs.start(now, tid, bytes, retry, leg);
    }

    /// A response to one of the server's own requests. False when it matches none.
    fn response(&mut self, route: Route, message: &Message<'_>) -> bool {
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

    fn hello_answered(&mut self, conn: ConnId, message: &Message<'_>) {
        match (
            message.class(),
            natlens::read_name(message, natlens::SERVER_NAME),
        ) {
            (Class::Success, Some(Ok(name))) if name != self.config.name => {
                self.link_up(conn, name.to_owned())
            }
            _ => self.commands.push_back(Command::Close { conn }),
        }
    }

    fn leg_answered(&mut self, key: u64, leg: Leg, message: &Message<'_>) {
        if message.class() == Class::Error {
            let code = message
                .get(AttrType::ERROR_CODE)
                .and_then(|a| crate::wire::attr::decode_error_code(a.value).ok());
            let failure = match code.map(|(code, _)| code) {
                Some(error::UNKNOWN_PEER) => (error::UNKNOWN_PEER, "Unknown peer"),
                Some(error::PEER_TIMEOUT) => (error::PEER_TIMEOUT, "Peer did not answer"),
                _ => (error::PEER_TIMEOUT, "Peer refused the call"),
            };
            return self.leg_failed(key, failure);
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

    fn leg_failed(&mut self, key: u64, failure: (u16, &'static str)) {
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
        let outcome = if code == error::UNKNOWN_PEER {
            "not-found"
        } else {
            "timeout"
        };
        self.relayed(&pending, outcome, Some(code));
        self.answer_origin(&pending, bytes);
    }

    fn relayed(&mut self, pending: &PendingCall, outcome: &'static str, code: Option<u16>) {
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
        if now >= self.next_sweep {
            self.sweep(now);
            self.next_sweep = now + SWEEP_INTERVAL;
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

    fn sweep(&mut self, now: Instant) {
        for session in self.registry.expire(now, self.config.udp_expiry) {
            self.counters.expired += 1;
            let silent_ms = now.saturating_duration_since(session.last_seen).as_millis() as u64;
            self.events.push_back(Event::Expire {
                id: session.id,
                observed: session.observed,
                silent_ms,
            });
        }
        if let Some(auth) = &mut self.auth {
            auth.sweep(now);
        }
        if let Some(limiter) = &mut self.limiter {
            limiter.sweep(now);
        }
        let expiry = self.config.udp_expiry;
        self.taken_over
            .retain(|_, at| now.saturating_duration_since(*at) <= expiry);
        self.seen.retain(|_, seen| match seen {
            Seen::Pending => true,
            Seen::Answered { at, .. } => now.saturating_duration_since(*at) < ANSWER_CACHE,
        });
    }

    /// An outbound federation link to a configured peer is connected: introduce ourselves.
    pub fn peer_connected(&mut self, now: Instant, conn: ConnId) {
        self.now = now;
        let tid = self.fresh_tid();
        let own = self.config.name.clone();
        let ty = MessageType::new(natlens::PEER_HELLO, Class::Request);
        let mut builder = MessageBuilder::new(&mut self.scratch, ty, tid);
        builder.attribute(natlens::SERVER_NAME, own.as_bytes());
        builder.fingerprint();
        let bytes = builder.finish().to_vec();
        self.send_leg(
            now,
            bytes,
            Retry::Stream {
                timeout: HELLO_TIMEOUT,
            },
            Leg::Hello { conn },
        );
    }

    /// A TCP connection ended: free its session or link, fail what was in flight on it.
    pub fn tcp_closed(&mut self, conn: ConnId) {
        let route = Route::Tcp { conn };
        if let Some(session) = self.registry.remove_route(route) {
            self.counters.logouts += 1;
            self.events.push_back(Event::Logout {
                id: session.id,
                transport: Transport::Tcp,
                reason: "closed",
            });
        }
        if let Some(name) = self.links.remove(&conn) {
            self.events.push_back(Event::PeerDown { name, conn });
        }
        for leg in self.legs.cancel_where(|leg| leg.route() == route) {
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

/// Comprehension-required attributes natlens methods understand: their own, plus the
/// credential attributes that the hardening work uses.
const KNOWN_REQUIRED: &[AttrType] = &[
    natlens::ID,
    natlens::PEER_ID,
    natlens::CALL_ID,
    natlens::SERVER_NAME,
    natlens::VIA,
    AttrType::USERNAME,
    AttrType::MESSAGE_INTEGRITY,
    AttrType::MESSAGE_INTEGRITY_SHA256,
    AttrType::REALM,
    AttrType::NONCE,
    AttrType::XOR_MAPPED_ADDRESS,
];

/// The fields of a CALL request the server routes on.
#[derive(Debug)]
struct CallRequest {
    caller: String,
    callee: String,
    call_id: u64,
    via: Vec<String>,
    facts: NatFacts,
}

fn parse_call_fields(
    message: &Message<'_>,
    caller: String,
) -> Result<CallRequest, (u16, &'static str)> {
    let Some(Ok(callee)) = natlens::read_name(message, natlens::PEER_ID) else {
        return Err((error::BAD_REQUEST, "Missing or invalid NL-PEER-ID"));
    };
    let Some(Ok(call_id)) = natlens::read_call_id(message) else {
        return Err((error::BAD_REQUEST, "Missing or invalid NL-CALL-ID"));
    };
    let facts =
        NatFacts::decode(message).map_err(|_| (error::BAD_REQUEST, "Malformed NAT facts"))?;
    Ok(CallRequest {
        caller,
        callee: callee.to_owned(),
        call_id,
        via: Vec::new(),
        facts,
    })
}

/// A call forwarded by a peer server: the caller's ID, its observed address and the path so
/// far come in the message, vouched for by the peer.
fn parse_forwarded_call(message: &Message<'_>) -> Result<CallRequest, (u16, &'static str)> {
    let Some(Ok(caller)) = natlens::read_name(message, natlens::ID) else {
        return Err((error::BAD_REQUEST, "Missing or invalid NL-ID"));
    };
    let mut call = parse_call_fields(message, caller.to_owned())?;
    for attribute in message.attributes().filter(|a| a.kind == natlens::VIA) {
        let name = crate::wire::attr::decode_text(attribute.value, natlens::MAX_NAME_LEN)
            .and_then(natlens::validate_name)
            .map_err(|_| (error::BAD_REQUEST, "Invalid NL-VIA"))?;
        if call.via.len() >= natlens::MAX_VIA {
            break;
        }
        call.via.push(name.to_owned());
    }
    Ok(call)
}

/// An error answer to a natlens request. Deliberately lean (no SOFTWARE): any unauthenticated
/// source can provoke one, so per request byte it must stay below what a Binding answer costs
/// (see `every_unauthenticated_answer_is_smaller_than_a_binding_answer`). A credential refusal
/// carries REALM and a fresh NONCE.
fn write_lean_error(
    message: &Message<'_>,
    code: u16,
    reason: &str,
    unknown: &[AttrType],
    nonce: Option<&str>,
    out: &mut Vec<u8>,
) {
    let ty = message.message_type().response(Class::Error);
    let mut builder = MessageBuilder::new(out, ty, message.transaction_id());
    builder.error_code(code, reason);
    if !unknown.is_empty() {
        builder.unknown_attributes(unknown);
    }
    if let Some(nonce) = nonce {
        builder.attribute(AttrType::REALM, REALM.as_bytes());
        builder.attribute(AttrType::NONCE, nonce.as_bytes());
    }
    if message.get(AttrType::FINGERPRINT).is_some() {
        builder.fingerprint();
    }
}

fn write_call_error(tid: TransactionId, code: u16, reason: &str, out: &mut Vec<u8>) {
    let ty = MessageType::new(natlens::CALL, Class::Error);
    let mut builder = MessageBuilder::new(out, ty, tid);
    builder.error_code(code, reason);
    builder.attribute(AttrType::SOFTWARE, SOFTWARE.as_bytes());
    builder.fingerprint();
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "server_hardening_tests.rs"]
mod hardening_tests;
