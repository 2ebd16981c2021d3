//! TCP hole punching building blocks against the real kernel: crafted SYN fan-outs, kernel
//! simultaneous open and the RST guard, in the netns NAT lab; capability handling on loopback
//! and as an unprivileged user.
//!
//! Needs root, network namespaces, ip/nft/conntrack (and tshark to check the captured SYNs a
//! second time). Without them the tests print a visible SKIPPED and pass, except under CI (env
//! `CI` set), where that is a failure. Nothing is sent outside the lab's namespaces except to
//! loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use natlens::io::caps;
use natlens::io::raw_tcp::{self, Family, Fanout, RawTcp, RawTcpError};
use natlens::io::rst_guard::RstGuard;
use natlens::io::simopen::{PunchError, Punched, SimOpen, Via};
use natlens::lab::plan::{router_wan, PUBLIC_ADDR, SERVER_PRIMARY};
use natlens::lab::spec::SEQ_FIRST_PORT;
use natlens::lab::{Host, Lab, LabSpec, NatMode, Side};
use natlens::wire::tcp_syn::{Segment, SegmentKind, SegmentRepr};

mod common;
use common::tcp_lab::{
    self, as_helper, guard_tables, in_both, lan_ip, tcp_entries, UnprivilegedCopy,
};
use common::{is_root, lab_available, skip};

/// Env var that turns the `helper_entry` test into a child-process entry point.
const HELPER_ENV: &str = "NATLENS_RAW_TCP_HELPER";

/// How long a punch in the lab may take: the kernel retransmits a SYN after 1 s, so a
/// punch that needs one retransmission still fits twice over.
const PUNCH_DEADLINE: Duration = Duration::from_secs(8);

fn up(spec: LabSpec) -> Option<Lab> {
    lab_available().then(|| Lab::up(spec).expect("building the lab"))
}

