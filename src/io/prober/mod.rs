//! The IO shell of the NAT fingerprint: runs the sans-IO plan of [`crate::core::fingerprint`]
//! with real sockets and fills in its observations. No verdict and no timing decision is made
//! here.
//!
//! One [`fingerprint`] call probes one transport, in the two steps the core prescribes: the
//! discovery probe, then, as soon as its answer is in, the [`Plan`] sized from it. Each step is
//! one poll loop (mio) over all of its sockets, driven by a core
//! [`Schedule`](crate::core::fingerprint::schedule::Schedule): every attempt goes out when the
//! schedule says it is due, a probe is settled by its answer (matched by transaction ID) or given
//! up, and the loop ends as soon as every probe is settled. Every socket of a step is opened
//! before its first packet, so the sample sockets exist before the first burst and nothing new
//! is opened between the samples.
//!
//! UDP and TCP run on two threads at once. They share a [`Gate`]: a step holds it from its first
//! packet until every probe of the step has had its first attempt, so the new flows of one
//! transport never land inside the other's bursts or in the pause between them (a sequential
//! NAT usually draws UDP and TCP ports from one counter, docs/lab.md). Retransmissions open no
//! flow and need no gate. The other transport waits at most one burst pause.
//!
//! Everything sent goes to the addresses in the plan: the servers the user named, the alternate
//! addresses the first one reported, and this host's own public address (the hairpin test).

mod all;
pub mod lifetime;
mod tcp;
mod udp;

pub use all::{family_report, fingerprint_all, fingerprint_families, report};

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::core::fingerprint::plan::{self, Discovery, Plan, PlanConfig, Probe};
use crate::core::fingerprint::tcp_filtering::TcpFilteringRun;
use crate::core::fingerprint::Observation;
use crate::core::unreachable::Unreachable;
use crate::core::Transport;
use crate::io::source::Source;
use crate::wire::attr::{AttrType, ChangeRequest};
use crate::wire::stun::{Class, MessageType, Method, TransactionId};
use crate::wire::MessageBuilder;

/// Keeps the transports' new flows apart (see the module doc).
#[derive(Debug, Default)]
pub struct Gate(Mutex<()>);

impl Gate {
    /// Waits until no other step is opening flows; the others wait while the guard lives.
    fn enter(&self) -> MutexGuard<'_, ()> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How far a fingerprint has got, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub transport: Transport,
    /// Probes answered or given up.
    pub done: usize,
    /// Probes planned so far (the discovery probe alone until its answer sizes the plan).
    pub planned: usize,
    /// Set when the fingerprint stopped short (the server unreachable, refused or silent): why.
    /// A bar shows it as failed, never as done.
    pub failed: Option<String>,
}

/// Where a fingerprint's progress goes (a progress bar): not an event of the report.
pub trait Probing: Sync {
    fn update(&self, progress: Progress);
    /// The fingerprint is over: clear what `update` drew before the report is printed.
    fn finish(&self);
    /// The finished fingerprint, every probe in it (`-v` prints them); nothing by default.
    fn probed(&self, _fingerprint: &Fingerprint) {}
}

/// What the shell needs to know for one fingerprint.
#[derive(Debug, Clone)]
pub struct Options {
    pub server: SocketAddr,
    pub config: PlanConfig,
    /// How long the discovery probe waits for the server's first answer.
    pub discovery_timeout: Duration,
    /// Where the probes go from (--bind, --interface); its port, if any, is the mapping
    /// socket's.
    pub source: Source,
}

/// One transport's finished fingerprint: every observation, discovery first.
#[derive(Debug, Clone)]
pub struct Fingerprint {
    pub transport: Transport,
    pub observations: Vec<Observation>,
    /// `None` when the discovery probe went unanswered (nothing else was sent then).
    pub plan: Option<Plan>,
    /// Why the server could not be reached, when the kernel said so at once (ICMP unreachable
    /// quoting the discovery probe, a refused TCP connection) instead of leaving it to the
    /// timeout.
    pub unreachable: Option<Unreachable>,
    /// When the last probe of the run was sent (the last sample, when there is a plan).
    pub last_sent_at: Instant,
    /// The TCP filtering tests by crafted SYN (`natlens nat` over TCP only); `None` when
    /// they were not attempted.
    pub tcp_filtering: Option<TcpFilteringRun>,
}

