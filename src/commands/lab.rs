//! `natlens lab`: up, down, status, exec, demo, and the hidden worker.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::cli::{
    LabArgs, LabCommand, LabDownArgs, LabExecArgs, LabSpecArgs, LabStatusArgs, LabUpArgs,
    LabWorkerArgs,
};
use crate::lab::netns;
use crate::lab::state::{self, LabState};
use crate::lab::teardown;
use crate::lab::worker::{Job, READY};
use crate::lab::{Host, Lab, LabSpec, Side};
use crate::report::outcome::LAB_SCHEMA_VERSION;

/// Runs one `natlens lab` verb.
pub fn run(args: LabArgs, rng: &mut dyn rand::RngCore) -> anyhow::Result<ExitCode> {
    match args.command {
        LabCommand::Up(args) => up(args),
        LabCommand::Down(args) => down(args),
        LabCommand::Status(args) => status(args),
        LabCommand::Exec(args) => exec(args),
        LabCommand::Demo(args) => super::lab_demo::run(args, rng),
        LabCommand::Worker(args) => worker(args),
    }
}

/// The library's spec from the command line's.
pub fn spec(args: &LabSpecArgs) -> LabSpec {
    LabSpec {
        nat_a: args.nat_a,
        nat_b: args.nat_b,
        noise_a: args.noise_a.unwrap_or(args.noise),
        noise_b: args.noise_b.unwrap_or(args.noise),
        delay: args.delay,
        loss_percent: args.loss,
        public_host: args.public_host,
        prefix: None,
        udp_timeout: args.udp_timeout,
        port_mapping: Default::default(),
        cgnat_a: args.cgnat_a,
        v6_a: args.v6_a,
        v6_b: args.v6_b,
    }
}

