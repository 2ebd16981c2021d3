//! Clients that fail over, on loopback with real processes: federated servers (static --link),
//! clients given `--server S1 --server S2` with `--keepalive 1s`. When S1 is SIGKILLed (or
//! frozen with SIGSTOP, so that nothing at all answers), each client must move to S2 and be
//! logged in there within two keepalive intervals, and must then be callable through S2 or
//! through a third server linked to it. A call waiting on the lost server fails at once with
//! an error naming it. A first server that is down at start is passed over by listen and call,
//! which then punch as usual.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::event_client::{call_no_punch, Client};
use common::ServerProcess;
use serde_json::Value;

const KEEPALIVE: Duration = Duration::from_secs(1);

fn natlens(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command
        .args(args)
        .stdin(Stdio::null())
        .env_remove("NATLENS_SERVER")
        .env_remove("NATLENS_KEY");
    command
}

/// Checks that the client moved from `from` to `to` and logged in there within two
/// keepalive intervals of `lost_at`; the failures found, as lines.
fn check_moved(
    client: &mut Client,
    from: SocketAddr,
    to: SocketAddr,
    lost_at: Instant,
    during: &str,
) -> Vec<String> {
    let mut failures = Vec::new();
    let name = client.name.clone();
    match client.wait_for("server_changed", KEEPALIVE * 4) {
        Some((_, moved)) => {
            let expected = (from.to_string(), to.to_string(), during);
            let got = (
                moved["from"].as_str().unwrap_or_default().to_owned(),
                moved["server"].as_str().unwrap_or_default().to_owned(),
                moved["during"].as_str().unwrap_or_default(),
            );
            if got != expected {
                failures.push(format!("{name}: moved {got:?}, expected {expected:?}"));
            }
        }
        None => failures.push(format!("{name}: did not move: {:?}", client.seen)),
    }
    match client.wait_for("relogin", KEEPALIVE * 4) {
        Some((at, relogin)) => {
            let took = at.duration_since(lost_at);
            eprintln!(
                "  {name:<24} logged in on {to} {:>4} ms after",
                took.as_millis()
            );
            if took > KEEPALIVE * 2 {
                failures.push(format!("{name}: took {took:?} to log in on {to}"));
            }
            if relogin["server"] != to.to_string() {
                failures.push(format!("{name}: relogin names {}", relogin["server"]));
            }
        }
        None => failures.push(format!("{name}: no relogin: {:?}", client.seen)),
    }
    failures
}

/// `--server` once per server, `--keepalive 1s`, `--id ID`, `--json`.
fn session_args(servers: &[SocketAddr], id: &str) -> Vec<String> {
    let mut args: Vec<String> = servers
        .iter()
        .flat_map(|server| ["--server".to_owned(), server.to_string()])
        .collect();
    let keepalive = format!("{}ms", KEEPALIVE.as_millis());
    args.extend(["--id", id, "--keepalive", &keepalive, "--json"].map(String::from));
    args
}

fn listen(servers: &[SocketAddr], id: &str, transport: &str) -> Client {
    let mut command = natlens(&["listen", "--login-transport", transport, "--no-data"]);
    command.args(session_args(servers, id));
    let mut client = Client::start(&format!("listen {id} over {transport}"), command);
    let ready = client.wait_for("waiting", Duration::from_secs(15));
    assert!(
        ready.is_some(),
        "{} never waited: {:?}",
        client.name,
        client.seen
    );
    client
}

fn login(servers: &[SocketAddr], id: &str, transport: &str) -> Client {
    let mut command = natlens(&["login", "--login-transport", transport]);
    command.args(session_args(servers, id));
    let mut client = Client::start(&format!("login {id} over {transport}"), command);
    let ready = client.wait_for("logged_in", Duration::from_secs(15));
    assert!(
        ready.is_some(),
        "{} never logged in: {:?}",
        client.name,
        client.seen
    );
    client
}

/// Three federated servers: s2 links to s1, s3 to both.
fn three_servers(extra: &[&str]) -> [ServerProcess; 3] {
    let start = |name: &str, links: &[SocketAddr]| {
        let mut args = vec!["--listen", "127.0.0.1:0", "--name", name];
        args.extend_from_slice(extra);
        let links: Vec<String> = links.iter().map(|l| l.to_string()).collect();
        for link in &links {
            args.extend(["--link", link]);
        }
        ServerProcess::start(&args)
    };
    let s1 = start("s1", &[]);
    let s2 = start("s2", &[s1.addr()]);
    let s3 = start("s3", &[s1.addr(), s2.addr()]);
    for (server, links) in [(&s2, 1), (&s3, 2)] {
        let up = server.wait_for_count("peer_up", links, Duration::from_secs(5));
        assert!(up >= links, "links up: {:?}", server.log_lines(""));
    }
    [s1, s2, s3]
}

