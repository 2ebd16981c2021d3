//! What the lab benches (benches/nat_wall_time.rs, benches/punch.rs, benches/punch6.rs) share:
//! the check that this machine can build a lab, one lab per measured NAT pair with 25 ms of
//! delay on each WAN link and `natlens server` in its server namespace, and the record each
//! bench writes: `benches/results/<stem>.md` ending with the machine it ran on and the raw
//! numbers, and the raw numbers again in a `.csv` next to it.

// Each bench compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use natlens::lab::plan::{SERVER_ALTERNATE, SERVER_PRIMARY};
use natlens::lab::{server, Host, Lab, LabProcess, LabSpec, NatMode};
use serde_json::Value;

pub const NATLENS: &str = env!("CARGO_BIN_EXE_natlens");
/// The lab server's STUN port on its primary address.
pub const PORT: u16 = 3478;
/// Its RFC 5780 alternate port, on the alternate address.
pub const ALT_PORT: u16 = 3479;
/// One-way delay per WAN link, as issues 3 (NAT report wall time) and 4 (punching) ask.
pub const DELAY: Duration = Duration::from_millis(25);
/// How long the server gets to start listening.
const SERVER_START: Duration = Duration::from_millis(500);

/// Fails unless a lab can be built here (root, network namespaces, ip, nft, conntrack) and
/// every one of `tools` is on PATH; `packages` says where the tools come from.
pub fn preflight(tools: &[&str], packages: &str) -> anyhow::Result<()> {
    natlens::lab::check_available().map_err(|why| anyhow::anyhow!("the lab {why}"))?;
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()?
            .success();
        if !found {
            bail!("{tool} is missing (packages: {packages})");
        }
    }
    Ok(())
}

/// Builds a lab of `nat_a` x `nat_b` with [`DELAY`] on each WAN link, starts `natlens server`
/// in it (RFC 5780 full mode), runs `measure`, then stops the server and tears the lab down
/// (a failed measurement's lab is torn down when dropped).
pub fn with_lab<T>(
    nat_a: NatMode,
    nat_b: NatMode,
    measure: impl FnOnce(&Lab) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let lab = Lab::up(LabSpec {
        nat_a,
        nat_b,
        delay: DELAY,
        ..LabSpec::default()
    })?;
    let mut server = start_server(&lab)?;
    let result = measure(&lab);
    let _ = server.kill();
    let _ = server.wait();
    let out = result?;
    lab.down()?;
    Ok(out)
}

/// Builds the lab `spec` describes (its `delay` should be [`DELAY`]), starts a dual-stack
/// `natlens server` in it (RFC 5780 full mode over IPv4 and over IPv6, one `--alternate`
/// each, as `natlens lab up --with-server` runs it), runs `measure`, then stops the server and
/// tears the lab down. Its login answers name both of its addresses, so listen and call punch
/// over both families unless told `--family`.
pub fn with_dual_stack_lab<T>(
    spec: LabSpec,
    measure: impl FnOnce(&Lab) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let lab = Lab::up(spec)?;
    let ipv6 = [
        "--listen".to_owned(),
        server::primary6(lab.prefix()).to_string(),
        "--alternate".to_owned(),
        server::alternate6(lab.prefix()).to_string(),
    ];
    let mut server = start_server_with(&lab, &ipv6)?;
    let result = measure(&lab);
    let _ = server.kill();
    let _ = server.wait();
    let out = result?;
    lab.down()?;
    Ok(out)
}

/// `natlens server --quiet --listen 203.0.113.10:3478 --alternate 203.0.113.11:3479` in the
/// lab's server namespace.
fn start_server(lab: &Lab) -> anyhow::Result<Child> {
    start_server_with(lab, &[])
}

/// [`start_server`] with `more` arguments (another family's `--listen` and `--alternate`).
fn start_server_with(lab: &Lab, more: &[String]) -> anyhow::Result<Child> {
    let mut command = Command::new(NATLENS);
    command
        .args(["server", "--quiet"])
        .args(["--listen", &format!("{SERVER_PRIMARY}:{PORT}")])
        .args(["--alternate", &format!("{SERVER_ALTERNATE}:{ALT_PORT}")])
        .args(more)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut server = lab.spawn(Host::Server, command)?;
    std::thread::sleep(SERVER_START);
    if let Some(status) = server.try_wait()? {
        bail!("natlens server exited at once: {status}");
    }
    Ok(server)
}

