//! The client side of one session with a location server, sans-IO.
//!
//! A [`ClientSession`] logs in, keeps the session alive, answers CALL requests the server
//! delivers, places calls and logs out (`natlens-protocol(7)`). It never touches a socket, a
//! clock or a global RNG: the shell feeds it whole STUN messages and the time, and drains
//! [`ClientSession::poll_transmit`], [`ClientSession::poll_event`] and
//! [`ClientSession::poll_timeout`] after every input (the str0m / quinn-proto run loop).
//!
//! Randomness (transaction and call IDs) comes from the RNG handed to [`ClientSession::new`], so a
//! seeded RNG and a virtual clock replay a whole session in a unit test.
//!
//! The public API and the run loop live here; each job has its own file: `requests` (what the
//! session sends, signing, nonce retries), `answers` (the server's answers to them),
//! `incoming` (the server's requests: delivered calls), `teardown` (the one path that ends
//! what is in flight when the connection goes or the session ends, the redial, and the move to
//! another server), `failover` (which server, and how long a silent one is waited for).
//!
//! Requests in flight live in one [`Transactions`] table with what each is for, in start
//! order: timeouts and abandoned calls are reported in the order they were placed.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::core::transaction::{Due, Retry, Transactions};
use crate::wire::natlens::{self, NatFacts};
use crate::wire::{Class, DecodeError, Message, TransactionId};

mod answers;
pub mod failover;
mod incoming;
mod requests;
mod teardown;

use failover::Failover;
use incoming::CachedAnswer;
pub use requests::retry_within;
use requests::Pending;

/// How long a login (and each keepalive) may go unanswered before the server counts as
/// unreachable. RFC 8489's full schedule (39.5 s) is too long for a person at a terminal; 10 s
/// still fits five UDP sends (0, 0.5, 1.5, 3.5, 7.5 s), so four lost datagrams in a row are
/// survived.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a call waits for the callee's facts by default: the same as `natlens call --call-timeout`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long LOGOUT may take. Leaving must not hang: a server frees a silent UDP session on expiry
/// and a TCP session when the connection closes anyway, so LOGOUT is a courtesy.
pub const LOGOUT_TIMEOUT: Duration = Duration::from_secs(2);

/// RFC 8489's transaction timeout Ti for TCP (and the total of the UDP schedule).
pub const STREAM_TIMEOUT: Duration = Duration::from_millis(39_500);

/// How long an answer to a server's request is kept to answer its retransmissions identically
/// (RFC 8489 §6.3.1). The server's transaction lives at most Ti = 39.5 s, so 40 s covers every
/// retransmission it can send.
pub const ANSWER_CACHE_TTL: Duration = Duration::from_secs(40);

/// Most cached answers: a flood of distinct requests may not grow memory without bound. A real
/// server delivers a handful of calls a minute; the oldest answer is dropped first.
pub const ANSWER_CACHE_MAX: usize = 64;

/// Shortest keepalive interval: a zero or tiny `--keepalive`, or a server announcing an expiry of
/// 0 s, must not turn the session into a busy loop.
pub const MIN_KEEPALIVE: Duration = Duration::from_millis(100);

/// First wait before dialling the server again after a TCP session's connection closed; it
/// doubles after each failed attempt, up to the keepalive interval (so a restarted server is
/// found again within one interval of coming back).
pub const RECONNECT_FIRST: Duration = Duration::from_millis(100);

/// How long a TCP session keeps dialling a server that went away before it counts as
/// unreachable: the same budget a UDP session's keepalive has.
pub const RECONNECT_BUDGET: Duration = LOGIN_TIMEOUT;

/// The transport a session runs over; decides whether requests are retransmitted.
pub use crate::core::Transport;

/// Settings for one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The ID to log in as.
    pub id: String,
    pub transport: Transport,
    /// How often to send KEEPALIVE once logged in. Over UDP it is also shortened to a third of
    /// the server's announced expiry, so two keepalives may be lost before the server forgets us.
    pub keepalive: Duration,
    /// The retransmission policy of every request, cut to each request's own budget.
    pub retry: Retry,
    /// Budget of LOGIN and of each KEEPALIVE.
    pub login_timeout: Duration,
    /// Budget of each CALL.
    pub call_timeout: Duration,
    /// HMAC key from this ID's key ([`crate::core::credentials::hmac_key`]), for a server with
    /// credentials: LOGIN and CALL are then signed once the server has sent a nonce, and
    /// answers to delivered calls are signed always.
    pub hmac_key: Option<[u8; 16]>,
    /// The servers to use, in order of preference (`--server` given more than once): the
    /// session starts on the first and moves to the next when the one it uses stops answering
    /// ([`failover`]). Empty or one: the session stays on the server the shell connected it to.
    pub servers: Vec<SocketAddr>,
}

