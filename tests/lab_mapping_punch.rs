//! Punching through a port mapping and proving a mapping, against the real miniupnpd and kernel
//! NAT of a lab (root; CI). Both routers pick random ports (a pair refused without a mapping);
//! router a runs miniupnpd with NAT-PMP and PCP. The caller (host a) gets a mapping of its
//! punch socket and announces it: the plan is `direct` and the callee's packets get in through
//! the mapped port. Afterwards router a's nft ruleset holds no mapping. (miniupnpd's own STUN
//! test leaves with the router's WAN address untranslated, as a home router's own traffic does;
//! translated by a random NAT it would make miniupnpd turn port forwarding off.) Over TCP the
//! mapped caller only listens on its mapped port and the callee connects to it.

use std::process::{Output, Stdio};
use std::thread;
use std::time::Duration;

use serde_json::Value;

mod common;

use common::up_lab::UpLab;

/// Rules miniupnpd adds for a mapping name a destination port; none may be left.
fn assert_no_mapping_left(lab: &UpLab) {
    let ruleset = lab.router_a_miniupnpd_table();
    assert!(
        !ruleset.contains("dport"),
        "a mapping was left in router a:\n{ruleset}"
    );
}

/// The JSON report in a punch's stderr (the last line with `schema_version`; the data went to
/// stdout).
fn stderr_report(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|v| v.get("schema_version").is_some())
        .unwrap_or_else(|| panic!("no report: {text}"))
}

/// A file holding `text`, to `--send`; removed when dropped.
struct SendFile(std::path::PathBuf);

impl SendFile {
    fn new(name: &str, text: &str) -> SendFile {
        let path = std::env::temp_dir().join(format!("natlens-{}-{name}", std::process::id()));
        std::fs::write(&path, text).expect("write the data to send");
        SendFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }
}

impl Drop for SendFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// In a lab whose router a runs miniupnpd (NAT-PMP and PCP) and whose routers use `nat_a` and
/// `nat_b`, a call from host a to host b over `transport` plans direct, connects with the
/// callee->caller direction through the caller's mapping, and carries each end's data to the
/// other; the callee, behind a router without a daemon, says so in one hint; router a keeps no
/// mapping afterwards. Returns both reports (call, listen).
fn connects_through_the_callers_mapping(nat_a: &str, nat_b: &str, transport: &str) -> [Value; 2] {
    let lab = UpLab::up(&[
        "--nat-a",
        nat_a,
        "--nat-b",
        nat_b,
        "--port-mapping",
        "pmp,pcp",
    ]);
    let tag = format!("{transport}-{nat_a}-{nat_b}");
    let (from_alice, from_bob) = (format!("alice over {tag}"), format!("bob over {tag}"));
    let alice_file = SendFile::new(&format!("alice-{tag}"), &from_alice);
    let bob_file = SendFile::new(&format!("bob-{tag}"), &from_bob);
    let server = [
        "--server",
        "203.0.113.10",
        "--transport",
        transport,
        "--json",
        // IPv4 only: the lab's hosts also have IPv6 behind firewalls, where the race would
        // keep IPv6, and the mapping under test is IPv4's.
        "--family",
        "4",
    ];
    let listen = lab
        .exec("b", &["listen", "--id", "bob", "--send", bob_file.path()])
        .args(server)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn listen");
    thread::sleep(Duration::from_secs(3));
    let call = lab
        .exec(
            "a",
            &["call", "bob", "--id", "alice", "--send", alice_file.path()],
        )
        .args(server)
        .output()
        .expect("run call");
    let listen = listen.wait_with_output().expect("listen ends");
    let reports =
        [("call", &call, &from_bob), ("listen", &listen, &from_alice)].map(|(who, out, data)| {
            let report = stderr_report(out);
            assert_eq!(report["result"], "connected", "{who}: {report}");
            assert_eq!(report["transport"], transport, "{who}: {report}");
            assert_eq!(report["strategy"], "direct", "{who}: {report}");
            let toward_caller = &report["directions"][1];
            assert_eq!(toward_caller["to"], "caller", "{who}");
            assert_eq!(toward_caller["via_port_mapping"], true, "{who}: {report}");
            assert_eq!(report["directions"][0]["via_port_mapping"], false, "{who}");
            assert_eq!(String::from_utf8_lossy(&out.stdout), *data, "{who}'s data");
            report
        });
    let listen_err = String::from_utf8_lossy(&listen.stderr);
    assert!(listen_err.contains("no port mapping"), "{listen_err}");
    assert_no_mapping_left(&lab);
    reports
}