fn v4(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

fn any(port: u16) -> SocketAddr {
    v4(Ipv4Addr::UNSPECIFIED, port)
}

/// Greets each way over one connection: both write first, then both read, so neither waits
/// on the other.
fn exchange(a: &mut Punched, b: &mut Punched) {
    for (punched, me) in [(&mut *a, "a"), (&mut *b, "b")] {
        let stream = &mut punched.stream;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(format!("hello from {me}").as_bytes())
            .unwrap();
    }
    for (punched, peer) in [(a, "b"), (b, "a")] {
        let expected = format!("hello from {peer}");
        let mut buf = vec![0u8; expected.len()];
        punched.stream.read_exact(&mut buf).unwrap();
        assert_eq!(String::from_utf8(buf).unwrap(), expected);
    }
}

/// Packets seen on one interface of one lab host (AF_PACKET, both directions), from start to
/// `finish`.
struct Capture {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Vec<u8>>>,
}

impl Capture {
    fn start(lab: &Lab, host: Host, iface: &str) -> Capture {
        let socket = lab
            .in_netns(host, || packet_socket(iface))
            .unwrap()
            .unwrap_or_else(|e| panic!("capturing on {iface} in {host}: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut packets = Vec::new();
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                // SAFETY: recv(2) into a buffer we own, with its length.
                let n = unsafe {
                    libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                };
                if n > 0 {
                    packets.push(buf[..n as usize].to_vec());
                }
            }
            packets
        });
        Capture { stop, thread }
    }

    fn finish(self) -> Vec<Vec<u8>> {
        // Let packets in flight arrive.
        std::thread::sleep(Duration::from_millis(200));
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// An AF_PACKET datagram socket on `iface` (IP packets without the link header, both
/// directions), with a short read timeout.
fn packet_socket(iface: &str) -> std::io::Result<socket2::Socket> {
    let all = (libc::ETH_P_ALL as u16).to_be();
    let socket = socket2::Socket::new(
        socket2::Domain::PACKET,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::from(i32::from(all))),
    )?;
    let name = std::ffi::CString::new(iface).unwrap();
    // SAFETY: if_nametoindex(3) on a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: an all-zero sockaddr_ll is valid; bind(2) reads exactly its size.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = all;
    addr.sll_ifindex = index as i32;
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    Ok(socket)
}

/// The captured TCP segments that parse.
fn segments(packets: &[Vec<u8>]) -> Vec<Segment<&[u8]>> {
    packets
        .iter()
        .filter_map(|p| Segment::new_checked(&p[..]).ok())
        .collect()
}

/// RFC 1071 checksum of a TCP-in-IPv4/IPv6 packet, computed here without pnet.
fn independent_tcp_checksum(packet: &[u8]) -> u16 {
    let v4 = packet[0] >> 4 == 4;
    let (mut data, tcp) = if v4 {
        let header = usize::from(packet[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
        let tcp = &packet[header..total];
        let mut pseudo = packet[12..20].to_vec();
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        (pseudo, tcp)
    } else {
        let total = 40 + usize::from(u16::from_be_bytes([packet[4], packet[5]]));
        let tcp = &packet[40..total];
        let mut pseudo = packet[8..40].to_vec();
        pseudo.extend_from_slice(&(tcp.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 6]);
        (pseudo, tcp)
    };
    let start = data.len();
    data.extend_from_slice(tcp);
    data[start + 16..start + 18].fill(0);
    if data.len() % 2 == 1 {
        data.push(0);
    }
    let mut sum: u32 = data
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// tshark's verdict on each packet's TCP checksum (1 good, 0 bad), or `None` without tshark.
fn tshark_checksum_status(packets: &[&[u8]]) -> Option<Vec<String>> {
    if Command::new("tshark").arg("--version").output().is_err() {
        skip("tshark is not installed: captured checksums checked by this test only");
        return None;
    }
    let mut file = Vec::new();
    file.extend_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
    file.extend_from_slice(&2u16.to_le_bytes());
    file.extend_from_slice(&4u16.to_le_bytes());
    for field in [0u32, 0, 65535, 101] {
        file.extend_from_slice(&field.to_le_bytes());
    }
    for (i, packet) in packets.iter().enumerate() {
        for field in [i as u32, 0, packet.len() as u32, packet.len() as u32] {
            file.extend_from_slice(&field.to_le_bytes());
        }
        file.extend_from_slice(packet);
    }
    let path = std::env::temp_dir().join(format!("natlens-syns-{}.pcap", std::process::id()));
    std::fs::write(&path, file).unwrap();
    let output = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args([
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
        ])
        .args(["-T", "fields", "-e", "tcp.checksum.status"])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    Some(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

#[test]
fn cone_by_cone_simultaneous_open_makes_a_real_connection() {
    let Some(lab) = up(LabSpec::default()) else {
        return;
    };
    let (port_a, port_b) = (41_000, 42_000);
    let deadline = Instant::now() + PUNCH_DEADLINE;
    let (a, b) = in_both(
        &lab,
        || SimOpen::bind(any(port_a), v4(router_wan(Side::B), port_b))?.run(deadline, None),
        || SimOpen::bind(any(port_b), v4(router_wan(Side::A), port_a))?.run(deadline, None),
    );
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    eprintln!(
        "cone x cone: a via {:?} after {:?} ({} attempts), b via {:?} after {:?}",
        a.via, a.elapsed, a.attempts, b.via, b.elapsed
    );
    assert_eq!(
        a.stream.peer_addr().unwrap(),
        v4(router_wan(Side::B), port_b)
    );
    assert_eq!(
        b.stream.peer_addr().unwrap(),
        v4(router_wan(Side::A), port_a)
    );
    exchange(&mut a, &mut b);
    for (side, port, peer) in [
        (Side::A, port_a, v4(router_wan(Side::B), port_b)),
        (Side::B, port_b, v4(router_wan(Side::A), port_a)),
    ] {
        let entries = tcp_entries(&lab, side);
        let flow = entries
            .iter()
            .find(|e| e.orig_src == v4(lan_ip(side), port) && e.orig_dst == peer)
            .unwrap_or_else(|| panic!("no flow in router-{side}: {entries:#?}"));
        assert_eq!(flow.state.as_deref(), Some("ESTABLISHED"), "{flow:?}");
        assert_eq!(flow.public_port(), port, "cone keeps the port");
    }
}

/// Opens `count` UDP flows from host a to the server: on a sequential NAT each takes the next
/// public port, so the TCP flow after them lands past the peer's prediction.
fn use_up_ports(lab: &Lab, count: usize) {
    lab.in_netns(Host::Lan(Side::A), || {
        for _ in 0..count {
            let socket = UdpSocket::bind(any(0)).unwrap();
            socket.send_to(b"noise", v4(SERVER_PRIMARY, 9)).unwrap();
        }
    })
    .unwrap();
}

#[test]
fn seq_by_cone_needs_the_crafted_fanout_when_the_prediction_is_off() {
    let Some(lab) = up(LabSpec {
        nat_a: NatMode::Sequential { delta: 1 },
        ..LabSpec::default()
    }) else {
        return;
    };
    let wan_a = router_wan(Side::A);
    let wan_b = router_wan(Side::B);
    let (port_a, port_b) = (41_000, 42_000);
    // b predicts a's next public port: the sequential NAT's first. Two other flows from a
    // take it and the one after, so a's TCP flow leaves from FIRST + 2.
    let predicted = SEQ_FIRST_PORT;
    let actual = SEQ_FIRST_PORT + 2;

    // Without the fan-out: b's SYN goes to the predicted port, a's SYN meets no hole in b's
    // NAT. Nothing connects.
    use_up_ports(&lab, 2);
    let deadline = Instant::now() + Duration::from_secs(3);
    let (a, b) = in_both(
        &lab,
        || SimOpen::bind(any(port_a), v4(wan_b, port_b))?.run(deadline, None),
        || SimOpen::bind(any(port_b), v4(wan_a, predicted))?.run(deadline, None),
    );
    assert!(matches!(a, Err(PunchError::TimedOut { .. })), "{a:?}");
    assert!(matches!(b, Err(PunchError::TimedOut { .. })), "{b:?}");
    let a_flow = tcp_entries(&lab, Side::A);
    assert_eq!(a_flow.len(), 1, "{a_flow:#?}");
    assert_eq!(a_flow[0].public_port(), actual, "{a_flow:#?}");

    // With it: b sprays low-TTL SYNs at the ports after the prediction (TTL 2 crosses b's NAT
    // and dies at a's), and a's SYN from `actual` comes in through one of the holes, where b
    // adopts the connection from its crafted SYN's ISN.
    lab.reset_nat_state().unwrap();
    use_up_ports(&lab, 2);
    let far_ports: Vec<u16> = (predicted + 1..=predicted + 6).collect();
    let capture = Capture::start(&lab, Host::Router(Side::A), "wan");
    let started = Instant::now();
    let (a, b, rsts_kept) = punch_with_fanout(&lab, &far_ports, 2, false);
    if a.is_err() || b.is_err() {
        panic!(
            "a: {a:?}\nb: {b:?}\nrouter-a: {:#?}\nrouter-b: {:#?}",
            lab.conntrack_entries(Side::A),
            lab.conntrack_entries(Side::B)
        );
    }
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    eprintln!(
        "seq:1 x cone with fan-out: connected in {:?} (a via {:?}, {} attempts; b via {:?}; {rsts_kept} RSTs kept home)",
        started.elapsed(),
        a.via,
        a.attempts,
        b.via
    );
    assert_eq!(a.via, Via::Connect);
    assert_eq!(b.via, Via::Adopt, "a's SYN came in through a crafted hole");
    assert!(rsts_kept >= 1, "the kernel's RST to a's SYN stayed home");
    assert!(
        guard_tables(&lab, Host::Lan(Side::B)).is_empty(),
        "guard removed"
    );
    assert_eq!(b.stream.peer_addr().unwrap(), v4(wan_a, actual));
    exchange(&mut a, &mut b);
    let packets = capture.finish();

    // b's NAT holds one entry per crafted SYN; the one a's SYN matched is now the connection.
    let near = tcp_entries(&lab, Side::B);
    for &port in &far_ports {
        let entry = near
            .iter()
            .find(|e| e.orig_src == v4(lan_ip(Side::B), port_b) && e.orig_dst == v4(wan_a, port))
            .unwrap_or_else(|| panic!("no entry toward {port} in router-b: {near:#?}"));
        let expected = if port == actual {
            "ESTABLISHED"
        } else {
            "SYN_SENT"
        };
        assert_eq!(entry.state.as_deref(), Some(expected), "{entry:?}");
        assert_eq!(entry.public_port(), port_b);
    }
    // a's NAT never saw the low-TTL SYNs as flows: its only TCP entry is the connection.
    let far = tcp_entries(&lab, Side::A);
    assert_eq!(far.len(), 1, "{far:#?}");
    assert_eq!(far[0].state.as_deref(), Some("ESTABLISHED"));
    assert_eq!(far[0].public_port(), actual);

    // The crafted SYNs as they reached router a: TTL 1 left, checksums right after b's NAT
    // rewrote the source address (an incremental update keeps only a right sum right).
    let segs = segments(&packets);
    let crafted: Vec<&Segment<&[u8]>> = segs
        .iter()
        .filter(|s| s.kind() == SegmentKind::Syn && s.src() == v4(wan_b, port_b))
        .filter(|s| far_ports.contains(&s.dst().port()))
        .collect();
    let mut seen: Vec<u16> = crafted.iter().map(|s| s.dst().port()).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, far_ports, "every crafted SYN reached router a");
    let bytes: Vec<&[u8]> = crafted.iter().map(|s| raw_bytes(s, &packets)).collect();
    for (segment, packet) in crafted.iter().zip(&bytes) {
        assert_eq!(segment.hop_limit(), 1);
        assert!(segment.checksum_ok() && segment.ip_checksum_ok());
        assert_eq!(independent_tcp_checksum(packet), segment.checksum());
        let options = segment.options();
        assert_eq!(options.mss, Some(1460));
        assert!(options.sack_permitted && options.timestamps.is_some());
        assert_eq!(options.window_scale, Some(7));
    }
    if let Some(statuses) = tshark_checksum_status(&bytes) {
        assert_eq!(statuses.len(), bytes.len());
        assert!(statuses.iter().all(|s| s == "1"), "tshark: {statuses:?}");
    }
}

/// a connects to b's cone port 42000 while b connects to a's predicted port and sprays crafted
/// SYNs at `far_ports` with `hop_limit`, adopting what comes in on them. With `a_first`, a's
/// SYN is out (and a's NAT mapping made) before b's fan-out; otherwise b's fan-out goes
/// first. Returns both ends and the RSTs b's guard kept home.
fn punch_with_fanout(
    lab: &Lab,
    far_ports: &[u16],
    hop_limit: u8,
    a_first: bool,
) -> (
    Result<Punched, PunchError>,
    Result<Punched, PunchError>,
    u64,
) {
    let (wan_a, wan_b) = (router_wan(Side::A), router_wan(Side::B));
    let (port_a, port_b) = (41_000, 42_000);
    let first = Barrier::new(2);
    let deadline = Instant::now() + PUNCH_DEADLINE;
    let mut rsts_kept = 0;
    let (a, b) = in_both(
        lab,
        || {
            let open = SimOpen::bind(any(port_a), v4(wan_b, port_b))?;
            if !a_first {
                first.wait();
                return open.run(deadline, None);
            }
            std::thread::scope(|scope| {
                // Let b go once a's SYN has made its mapping (well under a millisecond here).
                scope.spawn(|| {
                    std::thread::sleep(Duration::from_millis(300));
                    first.wait();
                });
                open.run(deadline, None)
            })
        },
        || {
            let open = SimOpen::connect_only(any(port_b), v4(wan_a, SEQ_FIRST_PORT));
            // Raw sockets first, then only CAP_NET_ADMIN (for TCP_REPAIR) on this thread.
            let keep = 1 << caps::CAP_NET_ADMIN;
            let raw = RawTcp::open_then_drop_caps(Family::V4, keep).unwrap();
            assert_eq!(caps::current().unwrap().effective, keep);
            let guard = RstGuard::install(port_b, wan_a.into()).unwrap();
            let local = raw_tcp::source_ip_for(wan_a.into()).unwrap();
            if a_first {
                first.wait();
            }
            let report = raw.send_fanout(
                &Fanout {
                    local: SocketAddr::new(local, port_b),
                    peer_ip: wan_a.into(),
                    ports: far_ports.to_vec(),
                    hop_limit,
                    rate_pps: 1000,
                },
                None,
                &mut rand::thread_rng(),
            );
            assert_eq!(report.sent, far_ports.len(), "{report:?}");
            if !a_first {
                first.wait();
            }
            let punched = open.run_adopting(deadline, None, &raw, &report, local);
            rsts_kept = guard.dropped().unwrap();
            punched
        },
    );
    (a, b, rsts_kept)
}

#[test]
fn a_full_ttl_fanout_adopts_the_syn_ack_of_a_peer_that_was_already_connecting() {
    let Some(lab) = up(LabSpec {
        nat_a: NatMode::Sequential { delta: 1 },
        ..LabSpec::default()
    }) else {
        return;
    };
    let wan_a = router_wan(Side::A);
    use_up_ports(&lab, 2);
    let actual = SEQ_FIRST_PORT + 2;
    let far_ports: Vec<u16> = (SEQ_FIRST_PORT + 1..=SEQ_FIRST_PORT + 6).collect();
    // a's SYN left first and died at b's NAT; b's full-TTL crafted SYN to `actual` reaches
    // a's connecting socket, which answers with a SYN-ACK (simultaneous open) that b adopts.
    let started = Instant::now();
    let (a, b, rsts_kept) = punch_with_fanout(&lab, &far_ports, 64, true);
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    eprintln!(
        "seq:1 x cone, full-TTL fan-out after a's SYN: connected in {:?} after the start \
         (a via {:?}, b via {:?}; {rsts_kept} RSTs kept home)",
        started.elapsed(),
        a.via,
        b.via
    );
    assert_eq!(a.via, Via::Connect);
    assert_eq!(b.via, Via::Adopt);
    assert_eq!(b.stream.peer_addr().unwrap(), v4(wan_a, actual));
    exchange(&mut a, &mut b);
    for side in Side::BOTH {
        let flows = tcp_entries(&lab, side);
        let established: Vec<_> = flows
            .iter()
            .filter(|e| e.state.as_deref() == Some("ESTABLISHED"))
            .collect();
        assert_eq!(established.len(), 1, "router-{side}: {flows:#?}");
    }
    assert!(
        guard_tables(&lab, Host::Lan(Side::B)).is_empty(),
        "guard removed"
    );
}

/// The captured packet a segment view was made from.
fn raw_bytes<'a>(segment: &Segment<&[u8]>, packets: &'a [Vec<u8>]) -> &'a [u8] {
    let wanted = segment.tcp_bytes().as_ptr();
    packets
        .iter()
        .find(|p| p.as_ptr_range().contains(&wanted))
        .expect("a view into the capture")
}

#[test]
fn full_ttl_syn_acks_draw_rsts_that_the_guard_keeps_home() {
    let Some(lab) = up(LabSpec {
        public_host: true,
        ..LabSpec::default()
    }) else {
        return;
    };
    let listeners: Vec<TcpListener> = lab
        .in_netns(Host::Public, || {
            [7000, 7001].map(|port| TcpListener::bind(v4(PUBLIC_ADDR, port)).unwrap())
        })
        .unwrap()
        .into();
    let wan_a = router_wan(Side::A);
    let fanout = |port: u16| {
        lab.in_netns(Host::Lan(Side::A), || {
            let raw = RawTcp::open(Family::V4).unwrap();
            let report = raw.send_fanout(
                &Fanout {
                    local: v4(lan_ip(Side::A), port),
                    peer_ip: PUBLIC_ADDR.into(),
                    ports: vec![7000, 7001],
                    hop_limit: 64,
                    rate_pps: 100,
                },
                None,
                &mut rand::thread_rng(),
            );
            assert_eq!(report.sent, 2, "{report:?}");
        })
        .unwrap();
    };
    let resets_from = |packets: &[Vec<u8>], port: u16| {
        segments(packets)
            .iter()
            .filter(|s| s.kind() == SegmentKind::Rst && s.src() == v4(wan_a, port))
            .count()
    };
    let syn_acks_to = |packets: &[Vec<u8>], port: u16| {
        segments(packets)
            .iter()
            .filter(|s| s.kind() == SegmentKind::SynAck && s.dst() == v4(wan_a, port))
            .count()
    };

    // Guarded: the public host answers both SYNs, our kernel's RSTs stay home.
    let guard = lab
        .in_netns(Host::Lan(Side::A), || {
            RstGuard::install(43_000, PUBLIC_ADDR.into())
        })
        .unwrap()
        .unwrap();
    assert_eq!(guard_tables(&lab, Host::Lan(Side::A)), [guard.table()]);
    let capture = Capture::start(&lab, Host::Public, "eth0");
    fanout(43_000);
    std::thread::sleep(Duration::from_millis(300));
    let packets = capture.finish();
    assert!(
        syn_acks_to(&packets, 43_000) >= 2,
        "both listeners answered"
    );
    assert_eq!(resets_from(&packets, 43_000), 0, "no RST left host a");
    assert!(guard.dropped().unwrap() >= 2);
    drop(guard);
    assert!(guard_tables(&lab, Host::Lan(Side::A)).is_empty());

    // Unguarded, the same SYN-ACKs are reset (which would close the far NAT's entry).
    let capture = Capture::start(&lab, Host::Public, "eth0");
    fanout(43_001);
    let packets = capture.finish();
    assert!(
        resets_from(&packets, 43_001) >= 2,
        "the kernel resets stray SYN-ACKs"
    );
    for listener in &listeners {
        listener.set_nonblocking(true).unwrap();
        assert!(
            listener.accept().is_err(),
            "a crafted SYN is never a connection"
        );
    }
}

/// Starts this test binary as a helper (`mode`) inside `host`, with stdout piped.
fn spawn_helper(lab: &Lab, host: Host, mode: &str) -> std::process::Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    as_helper(&mut command, HELPER_ENV, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    lab.spawn(host, command).unwrap()
}

/// The table a helper reports with its `ready <table>` line.
fn wait_ready(child: &mut std::process::Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines.next().expect("helper ended before ready").unwrap();
        // libtest's "test helper_entry ... " precedes it on the same line.
        if let Some((_, table)) = line.split_once("ready ") {
            return table.trim().to_owned();
        }
    }
}

#[test]
fn the_guard_goes_on_panic_on_sigint_and_after_a_crash() {
    let Some(lab) = up(LabSpec::default()) else {
        return;
    };
    let host = Host::Lan(Side::A);
    let peer: IpAddr = router_wan(Side::B).into();

    // Panic while the guard is alive: unwinding drops it.
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lab.in_netns(host, || {
            let guard = RstGuard::install(44_000, peer).unwrap();
            assert_eq!(guard_tables(&lab, host), [guard.table()]);
            panic!("punch failed while guarded");
        })
    }));
    assert!(panicked.is_err());
    assert!(guard_tables(&lab, host).is_empty(), "gone after the panic");

    // SIGINT: the signal path removes it and exits 130.
    let mut child = spawn_helper(&lab, host, "guard-and-wait");
    let table = wait_ready(&mut child);
    assert_eq!(guard_tables(&lab, host), std::slice::from_ref(&table));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status}");
    assert!(
        guard_tables(&lab, host).is_empty(),
        "{table} gone after SIGINT"
    );

    // SIGKILL leaves the table; the next guard in that namespace sweeps it.
    let mut child = spawn_helper(&lab, host, "guard-and-wait");
    let table = wait_ready(&mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        guard_tables(&lab, host),
        std::slice::from_ref(&table),
        "left by the crash"
    );
    let next = lab
        .in_netns(host, || RstGuard::install(44_002, peer))
        .unwrap()
        .unwrap();
    assert_eq!(guard_tables(&lab, host), [next.table()], "{table} swept");
    next.remove().unwrap();
    assert!(guard_tables(&lab, host).is_empty());
}

