//! `natlens listen` and `natlens call` (issue 4): log in, fingerprint over the punch transport,
//! exchange facts through the server, punch, exchange data, report.
//!
//! Both ends run the same steps; only the meeting differs. The callee (`listen`) answers a call
//! with facts predicted for the moment the CALL arrives and starts punching as it answers; the
//! caller (`call`) sends facts predicted as it calls and starts when the answer reaches it, one
//! relay later, as the planner assumes; the callee sends its first round again half a relay and
//! one relay after answering (the sync rounds; its relay estimate is its fingerprint's round
//! trip to the server). `--transport both` runs a UDP leg, then a TCP leg ([`both`]).
//!
//! Between the fingerprint's last sample and the punch nothing new is opened toward anyone
//! (LAB-NOTES: on a sequential NAT every new flow costs a port): the session link and the
//! fingerprint's mapping socket already exist, and the punch's fresh sockets send nothing until
//! the schedule says so.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rand::rngs::StdRng;
use serde_json::{json, Value};

use crate::cli::{CallArgs, ListenArgs, PunchArgs, PunchTransport, SessionArgs};
use crate::commands::session::{self, Opened};
use crate::core::client::{ClientEvent, ClientSession, LOGOUT_TIMEOUT};
use crate::core::fingerprint::{self, PlanConfig, PredictOptions, TransportReport};
use crate::core::punch::handshake::Handshake;
use crate::core::punch::plan::{make_plan, PlanInput, PunchOptions, PunchPlan, Strategy};
use crate::core::punch::report::{PunchReport, PunchResult};
use crate::core::punch::{NatSummary, Role};
use crate::core::Transport;
use crate::io::client::{self as link_io, Driven, Link, Pump};
use crate::io::prober::{self, Fingerprint, Gate};
use crate::io::punch_tcp::{self, TcpPunch};
use crate::io::punch_udp::{self, DataIo, Progress, TransferEnd};
use crate::render::progress::ProbeBars;
use crate::render::punch::{self as render, Output};
use crate::wire::natlens::{NatFacts, Transports};

mod both;

/// How long a listener keeps one fingerprint while no call comes: well inside the 30 s a NAT
/// keeps an idle UDP mapping (the mapping socket's must still hold when a call comes), and
/// short enough that other hosts' flows have not yet carried a sequential NAT far from the
/// prediction. Refreshing costs about ten flows and a second.
pub const FINGERPRINT_REFRESH: Duration = Duration::from_secs(20);

/// How long the server may take to answer the discovery probe of a fingerprint.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(3);

/// What a run is doing and how it talks.
#[derive(Clone, Copy)]
struct Run<'a> {
    session: &'a SessionArgs,
    punch: &'a PunchArgs,
    stop: &'static AtomicBool,
    /// The transport this run (or, with `--transport both`, this leg) punches over.
    leg: Transport,
    /// Whether this leg carries the data (`both`'s TCP leg does not when UDP connected).
    carry_data: bool,
}

impl Run<'_> {
    /// Progress on stderr: a line for people, or with `--json` one NDJSON event.
    fn tell(&self, line: Option<String>, event: Value) {
        if self.session.output.json {
            eprintln!("{event}");
        } else if let Some(line) = line {
            eprintln!("{line}");
        }
    }

    /// A location-server session event.
    fn tell_session(&self, event: &ClientEvent) {
        let transport = self.punch.login_transport;
        self.tell(
            session::event_line(self.session, transport, event),
            session::event_json(self.session, transport, event),
        );
    }

    /// The transport this leg punches over.
    fn transport(&self) -> Transport {
        self.leg
    }

    /// The same run over another transport: `--transport both`'s second leg.
    fn over(&self, leg: Transport, carry_data: bool) -> Self {
        Run {
            leg,
            carry_data,
            ..*self
        }
    }

    fn transports(&self) -> Transports {
        Transports {
            udp: self.transport() == Transport::Udp,
            tcp: self.transport() == Transport::Tcp,
        }
    }
}

