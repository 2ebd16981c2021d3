//! `/run/natlens/<prefix>.json`: what a lab is, so `natlens lab status/exec/down` (and people)
//! can find labs another process made.
//!
//! The file is claimed (created exclusively) before the first namespace exists, so a namespace
//! with a natlens prefix and no state file is debris, and a prefix cannot be taken twice. `/run`
//! is a tmpfs: after a reboot, when every namespace is gone too, so are the files.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::lab::plan::Plan;
use crate::lab::plumbing::DelayMethod;
use crate::lab::server::{self, ServerState};
use crate::lab::spec::{Host, LabSpec};

/// Where state files live.
pub const STATE_DIR: &str = "/run/natlens";

/// One host as the state file shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    pub host: Host,
    pub netns: String,
    /// `203.0.113.10/24` style, IPv4 first, then IPv6 (`2001:db8:aa11::10/64`).
    pub addresses: Vec<String>,
}

/// The description of one lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabState {
    pub prefix: String,
    pub spec: LabSpec,
    /// The process whose lifetime the lab shares; `None` for a lab left running by
    /// `natlens lab up`.
    pub owner_pid: Option<u32>,
    /// How `--delay` is made; `None` while the lab is being built.
    pub delay_method: Option<DelayMethod>,
    /// Detached worker processes (relay, noise), for `natlens lab status`.
    pub worker_pids: Vec<u32>,
    pub hosts: Vec<HostState>,
    /// The lab's own natlens server (`natlens lab up --with-server`); absent in state files
    /// written before it existed.
    #[serde(default)]
    pub server: Option<ServerState>,
    /// miniupnpd in router a (`natlens lab up --port-mapping`).
    #[serde(default)]
    pub miniupnpd: Option<crate::lab::port_mapping::MiniupnpdState>,
}

impl LabState {
    /// The state of a lab built from `plan`, owned by this process.
    pub fn new(spec: &LabSpec, plan: &Plan) -> LabState {
        let hosts = plan
            .hosts
            .iter()
            .map(|host| HostState {
                host: host.host,
                netns: host.netns.clone(),
                addresses: host
                    .addresses
                    .iter()
                    .map(|a| format!("{}/{}", a.addr, a.prefix_len))
                    .chain(
                        host.v6
                            .addresses
                            .iter()
                            .map(|a| format!("{}/{}", a.addr, a.prefix_len)),
                    )
                    .collect(),
            })
            .collect();
        LabState {
            prefix: plan.prefix.clone(),
            spec: spec.clone(),
            owner_pid: Some(std::process::id()),
            delay_method: None,
            worker_pids: Vec::new(),
            hosts,
            server: None,
            miniupnpd: None,
        }
    }

    /// True when the owning process has gone without tearing the lab down.
    pub fn is_orphaned(&self) -> bool {
        self.owner_pid.is_some_and(|pid| !process_alive(pid))
    }

    /// The namespace of `host`, if the lab has it.
    pub fn netns(&self, host: Host) -> Option<&str> {
        self.hosts
            .iter()
            .find(|h| h.host == host)
            .map(|h| h.netns.as_str())
    }
}

fn process_alive(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as i32, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The state file of `prefix`.
pub fn path(prefix: &str) -> PathBuf {
    PathBuf::from(STATE_DIR).join(format!("{prefix}.json"))
}

/// Creates the state file, failing if the prefix is already taken.
pub fn claim(state: &LabState) -> anyhow::Result<()> {
    fs::create_dir_all(STATE_DIR).with_context(|| format!("creating {STATE_DIR}"))?;
    let path = path(&state.prefix);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("claiming {}", path.display()))?;
    file.write_all(&serde_json::to_vec_pretty(state)?)?;
    Ok(())
}

/// Replaces the state file atomically (write, then rename).
pub fn update(state: &LabState) -> anyhow::Result<()> {
    let path = path(&state.prefix);
    let temporary = path.with_extension("json.tmp");
    fs::write(&temporary, serde_json::to_vec_pretty(state)?)
        .with_context(|| format!("writing {}", temporary.display()))?;
    fs::rename(&temporary, &path).with_context(|| format!("writing {}", path.display()))
}

/// Reads the state of `prefix`.
pub fn read(prefix: &str) -> anyhow::Result<LabState> {
    let path = path(prefix);
    let text = fs::read(&path).with_context(|| format!("no lab {prefix} ({})", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("reading {}", path.display()))
}

/// Every readable state file, by prefix.
pub fn list() -> Vec<LabState> {
    let Ok(entries) = fs::read_dir(STATE_DIR) else {
        return Vec::new();
    };
    let mut states: Vec<LabState> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            read(name.strip_suffix(".json")?).ok()
        })
        .collect();
    states.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    states
}

/// Deletes the state file of `prefix` and its server's log (missing is fine).
pub fn remove(prefix: &str) {
    let _ = fs::remove_file(path(prefix));
    let _ = fs::remove_file(path(prefix).with_extension("json.tmp"));
    let _ = fs::remove_file(server::log_path(prefix));
    crate::lab::port_mapping::remove_files(prefix);
}
