//! `natlens listen` and `natlens call` punching UDP through the kernel's own NATs, in the
//! network-namespace lab: a natlens server in the server namespace, `listen` on host a (behind
//! router A), `call` on host b (behind router B).
//!
//! For every pair of NAT modes the planner expects to connect, each attempt must connect on
//! both ends, the data sent with `--send` must arrive intact on the other end's stdout, and the
//! `port_through` each end reports must be the public port the far NAT really allocated for the
//! confirmed path (read from both routers' conntrack tables). Refused pairs must fail with a
//! reason at once. Sequential NATs must still connect with a noisy neighbour behind one router
//! or both, and the same must work across two federated servers.
//!
//! Needs root and network namespaces: without them the tests print SKIPPED, except under CI
//! (env `CI` set), where that is a failure. Labs run one at a time (the machine has two cores,
//! and timing is part of what is measured).

mod common;

use common::lab_available;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use natlens::lab::plan::{router_wan, SERVER_ALTERNATE, SERVER_PRIMARY};
use natlens::lab::{CtEntry, Host, Lab, LabSpec, NatMode, Side};
use serde_json::Value;

const PORT: u16 = 3478;
const ALT_PORT: u16 = 3479;
/// The second, federated server's ports.
const FED_PORT: u16 = 3480;
const FED_ALT_PORT: u16 = 3481;

/// Repeats of each pair in the matrix.
const REPEATS: usize = 3;

/// Longest one attempt may take, both ends together: logins, two fingerprints, a punch of at
/// most its 10 s timeout, the data, the logouts.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(40);

/// Labs one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const MODES: [NatMode; 5] = [
    NatMode::Cone,
    NatMode::FullCone,
    NatMode::Sequential { delta: 1 },
    NatMode::Sequential { delta: 2 },
    NatMode::Random,
];

/// The planner's promise for a pair: connect when at least one side keeps its port (cone,
/// full-cone) or both are predictable; refuse random against random or sequential.
fn expect_connect(a: NatMode, b: NatMode) -> bool {
    let fixed = |m| matches!(m, NatMode::Cone | NatMode::FullCone);
    fixed(a) || fixed(b) || (!matches!(a, NatMode::Random) && !matches!(b, NatMode::Random))
}

