//! `natlens lab up --with-server` leaves the lab's own natlens server running in the server host,
//! `lab status` shows it, `lab exec` finds `natlens` without it being on PATH, and `lab down`
//! ends the server with the lab: no process left behind, no log file.
//!
//! Root with network namespaces only; otherwise SKIPPED (a failure under CI).

mod common;

use std::process::{Command, Output};

use common::lab_available;
use natlens::lab::{server, teardown};

fn natlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_natlens"))
        .args(args)
        .output()
        .expect("running natlens")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Process ids whose command line mentions `needle`, as `pgrep -f` finds them.
fn pgrep(needle: &str) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-f", needle])
        .output()
        .expect("running pgrep (procps)");
    text(&out.stdout)
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

#[test]
fn up_with_server_runs_a_server_that_exec_finds_and_down_stops() {
    if !lab_available() {
        return;
    }
    let up = natlens(&["lab", "up", "--with-server", "--nat-b", "seq:1", "--json"]);
    assert!(up.status.success(), "{}", text(&up.stderr));
    let state: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    let prefix = state["prefix"].as_str().unwrap().to_owned();
    let _down = common::LabDown(prefix.clone());
    let server = &state["server"];
    assert_eq!(server["listen"], "203.0.113.10:3478", "{state}");
    assert_eq!(server["alternate"], "203.0.113.11:3479", "{state}");
    let (listen6, alternate6) = (server::primary6(&prefix), server::alternate6(&prefix));
    assert_eq!(server["listen6"], listen6.to_string(), "{state}");
    assert_eq!(server["alternate6"], alternate6.to_string(), "{state}");
    let pid = server["pid"].as_u64().unwrap() as u32;
    let log = server["log"].as_str().unwrap().to_owned();
    assert_eq!(
        pgrep(&prefix),
        [pid],
        "exactly the server runs under the lab's name"
    );

    let status = text(&natlens(&["lab", "status", &prefix]).stdout);
    let expected = format!(
        "natlens server on 203.0.113.10:3478 and 203.0.113.11:3479 (pid {pid}, running; log {log})"
    );
    assert!(status.contains(&expected), "{status}");

    // sudo's secure PATH has no natlens on it: exec puts this natlens's directory first.
    let exe_dir = std::path::Path::new(env!("CARGO_BIN_EXE_natlens"))
        .parent()
        .unwrap();
    let which = Command::new(env!("CARGO_BIN_EXE_natlens"))
        .args(["lab", "exec", "--lab", &prefix, "a", "--", "sh", "-c"])
        .arg("command -v natlens")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    assert_eq!(
        text(&which.stdout).trim(),
        exe_dir.join("natlens").to_str().unwrap(),
        "{}",
        text(&which.stderr)
    );
    // The command itself is found on that PATH too, and the server answers in full mode over
    // both families.
    let nat = Command::new(env!("CARGO_BIN_EXE_natlens"))
        .args(["lab", "exec", "--lab", &prefix, "b", "--"])
        .args(["natlens", "nat", "--server", "203.0.113.10", "--json"])
        .args(["--server", &listen6.to_string()])
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    assert!(nat.status.success(), "{}", text(&nat.stderr));
    let report: serde_json::Value = serde_json::from_slice(&nat.stdout).unwrap();
    let udp = &report["udp"];
    let public = udp["public_address"].as_str().unwrap_or_default();
    assert!(
        public.starts_with("203.0.113.2:"),
        "router-b's address: {udp}"
    );
    assert_eq!(
        udp["full_mode"], true,
        "the server runs in RFC 5780 full mode: {udp}"
    );
    // Router b's IPv6 default is an endpoint-independent firewall: full mode reads its
    // mapping (no translation, so endpoint-independent) and filtering from the alternate.
    let udp6 = &report["ipv6"]["udp"];
    assert_eq!(udp6["full_mode"], true, "full mode over IPv6: {udp6}");
    assert_eq!(udp6["mapping"], "endpoint-independent", "{udp6}");
    assert_eq!(udp6["filtering"], "endpoint-independent", "{udp6}");

    let down = natlens(&["lab", "down", &prefix]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    assert!(teardown::is_gone(&prefix));
    assert!(pgrep(&prefix).is_empty(), "the lab's server outlived it");
    assert!(!std::path::Path::new(&log).exists(), "{log} left behind");
}
