//! End to end on loopback: real `natlens server`, `natlens login` and `natlens call` processes.
//! Logins over TCP and UDP, calls relayed both ways, the same across two federated servers, a
//! taken ID refused, a silent UDP session expiring, unknown IDs and federation loops ending in
//! "not found" quickly.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{id_request, ServerProcess};
use natlens::wire::attr::{decode_error_code, AttrType};
use natlens::wire::natlens as nl;
use natlens::wire::stun::Message;
use serde_json::Value;

fn natlens() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command.stdin(Stdio::null());
    command
}

/// Runs a command to completion, killing it after `timeout`.
fn run(mut command: Command, timeout: Duration) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn natlens");
    let id = child.id();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(timeout);
        // SAFETY: kill(2) on a PID we spawned; harmless if it already exited and was reaped
        // only in the unlikely case of PID reuse within the timeout.
        unsafe { libc::kill(id as i32, libc::SIGKILL) };
    });
    let output = child.wait_with_output().unwrap();
    drop(watchdog);
    output
}

/// A `natlens login --json` holding a session; killed on drop.
struct Login {
    child: Child,
    lines: std::sync::mpsc::Receiver<Value>,
}

impl Login {
    fn start(server: SocketAddr, id: &str, transport: &str, extra: &[&str]) -> (Login, Value) {
        let mut child = natlens()
            .args([
                "login",
                "--server",
                &server.to_string(),
                "--id",
                id,
                "--transport",
                transport,
                "--json",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(value);
                }
            }
        });
        let mut login = Login { child, lines };
        let first = login.next_event(Duration::from_secs(10));
        assert_eq!(first["event"], "logged_in", "{first}");
        (login, first)
    }

    fn next_event(&mut self, timeout: Duration) -> Value {
        self.lines
            .recv_timeout(timeout)
            .expect("an event from natlens login")
    }
}

impl Drop for Login {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(server: SocketAddr, me: &str, callee: &str, transport: &str) -> Output {
    let mut command = natlens();
    command.args([
        "call",
        callee,
        "--server",
        &server.to_string(),
        "--id",
        me,
        "--login-transport",
        transport,
        "--json",
        "--no-punch",
    ]);
    run(command, Duration::from_secs(20))
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "natlens call failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

/// Checks one relayed call: each side learnt the other's public address as its server saw it.
fn assert_relayed(
    server_for_call: SocketAddr,
    caller: &str,
    callee: &mut Login,
    callee_observed: &Value,
    transport: &str,
) {
    let report = json(&call(
        server_for_call,
        caller,
        callee_id(callee_observed),
        transport,
    ));
    assert_eq!(report["schema_version"], 2);
    assert_eq!(
        report["callee_facts"]["public_address"], callee_observed["public_address"],
        "{report}"
    );
    let incoming = callee.next_event(Duration::from_secs(5));
    assert_eq!(incoming["event"], "incoming_call", "{incoming}");
    assert_eq!(incoming["caller"], caller);
    assert_eq!(incoming["call_id"], report["call_id"]);
    assert_eq!(
        incoming["caller_facts"]["public_address"], report["own_public_address"],
        "the callee sees the caller's public address"
    );
    assert_eq!(
        report["callee_facts"]["transports"][callee_observed["transport"].as_str().unwrap()],
        true
    );
}

fn callee_id(logged_in: &Value) -> &str {
    logged_in["id"].as_str().unwrap()
}

#[test]
fn tcp_and_udp_clients_call_each_other_both_ways() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let (mut bob, bob_in) = Login::start(server.addr(), "bob", "udp", &[]);
    let (mut alice, alice_in) = Login::start(server.addr(), "alice", "tcp", &[]);
    // A third party calls each of them over the other transport.
    assert_relayed(server.addr(), "carol", &mut bob, &bob_in, "tcp");
    assert_relayed(server.addr(), "dave", &mut alice, &alice_in, "udp");
    assert_eq!(
        server.wait_for_count("outcome=answered", 2, Duration::from_secs(3)),
        2
    );
}

#[test]
fn calls_cross_two_federated_servers_both_ways() {
    let s1 = ServerProcess::start(&["--listen", "127.0.0.1:0", "--name", "s1"]);
    let s2 = ServerProcess::start(&[
        "--listen",
        "127.0.0.1:0",
        "--name",
        "s2",
        "--link",
        &s1.addr().to_string(),
    ]);
    assert!(
        s1.wait_for_log("peer_up", Duration::from_secs(5)).is_some(),
        "link s2 -> s1"
    );
    assert!(
        s2.wait_for_log("peer_up", Duration::from_secs(5)).is_some(),
        "link s1 -> s2"
    );
    let (mut bob, bob_in) = Login::start(s2.addr(), "bob", "tcp", &[]);
    let (mut alice, alice_in) = Login::start(s1.addr(), "alice", "udp", &[]);
    // A caller on s1 reaches bob on s2, a caller on s2 reaches alice on s1.
    assert_relayed(s1.addr(), "carol", &mut bob, &bob_in, "udp");
    assert_relayed(s2.addr(), "dave", &mut alice, &alice_in, "tcp");
    assert!(s2
        .log_lines("from=s1")
        .iter()
        .any(|line| line.contains("callee=bob")));
    assert!(s1
        .log_lines("from=s2")
        .iter()
        .any(|line| line.contains("callee=alice")));
}

#[test]
fn unknown_ids_and_federation_loops_end_in_not_found_fast() {
    let s1 = ServerProcess::start(&["--listen", "127.0.0.1:0", "--name", "s1"]);
    let s2 = ServerProcess::start(&[
        "--listen",
        "127.0.0.1:0",
        "--name",
        "s2",
        "--peer",
        &s1.addr().to_string(),
    ]);
    // Both dial each other: two links between the same pair, the classic loop. (`--peer`
    // is the older name of `--link`, still accepted.)
    let s3 = ServerProcess::start(&[
        "--listen",
        "127.0.0.1:0",
        "--name",
        "s3",
        "--link",
        &s1.addr().to_string(),
        "--peer",
        &s2.addr().to_string(),
    ]);
    for server in [&s1, &s2, &s3] {
        assert!(server
            .wait_for_log("peer_up", Duration::from_secs(5))
            .is_some());
    }
    let started = Instant::now();
    let output = call(s1.addr(), "alice", "ghost", "udp");
    assert_eq!(output.status.code(), Some(natlens::exit::NO_CALLEE.into()));
    // With --json, the failure object on stdout words it.
    let failure: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    let message = failure["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("404") && message.contains("ghost"),
        "{failure}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "not found must not wait for timeouts: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_taken_id_is_refused_with_a_clear_error() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let (_holder, _) = Login::start(server.addr(), "erin", "tcp", &[]);
    for transport in ["udp", "tcp"] {
        let mut command = natlens();
        command.args([
            "login",
            "--server",
            &server.addr().to_string(),
            "--id",
            "erin",
            "--transport",
            transport,
        ]);
        let output = run(command, Duration::from_secs(15));
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("already logged in") && stderr.contains("409"),
            "{stderr}"
        );
    }
    assert_eq!(
        server.wait_for_count("login_refused", 2, Duration::from_secs(3)),
        2
    );
}

#[test]
fn a_silent_udp_session_expires_and_must_log_in_again() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0", "--udp-expiry", "1s"]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(server.addr()).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 512];
    socket
        .send(&id_request(nl::LOGIN, "frank", [1; 12]))
        .unwrap();
    let len = socket.recv(&mut buf).unwrap();
    assert!(Message::parse(&buf[..len])
        .unwrap()
        .get(AttrType::ERROR_CODE)
        .is_none());
    let line = server
        .wait_for_log("expire", Duration::from_secs(4))
        .expect("an expire event");
    assert!(line.contains("id=frank"), "{line}");
    socket
        .send(&id_request(nl::KEEPALIVE, "frank", [2; 12]))
        .unwrap();
    let len = socket.recv(&mut buf).unwrap();
    let message = Message::parse(&buf[..len]).unwrap();
    let code = decode_error_code(message.get(AttrType::ERROR_CODE).unwrap().value)
        .unwrap()
        .0;
    assert_eq!(code, nl::error::NO_SESSION);
}

