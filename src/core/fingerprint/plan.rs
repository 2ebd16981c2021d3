//! The probe plan as data (after tailscale netcheck's `probePlan`): which probes to send, from
//! which local socket, to which server address, when, how often and how long to wait, under one
//! deadline. The [`schedule`](super::schedule) runs it against the clock; the shell only does
//! the IO; the classifier reads the observations. Being data, the plan is tested as a table.
//!
//! A fingerprint runs in two steps. The discovery probe (primary address, mapping socket) tells
//! whether the server is in RFC 5780 full mode (OTHER-ADDRESS), the public address and the RTT;
//! [`make_plan`] then sizes everything else from that answer. The plan starts as soon as the
//! discovery answer is in:
//!
//! 1. at 0: the mapping tests (the mapping socket toward the three other server addresses), the
//!    filtering tests (over TCP only the control: its connection later carries the
//!    CHANGE-REQUESTs the server answers with a crafted SYN, after the samples) and the hairpin
//!    probe, which are every flow the fingerprint opens besides the samples; then, in the same
//!    instant and after them, the first burst of allocation samples, each from a fresh socket;
//! 2. at [`burst_pause`]: the second burst.
//!
//! Inside a burst no other host's flow can slip in, so consecutive samples measure the NAT's
//! real step (docs/lab.md); the pause between the bursts lets other hosts' flows in, and the ports
//! they took measure contention. The samples go last so that the prediction is for the flow
//! that comes right after them: the shell must open every sample socket before the first burst
//! and nothing between the last sample and the punch.
//!
//! No step waits for an answer to an earlier one, because no answer changes what the next step
//! sends: a NAT maps a flow on its first packet (loss is almost always beyond it, and the lab's
//! loss sits outside conntrack), and a retransmission — ours over UDP, the kernel's SYN over TCP
//! — reuses that flow. What waits is the verdict: a probe is settled by its answer or given up
//! after its last attempt's wait, and a run ends when every probe is settled. Probes that are
//! normally answered end the run one round trip after they are sent; probes whose silence *is*
//! the verdict (filtering, hairpinning) send their attempts close together and wait one answer
//! window after the last, and the second burst is timed to be answered before that window
//! closes. Over UDP a full run therefore takes the discovery round trip plus one filtering wait
//! ([`answer_wait`] after the last of [`SILENCE_ATTEMPTS`] attempts); over TCP the second
//! burst's handshake and answer end it.

use std::net::SocketAddr;
use std::time::Duration;

use crate::core::fingerprint::observation::{Observation, Socket, Target};
use crate::core::Transport;
use crate::wire::attr::ChangeRequest;

/// RTT assumed until the discovery answer measures one: longer than most real paths, so that
/// the discovery probe is not retransmitted needlessly.
pub const DEFAULT_RTT: Duration = Duration::from_millis(250);

/// Measured RTTs are clamped to this: it bounds every wait (and so the deadline), and a server
/// further away than a second is too far to fingerprint anything useful through.
pub const MAX_RTT: Duration = Duration::from_secs(1);

/// Least time silence must last beyond one RTT before an attempt counts as unanswered. The
/// margin grows with the RTT (see [`margin`]); this floor covers server queueing and scheduling
/// on a busy host, which do not shrink with the path (loopback, a LAN), and is what the
/// filtering and hairpin verdicts, resting on silence, can least afford to get wrong.
pub const MIN_MARGIN: Duration = Duration::from_millis(50);

/// RFC 6298's initial RTO, after which the kernel retransmits a lost SYN: a TCP probe whose
/// silence only means loss waits long enough for one retransmission instead of retransmitting
/// itself (a new connection would be a new flow, and a new port on a symmetric NAT).
pub const TCP_SYN_RTO: Duration = Duration::from_secs(1);

/// Linux's floor for retransmitting data (`TCP_RTO_MIN`): a lossy TCP probe also waits for one
/// retransmission of its request or answer, which a lost SYN makes late.
pub const TCP_DATA_RTO: Duration = Duration::from_millis(200);

/// Linux's data RTO after a handshake that needed a SYN retransmission (RFC 6298 section 5.7:
/// no valid RTT sample, so the RTO falls back to 3 s). A TCP mapping test whose SYN and then
/// request or answer were lost is answered only this long after its late handshake; the
/// mapping verdict needs every one of them (at 10% loss per link one went unanswered in one
/// `natlens nat` run of five, tests/lab_faults.rs), so mapping tests wait it out.
pub const TCP_DATA_RTO_AFTER_SYN_LOSS: Duration = Duration::from_secs(3);

/// Time between the attempts of a probe whose silence is the verdict (filtering, hairpinning).
/// Not an RTT apart: the run waits out the last attempt anyway, so attempts spread over RTTs
/// would only stretch it; a few milliseconds apart, one short burst of loss does not take all
/// of them.
pub const SILENCE_SPACING: Duration = Duration::from_millis(10);

