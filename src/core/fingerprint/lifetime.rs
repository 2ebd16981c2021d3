//! How long an idle UDP mapping lives (RFC 5780 §4.6), and whether outbound or inbound
//! traffic refreshes it (RFC 4787 REQ-6), sans-IO.
//!
//! Many sockets in parallel instead of a serial search: every rung socket of a ladder of idle
//! intervals gets its mapping at the start, then stays silent. When a rung's interval has
//! passed, a control socket asks the server for a Binding answer with RESPONSE-PORT set to the
//! rung's public port: the server sends it to the control socket's public IP at that port, from
//! the address the request arrived on, which is the address the rung's mapping was made toward.
//! So the answer passes the NAT's filtering, and arrives on the rung socket iff its mapping is
//! still alive. The first rung found dead ends the ladder: the run lasts about the lifetime
//! plus one step. Each check also carries a plain Binding request from the control socket (the
//! witness): a check whose witness got no answer either is retried, since then the server or
//! the path lost it, not the NAT.
//!
//! Two more sockets test refreshing. Each is refreshed (the outbound one sends a Binding
//! indication, which no server answers; for the inbound one the control socket asks the server
//! to send to it with RESPONSE-PORT) every time a rung proves alive an idle interval at least
//! as long as the refresh socket's own age, so every refresh reaches a live mapping even if
//! refreshes do nothing. Once the ladder has found a dead interval `hi`, each is checked when
//! its age passes `hi`: alive means that kind of traffic refreshed it. Eight more are refreshed
//! like the outbound one, but with IP TTL 1 to 8: a NAT refreshes a mapping on a packet that
//! reaches it, even one it then drops for its TTL, so the smallest TTL that kept its socket
//! alive is the hop of the outermost NAT on the path.
//!
//! The shell opens one UDP socket per [`Slot`], sends what [`LifetimeProbe::poll_transmit`]
//! yields (the tag goes into the transaction ID), feeds answers to
//! [`LifetimeProbe::handle_answer`] / [`LifetimeProbe::handle_error`], and calls
//! [`LifetimeProbe::handle_timeout`] at [`LifetimeProbe::poll_timeout`].

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

/// `--lifetime` without a value: longer than the 120 s that RFC 4787 REQ-5 asks for, and than
/// Linux's 120 s for a flow with traffic both ways.
pub const DEFAULT_MAX: Duration = Duration::from_secs(180);
/// The shortest idle interval tried.
const FIRST_RUNG: Duration = Duration::from_secs(1);
/// Up to [`LINEAR_UNTIL`] the rungs are this far apart: short lifetimes need absolute
/// precision (a keepalive every 2 s or every 3 s), long ones relative precision.
const LINEAR_STEP: Duration = Duration::from_millis(500);
const LINEAR_UNTIL: Duration = Duration::from_secs(10);
/// Beyond [`LINEAR_UNTIL`], each rung is this much longer than the one before: the bracket is
/// 6% wide, so its middle is within 3% of the lifetime, and 180 s takes 69 sockets.
const GEOMETRIC_RATIO: f64 = 1.06;
/// The recommended keepalive interval is this share of the longest idle interval that the
/// mapping survived: margin for timer granularity and a lost keepalive's retransmission.
pub const KEEPALIVE_SHARE: f64 = 0.8;
/// The refresh sockets get their mappings this long after the rungs: a refresh is sent when a
/// rung proves an interval at least the refresh socket's age alive, and the rung's answer comes
/// a round trip after its check went out.
const REFRESH_DELAY: Duration = Duration::from_millis(500);
/// TTL-limited refresh sockets: one per hop count 1..=this. A NAT further away than this many
/// hops is reported as not found.
pub const MAX_TTL_HOPS: u8 = 8;
/// Binding requests that set up a mapping: tries and the wait between them.
const BIND_TRIES: u8 = 3;
const BIND_RETRY: Duration = Duration::from_millis(500);
/// How long a check waits for its answers: at least this, at least four round trips.
const MIN_WINDOW: Duration = Duration::from_millis(300);
/// RESPONSE-PORT requests per check: one lost answer does not read as an expired mapping.
const CHECK_COPIES: usize = 2;
/// A check whose witness got no answer is sent again this many times in all.
const CHECK_TRIES: u8 = 2;

