//! Punching through a port mapping and proving a mapping, against the real miniupnpd and kernel
//! NAT of a lab (root; CI). Both routers pick random ports (a pair refused without a mapping);
//! router a runs miniupnpd with NAT-PMP and PCP. The caller (host a) gets a mapping of its
//! punch socket and announces it: the plan is `direct` and the callee's packets get in through
//! the mapped port. Afterwards router a's nft ruleset holds no mapping. (miniupnpd's own STUN
//! test leaves with the router's WAN address untranslated, as a home router's own traffic does;
//! translated by a random NAT it would make miniupnpd turn port forwarding off.) A TCP punch
//! does not use mappings yet.

use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use serde_json::Value;

mod common;

const NATLENS: &str = env!("CARGO_BIN_EXE_natlens");

/// A lab built with `natlens lab up`, torn down with `natlens lab down PREFIX` when dropped.
struct UpLab {
    prefix: String,
}

impl UpLab {
    fn up(args: &[&str]) -> UpLab {
        let out = Command::new(NATLENS)
            .args(["lab", "up"])
            .args(args)
            .output()
            .expect("run natlens lab up");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "lab up {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let prefix = text
            .split_whitespace()
            .nth(1)
            .expect("lab up prints `lab PREFIX: ...`")
            .trim_end_matches(':')
            .to_string();
        UpLab { prefix }
    }

    fn exec(&self, host: &str, args: &[&str]) -> Command {
        let mut command = Command::new(NATLENS);
        command
            .args(["lab", "exec", "--lab", &self.prefix, host, "--", "natlens"])
            .args(args);
        command
    }

    /// Router a's nft ruleset.
    fn router_a_ruleset(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &format!("{}-router-a", self.prefix)])
            .args(["nft", "list", "ruleset"])
            .output()
            .expect("nft list ruleset");
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

impl Drop for UpLab {
    fn drop(&mut self) {
        let _ = Command::new(NATLENS)
            .args(["lab", "down", &self.prefix])
            .output();
    }
}

fn last_json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "{e}: {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Rules miniupnpd adds for a mapping name a destination port; none may be left.
fn assert_no_mapping_left(lab: &UpLab) {
    let ruleset = lab.router_a_ruleset();
    // The IPv6 firewall's own pinhole rules name dports too (sets, not mappings).
    let left = ruleset
        .lines()
        .any(|line| line.contains("dport") && !line.contains("@pinhole"));
    assert!(!left, "a mapping was left in router a:\n{ruleset}");
}

#[test]
fn random_by_random_connects_over_udp_through_the_callers_mapping() {
    if !common::lab_available() {
        return;
    }
    let lab = UpLab::up(&[
        "--nat-a",
        "random",
        "--nat-b",
        "random",
        "--port-mapping",
        "pmp,pcp",
    ]);
    // IPv4 only: the lab's hosts also have IPv6 behind firewalls, where the race would keep
    // IPv6, and the mapping under test is IPv4's.
    let server = [
        "--server",
        "203.0.113.10",
        "--no-data",
        "--json",
        "--family",
        "4",
    ];
    let listen = lab
        .exec("b", &["listen", "--id", "bob"])
        .args(server)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn listen");
    thread::sleep(Duration::from_secs(3));
    let call = lab
        .exec("a", &["call", "bob", "--id", "alice"])
        .args(server)
        .output()
        .expect("run call");
    let listen = listen.wait_with_output().expect("listen ends");
    for (who, out) in [("call", &call), ("listen", &listen)] {
        let report = last_json(out);
        assert_eq!(report["result"], "connected", "{who}: {report}");
        assert_eq!(report["strategy"], "direct", "{who}: {report}");
        let toward_caller = &report["directions"][1];
        assert_eq!(toward_caller["to"], "caller", "{who}");
        assert_eq!(toward_caller["via_port_mapping"], true, "{who}: {report}");
        assert_eq!(report["directions"][0]["via_port_mapping"], false, "{who}");
    }
    // The callee, behind a router without a mapping daemon, said so in one hint.
    let listen_err = String::from_utf8_lossy(&listen.stderr);
    assert!(listen_err.contains("no port mapping"), "{listen_err}");
    assert_no_mapping_left(&lab);
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