/// UDP attempts for a probe whose silence only means loss (mapping tests, samples); a lost one
/// is retransmitted one answer window later, so it costs time only when loss happens. Three:
/// at 10% loss each way an attempt goes unanswered 19% of the time, so with two a mapping
/// verdict (three such probes) was missing in about one run in ten (tests/lab_faults.rs); with
/// three, 0.7% per probe.
pub const UDP_ATTEMPTS: u8 = 3;

/// UDP attempts for a probe whose silence is the verdict (CHANGE-REQUEST, hairpin) and for the
/// filtering control that makes that silence mean something: at 10% loss each way an attempt
/// goes unanswered 19% of the time, four in a row 0.13% of the time (three: 0.7%). Being
/// [`SILENCE_SPACING`] apart, each one more costs 10 ms.
pub const SILENCE_ATTEMPTS: u8 = 4;

/// What the pause between the bursts adds to the [`margin`]: with the 50 ms floor, 70 ms, more
/// than the 50 ms between the flows of a host opening 20 a second (docs/lab.md), with room for
/// that host's jitter.
pub const PAUSE_SLACK: Duration = Duration::from_millis(20);

/// TCP attempts: one connect; the kernel retransmits the SYN.
pub const TCP_ATTEMPTS: u8 = 1;

/// Allocation samples by default: seven steps, enough to outvote one or two noisy ones.
pub const DEFAULT_SAMPLES: u8 = 8;

/// Fewest samples that can show a step.
pub const MIN_SAMPLES: u8 = 2;

/// Most samples: every sample costs a port on a sequential NAT and a socket on the host.
pub const MAX_SAMPLES: u8 = 32;

/// The worst-case plan (MAX_RTT, MAX_SAMPLES) of either transport finishes within this: a user
/// waits for the fingerprint, and a punch built on it must follow while the ports still hold.
pub const MAX_DEADLINE: Duration = Duration::from_secs(10);

/// Most servers one fingerprint asks (`nat --server` given several times): each costs the
/// mapping socket one more flow, and they share the allocation samples.
pub const MAX_SERVERS: usize = 8;

/// What the user chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanConfig {
    /// Allocation samples, clamped to `MIN_SAMPLES..=MAX_SAMPLES`.
    pub samples: u8,
    /// Servers besides the primary (at most [`MAX_SERVERS`] in all; the rest are ignored). The
    /// mapping socket sends each a Binding at the plan's start (does its public address vary
    /// by destination?), and the samples go round robin over the primary and these, so that a
    /// NAT counting ports per destination shows in the samples.
    pub more_servers: Vec<SocketAddr>,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            samples: DEFAULT_SAMPLES,
            more_servers: Vec::new(),
        }
    }
}

impl PlanConfig {
    /// The servers besides the primary that the plan uses, each with its [`Target::Extra`].
    fn extra_servers(&self) -> impl Iterator<Item = (Target, SocketAddr)> + '_ {
        self.more_servers
            .iter()
            .take(MAX_SERVERS - 1)
            .enumerate()
            .map(|(i, &to)| (Target::Extra(i as u8), to))
    }
}

/// What the discovery answer told the planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discovery {
    pub primary: SocketAddr,
    /// OTHER-ADDRESS: the server runs in full mode (two IPs, two ports).
    pub other: Option<SocketAddr>,
    /// The mapping socket's public address (the hairpin target).
    pub public: Option<SocketAddr>,
    pub rtt: Option<Duration>,
}

impl Discovery {
    /// Reads the discovery observation; an unanswered one leaves everything unknown.
    pub fn from_observation(observation: &Observation) -> Self {
        let answer = observation.answer.as_ref();
        Discovery {
            primary: observation.to,
            other: answer.and_then(|a| a.other_address),
            public: observation.public(),
            rtt: observation.rtt(),
        }
    }
}

/// One probe to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub socket: Socket,
    /// First use of this socket: the NAT makes a new mapping for it.
    pub fresh: bool,
    pub target: Target,
    pub to: SocketAddr,
    pub change: ChangeRequest,
    /// When to send the first attempt, from the plan's start.
    pub at: Duration,
    /// Transmissions at most (UDP retransmits with the same transaction ID).
    pub attempts: u8,
    /// Time from one attempt to the next.
    pub interval: Duration,
    /// How long the last attempt waits for an answer before the probe is given up.
    pub wait: Duration,
}

impl Probe {
    /// When attempt `n` (from 0) goes out, from the plan's start.
    pub fn attempt_at(&self, n: u8) -> Duration {
        self.at + self.interval * u32::from(n)
    }

