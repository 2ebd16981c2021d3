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
//! address-restricted cone) makes the pair `direct`: the other side just aims at that port.
//! Refused pairs run as a (hopeless, but bounded) blind spray with `--force`.
//!
//! The plan holds both sides' halves, so that each end knows what the other will send: sockets
//! to open, the far NAT's ports aimed at in order, the own ports its flows should take, and every
//! send with its time from the side's own start signal, paced by `--rate` and cut by the budget.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::core::punch::birthday::{self, BIRTHDAY_SOCKETS, TARGET_SUCCESS};
use crate::core::punch::fanout::{self, Aim, MAX_FANOUT};
use crate::core::punch::profile::{PortModel, SideModel, PORT_RANGE};
use crate::core::punch::Role;
use crate::core::Transport;
use crate::wire::natlens::NatFacts;

/// Default cap on packets per second per side: 50 times the contention LAB-NOTES measured
/// (20 new flows/s), so about one foreign flow slips into a 50-port fan-out; ~60-byte probes at
/// 1000/s are 60 KB/s, nothing for any uplink or conntrack table.
pub const DEFAULT_RATE: u32 = 1000;

/// Time between rounds of the same flows: a little over a typical Internet round trip, so a
/// probe dropped by the far NAT (it had not opened yet) or lost on the way is retried about once
/// per RTT. Re-sending a flow reuses its binding: rounds cost no ports. A round longer than this
/// at the rate cap (256 holder sockets at 1000/s) stretches it.
pub const ROUND_INTERVAL: Duration = Duration::from_millis(200);

/// Default `--timeout`: the same 10 s a call may wait for its answer (`CALL_TIMEOUT`); a direct
/// punch connects within a few round trips, a birthday within about 1.5 s at the default rate.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long Linux keeps an unanswered UDP flow (`nf_conntrack_udp_timeout`, LAB-NOTES): the
/// probes of the first round must still hold their bindings when the last round goes out.
pub const UNREPLIED_UDP_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest `--timeout` honoured: five seconds inside [`UNREPLIED_UDP_TIMEOUT`], so nothing a
/// punch relies on expires while it runs even when a side stops re-sending.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(25);

/// A birthday spray ends this long before the deadline, so that the holder's next round (at most
/// [`ROUND_INTERVAL`] or one round at the rate cap) and the answer can still arrive.
pub const SPRAY_TAIL: Duration = Duration::from_secs(1);

/// Default packet budget per side: the default timeout at the default rate.
pub const DEFAULT_MAX_PACKETS: u32 = 10_000;

/// Default socket budget per side: twice [`BIRTHDAY_SOCKETS`], half the 1024 descriptors of a
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

/// The user's knobs (`natlens punch` flags) and the budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PunchOptions {
    /// `--fanout K`: far ports this end aims at (fan-out flows or birthday probes); `None`
    /// sizes it from the facts.
    pub fanout: Option<u32>,
    /// `--delta D`: the far NAT's step, replacing the one it announced.
    pub delta: Option<i32>,
    /// `--preset-delta D`: the far NAT steps by `D` from the port its server saw.
    pub preset_delta: Option<i32>,
    /// `--timeout`, clamped to [`MAX_TIMEOUT`].
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
    /// The socket logged in to the server: on a fixed NAT its public port is the one the server
    /// saw and the peer aims at.
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

/// One destination of one socket: a flow (a binding on a symmetric NAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flow {
    socket: usize,
    to: SocketAddr,
    /// Index of `to`'s port in the side's predicted ports.
    target: usize,
}

/// What one side does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// A fixed far port or a fan-out over far indices ([`fanout::pairing`]) in the first
    /// round, growing by that many flows a round up to `grow_to`.
    Aim { aim: Aim, grow_to: u32 },
    /// Open this fixed side's filter toward the far address: send to the far side's likeliest
    /// port (it will usually be dropped there; it is the far side's packets that matter).
    Nudge,
    /// `sockets` fresh sockets, socket `m` re-sending to far index `m mod indices`.
    Hold { sockets: u32, indices: u32 },
    /// `probes` distinct random far ports, once each.
    Spray { probes: u32 },
}