/// The idle intervals tried, shortest first, up to `max`: every 0.5 s up to 10 s, then 6%
/// apart, `max` itself last.
pub fn ladder(max: Duration) -> Vec<Duration> {
    let mut rungs = Vec::new();
    let mut interval = FIRST_RUNG;
    while interval < max {
        rungs.push(interval);
        interval = if interval < LINEAR_UNTIL {
            interval + LINEAR_STEP
        } else {
            Duration::from_millis((interval.as_millis() as f64 * GEOMETRIC_RATIO).round() as u64)
        };
    }
    rungs.push(max.max(FIRST_RUNG));
    rungs
}

/// Which traffic a refresh socket gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// It sends a Binding indication to the server (which never answers one).
    Outbound,
    /// The server sends to it, asked by the control socket with RESPONSE-PORT.
    Inbound,
}

/// One of the probe's sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// Sends the checks (RESPONSE-PORT requests) and the witnesses.
    Control,
    /// The socket idle for `ladder[i]`.
    Rung(usize),
    /// A socket whose mapping gets refreshed by traffic in one direction.
    Refresh(Direction),
    /// A socket refreshed by Binding indications sent with this IP TTL (hop limit): they
    /// refresh the mappings of the NATs within that many hops, and die beyond.
    TtlRefresh(u8),
}

impl Slot {
    /// Index of a refresh slot in the probe's refreshers.
    fn refresher(self) -> Option<usize> {
        match self {
            Slot::Refresh(direction) => Some(direction as usize),
            Slot::TtlRefresh(ttl) => Some(1 + usize::from(ttl)),
            Slot::Control | Slot::Rung(_) => None,
        }
    }
}

/// What to send to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Send {
    /// A Binding request, answered to the sender.
    Bind,
    /// A Binding request with RESPONSE-PORT `port`: answered to that port of our public IP.
    Check { port: u16 },
    /// A Binding indication: nothing comes back.
    Indication,
}

/// One datagram for the shell to send from `from` to the server, `tag` in its transaction ID;
/// with `ttl`, the socket's IP TTL (hop limit) is set to it first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub from: Slot,
    pub tag: u32,
    pub send: Send,
    pub ttl: Option<u8>,
}

/// What a tag was sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Bind(Slot),
    /// A RESPONSE-PORT request of check `id`.
    Copy(usize),
    /// The control socket's own request beside check `id`.
    Witness(usize),
    /// A RESPONSE-PORT request that refreshes the inbound refresh socket.
    InboundRefresh,
    /// A Binding indication that refreshes the outbound refresh socket.
    OutboundRefresh,
}

/// A socket's mapping.
#[derive(Debug, Clone, Copy, Default)]
struct Binding {
    tries: u8,
    next_try: Option<Instant>,
    /// When the first request went out: its answer gives a round-trip sample.
    first_sent: Option<Instant>,
    public: Option<SocketAddr>,
    /// When its last answer arrived: the mapping's idle time counts from there.
    answered_at: Option<Instant>,
}

impl Binding {
    fn starting_at(at: Instant) -> Self {
        Binding {
            next_try: Some(at),
            ..Binding::default()
        }
    }

    fn gave_up(&self) -> bool {
        self.public.is_none() && self.next_try.is_none()
    }
}

/// How one check (a rung, or a refresh socket at the end) came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Alive,
    Dead,
    /// Neither the answer nor the witness came back, however often it was sent.
    Unknown,
}

/// A check in flight: RESPONSE-PORT requests toward `target`'s public port.
#[derive(Debug, Clone, Copy)]
struct Check {
    target: Slot,
    /// The target's idle time when the (last) check went out.
    idle: Duration,
    sent_at: Instant,
    tries: u8,
    answered: bool,
    witnessed: bool,
    outcome: Option<Outcome>,
}

/// A rung: its interval, its mapping, and how its check came out.
#[derive(Debug, Clone, Copy)]
struct Rung {
    interval: Duration,
    binding: Binding,
    check: Option<usize>,
}