    /// When the probe is given up as unanswered, from the plan's start.
    pub fn gives_up_at(&self) -> Duration {
        self.attempt_at(self.attempts.saturating_sub(1)) + self.wait
    }

    /// The observation a shell fills in for this probe once it has sent it from `local`.
    pub fn observe(
        &self,
        transport: Transport,
        local: SocketAddr,
        sent_at: std::time::Instant,
    ) -> Observation {
        Observation {
            transport,
            socket: self.socket,
            target: self.target,
            change: self.change,
            local,
            to: self.to,
            sent_at,
            handshake: None,
            answer: None,
        }
    }
}

/// The probes after discovery, in send order, and when the whole plan ends at the latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub transport: Transport,
    pub probes: Vec<Probe>,
    pub deadline: Duration,
}

/// The RTT the waits are sized from: the measured one, clamped, or [`DEFAULT_RTT`].
pub(crate) fn sized(rtt: Option<Duration>) -> Duration {
    rtt.unwrap_or(DEFAULT_RTT).min(MAX_RTT)
}

/// How long silence must last beyond one RTT: half an RTT (paths vary more the longer they
/// are; RFC 6298 starts its RTO at three RTTs for a single sample, which a probe that is
/// retransmitted at once need not copy) but at least [`MIN_MARGIN`].
pub fn margin(rtt: Option<Duration>) -> Duration {
    (sized(rtt) / 2).max(MIN_MARGIN)
}

/// How long one attempt waits for its answer: a round trip plus the [`margin`]; over TCP one
/// more round trip for the handshake before the request can go (the RTT is a request/answer
/// round trip on both transports).
pub fn answer_wait(transport: Transport, rtt: Option<Duration>) -> Duration {
    let round_trips = match transport {
        Transport::Udp => 1,
        Transport::Tcp => 2,
    };
    sized(rtt) * round_trips + margin(rtt)
}

/// How long an attempt whose silence only means loss waits: the answer window, and over TCP
/// one SYN retransmission and one data retransmission on top (the kernel's, since a probe of
/// ours cannot retransmit without opening a new flow). Only a lossy run waits this long.
pub fn loss_wait(transport: Transport, rtt: Option<Duration>) -> Duration {
    match transport {
        Transport::Udp => answer_wait(transport, rtt),
        Transport::Tcp => answer_wait(transport, rtt) + TCP_SYN_RTO + TCP_DATA_RTO,
    }
}

/// Time from the first burst to the second: long enough to let other hosts' flows in between
/// the bursts, where they show as a gap (see [`PAUSE_SLACK`]), and short enough that over UDP
/// the second burst is answered before the filtering and hairpin verdicts come, so it costs no
/// time of its own. Over TCP the second burst's answers end the run, so every millisecond here
/// is one of the run's.
pub fn burst_pause(rtt: Option<Duration>) -> Duration {
    margin(rtt) + PAUSE_SLACK
}

/// A probe whose silence only means loss: UDP retransmits it one wait after each attempt; TCP
/// sends it once and waits for the kernel's SYN retransmission.
fn lossy(transport: Transport, rtt: Option<Duration>, at: Duration) -> Probe {
    let wait = loss_wait(transport, rtt);
    Probe {
        socket: Socket::Mapping,
        fresh: false,
        target: Target::Primary,
        to: SocketAddr::from(([0, 0, 0, 0], 0)),
        change: ChangeRequest::default(),
        at,
        attempts: match transport {
            Transport::Udp => UDP_ATTEMPTS,
            Transport::Tcp => TCP_ATTEMPTS,
        },
        interval: wait,
        wait,
    }
}

/// A UDP probe whose silence is the verdict: [`SILENCE_ATTEMPTS`] attempts
/// [`SILENCE_SPACING`] apart, then one answer window.
fn silent(rtt: Option<Duration>) -> Probe {
    Probe {
        attempts: SILENCE_ATTEMPTS,
        interval: SILENCE_SPACING,
        wait: answer_wait(Transport::Udp, rtt),
        ..lossy(Transport::Udp, rtt, Duration::ZERO)
    }
}

/// The first probe of every fingerprint: a plain Binding to the primary address.
pub fn discovery_probe(transport: Transport, primary: SocketAddr) -> Probe {
    Probe {
        fresh: true,
        to: primary,
        ..lossy(transport, None, Duration::ZERO)
    }
}

/// When a TCP discovery opens another connection while no earlier one has answered (and none
/// finished its handshake in under [`TCP_SYN_RTO`]), from the discovery's start. A lost SYN or
/// SYN-ACK (19% of handshakes at 10% loss each way) costs the kernel's 1 s SYN retransmission,
/// and after a retransmitted handshake Linux starts the data with a 3 s RTO (RFC 6298 section
/// 5.7), so one more lost request or answer used to land past the discovery wait. A hedge half
/// a second in starts a fresh handshake with the short data RTO; the second covers a hedge
/// that was unlucky too. Each hedge sent costs one port on a sequential NAT, but before the
/// allocation samples, which are a burst of their own and measure the step from each other.
pub const TCP_DISCOVERY_HEDGES: [Duration; 2] =
    [Duration::from_millis(500), Duration::from_millis(1500)];

