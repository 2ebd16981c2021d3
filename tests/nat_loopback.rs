//! `natlens nat` end to end on loopback, against `natlens server` (RFC 5780 full mode and basic
//! mode) and against coturn in RFC 5780 mode. Loopback has no NAT, so every verdict is known:
//! not behind a NAT, endpoint-independent mapping and filtering, ports preserved, CHANGE-REQUEST
//! honoured, hairpinning not applicable (null: there is no NAT to hairpin through, though a
//! packet to one's own address does arrive). Every packet stays on loopback:
//! primary 127.0.0.1, alternate 127.0.0.2 (Linux routes all of 127.0.0.0/8 to `lo`).
//!
//! coturn comes from Debian's `coturn` package. When `turnserver` is missing the coturn test
//! fails if `CI` is set and is otherwise skipped with a visible `SKIPPED:` line.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use natlens::core::binding::{self, FullMode, Outcome, Received};
use natlens::core::Transport;
use natlens::wire::stun::Message;
use serde_json::{json, Value};

const PRIMARY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const ALTERNATE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A `natlens nat` run on loopback takes about 0.15 s (two 70 ms burst pauses, UDP's then
/// TCP's); this only stops a hung run from hanging the suite.
const NAT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a server gets to answer on every address it should serve.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[test]
fn full_mode_natlens_server_shows_no_nat_over_udp_and_tcp() {
    let server = Server::natlens(Mode::Full);
    let run = nat(&["--server", &server.primary.to_string(), "--json"]);
    assert!(run.status.success(), "{}", run.describe(&server));
    assert_eq!(
        run.stderr, "",
        "nothing on stderr when it is not a terminal"
    );
    let report = run.json();
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["server"], server.primary.to_string());
    assert_no_nat(&report["udp"], Mode::Full, Transport::Udp);
    assert_no_nat(&report["tcp"], Mode::Full, Transport::Tcp);
}

#[test]
fn basic_mode_leaves_mapping_and_filtering_unmeasured() {
    let server = Server::natlens(Mode::Basic);
    let run = nat(&[
        "-s",
        &server.primary.to_string(),
        "--json",
        "--samples",
        "5",
    ]);
    assert!(run.status.success(), "{}", run.describe(&server));
    let report = run.json();
    for transport in [Transport::Udp, Transport::Tcp] {
        let facts = &report[transport.as_str()];
        assert_no_nat(facts, Mode::Basic, transport);
        assert_eq!(facts["allocation"]["samples"], 5);
    }
}

#[test]
fn coturn_in_rfc5780_mode_gives_the_same_verdicts_as_natlens() {
    let Some(turnserver) = require_tool("turnserver") else {
        return;
    };
    let coturn = Server::coturn(&turnserver);
    let natlens = Server::natlens(Mode::Full);
    let runs = [&coturn, &natlens].map(|server| {
        let run = nat(&["--server", &server.primary.to_string(), "--json"]);
        assert!(run.status.success(), "{}", run.describe(server));
        run.json()
    });
    for transport in [Transport::Udp, Transport::Tcp] {
        let name = transport.as_str();
        assert_no_nat(&runs[0][name], Mode::Full, transport);
        assert_eq!(
            verdicts(&runs[0][name]),
            verdicts(&runs[1][name]),
            "{name}: coturn (left) and natlens (right) disagree"
        );
    }
}

#[test]
fn the_table_and_the_narrative_go_to_stdout() {
    let server = Server::natlens(Mode::Full);
    let run = nat(&["--server", &server.primary.to_string(), "-t", "udp"]);
    assert!(run.status.success(), "{}", run.describe(&server));
    // The narrative is wrapped: compare with the line breaks taken out.
    let text = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "UDP",
        "public address",
        "endpoint-independent",
        "honoured",
        "preserving",
        "local port (public port = local port)",
        "Over UDP, the server sees you as 127.0.0.1:",
        "there is no NAT between you and the server",
        "Nothing on the path filters what comes in",
        "- (no NAT)",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{}", run.stdout);
    }
    // Without a NAT, no sentence may talk as if there were one.
    for nat_only in ["Your NAT", "It keeps", "hairpins"] {
        assert!(!text.contains(nat_only), "{nat_only:?} in:\n{}", run.stdout);
    }
    assert!(
        !run.stdout.contains("TCP"),
        "only UDP was asked for:\n{}",
        run.stdout
    );
}

