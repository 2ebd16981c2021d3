//! `natlens listen` and `natlens call` on loopback, no NAT and no root: the whole command path
//! (login, fingerprint, call, plan, punch, data exchange, report, logout) against a real
//! `natlens server`, plus the refusals and the output modes. The NAT pairs are covered by
//! `tests/lab_punch.rs`.

mod common;

use std::net::SocketAddr;
use std::process::{Output, Stdio};

use common::ServerProcess;
use serde_json::Value;

use common::listener::{lines, natlens, report, Listener};

fn call(server: SocketAddr, callee: &str, id: &str, extra: &[&str]) -> Output {
    natlens(&["call", callee, "--server", &server.to_string(), "--id", id])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_file_sent_by_the_caller_arrives_on_the_listeners_stdout_and_back() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let dir = std::env::temp_dir();
    let file = dir.join(format!("natlens-punch-loopback-{}", std::process::id()));
    let back = dir.join(format!(
        "natlens-punch-loopback-back-{}",
        std::process::id()
    ));
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    std::fs::write(&back, b"hello from the listener\n").unwrap();
    let back_arg = back.to_str().unwrap().to_owned();
    let listener = Listener::start(
        server.addr(),
        "alice",
        &["--json", "--send", &back_arg, "--login-transport", "tcp"],
    );
    let caller = call(
        server.addr(),
        "alice",
        "bob",
        &["--json", "--send", file.to_str().unwrap()],
    );
    let (status, stdout, listen_lines) = listener.finish();
    std::fs::remove_file(&file).unwrap();
    std::fs::remove_file(&back).unwrap();
    let call_lines = lines(&caller.stderr);
    assert!(caller.status.success(), "{call_lines:#?}");
    assert!(status.success(), "{listen_lines:#?}");
    assert!(stdout == data, "{} of 200000 bytes arrived", stdout.len());
    assert_eq!(caller.stdout, b"hello from the listener\n");
    let (theirs, ours) = (report(&listen_lines), report(&call_lines));
    for (r, role) in [(&theirs, "callee"), (&ours, "caller")] {
        assert_eq!(r["schema_version"], 2);
        assert_eq!(r["result"], "connected", "{r}");
        assert_eq!(r["reason"], Value::Null);
        assert_eq!(r["transport"], "udp");
        assert_eq!(r["strategy"], "direct");
        assert_eq!(r["role"], role);
        assert_eq!(r["data"]["result"], "complete");
        assert_eq!(r["directions"].as_array().unwrap().len(), 2);
        assert_eq!(r["directions"][0]["from"], "caller");
    }
    assert_eq!(theirs["call_id"], ours["call_id"]);
    assert_eq!(ours["data"]["bytes_sent"], 200_000);
    assert_eq!(theirs["data"]["bytes_received"], 200_000);
    // The caller aims at the port the listener's path really uses, and the other way round.
    let path = |r: &Value, key: &str| r["path"][key].as_str().unwrap().parse::<SocketAddr>();
    assert_eq!(
        path(&ours, "peer").unwrap(),
        path(&theirs, "local").unwrap()
    );
    assert_eq!(
        path(&theirs, "peer").unwrap(),
        path(&ours, "local").unwrap()
    );
    assert_eq!(
        ours["directions"][0]["port_through"],
        path(&theirs, "local").unwrap().port()
    );
    // Progress events came before the report, each with an "event" key.
    let events: Vec<Value> = call_lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("event").is_some())
        .collect();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    for name in [
        "logged_in",
        "fingerprint",
        "calling",
        "call_answered",
        "plan",
        "connected",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
}

#[test]
fn no_data_puts_the_report_on_stdout_and_dry_run_prints_the_plan() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let listener = Listener::start(server.addr(), "carol", &["--no-data", "--json"]);
    let caller = call(server.addr(), "carol", "dave", &["--no-data"]);
    let (status, stdout, _) = listener.finish();
    assert!(status.success());
    let on_stdout: Value = serde_json::from_slice(&stdout).expect("one JSON report on stdout");
    assert_eq!(on_stdout["result"], "connected");
    assert_eq!(on_stdout["data"]["bytes_received"], 0);
    let table = String::from_utf8(caller.stdout).unwrap();
    assert!(caller.status.success(), "{table}");
    for needle in [
        "connected in",
        "direct over udp",
        "caller -> callee",
        "port through",
    ] {
        assert!(table.contains(needle), "{needle:?} missing from\n{table}");
    }

    // --dry-run on the caller: the plan, exit 0, no punch; the listener punches alone and fails.
    let listener = Listener::start(server.addr(), "erin", &["--json", "--punch-timeout", "1s"]);
    let caller = call(server.addr(), "erin", "frank", &["--dry-run"]);
    let plan = String::from_utf8(caller.stdout).unwrap();
    assert!(caller.status.success(), "{plan}");
    assert!(plan.starts_with("strategy: direct"), "{plan}");
    assert!(plan.contains("expected success: 100.0%"), "{plan}");
    assert!(
        plan.contains("caller (this end): 1 session + 0 fresh sockets"),
        "{plan}"
    );
    let (status, listen_out, listen_lines) = listener.finish();
    assert_eq!(status.code(), Some(natlens::exit::PUNCH_FAILED.into()));
    // With --json, stdout carries only the peer's data (none here); stderr carries nothing but
    // JSON, the report last, with the failure as its error (no plain line after it).
    let listen_text = String::from_utf8_lossy(&listen_out);
    assert!(listen_out.is_empty(), "{listen_text}");
    assert_all_json(&listen_lines);
    let failed = report(&listen_lines);
    let last: Value = serde_json::from_str(listen_lines.last().unwrap()).unwrap();
    assert_eq!(last, failed);
    assert_eq!(failed["result"], "failed");
    assert_eq!(failed["error"]["kind"], "punch_failed", "{failed}");
    assert!(failed["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("no direct path"));
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("no punch packet got through"),
        "{failed}"
    );
}