/// The connections of a TCP discovery: `probe` first, then one per [`TCP_DISCOVERY_HEDGES`]
/// that starts at least one [`TCP_SYN_RTO`] before the probe is given up (a later one could not
/// get through a lost SYN in time either). Every one gives up when `probe` does; the shell
/// skips a hedge once an earlier connection answered or shook hands quickly.
pub fn tcp_discovery_connections(probe: &Probe) -> Vec<Probe> {
    let gives_up = probe.gives_up_at();
    let mut connections = vec![*probe];
    for hedge in TCP_DISCOVERY_HEDGES {
        let at = probe.at + hedge;
        if at + TCP_SYN_RTO > gives_up {
            break;
        }
        connections.push(Probe {
            at,
            attempts: 1,
            interval: gives_up - at,
            wait: gives_up - at,
            ..*probe
        });
    }
    connections
}

/// Everything after discovery (see the module doc for the order and why).
pub fn make_plan(transport: Transport, config: &PlanConfig, discovery: &Discovery) -> Plan {
    let rtt = discovery.rtt;
    let mut probes = Vec::new();
    if let Some(other) = discovery.other {
        probes.extend(mapping_probes(transport, rtt, discovery.primary, other));
        match transport {
            Transport::Udp => probes.extend(filtering_probes(rtt, discovery.primary)),
            Transport::Tcp => probes.push(tcp_filtering_control(rtt, discovery.primary)),
        }
    }
    probes.extend(extra_server_probes(transport, config, rtt));
    if let Some(public) = discovery.public {
        probes.push(hairpin_probe(transport, rtt, public));
    }
    probes.extend(sample_probes(transport, config, rtt, discovery.primary));
    let deadline = probes
        .iter()
        .map(Probe::gives_up_at)
        .max()
        .unwrap_or_default();
    Plan {
        transport,
        probes,
        deadline,
    }
}

/// RFC 5780 §4.3: the mapping socket (already used toward the primary) toward the other three.
fn mapping_probes(
    transport: Transport,
    rtt: Option<Duration>,
    primary: SocketAddr,
    other: SocketAddr,
) -> Vec<Probe> {
    [Target::AltPort, Target::AltIp, Target::AltBoth]
        .into_iter()
        .filter_map(|target| {
            let probe = lossy(transport, rtt, Duration::ZERO);
            // Over TCP: one connect, and the kernel's slow retransmission after a lost SYN
            // (see TCP_DATA_RTO_AFTER_SYN_LOSS). Only a lossy run waits this long.
            let wait = match transport {
                Transport::Udp => probe.wait,
                Transport::Tcp => probe.wait - TCP_DATA_RTO + TCP_DATA_RTO_AFTER_SYN_LOSS,
            };
            Some(Probe {
                target,
                to: target.resolve(primary, other)?,
                interval: wait,
                wait,
                ..probe
            })
        })
        .collect()
}

/// The RTT another server's probes are sized for: it may be further away than the primary,
/// whose RTT alone was measured, so no less than [`DEFAULT_RTT`].
fn far_rtt(rtt: Option<Duration>) -> Option<Duration> {
    Some(sized(rtt).max(DEFAULT_RTT))
}

/// The mapping socket toward every other server the user named: a different public address
/// from a server at another IP means the mapping depends on the destination, whether or not
/// any server speaks RFC 5780. Waited for like a mapping test.
fn extra_server_probes(
    transport: Transport,
    config: &PlanConfig,
    rtt: Option<Duration>,
) -> Vec<Probe> {
    config
        .extra_servers()
        .map(|(target, to)| {
            let probe = lossy(transport, far_rtt(rtt), Duration::ZERO);
            let wait = match transport {
                Transport::Udp => probe.wait,
                Transport::Tcp => probe.wait - TCP_DATA_RTO + TCP_DATA_RTO_AFTER_SYN_LOSS,
            };
            Probe {
                target,
                to,
                interval: wait,
                wait,
                ..probe
            }
        })
        .collect()
}

/// RFC 5780 §4.4 from a fresh socket: a plain control (proves answers get through at all), then
/// "change IP and port" and "change port". All go to the primary, so the NAT only ever saw the
/// primary from this socket. The control is sent like the others: its loss would void the
/// verdict as surely as a lost CHANGE-REQUEST answer would falsify it.
fn filtering_probes(rtt: Option<Duration>, primary: SocketAddr) -> Vec<Probe> {
    let changes = [(false, false), (true, true), (false, true)];
    changes
        .into_iter()
        .enumerate()
        .map(|(i, (change_ip, change_port))| Probe {
            socket: Socket::Filtering,
            fresh: i == 0,
            to: primary,
            change: ChangeRequest {
                change_ip,
                change_port,
            },
            ..silent(rtt)
        })
        .collect()
}

