//! The TCP punch, sans-IO: which SYN goes when and with what TTL, when our kernel connects,
//! which segment is adopted, when the punch gives up. The shell (`crate::io::punch_tcp`) owns
//! the raw socket, the kernel sockets, TCP_REPAIR and the RST guard, and carries out what this
//! machine says: send what [`TcpPunchMachine::poll_transmit`] gives, do what
//! [`TcpPunchMachine::poll_command`] asks, feed every segment the sniffer sees to
//! [`TcpPunchMachine::handle_segment`] and every kernel result to the other `handle_*`, and wake
//! at [`TcpPunchMachine::poll_timeout`]; [`TcpPunchMachine::outcome`] says when it is over.
//!
//! Per the plan's local half ([`TcpSpec`]), an end does one of six things:
//!
//! * **plain** simultaneous open: a listener and a kernel socket connecting to the likeliest
//!   far port (a direct plan, or no crafted SYNs for lack of privileges). On a direct plan the
//!   callee's kernel connects when the caller starts (its lag behind us), so that both SYNs
//!   leave together and cross between the two firewalls (or NATs), each through the hole the
//!   other's opened: one path round trip at both ends after the caller's start. When the peer
//!   fans out toward us, the kernel waits for the peer's first round to open its NAT (a SYN of
//!   ours arriving first meets no mapping, and the far router may answer it with an RST) and
//!   then keeps one socket to the deadline: its retransmissions keep the ISN that a crafted
//!   SYN of the peer's may have pinned in our NAT's entry.
//! * **fan out**: crafted low-TTL SYNs to every far port but the last, at the plan's rate, which
//!   open our NAT toward each without reaching the far one; the peer's SYN (or its SYN-ACK to
//!   one of ours) on any of those 4-tuples is adopted; the kernel connects to the last port once
//!   the fan-out is out (on a symmetric NAT of ours, the plan expects our flows to take their
//!   public ports in that order).
//! * **deliver** (the caller, when both ends fan out): crafted full-TTL SYNs to every far port,
//!   each once the peer's low-TTL fan-out has opened the flow it is aimed at
//!   ([`crate::core::punch::PunchPlan::far_opened`]), resent in rounds with backoff; the
//!   peer's SYN or SYN-ACK on any of them is adopted.
//! * a birthday's **hold** (the random side): kernel sockets connecting to the far ports at
//!   the rate, the first that connects wins (`tcp_birthday.rs`).
//! * a birthday's **spray** (the cone side): crafted full-TTL SYNs to every far port once,
//!   adopting the holder's answer.
//! * **listen** (a side whose gateway mapped its punched port, when the peer aims at the
//!   mapping): a kernel listener on the punched port, nothing sent, the peer's connection
//!   accepted until the deadline. A SYN of ours toward the peer could only hurt: the peer's
//!   flow in through the mapping would then clash in our NAT with the one ours opened. The
//!   peer aims at the mapped port with a plain `connect()`, its first once the listener
//!   should be up (our lag behind its start), and keeps that one socket to the deadline.
//!
//! RSTs from the far side are seen and ignored: an RST means that one flow met no entry
//! there, and the other flows go on (our own kernel's RSTs never leave: the RST guard).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::core::punch::plan::{PunchPlan, Strategy};
use crate::core::punch::Role;
use crate::wire::tcp_syn::SegmentKind;

use super::tcp_birthday::Holders;
use super::tcp_crafted::{CraftedSyns, Round};
use super::tcp_kernel::KernelOpen;

pub use super::tcp_crafted::{resend_pause, RESEND_FIRST, SPRAY_TTL};
pub use super::tcp_kernel::{ATTEMPT, BACKOFF_FIRST, BACKOFF_MAX};

/// Margin after the peer's fan-out should have left: its set-up (raw socket, RST guard)
/// between its start signal and its first SYN. Also what a listening peer is given to have
/// its listener up.
pub const PEER_FAN_OUT_MARGIN: Duration = Duration::from_millis(25);

/// This end's part in a TCP punch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpPart {
    /// Simultaneous open on the far ports, with a crafted low-TTL fan-out when there are
    /// several (direct and fan-out plans).
    Aim,
    /// A birthday's random side: this many kernel sockets connecting to the far ports.
    Hold { sockets: u32 },
    /// A birthday's fixed side: crafted full-TTL SYNs to every far port.
    Spray,
    /// A side the peer reaches through its port mapping: a listener on the punched port,
    /// nothing sent.
    Listen,
}