#[test]
fn a_raw_socket_opened_first_keeps_sending_after_every_capability_is_dropped() {
    if !is_root() && !skip("needs root for raw sockets") {
        return;
    }
    std::thread::spawn(|| {
        let capture = packet_socket("lo").unwrap();
        let v4_raw = RawTcp::open(Family::V4).unwrap();
        let v6_raw = RawTcp::open(Family::V6).unwrap();
        caps::drop_all().unwrap();
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
        assert!(matches!(
            RawTcp::open(Family::V4),
            Err(RawTcpError::NoCapability)
        ));
        // To closed loopback ports: the kernel resets them to itself, nothing else happens.
        let port = || {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (from, to) = (port(), port());
        let syns = [
            SegmentRepr::syn(
                v4(Ipv4Addr::LOCALHOST, from),
                v4(Ipv4Addr::LOCALHOST, to),
                1,
                7,
                9,
            ),
            SegmentRepr::syn(
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, from)),
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, to)),
                1,
                8,
                9,
            ),
        ];
        v4_raw.send(&syns[0]).unwrap();
        v6_raw.send(&syns[1]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut found = [false, false];
        let mut buf = [0u8; 2048];
        while found != [true, true] && Instant::now() < deadline {
            // SAFETY: recv(2) into a buffer we own, with its length.
            let n =
                unsafe { libc::recv(capture.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            let Ok(segment) = Segment::new_checked(&buf[..n.max(0) as usize]) else {
                continue;
            };
            for (i, syn) in syns.iter().enumerate() {
                if segment.src() == syn.src && segment.dst() == syn.dst {
                    assert_eq!(SegmentRepr::parse(&segment), *syn);
                    assert!(segment.checksum_ok());
                    let packet = &buf[..n as usize];
                    assert_eq!(independent_tcp_checksum(packet), segment.checksum());
                    assert_eq!(packet, &syn.to_bytes().unwrap()[..packet.len()]);
                    found[i] = true;
                }
            }
        }
        assert_eq!(found, [true, true], "both crafted SYNs were seen on lo");
    })
    .join()
    .unwrap();
}