#[test]
fn a_udp_login_with_keepalives_outlives_the_expiry() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0", "--udp-expiry", "2s"]);
    let (mut held, _) = Login::start(server.addr(), "gina", "udp", &["--keepalive", "500ms"]);
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        server.log_lines("expire").is_empty(),
        "keep-alives must hold the session"
    );
    let report = json(&call(server.addr(), "hank", "gina", "udp"));
    assert_eq!(report["callee"], "gina");
    assert_eq!(
        held.next_event(Duration::from_secs(5))["event"],
        "incoming_call"
    );
}

#[test]
fn ipv4_and_ipv6_listeners_reflect_their_own_family() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0", "--listen", "[::1]:0"]);
    assert_eq!(server.addrs.len(), 2, "{:?}", server.addrs);
    for (bind, target) in [
        ("127.0.0.1:0", server.addrs[0]),
        ("[::1]:0", server.addrs[1]),
    ] {
        let socket = UdpSocket::bind(bind).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        socket
            .send_to(&common::binding_request([6; 12]), target)
            .unwrap();
        let mut buf = [0u8; 512];
        let len = socket.recv(&mut buf).unwrap();
        let message = Message::parse(&buf[..len]).unwrap();
        let value = message.get(AttrType::XOR_MAPPED_ADDRESS).unwrap().value;
        let mapped =
            natlens::wire::attr::decode_xor_address(value, &message.transaction_id()).unwrap();
        assert_eq!(mapped, socket.local_addr().unwrap());
    }
}

#[test]
fn json_log_is_one_object_per_line_with_event_and_timestamp() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0", "--json"]);
    let (_bob, _) = Login::start(server.addr(), "ivy", "udp", &[]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .send_to(b"not stun at all, just noise", server.addr())
        .unwrap();
    assert!(server
        .wait_for_log("\"drop\"", Duration::from_secs(3))
        .is_some());
    let stats = server.stats();
    let lines = server.log.lock().unwrap().clone();
    let events: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect();
    for event in &events {
        assert!(
            event["event"].is_string() && event["ts"].is_string(),
            "{event}"
        );
    }
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for kind in ["listening", "login", "drop", "stats"] {
        assert!(kinds.contains(&kind), "no {kind} event in {kinds:?}");
    }
    let login = events.iter().find(|e| e["event"] == "login").unwrap();
    assert_eq!(
        (login["id"].as_str(), login["transport"].as_str()),
        (Some("ivy"), Some("udp"))
    );
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["sessions_udp"], 1);
    assert_eq!(stats["counters"]["drops"]["not-stun"], 1);
}
