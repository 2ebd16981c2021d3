//! The dual-stack rows of benches/nat_wall_time.rs: `natlens nat --family any` (IPv4 and IPv6
//! probed at once) against `--family 4` alone, both given the server's IPv4 and IPv6 addresses,
//! in one dual-stack lab with the same 25 ms of delay on each WAN link. The goal: `any` within
//! 0.1 s of IPv4 alone, since the families are probed in parallel.
//!
//! Router A: IPv4 cone, IPv6 endpoint-independent firewall (the lab's default); router B: IPv4
//! seq:1, IPv6 nat66:seq:1 (so one side translates over IPv6 too). The server runs RFC 5780
//! full mode over both families, as `natlens lab up --with-server` runs it.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use natlens::lab::plan::SERVER_PRIMARY;
use natlens::lab::{server, Host, Lab, LabSpec, NatMode, Side, V6Mode};
use serde_json::Value;

use crate::common::{with_dual_stack_lab, DELAY, NATLENS, PORT};

/// The goal: `--family any` at most this much slower than `--family 4` (medians).
const GOAL: Duration = Duration::from_millis(100);

/// The two commands compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Four,
    Any,
}

impl Family {
    fn flag(self) -> &'static str {
        match self {
            Family::Four => "4",
            Family::Any => "any",
        }
    }

    pub fn name(self) -> String {
        format!("natlens nat --family {}", self.flag())
    }
}

/// One measured run.
pub struct FamilyRun {
    pub side: Side,
    pub label: String,
    pub round: usize,
    pub family: Family,
    pub wall: Duration,
    pub exit: Option<i32>,
    /// IPv4's and IPv6's verdict halves, or why the run failed.
    pub reported: String,
}

fn spec() -> anyhow::Result<LabSpec> {
    Ok(LabSpec {
        nat_a: NatMode::Cone,
        nat_b: NatMode::Sequential { delta: 1 },
        v6_a: "firewall:eif"
            .parse::<V6Mode>()
            .map_err(anyhow::Error::msg)?,
        v6_b: "nat66:seq:1"
            .parse::<V6Mode>()
            .map_err(anyhow::Error::msg)?,
        delay: DELAY,
        ..LabSpec::default()
    })
}

/// What the host behind `side` has, as the rows name it.
fn label(spec: &LabSpec, side: Side) -> String {
    let (v4, v6) = match side {
        Side::A => (spec.nat_a, spec.v6_a),
        Side::B => (spec.nat_b, spec.v6_b),
    };
    format!("{v4} / {v6}")
}

/// A warm-up run of each command from each host, then `rounds` rounds, the order alternating.
pub fn measure(rounds: usize) -> anyhow::Result<Vec<FamilyRun>> {
    let spec = spec()?;
    with_dual_stack_lab(spec.clone(), |lab| {
        for side in Side::BOTH {
            for family in [Family::Four, Family::Any] {
                run_once(lab, side, family)?;
            }
        }
        let mut runs = Vec::new();
        for round in 0..rounds {
            for side in Side::BOTH {
                let order = match round % 2 {
                    0 => [Family::Four, Family::Any],
                    _ => [Family::Any, Family::Four],
                };
                for family in order {
                    let (wall, exit, reported) = run_once(lab, side, family)?;
                    let label = label(&spec, side);
                    eprintln!(
                        "  round {round} {label:<28} {:<26} {:>6.0} ms",
                        family.name(),
                        wall.as_secs_f64() * 1000.0
                    );
                    runs.push(FamilyRun {
                        side,
                        label,
                        round,
                        family,
                        wall,
                        exit,
                        reported,
                    });
                }
            }
        }
        Ok(runs)
    })
}

/// One run from the LAN host behind `side`, from fresh NAT and firewall state.
fn run_once(
    lab: &Lab,
    side: Side,
    family: Family,
) -> anyhow::Result<(Duration, Option<i32>, String)> {
    lab.reset_nat_state()?;
    let v4 = format!("{SERVER_PRIMARY}:{PORT}");
    let v6 = server::primary6(lab.prefix()).to_string();
    let argv = [
        NATLENS,
        "nat",
        "-s",
        &v4,
        "-s",
        &v6,
        "--family",
        family.flag(),
        "--json",
    ];
    let started = Instant::now();
    let output = lab.exec(Host::Lan(side), &argv)?;
    let wall = started.elapsed();
    let reported = match serde_json::from_slice::<Value>(&output.stdout) {
        Ok(report) if output.status.success() => report["verdict"]
            .as_str()
            .unwrap_or("no verdict")
            .to_owned(),
        _ => format!("FAILED: {}", String::from_utf8_lossy(&output.stderr).trim()),
    };
    Ok((wall, output.status.code(), reported))
}

