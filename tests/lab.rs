//! The lab against the real kernel: each NAT mode, loss, delay, noise and teardown, proved with
//! plain sockets opened inside the lab's namespaces.
//!
//! Needs root and network namespaces. Without them the tests print a visible SKIPPED and pass,
//! except under CI (env `CI` set), where a lab that cannot be built is a failure.

mod common;

use common::lab_available;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use natlens::lab::plan::{router_wan, PUBLIC_ADDR, SERVER_ALTERNATE, SERVER_PRIMARY};
use natlens::lab::spec::SEQ_FIRST_PORT;
use natlens::lab::{teardown, DelayMethod, Host, Lab, LabSpec, NatMode, Side};

/// Long enough for a datagram that will arrive to arrive (no delay configured).
const SILENCE: Duration = Duration::from_millis(300);

fn up(spec: LabSpec) -> Option<Lab> {
    lab_available().then(|| Lab::up(spec).expect("building the lab"))
}

fn v4(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

fn udp(lab: &Lab, host: Host, addr: SocketAddr) -> UdpSocket {
    let socket = lab
        .in_netns(host, || UdpSocket::bind(addr))
        .unwrap()
        .unwrap_or_else(|e| panic!("binding {addr} in {host}: {e}"));
    socket.set_read_timeout(Some(SILENCE)).unwrap();
    socket
}

fn any(port: u16) -> SocketAddr {
    v4(Ipv4Addr::UNSPECIFIED, port)
}

/// The sender of the next datagram, if one comes within the socket's timeout.
fn recv_from(socket: &UdpSocket) -> Option<SocketAddr> {
    let mut buf = [0u8; 2048];
    socket.recv_from(&mut buf).ok().map(|(_, from)| from)
}

/// Sends from `client` to `server` and returns the source the server saw.
fn seen_by(server: &UdpSocket, client: &UdpSocket) -> SocketAddr {
    client
        .send_to(b"probe", server.local_addr().unwrap())
        .unwrap();
    recv_from(server).expect("the server got the probe")
}

/// The public port router `side` gave the flow from `private`.
fn public_port(lab: &Lab, side: Side, private: SocketAddr, proto: &str) -> u16 {
    let entries = lab.conntrack_entries(side).unwrap();
    entries
        .iter()
        .find(|e| e.proto == proto && e.orig_src == private)
        .unwrap_or_else(|| panic!("no {proto} entry for {private} in {entries:#?}"))
        .public_port()
}

#[test]
fn cone_preserves_ports_and_filters_by_address_and_port() {
    let Some(lab) = up(LabSpec::default()) else {
        return;
    };
    let wan = router_wan(Side::A);
    let s1 = udp(&lab, Host::Server, v4(SERVER_PRIMARY, 4000));
    let s1_other_port = udp(&lab, Host::Server, v4(SERVER_PRIMARY, 4001));
    let s2 = udp(&lab, Host::Server, v4(SERVER_ALTERNATE, 4000));
    let s2_other_port = udp(&lab, Host::Server, v4(SERVER_ALTERNATE, 4001));

    // Unsolicited packets to the router itself are dropped silently and leave no state that
    // could take the port from the next outgoing flow.
    s1.send_to(b"knock", v4(wan, 50_000)).unwrap();
    let refused = lab
        .in_netns(Host::Server, || {
            TcpStream::connect_timeout(&v4(wan, 50_001), SILENCE)
        })
        .unwrap();
    let err = refused.expect_err("nothing listens on the router");
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::TimedOut,
        "dropped, not refused: {err}"
    );
    assert!(lab.conntrack_entries(Side::A).unwrap().is_empty());

    let client = udp(&lab, Host::Lan(Side::A), any(50_000));
    assert_eq!(seen_by(&s1, &client), v4(wan, 50_000), "port preserved");
    assert_eq!(
        seen_by(&s2, &client),
        v4(wan, 50_000),
        "same mapping to another address"
    );
    assert_eq!(
        public_port(
            &lab,
            Side::A,
            v4(Ipv4Addr::new(192, 0, 2, 10), 50_000),
            "udp"
        ),
        50_000
    );

    s1_other_port
        .send_to(b"other port", v4(wan, 50_000))
        .unwrap();
    s2_other_port
        .send_to(b"other port", v4(wan, 50_000))
        .unwrap();
    assert_eq!(
        recv_from(&client),
        None,
        "filtered: never sent to those ports"
    );
    s1.send_to(b"answer", v4(wan, 50_000)).unwrap();
    assert_eq!(recv_from(&client), Some(v4(SERVER_PRIMARY, 4000)));

    // TCP keeps the port too.
    let listener = lab
        .in_netns(Host::Server, || TcpListener::bind(v4(SERVER_PRIMARY, 4100)))
        .unwrap()
        .unwrap();
    let stream = lab
        .in_netns(Host::Lan(Side::A), || {
            let socket = reusable_tcp(50_001)?;
            socket.connect(&v4(SERVER_PRIMARY, 4100).into())?;
            Ok::<_, std::io::Error>(TcpStream::from(socket))
        })
        .unwrap()
        .unwrap();
    let (_accepted, peer) = listener.accept().unwrap();
    assert_eq!(peer, v4(wan, 50_001));
    // A stranger's SYN to that mapping is dropped, even with a listener on the port.
    let _listener = lab
        .in_netns(Host::Lan(Side::A), || {
            let listener = reusable_tcp(50_001)?;
            listener.listen(8)?;
            Ok::<_, std::io::Error>(listener)
        })
        .unwrap()
        .unwrap();
    let stranger = lab
        .in_netns(Host::Lan(Side::B), || {
            TcpStream::connect_timeout(&v4(wan, 50_001), SILENCE)
        })
        .unwrap();
    assert_eq!(stranger.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    drop(stream);
}

#[test]
fn full_cone_accepts_from_any_address_and_port() {
    let Some(lab) = up(LabSpec {
        nat_a: NatMode::FullCone,
        public_host: true,
        ..LabSpec::default()
    }) else {
        return;
    };
    let wan = router_wan(Side::A);
    let s1 = udp(&lab, Host::Server, v4(SERVER_PRIMARY, 4000));
    let s2 = udp(&lab, Host::Server, v4(SERVER_ALTERNATE, 4001));
    let public = udp(&lab, Host::Public, any(5000));
    let behind_b = udp(&lab, Host::Lan(Side::B), any(6000));
    let client = udp(&lab, Host::Lan(Side::A), any(50_000));

    // No mapping yet: nothing gets in.
    s2.send_to(b"early", v4(wan, 50_000)).unwrap();
    assert_eq!(recv_from(&client), None);

    assert_eq!(seen_by(&s1, &client), v4(wan, 50_000));
    s2.send_to(b"other address and port", v4(wan, 50_000))
        .unwrap();
    assert_eq!(recv_from(&client), Some(v4(SERVER_ALTERNATE, 4001)));
    public.send_to(b"a stranger", v4(wan, 50_000)).unwrap();
    assert_eq!(recv_from(&client), Some(v4(PUBLIC_ADDR, 5000)));
    behind_b.send_to(b"through NAT B", v4(wan, 50_000)).unwrap();
    assert_eq!(recv_from(&client), Some(v4(router_wan(Side::B), 6000)));
    // Replies to an admitted stranger leave from the same public port.
    client
        .send_to(b"hello stranger", v4(PUBLIC_ADDR, 5000))
        .unwrap();
    assert_eq!(recv_from(&public), Some(v4(wan, 50_000)));

    // TCP too: after one outgoing connection from port P, a stranger's SYN to P gets in.
    let server = lab
        .in_netns(Host::Server, || TcpListener::bind(v4(SERVER_PRIMARY, 4100)))
        .unwrap()
        .unwrap();
    let (_outgoing, listener) = lab
        .in_netns(Host::Lan(Side::A), || {
            let outgoing = reusable_tcp(50_100)?;
            outgoing.connect(&v4(SERVER_PRIMARY, 4100).into())?;
            let listener = reusable_tcp(50_100)?;
            listener.listen(8)?;
            Ok::<_, std::io::Error>((outgoing, listener))
        })
        .unwrap()
        .unwrap();
    server.accept().unwrap();
    let _stranger = lab
        .in_netns(Host::Public, || {
            TcpStream::connect_timeout(&v4(wan, 50_100), SILENCE)
        })
        .unwrap()
        .expect("a stranger's TCP connection gets through a full cone");
    let (_, from) = listener.accept().unwrap();
    assert_eq!(
        from.as_socket().unwrap().ip(),
        std::net::IpAddr::V4(PUBLIC_ADDR)
    );

    // A reset forgets the mapping.
    lab.reset_nat_state().unwrap();
    s2.send_to(b"after reset", v4(wan, 50_000)).unwrap();
    assert_eq!(recv_from(&client), None);
}

/// A TCP socket bound to `port` with SO_REUSEADDR, so a listener can share the port of an
/// outgoing connection (as hole punching does).
fn reusable_tcp(port: u16) -> std::io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&any(port).into())?;
    Ok(socket)
}

