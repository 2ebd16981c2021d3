//! Exit codes through the real binary, on loopback: each kind of failure a script branches on
//! ends with its own code (`natlens::exit`), every range `--help` states is a usage error (2)
//! with clap's message, Ctrl-C during `natlens listen` is 130, and a failed bind says why.

mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Command, Output, Stdio};

use common::ServerProcess;
use natlens::exit;

fn natlens(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command.args(args).stdin(Stdio::null());
    command
}

fn run(args: &[&str]) -> Output {
    natlens(args).output().expect("running natlens")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that natlens ended with `code` and that its stderr passes `says`; `case` names the
/// run in a failure.
fn assert_exit(out: &Output, code: u8, says: impl Fn(&str) -> bool, case: &str) {
    let text = stderr(out);
    assert_eq!(out.status.code(), Some(code.into()), "{case}: {text}");
    assert!(says(&text), "{case}: {text}");
}

/// A loopback port nothing listens on (bound, then released), over TCP.
fn closed_tcp_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A loopback port nothing listens on, over UDP.
fn closed_udp_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn a_refused_tcp_connection_is_server_unreachable() {
    let server = closed_tcp_port().to_string();
    let out = run(&[
        "login",
        "-s",
        &server,
        "--id",
        "alice",
        "--login-transport",
        "tcp",
    ]);
    assert_exit(
        &out,
        exit::UNREACHABLE,
        |text| text.starts_with(&format!("natlens: cannot reach {server} over tcp: ")),
        "",
    );
}

#[test]
fn an_icmp_unreachable_udp_server_is_server_unreachable() {
    let server = closed_udp_port().to_string();
    let out = run(&["login", "-s", &server, "--id", "alice"]);
    assert_exit(
        &out,
        exit::UNREACHABLE,
        |text| text.contains("ICMP port unreachable"),
        "",
    );
}

#[test]
fn no_stun_answer_is_server_unreachable() {
    // A socket that never answers: a closed port would draw ICMP port unreachable instead.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let out = run(&[
        "nat",
        "-s",
        &server,
        "-t",
        "udp",
        "--server-timeout",
        "300ms",
    ]);
    assert_exit(
        &out,
        exit::UNREACHABLE,
        |text| text.contains("no STUN answer"),
        "",
    );
}

#[test]
fn an_unknown_callee_has_its_own_code() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let addr = server.addr().to_string();
    // The facts-only call and the punching call meet the same 404.
    for extra in [&["--no-punch"][..], &["--punch-timeout", "2s"]] {
        let out = natlens(&["call", "nobody", "-s", &addr, "--id", "bob"])
            .args(extra)
            .output()
            .unwrap();
        assert_exit(
            &out,
            exit::NO_CALLEE,
            |text| text.contains("\"nobody\" is not logged in on this server or its peers (404)"),
            &format!("{extra:?}"),
        );
    }
}

/// Every range `--help` states, one value outside it each: clap refuses it with exit 2 and
/// names the option.
#[test]
fn every_stated_range_is_a_usage_error() {
    let server = "127.0.0.1:9";
    let client = |command: &'static str, extra: &[&'static str]| {
        let mut args = vec![command, "-s", server, "--id", "alice"];
        if command == "call" {
            args.insert(1, "bob");
        }
        args.extend_from_slice(extra);
        args
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            client("listen", &["--punch-timeout", "0s"]),
            "--punch-timeout",
        ),
        (
            client("listen", &["--punch-timeout", "60s"]),
            "--punch-timeout",
        ),
        (
            client("call", &["--punch-timeout", "25.5s"]),
            "--punch-timeout",
        ),
        (client("listen", &["--fanout", "0"]), "--fanout"),
        (client("listen", &["--fanout", "65536"]), "--fanout"),
        (client("listen", &["--rate", "0"]), "--rate"),
        (client("listen", &["--syn-ttl", "0"]), "--syn-ttl"),
        (client("listen", &["--delta", "0"]), "--delta"),
        (client("login", &["--keepalive", "0s"]), "--keepalive"),
        (client("login", &["--duration", "0ms"]), "--duration"),
        (
            vec!["nat", "-s", server, "--server-timeout", "0s"],
            "--server-timeout",
        ),
        (vec!["nat", "-s", server, "--samples", "33"], "--samples"),
        (
            vec!["nat", "-s", server, "--preset-delta", "1025"],
            "--preset-delta",
        ),
        (vec!["server", "--udp-expiry", "0s"], "--udp-expiry"),
        (vec!["server", "--tcp-idle", "0s"], "--tcp-idle"),
        (vec!["server", "--alternate", "127.0.0.2:0"], "--alternate"),
        (vec!["server", "--link", "127.0.0.2:0"], "--link"),
        (vec!["lab", "demo", "--loss", "101"], "--loss"),
    ];
    for (args, option) in cases {
        let out = run(&args);
        assert_exit(
            &out,
            exit::USAGE,
            |text| text.starts_with("error: invalid value") && text.contains(option),
            &format!("{args:?}"),
        );
    }
}

#[test]
fn a_bad_id_is_a_usage_error() {
    for args in [
        &["login", "-s", "127.0.0.1:9", "--id", "two words"][..],
        &["listen", "-s", "127.0.0.1:9", "--id", ""],
        &["call", "not valid", "-s", "127.0.0.1:9", "--id", "bob"],
    ] {
        let out = run(args);
        assert_exit(
            &out,
            exit::USAGE,
            |text| text.contains("not a valid ID: use 1 to 64 bytes"),
            &format!("{args:?}"),
        );
    }
}

#[test]
fn ctrl_c_while_listening_exits_130() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let mut child = natlens(&["listen", "-s", &server.addr().to_string(), "--id", "alice"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = common::lines_of(child.stderr.take().unwrap());
    let (code, seen) = common::interrupt_after(child, rx, "waiting for a call");
    assert_eq!(code, Some(exit::INTERRUPTED.into()), "{seen:#?}");
    assert!(
        seen.iter()
            .any(|l| l == "natlens: interrupted before a call came"),
        "{seen:#?}"
    );
}

#[test]
fn a_port_in_use_asks_about_another_server() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["server", "--listen", &addr]);
    assert_exit(
        &out,
        exit::FAILURE,
        |text| text.contains(&format!("binding UDP {addr} (is another server using it?")),
        "",
    );
}

#[test]
fn an_address_not_of_this_host_says_so() {
    // 192.0.2.55 (RFC 5737) is on no interface here: bind(2) fails with EADDRNOTAVAIL and
    // nothing is sent.
    let out = run(&["server", "--listen", "192.0.2.55:3478"]);
    assert_exit(
        &out,
        exit::FAILURE,
        |text| {
            text.contains("binding UDP 192.0.2.55:3478 (not an address of this host)")
                && !text.contains("another server")
        },
        "",
    );
}
