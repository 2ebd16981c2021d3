//! The harness of the lab punch tests (tests/lab_punch.rs for UDP, tests/lab_punch_tcp_matrix.rs
//! for TCP): the `natlens` binary itself, `listen` on host a (behind router A) and `call` on
//! host b (behind router B), with one natlens server (or two federated ones) in the lab's server
//! namespace.
//!
//! What it checks is what the two transports share: both ends connect, the bytes each sent with
//! `--send` arrive intact on the other's stdout, and each end's `port_through` is the public
//! port the far NAT really allocated for the confirmed path, read from both routers' conntrack
//! tables (entries of the punch's transport), not taken from natlens's word. Refused pairs fail
//! at once with the planner's reason; failed punches fail with a reason within their timeout.
//! `run_pair` repeats one pair of NAT modes in one lab and returns the row of the printed table.
//!
//! Only for root with network namespaces: callers check `lab_available` first.

use std::fmt;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use natlens::lab::plan::{router_wan, SERVER_ALTERNATE, SERVER_PRIMARY};
use natlens::lab::{CtEntry, Host, Lab, LabProcess, LabSpec, NatMode, Side};
use serde_json::Value;

pub const PORT: u16 = 3478;
pub const ALT_PORT: u16 = 3479;
/// The second, federated server's ports.
pub const FED_PORT: u16 = 3480;
pub const FED_ALT_PORT: u16 = 3481;

/// Longest one attempt may take, both ends together: logins, two fingerprints, a punch of at
/// most its 10 s timeout, the data, the logouts.
pub const ATTEMPT_LIMIT: Duration = Duration::from_secs(40);

/// The punch's default `--punch-timeout`, in ms.
pub const PUNCH_TIMEOUT_MS: u64 = 10_000;

/// Labs one at a time (the machine has two cores, and timing is part of what is measured).
static SERIAL: Mutex<()> = Mutex::new(());

pub const MODES: [NatMode; 5] = [
    NatMode::Cone,
    NatMode::FullCone,
    NatMode::Sequential { delta: 1 },
    NatMode::Sequential { delta: 2 },
    NatMode::Random,
];

/// The planner's promise for a pair: connect when at least one side keeps its port (cone,
/// full-cone) or both are predictable; refuse random against random or sequential.
pub fn expect_connect(a: NatMode, b: NatMode) -> bool {
    let fixed = |m| matches!(m, NatMode::Cone | NatMode::FullCone);
    fixed(a) || fixed(b) || (!matches!(a, NatMode::Random) && !matches!(b, NatMode::Random))
}

/// The punch's transport: what both ends are told, what their reports say, and which conntrack
/// entries hold the truth about `port_through`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// As in the reports' `transport` and in conntrack's `proto`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }

    /// Given to both ends: nothing for UDP (the default), so that the default is what runs.
    pub fn args(self) -> &'static [&'static str] {
        match self {
            Transport::Udp => &[],
            Transport::Tcp => &["--transport", "tcp"],
        }
    }

    /// Whether `entry` may be the near router's mapping of the punching socket. Over TCP only
    /// answered entries: a crafted SYN of an earlier flow on the same 4-tuple never was. A UDP
    /// mapping counts as soon as it exists (the far side's answer is checked on its router).
    fn is_own_mapping(self, entry: &CtEntry) -> bool {
        entry.proto == self.name() && (self == Transport::Udp || entry.replied)
    }

    /// Whether `entry` is an answered flow of this transport.
    fn is_answered(self, entry: &CtEntry) -> bool {
        entry.proto == self.name() && entry.replied
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A natlens process in a lab host (stdin null), as the tests use it: a failure to start or to
/// wait for it panics, and its end comes with its JSON report. Killed on drop.
pub struct Proc(LabProcess);

impl Proc {
    pub fn spawn(lab: &Lab, host: Host, command: Command) -> Proc {
        Proc(LabProcess::spawn(lab, host, command, None).expect("spawning natlens"))
    }

    /// Waits for a stderr line containing `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        self.0.wait_for(needle, timeout)
    }

    /// The stderr lines read so far (for failure messages while the process still runs).
    pub fn stderr_so_far(&self) -> Vec<String> {
        self.0.stderr_so_far()
    }

    /// SIGKILL, as a crash or a pulled plug.
    pub fn kill(&mut self) {
        self.0.kill();
    }

    /// Waits for the exit (killing the process after `limit`) and collects what it wrote.
    pub fn finish(self, limit: Instant) -> End {
        let exited = self.0.finish(limit).expect("waiting for natlens");
        let report = exited
            .stderr
            .iter()
            .rev()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|value| value.get("schema_version").is_some())
            .unwrap_or(Value::Null);
        End {
            status: exited.status,
            exited: exited.exited,
            stdout: exited.stdout,
            stderr: exited.stderr,
            report,
        }
    }
}

