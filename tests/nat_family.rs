//! `natlens nat --family any` against a dual-stack RFC 5780 server (`natlens server` with one
//! `--alternate` per family), both in a network namespace of the test's own whose loopback
//! holds two IPv4 and two IPv6 documentation addresses: the JSON shape of a run over both
//! families, full mode over each, and the TCP filtering test's crafted SYNs over IPv6. Needs
//! root (a namespace); says SKIPPED otherwise.

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A namespace of this test's own, deleted when dropped (also when the test panics).
struct Netns {
    name: String,
    server: Option<Child>,
}

impl Netns {
    fn new() -> Netns {
        let name = format!("nlfam{}", std::process::id());
        run_ok(&["ip", "netns", "add", &name]);
        let netns = Netns { name, server: None };
        netns.ip(&["link", "set", "lo", "up"]);
        for addr in ["127.0.0.2/8", "2001:db8::1/128", "2001:db8::2/128"] {
            // nodad: the addresses are usable at once.
            let mut args = vec!["addr", "add", addr, "dev", "lo"];
            if addr.contains(':') {
                args.push("nodad");
            }
            netns.ip(&args);
        }
        netns
    }

    fn ip(&self, args: &[&str]) {
        let mut all = vec!["ip", "-n", &self.name];
        all.extend(args);
        run_ok(&all);
    }

    fn natlens(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name, env!("CARGO_BIN_EXE_natlens")])
            .args(args);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(server) = &mut self.server {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run_ok(args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(status.success(), "{args:?}: {status}");
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn both_families_are_fingerprinted_against_a_dual_stack_full_mode_server() {
    if !common::is_root() {
        common::skip("nat_family: a network namespace needs root");
        return;
    }
    let mut netns = Netns::new();
    let server = netns
        .natlens(&["server", "--listen", "127.0.0.1:3478"])
        .args(["--alternate", "127.0.0.2:3479"])
        .args(["--listen", "[2001:db8::1]:3478"])
        .args(["--alternate", "[2001:db8::2]:3479"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    netns.server = Some(server);
    // Ready when both families answer a plain run.
    let deadline = Instant::now() + Duration::from_secs(5);
    let report = loop {
        let output = netns
            .natlens(&["nat", "-s", "127.0.0.1", "-s", "[2001:db8::1]", "--json"])
            .output()
            .unwrap();
        if output.status.success() {
            break serde_json::from_slice::<Value>(&output.stdout).unwrap();
        }
        assert!(Instant::now() < deadline, "{}", text(&output));
        thread::sleep(Duration::from_millis(100));
    };
    let verdict = report["verdict"].as_str().unwrap();
    assert!(
        verdict.starts_with("IPv4: ") && verdict.contains(" || IPv6: "),
        "{verdict}"
    );
    assert_eq!(report["server"], "127.0.0.1:3478");
    assert_eq!(report["families"]["ipv4"]["probed"], true);
    assert_eq!(report["families"]["ipv6"]["server"], "[2001:db8::1]:3478");
    let v6 = &report["ipv6"];
    assert_eq!(v6["translation"], "none", "{v6:#}");
    assert_eq!(v6["behind_nat"], false, "{v6:#}");
    for (family, facts) in [("IPv4", &report), ("IPv6", v6)] {
        for transport in ["udp", "tcp"] {
            let facts = &facts[transport];
            // OTHER-ADDRESS of the request's own family: full mode over each.
            assert_eq!(facts["full_mode"], true, "{family} {transport}: {facts:#}");
            assert_eq!(
                facts["behind_nat"], false,
                "{family} {transport}: {facts:#}"
            );
            // Over TCP, the server's crafted SYN from its other IPv6 address came in.
            assert_eq!(
                facts["filtering"], "endpoint-independent",
                "{family} {transport}: {facts:#}"
            );
        }
    }
    assert!(
        v6["udp"]["public_address"]
            .as_str()
            .unwrap()
            .starts_with("[2001:db8::1]:"),
        "{v6:#}"
    );

    // The human report names both families.
    let human = netns
        .natlens(&["nat", "-s", "127.0.0.1", "-s", "[2001:db8::1]", "--no-path"])
        .output()
        .unwrap();
    assert!(human.status.success(), "{}", text(&human));
    let stdout = String::from_utf8_lossy(&human.stdout);
    for heading in [
        "IPv4, server 127.0.0.1:3478:",
        "IPv6, server [2001:db8::1]:3478: no translation",
    ] {
        assert!(stdout.contains(heading), "{heading:?} not in:\n{stdout}");
    }
}