#[test]
fn random_by_random_connects_over_udp_through_the_callers_mapping() {
    if !common::lab_available() {
        return;
    }
    connects_through_the_callers_mapping("random", "random", "udp");
}

/// Over TCP the caller only listens on its mapped port and the callee connects to it: the
/// callee's direction got through on the mapped external port, as the caller's hello says.
#[test]
fn random_by_random_connects_over_tcp_through_the_callers_mapping() {
    if !common::lab_available() {
        return;
    }
    let [call, listen] = connects_through_the_callers_mapping("random", "random", "tcp");
    let through = |report: &Value| report["directions"][1]["port_through"].clone();
    assert!(through(&call).is_u64(), "{call}");
    assert_eq!(through(&call), through(&listen), "{call}\n{listen}");
    // The callee aimed at one port, the mapped external one, and got through on it.
    for report in [&call, &listen] {
        let aimed = &report["directions"][1]["predicted_ports"];
        assert_eq!(*aimed, Value::from(vec![through(report)]), "{report}");
    }
}

/// The other pair: sequential x random, refused without a mapping, connects over UDP.
#[test]
fn sequential_by_random_connects_over_udp_through_the_callers_mapping() {
    if !common::lab_available() {
        return;
    }
    connects_through_the_callers_mapping("seq:1", "random", "udp");
}

#[test]
fn a_mapping_is_proven_from_outside_and_a_router_without_a_daemon_refuses_cleanly() {
    if !common::lab_available() {
        return;
    }
    {
        let lab = UpLab::up(&["--nat-a", "cone", "--port-mapping", "pmp,pcp"]);
        let out = lab
            .exec(
                "a",
                &["nat", "--server", "203.0.113.10", "--port-mapping", "test"],
            )
            .output()
            .expect("run nat");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("the server's packet arrived through it"),
            "{text}"
        );
        assert!(text.contains("mapping deleted"), "{text}");
        assert_no_mapping_left(&lab);
    }
    let lab = UpLab::up(&["--nat-a", "cone", "--with-server"]);
    let out = lab
        .exec(
            "a",
            &["nat", "--server", "203.0.113.10", "--port-mapping", "test"],
        )
        .output()
        .expect("run nat");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("arrived through it"),
        "no daemon, no mapping: {text}"
    );
    assert_no_mapping_left(&lab);
}

/// `natlens lab demo --port-mapping`: miniupnpd in router a, and a random x random pair (which
/// the demo refuses without a mapping) connects through the listener's mapping, the demo says
/// so, and each end's port_through matches the far router; the demo tears everything down.
#[test]
fn the_demo_punches_random_by_random_through_a_mapping() {
    if !common::lab_available() {
        return;
    }
    let demo = std::process::Command::new(env!("CARGO_BIN_EXE_natlens"))
        .args(["lab", "demo", "--nat-a", "random", "--nat-b", "random"])
        .args(["--port-mapping", "pmp,pcp"])
        .output()
        .expect("run natlens lab demo");
    let text = String::from_utf8_lossy(&demo.stdout);
    assert!(
        demo.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    for needle in [
        "router-a: miniupnpd serving pmp,pcp",
        "port mapping: used (the caller aimed at the port the callee's gateway mapped)",
        "punch: connected, both messages delivered",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
    assert_eq!(text.matches("answered flow: match").count(), 2, "{text}");
    let prefix = text.split_whitespace().nth(1).unwrap_or_default();
    let prefix = prefix.trim_end_matches(':');
    assert!(
        natlens::lab::teardown::is_gone(prefix),
        "lab {prefix} left behind"
    );
}