/// What one end left behind.
pub struct End {
    pub status: ExitStatus,
    /// When the exit was seen (within `finish`'s poll).
    pub exited: Instant,
    pub stdout: Vec<u8>,
    pub stderr: Vec<String>,
    /// The JSON report (the last stderr line with `schema_version`), or null.
    pub report: Value,
}

impl End {
    pub fn connected(&self) -> bool {
        self.status.success() && self.report["result"] == "connected"
    }

    pub fn context(&self) -> String {
        self.stderr.join("\n")
    }

    /// The end's own direction's time from its start signal to its first packet through (ms).
    pub fn own_first_through(&self) -> Option<u64> {
        let own = if self.report["role"] == "caller" {
            0
        } else {
            1
        };
        self.report["directions"][own]["first_through_ms"].as_u64()
    }
}

/// A lab with one natlens server (or two federated ones) in its server namespace.
pub struct Fixture {
    pub lab: Lab,
    /// Given to both ends (`--transport tcp`, `--force`, ...).
    extra: Vec<&'static str>,
    /// Killed on drop.
    _servers: Vec<Proc>,
}

impl Fixture {
    pub fn up(spec: LabSpec, federated: bool, extra: &[&'static str]) -> Fixture {
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
            extra: extra.to_vec(),
            _servers: servers,
        }
    }

