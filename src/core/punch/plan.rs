//! The punch planner: from the two ends' facts to a plan both ends compute alike, as data.
//!
//! The strategy follows from what each side's NAT does with a punch's flows
//! ([`SideModel`]), in this order:
//!
//! | caller \ callee        | fixed      | sequential | random            |
//! |------------------------|------------|------------|-------------------|
//! | fixed                  | `direct`   | `fanout`   | `birthday`        |
//! | sequential             | `fanout`   | `fanout`   | `refused`         |
//! | random                 | `birthday` | `refused`  | `refused`         |
//!
//! except that a fixed side whose filter admits any port of an address it has sent to (a full or
//! address-restricted cone) makes the pair `direct`: the other side just aims at that port; and
//! a side whose gateway mapped a port for the punch (NAT-PMP, PCP, UPnP IGD, announced in its
//! facts) is such an open port whatever its NAT, so every pair with one is `direct`: the other
//! side aims at the mapping (random × random included).
//! Refused pairs run as a (hopeless, but bounded) blind spray with `--force`.
//!
//! Over TCP the same table holds for `direct` and `fanout` (the facts then describe the NAT's
//! TCP allocation, and the far ports are where the crafted SYN fan-out aims, the first of them
//! where the kernel's simultaneous open `connect()`s); a `birthday` runs with kernel sockets
//! on the random side and crafted SYNs from the fixed side (`io::punch_tcp_birthday`), sized
//! for a higher target (`strategy::for_tcp`). A mapped side's `Listen` part is a kernel
//! listener on its mapped port over TCP (`TcpPart::Listen`), and the other side `connect()`s
//! to the mapping.
//!
//! The plan holds both sides' halves, so that each end knows what the other will send: sockets
//! to open, the far NAT's ports aimed at in order, the own ports its flows should take, and every
//! send with its time from the side's own start signal, paced by `--rate` and cut by the budget.
//! The rules live in `strategy.rs`, the schedules in `schedule.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use crate::core::punch::profile::SideModel;
use crate::core::punch::schedule::side_plan;
use crate::core::punch::strategy::{apply_fanout_override, decide, expected_success, for_tcp};
use crate::core::punch::Role;
use crate::core::Transport;
use crate::wire::natlens::NatFacts;

/// Default cap on packets per second per side: 50 times the contention docs/lab.md measured
/// (20 new flows/s), so about one foreign flow slips into a 50-port fan-out; ~60-byte requests at
/// 1000/s are 60 KB/s, nothing for any uplink or conntrack table.
pub const DEFAULT_RATE: u32 = 1000;

/// Time between rounds of the same flows: a little over a typical Internet round trip, so a
/// request dropped by the far NAT (it had not opened yet) or lost on the way is retried about once
/// per RTT. Re-sending a flow reuses its binding: rounds cost no ports. A round longer than this
/// at the rate cap (256 holder sockets at 1000/s) stretches it.
pub const ROUND_INTERVAL: Duration = Duration::from_millis(200);

/// Longest relay estimate the callee's sync rounds wait for: beyond this the regular second
/// round ([`ROUND_INTERVAL`] after the start) comes about as soon.
pub const MAX_SYNC_DELAY: Duration = Duration::from_millis(150);

/// Default `--punch-timeout`: the same 10 s a call may wait for its answer (`CALL_TIMEOUT`); a direct
/// punch connects within a few round trips, a birthday within about 1.5 s at the default rate.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long Linux keeps an unanswered UDP flow (`nf_conntrack_udp_timeout`, docs/lab.md): the
/// requests of the first round must still hold their bindings when the last round goes out.
pub const UNREPLIED_UDP_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest `--punch-timeout` honoured: five seconds inside [`UNREPLIED_UDP_TIMEOUT`], so nothing a
/// punch relies on expires while it runs even when a side stops re-sending.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(25);

/// A birthday spray ends this long before the deadline, so that the holder's next round (at most
/// [`ROUND_INTERVAL`] or one round at the rate cap) and the answer can still arrive.
pub const SPRAY_TAIL: Duration = Duration::from_secs(1);

/// Default packet budget per side: the default timeout at the default rate.
pub const DEFAULT_MAX_PACKETS: u32 = 10_000;

