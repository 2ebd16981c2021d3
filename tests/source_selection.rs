//! `--bind` and `--interface` on loopback: the server sees the source natlens was told to use
//! (the reported public address is it, loopback having no NAT), a port given with --bind goes to
//! nat's mapping socket and to the session socket, an address this host lacks and an IP version
//! other than the server's fail with a message that says so.

mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Command, Output, Stdio};

use common::ServerProcess;
use serde_json::Value;

fn natlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_natlens"))
        .args(args)
        .env_remove("NATLENS_SERVER")
        .stdin(Stdio::null())
        .output()
        .expect("running natlens")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A port free over UDP and TCP on 127.0.0.2 (bound, then released).
fn free_port_on_127_0_0_2() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.2:0").unwrap();
        let addr = udp.local_addr().unwrap();
        if TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
}

fn nat_report(args: &[&str]) -> Value {
    let out = natlens(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

fn public(report: &Value, transport: &str) -> String {
    report[transport]["public_address"]
        .as_str()
        .unwrap_or_else(|| panic!("no {transport} public address: {report}"))
        .to_owned()
}

#[test]
fn nat_sends_from_the_bound_address_and_its_mapping_socket_takes_the_port() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let addr = server.addr().to_string();
    let report = nat_report(&["nat", "--server", &addr, "--json", "--bind", "127.0.0.2"]);
    for transport in ["udp", "tcp"] {
        assert!(
            public(&report, transport).starts_with("127.0.0.2:"),
            "{report}"
        );
    }
    let port = free_port_on_127_0_0_2();
    let bind = format!("127.0.0.2:{port}");
    let report = nat_report(&["nat", "--server", &addr, "--json", "--bind", &bind]);
    assert_eq!(public(&report, "udp"), bind, "{report}");
    assert_eq!(public(&report, "tcp"), bind, "{report}");
    // The samples took other ports on the same address.
    let ports = &report["udp"]["allocation"]["ports"];
    let ports: Vec<u64> = ports
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert!(
        !ports.is_empty() && !ports.contains(&u64::from(port)),
        "{report}"
    );
}

/// The address a login's NDJSON says the server saw.
fn login_public(args: &[&str]) -> String {
    let out = natlens(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find_map(|event| {
            let named = ["public_address", "observed"];
            named
                .iter()
                .find_map(|key| event[*key].as_str().map(str::to_owned))
                .filter(|_| event.to_string().contains("logged_in"))
        })
        .unwrap_or_else(|| panic!("no logged_in event: {stdout}"))
}

#[test]
fn the_session_socket_takes_the_bound_address_and_port() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let addr = server.addr().to_string();
    for transport in ["udp", "tcp"] {
        let port = free_port_on_127_0_0_2();
        let bind = format!("127.0.0.2:{port}");
        let seen = login_public(&[
            "login",
            "--server",
            &addr,
            "--id",
            &format!("bound-{transport}"),
            "--json",
            "--duration",
            "200ms",
            "--login-transport",
            transport,
            "--bind",
            &bind,
        ]);
        assert_eq!(seen, bind, "{transport}");
    }
}

#[test]
fn interface_lo_reaches_a_loopback_server() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let addr = server.addr().to_string();
    let out = natlens(&[
        "nat",
        "--server",
        &addr,
        "--json",
        "-t",
        "udp",
        "--interface",
        "lo",
    ]);
    if !common::is_root() {
        // Without CAP_NET_RAW the one-line error names the fix.
        assert!(!out.status.success());
        assert!(text(&out).contains("needs CAP_NET_RAW"), "{}", text(&out));
        common::skip("--interface needs CAP_NET_RAW: run the tests as root");
        return;
    }
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(public(&report, "udp").starts_with("127.0.0.1:"), "{report}");
    let seen = login_public(&[
        "login",
        "--server",
        &addr,
        "--id",
        "via-lo",
        "--json",
        "--duration",
        "200ms",
        "--interface",
        "lo",
    ]);
    assert!(seen.starts_with("127.0.0.1:"), "{seen}");
    let out = natlens(&[
        "nat",
        "--server",
        &addr,
        "-t",
        "udp",
        "--interface",
        "natlens-none0",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no such network interface"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_address_of_another_host_or_family_is_refused() {
    let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let server = server.to_string();
    // TEST-NET-1: never an address of this host.
    for args in [
        &[
            "nat",
            "--server",
            &server,
            "-t",
            "udp",
            "--bind",
            "192.0.2.1",
        ][..],
        &[
            "login",
            "--server",
            &server,
            "--id",
            "a",
            "--bind",
            "192.0.2.1",
        ],
    ] {
        let out = natlens(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("192.0.2.1 is not an address of this host"),
            "{args:?}: {}",
            text(&out)
        );
    }
    for args in [
        &["nat", "--server", &server, "--bind", "::1"][..],
        &[
            "call",
            "bob",
            "--server",
            &server,
            "--id",
            "a",
            "--bind",
            "[::1]:4000",
        ],
        &["nat", "--server", &server, "--bind", "127.0.0.2:0"],
    ] {
        let out = natlens(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("--bind"), "{args:?}: {}", text(&out));
    }
}
