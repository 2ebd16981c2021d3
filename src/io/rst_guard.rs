//! A scoped, self-removing nftables rule that drops the RSTs our kernel would send from the
//! punched port to the peer while punching.
//!
//! Why: on a 4-tuple that only a crafted SYN opened, no socket of ours exists until one is
//! adopted ([`crate::io::adopt`]), so the kernel answers whatever the peer sends there first
//! (its SYN, or its SYN-ACK to our SYN) with a RST (a listener would too: RFC 9293 resets an
//! ACK in LISTEN). That RST closes the conntrack entries on both NATs and resets the peer's
//! socket: the hole is gone. The rule keeps those RSTs on this host.
//!
//! Scope: one table per guard, `inet natlens_rst_<pid>_<port>`, with one rule in an output
//! chain: TCP, source port = the punched port, destination = the peer's IP, RST set. Nothing
//! else on the machine is touched, and `nft list ruleset` names the process that owns it.
//!
//! Removal, on every exit path:
//! * [`Drop`] (normal return, `?`, panic unwinding);
//! * SIGINT, SIGTERM, SIGHUP: a signal thread removes every live guard's table, then exits
//!   with 128 + signal, unless the command handles those signals itself
//!   ([`crate::io::signal::stop_flag`]), in which case it winds down and drops its guards;
//! * a crash or SIGKILL leaves the table: every [`RstGuard::install`] first sweeps tables whose
//!   pid is no longer running ([`sweep_stale`]).
//!
//! A guard remembers the network namespace it was installed in (an open `/proc/thread-self/
//! ns/net`), so it is removed from there whichever thread drops it.
//!
//! Needs `nft` and CAP_NET_ADMIN: root, or natlens with `cap_net_admin` in its file
//! capabilities, passed on to `nft` as an ambient capability.

use std::fs::File;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, Once};

use anyhow::{bail, Context};

use crate::io::caps;

/// Every guard's table name starts so; the rest is `<pid>_<port>`.
pub const TABLE_PREFIX: &str = "natlens_rst_";

/// The table name for process `pid` guarding `port`.
pub fn table_name(pid: u32, port: u16) -> String {
    format!("{TABLE_PREFIX}{pid}_{port}")
}

/// The pid in a guard table's name, if `name` is one.
pub fn table_pid(name: &str) -> Option<u32> {
    let (pid, port) = name.strip_prefix(TABLE_PREFIX)?.split_once('_')?;
    port.parse::<u16>().ok()?;
    pid.parse().ok()
}

/// The nft script that creates the guard table. `create` fails if the table exists, so two
/// guards can never share (and one remove the other's) table.
pub fn ruleset(table: &str, port: u16, peer: IpAddr) -> String {
    let family = match peer {
        IpAddr::V4(_) => "ip",
        IpAddr::V6(_) => "ip6",
    };
    format!(
        "create table inet {table}
table inet {table} {{
  chain output {{
    type filter hook output priority filter; policy accept;
    {family} daddr {peer} tcp sport {port} tcp flags & rst == rst counter drop
  }}
}}
"
    )
}

/// A live guard table; dropping it removes the table.
#[derive(Debug)]
pub struct RstGuard {
    table: String,
    netns: Arc<File>,
    removed: bool,
}

impl RstGuard {
    /// Installs the rule for RSTs from local `port` to `peer`, in the calling thread's network
    /// namespace, after sweeping stale tables there.
    pub fn install(port: u16, peer: IpAddr) -> anyhow::Result<RstGuard> {
        let netns = Arc::new(File::open("/proc/thread-self/ns/net").context("opening own netns")?);
        sweep_stale_in(&netns);
        let table = table_name(std::process::id(), port);
        // Registered before the table exists, so a signal in between still removes it.
        register(&table, &netns);
        if let Err(err) = nft(&netns, &["-f", "-"], Some(&ruleset(&table, port, peer))) {
            unregister(&table);
            return Err(
                err.context("installing the RST guard (needs nft and CAP_NET_ADMIN: run as root)")
            );
        }
        Ok(RstGuard {
            table,
            netns,
            removed: false,
        })
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// RSTs the rule has dropped so far.
    pub fn dropped(&self) -> anyhow::Result<u64> {
        let listing = nft(&self.netns, &["list", "table", "inet", &self.table], None)?;
        parse_counter(&listing).context("no counter in the guard table")
    }

    /// Removes the table now, reporting failure (dropping the guard does the same quietly).
    pub fn remove(mut self) -> anyhow::Result<()> {
        self.removed = true;
        unregister(&self.table);
        delete_table(&self.netns, &self.table)
    }
}

impl Drop for RstGuard {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        unregister(&self.table);
        if let Err(err) = delete_table(&self.netns, &self.table) {
            // Already gone (a signal path removed it) is fine; anything else is worth a line.
            if !format!("{err:#}").contains("No such file or directory") {
                crate::render::terminal::warn(&format!(
                    "removing RST guard {}: {err:#}",
                    self.table
                ));
            }
        }
    }
}

/// `packets N` from an nft listing.
fn parse_counter(listing: &str) -> Option<u64> {
    let mut words = listing.split_whitespace();
    while let Some(word) = words.next() {
        if word == "packets" {
            return words.next()?.parse().ok();
        }
    }
    None
}

