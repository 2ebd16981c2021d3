//! Hole-punching success rate and time to the first packet through, per NAT pair, in
//! the network-namespace lab with 25 ms of one-way delay on each NAT's WAN link: a LAN host's
//! round trip to the server crosses one WAN link each way (50 ms), the path between the two LAN
//! hosts crosses both (100 ms). Round trips below are path round trips, measured.
//!
//! For every pair of {cone, full-cone, seq:1, seq:2, random} (router-a x router-b): one lab,
//! `natlens server` in its server namespace, then N attempts, each from fresh NAT state
//! (rulesets reloaded, conntrack flushed): `natlens listen --id alice --no-data --json` on host
//! a, and once it waits, `natlens call alice --id bob --no-data --json` on host b. Each end's
//! JSON report gives the strategy, the result, `elapsed_ms` (from that end's start signal to the
//! path confirmed both ways) and per direction `first_through_ms` (from that end's start signal
//! to the first packet of that direction through; for the end's own direction, when its first
//! echo came back). The callee gets the start signal first (it answers the call and starts
//! punching; the caller starts when the answer reaches it, one relay later); both ends' times
//! are shown, each from its own start signal. The path RTT is measured from the same reports:
//! the median of the caller's own `first_through_ms` on `direct` pairs (its first PUNCH
//! request, sent at its start, and that request's echo).
//!
//! Run as root: `benches/punch.sh [--transport udp|tcp] [--attempts N] [--random-attempts N]
//! [--refused-attempts N] [--pairs cone:random,...]`. It prints one line per attempt and writes
//! `benches/results/punch-<transport>.md` (table per pair, targets, anchors, machine, raw
//! numbers) and a `.csv` of the raw numbers. The labs are torn down on every exit path: a `Lab`
//! is torn down when dropped (a panic included), and a terminating signal tears down every lab
//! of the process.

use std::fmt::Write as _;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use natlens::lab::plan::SERVER_PRIMARY;
use natlens::lab::{Host, Lab, NatMode, Side};
use serde_json::Value;

mod common;
use common::{finish, opt, spawn, with_lab, Record, DELAY, PORT};

/// A round trip between the LAN hosts as configured (two WAN links each way), used only when
/// no `direct` pair ran to measure it.
const CONFIGURED_PATH_RTT_MS: f64 = 4.0 * DELAY.as_millis() as f64;
/// Longest one attempt may take, both ends: logins, fingerprints, a punch of at most its 10 s
/// timeout, the logouts.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(40);

const MODES: [NatMode; 5] = [
    NatMode::Cone,
    NatMode::FullCone,
    NatMode::Sequential { delta: 1 },
    NatMode::Sequential { delta: 2 },
    NatMode::Random,
];

struct Config {
    transport: String,
    attempts: usize,
    random_attempts: usize,
    refused_attempts: usize,
    pairs: Option<Vec<(NatMode, NatMode)>>,
}

fn config() -> anyhow::Result<Config> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| -> Option<&String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let number = |name: &str, default: usize| -> anyhow::Result<usize> {
        value(name).map_or(Ok(default), |v| {
            v.parse().with_context(|| format!("{name} needs a number"))
        })
    };
    let attempts = number("--attempts", 10)?;
    let pairs = match value("--pairs") {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(|pair| {
                    let (a, b) = split_pair(pair).context("--pairs wants a:b,...")?;
                    Ok((
                        a.parse().map_err(anyhow::Error::msg)?,
                        b.parse().map_err(anyhow::Error::msg)?,
                    ))
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
        ),
    };
    Ok(Config {
        transport: value("--transport")
            .cloned()
            .unwrap_or_else(|| "udp".into()),
        attempts,
        random_attempts: number("--random-attempts", attempts)?,
        refused_attempts: number("--refused-attempts", 2)?,
        pairs,
    })
}

/// "seq:1:random" -> ("seq:1", "random"): the second mode starts at a known name.
fn split_pair(pair: &str) -> Option<(String, String)> {
    ["cone", "full-cone", "seq:", "random"]
        .iter()
        .filter_map(|name| pair.rfind(&format!(":{name}")))
        .max()
        .map(|i| (pair[..i].to_owned(), pair[i + 1..].to_owned()))
}

