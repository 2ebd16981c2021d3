//! `natlens nat` end to end on loopback, against `natlens server` (RFC 5780 full mode and basic
//! mode) and against coturn in RFC 5780 mode. Loopback has no NAT, so every verdict is known:
//! not behind a NAT, endpoint-independent mapping and filtering, ports preserved, CHANGE-REQUEST
//! honoured, hairpinning not applicable (null: there is no NAT to hairpin through, though a
//! packet to one's own address does arrive). Every packet stays on loopback:
//! primary 127.0.0.1, alternate 127.0.0.2 (Linux routes all of 127.0.0.0/8 to `lo`).
//!
//! coturn comes from Debian's `coturn` package. When `turnserver` is missing the coturn test
//! fails if `CI` is set and is otherwise skipped with a visible SKIPPED line.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use natlens::core::binding::{self, Outcome, Received};
use natlens::core::Transport;
use natlens::wire::stun::Message;
use serde_json::{json, Value};

mod common;
use common::loopback_stun::{free_port, Mode, Server, PRIMARY_IP};
use common::programs::{self, require_tools};

/// A `natlens nat` run on loopback takes about 0.15 s (two 70 ms burst pauses, UDP's then
/// TCP's); this only stops a hung run from hanging the suite.
const NAT_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[test]
fn full_mode_natlens_server_shows_no_nat_over_udp_and_tcp() {
    let server = Server::natlens(Mode::Full, &[]);
    let run = nat(&["--server", &server.primary.to_string(), "--json"]);
    assert!(run.status.success(), "{}", run.describe(&server));
    assert_eq!(
        run.stderr, "",
        "nothing on stderr when it is not a terminal"
    );
    let report = run.json();
    assert_eq!(report["schema_version"], 2);
    assert_eq!(report["result"], "ok");
    assert_eq!(report["server"], server.primary.to_string());
    assert_no_nat(&report["udp"], Mode::Full, Transport::Udp);
    assert_no_nat(&report["tcp"], Mode::Full, Transport::Tcp);
    assert_crafted_tcp_filtering(&report["tcp"]);
}

/// Over TCP a natlens server with CAP_NET_RAW (root here) measures filtering by crafted SYNs:
/// on loopback nothing filters. Without it the server refuses and says why.
fn assert_crafted_tcp_filtering(tcp: &Value) {
    let context = format!("{tcp:#}");
    if common::is_root() {
        assert_eq!(tcp["filtering"], "endpoint-independent", "{context}");
        assert_eq!(tcp["change_request"], "honoured", "{context}");
        assert_eq!(tcp["filtering_reason"], Value::Null, "{context}");
    } else {
        assert_eq!(tcp["filtering"], Value::Null, "{context}");
        let reason = tcp["filtering_reason"].as_str().unwrap_or_default();
        assert!(reason.contains("CAP_NET_RAW"), "{context}");
    }
}

#[test]
fn basic_mode_leaves_mapping_and_filtering_unmeasured() {
    let server = Server::natlens(Mode::Basic, &[]);
    let run = nat(&[
        "-s",
        &server.primary.to_string(),
        "--json",
        "--samples",
        "5",
    ]);
    assert!(run.status.success(), "{}", run.describe(&server));
    let report = run.json();
    for transport in [Transport::Udp, Transport::Tcp] {
        let facts = &report[transport.as_str()];
        assert_no_nat(facts, Mode::Basic, transport);
        assert_eq!(facts["allocation"]["samples"], 5);
    }
}