fn signal(server: &ServerProcess, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(server.pid()).unwrap();
    // SAFETY: kill(2) on a child process this test started and still owns.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

#[test]
fn clients_of_a_killed_server_move_to_the_next_and_stay_callable() {
    let [s1, s2, s3] = three_servers(&[]);
    let (a1, a2, a3) = (s1.addr(), s2.addr(), s3.addr());
    let mut clients = vec![
        (listen(&[a1, a2], "fail-lu", "udp"), a2),
        (listen(&[a1, a2], "fail-lt", "tcp"), a3),
        (login(&[a1, a2], "fail-gt", "tcp"), a3),
        (login(&[a1, a2], "fail-gu", "udp"), a2),
    ];
    // Let the keepalives run, so that the kill lands at an arbitrary point of the interval.
    std::thread::sleep(KEEPALIVE * 3 / 2);
    let killed = Instant::now();
    drop(s1);
    eprintln!("s1 ({a1}) SIGKILLed; keepalive {KEEPALIVE:?}:");
    let mut failures = Vec::new();
    for (client, _) in &mut clients {
        // UDP finds out by its keepalive (answered by ICMP port unreachable on loopback), TCP
        // by the closed connection that cannot be dialled again.
        let during = if client.name.ends_with("udp") {
            "keepalive"
        } else {
            "connection"
        };
        failures.extend(check_moved(client, a1, a2, killed, during));
    }
    for (client, via) in &clients {
        let id = client.name.split(' ').nth(1).unwrap();
        if let Err(why) = call_no_punch(*via, &format!("{id}-caller"), id, None) {
            failures.push(format!("{}: not callable via {via}: {why}", client.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    drop(s3);
}

#[test]
fn keyed_logins_given_their_servers_in_natlens_server_leave_a_frozen_one() {
    let scratch = Scratch::new();
    let creds = scratch.credentials();
    let creds = creds.to_str().unwrap();
    let [k1, k2, k3] = three_servers(&["--credentials", creds]);
    let (a1, a2) = (k1.addr(), k2.addr());
    let keyed = |id: &str, transport: &str| {
        let mut command = natlens(&["login", "--id", id, "--keepalive", "1s", "--json"]);
        if id == "alice" {
            // Long enough for the move and the call; then the summary names the server.
            command.args(["--duration", "5s"]);
        }
        // The servers in NATLENS_SERVER, comma-separated; the key in NATLENS_KEY.
        command
            .args(["--login-transport", transport])
            .env("NATLENS_SERVER", format!("{a1},{a2}"))
            .env("NATLENS_KEY", format!("{id}-key"));
        let mut client = Client::start(&format!("keyed login {id} over {transport}"), command);
        let ready = client.wait_for("logged_in", Duration::from_secs(15));
        let server = ready.map(|(_, event)| event["server"].clone());
        assert_eq!(server, Some(a1.to_string().into()), "{:?}", client.seen);
        client
    };
    let mut clients = [keyed("alice", "udp"), keyed("carol", "tcp")];
    std::thread::sleep(KEEPALIVE * 3 / 2);
    // Frozen: no answer, no ICMP, no FIN. Only the silence tells.
    let frozen = Instant::now();
    signal(&k1, libc::SIGSTOP);
    eprintln!("k1 ({a1}) frozen; keepalive {KEEPALIVE:?}:");
    let mut failures = Vec::new();
    for client in &mut clients {
        failures.extend(check_moved(client, a1, a2, frozen, "keepalive"));
    }
    for (id, via) in [("alice", a2), ("carol", k3.addr())] {
        if let Err(why) = call_no_punch(via, "bob", id, Some("bob-key")) {
            failures.push(format!("{id}: not callable via {via}: {why}"));
        }
    }
    let summary = clients[0].final_object(Duration::from_secs(6));
    let server = summary.as_ref().map(|summary| summary["server"].clone());
    if server != Some(a2.to_string().into()) {
        failures.push(format!("alice's summary: {summary:?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    drop(k1);
}

#[test]
fn a_call_waiting_on_a_killed_server_fails_at_once_naming_it() {
    let [s1, s2, _s3] = three_servers(&[]);
    let (a1, a2) = (s1.addr(), s2.addr());
    // A callee that never answers: logged in on s1, then frozen, so that s1 holds the call.
    let callee = login(&[a1], "fail-silent", "udp");
    signal_child(&callee.child, libc::SIGSTOP);
    let mut command = natlens(&["call", "fail-silent", "--no-punch", "--call-timeout", "8s"]);
    command.args(session_args(&[a1, a2], "fail-caller"));
    let started = Instant::now();
    let caller = command
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(KEEPALIVE);
    drop(s1);
    let output = caller.wait_with_output().unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The failure object, on the stream the answer would have gone to (stdout).
    let failure: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    let message = failure["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        message.contains(&format!("{a1} stopped answering")),
        "{failure} {stderr}"
    );
    assert!(took < Duration::from_secs(6), "took {took:?}: {stderr}");
    signal_child(&callee.child, libc::SIGCONT);
}

fn signal_child(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on a child process this test started and still owns.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// A scratch directory with the servers' credentials, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("natlens-failover-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn credentials(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join("credentials");
        std::fs::write(&path, "alice alice-key\nbob bob-key\ncarol carol-key\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_first_server_that_is_down_at_start_is_passed_over_by_listen_and_call() {
    let up = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    // A loopback port nothing listens on: UDP answers it with ICMP port unreachable.
    let down = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let servers = [down, up.addr()];
    let mut callee = listen(&servers, "fail-late", "udp");
    let logged_in = callee.seen.iter().find(|e| e["event"] == "logged_in");
    let server = logged_in.map(|event| event["server"].clone());
    assert_eq!(
        server,
        Some(up.addr().to_string().into()),
        "{:?}",
        callee.seen
    );
    let mut command = natlens(&["call", "fail-late", "--no-data", "--punch-timeout", "3s"]);
    command.args(session_args(&servers, "fail-early"));
    let output = command.output().expect("running natlens call");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(r#""event":"server_changed""#), "{stderr}");
    assert!(callee
        .wait_for("connected", Duration::from_secs(5))
        .is_some());
}