/// The first (with `both`, the only UDP) leg's transport.
fn first_leg(transport: PunchTransport) -> Transport {
    match transport {
        PunchTransport::Tcp => Transport::Tcp,
        PunchTransport::Udp | PunchTransport::Both => Transport::Udp,
    }
}

/// Runs `natlens listen`.
pub fn listen(args: ListenArgs) -> anyhow::Result<ExitCode> {
    let run = Run {
        session: &args.session,
        punch: &args.punch,
        stop: crate::io::signal::stop_flag()?,
        leg: first_leg(args.punch.transport),
        carry_data: true,
    };
    if args.punch.transport == PunchTransport::Both {
        return both::run(&run, None);
    }
    let input = prepare(&run)?;
    let (mut link, mut session, own) = log_in_and_fingerprint(&run, None)?;
    let (meeting, own) =
        answer_call(&run, &mut link, &mut session, own, None)?.context("no call came")?;
    punch_and_report(&run, meeting, own, input, &mut link, &mut session)
}

/// Waits for a call, fingerprinting again every [`FINGERPRINT_REFRESH`] while none comes; with
/// `give_up`, returns `None` once that long has passed without a call.
fn answer_call(
    run: &Run<'_>,
    link: &mut Link,
    session: &mut Session,
    mut own: OwnNat,
    give_up: Option<Duration>,
) -> anyhow::Result<Option<(Meeting, OwnNat)>> {
    let since = Instant::now();
    run.tell(
        Some("waiting for a call (interrupt to stop)".into()),
        json!({"event": "waiting", "transport": run.transport()}),
    );
    loop {
        if let Some(meeting) = wait_for_call(run, link, session, &own)? {
            return Ok(Some((meeting, own)));
        }
        if give_up.is_some_and(|limit| since.elapsed() >= limit) {
            return Ok(None);
        }
        drop(own);
        own = fingerprint_nat(run)?;
    }
}

/// Runs `natlens call` (unless `--no-punch`).
pub fn call(args: CallArgs) -> anyhow::Result<ExitCode> {
    let run = Run {
        session: &args.session,
        punch: &args.punch,
        stop: crate::io::signal::stop_flag()?,
        leg: first_leg(args.punch.transport),
        carry_data: true,
    };
    if args.punch.transport == PunchTransport::Both {
        return both::run(&run, Some(&args.callee));
    }
    let input = prepare(&run)?;
    let (mut link, mut session, own) = log_in_and_fingerprint(&run, Some(run.punch.timeout))?;
    let meeting = place_call(&run, &mut link, &mut session, &own, &args.callee)?;
    punch_and_report(&run, meeting, own, input, &mut link, &mut session)
}

/// Opens `--send`'s file (or stdin) before anything goes out.
fn prepare(run: &Run<'_>) -> anyhow::Result<Option<Box<dyn Read + Send>>> {
    if run.punch.no_data || run.punch.dry_run {
        return Ok(None);
    }
    Ok(Some(match &run.punch.send {
        Some(path) => {
            Box::new(File::open(path).with_context(|| format!("cannot read {}", path.display()))?)
        }
        None => Box::new(io::stdin()),
    }))
}

type Session = ClientSession<StdRng>;

/// Logs in, then fingerprints: the session link exists before the first probe, so it costs
/// no port between the samples and the punch.
fn log_in_and_fingerprint(
    run: &Run<'_>,
    call_timeout: Option<Duration>,
) -> anyhow::Result<(Link, Session, OwnNat)> {
    let transport = run.punch.login_transport;
    let Opened {
        mut link,
        mut session,
    } = session::open(run.session, transport, call_timeout)?;
    let mut ending = None;
    let driven = link_io::drive(
        &mut link,
        &mut session,
        None,
        Some(run.stop),
        &mut |_, _| {},
        &mut |_, event| {
            let done = !matches!(event, ClientEvent::ObservedChanged { .. });
            run.tell_session(&event);
            ending = Some(event);
            Ok(done)
        },
    )?;
    match (driven, ending) {
        (Driven::Done, Some(ClientEvent::LoggedIn { .. })) => {}
        (Driven::Stopped, _) => bail!("interrupted while logging in"),
        (_, Some(event)) => {
            return Err(session::failure(run.session, transport, &link, &event)
                .unwrap_or_else(|| anyhow!("the session ended while logging in")))
        }
        (_, None) => bail!("the session ended while logging in"),
    }
    let own = fingerprint_nat(run)?;
    Ok((link, session, own))
}

