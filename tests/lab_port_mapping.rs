//! The port-mapping probe against the real miniupnpd in router a (`natlens lab up
//! --port-mapping`): `natlens nat --json` in host a reports exactly the protocols the daemon
//! serves, with router a's external address 203.0.113.1, the public address STUN saw; a mapping
//! requested through the library API shows up in router a's nft ruleset and is gone after the
//! guard drops, as is the one `--port-mapping test` makes.
//!
//! Root with network namespaces and miniupnpd only; otherwise SKIPPED (a failure under CI).

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{lab_available, skip};
use natlens::core::Transport;
use natlens::io::port_mapping::{request_mapping, LeaseGuard, MappingProtocol};
use natlens::lab::{netns, teardown};
use serde_json::Value;

const ROUTER_A_WAN: &str = "203.0.113.1";

/// A lab, and miniupnpd to run in it (Debian miniupnpd-nftables).
fn available() -> bool {
    if !lab_available() {
        return false;
    }
    match Command::new("miniupnpd").arg("--version").output() {
        Ok(_) => true,
        Err(_) => skip("needs miniupnpd (apt-get install miniupnpd-nftables)"),
    }
}

fn natlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_natlens"))
        .args(args)
        .output()
        .expect("running natlens")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A lab left running by `lab up`, torn down on drop (also when an assertion fails).
struct UpLab {
    prefix: String,
}

impl UpLab {
    fn up(protocols: &str) -> UpLab {
        // --port-mapping implies --with-server; `none` starts no miniupnpd and needs it said.
        let mut args = vec!["lab", "up", "--port-mapping", protocols, "--json"];
        if protocols == "none" {
            args.push("--with-server");
        }
        let up = natlens(&args);
        assert!(
            up.status.success(),
            "lab up --port-mapping {protocols}: {}",
            text(&up.stderr)
        );
        let state: Value = serde_json::from_slice(&up.stdout).unwrap();
        let prefix = state["prefix"].as_str().unwrap().to_owned();
        let lab = UpLab { prefix };
        assert!(
            state["server"]["pid"].is_u64(),
            "--port-mapping implies --with-server: {state}"
        );
        if protocols == "none" {
            assert!(state["miniupnpd"].is_null(), "{state}");
        } else {
            assert!(state["miniupnpd"]["pid"].is_u64(), "{state}");
        }
        lab
    }

    fn netns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    /// `natlens nat --json` in host a against the lab's server.
    fn nat(&self, extra: &[&str]) -> (Value, Duration) {
        let start = Instant::now();
        let mut args = vec![
            "lab",
            "exec",
            "--lab",
            &self.prefix,
            "a",
            "--",
            "natlens",
            "nat",
        ];
        args.extend(["--server", "203.0.113.10", "--json"]);
        args.extend(extra);
        let out = natlens(&args);
        let elapsed = start.elapsed();
        assert!(
            out.status.success(),
            "natlens nat {extra:?}: {}",
            text(&out.stderr)
        );
        (serde_json::from_slice(&out.stdout).unwrap(), elapsed)
    }

    fn router_a_ruleset(&self) -> String {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.netns("router-a"),
                "nft",
                "list",
                "ruleset",
            ])
            .output()
            .expect("running nft");
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    }
}

impl Drop for UpLab {
    fn drop(&mut self) {
        let _ = teardown::by_prefix(&self.prefix);
    }
}

/// The probe's answer for each protocol, in (pcp, nat_pmp, upnp) order.
fn presence(report: &Value) -> [bool; 3] {
    let pm = &report["port_mapping"];
    ["pcp", "nat_pmp", "upnp"].map(|key| pm[key]["present"].as_bool().unwrap_or(false))
}

fn check_probe(protocols: &str, expected: [bool; 3]) {
    let lab = UpLab::up(protocols);
    let (report, elapsed) = lab.nat(&["-t", "udp"]);
    let pm = &report["port_mapping"];
    assert_eq!(
        presence(&report),
        expected,
        "--port-mapping {protocols}: {pm:#}"
    );
    assert_eq!(pm["gateway"], "192.0.2.1", "{pm:#}");
    assert_eq!(
        report["udp"]["public_address"]
            .as_str()
            .unwrap()
            .split(':')
            .next(),
        Some(ROUTER_A_WAN)
    );
    for (key, present) in ["pcp", "nat_pmp", "upnp"].into_iter().zip(expected) {
        let external = &pm[key]["external_address"];
        if present {
            assert_eq!(external, ROUTER_A_WAN, "{key}: {pm:#}");
        } else {
            assert!(external.is_null(), "{key}: {pm:#}");
            assert!(pm[key]["error"].is_string(), "{key}: {pm:#}");
        }
    }
    if expected.contains(&true) {
        assert_eq!(pm["external_address"], ROUTER_A_WAN, "{pm:#}");
        assert_eq!(pm["external_matches_public"], true, "{pm:#}");
    } else {
        assert!(pm["external_matches_public"].is_null(), "{pm:#}");
    }
    if expected[2] {
        assert_eq!(pm["upnp"]["service"], "WANIPConnection:2", "{pm:#}");
    }
    eprintln!(
        "--port-mapping {protocols}: probe {} ms, natlens nat -t udp {} ms (wall, lab exec included)",
        pm["elapsed_ms"],
        elapsed.as_millis()
    );
}

#[test]
fn upnp_only_is_found_alone() {
    if !available() {
        return;
    }
    check_probe("upnp", [false, false, true]);
}

#[test]
fn pmp_and_pcp_are_found_without_upnp() {
    if !available() {
        return;
    }
    check_probe("pmp,pcp", [true, true, false]);
}

#[test]
fn no_daemon_no_protocol() {
    if !available() {
        return;
    }
    check_probe("none", [false, false, false]);
}

/// A mapping through the API shows in router a's nft ruleset while held and is gone after;
/// `--port-mapping test` leaves the ruleset as it found it too.
#[test]
fn mappings_are_deleted_from_the_router() {
    if !available() {
        return;
    }
    let lab = UpLab::up("upnp,pmp,pcp");
    let before = lab.router_a_ruleset();
    for transport in [Transport::Udp, Transport::Tcp] {
        let guard = netns::run_in(&lab.netns("a"), move || {
            let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            let internal = socket.local_addr().unwrap();
            request_mapping(transport, internal, Duration::from_secs(60)).map(LeaseGuard::new)
        })
        .unwrap()
        .unwrap_or_else(|e| panic!("no mapping over {transport:?}: {e:#}"));
        let lease = guard.lease();
        assert_eq!(lease.protocol, MappingProtocol::Pcp);
        assert_eq!(lease.external.ip().to_string(), ROUTER_A_WAN);
        let during = lab.router_a_ruleset();
        let port = lease.internal.port().to_string();
        assert!(
            during.contains("dnat") && during.contains(&port),
            "no DNAT to port {port} in router a while the lease is held:\n{during}"
        );
        netns::run_in(&lab.netns("a"), move || drop(guard)).unwrap();
        assert_eq!(
            lab.router_a_ruleset(),
            before,
            "the mapping stayed on the router"
        );
    }
    let (report, _) = lab.nat(&["-t", "udp", "--port-mapping", "test"]);
    let test = &report["port_mapping"]["test"];
    assert_eq!(test["protocol"], "pcp", "{test:#}");
    assert_eq!(
        test["external"].as_str().unwrap().split(':').next(),
        Some(ROUTER_A_WAN)
    );
    assert_eq!(test["deleted"], true, "{test:#}");
    assert_eq!(
        lab.router_a_ruleset(),
        before,
        "--port-mapping test left its mapping"
    );
}