impl Fingerprint {
    /// True when the server answered the discovery probe.
    pub fn answered(&self) -> bool {
        self.observations
            .first()
            .is_some_and(|o| o.answer.is_some())
    }
}

/// The discovery probe, retransmitted at the plan's interval until `timeout` has passed: the
/// core's two attempts suit a plan whose server is known to answer, while deciding that no
/// server is there deserves the user's whole patience. Over TCP this is one connection that
/// may wait the whole time (the kernel retransmits its SYN); the TCP shell hedges it with fresh
/// connections while it stays silent (`plan::tcp_discovery_connections`).
pub fn discovery_probe(transport: Transport, server: SocketAddr, timeout: Duration) -> Probe {
    let probe = plan::discovery_probe(transport, server);
    match transport {
        Transport::Udp => {
            let rounds = (timeout.as_secs_f64() / probe.wait.as_secs_f64()).round();
            let attempts = rounds.clamp(1.0, f64::from(u8::MAX)) as u8;
            // Rounded up, so that the last attempt waits out the whole timeout.
            let nanos = timeout.as_nanos().div_ceil(u128::from(attempts));
            let wait = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
            Probe {
                attempts,
                interval: wait,
                wait,
                ..probe
            }
        }
        Transport::Tcp => Probe {
            attempts: 1,
            interval: timeout,
            wait: timeout,
            ..probe
        },
    }
}

/// Fingerprints one transport: discovery, then the plan its answer sizes.
pub fn fingerprint(
    transport: Transport,
    options: &Options,
    gate: &Gate,
    progress: &(dyn Fn(Progress) + Sync),
    rng: &mut dyn RngCore,
) -> io::Result<Fingerprint> {
    let local_ip = options.source.local_ip_toward(options.server)?;
    let rng = shell_rng(rng)?;
    match transport {
        Transport::Udp => {
            let mut shell = udp::UdpShell::new(local_ip, &options.source, rng)?;
            run_steps(&mut shell, transport, options, gate, progress)
        }
        Transport::Tcp => {
            let mut shell = tcp::TcpShell::new(local_ip, &options.source, rng)?.with_syn_tests();
            let mut fingerprint = run_steps(&mut shell, transport, options, gate, progress)?;
            // Run beside the samples, over a connection the plan opened: no new flow.
            fingerprint.tcp_filtering = shell.filtering_tests(&fingerprint.observations);
            Ok(fingerprint)
        }
    }
}

/// Fingerprints UDP and hands back the mapping socket, still open, for a UDP punch.
///
/// A punch from an endpoint-independent NAT sends from one socket whose public port the peer
/// must know in advance: the mapping socket's is the one the fingerprint measured (and, on a
/// full-mode server, checked toward four destinations). Keeping that socket, rather than opening
/// a new one and asking the server again, also keeps the rule that nothing new is opened between
/// the last sample and the punch. The other sockets close when this returns; their NAT bindings
/// stay until they expire.
pub fn fingerprint_udp_for_punch(
    options: &Options,
    gate: &Gate,
    progress: &(dyn Fn(Progress) + Sync),
    rng: &mut dyn RngCore,
) -> io::Result<(Fingerprint, Option<mio::net::UdpSocket>)> {
    let local_ip = options.source.local_ip_toward(options.server)?;
    let mut shell = udp::UdpShell::new(local_ip, &options.source, shell_rng(rng)?)?;
    let fingerprint = run_steps(&mut shell, Transport::Udp, options, gate, progress)?;
    let mapping = shell.take(crate::core::fingerprint::Socket::Mapping)?;
    Ok((fingerprint, mapping))
}

/// Fingerprints TCP and hands back the discovery connection's local address: a TCP punch
/// binds that port again (with address reuse), whose public port the fingerprint measured.
pub fn fingerprint_tcp_for_punch(
    options: &Options,
    gate: &Gate,
    progress: &(dyn Fn(Progress) + Sync),
    rng: &mut dyn RngCore,
) -> io::Result<(Fingerprint, Option<SocketAddr>)> {
    let local_ip = options.source.local_ip_toward(options.server)?;
    let mut shell = tcp::TcpShell::new(local_ip, &options.source, shell_rng(rng)?)?;
    let fingerprint = run_steps(&mut shell, Transport::Tcp, options, gate, progress)?;
    Ok((fingerprint, shell.mapping_local()))
}

