//! The path probe of `natlens nat` against the real kernel: with a carrier-grade NAT in front of
//! router A (`--cgnat-a cone`), host a sees the hops 192.0.2.1 (router A's LAN side), 100.64.0.1
//! (the carrier, in RFC 6598 shared space) and then the server, two NAT layers and a CGNAT; with
//! router A alone, 192.0.2.1 then the server, one layer and no CGNAT. Each is run as root and
//! with CAP_NET_RAW taken away (`setpriv`), since the error queue alone must give the hops. The
//! carrier lab also punches a to b over UDP, so a second NAT layer does not break what worked with one.
//!
//! Root and network namespaces only (SKIPPED otherwise); setpriv comes from util-linux.

mod common;

use std::process::Output;

use common::lab_cli::{lab_lock, Data, Fixture, Transport, PORT};
use common::programs::require_tools;
use natlens::lab::plan::SERVER_PRIMARY;
use natlens::lab::{Host, LabSpec, NatMode, Side};
use serde_json::Value;

/// `natlens nat --json` from host a, with or without CAP_NET_RAW; its report.
fn nat_from_a(fixture: &Fixture, with_net_raw: bool) -> Value {
    let server = format!("{SERVER_PRIMARY}:{PORT}");
    let natlens = env!("CARGO_BIN_EXE_natlens");
    let mut argv: Vec<&str> = Vec::new();
    if !with_net_raw {
        argv.extend([
            "setpriv",
            "--inh-caps=-net_raw",
            "--bounding-set=-net_raw",
            "--",
        ]);
    }
    argv.extend([natlens, "nat", "--server", &server, "--json"]);
    let output: Output = fixture.lab.exec(Host::Lan(Side::A), &argv).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "nat failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("{err}: {stdout}"))
}

/// The hops' addresses, `-` for a silent one.
fn hop_addresses(path: &Value) -> Vec<String> {
    path["hops"]
        .as_array()
        .expect("hops")
        .iter()
        .map(|hop| hop["address"].as_str().unwrap_or("-").to_owned())
        .collect()
}

fn check_path(report: &Value, hops: &[&str], layers: u64, cgnat: bool, context: &str) {
    let path = &report["path"];
    assert_eq!(hop_addresses(path), hops, "{context}: {path:#}");
    let last = path["hops"].as_array().unwrap().last().unwrap();
    assert_eq!(last["server"], true, "{context}: {path:#}");
    assert_eq!(path["nat_layers"], layers, "{context}: {path:#}");
    assert_eq!(path["cgnat"], cgnat, "{context}: {path:#}");
    assert_eq!(path["ignored"], 0, "{context}: {path:#}");
    let public = report["udp"]["public_address"].as_str().unwrap();
    assert!(public.starts_with("203.0.113.1:"), "{context}: {public}");
}

fn setpriv_available() -> bool {
    require_tools("lab_path", &["setpriv"], "apt-get install util-linux").is_some()
}

#[test]
fn a_carrier_nat_shows_as_a_second_layer_in_shared_space() {
    let Some(_serial) = lab_lock() else { return };
    if !setpriv_available() {
        return;
    }
    let spec = LabSpec {
        cgnat_a: Some(NatMode::Cone),
        ..LabSpec::default()
    };
    let fixture = Fixture::up(spec, false, Transport::Udp.args());
    let hops = ["192.0.2.1", "100.64.0.1", &SERVER_PRIMARY.to_string()];
    for with_net_raw in [true, false] {
        let report = nat_from_a(&fixture, with_net_raw);
        let context = format!("carrier, CAP_NET_RAW {with_net_raw}");
        check_path(&report, &hops, 2, true, &context);
        assert_eq!(report["path"]["hops"][1]["class"], "shared", "{context}");
        fixture.lab.reset_nat_state().unwrap();
    }
    let data = Data::new(2000, 3000);
    let attempt = fixture.attempt(0, (PORT, PORT), "udp", &data);
    // Not `assert_connected`: its port_through check reads router A's conntrack, and behind the
    // carrier the public port is the carrier's.
    let context = attempt.context();
    assert!(
        attempt.listen.connected() && attempt.call.connected(),
        "{context}"
    );
    assert!(attempt.listen.stdout == data.call, "{context}");
    assert!(attempt.call.stdout == data.listen, "{context}");
    let peer = attempt.call.report["path"]["peer"]
        .as_str()
        .unwrap_or_default();
    assert!(
        peer.starts_with("203.0.113.1:"),
        "b reached a through the carrier: {context}"
    );
}

#[test]
fn one_router_is_one_layer_and_no_cgnat() {
    let Some(_serial) = lab_lock() else { return };
    if !setpriv_available() {
        return;
    }
    let fixture = Fixture::up(LabSpec::default(), false, Transport::Udp.args());
    let hops = ["192.0.2.1", &SERVER_PRIMARY.to_string()];
    for with_net_raw in [true, false] {
        let report = nat_from_a(&fixture, with_net_raw);
        let context = format!("one router, CAP_NET_RAW {with_net_raw}");
        check_path(&report, &hops, 1, false, &context);
        fixture.lab.reset_nat_state().unwrap();
    }
}