#[test]
fn coturn_in_rfc5780_mode_gives_the_same_verdicts_as_natlens() {
    let Some(tools) = require_tools(
        "coturn_in_rfc5780_mode_gives_the_same_verdicts_as_natlens",
        &["turnserver"],
        "apt-get install coturn",
    ) else {
        return;
    };
    let coturn = Server::coturn(&tools[0], Mode::Full);
    let natlens = Server::natlens(Mode::Full, &[]);
    let runs = [&coturn, &natlens].map(|server| {
        let run = nat(&["--server", &server.primary.to_string(), "--json"]);
        assert!(run.status.success(), "{}", run.describe(server));
        run.json()
    });
    for transport in [Transport::Udp, Transport::Tcp] {
        let name = transport.as_str();
        assert_no_nat(&runs[0][name], Mode::Full, transport);
        let [mut left, mut right] = [verdicts(&runs[0][name]), verdicts(&runs[1][name])];
        if transport == Transport::Tcp {
            // Only natlens crafts SYNs: coturn refuses CHANGE-REQUEST over TCP.
            assert_eq!(runs[0][name]["filtering"], Value::Null);
            assert!(
                runs[0][name]["filtering_reason"].is_string(),
                "{}",
                runs[0][name]
            );
            assert_crafted_tcp_filtering(&runs[1][name]);
            for verdicts in [&mut left, &mut right] {
                let object = verdicts.as_object_mut().unwrap();
                object.remove("filtering");
                object.remove("change_request");
            }
        }
        assert_eq!(
            left, right,
            "{name}: coturn (left) and natlens (right) disagree"
        );
    }
}

#[test]
fn the_table_and_the_narrative_go_to_stdout() {
    let server = Server::natlens(Mode::Full, &[]);
    let run = nat(&["--server", &server.primary.to_string(), "-t", "udp"]);
    assert!(run.status.success(), "{}", run.describe(&server));
    // The narrative is wrapped: compare with the line breaks taken out.
    let text = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "UDP",
        "public address",
        "endpoint-independent",
        "honoured",
        "preserving",
        "local port (public port = local port)",
        "Over UDP, the server sees you as 127.0.0.1:",
        "there is no NAT between you and the server",
        "Nothing on the path filters what comes in",
        "- (no NAT)",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{}", run.stdout);
    }
    // Without a NAT, no sentence may talk as if there were one.
    for nat_only in ["Your NAT", "It keeps", "hairpins"] {
        assert!(!text.contains(nat_only), "{nat_only:?} in:\n{}", run.stdout);
    }
    assert!(
        !run.stdout.contains("TCP"),
        "only UDP was asked for:\n{}",
        run.stdout
    );
}

#[test]
fn ipv6_loopback_works_too() {
    let server = Server::natlens_at("[::1]:0".parse().unwrap());
    let run = nat(&["--server", &server.primary.to_string(), "--json"]);
    assert!(run.status.success(), "{}", run.describe(&server));
    let report = run.json();
    // IPv6 results live under ipv6; udp and tcp are IPv4's, not probed here.
    assert_eq!(report["udp"], json!(null), "{report:#}");
    assert_eq!(report["families"]["ipv4"]["probed"], false);
    assert_eq!(
        report["families"]["ipv4"]["reason"],
        "no --server has an IPv4 address"
    );
    assert_eq!(report["ipv6"]["translation"], "none", "{report:#}");
    assert_eq!(report["ipv6"]["behind_nat"], false);
    assert!(report["verdict"].as_str().unwrap().starts_with("IPv6: "));
    for transport in [Transport::Udp, Transport::Tcp] {
        let facts = &report["ipv6"][transport.as_str()];
        assert_no_nat(facts, Mode::Basic, transport);
        assert!(facts["public_address"]
            .as_str()
            .unwrap()
            .starts_with("[::1]:"));
    }
}

#[test]
fn a_silent_server_fails_with_a_clear_message_within_the_timeout() {
    // Bound but never read: requests vanish, as with a firewall that drops them.
    let silent = UdpSocket::bind((PRIMARY_IP, 0)).unwrap();
    let addr = silent.local_addr().unwrap();
    let started = Instant::now();
    let run = nat(&[
        "--server",
        &addr.to_string(),
        "-t",
        "udp",
        "--server-timeout",
        "1s",
    ]);
    let elapsed = started.elapsed();
    assert_eq!(
        run.status.code(),
        Some(natlens::exit::UNREACHABLE.into()),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.trim(),
        format!("natlens: no STUN answer from {addr} over udp within 1s: is a STUN server there?")
    );
    assert_eq!(run.stdout, "");
    assert!(
        (Duration::from_secs(1)..Duration::from_secs(3)).contains(&elapsed),
        "took {elapsed:?}"
    );
}