impl ClientConfig {
    /// RFC 8489 defaults for the transport: doubling retransmission over UDP, none over TCP.
    pub fn new(id: impl Into<String>, transport: Transport, keepalive: Duration) -> Self {
        let retry = match transport {
            Transport::Udp => Retry::RFC_DATAGRAM,
            Transport::Tcp => Retry::Stream {
                timeout: STREAM_TIMEOUT,
            },
        };
        ClientConfig {
            id: id.into(),
            transport,
            keepalive,
            retry,
            login_timeout: LOGIN_TIMEOUT,
            call_timeout: CALL_TIMEOUT,
            hmac_key: None,
            servers: Vec::new(),
        }
    }
}

/// Which exchange found the server gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// LOGIN (first or repeated) went unanswered.
    Login,
    /// A KEEPALIVE went unanswered.
    Keepalive,
    /// The shell reported the connection closed (TCP) or unusable.
    Connection,
}

/// What happened, for the shell to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server accepted the login and saw us at `observed`; over UDP it forgets a silent
    /// session after `udp_expiry`.
    LoggedIn {
        observed: SocketAddr,
        udp_expiry: Option<Duration>,
    },
    /// The server refused the login, e.g. 409 when the ID is taken. The session is closed.
    LoginRefused { code: u16, reason: String },
    /// No answer from the server in time, or the connection closed. The session is closed.
    ServerUnreachable { lost: Lost },
    /// The TCP connection to the server closed while logged in (a server restart, say); the
    /// session dials again with backoff ([`ClientSession::poll_connect`]) and logs in again.
    ConnectionLost,
    /// The server had forgotten the session (437, e.g. after a restart); it was logged in again.
    Relogin {
        observed: SocketAddr,
        udp_expiry: Option<Duration>,
    },
    /// The server sees us at a new public address (NAT rebinding, new network).
    ObservedChanged { old: SocketAddr, new: SocketAddr },
    /// A peer called; it was answered with the facts from [`ClientSession::set_facts`].
    IncomingCall {
        caller: String,
        call_id: u64,
        facts: NatFacts,
    },
    /// A call placed with [`ClientSession::call`] was answered with the callee's facts.
    CallAnswered {
        callee: String,
        call_id: u64,
        facts: NatFacts,
    },
    /// A call failed: `code` is the server's error (404 unknown peer, 408 no answer), `None` when
    /// no answer came in time or the session ended first.
    CallFailed {
        callee: String,
        call_id: u64,
        code: Option<u16>,
        reason: String,
    },
    /// The server in use stopped answering (`lost` says how it was found) and the session moved
    /// to the next one ([`ClientConfig::servers`]): the shell connects to `to`
    /// ([`ClientSession::poll_switch`]) and the session logs in there. Calls in flight on `from`
    /// failed first.
    ServerChanged {
        from: SocketAddr,
        to: SocketAddr,
        lost: Lost,
    },
    /// LOGOUT was answered (or timed out). The session is closed.
    LoggedOut,
}

/// Inputs that were dropped, by reason. Nothing untrusted makes the session panic; it counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Not STUN at all (too short, top bits set).
    pub not_stun: u64,
    /// STUN, but broken: bad lengths, RFC 3489 framing, bad or missing attribute values.
    pub malformed: u64,
    /// Responses matching no transaction in flight (late duplicates included).
    pub stray_responses: u64,
    /// Success answers to a signed request without a valid MESSAGE-INTEGRITY-SHA256 under
    /// our key: forged or damaged on the way, dropped as if lost.
    pub unsigned_answers: u64,
    /// Indications, and requests arriving after the session closed.
    pub ignored: u64,
    /// Server retransmissions answered again from the cache.
    pub repeated_requests: u64,
    /// Our own UDP retransmissions.
    pub retransmissions: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    LoggingIn {
        relogin: bool,
    },
    LoggedIn {
        next_keepalive: Instant,
    },
    /// TCP only: the connection closed; the shell is asked to dial again at `next_attempt`.
    Reconnecting {
        next_attempt: Instant,
        backoff: Duration,
    },
    /// The server in use was given up on: the shell is asked to connect to the next one
    /// ([`ClientSession::poll_switch`]).
    Switching,
    LoggingOut,
    Closed,
}

