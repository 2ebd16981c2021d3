//! What the TCP punching tests in the lab (tests/raw_tcp.rs for the building blocks,
//! tests/lab_punch_tcp.rs for the planned punch) share: both LAN hosts at once, the routers'
//! TCP flows and the RST guard tables left in a host, and this test binary run again as a helper,
//! also as an unprivileged user, to show what natlens does without CAP_NET_RAW.
//!
//! Each test file keeps its own `helper_entry` test (what the helper does differs), named so
//! that [`as_helper`] can run it alone.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use natlens::io::raw_tcp::NO_CAP_NET_RAW;
use natlens::io::rst_guard;
use natlens::lab::plan::primary_addr;
use natlens::lab::{CtEntry, Host, Lab, Side};

use super::{is_root, skip};

/// The LAN host's address behind `side`'s router.
pub fn lan_ip(side: Side) -> Ipv4Addr {
    primary_addr(Host::Lan(side)).expect("a LAN host has an address")
}

/// Runs `a` in host a and `b` in host b at once (b on a thread); returns both results.
pub fn in_both<T: Send>(
    lab: &Lab,
    a: impl FnOnce() -> T + Send,
    b: impl FnOnce() -> T + Send,
) -> (T, T) {
    std::thread::scope(|scope| {
        let side_b = scope.spawn(|| lab.in_netns(Host::Lan(Side::B), b).unwrap());
        let side_a = lab.in_netns(Host::Lan(Side::A), a).unwrap();
        (side_a, side_b.join().unwrap())
    })
}

/// Router `side`'s conntrack entries of TCP flows.
pub fn tcp_entries(lab: &Lab, side: Side) -> Vec<CtEntry> {
    lab.conntrack_entries(side)
        .unwrap()
        .into_iter()
        .filter(|e| e.proto == "tcp")
        .collect()
}

/// Names of natlens RST guard tables in `host`'s namespace.
pub fn guard_tables(lab: &Lab, host: Host) -> Vec<String> {
    let output = lab.exec(host, &["nft", "list", "tables"]).unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("table inet "))
        .filter(|name| name.starts_with(rst_guard::TABLE_PREFIX))
        .map(str::to_owned)
        .collect()
}

/// Makes `command` (this test binary, or `setpriv` in front of a copy) run only the
/// `helper_entry` test, with `env` set to `mode` so that it does the helper's work.
pub fn as_helper<'a>(command: &'a mut Command, env: &str, mode: &str) -> &'a mut Command {
    command
        .args(["helper_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env(env, mode)
}

/// A copy of this test binary that any user may run (the target directory need not be open
/// to nobody), removed on drop.
pub struct UnprivilegedCopy {
    dir: PathBuf,
    pub path: PathBuf,
}

impl UnprivilegedCopy {
    /// The copy in its own directory, `natlens-NAME-PID` under the temporary directory.
    pub fn new(name: &str) -> UnprivilegedCopy {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("natlens-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.join("helper");
        std::fs::copy(std::env::current_exe().unwrap(), &path).unwrap();
        UnprivilegedCopy { dir, path }
    }

    /// `setpriv` to user and group nobody with no inherited capabilities (and the `extra`
    /// setpriv options), then the copy.
    pub fn command(&self, extra: &[&str]) -> Command {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg("--inh-caps=-all")
            .args(extra)
            .arg("--")
            .arg(&self.path);
        command
    }
}

impl Drop for UnprivilegedCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs this test binary's `no-cap` helper without CAP_NET_RAW (as nobody with an empty
/// bounding set when we are root, as we are otherwise) and checks what natlens promises: one
/// line naming CAP_NET_RAW on stderr, then a plain simultaneous open that connects (the helper
/// prints `fallback connected`). `name` names the copy's directory.
pub fn assert_one_line_then_plain_simultaneous_open(helper_env: &str, name: &str) {
    let copy;
    let mut command = if is_root() {
        if Command::new("setpriv").arg("--version").output().is_err() {
            skip("setpriv (util-linux) is missing");
            return;
        }
        copy = UnprivilegedCopy::new(name);
        copy.command(&["--bounding-set=-all"])
    } else {
        Command::new(std::env::current_exe().unwrap())
    };
    let output = as_helper(&mut command, helper_env, "no-cap")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let hints: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("CAP_NET_RAW"))
        .collect();
    assert_eq!(hints, [format!("natlens: {NO_CAP_NET_RAW}")], "{stderr}");
    assert!(stdout.contains("fallback connected"), "{stdout}\n{stderr}");
}
