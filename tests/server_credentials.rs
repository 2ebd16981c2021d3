//! End to end on loopback with real processes: `natlens server --credentials`, `natlens login`
//! and `natlens call` with keys; a captured LOGIN replayed from other sockets; takeover of an
//! ID by a restarted client; a call reaching only its callee; the open-server warning; the
//! per-IP session cap and the answer token bucket, each seen in the stats line.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{binding_request, id_request, ServerProcess};
use natlens::core::credentials::{hmac_key, REALM};
use natlens::wire::attr::{decode_error_code, AttrType};
use natlens::wire::natlens as nl;
use natlens::wire::stun::{Class, Message, MessageType};
use natlens::wire::{MessageBuilder, TransactionId};
use serde_json::Value;

const KEYS: &[(&str, &str)] = &[
    ("alice", "alice-key"),
    ("bob", "bob-key"),
    ("carol", "carol-key"),
];

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("natlens-creds-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes `text` to `name` with `mode`; returns its path.
    fn file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.0.join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn credentials(&self) -> PathBuf {
        let text: String = KEYS
            .iter()
            .map(|(id, key)| format!("{id} {key}\n"))
            .collect();
        self.file("credentials", &format!("# test users\n{text}"), 0o600)
    }

    fn key(&self, id: &str) -> PathBuf {
        let key = KEYS.iter().find(|(i, _)| *i == id).unwrap().1;
        self.file(&format!("{id}.key"), &format!("{key}\n"), 0o600)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn server_with_credentials(scratch: &Scratch, extra: &[&str]) -> ServerProcess {
    let creds = scratch.credentials();
    let mut args = vec!["--listen", "127.0.0.1:0", "--credentials"];
    args.push(creds.to_str().unwrap());
    args.extend_from_slice(extra);
    ServerProcess::start(&args)
}

fn natlens() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command.stdin(Stdio::null()).env_remove("NATLENS_KEY");
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
        // SAFETY: kill(2) on a PID we spawned.
        unsafe { libc::kill(id as i32, libc::SIGKILL) };
    });
    let output = child.wait_with_output().unwrap();
    drop(watchdog);
    output
}

fn login_command(server: SocketAddr, id: &str, key: Option<&Path>) -> Command {
    let mut command = natlens();
    command.args(["login", "--server", &server.to_string(), "--id", id]);
    if let Some(key) = key {
        command.arg("--key-file").arg(key);
    }
    command
}

/// A `natlens login --json` holding a session; killed on drop.
struct Login {
    child: Child,
    lines: std::sync::mpsc::Receiver<Value>,
}

impl Login {
    fn start(server: SocketAddr, id: &str, key: &Path, extra: &[&str]) -> Login {
        let mut child = login_command(server, id, Some(key))
            .arg("--json")
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
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
        let first = login.next_event(Duration::from_secs(10)).expect("an event");
        assert_eq!(first["event"], "logged_in", "{first}");
        login
    }

    fn next_event(&mut self, timeout: Duration) -> Option<Value> {
        self.lines.recv_timeout(timeout).ok()
    }
}

impl Drop for Login {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn socket() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    socket
}

fn exchange(socket: &UdpSocket, server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    socket.send_to(bytes, server).unwrap();
    let mut buf = [0u8; 1500];
    let len = socket.recv(&mut buf).ok()?;
    Some(buf[..len].to_vec())
}

fn error_code(bytes: &[u8]) -> Option<u16> {
    Message::parse(bytes)
        .unwrap()
        .get(AttrType::ERROR_CODE)
        .map(|a| decode_error_code(a.value).unwrap().0)
}