/// The load average when the bench starts (the machine is shared: it goes in the record).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Where one run's record goes: `benches/results/<stem>.md` and `.csv`.
pub struct Record {
    pub md: PathBuf,
    pub csv: PathBuf,
}

impl Record {
    /// The paths for a bench's record; creates benches/results. One current record per
    /// bench: a rerun replaces it (the history is in git), and the record itself says when it
    /// was made.
    pub fn new(stem: &str) -> anyhow::Result<Record> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/results");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Record {
            md: dir.join(format!("{stem}.md")),
            csv: dir.join(format!("{stem}.csv")),
        })
    }

    /// Writes `text` followed by the Machine and Raw numbers sections (`about_raw`, if not
    /// empty, says what the raw numbers are) to the .md file, and `raw` to the .csv file.
    pub fn write(
        &self,
        mut text: String,
        machine: &str,
        about_raw: &str,
        raw: &str,
    ) -> anyhow::Result<()> {
        let _ = writeln!(text, "## Machine\n");
        let _ = writeln!(text, "```\n{machine}```\n");
        let _ = writeln!(text, "## Raw numbers\n");
        let csv_name = self.csv.file_name().unwrap_or_default().to_string_lossy();
        let about = if about_raw.is_empty() {
            String::new()
        } else {
            format!(" {about_raw}")
        };
        let _ = writeln!(text, "Also in `{csv_name}`.{about}\n");
        let _ = writeln!(text, "```\n{raw}```");
        std::fs::write(&self.md, text).with_context(|| format!("writing {}", self.md.display()))?;
        std::fs::write(&self.csv, raw)
            .with_context(|| format!("writing {}", self.csv.display()))?;
        Ok(())
    }
}

/// Kernel, CPU, cores, `load` and the natlens commit, one fact a line.
pub fn machine(load: &str) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let manifest = env!("CARGO_MANIFEST_DIR");
    let mut text = String::new();
    let _ = writeln!(text, "kernel:   {}", stdout_of("uname", &["-srm"]));
    let _ = writeln!(text, "cpu:      {cpu} ({cores} cores)");
    let _ = writeln!(text, "load:     {load} (at start; the machine is shared)");
    let _ = writeln!(
        text,
        "natlens:  {} (commit {}{}), release build",
        env!("CARGO_PKG_VERSION"),
        stdout_of("git", &["-C", manifest, "rev-parse", "--short", "HEAD"]),
        if stdout_of("git", &["-C", manifest, "status", "--porcelain"]).is_empty() {
            ""
        } else {
            ", with uncommitted changes"
        }
    );
    text
}

/// What `program ARGS` printed on stdout, trimmed; empty when it could not run.
pub fn stdout_of(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// `natlens` with `args` in `host`'s namespace, stdin null.
pub fn spawn(lab: &Lab, host: Host, args: &[&str]) -> anyhow::Result<LabProcess> {
    let mut command = Command::new(NATLENS);
    command.args(args);
    LabProcess::spawn(lab, host, command, None)
}

/// Waits for the exit (killing after `limit`); the exit code and the JSON report (stdout with
/// --no-data).
pub fn finish(end: LabProcess, limit: Instant) -> anyhow::Result<(Option<i32>, Value)> {
    let exited = end.finish(limit)?;
    let report = String::from_utf8_lossy(&exited.stdout)
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|value| value.get("schema_version").is_some());
    // No report (natlens stopped before punching): its last stderr line is the reason.
    let report = report.unwrap_or_else(|| {
        let last = exited
            .stderr
            .iter()
            .rev()
            .find(|line| !line.trim().is_empty())
            .cloned()
            .unwrap_or_default();
        serde_json::json!({"result": "failed", "reason": last})
    });
    Ok((exited.status.code(), report))
}

/// A figure for a progress line or table cell: the number, or "-" when there is none.
pub fn opt(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}
