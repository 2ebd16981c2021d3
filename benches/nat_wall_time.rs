//! Wall time of a full NAT report in the network-namespace lab: `natlens nat` (UDP and
//! TCP) against the classic clients, coturn's `turnutils_natdiscovery -m -f` and Debian's `stun`
//! (package stun-client), in the same labs, in one run, rounds alternating the tools. `natlens
//! nat -t udp` runs too, to compare like with like: the classic clients probe UDP only.
//!
//! Two labs, 25 ms of delay on each WAN link (a LAN host's round trip to the server is about
//! 50 ms): router-a cone and router-b seq:1, then router-a random and router-b full-cone. The
//! server is `natlens server --listen 203.0.113.10:3478 --alternate 203.0.113.11:3479` (RFC 5780
//! full mode) in the lab's server namespace, and every tool asks it. Each run starts from fresh
//! NAT state (rulesets reloaded, conntrack flushed), as docs/lab.md asks for measured runs.
//!
//! A third, dual-stack lab compares `natlens nat --family any` with `--family 4` alone
//! (benches/nat_wall_time/family.rs).
//!
//! Run as root: `benches/nat_wall_time.sh [--rounds N] [--families-only]` (or `cargo bench
//! --bench nat_wall_time -- --rounds N`). It writes `benches/results/nat-wall-time.md`
//! (summary, what each tool reported, the dual-stack section, machine, raw numbers) and a
//! `.csv` of the raw numbers next to it, the dual-stack rows also to
//! `nat-wall-time-family.{md,csv}`, and prints the dual-stack table. `--families-only` runs
//! the dual-stack lab alone and writes only `nat-wall-time-family.{md,csv}`. The labs are torn down on every exit path: a `Lab` is torn down when dropped (a panic
//! included), and a terminating signal tears down every lab of the process.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use natlens::lab::plan::SERVER_PRIMARY;
use natlens::lab::{Host, Lab, NatMode, Side};
use serde_json::Value;

mod common;
use common::{with_lab, Record, DELAY, NATLENS, PORT};
#[path = "nat_wall_time/family.rs"]
mod family;

const DEFAULT_ROUNDS: usize = 7;

/// The labs, as (router-a, router-b).
const LABS: [(NatMode, NatMode); 2] = [
    (NatMode::Cone, NatMode::Sequential { delta: 1 }),
    (NatMode::Random, NatMode::FullCone),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tool {
    Natlens,
    NatlensUdp,
    Natdiscovery,
    Stun,
}

const TOOLS: [Tool; 4] = [
    Tool::Natlens,
    Tool::NatlensUdp,
    Tool::Natdiscovery,
    Tool::Stun,
];

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Natlens => "natlens nat",
            Tool::NatlensUdp => "natlens nat -t udp",
            Tool::Natdiscovery => "turnutils_natdiscovery -m -f",
            Tool::Stun => "stun",
        }
    }

    fn argv(self) -> Vec<String> {
        let server = SERVER_PRIMARY.to_string();
        let primary = format!("{server}:{PORT}");
        let argv: Vec<&str> = match self {
            Tool::Natlens => vec![NATLENS, "nat", "--server", &primary, "--json"],
            Tool::NatlensUdp => vec![NATLENS, "nat", "--server", &primary, "--json", "-t", "udp"],
            Tool::Natdiscovery => {
                vec!["turnutils_natdiscovery", "-m", "-f", "-p", "3478", &server]
            }
            Tool::Stun => vec!["stun", &server],
        };
        argv.into_iter().map(String::from).collect()
    }

    /// What the run reported, in one line; `Err` when the run did not complete.
    fn summary(self, output: &Output) -> Result<String, String> {
        let stdout = String::from_utf8_lossy(&output.stdout);
        match self {
            Tool::Natlens | Tool::NatlensUdp => natlens_summary(output, &stdout),
            Tool::Natdiscovery => natdiscovery_summary(output, &stdout),
            Tool::Stun => stun_summary(&stdout),
        }
    }
}