/// RFC 5382's filtering test over TCP needs a connection of its own to the primary: the mapping
/// socket's port already has connections to the server's other addresses, whose conntrack
/// entries would let the server's crafted SYNs in whatever the filtering. This fresh one is
/// the control (the path works at all) and, once the samples are taken, carries the
/// CHANGE-REQUESTs (see `tcp_filtering`): no new flow after the samples.
fn tcp_filtering_control(rtt: Option<Duration>, primary: SocketAddr) -> Probe {
    Probe {
        socket: Socket::Filtering,
        fresh: true,
        to: primary,
        ..lossy(Transport::Tcp, rtt, Duration::ZERO)
    }
}

/// RFC 5780 §4.5: a fresh socket sends to the mapping socket's public address; silence means
/// no hairpinning. Over TCP the shell must also listen on the mapping socket's local port
/// (SO_REUSEPORT) for it to arrive; a hairpinned SYN never crosses the WAN link, so the probe
/// waits for the handshake and the request but not for a SYN retransmission.
fn hairpin_probe(transport: Transport, rtt: Option<Duration>, public: SocketAddr) -> Probe {
    let probe = match transport {
        Transport::Udp => silent(rtt),
        Transport::Tcp => Probe {
            wait: answer_wait(transport, rtt),
            interval: answer_wait(transport, rtt),
            ..lossy(transport, rtt, Duration::ZERO)
        },
    };
    Probe {
        socket: Socket::Hairpin,
        fresh: true,
        target: Target::OwnPublic,
        to: public,
        ..probe
    }
}

