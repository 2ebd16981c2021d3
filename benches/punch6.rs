//! Hole punching over IPv6 in the dual-stack lab: success rate and time to connect in path
//! round trips, through stateful firewalls (every filtering mode against every other) and
//! through NAT66 (the pairs of the IPv4 punch benchmark, benches/punch.rs, that NAT66 has:
//! port-preserving `nat66`, `nat66:seq:1`, `nat66:seq:2`, `nat66:random`), over UDP and TCP.
//!
//! Lab: 25 ms of one-way delay on each router's WAN link (IPv6 is delayed as IPv4 is), so the
//! path between the two LAN hosts crosses two delayed links each way (100 ms configured). The
//! server is dual-stack in RFC 5780 full mode over both families, as `natlens lab up
//! --with-server` runs it. Per pair (router A's IPv6 mode x router B's): one lab, then N
//! attempts per transport, each from fresh NAT and firewall state (`reset_nat_state`):
//! `natlens listen --family 6 --id alice --no-data --json` on host a, and once it waits,
//! `natlens call alice --family 6 ...` on host b, both logged in over IPv6. `--family 6`
//! measures IPv6 alone (with both families the IPv4 leg would race it).
//!
//! Times come from each end's JSON report, as in benches/punch.rs: `elapsed_ms` is from that
//! end's start signal to the path confirmed both ways; the **worst end** of an attempt is the
//! later of the two, and the 2-RTT goal is checked on it. The path RTT is measured: the median
//! of the caller's own `first_through_ms` (its first PUNCH request out, its echo back) on
//! connected direct UDP attempts whose first request got through.
//!
//! Run as root: `benches/punch6.sh [--attempts N] [--transports udp,tcp] [--pairs A/B,...]
//! [--record STEM]` (pairs as `firewall:eif/nat66:seq:1`, or `firewalls` / `nat66` for every
//! pair of one kind). It prints one line per attempt, then the summary table (to paste), and
//! writes `benches/results/punch-ipv6.md` (tables, goals, machine and its load average, raw
//! numbers) and `punch-ipv6.csv`, or `STEM.md` and `STEM.csv` with `--record` (a partial rerun
//! kept beside the full record). The labs are torn down on every exit path.

use std::fmt::Write as _;
use std::net::SocketAddrV6;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use natlens::lab::plan6::server_primary6;
use natlens::lab::{Host, Lab, LabSpec, Side, V6Mode};
use serde_json::Value;

mod common;
use common::{finish, opt, spawn, with_dual_stack_lab, Record, DELAY, PORT};

/// A round trip between the LAN hosts as configured, used only when no direct UDP pair ran.
const CONFIGURED_PATH_RTT_MS: f64 = 4.0 * DELAY.as_millis() as f64;
/// Longest one attempt may take, both ends (logins, fingerprints, a 10 s punch, logouts).
const ATTEMPT_LIMIT: Duration = Duration::from_secs(40);
/// The goal: connected within this many path round trips of the start signal.
const GOAL_RTT: f64 = 2.0;

const FIREWALLS: [&str; 3] = ["firewall:eif", "firewall:adf", "firewall:apdf"];
const NAT66: [&str; 4] = ["nat66", "nat66:seq:1", "nat66:seq:2", "nat66:random"];

struct Config {
    attempts: usize,
    transports: Vec<String>,
    pairs: Vec<(String, String)>,
    /// The results' file stem under benches/results (`--record`).
    record: String,
}

