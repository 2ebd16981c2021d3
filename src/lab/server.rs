//! The lab's own natlens server, for `natlens lab up --with-server`: `natlens server` in the
//! server host, in RFC 5780 full mode on both of its public IPv4 addresses (as `natlens lab
//! demo` runs it) and on both of its IPv6 addresses (one `--alternate` per family), left
//! running with the lab.
//!
//! It is a detached process (its own session, no terminal) writing its log to a file next to
//! the lab's state file, so that it outlives `natlens lab up` without a pipe to write into, and
//! the log is there to read while it runs. `natlens lab down` ends it with every other process
//! in the lab's namespaces, and the log goes with the state file.

use std::fs::File;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::lab::netns;
use crate::lab::plan::{SERVER_ALTERNATE, SERVER_PRIMARY};
use crate::lab::state;

/// The STUN port on the server's primary address: the default port, so `--server 203.0.113.10`
/// reaches it.
pub const PRIMARY_PORT: u16 = 3478;
/// The RFC 5780 alternate port, on the alternate address.
pub const ALTERNATE_PORT: u16 = 3479;
/// How long the server may take to bind its sockets.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the log is read while waiting for the server to listen.
const START_POLL: Duration = Duration::from_millis(10);
/// What the server's log says once a socket is bound (human and NDJSON logs alike).
const LISTENING: &str = "listening";

/// The lab's server as the state file records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerState {
    pub pid: u32,
    /// `--listen`: 203.0.113.10:3478.
    pub listen: SocketAddr,
    /// `--alternate`: 203.0.113.11:3479.
    pub alternate: SocketAddr,
    /// The second `--listen`, on the server's first IPv6 address (`[N::10]:3478`); absent in
    /// state files written before the lab had IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen6: Option<SocketAddr>,
    /// The IPv6 `--alternate`, on the server's second IPv6 address (`[N::11]:3479`); absent in
    /// state files written before the server ran full mode over IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternate6: Option<SocketAddr>,
    /// Its stderr, `/run/natlens/<prefix>-server.log`.
    pub log: PathBuf,
}

impl ServerState {
    /// True while the server process is alive (a zombie does not count).
    pub fn is_running(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|stat| {
                stat.rsplit_once(')')
                    .map(|(_, rest)| rest.trim().to_owned())
            })
            .is_some_and(|rest| !rest.starts_with('Z'))
    }
}

/// `--listen` of the lab's server.
pub fn primary() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(SERVER_PRIMARY, PRIMARY_PORT))
}

/// The IPv6 `--listen` of lab `prefix`'s server: its first IPv6 address, port 3478.
pub fn primary6(prefix: &str) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(
        crate::lab::plan6::server_primary6(prefix),
        PRIMARY_PORT,
        0,
        0,
    ))
}

/// The IPv6 `--alternate` of lab `prefix`'s server, for RFC 5780 full mode over IPv6: its
/// second IPv6 address, port 3479. That address is deprecated (`preferred_lft 0`, see
/// docs/lab.md), so sockets bound to `::` never pick it as their source, but the server binds
/// it explicitly and it works as the alternate.
pub fn alternate6(prefix: &str) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(
        crate::lab::plan6::server_alternate6(prefix),
        ALTERNATE_PORT,
        0,
        0,
    ))
}

/// `--alternate` of the lab's server.
pub fn alternate() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(SERVER_ALTERNATE, ALTERNATE_PORT))
}

/// Where the server of lab `prefix` logs.
pub fn log_path(prefix: &str) -> PathBuf {
    PathBuf::from(state::STATE_DIR).join(format!("{prefix}-server.log"))
}

/// Starts `exe server` detached in namespace `netns` (the server host of lab `prefix`) and
/// returns once it listens. Its federation name is `<prefix>-server`, so `pgrep -f <prefix>`
/// finds it.
pub fn start(exe: &Path, netns: &str, prefix: &str) -> anyhow::Result<ServerState> {
    let log = log_path(prefix);
    let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut command = netns::command_in(netns, exe)?;
    command
        .args(["server", "--name", &format!("{prefix}-server")])
        .args(["--listen", &primary().to_string()])
        .args(["--listen", &primary6(prefix).to_string()])
        .args(["--alternate", &alternate().to_string()])
        .args(["--alternate", &alternate6(prefix).to_string()])
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    crate::lab::process::detach(&mut command);
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {} server in {netns}", exe.display()))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(LISTENING) {
            break;
        }
        let exited = child.try_wait().context("waiting for the lab's server")?;
        if exited.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "natlens server did not start in {netns}:\n{}",
                text.trim_end()
            );
        }
        std::thread::sleep(START_POLL);
    }
    // Not waited for: it runs on after this process exits, and init reaps it then.
    Ok(ServerState {
        pid: child.id(),
        listen: primary(),
        alternate: alternate(),
        listen6: Some(primary6(prefix)),
        alternate6: Some(alternate6(prefix)),
        log,
    })
}