/// A child process whose stdout and stderr are read on threads.
struct Proc {
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(lab: &Lab, host: Host, mut command: Command) -> Proc {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = lab.spawn(host, command).expect("spawning natlens");
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = out.read_to_end(&mut bytes);
            bytes
        });
        let err = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Proc {
            child,
            stdout: Some(stdout),
            lines,
            stderr,
        }
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// Waits for the exit (killing the process after `limit`) and collects what it wrote.
    fn finish(mut self, limit: Instant) -> End {
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > limit {
                let _ = self.child.kill();
                break self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stdout = self
            .stdout
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        // The stderr reader ends with the pipe; give it a moment.
        std::thread::sleep(Duration::from_millis(20));
        let stderr = self.stderr.lock().unwrap().clone();
        let report = stderr
            .iter()
            .rev()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|value| value.get("schema_version").is_some())
            .unwrap_or(Value::Null);
        End {
            status,
            stdout,
            stderr,
            report,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one end left behind.
struct End {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<String>,
    /// The JSON report (the last stderr line with `schema_version`), or null.
    report: Value,
}

impl End {
    fn connected(&self) -> bool {
        self.status.success() && self.report["result"] == "connected"
    }

    fn context(&self) -> String {
        self.stderr.join("\n")
    }
}

/// A lab with one natlens server (or two federated ones) in its server namespace.
struct Fixture {
    lab: Lab,
    /// Given to both ends (`--transport tcp`).
    extra: Vec<&'static str>,
    /// Killed on drop.
    _servers: Vec<Proc>,
}

impl Fixture {
    fn up(spec: LabSpec, federated: bool) -> Fixture {
        let lab = Lab::up(spec).expect("building the lab");
        let mut servers = vec![server(&lab, "s1", PORT, ALT_PORT, None)];
        if federated {
            let peer = SocketAddrV4::new(SERVER_PRIMARY, PORT);
            servers.push(server(&lab, "s2", FED_PORT, FED_ALT_PORT, Some(peer)));
            for s in &servers {
                assert!(
                    s.wait_for("peer_up", Duration::from_secs(10)),
                    "federation link"
                );
            }
        }
        Fixture {
            lab,
            extra: Vec::new(),
            _servers: servers,
        }
    }

    /// One call: `listen` on a logged in to `listen_port`, `call` on b logged in to
    /// `call_port`, each sending its bytes; `login` is the listener's `--login-transport`.
    fn attempt(
        &self,
        n: u32,
        (listen_port, call_port): (u16, u16),
        login: &str,
        data: &Data,
    ) -> Attempt {
        let server = |port| SocketAddrV4::new(SERVER_PRIMARY, port).to_string();
        let (alice, bob) = (format!("alice{n}"), format!("bob{n}"));
        let started = Instant::now();
        let mut listen = natlens(&["listen", "--server", &server(listen_port)]);
        listen.args([
            "--id",
            &alice,
            "--login-transport",
            login,
            "--json",
            "--send",
        ]);
        listen.arg(&data.listen_file).args(&self.extra);
        let listen = Proc::spawn(&self.lab, Host::Lan(Side::A), listen);
        let ready = listen.wait_for("\"event\":\"waiting\"", Duration::from_secs(15));
        assert!(ready, "listen never got ready");
        let mut call = natlens(&["call", &alice, "--server", &server(call_port)]);
        call.args(["--id", &bob, "--json", "--send"]);
        call.arg(&data.call_file).args(&self.extra);
        let call = Proc::spawn(&self.lab, Host::Lan(Side::B), call);
        let limit = started + ATTEMPT_LIMIT;
        let call = call.finish(limit);
        let listen = listen.finish(limit);
        Attempt {
            listen,
            call,
            wall: started.elapsed(),
            ct_a: self.lab.conntrack_entries(Side::A).unwrap(),
            ct_b: self.lab.conntrack_entries(Side::B).unwrap(),
        }
    }
}

fn natlens(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command.args(args);
    command
}

fn server(lab: &Lab, name: &str, port: u16, alt: u16, peer: Option<SocketAddrV4>) -> Proc {
    let mut command = natlens(&["server", "--name", name]);
    command
        .args([
            "--listen",
            &SocketAddrV4::new(SERVER_PRIMARY, port).to_string(),
        ])
        .args([
            "--alternate",
            &SocketAddrV4::new(SERVER_ALTERNATE, alt).to_string(),
        ]);
    if let Some(peer) = peer {
        command.args(["--peer", &peer.to_string()]);
    }
    let server = Proc::spawn(lab, Host::Server, command);
    assert!(
        server.wait_for("listening", Duration::from_secs(5)),
        "server {name} did not start"
    );
    server
}

/// The bytes each end sends, in files the children read.
struct Data {
    listen: Vec<u8>,
    call: Vec<u8>,
    listen_file: PathBuf,
    call_file: PathBuf,
}

impl Data {
    fn new(listen_len: usize, call_len: usize) -> Data {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir();
        let file = |who: &str, len: usize| {
            let bytes = pseudo_random(len, u64::from(n) * 2 + u64::from(who == "call"));
            let path = dir.join(format!(
                "natlens-lab-punch-{}-{n}-{who}",
                std::process::id()
            ));
            std::fs::write(&path, &bytes).unwrap();
            (bytes, path)
        };
        let (listen, listen_file) = file("listen", listen_len);
        let (call, call_file) = file("call", call_len);
        Data {
            listen,
            call,
            listen_file,
            call_file,
        }
    }
}

impl Drop for Data {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.listen_file);
        let _ = std::fs::remove_file(&self.call_file);
    }
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Both ends of one call and the routers' tables right after.
struct Attempt {
    listen: End,
    call: End,
    wall: Duration,
    ct_a: Vec<CtEntry>,
    ct_b: Vec<CtEntry>,
}

impl Attempt {
    fn context(&self) -> String {
        format!(
            "--- listen (a) ---\n{}\n--- call (b) ---\n{}",
            self.listen.context(),
            self.call.context()
        )
    }

    /// Asserts a connection both ways, the data on both stdouts, and each reported
    /// `port_through` against the routers.
    fn assert_connected(&self, data: &Data, name: &str) {
        let context = || format!("{name}:\n{}", self.context());
        assert!(self.listen.connected(), "{}", context());
        assert!(self.call.connected(), "{}", context());
        assert!(
            self.listen.stdout == data.call,
            "{name}: the caller's {} bytes did not arrive intact on listen's stdout ({} bytes)",
            data.call.len(),
            self.listen.stdout.len()
        );
        assert!(
            self.call.stdout == data.listen,
            "{name}: the callee's bytes did not arrive intact on call's stdout"
        );
        for (end, side, far) in [
            (&self.listen, Side::A, Side::B),
            (&self.call, Side::B, Side::A),
        ] {
            let through = self.check_port_through(&end.report, side, far);
            assert!(
                through.is_ok(),
                "{name}: {}\n{}",
                through.unwrap_err(),
                context()
            );
            assert_eq!(end.report["data"]["result"], "complete", "{}", context());
        }
    }

    /// Both ends ran a birthday spray and neither connected.
    fn is_birthday_miss(&self) -> bool {
        let birthday = |end: &End| end.report["strategy"] == "birthday";
        birthday(&self.call)
            && birthday(&self.listen)
            && !self.call.connected()
            && !self.listen.connected()
    }

    /// Both ends failed as a punch should: exit 1, a reason, within the punch's timeout.
    fn assert_clean_failure(&self, name: &str) {
        for end in [&self.listen, &self.call] {
            let context = || format!("{name}:\n{}", self.context());
            assert_eq!(end.status.code(), Some(1), "{}", context());
            assert_eq!(end.report["result"], "failed", "{}", context());
            assert!(end.report["reason"].is_string(), "{}", context());
            let elapsed = end.report["elapsed_ms"].as_u64().unwrap_or(u64::MAX);
            assert!(elapsed <= 10_500, "{}", context());
        }
    }

    fn entries(&self, side: Side) -> &[CtEntry] {
        match side {
            Side::A => &self.ct_a,
            Side::B => &self.ct_b,
        }
    }

    /// The end behind `side` says its packets got through to port P of the far NAT: the
    /// confirmed path is (its socket, far WAN:P); its own router maps that socket toward far
    /// WAN:P to some public port Q; the far router's entry for the flow between far WAN:P and
    /// our WAN:Q must be answered and have P as its far public port.
    fn check_port_through(&self, report: &Value, side: Side, far: Side) -> Result<u16, String> {
        let own = if report["role"] == "caller" { 0 } else { 1 };
        let through = report["directions"][own]["port_through"]
            .as_u64()
            .ok_or("no port_through")? as u16;
        let path = &report["path"];
        let local: SocketAddr = path["local"].as_str().ok_or("no path")?.parse().unwrap();
        let peer: SocketAddr = path["peer"].as_str().ok_or("no path")?.parse().unwrap();
        if peer.port() != through || peer.ip() != IpAddr::from(router_wan(far)) {
            return Err(format!("path peer {peer} is not far WAN:{through}"));
        }
        let ours = public_of(self.entries(side), local, peer)
            .ok_or_else(|| format!("router {side} has no entry for {local} <-> {peer}"))?;
        let far_ports = far_ports(self.entries(far), ours, router_wan(far).into());
        if far_ports.contains(&through) {
            Ok(through)
        } else {
            Err(format!(
                "router {far} gave the flow toward {ours} ports {far_ports:?}, not {through}"
            ))
        }
    }
}

/// A TCP punch's `port_through` (in `report`, one end's report over TCP) against the far
/// router: its conntrack must hold an assured TCP connection with the near router's WAN address
/// whose far public port is that port.
fn check_tcp_port_through(
    attempt: &Attempt,
    report: &Value,
    far: Side,
    near: Side,
) -> Result<u16, String> {
    let own = if report["role"] == "caller" { 0 } else { 1 };
    let through = report["directions"][own]["port_through"]
        .as_u64()
        .ok_or("no port_through")? as u16;
    let found = attempt.entries(far).iter().any(|e| {
        // The connection with the near router, not a fingerprint's with the server.
        e.proto == "tcp"
            && e.assured
            && e.orig_dst.ip() == IpAddr::from(router_wan(near))
            && e.reply_dst.port() == through
    });
    if found {
        Ok(through)
    } else {
        Err(format!(
            "router {far} has no assured TCP connection with router {near} on port {through}: {:#?}",
            attempt.entries(far)
        ))
    }
}

/// The public address a router gives `private` toward `remote`, whichever way the flow began
/// (a full cone's inbound flows are DNAT entries).
fn public_of(entries: &[CtEntry], private: SocketAddr, remote: SocketAddr) -> Option<SocketAddr> {
    entries.iter().filter(|e| e.proto == "udp").find_map(|e| {
        if e.orig_src == private && e.orig_dst == remote {
            Some(e.reply_dst)
        } else if e.orig_src == remote && e.reply_src == private {
            Some(e.orig_dst)
        } else {
            None
        }
    })
}

/// The far router's public ports on answered flows with `near` (a public address).
fn far_ports(entries: &[CtEntry], near: SocketAddr, far_ip: IpAddr) -> Vec<u16> {
    entries
        .iter()
        .filter(|e| e.proto == "udp" && e.replied)
        .filter_map(|e| {
            if e.orig_dst == near && e.reply_dst.ip() == far_ip {
                Some(e.reply_dst.port())
            } else if e.orig_src == near && e.orig_dst.ip() == far_ip {
                Some(e.orig_dst.port())
            } else {
                None
            }
        })
        .collect()
}

/// One row of the printed table.
struct Row {
    pair: String,
    noise: &'static str,
    expected: bool,
    connected: usize,
    attempts: usize,
    /// The caller's time from its start to the first echo back (its own direction through).
    first_through_ms: Vec<u64>,
    wall: Vec<Duration>,
}

impl Row {
    fn line(&self) -> String {
        let median = |values: &mut Vec<u64>| -> String {
            values.sort_unstable();
            values
                .get(values.len() / 2)
                .map_or("-".into(), |v| v.to_string())
        };
        let mut first = self.first_through_ms.clone();
        let mut wall: Vec<u64> = self.wall.iter().map(|d| d.as_millis() as u64).collect();
        format!(
            "{:<22} {:<6} {:<8} {:>2}/{:<2} {:>8} {:>8}",
            self.pair,
            self.noise,
            if self.expected { "connect" } else { "refuse" },
            self.connected,
            self.attempts,
            median(&mut first),
            median(&mut wall),
        )
    }
}

fn print_table(title: &str, rows: &[Row]) {
    eprintln!("\n{title}");
    eprintln!(
        "{:<22} {:<6} {:<8} {:>5} {:>8} {:>8}",
        "listen(a) x call(b)", "noise", "planner", "conn", "1st ms", "wall ms"
    );
    for row in rows {
        eprintln!("{}", row.line());
    }
}

/// Runs `repeats` attempts of one pair in one lab, asserting each. Federated, the listener
/// logs in to the first server and the caller to the second, and every second attempt the
/// listener logs in over TCP.
fn run_pair(spec: LabSpec, noise: &'static str, repeats: usize, federated: bool) -> Row {
    let (a, b) = (spec.nat_a, spec.nat_b);
    let expected = expect_connect(a, b);
    let fixture = Fixture::up(spec, federated);
    let name = format!("{a} x {b} (noise {noise})");
    let mut row = Row {
        pair: format!("{a} x {b}"),
        noise,
        expected,
        connected: 0,
        attempts: 0,
        first_through_ms: Vec::new(),
        wall: Vec::new(),
    };
    let call_port = if federated { FED_PORT } else { PORT };
    let mut misses = 0;
    for n in 0..repeats as u32 {
        if n > 0 {
            fixture.lab.reset_nat_state().expect("resetting NAT state");
        }
        let data = Data::new(3_000, 64_000);
        let login = if federated && n % 2 == 1 {
            "tcp"
        } else {
            "udp"
        };
        let attempt = fixture.attempt(n, (PORT, call_port), login, &data);
        row.attempts += 1;
        row.wall.push(attempt.wall);
        if expected && attempt.is_birthday_miss() {
            // The birthday strategy is sized for 99%, not certainty: one clean miss per pair
            // is allowed (two in three attempts happen about 3 times in 10,000).
            attempt.assert_clean_failure(&name);
            misses += 1;
            assert!(
                misses <= 1,
                "{name}: two birthday misses\n{}",
                attempt.context()
            );
        } else if expected {
            attempt.assert_connected(&data, &name);
            row.connected += 1;
            if let Some(ms) = attempt.call.report["directions"][0]["first_through_ms"].as_u64() {
                row.first_through_ms.push(ms);
            }
        } else {
            assert_refused(&attempt, &name);
        }
    }
    drop(fixture);
    row
}

/// A refused pair: both ends fail at once with the planner's reason, and nothing is sent.
fn assert_refused(attempt: &Attempt, name: &str) {
    for end in [&attempt.listen, &attempt.call] {
        let context = || format!("{name}:\n{}", attempt.context());
        assert_eq!(end.status.code(), Some(1), "{}", context());
        assert_eq!(end.report["result"], "failed", "{}", context());
        assert_eq!(end.report["strategy"], "refused", "{}", context());
        let reason = end.report["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("--force"), "{reason}");
        assert!(
            end.report["elapsed_ms"].as_u64().unwrap() < 100,
            "{}",
            context()
        );
    }
    // Logins and two fingerprints, no punch: a few seconds at most.
    assert!(attempt.wall < Duration::from_secs(8), "{:?}", attempt.wall);
}

#[test]
fn udp_punch_matrix_over_every_pair_of_nat_modes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !lab_available() {
        return;
    }
    let started = Instant::now();
    let mut rows = Vec::new();
    for a in MODES {
        for b in MODES {
            let spec = LabSpec {
                nat_a: a,
                nat_b: b,
                ..LabSpec::default()
            };
            let repeats = if expect_connect(a, b) { REPEATS } else { 1 };
            rows.push(run_pair(spec, "-", repeats, false));
        }
    }
    print_table(
        &format!("UDP punch matrix ({:.0?})", started.elapsed()),
        &rows,
    );
}

#[test]
fn sequential_nats_connect_with_noise_on_one_side_or_both() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !lab_available() {
        return;
    }
    let seq1 = NatMode::Sequential { delta: 1 };
    let seq2 = NatMode::Sequential { delta: 2 };
    let cases = [
        (seq1, seq2, 20.0, 0.0, "a"),
        (seq2, seq1, 0.0, 20.0, "b"),
        (seq1, seq2, 20.0, 20.0, "both"),
        (seq1, seq1, 20.0, 20.0, "both"),
        (NatMode::Cone, seq2, 20.0, 20.0, "both"),
    ];
    let started = Instant::now();
    let mut rows = Vec::new();
    for (a, b, noise_a, noise_b, noise) in cases {
        let spec = LabSpec {
            nat_a: a,
            nat_b: b,
            noise_a,
            noise_b,
            ..LabSpec::default()
        };
        rows.push(run_pair(spec, noise, REPEATS, false));
    }
    print_table(
        &format!("with 20 flows/s of noise ({:.0?})", started.elapsed()),
        &rows,
    );
}