/// This end's NAT as one fingerprint saw it, and the socket it measured.
struct OwnNat {
    fingerprint: Fingerprint,
    /// The mapping socket: the `Session` socket of a UDP punch.
    mapping: Option<mio::net::UdpSocket>,
    /// Over TCP, the discovery connection's local address: the port the punch binds again.
    tcp_local: Option<SocketAddr>,
    /// The local IP the fingerprint's sockets bound to; fresh punch sockets bind to it too.
    local_ip: IpAddr,
    taken_at: Instant,
}

impl OwnNat {
    /// The round trip to the server the fingerprint measured: the callee's estimate of its
    /// answer's trip through the server to the caller (what its sync rounds are timed by).
    fn server_rtt(&self) -> Option<Duration> {
        fingerprint::classify::rtt(&self.fingerprint.observations)
    }

    /// The facts to send in a call or an answer at `now`: the prediction accounts for other
    /// hosts' flows since the last sample.
    fn facts_at(&self, now: Instant, transports: Transports) -> NatFacts {
        let options = PredictOptions {
            since_last: now.saturating_duration_since(self.fingerprint.last_sent_at),
            ..PredictOptions::default()
        };
        let report = fingerprint::analyse(&self.fingerprint.observations, &options);
        NatSummary::from_report(&report).facts(report.public_address, transports)
    }
}

fn fingerprint_nat(run: &Run<'_>) -> anyhow::Result<OwnNat> {
    let server = run.session.server;
    let options = prober::Options {
        server,
        config: PlanConfig::default(),
        discovery_timeout: DISCOVERY_TIMEOUT,
    };
    let local_ip =
        prober::local_ip_toward(server).with_context(|| format!("no route toward {server}"))?;
    let transport = run.transport();
    let name = transport.as_str();
    let bars = ProbeBars::new(&[transport]);
    let (fingerprint, mapping, tcp_local) = match transport {
        Transport::Udp => {
            let result =
                prober::fingerprint_udp_for_punch(&options, &Gate::default(), &|p| bars.update(p));
            bars.finish();
            let (fingerprint, mapping) =
                result.with_context(|| format!("fingerprinting toward {server} over udp"))?;
            (fingerprint, mapping, None)
        }
        Transport::Tcp => {
            let result =
                prober::fingerprint_tcp_for_punch(&options, &Gate::default(), &|p| bars.update(p));
            bars.finish();
            let (fingerprint, local) =
                result.with_context(|| format!("fingerprinting toward {server} over tcp"))?;
            (fingerprint, None, local)
        }
    };
    if !fingerprint.answered() {
        bail!(
            "no STUN answer from {server} over {name} within {}s: is a natlens server there?",
            DISCOVERY_TIMEOUT.as_secs()
        );
    }
    let report = fingerprint::analyse(&fingerprint.observations, &PredictOptions::default());
    run.tell(
        Some(describe_nat(transport, &report)),
        json!({"event": "fingerprint", "transport": transport,
            "public_address": report.public_address, "mapping": report.mapping,
            "filtering": report.filtering, "pattern": report.allocation.pattern,
            "delta": report.allocation.delta,
            "foreign_flows_per_second": report.allocation.foreign_flows_per_second}),
    );
    Ok(OwnNat {
        fingerprint,
        mapping,
        tcp_local,
        local_ip,
        taken_at: Instant::now(),
    })
}

