//! The TCP punch of `natlens listen`/`call` (issue 4): the plan's far ports turned into a
//! connected [`TcpStream`], then the same data exchange as over UDP, length-framed.
//!
//! Per the plan's local half: the last predicted far port is where the kernel's simultaneous
//! open `connect()`s (the only one for a direct pair); the others (a sequential far NAT's fan-out) get crafted SYNs with a low
//! TTL (`--syn-ttl`), which open our own NAT toward each of them without reaching the far one
//! (a SYN reaching it would draw an RST or an ICMP error, and on a sequential far NAT it would
//! not open anything useful anyway). The peer's SYN then comes in on one of those 4-tuples
//! and is adopted ([`crate::io::adopt`], TCP_REPAIR), while an nftables rule
//! ([`crate::io::rst_guard`]) keeps our kernel's RSTs for them home.
//!
//! The fan-out is sent on a thread while the sniffer already watches for the peer's SYN, so the
//! two ends meet one way across after the meeting flow's SYN left, not after the whole
//! fan-out. Two exceptions: when both ends fan out (two symmetric NATs), the caller instead
//! sends its crafted SYNs at full TTL to every far port, each once the callee's low-TTL fan-out
//! has opened the flow it is meant to meet ([`TcpPunch::delivers`],
//! [`crate::core::punch::PunchPlan::far_opened`]); and a birthday (random × cone) is its own
//! punch ([`crate::io::punch_tcp_birthday`]).
//!
//! Without CAP_NET_RAW (or without the guard) natlens says so in one line and punches by plain
//! simultaneous open on the first far port only: enough when the peer's NAT keeps its port.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::SeedableRng;

use crate::core::punch::handshake::{DirectionRecord, Outcome};
use crate::core::punch::plan::{PunchPlan, Strategy};
use crate::core::punch::transfer::TransferStats;
use crate::core::punch::Role;
use crate::io::caps;
use crate::io::punch_tcp_birthday;
use crate::io::punch_udp::TransferEnd;
use crate::io::raw_tcp::{self, Family, Fanout, RawTcp, RawTcpError};
use crate::io::rst_guard::RstGuard;
use crate::io::simopen::{Fanning, PunchError, Punched, SimOpen, Via};
use crate::wire::tcp_hello::{TcpHello, TcpHelloRepr, HELLO_LEN};

/// Default `--syn-ttl`: two hops cross the LAN and our own NAT (its forwarding decrements the
/// TTL once more and drops the SYN one hop later), so the crafted SYNs open our NAT's mappings
/// without ever reaching the far NAT. In the lab the far router is the third hop. On the
/// Internet the first few hops are the home router and the ISP's access network; raise it when
/// there is more than one NAT of our own (CGN), never as far as the peer.
pub const DEFAULT_SYN_TTL: u8 = 2;

/// Largest data frame sent: a length prefix and up to this many bytes.
const FRAME: usize = 16 * 1024;