/// A LOGIN signed the RFC 8489 long-term way, as a standard STUN library would build it.
fn signed_login(id: &str, key: &str, nonce: &[u8], tid: [u8; 12]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut builder = MessageBuilder::new(
        &mut buf,
        MessageType::new(nl::LOGIN, Class::Request),
        TransactionId(tid),
    );
    builder.attribute(nl::ID, id.as_bytes());
    builder.attribute(AttrType::USERNAME, id.as_bytes());
    builder.attribute(AttrType::REALM, REALM.as_bytes());
    builder.attribute(AttrType::NONCE, nonce);
    builder.message_integrity_sha256(&hmac_key(id, key));
    buf
}

#[test]
fn right_key_logs_in_and_a_wrong_or_missing_key_exits_3() {
    let scratch = Scratch::new("keys");
    let server = server_with_credentials(&scratch, &[]);
    let alice_key = scratch.key("alice");
    let mut ok = login_command(server.addr(), "alice", Some(&alice_key));
    ok.args(["--duration", "1s"]);
    let output = run(ok, Duration::from_secs(15));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The key may also come from the environment.
    let mut env = login_command(server.addr(), "bob", None);
    env.args(["--duration", "1s"]).env("NATLENS_KEY", "bob-key");
    assert!(run(env, Duration::from_secs(15)).status.success());

    let wrong = scratch.file("wrong.key", "not-the-key\n", 0o600);
    for key in [Some(wrong.as_path()), None] {
        let output = run(
            login_command(server.addr(), "alice", key),
            Duration::from_secs(15),
        );
        assert_eq!(output.status.code(), Some(3));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
        assert!(stderr.contains("refused the credentials"), "{stderr}");
    }
    let stats = server.stats();
    assert!(stats.contains("auth-failed=1"), "{stats}");
    assert!(server.log_lines("running open").is_empty());
}

#[test]
fn a_captured_login_replayed_from_other_sockets_is_refused() {
    let scratch = Scratch::new("replay");
    let server = server_with_credentials(&scratch, &[]);
    let alice = socket();
    let challenge = exchange(
        &alice,
        server.addr(),
        &id_request(nl::LOGIN, "alice", [1; 12]),
    )
    .expect("a 401");
    assert_eq!(error_code(&challenge), Some(401));
    let nonce = Message::parse(&challenge)
        .unwrap()
        .get(AttrType::NONCE)
        .unwrap()
        .value
        .to_vec();
    let captured = signed_login("alice", "alice-key", &nonce, [2; 12]);
    let answer = exchange(&alice, server.addr(), &captured).expect("logged in");
    assert_eq!(error_code(&answer), None);
    // The same bytes from another port of the same IP: silently refused.
    let thief = socket();
    assert_eq!(exchange(&thief, server.addr(), &captured), None);
    // From another loopback IP: the nonce is bound to 127.0.0.1.
    let elsewhere = UdpSocket::bind("127.0.0.2:0").unwrap();
    elsewhere
        .set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    let refused = exchange(&elsewhere, server.addr(), &captured).expect("a 438");
    assert_eq!(error_code(&refused), Some(438));
    // Alice's own retransmission still gets its answer, and the session is still hers.
    assert_eq!(
        error_code(&exchange(&alice, server.addr(), &captured).unwrap()),
        None
    );
    let keepalive = id_request(nl::KEEPALIVE, "alice", [3; 12]);
    assert_eq!(
        error_code(&exchange(&alice, server.addr(), &keepalive).unwrap()),
        None
    );
    let keepalive = id_request(nl::KEEPALIVE, "alice", [4; 12]);
    assert_eq!(
        error_code(&exchange(&thief, server.addr(), &keepalive).unwrap()),
        Some(437)
    );
    let stats = server.stats();
    assert!(
        stats.contains("replay=1") && stats.contains("stale-nonce=1"),
        "{stats}"
    );
}

