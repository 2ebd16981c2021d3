//! Shared helpers for the integration tests: run `natlens server` on loopback and build
//! requests by hand.
#![allow(dead_code)]

pub mod event_client;
pub mod lab_cli;
pub mod listener;
pub mod loopback_stun;
pub mod programs;
pub mod tcp_lab;
pub mod up_lab;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use natlens::wire::attr::AttrType;
use natlens::wire::natlens as nl;
use natlens::wire::stun::{Class, MessageType, Method};
use natlens::wire::{MessageBuilder, TransactionId};

/// A `natlens server` child process, killed on drop (also when a test panics).
pub struct ServerProcess {
    child: Child,
    /// Every address it listens on, as printed in its `listening udp` lines.
    pub addrs: Vec<SocketAddr>,
    /// Its stderr so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts `natlens server ARGS` and waits for its listening lines.
    pub fn start(args: &[&str]) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_natlens"))
            .arg("server")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning natlens server");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                sink.lock().unwrap().push(line);
            }
        });
        let mut addrs = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if let Some(addr) = listening_udp(&line) {
                        addrs.push(addr);
                    }
                    if line.starts_with("natlens:") {
                        panic!("server failed to start: {line}");
                    }
                }
                Err(_) if !addrs.is_empty() => break,
                Err(_) => {}
            }
        }
        assert!(
            !addrs.is_empty(),
            "server printed no listening line: {:?}",
            log.lock().unwrap()
        );
        ServerProcess { child, addrs, log }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Lines of the log containing `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(needle))
            .cloned()
            .collect()
    }

    /// Waits up to `timeout` for a log line containing `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(line) = self.log_lines(needle).into_iter().next() {
                return Some(line);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits up to `timeout` for `count` log lines containing `needle`; returns how many came.
    pub fn wait_for_count(&self, needle: &str, count: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        while self.log_lines(needle).len() < count && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.log_lines(needle).len()
    }

    /// Asks for a stats line (SIGUSR1) and returns it.
    pub fn stats(&self) -> String {
        let before = self.stats_lines().len();
        // SAFETY: kill(2) on our own child's PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGUSR1) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let lines = self.stats_lines();
            if lines.len() > before {
                return lines.last().unwrap().clone();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no stats line after SIGUSR1");
    }

    /// Stats lines in either log format.
    fn stats_lines(&self) -> Vec<String> {
        let mut lines = self.log_lines(" stats ");
        lines.extend(self.log_lines("\"event\":\"stats\""));
        lines
    }

    /// The server's process ID (to read its /proc entries).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `... listening udp 127.0.0.1:1234 ...` (human log) or its NDJSON form.
fn listening_udp(line: &str) -> Option<SocketAddr> {
    if let Ok(event) = serde_json::from_str::<serde_json::Value>(line) {
        if event["event"] == "listening" && event["transport"] == "udp" {
            return event["address"].as_str()?.parse().ok();
        }
        return None;
    }
    let rest = line.split(" listening ").nth(1)?.trim_start();
    let rest = rest.strip_prefix("udp ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// A Binding request with transaction ID `tid`.
pub fn binding_request(tid: [u8; 12]) -> Vec<u8> {
    let mut buf = Vec::new();
    MessageBuilder::new(
        &mut buf,
        MessageType::new(Method::BINDING, Class::Request),
        TransactionId(tid),
    );
    buf
}

/// A natlens request of `method` naming `id` in NL-ID.
pub fn id_request(method: Method, id: &str, tid: [u8; 12]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut builder = MessageBuilder::new(
        &mut buf,
        MessageType::new(method, Class::Request),
        TransactionId(tid),
    );
    builder.attribute(nl::ID, id.as_bytes());
    builder.attribute(AttrType::SOFTWARE, b"natlens tests");
    buf
}

/// True when a lab can be built here; otherwise prints a visible SKIPPED line and returns false,
/// except under CI (env `CI` set), where a missing lab is a failure.
pub fn lab_available() -> bool {
    match natlens::lab::check_available() {
        Ok(()) => true,
        Err(why) => skip(&why),
    }
}

/// Says SKIPPED (why) where it shows and returns false, or fails under CI (env `CI` set), where
/// everything a test needs must be there.
pub fn skip(why: &str) -> bool {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but this test cannot run here: {why}"
    );
    // Straight to the process's stderr: libtest hides eprintln! output of passing tests.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("SKIPPED ({why})\n").as_bytes(),
    );
    false
}

pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Lines of a child's stream, as they come.
pub fn lines_of(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Waits for a line containing `needle`, then sends SIGINT; returns the child's status code
/// and every line of the stream.
pub fn interrupt_after(
    mut child: Child,
    rx: Receiver<String>,
    needle: &str,
) -> (Option<i32>, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains(needle)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("never saw {needle:?}: {seen:#?}");
            }
        }
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    seen.extend(rx.iter());
    (status.code(), seen)
}

/// Tears a lab built by `natlens lab up` down when dropped, so an assertion that fails still
/// leaves no namespace behind.
pub struct LabDown(pub String);

impl Drop for LabDown {
    fn drop(&mut self) {
        let _ = natlens::lab::teardown::by_prefix(&self.0);
    }
}