/// Discovery, then the plan its answer sizes, on one shell.
fn run_steps(
    shell: &mut dyn Shell,
    transport: Transport,
    options: &Options,
    gate: &Gate,
    progress: &(dyn Fn(Progress) + Sync),
) -> io::Result<Fingerprint> {
    let report = |done, planned| {
        progress(Progress {
            transport,
            done,
            planned,
            failed: None,
        })
    };
    let discovery = discovery_probe(transport, options.server, options.discovery_timeout);
    // The discovery probe counts as done only once answered: a refusal or a timeout fails the
    // bar instead (below).
    let first = shell.discover(discovery, gate, &mut |_| report(0, 1))?;
    let mut fingerprint = Fingerprint {
        transport,
        observations: first.observations,
        plan: None,
        unreachable: first.unreachable,
        last_sent_at: first.last_sent_at,
        tcp_filtering: None,
    };
    if !fingerprint.answered() {
        let why = match fingerprint.unreachable {
            Some(unreachable) => unreachable.to_string(),
            None => format!(
                "no answer within {}",
                humantime::format_duration(options.discovery_timeout)
            ),
        };
        progress(Progress {
            transport,
            done: 0,
            planned: 1,
            failed: Some(why),
        });
        return Ok(fingerprint);
    }
    report(1, 1);
    let discovery = Discovery::from_observation(&fingerprint.observations[0]);
    let mut plan = plan::make_plan(transport, &options.config, &discovery);
    // Destinations other than the named server come from its answers (OTHER-ADDRESS, the
    // reflected public address): a broken or hostile server must not aim probes at a
    // broadcast or multicast group.
    plan.probes.retain(|p| sendable(p.to, options.server));
    let planned = 1 + plan.probes.len();
    let rest = shell.run(&plan.probes, gate, &mut |done| report(1 + done, planned))?;
    fingerprint.observations.extend(rest.observations);
    fingerprint.last_sent_at = rest.last_sent_at;
    fingerprint.plan = Some(plan);
    Ok(fingerprint)
}

/// What one step of a fingerprint produced.
struct Ran {
    /// One per probe, in plan order.
    observations: Vec<Observation>,
    /// The kernel said the first probe's destination cannot be reached (ICMP, TCP refusal).
    unreachable: Option<Unreachable>,
    last_sent_at: Instant,
}

/// A transport's sockets: runs one step's probes and keeps its sockets open for the next step
/// (the mapping socket is reused) and until it is dropped (so that the NAT keeps every mapping
/// while the fingerprint lasts).
trait Shell {
    fn run(
        &mut self,
        probes: &[Probe],
        gate: &Gate,
        done: &mut dyn FnMut(usize),
    ) -> io::Result<Ran>;

    /// The discovery step: one probe, one observation. TCP hedges it with more connections.
    fn discover(
        &mut self,
        probe: Probe,
        gate: &Gate,
        done: &mut dyn FnMut(usize),
    ) -> io::Result<Ran> {
        self.run(&[probe], gate, done)
    }
}

/// True for a unicast address with a port, of the server's family: the only kind of
/// destination a server's answer may point a probe at.
pub fn sendable(to: SocketAddr, server: SocketAddr) -> bool {
    let unicast = match to.ip() {
        IpAddr::V4(ip) => !ip.is_unspecified() && !ip.is_multicast() && !ip.is_broadcast(),
        IpAddr::V6(ip) => !ip.is_unspecified() && !ip.is_multicast(),
    };
    unicast && to.port() != 0 && to.is_ipv4() == server.is_ipv4()
}

/// The source IP the kernel routes toward the server. Probe sockets bind to it, so that their
/// local address is the real one (the classifier compares it with the public address) rather
/// than the wildcard.
pub use crate::io::route::local_ip_toward;

/// A shell's own generator, seeded from the caller's: a shell may run on another thread.
fn shell_rng(rng: &mut dyn RngCore) -> io::Result<StdRng> {
    StdRng::from_rng(rng).map_err(io::Error::other)
}