/// This end's part in `plan`: a birthday's holder opens one socket per planned socket, its
/// sprayer has one; a side with nothing to aim at that the peer reaches through its port
/// mapping listens; every other plan aims.
pub fn part_of(plan: &PunchPlan) -> TcpPart {
    let local = plan.local();
    match plan.strategy {
        _ if local.predicted_ports.is_empty() && plan.remote().aims_at_port_mapping => {
            TcpPart::Listen
        }
        Strategy::Birthday if local.sockets.len() > 1 => TcpPart::Hold {
            sockets: u32::try_from(local.sockets.len()).unwrap_or(u32::MAX),
        },
        Strategy::Birthday => TcpPart::Spray,
        _ => TcpPart::Aim,
    }
}

/// What the machine decides from: this end's half of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSpec {
    /// The far NAT's ports, in the plan's order (its `predicted_ports` for this end). The last
    /// one is where the kernel connects; the others get crafted SYNs, in order, first.
    pub far_ports: Vec<u16>,
    /// TTL / hop limit of the opening (low-TTL) crafted SYNs.
    pub syn_ttl: u8,
    /// Crafted SYNs (and holding sockets) per second at most.
    pub rate: u32,
    /// True when the peer's plan has it fan out crafted SYNs toward us: our kernel then keeps
    /// one connecting socket (same ISN on every retransmission) instead of a fresh one per
    /// second, because a crafted SYN that reached our NAT's entry before our SYN's answer pins
    /// the sequence numbers conntrack accepts there.
    pub peer_fans_out: bool,
    /// How many crafted SYNs the peer's plan sends (its far ports but one).
    pub peer_fan_out: u32,
    /// How many of those are the peer's first round (aimed at our likeliest ports; they leave
    /// first).
    pub peer_first_round: u32,
    /// How long after our start signal the peer starts: the callee's estimate of the relay
    /// that takes its answer to the caller; zero for the caller (the callee began a relay
    /// before it).
    pub peer_lag: Duration,
    /// Per far port (same order as `far_ports`), how long after its own start the peer's
    /// crafted fan-out opens that port's flow on its NAT (the port's place among the peer's
    /// own predicted flows, at the rate). Empty when unknown. A delivering end paces each SYN
    /// so that it cannot reach the far NAT before the flow it is meant to meet exists there:
    /// arriving first, it would meet no entry, draw the far router's RST and, worse, take the
    /// port the peer's flow was predicted to get.
    pub far_opened: Vec<Duration>,
    /// When both ends fan out (two symmetric NATs), one of them (the caller) delivers: it sends
    /// its own crafted SYNs at full TTL to every far port in the plan's order, each once the
    /// peer's low-TTL fan-out has opened the flow it is aimed at (`far_opened`), and the one
    /// that lands on a pair the peer opened is adopted there (SYN) and here (the peer's
    /// SYN-ACK). Every flow of ours can deliver, so the pair meets wherever noise put both
    /// sides' offsets (the strides argument of the fan-out), not only on one predicted pair.
    pub delivers: bool,
    /// What this end does: the fan-out punch, one half of a birthday, or listening on its
    /// mapped port.
    pub part: TcpPart,
    /// The peer only listens, on the port mapping this end aims at: our `connect()` waits
    /// until its listener should be up (`peer_lag` and a margin), since a SYN that came first
    /// would draw its host's RST.
    pub peer_listens: bool,
}

/// The relay a callee assumes when its fingerprint measured no round trip to the server.
pub const UNKNOWN_RELAY: Duration = Duration::from_millis(50);