/// "your NAT (udp): public 203.0.113.1:40000; mapping …, filtering …; ports sequential +1".
fn describe_nat(transport: Transport, report: &TransportReport) -> String {
    let name = |b: Option<fingerprint::Behaviour>| b.map_or("not measured", |b| b.as_str());
    let ports = match (report.allocation.pattern, report.allocation.delta) {
        (Some(fingerprint::Pattern::Sequential), Some(delta)) => format!("sequential {delta:+}"),
        (Some(pattern), _) => format!("{pattern:?}").to_lowercase(),
        (None, _) => "not measured".into(),
    };
    format!(
        "your NAT ({}): public {}; mapping {}, filtering {}; ports {ports}",
        transport.as_str(),
        report
            .public_address
            .map_or("unknown".into(), |a| a.to_string()),
        name(report.mapping),
        name(report.filtering),
    )
}

/// Both ends' facts and the start signal: everything the plan and the punch need.
struct Meeting {
    role: Role,
    peer_id: String,
    call_id: u64,
    /// Our facts as sent, `observed` as the server saw our session.
    own: NatFacts,
    peer: NatFacts,
    start: Instant,
}

/// Holds the session until a call comes (answered with facts fresh at that moment) or the
/// fingerprint is due for a refresh (`None`).
fn wait_for_call(
    run: &Run<'_>,
    link: &mut Link,
    session: &mut Session,
    own: &OwnNat,
) -> anyhow::Result<Option<Meeting>> {
    let transport = run.punch.login_transport;
    let transports = run.transports();
    let mut sent = NatFacts::default();
    let mut call = None;
    let mut ending = None;
    let driven = link_io::drive(
        link,
        session,
        Some(own.taken_at + FINGERPRINT_REFRESH),
        Some(run.stop),
        &mut |session, now| {
            sent = own.facts_at(now, transports);
            session.set_facts(sent.clone());
        },
        &mut |_, event| {
            run.tell_session(&event);
            match event {
                ClientEvent::IncomingCall {
                    caller,
                    call_id,
                    facts,
                } => {
                    call = Some((caller, call_id, facts, Instant::now()));
                    Ok(true)
                }
                ClientEvent::LoginRefused { .. } | ClientEvent::ServerUnreachable { .. } => {
                    ending = Some(event);
                    Ok(true)
                }
                _ => Ok(false),
            }
        },
    )?;
    if let Some((peer_id, call_id, peer, start)) = call {
        let own = NatFacts {
            observed: session.observed(),
            ..sent
        };
        return Ok(Some(Meeting {
            role: Role::Callee,
            peer_id,
            call_id,
            own,
            peer,
            start,
        }));
    }
    match driven {
        Driven::Deadline => Ok(None),
        Driven::Stopped => {
            log_out(link, session);
            bail!("interrupted before a call came")
        }
        _ => Err(ending
            .and_then(|event| session::failure(run.session, transport, link, &event))
            .unwrap_or_else(|| anyhow!("the session with the server ended"))),
    }
}

