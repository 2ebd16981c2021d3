//! A server restart under logged-in clients, on loopback with real processes: `natlens login`
//! over UDP and TCP and `natlens listen` with a UDP and a TCP session are logged in with
//! `--keepalive 1s`; the server is SIGKILLed and started again on the same port. Each client
//! must log in again by itself (UDP: its next keepalive earns 437; TCP: the connection closes and
//! it dials again with backoff) within two keepalive intervals of the kill (the restart's own
//! time included), and must then be callable.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::event_client::{call_no_punch, Client};
use common::ServerProcess;

const KEEPALIVE: Duration = Duration::from_secs(1);

fn natlens(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command.args(args).stdin(Stdio::null());
    command
}

fn login(server: SocketAddr, id: &str, transport: &str) -> Client {
    let keepalive = format!("{}ms", KEEPALIVE.as_millis());
    let command = natlens(&[
        "login",
        "--server",
        &server.to_string(),
        "--id",
        id,
        "--transport",
        transport,
        "--keepalive",
        &keepalive,
        "--json",
    ]);
    Client::start(&format!("login {id} over {transport}"), command)
}

fn listen(server: SocketAddr, id: &str, transport: &str) -> Client {
    let keepalive = format!("{}ms", KEEPALIVE.as_millis());
    let command = natlens(&[
        "listen",
        "--server",
        &server.to_string(),
        "--id",
        id,
        "--login-transport",
        transport,
        "--keepalive",
        &keepalive,
        "--no-data",
        "--json",
    ]);
    Client::start(&format!("listen {id} over {transport}"), command)
}

#[test]
fn logged_in_clients_log_in_again_after_a_server_restart_and_are_callable() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let addr = server.addr();
    let mut clients = vec![
        (login(addr, "lu", "udp"), "lu"),
        (login(addr, "lt", "tcp"), "lt"),
        (listen(addr, "su", "udp"), "su"),
        (listen(addr, "st", "tcp"), "st"),
    ];
    for (client, _) in &mut clients {
        let ready = if client.name.starts_with("listen") {
            "waiting"
        } else {
            "logged_in"
        };
        assert!(
            client.wait_for(ready, Duration::from_secs(15)).is_some(),
            "{} never got ready: {:?}",
            client.name,
            client.seen
        );
    }
    // Let a keepalive or two pass, so the restart lands at an arbitrary point of the interval.
    std::thread::sleep(KEEPALIVE * 3 / 2);

    // SIGKILL (Child::kill) and start again on the same port, UDP and TCP.
    let killed = Instant::now();
    drop(server);
    let server = ServerProcess::start(&["--listen", &addr.to_string()]);
    let up = Instant::now();
    assert_eq!(server.addr(), addr);

    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for (client, id) in &mut clients {
        let relogin = (client.wait_for("relogin", KEEPALIVE * 4)).map(|(at, _)| at);
        match relogin {
            Some(at) => {
                let after_kill = at.duration_since(killed);
                // `up` is late by the harness's wait for more listening lines: informative only.
                let after_up = at.saturating_duration_since(up);
                lines.push(format!(
                    "  {:<18} logged in again {:>4} ms after the kill, {:>4} ms after the new \
                     server was up",
                    client.name,
                    after_kill.as_millis(),
                    after_up.as_millis()
                ));
                if after_kill > KEEPALIVE * 2 {
                    failures.push(format!("{}: took {after_kill:?}", client.name));
                }
            }
            None => failures.push(format!("{}: no relogin: {:?}", client.name, client.seen)),
        }
        if let Err(why) = call_no_punch(addr, &format!("caller-{id}"), id, None) {
            failures.push(format!("{}: not callable: {why}", client.name));
        }
    }
    eprintln!(
        "server SIGKILLed and restarted on {addr} ({:?} from kill to listening), keepalive \
         {KEEPALIVE:?}:",
        up - killed
    );
    for line in &lines {
        eprintln!("{line}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every client is held by the new server: four logins, plus the callers' own sessions.
    assert!(
        server.log_lines("login").len() >= 4,
        "{:?}",
        server.log_lines("")
    );
}
