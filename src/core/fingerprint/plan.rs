//! The probe plan as data (after tailscale netcheck's `probePlan`): which probes to send, from
//! which local socket, to which server address, when, and how long to wait, under one deadline.
//! The shell runs it; the classifier reads the observations. Being data, it is tested as a table.
//!
//! A fingerprint runs in two steps. The discovery probe (primary address, mapping socket) tells
//! whether the server is in RFC 5780 full mode (OTHER-ADDRESS), the public address and the RTT;
//! [`make_plan`] then sizes everything else from that answer:
//!
//! 1. at 0: the mapping tests (the mapping socket toward the three other server addresses), the
//!    filtering tests (UDP only: RFC 5780 CHANGE-REQUEST cannot work over TCP) and the hairpin
//!    probe, all on sockets opened before the allocation samples;
//! 2. then the allocation samples, each from a fresh socket, in two back-to-back bursts. Inside
//!    a burst no other host's flow can slip in, so consecutive samples measure the NAT's real
//!    step (LAB-NOTES); the pause between the bursts lets other hosts' flows in, and the ports they
//!    took measure contention. The samples go last so that the prediction is for the flow that
//!    comes right after them: the shell must open every sample socket before the first burst and
//!    nothing between the last sample and the punch.

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

/// How long silence must last beyond one RTT before an attempt counts as unanswered: covers
/// server queueing and scheduling jitter. The filtering verdict rests on silence, so its floor is
/// one round trip plus this wait.
pub const FILTER_WAIT: Duration = Duration::from_millis(100);

/// RFC 6298's initial RTO, after which the kernel retransmits a lost SYN: a TCP probe waits long
/// enough for one retransmission instead of retransmitting itself.
pub const TCP_SYN_RTO: Duration = Duration::from_secs(1);

/// UDP attempts for a probe whose silence only means loss (mapping tests, samples).
pub const UDP_ATTEMPTS: u8 = 2;

/// UDP attempts for a CHANGE-REQUEST probe, whose silence is the verdict: at 10% loss each way
/// three silent attempts happen by chance about 0.7% of the time.
pub const FILTER_ATTEMPTS: u8 = 3;

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

/// What the user chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanConfig {
    /// Allocation samples, clamped to `MIN_SAMPLES..=MAX_SAMPLES`.
    pub samples: u8,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            samples: DEFAULT_SAMPLES,
        }
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
    /// When to send it, from the plan's start.
    pub at: Duration,
    /// Transmissions at most (UDP retransmits with the same transaction ID).
    pub attempts: u8,
    /// How long each attempt waits for its answer before the next one (or giving up).
    pub wait: Duration,
}

impl Probe {
    /// When the probe is given up as unanswered, from the plan's start.
    pub fn gives_up_at(&self) -> Duration {
        self.at + self.wait * u32::from(self.attempts)
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
            answer: None,
        }
    }
}

/// The probes after discovery, in send order, and when the whole plan ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub transport: Transport,
    pub probes: Vec<Probe>,
    pub deadline: Duration,
}

/// How long one attempt waits: a round trip plus [`FILTER_WAIT`], plus one SYN retransmission
/// over TCP.
pub fn attempt_wait(transport: Transport, rtt: Option<Duration>) -> Duration {
    let rtt = rtt.unwrap_or(DEFAULT_RTT).min(MAX_RTT);
    match transport {
        Transport::Udp => rtt + FILTER_WAIT,
        Transport::Tcp => rtt + FILTER_WAIT + TCP_SYN_RTO,
    }
}

/// Attempts for a probe whose silence means only loss.
fn attempts(transport: Transport) -> u8 {
    match transport {
        Transport::Udp => UDP_ATTEMPTS,
        Transport::Tcp => TCP_ATTEMPTS,
    }
}

/// The first probe of every fingerprint: a plain Binding to the primary address.
pub fn discovery_probe(transport: Transport, primary: SocketAddr) -> Probe {
    Probe {
        socket: Socket::Mapping,
        fresh: true,
        target: Target::Primary,
        to: primary,
        change: ChangeRequest::default(),
        at: Duration::ZERO,
        attempts: attempts(transport),
        wait: attempt_wait(transport, None),
    }
}

