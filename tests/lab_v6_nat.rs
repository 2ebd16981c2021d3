//! `natlens nat --family any` in the dual-stack lab, for every IPv6 router mode: the IPv6
//! verdicts (behind_nat, translation, and over UDP and TCP alike filtering, mapping,
//! allocation) match what the router does. TCP filtering is measured as behind an IPv4 NAT:
//! the server's crafted SYNs from its other address and port reach the probed port or not.
//! One lab per mode, all in parallel threads; the lab's server runs RFC 5780 full mode over
//! both families (one --alternate each).
//!
//! Needs root and network namespaces. Without them the test prints a visible SKIPPED and
//! passes, except under CI (env `CI` set).

mod common;

use std::process::Command;
use std::thread;
use std::time::Duration;

use common::lab_available;
use natlens::lab::plan::{SERVER_ALTERNATE, SERVER_PRIMARY};
use natlens::lab::process::LabProcess;
use natlens::lab::{server, Host, Lab, LabSpec, Side, V6Mode};
use serde_json::Value;

/// `natlens nat --family any --json` (UDP and TCP) from the LAN host behind router A, with router A in
/// IPv6 `mode`, against the lab's dual-stack full-mode server.
fn nat_through(mode: &str) -> Value {
    let spec = LabSpec {
        v6_a: mode.parse::<V6Mode>().unwrap(),
        ..LabSpec::default()
    };
    let lab = Lab::up(spec).expect("building the lab");
    let prefix = lab.prefix().to_owned();
    let (primary6, alternate6) = (server::primary6(&prefix), server::alternate6(&prefix));
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command
        .args(["server", "--quiet"])
        .args(["--listen", &format!("{SERVER_PRIMARY}:3478")])
        .args(["--alternate", &format!("{SERVER_ALTERNATE}:3479")])
        .args(["--listen", &primary6.to_string()])
        .args(["--alternate", &alternate6.to_string()]);
    let server = LabProcess::spawn(&lab, Host::Server, command, None).expect("the server");
    assert!(
        server.wait_for("listening", Duration::from_secs(10)),
        "{mode}: the server did not start: {:?}",
        server.stderr_so_far()
    );
    let (v4, v6) = (format!("{SERVER_PRIMARY}:3478"), primary6.to_string());
    let argv = [
        env!("CARGO_BIN_EXE_natlens"),
        "nat",
        "-s",
        &v4,
        "-s",
        &v6,
        "--json",
        "--no-path",
        "--no-port-mapping",
        "--server-timeout",
        "5s",
    ];
    let output = lab.exec(Host::Lan(Side::A), &argv).expect("running nat");
    assert!(
        output.status.success(),
        "{mode}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON report")
}

/// What each mode must read as over IPv6: behind_nat, translation, then over UDP and TCP alike
/// filtering, mapping, allocation pattern and delta (`None`: not checked). An NPTv6 router
/// has no firewall (endpoint-independent filtering); a NAT66 admits replies only.
type Expected = (
    bool,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<i64>,
);

const EI: &str = "endpoint-independent";
const AD: &str = "address-dependent";
const APD: &str = "address-and-port-dependent";

const MODES: [(&str, Expected); 8] = [
    ("open", (false, "none", Some(EI), None, None, None)),
    ("firewall:eif", (false, "none", Some(EI), None, None, None)),
    ("firewall:adf", (false, "none", Some(AD), None, None, None)),
    (
        "firewall:apdf",
        (false, "none", Some(APD), None, None, None),
    ),
    (
        "nptv6",
        (true, "nptv6", Some(EI), Some(EI), Some("preserving"), None),
    ),
    (
        "nat66",
        (true, "nat66", Some(APD), Some(EI), Some("preserving"), None),
    ),
    (
        "nat66:seq:2",
        (
            true,
            "nat66",
            Some(APD),
            Some(APD),
            Some("sequential"),
            Some(2),
        ),
    ),
    (
        "nat66:random",
        (true, "nat66", Some(APD), Some(APD), Some("random"), None),
    ),
];

#[test]
fn every_ipv6_router_mode_reads_as_what_it_is() {
    if !lab_available() {
        return;
    }
    let reports: Vec<(&str, Expected, thread::Result<Value>)> = thread::scope(|scope| {
        let handles: Vec<_> = MODES
            .iter()
            .map(|&(mode, expected)| (mode, expected, scope.spawn(move || nat_through(mode))))
            .collect();
        handles
            .into_iter()
            .map(|(mode, expected, handle)| (mode, expected, handle.join()))
            .collect()
    });
    let mut failures = Vec::new();
    for (mode, (behind_nat, translation, filtering, mapping, pattern, delta), report) in reports {
        let Ok(report) = report else {
            failures.push(format!("{mode}: the run panicked (see above)"));
            continue;
        };
        // IPv4 is probed beside it, through the same router's IPv4 NAT.
        assert_eq!(report["families"]["ipv4"]["probed"], true, "{mode}");
        let v6 = &report["ipv6"];
        let mut check = |what: &str, got: &Value, want: Value| {
            if *got != want {
                failures.push(format!("{mode}: {what} {got} (want {want})\n{v6:#}"));
            }
        };
        check("behind_nat", &v6["behind_nat"], behind_nat.into());
        check("translation", &v6["translation"], translation.into());
        // TCP reads as UDP does: the firewall's TCP pinholes are the UDP ones' twins, and the
        // filtering is measured by the server's crafted SYNs from its other IPv6 address and
        // port, as behind an IPv4 NAT.
        for transport in ["udp", "tcp"] {
            let facts = &v6[transport];
            let what = |key: &str| format!("{transport} {key}");
            if let Some(filtering) = filtering {
                check(&what("filtering"), &facts["filtering"], filtering.into());
            }
            if let Some(mapping) = mapping {
                check(&what("mapping"), &facts["mapping"], mapping.into());
            }
            if let Some(pattern) = pattern {
                let got = &facts["allocation"]["pattern"];
                check(&what("allocation"), got, pattern.into());
            }
            if let Some(delta) = delta {
                check(&what("delta"), &facts["allocation"]["delta"], delta.into());
            }
        }
        let verdict = report["verdict"].as_str().unwrap_or_default();
        if !verdict.contains(" || IPv6: ") {
            failures.push(format!("{mode}: verdict {verdict:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
