//! Faults in the network-namespace lab: every router's WAN link drops 10% of IP packets each
//! way and delays each one by 25 ms each way (so a LAN host's round trip to the server is
//! 50 ms and one between the LANs 100 ms).
//!
//! - The lab first proves it really loses and delays (a UDP echo count and round trip from a
//!   LAN host): a lossless or undelayed "faulty" lab would make every later assertion vacuous.
//! - `natlens nat` must still report every NAT mode as configured (UDP and TCP), several times.
//! - `natlens listen` / `natlens call` must still connect with the data intact, for cone x
//!   full-cone and seq:1 x seq:2, over UDP and over TCP (`tcp_punches_under_loss_and_delay`).
//!   A TCP fingerprint whose discovery got no answer at all is counted apart (no verdict); a
//!   wrong TCP verdict fails.
//! - When one end is SIGKILLed as the punch starts (both ends have the other's facts and printed
//!   their `plan` line; 25 ms delay, no loss), the survivor must report `result: failed` with
//!   a reason within its punch timeout plus a margin; caller dies and callee dies, UDP and TCP.
//!
//! Success counts are printed as tables (`--nocapture`); `NATLENS_FAULT_ROUNDS` raises the
//! number of rounds for the recorded runs (benches/results/faults.md). Needs root and network
//! namespaces: without them the tests print SKIPPED, except under CI (env `CI` set), where that
//! is a failure. Labs run one at a time.

mod common;

use common::lab_cli::{natlens, Data, End, Proc};
use common::{binding_request, lab_available};
use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use natlens::lab::plan::{SERVER_ALTERNATE, SERVER_PRIMARY};
use natlens::lab::{Host, Lab, LabSpec, NatMode, Side};
use serde_json::Value;

const PORT: u16 = 3478;
const ALT_PORT: u16 = 3479;
const LOSS_PERCENT: u8 = 10;
const DELAY: Duration = Duration::from_millis(25);

/// The punch timeout given to both ends in the death tests, and the margin on top of it the
/// survivor may take to notice, report and log out (LOGOUT alone may take up to 2 s when the
/// answer is lost).
const DEATH_PUNCH_TIMEOUT: Duration = Duration::from_secs(4);
const DEATH_MARGIN: Duration = Duration::from_secs(3);

/// Longest one listen/call attempt may take, both ends together.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(45);

/// Labs one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Rounds of each measurement (default 2 in CI; more for the recorded runs).
fn rounds() -> usize {
    std::env::var("NATLENS_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn faulty(nat_a: NatMode, nat_b: NatMode) -> LabSpec {
    LabSpec {
        nat_a,
        nat_b,
        delay: DELAY,
        loss_percent: LOSS_PERCENT,
        ..LabSpec::default()
    }
}

/// A faulty lab with a full-mode natlens server in its server namespace.
struct Fixture {
    lab: Lab,
    _server: Proc,
}

impl Fixture {
    fn up(spec: LabSpec) -> Fixture {
        let lab = Lab::up(spec).expect("building the lab");
        let mut command = natlens(&["server", "--name", "s1"]);
        command
            .args([
                "--listen",
                &SocketAddrV4::new(SERVER_PRIMARY, PORT).to_string(),
            ])
            .args([
                "--alternate",
                &SocketAddrV4::new(SERVER_ALTERNATE, ALT_PORT).to_string(),
            ]);
        let server = Proc::spawn(&lab, Host::Server, command);
        assert!(
            server.wait_for("listening", Duration::from_secs(5)),
            "the server did not start"
        );
        Fixture {
            lab,
            _server: server,
        }
    }

    /// `natlens nat --json` on the LAN host behind `side`; the report, or why there is none.
    fn nat(&self, side: Side) -> Result<Value, String> {
        let server = SocketAddrV4::new(SERVER_PRIMARY, PORT).to_string();
        let argv = [
            env!("CARGO_BIN_EXE_natlens"),
            "nat",
            "--server",
            &server,
            "--json",
        ];
        let output = self
            .lab
            .exec(Host::Lan(side), &argv)
            .map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())
    }

    /// Starts `natlens listen` behind A; returns once it waits for calls, or why it never did.
    fn try_listen(&self, id: &str, data: &Data, extra: &[&str]) -> Result<Proc, String> {
        let server = SocketAddrV4::new(SERVER_PRIMARY, PORT).to_string();
        let mut command = natlens(&["listen", "--server", &server, "--id", id, "--json"]);
        command.arg("--send").arg(&data.listen_file).args(extra);
        let listen = Proc::spawn(&self.lab, Host::Lan(Side::A), command);
        if listen.wait_for("\"event\":\"waiting\"", Duration::from_secs(20)) {
            Ok(listen)
        } else {
            Err(format!(
                "listen never got ready: {:?}",
                listen.stderr_so_far()
            ))
        }
    }

    /// Starts `natlens listen` behind A; returns once it waits for calls.
    fn listen(&self, id: &str, data: &Data, extra: &[&str]) -> Proc {
        self.try_listen(id, data, extra)
            .unwrap_or_else(|why| panic!("{why}"))
    }

    /// Starts `natlens call` behind B.
    fn call(&self, callee: &str, id: &str, data: &Data, extra: &[&str]) -> Proc {
        let server = SocketAddrV4::new(SERVER_PRIMARY, PORT).to_string();
        let mut command = natlens(&["call", callee, "--server", &server, "--id", id, "--json"]);
        command.arg("--send").arg(&data.call_file).args(extra);
        Proc::spawn(&self.lab, Host::Lan(Side::B), command)
    }
}

