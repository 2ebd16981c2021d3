//! `natlens listen` and `natlens call` punching over both address families in the dual-stack
//! lab: one lab per pair of router IPv6 modes (IPv4 cone NATs on both routers), all labs at
//! once in parallel threads, a UDP punch then a TCP punch in each. The server listens on its
//! IPv4 and its IPv6 address (so its login answers name both); the listener logs in over IPv4,
//! the caller over IPv6 where it has it, so every pair also crosses families at the server.
//!
//! Checked: both ends connect; the UDP punch keeps IPv6 (it starts 50 ms ahead) and reports
//! IPv4's part; the TCP punch races both families and both ends keep the same one (the one the
//! callee kept), the other stopped; each end's `port_through` in the winning
//! family is the far router's port for the flow, read from its conntrack table (IPv4 and IPv6
//! entries); an IPv4-only end against a dual-stack one connects over IPv4 and both say IPv6
//! was not shared.
//!
//! The pairs are in `PAIRS`; all labs run at once and take a few seconds together.
//!
//! Needs root and network namespaces: without them the test prints SKIPPED (a failure under CI).

mod common;

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::process::Command;
use std::time::{Duration, Instant};

use natlens::lab::plan::SERVER_PRIMARY;
use natlens::lab::plan6::server_primary6;
use natlens::lab::{CtEntry, Host, Lab, LabProcess, LabSpec, Side, V6Mode};
use serde_json::Value;

const PORT: u16 = 3478;
/// One end's whole run (login, both fingerprints, call, punch).
const END_LIMIT: Duration = Duration::from_secs(25);

/// (router A's IPv6 mode, router B's): every firewall filtering against every other, NPTv6 and
/// NAT66 (port-preserving, sequential, random) against firewalls, and IPv4-only ends (`off`)
/// against dual-stack ones on either side.
const PAIRS: [(&str, &str); 17] = [
    ("firewall:eif", "firewall:eif"),
    ("firewall:eif", "firewall:adf"),
    ("firewall:eif", "firewall:apdf"),
    ("firewall:adf", "firewall:eif"),
    ("firewall:adf", "firewall:adf"),
    ("firewall:adf", "firewall:apdf"),
    ("firewall:apdf", "firewall:eif"),
    ("firewall:apdf", "firewall:adf"),
    ("firewall:apdf", "firewall:apdf"),
    ("nptv6", "firewall:apdf"),
    ("firewall:eif", "nptv6"),
    ("nat66", "firewall:apdf"),
    ("firewall:adf", "nat66"),
    ("nat66:seq:1", "firewall:apdf"),
    ("nat66:random", "firewall:eif"),
    ("firewall:eif", "off"),
    ("off", "firewall:apdf"),
];

fn natlens(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command.args(args);
    command
}

/// The report: the last stdout line with `schema_version` (`--no-data` puts it there).
fn report_of(stdout: &[u8]) -> Value {
    String::from_utf8_lossy(stdout)
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|value| value.get("schema_version").is_some())
        .unwrap_or(Value::Null)
}

fn family<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["families"]
        .as_array()
        .and_then(|all| all.iter().find(|f| f["family"] == name))
        .unwrap_or(&Value::Null)
}

/// One end's report and its stderr (for failure messages).
struct End {
    report: Value,
    stderr: String,
    success: bool,
}

/// A listen on host a (logged in over IPv4) and a call on host b (over IPv6 when b has it).
fn attempt(lab: &Lab, b_has_v6: bool, transport: &str, n: u32) -> (End, End) {
    let v4 = SocketAddrV4::new(SERVER_PRIMARY, PORT).to_string();
    let v6 = SocketAddrV6::new(server_primary6(lab.prefix()), PORT, 0, 0).to_string();
    let (alice, bob) = (format!("alice{n}"), format!("bob{n}"));
    let common = ["--json", "--no-data", "--transport", transport];
    let mut listen = natlens(&["listen", "--server", &v4, "--id", &alice]);
    listen.args(common);
    let listen = LabProcess::spawn(lab, Host::Lan(Side::A), listen, None).unwrap();
    assert!(
        listen.wait_for("\"event\":\"waiting\"", Duration::from_secs(15)),
        "listen never got ready: {:#?}",
        listen.stderr_so_far()
    );
    let call_server = if b_has_v6 { &v6 } else { &v4 };
    let mut call = natlens(&["call", &alice, "--server", call_server, "--id", &bob]);
    call.args(common);
    let call = LabProcess::spawn(lab, Host::Lan(Side::B), call, None).unwrap();
    let limit = Instant::now() + END_LIMIT;
    let end = |process: LabProcess| {
        let exited = process.finish(limit).unwrap();
        End {
            report: report_of(&exited.stdout),
            stderr: exited.stderr.join("\n"),
            success: exited.status.success(),
        }
    };
    let call = end(call);
    (end(listen), call)
}

/// The far router's flow for `report`'s winning path: an answered entry of `proto` between the
/// address the far end aimed at (`far_view`: the far end's path peer, our public address) and
/// the far public port that is the `port_through` this end reports.
fn check_port_through(
    report: &Value,
    far_view: &Value,
    entries: &[CtEntry],
    proto: &str,
) -> Result<u16, String> {
    let winner = report["winner"].as_str().ok_or("no winner")?;
    let through = family(report, winner)["port_through"]
        .as_u64()
        .ok_or_else(|| format!("no port_through in {winner}"))? as u16;
    let us: SocketAddr = far_view["path"]["peer"]
        .as_str()
        .ok_or("the far end has no path")?
        .parse()
        .unwrap();
    // Our side opened the flow (outbound first), or, through endpoint-independent filtering,
    // our first packet opened it inbound: the entry then runs from us to the far port.
    let found = entries.iter().any(|e| {
        let outbound = e.orig_dst.ip() == us.ip() && e.reply_dst.port() == through;
        let inbound = e.orig_src.ip() == us.ip() && e.orig_dst.port() == through;
        e.proto == proto && e.replied && (outbound || inbound)
    });
    if found {
        Ok(through)
    } else {
        Err(format!(
            "the far router has no answered {proto} flow toward {} on port {through}: {entries:#?}",
            us.ip()
        ))
    }
}