/// Calls `callee` with facts predicted now and waits for the answer.
fn place_call(
    run: &Run<'_>,
    link: &mut Link,
    session: &mut Session,
    own: &OwnNat,
    callee: &str,
) -> anyhow::Result<Meeting> {
    let transport = run.punch.login_transport;
    let facts = own.facts_at(Instant::now(), run.transports());
    let call_id = session.call(Instant::now(), callee, &facts);
    run.tell(
        Some(format!("calling {callee:?}")),
        json!({"event": "calling", "callee": callee, "call_id": session::call_id_text(call_id)}),
    );
    let mut answer = None;
    let mut ending = None;
    let driven = link_io::drive(
        link,
        session,
        None,
        Some(run.stop),
        &mut |_, _| {},
        &mut |_, event| match event {
            ClientEvent::CallAnswered {
                call_id: id, facts, ..
            } if id == call_id => {
                answer = Some((facts, Instant::now()));
                Ok(true)
            }
            ClientEvent::CallFailed { call_id: id, .. } if id == call_id => {
                ending = Some(event);
                Ok(true)
            }
            ClientEvent::LoginRefused { .. } | ClientEvent::ServerUnreachable { .. } => {
                ending = Some(event);
                Ok(true)
            }
            _ => Ok(false),
        },
    )?;
    if let Some((peer, start)) = answer {
        run.tell(
            Some(format!(
                "call {} answered by {callee:?}, seen at {}",
                session::call_id_text(call_id),
                peer.observed
                    .map_or("an unknown address".into(), |a| a.to_string())
            )),
            session::event_json(
                run.session,
                transport,
                &ClientEvent::CallAnswered {
                    callee: callee.to_owned(),
                    call_id,
                    facts: peer.clone(),
                },
            ),
        );
        let own = NatFacts {
            observed: session.observed(),
            ..facts
        };
        return Ok(Meeting {
            role: Role::Caller,
            peer_id: callee.to_owned(),
            call_id,
            own,
            peer,
            start,
        });
    }
    if driven == Driven::Stopped {
        log_out(link, session);
        bail!("interrupted before the call was answered");
    }
    Err(match ending {
        Some(ClientEvent::CallFailed { code, reason, .. }) => {
            log_out(link, session);
            crate::commands::call::call_failure(callee, code, &reason, run.punch.timeout)
        }
        Some(event) => session::failure(run.session, transport, link, &event)
            .unwrap_or_else(|| anyhow!("the session ended before the answer")),
        None => anyhow!("the session ended before the answer"),
    })
}

fn options(punch: &PunchArgs) -> PunchOptions {
    PunchOptions {
        fanout: punch.fanout,
        delta: punch.delta,
        preset_delta: punch.preset_delta,
        timeout: punch.timeout,
        rate: punch.rate,
        force: punch.force,
        ..PunchOptions::default()
    }
}

/// Plans, punches, exchanges data, reports, logs out.
fn punch_and_report(
    run: &Run<'_>,
    meeting: Meeting,
    own: OwnNat,
    input: Option<Box<dyn Read + Send>>,
    link: &mut Link,
    session: &mut Session,
) -> anyhow::Result<ExitCode> {
    let output = run_leg(run, meeting, own, input, link, session);
    log_out(link, session);
    match output? {
        None => Ok(ExitCode::SUCCESS),
        Some(output) => {
            print_report(run, &output)?;
            verdict(&output)
        }
    }
}

/// One punch: plans, punches, exchanges data (unless `run.carry_data` is off) and returns the
/// report, or `None` after printing the plan with `--dry-run`. The session stays logged in.
fn run_leg(
    run: &Run<'_>,
    meeting: Meeting,
    own: OwnNat,
    input: Option<Box<dyn Read + Send>>,
    link: &mut Link,
    session: &mut Session,
) -> anyhow::Result<Option<Output>> {
    let options = options(run.punch);
    let plan = make_plan(&PlanInput {
        role: meeting.role,
        transport: run.transport(),
        call_id: meeting.call_id,
        own: &meeting.own,
        peer: &meeting.peer,
        options: &options,
    });
    if run.punch.dry_run {
        print_plan(run, &plan)?;
        return Ok(None);
    }
    run.tell(
        Some(format!(
            "punching over {}: {} ({}); expected success {:.1}%",
            plan.transport.as_str(),
            plan.strategy.as_str(),
            plan.reason,
            plan.expected_success * 100.0
        )),
        json!({"event": "plan", "transport": plan.transport, "strategy": plan.strategy,
            "reason": plan.reason, "expected_success": plan.expected_success}),
    );
    let punched = if plan.strategy == Strategy::Refused {
        let refused = Handshake::new(&plan, meeting.start, &mut rand::thread_rng());
        Punched {
            outcome_report: refused
                .outcome()
                .map(|o| PunchReport::from_outcome(&plan, o)),
            path: None,
            transfer: None,
        }
    } else {
        punch(run, &plan, &meeting, own, input, link, session)?
    };
    let report = punched
        .outcome_report
        .expect("a punch ends with an outcome");
    Ok(Some(Output {
        peer_id: meeting.peer_id.clone(),
        call_id: session::call_id_text(meeting.call_id),
        path: punched.path,
        // A leg that did not carry the data (`both`'s TCP leg after UDP connected) exchanged
        // only its report records: no data to show.
        data: punched
            .transfer
            .as_ref()
            .filter(|_| run.carry_data)
            .map(data_json),
        report,
    }))
}