/// A refresh socket.
#[derive(Debug, Clone, Copy)]
struct Refresher {
    slot: Slot,
    binding: Binding,
    refreshes: u32,
    /// Inbound refreshes that arrived (each proves the mapping was alive then).
    delivered: u32,
    last_refresh: Option<Instant>,
    final_due: Option<Instant>,
    check: Option<usize>,
}

/// What the measurement found (`udp.mapping_*` in `natlens nat --json`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LifetimeFacts {
    /// The middle of the bracket; `null` without `--lifetime`, or when the mapping outlived
    /// the longest interval tried.
    pub mapping_lifetime_ms: Option<u64>,
    /// [longest idle interval survived (0 if none), shortest one not survived (`null` if
    /// none)].
    pub mapping_lifetime_bracket_ms: Option<[Option<u64>; 2]>,
    /// [`KEEPALIVE_SHARE`] of the bracket's lower end.
    pub mapping_keepalive_ms: Option<u64>,
    /// Whether outbound traffic alone kept a mapping alive past the lifetime.
    pub mapping_refreshed_by_outbound: Option<bool>,
    /// Whether inbound traffic alone kept a mapping alive past the lifetime.
    pub mapping_refreshed_by_inbound: Option<bool>,
    /// The smallest IP TTL whose outbound refreshes kept a mapping alive: every NAT on the
    /// path lies within that many hops, so it is the hop of the outermost NAT.
    pub ttl_refresh_outermost_nat_hop: Option<u8>,
}

impl LifetimeFacts {
    /// Plain-language sentences about what was measured (none when nothing was).
    pub fn sentences(&self) -> Vec<String> {
        let Some([Some(lo), hi]) = self.mapping_lifetime_bracket_ms else {
            return Vec::new();
        };
        let secs = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
        let mut lines = vec![match hi {
            Some(hi) => format!(
                "An idle UDP mapping lives between {} and {}: send a keepalive at least every {}.",
                secs(lo),
                secs(hi),
                secs(self.mapping_keepalive_ms.unwrap_or(0))
            ),
            None => format!(
                "An idle UDP mapping lives longer than {}, the longest tried.",
                secs(lo)
            ),
        }];
        let kinds = [
            ("Outgoing", self.mapping_refreshed_by_outbound),
            ("Incoming", self.mapping_refreshed_by_inbound),
        ];
        for (kind, refreshed) in kinds {
            match refreshed {
                Some(true) => lines.push(format!("{kind} packets alone keep a mapping alive.")),
                Some(false) => {
                    lines.push(format!("{kind} packets alone do not keep a mapping alive."))
                }
                None => {}
            }
        }
        lines
    }
}

/// Where the probe stands, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The longest idle interval proven survivable so far.
    pub alive_for: Option<Duration>,
    /// The shortest interval found fatal, once found.
    pub dead_after: Option<Duration>,
    pub finished: bool,
}

/// The measurement's state machine.
#[derive(Debug)]
pub struct LifetimeProbe {
    server: SocketAddr,
    control: Binding,
    rungs: Vec<Rung>,
    /// Outbound, inbound, then TTL 1..=[`MAX_TTL_HOPS`] (see [`Slot::refresher`]).
    refreshers: Vec<Refresher>,
    checks: Vec<Check>,
    tags: BTreeMap<u32, Purpose>,
    queue: VecDeque<Transmit>,
    rtt: Option<Duration>,
    failure: Option<String>,
    /// Answers that came from elsewhere than the server, or on the wrong socket.
    pub ignored: u32,
}

impl LifetimeProbe {
    /// A probe of idle intervals up to `max` toward `server` (its primary address: every
    /// request goes there, so every answer comes from there), starting at `now`.
    pub fn new(server: SocketAddr, max: Duration, now: Instant) -> Self {
        let refresher = |slot| Refresher {
            slot,
            binding: Binding::starting_at(now + REFRESH_DELAY),
            refreshes: 0,
            delivered: 0,
            last_refresh: None,
            final_due: None,
            check: None,
        };
        LifetimeProbe {
            server,
            control: Binding::starting_at(now),
            rungs: ladder(max)
                .into_iter()
                .map(|interval| Rung {
                    interval,
                    binding: Binding::starting_at(now),
                    check: None,
                })
                .collect(),
            refreshers: [
                Slot::Refresh(Direction::Outbound),
                Slot::Refresh(Direction::Inbound),
            ]
            .into_iter()
            .chain((1..=MAX_TTL_HOPS).map(Slot::TtlRefresh))
            .map(refresher)
            .collect(),
            checks: Vec::new(),
            tags: BTreeMap::new(),
            queue: VecDeque::new(),
            rtt: None,
            failure: None,
            ignored: 0,
        }
    }