impl TcpSpec {
    /// This end's half of `plan`. `server_rtt` is this end's round trip to the server: a
    /// callee's estimate of the relay that carries its answer to the caller (the caller
    /// starts that much later).
    pub fn for_plan(plan: &PunchPlan, syn_ttl: u8, server_rtt: Option<Duration>) -> TcpSpec {
        let (local, remote) = (plan.local(), plan.remote());
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        TcpSpec {
            far_ports: local.predicted_ports.clone(),
            syn_ttl,
            rate: plan.rate,
            peer_fans_out: remote.predicted_ports.len() > 1,
            peer_fan_out: count(remote.predicted_ports.len().saturating_sub(1)),
            peer_first_round: count(remote.first_round),
            peer_lag: match plan.role {
                Role::Callee => server_rtt.unwrap_or(UNKNOWN_RELAY),
                Role::Caller => Duration::ZERO,
            },
            far_opened: plan.far_opened(),
            // When both ends fan out (two symmetric NATs), the caller delivers.
            delivers: plan.role == Role::Caller
                && local.predicted_ports.len() > 1
                && remote.predicted_ports.len() > 1,
            part: part_of(plan),
            peer_listens: local.aims_at_port_mapping && remote.predicted_ports.is_empty(),
        }
    }

    /// The far ports crafted low-TTL SYNs open when this end fans out: all but the last (the
    /// kernel's, which a crafted SYN would race on its own 4-tuple).
    pub fn fan(&self) -> Vec<u16> {
        let Some((&last, rest)) = self.far_ports.split_last() else {
            return Vec::new();
        };
        rest.iter().copied().filter(|&p| p != last).collect()
    }

    /// True when the punch sends crafted SYNs (the shell then needs a raw socket and the RST
    /// guard); without them an aiming end falls back to plain simultaneous open.
    pub fn crafts(&self) -> bool {
        match self.part {
            TcpPart::Spray => true,
            TcpPart::Hold { .. } | TcpPart::Listen => false,
            TcpPart::Aim => !self.fan().is_empty(),
        }
    }

    /// When, after our start, a birthday's half begins: both halves together, once the caller
    /// has started (`peer_lag`, zero for the caller itself) and set up its raw socket and RST
    /// guard ([`PEER_FAN_OUT_MARGIN`]). Sooner, a callee's holding sockets reached the caller's
    /// host before its guard and drew RSTs, and a callee's spray reached the caller's NAT
    /// before the holding sockets had opened anything there.
    pub fn birthday_start(&self) -> Duration {
        self.peer_lag + PEER_FAN_OUT_MARGIN
    }

    /// How long after our start the first `syns` of the peer's crafted fan-out have left, at
    /// its rate (taken as ours), plus a margin.
    pub fn peer_fan_out_time(&self, syns: u32) -> Duration {
        let secs = f64::from(syns) / f64::from(self.rate.max(1));
        self.peer_lag + Duration::from_secs_f64(secs.min(5.0)) + PEER_FAN_OUT_MARGIN
    }

    /// Between two crafted SYNs (or holding sockets) at the rate.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / f64::from(self.rate.max(1)))
    }
}

/// A kernel socket of the punch, numbered by the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u32);

/// A TCP segment the sniffer saw from the peer's IP to our punched address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenSegment {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub kind: SegmentKind,
    pub seq: u32,
    pub ack: u32,
}

/// One crafted SYN: the far port it went to and the sequence space it opened (what a socket
/// adopting its 4-tuple continues from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynRecord {
    pub port: u16,
    pub isn: u32,
    /// Even: Linux 6.7+ reads the low bit of a TCP_TIMESTAMP value as "microseconds".
    pub tsval: u32,
}

/// A crafted SYN to send now, from our punched address (a resend is the same segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynTransmit {
    pub to: SocketAddr,
    pub ttl: u8,
    pub syn: SynRecord,
}

/// Where a kernel socket binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    /// The punched port, shared (SO_REUSEADDR, SO_REUSEPORT) with the listener.
    Punched,
    /// Any free port (a birthday's holding sockets).
    Any,
}

/// What the shell does for the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Listen on the punched port and report every connection accepted
    /// ([`TcpPunchMachine::handle_accepted`]).
    Listen,
    /// A non-blocking `connect()` from a new kernel socket; report how it ends
    /// ([`TcpPunchMachine::handle_connect`]).
    Connect {
        socket: SocketId,
        bind: Bind,
        to: SocketAddr,
    },
    /// Close the socket (in SYN_SENT this sends nothing and keeps the NAT's entry).
    Close { socket: SocketId },
    /// The socket's time is up: report whether its handshake is under way (SYN_RECV) with
    /// [`TcpPunchMachine::handle_socket_state`]; closing it then would send a FIN into it.
    CheckHandshaking { socket: SocketId },
}