#[test]
fn listen_and_call_meet_across_two_federated_servers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !lab_available() {
        return;
    }
    let started = Instant::now();
    let pairs = [
        (NatMode::Sequential { delta: 1 }, NatMode::Cone),
        (
            NatMode::Sequential { delta: 2 },
            NatMode::Sequential { delta: 1 },
        ),
    ];
    let rows: Vec<Row> = pairs
        .into_iter()
        .map(|(nat_a, nat_b)| {
            let spec = LabSpec {
                nat_a,
                nat_b,
                ..LabSpec::default()
            };
            run_pair(spec, "-", 2, true)
        })
        .collect();
    print_table(
        &format!(
            "federated: listen on s1 (UDP, then TCP login), call on s2 ({:.0?})",
            started.elapsed()
        ),
        &rows,
    );
}

#[test]
fn a_file_of_a_few_megabytes_crosses_intact_both_ways() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !lab_available() {
        return;
    }
    let spec = LabSpec {
        nat_a: NatMode::Sequential { delta: 2 },
        nat_b: NatMode::FullCone,
        loss_percent: 5,
        ..LabSpec::default()
    };
    let fixture = Fixture::up(spec, false);
    let data = Data::new(1_000_000, 3_000_000);
    let attempt = fixture.attempt(0, (PORT, PORT), "udp", &data);
    attempt.assert_connected(&data, "3 MB with 5% loss");
    let sent = &attempt.call.report["data"];
    eprintln!(
        "3 MB + 1 MB with 5% loss: {} ms, {} retransmissions by the caller",
        sent["elapsed_ms"], sent["retransmissions"]
    );
}

