//! listen and call over both address families on loopback (127.0.0.1 and ::1, no NAT, no
//! root): logins over either family, the server naming its other family's address, both ends
//! fingerprinting both families, the punch racing IPv6 (first) against IPv4, the report's
//! `families` and `winner`; and a pair that shares IPv4 only.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::ServerProcess;
use serde_json::Value;

use common::listener::{lines, natlens, report, Listener};

fn family(r: &Value, name: &str) -> Value {
    r["families"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["family"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in {r}"))
}

/// The server listens on 127.0.0.1 and ::1 (and so names both in its login answers); the
/// listener logs in over IPv4, the caller over IPv6. Both fingerprint both families, both race
/// them, IPv6 wins on both ends by its head start, and the data crosses over IPv6.
#[test]
fn a_dual_stack_pair_logged_in_over_different_families_races_and_keeps_ipv6() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0", "--listen", "[::1]:0"]);
    let v4 = *server.addrs.iter().find(|a| a.is_ipv4()).unwrap();
    let v6 = *server.addrs.iter().find(|a| a.is_ipv6()).unwrap();
    let listener = Listener::start(v4, "alice", &["--json"]);
    let data = b"over whichever family won\n".to_vec();
    let file = std::env::temp_dir().join(format!("natlens-family-{}", std::process::id()));
    std::fs::write(&file, &data).unwrap();
    let caller = natlens(&["call", "alice", "--server", &v6.to_string(), "--id", "bob"])
        .args(["--json", "--send", file.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (status, stdout, listen_lines) = listener.finish();
    std::fs::remove_file(&file).unwrap();
    let call_lines = lines(&caller.stderr);
    assert!(caller.status.success(), "{call_lines:#?}");
    assert!(status.success(), "{listen_lines:#?}");
    assert_eq!(stdout, data, "the data arrived whole, once");
    let (theirs, ours) = (report(&listen_lines), report(&call_lines));
    for r in [&theirs, &ours] {
        assert_eq!(r["result"], "connected", "{r}");
        assert_eq!(r["winner"], "ipv6", "{r}");
        let v6 = family(r, "ipv6");
        assert_eq!(v6["outcome"], "connected", "{r}");
        assert_eq!(v6["plan"], "direct");
        assert!(v6["port_through"].is_u64(), "{r}");
        let v4 = family(r, "ipv4");
        assert_ne!(v4["outcome"], "not-shared", "{r}");
        assert_ne!(v4["plan"], Value::Null, "{r}");
        let peer: SocketAddr = r["path"]["peer"].as_str().unwrap().parse().unwrap();
        assert!(peer.is_ipv6(), "{r}");
    }
    // The caller's IPv6 packets got through to the port the listener's IPv6 path uses.
    let local: SocketAddr = theirs["path"]["local"].as_str().unwrap().parse().unwrap();
    assert_eq!(family(&ours, "ipv6")["port_through"], local.port());
    assert_eq!(ours["data"]["bytes_sent"], data.len());
    assert_eq!(theirs["data"]["bytes_received"], data.len());
}

/// An IPv4-only server: neither end can fingerprint IPv6, each says it has none, and the pair
/// connects over IPv4 at once (no head start to wait behind), reporting IPv6 as not shared.
#[test]
fn a_pair_without_ipv6_connects_over_ipv4_and_says_ipv6_was_not_shared() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let listener = Listener::start(server.addr(), "carol", &["--json", "--no-data"]);
    let caller = natlens(&["call", "carol", "--server", &server.addr().to_string()])
        .args(["--id", "dave", "--json", "--no-data"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (status, stdout, listen_lines) = listener.finish();
    assert!(caller.status.success(), "{:#?}", lines(&caller.stderr));
    assert!(status.success(), "{listen_lines:#?}");
    let ours = report(&lines(&caller.stdout));
    let theirs = report(&lines(&stdout));
    for r in [&theirs, &ours] {
        assert_eq!(r["result"], "connected", "{r}");
        assert_eq!(r["winner"], "ipv4", "{r}");
        let v6 = family(r, "ipv6");
        assert_eq!(v6["outcome"], "not-shared", "{r}");
        assert_eq!(v6["plan"], Value::Null);
        assert!(v6["reason"].as_str().unwrap().contains("IPv6"), "{r}");
        assert_eq!(family(r, "ipv4")["outcome"], "connected", "{r}");
    }
    // Each end said why it could not punch IPv6.
    let hinted = |all: &[String]| all.iter().any(|l| l.contains("named no IPv6 address"));
    assert!(
        hinted(&lines(&caller.stderr)),
        "{:#?}",
        lines(&caller.stderr)
    );
    assert!(hinted(&listen_lines), "{listen_lines:#?}");
}

/// `--family 6` between ends that share IPv6: only IPv6 is planned and punched.
#[test]
fn family_6_punches_ipv6_alone() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0", "--listen", "[::1]:0"]);
    let v6 = *server.addrs.iter().find(|a| a.is_ipv6()).unwrap();
    let args = ["--json", "--no-data", "--family", "6"];
    let listener = Listener::start(v6, "erin", &args);
    let caller = natlens(&["call", "erin", "--server", &v6.to_string(), "--id", "frank"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (status, _, listen_lines) = listener.finish();
    assert!(caller.status.success(), "{:#?}", lines(&caller.stderr));
    assert!(status.success(), "{listen_lines:#?}");
    let ours = report(&lines(&caller.stdout));
    assert_eq!(ours["winner"], "ipv6", "{ours}");
    assert_eq!(ours["families"].as_array().unwrap().len(), 1, "{ours}");
    // Without --family 4 allowed, nothing was fingerprinted over IPv4.
    let fingerprints = lines(&caller.stderr)
        .iter()
        .filter(|l| l.contains("\"event\":\"fingerprint\""))
        .count();
    assert_eq!(fingerprints, 1, "{:#?}", lines(&caller.stderr));
}

/// A TCP punch between two dual-stack ends races both families: IPv6 connects first (its head
/// start is longer than a loopback connection takes), the callee keeps it and says so, both
/// ends name it the winner, IPv4 is stopped, and the data crosses whole both ways over the kept
/// connection alone. As root the crafted SYNs go out over raw IPv6 sockets.
#[test]
fn a_tcp_punch_between_dual_stack_ends_races_both_families_and_agrees_on_ipv6() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0", "--listen", "[::1]:0"]);
    let v4 = *server.addrs.iter().find(|a| a.is_ipv4()).unwrap();
    let dir = std::env::temp_dir();
    let (to_caller, to_listener) = (
        dir.join(format!("natlens-tcp-race-l-{}", std::process::id())),
        dir.join(format!("natlens-tcp-race-c-{}", std::process::id())),
    );
    let listener_data: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    let caller_data = b"the caller's bytes, over the kept connection only\n".to_vec();
    std::fs::write(&to_caller, &listener_data).unwrap();
    std::fs::write(&to_listener, &caller_data).unwrap();
    let args = ["--json", "--transport", "tcp"];
    let listener = Listener::start(
        v4,
        "grace",
        &[&args[..], &["--send", to_caller.to_str().unwrap()]].concat(),
    );
    let caller = natlens(&["call", "grace", "--server", &v4.to_string()])
        .args(["--id", "heidi", "--send", to_listener.to_str().unwrap()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (status, stdout, listen_lines) = listener.finish();
    std::fs::remove_file(&to_caller).unwrap();
    std::fs::remove_file(&to_listener).unwrap();
    let call_lines = lines(&caller.stderr);
    assert!(caller.status.success(), "{call_lines:#?}");
    assert!(status.success(), "{listen_lines:#?}");
    assert_eq!(
        stdout, caller_data,
        "the listener got the caller's data whole, once"
    );
    assert_eq!(
        caller.stdout, listener_data,
        "the caller got the listener's data whole, once"
    );
    let (theirs, ours) = (report(&listen_lines), report(&call_lines));
    for r in [&theirs, &ours] {
        assert_eq!(r["result"], "connected", "{r}");
        assert_eq!(r["transport"], "tcp", "{r}");
        assert_eq!(r["winner"], "ipv6", "{r}");
        assert_eq!(family(r, "ipv6")["outcome"], "connected", "{r}");
        let v4 = family(r, "ipv4");
        assert_eq!(v4["outcome"], "stopped", "{r}");
        assert_eq!(v4["plan"], "direct", "{r}");
        let peer: SocketAddr = r["path"]["peer"].as_str().unwrap().parse().unwrap();
        assert!(peer.is_ipv6(), "{r}");
        assert_eq!(r["data"]["result"], "complete", "{r}");
    }
    // Each end's packets got through to the port the other end's kept connection uses.
    for (from, to) in [(&ours, &theirs), (&theirs, &ours)] {
        let local: SocketAddr = to["path"]["local"].as_str().unwrap().parse().unwrap();
        assert_eq!(family(from, "ipv6")["port_through"], local.port(), "{from}");
    }
    assert_eq!(ours["data"]["bytes_sent"], caller_data.len());
    assert_eq!(ours["data"]["bytes_received"], listener_data.len());
}

/// Dual-stack federation: two servers on 127.0.0.1 and ::1 each, linked over one family while
/// the clients log in over the other (and over different servers); the call crosses the link
/// with both families' facts, and the pair punches and keeps IPv6.
#[test]
fn a_call_crosses_a_link_of_the_other_family_and_the_pair_punches() {
    for (link_family_v6, id) in [(false, "ivan"), (true, "judy")] {
        let s1 = ServerProcess::start(&[
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "[::1]:0",
            "--name",
            "s1",
        ]);
        let s1_v4 = *s1.addrs.iter().find(|a| a.is_ipv4()).unwrap();
        let s1_v6 = *s1.addrs.iter().find(|a| a.is_ipv6()).unwrap();
        let link = if link_family_v6 { s1_v6 } else { s1_v4 };
        let s2 = ServerProcess::start(&[
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "[::1]:0",
            "--name",
            "s2",
            "--link",
            &link.to_string(),
        ]);
        assert!(s1.wait_for_log("peer_up", Duration::from_secs(5)).is_some());
        assert!(s2.wait_for_log("peer_up", Duration::from_secs(5)).is_some());
        // Clients use the family the link does not.
        let pick = |s: &ServerProcess| {
            *s.addrs
                .iter()
                .find(|a| a.is_ipv6() != link_family_v6)
                .unwrap()
        };
        let listener = Listener::start(pick(&s2), id, &["--json", "--no-data"]);
        let caller = natlens(&["call", id, "--server", &pick(&s1).to_string()])
            .args(["--id", "mallory", "--json", "--no-data"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (status, stdout, listen_lines) = listener.finish();
        assert!(caller.status.success(), "{:#?}", lines(&caller.stderr));
        assert!(status.success(), "{listen_lines:#?}");
        for r in [report(&lines(&caller.stdout)), report(&lines(&stdout))] {
            assert_eq!(r["result"], "connected", "{r}");
            assert_eq!(r["winner"], "ipv6", "{r}");
            assert_ne!(family(&r, "ipv4")["outcome"], "not-shared", "{r}");
        }
    }
}
