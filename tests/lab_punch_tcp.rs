//! The TCP punch (`natlens::io::punch_tcp`) driven by the planner, in the network-namespace
//! lab: both ends plan from each other's facts (as a call would deliver them), punch from
//! host a and host b at once, exchange data over the stream and build their reports.
//!
//! For each pair: both ends connect, the data arrives intact both ways, each end's
//! `port_through` is the public port the far router's conntrack shows for the established
//! flow, and no RST guard table is left behind. Without CAP_NET_RAW the punch says so in one
//! line and still connects by plain simultaneous open.
//!
//! Needs root, network namespaces and ip/nft/conntrack: without them the tests print a visible
//! SKIPPED, except under CI (env `CI` set), where that is a failure. Nothing is sent outside the
//! lab's namespaces except to loopback.

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use natlens::core::punch::handshake::DirectionRecord;
use natlens::core::punch::plan::{make_plan, PlanInput, PunchOptions, PunchPlan, Strategy};
use natlens::core::punch::report::{PunchReport, PunchResult};
use natlens::core::punch::tcp::TcpSpec;
use natlens::core::punch::Role;
use natlens::core::Transport;
use natlens::io::punch_tcp::{self, TcpPart, TcpPunch, TcpPunched, DEFAULT_SYN_TTL};
use natlens::io::simopen::PunchError;
use natlens::lab::plan::router_wan;
use natlens::lab::spec::SEQ_FIRST_PORT;
use natlens::lab::{Host, Lab, LabSpec, NatMode, Side};
use natlens::wire::natlens::{Dependence, NatFacts, NatProfile, PortPattern, Transports};

mod common;
use common::lab_available;
use common::tcp_lab::{self, guard_tables, in_both, lan_ip, tcp_entries};

const HELPER_ENV: &str = "NATLENS_LAB_PUNCH_TCP_HELPER";
const PUNCH_DEADLINE: Duration = Duration::from_secs(8);
/// The local port each host punches from (a cone keeps it as its public port).
const LOCAL_PORT: [u16; 2] = [41_000, 42_000];

/// Labs one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn index(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

/// What a fresh lab's NAT of `mode` tells the peer about the host behind it (the facts a TCP
/// fingerprint would give): a cone keeps the local port; a sequential NAT's next flow takes
/// its first port.
fn facts(mode: NatMode, side: Side) -> NatFacts {
    use Dependence::{
        AddressAndPortDependent as Apd, AddressDependent as Ad, EndpointIndependent as Ei,
    };
    let profile = |mapping, filtering, allocation| {
        Some(NatProfile {
            mapping: Some(mapping),
            filtering: Some(filtering),
            allocation: Some(allocation),
            foreign_flows_per_second: 0,
        })
    };
    let (port, delta, profile) = match mode {
        NatMode::Cone => (
            LOCAL_PORT[index(side)],
            None,
            profile(Ei, Apd, PortPattern::Preserving),
        ),
        NatMode::FullCone => (
            LOCAL_PORT[index(side)],
            None,
            profile(Ei, Ei, PortPattern::Preserving),
        ),
        NatMode::Restricted => (
            LOCAL_PORT[index(side)],
            None,
            profile(Ei, Ad, PortPattern::Preserving),
        ),
        NatMode::Sequential { delta } => (
            SEQ_FIRST_PORT,
            Some(i32::from(delta)),
            profile(Apd, Apd, PortPattern::Sequential),
        ),
        // Only the address matters: the next flow's port is anyone's guess.
        NatMode::Random => (
            LOCAL_PORT[index(side)],
            None,
            profile(Apd, Apd, PortPattern::Random),
        ),
    };
    let predicted_ports = if mode == NatMode::Random {
        Vec::new()
    } else {
        vec![port]
    };
    NatFacts {
        observed: Some(SocketAddr::from((router_wan(side), port))),
        transports: Transports {
            udp: false,
            tcp: true,
        },
        delta,
        predicted_ports,
        profile,
        port_mapping: None,
        other_family: None,
    }
}

/// One end's result.
struct End {
    punched: Result<TcpPunched, PunchError>,
    report: PunchReport,
    received: Vec<u8>,
    data_failure: Option<String>,
    hints: Vec<String>,
}