/// How a kernel `connect()` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectResult {
    Connected,
    /// Refused, reset, unreachable, timed out, address still held: a later attempt may not
    /// meet it. (Failures retrying cannot fix end the punch in the shell.)
    Failed,
}

/// What made the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Won {
    /// A kernel socket's `connect()` completed.
    Connect(SocketId),
    /// The listener accepted the peer's connection from this address.
    Accept(SocketAddr),
    /// Adopt the 4-tuple of this crafted SYN, answering the peer's `segment`.
    Adopt {
        syn: SynRecord,
        segment: SeenSegment,
    },
}

/// How the punch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOutcome {
    Connected {
        won: Won,
        /// The far public port the connection reached.
        port_through: u16,
        /// Its index in the far ports.
        offset: Option<usize>,
        /// `connect()` attempts plus crafted SYNs.
        packets_sent: u32,
        /// `connect()` attempts.
        attempts: u32,
        /// A crafted SYN went out.
        crafted: bool,
        elapsed: Duration,
    },
    /// The deadline passed; `attempts` counts connects (or crafted SYNs when no kernel
    /// socket took part).
    TimedOut { attempts: u32 },
}

/// The TCP punch of one end.
#[derive(Debug)]
pub struct TcpPunchMachine {
    far_ports: Vec<u16>,
    peer_ip: IpAddr,
    start: Instant,
    deadline: Instant,
    kernel: Option<KernelOpen>,
    crafted: Option<CraftedSyns>,
    holders: Option<Holders>,
    commands: VecDeque<Command>,
    outcome: Option<TcpOutcome>,
}

impl TcpPunchMachine {
    /// The punch of `spec` toward `peer_ip`, from `start` to `deadline`. `crafting` says
    /// whether crafted SYNs can be sent (a raw socket and the RST guard); ISNs and timestamps
    /// come from `rng`.
    pub fn new(
        spec: &TcpSpec,
        peer_ip: IpAddr,
        start: Instant,
        deadline: Instant,
        crafting: bool,
        rng: &mut dyn RngCore,
    ) -> TcpPunchMachine {
        let mut machine = TcpPunchMachine {
            far_ports: spec.far_ports.clone(),
            peer_ip,
            start,
            deadline,
            kernel: None,
            crafted: None,
            holders: None,
            commands: VecDeque::new(),
            outcome: None,
        };
        match spec.part {
            TcpPart::Hold { sockets } => {
                let begin = machine.clipped(spec.birthday_start());
                machine.holders = Some(Holders::new(spec, peer_ip, sockets, begin));
            }
            TcpPart::Spray => {
                let round = Round::once(machine.clipped(spec.birthday_start()), Vec::new());
                machine.crafted = Some(CraftedSyns::new(
                    spec,
                    peer_ip,
                    &spec.far_ports,
                    SPRAY_TTL,
                    round,
                    rng,
                ));
            }
            TcpPart::Aim => machine.aim(spec, crafting, rng),
            TcpPart::Listen => machine.commands.push_back(Command::Listen),
        }
        machine.handle_timeout(start);
        machine
    }

    /// A bare simultaneous open toward `peer` from `start` to `deadline` (the shell's
    /// `SimOpen`): a listener when `listen`, kernel sockets living `lifetime` each, and
    /// adoption on the 4-tuples of crafted SYNs the caller already `sent`.
    pub fn simultaneous_open(
        peer: SocketAddr,
        listen: bool,
        lifetime: Duration,
        sent: &[SynRecord],
        start: Instant,
        deadline: Instant,
    ) -> TcpPunchMachine {
        let mut machine = TcpPunchMachine {
            far_ports: vec![peer.port()],
            peer_ip: peer.ip(),
            start,
            deadline,
            kernel: Some(KernelOpen::new(peer, lifetime, start)),
            crafted: (!sent.is_empty()).then(|| CraftedSyns::already_sent(peer, sent, start)),
            holders: None,
            commands: VecDeque::new(),
            outcome: None,
        };
        if listen {
            machine.commands.push_back(Command::Listen);
        }
        machine.handle_timeout(start);
        machine
    }