#[test]
fn sequential_allocates_p_then_p_plus_delta() {
    let Some(lab) = up(LabSpec {
        nat_a: NatMode::Sequential { delta: 1 },
        nat_b: NatMode::Sequential { delta: 2 },
        ..LabSpec::default()
    }) else {
        return;
    };
    let server = udp(&lab, Host::Server, v4(SERVER_PRIMARY, 4000));
    let listener = lab
        .in_netns(Host::Server, || TcpListener::bind(v4(SERVER_PRIMARY, 4100)))
        .unwrap()
        .unwrap();
    for (side, delta) in [(Side::A, 1), (Side::B, 2)] {
        let host = Host::Lan(side);
        let private = lab.addr(host).unwrap();
        let expected = |n: u16| SEQ_FIRST_PORT + n * delta;
        for n in 0..4 {
            let client = udp(&lab, host, any(0));
            let local = client.local_addr().unwrap().port();
            assert_eq!(
                seen_by(&server, &client).port(),
                expected(n),
                "{side} flow {n}"
            );
            assert_eq!(
                public_port(&lab, side, v4(private, local), "udp"),
                expected(n)
            );
        }
        // One counter for UDP and TCP.
        let stream = lab
            .in_netns(host, || TcpStream::connect(v4(SERVER_PRIMARY, 4100)))
            .unwrap()
            .unwrap();
        let (_accepted, peer) = listener.accept().unwrap();
        assert_eq!(peer.port(), expected(4), "TCP on {side}");
        let local = stream.local_addr().unwrap().port();
        assert_eq!(
            public_port(&lab, side, v4(private, local), "tcp"),
            expected(4)
        );
    }
    // Same flow again: same port (it is one flow, not a new one).
    let client = udp(&lab, Host::Lan(Side::A), any(0));
    let first = seen_by(&server, &client);
    assert_eq!(seen_by(&server, &client), first);
    // A reset restarts the counter.
    lab.reset_nat_state().unwrap();
    let client = udp(&lab, Host::Lan(Side::A), any(0));
    assert_eq!(seen_by(&server, &client).port(), SEQ_FIRST_PORT);
}