#[test]
fn with_file_capabilities_instead_of_root_the_guard_works_and_goes() {
    let Some(lab) = up(LabSpec::default()) else {
        return;
    };
    let tools = ["setcap", "setpriv"]
        .iter()
        .all(|tool| Command::new(tool).arg("--version").output().is_ok());
    if !tools && !skip("needs setcap (libcap2-bin) and setpriv (util-linux)") {
        return;
    }
    let copy = UnprivilegedCopy::new("setcap");
    let status = Command::new("setcap")
        .arg("cap_net_raw,cap_net_admin+ep")
        .arg(&copy.path)
        .status()
        .unwrap();
    assert!(status.success(), "setcap on {}", copy.path.display());
    let host = Host::Lan(Side::A);
    let mut command = copy.command(&[]);
    as_helper(&mut command, HELPER_ENV, "guard-and-wait").stdout(Stdio::piped());
    let mut child = lab.spawn(host, command).unwrap();
    let table = wait_ready(&mut child);
    assert_eq!(
        guard_tables(&lab, host),
        std::slice::from_ref(&table),
        "nft ran as nobody"
    );
    // SAFETY: kill(2) on our own child (setpriv exec'd the helper in place).
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status}");
    assert!(
        guard_tables(&lab, host).is_empty(),
        "{table} gone after SIGINT"
    );
}

