//! Fast failures on loopback: a server whose host answers ICMP port unreachable (UDP) or
//! refuses the connection (TCP) ends every command at once, with exit status 4 and the reason
//! on stderr, instead of waiting out the login timeout (10 s) or `nat`'s discovery timeout
//! (4 s): within 200 ms, process start included (measured: 1 to 25 ms on this loopback), and
//! every measured time is printed.
//!
//! An ICMP error about another destination is not the server's: `nat` against a server whose
//! RFC 5780 alternate addresses are closed still reports (exit 0).

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use natlens::core::binding::{self, FullMode, Outcome, Received};
use natlens::core::Transport;
use natlens::wire::stun::Message;

/// The longest a fast failure may take, process start included.
const LIMIT: Duration = Duration::from_millis(200);

/// A loopback port nothing listens on, over UDP and TCP alike.
fn closed_port() -> SocketAddr {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        if TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
}

fn run(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_natlens"))
        .args(args)
        .env_remove("NATLENS_SERVER")
        .stdin(Stdio::null())
        .output()
        .expect("running natlens");
    (out, started.elapsed())
}

/// Runs `args` against a closed port and checks: exit 4, within [`LIMIT`], stderr naming the
/// address and `reason`.
fn assert_fast_failure(args: &[&str], reason: &str) {
    let server = closed_port().to_string();
    let mut args: Vec<&str> = args.to_vec();
    args.extend(["--server", &server]);
    let (out, took) = run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("natlens {}: {} ms", args.join(" "), took.as_millis());
    assert_eq!(
        out.status.code(),
        Some(natlens::exit::UNREACHABLE.into()),
        "{args:?}: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{server} {reason}")),
        "{args:?} should say `{server} {reason}`: {stderr}"
    );
    assert!(took < LIMIT, "{args:?} took {took:?}: {stderr}");
}

const ICMP: &str = "answered ICMP port unreachable";
const REFUSED: &str = "refused the TCP connection";

#[test]
fn login_fails_fast_over_udp_and_tcp() {
    assert_fast_failure(&["login", "--id", "alice"], ICMP);
    assert_fast_failure(
        &["login", "--id", "alice", "--login-transport", "tcp"],
        REFUSED,
    );
}

#[test]
fn listen_and_call_fail_fast() {
    assert_fast_failure(&["listen", "--id", "alice"], ICMP);
    assert_fast_failure(&["call", "bob", "--id", "alice"], ICMP);
    assert_fast_failure(&["call", "bob", "--id", "alice", "--no-punch"], ICMP);
    assert_fast_failure(
        &["listen", "--id", "alice", "--login-transport", "tcp"],
        REFUSED,
    );
}

#[test]
fn nat_fails_fast_over_each_transport() {
    assert_fast_failure(&["nat", "--transport", "udp"], ICMP);
    assert_fast_failure(&["nat", "--transport", "tcp"], REFUSED);
    // Both at once: both reasons.
    assert_fast_failure(&["nat"], ICMP);
    assert_fast_failure(&["nat"], REFUSED);
}

/// A STUN server on loopback that says its RFC 5780 alternate is `alternate` (where nothing
/// listens) and answers only from its own address.
fn server_with_closed_alternate(alternate: SocketAddr) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let full = FullMode {
        primary: addr,
        alternate,
    };
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            let Ok(message) = Message::parse(&buf[..len]) else {
                continue;
            };
            let rx = Received {
                transport: Transport::Udp,
                local: addr,
                remote: from,
            };
            let mut out = Vec::new();
            if let Outcome::Reply { from: via, to, .. } =
                binding::answer(&message, rx, Some(&full), &mut out)
            {
                // Answers asked to come from the (closed) alternate addresses are dropped.
                if via == addr {
                    let _ = socket.send_to(&out, to);
                }
            }
        }
    });
    addr
}

#[test]
fn an_unreachable_alternate_is_not_an_unreachable_server() {
    let closed = closed_port();
    // The alternate on 127.0.0.2 with a closed port: every mapping test toward it draws ICMP.
    let alternate = SocketAddr::new("127.0.0.2".parse().unwrap(), closed.port());
    let server = server_with_closed_alternate(alternate).to_string();
    let (out, took) = run(&["nat", "--transport", "udp", "--json", "--server", &server]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "natlens nat against a closed alternate: {} ms",
        took.as_millis()
    );
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let public = report["udp"]["public_address"].as_str().expect("answered");
    assert!(public.starts_with("127.0.0.1:"), "{report}");
    assert_eq!(report["udp"]["full_mode"], true, "{report}");
}