struct Decision {
    strategy: Strategy,
    reason: String,
    caller: Part,
    callee: Part,
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
    if let Some(reason) = unplannable(input, &caller, &callee) {
        plan.reason = reason;
        return plan;
    }
    let mut decision = decide(&caller, &callee, &options);
    apply_fanout_override(&mut decision, input.role, &options);
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
fn unplannable(input: &PlanInput<'_>, caller: &SideModel, callee: &SideModel) -> Option<String> {
    if input.transport == Transport::Tcp {
        return Some("TCP punching (simultaneous open) is not planned yet; use UDP".into());
    }
    if caller.address.is_none() || callee.address.is_none() {
        return Some("the server did not report both ends' public addresses".into());
    }
    let (a, b) = (caller.address?, callee.address?);
    (a.is_ipv4() != b.is_ipv4()).then(|| "one end has only IPv4, the other only IPv6".into())
}

/// An aim that grows, round after round, up to [`MAX_FANOUT`] flows: offsets beyond the
/// predicted uncertainty (a slow relay, a burst of other flows) are still reached, a little
/// later, and the stride argument holds for any length. Ports are only spent while no echo
/// has come back.
fn growing(aim: Aim) -> Part {
    let grow_to = match aim {
        Aim::Port => 1,
        Aim::Indices { flows, .. } => flows.max(MAX_FANOUT),
    };
    Part::Aim { aim, grow_to }
}

fn decide(a: &SideModel, b: &SideModel, options: &PunchOptions) -> Decision {
    use PortModel::{Fixed, Random, Sequential};
    let decision = |strategy, reason: &str, caller, callee| Decision {
        strategy,
        reason: reason.into(),
        caller,
        callee,
    };
    match (a.ports, b.ports) {
        (Fixed { .. }, Fixed { .. }) => decision(
            Strategy::Direct,
            "both NATs keep one public port per socket: each end aims at the other's",
            growing(Aim::Port),
            growing(Aim::Port),
        ),
        _ if a.is_open() => decision(
            Strategy::Direct,
            "the caller's NAT admits any port of an address it has sent to: the callee aims at it",
            Part::Nudge,
            growing(Aim::Port),
        ),
        _ if b.is_open() => decision(
            Strategy::Direct,
            "the callee's NAT admits any port of an address it has sent to: the caller aims at it",
            growing(Aim::Port),
            Part::Nudge,
        ),
        (Random, Fixed { .. }) => birthday(Role::Caller, options),
        (Fixed { .. }, Random) => birthday(Role::Callee, options),
        (Random, Random) => blind(a, b, options),
        (Random, Sequential { .. }) | (Sequential { .. }, Random) => blind(a, b, options),
        _ => {
            let (aim_a, aim_b) = fanout::pairing(a, b, false);
            decision(
                Strategy::Fanout,
                "predictable ports: fan out over the sequential side's predicted ports, \
                 strides 1 and 2 where both sides' flows move",
                growing(aim_a),
                growing(aim_b),
            )
        }
    }
}

/// The random side (`holder`) holds sockets; the fixed side sprays.
fn birthday(holder: Role, options: &PunchOptions) -> Decision {
    let sockets = BIRTHDAY_SOCKETS.min(options.max_sockets).max(1);
    let probes =
        birthday::probes_for(TARGET_SUCCESS, sockets, PORT_RANGE).min(spray_budget(options));
    let (hold, spray) = (
        Part::Hold {
            sockets,
            indices: 1,
        },
        Part::Spray { probes },
    );
    let (caller, callee) = match holder {
        Role::Caller => (hold, spray),
        Role::Callee => (spray, hold),
    };
    Decision {
        strategy: Strategy::Birthday,
        reason: format!(
            "the {}'s NAT picks random ports: it holds {sockets} sockets aimed at the {}'s one \
             port while the {} sprays {probes} random ports",
            holder.as_str(),
            holder.peer().as_str(),
            holder.peer().as_str(),
        ),
        caller,
        callee,
    }
}

/// Probes a spray may send: the packet budget, and the time before [`SPRAY_TAIL`].
fn spray_budget(options: &PunchOptions) -> u32 {
    let seconds = options.timeout.saturating_sub(SPRAY_TAIL).as_secs_f64();
    let by_time = (seconds * f64::from(options.rate)).floor() as u32;
    by_time.min(options.max_packets).max(1)
}

/// Random against random, or against a symmetric sequential NAT: refused unless forced; forced,
/// both sides send blind within the budget.
fn blind(a: &SideModel, b: &SideModel, options: &PunchOptions) -> Decision {
    let probes = spray_budget(options);
    let sockets = BIRTHDAY_SOCKETS.min(options.max_sockets).max(1);
    let (caller, callee, why) = match (a.ports, b.ports) {
        (PortModel::Random, PortModel::Random) => (
            Part::Spray { probes },
            Part::Spray { probes },
            "both NATs pick ports at random: a probe meets one only if both guesses are right",
        ),
        (PortModel::Random, _) => (
            Part::Hold {
                sockets,
                indices: b.uncertainty() + 1,
            },
            Part::Spray { probes },
            "the caller's NAT picks random ports and the callee's gives every destination a new \
             one: a birthday spray has no single port to find",
        ),
        _ => (
            Part::Spray { probes },
            Part::Hold {
                sockets,
                indices: a.uncertainty() + 1,
            },
            "the callee's NAT picks random ports and the caller's gives every destination a new \
             one: a birthday spray has no single port to find",
        ),
    };
    let strategy = if options.force {
        Strategy::Birthday
    } else {
        Strategy::Refused
    };
    let advice = if options.force {
        "forced"
    } else {
        "use --force to try anyway, or a relay"
    };
    Decision {
        strategy,
        reason: format!("{why}; {advice}"),
        caller,
        callee,
    }
}

/// `--fanout K` replaces this end's number of far ports: fan-out flows (at most
/// [`MAX_FANOUT`]) or spray probes (within the spray budget).
fn apply_fanout_override(decision: &mut Decision, role: Role, options: &PunchOptions) {
    let Some(k) = options.fanout else { return };
    let part = match role {
        Role::Caller => &mut decision.caller,
        Role::Callee => &mut decision.callee,
    };
    *part = match *part {
        Part::Aim {
            aim: Aim::Indices { stride, .. },
            ..
        } => Part::Aim {
            aim: Aim::Indices {
                flows: k.min(MAX_FANOUT),
                stride,
            },
            grow_to: k.min(MAX_FANOUT),
        },
        Part::Spray { .. } => Part::Spray {
            probes: k.min(spray_budget(options)),
        },
        other => other,
    };
}

fn expected_success(decision: &Decision, a: &SideModel, b: &SideModel) -> f64 {
    match (decision.caller, decision.callee) {
        (
            Part::Aim {
                aim: aim_a,
                grow_to: to_a,
            },
            Part::Aim {
                aim: aim_b,
                grow_to: to_b,
            },
        ) => fanout::coverage(a, grown(aim_a, to_a), b, grown(aim_b, to_b)),
        (Part::Nudge, _) | (_, Part::Nudge) => 1.0,
        (Part::Spray { probes: pa }, Part::Spray { probes: pb }) => {
            birthday::blind_pair_success(pa, pb, PORT_RANGE)
        }
        (Part::Hold { sockets, indices }, Part::Spray { probes })
        | (Part::Spray { probes }, Part::Hold { sockets, indices }) => {
            if indices == 1 {
                birthday::success(sockets, probes, PORT_RANGE)
            } else {
                // Every holder socket aimed at the right index has one chance in N.
                birthday::success(1, sockets, PORT_RANGE)
            }
        }
        _ => 0.0,
    }
}

/// An aim at its full length.
fn grown(aim: Aim, grow_to: u32) -> Aim {
    match aim {
        Aim::Indices { stride, .. } => Aim::Indices {
            flows: grow_to,
            stride,
        },
        Aim::Port => Aim::Port,
    }
}

/// The seed of a side's spray: both ends derive it from the call ID, so both know the ports.
fn spray_seed(call_id: u64, role: Role) -> u64 {
    let salt = match role {
        Role::Caller => 0x6361_6c6c_6572,
        Role::Callee => 0x6361_6c6c_6565,
    };
    call_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt
}

/// One side's half from its part: sockets, flows in first-round order, then the paced schedule.
fn side_plan(
    role: Role,
    part: Part,
    own: &SideModel,
    far: &SideModel,
    options: &PunchOptions,
    call_id: u64,
) -> SidePlan {
    let far_ip = far.address.expect("checked by unplannable").ip();
    let own_fixed = matches!(own.ports, PortModel::Fixed { .. });
    let one_socket = if own_fixed {
        LocalSocket::Session
    } else {
        LocalSocket::Fresh
    };
    let mut first_round = None;
    let (sockets, flows, repeat): (Vec<LocalSocket>, Vec<(usize, u16)>, bool) = match part {
        Part::Aim { aim, grow_to } => {
            first_round = Some(aim.flows() as usize);
            let ports = aim_ports(aim, grow_to, far, own_fixed);
            (vec![one_socket], ports, true)
        }
        Part::Nudge => (
            vec![one_socket],
            likeliest(far).into_iter().map(|p| (0, p)).collect(),
            true,
        ),
        Part::Hold { sockets, indices } => {
            let sockets = sockets.min(options.max_sockets);
            let flows = (0..sockets)
                .filter_map(|m| Some((m as usize, far.port_at(m % indices.max(1))?)))
                .collect();
            (vec![LocalSocket::Fresh; sockets as usize], flows, true)
        }
        Part::Spray { probes } => {
            let ports = birthday::spray_ports(spray_seed(call_id, role), probes, PORT_RANGE);
            (
                vec![one_socket],
                ports.into_iter().map(|p| (0, p)).collect(),
                false,
            )
        }
    };
    let mut predicted_ports = Vec::new();
    let mut index: HashMap<u16, usize> = HashMap::new();
    let flows: Vec<Flow> = flows
        .into_iter()
        .map(|(socket, port)| {
            let target = *index.entry(port).or_insert_with(|| {
                predicted_ports.push(port);
                predicted_ports.len() - 1
            });
            Flow {
                socket,
                to: SocketAddr::new(far_ip, port),
                target,
            }
        })
        .collect();
    SidePlan {
        role,
        own_ports: own_ports(own, &flows),
        new_mappings: new_mappings(own, &flows),
        first_round: flows[..first_round.unwrap_or(flows.len()).min(flows.len())]
            .iter()
            .map(|f| f.target + 1)
            .max()
            .unwrap_or(0),
        sockets,
        predicted_ports,
        sends: schedule(&flows, first_round.unwrap_or(flows.len()), repeat, options),
    }
}

/// Far ports for an aim grown to `grow_to` flows: the fixed port, or `port_at(stride·f)` for
/// each flow (ports that would leave the port space are skipped). A fixed side's destinations
/// all leave from one port, so their order is free: in the first round the far side's most
/// likely index goes first, then outward (the later one first on a tie, since other hosts'
/// flows only ever push ports on). A side whose own port moves with each destination must keep
/// flow `f` on index `stride·f`.
fn aim_ports(aim: Aim, grow_to: u32, far: &SideModel, own_fixed: bool) -> Vec<(usize, u16)> {
    let Aim::Indices { flows, stride } = aim else {
        return far.port_at(0).into_iter().map(|p| (0, p)).collect();
    };
    let mut order: Vec<u32> = match far.ports {
        PortModel::Sequential { expected, .. } if own_fixed => likely_first(flows, expected),
        _ => (0..flows).collect(),
    };
    order.extend(flows..grow_to);
    order
        .into_iter()
        .filter_map(|f| far.port_at(f.checked_mul(stride)?))
        .map(|p| (0, p))
        .collect()
}

/// `0..flows` ordered `center, center + 1, center − 1, center + 2, …`.
fn likely_first(flows: u32, center: u32) -> Vec<u32> {
    let center = i64::from(center.min(flows.saturating_sub(1)));
    let mut order = Vec::with_capacity(flows as usize);
    for d in 0..=i64::from(flows) {
        for k in [center + d, center - d] {
            if (0..i64::from(flows)).contains(&k) && (d > 0 || order.is_empty()) {
                order.push(k as u32);
            }
        }
    }
    order
}

/// The far side's most likely port for a first flow.
fn likeliest(far: &SideModel) -> Option<u16> {
    match far.ports {
        PortModel::Fixed { port } => Some(port),
        PortModel::Sequential { expected, .. } => far.port_at(expected),
        PortModel::Random => far.address.map(|a| a.port()),
    }
}

/// The own public port of each flow at the most likely offset: the fan-out's own destinations
/// `k = 0, 1, …` take `p + k·d` on a symmetric sequential NAT.
fn own_ports(own: &SideModel, flows: &[Flow]) -> Vec<u16> {
    match own.ports {
        PortModel::Fixed { port } => vec![port],
        PortModel::Sequential {
            expected,
            per_destination: true,
            ..
        } => (0..flows.len() as u32)
            .map_while(|f| own.port_at(expected + f))
            .collect(),
        PortModel::Sequential { expected, .. } => own.port_at(expected).into_iter().collect(),
        PortModel::Random => Vec::new(),
    }
}

/// Bindings the side's own NAT creates: none on a fixed NAT (the session binding serves every
/// destination), one per socket on an address-dependent one (one peer address), else one per
/// distinct (socket, destination).
fn new_mappings(own: &SideModel, flows: &[Flow]) -> u32 {
    let per_address = matches!(
        own.ports,
        PortModel::Sequential {
            per_destination: false,
            ..
        }
    );
    let mut keys: Vec<(usize, u16)> = flows
        .iter()
        .map(|f| (f.socket, if per_address { 0 } else { f.to.port() }))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    match own.ports {
        PortModel::Fixed { .. } => 0,
        _ => keys.len() as u32,
    }
}

/// Paces the flows at the rate cap, round after round (if `repeat`) every [`ROUND_INTERVAL`] or
/// one round's length, whichever is longer, until the timeout or the packet budget. Round `r`
/// opens flows up to `(r + 1)·first_round` (new ones first, so the fan-out grows without
/// waiting), then sends the older ones again: re-sending reuses their bindings.
fn schedule(flows: &[Flow], first_round: usize, repeat: bool, options: &PunchOptions) -> Vec<Send> {
    let gap = Duration::from_secs(1) / options.rate;
    let budget = options.max_packets as usize;
    let step = first_round.max(1);
    let mut sends = Vec::new();
    let mut start = Duration::ZERO;
    for r in 0.. {
        let open = flows.len().min(step * (r + 1));
        let old = flows.len().min(step * r);
        let round = flows[old..open].iter().chain(&flows[..old]);
        if start >= options.timeout || flows.is_empty() {
            break;
        }
        for (k, flow) in round.enumerate() {
            let at = start + gap * k as u32;
            if at >= options.timeout || sends.len() >= budget {
                return sends;
            }
            sends.push(Send {
                at,
                socket: flow.socket,
                to: flow.to,
                target: flow.target,
            });
        }
        if !repeat {
            break;
        }
        start += ROUND_INTERVAL.max(gap * open as u32);
    }
    sends
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::nat_model::DEFAULT_BINDING_TIMEOUT;
    use crate::core::punch::birthday::probes_for;
    use crate::core::punch::fanout::MAX_FANOUT;
    use crate::core::punch::handshake::LINGER;
    use crate::core::punch::profile::{DRIFT_WINDOW, PORT_RANGE};
    use crate::wire::natlens::{Dependence, NatProfile, PortPattern, Transports};

    use Dependence::{AddressAndPortDependent as Apd, EndpointIndependent as Ei};

    /// Facts as an end with this NAT would send them.
    fn facts(kind: &str, ip: [u8; 4]) -> NatFacts {
        let profile = |mapping, filtering, allocation, noise| {
            Some(NatProfile {
                mapping: Some(mapping),
                filtering: Some(filtering),
                allocation: Some(allocation),
                foreign_flows_per_second: noise,
            })
        };
        let observed = Some(SocketAddr::from((ip, 40000)));
        let transports = Transports {
            udp: true,
            tcp: false,
        };
        let (delta, predicted_ports, profile) = match kind {
            "cone" => (
                None,
                vec![40000],
                profile(Ei, Apd, PortPattern::Preserving, 0),
            ),
            "full" => (
                None,
                vec![40000],
                profile(Ei, Ei, PortPattern::Preserving, 0),
            ),
            "seq" => (
                Some(2),
                vec![40010, 40012, 40008],
                profile(Apd, Apd, PortPattern::Sequential, 20),
            ),
            "random" => (None, vec![], profile(Apd, Apd, PortPattern::Random, 0)),
            _ => unreachable!(),
        };
        NatFacts {
            observed,
            transports,
            delta,
            predicted_ports,
            profile,
        }
    }

    fn plan_with(caller: &str, callee: &str, role: Role, options: &PunchOptions) -> PunchPlan {
        let (a, b) = (
            facts(caller, [198, 51, 100, 1]),
            facts(callee, [198, 51, 100, 2]),
        );
        let (own, peer) = match role {
            Role::Caller => (&a, &b),
            Role::Callee => (&b, &a),
        };
        make_plan(&PlanInput {
            role,
            transport: Transport::Udp,
            call_id: 99,
            own,
            peer,
            options,
        })
    }

    fn default_plan(caller: &str, callee: &str) -> PunchPlan {
        plan_with(caller, callee, Role::Caller, &PunchOptions::default())
    }

    /// One row: strategy, then per side (sockets, first-round far ports, all far ports, new
    /// mappings at most).
    type Row = (
        &'static str,
        &'static str,
        Strategy,
        [(usize, usize, usize, u32); 2],
    );

    #[test]
    fn plan_table() {
        let h = BIRTHDAY_SOCKETS as usize;
        let n = probes_for(TARGET_SUCCESS, BIRTHDAY_SOCKETS, PORT_RANGE) as usize;
        // seq: expected 1 (40010 is one step above 40008), U = 1 + 8 + 2 = 11.
        let rows: [Row; 12] = [
            (
                "cone",
                "cone",
                Strategy::Direct,
                [(1, 1, 1, 0), (1, 1, 1, 0)],
            ),
            (
                "cone",
                "full",
                Strategy::Direct,
                [(1, 1, 1, 0), (1, 1, 1, 0)],
            ),
            (
                "full",
                "seq",
                Strategy::Direct,
                [(1, 1, 1, 0), (1, 1, 1, 1)],
            ),
            (
                "random",
                "full",
                Strategy::Direct,
                [(1, 1, 1, 1), (1, 1, 1, 0)],
            ),
            (
                "cone",
                "seq",
                Strategy::Fanout,
                [(1, 12, 256, 0), (1, 1, 1, 1)],
            ),
            (
                "seq",
                "cone",
                Strategy::Fanout,
                [(1, 1, 1, 1), (1, 12, 256, 0)],
            ),
            // Equal uncertainty: the caller steps by 2 (11 + 11 + 1), the callee by 1.
            (
                "seq",
                "seq",
                Strategy::Fanout,
                [(1, 23, 256, 256), (1, 34, 256, 256)],
            ),
            (
                "random",
                "cone",
                Strategy::Birthday,
                [(h, 1, 1, h as u32), (1, n, n, 0)],
            ),
            (
                "cone",
                "random",
                Strategy::Birthday,
                [(1, n, n, 0), (h, 1, 1, h as u32)],
            ),
            (
                "random",
                "random",
                Strategy::Refused,
                [(0, 0, 0, 0), (0, 0, 0, 0)],
            ),
            (
                "seq",
                "random",
                Strategy::Refused,
                [(0, 0, 0, 0), (0, 0, 0, 0)],
            ),
            (
                "random",
                "seq",
                Strategy::Refused,
                [(0, 0, 0, 0), (0, 0, 0, 0)],
            ),
        ];
        for (caller, callee, strategy, sides) in rows {
            let plan = default_plan(caller, callee);
            let name = format!("{caller}×{callee}");
            assert_eq!(plan.strategy, strategy, "{name}: {}", plan.reason);
            for (side, want) in [&plan.caller, &plan.callee].into_iter().zip(sides) {
                let got = (
                    side.sockets.len(),
                    side.first_round,
                    side.predicted_ports.len(),
                    side.new_mappings,
                );
                assert_eq!(got, want, "{name} {:?}", side.role);
            }
            let other = plan_with(caller, callee, Role::Callee, &PunchOptions::default());
            assert_eq!(
                (&other.caller, &other.callee),
                (&plan.caller, &plan.callee),
                "{name}"
            );
            assert_eq!(other.expected_success, plan.expected_success, "{name}");
        }
    }

    #[test]
    fn a_symmetric_side_accounts_for_the_ports_its_own_fan_out_takes() {
        let plan = default_plan("seq", "seq");
        // The caller steps by 2 through the callee's indices: 40008, 40012, 40016, …
        assert_eq!(&plan.caller.predicted_ports[..3], [40008, 40012, 40016]);
        // Its own destination k leaves from 40010 + k·2 (most likely offset 1 from 40008).
        assert_eq!(&plan.caller.own_ports[..3], [40010, 40012, 40014]);
        assert_eq!(
            plan.caller.own_ports.len(),
            plan.caller.predicted_ports.len()
        );
        // The callee steps by 1 through the caller's.
        assert_eq!(&plan.callee.predicted_ports[..3], [40008, 40010, 40012]);
        assert_eq!(plan.expected_success, 1.0);
        // A fixed side's flows all leave from its session port, most likely target first.
        let plan = default_plan("cone", "seq");
        assert_eq!(plan.caller.sockets, [LocalSocket::Session]);
        assert_eq!(plan.caller.own_ports, [40000]);
        assert_eq!(
            &plan.caller.predicted_ports[..4],
            [40010, 40012, 40008, 40014]
        );
    }

    #[test]
    fn sends_are_paced_repeated_and_cut_by_the_budget() {
        let plan = default_plan("cone", "seq");
        let sends = &plan.caller.sends;
        let gap = Duration::from_secs(1) / DEFAULT_RATE;
        assert!(sends.windows(2).all(|w| w[1].at - w[0].at >= gap));
        // Round two starts one ROUND_INTERVAL after round one: 12 new destinations, then the
        // first 12 again.
        assert_eq!(sends[12].at, ROUND_INTERVAL);
        assert_eq!(sends[12].target, 12);
        assert_eq!(sends[24].to, sends[0].to);
        assert!(sends.iter().all(|s| s.at < DEFAULT_TIMEOUT));
        // It grows by 12 a round to all 256, whose round (256 ms at 1000/s) outlasts 200 ms.
        let last = sends.last().unwrap();
        assert_eq!(sends.iter().map(|s| s.target).max(), Some(255));
        assert!(
            last.at > DEFAULT_TIMEOUT - Duration::from_millis(300),
            "{last:?}"
        );
        let tight = PunchOptions {
            max_packets: 30,
            rate: 10,
            ..PunchOptions::default()
        };
        let plan = plan_with("cone", "seq", Role::Caller, &tight);
        assert_eq!(plan.caller.sends.len(), 30);
        // 12 packets at 10/s take 1.2 s: rounds stretch to fit.
        assert_eq!(plan.caller.sends[12].at, Duration::from_millis(1200));
        // --fanout caps the growth too.
        let capped = PunchOptions {
            fanout: Some(5),
            ..PunchOptions::default()
        };
        let plan = plan_with("cone", "seq", Role::Caller, &capped);
        assert_eq!(plan.caller.predicted_ports.len(), 5);
        assert_eq!(plan.caller.sends.len(), 5 * 50);
        // A spray goes out once.
        let plan = default_plan("cone", "random");
        let sprays = probes_for(TARGET_SUCCESS, BIRTHDAY_SOCKETS, PORT_RANGE) as usize;
        assert_eq!(plan.caller.sends.len(), sprays);
        assert!(plan.expected_success >= TARGET_SUCCESS);
    }

    #[test]
    fn refusals_say_why_and_what_force_would_give() {
        let plan = default_plan("random", "random");
        assert!(plan.reason.contains("--force"), "{}", plan.reason);
        assert!(plan.expected_success < 0.03, "{}", plan.expected_success);
        assert!(plan.caller.sends.is_empty() && plan.callee.sends.is_empty());
        let forced = PunchOptions {
            force: true,
            ..PunchOptions::default()
        };
        let plan = plan_with("seq", "random", Role::Caller, &forced);
        assert_eq!(plan.strategy, Strategy::Birthday);
        assert!(plan.expected_success < 0.01);
        assert!(plan.caller.sends.len() <= DEFAULT_MAX_PACKETS as usize);
        assert_eq!(plan.callee.sockets.len(), BIRTHDAY_SOCKETS as usize);
        let mut tcp = facts("cone", [198, 51, 100, 1]);
        let peer = facts("cone", [198, 51, 100, 2]);
        let input = |own: &NatFacts, transport| {
            make_plan(&PlanInput {
                role: Role::Caller,
                transport,
                call_id: 1,
                own,
                peer: &peer,
                options: &PunchOptions::default(),
            })
        };
        assert_eq!(input(&tcp, Transport::Tcp).strategy, Strategy::Refused);
        tcp.observed = None;
        let plan = input(&tcp, Transport::Udp);
        assert!(plan.reason.contains("public addresses"), "{}", plan.reason);
    }

    #[test]
    fn a_smaller_fan_out_lowers_the_odds_and_the_dry_run_says_so() {
        let options = PunchOptions {
            fanout: Some(6),
            ..PunchOptions::default()
        };
        let plan = plan_with("cone", "seq", Role::Caller, &options);
        assert_eq!(plan.caller.predicted_ports.len(), 6);
        // Offsets 0..=11 equally likely, 6 covered.
        assert_eq!(plan.expected_success, 0.5);
        let text = plan.describe().join("\n");
        for needle in [
            "strategy: fanout",
            "expected success: 50.0%",
            "caller (this end)",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
        let plan = plan_with("cone", "random", Role::Caller, &options);
        assert_eq!(plan.caller.predicted_ports.len(), 6);
        assert!(plan.expected_success < 0.03);
    }

    #[test]
    fn overrides_reshape_the_far_sequence() {
        let options = PunchOptions {
            preset_delta: Some(1),
            ..PunchOptions::default()
        };
        // A random peer read with a preset delta is aimed at like a sequential one.
        let plan = plan_with("cone", "random", Role::Caller, &options);
        assert_eq!(plan.strategy, Strategy::Fanout);
        assert_eq!(plan.caller.predicted_ports[0], 40001);
    }

    /// Every timing constant against the others (tailscale `TestReportTimeouts`).
    #[test]
    fn timeouts_fit_together() {
        // Rounds retry several times before the default deadline.
        assert!(ROUND_INTERVAL * 10 <= DEFAULT_TIMEOUT);
        // No binding a punch relies on expires while it runs.
        assert!(DEFAULT_TIMEOUT <= MAX_TIMEOUT);
        assert!(MAX_TIMEOUT < UNREPLIED_UDP_TIMEOUT);
        assert!(UNREPLIED_UDP_TIMEOUT < DEFAULT_BINDING_TIMEOUT);
        assert!(ROUND_INTERVAL < UNREPLIED_UDP_TIMEOUT);
        // Lingering covers several of the peer's rounds and ends well inside a timeout.
        assert!(LINGER >= ROUND_INTERVAL * 5);
        assert!(LINGER < DEFAULT_TIMEOUT);
        // A birthday spray sized for TARGET_SUCCESS fits before the spray tail at the default
        // rate, and the holder's round fits in the tail.
        let sprays = probes_for(TARGET_SUCCESS, BIRTHDAY_SOCKETS, PORT_RANGE);
        let spray_time = Duration::from_secs(1) / DEFAULT_RATE * sprays;
        assert!(spray_time + SPRAY_TAIL <= DEFAULT_TIMEOUT);
        let holder_round = Duration::from_secs(1) / DEFAULT_RATE * BIRTHDAY_SOCKETS;
        assert!(holder_round.max(ROUND_INTERVAL) * 2 <= SPRAY_TAIL);
        // The packet budget does not cut a default-rate run short.
        assert!(
            u128::from(DEFAULT_MAX_PACKETS)
                >= DEFAULT_TIMEOUT.as_millis() * u128::from(DEFAULT_RATE) / 1000
        );
        const { assert!(BIRTHDAY_SOCKETS <= DEFAULT_MAX_SOCKETS) };
        // A full fan-out goes out well inside the drift window it was sized for.
        assert!(Duration::from_secs(1) / DEFAULT_RATE * MAX_FANOUT <= DRIFT_WINDOW);
    }
}