#[test]
fn random_ports_are_neither_preserved_nor_sequential() {
    let Some(lab) = up(LabSpec {
        nat_a: NatMode::Random,
        ..LabSpec::default()
    }) else {
        return;
    };
    let server = udp(&lab, Host::Server, v4(SERVER_PRIMARY, 4000));
    let mut ports = Vec::new();
    for _ in 0..8 {
        let client = udp(&lab, Host::Lan(Side::A), any(0));
        let local = client.local_addr().unwrap().port();
        let public = seen_by(&server, &client).port();
        assert_ne!(public, local, "a random NAT should not keep {local}");
        ports.push(public);
    }
    let distinct: HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(distinct.len(), ports.len(), "{ports:?}");
    let deltas: HashSet<i32> = ports
        .windows(2)
        .map(|w| i32::from(w[1]) - i32::from(w[0]))
        .collect();
    assert!(deltas.len() > 3, "ports look sequential: {ports:?}");
    // Symmetric: the same socket gets another port toward another destination.
    let client = udp(&lab, Host::Lan(Side::A), any(0));
    let other = udp(&lab, Host::Server, v4(SERVER_ALTERNATE, 4000));
    assert_ne!(seen_by(&server, &client), seen_by(&other, &client));
}

#[test]
fn loss_drops_about_the_asked_share() {
    const SENT: usize = 2000;
    let Some(lab) = up(LabSpec {
        loss_percent: 30,
        ..LabSpec::default()
    }) else {
        return;
    };
    let server = udp(&lab, Host::Server, v4(SERVER_PRIMARY, 4000));
    let counter = std::thread::spawn(move || {
        let mut got = 0;
        while recv_from(&server).is_some() {
            got += 1;
        }
        got
    });
    let client = udp(&lab, Host::Lan(Side::A), any(0));
    for i in 0..SENT {
        client.send_to(b"lossy", v4(SERVER_PRIMARY, 4000)).unwrap();
        // Paced, so no socket buffer drops anything the rule did not.
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let got = counter.join().unwrap();
    let loss = 100.0 * (1.0 - got as f64 / SENT as f64);
    eprintln!("loss 30%: {got} of {SENT} arrived, {loss:.1}% lost");
    // One WAN link crossed; binomial sd is about 1 point, so ±5 is far outside chance.
    assert!((25.0..=35.0).contains(&loss), "measured {loss:.1}% loss");
}

#[test]
fn delay_adds_the_asked_time_per_wan_link_and_keeps_tcp_intact() {
    const DELAY_MS: u64 = 40;
    let Some(lab) = up(LabSpec {
        delay: Duration::from_millis(DELAY_MS),
        public_host: true,
        ..LabSpec::default()
    }) else {
        return;
    };
    assert_ne!(lab.delay_method(), DelayMethod::None);
    let echo = udp(&lab, Host::Server, v4(SERVER_PRIMARY, 7));
    echo.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    let rtt = |host| {
        let client = udp(&lab, host, any(0));
        client
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut samples: Vec<Duration> = (0..5)
            .map(|_| {
                let start = Instant::now();
                client.send_to(b"ping", v4(SERVER_PRIMARY, 7)).unwrap();
                recv_from(&client).expect("echo");
                start.elapsed()
            })
            .collect();
        samples.sort();
        samples[2]
    };
    let behind_nat = rtt(Host::Lan(Side::A));
    let public = rtt(Host::Public);
    eprintln!(
        "delay {DELAY_MS} ms ({:?}): RTT behind NAT {behind_nat:?}, public {public:?}",
        lab.delay_method()
    );
    let expected = Duration::from_millis(2 * DELAY_MS);
    assert!(behind_nat >= expected, "{behind_nat:?} < {expected:?}");
    assert!(
        behind_nat < expected + Duration::from_millis(20),
        "{behind_nat:?}"
    );
    assert!(
        public < Duration::from_millis(10),
        "no WAN link crossed: {public:?}"
    );

    // A bulk TCP transfer crosses the relay with offloads on: checksums and GSO must survive.
    let listener = lab
        .in_netns(Host::Server, || TcpListener::bind(v4(SERVER_PRIMARY, 4100)))
        .unwrap()
        .unwrap();
    let payload: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    let sink = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).unwrap();
        got
    });
    let mut stream = lab
        .in_netns(Host::Lan(Side::A), || {
            TcpStream::connect(v4(SERVER_PRIMARY, 4100))
        })
        .unwrap()
        .unwrap();
    stream.write_all(&payload).unwrap();
    drop(stream);
    assert!(sink.join().unwrap() == payload, "TCP stream corrupted");
}