fn delete_table(netns: &File, table: &str) -> anyhow::Result<()> {
    nft(netns, &["delete", "table", "inet", table], None).map(drop)
}

/// Removes guard tables whose process is gone, in the calling thread's namespace; returns
/// their names.
pub fn sweep_stale() -> Vec<String> {
    match File::open("/proc/thread-self/ns/net") {
        Ok(netns) => sweep_stale_in(&netns),
        Err(_) => Vec::new(),
    }
}

fn sweep_stale_in(netns: &File) -> Vec<String> {
    let Ok(listing) = nft(netns, &["list", "tables"], None) else {
        return Vec::new();
    };
    let stale: Vec<String> = listing
        .lines()
        .filter_map(|line| line.strip_prefix("table inet "))
        .map(str::trim)
        .filter(|name| table_pid(name).is_some_and(|pid| !pid_alive(pid)))
        .map(str::to_owned)
        .collect();
    stale
        .into_iter()
        .filter(|name| delete_table(netns, name).is_ok())
        .collect()
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Runs `nft ARGS` in the namespace `netns`; returns its stdout.
///
/// The child enters the namespace only when the calling thread is elsewhere: entering needs
/// CAP_SYS_ADMIN, which a thread that dropped its capabilities no longer has, while a root
/// child regains CAP_NET_ADMIN at exec anyway.
fn nft(netns: &File, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let mut command = Command::new("nft");
    command.args(args);
    if !same_netns(netns) {
        enter_before_exec(&mut command, netns.as_raw_fd());
    }
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // An unprivileged natlens with file capabilities lends CAP_NET_ADMIN to nft (root's
        // nft gets it at exec anyway).
        // SAFETY: the hook makes only capget/capset/prctl system calls.
        unsafe {
            command.pre_exec(|| {
                let _ = caps::pass_on_to_exec(caps::CAP_NET_ADMIN);
                Ok(())
            });
        }
    }
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .context("running nft (is nftables installed?)")?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).context("feeding nft")?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "nft {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn same_netns(netns: &File) -> bool {
    match (
        netns.metadata(),
        std::fs::metadata("/proc/thread-self/ns/net"),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn enter_before_exec(command: &mut Command, fd: RawFd) {
    // SAFETY: the hook only calls setns(2), async-signal-safe, on a descriptor the guard keeps
    // open for its whole life (so also across this fork).
    unsafe {
        command.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Guards alive in this process: what the signal thread removes.
static LIVE: Mutex<Vec<(String, Arc<File>)>> = Mutex::new(Vec::new());
static SIGNALS: Once = Once::new();

fn live() -> MutexGuard<'static, Vec<(String, Arc<File>)>> {
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn register(table: &str, netns: &Arc<File>) {
    SIGNALS.call_once(start_signal_thread);
    live().push((table.to_owned(), Arc::clone(netns)));
}

fn unregister(table: &str) {
    live().retain(|(name, _)| name != table);
}

/// Removes every live guard's table now (what the signal path does); returns how many.
pub fn remove_all() -> usize {
    let guards: Vec<(String, Arc<File>)> = std::mem::take(&mut *live());
    guards
        .iter()
        .filter(|(table, netns)| delete_table(netns, table).is_ok())
        .count()
}

fn start_signal_thread() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        for signal in signals.forever() {
            remove_all();
            // A command with its own stop flag winds down by itself; otherwise registering
            // this handler took the signal's default action away, so exit as it would have.
            if !crate::io::signal::stop_installed() {
                std::process::exit(128 + signal);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_carry_pid_and_port() {
        assert_eq!(table_name(4242, 40_000), "natlens_rst_4242_40000");
        assert_eq!(table_pid("natlens_rst_4242_40000"), Some(4242));
        for other in [
            "natlens",
            "natlens_rst_",
            "natlens_rst_4242",
            "natlens_rst_x_1",
            "natlens_rst_1_70000",
            "nat_rst_1_2",
        ] {
            assert_eq!(table_pid(other), None, "{other}");
        }
    }

    #[test]
    fn the_rule_is_scoped_to_one_port_one_peer_and_rst() {
        let text = ruleset(
            "natlens_rst_1_40000",
            40_000,
            "203.0.113.2".parse().unwrap(),
        );
        assert!(text.starts_with("create table inet natlens_rst_1_40000\n"));
        assert!(text.contains("type filter hook output priority filter; policy accept;"));
        assert!(text
            .contains("ip daddr 203.0.113.2 tcp sport 40000 tcp flags & rst == rst counter drop"));
        assert_eq!(text.matches("drop").count(), 1);
        let v6 = ruleset("t", 1, "2001:db8::1".parse().unwrap());
        assert!(v6.contains("ip6 daddr 2001:db8::1 tcp sport 1 "));
    }

    #[test]
    fn counters_are_read_from_a_listing() {
        let listing = "table inet t {\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tip daddr 203.0.113.2 tcp sport 40000 tcp flags & rst == rst counter packets 3 bytes 120 drop\n\t}\n}\n";
        assert_eq!(parse_counter(listing), Some(3));
        assert_eq!(parse_counter("table inet t {}"), None);
    }
}