/// What a TCP punch needs to know.
#[derive(Debug, Clone)]
pub struct TcpPunch {
    /// The local port to punch from (0: any); the plan's own ports start at its public port.
    pub local_port: u16,
    /// The peer's public IP.
    pub peer_ip: IpAddr,
    /// The far NAT's ports, in the plan's order (its `predicted_ports` for this end). The
    /// last one is connected to; the others get crafted SYNs, in order, first.
    pub far_ports: Vec<u16>,
    /// TTL / hop limit of the crafted SYNs.
    pub syn_ttl: u8,
    /// Crafted SYNs per second at most.
    pub rate: u32,
    pub deadline: Instant,
    /// True when the peer's plan has it fan out crafted SYNs toward us: our kernel then keeps
    /// one connecting socket (same ISN on every retransmission) instead of a fresh one per
    /// second, because a crafted SYN that reached our NAT's entry before our SYN's
    /// answer pins the sequence numbers conntrack accepts there.
    pub peer_fans_out: bool,
    /// How many crafted SYNs the peer's plan sends (its far ports but one).
    pub peer_fan_out: u32,
    /// How many of those are the peer's first round (aimed at our likeliest ports; they
    /// leave first).
    pub peer_first_round: u32,
    /// How long after our start signal the peer starts: the callee's estimate of the relay
    /// that takes its answer to the caller; zero for the caller (the callee began a relay
    /// before it).
    pub peer_lag: Duration,
    /// Per far port (same order as `far_ports`), how long after its own start the peer's
    /// crafted fan-out opens that port's flow on its NAT (the port's place among the peer's
    /// own predicted flows, at the rate). Empty when unknown. A delivering end paces each
    /// SYN so that it cannot reach the far NAT before the flow it is meant to meet exists
    /// there: arriving first, it would meet no entry, draw the far router's RST and, worse,
    /// take the port the peer's flow was predicted to get.
    pub far_opened: Vec<Duration>,
    /// When both ends fan out (two symmetric NATs), one of them (the caller) delivers: it
    /// sends its own crafted SYNs at full TTL to every far port in the plan's order, each once
    /// the peer's low-TTL fan-out has opened the flow it is aimed at (`far_opened`), and the
    /// one that lands on a pair the peer opened is adopted there (SYN) and here (the peer's
    /// SYN-ACK). Every flow of ours
    /// can deliver, so the pair meets wherever noise put both sides' offsets (the strides
    /// argument of the fan-out), not only on one predicted pair.
    pub delivers: bool,
    /// What this end does: the fan-out punch, or one half of a birthday.
    pub part: TcpPart,
}

/// The relay a callee assumes when its fingerprint measured no round trip to the server.
const UNKNOWN_RELAY: Duration = Duration::from_millis(50);

impl TcpPunch {
    /// This end's punch under `plan`, toward the peer at `peer_ip`, from `local_port` (0: any),
    /// ending at `deadline`. `server_rtt` is this end's round trip to the server: a callee's
    /// estimate of the relay that carries its answer to the caller.
    pub fn for_plan(
        plan: &PunchPlan,
        peer_ip: IpAddr,
        local_port: u16,
        syn_ttl: u8,
        deadline: Instant,
        server_rtt: Option<Duration>,
    ) -> TcpPunch {
        let (local, remote) = (plan.local(), plan.remote());
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        TcpPunch {
            local_port,
            peer_ip,
            far_ports: local.predicted_ports.clone(),
            syn_ttl,
            rate: plan.rate,
            deadline,
            peer_fans_out: remote.predicted_ports.len() > 1,
            peer_fan_out: count(remote.predicted_ports.len().saturating_sub(1)),
            peer_first_round: count(remote.first_round),
            peer_lag: match plan.role {
                Role::Callee => server_rtt.unwrap_or(UNKNOWN_RELAY),
                Role::Caller => Duration::ZERO,
            },
            far_opened: plan.far_opened(),
            delivers: plan.role == Role::Caller
                && local.predicted_ports.len() > 1
                && remote.predicted_ports.len() > 1,
            part: part_of(plan),
        }
    }
}

/// This end's part in a TCP punch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpPart {
    /// Simultaneous open on the far ports, with a crafted low-TTL fan-out when there are
    /// several (direct and fan-out plans).
    Aim,
    /// A birthday's random side: this many kernel sockets connecting to the far ports
    /// ([`crate::io::punch_tcp_birthday::hold`]).
    Hold { sockets: u32 },
    /// A birthday's fixed side: crafted full-TTL SYNs to every far port
    /// ([`crate::io::punch_tcp_birthday::spray`]).
    Spray,
}

/// This end's part in `plan`: a birthday's holder opens one socket per planned socket, its
/// sprayer has one; every other plan aims.
pub fn part_of(plan: &PunchPlan) -> TcpPart {
    let local = plan.local();
    match plan.strategy {
        Strategy::Birthday if local.sockets.len() > 1 => TcpPart::Hold {
            sockets: u32::try_from(local.sockets.len()).unwrap_or(u32::MAX),
        },
        Strategy::Birthday => TcpPart::Spray,
        _ => TcpPart::Aim,
    }
}

