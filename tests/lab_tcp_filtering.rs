//! TCP filtering (RFC 5382) by the SYNs the server crafts, behind the kernel's own NATs in the
//! network-namespace lab: `natlens nat` must report what each lab mode's ruleset really does to
//! an unsolicited inbound SYN (src/lab/ruleset.rs), and UDP filtering (RFC 5780's
//! CHANGE-REQUEST test) the same:
//!
//! - cone (plain masquerade), seq:1 (numgen snat) and random (fully-random masquerade): only
//!   conntrack replies come in, and the router's input hook drops a SYN from any address or
//!   port the connection was not made to: address-and-port-dependent;
//! - full-cone: the fullcone_tcp map DNATs an inbound SYN to whatever LAN endpoint last sent
//!   from that public port, whoever sends it: endpoint-independent;
//! - restricted: the same DNAT, but the forward chain lets it through only from an address the
//!   LAN endpoint has sent to (the adf sets): the server's SYN from its other port gets in, the
//!   one from its other address does not: address-dependent.
//!
//! One lab per pair of modes, each its own test, so the labs run in parallel threads.
//!
//! And a server without CAP_NET_RAW (taken away with setpriv) says at start that the tests are
//! off, refuses them with that reason, and the run still succeeds with tcp.filtering null and
//! the reason in tcp.filtering_reason.
//!
//! Needs root and network namespaces: without them the tests print SKIPPED, except under CI
//! (env `CI` set), where that is a failure.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{is_root, lab_available, skip};
use natlens::lab::plan::{SERVER_ALTERNATE, SERVER_PRIMARY};
use natlens::lab::process::LabProcess;
use natlens::lab::{Host, Lab, LabSpec, NatMode, Side};
use serde_json::Value;

const PORT: u16 = 3478;
const ALT_PORT: u16 = 3479;
/// The second server's ports, the one without CAP_NET_RAW.
const PLAIN_PORT: u16 = 3490;
const PLAIN_ALT_PORT: u16 = 3491;

/// A lab with a full-mode natlens server that may craft SYNs, and one that may not.
struct Fixture {
    lab: Lab,
    /// Killed on drop.
    _servers: Vec<LabProcess>,
    no_raw: Option<LabProcess>,
}

/// A full-mode `natlens server` on SERVER_PRIMARY:`port` / SERVER_ALTERNATE:`alt`, started
/// through `prefix` (e.g. setpriv) when given.
fn server_command(port: u16, alt: u16, prefix: &[&str]) -> Command {
    let natlens = env!("CARGO_BIN_EXE_natlens");
    let mut command = match prefix.split_first() {
        Some((first, rest)) => {
            let mut command = Command::new(first);
            command.args(rest).arg(natlens);
            command
        }
        None => Command::new(natlens),
    };
    command.args([
        "server",
        "--listen",
        &format!("{SERVER_PRIMARY}:{port}"),
        "--alternate",
        &format!("{SERVER_ALTERNATE}:{alt}"),
    ]);
    command
}

impl Fixture {
    fn up(nat_a: NatMode, nat_b: NatMode) -> Option<Fixture> {
        Fixture::up_with(nat_a, nat_b, true)
    }

    /// The lab, its crafting server and, when `no_raw`, the server without CAP_NET_RAW.
    fn up_with(nat_a: NatMode, nat_b: NatMode, no_raw: bool) -> Option<Fixture> {
        if !lab_available() {
            return None;
        }
        let tools = Command::new("setpriv").arg("--version").output().is_ok();
        if !tools && !skip("needs setpriv (util-linux)") {
            return None;
        }
        let spec = LabSpec {
            nat_a,
            nat_b,
            ..LabSpec::default()
        };
        let lab = Lab::up(spec).expect("building the lab");
        let start = |command: Command| {
            let server =
                LabProcess::spawn(&lab, Host::Server, command, None).expect("starting a server");
            assert!(
                server.wait_for("listening", Duration::from_secs(10)),
                "a server did not start: {:?}",
                server.stderr_so_far()
            );
            server
        };
        let crafting = start(server_command(PORT, ALT_PORT, &[]));
        if !no_raw {
            return Some(Fixture {
                lab,
                _servers: vec![crafting],
                no_raw: None,
            });
        }
        // As root, but with CAP_NET_RAW out of the bounding and inheritable sets: exec grants
        // it no more.
        let no_raw = start(server_command(
            PLAIN_PORT,
            PLAIN_ALT_PORT,
            &[
                "setpriv",
                "--inh-caps=-net_raw",
                "--bounding-set=-net_raw",
                "--",
            ],
        ));
        Some(Fixture {
            lab,
            _servers: vec![crafting],
            no_raw: Some(no_raw),
        })
    }

    /// `natlens nat -t tcp --json` on the LAN host behind `side` against the server on `port`.
    fn nat_tcp(&self, side: Side, port: u16) -> Value {
        self.nat(side, port, &["-t", "tcp"])
    }

