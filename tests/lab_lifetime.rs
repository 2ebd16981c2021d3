//! `natlens nat --lifetime` against the real kernel NAT: `lab up --udp-timeout 20s` sets both
//! routers' conntrack UDP timeouts (the ground truth), and `natlens nat --lifetime 40s` from
//! host a must find the lifetime within 10% of 20 s in one run of under 40 s.
//!
//! Refreshing: Linux conntrack refreshes a UDP entry's timeout on every packet of the flow,
//! whichever way it goes (nf_conntrack_proto_udp calls nf_ct_refresh_acct for both directions),
//! so both the outbound-only and the inbound-only socket must outlive the unrefreshed ones.
//!
//! TTL-limited refresh: router a is the first hop and the only NAT, and it refreshes its
//! conntrack entry (PREROUTING) before forwarding finds the TTL spent, so the smallest TTL that
//! keeps a mapping alive is 1. Behind a carrier NAT (`--cgnat-a`, hop 2) a keepalive with TTL 1
//! refreshes router a's entry but never reaches the carrier's, which expires: the smallest TTL
//! is 2, and the path verdict places the outermost NAT there. The two tests run in parallel.
//!
//! Root with network namespaces only; otherwise SKIPPED (a failure under CI).

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::lab_available;

const TIMEOUT_MS: u64 = 20_000;

fn natlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_natlens"))
        .args(args)
        .output()
        .expect("running natlens")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn lifetime_matches_the_routers_udp_timeout_and_both_directions_refresh() {
    if !lab_available() {
        return;
    }
    let up = natlens(&[
        "lab",
        "up",
        "--with-server",
        "--udp-timeout",
        "20s",
        "--json",
    ]);
    assert!(up.status.success(), "{}", text(&up.stderr));
    let state: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    let prefix = state["prefix"].as_str().unwrap().to_owned();
    let _down = common::LabDown(prefix.clone());
    assert_eq!(state["spec"]["udp_timeout"], TIMEOUT_MS, "{state}");
    let status = text(&natlens(&["lab", "status", &prefix]).stdout);
    assert!(status.contains("UDP timeout 20 s"), "{status}");
    for key in [
        "nf_conntrack_udp_timeout",
        "nf_conntrack_udp_timeout_stream",
    ] {
        let path = format!("/proc/sys/net/netfilter/{key}");
        let read = natlens(&[
            "lab", "exec", "--lab", &prefix, "router-a", "--", "cat", &path,
        ]);
        assert_eq!(text(&read.stdout).trim(), "20", "{key}");
    }

    let started = Instant::now();
    let nat = lifetime_nat(&prefix, "40s", &[]);
    let took = started.elapsed();
    assert!(nat.status.success(), "{}", text(&nat.stderr));
    let report: serde_json::Value = serde_json::from_slice(&nat.stdout).unwrap();
    let udp = &report["udp"];
    println!(
        "lifetime {} ms, bracket {}, keepalive {} ms, outbound {}, inbound {}, outermost NAT \
         hop {}, run {:.1} s",
        udp["mapping_lifetime_ms"],
        udp["mapping_lifetime_bracket_ms"],
        udp["mapping_keepalive_ms"],
        udp["mapping_refreshed_by_outbound"],
        udp["mapping_refreshed_by_inbound"],
        udp["ttl_refresh_outermost_nat_hop"],
        took.as_secs_f64()
    );
    let lifetime = udp["mapping_lifetime_ms"].as_u64().expect("a lifetime");
    assert!(
        lifetime.abs_diff(TIMEOUT_MS) <= TIMEOUT_MS / 10,
        "{lifetime} ms is not within 10% of {TIMEOUT_MS} ms: {udp}"
    );
    let bracket = &udp["mapping_lifetime_bracket_ms"];
    let (lo, hi) = (bracket[0].as_u64().unwrap(), bracket[1].as_u64().unwrap());
    assert!(lo < TIMEOUT_MS && TIMEOUT_MS <= hi, "[{lo}, {hi}]");
    assert_eq!(udp["mapping_keepalive_ms"], lo * 4 / 5);
    assert_eq!(udp["mapping_refreshed_by_outbound"], true, "{udp}");
    assert_eq!(
        udp["mapping_refreshed_by_inbound"], true,
        "conntrack refreshes on inbound packets too: {udp}"
    );
    assert_eq!(udp["ttl_refresh_outermost_nat_hop"], 1, "{udp}");
    // The path verdict agrees: one NAT layer, and it says why.
    let path = &report["path"];
    assert_eq!(path["nat_layers"], 1, "{path:#}");
    let evidence = path["evidence"].to_string();
    assert!(
        evidence.contains("keepalives with TTL 1 keep the mapping"),
        "{path:#}"
    );
    assert!(took < Duration::from_secs(40), "took {took:?}");
}