/// The allocation samples: two back-to-back bursts [`burst_pause`] apart (one burst when there
/// are too few samples for each half to show a step), sample `i` to server `i` mod the number
/// of servers (the primary first).
fn sample_probes(
    transport: Transport,
    config: &PlanConfig,
    rtt: Option<Duration>,
    primary: SocketAddr,
) -> Vec<Probe> {
    let count = config.samples.clamp(MIN_SAMPLES, MAX_SAMPLES);
    let first_burst = if count >= 4 { count.div_ceil(2) } else { count };
    let servers: Vec<(Target, SocketAddr)> = std::iter::once((Target::Primary, primary))
        .chain(config.extra_servers())
        .collect();
    (0..count)
        .map(|i| {
            let at = if i < first_burst {
                Duration::ZERO
            } else {
                burst_pause(rtt)
            };
            let (target, to) = servers[usize::from(i) % servers.len()];
            let sized_for = match target {
                Target::Primary => rtt,
                _ => far_rtt(rtt),
            };
            Probe {
                socket: Socket::Sample(i),
                fresh: true,
                target,
                to,
                ..lossy(transport, sized_for, at)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn discovery(full: bool, public: bool, rtt_ms: Option<u64>) -> Discovery {
        Discovery {
            primary: addr("192.0.2.1:3478"),
            other: full.then(|| addr("192.0.2.2:3479")),
            public: public.then(|| addr("198.51.100.7:40000")),
            rtt: rtt_ms.map(MS),
        }
    }

    /// One row of the expected plan: socket, fresh, target, change (ip, port), at (ms),
    /// attempts, interval (ms), gives up at (ms).
    type Row = (Socket, bool, Target, (bool, bool), u64, u8, u64, u64);

    fn rows(plan: &Plan) -> Vec<Row> {
        let ms = |d: Duration| d.as_millis() as u64;
        plan.probes
            .iter()
            .map(|p| {
                let change = (p.change.change_ip, p.change.change_port);
                let (at, interval, end) = (ms(p.at), ms(p.interval), ms(p.gives_up_at()));
                (
                    p.socket, p.fresh, p.target, change, at, p.attempts, interval, end,
                )
            })
            .collect()
    }

    use Socket::{Filtering, Hairpin, Mapping, Sample};
    use Target::{AltBoth, AltIp, AltPort, OwnPublic, Primary};

    #[test]
    fn plan_table() {
        const NO: (bool, bool) = (false, false);
        struct Case {
            name: &'static str,
            transport: Transport,
            discovery: Discovery,
            samples: u8,
            want: Vec<Row>,
            deadline_ms: u64,
        }
        let cases = [
            Case {
                // 50 ms RTT: margin 50 ms, answer window 100 ms. Silence probes: attempts at 0,
                // 10, 20, 30, given up at 130; the second burst at 70 is answered at 120.
                // Lossy probes retransmit at 100 and 200 and give up at 300 (only when lost).
                name: "udp full mode",
                transport: Transport::Udp,
                discovery: discovery(true, true, Some(50)),
                samples: 4,
                want: vec![
                    (Mapping, false, AltPort, NO, 0, 3, 100, 300),
                    (Mapping, false, AltIp, NO, 0, 3, 100, 300),
                    (Mapping, false, AltBoth, NO, 0, 3, 100, 300),
                    (Filtering, true, Primary, NO, 0, 4, 10, 130),
                    (Filtering, false, Primary, (true, true), 0, 4, 10, 130),
                    (Filtering, false, Primary, (false, true), 0, 4, 10, 130),
                    (Hairpin, true, OwnPublic, NO, 0, 4, 10, 130),
                    (Sample(0), true, Primary, NO, 0, 3, 100, 300),
                    (Sample(1), true, Primary, NO, 0, 3, 100, 300),
                    (Sample(2), true, Primary, NO, 70, 3, 100, 370),
                    (Sample(3), true, Primary, NO, 70, 3, 100, 370),
                ],
                deadline_ms: 370,
            },
            Case {
                // No OTHER-ADDRESS: no mapping or filtering tests; 3 samples stay one burst.
                // Default RTT 250 ms: margin 125 ms, window 375 ms.
                name: "udp basic server, default rtt",
                transport: Transport::Udp,
                discovery: discovery(false, true, None),
                samples: 3,
                want: vec![
                    (Hairpin, true, OwnPublic, NO, 0, 4, 10, 405),
                    (Sample(0), true, Primary, NO, 0, 3, 375, 1125),
                    (Sample(1), true, Primary, NO, 0, 3, 375, 1125),
                    (Sample(2), true, Primary, NO, 0, 3, 375, 1125),
                ],
                deadline_ms: 1125,
            },
            Case {
                // TCP: no CHANGE-REQUEST in the plan (the filtering control only); one connect per probe. A lossy probe waits out the
                // handshake, its answer, one SYN RTO and one data RTO (2 × 50 + 50 + 1000 +
                // 200 ms); a mapping test, which the verdict needs, the 3 s data RTO after a
                // lost SYN instead of 200 ms (4150 ms); the hairpin probe, which never crosses
                // the WAN, only the first two (150 ms). The second burst goes at 70 ms, as over
                // UDP.
                name: "tcp full mode",
                transport: Transport::Tcp,
                discovery: discovery(true, true, Some(50)),
                samples: 5,
                want: vec![
                    (Mapping, false, AltPort, NO, 0, 1, 4150, 4150),
                    (Mapping, false, AltIp, NO, 0, 1, 4150, 4150),
                    (Mapping, false, AltBoth, NO, 0, 1, 4150, 4150),
                    (Filtering, true, Primary, NO, 0, 1, 1350, 1350),
                    (Hairpin, true, OwnPublic, NO, 0, 1, 150, 150),
                    (Sample(0), true, Primary, NO, 0, 1, 1350, 1350),
                    (Sample(1), true, Primary, NO, 0, 1, 1350, 1350),
                    (Sample(2), true, Primary, NO, 0, 1, 1350, 1350),
                    (Sample(3), true, Primary, NO, 70, 1, 1350, 1420),
                    (Sample(4), true, Primary, NO, 70, 1, 1350, 1420),
                ],
                deadline_ms: 4150,
            },
            Case {
                // Discovery unanswered: no public address, no RTT; samples clamp to 2.
                name: "nothing known",
                transport: Transport::Udp,
                discovery: discovery(false, false, None),
                samples: 0,
                want: vec![
                    (Sample(0), true, Primary, NO, 0, 3, 375, 1125),
                    (Sample(1), true, Primary, NO, 0, 3, 375, 1125),
                ],
                deadline_ms: 1125,
            },
            Case {
                // Loopback: the margin's floor sizes everything.
                name: "udp full mode, loopback",
                transport: Transport::Udp,
                discovery: discovery(true, true, Some(0)),
                samples: 2,
                want: vec![
                    (Mapping, false, AltPort, NO, 0, 3, 50, 150),
                    (Mapping, false, AltIp, NO, 0, 3, 50, 150),
                    (Mapping, false, AltBoth, NO, 0, 3, 50, 150),
                    (Filtering, true, Primary, NO, 0, 4, 10, 80),
                    (Filtering, false, Primary, (true, true), 0, 4, 10, 80),
                    (Filtering, false, Primary, (false, true), 0, 4, 10, 80),
                    (Hairpin, true, OwnPublic, NO, 0, 4, 10, 80),
                    (Sample(0), true, Primary, NO, 0, 3, 50, 150),
                    (Sample(1), true, Primary, NO, 0, 3, 50, 150),
                ],
                deadline_ms: 150,
            },
        ];
        for case in cases {
            let config = PlanConfig {
                samples: case.samples,
                ..PlanConfig::default()
            };
            let plan = make_plan(case.transport, &config, &case.discovery);
            assert_eq!(rows(&plan), case.want, "{}", case.name);
            assert_eq!(plan.deadline, MS(case.deadline_ms), "{}", case.name);
        }
    }

    #[test]
    fn more_servers_get_the_mapping_socket_and_the_samples_in_turn() {
        let (one, two) = (addr("198.51.100.20:3478"), addr("198.51.100.21:3478"));
        let primary = addr("192.0.2.1:3478");
        let config = PlanConfig {
            samples: 6,
            more_servers: vec![one, two],
        };
        for transport in [Transport::Udp, Transport::Tcp] {
            let plan = make_plan(transport, &config, &discovery(false, true, Some(50)));
            let asked: Vec<(Socket, bool, Target, SocketAddr, Duration)> = plan
                .probes
                .iter()
                .filter(|p| !matches!(p.socket, Sample(_) | Hairpin))
                .map(|p| (p.socket, p.fresh, p.target, p.to, p.at))
                .collect();
            assert_eq!(
                asked,
                [
                    (Mapping, false, Target::Extra(0), one, Duration::ZERO),
                    (Mapping, false, Target::Extra(1), two, Duration::ZERO),
                ],
                "{transport:?}"
            );
            let samples: Vec<(Target, SocketAddr)> = plan
                .probes
                .iter()
                .filter(|p| matches!(p.socket, Sample(_)))
                .map(|p| (p.target, p.to))
                .collect();
            let turn = [
                (Primary, primary),
                (Target::Extra(0), one),
                (Target::Extra(1), two),
            ];
            assert_eq!(samples, [turn, turn].concat(), "{transport:?}");
            // Another server may be further away than the primary: its probes wait at least
            // as long as for an unmeasured RTT.
            for probe in plan.probes.iter().filter(|p| p.to == one) {
                assert!(probe.wait >= answer_wait(transport, None), "{probe:?}");
            }
        }
        // Servers past MAX_SERVERS in all are left out.
        let many = PlanConfig {
            samples: 32,
            more_servers: (0..12)
                .map(|i| addr(&format!("198.51.100.{}:3478", 30 + i)))
                .collect(),
        };
        let plan = make_plan(Transport::Udp, &many, &discovery(false, true, Some(50)));
        let extra = |p: &&Probe| matches!(p.target, Target::Extra(_));
        let asked = plan
            .probes
            .iter()
            .filter(|p| p.socket == Mapping)
            .filter(extra);
        assert_eq!(asked.count(), MAX_SERVERS - 1);
        let used: std::collections::BTreeSet<SocketAddr> =
            plan.probes.iter().map(|p| p.to).collect();
        assert!(!used.contains(&addr("198.51.100.37:3478")));
    }

    #[test]
    fn probes_resolve_to_the_right_addresses() {
        let plan = make_plan(
            Transport::Udp,
            &PlanConfig::default(),
            &discovery(true, true, None),
        );
        let to = |socket, target| {
            plan.probes
                .iter()
                .find(|p| p.socket == socket && p.target == target)
                .unwrap()
                .to
        };
        assert_eq!(to(Mapping, AltPort), addr("192.0.2.1:3479"));
        assert_eq!(to(Mapping, AltIp), addr("192.0.2.2:3478"));
        assert_eq!(to(Mapping, AltBoth), addr("192.0.2.2:3479"));
        assert_eq!(to(Filtering, Primary), addr("192.0.2.1:3478"));
        assert_eq!(to(Hairpin, OwnPublic), addr("198.51.100.7:40000"));
        assert_eq!(to(Sample(7), Primary), addr("192.0.2.1:3478"));
    }

    /// The timeout constants fit together (tailscale's `TestReportTimeouts`).
    #[test]
    fn timeouts_fit_together() {
        // The slowest plan anyone can ask for still finishes within the deadline.
        let worst = PlanConfig {
            samples: u8::MAX,
            more_servers: (0..20)
                .map(|i| SocketAddr::from(([192, 0, 2, 100 + i], 3478)))
                .collect(),
        };
        for transport in [Transport::Udp, Transport::Tcp] {
            let slow = discovery(true, true, Some(60_000));
            let plan = make_plan(transport, &worst, &slow);
            assert!(
                plan.deadline <= MAX_DEADLINE,
                "{transport:?}: {:?}",
                plan.deadline
            );
            let samples = plan.probes.iter().filter(|p| matches!(p.socket, Sample(_)));
            assert_eq!(samples.count(), usize::from(MAX_SAMPLES));
        }
        for rtt in [Some(Duration::ZERO), Some(MS(50)), None, Some(MAX_RTT)] {
            let round_trip = sized(rtt);
            // A silent attempt is only declared lost after its answer could have come back,
            // with room for jitter.
            assert!(answer_wait(Transport::Udp, rtt) >= round_trip + MIN_MARGIN);
            assert!(answer_wait(Transport::Tcp, rtt) >= 2 * round_trip + MIN_MARGIN);
            // A TCP probe outlives one SYN retransmission, the handshake and its answer, and
            // one retransmission of the request or the answer.
            let tcp = TCP_SYN_RTO + TCP_DATA_RTO + 2 * round_trip;
            assert!(loss_wait(Transport::Tcp, rtt) > tcp);
            // The second burst is answered no later than the silence verdicts come, so it
            // never makes a UDP run longer...
            let silence = silent(rtt).gives_up_at();
            assert!(burst_pause(rtt) + round_trip <= silence, "{rtt:?}");
            // ...and the pause lets in at least one flow of a host opening 20 per second.
            assert!(burst_pause(rtt) > MS(50));
            // Closely spaced silence attempts: all of them fit inside one answer window.
            assert!(
                SILENCE_SPACING * u32::from(SILENCE_ATTEMPTS) < answer_wait(Transport::Udp, rtt)
            );
        }
        // The guess before measuring lies inside the clamp.
        assert!(DEFAULT_RTT <= MAX_RTT);
        // Silence gets more attempts than ordinary loss.
        const { assert!(SILENCE_ATTEMPTS > UDP_ATTEMPTS && UDP_ATTEMPTS > TCP_ATTEMPTS) };
        const { assert!(MIN_SAMPLES <= DEFAULT_SAMPLES && DEFAULT_SAMPLES <= MAX_SAMPLES) };
        // The binding timeout of the slowest NAT RFC 4787 allows (2 min) outlasts the plan, so
        // the mappings measured are still the ones a punch uses.
        assert!(MAX_DEADLINE < Duration::from_secs(120));
    }

    /// Every flow other than the samples opens before the first sample (in time, and in send
    /// order at the same instant), and the samples come in two bursts with nothing between.
    #[test]
    fn samples_open_the_last_flows() {
        for transport in [Transport::Udp, Transport::Tcp] {
            let plan = make_plan(
                transport,
                &PlanConfig::default(),
                &discovery(true, true, Some(80)),
            );
            let first = plan
                .probes
                .iter()
                .position(|p| matches!(p.socket, Sample(_)))
                .unwrap();
            let (others, samples) = plan.probes.split_at(first);
            assert!(samples.iter().all(|p| matches!(p.socket, Sample(_))));
            for probe in others {
                assert!(probe.at <= samples[0].at, "{transport:?} {probe:?}");
            }
            let times: Vec<Duration> = samples.iter().map(|p| p.at).collect();
            assert_eq!(
                times,
                [[Duration::ZERO; 4], [burst_pause(Some(MS(80))); 4]].concat()
            );
        }
    }

    #[test]
    fn tcp_discovery_hedges_start_early_enough_and_give_up_with_the_discovery() {
        let server: SocketAddr = "192.0.2.1:3478".parse().unwrap();
        let probe = Probe {
            attempts: 1,
            interval: Duration::from_secs(3),
            wait: Duration::from_secs(3),
            ..discovery_probe(Transport::Tcp, server)
        };
        let connections = tcp_discovery_connections(&probe);
        assert_eq!(connections.len(), 1 + TCP_DISCOVERY_HEDGES.len());
        for (c, hedge) in connections[1..].iter().zip(TCP_DISCOVERY_HEDGES) {
            assert_eq!(c.at, hedge);
            assert_eq!(c.gives_up_at(), probe.gives_up_at());
            assert!(c.fresh && c.socket == Socket::Mapping && c.to == server);
        }
        // A short wait leaves no room for a hedge to outlive a lost SYN.
        let short = Probe {
            interval: Duration::from_millis(1200),
            wait: Duration::from_millis(1200),
            ..probe
        };
        assert_eq!(tcp_discovery_connections(&short).len(), 1);
    }

    #[test]
    fn tcp_mapping_tests_outlive_the_slow_data_rto_after_a_lost_syn() {
        let primary: SocketAddr = "192.0.2.1:3478".parse().unwrap();
        let other: SocketAddr = "192.0.2.2:3479".parse().unwrap();
        let round_trip = Duration::from_millis(50);
        let rtt = Some(round_trip);
        for probe in mapping_probes(Transport::Tcp, rtt, primary, other) {
            assert!(probe.wait > TCP_SYN_RTO + TCP_DATA_RTO_AFTER_SYN_LOSS + 2 * round_trip);
        }
        for probe in mapping_probes(Transport::Udp, rtt, primary, other) {
            assert_eq!(probe.wait, loss_wait(Transport::Udp, rtt));
        }
    }
}