    /// An aiming end: plain, fan out or deliver (see the module docs).
    fn aim(&mut self, spec: &TcpSpec, crafting: bool, rng: &mut dyn RngCore) {
        let fan = spec.fan();
        let likeliest = spec
            .far_ports
            .first()
            .map(|&p| SocketAddr::new(self.peer_ip, p));
        let Some(likeliest) = likeliest else {
            self.outcome = Some(TcpOutcome::TimedOut { attempts: 0 });
            return;
        };
        if fan.is_empty() || !crafting {
            self.commands.push_back(Command::Listen);
            let (at, lifetime) = self.plain_connect(spec, fan.is_empty());
            self.kernel = Some(KernelOpen::new(likeliest, lifetime, at));
        } else if spec.delivers {
            let round = if spec.far_opened.len() == spec.far_ports.len() {
                let at = |&opened| spec.peer_lag + opened + PEER_FAN_OUT_MARGIN;
                Round::resent(self.start, spec.far_opened.iter().map(at).collect())
            } else {
                let at = self.clipped(spec.peer_fan_out_time(spec.peer_fan_out));
                Round::resent(at, Vec::new())
            };
            let ports = spec.far_ports.clone();
            let crafted = CraftedSyns::new(spec, self.peer_ip, &ports, SPRAY_TTL, round, rng);
            self.crafted = Some(crafted);
        } else {
            let round = Round::once(self.start, Vec::new());
            let ttl = spec.syn_ttl.max(1);
            let crafted = CraftedSyns::new(spec, self.peer_ip, &fan, ttl, round, rng);
            let last = *spec.far_ports.last().expect("a far port");
            let kernel = SocketAddr::new(self.peer_ip, last);
            self.crafted = Some(crafted.excluding(kernel));
            self.kernel = Some(KernelOpen::new(kernel, ATTEMPT, self.start));
        }
    }

    /// When a plain simultaneous open's kernel connects first, and how long each socket lives.
    /// `fan_empty`: the plan gives this end one far port (a direct plan, or the aiming side
    /// of a fan-out), as opposed to a fan-out it cannot craft.
    fn plain_connect(&self, spec: &TcpSpec, fan_empty: bool) -> (Instant, Duration) {
        let to_deadline = |at: Instant| (at, self.deadline - at);
        if spec.peer_listens {
            // One socket to the deadline: the kernel's own retransmissions keep its ISN, which
            // the peer's listener may already hold in SYN_RECV (a fresh socket's SYN with a
            // new ISN would only draw an ACK for the old one, and an RST, a second lost).
            to_deadline(self.clipped(spec.peer_lag + PEER_FAN_OUT_MARGIN))
        } else if fan_empty && spec.peer_fans_out {
            let first = spec.peer_first_round.min(spec.peer_fan_out);
            to_deadline(self.clipped(spec.peer_fan_out_time(first)))
        } else if fan_empty {
            // The peer connects at its own start, `peer_lag` after ours: connecting then, both
            // SYNs cross between the two firewalls (or NATs), each through the hole the
            // other's just opened, and both ends are connected one path round trip later.
            // Sooner, ours would reach the far side before its hole exists: dropped (we then
            // connect only through the peer's SYN, our SYN-ACK and its ACK, 1.5 round trips
            // after the peer's start), or, where the far filter already admits us, answered
            // with an RST by the peer's host, which fails our socket and races the peer's SYN.
            (self.clipped(spec.peer_lag), ATTEMPT)
        } else {
            (self.start, ATTEMPT)
        }
    }

    /// `after` from the start, but not past the deadline.
    fn clipped(&self, after: Duration) -> Instant {
        (self.start + after).min(self.deadline)
    }

    /// A crafted SYN due now, if any.
    pub fn poll_transmit(&mut self) -> Option<SynTransmit> {
        if self.outcome.is_some() {
            return None;
        }
        self.crafted.as_mut()?.poll_transmit()
    }