    /// `natlens nat --json` with `extra` on the LAN host behind `side` against the server on
    /// `port`.
    fn nat(&self, side: Side, port: u16, extra: &[&str]) -> Value {
        let server = format!("{SERVER_PRIMARY}:{port}");
        let mut argv = vec![
            env!("CARGO_BIN_EXE_natlens"),
            "nat",
            "--server",
            &server,
            "--json",
            "--server-timeout",
            "5s",
        ];
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
}

/// What the lab's ruleset for `mode` does to an unsolicited inbound SYN or datagram.
fn ground_truth(mode: NatMode) -> &'static str {
    match mode {
        NatMode::FullCone => "endpoint-independent",
        NatMode::Restricted => "address-dependent",
        NatMode::Cone | NatMode::Sequential { .. } | NatMode::Random => {
            "address-and-port-dependent"
        }
    }
}

/// The RFC 3489 name of an endpoint-independent mapping with `mode`'s filtering.
fn classic_name(mode: NatMode) -> Option<&'static str> {
    match mode {
        NatMode::FullCone => Some("full-cone"),
        NatMode::Restricted => Some("restricted-cone"),
        NatMode::Cone => Some("port-restricted-cone"),
        NatMode::Sequential { .. } | NatMode::Random => None,
    }
}

/// Both transports' filtering, as the report and its verdict line say it.
fn assert_filtering(fixture: &Fixture, side: Side, mode: NatMode) {
    let report = fixture.nat(side, PORT, &["--no-port-mapping", "--no-path"]);
    let verdict = report["verdict"].as_str().unwrap_or_default();
    let words = format!("{} filtering", ground_truth(mode));
    for transport in ["udp", "tcp"] {
        let t = &report[transport];
        let context = format!("{mode} behind {side:?} over {transport}: {t:#}");
        eprintln!(
            "{mode} behind {side:?}: {transport}.filtering {}",
            t["filtering"]
        );
        assert_eq!(t["behind_nat"], true, "{context}");
        assert_eq!(t["filtering"], ground_truth(mode), "{context}");
        assert_eq!(t["filtering_reason"], Value::Null, "{context}");
        if transport == "tcp" {
            // Over UDP, silence to both CHANGE-REQUESTs cannot tell a NAT that filters from a
            // server that ignores them: null there.
            assert_eq!(t["change_request"], "honoured", "{context}");
        }
        if let Some(name) = classic_name(mode) {
            assert_eq!(t["rfc3489_type"], name, "{context}");
        }
    }
    // One line for both transports when they agree ("UDP and TCP: ..."), else one each.
    assert!(verdict.contains(&words), "{verdict:?}: {mode}");
}

/// One lab, `nat_a` behind A and `nat_b` behind B, both checked.
fn check_pair(nat_a: NatMode, nat_b: NatMode) {
    let Some(fixture) = Fixture::up_with(nat_a, nat_b, false) else {
        return;
    };
    for (side, mode) in [(Side::A, nat_a), (Side::B, nat_b)] {
        assert_filtering(&fixture, side, mode);
    }
}

#[test]
fn cone_and_full_cone_filter_as_their_rulesets_do() {
    check_pair(NatMode::Cone, NatMode::FullCone);
}

#[test]
fn restricted_and_sequential_filter_as_their_rulesets_do() {
    check_pair(NatMode::Restricted, NatMode::Sequential { delta: 1 });
}

#[test]
fn random_filters_as_its_ruleset_does() {
    check_pair(NatMode::Random, NatMode::Restricted);
}

#[test]
fn a_server_without_cap_net_raw_leaves_tcp_filtering_null_with_the_reason() {
    if !is_root() && !skip("dropping CAP_NET_RAW with setpriv needs root") {
        return;
    }
    let Some(fixture) = Fixture::up(NatMode::FullCone, NatMode::Cone) else {
        return;
    };
    let no_raw = fixture
        .no_raw
        .as_ref()
        .expect("the server without CAP_NET_RAW");
    assert!(
        no_raw.wait_for("TCP filtering tests are off", Duration::from_secs(1)),
        "no start-up line: {:?}",
        no_raw.stderr_so_far()
    );
    let report = fixture.nat_tcp(Side::A, PLAIN_PORT);
    let tcp = &report["tcp"];
    let context = format!("{tcp:#}");
    assert_eq!(report["result"], "ok", "{context}");
    assert_eq!(tcp["behind_nat"], true, "{context}");
    assert_eq!(tcp["mapping"], "endpoint-independent", "{context}");
    assert_eq!(tcp["filtering"], Value::Null, "{context}");
    let reason = tcp["filtering_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("lacks CAP_NET_RAW"), "{context}");
    assert_eq!(tcp["change_request"], "refused", "{context}");
    // The same host, same moment, against the server that can craft: measured.
    let crafted = fixture.nat_tcp(Side::A, PORT);
    assert_eq!(crafted["tcp"]["filtering"], "endpoint-independent");
}
