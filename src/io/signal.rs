//! Signal flags for the long-running commands, through signal-hook (handlers that only store to
//! an atomic, which is async-signal-safe).
//!
//! The first SIGINT or SIGTERM raises the stop flag so that the command ends cleanly (a client
//! logs out, so its ID is free at once; a server prints its final stats); a second one exits at
//! once with status 130, so a stuck shutdown can still be cut short. Blocking calls notice the
//! flag promptly: `epoll_wait` and socket reads with a timeout return EINTR even under
//! SA_RESTART (signal(7)).

use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::flag;

/// Exit status after a second interrupt: 128 + SIGINT, as shells report it.
const SECOND_INTERRUPT_EXIT: i32 = 130;

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
static STATS: OnceLock<Arc<AtomicBool>> = OnceLock::new();
/// What to finish before [`exit_on_interrupt`] exits; `None` until it is installed.
type ExitHooks = Option<Vec<fn()>>;

/// Set once [`exit_on_interrupt`] handles SIGINT/SIGTERM, with what to finish before exiting.
static ON_INTERRUPT_EXIT: Mutex<ExitHooks> = Mutex::new(None);

/// The flag SIGINT/SIGTERM raise (installed on first use).
pub fn stop_flag() -> io::Result<&'static AtomicBool> {
    if let Some(stop) = STOP.get() {
        return Ok(stop);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as it was before this signal raised it.
        flag::register_conditional_shutdown(signal, SECOND_INTERRUPT_EXIT, Arc::clone(&stop))?;
        flag::register(signal, Arc::clone(&stop))?;
    }
    Ok(STOP.get_or_init(|| stop))
}

/// True once [`stop_flag`] installed its handlers: the command winds down by itself on
/// SIGINT/SIGTERM, so other handlers (the RST guard's) must not exit the process.
pub fn stop_installed() -> bool {
    STOP.get().is_some() || lock_hooks().is_some()
}

fn lock_hooks() -> std::sync::MutexGuard<'static, ExitHooks> {
    ON_INTERRUPT_EXIT.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `hook` before [`exit_on_interrupt`] exits the process (a `--pcap` capture finishing its
/// file); a no-op unless that handler is installed.
pub fn before_interrupt_exit(hook: fn()) {
    if let Some(hooks) = lock_hooks().as_mut() {
        hooks.push(hook);
    }
}

/// For a short command that polls no stop flag (`natlens nat`): on the first SIGINT or SIGTERM,
/// write `stdout_line` (a `--json` run's final object) and `stderr_line`, then exit with status
/// 130, so that an interrupted run still ends as documented instead of dying by the signal.
pub fn exit_on_interrupt(stdout_line: Option<String>, stderr_line: String) -> io::Result<()> {
    use std::io::Write;
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    lock_hooks().get_or_insert_with(Vec::new);
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            let hooks = lock_hooks().clone().unwrap_or_default();
            hooks.iter().for_each(|hook| hook());
            if let Some(line) = &stdout_line {
                let mut out = io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            let _ = writeln!(io::stderr().lock(), "{stderr_line}");
            std::process::exit(SECOND_INTERRUPT_EXIT);
        }
    });
    Ok(())
}

/// The flag SIGUSR1 raises: "print a stats line now".
pub fn stats_flag() -> io::Result<&'static AtomicBool> {
    if let Some(stats) = STATS.get() {
        return Ok(stats);
    }
    let stats = Arc::new(AtomicBool::new(false));
    flag::register(SIGUSR1, Arc::clone(&stats))?;
    Ok(STATS.get_or_init(|| stats))
}
