//! The dual-stack lab against the real kernel: each IPv6 router mode (`open`, the three
//! firewall filterings, `nptv6`, the three `nat66` allocations, `off`), proved with plain UDP
//! and TCP sockets opened inside the lab's namespaces and read back from the routers' conntrack.
//!
//! Needs root and network namespaces. Without them the tests print a visible SKIPPED and pass,
//! except under CI (env `CI` set), where a lab that cannot be built is a failure.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::lab_available;
use natlens::lab::plan6::{
    lan_net6, nptv6_translate, router_wan6, server_alternate6, server_primary6,
};
use natlens::lab::spec::SEQ_FIRST_PORT;
use natlens::lab::{teardown, DelayMethod, Filtering, Host, Lab, LabSpec, NatMode, Side, V6Mode};

/// Long enough for a datagram that will arrive to arrive (no delay configured).
const SILENCE: Duration = Duration::from_millis(300);

fn up(spec: LabSpec) -> Option<Lab> {
    lab_available().then(|| Lab::up(spec).expect("building the lab"))
}

fn v6(ip: Ipv6Addr, port: u16) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0))
}

fn udp(lab: &Lab, host: Host, addr: SocketAddr) -> UdpSocket {
    let socket = lab
        .in_netns(host, || UdpSocket::bind(addr))
        .unwrap()
        .unwrap_or_else(|e| panic!("binding {addr} in {host}: {e}"));
    socket.set_read_timeout(Some(SILENCE)).unwrap();
    socket
}

/// A UDP socket of a LAN host on its own IPv6 address.
fn lan_udp(lab: &Lab, host: Host, port: u16) -> UdpSocket {
    udp(lab, host, v6(lab.addr6(host).unwrap(), port))
}

/// The sender of the next datagram, if one comes within the socket's timeout.
fn recv_from(socket: &UdpSocket) -> Option<SocketAddr> {
    let mut buf = [0u8; 2048];
    socket.recv_from(&mut buf).ok().map(|(_, from)| from)
}

/// Sends from `from` to `to` and returns the source `receiver` saw, if the datagram came.
fn sent(from: &UdpSocket, to: SocketAddr, receiver: &UdpSocket) -> Option<SocketAddr> {
    from.send_to(b"probe", to).unwrap();
    recv_from(receiver)
}

/// A TCP connection attempt from `host` to `to`: the peer address the listener saw, or the
/// error (`TimedOut` when a firewall dropped the SYN).
fn tcp_connect(
    lab: &Lab,
    host: Host,
    to: SocketAddr,
    listener: &TcpListener,
) -> Result<SocketAddr, ErrorKind> {
    let stream = lab
        .in_netns(host, || TcpStream::connect_timeout(&to, SILENCE))
        .unwrap();
    match stream {
        Ok(_stream) => Ok(listener.accept().unwrap().1),
        Err(err) => Err(err.kind()),
    }
}

fn tcp_listen(lab: &Lab, host: Host, addr: SocketAddr) -> TcpListener {
    lab.in_netns(host, || TcpListener::bind(addr))
        .unwrap()
        .unwrap_or_else(|e| panic!("listening on {addr} in {host}: {e}"))
}

/// Router `side`'s IPv6 conntrack entries of `proto` whose original source is `from`.
fn ct6(lab: &Lab, side: Side, proto: &str, from: SocketAddr) -> Vec<natlens::lab::CtEntry> {
    let entries = lab.conntrack_entries(side).unwrap();
    entries
        .into_iter()
        .filter(|e| e.proto == proto && e.orig_src == from)
        .collect()
}

/// Tears the lab down and checks nothing of it is left.
fn down(lab: Lab) {
    let prefix = lab.prefix().to_owned();
    lab.down().unwrap();
    assert!(teardown::is_gone(&prefix), "lab {prefix} left behind");
}