/// One session with one location server. See the module documentation for the run loop.
#[derive(Debug)]
pub struct ClientSession<R> {
    config: ClientConfig,
    rng: R,
    state: State,
    observed: Option<SocketAddr>,
    udp_expiry: Option<Duration>,
    /// The server's listening addresses its last LOGIN success named (NL-SERVER-ADDRESS).
    server_addresses: Vec<SocketAddr>,
    facts: NatFacts,
    /// Requests in flight: timers, retransmission bytes and what each is for (a response is
    /// checked against it before its transaction is ended).
    transactions: Transactions<Pending>,
    answers: HashMap<TransactionId, CachedAnswer>,
    /// The server's latest NONCE (credential exchange, RFC 8489 §9.2).
    nonce: Option<String>,
    /// LOGIN and CALL requests sent under credentials: their bytes (to send again with a new
    /// nonce) and how many signed attempts came before.
    auth_tries: HashMap<TransactionId, (Vec<u8>, u8)>,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<ClientEvent>,
    stats: ClientStats,
    /// When the TCP connection was lost, until logged in again (the reconnect budget's start).
    lost_at: Option<Instant>,
    /// The shell should dial the server again ([`ClientSession::poll_connect`]).
    connect_wanted: bool,
    /// Which server is in use and when to move on.
    failover: Failover,
    /// The shell should connect to this server instead ([`ClientSession::poll_switch`]).
    switch_wanted: Option<SocketAddr>,
}

impl<R: RngCore> ClientSession<R> {
    /// Starts a session: the LOGIN request is ready in [`ClientSession::poll_transmit`].
    pub fn new(config: ClientConfig, now: Instant, rng: R) -> Self {
        let failover = Failover::new(config.servers.clone());
        let mut session = ClientSession {
            config,
            rng,
            state: State::LoggingIn { relogin: false },
            observed: None,
            udp_expiry: None,
            server_addresses: Vec::new(),
            facts: NatFacts::default(),
            transactions: Transactions::default(),
            answers: HashMap::new(),
            nonce: None,
            auth_tries: HashMap::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            stats: ClientStats::default(),
            lost_at: None,
            connect_wanted: false,
            failover,
            switch_wanted: None,
        };
        session.send_login(now);
        session
    }

    /// Sets the facts this end answers incoming calls with (`observed` is the server's to fill).
    pub fn set_facts(&mut self, facts: NatFacts) {
        self.facts = facts;
    }