#[test]
fn ipv6_loopback_works_too() {
    let server = Server::natlens_at("[::1]:0".parse().unwrap());
    let run = nat(&["--server", &server.primary.to_string(), "--json"]);
    assert!(run.status.success(), "{}", run.describe(&server));
    let report = run.json();
    for transport in [Transport::Udp, Transport::Tcp] {
        let facts = &report[transport.as_str()];
        assert_no_nat(facts, Mode::Basic, transport);
        assert!(facts["public_address"]
            .as_str()
            .unwrap()
            .starts_with("[::1]:"));
    }
}

#[test]
fn a_silent_server_fails_with_a_clear_message_within_the_timeout() {
    // Bound but never read: requests vanish, as with a firewall that drops them.
    let silent = UdpSocket::bind((PRIMARY_IP, 0)).unwrap();
    let addr = silent.local_addr().unwrap();
    let started = Instant::now();
    let run = nat(&[
        "--server",
        &addr.to_string(),
        "-t",
        "udp",
        "--timeout",
        "1s",
    ]);
    let elapsed = started.elapsed();
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert_eq!(
        run.stderr.trim(),
        format!("natlens: no STUN answer from {addr} over udp within 1s: is a STUN server there?")
    );
    assert_eq!(run.stdout, "");
    assert!(
        (Duration::from_secs(1)..Duration::from_secs(3)).contains(&elapsed),
        "took {elapsed:?}"
    );
}

#[test]
fn nothing_listening_fails_over_both_transports() {
    let addr = SocketAddr::new(IpAddr::V4(PRIMARY_IP), free_port(&[PRIMARY_IP], None));
    let run = nat(&["--server", &addr.to_string(), "--timeout", "500ms"]);
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert_eq!(
        run.stderr.trim(),
        format!(
            "natlens: no STUN answer from {addr} over udp within 500ms or over tcp (connection \
             refused): is a STUN server there?"
        )
    );
}

#[test]
fn a_server_answering_only_udp_gives_a_udp_report_and_a_warning() {
    let responder = Responder::start(false);
    let addr = responder.addr;
    let run = nat(&["--server", &addr.to_string(), "--json"]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(
        run.stderr.trim(),
        format!(
            "natlens: warning: no STUN answer from {addr} over tcp (connection refused): is a \
             STUN server there?"
        )
    );
    let report = run.json();
    assert_no_nat(&report["udp"], Mode::Basic, Transport::Udp);
    assert_eq!(report["tcp"]["public_address"], Value::Null);
    assert_eq!(report["tcp"]["allocation"]["pattern"], Value::Null);
}

#[test]
fn a_tcp_server_that_closes_after_answering_still_counts() {
    let responder = Responder::start(true);
    let run = nat(&[
        "--server",
        &responder.addr.to_string(),
        "-t",
        "tcp",
        "--json",
    ]);
    assert!(run.status.success(), "{}", run.stderr);
    let report = run.json();
    let tcp = &report["tcp"];
    assert_eq!(tcp["behind_nat"], false, "{tcp:#}");
    assert_eq!(tcp["allocation"]["answered"], 8, "{tcp:#}");
    assert_eq!(tcp["allocation"]["pattern"], "preserving", "{tcp:#}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--server", "127.0.0.1:3478", "--samples", "1"][..],
        &["--server", "127.0.0.1:3478", "--preset-delta", "0"],
        // A host name, not an address: refused before any lookup (.invalid never resolves).
        &["--server", "stun.invalid"],
        &["--transport", "udp"],
    ] {
        let run = nat(args);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {}", run.stderr);
    }
}

// ---------------------------------------------------------------------------------------------
// Expectations
// ---------------------------------------------------------------------------------------------