/// Margin after the peer's fan-out should have left: its set-up (raw socket, RST guard)
/// between its start signal and its first SYN.
const PEER_FAN_OUT_MARGIN: Duration = Duration::from_millis(25);

/// How long after our start signal the first `syns` of the peer's crafted fan-out have left,
/// at its rate (taken as ours), plus a margin.
fn peer_fan_out_time(spec: &TcpPunch, syns: u32) -> Duration {
    let secs = f64::from(syns) / f64::from(spec.rate.max(1));
    spec.peer_lag + Duration::from_secs_f64(secs.min(5.0)) + PEER_FAN_OUT_MARGIN
}

/// Sleeps `wait`, in slices, unless the stop flag goes up.
fn sleep_unless_stopped(wait: Duration, stop: Option<&AtomicBool>) {
    let until = Instant::now() + wait;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if stop.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// A punched connection and what the punch took.
#[derive(Debug)]
pub struct TcpPunched {
    pub punched: Punched,
    /// The far public port the connection reached.
    pub port_through: u16,
    /// Its index in [`TcpPunch::far_ports`].
    pub offset: Option<usize>,
    /// `connect()` attempts plus crafted SYNs.
    pub packets_sent: u32,
    /// True when a crafted fan-out went out.
    pub crafted: bool,
    /// RSTs the guard kept home.
    pub rsts_kept: u64,
}

/// Why no crafted fan-out: said once, then the punch goes on by plain simultaneous open.
fn fan_out_unavailable(hint: &mut dyn FnMut(&str), why: &str) {
    hint(why);
}

/// Punches: crafted fan-out and adoption when there are ports to fan out to and the
/// privileges allow it, plain simultaneous open otherwise. `hint` gets the one-line reason
/// when the fan-out is skipped for lack of privileges.
pub fn punch(
    spec: &TcpPunch,
    stop: Option<&AtomicBool>,
    hint: &mut dyn FnMut(&str),
) -> Result<TcpPunched, PunchError> {
    match spec.part {
        TcpPart::Aim => {}
        TcpPart::Hold { sockets } => return punch_tcp_birthday::hold(spec, sockets, stop),
        TcpPart::Spray => return punch_tcp_birthday::spray(spec, stop, hint),
    }
    // The kernel connects to the last far port, after the crafted SYNs went to the others
    // in the plan's order: on a symmetric NAT of our own, the plan expects our flows to take
    // their public ports in that order (a kernel SYN sent first and closed again would leave
    // a 4-tuple whose SYN-ACK no socket can take).
    let Some((&first, fan)) = spec.far_ports.split_last() else {
        return Err(PunchError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the plan gives no far port to aim at",
        )));
    };
    let peer = SocketAddr::new(spec.peer_ip, first);
    let any = match spec.peer_ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let local = SocketAddr::new(any, spec.local_port);
    let fan: Vec<u16> = fan.iter().copied().filter(|&p| p != first).collect();
    let t0 = Instant::now();
    // `elapsed` from this call on: waits and the fan-out included.
    let through = |mut punched: Punched, sent: u32, crafted: bool, rsts_kept: u64| {
        punched.elapsed = t0.elapsed();
        let port_through = punched.stream.peer_addr().map_or(first, |addr| addr.port());
        TcpPunched {
            offset: spec.far_ports.iter().position(|&p| p == port_through),
            port_through,
            packets_sent: punched.attempts + sent,
            punched,
            crafted,
            rsts_kept,
        }
    };
    // Without a fan-out, the kernel aims at the most likely port.
    let likeliest = SocketAddr::new(spec.peer_ip, spec.far_ports[0]);
    if fan.is_empty() {
        let mut open = SimOpen::bind(local, likeliest)?;
        if spec.peer_fans_out {
            // Let the peer's crafted SYNs open its NAT first: a SYN of ours that arrives
            // before them meets no mapping, and the far router may answer it with an RST.
            // Its first round (our likeliest ports) is enough: should its later SYNs be the
            // ones that count (noise moved our port further), our kernel's SYN
            // retransmissions (1 s, 3 s) come after all of them.
            let wait = peer_fan_out_time(spec, spec.peer_first_round.min(spec.peer_fan_out));
            sleep_unless_stopped(
                wait.min(spec.deadline.saturating_duration_since(Instant::now())),
                stop,
            );
            open = open.attempt_every(spec.deadline.saturating_duration_since(Instant::now()));
        }
        let punched = open.run(spec.deadline, stop)?;
        return Ok(through(punched, 0, false, 0));
    }
    let raw = match RawTcp::open_then_drop_caps(Family::of(spec.peer_ip), 1 << caps::CAP_NET_ADMIN)
    {
        Ok(raw) => raw,
        Err(err @ (RawTcpError::NoCapability | RawTcpError::Io(_))) => {
            fan_out_unavailable(hint, &err.to_string());
            let punched = SimOpen::bind(local, likeliest)?.run(spec.deadline, stop)?;
            return Ok(through(punched, 0, false, 0));
        }
    };
    // A fixed port: the guard and the crafted SYNs need it before the kernel socket exists.
    let open = SimOpen::bind(local, peer)?;
    let port = open.local_addr().port();
    drop(open);
    let local = SocketAddr::new(any, port);
    let guard = match RstGuard::install(port, spec.peer_ip) {
        Ok(guard) => guard,
        Err(err) => {
            fan_out_unavailable(
                hint,
                &format!("{err:#}; falling back to plain simultaneous open"),
            );
            let punched = SimOpen::bind(local, likeliest)?.run(spec.deadline, stop)?;
            return Ok(through(punched, 0, false, 0));
        }
    };
    let result = (|| {
        let local_ip = raw_tcp::source_ip_for(spec.peer_ip)?;
        if spec.delivers {
            // Every one of our SYNs may be the one that meets; each leaves once the peer's
            // flow it is aimed at exists (trailing the peer's fan-out, not after all of it);
            // the same SYNs go again in rounds with backoff, in case the one that meets was
            // lost. Without the peer's timing, after its whole fan-out.
            let not_before: Vec<Duration> = if spec.far_opened.len() == spec.far_ports.len() {
                spec.far_opened
                    .iter()
                    .map(|&at| spec.peer_lag + at + PEER_FAN_OUT_MARGIN)
                    .collect()
            } else {
                let wait = peer_fan_out_time(spec, spec.peer_fan_out)
                    .min(spec.deadline.saturating_duration_since(Instant::now()));
                sleep_unless_stopped(wait, stop);
                Vec::new()
            };
            let (stream, sent) = punch_tcp_birthday::spray_and_adopt(
                spec,
                &raw,
                SocketAddr::new(local_ip, port),
                punch_tcp_birthday::SPRAY_TTL,
                true,
                &not_before,
                stop,
            )?;
            let punched = Punched {
                stream,
                via: Via::Adopt,
                attempts: 0,
                elapsed: Duration::ZERO,
            };
            return Ok((punched, sent));
        }
        // The fan-out goes out on a thread while the peer's SYN is watched for from the
        // first crafted SYN on: the pair meets on one of the first flows, a round trip after
        // they left, not after the whole fan-out.
        let (filed, filed_out) = mpsc::channel();
        let fanned = AtomicBool::new(false);
        let finished = AtomicBool::new(false);
        let fanout = Fanout {
            local: SocketAddr::new(local_ip, port),
            peer_ip: spec.peer_ip,
            ports: fan.clone(),
            hop_limit: spec.syn_ttl.max(1),
            rate_pps: spec.rate.max(1),
        };
        let (punched, report) = std::thread::scope(|scope| {
            let sender = scope.spawn(|| {
                let mut rng = rand::rngs::StdRng::from_entropy();
                let report =
                    raw.send_fanout_filing(&fanout, Some(&finished), &mut rng, &mut |syn| {
                        let _ = filed.send(syn);
                    });
                fanned.store(true, Ordering::Release);
                report
            });
            let punched = SimOpen::connect_only(local, peer).run_adopting_while_fanning(
                spec.deadline,
                stop,
                &raw,
                Fanning {
                    filed: filed_out,
                    sent: &fanned,
                },
                local_ip,
            );
            finished.store(true, Ordering::Relaxed);
            let report = sender.join();
            (punched, report)
        });
        let sent = report.map_or(0, |r| u32::try_from(r.sent).unwrap_or(u32::MAX));
        Ok::<_, PunchError>((punched?, sent))
    })();
    let rsts_kept = guard.dropped().unwrap_or(0);
    let removed = guard.remove();
    let (punched, sent) = result?;
    removed.map_err(|err| PunchError::Io(io::Error::other(format!("{err:#}"))))?;
    Ok(through(punched, sent, true, rsts_kept))
}