    /// Takes one whole STUN message from the server (a datagram, or a frame cut from the stream).
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        let message = match Message::parse(bytes) {
            Ok(message) if message.has_magic_cookie() => message,
            Err(DecodeError::TooShort | DecodeError::NotStun) => return self.stats.not_stun += 1,
            _ => return self.stats.malformed += 1,
        };
        match message.class() {
            Class::Request => self.handle_request(now, &message),
            Class::Success | Class::Error => self.handle_response(now, &message),
            Class::Indication => self.stats.ignored += 1,
        }
    }

    /// Retransmits, times out and sends keepalives that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut timed_out = Vec::new();
        for due in self.transactions.poll_due(now) {
            match due {
                Due::Retransmit { bytes, .. } => {
                    self.stats.retransmissions += 1;
                    self.transmit.push_back(bytes.to_vec());
                }
                Due::TimedOut { payload, .. } => timed_out.push(payload),
            }
        }
        for pending in timed_out {
            if self.is_closed() {
                // An earlier timeout ended the session: what timed out with it ended first.
                self.abandon(pending, teardown::SESSION_ENDED);
            } else {
                self.on_timeout(pending);
            }
        }
        if let State::LoggedIn { next_keepalive } = self.state {
            if now >= next_keepalive {
                self.send_keepalive(now);
            }
        }
        if let State::Reconnecting {
            next_attempt,
            backoff,
        } = self.state
        {
            if now >= next_attempt {
                self.attempt_reconnect(now, backoff);
            }
        }
        self.answers.retain(|_, answer| answer.expires > now);
        let transactions = &self.transactions;
        self.auth_tries.retain(|tid, _| transactions.contains(tid));
    }

    /// True once each time the shell should dial the server again (TCP, after
    /// [`ClientEvent::ConnectionLost`]); it answers with [`ClientSession::handle_connected`] on
    /// success and nothing on failure (the next attempt is already scheduled).
    pub fn poll_connect(&mut self) -> bool {
        std::mem::take(&mut self.connect_wanted)
    }

    /// The shell has a new connection to the server: log in again over it.
    pub fn handle_connected(&mut self, now: Instant) {
        if let State::Reconnecting { .. } = self.state {
            self.state = State::LoggingIn { relogin: true };
            self.send_login(now);
        }
    }

    /// The server to connect to instead of the one in use, once each time the session moves
    /// (after [`ClientEvent::ServerChanged`]); the shell answers with
    /// [`ClientSession::handle_switched`] once connected, or
    /// [`ClientSession::handle_switch_failed`] when it could not connect.
    pub fn poll_switch(&mut self) -> Option<SocketAddr> {
        self.switch_wanted.take()
    }

    /// The shell is connected to the server [`ClientSession::poll_switch`] named: log in there.
    /// The first login of a session that never got in is still [`ClientEvent::LoggedIn`];
    /// after that it is a [`ClientEvent::Relogin`].
    pub fn handle_switched(&mut self, now: Instant) {
        if self.state == State::Switching {
            self.state = State::LoggingIn {
                relogin: self.observed.is_some(),
            };
            self.send_login(now);
        }
    }

    /// The shell could not connect to the server [`ClientSession::poll_switch`] named: move on.
    pub fn handle_switch_failed(&mut self) {
        if self.state == State::Switching {
            self.fail_over(Lost::Connection);
        }
    }

    /// Calls `callee` through the server with `facts`; the answer arrives as
    /// [`ClientEvent::CallAnswered`] or [`ClientEvent::CallFailed`]. Call once logged in: the
    /// server refuses calls from unknown sessions (403).
    pub fn call(&mut self, now: Instant, callee: &str, facts: &NatFacts) -> u64 {
        let call_id = self.rng.next_u64();
        if self.state == State::Closed {
            self.events.push_back(ClientEvent::CallFailed {
                callee: callee.to_owned(),
                call_id,
                code: None,
                reason: "the session is closed".into(),
            });
            return call_id;
        }
        let pending = Pending::Call {
            callee: callee.to_owned(),
            call_id,
        };
        let budget = self.config.call_timeout;
        self.send_request(now, pending, budget, |builder| {
            builder.attribute(natlens::PEER_ID, callee.as_bytes());
            builder.attribute(natlens::CALL_ID, &call_id.to_be_bytes());
            facts.encode_claims(builder);
        });
        call_id
    }

    /// Logs out; [`ClientEvent::LoggedOut`] follows when the server answers or after
    /// [`LOGOUT_TIMEOUT`]. Calls in flight may still be answered meanwhile.
    pub fn logout(&mut self, now: Instant) {
        if matches!(self.state, State::LoggingOut | State::Closed) {
            return;
        }
        if let State::Reconnecting { .. } | State::Switching = self.state {
            // No connection to say goodbye on; the server freed the session when it closed
            // (TCP) or forgets it on expiry (a server given up on).
            return self.close(ClientEvent::LoggedOut);
        }
        self.forget_pending(|pending| matches!(pending, Pending::Login | Pending::Keepalive));
        self.state = State::LoggingOut;
        let budget = self.config.login_timeout.min(LOGOUT_TIMEOUT);
        self.send_request(now, Pending::Logout, budget, |_| {});
    }

    /// The next message to send to the server.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// The next event to report.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`ClientSession::handle_timeout`] must be called next; `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let keepalive = match self.state {
            State::LoggedIn { next_keepalive } => Some(next_keepalive),
            State::Reconnecting { next_attempt, .. } => Some(next_attempt),
            _ => None,
        };
        [self.transactions.next_deadline(), keepalive]
            .into_iter()
            .flatten()
            .min()
    }

    /// Our public address as the server last saw it.
    pub fn observed(&self) -> Option<SocketAddr> {
        self.observed
    }

    /// The server in use, when [`ClientConfig::servers`] named the servers.
    pub fn server(&self) -> Option<SocketAddr> {
        self.failover.current()
    }

    /// How long a LOGIN or KEEPALIVE may go unanswered (and a lost TCP connection may go
    /// without a new one) before the server in use counts as lost: shorter when there is
    /// another server to move to ([`Failover::silence_budget`]).
    pub fn silence_budget(&self) -> Duration {
        self.failover
            .silence_budget(self.keepalive_interval(), self.config.login_timeout)
    }

    /// The server's listening addresses its LOGIN success named, one per family at most: where
    /// an end logged in over one family fingerprints its other family.
    pub fn server_addresses(&self) -> &[SocketAddr] {
        &self.server_addresses
    }

    /// The ID this session logs in as.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    pub fn transport(&self) -> Transport {
        self.config.transport
    }

    pub fn is_logged_in(&self) -> bool {
        matches!(self.state, State::LoggedIn { .. })
    }

    /// True once refused, unreachable or logged out: nothing more will happen.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// The keepalive interval in force: the configured one, shortened over UDP so that the
    /// server's expiry spans three keepalives.
    pub fn keepalive_interval(&self) -> Duration {
        let interval = match (self.config.transport, self.udp_expiry) {
            (Transport::Udp, Some(expiry)) => self.config.keepalive.min(expiry / 3),
            _ => self.config.keepalive,
        };
        interval.max(MIN_KEEPALIVE)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod auth_tests;

#[cfg(test)]
mod failover_tests;
