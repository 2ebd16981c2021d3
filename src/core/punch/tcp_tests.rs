//! The TCP punch machine on its own (what it sends and asks for, when), then the TCP pair
//! matrix through two NAT models on the virtual clock ([`super::sim_tcp`]): every pair of NAT
//! kinds, with noise and loss, each connection checked against what the models really
//! allocated.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::sim::Scenario;
use super::sim_tcp::{run, run_with, Router, TcpPairRun, TcpSideRun};
use super::tcp::*;
use super::tests::{rtt, scenario, Kind, KINDS};
use super::Strategy;
use crate::wire::tcp_syn::SegmentKind;

const PEER: [u8; 4] = [198, 51, 100, 2];

fn spec(far_ports: &[u16], part: TcpPart) -> TcpSpec {
    TcpSpec {
        far_ports: far_ports.to_vec(),
        syn_ttl: 2,
        rate: 1000,
        peer_fans_out: false,
        peer_fan_out: 0,
        peer_first_round: 0,
        peer_lag: Duration::ZERO,
        far_opened: Vec::new(),
        delivers: false,
        part,
        peer_listens: false,
    }
}

fn machine(spec: &TcpSpec, t: Instant) -> TcpPunchMachine {
    let mut rng = SmallRng::seed_from_u64(1);
    let deadline = t + Duration::from_secs(10);
    TcpPunchMachine::new(spec, IpAddr::from(PEER), t, deadline, true, &mut rng)
}

fn peer(port: u16) -> SocketAddr {
    SocketAddr::from((PEER, port))
}

fn commands(m: &mut TcpPunchMachine) -> Vec<Command> {
    std::iter::from_fn(|| m.poll_command()).collect()
}

fn transmits(m: &mut TcpPunchMachine) -> Vec<SynTransmit> {
    std::iter::from_fn(|| m.poll_transmit()).collect()
}

fn segment(from: u16, kind: SegmentKind, ack: u32) -> SeenSegment {
    SeenSegment {
        src: peer(from),
        dst: SocketAddr::from(([192, 0, 2, 10], 5000)),
        kind,
        seq: 77,
        ack,
    }
}

#[test]
fn a_direct_plan_listens_and_connects_a_fresh_socket_each_second() {
    let t = Instant::now();
    let mut m = machine(&spec(&[4000], TcpPart::Aim), t);
    let first = commands(&mut m);
    assert_eq!(first[0], Command::Listen);
    let Command::Connect { socket, bind, to } = first[1] else {
        panic!("{first:?}");
    };
    assert_eq!((bind, to), (Bind::Punched, peer(4000)));
    assert!(transmits(&mut m).is_empty());
    assert_eq!(m.poll_timeout(), Some(t + ATTEMPT));
    m.handle_timeout(t + ATTEMPT);
    assert_eq!(commands(&mut m), [Command::CheckHandshaking { socket }]);
    // Mid-handshake: kept another attempt's time.
    m.handle_socket_state(t + ATTEMPT, socket, true);
    assert!(commands(&mut m).is_empty());
    m.handle_timeout(t + 2 * ATTEMPT);
    assert_eq!(commands(&mut m), [Command::CheckHandshaking { socket }]);
    m.handle_socket_state(t + 2 * ATTEMPT, socket, false);
    m.handle_timeout(t + 2 * ATTEMPT);
    let next = commands(&mut m);
    assert_eq!(next[0], Command::Close { socket });
    assert!(matches!(next[1], Command::Connect { socket: s, .. } if s != socket));
}