/// Where a fingerprint report differs from the configured mode, or `None` when it matches.
fn verdict_mismatch(report: &Value, transport: &str, mode: NatMode) -> Option<String> {
    let t = &report[transport];
    let (mapping, pattern, delta) = match mode {
        NatMode::Cone | NatMode::FullCone | NatMode::Restricted => {
            ("endpoint-independent", "preserving", None)
        }
        NatMode::Sequential { delta } => (
            "address-and-port-dependent",
            "sequential",
            Some(i64::from(delta)),
        ),
        NatMode::Random => ("address-and-port-dependent", "random", None),
    };
    let mut wrong = Vec::new();
    if t["behind_nat"] != true {
        wrong.push("behind_nat".to_owned());
    }
    if t["mapping"] != mapping {
        wrong.push(format!("mapping {}", t["mapping"]));
    }
    if t["allocation"]["pattern"] != pattern {
        wrong.push(format!("pattern {}", t["allocation"]["pattern"]));
    }
    if delta.is_some() && t["allocation"]["delta"].as_i64() != delta {
        wrong.push(format!("delta {}", t["allocation"]["delta"]));
    }
    if transport == "udp" {
        let filtering = match mode {
            NatMode::FullCone => "endpoint-independent",
            NatMode::Restricted => "address-dependent",
            _ => "address-and-port-dependent",
        };
        if t["filtering"] != filtering {
            wrong.push(format!("filtering {}", t["filtering"]));
        }
    }
    (!wrong.is_empty()).then(|| format!("{mode} over {transport}: {}", wrong.join(", ")))
}

/// Sends `count` Binding requests from the LAN host behind A, one every 4 ms, and returns
/// (answered, round trips of the answered ones).
fn echo_probe(lab: &Lab, count: usize) -> (usize, Vec<Duration>) {
    let server = SocketAddr::V4(SocketAddrV4::new(SERVER_PRIMARY, PORT));
    lab.in_netns(Host::Lan(Side::A), move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        socket.connect(server).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let mut sent_at = HashMap::new();
        let mut rtts = Vec::new();
        let mut buf = [0u8; 1500];
        let mut collect = |sent_at: &mut HashMap<[u8; 12], Instant>| {
            while let Ok(len) = socket.recv(&mut buf) {
                if len >= 20 {
                    let tid: [u8; 12] = buf[8..20].try_into().unwrap();
                    if let Some(at) = sent_at.remove(&tid) {
                        rtts.push(at.elapsed());
                    }
                }
            }
        };
        for i in 0..count {
            let mut tid = [0u8; 12];
            tid[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            tid[8..].copy_from_slice(b"echo");
            sent_at.insert(tid, Instant::now());
            socket.send(&binding_request(tid)).unwrap();
            let next = Instant::now() + Duration::from_millis(4);
            while Instant::now() < next {
                collect(&mut sent_at);
            }
        }
        let end = Instant::now() + Duration::from_millis(500);
        while Instant::now() < end {
            collect(&mut sent_at);
        }
        (rtts.len(), rtts)
    })
    .unwrap()
}

