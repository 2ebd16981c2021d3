//! `million`: many UDP sessions on one `natlens server`, each from its own loopback source
//! transport address (see `million/swarm.rs`), and what they cost the server.
//!
//! Run by `benches/million.sh`, which starts the server pinned to one CPU and this generator on
//! the other. Phases, each printed as one JSON line on stdout:
//! 1. `login`: every session logs in (a window of LOGINs in flight); the login rate, and the
//!    server's RSS growth per session (VmRSS after minus before, over the sessions);
//! 2. `steady`: every session's KEEPALIVE once per `--keepalive-period` while Binding requests
//!    arrive at `--binding-rate`; lost requests, p50/p99 answer latency, and the server's CPU
//!    time per request (utime + stime over the requests answered);
//! 3. `expiry` (with `--expiry-watch`): Binding requests only, while the sessions, no longer
//!    kept alive, expire; latency per second, to see whether expiring them stalls the server,
//!    and a sample of sessions checked gone afterwards.
//!
//! Safety rails: the target must be a loopback address, every phase is bounded in time.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use clap::Parser;
use serde_json::json;

#[path = "million/core.rs"]
mod core_login;
#[path = "million/registry.rs"]
mod registry;
#[path = "million/swarm.rs"]
#[allow(dead_code)]
mod swarm;

use swarm::{cpu_seconds, rss_bytes, Kind, LoadRun, Swarm};

#[derive(Debug, Parser)]
#[command(
    name = "million",
    about = "A million UDP sessions against natlens server (loopback)"
)]
struct Cli {
    /// The server's UDP address (loopback only).
    #[arg(long, default_value = "127.0.0.1:3478")]
    target: SocketAddrV4,
    /// The server's process ID (for its RSS and CPU time).
    #[arg(long, required_unless_present_any = ["registry_only", "core_only"])]
    pid: Option<u32>,
    /// No server, no sockets: time the session registry itself (login, refresh, and expiry
    /// batch by batch) with `--sessions` sessions, and print one `registry` line.
    #[arg(long)]
    registry_only: bool,
    /// No sockets: time `--sessions` logins through the server core alone (the request's
    /// bytes in, the answer out) and its parts, and print one `core` line.
    #[arg(long)]
    core_only: bool,
    #[arg(long, default_value_t = 1_000_000)]
    sessions: usize,
    /// Sockets carrying the sessions (sessions per source IP = sockets).
    #[arg(long, default_value_t = 256)]
    sockets: usize,
    /// LOGINs in flight at once.
    #[arg(long, default_value_t = 4096)]
    window: usize,
    /// Length of the steady phase, seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    #[arg(long, default_value_t = 15)]
    keepalive_period: u64,
    #[arg(long, default_value_t = 100_000.0)]
    binding_rate: f64,
    /// Length of the expiry phase, seconds (0: none): at least the server's --udp-expiry plus
    /// the keepalive period, so every session expires within it.
    #[arg(long, default_value_t = 0)]
    expiry_watch: u64,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    ensure!(
        cli.target.ip().is_loopback(),
        "the target must be a loopback address"
    );
    ensure!(
        cli.seconds <= 600 && cli.expiry_watch <= 600,
        "phases are capped at 600 s"
    );
    if cli.registry_only {
        println!("{}", registry::measure(cli.sessions));
        return Ok(());
    }
    if cli.core_only {
        println!("{}", core_login::measure(cli.sessions));
        return Ok(());
    }
    let pid = cli
        .pid
        .context("--pid is required without --registry-only")?;
    let mut swarm = Swarm::new(cli.sessions, cli.sockets, cli.target).context("opening sockets")?;