/// The planner's promise for a pair (as in tests/lab_punch.rs): connect when at least one side
/// keeps its port (cone, full-cone) or both are predictable; refuse random against random or
/// sequential.
fn expect_connect(a: NatMode, b: NatMode) -> bool {
    let fixed = |m| matches!(m, NatMode::Cone | NatMode::FullCone);
    fixed(a) || fixed(b) || (!matches!(a, NatMode::Random) && !matches!(b, NatMode::Random))
}

/// The class of a pair, which decides its target: predictable pairs connect within 3 path
/// RTTs, random x cone pairs at the plan's odds, the rest are refused.
fn class(a: NatMode, b: NatMode) -> &'static str {
    let random = matches!(a, NatMode::Random) as u8 + matches!(b, NatMode::Random) as u8;
    match (random, expect_connect(a, b)) {
        (0, _) => "predictable",
        (_, true) => "random x cone",
        (_, false) => "refused",
    }
}

/// One attempt, both ends.
struct Attempt {
    pair: (NatMode, NatMode),
    n: usize,
    wall: Duration,
    callee: Value,
    caller: Value,
    callee_exit: Option<i32>,
    caller_exit: Option<i32>,
}

impl Attempt {
    fn connected(&self) -> bool {
        self.callee["result"] == "connected"
            && self.caller["result"] == "connected"
            && self.callee_exit == Some(0)
            && self.caller_exit == Some(0)
    }

    fn strategy(&self) -> String {
        self.callee["strategy"]
            .as_str()
            .or(self.caller["strategy"].as_str())
            .unwrap_or("?")
            .to_owned()
    }

    /// The first packet through in either direction, from `end`'s start signal.
    fn first_through(end: &Value) -> Option<u64> {
        end["directions"]
            .as_array()?
            .iter()
            .filter_map(|d| d["first_through_ms"].as_u64())
            .min()
    }

    fn elapsed(end: &Value) -> Option<u64> {
        (end["result"] == "connected")
            .then(|| end["elapsed_ms"].as_u64())
            .flatten()
    }

    fn reason(&self) -> String {
        self.callee["reason"]
            .as_str()
            .or(self.caller["reason"].as_str())
            .unwrap_or("")
            .to_owned()
    }
}

fn main() -> anyhow::Result<()> {
    let config = config()?;
    common::preflight(&[], "")?;
    let started = SystemTime::now();
    let load = common::load_average();
    let pairs: Vec<(NatMode, NatMode)> = config.pairs.clone().unwrap_or_else(|| {
        MODES
            .iter()
            .flat_map(|&a| MODES.iter().map(move |&b| (a, b)))
            .collect()
    });
    let clock = Instant::now();
    let mut attempts = Vec::new();
    for (a, b) in pairs {
        let n = match class(a, b) {
            "predictable" => config.attempts,
            "random x cone" => config.random_attempts,
            _ => config.refused_attempts,
        };
        eprintln!(
            "lab: router-a {a}, router-b {b}, delay {DELAY:?} per WAN link, {n} attempt(s) over {}",
            config.transport
        );
        attempts.extend(measure_pair(a, b, n, &config.transport)?);
    }
    let took = clock.elapsed();
    let report = write_report(&attempts, &config, started, &load, took)?;
    eprintln!("wrote {} ({took:.0?})", report.display());
    Ok(())
}

fn measure_pair(
    nat_a: NatMode,
    nat_b: NatMode,
    n: usize,
    transport: &str,
) -> anyhow::Result<Vec<Attempt>> {
    with_lab(nat_a, nat_b, |lab| {
        let mut out = Vec::new();
        for i in 0..n {
            lab.reset_nat_state()?;
            let attempt = attempt(lab, (nat_a, nat_b), i, transport)?;
            eprintln!(
                "  {nat_a} x {nat_b} #{i}: {} {} callee first {} ms, connected {} ms; caller first \
                 {} ms, connected {} ms; wall {} ms {}",
                attempt.strategy(),
                if attempt.connected() {
                    "connected"
                } else {
                    "FAILED"
                },
                opt(Attempt::first_through(&attempt.callee)),
                opt(Attempt::elapsed(&attempt.callee)),
                opt(Attempt::first_through(&attempt.caller)),
                opt(Attempt::elapsed(&attempt.caller)),
                attempt.wall.as_millis(),
                attempt.reason()
            );
            out.push(attempt);
        }
        Ok(out)
    })
}