/// `natlens nat -t udp --lifetime MAX --json` (and `extra`) on host a of lab `prefix`,
/// against the lab's server.
fn lifetime_nat(prefix: &str, max: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "lab",
        "exec",
        "--lab",
        prefix,
        "a",
        "--",
        "natlens",
        "nat",
        "-t",
        "udp",
        "--server",
        "203.0.113.10",
        "--lifetime",
        max,
    ];
    args.extend(extra);
    args.push("--json");
    natlens(&args)
}

/// A lab whose router a sits behind a carrier NAT, both with `timeout_s` UDP timeouts; what
/// `natlens nat --lifetime` reports from host a (with the path probe, which reads the hop).
fn lifetime_behind_a_carrier(timeout_s: u64) -> Option<serde_json::Value> {
    if !lab_available() {
        return None;
    }
    let timeout = format!("{timeout_s}s");
    let up = natlens(&[
        "lab",
        "up",
        "--with-server",
        "--cgnat-a",
        "cone",
        "--udp-timeout",
        &timeout,
        "--json",
    ]);
    assert!(up.status.success(), "{}", text(&up.stderr));
    let state: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    let prefix = state["prefix"].as_str().unwrap().to_owned();
    let _down = common::LabDown(prefix.clone());
    let max = format!("{}s", timeout_s * 2);
    let nat = lifetime_nat(&prefix, &max, &["--no-port-mapping"]);
    assert!(nat.status.success(), "{}", text(&nat.stderr));
    Some(serde_json::from_slice(&nat.stdout).unwrap())
}

#[test]
fn ttl_limited_refresh_places_the_carrier_nat_at_hop_two() {
    // Short, to keep CI quick: the ladder's linear rungs resolve 10 s to half a second.
    const CARRIER_TIMEOUT_S: u64 = 10;
    let started = Instant::now();
    let Some(report) = lifetime_behind_a_carrier(CARRIER_TIMEOUT_S) else {
        return;
    };
    let (udp, path) = (&report["udp"], &report["path"]);
    println!(
        "behind a carrier: lifetime {} ms, outermost NAT hop {}, path nat_layers {}, cgnat {}, \
         {:.1} s",
        udp["mapping_lifetime_ms"],
        udp["ttl_refresh_outermost_nat_hop"],
        path["nat_layers"],
        path["cgnat"],
        started.elapsed().as_secs_f64()
    );
    let lifetime = udp["mapping_lifetime_ms"].as_u64().expect("a lifetime");
    let timeout_ms = CARRIER_TIMEOUT_S * 1000;
    assert!(
        lifetime.abs_diff(timeout_ms) <= timeout_ms / 10,
        "{lifetime} ms is not within 10% of {timeout_ms} ms: {udp}"
    );
    assert_eq!(udp["mapping_refreshed_by_outbound"], true, "{udp}");
    assert_eq!(udp["ttl_refresh_outermost_nat_hop"], 2, "{udp}");
    // The path verdict uses it: two layers, the outer one at hop 2, and says why.
    assert_eq!(path["nat_layers"], 2, "{path:#}");
    assert_eq!(path["layers"][1]["hop"], 2, "{path:#}");
    assert_eq!(path["cgnat"], true, "{path:#}");
    let evidence = path["evidence"].to_string();
    assert!(
        evidence.contains("keepalives with TTL 2 keep the mapping"),
        "{path:#}"
    );
}