fn median_ms(mut walls: Vec<f64>) -> Option<f64> {
    walls.sort_by(f64::total_cmp);
    let n = walls.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(walls[n / 2]),
        _ => Some((walls[n / 2 - 1] + walls[n / 2]) / 2.0),
    }
}

/// The table to paste: per host, both medians, the difference and the goal.
pub fn table(runs: &[FamilyRun], load: &str) -> String {
    // The 1, 5 and 15 minute averages of /proc/loadavg.
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let mut t = String::from(
        "| host: IPv4 / IPv6 router | --family 4 median ms (min-max) | --family any median ms \
         (min-max) | any - 4 | within 0.1 s | load average at start |\n\
         |---|---:|---:|---:|---|---|\n",
    );
    for side in Side::BOTH {
        let walls = |family: Family| -> Vec<f64> {
            runs.iter()
                .filter(|r| r.side == side && r.family == family)
                .map(|r| r.wall.as_secs_f64() * 1000.0)
                .collect()
        };
        let (four, any) = (walls(Family::Four), walls(Family::Any));
        let Some(label) = runs.iter().find(|r| r.side == side).map(|r| &r.label) else {
            continue;
        };
        let cell = |w: &[f64]| match median_ms(w.to_vec()) {
            Some(m) => format!(
                "{m:.0} ({:.0}-{:.0})",
                w.iter().copied().fold(f64::INFINITY, f64::min),
                w.iter().copied().fold(0.0, f64::max)
            ),
            None => "-".into(),
        };
        let (diff, met) = match (median_ms(four.clone()), median_ms(any.clone())) {
            (Some(f), Some(a)) => (
                format!("{:+.0} ms", a - f),
                if a - f <= GOAL.as_secs_f64() * 1000.0 {
                    "yes"
                } else {
                    "no"
                },
            ),
            _ => ("-".into(), "-"),
        };
        let _ = writeln!(
            t,
            "| {side}: {label} | {} | {} | {diff} | {met} | {load} |",
            cell(&four),
            cell(&any)
        );
    }
    t
}

/// The section for the record: what was run, the table, and what each command reported.
pub fn section(runs: &[FamilyRun], rounds: usize, load: &str) -> String {
    let mut t =
        String::from("## IPv4 alone against both families (`--family 4` / `--family any`)\n\n");
    let _ = writeln!(
        t,
        "Dual-stack lab, 25 ms one-way delay on each WAN link; router A IPv4 cone and IPv6 \
         firewall:eif, router B IPv4 seq:1 and IPv6 nat66:seq:1; server in RFC 5780 full mode \
         over both families (one `--alternate` each). `natlens nat -s 203.0.113.10:3478 -s \
         [N::10]:3478 --family 4|any --json` (UDP and TCP) from each LAN host, {rounds} round(s), \
         order alternating, each from fresh NAT and firewall state, after one unrecorded warm-up \
         of each. Goal: `--family any` within 0.1 s of `--family 4` (medians). The machine is \
         shared: the load average at the start is in the table; times under load are longer \
         and noisier.\n"
    );
    let _ = writeln!(t, "{}", table(runs, load));
    let mut seen: Vec<(String, &str)> = Vec::new();
    for run in runs {
        let line = (
            format!("{}, {}", run.label, run.family.name()),
            run.reported.as_str(),
        );
        if !seen.contains(&line) {
            seen.push(line);
        }
    }
    for (what, reported) in seen {
        let _ = writeln!(t, "- {what}: {reported}");
    }
    t
}

/// The raw numbers, one line a run.
pub fn raw_csv(runs: &[FamilyRun]) -> String {
    let mut out = String::from("host,routers,round,command,wall_ms,exit,verdict\n");
    for r in runs {
        let _ = writeln!(
            out,
            "{},{},{},{},{:.1},{},\"{}\"",
            r.side,
            r.label,
            r.round,
            r.family.name(),
            r.wall.as_secs_f64() * 1000.0,
            r.exit.map_or("signal".into(), |c| c.to_string()),
            r.reported.replace('"', "'")
        );
    }
    out
}