#[test]
fn nothing_listening_fails_over_both_transports() {
    let addr = SocketAddr::new(IpAddr::V4(PRIMARY_IP), free_port(&[PRIMARY_IP], None));
    let run = nat(&["--server", &addr.to_string(), "--server-timeout", "500ms"]);
    assert_eq!(
        run.status.code(),
        Some(natlens::exit::UNREACHABLE.into()),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.trim(),
        format!(
            "natlens: {addr} answered ICMP port unreachable (udp); {addr} refused the TCP \
             connection (tcp)"
        )
    );
}

/// A server heard over UDP only is a partial result: the report all the same, with `result`
/// partial and an error naming TCP, and exit status 7.
#[test]
fn a_server_answering_only_udp_gives_a_partial_udp_report() {
    let responder = Responder::start(false);
    let addr = responder.addr;
    let run = nat(&["--server", &addr.to_string(), "--json"]);
    assert_eq!(run.status.code(), Some(7), "{}", run.stderr);
    let missing = format!("{addr} refused the TCP connection (tcp)");
    assert_eq!(run.stderr.trim(), format!("natlens: {missing}"));
    let report = run.json();
    assert_no_nat(&report["udp"], Mode::Basic, Transport::Udp);
    assert_eq!(report["tcp"]["public_address"], Value::Null);
    assert_eq!(report["tcp"]["allocation"]["pattern"], Value::Null);
    assert_eq!(report["result"], "partial");
    assert_eq!(
        report["error"],
        json!({"kind": "partial", "message": missing})
    );
}

#[test]
fn a_tcp_server_that_closes_after_answering_still_counts() {
    let responder = Responder::start(true);
    let run = nat(&[
        "--server",
        &responder.addr.to_string(),
        "-t",
        "tcp",
        "--json",
    ]);
    assert!(run.status.success(), "{}", run.stderr);
    let report = run.json();
    let tcp = &report["tcp"];
    assert_eq!(tcp["behind_nat"], false, "{tcp:#}");
    assert_eq!(tcp["allocation"]["answered"], 8, "{tcp:#}");
    assert_eq!(tcp["allocation"]["pattern"], "preserving", "{tcp:#}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--server", "127.0.0.1:3478", "--samples", "1"][..],
        &["--server", "127.0.0.1:3478", "--preset-delta", "0"],
        &["--server", "127.0.0.1:0"],
        &["--server", "[::1"],
        &["--transport", "udp"],
    ] {
        let run = nat(args);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {}", run.stderr);
    }
}

/// A name that does not resolve is a bad value: exit status 2 and a line naming it. (A name
/// under .invalid is answered without a query: no test may send a DNS packet.)
#[test]
fn a_server_name_that_does_not_resolve_exits_2_naming_it() {
    for args in [
        &["--server", "stun.invalid"][..],
        &["-s", "stun.invalid:3478"],
    ] {
        let run = nat(args);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {}", run.stderr);
        let first = run.stderr.lines().next().unwrap_or_default();
        assert!(
            first.contains("`stun.invalid` does not resolve"),
            "{args:?}: {}",
            run.stderr
        );
    }
}

/// No --server and no NATLENS_SERVER: natlens has no server of its own and says one is needed.
#[test]
fn without_a_server_natlens_asks_for_one() {
    let run = nat(&["--json"]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("--server <HOST[:PORT]>"),
        "{}",
        run.stderr
    );
}

/// `--server localhost:PORT`: resolved from /etc/hosts to 127.0.0.1 (IPv4 first), said on
/// stderr, and probed like the address itself.
#[test]
fn a_server_name_resolves_and_the_address_used_is_named() {
    let server = Server::natlens(Mode::Basic, &[]);
    let port = server.primary.port();
    let name = format!("localhost:{port}");
    let run = nat(&["--server", &name, "--json", "-t", "udp"]);
    assert!(run.status.success(), "{}", run.describe(&server));
    let line = format!("natlens: server {name} resolved to 127.0.0.1:{port}");
    assert!(
        run.stderr.lines().any(|l| l.starts_with(&line)),
        "{line:?} not in:\n{}",
        run.stderr
    );
    let report = run.json();
    assert_eq!(report["server"], format!("127.0.0.1:{port}"));
    assert_no_nat(&report["udp"], Mode::Basic, Transport::Udp);
}

