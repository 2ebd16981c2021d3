//! `natlens nat` behind the kernel's own NATs, in the network-namespace lab: each router mode
//! must be reported as the lab configured it, for UDP and TCP; the predicted next port must be
//! the one the NAT really hands out next (read from the router's conntrack table), also when UDP
//! and TCP are probed at once from one port counter; low noise and 10% loss must not change the
//! verdicts.
//!
//! Needs root and network namespaces: without them the tests print SKIPPED, except under CI
//! (env `CI` set), where that is a failure.

mod common;

use common::lab_available;
use std::net::{SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use natlens::lab::plan::{SERVER_ALTERNATE, SERVER_PRIMARY};
use natlens::lab::process::LabProcess;
use natlens::lab::{Host, Lab, LabSpec, NatMode, Side};
use serde_json::Value;

const PORT: u16 = 3478;
const ALT_PORT: u16 = 3479;

/// A lab with natlens servers in its server namespace.
struct Fixture {
    lab: Lab,
    /// Killed on drop.
    _servers: Vec<LabProcess>,
}

impl Fixture {
    /// One full-mode server: primary and alternate.
    fn up(spec: LabSpec) -> Option<Fixture> {
        let alternate = format!("{SERVER_ALTERNATE}:{ALT_PORT}");
        Fixture::with_servers(spec, &[&["--alternate", &alternate]])
    }

    /// Two plain servers, one on each of the server host's IPs, neither in RFC 5780 mode.
    fn up_two_plain(spec: LabSpec) -> Option<Fixture> {
        let alternate = format!("{SERVER_ALTERNATE}:{PORT}");
        Fixture::with_servers(spec, &[&[], &["--listen", &alternate]])
    }

    /// One natlens server per entry, each with these arguments (the first one's `--listen`
    /// defaults to the primary address).
    fn with_servers(spec: LabSpec, servers: &[&[&str]]) -> Option<Fixture> {
        if !lab_available() {
            return None;
        }
        let lab = Lab::up(spec).expect("building the lab");
        let primary = format!("{SERVER_PRIMARY}:{PORT}");
        let mut children = Vec::new();
        for args in servers {
            let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
            command.args(["server", "--quiet"]);
            if !args.contains(&"--listen") {
                command.args(["--listen", &primary]);
            }
            command.args(*args);
            let server =
                LabProcess::spawn(&lab, Host::Server, command, None).expect("starting the server");
            // Every socket is bound before the first line: `nat` fails at once on a closed
            // port (ICMP port unreachable), so it must not start before.
            assert!(
                server.wait_for("listening", Duration::from_secs(10)),
                "the server did not start: {:?}",
                server.stderr_so_far()
            );
            children.push(server);
        }
        Some(Fixture {
            lab,
            _servers: children,
        })
    }

    /// Runs `natlens nat --json` on the LAN host behind `side` and parses its report.
    fn nat(&self, side: Side, extra: &[&str]) -> Value {
        let server = format!("{SERVER_PRIMARY}:{PORT}");
        self.nat_with(side, &[&server], extra)
    }

    /// [`Fixture::nat`] with these servers (`--server` each).
    fn nat_with(&self, side: Side, servers: &[&str], extra: &[&str]) -> Value {
        let mut argv = vec![env!("CARGO_BIN_EXE_natlens"), "nat"];
        for server in servers {
            argv.extend(["--server", server]);
        }
        argv.extend(["--json", "--server-timeout", "5s"]);
        argv.extend_from_slice(extra);
        let output = self
            .lab
            .exec(Host::Lan(side), &argv)
            .expect("running natlens nat");
        assert!(
            output.status.success(),
            "natlens nat failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("one JSON report")
    }

    /// The public port router `side` gave the flow from `private`, read from conntrack.
    fn public_port(&self, side: Side, private: SocketAddr, proto: &str) -> u16 {
        let entries = self.lab.conntrack_entries(side).unwrap();
        let entry = entries
            .iter()
            .find(|e| e.proto == proto && e.orig_src == private);
        entry
            .unwrap_or_else(|| panic!("no {proto} entry for {private}"))
            .public_port()
    }

    /// Opens one new UDP flow from the host behind `side` to the server; returns its local address.
    fn new_udp_flow(&self, side: Side) -> SocketAddr {
        let server = SocketAddr::V4(SocketAddrV4::new(SERVER_PRIMARY, PORT));
        self.lab
            .in_netns(Host::Lan(side), move || {
                let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
                socket.connect(server).unwrap();
                socket.send(&binding()).unwrap();
                socket.local_addr().unwrap()
            })
            .unwrap()
    }

    /// Opens one new TCP connection from the host behind `side` to the server.
    fn new_tcp_flow(&self, side: Side) -> (SocketAddr, TcpStream) {
        let server = SocketAddr::V4(SocketAddrV4::new(SERVER_PRIMARY, PORT));
        self.lab
            .in_netns(Host::Lan(side), move || {
                let stream = TcpStream::connect_timeout(&server, Duration::from_secs(3)).unwrap();
                (stream.local_addr().unwrap(), stream)
            })
            .unwrap()
    }
}

fn binding() -> Vec<u8> {
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    request.extend_from_slice(&[0x42; 12]);
    request
}

fn spec(nat_a: NatMode, nat_b: NatMode) -> LabSpec {
    LabSpec {
        nat_a,
        nat_b,
        ..LabSpec::default()
    }
}

/// Asserts what a transport's report says about a NAT mode.
fn assert_mode(report: &Value, transport: &str, mode: NatMode) {
    let t = &report[transport];
    let context = format!("{mode:?} over {transport}: {t:#}");
    assert_eq!(t["behind_nat"], true, "{context}");
    let pattern = t["allocation"]["pattern"].as_str();
    match mode {
        NatMode::Cone | NatMode::FullCone | NatMode::Restricted => {
            assert_eq!(t["mapping"], "endpoint-independent", "{context}");
            assert_eq!(pattern, Some("preserving"), "{context}");
        }
        NatMode::Sequential { delta } => {
            assert_eq!(t["mapping"], "address-and-port-dependent", "{context}");
            assert_eq!(pattern, Some("sequential"), "{context}");
            assert_eq!(
                t["allocation"]["delta"].as_i64(),
                Some(i64::from(delta)),
                "{context}"
            );
        }
        NatMode::Random => {
            assert_eq!(t["mapping"], "address-and-port-dependent", "{context}");
            assert_eq!(pattern, Some("random"), "{context}");
        }
    }
    if transport == "udp" {
        let filtering = match mode {
            NatMode::FullCone => "endpoint-independent",
            NatMode::Restricted => "address-dependent",
            _ => "address-and-port-dependent",
        };
        assert_eq!(t["filtering"], filtering, "{context}");
    }
}

#[test]
fn every_lab_mode_is_reported_as_configured_for_udp_and_tcp() {
    let pairs = [
        (NatMode::Cone, NatMode::FullCone),
        (
            NatMode::Sequential { delta: 1 },
            NatMode::Sequential { delta: 2 },
        ),
        (NatMode::Random, NatMode::Cone),
    ];
    for (nat_a, nat_b) in pairs {
        let Some(fixture) = Fixture::up(spec(nat_a, nat_b)) else {
            return;
        };
        for (side, mode) in [(Side::A, nat_a), (Side::B, nat_b)] {
            let report = fixture.nat(side, &[]);
            assert_mode(&report, "udp", mode);
            assert_mode(&report, "tcp", mode);
        }
    }
}

#[test]
fn the_predicted_port_is_the_one_the_nat_assigns_next() {
    let Some(fixture) = Fixture::up(spec(
        NatMode::Sequential { delta: 1 },
        NatMode::Sequential { delta: 2 },
    )) else {
        return;
    };
    for side in Side::BOTH {
        let report = fixture.nat(side, &["--transport", "udp"]);
        let predicted = report["udp"]["prediction"]["next_port"]
            .as_u64()
            .expect("a predicted port");
        let local = fixture.new_udp_flow(side);
        assert_eq!(
            u64::from(fixture.public_port(side, local, "udp")),
            predicted,
            "UDP behind {side:?}"
        );

        let report = fixture.nat(side, &["--transport", "tcp"]);
        let predicted = report["tcp"]["prediction"]["next_port"]
            .as_u64()
            .expect("a predicted port");
        let (local, _stream) = fixture.new_tcp_flow(side);
        assert_eq!(
            u64::from(fixture.public_port(side, local, "tcp")),
            predicted,
            "TCP behind {side:?}"
        );

        // Both at once: the lab's routers draw UDP and TCP ports from one counter, so the
        // transport sampled first must carry the prediction of the one sampled last.
        let report = fixture.nat(side, &[]);
        for transport in ["udp", "tcp"] {
            let allocation = &report[transport]["allocation"];
            assert_eq!(allocation["shared_counter"], true, "{allocation:#}");
        }
        let predicted = report["udp"]["prediction"]["next_port"]
            .as_u64()
            .expect("a predicted port");
        assert_eq!(report["tcp"]["prediction"]["next_port"], predicted);
        let local = fixture.new_udp_flow(side);
        assert_eq!(
            u64::from(fixture.public_port(side, local, "udp")),
            predicted,
            "UDP behind {side:?}, both transports probed"
        );
    }
    // A port-preserving NAT: the public port of a new flow is its local port.
    drop(fixture);
    let Some(fixture) = Fixture::up(spec(NatMode::Cone, NatMode::Cone)) else {
        return;
    };
    let report = fixture.nat(Side::A, &["--transport", "udp"]);
    assert_eq!(report["udp"]["prediction"]["rule"], "local-port");
    let local = fixture.new_udp_flow(Side::A);
    assert_eq!(fixture.public_port(Side::A, local, "udp"), local.port());
}

#[test]
fn low_noise_keeps_the_delta_and_shows_the_contention() {
    let noisy = LabSpec {
        noise_a: 20.0,
        ..spec(
            NatMode::Sequential { delta: 1 },
            NatMode::Sequential { delta: 2 },
        )
    };
    let Some(fixture) = Fixture::up(noisy) else {
        return;
    };
    let report = fixture.nat(Side::A, &["--transport", "udp"]);
    let allocation = &report["udp"]["allocation"];
    assert_eq!(allocation["pattern"], "sequential", "{allocation:#}");
    assert_eq!(allocation["delta"], 1, "{allocation:#}");
    let gaps = allocation["gaps"].as_array().map_or(0, Vec::len);
    let foreign = allocation["foreign_flows_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        gaps > 0 || foreign > 0.0,
        "contention not reported: {allocation:#}"
    );
    // The quiet side next to it reads clean.
    let quiet = fixture.nat(Side::B, &["--transport", "udp"]);
    assert_eq!(quiet["udp"]["allocation"]["delta"], 2);
}

#[test]
fn ten_percent_loss_keeps_the_verdicts() {
    let lossy = LabSpec {
        loss_percent: 10,
        ..spec(NatMode::Sequential { delta: 2 }, NatMode::FullCone)
    };
    let Some(fixture) = Fixture::up(lossy) else {
        return;
    };
    for (side, mode) in [
        (Side::A, NatMode::Sequential { delta: 2 }),
        (Side::B, NatMode::FullCone),
    ] {
        let report = fixture.nat(side, &[]);
        assert_mode(&report, "udp", mode);
        assert_mode(&report, "tcp", mode);
    }
}

/// Two plain servers, one per IP of the server host, no RFC 5780: the same socket asks both, so
/// a cone NAT keeps its mapping toward the second IP and a symmetric one does not; the samples
/// alternate between the servers, and the sequential NAT's one counter still shows its step.
#[test]
fn two_plain_servers_tell_a_cone_from_a_symmetric_nat() {
    let Some(fixture) =
        Fixture::up_two_plain(spec(NatMode::Cone, NatMode::Sequential { delta: 1 }))
    else {
        return;
    };
    let servers = [
        format!("{SERVER_PRIMARY}:{PORT}"),
        format!("{SERVER_ALTERNATE}:{PORT}"),
    ];
    let servers: Vec<&str> = servers.iter().map(String::as_str).collect();
    for (side, symmetric) in [(Side::A, false), (Side::B, true)] {
        let report = fixture.nat_with(side, &servers, &[]);
        assert_eq!(report["servers"], serde_json::json!(servers), "{report:#}");
        for transport in ["udp", "tcp"] {
            let t = &report[transport];
            let context = format!("{side:?} over {transport}: {t:#}");
            assert_eq!(t["full_mode"], false, "{context}");
            assert_eq!(t["mapping"], Value::Null, "{context}");
            assert_eq!(t["mapping_varies_by_dest_ip"], symmetric, "{context}");
            let allocation = &t["allocation"];
            if symmetric {
                assert_eq!(t["rfc3489_type"], "symmetric", "{context}");
                assert_eq!(allocation["pattern"], "sequential", "{context}");
                assert_eq!(allocation["delta"], 1, "{context}");
                assert_eq!(t["difficulty"], "medium", "{context}");
            } else {
                // A cone, but which one needs the filtering test of an RFC 5780 server.
                assert_eq!(t["rfc3489_type"], Value::Null, "{context}");
                assert_eq!(allocation["pattern"], "preserving", "{context}");
                assert_eq!(t["difficulty"], "easy", "{context}");
            }
        }
        let verdict = report["verdict"].as_str().unwrap_or_default();
        let mapping = if symmetric {
            "mapping varies by destination IP"
        } else {
            "mapping kept across server IPs"
        };
        assert!(verdict.contains(mapping), "{side:?}: {verdict}");
    }
}