/// One measured run.
struct Run {
    mode: NatMode,
    host: Side,
    round: usize,
    tool: Tool,
    wall: Duration,
    exit: Option<i32>,
    summary: Result<String, String>,
}

fn main() -> anyhow::Result<()> {
    let rounds = rounds()?;
    let families_only = std::env::args().any(|a| a == "--families-only");
    let tools: &[&str] = match families_only {
        true => &[],
        false => &["turnutils_natdiscovery", "stun"],
    };
    common::preflight(tools, "coturn, stun-client")?;
    let started = SystemTime::now();
    let load = common::load_average();
    let mut runs = Vec::new();
    if !families_only {
        for (nat_a, nat_b) in LABS {
            eprintln!("lab: router-a {nat_a}, router-b {nat_b}, delay {DELAY:?} per WAN link");
            runs.extend(measure_lab(nat_a, nat_b, rounds)?);
        }
    }
    eprintln!("dual-stack lab: nat --family 4 against --family any, delay {DELAY:?} per WAN link");
    let family_runs = family::measure(rounds)?;
    let section = family::section(&family_runs, rounds, &load);
    // The dual-stack rows have a record of their own, so that they can be measured again
    // without the classic clients' rows.
    let record = Record::new("nat-wall-time-family")?;
    let title = format!(
        "# NAT report wall time over both families\n\nRecorded {} by `benches/nat_wall_time.sh \
         --families-only` (benches/nat_wall_time/family.rs).\n\n",
        humantime::format_rfc3339_seconds(started)
    );
    record.write(
        title + &section,
        &machine(&load),
        "",
        &family::raw_csv(&family_runs),
    )?;
    eprintln!("wrote {}", record.md.display());
    if !families_only {
        let report = write_report(&runs, rounds, started, &load, &section)?;
        eprintln!("wrote {}", report.display());
    }
    println!("{}", family::table(&family_runs, &load));
    Ok(())
}

/// `--rounds N` (cargo bench also passes `--bench`, which is ignored).
fn rounds() -> anyhow::Result<usize> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().position(|a| a == "--rounds") {
        Some(i) => {
            let n = args.get(i + 1).context("--rounds needs a number")?;
            Ok(n.parse().context("--rounds needs a number")?)
        }
        None => Ok(DEFAULT_ROUNDS),
    }
}

/// Every round in one lab: a warm-up run of each tool from each host (not recorded), then
/// `rounds` rounds, each running every tool from each host in an order that rotates.
fn measure_lab(nat_a: NatMode, nat_b: NatMode, rounds: usize) -> anyhow::Result<Vec<Run>> {
    with_lab(nat_a, nat_b, |lab| {
        for side in Side::BOTH {
            for tool in TOOLS {
                run_once(lab, side, tool)?;
            }
        }
        let mut runs = Vec::new();
        for round in 0..rounds {
            for side in Side::BOTH {
                for k in 0..TOOLS.len() {
                    let tool = TOOLS[(round + k) % TOOLS.len()];
                    let (wall, output) = run_once(lab, side, tool)?;
                    let run = Run {
                        mode: lab.spec().nat(side),
                        host: side,
                        round,
                        tool,
                        wall,
                        exit: output.status.code(),
                        summary: tool.summary(&output),
                    };
                    eprintln!(
                        "  round {round} {:<9} {:<28} {:>6.0} ms",
                        run.mode.to_string(),
                        tool.name(),
                        ms(wall)
                    );
                    runs.push(run);
                }
            }
        }
        Ok(runs)
    })
}

/// One run of `tool` from the LAN host behind `side`, from fresh NAT state.
fn run_once(lab: &Lab, side: Side, tool: Tool) -> anyhow::Result<(Duration, Output)> {
    lab.reset_nat_state()?;
    let argv = tool.argv();
    let started = Instant::now();
    let output = lab.exec(Host::Lan(side), &argv)?;
    Ok((started.elapsed(), output))
}

// ---------------------------------------------------------------------------------------------
// What each tool reported
// ---------------------------------------------------------------------------------------------