/// Everything a report of one transport must say on loopback, where there is no NAT.
fn assert_no_nat(facts: &Value, mode: Mode, transport: Transport) {
    let context = format!("{transport:?} {mode:?}: {facts:#}");
    let public: SocketAddr = facts["public_address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no public address: {context}"));
    assert!(public.ip().is_loopback(), "{context}");
    // behind_nat is false exactly when the public address equals the socket's local one.
    assert_eq!(facts["behind_nat"], false, "{context}");
    assert_eq!(facts["alg"], false, "{context}");
    assert_eq!(facts["hairpinning"], Value::Null, "{context}");
    assert!(facts["rtt_ms"].as_f64().is_some(), "{context}");
    let full = mode == Mode::Full;
    assert_eq!(facts["full_mode"], full, "{context}");
    let ei = json!("endpoint-independent");
    let (mapping, filtering, change) = match (full, transport) {
        (true, Transport::Udp) => (ei.clone(), ei, json!("honoured")),
        (true, Transport::Tcp) => (ei, Value::Null, Value::Null),
        (false, _) => (Value::Null, Value::Null, Value::Null),
    };
    assert_eq!(facts["mapping"], mapping, "{context}");
    assert_eq!(facts["filtering"], filtering, "{context}");
    assert_eq!(facts["change_request"], change, "{context}");
    let allocation = &facts["allocation"];
    assert_eq!(allocation["pattern"], "preserving", "{context}");
    assert_eq!(allocation["answered"], allocation["samples"], "{context}");
    assert!(
        allocation["confidence"].as_f64().unwrap() >= 0.75,
        "{context}"
    );
    assert_eq!(facts["prediction"]["rule"], "local-port", "{context}");
    assert!(facts["prediction"]["two_probe"].is_object(), "{context}");
    assert!(facts["prediction"]["preset_delta"].is_object(), "{context}");
}

/// The verdicts of one transport, without the addresses, ports and times that differ per run.
fn verdicts(facts: &Value) -> Value {
    json!({
        "behind_nat": facts["behind_nat"],
        "full_mode": facts["full_mode"],
        "mapping": facts["mapping"],
        "filtering": facts["filtering"],
        "change_request": facts["change_request"],
        "hairpinning": facts["hairpinning"],
        "alg": facts["alg"],
        "pattern": facts["allocation"]["pattern"],
        "answered": facts["allocation"]["answered"],
        "rule": facts["prediction"]["rule"],
    })
}

// ---------------------------------------------------------------------------------------------
// Running natlens nat
// ---------------------------------------------------------------------------------------------

struct NatRun {
    command: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl NatRun {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    fn describe(&self, server: &Server) -> String {
        format!(
            "{}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- {} ---\n{}",
            self.command,
            self.status,
            self.stdout,
            self.stderr,
            server.command,
            server.log_text()
        )
    }
}

/// Runs `natlens nat ARGS`, killing it after [`NAT_TIMEOUT`].
fn nat(args: &[&str]) -> NatRun {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command.arg("nat").args(args);
    let described = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn natlens nat");
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let status = wait_or_kill(&mut child, NAT_TIMEOUT)
        .unwrap_or_else(|| panic!("{described} still ran after {NAT_TIMEOUT:?}"));
    NatRun {
        command: described,
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn wait_or_kill(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait for natlens") {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

// ---------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// One address.
    Basic,
    /// RFC 5780: primary 127.0.0.1:P1, alternate 127.0.0.2:P2, serving all four mixes.
    Full,
}

/// A STUN server child process, killed when dropped (also when a test panics).
struct Server {
    child: Child,
    command: String,
    log: PathBuf,
    scratch: Vec<PathBuf>,
    primary: SocketAddr,
    alternate: Option<SocketAddr>,
}

impl Server {
    fn natlens(mode: Mode) -> Server {
        Self::start_with_retries(mode, |primary, alternate| {
            Self::natlens_command(primary, alternate)
        })
    }

    /// A basic-mode natlens server on `listen` (port 0: the kernel picks, the log tells).
    fn natlens_at(listen: SocketAddr) -> Server {
        let (cmd, scratch) = Self::natlens_command(listen, None);
        let mut server = Self::spawn(cmd, scratch, listen, None);
        let deadline = Instant::now() + READY_TIMEOUT;
        while server.primary.port() == 0 && Instant::now() < deadline {
            server.primary = server
                .log_text()
                .lines()
                .find_map(|line| {
                    line.split(" listening udp ")
                        .nth(1)?
                        .split(' ')
                        .next()?
                        .parse()
                        .ok()
                })
                .unwrap_or(server.primary);
            thread::sleep(Duration::from_millis(20));
        }
        server
            .wait_ready()
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log_text()));
        server
    }

    fn natlens_command(
        primary: SocketAddr,
        alternate: Option<SocketAddr>,
    ) -> (Command, Vec<PathBuf>) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_natlens"));
        cmd.args(["server", "--listen", &primary.to_string()]);
        if let Some(alternate) = alternate {
            cmd.args(["--alternate", &alternate.to_string()]);
        }
        (cmd, Vec::new())
    }