fn payload(side: Side) -> Vec<u8> {
    let seed = index(side) as u32 + 1;
    (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

/// Plans and punches as `side`, then exchanges data and reports.
fn run_end(plan: &PunchPlan, side: Side, syn_ttl: u8) -> End {
    let peer = plan.peer.expect("the peer's address").ip();
    let started = Instant::now();
    let mut hints = Vec::new();
    let punched = punch_tcp::punch(
        &TcpPunch::for_plan(
            plan,
            peer,
            LOCAL_PORT[index(side)],
            syn_ttl,
            started + PUNCH_DEADLINE,
            None,
            &mut rand::thread_rng(),
        ),
        None,
        &mut |line| hints.push(format!("natlens: {line}")),
    );
    let mut received = Vec::new();
    let (peer_record, data_failure) = match &punched {
        Ok(done) => {
            let own = punch_tcp::own_record(done);
            let (peer_record, end) = punch_tcp::exchange(
                &done.punched.stream,
                &own,
                Some(Box::new(Cursor::new(payload(side)))),
                &mut received,
                Some(Duration::from_secs(10)),
            );
            (peer_record, end.failure)
        }
        Err(_) => (None, None),
    };
    let outcome = punch_tcp::outcome(&punched, started, peer_record);
    End {
        report: PunchReport::from_outcome(plan, &outcome),
        punched,
        received,
        data_failure,
        hints,
    }
}

/// Runs one pair: a (callee, behind router A) and b (caller, behind router B).
fn punch_pair(nat_a: NatMode, nat_b: NatMode) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !lab_available() {
        return;
    }
    let lab = Lab::up(LabSpec {
        nat_a,
        nat_b,
        ..LabSpec::default()
    })
    .expect("building the lab");
    let (facts_a, facts_b) = (facts(nat_a, Side::A), facts(nat_b, Side::B));
    let options = PunchOptions::default();
    let plan = |role, own, peer| {
        make_plan(&PlanInput {
            role,
            transport: Transport::Tcp,
            call_id: 7,
            own,
            peer,
            options: &options,
        })
    };
    let plan_a = plan(Role::Callee, &facts_a, &facts_b);
    let plan_b = plan(Role::Caller, &facts_b, &facts_a);
    assert_ne!(plan_a.strategy, Strategy::Refused, "{}", plan_a.reason);
    for plan in [&plan_a, &plan_b] {
        let ports = &plan.local().predicted_ports;
        eprintln!(
            "{:?} aims at {} far ports: {:?}…",
            plan.role,
            ports.len(),
            &ports[..ports.len().min(8)]
        );
    }
    let started = Instant::now();
    let (a, b) = in_both(
        &lab,
        || run_end(&plan_a, Side::A, DEFAULT_SYN_TTL),
        || run_end(&plan_b, Side::B, DEFAULT_SYN_TTL),
    );
    let name = format!("{nat_a} x {nat_b}");
    let (pa, pb) = match (&a.punched, &b.punched) {
        (Ok(pa), Ok(pb)) => (pa, pb),
        _ => panic!(
            "{name}: a: {:?}\nb: {:?}\nrouter-a: {:#?}\nrouter-b: {:#?}",
            a.punched,
            b.punched,
            tcp_entries(&lab, Side::A),
            tcp_entries(&lab, Side::B)
        ),
    };
    eprintln!(
        "{name} over TCP ({}): connected in {:?}; a via {:?} port_through {} offset {:?} \
         packets {} crafted {}; b via {:?} port_through {} offset {:?} packets {} crafted {}",
        plan_a.strategy.as_str(),
        started.elapsed(),
        pa.punched.via,
        pa.port_through,
        pa.offset,
        pa.packets_sent,
        pa.crafted,
        pb.punched.via,
        pb.port_through,
        pb.offset,
        pb.packets_sent,
        pb.crafted,
    );
    for end in [&a, &b] {
        assert_eq!(end.report.result, PunchResult::Connected, "{name}");
        assert_eq!(end.report.transport, Transport::Tcp);
        assert_eq!(end.data_failure, None, "{name}");
        assert!(end.hints.is_empty(), "{name}: {:?}", end.hints);
    }
    assert!(
        a.received == payload(Side::B),
        "{name}: b's data reached a intact"
    );
    assert!(
        b.received == payload(Side::A),
        "{name}: a's data reached b intact"
    );
    // port_through: the far router's public port of the established flow.
    for (side, done, far, far_done) in [(Side::A, pa, Side::B, pb), (Side::B, pb, Side::A, pa)] {
        let entries = tcp_entries(&lab, far);
        // The far end's own port on the connection (a birthday holder's is ephemeral).
        let far_local = far_done.punched.stream.local_addr().unwrap().port();
        let flow = entries
            .iter()
            .find(|e| {
                e.orig_src.ip() == IpAddr::V4(lan_ip(far))
                    && e.orig_src.port() == far_local
                    && e.orig_dst.ip() == IpAddr::V4(router_wan(side))
                    // The connection's entry (closed by now: TIME_WAIT or so), not a
                    // crafted SYN's, which stays in SYN_SENT.
                    && e.assured
            })
            .unwrap_or_else(|| panic!("{name}: no established flow in router-{far}: {entries:#?}"));
        assert_eq!(done.port_through, flow.public_port(), "{name}: {side}");
        let report = if side == Side::A {
            &a.report
        } else {
            &b.report
        };
        let own = report
            .directions
            .iter()
            .find(|d| d.from == report.role)
            .unwrap();
        assert_eq!(own.port_through, Some(flow.public_port()), "{name}");
        assert!(own.first_through_ms.is_some() && own.packets_sent.is_some());
        // And the peer's hello carried its direction into this end's report.
        let theirs = report
            .directions
            .iter()
            .find(|d| d.from != report.role)
            .unwrap();
        assert!(theirs.port_through.is_some(), "{name}: {report:?}");
    }
    for side in Side::BOTH {
        assert!(
            guard_tables(&lab, Host::Lan(side)).is_empty(),
            "{name}: guard removed on {side}"
        );
    }
}

#[test]
fn tcp_cone_by_cone() {
    punch_pair(NatMode::Cone, NatMode::Cone);
}

#[test]
fn tcp_full_cone_by_seq1() {
    punch_pair(NatMode::FullCone, NatMode::Sequential { delta: 1 });
}

#[test]
fn tcp_seq1_by_cone() {
    punch_pair(NatMode::Sequential { delta: 1 }, NatMode::Cone);
}

#[test]
fn tcp_seq1_by_seq2() {
    punch_pair(
        NatMode::Sequential { delta: 1 },
        NatMode::Sequential { delta: 2 },
    );
}

/// A birthday over TCP: host a's random NAT holds 256 kernel sockets on the cone's port, host
/// b's cone sprays crafted SYNs and adopts the SYN-ACK of the holder it hits.
#[test]
fn tcp_random_by_cone() {
    punch_pair(NatMode::Random, NatMode::Cone);
}

#[test]
fn tcp_cone_by_random() {
    punch_pair(NatMode::Cone, NatMode::Random);
}

/// Without CAP_NET_RAW: one line, then a plain simultaneous open (on loopback: an
/// unprivileged process cannot enter the lab), with a fan-out the plan asked for skipped.
#[test]
fn without_cap_net_raw_one_line_then_plain_simultaneous_open() {
    tcp_lab::assert_one_line_then_plain_simultaneous_open(HELPER_ENV, "punchtcp");
}

#[test]
fn helper_entry() {
    let Some(mode) = std::env::var_os(HELPER_ENV) else {
        return;
    };
    assert_eq!(mode, "no-cap");
    let port = || {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (pa, pb) = (port(), port());
    let deadline = Instant::now() + Duration::from_secs(5);
    let spec = |local_port, far: u16| TcpPunch {
        local_port,
        peer_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        deadline,
        plan: TcpSpec {
            // The plan's fan-out beyond the first port needs crafted SYNs.
            far_ports: vec![far, far.wrapping_add(1), far.wrapping_add(2)],
            syn_ttl: DEFAULT_SYN_TTL,
            rate: 1000,
            peer_fans_out: true,
            peer_fan_out: 2,
            peer_first_round: 2,
            peer_lag: Duration::ZERO,
            far_opened: Vec::new(),
            delivers: false,
            part: TcpPart::Aim,
            peer_listens: false,
        },
        seed: u64::from(local_port),
        interface: None,
    };
    let (sa, sb) = (spec(pa, pb), spec(pb, pa));
    let other = std::thread::spawn(move || {
        let mut hints = Vec::new();
        let done = punch_tcp::punch(&sb, None, &mut |l| hints.push(l.to_owned())).unwrap();
        (done, hints)
    });
    let mut hints = Vec::new();
    let a = punch_tcp::punch(&sa, None, &mut |l| hints.push(l.to_owned())).unwrap();
    let (b, b_hints) = other.join().unwrap();
    // One line per process, as natlens prints it.
    assert_eq!(b_hints, hints);
    for hint in &hints {
        eprintln!("natlens: {hint}");
    }
    let other = std::thread::spawn(move || {
        let mut out = Vec::new();
        let (_, end) = punch_tcp::exchange(
            &b.punched.stream,
            &DirectionRecord::default(),
            Some(Box::new(Cursor::new(b"from b".to_vec()))),
            &mut out,
            Some(Duration::from_secs(5)),
        );
        (out, end.failure)
    });
    let mut out = Vec::new();
    let (_, end) = punch_tcp::exchange(
        &a.punched.stream,
        &DirectionRecord::default(),
        Some(Box::new(Cursor::new(b"from a".to_vec()))),
        &mut out,
        Some(Duration::from_secs(5)),
    );
    let (b_out, b_failure) = other.join().unwrap();
    assert_eq!((end.failure, b_failure), (None, None));
    assert_eq!(
        (out.as_slice(), b_out.as_slice()),
        (&b"from b"[..], &b"from a"[..])
    );
    assert_eq!(a.port_through, pb);
    assert!(!a.crafted);
    println!("fallback connected via {:?}", a.punched.via);
}