    let rss_before = rss_bytes(pid)?;
    let cpu_before = cpu_seconds(pid)?;
    let own_cpu_before = cpu_seconds(std::process::id())?;
    let started = Instant::now();
    let login = swarm.login_all(cli.window)?;
    let own_cpu = cpu_seconds(std::process::id())? - own_cpu_before;
    let rss_after = rss_bytes(pid)?;
    let login_cpu = cpu_seconds(pid)? - cpu_before;
    let logged_in = cli.sessions - login.not_logged_in;
    println!(
        "{}",
        json!({
            "phase": "login",
            "sessions": cli.sessions,
            "logged_in": logged_in,
            "first_pass_s": login.first_pass.as_secs_f64(),
            "login_rate_per_s": cli.sessions as f64 / login.first_pass.as_secs_f64(),
            "first_pass_lost": login.first_pass_lost,
            "login_errors": swarm.tally(Kind::Login).errors,
            "first_errors": format!("{:?}", swarm.first_errors),
            "server_cpu_s": login_cpu,
            // What the server's CPU time allows: its login rate when the generator keeps up.
            "server_cpu_us_per_login": login_cpu * 1e6 / swarm.tally(Kind::Login).sent as f64,
            // The generator's own CPU time per login: whether it can offer more than this.
            "generator_cpu_us_per_login": own_cpu * 1e6 / swarm.tally(Kind::Login).sent as f64,
            "rss_before": rss_before,
            "rss_after": rss_after,
            "rss_per_session": (rss_after as f64 - rss_before as f64) / logged_in.max(1) as f64,
        })
    );

    let cpu_before = cpu_seconds(pid)?;
    let steady = swarm.load(
        Duration::from_secs(cli.seconds),
        Duration::from_secs(cli.keepalive_period),
        cli.binding_rate,
    )?;
    let cpu = cpu_seconds(pid)? - cpu_before;
    println!("{}", load_line("steady", &steady, cpu));

    if cli.expiry_watch > 0 {
        let cpu_before = cpu_seconds(pid)?;
        let expiry = swarm.load(
            Duration::from_secs(cli.expiry_watch),
            Duration::ZERO,
            cli.binding_rate,
        )?;
        let cpu = cpu_seconds(pid)? - cpu_before;
        let mut line = load_line("expiry", &expiry, cpu);
        let (gone, checked) = sample_gone(&mut swarm)?;
        line["sample_checked"] = json!(checked);
        line["sample_expired"] = json!(gone);
        line["rss_at_end"] = json!(rss_bytes(pid)?);
        println!("{line}");
    }
    eprintln!("million: done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// One phase's JSON line; `cpu`: the server's CPU seconds during it.
fn load_line(phase: &str, run: &LoadRun, cpu: f64) -> serde_json::Value {
    let answered =
        run.keepalives.ok + run.keepalives.errors + run.bindings.ok + run.bindings.errors;
    let worst = run
        .per_second
        .iter()
        .map(|&(_, p99, _)| p99)
        .max()
        .unwrap_or(0);
    json!({
        "phase": phase,
        "seconds": run.elapsed.as_secs_f64(),
        "keepalives_sent": run.keepalives.sent,
        "keepalives_ok": run.keepalives.ok,
        "keepalive_errors": run.keepalives.errors,
        "keepalive_rate_per_s": run.keepalives.sent as f64 / run.elapsed.as_secs_f64(),
        "bindings_sent": run.bindings.sent,
        "bindings_ok": run.bindings.ok,
        "binding_rate_per_s": run.bindings.sent as f64 / run.elapsed.as_secs_f64(),
        "lost": run.lost,
        "p50_us": run.latencies.quantile_us(0.5),
        "p99_us": run.latencies.quantile_us(0.99),
        "max_us": run.latencies.max_us(),
        "worst_second_p99_us": worst,
        "per_second_p99_us": run.per_second.iter().map(|&(_, p99, _)| p99).collect::<Vec<_>>(),
        "server_cpu_s": cpu,
        "server_cpu_us_per_request": cpu * 1e6 / answered.max(1) as f64,
    })
}

/// KEEPALIVEs from 1,000 sessions spread over all: how many were refused (expired).
fn sample_gone(swarm: &mut Swarm) -> Result<(u64, usize)> {
    let step = (swarm.sessions() / 1000).max(1);
    let sample: Vec<usize> = (0..swarm.sessions()).step_by(step).collect();
    let before = swarm.tally(Kind::Keepalive).errors;
    swarm.send_each(Kind::Keepalive, &sample)?;
    swarm.settle(swarm::GRACE)?;
    Ok((swarm.tally(Kind::Keepalive).errors - before, sample.len()))
}