/// Everything after discovery (see the module doc for the order and why).
pub fn make_plan(transport: Transport, config: &PlanConfig, discovery: &Discovery) -> Plan {
    let wait = attempt_wait(transport, discovery.rtt);
    let mut probes = Vec::new();
    if let Some(other) = discovery.other {
        probes.extend(mapping_probes(transport, discovery.primary, other, wait));
        if transport == Transport::Udp {
            probes.extend(filtering_probes(discovery.primary, wait));
        }
    }
    if let Some(public) = discovery.public {
        probes.push(hairpin_probe(transport, public, wait));
    }
    let start = probes
        .iter()
        .map(Probe::gives_up_at)
        .max()
        .unwrap_or_default();
    probes.extend(sample_probes(
        transport,
        config,
        discovery.primary,
        start,
        wait,
    ));
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
    primary: SocketAddr,
    other: SocketAddr,
    wait: Duration,
) -> Vec<Probe> {
    [Target::AltPort, Target::AltIp, Target::AltBoth]
        .into_iter()
        .filter_map(|target| {
            Some(Probe {
                socket: Socket::Mapping,
                fresh: false,
                target,
                to: target.resolve(primary, other)?,
                change: ChangeRequest::default(),
                at: Duration::ZERO,
                attempts: attempts(transport),
                wait,
            })
        })
        .collect()
}

/// RFC 5780 §4.4 from a fresh socket: a plain control (proves answers get through at all), then
/// "change IP and port" and "change port". All go to the primary, so the NAT only ever saw the
/// primary from this socket.
fn filtering_probes(primary: SocketAddr, wait: Duration) -> Vec<Probe> {
    let changes = [(false, false), (true, true), (false, true)];
    changes
        .into_iter()
        .enumerate()
        .map(|(i, (change_ip, change_port))| Probe {
            socket: Socket::Filtering,
            fresh: i == 0,
            target: Target::Primary,
            to: primary,
            change: ChangeRequest {
                change_ip,
                change_port,
            },
            at: Duration::ZERO,
            attempts: if change_port {
                FILTER_ATTEMPTS
            } else {
                UDP_ATTEMPTS
            },
            wait,
        })
        .collect()
}

/// RFC 5780 §4.5: a fresh socket sends to the mapping socket's public address. Over TCP the
/// shell must also listen on the mapping socket's local port (SO_REUSEPORT) for it to arrive.
fn hairpin_probe(transport: Transport, public: SocketAddr, wait: Duration) -> Probe {
    Probe {
        socket: Socket::Hairpin,
        fresh: true,
        target: Target::OwnPublic,
        to: public,
        change: ChangeRequest::default(),
        at: Duration::ZERO,
        attempts: attempts(transport),
        wait,
    }
}