    /// coturn 4.6 in RFC 5780 mode: it turns that on when it has two listening IPs of one
    /// family and an alternate port.
    fn coturn(turnserver: &Path) -> Server {
        Self::start_with_retries(Mode::Full, |primary, alternate| {
            let alternate = alternate.expect("full mode");
            let pidfile = scratch_path("turnserver.pid");
            let mut cmd = Command::new(turnserver);
            cmd.args(["-n", "--stun-only", "--no-cli", "--no-tls", "--no-dtls"])
                .args(["--log-file=stdout", "--simple-log"])
                .arg(format!("--pidfile={}", pidfile.display()))
                .args(["--listening-ip", &primary.ip().to_string()])
                .args(["--listening-ip", &alternate.ip().to_string()])
                .args(["--listening-port", &primary.port().to_string()])
                .args(["--alt-listening-port", &alternate.port().to_string()]);
            (cmd, vec![pidfile])
        })
    }

    fn start_with_retries(
        mode: Mode,
        command: impl Fn(SocketAddr, Option<SocketAddr>) -> (Command, Vec<PathBuf>),
    ) -> Server {
        let ips: &[Ipv4Addr] = match mode {
            Mode::Basic => &[PRIMARY_IP],
            Mode::Full => &[PRIMARY_IP, ALTERNATE_IP],
        };
        for _ in 0..5 {
            let p1 = free_port(ips, None);
            let primary = SocketAddr::new(IpAddr::V4(PRIMARY_IP), p1);
            let alternate = (mode == Mode::Full)
                .then(|| SocketAddr::new(IpAddr::V4(ALTERNATE_IP), free_port(ips, Some(p1))));
            let (cmd, scratch) = command(primary, alternate);
            let mut server = Self::spawn(cmd, scratch, primary, alternate);
            match server.wait_ready() {
                Ok(()) => return server,
                // The ports were taken between choosing and binding them: try others.
                Err(_) if server.log_text().contains("in use") => continue,
                Err(e) => panic!(
                    "{} did not start: {e}\n{}",
                    server.command,
                    server.log_text()
                ),
            }
        }
        panic!("no free ports in 5 tries");
    }

    fn spawn(
        mut cmd: Command,
        scratch: Vec<PathBuf>,
        primary: SocketAddr,
        alternate: Option<SocketAddr>,
    ) -> Server {
        let log = scratch_path("server.log");
        let file = File::create(&log).expect("create server log");
        let command = format!("{cmd:?}");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
        Server {
            child,
            command,
            log,
            scratch,
            primary,
            alternate,
        }
    }

    /// Every address the server serves: the primary, or all four IP × port mixes.
    fn served_addresses(&self) -> Vec<SocketAddr> {
        match self.alternate {
            // The same four IP x port mixes the server itself binds.
            Some(alternate) => FullMode {
                primary: self.primary,
                alternate,
            }
            .addresses()
            .to_vec(),
            None => vec![self.primary],
        }
    }