/// The lab must really drop about 10% each way on A's WAN link (19% of round trips) and
/// really add 2 x 25 ms to each round trip.
fn assert_lab_is_faulty(lab: &Lab) {
    const COUNT: usize = 400;
    let (answered, mut rtts) = echo_probe(lab, COUNT);
    rtts.sort_unstable();
    let lost = 1.0 - answered as f64 / COUNT as f64;
    let (min, median) = (rtts[0], rtts[rtts.len() / 2]);
    eprintln!(
        "lab check: {answered}/{COUNT} Binding round trips answered ({:.1}% lost, expected \
         {:.1}%), rtt min {min:?} median {median:?} (expected >= {:?})",
        lost * 100.0,
        (1.0 - 0.9f64 * 0.9) * 100.0,
        DELAY * 2
    );
    // 19% expected; +-3.5 standard deviations of a binomial over 400 sends.
    assert!((0.12..=0.26).contains(&lost), "loss {lost}");
    assert!(min >= DELAY * 2, "round trip {min:?} under 2 x {DELAY:?}");
    assert!(median < DELAY * 2 + Duration::from_millis(30), "{median:?}");
}

/// One side's fingerprint tally.
struct VerdictRow {
    mode: NatMode,
    runs: usize,
    /// Runs whose UDP verdicts were all right.
    udp_right: usize,
    /// Runs whose TCP discovery was answered, and of those the ones with all TCP verdicts right.
    tcp_answered: usize,
    tcp_right: usize,
    failures: Vec<String>,
}

/// Fingerprints each side `rounds` times. A wrong verdict is a failure; a TCP section without
/// any answer (the discovery connection never got its Binding answer within `--timeout`) is
/// counted apart, as no verdict rather than a wrong one.
fn fingerprint_rounds(fixture: &Fixture, rounds: usize) -> Vec<VerdictRow> {
    let spec = fixture.lab.spec().clone();
    let mut rows = Vec::new();
    for (side, mode) in [(Side::A, spec.nat_a), (Side::B, spec.nat_b)] {
        let mut row = VerdictRow {
            mode,
            runs: rounds,
            udp_right: 0,
            tcp_answered: 0,
            tcp_right: 0,
            failures: Vec::new(),
        };
        for _ in 0..rounds {
            fixture.lab.reset_nat_state().expect("resetting NAT state");
            let report = match fixture.nat(side) {
                Ok(report) => report,
                Err(why) => {
                    row.failures
                        .push(format!("{mode}: natlens nat failed: {why}"));
                    continue;
                }
            };
            match verdict_mismatch(&report, "udp", mode) {
                None => row.udp_right += 1,
                Some(wrong) => row.failures.push(format!("{wrong}\n{report:#}")),
            }
            if report["tcp"]["public_address"].is_null() {
                continue;
            }
            row.tcp_answered += 1;
            match verdict_mismatch(&report, "tcp", mode) {
                None => row.tcp_right += 1,
                Some(wrong) => row.failures.push(format!("{wrong}\n{report:#}")),
            }
        }
        rows.push(row);
    }
    rows
}

/// The end connected and its data exchange completed.
fn connected_with_data(end: &End) -> bool {
    end.connected() && end.report["data"]["result"] == "complete"
}

/// One listen/call attempt with `len` bytes each way; Ok(wall time) when both ends connected
/// with the data intact, else why not.
fn punch_once(fixture: &Fixture, n: usize, len: usize, extra: &[&str]) -> Result<Duration, String> {
    fixture.lab.reset_nat_state().expect("resetting NAT state");
    let data = Data::new(len, len);
    let (alice, bob) = (format!("alice{n}"), format!("bob{n}"));
    let started = Instant::now();
    let listen = fixture.try_listen(&alice, &data, extra)?;
    let call = fixture.call(&alice, &bob, &data, extra);
    let limit = started + ATTEMPT_LIMIT;
    let call = call.finish(limit);
    let listen = listen.finish(limit);
    let wall = started.elapsed();
    let context = || {
        format!(
            "--- listen ---\n{}\n--- call ---\n{}",
            listen.stderr.join("\n"),
            call.stderr.join("\n")
        )
    };
    if !connected_with_data(&listen) || !connected_with_data(&call) {
        return Err(format!("not connected\n{}", context()));
    }
    if listen.stdout != data.call || call.stdout != data.listen {
        return Err(format!(
            "data damaged: listen got {} bytes, call got {}\n{}",
            listen.stdout.len(),
            call.stdout.len(),
            context()
        ));
    }
    Ok(wall)
}