fn short(behaviour: &Value) -> &'static str {
    match behaviour.as_str() {
        Some("endpoint-independent") => "EI",
        Some("address-dependent") => "AD",
        Some("address-and-port-dependent") => "APD",
        _ => "?",
    }
}

fn natlens_summary(output: &Output, stdout: &str) -> Result<String, String> {
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
    }
    let report: Value = serde_json::from_str(stdout).map_err(|e| e.to_string())?;
    let mut parts = Vec::new();
    for transport in ["udp", "tcp"] {
        let t = &report[transport];
        if t.is_null() {
            continue;
        }
        let a = &t["allocation"];
        let mut facts = vec![format!("mapping {}", short(&t["mapping"]))];
        if transport == "udp" {
            facts.push(format!("filtering {}", short(&t["filtering"])));
        }
        facts.push(match t["hairpinning"].as_bool() {
            Some(true) => "hairpin".into(),
            Some(false) => "no hairpin".into(),
            None => "hairpin ?".into(),
        });
        let pattern = a["pattern"].as_str().unwrap_or("?");
        facts.push(match a["delta"].as_i64() {
            Some(delta) => format!("{pattern} {delta:+}"),
            None => pattern.to_owned(),
        });
        let p = &t["prediction"];
        facts.push(match (p["rule"].as_str(), p["next_port"].as_u64()) {
            (Some("local-port"), _) => "next = local port".into(),
            (Some(_), Some(next)) => format!("next {next}"),
            _ => "unpredictable".into(),
        });
        if a["shared_counter"] == Value::Bool(true) {
            facts.push("one counter".into());
        }
        parts.push(format!(
            "{}: {}",
            transport.to_uppercase(),
            facts.join(", ")
        ));
    }
    Ok(parts.join("; "))
}

/// The verdict lines natdiscovery frames with `====` rules.
fn natdiscovery_summary(output: &Output, stdout: &str) -> Result<String, String> {
    if !output.status.success() {
        return Err(format!("exit {:?}", output.status.code()));
    }
    let verdicts: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("Mapping!") || l.contains("Filtering!"))
        .map(|l| l.trim_end_matches('!'))
        .collect();
    match verdicts.len() {
        2 => Ok(verdicts.join("; ")),
        _ => Err(format!("verdicts missing: {verdicts:?}")),
    }
}

/// stund's one-line verdict; it exits with a NAT-type bit mask, so the status says nothing.
fn stun_summary(stdout: &str) -> Result<String, String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Primary:"))
        .map(|l| l.trim().to_owned())
        .ok_or_else(|| "no Primary: line".into())
}

// ---------------------------------------------------------------------------------------------
// The record
// ---------------------------------------------------------------------------------------------

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Runs grouped by NAT mode, then tool.
fn grouped(runs: &[Run]) -> BTreeMap<String, BTreeMap<Tool, Vec<&Run>>> {
    let mut groups: BTreeMap<String, BTreeMap<Tool, Vec<&Run>>> = BTreeMap::new();
    for run in runs {
        let mode = groups.entry(run.mode.to_string()).or_default();
        mode.entry(run.tool).or_default().push(run);
    }
    groups
}

