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

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::core::transaction::{Due, Retry, Transactions};
use crate::wire::attr::{self, AttrType};
use crate::wire::integrity;
use crate::wire::natlens::{self, error, NatFacts};
use crate::wire::{
    Class, DecodeError, Message, MessageBuilder, MessageType, Method, TransactionId,
};

/// How long a login (and each keepalive) may go unanswered before the server counts as
/// unreachable. RFC 8489's full schedule (39.5 s) is too long for a person at a terminal; 10 s
/// still fits five UDP sends (0, 0.5, 1.5, 3.5, 7.5 s), so four lost datagrams in a row are
/// survived.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a call waits for the callee's facts by default: the same as `natlens call --timeout`.
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

/// What a transaction in flight is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Login,
    Keepalive,
    Logout,
    Call { callee: String, call_id: u64 },
}

impl Pending {
    fn method(&self) -> Method {
        match self {
            Pending::Login => natlens::LOGIN,
            Pending::Keepalive => natlens::KEEPALIVE,
            Pending::Logout => natlens::LOGOUT,
            Pending::Call { .. } => natlens::CALL,
        }
    }
}

/// A checked response, ready to act on.
#[derive(Debug)]
enum Answer {
    Error { code: u16, reason: String },
    Login(SocketAddr, Option<Duration>),
    Keepalive(Option<SocketAddr>),
    Logout,
    Call(NatFacts),
}

/// A response that matched a transaction but cannot be used; dropped as if lost.
#[derive(Debug)]
struct Malformed;

impl From<attr::ValueError> for Malformed {
    fn from(_: attr::ValueError) -> Self {
        Malformed
    }
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
    LoggingOut,
    Closed,
}

#[derive(Debug)]
struct CachedAnswer {
    bytes: Vec<u8>,
    expires: Instant,
}

/// One session with one location server. See the module documentation for the run loop.
#[derive(Debug)]
pub struct ClientSession<R> {
    config: ClientConfig,
    rng: R,
    state: State,
    observed: Option<SocketAddr>,
    udp_expiry: Option<Duration>,
    facts: NatFacts,
    /// Timers and retransmission bytes; what each is for lives in `pending`, so a response can
    /// be checked before its transaction is ended.
    transactions: Transactions<()>,
    pending: HashMap<TransactionId, Pending>,
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
}