fn up(args: LabUpArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("finding the natlens executable")?;
    let spec = LabSpec {
        port_mapping: args.port_mapping,
        ..spec(&args.spec)
    };
    let state = Lab::up_detached(spec, &exe, args.with_server)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &LabUp::new(&state))?;
        writeln!(out)?;
    } else {
        write!(out, "{}", describe(&state))?;
        let example = match &state.server {
            Some(server) => format!("natlens nat --server {}", server.listen.ip()),
            None => "CMD".to_owned(),
        };
        writeln!(
            out,
            "\nRun commands with `natlens lab exec a -- {example}`; tear down with \
             `natlens lab down {}`.",
            state.prefix
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A human description of a lab: one summary line, then a line per host.
pub fn describe(state: &LabState) -> String {
    let spec = &state.spec;
    let mut text = format!(
        "lab {}: router-a {}, router-b {}",
        state.prefix, spec.nat_a, spec.nat_b
    );
    if let Some(mode) = spec.cgnat_a {
        text += &format!(", carrier-a {mode} in front of router-a");
    }
    text += &format!(", IPv6 router-a {}, router-b {}", spec.v6_a, spec.v6_b);
    if !spec.delay.is_zero() {
        let method = state
            .delay_method
            .map(|m| format!("{m:?}").to_lowercase())
            .unwrap_or_default();
        text += &format!(", delay {} ms ({method})", spec.delay.as_millis());
    }
    if spec.loss_percent > 0 {
        text += &format!(", loss {}%", spec.loss_percent);
    }
    if let Some(timeout) = spec.udp_timeout {
        text += &format!(", UDP timeout {} s", timeout.as_secs());
    }
    for side in Side::BOTH {
        if spec.noise(side) > 0.0 {
            text += &format!(", noise {}/s behind {side}", spec.noise(side));
        }
    }
    text.push('\n');
    for host in &state.hosts {
        let addresses = if host.addresses.is_empty() {
            "-".to_owned()
        } else {
            host.addresses.join(" ")
        };
        let name = host.host.to_string();
        text += &format!("  {name:<9} {:<18} {addresses}\n", host.netns);
    }
    if let Some(server) = &state.server {
        let running = if server.is_running() {
            "running"
        } else {
            "not running"
        };
        text += &format!(
            "  natlens server on {} and {} (pid {}, {running}; log {})\n",
            server.listen,
            server.alternate,
            server.pid,
            server.log.display()
        );
    }
    if let Some(server) = &state.server {
        match (server.listen6, server.alternate6) {
            (Some(listen6), Some(alternate6)) => {
                text += &format!("  natlens server also on {listen6} and {alternate6} (IPv6)\n")
            }
            (Some(listen6), None) => {
                text += &format!("  natlens server also on {listen6} (IPv6)\n")
            }
            _ => {}
        }
    }
    if let Some(daemon) = &state.miniupnpd {
        text += &format!(
            "  miniupnpd in router-a serving {} (pid {}; log {})\n",
            daemon.protocols,
            daemon.pid,
            daemon.log.display()
        );
    }
    text
}

fn down(args: LabDownArgs) -> anyhow::Result<ExitCode> {
    if !args.all {
        let prefix = match args.prefix {
            Some(prefix) => prefix,
            None => only_lab("`natlens lab down PREFIX`")?.prefix,
        };
        if teardown::is_gone(&prefix) {
            bail!("no lab {prefix} here (see `natlens lab status`)");
        }
        teardown::by_prefix(&prefix)?;
        println!("removed {prefix}");
        return Ok(ExitCode::SUCCESS);
    }
    for prefix in teardown::all_prefixes() {
        if let Ok(state) = state::read(&prefix) {
            if state.owner_pid.is_some() && !state.is_orphaned() {
                let pid = state.owner_pid.unwrap_or_default();
                println!("kept {prefix}: process {pid} owns it and will tear it down");
                continue;
            }
        }
        teardown::by_prefix(&prefix)?;
        println!("removed {prefix}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `natlens lab up --json`: the envelope, then the lab's description (the state file's keys).
#[derive(Debug, Serialize)]
struct LabUp<'a> {
    schema_version: u32,
    /// Always `ok` (a failure prints the failure object instead).
    result: &'static str,
    #[serde(flatten)]
    state: &'a LabState,
}

impl<'a> LabUp<'a> {
    fn new(state: &'a LabState) -> Self {
        LabUp {
            schema_version: LAB_SCHEMA_VERSION,
            result: "ok",
            state,
        }
    }
}

/// `natlens lab status --json`: one object, every lab's status in `labs`.
#[derive(Debug, Serialize)]
struct Labs {
    schema_version: u32,
    /// Always `ok` (a failure prints the failure object instead).
    result: &'static str,
    labs: Vec<Status>,
}

/// One lab in `natlens lab status --json`: the state file plus what is live now.
#[derive(Debug, Serialize)]
struct Status {
    #[serde(flatten)]
    state: LabState,
    orphaned: bool,
    /// Namespaces of the lab that exist now.
    namespaces: Vec<String>,
    /// Conntrack entries per router, now (`null` when the router's namespace is gone).
    conntrack: BTreeMap<Host, Option<u64>>,
}

fn status(args: LabStatusArgs) -> anyhow::Result<ExitCode> {
    let states = match &args.prefix {
        Some(prefix) => vec![state::read(prefix)?],
        None => state::list(),
    };
    let statuses: Vec<Status> = states.into_iter().map(live_status).collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        let labs = Labs {
            schema_version: LAB_SCHEMA_VERSION,
            result: "ok",
            labs: statuses,
        };
        serde_json::to_writer_pretty(&mut out, &labs)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let debris = match &args.prefix {
        Some(_) => Vec::new(),
        None => teardown::debris(),
    };
    if statuses.is_empty() && debris.is_empty() {
        writeln!(out, "no natlens labs")?;
    }
    for prefix in &debris {
        let count = teardown::namespaces_of(prefix).len();
        writeln!(
            out,
            "lab {prefix}: {count} namespaces without a state file: `natlens lab down {prefix}`"
        )?;
    }
    for status in &statuses {
        write!(out, "{}", describe(&status.state))?;
        let owner = match (status.state.owner_pid, status.orphaned) {
            (None, _) => "left running by `natlens lab up`".to_owned(),
            (Some(pid), false) => format!("owned by process {pid}"),
            (Some(pid), true) => format!("orphaned (process {pid} is gone): `natlens lab down`"),
        };
        let planned = status.state.hosts.len();
        writeln!(
            out,
            "  {owner}; {} of {planned} namespaces present",
            status.namespaces.len()
        )?;
        for (router, count) in &status.conntrack {
            let count = count.map_or("?".to_owned(), |n| n.to_string());
            writeln!(out, "  {router}: {count} conntrack entries")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn live_status(state: LabState) -> Status {
    let namespaces = teardown::namespaces_of(&state.prefix);
    let conntrack = Side::BOTH
        .iter()
        .map(|side| {
            let router = Host::Router(*side);
            let count = state
                .netns(router)
                .filter(|ns| namespaces.iter().any(|n| n == ns))
                .and_then(|ns| netns::read_sysctl(ns, "net/netfilter/nf_conntrack_count").ok())
                .and_then(|text| text.parse().ok());
            (router, count)
        })
        .collect();
    Status {
        orphaned: state.is_orphaned(),
        namespaces,
        conntrack,
        state,
    }
}

fn exec(args: LabExecArgs) -> anyhow::Result<ExitCode> {
    let state = match args.lab {
        Some(prefix) => state::read(&prefix)?,
        None => only_lab("--lab PREFIX")?,
    };
    let netns = state
        .netns(args.host)
        .with_context(|| format!("lab {} has no host {}", state.prefix, args.host))?;
    let (program, rest) = args.command.split_first().context("no command given")?;
    let mut command = netns::command_in(netns, program)?;
    command.args(rest).env("PATH", path_with_own_dir()?);
    // exec(2) only returns on failure; on success the command's exit status is ours.
    let err = command.exec();
    Err(err).with_context(|| format!("running {program} in {}", args.host))
}

/// PATH with the directory of this natlens executable first, so that `natlens` in a command
/// run by `lab exec` is this natlens: sudo resets PATH to a secure path that seldom holds it
/// (`~/.cargo/bin`, `target/release`). The command itself is looked up on this PATH too.
fn path_with_own_dir() -> anyhow::Result<std::ffi::OsString> {
    let exe = std::env::current_exe().context("finding the natlens executable")?;
    let own = exe
        .parent()
        .context("the natlens executable has no directory")?;
    let inherited = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    let dirs = std::iter::once(own.to_path_buf()).chain(std::env::split_paths(&inherited));
    std::env::join_paths(dirs).context("building PATH for the command")
}

/// The lab meant when none is named: the one lab left running by `natlens lab up`, or, when
/// there is none of those, the one lab at all. Labs a running process owns (a demo's, a test's)
/// come and go with it, so they do not make a lab a person brought up ambiguous. `pick` says
/// how to name one when there are several.
fn only_lab(pick: &str) -> anyhow::Result<LabState> {
    let states = state::list();
    let (left_running, owned): (Vec<LabState>, Vec<LabState>) =
        states.into_iter().partition(|s| s.owner_pid.is_none());
    let mut candidates = if left_running.is_empty() {
        owned
    } else {
        left_running
    };
    match candidates.len() {
        0 => bail!("no natlens lab is running: start one with `natlens lab up`"),
        1 => Ok(candidates.remove(0)),
        _ => {
            let prefixes: Vec<String> = candidates.into_iter().map(|s| s.prefix).collect();
            bail!(
                "several labs exist ({}): pick one with {pick}",
                prefixes.join(", ")
            )
        }
    }
}

/// The hidden worker: open the job's sockets, say ready, run until a terminating signal.
fn worker(args: LabWorkerArgs) -> anyhow::Result<ExitCode> {
    let job: Job = serde_json::from_str(&args.job).context("parsing the job")?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let prepared = job.prepare().context("starting the job")?;
    println!("{READY}");
    std::io::stdout().flush()?;
    prepared.run(&stop)?;
    Ok(ExitCode::SUCCESS)
}