/// One lab: the UDP punch, then the TCP one; returns a line for the summary.
fn run_pair(a: &str, b: &str, n: u32) -> Result<String, String> {
    let spec = LabSpec {
        v6_a: a.parse::<V6Mode>()?,
        v6_b: b.parse::<V6Mode>()?,
        ..LabSpec::default()
    };
    let b_has_v6 = spec.v6_b.has_ipv6();
    let both = spec.v6_a.has_ipv6() && b_has_v6;
    let lab = Lab::up(spec).map_err(|e| format!("{a} x {b}: lab: {e:#}"))?;
    let v6 = SocketAddrV6::new(server_primary6(lab.prefix()), PORT, 0, 0).to_string();
    let v4 = SocketAddrV4::new(SERVER_PRIMARY, PORT).to_string();
    let mut server = natlens(&["server", "--name", "s1", "--listen", &v4, "--listen", &v6]);
    server.args(["--answer-rate", "0"]);
    let server = LabProcess::spawn(&lab, Host::Server, server, None).unwrap();
    if !server.wait_for("listening", Duration::from_secs(5)) {
        return Err(format!("{a} x {b}: the server did not start"));
    }
    let mut line = format!("{a} x {b}:");
    for (transport, proto) in [("udp", "udp"), ("tcp", "tcp")] {
        let (listen, call) = attempt(&lab, b_has_v6, transport, n);
        let context = || {
            format!(
                "{a} x {b} over {transport}:\n--- listen ---\n{}\n--- call ---\n{}",
                listen.stderr, call.stderr
            )
        };
        for end in [&listen, &call] {
            let r = &end.report;
            if !end.success || r["result"] != "connected" {
                return Err(format!("not connected: {r}\n{}", context()));
            }
            // Over UDP a direct IPv6 plan wins by its head start (a birthday one, through a
            // random NAT66, takes longer than IPv4's direct punch). Over TCP both families race
            // and the callee keeps whichever connection came up first at its end (IPv6 unless
            // its crafted SYNs took longer than IPv4's): checked below only to be the same at
            // both ends, the other family stopped.
            let v6_direct = family(r, "ipv6")["plan"] == "direct";
            let expected = if both { "ipv6" } else { "ipv4" };
            let pinned = !both || (transport == "udp" && v6_direct);
            if pinned && r["winner"] != expected {
                return Err(format!(
                    "winner {} not {expected}\n{}",
                    r["winner"],
                    context()
                ));
            }
            if !both && family(r, "ipv6")["outcome"] != "not-shared" {
                return Err(format!("IPv6 should be not shared: {r}\n{}", context()));
            }
            let loser = if r["winner"] == "ipv6" {
                "ipv4"
            } else {
                "ipv6"
            };
            if both && family(r, loser)["outcome"] != "stopped" {
                return Err(format!("{loser} should be stopped: {r}\n{}", context()));
            }
        }
        if listen.report["winner"] != call.report["winner"] {
            return Err(format!("the ends kept different families\n{}", context()));
        }
        let ct_a = lab.conntrack_entries(Side::A).map_err(|e| e.to_string())?;
        let ct_b = lab.conntrack_entries(Side::B).map_err(|e| e.to_string())?;
        let through_b = check_port_through(&listen.report, &call.report, &ct_b, proto)
            .map_err(|e| format!("listen: {e}\n{}", context()))?;
        let through_a = check_port_through(&call.report, &listen.report, &ct_a, proto)
            .map_err(|e| format!("call: {e}\n{}", context()))?;
        let ms = |r: &Value| r["elapsed_ms"].as_u64().unwrap_or(0);
        // A losing family whose own connection or path came up before the callee chose shows
        // its port: say so, the race's dropped-connection path was exercised.
        let dropped = [&listen.report, &call.report].iter().any(|r| {
            let loser = if r["winner"] == "ipv6" {
                "ipv4"
            } else {
                "ipv6"
            };
            family(r, loser)["port_through"].is_u64()
        });
        line.push_str(&format!(
            " {transport}: {}{} through b:{through_b} a:{through_a}, {}/{} ms;",
            listen.report["winner"].as_str().unwrap_or("-"),
            if dropped { " (other dropped)" } else { "" },
            ms(&listen.report),
            ms(&call.report)
        ));
        lab.reset_nat_state().map_err(|e| e.to_string())?;
    }
    Ok(line)
}

#[test]
fn both_families_punch_through_firewalls_nptv6_nat66_and_mixed_ends() {
    if !common::lab_available() {
        return;
    }
    let started = Instant::now();
    let results: Vec<Result<String, String>> = std::thread::scope(|scope| {
        let runs: Vec<_> = PAIRS
            .iter()
            .enumerate()
            .map(|(n, (a, b))| scope.spawn(move || run_pair(a, b, n as u32)))
            .collect();
        runs.into_iter()
            .map(|run| run.join().unwrap_or_else(|_| Err("a pair panicked".into())))
            .collect()
    });
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(line) => eprintln!("{line}"),
            Err(failure) => failures.push(failure),
        }
    }
    eprintln!("{} labs in {:?}", PAIRS.len(), started.elapsed());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