/// What each end tells the other first over the stream: its own direction's record, so both
/// reports show both directions.
fn hello(record: &DirectionRecord) -> [u8; HELLO_LEN] {
    TcpHelloRepr {
        port_through: record.port_through,
        offset: record.offset,
        packets_sent: record.packets_sent,
        first_through: record.first_through,
    }
    .to_bytes()
}

/// The peer's direction as its hello tells it.
fn parse_hello(bytes: &[u8]) -> io::Result<DirectionRecord> {
    let view = TcpHello::new_checked(bytes)
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
    let hello = TcpHelloRepr::parse(&view);
    Ok(DirectionRecord {
        port_through: hello.port_through,
        offset: hello.offset,
        packets_sent: hello.packets_sent,
        first_through: hello.first_through,
        ..DirectionRecord::default()
    })
}

/// The handshake outcome of a TCP punch, for [`crate::core::punch::PunchReport::from_outcome`]:
/// our direction from the punch, the peer's from its hello (`None` before the exchange).
pub fn outcome(
    result: &Result<TcpPunched, PunchError>,
    started: Instant,
    peer_record: Option<DirectionRecord>,
) -> Outcome {
    let elapsed = started.elapsed();
    match result {
        Ok(done) => {
            let at = done.punched.elapsed;
            let peer = done.punched.stream.peer_addr().ok();
            Outcome {
                connected: true,
                reason: None,
                elapsed: at,
                path: peer.map(|p| (0, p)),
                outbound: own_record(done),
                inbound: DirectionRecord {
                    socket: Some(0),
                    peer,
                    first_through: Some(at),
                    ..peer_record.unwrap_or_default()
                },
            }
        }
        Err(err) => Outcome {
            connected: false,
            reason: Some(err.to_string()),
            elapsed,
            path: None,
            outbound: DirectionRecord::default(),
            inbound: DirectionRecord::default(),
        },
    }
}