fn config() -> anyhow::Result<Config> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let attempts = match value("--attempts") {
        Some(n) => n.parse().context("--attempts needs a number")?,
        None => 5,
    };
    let transports = value("--transports").map_or("udp,tcp", |v| v.as_str());
    let pairs = match value("--pairs").map(String::as_str) {
        Some("firewalls") => square(&FIREWALLS),
        Some("nat66") => square(&NAT66),
        Some(list) => list
            .split(',')
            .map(|pair| {
                let (a, b) = pair.split_once('/').context("--pairs wants A/B,...")?;
                Ok((a.to_owned(), b.to_owned()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
        None => default_pairs(),
    };
    Ok(Config {
        attempts,
        transports: transports.split(',').map(str::to_owned).collect(),
        pairs,
        record: value("--record")
            .map_or("punch-ipv6", |v| v.as_str())
            .to_owned(),
    })
}

/// Every mode of `modes` (router A) against every one (router B).
fn square(modes: &[&str]) -> Vec<(String, String)> {
    modes
        .iter()
        .flat_map(|a| modes.iter().map(move |b| (a.to_string(), b.to_string())))
        .collect()
}

/// Every firewall filtering mode against every other, then every NAT66 pair.
fn default_pairs() -> Vec<(String, String)> {
    let mut pairs = square(&FIREWALLS);
    pairs.extend(square(&NAT66));
    pairs
}

/// The class of a pair, which decides its goal: firewall pairs and predictable NAT66 pairs
/// connect (100%, within 2 RTT); a random NAT66 against a port-preserving one is a birthday
/// search at the plan's odds; random against sequential or random is refused by the planner.
fn class(a: &str, b: &str) -> &'static str {
    let random = (a == "nat66:random") as u8 + (b == "nat66:random") as u8;
    let fixed = |m: &str| m == "nat66" || m.starts_with("firewall");
    match random {
        0 if a.starts_with("firewall") && b.starts_with("firewall") => "firewall",
        0 => "predictable",
        1 if fixed(a) || fixed(b) => "random x cone",
        _ => "refused",
    }
}

/// One attempt, both ends.
struct Attempt {
    pair: (String, String),
    transport: String,
    n: usize,
    wall: Duration,
    callee: Value,
    caller: Value,
    exits: (Option<i32>, Option<i32>),
}

impl Attempt {
    fn connected(&self) -> bool {
        self.callee["result"] == "connected"
            && self.caller["result"] == "connected"
            && self.exits == (Some(0), Some(0))
    }

    fn strategy(&self) -> String {
        let of = |end: &Value| end["strategy"].as_str().map(str::to_owned);
        of(&self.callee)
            .or_else(|| of(&self.caller))
            .unwrap_or_else(|| "?".into())
    }

    fn elapsed(end: &Value) -> Option<u64> {
        (end["result"] == "connected")
            .then(|| end["elapsed_ms"].as_u64())
            .flatten()
    }

    /// The later end's `elapsed_ms`, each on its own clock; None unless both connected.
    fn worst_end(&self) -> Option<u64> {
        let callee = Attempt::elapsed(&self.callee)?;
        Attempt::elapsed(&self.caller).map(|caller| callee.max(caller))
    }

    fn winner(&self) -> String {
        self.caller["winner"].as_str().unwrap_or("-").to_owned()
    }

    fn reason(&self) -> String {
        let of = |end: &Value| end["reason"].as_str().map(str::to_owned);
        of(&self.callee)
            .or_else(|| of(&self.caller))
            .unwrap_or_default()
    }
}

fn main() -> anyhow::Result<()> {
    let config = config()?;
    common::preflight(&[], "")?;
    let started = SystemTime::now();
    let load = common::load_average();
    let clock = Instant::now();
    let mut attempts = Vec::new();
    for (a, b) in &config.pairs {
        eprintln!("lab: router-a {a}, router-b {b} (IPv6), delay {DELAY:?} per WAN link");
        attempts.extend(measure_pair(a, b, &config)?);
    }
    let took = clock.elapsed();
    let (table, report) = write_report(&attempts, &config, started, &load, took)?;
    println!("{table}");
    eprintln!("wrote {} ({took:.0?})", report.display());
    Ok(())
}

fn measure_pair(a: &str, b: &str, config: &Config) -> anyhow::Result<Vec<Attempt>> {
    let spec = LabSpec {
        v6_a: a.parse::<V6Mode>().map_err(anyhow::Error::msg)?,
        v6_b: b.parse::<V6Mode>().map_err(anyhow::Error::msg)?,
        delay: DELAY,
        ..LabSpec::default()
    };
    let n = if class(a, b) == "refused" {
        config.attempts.min(2)
    } else {
        config.attempts
    };
    with_dual_stack_lab(spec, |lab| {
        let mut out = Vec::new();
        for transport in &config.transports {
            for i in 0..n {
                lab.reset_nat_state()?;
                let attempt = attempt(lab, (a, b), i, transport)?;
                eprintln!(
                    "  {a} x {b} {transport} #{i}: {} {}; worst end {} ms; winner {}; wall {} ms {}",
                    attempt.strategy(),
                    if attempt.connected() { "connected" } else { "FAILED" },
                    opt(attempt.worst_end()),
                    attempt.winner(),
                    attempt.wall.as_millis(),
                    attempt.reason()
                );
                out.push(attempt);
            }
        }
        Ok(out)
    })
}

fn attempt(lab: &Lab, pair: (&str, &str), n: usize, transport: &str) -> anyhow::Result<Attempt> {
    let server = SocketAddrV6::new(server_primary6(lab.prefix()), PORT, 0, 0).to_string();
    let (alice, bob) = (format!("alice{n}"), format!("bob{n}"));
    let common = ["--server", &server, "--transport", transport];
    let common = [&common[..], &["--family", "6", "--json", "--no-data"]].concat();
    let started = Instant::now();
    let limit = started + ATTEMPT_LIMIT;
    let listen = spawn(
        lab,
        Host::Lan(Side::A),
        &[&["listen", "--id", &alice], &common[..]].concat(),
    )?;
    let ready = listen.wait_for("\"event\":\"waiting\"", Duration::from_secs(15));
    let (caller_exit, caller) = if ready {
        let call = [&["call", &alice, "--id", &bob], &common[..]].concat();
        finish(spawn(lab, Host::Lan(Side::B), &call)?, limit)?
    } else {
        (
            None,
            serde_json::json!({"result": "failed", "reason": "listen never got ready"}),
        )
    };
    let (callee_exit, callee) = finish(listen, limit)?;
    Ok(Attempt {
        pair: (pair.0.to_owned(), pair.1.to_owned()),
        transport: transport.to_owned(),
        n,
        wall: started.elapsed(),
        callee,
        caller,
        exits: (callee_exit, caller_exit),
    })
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

fn median(values: &mut [u64]) -> Option<f64> {
    values.sort_unstable();
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2] as f64),
        _ => Some((values[n / 2 - 1] + values[n / 2]) as f64 / 2.0),
    }
}