impl<R: RngCore> ClientSession<R> {
    /// Starts a session: the LOGIN request is ready in [`ClientSession::poll_transmit`].
    pub fn new(config: ClientConfig, now: Instant, rng: R) -> Self {
        let mut session = ClientSession {
            config,
            rng,
            state: State::LoggingIn { relogin: false },
            observed: None,
            udp_expiry: None,
            facts: NatFacts::default(),
            transactions: Transactions::default(),
            pending: HashMap::new(),
            answers: HashMap::new(),
            nonce: None,
            auth_tries: HashMap::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            stats: ClientStats::default(),
            lost_at: None,
            connect_wanted: false,
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
                Due::TimedOut { tid, .. } => timed_out.push(tid),
            }
        }
        for tid in timed_out {
            if let Some(pending) = self.pending.remove(&tid) {
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
        let pending = &self.pending;
        self.auth_tries.retain(|tid, _| pending.contains_key(tid));
    }

    /// The shell lost the connection (TCP closed or reset). A TCP session that had logged in
    /// starts dialling again ([`ClientEvent::ConnectionLost`]); otherwise the session closes.
    pub fn handle_disconnect(&mut self, now: Instant) {
        match self.state {
            State::Closed | State::Reconnecting { .. } => {}
            State::LoggingOut => self.close(ClientEvent::LoggedOut),
            State::LoggedIn { .. } | State::LoggingIn { relogin: true }
                if self.config.transport == Transport::Tcp =>
            {
                self.start_reconnect(now)
            }
            _ => self.close(ClientEvent::ServerUnreachable {
                lost: Lost::Connection,
            }),
        }
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
        if let State::Reconnecting { .. } = self.state {
            // No connection to say goodbye on; the server freed the session when it closed.
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

    fn send_login(&mut self, now: Instant) {
        let budget = self.config.login_timeout;
        self.send_request(now, Pending::Login, budget, |_| {});
    }

    fn send_keepalive(&mut self, now: Instant) {
        let interval = self.keepalive_interval();
        self.state = State::LoggedIn {
            next_keepalive: now + interval,
        };
        // A keepalive still in flight keeps trying; a second would only add load.
        if self.pending.values().any(|p| *p == Pending::Keepalive) {
            return;
        }
        let budget = self.config.login_timeout;
        self.send_request(now, Pending::Keepalive, budget, |_| {});
    }

    /// Builds a request (LOGIN, KEEPALIVE and LOGOUT carry NL-ID; CALL names only the callee,
    /// the server knows the caller from its session), queues it and starts its
    /// transaction with the configured retry cut to `budget`.
    fn send_request(
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
    fn sign(&self, pending: &Pending, builder: &mut MessageBuilder<'_>) -> Option<bool> {
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
        self.transactions.start(now, tid, bytes, retry, ());
        self.pending.insert(tid, pending);
    }

    /// A 401 or 438 to a LOGIN or CALL sent under credentials: take the server's nonce and send
    /// the request again, signed, as a new transaction. A 401 is retried only when the request
    /// was not signed yet (else the key is wrong); a 438 once more after that (the nonce went
    /// stale, or the server restarted). Returns true when the request was sent again.
    fn retry_with_nonce(
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
        let pending = self.pending.remove(&tid).expect("a request in flight");
        self.transactions.finish(&tid);
        let budget = match pending {
            Pending::Call { .. } => self.config.call_timeout,
            _ => self.config.login_timeout,
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

    fn handle_response(&mut self, now: Instant, message: &Message<'_>) {
        let tid = message.transaction_id();
        let Some(pending) = self.pending.get(&tid) else {
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
        let pending = self.pending.remove(&tid).expect("checked above");
        self.transactions.finish(&tid);
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
            (Pending::Login, Answer::Login(observed, expiry)) => {
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

    fn logged_in(&mut self, now: Instant, observed: SocketAddr, udp_expiry: Option<Duration>) {
        let State::LoggingIn { relogin } = self.state else {
            return;
        };
        self.udp_expiry = udp_expiry;
        self.lost_at = None;
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

    /// Forgets what was in flight on the dead connection (calls fail now rather than after
    /// the stream timeout) and asks for the first dial at once.
    fn start_reconnect(&mut self, now: Instant) {
        self.forget_pending(|pending| matches!(pending, Pending::Login | Pending::Keepalive));
        let calls: Vec<(TransactionId, Pending)> = self.pending.drain().collect();
        for (tid, pending) in calls {
            self.transactions.finish(&tid);
            if let Pending::Call { callee, call_id } = pending {
                self.events.push_back(ClientEvent::CallFailed {
                    callee,
                    call_id,
                    code: None,
                    reason: "the connection to the server closed".into(),
                });
            }
        }
        if self.lost_at.is_none() {
            self.lost_at = Some(now);
            self.events.push_back(ClientEvent::ConnectionLost);
        }
        self.state = State::Reconnecting {
            next_attempt: now,
            backoff: RECONNECT_FIRST,
        };
    }

    /// A dial is due: ask the shell for it and schedule the next one with doubled backoff, up
    /// to the keepalive interval; past [`RECONNECT_BUDGET`] the server counts as unreachable.
    fn attempt_reconnect(&mut self, now: Instant, backoff: Duration) {
        let lost_at = self.lost_at.unwrap_or(now);
        if now.duration_since(lost_at) >= RECONNECT_BUDGET {
            return self.close(ClientEvent::ServerUnreachable {
                lost: Lost::Connection,
            });
        }
        self.connect_wanted = true;
        self.state = State::Reconnecting {
            next_attempt: now + backoff,
            backoff: (backoff * 2).min(self.keepalive_interval()),
        };
    }

    fn relogin(&mut self, now: Instant) {
        self.forget_pending(|pending| *pending == Pending::Keepalive);
        self.state = State::LoggingIn { relogin: true };
        self.send_login(now);
    }

    fn note_observed(&mut self, new: SocketAddr) {
        if let Some(old) = self.observed.replace(new) {
            if old != new {
                self.events
                    .push_back(ClientEvent::ObservedChanged { old, new });
            }
        }
    }

    fn on_timeout(&mut self, pending: Pending) {
        match pending {
            Pending::Login => self.close(ClientEvent::ServerUnreachable { lost: Lost::Login }),
            Pending::Keepalive => self.close(ClientEvent::ServerUnreachable {
                lost: Lost::Keepalive,
            }),
            Pending::Logout => self.close(ClientEvent::LoggedOut),
            Pending::Call { callee, call_id } => self.events.push_back(ClientEvent::CallFailed {
                callee,
                call_id,
                code: None,
                reason: "no answer from the server in time".into(),
            }),
        }
    }

    /// Ends the session with `event`; calls still in flight fail after it.
    fn close(&mut self, event: ClientEvent) {
        self.state = State::Closed;
        self.events.push_back(event);
        let mut pending: Vec<(TransactionId, Pending)> = self.pending.drain().collect();
        pending.sort_by_key(|(tid, _)| *tid);
        for (tid, pending) in pending {
            self.transactions.finish(&tid);
            if let Pending::Call { callee, call_id } = pending {
                self.events.push_back(ClientEvent::CallFailed {
                    callee,
                    call_id,
                    code: None,
                    reason: "the session ended first".into(),
                });
            }
        }
    }

    fn forget_pending(&mut self, doomed: impl Fn(&Pending) -> bool) {
        let tids: Vec<TransactionId> = self
            .pending
            .iter()
            .filter(|(_, pending)| doomed(pending))
            .map(|(tid, _)| *tid)
            .collect();
        for tid in tids {
            self.pending.remove(&tid);
            self.transactions.finish(&tid);
        }
    }

    fn handle_request(&mut self, now: Instant, message: &Message<'_>) {
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
            let oldest = self.answers.iter().min_by_key(|(_, a)| a.expires);
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
        let (method, tid) = (message.method(), message.transaction_id());
        let mut bytes = Vec::new();
        let unknown = unknown_required(message);
        if !unknown.is_empty() {
            // RFC 8489 §6.3.1.1: refuse with 420 and list what was not understood.
            error_answer(
                &mut bytes,
                method,
                tid,
                error::UNKNOWN_ATTRIBUTE,
                "Unknown Attribute",
            )
            .unknown_attributes(&unknown);
            return bytes;
        }
        let call = (method == natlens::CALL).then(|| read_call(message));
        match call {
            None => {
                error_answer(
                    &mut bytes,
                    method,
                    tid,
                    error::BAD_REQUEST,
                    "Bad Request: a client only answers CALL",
                );
            }
            Some(Err(Malformed)) => {
                error_answer(
                    &mut bytes,
                    method,
                    tid,
                    error::BAD_REQUEST,
                    "Bad Request: CALL needs NL-PEER-ID and NL-CALL-ID",
                );
            }
            Some(Ok((caller, call_id, facts))) => {
                let success = MessageType::new(natlens::CALL, Class::Success);
                let mut builder = MessageBuilder::new(&mut bytes, success, tid);
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
        bytes
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

/// Starts an error response to a request.
fn error_answer<'b>(
    bytes: &'b mut Vec<u8>,
    method: Method,
    tid: TransactionId,
    code: u16,
    reason: &str,
) -> MessageBuilder<'b> {
    let mut builder = MessageBuilder::new(bytes, MessageType::new(method, Class::Error), tid);
    builder.error_code(code, reason);
    builder
}

/// Comprehension-required attribute types a natlens client does not know, each listed once.
fn unknown_required(message: &Message<'_>) -> Vec<AttrType> {
    let mut unknown: Vec<AttrType> = message
        .attributes()
        .map(|attribute| attribute.kind)
        .filter(|kind| kind.is_comprehension_required() && !natlens::KNOWN_REQUIRED.contains(kind))
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
            Answer::Login(mapped.ok_or(Malformed)?, expiry)
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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod auth_tests;