#[test]
fn an_authenticated_relogin_from_a_new_port_takes_over() {
    let scratch = Scratch::new("takeover");
    let server = server_with_credentials(&scratch, &[]);
    let key = scratch.key("alice");
    // The first client dies without logging out (SIGKILL), leaving its UDP session behind.
    let mut first = Login::start(server.addr(), "alice", &key, &[]);
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let started = Instant::now();
    let _second = Login::start(server.addr(), "alice", &key, &[]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "taken over at once, not after the 45 s expiry"
    );
    assert!(server
        .wait_for_log("taken-over", Duration::from_secs(3))
        .is_some());
    // A live old client gives way on its next keepalive instead of taking the ID back.
    let mut old = Login::start(
        server.addr(),
        "bob",
        &scratch.key("bob"),
        &["--keepalive", "1s"],
    );
    let _new = Login::start(server.addr(), "bob", &scratch.key("bob"), &[]);
    let refused = old.next_event(Duration::from_secs(5)).expect("an event");
    assert_eq!(refused["event"], "login_refused", "{refused}");
    assert_eq!(refused["code"], 409);
    let status = old.child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(server.stats().contains("sessions udp=2"));
}

#[test]
fn a_call_between_keyed_users_reaches_only_the_callee() {
    let scratch = Scratch::new("call");
    let server = server_with_credentials(&scratch, &[]);
    let mut bob = Login::start(server.addr(), "bob", &scratch.key("bob"), &[]);
    let mut carol = Login::start(server.addr(), "carol", &scratch.key("carol"), &[]);
    let mut call = natlens();
    call.args([
        "call",
        "bob",
        "--server",
        &server.addr().to_string(),
        "--id",
        "alice",
    ])
    .arg("--key-file")
    .arg(scratch.key("alice"))
    .args(["--json", "--no-punch"]);
    let output = run(call, Duration::from_secs(20));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let incoming = bob
        .next_event(Duration::from_secs(5))
        .expect("bob is called");
    assert_eq!(incoming["event"], "incoming_call");
    assert_eq!(incoming["caller"], "alice");
    assert_eq!(incoming["call_id"], report["call_id"]);
    assert_eq!(
        incoming["caller_facts"]["public_address"],
        report["own_public_address"]
    );
    assert!(
        report["callee_facts"]["public_address"].is_string(),
        "{report}"
    );
    assert!(
        carol.next_event(Duration::from_secs(2)).is_none(),
        "carol must receive nothing"
    );
    // A caller without a key never gets through.
    let mut keyless = natlens();
    keyless
        .args([
            "call",
            "bob",
            "--server",
            &server.addr().to_string(),
            "--id",
            "mallory",
        ])
        .arg("--no-punch");
    assert_eq!(run(keyless, Duration::from_secs(20)).status.code(), Some(3));
    assert!(bob.next_event(Duration::from_secs(1)).is_none());
}

#[test]
fn an_open_server_says_so_and_bad_credentials_files_are_explained() {
    let open = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    assert!(open
        .wait_for_log("running open", Duration::from_secs(3))
        .is_some());
    let json = ServerProcess::start(&["--listen", "127.0.0.1:0", "--json"]);
    let line = json
        .wait_for_log("running open", Duration::from_secs(3))
        .unwrap();
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["event"], "warning");

    let scratch = Scratch::new("files");
    let malformed = scratch.file("bad", "alice key\n# fine\nbob\n", 0o600);
    let mut command = natlens();
    command.args(["server", "--listen", "127.0.0.1:0", "--credentials"]);
    command.arg(&malformed);
    let output = run(command, Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 3"), "{stderr}");

    let readable = scratch.file("readable", "alice key\n", 0o644);
    let server = ServerProcess::start(&[
        "--listen",
        "127.0.0.1:0",
        "--credentials",
        readable.to_str().unwrap(),
    ]);
    assert!(server
        .wait_for_log("readable by other users", Duration::from_secs(3))
        .is_some());
    assert!(server.log_lines("running open").is_empty());
}