struct PunchRow {
    name: String,
    ok: usize,
    runs: usize,
    walls: Vec<Duration>,
    failures: Vec<String>,
}

fn punch_rounds(fixture: &Fixture, transport: &str, rounds: usize) -> PunchRow {
    let spec = fixture.lab.spec();
    let mut row = PunchRow {
        name: format!("{} x {} over {transport}", spec.nat_a, spec.nat_b),
        ok: 0,
        runs: rounds,
        walls: Vec::new(),
        failures: Vec::new(),
    };
    // Over TCP the data exchange waits for the peer as long as the punch may last (at least
    // 10 s): at 10% loss per link (19% a round trip) a segment lost three or four times in a
    // row backs its retransmission timer off past 10 s of silence (1 + 2 + 4 + 8 s before the
    // first RTT sample), which ended about one exchange in a hundred with "nothing from the
    // peer" (150 lab rounds by hand: 2). 25 s waits out one more loss.
    let mut args = vec!["--transport", transport];
    if transport == "tcp" {
        args.extend(["--punch-timeout", "25s"]);
    }
    for n in 0..rounds {
        match punch_once(fixture, n, 20_000, &args) {
            Ok(wall) => {
                row.ok += 1;
                row.walls.push(wall);
            }
            Err(why) => row.failures.push(why),
        }
    }
    row
}

/// Runs the fingerprint and punch rounds in one faulty lab, prints the counts, asserts all.
fn verdicts_and_punches(nat_a: NatMode, nat_b: NatMode, transports: &[&str]) {
    faulty_rounds(nat_a, nat_b, true, transports);
}