/// Default socket budget per side: twice
/// [`BIRTHDAY_SOCKETS`](crate::core::punch::birthday::BIRTHDAY_SOCKETS), half the 1024 descriptors of a
/// default `ulimit -n`.
pub const DEFAULT_MAX_SOCKETS: u32 = 512;

/// How the two ends look for a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Each end aims at one known port.
    Direct,
    /// At least one side fans out over a sequential NAT's predicted ports.
    Fanout,
    /// A random NAT holds many sockets while the other side sprays random ports.
    Birthday,
    /// Not tried: no strategy has a sane chance within the budget.
    Refused,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Direct => "direct",
            Strategy::Fanout => "fanout",
            Strategy::Birthday => "birthday",
            Strategy::Refused => "refused",
        }
    }
}

/// The user's knobs (`natlens listen`/`call` flags) and the budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PunchOptions {
    /// `--fanout K`: far ports this end aims at (fan-out flows or birthday requests); `None`
    /// sizes it from the facts.
    pub fanout: Option<u32>,
    /// `--delta D`: the far NAT's step, replacing the one it announced.
    pub delta: Option<i32>,
    /// `--preset-delta D`: the far NAT steps by `D` from the port its server saw.
    pub preset_delta: Option<i32>,
    /// `--punch-timeout`, clamped to [`MAX_TIMEOUT`].
    pub timeout: Duration,
    /// `--rate`: packets per second per side, at least 1.
    pub rate: u32,
    /// `--force`: try a refused pair anyway.
    pub force: bool,
    pub max_packets: u32,
    pub max_sockets: u32,
}

impl Default for PunchOptions {
    fn default() -> Self {
        PunchOptions {
            fanout: None,
            delta: None,
            preset_delta: None,
            timeout: DEFAULT_TIMEOUT,
            rate: DEFAULT_RATE,
            force: false,
            max_packets: DEFAULT_MAX_PACKETS,
            max_sockets: DEFAULT_MAX_SOCKETS,
        }
    }
}

/// Everything the planner reads.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub role: Role,
    pub transport: Transport,
    pub call_id: u64,
    /// This end's facts as sent, with `observed` filled in from the login answer.
    pub own: &'a NatFacts,
    /// The peer's facts as the call delivered them (`observed` set by the server).
    pub peer: &'a NatFacts,
    pub options: &'a PunchOptions,
}

/// A local socket a side opens before its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalSocket {
    /// The socket whose public port this side's facts announced, the one the peer aims at on a
    /// fixed NAT. natlens punches from the fingerprint's mapping socket, whose public port the
    /// fingerprint measured over the punch transport (the login may have been over TCP).
    Session,
    /// A new socket, bound before the start (binding costs no port; sending does).
    Fresh,
}

/// One packet of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Send {
    /// Time from the side's own start signal.
    pub at: Duration,
    /// Index into [`SidePlan::sockets`].
    pub socket: usize,
    pub to: SocketAddr,
    /// Index of `to`'s port in [`SidePlan::predicted_ports`].
    pub target: usize,
}

/// One side's half of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct SidePlan {
    pub role: Role,
    pub sockets: Vec<LocalSocket>,
    /// The far NAT's ports this side aims at, in the order it first sends to them.
    pub predicted_ports: Vec<u16>,
    /// How many of them the first round aims at; a fan-out adds as many each round after.
    pub first_round: usize,
    /// The public ports this side's own flows should take, in order, at their most likely
    /// offset: on a symmetric sequential NAT its own destination `k` leaves from `p + k·d`.
    /// Empty when they cannot be predicted.
    pub own_ports: Vec<u16>,
    /// Bindings this side's own NAT creates for the punch (ports it consumes) if it runs to
    /// the end; a punch that connects early stops sooner.
    pub new_mappings: u32,
    /// Every send, in time order; the schedule stops early once connected.
    pub sends: Vec<Send>,
    /// The far port this side aims at is the far side's port mapping.
    pub aims_at_port_mapping: bool,
}

impl SidePlan {
    fn idle(role: Role) -> Self {
        SidePlan {
            role,
            sockets: Vec::new(),
            predicted_ports: Vec::new(),
            first_round: 0,
            own_ports: Vec::new(),
            new_mappings: 0,
            sends: Vec::new(),
            aims_at_port_mapping: false,
        }
    }
}