#[test]
fn a_refused_connect_backs_off_then_the_accepted_peer_wins() {
    let t = Instant::now();
    let mut m = machine(&spec(&[4000], TcpPart::Aim), t);
    let Command::Connect { socket, .. } = commands(&mut m)[1] else {
        panic!()
    };
    m.handle_connect(t, socket, ConnectResult::Failed);
    assert_eq!(commands(&mut m), [Command::Close { socket }]);
    assert_eq!(m.poll_timeout(), Some(t + BACKOFF_FIRST));
    // A stranger through a full-cone NAT is not the peer.
    m.handle_accepted(t, SocketAddr::from(([203, 0, 113, 9], 4000)));
    assert!(m.outcome().is_none());
    m.handle_accepted(t + BACKOFF_FIRST / 2, peer(4001));
    let Some(&TcpOutcome::Connected {
        won,
        port_through,
        offset,
        packets_sent,
        crafted,
        ..
    }) = m.outcome()
    else {
        panic!("{:?}", m.outcome());
    };
    assert_eq!(won, Won::Accept(peer(4001)));
    assert_eq!(
        (port_through, offset, packets_sent, crafted),
        (4001, None, 1, false)
    );
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn a_plain_end_waits_for_the_peers_fan_out_then_keeps_one_socket() {
    let t = Instant::now();
    let mut s = spec(&[4000], TcpPart::Aim);
    s.peer_fans_out = true;
    s.peer_fan_out = 100;
    s.peer_first_round = 50;
    s.peer_lag = Duration::from_millis(40);
    let mut m = machine(&s, t);
    assert_eq!(commands(&mut m), [Command::Listen]);
    // 40 ms of lag, 50 SYNs at 1,000/s, the margin.
    let at = t + Duration::from_millis(115);
    assert_eq!(m.poll_timeout(), Some(at));
    m.handle_timeout(at);
    assert!(matches!(commands(&mut m)[..], [Command::Connect { .. }]));
    // One socket to the deadline: its retransmissions keep their ISN.
    assert_eq!(m.poll_timeout(), Some(t + Duration::from_secs(10)));
}

#[test]
fn a_direct_callee_listens_at_once_and_connects_when_the_caller_starts() {
    let t = Instant::now();
    let mut s = spec(&[4000], TcpPart::Aim);
    s.peer_lag = Duration::from_millis(40);
    let mut m = machine(&s, t);
    assert_eq!(commands(&mut m), [Command::Listen]);
    let at = t + Duration::from_millis(40);
    assert_eq!(m.poll_timeout(), Some(at));
    m.handle_timeout(at - Duration::from_millis(1));
    assert!(commands(&mut m).is_empty());
    m.handle_timeout(at);
    let [Command::Connect { socket, bind, to }] = commands(&mut m)[..] else {
        panic!("no connect at the caller's start");
    };
    assert_eq!((bind, to), (Bind::Punched, peer(4000)));
    // Then a fresh socket each second, as any direct plan.
    assert_eq!(m.poll_timeout(), Some(at + ATTEMPT));
    m.handle_timeout(at + ATTEMPT);
    assert_eq!(commands(&mut m), [Command::CheckHandshaking { socket }]);
}

#[test]
fn a_fan_out_sends_low_ttl_syns_at_the_rate_then_connects_to_the_last_port() {
    let t = Instant::now();
    let mut m = machine(&spec(&[4000, 4001, 4002], TcpPart::Aim), t);
    let first = transmits(&mut m);
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].to, first[0].ttl), (peer(4000), 2));
    assert!(commands(&mut m).is_empty(), "no connect before the fan-out");
    let ms = Duration::from_millis(1);
    assert_eq!(m.poll_timeout(), Some(t + ms));
    m.handle_timeout(t + ms);
    let second = transmits(&mut m);
    assert_eq!(second[0].to, peer(4001));
    let cmds = commands(&mut m);
    assert_eq!(
        cmds,
        [Command::Connect {
            socket: SocketId(0),
            bind: Bind::Punched,
            to: peer(4002)
        }]
    );
    // An RST or a SYN-ACK that does not ack our ISN changes nothing; the kernel's own
    // 4-tuple is the kernel's.
    m.handle_segment(t + ms, &segment(4001, SegmentKind::Rst, 0));
    let wrong = second[0].syn.isn.wrapping_add(2);
    m.handle_segment(t + ms, &segment(4001, SegmentKind::SynAck, wrong));
    m.handle_segment(t + ms, &segment(4002, SegmentKind::Syn, 0));
    assert!(m.outcome().is_none());
    m.handle_segment(t + 2 * ms, &segment(4000, SegmentKind::Syn, 0));
    let Some(&TcpOutcome::Connected {
        won: Won::Adopt { syn, .. },
        port_through,
        offset,
        packets_sent,
        crafted,
        ..
    }) = m.outcome()
    else {
        panic!("{:?}", m.outcome());
    };
    assert_eq!(syn, first[0].syn);
    assert_eq!(
        (port_through, offset, packets_sent, crafted),
        (4000, Some(0), 3, true)
    );
}