/// `--transport both` on loopback: a UDP punch, then a TCP punch on the same two sessions
/// (crafted SYNs when root, plain simultaneous open otherwise), one report with both attempts,
/// the data over UDP, exit 0 on both ends.
#[test]
fn transport_both_punches_udp_then_tcp_and_carries_the_data_over_udp() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let dir = std::env::temp_dir();
    let there = dir.join(format!("natlens-both-there-{}", std::process::id()));
    let back = dir.join(format!("natlens-both-back-{}", std::process::id()));
    let data: Vec<u8> = (0..50_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(&there, &data).unwrap();
    std::fs::write(&back, b"hello over udp\n").unwrap();
    let (there_arg, back_arg) = (there.to_str().unwrap(), back.to_str().unwrap());
    let listener = Listener::start(
        server.addr(),
        "alice",
        &["--json", "--send", back_arg, "--transport", "both"],
    );
    let out = call(
        server.addr(),
        "alice",
        "bob",
        &["--json", "--send", there_arg, "--transport", "both"],
    );
    let (status, stdout, seen) = listener.finish();
    let _ = std::fs::remove_file(&there);
    let _ = std::fs::remove_file(&back);
    let call_lines = lines(&out.stderr);
    assert!(out.status.success(), "{call_lines:#?}");
    assert!(status.success(), "{seen:#?}");
    assert_all_json(&call_lines);
    assert_eq!(out.stdout, b"hello over udp\n");
    assert!(stdout == data, "the caller's data did not arrive whole");
    for (role, report) in [("caller", report(&call_lines)), ("callee", report(&seen))] {
        assert_eq!(report["schema_version"], 2, "{report}");
        assert_eq!(report["transport"], "both", "{report}");
        assert_eq!(report["role"], role, "{report}");
        assert_eq!(report["result"], "connected", "{report}");
        assert_eq!(report["data_transport"], "udp", "{report}");
        let udp = &report["attempts"][0];
        let tcp = &report["attempts"][1];
        assert_eq!(udp["transport"], "udp", "{report}");
        assert_eq!(udp["result"], "connected", "{report}");
        assert_eq!(udp["data"]["result"], "complete", "{report}");
        assert_eq!(tcp["transport"], "tcp", "{report}");
        assert_eq!(tcp["result"], "connected", "{report}");
        assert!(tcp["data"].is_null(), "{report}");
        // Each attempt's path is its own transport's socket pair.
        assert_ne!(udp["call_id"], tcp["call_id"], "{report}");
    }
}

/// Every line of a `--json` stream is a JSON object: an event (named by `event`) or a report.
fn assert_all_json(lines: &[String]) {
    for line in lines {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
        assert!(
            value.get("event").is_some() || value.get("schema_version").is_some(),
            "neither an event nor a report: {line}"
        );
    }
}

#[test]
fn a_missing_file_to_send_fails_before_logging_in() {
    let out = natlens(&[
        "call",
        "alice",
        "--server",
        "127.0.0.1:9",
        "--id",
        "bob",
        "--send",
        "/nonexistent/natlens-file",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read /nonexistent/natlens-file"),
        "{stderr}"
    );
}

/// `--interface lo` reaches every socket of a TCP punch (the listener, the connecting sockets,
/// the crafted SYNs' raw socket as root): both ends still connect over loopback. The device
/// needs CAP_NET_RAW on the session socket, so this runs as root only.
#[test]
fn a_tcp_punch_through_interface_lo_connects() {
    if !common::is_root() {
        common::skip("--interface needs CAP_NET_RAW: run the tests as root");
        return;
    }
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let on_lo = [
        "--no-data",
        "--json",
        "--transport",
        "tcp",
        "--interface",
        "lo",
    ];
    let listener = Listener::start(server.addr(), "grace", &on_lo);
    let caller = call(server.addr(), "grace", "heidi", &on_lo);
    let (status, stdout, stderr) = listener.finish();
    assert!(status.success(), "{stderr:#?}");
    for out in [stdout, caller.stdout] {
        let report: Value = serde_json::from_slice(&out).expect("one JSON report on stdout");
        assert_eq!(report["result"], "connected", "{report}");
        assert_eq!(report["transport"], "tcp", "{report}");
    }
    assert!(caller.status.success());
}