/// A random transaction ID for each probe; retransmissions reuse it (RFC 8489 §6.2.1).
fn transaction_ids(rng: &mut impl RngCore, count: usize) -> Vec<TransactionId> {
    (0..count)
        .map(|_| {
            let mut id = [0u8; 12];
            rng.fill_bytes(&mut id);
            TransactionId(id)
        })
        .collect()
}

/// A Binding request, with CHANGE-REQUEST when the probe asks for one, and FINGERPRINT so that
/// it cannot be mistaken for another protocol's packet on the way.
fn binding_request(tid: TransactionId, change: ChangeRequest) -> Vec<u8> {
    let mut buf = Vec::with_capacity(36);
    let ty = MessageType::new(Method::BINDING, Class::Request);
    let mut builder = MessageBuilder::new(&mut buf, ty, tid);
    if change.any() {
        builder.attribute(AttrType::CHANGE_REQUEST, &change.encode());
    }
    builder.fingerprint();
    buf
}

/// Waits on `poll` until `wake` (or forever when nothing is scheduled), retrying on EINTR.
fn wait(
    poll: &mut mio::Poll,
    events: &mut mio::Events,
    now: Instant,
    wake: Option<Instant>,
) -> io::Result<()> {
    crate::io::poll::wait_until(poll, events, now, wake, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::stun::Message;

    #[test]
    fn udp_discovery_retransmits_until_the_timeout() {
        let server = "192.0.2.1:3478".parse().unwrap();
        let probe = discovery_probe(Transport::Udp, server, Duration::from_secs(3));
        let within = |probe: &Probe, timeout: Duration| {
            (timeout..timeout + Duration::from_micros(1)).contains(&probe.gives_up_at())
        };
        assert!(within(&probe, Duration::from_secs(3)), "{probe:?}");
        // Retransmitted about as often as the plan would: 3 s / 375 ms = 8 attempts.
        assert_eq!(probe.attempts, 8);
        assert!(probe.attempts > plan::UDP_ATTEMPTS);
        let short = discovery_probe(Transport::Udp, server, Duration::from_millis(10));
        assert_eq!(short.attempts, 1);
        assert!(within(&short, Duration::from_millis(10)), "{short:?}");
        let tcp = discovery_probe(Transport::Tcp, server, Duration::from_secs(3));
        assert_eq!(
            (tcp.attempts, tcp.gives_up_at()),
            (1, Duration::from_secs(3))
        );
    }

    #[test]
    fn requests_carry_change_request_only_when_asked() {
        let tid = TransactionId([7; 12]);
        let plain = binding_request(tid, ChangeRequest::default());
        let message = Message::parse(&plain).unwrap();
        assert_eq!(message.transaction_id(), tid);
        assert!(message.get(AttrType::CHANGE_REQUEST).is_none());
        assert!(message.get(AttrType::FINGERPRINT).is_some());
        let change = ChangeRequest {
            change_ip: true,
            change_port: true,
        };
        let asking = binding_request(tid, change);
        let message = Message::parse(&asking).unwrap();
        let value = message.get(AttrType::CHANGE_REQUEST).unwrap().value;
        assert_eq!(ChangeRequest::decode(value).unwrap(), change);
    }

    #[test]
    fn answers_cannot_aim_probes_at_groups_or_other_families() {
        let server: SocketAddr = "192.0.2.1:3478".parse().unwrap();
        let ok = |to: &str| sendable(to.parse().unwrap(), server);
        assert!(ok("192.0.2.2:3479"));
        assert!(ok("198.51.100.7:40000"));
        for bad in [
            "0.0.0.0:3478",
            "255.255.255.255:3478",
            "224.0.0.1:3478",
            "192.0.2.2:0",
            "[2001:db8::1]:3478",
        ] {
            assert!(!ok(bad), "{bad}");
        }
        let v6: SocketAddr = "[2001:db8::1]:3478".parse().unwrap();
        assert!(sendable("[2001:db8::2]:3479".parse().unwrap(), v6));
        assert!(!sendable("[ff02::1]:3479".parse().unwrap(), v6));
    }

    #[test]
    fn transaction_ids_differ() {
        let ids = transaction_ids(&mut StdRng::seed_from_u64(7), 40);
        for (i, a) in ids.iter().enumerate() {
            assert!(ids[i + 1..].iter().all(|b| b != a));
        }
    }
}