/// Our direction of a punch.
pub fn own_record(done: &TcpPunched) -> DirectionRecord {
    DirectionRecord {
        socket: Some(0),
        peer: done.punched.stream.peer_addr().ok(),
        port_through: Some(done.port_through),
        offset: done.offset,
        packets_sent: Some(done.packets_sent),
        first_through: Some(done.punched.elapsed),
    }
}

/// After the punch: hellos both ways, then our `input` to the peer and the peer's stream to
/// `output`, each as frames (a 4-byte big-endian length, then that many bytes; length 0 ends
/// the stream). Returns the peer's record and how the exchange ended.
pub fn exchange(
    stream: &TcpStream,
    own: &DirectionRecord,
    input: Option<Box<dyn Read + Send>>,
    output: &mut dyn Write,
    timeout: Option<Duration>,
) -> (Option<DirectionRecord>, TransferEnd) {
    let started = Instant::now();
    let mut stats = TransferStats::default();
    let result = (|| -> io::Result<DirectionRecord> {
        stream.set_read_timeout(timeout)?;
        let mut writer = stream.try_clone()?;
        writer.write_all(&hello(own))?;
        let mut reader = stream;
        let mut peer = [0u8; HELLO_LEN];
        reader.read_exact(&mut peer)?;
        let peer = parse_hello(&peer)?;
        std::thread::scope(|scope| {
            let sender = scope.spawn(move || send_frames(input, &mut writer));
            let received = receive_frames(&mut reader, output);
            output.flush()?;
            let sent = sender
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the sender panicked")));
            stats.bytes_received = received?;
            stats.bytes_sent = sent?;
            Ok(peer)
        })
    })();
    let _ = stream.shutdown(Shutdown::Write);
    let (peer, failure) = match result {
        Ok(peer) => (Some(peer), None),
        Err(err) => (None, Some(err.to_string())),
    };
    (
        peer,
        TransferEnd {
            failure,
            stats,
            elapsed: started.elapsed(),
        },
    )
}