/// NATLENS_SERVER stands in for --server, and --server wins over it.
#[test]
fn natlens_server_names_the_server_when_server_is_absent() {
    let server = Server::natlens(Mode::Basic, &[]);
    let primary = server.primary.to_string();
    let run = nat_with_server_env(&["--json", "-t", "udp"], Some(&primary));
    assert!(run.status.success(), "{}", run.describe(&server));
    assert_eq!(run.json()["server"], primary);
    assert_no_nat(&run.json()["udp"], Mode::Basic, Transport::Udp);
    // A broken NATLENS_SERVER does not matter when --server is given.
    let run = nat_with_server_env(
        &["-s", &primary, "--json", "-t", "udp"],
        Some("stun.invalid"),
    );
    assert!(run.status.success(), "{}", run.describe(&server));
    assert_eq!(run.json()["server"], primary);
}

/// Two plain servers at different loopback IPs (neither in RFC 5780 mode): the same socket asks
/// both, and with no NAT the mapping does not vary by destination; the samples go to each in
/// turn. A third server that never answers costs only the samples sent to it.
#[test]
fn several_servers_tell_whether_the_mapping_varies_by_destination() {
    let first = Server::natlens(Mode::Basic, &[]);
    let second = Server::natlens_at("127.0.0.3:0".parse().unwrap());
    let (a, b) = (first.primary.to_string(), second.primary.to_string());
    let run = nat(&["--server", &a, "--server", &b, "--json"]);
    assert!(run.status.success(), "{}", run.describe(&first));
    let report = run.json();
    assert_eq!(report["server"], a.as_str());
    assert_eq!(report["servers"], json!([a, b]));
    for transport in [Transport::Udp, Transport::Tcp] {
        let facts = &report[transport.as_str()];
        assert_no_nat(facts, Mode::Basic, transport);
        assert_eq!(facts["mapping_varies_by_dest_ip"], false, "{facts:#}");
        assert_eq!(facts["difficulty"], "easy", "{facts:#}");
    }
    let verdict = report["verdict"].as_str().expect("a verdict");
    assert!(verdict.starts_with("UDP and TCP: no NAT; "), "{verdict}");

    // The human report opens with the same line.
    let run = nat(&["--server", &a, "--server", &b]);
    assert!(run.status.success(), "{}", run.describe(&first));
    assert_eq!(run.stdout.lines().next(), Some(verdict), "{}", run.stdout);

    let dead = format!("127.0.0.4:{}", free_port(&[[127, 0, 0, 4].into()], None));
    let run = nat(&["-s", &a, "-s", &b, "-s", &dead, "--json", "-t", "udp"]);
    assert!(run.status.success(), "{}", run.describe(&first));
    let udp = &run.json()["udp"];
    assert_eq!(udp["mapping_varies_by_dest_ip"], false, "{udp:#}");
    let ports = udp["allocation"]["ports"].as_array().unwrap();
    let lost: Vec<usize> = (0..ports.len()).filter(|&i| ports[i].is_null()).collect();
    assert_eq!(
        lost,
        [2, 5],
        "every third sample went to the dead server: {udp:#}"
    );
    assert_eq!(udp["allocation"]["pattern"], "preserving", "{udp:#}");
}

