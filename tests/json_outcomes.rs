//! `--json` on every outcome, through the real binary on loopback: each command ends with
//! exactly one final JSON object (schema_version, result, and error {kind, message} when it did
//! not succeed) on the stream its report goes to, every line of an NDJSON stream parses as JSON,
//! and the exit code is the one `error.kind` names (`natlens::exit::KINDS`).

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use common::{interrupt_after, lines_of, ServerProcess};
use natlens::core::binding::{self, Outcome, Received};
use natlens::core::Transport;
use natlens::exit;
use natlens::wire::stun::Message;
use serde_json::Value;

fn natlens(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command.args(args).stdin(Stdio::null());
    command
}

fn run(args: &[&str]) -> Output {
    natlens(args).output().expect("running natlens")
}

/// Every line of `text` as JSON; panics naming the line that is not.
fn json_lines(text: &[u8], case: &str) -> Vec<Value> {
    String::from_utf8_lossy(text)
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{case}: a line that is not JSON ({e}): {line:?}"))
        })
        .collect()
}

/// Checks the final object (`stream`'s last line) against the exit status and returns it:
/// `natlens nat`'s schema_version (2 since its IPv6 results moved to `ipv6`).
const NAT_SCHEMA: u64 = 2;

/// schema_version, `result`, and for a failure `error.kind` matching the exit code.
fn assert_final(stream: &[Value], code: Option<i32>, schema: u64, case: &str) -> Value {
    let last = stream
        .last()
        .unwrap_or_else(|| panic!("{case}: no final object"))
        .clone();
    assert!(last.get("event").is_none(), "{case}: {last}");
    assert_eq!(last["schema_version"], schema, "{case}: {last}");
    let finals = stream.iter().filter(|v| v.get("event").is_none()).count();
    assert_eq!(finals, 1, "{case}: exactly one final object: {stream:#?}");
    let code = code.unwrap_or_else(|| panic!("{case}: killed by a signal"));
    if code == 0 {
        assert!(last.get("error").is_none(), "{case}: {last}");
    } else {
        let kind = last["error"]["kind"].as_str().unwrap_or_default();
        let expected = exit::kind_name_of_code(code as u8);
        assert_eq!(kind, expected, "{case}: exit {code}: {last}");
        assert!(
            last["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{case}: {last}"
        );
        let result = if kind == "interrupted" {
            "interrupted"
        } else {
            "failed"
        };
        if last["result"] != "partial" {
            assert_eq!(last["result"], result, "{case}: {last}");
        }
    }
    last
}

/// A loopback UDP port nothing listens on (the kernel answers ICMP port unreachable).
fn closed_udp_port() -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().to_string()
}

/// A STUN server that answers over UDP only: TCP to its port is refused.
fn udp_only_stun() -> SocketAddr {
    let socket = loop {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Nothing listens on the same TCP port (checked by binding it, then letting it go).
        if TcpListener::bind(socket.local_addr().unwrap()).is_ok() {
            break socket;
        }
    };
    let local = socket.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((len, remote)) = socket.recv_from(&mut buf) {
            let Ok(message) = Message::parse(&buf[..len]) else {
                continue;
            };
            let rx = Received {
                transport: Transport::Udp,
                local,
                remote,
            };
            let mut out = Vec::new();
            if let Outcome::Reply { .. } = binding::answer(&message, rx, None, &mut out) {
                let _ = socket.send_to(&out, remote);
            }
        }
    });
    local
}

// ---------------------------------------------------------------------------------------------
// nat
// ---------------------------------------------------------------------------------------------

#[test]
fn nat_dead_server_ends_with_server_unreachable() {
    let server = closed_udp_port();
    let out = run(&[
        "nat",
        "-s",
        &server,
        "-t",
        "udp",
        "--timeout",
        "300ms",
        "--json",
    ]);
    let stdout = json_lines(&out.stdout, "nat dead");
    let last = assert_final(&stdout, out.status.code(), NAT_SCHEMA, "nat dead");
    assert_eq!(out.status.code(), Some(exit::UNREACHABLE.into()));
    assert_eq!(stdout.len(), 1);
    assert!(last["error"]["message"].as_str().unwrap().contains(&server));
}