/// Our side of the stream: `input` in frames, then the empty frame that ends it. Returns the
/// bytes sent.
fn send_frames(input: Option<Box<dyn Read + Send>>, writer: &mut TcpStream) -> io::Result<u64> {
    let mut sent = 0u64;
    if let Some(mut input) = input {
        let mut buf = vec![0u8; FRAME];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            let len = u32::try_from(n).expect("a frame fits");
            writer.write_all(&len.to_be_bytes())?;
            writer.write_all(&buf[..n])?;
            sent += n as u64;
        }
    }
    writer.write_all(&0u32.to_be_bytes())?;
    writer.flush()?;
    Ok(sent)
}

/// The peer's stream, frame by frame, into `output` until its empty frame. Returns the bytes
/// received.
fn receive_frames(reader: &mut &TcpStream, output: &mut dyn Write) -> io::Result<u64> {
    let mut buf = vec![0u8; FRAME];
    let mut received = 0u64;
    loop {
        let mut len = [0u8; 4];
        reader.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            return Ok(received);
        }
        if len > FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a frame of {len} bytes (at most {FRAME})"),
            ));
        }
        reader.read_exact(&mut buf[..len])?;
        output.write_all(&buf[..len])?;
        received += len as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn hellos_round_trip() {
        let record = DirectionRecord {
            port_through: Some(40_002),
            offset: Some(2),
            packets_sent: Some(7),
            first_through: Some(Duration::from_millis(12)),
            ..DirectionRecord::default()
        };
        let back = parse_hello(&hello(&record)).unwrap();
        assert_eq!(back.port_through, Some(40_002));
        assert_eq!(back.offset, Some(2));
        assert_eq!(back.packets_sent, Some(7));
        assert_eq!(back.first_through, Some(Duration::from_millis(12)));
        assert_eq!(
            parse_hello(&hello(&DirectionRecord::default()))
                .unwrap()
                .offset,
            None
        );
    }

    #[test]
    fn exchange_carries_both_streams_whole_over_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let a_data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let b_data = b"hello from b".to_vec();
        let (a_in, b_in) = (a_data.clone(), b_data.clone());
        let other = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut out = Vec::new();
            let own = DirectionRecord {
                port_through: Some(1),
                ..DirectionRecord::default()
            };
            let (peer, end) = exchange(
                &stream,
                &own,
                Some(Box::new(io::Cursor::new(b_in))),
                &mut out,
                Some(Duration::from_secs(5)),
            );
            (peer, end, out)
        });
        let stream = TcpStream::connect(addr).unwrap();
        let mut out = Vec::new();
        let own = DirectionRecord {
            port_through: Some(2),
            ..DirectionRecord::default()
        };
        let (peer, end) = exchange(
            &stream,
            &own,
            Some(Box::new(io::Cursor::new(a_in))),
            &mut out,
            Some(Duration::from_secs(5)),
        );
        let (b_peer, b_end, b_out) = other.join().unwrap();
        assert_eq!(end.failure, None);
        assert_eq!(b_end.failure, None);
        assert_eq!(out, b_data);
        assert_eq!(b_out, a_data);
        assert_eq!(peer.unwrap().port_through, Some(1));
        assert_eq!(b_peer.unwrap().port_through, Some(2));
        assert_eq!(end.stats.bytes_sent, 100_000);
        assert_eq!(b_end.stats.bytes_received, 100_000);
    }
}
