//! `natlens listen` and `natlens call` punching UDP through the kernel's own NATs, in the
//! network-namespace lab: a natlens server in the server namespace, `listen` on host a (behind
//! router A), `call` on host b (behind router B).
//!
//! For every pair of NAT modes the planner expects to connect, each attempt must connect on
//! both ends, the data sent with `--send` must arrive intact on the other end's stdout, and the
//! `port_through` each end reports must be the public port the far NAT really allocated for the
//! confirmed path (read from both routers' conntrack tables). Refused pairs must fail with a
//! reason at once. Sequential NATs must still connect with a noisy neighbour behind one router
//! or both, and the same must work across two federated servers.
//!
//! Needs root and network namespaces: without them the tests print SKIPPED, except under CI
//! (env `CI` set), where that is a failure. Labs run one at a time (the machine has two cores,
//! and timing is part of what is measured).
//!
//! The harness (lab fixture, child processes, conntrack checks, the per-pair runs and table) is
//! tests/common/lab_cli.rs, shared by the UDP and TCP lab punch tests.

mod common;

use common::lab_cli::{
    federated, lab_lock, matrix, port_through, with_noise, Attempt, Data, Fixture, Transport, PORT,
};
use std::net::{IpAddr, SocketAddr};

use natlens::lab::plan::router_wan;
use natlens::lab::{LabSpec, NatMode, Side};
use serde_json::Value;

/// Repeats of each pair in the matrix.
const REPEATS: usize = 3;

/// A TCP punch's `port_through` (in `report`, one end's report over TCP) against the far
/// router: its conntrack must hold an assured TCP connection with the near router's WAN address
/// whose far public port is that port.
fn check_tcp_port_through(
    attempt: &Attempt,
    report: &Value,
    far: Side,
    near: Side,
) -> Result<u16, String> {
    let through = port_through(report)?;
    let found = attempt.entries(far).iter().any(|e| {
        // The connection with the near router, not a fingerprint's with the server.
        e.proto == "tcp"
            && e.assured
            && e.orig_dst.ip() == IpAddr::from(router_wan(near))
            && e.reply_dst.port() == through
    });
    if found {
        Ok(through)
    } else {
        Err(format!(
            "router {far} has no assured TCP connection with router {near} on port {through}: {:#?}",
            attempt.entries(far)
        ))
    }
}

#[test]
fn udp_punch_matrix_over_every_pair_of_nat_modes() {
    let Some(_serial) = lab_lock() else { return };
    matrix(Transport::Udp, REPEATS);
}

#[test]
fn sequential_nats_connect_with_noise_on_one_side_or_both() {
    let Some(_serial) = lab_lock() else { return };
    let seq1 = NatMode::Sequential { delta: 1 };
    let seq2 = NatMode::Sequential { delta: 2 };
    let cases = [
        (seq1, seq2, 20.0, 0.0, "a"),
        (seq2, seq1, 0.0, 20.0, "b"),
        (seq1, seq2, 20.0, 20.0, "both"),
        (seq1, seq1, 20.0, 20.0, "both"),
        (NatMode::Cone, seq2, 20.0, 20.0, "both"),
    ];
    with_noise(Transport::Udp, &cases, REPEATS);
}

#[test]
fn listen_and_call_meet_across_two_federated_servers() {
    let Some(_serial) = lab_lock() else { return };
    let pairs = [
        (NatMode::Sequential { delta: 1 }, NatMode::Cone),
        (
            NatMode::Sequential { delta: 2 },
            NatMode::Sequential { delta: 1 },
        ),
    ];
    federated(Transport::Udp, &pairs);
}

#[test]
fn a_file_of_a_few_megabytes_crosses_intact_both_ways() {
    let Some(_serial) = lab_lock() else { return };
    let spec = LabSpec {
        nat_a: NatMode::Sequential { delta: 2 },
        nat_b: NatMode::FullCone,
        loss_percent: 5,
        ..LabSpec::default()
    };
    let fixture = Fixture::up(spec, false, Transport::Udp.args());
    let data = Data::new(1_000_000, 3_000_000);
    let attempt = fixture.attempt(0, (PORT, PORT), "udp", &data);
    attempt.assert_connected(&data, "3 MB with 5% loss", Transport::Udp);
    let sent = &attempt.call.report["data"];
    eprintln!(
        "3 MB + 1 MB with 5% loss: {} ms, {} retransmissions by the caller",
        sent["elapsed_ms"], sent["retransmissions"]
    );
}