/// `natlens listen`/`call --transport tcp` end to end: TCP fingerprints, the TCP plan, the
/// punch (plain simultaneous open for cone x cone; a crafted fan-out and takeover when one side
/// is sequential), the data over the stream, and each end's `port_through` against the far
/// router's TCP entry of the connection.
#[test]
fn tcp_listen_and_call_connect_and_carry_the_data() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !lab_available() {
        return;
    }
    for (a, b) in [
        (NatMode::Cone, NatMode::Cone),
        (NatMode::Sequential { delta: 1 }, NatMode::Cone),
        (NatMode::FullCone, NatMode::Sequential { delta: 1 }),
        (
            NatMode::Sequential { delta: 1 },
            NatMode::Sequential { delta: 2 },
        ),
    ] {
        let mut fixture = Fixture::up(
            LabSpec {
                nat_a: a,
                nat_b: b,
                ..LabSpec::default()
            },
            false,
        );
        fixture.extra = vec!["--transport", "tcp"];
        let data = Data::new(3_000, 64_000);
        let attempt = fixture.attempt(0, (PORT, PORT), "udp", &data);
        let name = format!("{a} x {b} over tcp");
        let context = || format!("{name}:\n{}", attempt.context());
        assert!(attempt.listen.connected(), "{}", context());
        assert!(attempt.call.connected(), "{}", context());
        assert!(attempt.listen.stdout == data.call, "{}", context());
        assert!(attempt.call.stdout == data.listen, "{}", context());
        for (end, far, near) in [
            (&attempt.listen, Side::B, Side::A),
            (&attempt.call, Side::A, Side::B),
        ] {
            let report = &end.report;
            assert_eq!(report["transport"], "tcp", "{}", context());
            assert_eq!(report["data"]["result"], "complete", "{}", context());
            let own = if report["role"] == "caller" { 0 } else { 1 };
            let through = report["directions"][own]["port_through"].as_u64().unwrap() as u16;
            let path_local: SocketAddr = report["path"]["local"].as_str().unwrap().parse().unwrap();
            let far_entries = attempt.entries(far);
            let flow = far_entries
                .iter()
                .find(|e| {
                    // The connection with the near router, not a fingerprint's with the server.
                    e.proto == "tcp"
                        && e.assured
                        && e.orig_dst.ip() == IpAddr::from(router_wan(near))
                        && e.reply_dst.port() == through
                })
                .map(|e| e.reply_dst.port());
            assert_eq!(flow, Some(through), "{}\n{far_entries:#?}", context());
            eprintln!(
                "{name}: {} port_through {through} (local {path_local}), first_through_ms {}, \
                 wall {:?}",
                report["role"], report["directions"][own]["first_through_ms"], attempt.wall
            );
        }
    }
}