#[test]
fn noise_consumes_sequential_ports_between_probes() {
    let Some(lab) = up(LabSpec {
        nat_a: NatMode::Sequential { delta: 1 },
        noise_a: 50.0,
        ..LabSpec::default()
    }) else {
        return;
    };
    let server = udp(&lab, Host::Server, v4(SERVER_PRIMARY, 4000));
    let first = seen_by(&server, &udp(&lab, Host::Lan(Side::A), any(0))).port();
    std::thread::sleep(Duration::from_millis(300));
    let second = seen_by(&server, &udp(&lab, Host::Lan(Side::A), any(0))).port();
    let step = second.wrapping_sub(first);
    assert!(
        step > 5,
        "noise at 50/s for 300 ms took only {} ports",
        step - 1
    );
    let noise = Ipv4Addr::new(192, 0, 2, 11);
    let entries = lab.conntrack_entries(Side::A).unwrap();
    assert!(entries.iter().any(|e| e.orig_src.ip() == noise));
}

#[test]
fn teardown_leaves_nothing_even_after_a_panic() {
    if !lab_available() {
        return;
    }
    let prefix = teardown::fresh_prefix();
    let spec = LabSpec {
        prefix: Some(prefix.clone()),
        delay: Duration::from_millis(5),
        noise_b: 10.0,
        ..LabSpec::default()
    };
    let mut sleeper = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = Lab::up(spec).unwrap();
        assert_eq!(teardown::namespaces_of(lab.prefix()).len(), 8);
        // A process left running inside must not keep the lab alive either.
        let mut command = Command::new("sleep");
        command.arg("30");
        sleeper = Some(lab.spawn(Host::Server, command).unwrap());
        panic!("test panics with the lab up");
    }));
    assert!(outcome.is_err());
    assert!(teardown::namespaces_of(&prefix).is_empty());
    let status = sleeper.expect("spawned").wait().unwrap();
    assert!(
        !status.success(),
        "teardown ended the process inside: {status}"
    );
    assert!(teardown::is_gone(&prefix));
}

