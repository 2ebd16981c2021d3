//! [`LabProcess`]: a process started in a lab host (usually `natlens` itself: a server, one end
//! of a punch) whose output is read while it runs, for `natlens lab demo`, the lab tests and the
//! punch bench.
//!
//! Both pipes are read on threads from the start, so a chatty child never blocks on a full pipe;
//! stderr comes line by line, because that is where natlens says how far it got ("listening",
//! `"event":"waiting"`), and callers wait for those lines.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::lab::instance::Lab;
use crate::lab::spec::Host;

/// How often `finish` looks for the exit: the error on [`Exited::exited`].
const EXIT_POLL: Duration = Duration::from_millis(5);
/// How long `finish` waits for a further stderr line after the exit before it stops reading:
/// the pipe normally closes with the process, this only bounds the wait if something (a
/// grandchild) still holds it.
const STDERR_GRACE: Duration = Duration::from_millis(200);

/// Starts `command`'s process in a session of its own (setsid), so that the terminal's Ctrl-C
/// does not reach a background process (a server, a worker) meant to outlive `natlens lab up`.
pub fn detach(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid(2) is async-signal-safe, as pre_exec requires.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// A process in a lab host: stdout collected on a thread, stderr lines kept and passed on to
/// [`wait_for`](LabProcess::wait_for). Killed (and reaped) on drop, so an early return or a
/// failed assertion leaves nothing running.
pub struct LabProcess {
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    /// Each stderr line as it is read, for `wait_for`; it disconnects when stderr closes.
    lines: Receiver<String>,
    /// Every stderr line read so far, `wait_for` or not.
    stderr: Arc<Mutex<Vec<String>>>,
}

/// What a finished [`LabProcess`] left behind.
pub struct Exited {
    pub status: ExitStatus,
    /// When `finish` saw the exit (within its 5 ms poll).
    pub exited: Instant,
    pub stdout: Vec<u8>,
    /// Every line it wrote to stderr.
    pub stderr: Vec<String>,
}

impl LabProcess {
    /// Starts `command` in `host`'s namespace with stdout and stderr piped. With `stdin`, those
    /// bytes are the whole of its stdin (written, then closed: a message to send); without, its
    /// stdin is null.
    pub fn spawn(
        lab: &Lab,
        host: Host,
        mut command: Command,
        stdin: Option<&[u8]>,
    ) -> anyhow::Result<LabProcess> {
        let stdin_pipe = stdin.map_or_else(Stdio::null, |_| Stdio::piped());
        command
            .stdin(stdin_pipe)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = lab.spawn(host, command)?;
        let mut out = child.stdout.take().expect("stdout is piped");
        let stdout = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = out.read_to_end(&mut bytes);
            bytes
        });
        let err = child.stderr.take().expect("stderr is piped");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                lock(&sink).push(line.clone());
                // Nobody waiting any more is fine: the line is kept above.
                let _ = tx.send(line);
            }
        });
        let mut process = LabProcess {
            child,
            stdout: Some(stdout),
            lines,
            stderr,
        };
        // After the readers start (the child may write before it reads) and once `process`
        // exists, so that a failed write still kills the child.
        if let (Some(bytes), Some(mut pipe)) = (stdin, process.child.stdin.take()) {
            pipe.write_all(bytes).context("writing the child's stdin")?;
        }
        Ok(process)
    }

    /// Waits up to `timeout` for a stderr line containing `needle`. Each line is looked at by
    /// one `wait_for` only: the next call goes on from the line after the one found.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return true,
                Ok(_) => {}
                // Timed out, or stderr closed (the process ended) without the line.
                Err(_) => return false,
            }
        }
        false
    }

    /// The stderr lines read so far (for a failure message while the process still runs).
    pub fn stderr_so_far(&self) -> Vec<String> {
        lock(&self.stderr).clone()
    }

    /// SIGKILL, as a crash or a pulled plug; `finish` still collects what it left.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Waits for the exit, killing the process once `limit` has passed, and collects what it
    /// wrote.
    pub fn finish(mut self, limit: Instant) -> anyhow::Result<Exited> {
        let status = loop {
            if let Some(status) = self.child.try_wait().context("waiting for the child")? {
                break status;
            }
            if Instant::now() > limit {
                let _ = self.child.kill();
                break self.child.wait().context("reaping the killed child")?;
            }
            std::thread::sleep(EXIT_POLL);
        };
        let exited = Instant::now();
        let stdout = self
            .stdout
            .take()
            .map(|reader| reader.join().unwrap_or_default())
            .unwrap_or_default();
        // The stderr reader ends with the pipe, a moment after the exit: until then its last
        // lines may still be on their way.
        while self.lines.recv_timeout(STDERR_GRACE).is_ok() {}
        let stderr = std::mem::take(&mut *lock(&self.stderr));
        Ok(Exited {
            status,
            exited,
            stdout,
            stderr,
        })
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kept stderr lines; a reader that panicked mid-push leaves them whole, so poison is
/// ignored.
fn lock(lines: &Mutex<Vec<String>>) -> std::sync::MutexGuard<'_, Vec<String>> {
    lines.lock().unwrap_or_else(PoisonError::into_inner)
}
