//! A client process (`natlens login` / `listen` with --json) whose NDJSON events are read as
//! they come, each with the moment it was read. Shared by the server-restart and failover
//! suites, which time how soon a client is back.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A client process whose NDJSON events (stdout for `login`, stderr for `listen`) are read as
/// they come, each with the moment it was read.
pub struct Client {
    pub name: String,
    pub child: Child,
    events: Receiver<(Instant, Value)>,
    /// Every event read so far that was not returned.
    pub seen: Vec<Value>,
}

impl Client {
    pub fn start(name: &str, mut command: Command) -> Client {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning natlens");
        let (tx, events) = mpsc::channel();
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for pipe in pipes {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Ok(value) = serde_json::from_str::<Value>(&line) {
                        let _ = tx.send((Instant::now(), value));
                    }
                }
            });
        }
        Client {
            name: name.to_owned(),
            child,
            events,
            seen: Vec::new(),
        }
    }

    /// Waits for an event named `event`; when it was read, and the event.
    pub fn wait_for(&mut self, event: &str, timeout: Duration) -> Option<(Instant, Value)> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let (at, value) = self.events.recv_timeout(left).ok()?;
            self.seen.push(value.clone());
            if value["event"] == event {
                return Some((at, value));
            }
        }
        None
    }

    /// The next event, whatever it is (kept in `seen` too); `None` when none came in `timeout`.
    pub fn next_event(&mut self, timeout: Duration) -> Option<Value> {
        let (_, value) = self.events.recv_timeout(timeout).ok()?;
        self.seen.push(value.clone());
        Some(value)
    }

    /// Waits for the final object of a `--json` run (the one line without an "event" key).
    pub fn final_object(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let (_, value) = self.events.recv_timeout(left).ok()?;
            if value.get("event").is_none() {
                return Some(value);
            }
            self.seen.push(value);
        }
        None
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `natlens call CALLEE --no-punch` through `server` as `me` (with `key`, for a server with
/// credentials): the exit status and stderr, or Ok when the callee answered with its facts.
pub fn call_no_punch(
    server: SocketAddr,
    me: &str,
    callee: &str,
    key: Option<&str>,
) -> Result<(), String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command.args([
        "call",
        callee,
        "--server",
        &server.to_string(),
        "--id",
        me,
        "--no-punch",
        "--json",
        "--call-timeout",
        "5s",
    ]);
    command
        .stdin(Stdio::null())
        .env_remove("NATLENS_SERVER")
        .env_remove("NATLENS_KEY");
    if let Some(key) = key {
        command.env("NATLENS_KEY", key);
    }
    let output = command.output().expect("running natlens call");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    if output.status.success() && report["callee"] == callee {
        Ok(())
    } else {
        Err(format!(
            "call {callee} via {server}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