/// `--transport both` end to end: a UDP punch, then a TCP punch, both reported in one JSON
/// object (`transport` both, `result`, `data_transport`, `attempts`), the data over UDP.
/// cone x seq:1: both attempts connect, and each attempt's `port_through` is the port the far
/// router really gave (UDP and TCP conntrack entries). cone x random: both transports run a
/// birthday (UDP sized for 99%, TCP for 99.99%), so that pair gets a second attempt after a
/// clean miss of either leg; then both connect, are checked against conntrack, and the data
/// goes over UDP.
#[test]
fn transport_both_punches_udp_then_tcp_and_reports_both() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !lab_available() {
        return;
    }
    for (a, b) in [
        (NatMode::Cone, NatMode::Sequential { delta: 1 }),
        (NatMode::Cone, NatMode::Random),
    ] {
        let birthday = b == NatMode::Random;
        let mut fixture = Fixture::up(
            LabSpec {
                nat_a: a,
                nat_b: b,
                ..LabSpec::default()
            },
            false,
        );
        fixture.extra = vec!["--transport", "both"];
        let name = format!("{a} x {b} over both");
        for n in 0..2u32 {
            if n > 0 {
                fixture.lab.reset_nat_state().expect("resetting NAT state");
            }
            let data = Data::new(3_000, 64_000);
            let attempt = fixture.attempt(n, (PORT, PORT), "udp", &data);
            let context = || format!("{name}:\n{}", attempt.context());
            let missed = |leg: usize| {
                [&attempt.listen, &attempt.call]
                    .iter()
                    .all(|end| end.report["attempts"][leg]["result"] == "failed")
            };
            if birthday && n == 0 && (missed(0) || missed(1)) {
                let leg = if missed(0) { 0 } else { 1 };
                assert_eq!(
                    attempt.listen.report["attempts"][leg]["strategy"],
                    "birthday",
                    "{}",
                    context()
                );
                eprintln!("{name}: a birthday missed once, trying again");
                continue;
            }
            for end in [&attempt.listen, &attempt.call] {
                let report = &end.report;
                assert_eq!(end.status.code(), Some(0), "{}", context());
                assert_eq!(report["schema_version"], 1, "{}", context());
                assert_eq!(report["transport"], "both", "{}", context());
                assert_eq!(report["result"], "connected", "{}", context());
                assert_eq!(report["data_transport"], "udp", "{}", context());
                let attempts = report["attempts"].as_array().expect("attempts");
                assert_eq!(attempts.len(), 2, "{}", context());
                assert_eq!(attempts[0]["transport"], "udp", "{}", context());
                assert_eq!(attempts[1]["transport"], "tcp", "{}", context());
                assert_eq!(attempts[0]["result"], "connected", "{}", context());
                assert_eq!(attempts[0]["data"]["result"], "complete", "{}", context());
                assert_eq!(attempts[1]["result"], "connected", "{}", context());
            }
            assert!(attempt.listen.stdout == data.call, "{}", context());
            assert!(attempt.call.stdout == data.listen, "{}", context());
            let legs = &attempt.listen.report["attempts"];
            eprintln!(
                "{name}: udp {} ({}), tcp {} ({}); wall {:?}",
                legs[0]["result"],
                legs[0]["strategy"],
                legs[1]["result"],
                legs[1]["strategy"],
                attempt.wall
            );
            for (end, side, far) in [
                (&attempt.listen, Side::A, Side::B),
                (&attempt.call, Side::B, Side::A),
            ] {
                let udp = attempt.check_port_through(&end.report["attempts"][0], side, far);
                assert!(
                    udp.is_ok(),
                    "{name}: udp: {}\n{}",
                    udp.unwrap_err(),
                    context()
                );
                let tcp = check_tcp_port_through(&attempt, &end.report["attempts"][1], far, side);
                assert!(
                    tcp.is_ok(),
                    "{name}: tcp: {}\n{}",
                    tcp.unwrap_err(),
                    context()
                );
                eprintln!(
                    "{name}: {} port_through udp {} tcp {}, wall {:?}",
                    end.report["role"],
                    udp.unwrap(),
                    tcp.unwrap(),
                    attempt.wall
                );
            }
            break;
        }
    }
}