/// The frames a lab interface has sent and received, read with `ip -s -j link`.
fn frames(lab: &Lab, host: Host, iface: &str) -> (u64, u64) {
    let out = lab
        .exec(host, &["ip", "-s", "-j", "link", "show", "dev", iface])
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let stats = &json[0]["stats64"];
    let count = |dir: &str| stats[dir]["packets"].as_u64().unwrap();
    (count("tx"), count("rx"))
}

/// An `open` router passes unsolicited inbound traffic to its LAN unchanged; an `off` side has
/// no IPv6 at all; and a quiet lab sends nothing of its own: no router solicitation, MLD
/// report, DAD or neighbour solicitation on any link.
#[test]
fn open_routes_everything_and_off_has_no_ipv6() {
    let Some(lab) = up(LabSpec {
        v6_a: V6Mode::Open,
        v6_b: V6Mode::Off,
        ..LabSpec::default()
    }) else {
        return;
    };
    // Quiet: no frame on any segment port or LAN link since the lab came up.
    std::thread::sleep(Duration::from_millis(500));
    for port in ["router-a", "router-b", "server"] {
        assert_eq!(
            frames(&lab, Host::Internet, port),
            (0, 0),
            "segment port {port}"
        );
    }
    for port in ["lan0", "lan1"] {
        assert_eq!(
            frames(&lab, Host::Router(Side::A), port),
            (0, 0),
            "router-a {port}"
        );
    }
    for host in [Host::Lan(Side::A), Host::Router(Side::A), Host::Server] {
        let out = lab
            .exec(host, &["ip", "-6", "addr", "show", "scope", "link"])
            .unwrap();
        assert!(out.stdout.is_empty(), "{host} has a link-local address");
    }

    let prefix = lab.prefix().to_owned();
    let a = lab.addr6(Host::Lan(Side::A)).unwrap();
    assert_eq!(
        u128::from(a) >> 64,
        u128::from(lan_net6(&prefix, Side::A)) >> 64
    );
    let server = udp(&lab, Host::Server, v6(server_primary6(&prefix), 4000));
    let client = lan_udp(&lab, Host::Lan(Side::A), 50_000);
    // Unsolicited, from outside, to a port that never sent anything: it arrives.
    assert_eq!(
        sent(&server, v6(a, 50_000), &client),
        Some(v6(server_primary6(&prefix), 4000))
    );
    assert_eq!(
        sent(&client, server.local_addr().unwrap(), &server),
        Some(v6(a, 50_000))
    );
    let listener = tcp_listen(&lab, Host::Lan(Side::A), v6(a, 50_001));
    let seen = tcp_connect(&lab, Host::Server, v6(a, 50_001), &listener);
    assert_eq!(
        seen.map(|peer| peer.ip()),
        Ok(server_primary6(&prefix).into())
    );
    // Conntrack follows IPv6 flows, untranslated.
    let entries = ct6(&lab, Side::A, "udp", v6(server_primary6(&prefix), 4000));
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].reply_src, v6(a, 50_000));
    let all = lab.conntrack_entries(Side::A).unwrap();
    assert!(all.iter().all(|e| e.proto != "icmpv6"), "{all:?}");

    // Side B is IPv4-only: no global IPv6 address and no route to the server.
    assert_eq!(lab.addr6(Host::Lan(Side::B)), None);
    for host in [
        Host::Lan(Side::B),
        Host::Noise(Side::B),
        Host::Router(Side::B),
    ] {
        let out = lab
            .exec(host, &["ip", "-6", "addr", "show", "scope", "global"])
            .unwrap();
        assert!(
            out.stdout.is_empty(),
            "{host}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let b = lab
        .in_netns(Host::Lan(Side::B), || {
            let socket = UdpSocket::bind("[::]:0")?;
            socket.send_to(b"x", server.local_addr().unwrap())
        })
        .unwrap();
    assert_eq!(b.map_err(|e| e.kind()), Err(ErrorKind::NetworkUnreachable));
    down(lab);
}

/// What one firewall lets in to a LAN endpoint that has sent to the server's first address and
/// port: `(from the same address, another port; from the other address)`.
fn filtering_seen(lab: &Lab, side: Side, port: u16) -> (bool, bool) {
    let prefix = lab.prefix().to_owned();
    let host = Host::Lan(side);
    let me = v6(lab.addr6(host).unwrap(), port);
    let s1 = udp(
        lab,
        Host::Server,
        v6(server_primary6(&prefix), 4000 + port % 100),
    );
    let s1_other_port = udp(
        lab,
        Host::Server,
        v6(server_primary6(&prefix), 4100 + port % 100),
    );
    let s2 = udp(
        lab,
        Host::Server,
        v6(server_alternate6(&prefix), 4000 + port % 100),
    );
    let client = lan_udp(lab, host, port);

    assert_eq!(
        sent(&s1, me, &client),
        None,
        "{side}: unsolicited inbound is dropped"
    );
    assert_eq!(
        sent(&client, s1.local_addr().unwrap(), &s1),
        Some(me),
        "{side}: no translation"
    );
    assert_eq!(
        sent(&s1, me, &client),
        Some(s1.local_addr().unwrap()),
        "{side}: reply"
    );
    let other_port = sent(&s1_other_port, me, &client).is_some();
    let other_addr = sent(&s2, me, &client).is_some();
    (other_port, other_addr)
}

/// RFC 6092 firewalls: unsolicited inbound dropped (UDP and TCP), outbound opens a pinhole,
/// and the pinhole admits what the filtering says: endpoint-independent (anyone),
/// address-dependent (any port of the address sent to), address-and-port-dependent (only the
/// address and port sent to).
#[test]
fn firewalls_filter_as_selected() {
    let Some(eif_adf) = up(LabSpec {
        v6_a: V6Mode::Firewall(Filtering::EndpointIndependent),
        v6_b: V6Mode::Firewall(Filtering::AddressDependent),
        ..LabSpec::default()
    }) else {
        return;
    };
    let apdf = up(LabSpec {
        v6_a: V6Mode::Firewall(Filtering::AddressAndPortDependent),
        ..LabSpec::default()
    })
    .unwrap();
    assert_eq!(
        filtering_seen(&eif_adf, Side::A, 50_010),
        (true, true),
        "eif"
    );
    assert_eq!(
        filtering_seen(&eif_adf, Side::B, 50_010),
        (true, false),
        "adf"
    );
    assert_eq!(
        filtering_seen(&apdf, Side::A, 50_010),
        (false, false),
        "apdf"
    );

    // TCP: an unsolicited SYN is dropped (the connect times out, nothing refuses it).
    let prefix = eif_adf.prefix().to_owned();
    let a = eif_adf.addr6(Host::Lan(Side::A)).unwrap();
    let listener = tcp_listen(&eif_adf, Host::Lan(Side::A), v6(a, 50_020));
    assert_eq!(
        tcp_connect(&eif_adf, Host::Server, v6(a, 50_020), &listener),
        Err(ErrorKind::TimedOut)
    );
    // Outbound TCP works and shows in conntrack as an IPv6 flow.
    let server = tcp_listen(&eif_adf, Host::Server, v6(server_primary6(&prefix), 4200));
    let seen = tcp_connect(
        &eif_adf,
        Host::Lan(Side::A),
        server.local_addr().unwrap(),
        &server,
    );
    let seen = seen.expect("outbound TCP passes the firewall");
    assert_eq!(seen.ip(), a);
    assert_eq!(ct6(&eif_adf, Side::A, "tcp", seen).len(), 1);
    down(eif_adf);
    down(apdf);
}

/// NPTv6: the server sees the external prefix with the interface ID and port kept, and a packet
/// to the external address reaches the LAN host unsolicited (no firewall on top).
#[test]
fn nptv6_swaps_the_prefix_both_ways() {
    let Some(lab) = up(LabSpec {
        v6_b: V6Mode::Nptv6,
        ..LabSpec::default()
    }) else {
        return;
    };
    let prefix = lab.prefix().to_owned();
    let b = lab.addr6(Host::Lan(Side::B)).unwrap();
    let outside = nptv6_translate(&prefix, Side::B, b);
    assert_ne!(outside, b);
    assert_eq!(
        u128::from(outside) as u64,
        u128::from(b) as u64,
        "interface ID kept"
    );
    let server = udp(&lab, Host::Server, v6(server_primary6(&prefix), 4000));
    let client = lan_udp(&lab, Host::Lan(Side::B), 50_030);
    assert_eq!(
        sent(&client, server.local_addr().unwrap(), &server),
        Some(v6(outside, 50_030))
    );
    let entries = ct6(&lab, Side::B, "udp", v6(b, 50_030));
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].reply_dst, v6(outside, 50_030));
    // Inbound, unsolicited, to another host's translated address and a fresh port.
    let b2 = lab.addr6(Host::Noise(Side::B)).unwrap();
    let other = lan_udp(&lab, Host::Noise(Side::B), 50_031);
    let to = v6(nptv6_translate(&prefix, Side::B, b2), 50_031);
    assert_eq!(
        sent(&server, to, &other),
        Some(server.local_addr().unwrap())
    );
    // TCP inbound too.
    let listener = tcp_listen(&lab, Host::Lan(Side::B), v6(b, 50_032));
    let seen = tcp_connect(&lab, Host::Server, v6(outside, 50_032), &listener);
    assert_eq!(seen.map(|p| p.ip()), Ok(server_primary6(&prefix).into()));
    down(lab);
}