/// What a punch produced.
struct Punched {
    outcome_report: Option<PunchReport>,
    path: Option<render::Path>,
    transfer: Option<TransferEnd>,
}

fn punch(
    run: &Run<'_>,
    plan: &PunchPlan,
    meeting: &Meeting,
    own: OwnNat,
    input: Option<Box<dyn Read + Send>>,
    link: &mut Link,
    session: &mut Session,
) -> anyhow::Result<Punched> {
    if plan.transport == Transport::Tcp {
        return punch_tcp_pumping(run, plan, meeting, &own, input, link, session);
    }
    let sync_rounds = plan.sync_rounds(own.server_rtt());
    let sockets = punch_udp::open_sockets(plan.local(), own.mapping, own.local_ip)
        .context("opening the punch's sockets")?;
    let locals: Vec<Option<SocketAddr>> = sockets.iter().map(|s| s.local_addr().ok()).collect();
    let mut sink: Box<dyn Write> = if run.punch.no_data || !run.carry_data {
        Box::new(io::sink())
    } else {
        Box::new(io::stdout().lock())
    };
    link.set_nonblocking(true)?;
    let mut pump = Pump {
        link,
        session,
        events: Vec::new(),
    };
    let finished = punch_udp::run(
        plan,
        sockets,
        meeting.start,
        &sync_rounds,
        DataIo {
            input,
            output: &mut *sink,
        },
        &mut pump,
        Some(run.stop),
        &mut |progress, at| {
            let (line, event) = progress_text(&progress, at);
            run.tell(Some(line), event);
        },
    );
    pump.link.set_nonblocking(false)?;
    let finished = match finished {
        Err(err) if err.kind() == io::ErrorKind::Interrupted => bail!("interrupted while punching"),
        other => other.context("punching")?,
    };
    let path = finished.outcome.path.map(|(socket, peer)| render::Path {
        local: locals.get(socket).copied().flatten(),
        peer,
    });
    Ok(Punched {
        outcome_report: Some(PunchReport::from_outcome(plan, &finished.outcome)),
        path,
        transfer: finished.transfer,
    })
}

/// The TCP punch and its data exchange ([`punch_tcp`]) on a thread while this one keeps
/// driving the session link, as the UDP punch does: an ANSWER (or any request of the session)
/// lost on its way to the server is then retransmitted instead of leaving the caller's CALL
/// unanswered (seen under 10% loss, tests/lab_faults.rs).
fn punch_tcp_pumping(
    run: &Run<'_>,
    plan: &PunchPlan,
    meeting: &Meeting,
    own: &OwnNat,
    input: Option<Box<dyn Read + Send>>,
    link: &mut Link,
    session: &mut Session,
) -> anyhow::Result<Punched> {
    /// The longest the session loop goes without looking whether the punch is over.
    const SERVICE_TICK: Duration = Duration::from_millis(5);
    link.set_nonblocking(true)?;
    let mut pump = Pump {
        link,
        session,
        events: Vec::new(),
    };
    let result = std::thread::scope(|scope| {
        let punching = scope.spawn(|| punch_tcp(run, plan, meeting, own, input));
        // A session hiccup must not end the punch (the session reports it afterwards): on an
        // error the loop stops servicing and the punch runs on to its own end.
        let _ = pump.serve_while(SERVICE_TICK, &|| !punching.is_finished());
        punching
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the TCP punch panicked")))
    });
    pump.link.set_nonblocking(false)?;
    result
}