    /// Something for the shell to do, if any.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// When [`TcpPunchMachine::handle_timeout`] is due next (`None` once it is over).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.outcome.is_some() {
            return None;
        }
        let fanned = self.fanned();
        [
            Some(self.deadline),
            self.crafted.as_ref().and_then(CraftedSyns::next_due),
            self.kernel.as_ref().and_then(|k| k.next_due(fanned)),
            self.holders.as_ref().and_then(Holders::next_due),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The peer's public IP.
    pub fn peer_ip(&self) -> IpAddr {
        self.peer_ip
    }

    /// The outcome, once the punch is over.
    pub fn outcome(&self) -> Option<&TcpOutcome> {
        self.outcome.as_ref()
    }

    /// True once every crafted SYN of the first round is out: our kernel's `connect()` waits
    /// for it (a fan-out's flows take our NAT's ports first).
    fn fanned(&self) -> bool {
        self.crafted
            .as_ref()
            .is_none_or(CraftedSyns::first_round_out)
    }

    /// Time passes: SYNs and sockets that are due, attempts whose time is up, the deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outcome.is_some() {
            return;
        }
        if now >= self.deadline {
            self.outcome = Some(TcpOutcome::TimedOut {
                attempts: self.attempts(),
            });
            return;
        }
        if let Some(crafted) = &mut self.crafted {
            crafted.advance(now);
        }
        let fanned = self.fanned();
        if let Some(kernel) = &mut self.kernel {
            kernel.advance(now, fanned, &mut self.commands);
        }
        if let Some(holders) = &mut self.holders {
            holders.advance(now, &mut self.commands);
        }
    }

    /// A segment from the peer's IP to our punched address: the peer's SYN on one of our
    /// crafted 4-tuples, or its SYN-ACK answering one of our crafted SYNs, is adopted.
    /// Anything else (RSTs included) changes nothing.
    pub fn handle_segment(&mut self, now: Instant, segment: &SeenSegment) {
        if self.outcome.is_some() || segment.src.ip() != self.peer_ip {
            return;
        }
        let Some(crafted) = &self.crafted else {
            return;
        };
        if let Some(syn) = crafted.adoptable(segment) {
            let won = Won::Adopt {
                syn,
                segment: *segment,
            };
            self.finish(now, won, segment.src.port());
        }
    }

    /// A connection the listener accepted: the punch's when it comes from the peer's IP
    /// (through a full-cone NAT a stranger may reach the port too; the shell closes it).
    pub fn handle_accepted(&mut self, now: Instant, from: SocketAddr) {
        if self.outcome.is_none() && from.ip().to_canonical() == self.peer_ip.to_canonical() {
            self.finish(now, Won::Accept(from), from.port());
        }
    }

    /// How a `connect()` ended.
    pub fn handle_connect(&mut self, now: Instant, socket: SocketId, result: ConnectResult) {
        if self.outcome.is_some() {
            return;
        }
        let commands = &mut self.commands;
        let target = match (&mut self.kernel, &mut self.holders) {
            (Some(kernel), _) => kernel.handle_connect(now, socket, result, commands),
            (None, Some(holders)) => holders.handle_connect(socket, result, commands),
            (None, None) => None,
        };
        if let Some(port) = target {
            self.finish(now, Won::Connect(socket), port);
        }
    }

    /// Whether a socket whose time was up is in the middle of its handshake (SYN_RECV).
    pub fn handle_socket_state(&mut self, now: Instant, socket: SocketId, handshaking: bool) {
        if let Some(kernel) = &mut self.kernel {
            kernel.handle_state(now, socket, handshaking, &mut self.commands);
        }
    }

    /// Connects plus crafted SYNs so far.
    pub fn packets_sent(&self) -> u32 {
        let kernel = self.kernel.as_ref().map_or(0, KernelOpen::attempts);
        let holders = self.holders.as_ref().map_or(0, Holders::opened);
        let crafted = self.crafted.as_ref().map_or(0, CraftedSyns::sent);
        kernel + holders + crafted
    }

    /// What a timed-out punch reports as its attempts.
    fn attempts(&self) -> u32 {
        match (&self.kernel, &self.holders, &self.crafted) {
            (Some(kernel), _, _) => kernel.attempts(),
            (None, Some(holders), _) => holders.opened(),
            (None, None, Some(crafted)) => crafted.sent(),
            (None, None, None) => 0,
        }
    }

    fn finish(&mut self, now: Instant, won: Won, port_through: u16) {
        let attempts = self.kernel.as_ref().map_or(0, KernelOpen::attempts)
            + self.holders.as_ref().map_or(0, Holders::opened);
        self.outcome = Some(TcpOutcome::Connected {
            won,
            port_through,
            offset: self.far_ports.iter().position(|&p| p == port_through),
            packets_sent: self.packets_sent(),
            attempts,
            crafted: self.crafted.is_some(),
            elapsed: now.saturating_duration_since(self.start),
        });
    }
}