    /// Every slot the shell needs a socket for.
    pub fn slots(&self) -> Vec<Slot> {
        let mut slots = vec![Slot::Control];
        slots.extend((0..self.rungs.len()).map(Slot::Rung));
        slots.extend(self.refreshers.iter().map(|r| r.slot));
        slots
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.queue.pop_front()
    }

    /// Why the measurement could not be made, once it could not.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    fn send(&mut self, from: Slot, send: Send, purpose: Purpose) {
        let tag = self.tags.len() as u32;
        self.tags.insert(tag, purpose);
        self.queue.push_back(Transmit {
            from,
            tag,
            send,
            ttl: None,
        });
    }

    fn binding_mut(&mut self, slot: Slot) -> &mut Binding {
        match slot {
            Slot::Control => &mut self.control,
            Slot::Rung(i) => &mut self.rungs[i].binding,
            Slot::Refresh(_) | Slot::TtlRefresh(_) => {
                let index = slot.refresher().expect("a refresh slot");
                &mut self.refreshers[index].binding
            }
        }
    }

    fn window(&self) -> Duration {
        MIN_WINDOW.max(self.rtt.unwrap_or_default() * 4)
    }

    /// A Binding success answer with `tag` arrived on `slot` from `from`, reflecting `public`.
    pub fn handle_answer(
        &mut self,
        slot: Slot,
        tag: u32,
        public: SocketAddr,
        from: SocketAddr,
        now: Instant,
    ) {
        let Some(&purpose) = self.tags.get(&tag) else {
            self.ignored += 1;
            return;
        };
        if from != self.server {
            self.ignored += 1;
            return;
        }
        match purpose {
            Purpose::Bind(sent_from) if sent_from == slot => {
                let binding = self.binding_mut(slot);
                // Only an answer to a single request tells which one it answers.
                let rtt = binding
                    .first_sent
                    .filter(|_| binding.tries == 1)
                    .map(|sent| now.saturating_duration_since(sent));
                binding.public = Some(public);
                binding.answered_at = Some(now);
                binding.next_try = None;
                if let Some(rtt) = rtt {
                    self.rtt = Some(self.rtt.map_or(rtt, |old| old.min(rtt)));
                }
            }
            Purpose::Copy(id) if self.checks[id].target == slot => {
                self.checks[id].answered = true;
            }
            Purpose::Witness(id) if slot == Slot::Control => {
                let rtt = now.saturating_duration_since(self.checks[id].sent_at);
                self.rtt = Some(self.rtt.map_or(rtt, |old| old.min(rtt)));
                self.checks[id].witnessed = true;
            }
            Purpose::InboundRefresh if slot == Slot::Refresh(Direction::Inbound) => {
                self.refreshers[Direction::Inbound as usize].delivered += 1;
            }
            _ => self.ignored += 1,
        }
    }

    /// An error answer with `tag` and `code` arrived. A RESPONSE-PORT request refused with
    /// 420 means the server cannot do this measurement (RFC 5780 full mode is needed).
    pub fn handle_error(&mut self, tag: u32, code: u16) {
        let refused = matches!(
            self.tags.get(&tag),
            Some(Purpose::Copy(_) | Purpose::InboundRefresh)
        );
        if refused && self.failure.is_none() {
            self.failure = Some(format!(
                "the server refused RESPONSE-PORT (error {code}): measuring the mapping \
                 lifetime needs an RFC 5780 server (natlens server --alternate, coturn with two \
                 IPs)"
            ));
        }
    }

    /// When [`LifetimeProbe::handle_timeout`] is next due; `None` once finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.status().finished {
            return None;
        }
        let bindings = std::iter::once(&self.control)
            .chain(self.rungs.iter().map(|r| &r.binding))
            .chain(self.refreshers.iter().map(|r| &r.binding))
            .filter_map(|b| b.next_try);
        let window = self.window();
        let checks = self
            .checks
            .iter()
            .filter(|c| c.outcome.is_none())
            .map(|c| c.sent_at + window);
        let rungs = self.rungs_due();
        let finals = self.refreshers.iter().filter(|r| r.check.is_none());
        bindings
            .chain(checks)
            .chain(rungs.map(|(_, due)| due))
            .chain(finals.filter_map(|r| r.final_due))
            .min()
    }

    /// Rungs not yet checked that still matter, with when their interval is up.
    fn rungs_due(&self) -> impl Iterator<Item = (usize, Instant)> + '_ {
        let dead_after = self.dead_after();
        self.rungs.iter().enumerate().filter_map(move |(i, rung)| {
            let unchecked = rung.check.is_none() && dead_after.is_none_or(|d| rung.interval < d);
            let start = rung.binding.answered_at.filter(|_| unchecked)?;
            Some((i, start + rung.interval))
        })
    }

    /// Advances every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.failure.is_some() {
            return;
        }
        self.retry_bindings(now);
        if self.control.gave_up() {
            self.failure = Some("the server never answered the control socket".to_owned());
            return;
        }
        self.resolve_checks(now);
        let due: Vec<usize> = self
            .rungs_due()
            .filter(|&(_, at)| at <= now)
            .map(|(i, _)| i)
            .collect();
        for i in due {
            self.check_rung(i, now);
        }
        self.schedule_finals(now);
        for r in 0..self.refreshers.len() {
            let refresher = self.refreshers[r];
            if refresher.check.is_none() && refresher.final_due.is_some_and(|at| at <= now) {
                let id = self.start_check(refresher.slot, now);
                self.refreshers[r].check = id;
            }
        }
    }

    fn retry_bindings(&mut self, now: Instant) {
        let slots = self.slots();
        for slot in slots {
            let binding = self.binding_mut(slot);
            if binding.public.is_some() || binding.next_try.is_none_or(|at| at > now) {
                continue;
            }
            if binding.tries == BIND_TRIES {
                binding.next_try = None;
                continue;
            }
            binding.tries += 1;
            binding.next_try = Some(now + BIND_RETRY);
            binding.first_sent.get_or_insert(now);
            self.send(slot, Send::Bind, Purpose::Bind(slot));
        }
    }

    /// How long a mapping whose last answer arrived at `since` has been idle at the NAT when
    /// the answer to a check sent at `now` reaches it: a round trip after `now` (the NAT is
    /// near this host, the server far).
    fn idle_at_nat(&self, since: Instant, now: Instant) -> Duration {
        now.saturating_duration_since(since) + self.rtt.unwrap_or_default()
    }

    /// Starts (or repeats) a check of `target`'s mapping; `None` when it cannot be checked:
    /// no mapping, or one on another public IP than the control socket's (a NAT pooling
    /// addresses per flow), which RESPONSE-PORT answers cannot reach.
    fn start_check(&mut self, target: Slot, now: Instant) -> Option<usize> {
        let control = self.control.public?;
        let binding = *self.binding_mut(target);
        let public = binding.public.filter(|p| p.ip() == control.ip())?;
        let id = self.checks.len();
        let idle = self.idle_at_nat(binding.answered_at?, now);
        self.checks.push(Check {
            target,
            idle,
            sent_at: now,
            tries: 1,
            answered: false,
            witnessed: false,
            outcome: None,
        });
        self.send_check(id, public.port());
        Some(id)
    }

    fn send_check(&mut self, id: usize, port: u16) {
        for _ in 0..CHECK_COPIES {
            self.send(Slot::Control, Send::Check { port }, Purpose::Copy(id));
        }
        self.send(Slot::Control, Send::Bind, Purpose::Witness(id));
    }

    fn check_rung(&mut self, i: usize, now: Instant) {
        let id = self.start_check(Slot::Rung(i), now);
        let rung = &mut self.rungs[i];
        rung.check = id;
        if id.is_none() {
            // No usable mapping: the rung is out of the ladder (answered_at cleared).
            rung.binding.answered_at = None;
        }
    }

    /// Settles the checks whose window is over (an answer settles at once).
    fn resolve_checks(&mut self, now: Instant) {
        let window = self.window();
        for id in 0..self.checks.len() {
            let check = self.checks[id];
            if check.outcome.is_some() {
                continue;
            }
            let outcome = if check.answered {
                Outcome::Alive
            } else if check.sent_at + window > now {
                continue;
            } else if check.witnessed {
                Outcome::Dead
            } else if check.tries < CHECK_TRIES {
                self.retry_check(id, now);
                continue;
            } else {
                Outcome::Unknown
            };
            self.checks[id].outcome = Some(outcome);
            if outcome == Outcome::Alive && matches!(check.target, Slot::Rung(_)) {
                self.refresh(now);
            }
        }
    }

    fn retry_check(&mut self, id: usize, now: Instant) {
        let target = self.checks[id].target;
        let binding = *self.binding_mut(target);
        let (Some(public), Some(since)) = (binding.public, binding.answered_at) else {
            return;
        };
        let idle = self.idle_at_nat(since, now);
        let check = &mut self.checks[id];
        check.tries += 1;
        check.sent_at = now;
        check.idle = idle;
        self.send_check(id, public.port());
    }

    /// A rung just proved an interval survivable: refresh each refresh socket whose age is
    /// within it (so the refresh reaches a live mapping whether or not refreshes work), until
    /// the ladder found a dead interval.
    fn refresh(&mut self, now: Instant) {
        let Some(alive_for) = self.alive_for() else {
            return;
        };
        if self.dead_after().is_some() || self.control.public.is_none() {
            return;
        }
        for r in 0..self.refreshers.len() {
            let refresher = self.refreshers[r];
            let (Some(public), Some(born)) =
                (refresher.binding.public, refresher.binding.answered_at)
            else {
                continue;
            };
            // An inbound refresh reaches the NAT a round trip after it is asked for.
            let travel = match refresher.slot {
                Slot::Refresh(Direction::Inbound) => self.rtt.unwrap_or_default(),
                _ => Duration::ZERO,
            };
            if now.saturating_duration_since(born) + travel > alive_for {
                continue;
            }
            match refresher.slot {
                Slot::Refresh(Direction::Inbound) => {
                    let send = Send::Check {
                        port: public.port(),
                    };
                    self.send(Slot::Control, send, Purpose::InboundRefresh);
                }
                slot => {
                    self.send(slot, Send::Indication, Purpose::OutboundRefresh);
                    if let Slot::TtlRefresh(ttl) = slot {
                        self.queue.back_mut().expect("just queued").ttl = Some(ttl);
                    }
                }
            }
            self.refreshers[r].refreshes += 1;
            self.refreshers[r].last_refresh = Some(now);
        }
    }

    /// Once the ladder is over: each refreshed socket is checked when its age passes the
    /// shortest fatal interval.
    fn schedule_finals(&mut self, now: Instant) {
        if !self.ladder_over() {
            return;
        }
        let Some(dead_after) = self.dead_after() else {
            return;
        };
        for refresher in &mut self.refreshers {
            if refresher.final_due.is_some() || refresher.refreshes == 0 {
                continue;
            }
            if let Some(born) = refresher.binding.answered_at {
                refresher.final_due =
                    Some((born + dead_after + self.rtt.unwrap_or_default()).max(now));
            }
        }
    }

    /// Outcomes of the rungs checked so far, in ladder order, with the idle time each rung's
    /// mapping really had when its check went out (a timer fires late, never early).
    fn rung_outcomes(&self) -> impl Iterator<Item = (Duration, Option<Outcome>)> + '_ {
        self.rungs.iter().filter_map(|rung| {
            let check = &self.checks[rung.check?];
            Some((check.idle, check.outcome))
        })
    }

    /// The shortest interval whose rung was found dead.
    fn dead_after(&self) -> Option<Duration> {
        self.rung_outcomes()
            .find(|(_, outcome)| *outcome == Some(Outcome::Dead))
            .map(|(interval, _)| interval)
    }

    /// The longest interval proven survivable below the first dead one.
    fn alive_for(&self) -> Option<Duration> {
        let dead_after = self.dead_after();
        self.rung_outcomes()
            .filter(|(interval, outcome)| {
                *outcome == Some(Outcome::Alive) && dead_after.is_none_or(|d| *interval < d)
            })
            .map(|(interval, _)| interval)
            .max()
    }

    /// True when every rung that matters has its outcome (or will never get one).
    fn ladder_over(&self) -> bool {
        let dead_after = self.dead_after();
        self.rungs.iter().all(|rung| {
            if dead_after.is_some_and(|d| rung.interval >= d) || rung.binding.gave_up() {
                return true;
            }
            match rung.check {
                Some(id) => self.checks[id].outcome.is_some(),
                // A mapping that could not be checked (answered_at cleared).
                None => rung.binding.public.is_some() && rung.binding.answered_at.is_none(),
            }
        })
    }

    /// Where the measurement stands.
    pub fn status(&self) -> Status {
        let finals_done = self
            .refreshers
            .iter()
            .all(|r| match (r.final_due, r.check) {
                (Some(_), Some(id)) => self.checks[id].outcome.is_some(),
                (Some(_), None) => false,
                (None, _) => true,
            });
        let over = self.ladder_over();
        // schedule_finals runs in handle_timeout; until it has, a refreshed socket is pending.
        let finals_pending = over
            && self.dead_after().is_some()
            && self
                .refreshers
                .iter()
                .any(|r| r.refreshes > 0 && r.final_due.is_none());
        Status {
            alive_for: self.alive_for(),
            dead_after: self.dead_after(),
            finished: self.failure.is_some() || (over && finals_done && !finals_pending),
        }
    }

    /// The smallest TTL whose refreshes kept a mapping alive, when every smaller one was
    /// found dead (an unknown below it leaves the answer open) and outbound refreshing works
    /// at all (else TTL-limited refreshes show nothing).
    fn outermost_nat_hop(&self, refreshed: impl Fn(Slot) -> Option<bool>) -> Option<u8> {
        if refreshed(Slot::Refresh(Direction::Outbound)) != Some(true) {
            return None;
        }
        for ttl in 1..=MAX_TTL_HOPS {
            match refreshed(Slot::TtlRefresh(ttl)) {
                Some(true) => return Some(ttl),
                Some(false) => continue,
                None => return None,
            }
        }
        None
    }

    /// What was measured; call once [`Status::finished`].
    pub fn facts(&self) -> LifetimeFacts {
        if self.failure.is_some() {
            return LifetimeFacts::default();
        }
        let alive_for = self.alive_for();
        let dead_after = self.dead_after();
        let measured = self
            .rung_outcomes()
            .any(|(_, o)| o.is_some_and(|o| o != Outcome::Unknown));
        if !measured {
            return LifetimeFacts::default();
        }
        let ms = |d: Duration| d.as_millis() as u64;
        let lo = alive_for.map_or(0, ms);
        let refreshed = |slot: Slot| {
            let refresher = &self.refreshers[slot.refresher()?];
            let outcome = self.checks.get(refresher.check?)?.outcome?;
            // Meaningful only if the last refresh was recent enough for a refreshed mapping
            // to be alive at the final check.
            let gap = self.checks[refresher.check?]
                .sent_at
                .saturating_duration_since(refresher.last_refresh?);
            match outcome {
                Outcome::Alive => Some(true),
                Outcome::Dead if gap < alive_for? => Some(false),
                _ => None,
            }
        };
        LifetimeFacts {
            mapping_lifetime_ms: dead_after.map(|hi| (lo + ms(hi)) / 2),
            mapping_lifetime_bracket_ms: Some([Some(lo), dead_after.map(ms)]),
            mapping_keepalive_ms: alive_for.map(|lo| (ms(lo) as f64 * KEEPALIVE_SHARE) as u64),
            mapping_refreshed_by_outbound: refreshed(Slot::Refresh(Direction::Outbound)),
            mapping_refreshed_by_inbound: refreshed(Slot::Refresh(Direction::Inbound)),
            ttl_refresh_outermost_nat_hop: self.outermost_nat_hop(refreshed),
        }
    }
}

#[cfg(test)]
#[path = "lifetime_tests.rs"]
mod tests;