    /// Waits until every served address answers a Binding over UDP and accepts TCP.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        for addr in self.served_addresses() {
            loop {
                if let Some(status) = self.child.try_wait().expect("wait for server") {
                    return Err(format!("exited: {status}"));
                }
                if Instant::now() >= deadline {
                    return Err(format!("no answer on {addr} within {READY_TIMEOUT:?}"));
                }
                if binding_answered(addr) && TcpStream::connect(addr).is_ok() {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for path in std::iter::once(&self.log).chain(&self.scratch) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A minimal Binding server answering from threads with natlens's own responder: over UDP, and
/// over TCP when asked, where it closes each connection right after its answer (as some servers
/// do). Without TCP nothing listens on its TCP port, so a TCP connect is refused.
struct Responder {
    addr: SocketAddr,
}

impl Responder {
    fn start(tcp: bool) -> Responder {
        let (socket, listener) = loop {
            let socket = UdpSocket::bind((PRIMARY_IP, 0)).expect("bind the UDP responder");
            if !tcp {
                break (socket, None);
            }
            // The same port over TCP; taken now and then, so try another.
            if let Ok(listener) = TcpListener::bind(socket.local_addr().unwrap()) {
                break (socket, Some(listener));
            }
        };
        let addr = socket.local_addr().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((len, from)) = socket.recv_from(&mut buf) {
                if let Some(answer) = answer(&buf[..len], Transport::Udp, addr, from) {
                    let _ = socket.send_to(&answer, from);
                }
            }
        });
        if let Some(listener) = listener {
            thread::spawn(move || {
                for mut stream in listener.incoming().map_while(Result::ok) {
                    let from = stream.peer_addr().unwrap();
                    let mut request = [0u8; 28];
                    // natlens's request: a 20-byte header and an 8-byte FINGERPRINT.
                    if stream.read_exact(&mut request).is_ok() {
                        if let Some(answer) = answer(&request, Transport::Tcp, addr, from) {
                            let _ = stream.write_all(&answer);
                        }
                    }
                }
            });
        }
        Responder { addr }
    }
}

/// natlens's Binding answer to `request`, if it gives one.
fn answer(
    request: &[u8],
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
) -> Option<Vec<u8>> {
    let message = Message::parse(request).ok()?;
    let rx = Received {
        transport,
        local,
        remote,
    };
    let mut out = Vec::new();
    match binding::answer(&message, rx, None, &mut out) {
        Outcome::Reply { .. } => Some(out),
        Outcome::Drop(_) => None,
    }
}

/// Sends one Binding request to `addr` and waits briefly for its success response.
fn binding_answered(addr: SocketAddr) -> bool {
    let any = SocketAddr::new(addr.ip(), 0);
    let Ok(socket) = UdpSocket::bind(any) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    let tid = *b"natlens-test";
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    request.extend_from_slice(&tid);
    if socket.send_to(&request, addr).is_err() {
        return false;
    }
    let mut buf = [0u8; 1500];
    while let Ok((n, _)) = socket.recv_from(&mut buf) {
        if n >= 20 && buf[0..2] == [0x01, 0x01] && buf[8..20] == tid {
            return true;
        }
    }
    false
}

/// A port free for UDP and TCP on every one of `ips`, other than `not`. It is released before
/// the server binds it; `start_with_retries` copes with the rare race.
fn free_port(ips: &[Ipv4Addr], not: Option<u16>) -> u16 {
    loop {
        let probe = UdpSocket::bind((ips[0], 0)).expect("bind a loopback UDP port");
        let port = probe.local_addr().expect("local addr").port();
        if Some(port) == not {
            continue;
        }
        let tcp_ok = ips.iter().all(|ip| TcpListener::bind((*ip, port)).is_ok());
        let udp_ok = ips[1..]
            .iter()
            .all(|ip| UdpSocket::bind((*ip, port)).is_ok());
        if tcp_ok && udp_ok {
            return port;
        }
    }
}

fn scratch_path(suffix: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("natlens-nat-{}-{n}-{suffix}", std::process::id()))
}

/// Finds `name` on PATH. Missing, it fails the test under CI and skips it otherwise.
fn require_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        });
    if found.is_none() {
        let message = format!("{name} not found on PATH (apt-get install coturn)");
        if std::env::var_os("CI").is_some() {
            panic!("{message}; CI must install it (.ci/run does)");
        }
        // Straight to stderr: libtest captures eprintln! of passing tests, and a skip must show.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: nat_loopback coturn test: {message}"
        );
    }
    found
}