/// The plan of one call.
#[derive(Debug, Clone, PartialEq)]
pub struct PunchPlan {
    pub strategy: Strategy,
    /// The rule that chose the strategy, or why the pair is refused.
    pub reason: String,
    pub transport: Transport,
    /// This end's role.
    pub role: Role,
    pub call_id: u64,
    /// The peer's public address as its server saw it: only packets from its IP count.
    pub peer: Option<SocketAddr>,
    /// Probability of connecting under the plan's own model (offsets within the predicted
    /// uncertainty; for a refused pair, what `--force` would give).
    pub expected_success: f64,
    pub timeout: Duration,
    pub rate: u32,
    pub max_packets: u32,
    pub max_sockets: u32,
    pub caller: SidePlan,
    pub callee: SidePlan,
}

impl PunchPlan {
    /// This end's half.
    pub fn local(&self) -> &SidePlan {
        self.side(self.role)
    }

    /// What this end expects the peer to do.
    pub fn remote(&self) -> &SidePlan {
        self.side(self.role.peer())
    }

    /// For each far port this end aims at (its `predicted_ports`), how long after the peer's
    /// start signal the peer's own fan-out opens the flow that should take that port on its
    /// NAT: flow `k` of the peer leaves from `own_ports[k]` (its step apart from the next),
    /// one flow per interval at the rate; a port before the first is taken as opened at once,
    /// one past the last after all of them. Empty when the peer's own ports are not predicted.
    /// A TCP end that delivers full-TTL SYNs into the peer's fan-out paces each by this, so
    /// that none reaches the far NAT before the flow it is meant to meet.
    pub fn far_opened(&self) -> Vec<Duration> {
        let own = &self.remote().own_ports;
        let Some(&first) = own.first() else {
            return Vec::new();
        };
        let step = match own.get(1) {
            Some(&second) if second != first => i64::from(second) - i64::from(first),
            _ => 0,
        };
        let last = i64::try_from(own.len() - 1).unwrap_or(i64::MAX);
        let interval = Duration::from_secs_f64(1.0 / f64::from(self.rate.max(1)));
        self.local()
            .predicted_ports
            .iter()
            .map(|&port| {
                let index = if step == 0 {
                    0
                } else {
                    // Counted in steps, rounded up: a port between two flows' is opened by
                    // the later.
                    let offset = (i64::from(port) - i64::from(first)) * step.signum();
                    let step = step.abs();
                    (offset + step - 1).div_euclid(step).clamp(0, last + 1)
                };
                interval.saturating_mul(u32::try_from(index).unwrap_or(u32::MAX))
            })
            .collect()
    }

    /// When the callee sends its first round again (its "sync rounds"), from its start signal:
    /// half a relay and one relay after it answered. The callee's first requests leave as it
    /// answers, one relay before the caller can start, so they reach the caller's NAT just as
    /// (or before) the caller's own first request opens it: an address-and-port-dependent filter
    /// drops them about half the time (the lab measured it; the sim's longer relay always),
    /// and the callee was then confirmed only by the caller's confirmation, a round trip later.
    /// A round sent `x` after the answer reaches the caller's NAT after the caller's first request
    /// left it whenever `x` plus the direct path's one way exceeds the relay: always for
    /// `x = relay`, and for `x = relay / 2` whenever the direct path is at least half as long
    /// as the way through the server (the usual case; in the lab both are equal). The caller
    /// echoes it at once, which confirms the callee one path round trip after it went out. A
    /// round that came too early is dropped by the far filter and costs nothing but its
    /// packets (it reuses the first round's flows: no new ports). `relay` is the answer's trip
    /// through the server to the caller, estimated by the callee as its own round trip to the
    /// server (half there, and the caller's half on from the server, taken as alike). Only for
    /// plans whose rounds repeat (direct, fan-out): a birthday spray does not repeat. None for
    /// the caller, for an unknown relay, or one so long the second round comes about as soon.
    pub fn sync_rounds(&self, relay: Option<Duration>) -> Vec<Duration> {
        let Some(relay) = relay else {
            return Vec::new();
        };
        let repeats = matches!(self.strategy, Strategy::Direct | Strategy::Fanout);
        if self.role == Role::Callee && repeats && relay <= MAX_SYNC_DELAY {
            vec![relay / 2, relay]
        } else {
            Vec::new()
        }
    }

    pub fn side(&self, role: Role) -> &SidePlan {
        match role {
            Role::Caller => &self.caller,
            Role::Callee => &self.callee,
        }
    }