/// The path round trip, measured on connected direct UDP attempts (the caller's first PUNCH
/// request and its echo); the configured value when none ran.
fn path_rtt(attempts: &[Attempt]) -> (f64, bool) {
    let mut samples: Vec<u64> = attempts
        .iter()
        .filter(|a| a.transport == "udp" && a.connected() && a.strategy() == "direct")
        .filter_map(|a| {
            let own = &a.caller["directions"][0];
            (own["packets_sent"].as_u64() == Some(1))
                .then(|| own["first_through_ms"].as_u64())
                .flatten()
        })
        .collect();
    match median(&mut samples) {
        Some(rtt) => (rtt, true),
        None => (CONFIGURED_PATH_RTT_MS, false),
    }
}

/// One row: a pair over one transport.
struct Row<'a> {
    attempts: Vec<&'a Attempt>,
}

impl Row<'_> {
    fn connected(&self) -> usize {
        self.attempts.iter().filter(|a| a.connected()).count()
    }

    fn worst(&self) -> Vec<u64> {
        self.attempts.iter().filter_map(|a| a.worst_end()).collect()
    }
}

/// Attempts grouped by (pair, transport), in the order they ran.
fn rows(attempts: &[Attempt]) -> Vec<Row<'_>> {
    let mut rows: Vec<Row> = Vec::new();
    for a in attempts {
        let same = |r: &Row| {
            let first = r.attempts[0];
            first.pair == a.pair && first.transport == a.transport
        };
        match rows.last_mut() {
            Some(row) if same(row) => row.attempts.push(a),
            _ => rows.push(Row { attempts: vec![a] }),
        }
    }
    rows
}

fn rate(connected: usize, attempts: usize) -> String {
    match attempts {
        0 => "-".into(),
        _ => format!(
            "{connected}/{attempts} ({:.0}%)",
            100.0 * connected as f64 / attempts as f64
        ),
    }
}

/// The table to paste: one line per pair and transport.
fn table(rows: &[Row], rtt: f64) -> String {
    let mut t = String::from(
        "| listen (a) x call (b) | transport | class | strategy | success | worst end median ms (RTT) \
         | worst end max ms (RTT) | within 2 RTT |\n|---|---|---|---|---:|---:|---:|---:|\n",
    );
    let in_rtt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0} ({:.2})", v / rtt));
    for row in rows {
        let first = row.attempts[0];
        let worst = row.worst();
        let class = class(&first.pair.0, &first.pair.1);
        let within = match class {
            "refused" => "-".to_owned(),
            _ => {
                let n = worst
                    .iter()
                    .filter(|&&v| v as f64 <= GOAL_RTT * rtt)
                    .count();
                format!("{n}/{}", worst.len())
            }
        };
        let _ = writeln!(
            t,
            "| {} x {} | {} | {class} | {} | {} | {} | {} | {within} |",
            first.pair.0,
            first.pair.1,
            first.transport,
            first.strategy(),
            rate(row.connected(), row.attempts.len()),
            in_rtt(median(&mut worst.clone())),
            in_rtt(worst.iter().max().map(|&v| v as f64)),
        );
    }
    t
}