#[test]
fn a_delivering_end_trails_the_peers_flows_and_resends_the_same_syns() {
    let t = Instant::now();
    let mut s = spec(&[4000, 4002], TcpPart::Aim);
    s.delivers = true;
    s.far_opened = vec![Duration::ZERO, Duration::from_millis(10)];
    s.peer_lag = Duration::from_millis(5);
    let mut m = machine(&s, t);
    // Each not before the peer's lag, its flow's opening and the margin.
    assert_eq!(m.poll_timeout(), Some(t + Duration::from_millis(30)));
    m.handle_timeout(t + Duration::from_millis(30));
    let first = transmits(&mut m);
    assert_eq!((first.len(), first[0].ttl), (1, SPRAY_TTL));
    m.handle_timeout(t + Duration::from_millis(40));
    let second = transmits(&mut m);
    assert_eq!(second[0].to, peer(4002));
    assert!(commands(&mut m).is_empty(), "no kernel socket");
    let resend = t + Duration::from_millis(40) + RESEND_FIRST;
    assert_eq!(m.poll_timeout(), Some(resend));
    m.handle_timeout(resend);
    assert_eq!(transmits(&mut m), first, "the same segment again");
    m.handle_segment(
        resend,
        &segment(4002, SegmentKind::SynAck, second[0].syn.isn + 1),
    );
    assert!(matches!(
        m.outcome(),
        Some(TcpOutcome::Connected {
            packets_sent: 3,
            port_through: 4002,
            ..
        })
    ));
}

#[test]
fn a_holder_opens_sockets_at_the_rate_and_the_first_connected_wins() {
    let t = Instant::now();
    let mut m = machine(&spec(&[4000], TcpPart::Hold { sockets: 3 }), t);
    let ms = Duration::from_millis(1);
    // Nothing before the caller (this end: no lag) has set up: the birthday's start.
    let begin = t + PEER_FAN_OUT_MARGIN;
    m.handle_timeout(begin - ms);
    assert!(commands(&mut m).is_empty());
    let t = begin;
    m.handle_timeout(t + 2 * ms);
    let opened = commands(&mut m);
    assert_eq!(opened.len(), 3);
    assert!(opened.iter().all(|c| matches!(
        c,
        Command::Connect { bind: Bind::Any, to, .. } if *to == peer(4000)
    )));
    m.handle_connect(t + 3 * ms, SocketId(0), ConnectResult::Failed);
    m.handle_connect(t + 4 * ms, SocketId(2), ConnectResult::Connected);
    assert_eq!(
        commands(&mut m),
        [
            Command::Close {
                socket: SocketId(0)
            },
            Command::Close {
                socket: SocketId(1)
            }
        ]
    );
    assert!(matches!(
        m.outcome(),
        Some(TcpOutcome::Connected {
            won: Won::Connect(SocketId(2)),
            packets_sent: 3,
            attempts: 3,
            crafted: false,
            ..
        })
    ));
}