#[test]
fn two_labs_coexist_with_their_own_prefixes() {
    let Some(first) = up(LabSpec::default()) else {
        return;
    };
    let second = Lab::up(LabSpec {
        nat_a: NatMode::Sequential { delta: 1 },
        ..LabSpec::default()
    })
    .unwrap();
    assert_ne!(first.prefix(), second.prefix());
    let check = |lab: &Lab, expected_port: Option<u16>| {
        let server = udp(lab, Host::Server, v4(SERVER_PRIMARY, 4000));
        let client = udp(lab, Host::Lan(Side::A), any(50_000));
        let seen = seen_by(&server, &client).port();
        assert_eq!(seen, expected_port.unwrap_or(50_000), "{}", lab.prefix());
    };
    check(&first, None);
    check(&second, Some(SEQ_FIRST_PORT));
    let gone = first.prefix().to_owned();
    drop(first);
    assert!(teardown::is_gone(&gone));
    second.reset_nat_state().unwrap();
    check(&second, Some(SEQ_FIRST_PORT));
}

fn natlens(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_natlens"))
        .args(args)
        .output()
        .expect("running natlens")
}

/// True for a live process; an exited one waiting for init to reap it (a zombie) is not.
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim().to_owned())
        })
        .is_some_and(|rest| !rest.starts_with('Z'))
}

#[test]
fn cli_up_status_exec_down() {
    if !lab_available() {
        return;
    }
    let up = natlens(&["lab", "up", "--nat-a", "seq:2", "--delay", "10", "--json"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let state: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    assert_eq!(state["result"], "ok", "{state}");
    assert_eq!(state["schema_version"], 1, "{state}");
    let prefix = state["prefix"].as_str().unwrap().to_owned();
    // Tear down even if an assertion below fails.
    struct Down(String);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = teardown::by_prefix(&self.0);
        }
    }
    let _guard = Down(prefix.clone());
    assert_eq!(state["spec"]["nat_a"], "seq:2");
    assert_eq!(state["owner_pid"], serde_json::Value::Null);
    let workers: Vec<i32> = state["worker_pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pid| pid.as_i64().unwrap() as i32)
        .collect();

    let status = natlens(&["lab", "status", &prefix]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("router-a seq:2") && text.contains("8 of 8 namespaces"),
        "{text}"
    );

    let exec = natlens(&[
        "lab", "exec", "--lab", &prefix, "a", "--", "ip", "-brief", "addr",
    ]);
    assert!(String::from_utf8_lossy(&exec.stdout).contains("192.0.2.10/24"));
    let failing = natlens(&[
        "lab", "exec", "--lab", &prefix, "b", "--", "sh", "-c", "exit 3",
    ]);
    assert_eq!(
        failing.status.code(),
        Some(3),
        "exec passes the exit status on"
    );

    let down = natlens(&["lab", "down", &prefix]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(teardown::is_gone(&prefix));
    for pid in workers {
        assert!(!running(pid), "worker {pid} outlived its lab");
    }
    assert!(!natlens(&["lab", "down", &prefix]).status.success());
}

#[test]
fn demo_fingerprints_behind_each_nat_checks_the_predictions_and_punches() {
    if !lab_available() {
        return;
    }
    let demo = natlens(&["lab", "demo", "--nat-b", "seq:1"]);
    let text = String::from_utf8_lossy(&demo.stdout);
    assert!(
        demo.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    // Both reports, table and narrative: the cone behind a, seq:1 behind b.
    assert_eq!(
        text.matches("natlens nat --server 203.0.113.10:3478")
            .count(),
        2,
        "{text}"
    );
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "Over UDP, the server sees you as 203.0.113.1:",
        "Over UDP, the server sees you as 203.0.113.2:",
        "preserving",
        "sequential, delta +1",
        "It hands out ports in sequence, 1 at a time upward, from one counter for UDP and TCP",
    ] {
        assert!(flat.contains(needle), "{needle:?} missing:\n{text}");
    }
    // The next flows behind each NAT got the ports natlens predicted, per conntrack.
    let truths: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("udp from port") || l.starts_with("tcp from port"))
        .collect();
    assert_eq!(truths.len(), 4, "{text}");
    for truth in truths {
        assert!(truth.ends_with(": hit"), "{truth}\n{text}");
    }
    // Then listen on a and call on b punch over UDP, a message each way, and each end's
    // port_through is the port the far router's conntrack shows.
    assert!(flat.contains("== punch: natlens listen"), "{text}");
    assert!(
        text.contains("punch: connected, both messages delivered"),
        "{text}"
    );
    assert_eq!(text.matches("connected: a path to").count(), 2, "{text}");
    assert!(
        text.contains("received on stdout: \"hello from b (natlens call)\""),
        "{text}"
    );
    assert!(
        text.contains("received on stdout: \"hello from a (natlens listen)\""),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("shows that port on the answered flow: match"))
            .count(),
        2,
        "{text}"
    );
    // "lab PREFIX: router-a cone, …" comes first; the demo tears that lab down.
    let prefix = text.split_whitespace().nth(1).unwrap_or_default();
    let prefix = prefix.trim_end_matches(':');
    assert!(teardown::is_gone(prefix), "lab {prefix} left behind");
}