/// The goals, tallied per transport over the classes that must connect.
fn goals(rows: &[Row], rtt: f64, transports: &[String]) -> String {
    let mut t = String::from("| goal | transport | measured | met |\n|---|---|---|---|\n");
    for transport in transports {
        for (what, classes) in [
            (
                "100% through stateful firewalls, within 2 RTT",
                &["firewall"][..],
            ),
            (
                "100% on predictable NAT66 pairs, within 2 RTT",
                &["predictable"][..],
            ),
        ] {
            let chosen: Vec<&Row> = rows
                .iter()
                .filter(|r| &r.attempts[0].transport == transport)
                .filter(|r| classes.contains(&class(&r.attempts[0].pair.0, &r.attempts[0].pair.1)))
                .collect();
            let total: usize = chosen.iter().map(|r| r.attempts.len()).sum();
            if total == 0 {
                // Not measured in this run (--pairs chose other pairs).
                continue;
            }
            let connected: usize = chosen.iter().map(|r| r.connected()).sum();
            let worst: Vec<u64> = chosen.iter().flat_map(|r| r.worst()).collect();
            let within = worst
                .iter()
                .filter(|&&v| v as f64 <= GOAL_RTT * rtt)
                .count();
            let met = total > 0 && connected == total && within == worst.len();
            let _ = writeln!(
                t,
                "| {what} | {transport} | {}; {within}/{} within {:.0} ms; worst {} ms | {} |",
                rate(connected, total),
                worst.len(),
                GOAL_RTT * rtt,
                opt(worst.iter().max().copied()),
                if met { "yes" } else { "no" }
            );
        }
    }
    t
}

fn write_report(
    attempts: &[Attempt],
    config: &Config,
    started: SystemTime,
    load: &str,
    took: Duration,
) -> anyhow::Result<(String, std::path::PathBuf)> {
    let record = Record::new(&config.record)?;
    let (rtt, measured) = path_rtt(attempts);
    let rows = rows(attempts);
    let table = table(&rows, rtt);
    let mut t = String::from("# Hole punching over IPv6 in the lab: firewalls and NAT66\n\n");
    let _ = writeln!(
        t,
        "Recorded {} by `benches/punch6.sh` (benches/punch6.rs) in {:.0} s, load average {load} \
         at start (the machine is shared; rerun on a quiet machine before reading times closely). \
         Dual-stack lab, 25 ms one-way delay on each router's WAN link; server in RFC 5780 full \
         mode over both families. Per pair (router A's IPv6 mode x router B's): one lab, {} \
         attempt(s) per transport ({} for refused pairs), each from fresh NAT and firewall \
         state: `natlens listen --family 6` on host a, `natlens call --family 6` on host b, both \
         logged in over IPv6. **1 RTT below is the path RTT: {rtt:.0} ms** ({}). **worst end**: \
         per attempt, the later of the two ends' `elapsed_ms` (each from its own start signal to \
         the path confirmed both ways); the 2-RTT goal is checked on it.\n",
        humantime::format_rfc3339_seconds(started),
        took.as_secs_f64(),
        config.attempts,
        config.attempts.min(2),
        if measured {
            "measured: median of the caller's own first_through_ms on connected direct UDP \
             attempts whose first PUNCH request got through"
        } else {
            "no direct UDP pair ran: the configured value"
        },
    );
    let _ = writeln!(t, "## Per pair\n\n{table}");
    let _ = writeln!(
        t,
        "## Against the goals\n\n{}",
        goals(&rows, rtt, &config.transports)
    );
    record.write(
        t,
        &common::machine(load),
        "Times in ms, each from that end's start signal.",
        &raw_csv(attempts),
    )?;
    Ok((table, record.md))
}

fn raw_csv(attempts: &[Attempt]) -> String {
    let mut out = String::from(
        "v6_a,v6_b,transport,attempt,strategy,connected,winner,callee_elapsed_ms,\
         caller_elapsed_ms,callee_exit,caller_exit,wall_ms,reason\n",
    );
    for a in attempts {
        let code = |c: Option<i32>| c.map_or("-".into(), |c| c.to_string());
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},\"{}\"",
            a.pair.0,
            a.pair.1,
            a.transport,
            a.n,
            a.strategy(),
            a.connected(),
            a.winner(),
            opt(Attempt::elapsed(&a.callee)),
            opt(Attempt::elapsed(&a.caller)),
            code(a.exits.0),
            code(a.exits.1),
            a.wall.as_millis(),
            a.reason().replace('"', "'")
        );
    }
    out
}