#[test]
fn a_refused_holder_is_replaced_at_the_rate_up_to_the_planned_count_again() {
    let t = Instant::now();
    let mut s = spec(&[4000], TcpPart::Hold { sockets: 2 });
    s.peer_lag = Duration::from_millis(40);
    s.rate = 100;
    let mut m = machine(&s, t);
    // A callee's holders wait for the caller's start and set-up.
    let begin = t + s.peer_lag + PEER_FAN_OUT_MARGIN;
    assert_eq!(m.poll_timeout(), Some(begin));
    let interval = Duration::from_millis(10);
    m.handle_timeout(begin + interval);
    assert_eq!(commands(&mut m).len(), 2);
    // Every SYN meets the caller's host before its RST guard: each socket is refused.
    let mut now = begin + interval;
    for socket in 0..2 {
        m.handle_connect(now, SocketId(socket), ConnectResult::Failed);
        assert_eq!(
            commands(&mut m),
            [Command::Close {
                socket: SocketId(socket)
            }]
        );
        // The replacement comes an interval after the last socket opened, not at once.
        let due = m.poll_timeout().expect("a replacement is due");
        assert_eq!(due, now + interval, "socket {socket}");
        m.handle_timeout(due);
        assert!(matches!(
            commands(&mut m).as_slice(),
            [Command::Connect { socket: new, .. }] if *new == SocketId(socket + 2)
        ));
        now = due;
    }
    for socket in 2..4 {
        m.handle_connect(now, SocketId(socket), ConnectResult::Failed);
    }
    m.handle_timeout(now + 5 * interval);
    assert!(commands(&mut m)
        .iter()
        .all(|c| matches!(c, Command::Close { .. })));
    // Two planned and two replacements: no more after that.
    assert_eq!(m.packets_sent(), 4);
}

#[test]
fn without_crafted_syns_a_fan_out_falls_back_to_plain_simultaneous_open() {
    let t = Instant::now();
    let mut rng = SmallRng::seed_from_u64(1);
    let s = spec(&[4000, 4001, 4002], TcpPart::Aim);
    let deadline = t + Duration::from_secs(1);
    let mut m = TcpPunchMachine::new(&s, IpAddr::from(PEER), t, deadline, false, &mut rng);
    assert!(transmits(&mut m).is_empty());
    let cmds = commands(&mut m);
    assert_eq!(cmds[0], Command::Listen);
    assert!(matches!(cmds[1], Command::Connect { to, .. } if to == peer(4000)));
    m.handle_timeout(deadline);
    assert_eq!(m.outcome(), Some(&TcpOutcome::TimedOut { attempts: 1 }));
}

#[test]
fn delivering_resends_back_off_from_half_a_second() {
    assert_eq!(resend_pause(1), RESEND_FIRST);
    assert_eq!(resend_pause(2), 2 * RESEND_FIRST);
    assert_eq!(resend_pause(3), 4 * RESEND_FIRST);
    assert_eq!(resend_pause(40), 16 * RESEND_FIRST);
}

/// Each end's connection against the two NAT models: its peer address is the public port
/// the far NAT really allocated for the peer's end of the same 4-tuple, and its reported
/// `port_through` (and offset into its far ports) says that port.
fn check_connection(run: &TcpPairRun, name: &str) {
    let (caller, callee) = (&run.caller, &run.callee);
    let (a_local, a_remote, _) = caller.connection.expect(name);
    let (b_local, b_remote, _) = callee.connection.expect(name);
    let far = |nat: &crate::core::nat_model::NatModel, local, remote| {
        let port = nat.mapped_port(run.end, local, remote);
        port.map(|p| SocketAddr::new(nat.config().public_ip, p))
    };
    assert_eq!(
        far(&run.callee_nat, b_local, b_remote),
        Some(a_remote),
        "{name}"
    );
    assert_eq!(
        far(&run.caller_nat, a_local, a_remote),
        Some(b_remote),
        "{name}"
    );
    for (side, remote) in [(caller, a_remote), (callee, b_remote)] {
        let Some(TcpOutcome::Connected {
            port_through,
            offset,
            ..
        }) = side.outcome
        else {
            panic!("{name}: {:?}", side.outcome);
        };
        assert_eq!(port_through, remote.port(), "{name}");
        if let Some(offset) = offset {
            assert_eq!(side.spec.far_ports[offset], port_through, "{name}");
        }
    }
}