    /// One call: `listen` on a logged in to `listen_port`, `call` on b logged in to
    /// `call_port`, each sending its bytes; `login` is the listener's `--login-transport`.
    pub fn attempt(
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

pub fn natlens(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command.args(args);
    command
}

/// `natlens server` in the server namespace on SERVER_PRIMARY:`port` (alternate
/// SERVER_ALTERNATE:`alt`), federated with `peer` if given; waits for its listening line.
pub fn server(lab: &Lab, name: &str, port: u16, alt: u16, peer: Option<SocketAddrV4>) -> Proc {
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

/// The bytes each end sends, in files the children read; the files are removed on drop.
pub struct Data {
    pub listen: Vec<u8>,
    pub call: Vec<u8>,
    pub listen_file: PathBuf,
    pub call_file: PathBuf,
}

impl Data {
    pub fn new(listen_len: usize, call_len: usize) -> Data {
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

/// Bytes that no framing bug reproduces by accident (xorshift from `seed`).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
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
pub struct Attempt {
    pub listen: End,
    pub call: End,
    pub wall: Duration,
    pub ct_a: Vec<CtEntry>,
    pub ct_b: Vec<CtEntry>,
}

impl Attempt {
    pub fn context(&self) -> String {
        format!(
            "--- listen (a) ---\n{}\n--- call (b) ---\n{}",
            self.listen.context(),
            self.call.context()
        )
    }

    /// Asserts a connection both ways over `transport`, the data on both stdouts, and each
    /// reported `port_through` against the routers' entries of that transport.
    pub fn assert_connected(&self, data: &Data, name: &str, transport: Transport) {
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
            let through = self.check_port_through(&end.report, transport, side, far);
            assert!(
                through.is_ok(),
                "{name}: {}\n{}",
                through.unwrap_err(),
                context()
            );
            assert_eq!(end.report["data"]["result"], "complete", "{}", context());
            assert_eq!(end.report["transport"], transport.name(), "{}", context());
        }
    }

    /// Both ends ran a birthday spray and neither connected.
    pub fn is_birthday_miss(&self) -> bool {
        let birthday = |end: &End| end.report["strategy"] == "birthday";
        birthday(&self.call)
            && birthday(&self.listen)
            && !self.call.connected()
            && !self.listen.connected()
    }

    /// Both ends failed as a punch should: exit 6 (punch failed), a reason, within the punch's timeout
    /// (`limit_ms`, with half a second for the last poll and the report).
    pub fn assert_clean_failure(&self, name: &str, limit_ms: u64) {
        for end in [&self.listen, &self.call] {
            let context = || format!("{name}:\n{}", self.context());
            assert_eq!(
                end.status.code(),
                Some(natlens::exit::PUNCH_FAILED.into()),
                "{}",
                context()
            );
            assert_eq!(end.report["result"], "failed", "{}", context());
            assert!(end.report["reason"].is_string(), "{}", context());
            let elapsed = end.report["elapsed_ms"].as_u64().unwrap_or(u64::MAX);
            assert!(elapsed <= limit_ms + 500, "{elapsed} ms\n{}", context());
        }
    }

    /// A refused pair: both ends fail at once over `transport` with the planner's reason, and
    /// nothing is sent.
    pub fn assert_refused(&self, name: &str, transport: Transport) {
        for end in [&self.listen, &self.call] {
            let context = || format!("{name}:\n{}", self.context());
            assert_eq!(
                end.status.code(),
                Some(natlens::exit::PUNCH_FAILED.into()),
                "{}",
                context()
            );
            assert_eq!(end.report["result"], "failed", "{}", context());
            assert_eq!(end.report["strategy"], "refused", "{}", context());
            assert_eq!(end.report["transport"], transport.name(), "{}", context());
            let reason = end.report["reason"].as_str().unwrap_or_default();
            assert!(reason.contains("--force"), "{reason}");
            assert!(
                end.report["elapsed_ms"].as_u64().unwrap() < 100,
                "{}",
                context()
            );
        }
        // Logins and two fingerprints, no punch: a few seconds at most.
        assert!(self.wall < Duration::from_secs(8), "{:?}", self.wall);
    }

    pub fn entries(&self, side: Side) -> &[CtEntry] {
        match side {
            Side::A => &self.ct_a,
            Side::B => &self.ct_b,
        }
    }

    /// The end behind `side` says (in `report`, its report or one attempt of it) its packets
    /// got through to port P of the far NAT: the confirmed path is (its socket, far WAN:P);
    /// its own router maps that socket toward far WAN:P to some public port Q; the far
    /// router's entry of `transport` for the flow between far WAN:P and our WAN:Q must be
    /// answered and have P as its far public port.
    pub fn check_port_through(
        &self,
        report: &Value,
        transport: Transport,
        side: Side,
        far: Side,
    ) -> Result<u16, String> {
        let through = port_through(report)?;
        let path = &report["path"];
        let local: SocketAddr = path["local"].as_str().ok_or("no path")?.parse().unwrap();
        let peer: SocketAddr = path["peer"].as_str().ok_or("no path")?.parse().unwrap();
        if peer.port() != through || peer.ip() != IpAddr::from(router_wan(far)) {
            return Err(format!("path peer {peer} is not far WAN:{through}"));
        }
        let ours = public_of(self.entries(side), transport, local, peer).ok_or_else(|| {
            format!("router {side} has no {transport} entry for {local} <-> {peer}")
        })?;
        let far_ports = far_ports(self.entries(far), transport, ours, router_wan(far).into());
        if far_ports.contains(&through) {
            Ok(through)
        } else {
            Err(format!(
                "router {far} gave the {transport} flow toward {ours} ports {far_ports:?}, \
                 not {through}"
            ))
        }
    }
}

/// The far NAT's public port that `report` (one end's report, or one attempt of it) says its
/// own direction got through to.
pub fn port_through(report: &Value) -> Result<u16, String> {
    let own = if report["role"] == "caller" { 0 } else { 1 };
    let through = report["directions"][own]["port_through"]
        .as_u64()
        .ok_or("no port_through")?;
    u16::try_from(through).map_err(|_| format!("port_through {through} is not a port"))
}

/// The public address a router gives `private` toward `remote` on a `transport` flow,
/// whichever way it began (a full cone's inbound flows are DNAT entries).
pub fn public_of(
    entries: &[CtEntry],
    transport: Transport,
    private: SocketAddr,
    remote: SocketAddr,
) -> Option<SocketAddr> {
    entries
        .iter()
        .filter(|e| transport.is_own_mapping(e))
        .find_map(|e| {
            if e.orig_src == private && e.orig_dst == remote {
                Some(e.reply_dst)
            } else if e.orig_src == remote && e.reply_src == private {
                Some(e.orig_dst)
            } else {
                None
            }
        })
}

/// The far router's public ports on answered `transport` flows with `near` (a public address).
pub fn far_ports(
    entries: &[CtEntry],
    transport: Transport,
    near: SocketAddr,
    far_ip: IpAddr,
) -> Vec<u16> {
    entries
        .iter()
        .filter(|e| transport.is_answered(e))
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

/// One row of the printed table: one pair of NAT modes, all its attempts.
pub struct Row {
    pub pair: String,
    pub noise: &'static str,
    pub expected: bool,
    /// The caller's strategy in the last attempt.
    pub strategy: String,
    pub connected: usize,
    pub attempts: usize,
    /// Each end's time from its start signal to its own direction through (ms).
    pub callee_ms: Vec<u64>,
    pub caller_ms: Vec<u64>,
    pub wall: Vec<Duration>,
}

pub fn median(values: &[u64]) -> String {
    let mut values = values.to_vec();
    values.sort_unstable();
    values
        .get(values.len() / 2)
        .map_or("-".into(), |v| v.to_string())
}

impl Row {
    fn line(&self) -> String {
        let wall: Vec<u64> = self.wall.iter().map(|d| d.as_millis() as u64).collect();
        format!(
            "{:<22} {:<5} {:<8} {:<9} {:>2}/{:<2} {:>4.0}% {:>7} {:>7} {:>7}",
            self.pair,
            self.noise,
            if self.expected { "connect" } else { "refuse" },
            self.strategy,
            self.connected,
            self.attempts,
            100.0 * self.connected as f64 / self.attempts.max(1) as f64,
            median(&self.callee_ms),
            median(&self.caller_ms),
            median(&wall),
        )
    }
}

pub fn print_table(title: &str, rows: &[Row]) {
    let (connected, attempts) = rows
        .iter()
        .filter(|r| r.expected)
        .fold((0, 0), |(c, a), r| (c + r.connected, a + r.attempts));
    eprintln!("\n{title}: {connected}/{attempts} attempts of pairs that should connect did");
    eprintln!(
        "{:<22} {:<5} {:<8} {:<9} {:>5} {:>5} {:>7} {:>7} {:>7}",
        "listen(a) x call(b)",
        "noise",
        "planner",
        "strategy",
        "conn",
        "rate",
        "callee",
        "caller",
        "wall"
    );
    for row in rows {
        eprintln!("{}", row.line());
    }
}

/// Runs `repeats` attempts of one pair over `transport` in one lab, asserting each: pairs the
/// planner expects to connect must connect (one clean birthday miss allowed), the others must
/// be refused. Federated, the listener logs in to the first server and the caller to the
/// second, and every second attempt the listener logs in over TCP.
pub fn run_pair(
    spec: LabSpec,
    noise: &'static str,
    repeats: usize,
    federated: bool,
    transport: Transport,
) -> Row {
    let (a, b) = (spec.nat_a, spec.nat_b);
    let expected = expect_connect(a, b);
    let fixture = Fixture::up(spec, federated, transport.args());
    let name = format!("{a} x {b} over {transport} (noise {noise})");
    let mut row = Row {
        pair: format!("{a} x {b}"),
        noise,
        expected,
        strategy: String::new(),
        connected: 0,
        attempts: 0,
        callee_ms: Vec::new(),
        caller_ms: Vec::new(),
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
        if let Some(strategy) = attempt.call.report["strategy"].as_str() {
            row.strategy = strategy.to_owned();
        }
        if expected && attempt.is_birthday_miss() {
            // A birthday is sized for odds, not certainty (UDP 99%; TCP 99.99%, but its first
            // spray SYNs meet fewer holders): one clean miss per pair is allowed, two fail the
            // test (two in three UDP attempts happen about 3 times in 10,000).
            attempt.assert_clean_failure(&name, PUNCH_TIMEOUT_MS);
            misses += 1;
            assert!(
                misses <= 1,
                "{name}: two birthday misses\n{}",
                attempt.context()
            );
        } else if expected {
            attempt.assert_connected(&data, &name, transport);
            row.connected += 1;
            row.callee_ms.extend(attempt.listen.own_first_through());
            row.caller_ms.extend(attempt.call.own_first_through());
        } else {
            attempt.assert_refused(&name, transport);
        }
    }
    drop(fixture);
    row
}

/// Holds the lab lock for a test, or None when there is no lab (the test then returns; under
/// CI `lab_available` has already failed it).
pub fn lab_lock() -> Option<MutexGuard<'static, ()>> {
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    super::lab_available().then_some(serial)
}

/// Every pair of `MODES` over `transport`: `repeats` attempts of the pairs the planner expects
/// to connect, one of those it refuses; prints the table.
pub fn matrix(transport: Transport, repeats: usize) {
    let started = Instant::now();
    let mut rows = Vec::new();
    for a in MODES {
        for b in MODES {
            let spec = LabSpec {
                nat_a: a,
                nat_b: b,
                ..LabSpec::default()
            };
            let repeats = if expect_connect(a, b) { repeats } else { 1 };
            rows.push(run_pair(spec, "-", repeats, false, transport));
        }
    }
    let title = format!("{} punch matrix", transport.name().to_uppercase());
    print_table(&format!("{title} ({:.0?})", started.elapsed()), &rows);
}

/// A pair with a noisy neighbour: NAT a, NAT b, new flows/s behind router A and behind router
/// B, and the table's label for where the noise is.
pub type NoisyPair = (NatMode, NatMode, f64, f64, &'static str);

/// `repeats` attempts of each noisy pair over `transport`; prints the table.
pub fn with_noise(transport: Transport, cases: &[NoisyPair], repeats: usize) {
    let started = Instant::now();
    let mut rows = Vec::new();
    for &(nat_a, nat_b, noise_a, noise_b, noise) in cases {
        let spec = LabSpec {
            nat_a,
            nat_b,
            noise_a,
            noise_b,
            ..LabSpec::default()
        };
        rows.push(run_pair(spec, noise, repeats, false, transport));
    }
    let title = format!(
        "{} with 20 flows/s of noise",
        transport.name().to_uppercase()
    );
    print_table(&format!("{title} ({:.0?})", started.elapsed()), &rows);
}

/// Two attempts of each pair over `transport` across two federated servers: the listener on
/// the first (UDP login, then TCP), the caller on the second; prints the table.
pub fn federated(transport: Transport, pairs: &[(NatMode, NatMode)]) {
    let started = Instant::now();
    let rows: Vec<Row> = pairs
        .iter()
        .map(|&(nat_a, nat_b)| {
            let spec = LabSpec {
                nat_a,
                nat_b,
                ..LabSpec::default()
            };
            run_pair(spec, "-", 2, true, transport)
        })
        .collect();
    let title = format!(
        "{} federated: listen on s1 (UDP, then TCP login), call on s2",
        transport.name().to_uppercase()
    );
    print_table(&format!("{title} ({:.0?})", started.elapsed()), &rows);
}
