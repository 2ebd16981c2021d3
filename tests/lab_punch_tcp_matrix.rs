//! `natlens listen` and `natlens call --transport tcp` through the kernel's own NATs, in the
//! network-namespace lab, for every pair of NAT modes (the TCP pair matrix): a natlens server
//! in the server namespace, `listen` on host a (behind router A), `call` on host b (behind
//! router B), both with `--transport tcp`.
//!
//! For every pair the planner expects to connect (one side keeps its port, or both are
//! predictable), each attempt must connect on both ends, the bytes sent with `--send` must
//! arrive intact on the other end's stdout, and each end's `port_through` must be the public
//! port the far NAT really allocated for the connection (the answered TCP entries of both
//! routers' conntrack tables, not natlens's claim). Random against random or sequential must
//! fail at once with the planner's reason, and with `--force` fail with a reason within the
//! punch's timeout. Sequential NATs must still connect with a noisy neighbour (20 new flows/s)
//! behind one router or both, and the same must work across two federated servers. Every pair
//! is repeated and its success rate printed.
//!
//! Needs root and network namespaces: without them the tests print SKIPPED, except under CI
//! (env `CI` set), where that is a failure. Labs run one at a time.
//!
//! The harness (lab fixture, child processes, conntrack checks, the per-pair runs and table) is
//! tests/common/lab_cli.rs, shared by the UDP and TCP lab punch tests.

mod common;

use common::lab_cli::{federated, lab_lock, matrix, with_noise, Data, Fixture, Transport, PORT};

use natlens::lab::{LabSpec, NatMode};

/// Repeats of each pair in the matrix (benches/punch.sh --transport tcp repeats more).
const REPEATS: usize = 2;

#[test]
fn tcp_punch_matrix_over_every_pair_of_nat_modes() {
    let Some(_serial) = lab_lock() else { return };
    matrix(Transport::Tcp, REPEATS);
}

#[test]
fn tcp_sequential_nats_connect_with_noise_on_one_side_or_both() {
    let Some(_serial) = lab_lock() else { return };
    let seq1 = NatMode::Sequential { delta: 1 };
    let seq2 = NatMode::Sequential { delta: 2 };
    let cases = [
        (seq1, seq2, 20.0, 0.0, "a"),
        (seq2, seq1, 0.0, 20.0, "b"),
        (seq1, seq2, 20.0, 20.0, "both"),
        (seq1, seq1, 20.0, 20.0, "both"),
        (NatMode::Cone, seq2, 20.0, 20.0, "both"),
        (seq1, NatMode::FullCone, 20.0, 0.0, "a"),
    ];
    with_noise(Transport::Tcp, &cases, REPEATS);
}

#[test]
fn tcp_listen_and_call_meet_across_two_federated_servers() {
    let Some(_serial) = lab_lock() else { return };
    let pairs = [
        (NatMode::Sequential { delta: 1 }, NatMode::Cone),
        (
            NatMode::Sequential { delta: 2 },
            NatMode::Sequential { delta: 1 },
        ),
        (NatMode::Random, NatMode::Cone),
    ];
    federated(Transport::Tcp, &pairs);
}

/// Forced, a pair the planner refuses runs as a blind birthday and fails with a reason
/// within its `--timeout`.
#[test]
fn tcp_forced_random_pairs_fail_with_a_reason_in_bounded_time() {
    let Some(_serial) = lab_lock() else { return };
    for (a, b) in [
        (NatMode::Random, NatMode::Random),
        (NatMode::Sequential { delta: 1 }, NatMode::Random),
    ] {
        let fixture = Fixture::up(
            LabSpec {
                nat_a: a,
                nat_b: b,
                ..LabSpec::default()
            },
            false,
            &["--transport", "tcp", "--force", "--punch-timeout", "3s"],
        );
        let data = Data::new(100, 100);
        let attempt = fixture.attempt(0, (PORT, PORT), "udp", &data);
        let name = format!("{a} x {b} over tcp, forced");
        for end in [&attempt.listen, &attempt.call] {
            assert_eq!(
                end.report["strategy"],
                "birthday",
                "{name}\n{}",
                attempt.context()
            );
        }
        // A blind spray may hit (odds of a few in a million here): then it must be real.
        if attempt.listen.connected() && attempt.call.connected() {
            attempt.assert_connected(&data, &name, Transport::Tcp);
        } else {
            attempt.assert_clean_failure(&name, 3_000);
        }
        eprintln!("{name}: {:?}", attempt.listen.report["reason"]);
    }
}