fn connected(run: &TcpPairRun) -> bool {
    run.caller.connection.is_some() && run.callee.connection.is_some()
}

/// The slower end, from its own start signal to its handshake done, in path round trips.
fn round_trips(run: &TcpPairRun, rtt: Duration) -> f64 {
    let took = |side: &TcpSideRun| side.connection.expect("connected").2 - side.start;
    let slower = took(&run.caller).max(took(&run.callee));
    slower.as_secs_f64() / rtt.as_secs_f64()
}

/// What the strategy rules promise for a pair over TCP: as over UDP, except that the TCP
/// fingerprint cannot see filtering (no CHANGE-REQUEST over TCP), so a full cone counts as a
/// cone: full cone × sequential fans out, full cone × random is a birthday.
fn tcp_strategy(caller: Kind, callee: Kind) -> Strategy {
    use Kind::*;
    let fixed = |k| matches!(k, Cone | FullCone);
    match (caller, callee) {
        (a, b) if fixed(a) && fixed(b) => Strategy::Direct,
        (Random, k) | (k, Random) if fixed(k) => Strategy::Birthday,
        (Random, _) | (_, Random) => Strategy::Refused,
        _ => Strategy::Fanout,
    }
}

/// The lab's timing: the server halfway between the two ends, so the relay that starts the
/// caller (the callee's answer through the server) takes half a path round trip.
fn tcp_scenario(caller: Kind, callee: Kind, noise: (bool, bool), loss: f64, seed: u64) -> Scenario {
    let mut s = scenario(caller, callee, noise, loss, seed);
    s.relay = s.one_way;
    s
}

