//! Ctrl-C never leaves a port mapping on the router: `natlens nat --port-mapping test` and
//! `natlens listen` (over UDP and TCP) are interrupted with SIGINT while router a's miniupnpd
//! holds the mapping they asked for; each exits with the documented status 130 (interrupted)
//! and router a's nft ruleset holds no mapping right after. Needs root and network namespaces
//! (SKIPPED otherwise, a failure under CI).

use std::io::{BufRead, BufReader};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::up_lab::UpLab;

/// `natlens::exit::INTERRUPTED`, as a shell sees it.
const INTERRUPTED: i32 = 130;

/// Where `nat --port-mapping test` asks for its proof: an address in the lab's internet
/// segment where nothing answers, so the mapping is held for the whole wait for the server's
/// packet (half a second) instead of the few milliseconds a real server takes.
const SILENT_SERVER: &str = "203.0.113.99";

fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {signal}");
}

/// Waits for `child` to exit, killing it after `limit`.
fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("natlens did not exit within {limit:?} of SIGINT");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Polls router a until it holds a mapping (true) or `child` exits or `limit` passes (false).
fn wait_for_mapping(lab: &UpLab, child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if lab.router_a_holds_a_mapping() {
            return true;
        }
        if child.try_wait().expect("try_wait").is_some() {
            return false;
        }
    }
    false
}

/// Interrupts `nat --port-mapping test` while its mapping is held. The window is found by
/// polling router a's ruleset; natlens is then stopped (SIGSTOP) so that the mapping is
/// known to be still held when SIGINT comes, and continued. A run whose window was missed
/// (the mapping gone by the time it stopped) is tried again.
#[test]
fn an_interrupted_mapping_test_deletes_its_mapping() {
    if !common::lab_available() {
        return;
    }
    let lab = UpLab::up(&["--nat-a", "cone", "--port-mapping", "pmp,pcp"]);
    for attempt in 1..=5 {
        assert!(!lab.router_a_holds_a_mapping(), "a mapping before the run");
        let mut nat = lab
            .exec_direct(
                "a",
                &["nat", "--server", SILENT_SERVER, "--port-mapping", "test"],
            )
            .args(["--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nat");
        let seen = wait_for_mapping(&lab, &mut nat, Duration::from_secs(5));
        assert!(
            seen,
            "attempt {attempt}: the mapping never showed in router a"
        );
        // The gateway's answer granting it is on the LAN: give it time to reach natlens.
        thread::sleep(Duration::from_millis(30));
        signal(&nat, libc::SIGSTOP);
        if !lab.router_a_holds_a_mapping() {
            signal(&nat, libc::SIGCONT);
            let _ = nat.wait();
            eprintln!("attempt {attempt}: the mapping was gone before natlens stopped; again");
            continue;
        }
        signal(&nat, libc::SIGINT);
        signal(&nat, libc::SIGCONT);
        let status = wait_exit(&mut nat, Duration::from_secs(5));
        let out = nat.wait_with_output().expect("nat's output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(status.code(), Some(INTERRUPTED), "{stdout}");
        assert!(stdout.contains(r#""kind":"interrupted""#), "{stdout}");
        assert!(
            !lab.router_a_holds_a_mapping(),
            "SIGINT left a mapping in router a:\n{}",
            lab.router_a_ruleset()
        );
        return;
    }
    panic!("the mapping's window was missed five times");
}

/// Stderr lines of a child, as they come.
fn lines(child: &mut Child) -> Receiver<String> {
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A listener holds its punch port's mapping while it waits for a call (over UDP the mapping
/// socket's, over TCP the port its punch binds); SIGINT ends it as interrupted and deletes it.
#[test]
fn an_interrupted_listener_deletes_its_mapping() {
    if !common::lab_available() {
        return;
    }
    let lab = UpLab::up(&["--nat-a", "cone", "--port-mapping", "pmp,pcp"]);
    for transport in ["udp", "tcp"] {
        let mut listen = lab
            .exec_direct("a", &["listen", "--id", "alice", "--no-data", "--json"])
            .args(["--server", "203.0.113.10", "--transport", transport])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn listen");
        let events = lines(&mut listen);
        let waiting = events
            .iter()
            .take_while(|_| listen.try_wait().ok().flatten().is_none())
            .find(|line| line.contains(r#""event":"waiting""#));
        assert!(waiting.is_some(), "{transport}: listen never waited");
        // miniupnpd's rules match the IP protocol byte: 6 for TCP, 17 for UDP.
        let protocol = match transport {
            "tcp" => "@nh,72,8 0x6 ",
            _ => "@nh,72,8 0x11 ",
        };
        let ruleset = lab.router_a_miniupnpd_table();
        assert!(
            ruleset.contains("dport") && ruleset.contains(protocol),
            "{transport}: no {transport} mapping while listening:\n{ruleset}"
        );
        signal(&listen, libc::SIGINT);
        let status = wait_exit(&mut listen, Duration::from_secs(10));
        assert_eq!(status.code(), Some(INTERRUPTED), "{transport}");
        assert!(
            !lab.router_a_holds_a_mapping(),
            "{transport}: SIGINT left a mapping in router a:\n{}",
            lab.router_a_ruleset()
        );
    }
}