#[test]
fn stray_tcp_after_a_reset_neither_leaks_nor_takes_a_port() {
    let Some(lab) = up(LabSpec {
        nat_a: NatMode::Sequential { delta: 1 },
        ..LabSpec::default()
    }) else {
        return;
    };
    // Count what reaches the server from a private address: nothing ever should.
    let probe = "add table ip probe; \
        add chain ip probe leak { type filter hook prerouting priority -300; }; \
        add rule ip probe leak ip saddr { 192.0.2.0/24, 198.51.100.0/24 } counter";
    assert!(lab
        .exec(Host::Server, &["nft", probe])
        .unwrap()
        .status
        .success());
    let listener = lab
        .in_netns(Host::Server, || TcpListener::bind(v4(SERVER_PRIMARY, 4100)))
        .unwrap()
        .unwrap();
    let stream = lab
        .in_netns(Host::Lan(Side::A), || {
            TcpStream::connect(v4(SERVER_PRIMARY, 4100))
        })
        .unwrap()
        .unwrap();
    let (_accepted, peer) = listener.accept().unwrap();
    assert_eq!(peer.port(), SEQ_FIRST_PORT);

    lab.reset_nat_state().unwrap();
    // Mid-flow segments of a flow the router forgot: INVALID with tcp_loose=0, so no new
    // mapping, and dropped rather than forwarded un-NATed.
    (&stream).write_all(b"stray data").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let tcp: Vec<_> = lab
        .conntrack_entries(Side::A)
        .unwrap()
        .into_iter()
        .filter(|e| e.proto == "tcp")
        .collect();
    assert!(tcp.is_empty(), "a stray segment made a mapping: {tcp:?}");
    let counter = lab.exec(
        Host::Server,
        &["nft", "list", "chain", "ip", "probe", "leak"],
    );
    let counter = String::from_utf8(counter.unwrap().stdout).unwrap();
    assert!(counter.contains("counter packets 0 "), "{counter}");
    let server = udp(&lab, Host::Server, v4(SERVER_PRIMARY, 4000));
    let client = udp(&lab, Host::Lan(Side::A), any(0));
    assert_eq!(
        seen_by(&server, &client).port(),
        SEQ_FIRST_PORT,
        "no port consumed"
    );
    // Close with RST so nothing lingers (the RST is invalid too, and dropped).
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

/// The child half of `signals_tear_the_lab_down`: does nothing unless that test runs it.
#[test]
#[ignore = "helper: run by signals_tear_the_lab_down"]
fn hold_a_lab_until_killed() {
    let Some(prefix) = std::env::var_os("NATLENS_LAB_HOLD") else {
        return;
    };
    let lab = Lab::up(LabSpec {
        prefix: Some(prefix.into_string().unwrap()),
        delay: Duration::from_millis(5),
        noise_a: 10.0,
        ..LabSpec::default()
    })
    .unwrap();
    println!("up {}", lab.prefix());
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(30));
}

#[test]
fn signals_tear_the_lab_down() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;

    if !lab_available() {
        return;
    }
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let prefix = teardown::fresh_prefix();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "hold_a_lab_until_killed",
                "--ignored",
                "--nocapture",
            ])
            .env("NATLENS_LAB_HOLD", &prefix)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let up = stdout
            .lines()
            .map_while(Result::ok)
            .any(|line| line == format!("up {prefix}"));
        assert!(up, "the helper did not bring its lab up");
        assert_eq!(teardown::namespaces_of(&prefix).len(), 8);
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(128 + signal),
            "{status:?} {:?}",
            status.signal()
        );
        assert!(
            teardown::is_gone(&prefix),
            "signal {signal} left lab {prefix}"
        );
    }
}