/// `natlens listen`/`call --transport tcp` end to end: TCP fingerprints, the TCP plan, the
/// punch (plain simultaneous open for cone x cone; a crafted fan-out and takeover when one side
/// is sequential), the data over the stream, and each end's `port_through` against the far
/// router's TCP entry of the connection.
#[test]
fn tcp_listen_and_call_connect_and_carry_the_data() {
    let Some(_serial) = lab_lock() else { return };
    for (a, b) in [
        (NatMode::Cone, NatMode::Cone),
        (NatMode::Sequential { delta: 1 }, NatMode::Cone),
        (NatMode::FullCone, NatMode::Sequential { delta: 1 }),
        (
            NatMode::Sequential { delta: 1 },
            NatMode::Sequential { delta: 2 },
        ),
    ] {
        let fixture = Fixture::up(
            LabSpec {
                nat_a: a,
                nat_b: b,
                ..LabSpec::default()
            },
            false,
            Transport::Tcp.args(),
        );
        let data = Data::new(3_000, 64_000);
        let attempt = fixture.attempt(0, (PORT, PORT), "udp", &data);
        let name = format!("{a} x {b} over tcp");
        let context = || format!("{name}:\n{}", attempt.context());
        assert!(attempt.listen.connected(), "{}", context());
        assert!(attempt.call.connected(), "{}", context());
        assert!(attempt.listen.stdout == data.call, "{}", context());
        assert!(attempt.call.stdout == data.listen, "{}", context());
        for (end, far, near) in [
            (&attempt.listen, Side::B, Side::A),
            (&attempt.call, Side::A, Side::B),
        ] {
            let report = &end.report;
            assert_eq!(report["transport"], "tcp", "{}", context());
            assert_eq!(report["data"]["result"], "complete", "{}", context());
            let own = if report["role"] == "caller" { 0 } else { 1 };
            let through = report["directions"][own]["port_through"].as_u64().unwrap() as u16;
            let path_local: SocketAddr = report["path"]["local"].as_str().unwrap().parse().unwrap();
            let far_entries = attempt.entries(far);
            let flow = far_entries
                .iter()
                .find(|e| {
                    // The connection with the near router, not a fingerprint's with the server.
                    e.proto == "tcp"
                        && e.assured
                        && e.orig_dst.ip() == IpAddr::from(router_wan(near))
                        && e.reply_dst.port() == through
                })
                .map(|e| e.reply_dst.port());
            assert_eq!(flow, Some(through), "{}\n{far_entries:#?}", context());
            eprintln!(
                "{name}: {} port_through {through} (local {path_local}), first_through_ms {}, \
                 wall {:?}",
                report["role"], report["directions"][own]["first_through_ms"], attempt.wall
            );
        }
    }
}

/// `--transport both` end to end: a UDP punch, then a TCP punch, both reported in one JSON
/// object (`transport` both, `result`, `data_transport`, `attempts`), the data over UDP.
/// cone x seq:1: both attempts connect, and each attempt's `port_through` is the port the far
/// router really gave (UDP and TCP conntrack entries). cone x random: both transports run a
/// birthday (UDP sized for 99%, TCP for 99.99%), so that pair gets a second attempt after a
/// clean miss of either leg; then both connect, are checked against conntrack, and the data
/// goes over UDP.
#[test]
fn transport_both_punches_udp_then_tcp_and_reports_both() {
    let Some(_serial) = lab_lock() else { return };
    for (a, b) in [
        (NatMode::Cone, NatMode::Sequential { delta: 1 }),
        (NatMode::Cone, NatMode::Random),
    ] {
        let birthday = b == NatMode::Random;
        let fixture = Fixture::up(
            LabSpec {
                nat_a: a,
                nat_b: b,
                ..LabSpec::default()
            },
            false,
            &["--transport", "both"],
        );
        let name = format!("{a} x {b} over both");
        for n in 0..2u32 {
            if n > 0 {
                fixture.lab.reset_nat_state().expect("resetting NAT state");
            }
            let data = Data::new(3_000, 64_000);
            let attempt = fixture.attempt(n, (PORT, PORT), "udp", &data);
            let context = || format!("{name}:\n{}", attempt.context());
            let missed = |leg: usize| {
                [&attempt.listen, &attempt.call]
                    .iter()
                    .all(|end| end.report["attempts"][leg]["result"] == "failed")
            };
            if birthday && n == 0 && (missed(0) || missed(1)) {
                let leg = if missed(0) { 0 } else { 1 };
                assert_eq!(
                    attempt.listen.report["attempts"][leg]["strategy"],
                    "birthday",
                    "{}",
                    context()
                );
                eprintln!("{name}: a birthday missed once, trying again");
                continue;
            }
            for end in [&attempt.listen, &attempt.call] {
                let report = &end.report;
                assert_eq!(end.status.code(), Some(0), "{}", context());
                assert_eq!(report["schema_version"], 2, "{}", context());
                assert_eq!(report["transport"], "both", "{}", context());
                assert_eq!(report["result"], "connected", "{}", context());
                assert_eq!(report["data_transport"], "udp", "{}", context());
                let attempts = report["attempts"].as_array().expect("attempts");
                assert_eq!(attempts.len(), 2, "{}", context());
                assert_eq!(attempts[0]["transport"], "udp", "{}", context());
                assert_eq!(attempts[1]["transport"], "tcp", "{}", context());
                assert_eq!(attempts[0]["result"], "connected", "{}", context());
                assert_eq!(attempts[0]["data"]["result"], "complete", "{}", context());
                assert_eq!(attempts[1]["result"], "connected", "{}", context());
            }
            assert!(attempt.listen.stdout == data.call, "{}", context());
            assert!(attempt.call.stdout == data.listen, "{}", context());
            let legs = &attempt.listen.report["attempts"];
            eprintln!(
                "{name}: udp {} ({}), tcp {} ({}); wall {:?}",
                legs[0]["result"],
                legs[0]["strategy"],
                legs[1]["result"],
                legs[1]["strategy"],
                attempt.wall
            );
            for (end, side, far) in [
                (&attempt.listen, Side::A, Side::B),
                (&attempt.call, Side::B, Side::A),
            ] {
                let udp = attempt.check_port_through(
                    &end.report["attempts"][0],
                    Transport::Udp,
                    side,
                    far,
                );
                assert!(
                    udp.is_ok(),
                    "{name}: udp: {}\n{}",
                    udp.unwrap_err(),
                    context()
                );
                let tcp = check_tcp_port_through(&attempt, &end.report["attempts"][1], far, side);
                assert!(
                    tcp.is_ok(),
                    "{name}: tcp: {}\n{}",
                    tcp.unwrap_err(),
                    context()
                );
                eprintln!(
                    "{name}: {} port_through udp {} tcp {}, wall {:?}",
                    end.report["role"],
                    udp.unwrap(),
                    tcp.unwrap(),
                    attempt.wall
                );
            }
            break;
        }
    }
}