fn punch_tcp(
    run: &Run<'_>,
    plan: &PunchPlan,
    meeting: &Meeting,
    own: &OwnNat,
    input: Option<Box<dyn Read + Send>>,
) -> anyhow::Result<Punched> {
    let peer = plan
        .peer
        .context("the server did not report the peer's address")?;
    let delay = meeting.start.saturating_duration_since(Instant::now());
    std::thread::sleep(delay);
    let started = meeting.start;
    let mut hinted = false;
    let spec = TcpPunch::for_plan(
        plan,
        peer.ip(),
        own.tcp_local.map_or(0, |a| a.port()),
        run.punch.syn_ttl,
        started + plan.timeout,
        own.server_rtt(),
    );
    // The punch drops capabilities on its thread: run it on its own.
    let punched = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                punch_tcp::punch(&spec, Some(run.stop), &mut |line| {
                    if !std::mem::replace(&mut hinted, true) {
                        run.tell(
                            Some(format!("natlens: {line}")),
                            json!({"event": "hint", "message": line}),
                        );
                    }
                })
            })
            .join()
            .unwrap_or_else(|_| {
                Err(crate::io::simopen::PunchError::Io(io::Error::other(
                    "the TCP punch panicked",
                )))
            })
    });
    if matches!(punched, Err(crate::io::simopen::PunchError::Stopped)) {
        bail!("interrupted while punching");
    }
    let at = started.elapsed();
    let event = match &punched {
        Ok(done) => crate::core::punch::PunchEvent::Connected {
            peer: done.punched.stream.peer_addr().unwrap_or(peer),
            socket: 0,
        },
        Err(err) => crate::core::punch::PunchEvent::Failed {
            reason: err.to_string(),
        },
    };
    let (line, event) = progress_text(&Progress::Punch(event), at);
    run.tell(Some(line), event);
    let mut transfer = None;
    let mut peer_record = None;
    let mut path = None;
    if let Ok(done) = &punched {
        path = Some(render::Path {
            local: done.punched.stream.local_addr().ok(),
            peer: done.punched.stream.peer_addr().unwrap_or(peer),
        });
        let mut sink: Box<dyn Write> = if run.punch.no_data || !run.carry_data {
            Box::new(io::sink())
        } else {
            Box::new(io::stdout().lock())
        };
        let (record, end) = punch_tcp::exchange(
            &done.punched.stream,
            &punch_tcp::own_record(done),
            input,
            &mut *sink,
            Some(plan.timeout.max(Duration::from_secs(10))),
        );
        let (line, event) = progress_text(
            &Progress::DataDone {
                failure: end.failure.clone(),
            },
            started.elapsed(),
        );
        run.tell(Some(line), event);
        peer_record = record;
        transfer = Some(end);
    }
    let outcome = punch_tcp::outcome(&punched, started, peer_record);
    Ok(Punched {
        outcome_report: Some(PunchReport::from_outcome(plan, &outcome)),
        path,
        transfer,
    })
}

/// A progress line and its NDJSON event.
fn progress_text(progress: &Progress, at: Duration) -> (String, Value) {
    use crate::core::punch::PunchEvent;
    let ms = u64::try_from(at.as_millis()).unwrap_or(u64::MAX);
    match progress {
        Progress::Punch(PunchEvent::PeerHeard { from, .. }) => (
            format!("{ms} ms: first probe from the peer arrived from {from}"),
            json!({"event": "peer_heard", "at_ms": ms, "from": from}),
        ),
        Progress::Punch(PunchEvent::Connected { peer, .. }) => (
            format!("{ms} ms: connected: a path to {peer} works both ways"),
            json!({"event": "connected", "at_ms": ms, "peer": peer}),
        ),
        Progress::Punch(PunchEvent::Failed { reason }) => (
            format!("{ms} ms: punch failed: {reason}"),
            json!({"event": "punch_failed", "at_ms": ms, "reason": reason}),
        ),
        Progress::DataDone { failure } => (
            match failure {
                None => format!("{ms} ms: data exchange complete"),
                Some(reason) => format!("{ms} ms: data exchange failed: {reason}"),
            },
            json!({"event": "data_done", "at_ms": ms, "reason": failure}),
        ),
    }
}

