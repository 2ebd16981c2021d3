//! Network namespace primitives: create, enter, run in, list, find processes in, delete.
//!
//! Namespaces are the named kind `ip netns` makes (a bind mount under `/run/netns`), so that
//! `ip netns exec`, `nsenter --net=/run/netns/...` and other tools can reach a lab by hand.
//! Entering one is per thread (`setns(2)` with `CLONE_NEWNET`): a socket opened by a thread that
//! entered a namespace belongs to that namespace for its whole life, whichever thread uses it.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Where `ip netns` keeps its named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// The bind mount that names namespace `name`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}

/// Moves the calling thread into namespace `name`.
pub fn enter(name: &str) -> io::Result<()> {
    let file = File::open(path(name))?;
    // SAFETY: setns(2) on a file descriptor we own; it only changes this thread's namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` on a fresh thread inside namespace `name` and returns its result.
///
/// The caller's own thread never changes namespace, so a panic or error in `f` cannot leave
/// the process stuck in the lab.
pub fn run_in<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter(name)?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A command that will run inside namespace `name` (entered between fork and exec).
pub fn command_in(name: &str, program: impl AsRef<OsStr>) -> io::Result<Command> {
    let mut command = Command::new(program);
    into(&mut command, name)?;
    Ok(command)
}

/// Makes an existing command start inside namespace `name`.
pub fn into(command: &mut Command, name: &str) -> io::Result<()> {
    let file = File::open(path(name))?;
    // SAFETY: the hook only calls setns(2), which is async-signal-safe, on a descriptor opened
    // before the fork; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// Runs a command to completion; an error carries its stderr.
pub fn run(command: &mut Command, stdin: Option<&str>) -> anyhow::Result<Output> {
    let shown = format!("{command:?}");
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| missing_tool(&shown))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .with_context(|| format!("feeding {shown}"))?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output)
}

/// The hint for a command that could not even start.
fn missing_tool(shown: &str) -> String {
    format!("running {shown} (is it installed? the lab needs iproute2, nftables and conntrack)")
}

/// `ip -batch -` with `script`, in namespace `netns` or (for `None`) in the caller's.
pub fn ip_batch(netns: Option<&str>, script: &str) -> anyhow::Result<()> {
    let mut command = Command::new("ip");
    if let Some(name) = netns {
        command.args(["-n", name]);
    }
    command.args(["-batch", "-"]);
    run(&mut command, Some(script)).map(drop)
}

/// Creates the named namespaces, in one `ip` process.
pub fn add(names: &[String]) -> anyhow::Result<()> {
    let script: String = names.iter().map(|n| format!("netns add {n}\n")).collect();
    ip_batch(None, &script).context("creating network namespaces")
}

/// Deletes the named namespaces; the veths inside go with them.
pub fn delete(names: &[String]) -> anyhow::Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let script: String = names.iter().map(|n| format!("netns del {n}\n")).collect();
    ip_batch(None, &script).context("deleting network namespaces")
}

/// Names of all named namespaces.
pub fn list() -> Vec<String> {
    let Ok(entries) = fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Writes a sysctl inside a namespace (`key` like `net/ipv4/ip_forward`).
///
/// `/proc/sys/net` resolves against the namespace of the opening thread, so the write happens
/// on a thread that entered it.
pub fn sysctl(netns: &str, key: &str, value: &str) -> anyhow::Result<()> {
    let file = format!("/proc/sys/{key}");
    run_in(netns, || fs::write(&file, value))
        .and_then(|inner| inner)
        .with_context(|| format!("setting {key}={value} in {netns}"))
}

/// Reads a sysctl inside a namespace.
pub fn read_sysctl(netns: &str, key: &str) -> anyhow::Result<String> {
    let file = format!("/proc/sys/{key}");
    run_in(netns, || fs::read_to_string(&file))
        .and_then(|inner| inner)
        .map(|text| text.trim().to_owned())
        .with_context(|| format!("reading {key} in {netns}"))
}

/// The named namespace the calling thread is in, if it is one of `/run/netns`.
pub fn current() -> Option<String> {
    let own = fs::metadata("/proc/thread-self/ns/net").ok()?;
    list().into_iter().find(|name| {
        fs::metadata(path(name)).is_ok_and(|ns| ns.dev() == own.dev() && ns.ino() == own.ino())
    })
}

/// Processes (other than this one) whose network namespace is `name`.
///
/// The same test `ip netns pids` makes: `/proc/PID/ns/net` and the bind mount are the same
/// nsfs inode.
pub fn pids_in(name: &str) -> Vec<i32> {
    let Ok(target) = fs::metadata(path(name)) else {
        return Vec::new();
    };
    let own = std::process::id() as i32;
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != own)
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|ns| ns.dev() == target.dev() && ns.ino() == target.ino())
        })
        .collect()
}

/// Ends the processes still inside the namespaces: SIGTERM, then SIGKILL after `grace`.
///
/// They were all started in the lab (servers, relays, `natlens lab exec` commands), and any one
/// of them would keep its namespace, and the veths in it, alive after the name is deleted.
pub fn end_processes(names: &[String], grace: Duration) {
    let signal_all = |signal| {
        let pids: Vec<i32> = names.iter().flat_map(|name| pids_in(name)).collect();
        for pid in &pids {
            // SAFETY: kill(2) on a process id read from /proc, found inside the lab.
            unsafe { libc::kill(*pid, signal) };
        }
        pids.len()
    };
    if signal_all(libc::SIGTERM) == 0 {
        return;
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        if names.iter().all(|name| pids_in(name).is_empty()) {
            return;
        }
    }
    signal_all(libc::SIGKILL);
}