#[test]
fn the_per_ip_cap_and_the_token_bucket_bite_and_are_counted() {
    let server = ServerProcess::start(&[
        "--listen",
        "127.0.0.1:0",
        "--max-sessions-per-ip",
        "2",
        "--answer-rate",
        "50",
    ]);
    let sockets: Vec<UdpSocket> = (0..3).map(|_| socket()).collect();
    let codes: Vec<Option<u16>> = sockets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let login = id_request(nl::LOGIN, &format!("user{i}"), [i as u8 + 1; 12]);
            error_code(&exchange(s, server.addr(), &login).unwrap())
        })
        .collect();
    assert_eq!(codes, [None, None, Some(486)]);

    // A burst of 500 Bindings from one (other) address: the bucket holds 100 answers.
    let flood = UdpSocket::bind("127.0.0.3:0").unwrap();
    flood
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let started = Instant::now();
    for i in 0..500u32 {
        let mut tid = [9u8; 12];
        tid[..4].copy_from_slice(&i.to_be_bytes());
        flood.send_to(&binding_request(tid), server.addr()).unwrap();
    }
    let sent_in = started.elapsed();
    let mut answered = 0;
    let mut buf = [0u8; 512];
    while flood.recv(&mut buf).is_ok() {
        answered += 1;
    }
    // 100 from the burst, plus what 50/s refills while the burst is sent.
    let refill = (sent_in.as_secs_f64() * 50.0).ceil() as usize + 1;
    assert!(
        (100..=100 + refill).contains(&answered),
        "{answered} answered (refill allowance {refill})"
    );
    let stats = server.stats();
    assert!(stats.contains("per-ip-limit=1"), "{stats}");
    assert!(
        stats.contains(&format!("rate-limited={}", 500 - answered)),
        "{stats}"
    );
}

/// The effective capabilities of a process's main thread, from /proc.
fn effective_caps(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .expect("CapEff line");
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn the_server_serves_without_capabilities_once_bound() {
    // Started by root, the server still binds a privileged port, then drops every capability.
    let root = effective_caps(std::process::id()) != 0;
    // A privileged port unlikely to be taken (other test runs pick by their own PID).
    let port = if root {
        600 + std::process::id() % 400
    } else {
        0
    };
    let listen = format!("127.0.0.1:{port}");
    let server = ServerProcess::start(&["--listen", &listen]);
    let pid = server.pid();
    assert_eq!(effective_caps(pid), 0, "CapEff of the serving thread");
    let answer = exchange(&socket(), server.addr(), &binding_request([5; 12])).expect("served");
    assert_eq!(error_code(&answer), None);
    if !root {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"note: not root, so the capability drop was not exercised on a privileged port\n",
        );
    }
}

#[test]
fn a_keyed_call_crosses_two_federated_servers_with_credentials() {
    // Each server holds its own users' keys; the link between them is an operator link.
    let scratch = Scratch::new("federation");
    let creds = scratch.credentials();
    let creds = creds.to_str().unwrap();
    let home = ServerProcess::start(&[
        "--listen",
        "127.0.0.1:0",
        "--name",
        "home",
        "--credentials",
        creds,
    ]);
    let home_addr = home.addr().to_string();
    let away = ServerProcess::start(&[
        "--listen",
        "127.0.0.1:0",
        "--name",
        "away",
        "--link",
        &home_addr,
        "--credentials",
        creds,
    ]);
    assert!(away
        .wait_for_log("peer_up", Duration::from_secs(5))
        .is_some());
    let mut bob = Login::start(home.addr(), "bob", &scratch.key("bob"), &[]);
    let mut call = natlens();
    call.args([
        "call",
        "bob",
        "--server",
        &away.addr().to_string(),
        "--id",
        "alice",
    ])
    .arg("--key-file")
    .arg(scratch.key("alice"))
    .args(["--json", "--no-punch"]);
    let output = run(call, Duration::from_secs(20));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let incoming = bob
        .next_event(Duration::from_secs(5))
        .expect("bob is called");
    assert_eq!(incoming["caller"], "alice");
}