fn write_report(
    runs: &[Run],
    rounds: usize,
    started: SystemTime,
    load: &str,
    family_section: &str,
) -> anyhow::Result<PathBuf> {
    let record = Record::new("nat-wall-time")?;
    let groups = grouped(runs);

    let mut text = String::new();
    let _ = writeln!(
        text,
        "# NAT report wall time: natlens vs the classic clients\n"
    );
    let _ = writeln!(
        text,
        "Recorded {} by `benches/nat_wall_time.sh` (benches/nat_wall_time.rs); {rounds} round(s) \
         per NAT mode, tools alternating, each run from fresh NAT state, after one unrecorded \
         warm-up run of each tool. Lab: 25 ms one-way delay on each WAN link (about 50 ms round \
         trip from a LAN host to the server), server `natlens server --listen \
         203.0.113.10:3478 --alternate 203.0.113.11:3479` (RFC 5780 full mode). Wall time is \
         measured around `lab exec` of the whole command (start, probing, output, exit).\n",
        humantime::format_rfc3339_seconds(started)
    );
    let _ = writeln!(text, "## Medians (ms)\n");
    let _ = writeln!(
        text,
        "| NAT mode | natlens nat (UDP+TCP) | natlens nat -t udp | turnutils_natdiscovery -m -f \
         | stun | natlens (UDP+TCP) / fastest classic | natlens -t udp / fastest classic |"
    );
    let _ = writeln!(text, "|---|---:|---:|---:|---:|---:|---:|");
    for (mode, tools) in &groups {
        let med = |tool: Tool| {
            let mut walls: Vec<f64> = tools
                .get(&tool)
                .map(|runs| runs.iter().map(|r| ms(r.wall)).collect())
                .unwrap_or_default();
            (!walls.is_empty()).then(|| median(&mut walls))
        };
        let [natlens, udp, natdiscovery, stun] = TOOLS.map(med);
        let fastest = natdiscovery.into_iter().chain(stun).reduce(f64::min);
        let ratio = |n: Option<f64>| match (n, fastest) {
            (Some(n), Some(f)) => format!("{:.2}", n / f),
            _ => "-".into(),
        };
        let cell = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
        let _ = writeln!(
            text,
            "| {mode} | {} | {} | {} | {} | {} | {} |",
            cell(natlens),
            cell(udp),
            cell(natdiscovery),
            cell(stun),
            ratio(natlens),
            ratio(udp)
        );
    }
    let _ = writeln!(text, "\n## Spread (ms: min / median / max)\n");
    let _ = writeln!(text, "| NAT mode | tool | min | median | max | runs |");
    let _ = writeln!(text, "|---|---|---:|---:|---:|---:|");
    for (mode, tools) in &groups {
        for (tool, runs) in tools {
            let mut walls: Vec<f64> = runs.iter().map(|r| ms(r.wall)).collect();
            let med = median(&mut walls);
            let _ = writeln!(
                text,
                "| {mode} | {} | {:.0} | {med:.0} | {:.0} | {} |",
                tool.name(),
                walls[0],
                walls[walls.len() - 1],
                walls.len()
            );
        }
    }
    let _ = writeln!(text, "\n## What each tool reported\n");
    for (mode, tools) in &groups {
        let _ = writeln!(text, "### {mode}\n");
        for (tool, runs) in tools {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for run in runs {
                let line = match &run.summary {
                    Ok(summary) => summary.clone(),
                    Err(err) => format!("FAILED: {err}"),
                };
                *counts.entry(line).or_default() += 1;
            }
            for (line, n) in counts {
                let _ = writeln!(text, "- {} ({n}/{}): {line}", tool.name(), runs.len());
            }
        }
        let _ = writeln!(text);
    }
    let _ = writeln!(text, "{family_section}");
    record.write(text, &machine(load), "", &raw_csv(runs))?;
    Ok(record.md)
}

fn raw_csv(runs: &[Run]) -> String {
    let mut out = String::from("nat_mode,host,round,tool,wall_ms,exit,reported\n");
    for run in runs {
        let reported = match &run.summary {
            Ok(summary) => summary.clone(),
            Err(err) => format!("FAILED: {err}"),
        };
        let _ = writeln!(
            out,
            "{},{},{},{},{:.1},{},\"{}\"",
            run.mode,
            run.host,
            run.round,
            run.tool.name(),
            ms(run.wall),
            run.exit.map_or("signal".into(), |c| c.to_string()),
            reported.replace('"', "'")
        );
    }
    out
}

/// The shared machine facts, and the versions of the classic clients.
fn machine(load: &str) -> String {
    let packages = common::stdout_of(
        "dpkg-query",
        &[
            "-W",
            "-f",
            "${Package} ${Version}; ",
            "coturn",
            "stun-client",
        ],
    );
    format!("{}packages: {packages}\n", common::machine(load))
}