/// The source the server sees for `count` new flows from `host`, from fresh local ports.
fn nat66_ports(lab: &Lab, host: Host, first_port: u16, count: u16) -> Vec<SocketAddr> {
    let prefix = lab.prefix().to_owned();
    let server = udp(lab, Host::Server, v6(server_primary6(&prefix), 4300));
    (first_port..first_port + count)
        .map(|port| {
            let client = lan_udp(lab, host, port);
            sent(&client, server.local_addr().unwrap(), &server).expect("the server got it")
        })
        .collect()
}

/// NAT66 maps to the router's WAN address and allocates as the IPv4 mode of the same name:
/// port-preserving (the same mapping toward every destination), sequential with its step, or
/// random; unsolicited inbound is dropped.
#[test]
fn nat66_allocates_as_asked() {
    let Some(lab) = up(LabSpec {
        v6_a: V6Mode::Nat66(NatMode::Cone),
        v6_b: V6Mode::Nat66(NatMode::Sequential { delta: 3 }),
        ..LabSpec::default()
    }) else {
        return;
    };
    let random = up(LabSpec {
        v6_a: V6Mode::Nat66(NatMode::Random),
        ..LabSpec::default()
    })
    .unwrap();
    let prefix = lab.prefix().to_owned();
    let wan_a = router_wan6(&prefix, Side::A);
    let wan_b = router_wan6(&prefix, Side::B);

    // Port-preserving, endpoint-independent mapping.
    let cone = nat66_ports(&lab, Host::Lan(Side::A), 50_040, 2);
    assert_eq!(cone, [v6(wan_a, 50_040), v6(wan_a, 50_041)]);
    let client = lan_udp(&lab, Host::Lan(Side::A), 50_042);
    let s1 = udp(&lab, Host::Server, v6(server_primary6(&prefix), 4400));
    let s2 = udp(&lab, Host::Server, v6(server_alternate6(&prefix), 4400));
    assert_eq!(
        sent(&client, s1.local_addr().unwrap(), &s1),
        Some(v6(wan_a, 50_042))
    );
    assert_eq!(
        sent(&client, s2.local_addr().unwrap(), &s2),
        Some(v6(wan_a, 50_042))
    );
    // Address-and-port-dependent filtering, as masquerade gives: the other address is dropped
    // until the host sends to it, and nothing reaches the router's own ports unsolicited.
    let s3 = udp(&lab, Host::Server, v6(server_alternate6(&prefix), 4401));
    assert_eq!(sent(&s3, v6(wan_a, 50_042), &client), None);
    assert_eq!(sent(&s1, v6(wan_a, 50_099), &client), None);

    // Sequential: one new port per flow, step 3, from the first port.
    let seq = nat66_ports(&lab, Host::Lan(Side::B), 50_050, 3);
    let first = SEQ_FIRST_PORT;
    assert_eq!(
        seq,
        [v6(wan_b, first), v6(wan_b, first + 3), v6(wan_b, first + 6)]
    );
    // The routers' conntrack agrees with what the server saw (the punch tests' port_through).
    let b = lab.addr6(Host::Lan(Side::B)).unwrap();
    let entries = ct6(&lab, Side::B, "udp", v6(b, 50_051));
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].reply_dst, v6(wan_b, first + 3));

    // Random: neither preserving nor sequential.
    let wan = router_wan6(random.prefix(), Side::A);
    let ports: Vec<u16> = nat66_ports(&random, Host::Lan(Side::A), 50_060, 4)
        .iter()
        .map(|seen| {
            assert_eq!(seen.ip(), wan);
            seen.port()
        })
        .collect();
    let preserved = ports
        .iter()
        .zip(50_060..)
        .filter(|(p, l)| **p == *l)
        .count();
    assert!(preserved <= 1, "{ports:?}");
    let steps: Vec<i32> = ports
        .windows(2)
        .map(|w| w[1] as i32 - w[0] as i32)
        .collect();
    assert!(
        steps.iter().any(|s| *s != steps[0]),
        "{ports:?} look sequential"
    );
    down(lab);
    down(random);
}