/// The allocation samples: two back-to-back bursts one attempt window apart (one burst when
/// there are too few samples for each half to show a step).
fn sample_probes(
    transport: Transport,
    config: &PlanConfig,
    primary: SocketAddr,
    start: Duration,
    wait: Duration,
) -> Vec<Probe> {
    let count = config.samples.clamp(MIN_SAMPLES, MAX_SAMPLES);
    let first_burst = if count >= 4 { count.div_ceil(2) } else { count };
    let pause = wait * u32::from(attempts(transport));
    (0..count)
        .map(|i| Probe {
            socket: Socket::Sample(i),
            fresh: true,
            target: Target::Primary,
            to: primary,
            change: ChangeRequest::default(),
            at: if i < first_burst {
                start
            } else {
                start + pause
            },
            attempts: attempts(transport),
            wait,
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
    /// attempts.
    type Row = (Socket, bool, Target, (bool, bool), u64, u8);

    fn rows(plan: &Plan) -> Vec<Row> {
        plan.probes
            .iter()
            .map(|p| {
                let change = (p.change.change_ip, p.change.change_port);
                let at = p.at.as_millis() as u64;
                (p.socket, p.fresh, p.target, change, at, p.attempts)
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
                // 50 ms RTT: each attempt waits 150 ms; CHANGE-REQUEST probes end at 450 ms.
                name: "udp full mode",
                transport: Transport::Udp,
                discovery: discovery(true, true, Some(50)),
                samples: 4,
                want: vec![
                    (Mapping, false, AltPort, NO, 0, 2),
                    (Mapping, false, AltIp, NO, 0, 2),
                    (Mapping, false, AltBoth, NO, 0, 2),
                    (Filtering, true, Primary, NO, 0, 2),
                    (Filtering, false, Primary, (true, true), 0, 3),
                    (Filtering, false, Primary, (false, true), 0, 3),
                    (Hairpin, true, OwnPublic, NO, 0, 2),
                    (Sample(0), true, Primary, NO, 450, 2),
                    (Sample(1), true, Primary, NO, 450, 2),
                    (Sample(2), true, Primary, NO, 750, 2),
                    (Sample(3), true, Primary, NO, 750, 2),
                ],
                deadline_ms: 1050,
            },
            Case {
                // No OTHER-ADDRESS: no mapping or filtering tests; 3 samples stay one burst.
                name: "udp basic server, default rtt",
                transport: Transport::Udp,
                discovery: discovery(false, true, None),
                samples: 3,
                want: vec![
                    (Hairpin, true, OwnPublic, NO, 0, 2),
                    (Sample(0), true, Primary, NO, 700, 2),
                    (Sample(1), true, Primary, NO, 700, 2),
                    (Sample(2), true, Primary, NO, 700, 2),
                ],
                deadline_ms: 1400,
            },
            Case {
                // TCP: no CHANGE-REQUEST; one connect per probe, waiting out one SYN RTO.
                name: "tcp full mode",
                transport: Transport::Tcp,
                discovery: discovery(true, true, Some(50)),
                samples: 5,
                want: vec![
                    (Mapping, false, AltPort, NO, 0, 1),
                    (Mapping, false, AltIp, NO, 0, 1),
                    (Mapping, false, AltBoth, NO, 0, 1),
                    (Hairpin, true, OwnPublic, NO, 0, 1),
                    (Sample(0), true, Primary, NO, 1150, 1),
                    (Sample(1), true, Primary, NO, 1150, 1),
                    (Sample(2), true, Primary, NO, 1150, 1),
                    (Sample(3), true, Primary, NO, 2300, 1),
                    (Sample(4), true, Primary, NO, 2300, 1),
                ],
                deadline_ms: 3450,
            },
            Case {
                // Discovery unanswered: no public address, no RTT; samples clamp to 2.
                name: "nothing known",
                transport: Transport::Udp,
                discovery: discovery(false, false, None),
                samples: 0,
                want: vec![
                    (Sample(0), true, Primary, NO, 0, 2),
                    (Sample(1), true, Primary, NO, 0, 2),
                ],
                deadline_ms: 700,
            },
        ];
        for case in cases {
            let config = PlanConfig {
                samples: case.samples,
            };
            let plan = make_plan(case.transport, &config, &case.discovery);
            assert_eq!(rows(&plan), case.want, "{}", case.name);
            assert_eq!(plan.deadline, MS(case.deadline_ms), "{}", case.name);
        }
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
        assert_eq!(to(Hairpin, OwnPublic), addr("198.51.100.7:40000"));
        assert_eq!(to(Sample(7), Primary), addr("192.0.2.1:3478"));
    }

    /// The timeout constants fit together (tailscale's `TestReportTimeouts`).
    #[test]
    fn timeouts_fit_together() {
        // The slowest plan anyone can ask for still finishes within the deadline.
        let worst = PlanConfig { samples: u8::MAX };
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
        // A silent attempt is only declared lost after its answer could have come back.
        assert!(attempt_wait(Transport::Udp, Some(MAX_RTT)) > MAX_RTT);
        assert!(attempt_wait(Transport::Udp, Some(Duration::ZERO)) >= FILTER_WAIT);
        // A TCP probe outlives one SYN retransmission and its answer.
        assert!(attempt_wait(Transport::Tcp, Some(MAX_RTT)) > TCP_SYN_RTO + MAX_RTT);
        // The guess before measuring lies inside the clamp.
        assert!(DEFAULT_RTT <= MAX_RTT);
        // Filtering silence gets more attempts than ordinary loss.
        const { assert!(FILTER_ATTEMPTS > UDP_ATTEMPTS && UDP_ATTEMPTS > TCP_ATTEMPTS) };
        const { assert!(MIN_SAMPLES <= DEFAULT_SAMPLES && DEFAULT_SAMPLES <= MAX_SAMPLES) };
        // The binding timeout of the slowest NAT RFC 4787 allows (2 min) outlasts the plan, so
        // the mappings measured are still the ones a punch uses.
        assert!(MAX_DEADLINE < Duration::from_secs(120));
    }

    #[test]
    fn samples_come_after_every_other_probe_gives_up() {
        for transport in [Transport::Udp, Transport::Tcp] {
            let plan = make_plan(
                transport,
                &PlanConfig::default(),
                &discovery(true, true, Some(80)),
            );
            let first_sample = plan
                .probes
                .iter()
                .filter(|p| matches!(p.socket, Sample(_)))
                .map(|p| p.at)
                .min()
                .unwrap();
            for probe in plan
                .probes
                .iter()
                .filter(|p| !matches!(p.socket, Sample(_)))
            {
                assert!(
                    probe.gives_up_at() <= first_sample,
                    "{transport:?} {probe:?}"
                );
            }
        }
    }
}