    /// The `--dry-run` text: strategy, odds, then each side's sockets, ports and packets.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![
            format!("strategy: {} ({})", self.strategy.as_str(), self.reason),
            format!(
                "expected success: {:.1}% within {} s at {} packets/s",
                self.expected_success * 100.0,
                self.timeout.as_secs_f64(),
                self.rate
            ),
        ];
        for side in [&self.caller, &self.callee] {
            lines.push(describe_side(side, side.role == self.role));
        }
        lines
    }
}

fn describe_side(side: &SidePlan, local: bool) -> String {
    let fresh = side
        .sockets
        .iter()
        .filter(|s| **s == LocalSocket::Fresh)
        .count();
    let session = side.sockets.len() - fresh;
    let who = if local { "this end" } else { "the peer" };
    format!(
        "{} ({who}): {} session + {fresh} fresh sockets; aims at {} far ports {} first, up to \
         {} by rounds; at most {} new mappings, own ports {}; at most {} packets",
        side.role.as_str(),
        session,
        side.first_round,
        port_list(&side.predicted_ports[..side.first_round]),
        side.predicted_ports.len(),
        side.new_mappings,
        port_list(&side.own_ports),
        side.sends.len()
    )
}

/// The first few ports of a list, then an ellipsis.
fn port_list(ports: &[u16]) -> String {
    const SHOWN: usize = 8;
    let mut text: Vec<String> = ports.iter().take(SHOWN).map(u16::to_string).collect();
    if ports.len() > SHOWN {
        text.push("…".into());
    }
    if text.is_empty() {
        "-".into()
    } else {
        format!("[{}]", text.join(" "))
    }
}

/// Plans the punch. Both ends call this with their own role and get the same plan (unless
/// their options differ: an override shapes this end's half and only this end's expectations).
pub fn make_plan(input: &PlanInput<'_>) -> PunchPlan {
    let options = clamp(input.options);
    let own = SideModel::from_facts(input.own);
    let peer = SideModel::from_facts(input.peer).with_overrides(
        input.peer,
        options.delta,
        options.preset_delta,
    );
    let (caller, callee) = match input.role {
        Role::Caller => (own, peer),
        Role::Callee => (peer, own),
    };
    let mut plan = PunchPlan {
        strategy: Strategy::Refused,
        reason: String::new(),
        transport: input.transport,
        role: input.role,
        call_id: input.call_id,
        peer: input.peer.observed,
        expected_success: 0.0,
        timeout: options.timeout,
        rate: options.rate,
        max_packets: options.max_packets,
        max_sockets: options.max_sockets,
        caller: SidePlan::idle(Role::Caller),
        callee: SidePlan::idle(Role::Callee),
    };
    if let Some(reason) = unplannable(&caller, &callee) {
        plan.reason = reason;
        return plan;
    }
    let mut decision = decide(&caller, &callee, &options);
    apply_fanout_override(&mut decision, input.role, &options);
    if input.transport == Transport::Tcp {
        for_tcp(&mut decision, &options);
    }
    plan.expected_success = expected_success(&decision, &caller, &callee);
    plan.strategy = decision.strategy;
    plan.reason = decision.reason;
    if plan.strategy == Strategy::Refused {
        return plan;
    }
    let seed = input.call_id;
    plan.caller = side_plan(
        Role::Caller,
        decision.caller,
        &caller,
        &callee,
        &options,
        seed,
    );
    plan.callee = side_plan(
        Role::Callee,
        decision.callee,
        &callee,
        &caller,
        &options,
        seed,
    );
    plan
}

fn clamp(options: &PunchOptions) -> PunchOptions {
    PunchOptions {
        timeout: options.timeout.min(MAX_TIMEOUT),
        rate: options.rate.max(1),
        fanout: options.fanout.map(|k| k.max(1)),
        ..*options
    }
}

/// Why nothing can be planned at all, if so.
fn unplannable(caller: &SideModel, callee: &SideModel) -> Option<String> {
    if caller.address.is_none() || callee.address.is_none() {
        return Some("the server did not report both ends' public addresses".into());
    }
    let (a, b) = (caller.address?, callee.address?);
    (a.is_ipv4() != b.is_ipv4()).then(|| "one end has only IPv4, the other only IPv6".into())
}