fn data_json(end: &TransferEnd) -> render::Data {
    render::Data {
        result: if end.failure.is_none() {
            "complete"
        } else {
            "failed"
        },
        reason: end.failure.clone(),
        bytes_sent: end.stats.bytes_sent,
        bytes_received: end.stats.bytes_received,
        retransmissions: end.stats.retransmissions,
        elapsed_ms: u64::try_from(end.elapsed.as_millis()).unwrap_or(u64::MAX),
    }
}

/// The report: stdout with `--no-data` (it carries nothing else), stderr otherwise.
fn print_report(run: &Run<'_>, output: &Output) -> io::Result<()> {
    let text = if run.session.output.json {
        serde_json::to_string(output).map_err(io::Error::other)?
    } else {
        let (summary, directions) = render::tables(output);
        format!("{summary}\n{directions}")
    };
    if run.punch.no_data {
        writeln!(io::stdout().lock(), "{text}")
    } else {
        writeln!(io::stderr().lock(), "{text}")
    }
}

/// `--dry-run`: the plan on stdout.
fn print_plan(run: &Run<'_>, plan: &PunchPlan) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if run.session.output.json {
        let value = serde_json::json!({
            "schema_version": crate::core::punch::report::SCHEMA_VERSION,
            "dry_run": true,
            "transport": plan.transport,
            "strategy": plan.strategy,
            "role": plan.role,
            "reason": plan.reason,
            "expected_success": (plan.expected_success * 10_000.0).round() / 10_000.0,
            "call_id": session::call_id_text(plan.call_id),
            "peer": plan.peer,
            "plan": plan.describe(),
        });
        serde_json::to_writer(&mut out, &value)?;
        writeln!(out)
    } else {
        if run.punch.transport == PunchTransport::Both {
            writeln!(out, "{} plan:", plan.transport.as_str())?;
        }
        for line in plan.describe() {
            writeln!(out, "{line}")?;
        }
        Ok(())
    }
}

/// Exit status: success only when the punch connected and both streams arrived whole.
fn verdict(output: &Output) -> anyhow::Result<ExitCode> {
    let report = &output.report;
    if report.result == PunchResult::Failed {
        bail!(
            "no direct path to {:?}: {}",
            output.peer_id,
            report.reason.as_deref().unwrap_or("no reason given")
        );
    }
    match &output.data {
        Some(data) if data.reason.is_some() => bail!(
            "connected to {:?}, but the data exchange failed: {}",
            output.peer_id,
            data.reason.as_deref().unwrap_or_default()
        ),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Logs out and waits for the answer (at most [`LOGOUT_TIMEOUT`]); failures here change
/// nothing, the server forgets the session anyway.
fn log_out(link: &mut Link, session: &mut Session) {
    if session.is_closed() {
        return;
    }
    session.logout(Instant::now());
    let until = Instant::now() + LOGOUT_TIMEOUT + Duration::from_millis(100);
    let _ = link_io::drive(
        link,
        session,
        Some(until),
        None,
        &mut |_, _| {},
        &mut |_, event| Ok(matches!(event, ClientEvent::LoggedOut)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::punch::plan::UNREPLIED_UDP_TIMEOUT;

    #[test]
    fn a_listeners_fingerprint_is_refreshed_before_its_mapping_expires() {
        // The mapping socket last sends during the fingerprint's first second or so (the mapping
        // tests); a call that comes just before the refresh must still find its binding, with
        // room for a slow fingerprint on a far server.
        assert!(FINGERPRINT_REFRESH + Duration::from_secs(5) <= UNREPLIED_UDP_TIMEOUT);
        // A discovery probe gives up well before a call's answer is due at the server.
        assert!(DISCOVERY_TIMEOUT < crate::core::server::DELIVER_TIMEOUT);
    }

    #[test]
    fn the_nat_line_names_the_pattern_and_step() {
        let observations = Vec::new();
        let report = fingerprint::analyse(&observations, &PredictOptions::default());
        assert_eq!(
            describe_nat(Transport::Udp, &report),
            "your NAT (udp): public unknown; mapping not measured, filtering not measured; \
             ports not measured"
        );
    }
}
