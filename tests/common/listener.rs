//! A `natlens listen` driven from a test: its stdout and stderr read as they come, its stderr
//! lines searched for a progress word. Shared by the loopback punch tests.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test, with `args`.
pub fn natlens(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command.args(args);
    command
}

/// A `natlens listen` whose stdout and stderr are read as they come (a full pipe would stall
/// it).
pub struct Listener {
    child: Child,
    stdout: Option<std::thread::JoinHandle<Vec<u8>>>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Listener {
    pub fn start(server: SocketAddr, id: &str, extra: &[&str]) -> Listener {
        let mut child = natlens(&["listen", "--server", &server.to_string(), "--id", id])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = out.read_to_end(&mut bytes);
            bytes
        });
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut listener = Listener {
            child,
            stdout: Some(stdout),
            lines,
            seen: Vec::new(),
        };
        assert!(listener.wait_for("waiting"), "{:?}", listener.seen);
        listener
    }

    pub fn wait_for(&mut self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    /// Waits for the exit; returns the status, stdout and every stderr line.
    pub fn finish(mut self) -> (std::process::ExitStatus, Vec<u8>, Vec<String>) {
        let stdout = self.stdout.take().unwrap().join().unwrap();
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.try_iter());
        std::thread::sleep(Duration::from_millis(50));
        self.seen.extend(self.lines.try_iter());
        (status, stdout, std::mem::take(&mut self.seen))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The report: the last JSON line with `schema_version`.
pub fn report(lines: &[String]) -> Value {
    lines
        .iter()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|value| value.get("schema_version").is_some())
        .unwrap_or_else(|| panic!("no report in {lines:#?}"))
}

/// Output bytes as lines.
pub fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::to_owned)
        .collect()
}
