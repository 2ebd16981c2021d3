//! Tearing labs down on every exit path: `Drop`, Ctrl-C/SIGTERM/SIGHUP, and `natlens lab down`.
//!
//! Labs owned by this process are listed in a registry; the first lab to come up starts a
//! signal thread that, on a terminating signal, tears every listed lab down and then exits with
//! the conventional 128 + signal status. A panic unwinds through the `Lab`'s `Drop`.

use std::collections::BTreeSet;
use std::sync::{Mutex, Once};
use std::time::Duration;

use crate::lab::netns;
use crate::lab::spec::is_prefix;
use crate::lab::state;

/// How long lab processes get to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// Prefixes of the labs this process owns and must tear down.
static LIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
static SIGNALS: Once = Once::new();

/// Adds a lab to the registry (and starts the signal thread on first use).
pub fn register(prefix: &str) {
    SIGNALS.call_once(start_signal_thread);
    live().insert(prefix.to_owned());
}

/// Removes a lab from the registry: torn down, or detached to outlive this process.
pub fn unregister(prefix: &str) {
    live().remove(prefix);
}

fn live() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn start_signal_thread() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let prefixes: Vec<String> = live().iter().cloned().collect();
            for prefix in prefixes {
                let _ = by_prefix(&prefix);
            }
            std::process::exit(128 + signal);
        }
    });
}

/// Ends the processes in every namespace of `prefix`, deletes the namespaces and the state
/// file. Safe to call on a lab half built or already gone.
///
/// Only natlens prefixes are accepted, so a typo cannot delete someone else's `foo-…`
/// namespaces.
pub fn by_prefix(prefix: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        is_prefix(prefix),
        "`{prefix}` is not a natlens lab prefix (`nl` and 6 hex digits)"
    );
    let names = namespaces_of(prefix);
    netns::end_processes(&names, GRACE);
    let result = netns::delete(&names);
    state::remove(prefix);
    unregister(prefix);
    result
}

/// Prefixes with namespaces left but no state file: debris of a lab whose process was killed
/// before it could write one, or whose file was deleted.
pub fn debris() -> Vec<String> {
    all_prefixes()
        .into_iter()
        .filter(|prefix| !state::path(prefix).exists())
        .collect()
}

/// Namespaces named `<prefix>-…`.
pub fn namespaces_of(prefix: &str) -> Vec<String> {
    let start = format!("{prefix}-");
    netns::list()
        .into_iter()
        .filter(|name| name.starts_with(&start))
        .collect()
}

/// Every natlens lab prefix on this machine: from state files and from namespace names.
pub fn all_prefixes() -> BTreeSet<String> {
    let mut prefixes: BTreeSet<String> = state::list().into_iter().map(|s| s.prefix).collect();
    for name in netns::list() {
        if let Some((prefix, _)) = name.split_once('-') {
            if is_prefix(prefix) {
                prefixes.insert(prefix.to_owned());
            }
        }
    }
    prefixes
}

/// True when nothing of the lab is left: no namespace, no state file.
pub fn is_gone(prefix: &str) -> bool {
    namespaces_of(prefix).is_empty() && !state::path(prefix).exists()
}

/// `nl` and 6 random hex digits not used by any lab on this machine, whose IPv6 /48 (named by
/// the last four digits, see [`plan6`](crate::lab::plan6)) no lab has either. The state file's
/// exclusive creation settles the rare race with another process picking the same prefix; two
/// labs racing to the same /48 at the same instant would still work (each lab is a world of
/// its own namespaces), only less readably.
pub fn fresh_prefix() -> String {
    let taken = all_prefixes();
    let taken6: BTreeSet<_> = taken
        .iter()
        .map(|p| crate::lab::plan6::lab_net6(p))
        .collect();
    loop {
        let prefix = format!("nl{:06x}", rand::random::<u32>() & 0xff_ffff);
        if !taken.contains(&prefix) && !taken6.contains(&crate::lab::plan6::lab_net6(&prefix)) {
            return prefix;
        }
    }
}

/// Another lab on this machine that has the IPv6 /48 `prefix` would have, if any.
pub fn sharing_net6(prefix: &str) -> Option<String> {
    let net = crate::lab::plan6::lab_net6(prefix);
    all_prefixes()
        .into_iter()
        .find(|other| other != prefix && crate::lab::plan6::lab_net6(other) == net)
}