#[test]
fn nat_heard_over_udp_only_is_partial() {
    let server = udp_only_stun().to_string();
    let out = run(&["nat", "-s", &server, "--json"]);
    // Pretty-printed: one object over several lines.
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let last = assert_final(&[report], out.status.code(), NAT_SCHEMA, "nat partial");
    assert_eq!(out.status.code(), Some(exit::PARTIAL.into()));
    assert_eq!(last["result"], "partial");
    assert_eq!(last["error"]["kind"], "partial");
    assert!(last["udp"]["public_address"].is_string(), "{last}");
    assert!(last["tcp"]["public_address"].is_null(), "{last}");
}

#[test]
fn nat_interrupted_ends_with_130_and_the_interrupted_object() {
    // A server that swallows every request: natlens waits for its first answer.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let child = natlens(&[
        "nat",
        "-s",
        &server,
        "-t",
        "udp",
        "--timeout",
        "20s",
        "--json",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    // Once the run probes (its handler is installed before the first probe).
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    silent.recv_from(&mut [0u8; 1500]).expect("a probe");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stdout = json_lines(&out.stdout, "nat ^C");
    let last = assert_final(&stdout, out.status.code(), NAT_SCHEMA, "nat ^C");
    assert_eq!(out.status.code(), Some(exit::INTERRUPTED.into()));
    assert_eq!(last["result"], "interrupted");
}

#[test]
fn usage_errors_print_the_usage_object() {
    for (args, schema) in [
        (
            &["nat", "-s", "127.0.0.1:9", "--samples", "1", "--json"][..],
            NAT_SCHEMA,
        ),
        (&["listen", "-s", "127.0.0.1:9", "--id", "a b", "--json"], 2),
        (&["login", "--json", "-s", "127.0.0.1:9"], 2),
        (&["server", "--json", "--udp-expiry", "0s"], 2),
    ] {
        let case = format!("{args:?}");
        let out = run(args);
        let stdout = json_lines(&out.stdout, &case);
        let last = assert_final(&stdout, out.status.code(), schema, &case);
        assert_eq!(out.status.code(), Some(exit::USAGE.into()), "{case}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("error: "),
            "{case}: clap's text stays: {stderr}"
        );
        let message = last["error"]["message"].as_str().unwrap();
        assert!(stderr.contains(message), "{case}: {message:?} vs {stderr}");
    }
    // --help and --version print as they always have.
    let help = run(&["nat", "--help", "--json"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("JSON OUTPUT"));
}

// ---------------------------------------------------------------------------------------------
// call, listen, login, server
// ---------------------------------------------------------------------------------------------

#[test]
fn an_unknown_callee_ends_with_callee_unavailable_where_the_report_goes() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let addr = server.addr().to_string();
    let base = [
        "call",
        "nobody",
        "-s",
        addr.as_str(),
        "--id",
        "bob",
        "--json",
    ];
    // (extra flags, whether the final object is on stdout)
    for (extra, on_stdout) in [
        (&["--no-punch"][..], true),
        (&[][..], false),
        (&["--no-data"][..], true),
    ] {
        let case = format!("call {extra:?}");
        let out = natlens(&base).args(extra).output().unwrap();
        assert_eq!(out.status.code(), Some(exit::NO_CALLEE.into()), "{case}");
        let (stdout, stderr) = (
            json_lines(&out.stdout, &case),
            json_lines(&out.stderr, &case),
        );
        let (finals, events) = if on_stdout {
            (stdout, stderr)
        } else {
            assert!(stdout.is_empty(), "{case}: stdout carries only data");
            (stderr, Vec::new())
        };
        let last = assert_final(&finals, out.status.code(), 2, &case);
        assert!(
            last["error"]["message"]
                .as_str()
                .unwrap()
                .contains("\"nobody\" is not logged in"),
            "{case}: {last}"
        );
        assert!(events.iter().all(|e| e.get("event").is_some()), "{case}");
    }
}

#[test]
fn login_to_a_dead_server_ends_with_server_unreachable() {
    let server = closed_udp_port();
    let out = run(&["login", "-s", &server, "--id", "alice", "--json"]);
    let stdout = json_lines(&out.stdout, "login dead");
    assert_final(&stdout, out.status.code(), 2, "login dead");
    assert_eq!(out.status.code(), Some(exit::UNREACHABLE.into()));
    // With --json on stdout, stderr keeps the line for people.
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("natlens: "));
}