/// A server of the other address family is that family's primary (--family any): probed on
/// its own sockets, apart from the IPv4 ones. Nothing listens on [::1]:9, so IPv6 gets no
/// answer and the run is partial (exit status 7), IPv4 whole. `--family 4` leaves it out;
/// `--family 6` without an IPv6 server is a usage error.
#[test]
fn a_server_of_another_family_is_probed_as_that_familys_primary() {
    let first = Server::natlens(Mode::Basic, &[]);
    let a = first.primary.to_string();
    let run = nat(&["-s", &a, "-s", "[::1]:9", "--json", "-t", "udp"]);
    assert_eq!(run.status.code(), Some(7), "{}", run.describe(&first));
    let report = run.json();
    assert_eq!(report["result"], "partial", "{report:#}");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[::1]:9"),
        "{report:#}"
    );
    assert_eq!(report["servers"], json!([a]));
    assert_eq!(report["ipv6"]["server"], "[::1]:9");
    assert_eq!(report["ipv6"]["udp"]["public_address"], json!(null));
    assert_eq!(report["families"]["ipv6"]["probed"], true);
    let allocation = &report["udp"]["allocation"];
    assert_eq!(
        allocation["answered"], allocation["samples"],
        "{allocation:#}"
    );

    let only_v4 = nat(&[
        "-s", &a, "-s", "[::1]:9", "--json", "-t", "udp", "--family", "4",
    ]);
    assert!(only_v4.status.success(), "{}", only_v4.describe(&first));
    let report = only_v4.json();
    assert_eq!(report["ipv6"], json!(null));
    assert_eq!(
        report["families"]["ipv6"]["reason"],
        "not asked (--family 4)"
    );
    assert!(!report["verdict"].as_str().unwrap().contains("IPv6"));

    let no_v6 = nat(&["-s", &a, "--json", "--family", "6"]);
    assert_eq!(no_v6.status.code(), Some(2), "{}", no_v6.stderr);
    assert!(
        no_v6.stdout.contains("no --server has an IPv6 address"),
        "{}{}",
        no_v6.stdout,
        no_v6.stderr
    );
}

#[test]
fn more_than_eight_servers_is_a_usage_error() {
    let servers: Vec<String> = (0..9).map(|i| format!("127.0.0.1:{}", 3500 + i)).collect();
    let mut args = vec!["--json"];
    for server in &servers {
        args.extend(["--server", server.as_str()]);
    }
    let run = nat(&args);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("at most 8 times"), "{}", run.stderr);
}

// ---------------------------------------------------------------------------------------------
// Expectations
// ---------------------------------------------------------------------------------------------

/// Everything a report of one transport must say on loopback, where there is no NAT.
fn assert_no_nat(facts: &Value, mode: Mode, transport: Transport) {
    let context = format!("{transport:?} {mode:?}: {facts:#}");
    let public: SocketAddr = facts["public_address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no public address: {context}"));
    assert!(public.ip().is_loopback(), "{context}");
    // behind_nat is false exactly when the public address equals the socket's local one.
    assert_eq!(facts["behind_nat"], false, "{context}");
    assert_eq!(facts["alg"], false, "{context}");
    assert_eq!(facts["hairpinning"], Value::Null, "{context}");
    assert!(facts["rtt_ms"].as_f64().is_some(), "{context}");
    let full = mode == Mode::Full;
    assert_eq!(facts["full_mode"], full, "{context}");
    let ei = json!("endpoint-independent");
    let (mapping, filtering, change) = match (full, transport) {
        (true, Transport::Udp) => (ei.clone(), ei, json!("honoured")),
        // TCP filtering depends on the server (crafted SYNs: natlens with CAP_NET_RAW only):
        // the callers check it.
        (true, Transport::Tcp) => (
            ei,
            facts["filtering"].clone(),
            facts["change_request"].clone(),
        ),
        (false, _) => (Value::Null, Value::Null, Value::Null),
    };
    assert_eq!(facts["mapping"], mapping, "{context}");
    assert_eq!(facts["filtering"], filtering, "{context}");
    assert_eq!(facts["change_request"], change, "{context}");
    let allocation = &facts["allocation"];
    assert_eq!(allocation["pattern"], "preserving", "{context}");
    assert_eq!(allocation["answered"], allocation["samples"], "{context}");
    assert!(
        allocation["confidence"].as_f64().unwrap() >= 0.75,
        "{context}"
    );
    assert_eq!(facts["prediction"]["rule"], "local-port", "{context}");
    assert!(facts["prediction"]["two_probe"].is_object(), "{context}");
    assert!(facts["prediction"]["preset_delta"].is_object(), "{context}");
}