/// Runs, in one faulty lab, the `natlens nat` rounds (when `verdicts`) and the punch rounds
/// over each of `transports`; prints the counts, then asserts all.
fn faulty_rounds(nat_a: NatMode, nat_b: NatMode, verdicts: bool, transports: &[&str]) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !lab_available() {
        return;
    }
    let rounds = rounds();
    let fixture = Fixture::up(faulty(nat_a, nat_b));
    assert_lab_is_faulty(&fixture.lab);
    let verdicts = if verdicts {
        fingerprint_rounds(&fixture, rounds)
    } else {
        Vec::new()
    };
    let punches: Vec<PunchRow> = transports
        .iter()
        .map(|t| punch_rounds(&fixture, t, rounds))
        .collect();
    eprintln!("\n{LOSS_PERCENT}% loss + {DELAY:?} per WAN link, {nat_a} (a) x {nat_b} (b)");
    for row in &verdicts {
        eprintln!(
            "  natlens nat behind {:<10} UDP verdicts right {}/{}; TCP answered {}/{}, verdicts \
             right {}/{}",
            row.mode,
            row.udp_right,
            row.runs,
            row.tcp_answered,
            row.runs,
            row.tcp_right,
            row.tcp_answered
        );
    }
    for row in &punches {
        let mut walls = row.walls.clone();
        walls.sort_unstable();
        let median = walls.get(walls.len() / 2).copied().unwrap_or_default();
        eprintln!(
            "  punch {:<28} connected, data intact {}/{} (median wall {median:.1?})",
            row.name, row.ok, row.runs
        );
    }
    // Every failure of the run at once: a wrong verdict must not hide a failed punch.
    let mut failures = Vec::new();
    for row in &verdicts {
        if !row.failures.is_empty() {
            failures.push(format!("wrong verdicts:\n{}", row.failures.join("\n")));
        }
    }
    for row in &punches {
        if !row.failures.is_empty() {
            failures.push(format!(
                "{}: {}/{} failed:\n{}",
                row.name,
                row.failures.len(),
                row.runs,
                row.failures.join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn cone_and_full_cone_fingerprint_and_punch_under_loss_and_delay() {
    verdicts_and_punches(NatMode::Cone, NatMode::FullCone, &["udp"]);
}

#[test]
fn sequential_nats_fingerprint_and_punch_under_loss_and_delay() {
    verdicts_and_punches(
        NatMode::Sequential { delta: 1 },
        NatMode::Sequential { delta: 2 },
        &["udp"],
    );
}

/// TCP punches under 10% loss + 25 ms: the TCP discovery hedges a silent connection with fresh
/// ones (a lost SYN used to leave a 3 s data RTO past the 3 s wait), the delivering crafted-SYN
/// spray between two sequential NATs resends its SYNs in rounds with backoff (a lost SYN on the
/// one meeting 4-tuple used to end in "no TCP connection"), the callee keeps driving its session
/// while it punches over TCP (a lost ANSWER left the CALL unanswered), and a prediction keeps
/// the port no other host's flow moved among its candidates (a foreign-flow rate misread under
/// loss used to aim the whole fan-out past both NATs' real ports). The `natlens nat` verdicts of
/// the same labs are checked by the UDP tests above; `NATLENS_FAULT_ROUNDS` rounds per pair.
#[test]
fn tcp_punches_under_loss_and_delay() {
    // Both pairs are measured even when the first one fails.
    let cone = std::panic::catch_unwind(|| {
        faulty_rounds(NatMode::Cone, NatMode::FullCone, false, &["tcp"])
    });
    let sequential = std::panic::catch_unwind(|| {
        faulty_rounds(
            NatMode::Sequential { delta: 1 },
            NatMode::Sequential { delta: 2 },
            false,
            &["tcp"],
        )
    });
    if let Err(panic) = cone.and(sequential) {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn a_random_nat_is_still_recognised_under_loss_and_delay() {
    verdicts_and_punches(NatMode::Random, NatMode::Cone, &[]);
}

/// Which end is SIGKILLed as its punch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    Caller,
    Callee,
}

/// Starts listen + call, SIGKILLs `victim` the moment it prints its punch plan, and returns the
/// survivor's end with the time from the kill to its exit.
fn kill_mid_punch(fixture: &Fixture, n: usize, victim: Victim, transport: &str) -> (End, Duration) {
    fixture.lab.reset_nat_state().expect("resetting NAT state");
    let data = Data::new(2_000, 2_000);
    let timeout = format!("{}s", DEATH_PUNCH_TIMEOUT.as_secs());
    let extra = ["--transport", transport, "--punch-timeout", &timeout];
    let (alice, bob) = (format!("dying-a{n}"), format!("dying-b{n}"));
    let listen = fixture.listen(&alice, &data, &extra);
    let call = fixture.call(&alice, &bob, &data, &extra);
    // Both ends have the other's facts and have started punching: each printed its plan.
    for end in [&listen, &call] {
        assert!(
            end.wait_for("\"event\":\"plan\"", Duration::from_secs(20)),
            "no punch started: {:?}",
            end.stderr_so_far()
        );
    }
    let (mut dying, survivor) = match victim {
        Victim::Caller => (call, listen),
        Victim::Callee => (listen, call),
    };
    dying.kill();
    let killed = Instant::now();
    let end = survivor.finish(killed + ATTEMPT_LIMIT);
    let took = end.exited.duration_since(killed);
    (end, took)
}

#[test]
fn the_survivor_reports_failed_when_the_other_end_dies_mid_punch() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !lab_available() {
        return;
    }
    // Delay without loss: a lost TCP discovery (see `tcp_punches_under_loss_and_delay`) would
    // end an attempt before the punch this test is about.
    let fixture = Fixture::up(LabSpec {
        loss_percent: 0,
        ..faulty(NatMode::Cone, NatMode::Sequential { delta: 1 })
    });
    let bound = DEATH_PUNCH_TIMEOUT + DEATH_MARGIN;
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    let mut n = 0;
    for transport in ["udp", "tcp"] {
        for victim in [Victim::Caller, Victim::Callee] {
            n += 1;
            let (end, took) = kill_mid_punch(&fixture, n, victim, transport);
            let reason = end.report["reason"].as_str().unwrap_or("-").to_owned();
            lines.push(format!(
                "  {transport} {victim:?} killed: survivor exit {:?}, result {}, {took:.1?} \
                 after the kill, reason: {reason}",
                end.status.code(),
                end.report["result"],
            ));
            let ok = end.status.code() == Some(natlens::exit::PUNCH_FAILED.into())
                && end.report["result"] == "failed"
                && end.report["reason"].is_string()
                && took <= bound;
            if !ok {
                failures.push(format!(
                    "{transport}, {victim:?} killed:\n{}",
                    end.stderr.join("\n")
                ));
            }
        }
    }
    eprintln!(
        "\none end SIGKILLed as its punch starts ({DELAY:?} delay, no loss, cone x seq:1, \
         --timeout {DEATH_PUNCH_TIMEOUT:?}, bound {bound:?}):"
    );
    for line in &lines {
        eprintln!("{line}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