#[test]
fn without_cap_net_raw_one_line_then_plain_simultaneous_open() {
    tcp_lab::assert_one_line_then_plain_simultaneous_open(HELPER_ENV, "nocap");
}

/// Entry point for child processes started by the tests above; a no-op in a normal run.
#[test]
fn helper_entry() {
    let Some(mode) = std::env::var_os(HELPER_ENV) else {
        return;
    };
    match mode.to_str().unwrap() {
        "guard-and-wait" => {
            // As a crafting punch would: raw sockets first, then only CAP_NET_ADMIN.
            let _raw = RawTcp::open_then_drop_caps(Family::V4, 1 << caps::CAP_NET_ADMIN)
                .expect("CAP_NET_RAW");
            let guard = RstGuard::install(44_001, router_wan(Side::B).into()).unwrap();
            println!("ready {}", guard.table());
            std::io::stdout().flush().unwrap();
            std::thread::sleep(Duration::from_secs(30));
            panic!("the parent should have ended this helper");
        }
        "no-cap" => no_cap_fallback(),
        other => panic!("unknown helper mode {other}"),
    }
}

/// What natlens does without CAP_NET_RAW: say so in one line, then punch with kernel sockets
/// only (two of them meeting on loopback here).
fn no_cap_fallback() {
    match RawTcp::open(Family::V4) {
        Err(err @ RawTcpError::NoCapability) => eprintln!("natlens: {err}"),
        Err(err) => panic!("unexpected error: {err}"),
        Ok(_) => panic!("a raw socket opened without CAP_NET_RAW"),
    }
    let port = || {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (pa, pb) = (port(), port());
    let loopback = |port| v4(Ipv4Addr::LOCALHOST, port);
    let deadline = Instant::now() + Duration::from_secs(5);
    let b = SimOpen::bind(loopback(pb), loopback(pa)).unwrap();
    let other = std::thread::spawn(move || b.run(deadline, None).unwrap());
    let mut a = SimOpen::bind(loopback(pa), loopback(pb))
        .unwrap()
        .run(deadline, None)
        .unwrap();
    let mut b = other.join().unwrap();
    exchange(&mut a, &mut b);
    println!("fallback connected via {:?}", a.via);
}