#[test]
fn login_ends_with_its_summary() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let addr = server.addr().to_string();
    let out = run(&[
        "login",
        "-s",
        &addr,
        "--id",
        "alice",
        "--json",
        "--duration",
        "200ms",
    ]);
    let stdout = json_lines(&out.stdout, "login ok");
    let last = assert_final(&stdout, out.status.code(), 2, "login ok");
    assert!(out.status.success());
    assert_eq!(last["result"], "ok");
    assert_eq!(last["calls_answered"], 0);
    assert_eq!(stdout[0]["event"], "logged_in");
    assert!(stdout[0]["public_address"].is_string(), "{}", stdout[0]);
    assert_eq!(stdout[0]["udp_expiry_ms"], 45_000);
}

fn parse_all(lines: &[String], case: &str) -> Vec<Value> {
    json_lines(lines.join("\n").as_bytes(), case)
}

#[test]
fn ctrl_c_ends_listen_and_login_with_130_and_the_interrupted_object() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let addr = server.addr().to_string();

    let mut listen = natlens(&["listen", "-s", &addr, "--id", "alice", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines_of(listen.stderr.take().unwrap());
    let (code, lines) = interrupt_after(listen, rx, "\"waiting\"");
    let stderr = parse_all(&lines, "listen ^C");
    let last = assert_final(&stderr, code, 2, "listen ^C");
    assert_eq!(code, Some(exit::INTERRUPTED.into()));
    assert_eq!(last["result"], "interrupted");

    let mut login = natlens(&["login", "-s", &addr, "--id", "carol", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines_of(login.stdout.take().unwrap());
    let (code, lines) = interrupt_after(login, rx, "\"logged_in\"");
    let stdout = parse_all(&lines, "login ^C");
    let last = assert_final(&stdout, code, 2, "login ^C");
    assert_eq!(code, Some(exit::INTERRUPTED.into()));
    assert_eq!(last["result"], "interrupted");
    // It logged out before it ended.
    assert_eq!(stdout[stdout.len() - 2]["event"], "logged_out");
}

#[test]
fn server_ends_with_one_object_on_stdout() {
    // Stopped by SIGINT: status 0 and {result ok}.
    let mut server = natlens(&["server", "--listen", "127.0.0.1:0", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = server.stdout.take().unwrap();
    let rx = lines_of(server.stderr.take().unwrap());
    let (code, lines) = interrupt_after(server, rx, "\"listening\"");
    let log = parse_all(&lines, "server log");
    assert!(log
        .iter()
        .all(|e| e.get("event").is_some() && e.get("ts").is_some()));
    let mut text = Vec::new();
    stdout.read_to_end(&mut text).unwrap();
    let last = assert_final(&json_lines(&text, "server ^C"), code, 2, "server ^C");
    assert_eq!(code, Some(0));
    assert_eq!(last["result"], "ok");

    // A port in use: the failure object on stdout, and nothing but JSON on stderr.
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["server", "--listen", &addr, "--json"]);
    json_lines(&out.stderr, "server bind");
    let last = assert_final(
        &json_lines(&out.stdout, "server bind"),
        out.status.code(),
        2,
        "server bind",
    );
    assert_eq!(out.status.code(), Some(exit::FAILURE.into()));
    assert!(last["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&format!("binding UDP {addr}")));
}

#[test]
fn lab_status_of_no_such_lab_ends_with_the_failure_object() {
    // Reads /run/natlens/<prefix>.json only: no namespace is touched.
    let out = run(&["lab", "status", "nosuchlab", "--json"]);
    let stdout = json_lines(&out.stdout, "lab status");
    let last = assert_final(&stdout, out.status.code(), 1, "lab status");
    assert_eq!(out.status.code(), Some(exit::FAILURE.into()));
    assert!(last["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nosuchlab"));
    // Every lab (maybe none): one object, the labs inside.
    let out = run(&["lab", "status", "--json"]);
    let all: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let last = assert_final(&[all], out.status.code(), 1, "lab status all");
    assert_eq!(last["result"], "ok");
    assert!(last["labs"].is_array(), "{last}");
}