/// After `reset_nat_state`, no IPv6 flow is left and a sequential NAT66 starts again from its
/// first port; the delay the lab adds (netem, or the frame relay where the kernel has none)
/// applies to IPv6 as to IPv4 and carries a large TCP stream intact.
#[test]
fn reset_forgets_ipv6_state_and_delay_applies() {
    let delay = Duration::from_millis(20);
    let Some(lab) = up(LabSpec {
        v6_a: V6Mode::Nat66(NatMode::Sequential { delta: 1 }),
        delay,
        ..LabSpec::default()
    }) else {
        return;
    };
    assert_ne!(lab.delay_method(), DelayMethod::None);
    let prefix = lab.prefix().to_owned();
    let wan = router_wan6(&prefix, Side::A);
    let started = Instant::now();
    let first = nat66_ports(&lab, Host::Lan(Side::A), 50_070, 2);
    assert!(
        started.elapsed() >= 2 * delay,
        "one-way delay {delay:?} on A's WAN link: {:?} for two flows",
        started.elapsed()
    );
    assert_eq!(
        first,
        [v6(wan, SEQ_FIRST_PORT), v6(wan, SEQ_FIRST_PORT + 1)]
    );
    assert!(!lab.conntrack_entries(Side::A).unwrap().is_empty());
    lab.reset_nat_state().unwrap();
    assert_eq!(lab.conntrack_entries(Side::A).unwrap(), []);
    let again = nat66_ports(&lab, Host::Lan(Side::A), 50_080, 1);
    assert_eq!(again, [v6(wan, SEQ_FIRST_PORT)]);
    // A TCP stream large enough for segmentation offload crosses the delaying segment intact
    // (with the relay, its virtio-net headers recreate IPv6 checksums and GSO too).
    let server = tcp_listen(&lab, Host::Server, v6(server_primary6(&prefix), 4500));
    let to = server.local_addr().unwrap();
    let data: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let mut stream = lab
        .in_netns(Host::Lan(Side::A), || TcpStream::connect(to))
        .unwrap()
        .unwrap();
    let (mut accepted, peer) = server.accept().unwrap();
    assert_eq!(peer.ip(), wan);
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        accepted.read_to_end(&mut got).map(|_| got)
    });
    stream.write_all(&data).unwrap();
    drop(stream);
    assert!(
        reader.join().unwrap().unwrap() == data,
        "the stream arrived intact"
    );
    down(lab);
}