/// The verdicts of one transport, without the addresses, ports and times that differ per run.
fn verdicts(facts: &Value) -> Value {
    json!({
        "behind_nat": facts["behind_nat"],
        "full_mode": facts["full_mode"],
        "mapping": facts["mapping"],
        "filtering": facts["filtering"],
        "change_request": facts["change_request"],
        "hairpinning": facts["hairpinning"],
        "alg": facts["alg"],
        "pattern": facts["allocation"]["pattern"],
        "answered": facts["allocation"]["answered"],
        "rule": facts["prediction"]["rule"],
    })
}

// ---------------------------------------------------------------------------------------------
// Running natlens nat
// ---------------------------------------------------------------------------------------------

struct NatRun {
    command: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl NatRun {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    fn describe(&self, server: &Server) -> String {
        format!(
            "{}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- {} ---\n{}",
            self.command,
            self.status,
            self.stdout,
            self.stderr,
            server.command,
            server.log_text()
        )
    }
}

/// Runs `natlens nat ARGS`, killing it after [`NAT_TIMEOUT`].
fn nat(args: &[&str]) -> NatRun {
    nat_with_server_env(args, None)
}

/// Runs `natlens nat ARGS` with NATLENS_SERVER set to `server`, or unset (whatever the
/// environment running the tests holds).
fn nat_with_server_env(args: &[&str], server: Option<&str>) -> NatRun {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command.arg("nat").args(args).env_remove("NATLENS_SERVER");
    if let Some(server) = server {
        command.env("NATLENS_SERVER", server);
    }
    let run = programs::run(&mut command, NAT_TIMEOUT);
    let status = run
        .status
        .unwrap_or_else(|| panic!("{} still ran after {NAT_TIMEOUT:?}", run.command));
    NatRun {
        command: run.command,
        status,
        stdout: run.stdout,
        stderr: run.stderr,
    }
}

// ---------------------------------------------------------------------------------------------
// A server of our own
// ---------------------------------------------------------------------------------------------

/// A minimal Binding server answering from threads with natlens's own responder: over UDP, and
/// over TCP when asked, where it closes each connection right after its answer (as some servers
/// do). Without TCP nothing listens on its TCP port, so a TCP connect is refused.
struct Responder {
    addr: SocketAddr,
}

impl Responder {
    fn start(tcp: bool) -> Responder {
        let (socket, listener) = loop {
            let socket = UdpSocket::bind((PRIMARY_IP, 0)).expect("bind the UDP responder");
            if !tcp {
                break (socket, None);
            }
            // The same port over TCP; taken now and then, so try another.
            if let Ok(listener) = TcpListener::bind(socket.local_addr().unwrap()) {
                break (socket, Some(listener));
            }
        };
        let addr = socket.local_addr().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((len, from)) = socket.recv_from(&mut buf) {
                if let Some(answer) = answer(&buf[..len], Transport::Udp, addr, from) {
                    let _ = socket.send_to(&answer, from);
                }
            }
        });
        if let Some(listener) = listener {
            thread::spawn(move || {
                for mut stream in listener.incoming().map_while(Result::ok) {
                    let from = stream.peer_addr().unwrap();
                    let mut request = [0u8; 28];
                    // natlens's request: a 20-byte header and an 8-byte FINGERPRINT.
                    if stream.read_exact(&mut request).is_ok() {
                        if let Some(answer) = answer(&request, Transport::Tcp, addr, from) {
                            let _ = stream.write_all(&answer);
                        }
                    }
                }
            });
        }
        Responder { addr }
    }
}

/// natlens's Binding answer to `request`, if it gives one.
fn answer(
    request: &[u8],
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
) -> Option<Vec<u8>> {
    let message = Message::parse(request).ok()?;
    let rx = Received {
        transport,
        local,
        remote,
    };
    let mut out = Vec::new();
    match binding::answer(&message, rx, None, &mut out) {
        Outcome::Reply { .. } => Some(out),
        Outcome::Drop(_) => None,
    }
}