fn attempt(
    lab: &Lab,
    pair: (NatMode, NatMode),
    n: usize,
    transport: &str,
) -> anyhow::Result<Attempt> {
    let server = SocketAddrV4::new(SERVER_PRIMARY, PORT).to_string();
    let (alice, bob) = (format!("alice{n}"), format!("bob{n}"));
    let common = ["--server", &server, "--transport", transport, "--json"];
    let started = Instant::now();
    let mut args = vec!["listen", "--id", &alice, "--no-data"];
    args.extend(common);
    let listen = spawn(lab, Host::Lan(Side::A), &args)?;
    if !listen.wait_for("\"event\":\"waiting\"", Duration::from_secs(15)) {
        // Recorded as a failed attempt (e.g. a transport this build does not punch over).
        eprintln!(
            "  {} x {} #{n}: natlens listen never got ready",
            pair.0, pair.1
        );
        let (callee_exit, callee) = finish(listen, started + ATTEMPT_LIMIT)?;
        return Ok(Attempt {
            pair,
            n,
            wall: started.elapsed(),
            callee,
            caller: Value::Null,
            callee_exit,
            caller_exit: None,
        });
    }
    let mut args = vec!["call", &alice, "--id", &bob, "--no-data"];
    args.extend(common);
    let call = spawn(lab, Host::Lan(Side::B), &args)?;
    let limit = started + ATTEMPT_LIMIT;
    let (caller_exit, caller) = finish(call, limit)?;
    let (callee_exit, callee) = finish(listen, limit)?;
    Ok(Attempt {
        pair,
        n,
        wall: started.elapsed(),
        callee,
        caller,
        callee_exit,
        caller_exit,
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

fn ms_rtt(v: Option<f64>, rtt: f64) -> String {
    v.map_or("-".into(), |v| format!("{v:.0} ({:.2})", v / rtt))
}

/// The path round trip, measured: the median of the caller's own `first_through_ms` (its first
/// PUNCH request out, its echo back) over connected `direct` attempts; the configured value
/// when none ran.
fn path_rtt(attempts: &[Attempt]) -> (f64, bool) {
    let mut samples: Vec<u64> = attempts
        .iter()
        .filter(|a| a.connected() && a.strategy() == "direct")
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

struct Summary {
    pair: (NatMode, NatMode),
    class: &'static str,
    strategy: String,
    odds: Option<f64>,
    connected: usize,
    attempts: usize,
    first: Vec<u64>,
    callee_elapsed: Vec<u64>,
    caller_elapsed: Vec<u64>,
    /// Per connected attempt, the later of the two ends' `elapsed_ms`, each from its own start
    /// signal.
    both: Vec<u64>,
}

fn summaries(attempts: &[Attempt]) -> Vec<Summary> {
    let mut out: Vec<Summary> = Vec::new();
    for attempt in attempts {
        if out.last().map(|s| s.pair) != Some(attempt.pair) {
            out.push(Summary {
                pair: attempt.pair,
                class: class(attempt.pair.0, attempt.pair.1),
                strategy: attempt.strategy(),
                odds: attempt.callee["expected_success"].as_f64(),
                connected: 0,
                attempts: 0,
                first: Vec::new(),
                callee_elapsed: Vec::new(),
                caller_elapsed: Vec::new(),
                both: Vec::new(),
            });
        }
        let s = out.last_mut().expect("pushed");
        s.attempts += 1;
        if attempt.connected() {
            s.connected += 1;
            s.first.extend(Attempt::first_through(&attempt.callee));
            s.callee_elapsed.extend(Attempt::elapsed(&attempt.callee));
            let callee = Attempt::elapsed(&attempt.callee);
            let caller = Attempt::elapsed(&attempt.caller);
            s.caller_elapsed.extend(caller);
            s.both.extend(callee.max(caller));
        }
    }
    out
}

fn rate(connected: usize, attempts: usize) -> String {
    if attempts == 0 {
        return "-".into();
    }
    format!(
        "{connected}/{attempts} ({:.0}%)",
        100.0 * connected as f64 / attempts as f64
    )
}

fn write_report(
    attempts: &[Attempt],
    config: &Config,
    started: SystemTime,
    load: &str,
    took: Duration,
) -> anyhow::Result<PathBuf> {
    let record = Record::new(&format!("punch-{}", config.transport))?;
    let (rtt, measured) = path_rtt(attempts);
    let summaries = summaries(attempts);

    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Hole punching over {} in the lab: success rate and time to the first packet through\n",
        config.transport.to_uppercase()
    );
    let _ = writeln!(
        t,
        "Recorded {} by `benches/punch.sh` (benches/punch.rs) in {:.0} s. Lab: 25 ms one-way \
         delay on each NAT's WAN link, made by the lab's user-space frame relay (this kernel has \
         no netem): a LAN host's round trip to the server crosses one WAN link each way (50 ms), \
         the path between the two LAN hosts crosses both (100 ms configured). **1 RTT below is \
         the path RTT, measured: {rtt:.0} ms** ({}). `natlens server` in the server namespace. Per NAT pair (router-a x router-b): one lab, then attempts each \
         from fresh NAT state (`reset_nat_state`: rulesets reloaded, conntrack flushed): \
         `natlens listen --id alice --no-data --json` on host a, then `natlens call alice --no-data \
         --json` on host b, over `--transport {}`. Attempts: {} per predictable pair, {} per \
         random x cone pair, {} per refused pair (the planner refuses those at once).\n",
        humantime::format_rfc3339_seconds(started),
        took.as_secs_f64(),
        if measured {
            "median of the caller's own first_through_ms on connected direct attempts whose \
             first PUNCH request got through: one request out, its echo back"
        } else {
            "no direct pair ran: the configured value"
        },
        config.transport,
        config.attempts,
        config.random_attempts,
        config.refused_attempts,
    );
    let _ = writeln!(
        t,
        "What is measured, from the JSON reports. The **start signal** is, for the callee \
         (listen), the moment it answers the call (it starts punching at once); for the caller, \
         the moment the answer reaches it (one relay later: callee -> server -> caller, 50 ms \
         here). **first packet** is the callee's smallest `directions[].first_through_ms`: from \
         its start signal to the first packet through in either direction. **connected, \
         callee** / **connected, caller** are each end's `elapsed_ms`: from its own start signal \
         to the path confirmed both ways (nonce handshake done). **worst end** is, per attempt, \
         the later of the two, and the 3-RTT target is checked on it: both ends, each on its own \
         clock. Medians over connected attempts (worst end: the maximum), in ms and (path round \
         trips); every attempt is in the raw numbers. A `caller_first_ms` of 0 means the \
         callee's first PUNCH request had already arrived when the caller started.\n"
    );
    let _ = writeln!(t, "## Per pair\n");
    let _ = writeln!(
        t,
        "| listen (a) x call (b) | class | strategy | plan odds | success | first packet ms (RTT) \
         | connected, callee ms (RTT) | connected, caller ms (RTT) | worst end, max ms (RTT) \
         | both ends within 3 RTT |"
    );
    let _ = writeln!(t, "|---|---|---|---:|---:|---:|---:|---:|---:|---|");
    for s in &summaries {
        let within = if s.class == "refused" {
            "-".to_owned()
        } else {
            let n = s.both.iter().filter(|&&v| v as f64 <= 3.0 * rtt).count();
            format!("{n}/{}", s.connected)
        };
        let _ = writeln!(
            t,
            "| {} x {} | {} | {} | {} | {} | {} | {} | {} | {} | {within} |",
            s.pair.0,
            s.pair.1,
            s.class,
            s.strategy,
            s.odds.map_or("-".into(), |o| format!("{o:.2}")),
            rate(s.connected, s.attempts),
            ms_rtt(median(&mut s.first.clone()), rtt),
            ms_rtt(median(&mut s.callee_elapsed.clone()), rtt),
            ms_rtt(median(&mut s.caller_elapsed.clone()), rtt),
            ms_rtt(s.both.iter().max().map(|&v| v as f64), rtt),
        );
    }

    // Targets.
    let tally = |filter: &dyn Fn(&Summary) -> bool| {
        summaries
            .iter()
            .filter(|s| filter(s))
            .fold((0, 0), |(c, a), s| (c + s.connected, a + s.attempts))
    };
    let (pc, pa) = tally(&|s| s.class == "predictable");
    let (rc, ra) = tally(&|s| s.class == "random x cone");
    let (cc, ca) = tally(&|s| s.class != "refused");
    let (all_c, all_a) = tally(&|_| true);
    let predictable_elapsed: Vec<u64> = summaries
        .iter()
        .filter(|s| s.class == "predictable")
        .flat_map(|s| s.both.iter().copied())
        .collect();
    let within = predictable_elapsed
        .iter()
        .filter(|&&v| v as f64 <= 3.0 * rtt)
        .count();
    let worst = predictable_elapsed.iter().max().copied();
    let pair_count = |class: &str| summaries.iter().filter(|s| s.class == class).count();
    let _ = writeln!(t, "\n## Against the targets\n");
    let _ = writeln!(t, "| target | measured | met |");
    let _ = writeln!(t, "|---|---|---|");
    let _ = writeln!(
        t,
        "| 100% on pairs where both sides are predictable (cone, full-cone, seq:1, seq:2; {} pairs) \
         | {} | {} |",
        pair_count("predictable"),
        rate(pc, pa),
        if pa > 0 && pc == pa { "yes" } else { "no" }
    );
    let _ = writeln!(
        t,
        "| >= 95% random x cone/full-cone ({} pairs) | {} | {} |",
        pair_count("random x cone"),
        rate(rc, ra),
        if ra > 0 && rc as f64 >= 0.95 * ra as f64 {
            "yes"
        } else {
            "no"
        }
    );
    let _ = writeln!(
        t,
        "| connected within 3 RTT ({:.0} ms) of the start signal, predictable pairs (both ends, \
         each from its own start signal) | {within}/{} connected attempts; worst {} ms | {} |",
        3.0 * rtt,
        predictable_elapsed.len(),
        opt(worst),
        if !predictable_elapsed.is_empty() && within == predictable_elapsed.len() {
            "yes"
        } else {
            "no"
        }
    );
    let _ = writeln!(t, "\n## Against the published anchors\n");
    let _ = writeln!(
        t,
        "| | success |\n|---|---:|\n| natlens, pairs the planner takes on ({} pairs) | {} |\n\
         | natlens, all {} pairs (refused pairs count as failures) | {} |\n\
         | Ford, Srisuresh, Kegel 2005, UDP (field survey) | 82% |\n\
         | Ford, Srisuresh, Kegel 2005, TCP (field survey) | 64% |\n\
         | libp2p 2025 (DCUtR, field measurement) | 70% |\n",
        summaries.iter().filter(|s| s.class != "refused").count(),
        rate(cc, ca),
        summaries.len(),
        {
            // Weight every pair the same, whatever its number of attempts.
            let share: f64 = summaries
                .iter()
                .map(|s| s.connected as f64 / s.attempts.max(1) as f64)
                .sum::<f64>()
                / summaries.len().max(1) as f64;
            format!(
                "{:.0}% (pairs weighted equally; {all_c}/{all_a} attempts)",
                100.0 * share
            )
        }
    );
    let _ = writeln!(
        t,
        "The anchors are success rates over the NATs met in the field (a mix weighted by how \
         common each NAT is, with firewalls, CGNAT and hairpin cases the lab does not model); the \
         lab's rates are over five kernel NAT modes weighted equally, with no loss. They bound \
         what to expect, they are not the same experiment.\n"
    );
    record.write(
        t,
        &common::machine(load),
        "Times in ms, each from that end's start signal.",
        &raw_csv(attempts),
    )?;
    Ok(record.md)
}

fn raw_csv(attempts: &[Attempt]) -> String {
    let mut out = String::from(
        "nat_a,nat_b,attempt,strategy,connected,callee_first_ms,callee_elapsed_ms,\
         caller_first_ms,caller_elapsed_ms,callee_exit,caller_exit,wall_ms,reason\n",
    );
    for a in attempts {
        let code = |c: Option<i32>| c.map_or("signal".into(), |c| c.to_string());
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},\"{}\"",
            a.pair.0,
            a.pair.1,
            a.n,
            a.strategy(),
            a.connected(),
            opt(Attempt::first_through(&a.callee)),
            opt(Attempt::elapsed(&a.callee)),
            opt(Attempt::first_through(&a.caller)),
            opt(Attempt::elapsed(&a.caller)),
            code(a.callee_exit),
            code(a.caller_exit),
            a.wall.as_millis(),
            a.reason().replace('"', "'")
        );
    }
    out
}