#[test]
fn every_pair_of_nat_kinds_over_tcp() {
    let noises = [(false, false), (true, false), (false, true), (true, true)];
    let mut worst = 0.0f64;
    let mut birthdays = (0, 0);
    for caller in KINDS {
        for callee in KINDS {
            for (n, noise) in noises.into_iter().enumerate() {
                for loss in [0.0, 0.1] {
                    let seed = 2000 + n as u64 * 10 + (loss * 100.0) as u64;
                    let s = tcp_scenario(caller, callee, noise, loss, seed);
                    let name = format!("TCP {caller:?}×{callee:?} noise {noise:?} loss {loss}");
                    let run = run(&s);
                    let strategy = tcp_strategy(caller, callee);
                    assert_eq!(run.caller.plan.strategy, strategy, "{name}");
                    assert_eq!(run.callee.plan.strategy, strategy, "{name}");
                    match strategy {
                        Strategy::Refused => {
                            assert!(!run.caller.plan.reason.is_empty(), "{name}");
                        }
                        Strategy::Birthday => {
                            birthdays.1 += 1;
                            if connected(&run) {
                                birthdays.0 += 1;
                                check_connection(&run, &name);
                            }
                        }
                        _ => {
                            assert!(
                                connected(&run),
                                "{name}: {:?} {:?} (rsts {}, expired {})",
                                run.caller.outcome,
                                run.callee.outcome,
                                run.rsts,
                                run.expired
                            );
                            check_connection(&run, &name);
                            if loss == 0.0 {
                                let trips = round_trips(&run, rtt(&s));
                                eprintln!("{name}: {trips:.2} RTT");
                                worst = worst.max(trips);
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "worst {worst:.2} RTT; birthdays {}/{}",
        birthdays.0, birthdays.1
    );
    assert!(worst <= 3.0, "{worst}");
}

#[test]
fn tcp_birthdays_connect_at_the_rate_the_plan_promises() {
    for (caller, callee) in [(Kind::Random, Kind::Cone), (Kind::Cone, Kind::Random)] {
        let runs = 60;
        let mut hits = 0;
        let mut promised = 1.0f64;
        for seed in 0..runs {
            let s = tcp_scenario(caller, callee, (false, false), 0.0, 500 + seed);
            let run = run(&s);
            assert_eq!(run.caller.plan.strategy, Strategy::Birthday);
            promised = promised.min(run.caller.plan.expected_success);
            if connected(&run) {
                hits += 1;
                check_connection(&run, "birthday");
            }
        }
        let rate = f64::from(hits) / runs as f64;
        eprintln!("TCP {caller:?}×{callee:?}: {hits}/{runs}, promised {promised:.3}");
        // Seeded: a margin of a few runs below the promise.
        assert!(
            rate >= promised - 0.05,
            "{caller:?}×{callee:?}: {rate} < {promised}"
        );
    }
}

#[test]
fn predictable_pairs_connect_when_the_far_routers_answer_with_rsts() {
    // A kernel SYN that arrives before the far NAT's flow exists draws an RST: the kernel's
    // socket fails and the machine backs off and tries again; crafted SYNs' RSTs are ignored.
    let pairs = [
        (Kind::Cone, Kind::Cone),
        (Kind::Cone, Kind::Seq1),
        (Kind::Seq2, Kind::Cone),
        (Kind::Seq1, Kind::Seq2),
        (Kind::FullCone, Kind::Seq2),
    ];
    for (caller, callee) in pairs {
        for seed in 0..4 {
            let s = tcp_scenario(caller, callee, (seed % 2 == 1, false), 0.0, 900 + seed);
            let name = format!("TCP {caller:?}×{callee:?} seed {seed}, RSTs");
            let run = run_with(&s, Router::Resets);
            assert!(
                connected(&run),
                "{name}: {:?} {:?} (rsts {})",
                run.caller.outcome,
                run.callee.outcome,
                run.rsts
            );
            check_connection(&run, &name);
        }
    }
}

#[test]
fn direct_pairs_connect_within_two_round_trips_when_the_relay_takes_longer_than_the_path() {
    // The relay that starts the caller takes a little more than half a path round trip (the
    // server and the caller handle the answer): a callee SYN sent at the callee's own start
    // would reach the caller's side just before its hole exists, and be dropped (a cone's
    // filter, a stateful firewall) or answered with an RST by the caller's host (a full
    // cone). Sent when the caller starts, it crosses the caller's SYN: both holes are open.
    let fixed = [Kind::Cone, Kind::FullCone];
    for caller in fixed {
        for callee in fixed {
            for router in [Router::Drops, Router::Resets] {
                for seed in 0..3 {
                    let mut s = tcp_scenario(caller, callee, (false, false), 0.0, 1300 + seed);
                    s.relay = s.one_way + Duration::from_millis(2);
                    let name = format!("TCP {caller:?}×{callee:?} {router:?} seed {seed}");
                    let run = run_with(&s, router);
                    assert_eq!(run.caller.plan.strategy, Strategy::Direct, "{name}");
                    assert!(connected(&run), "{name}: {:?}", run.callee.outcome);
                    check_connection(&run, &name);
                    // The callee's start, one relay before the caller's, then one round trip.
                    let trips = round_trips(&run, rtt(&s));
                    assert!(trips <= 1.6, "{name}: {trips:.2} RTT");
                }
            }
        }
    }
}

#[test]
fn a_listening_end_only_listens_and_an_end_aiming_at_a_listener_waits_for_it() {
    let t = Instant::now();
    let mut m = machine(&spec(&[], TcpPart::Listen), t);
    assert_eq!(commands(&mut m), [Command::Listen]);
    assert!(transmits(&mut m).is_empty());
    assert_eq!(m.poll_timeout(), Some(t + Duration::from_secs(10)));
    m.handle_accepted(t + Duration::from_millis(30), peer(5123));
    let Some(&TcpOutcome::Connected {
        won, port_through, ..
    }) = m.outcome()
    else {
        panic!("{:?}", m.outcome());
    };
    assert_eq!((won, port_through), (Won::Accept(peer(5123)), 5123));
    // Its peer aims at the mapping: the first connect once the listener should be up.
    let mut s = spec(&[30303], TcpPart::Aim);
    s.peer_listens = true;
    s.peer_lag = Duration::from_millis(40);
    let mut m = machine(&s, t);
    assert_eq!(commands(&mut m), [Command::Listen]);
    let at = t + Duration::from_millis(40) + PEER_FAN_OUT_MARGIN;
    assert_eq!(m.poll_timeout(), Some(at));
    m.handle_timeout(at);
    assert!(matches!(
        commands(&mut m)[..],
        [Command::Connect { to, .. }] if to == peer(30303)
    ));
    // One socket to the deadline: its retransmissions keep the ISN the listener holds.
    assert_eq!(m.poll_timeout(), Some(t + Duration::from_secs(10)));
}

/// Over TCP too, a side whose gateway mapped its punched port makes every pair `direct`
/// (random × random and sequential × random included, refused without a mapping): the mapped
/// side listens on its punched port and sends nothing, the other side connects to the mapped
/// port, through routers that drop or answer unsolicited SYNs, with loss.
#[test]
fn a_port_mapping_makes_every_tcp_pair_direct_and_connected() {
    use super::sim::MAPPED_PORT;
    let mut count = 0;
    for caller in KINDS {
        for callee in KINDS {
            for mapped in [(true, false), (false, true), (true, true)] {
                for (noise, loss, router) in [
                    ((false, false), 0.0, Router::Resets),
                    ((true, true), 0.1, Router::Drops),
                ] {
                    count += 1;
                    let mut s = tcp_scenario(caller, callee, noise, loss, 4000 + count);
                    s.mapped = mapped;
                    let name = format!(
                        "TCP {caller:?}×{callee:?} mapped {mapped:?} noise {noise:?} loss {loss}"
                    );
                    let run = run_with(&s, router);
                    for side in [&run.caller, &run.callee] {
                        assert_eq!(side.plan.strategy, Strategy::Direct, "{name}");
                    }
                    // The callee listens whenever it is mapped (the caller aims at it), the
                    // caller only when it alone is.
                    let listener_is_caller = mapped.0 && !mapped.1;
                    let (listener, aimer) = if listener_is_caller {
                        (&run.caller, &run.callee)
                    } else {
                        (&run.callee, &run.caller)
                    };
                    assert_eq!(listener.spec.part, TcpPart::Listen, "{name}");
                    assert!(listener.spec.far_ports.is_empty(), "{name}");
                    assert_eq!(aimer.spec.part, TcpPart::Aim, "{name}");
                    assert!(aimer.spec.peer_listens, "{name}");
                    assert!(aimer.plan.local().aims_at_port_mapping, "{name}");
                    assert!(
                        connected(&run),
                        "{name}: {:?} {:?} (rsts {})",
                        run.caller.outcome,
                        run.callee.outcome,
                        run.rsts
                    );
                    check_connection(&run, &name);
                    let port = |side: &TcpSideRun| match side.outcome {
                        Some(TcpOutcome::Connected {
                            won, port_through, ..
                        }) => (won, port_through),
                        other => panic!("{name}: {other:?}"),
                    };
                    assert_eq!(port(aimer).1, MAPPED_PORT, "{name}");
                    assert!(matches!(port(listener).0, Won::Accept(_)), "{name}");
                    // Without loss nothing is lost: one connect, answered at once.
                    if loss == 0.0 {
                        let trips = round_trips(&run, rtt(&s));
                        assert!(trips <= 3.0, "{name}: {trips:.2} RTT");
                    }
                }
            }
        }
    }
}
