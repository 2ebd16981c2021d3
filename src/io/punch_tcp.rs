//! The TCP punch of `natlens listen`/`call`: the plan's far ports turned into a
//! connected [`TcpStream`], then the same data exchange as over UDP, length-framed, after each
//! end's hello ([`crate::wire::tcp_hello`]).
//!
//! What the punch does and when is decided by [`crate::core::punch::tcp::TcpPunchMachine`]:
//! which crafted SYN goes when and with what TTL, when the kernel connects, which peer segment
//! is adopted, when to give up. This file only sets the stage for it: the raw socket
//! ([`crate::io::raw_tcp`], opened before the capabilities are dropped), a fixed punched port,
//! the nftables rule that keeps our kernel's RSTs home ([`crate::io::rst_guard`]), and then the
//! shell that carries the machine out ([`crate::io::simopen::Shell`]), adopting with
//! TCP_REPAIR ([`crate::io::adopt`]).
//!
//! Without CAP_NET_RAW (or without the guard) natlens says so in one line and punches by plain
//! simultaneous open on the first far port only: enough when the peer's NAT keeps its port.
//!
//! Through a port mapping nothing is crafted: the mapped end listens on its mapped internal
//! port and the other end `connect()`s to the mapped external one.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::core::punch::handshake::{DirectionRecord, Outcome};
use crate::core::punch::plan::PunchPlan;
use crate::core::punch::tcp::{TcpPunchMachine, TcpSpec};
use crate::core::punch::transfer::TransferStats;

pub use crate::core::punch::tcp::{part_of, TcpPart};
use crate::io::caps;
use crate::io::punch_tcp_birthday;
use crate::io::punch_udp::TransferEnd;
use crate::io::raw_tcp::{self, Family, RawTcp, RawTcpError};
use crate::io::rst_guard::RstGuard;
use crate::io::simopen::{reusable_socket, unspecified, Driven, PunchError, Punched, Shell};
use crate::wire::tcp_hello::{TcpHello, TcpHelloRepr, HELLO_LEN};
use crate::wire::tcp_verdict::{Verdict, VERDICT_LEN};

/// Default `--syn-ttl`: two hops cross the LAN and our own NAT (its forwarding decrements the
/// TTL once more and drops the SYN one hop later), so the crafted SYNs open our NAT's mappings
/// without ever reaching the far NAT. In the lab the far router is the third hop. On the
/// Internet the first few hops are the home router and the ISP's access network; raise it when
/// there is more than one NAT of our own (CGN), never as far as the peer.
pub const DEFAULT_SYN_TTL: u8 = 2;

/// Largest data frame sent: a length prefix and up to this many bytes.
const FRAME: usize = 16 * 1024;

/// `TCP_RTO_MAX_MS` (linux/tcp.h, Linux 6.15): the longest a connection's retransmission timer
/// may back off to (the kernel's default is 120 s; it takes 1,000 to 120,000).
const TCP_RTO_MAX_MS: libc::c_int = 44;

/// The exchange's cap on the retransmission timer's backoff. The exchange is a few segments
/// that prove the punched path, not a bulk transfer, and each end gives up after
/// `--punch-timeout` (at least 10 s) without progress. Under heavy loss the default doubling
/// outran that: in the lab at 10% loss per link (34% of segment/ACK round trips fail) one
/// segment's timer reached 1, 2, 4, 8 s and the peer gave up in the silence; capped at 2 s a
/// give-up needs about ten failures in a row. 2 s stays above any RTO a path the punch can
/// cross computes (its RTT plus four deviations), so nothing is retransmitted early.
const EXCHANGE_RTO_MAX_MS: libc::c_int = 2_000;

/// Caps the stream's retransmission backoff ([`EXCHANGE_RTO_MAX_MS`]); a kernel older than
/// 6.15 refuses the option (ENOPROTOOPT) and keeps its own backoff, which only costs time
/// under loss.
fn cap_retransmission_backoff(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let _ = crate::io::adopt::set_int(stream.as_raw_fd(), TCP_RTO_MAX_MS, EXCHANGE_RTO_MAX_MS);
}

/// What a TCP punch needs to know: where it runs (the IO half) and what the machine decides
/// from (this end's half of the plan).
#[derive(Debug, Clone)]
pub struct TcpPunch {
    /// The local port to punch from (0: any); the plan's own ports start at its public port.
    pub local_port: u16,
    /// The peer's public IP.
    pub peer_ip: IpAddr,
    pub deadline: Instant,
    /// This end's half of the plan, as the machine reads it.
    pub plan: TcpSpec,
    /// Seeds the machine's generator (crafted ISNs and timestamps); drawn from the run's RNG.
    pub seed: u64,
    /// --interface: the device every socket of the punch is bound to, the raw one included.
    pub interface: Option<String>,
}

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
        rng: &mut dyn RngCore,
    ) -> TcpPunch {
        TcpPunch {
            local_port,
            peer_ip,
            deadline,
            plan: TcpSpec::for_plan(plan, syn_ttl, server_rtt),
            seed: rng.next_u64(),
            interface: None,
        }
    }

    /// The machine of this punch from `start`; `crafting`: crafted SYNs can be sent.
    pub(crate) fn machine(&self, start: Instant, crafting: bool) -> TcpPunchMachine {
        let mut rng = StdRng::seed_from_u64(self.seed);
        TcpPunchMachine::new(
            &self.plan,
            self.peer_ip,
            start,
            self.deadline,
            crafting,
            &mut rng,
        )
    }

    /// The punched address kernel sockets bind: the unspecified IP and `port`.
    pub(crate) fn bind_on(&self, port: u16) -> SocketAddr {
        SocketAddr::new(unspecified(self.peer_ip), port)
    }
}

/// A punched connection and what the punch took.
#[derive(Debug)]
pub struct TcpPunched {
    pub punched: Punched,
    /// The far public port the connection reached.
    pub port_through: u16,
    /// Its index in the plan's far ports ([`TcpSpec::far_ports`]).
    pub offset: Option<usize>,
    /// `connect()` attempts plus crafted SYNs.
    pub packets_sent: u32,
    /// True when a crafted fan-out went out.
    pub crafted: bool,
    /// RSTs the guard kept home.
    pub rsts_kept: u64,
}

impl TcpPunched {
    /// The punch's account of a connection the shell made.
    pub(crate) fn from_driven(driven: Driven, rsts_kept: u64) -> TcpPunched {
        TcpPunched {
            punched: driven.punched,
            port_through: driven.port_through,
            offset: driven.offset,
            packets_sent: driven.packets_sent,
            crafted: driven.crafted,
            rsts_kept,
        }
    }
}

/// Punches: crafted SYNs and adoption when the plan has them and the privileges allow it,
/// plain simultaneous open otherwise. `hint` gets the one-line reason when crafted SYNs are
/// skipped for lack of privileges.
pub fn punch(
    spec: &TcpPunch,
    stop: Option<&AtomicBool>,
    hint: &mut dyn FnMut(&str),
) -> Result<TcpPunched, PunchError> {
    let start = Instant::now();
    match spec.plan.part {
        TcpPart::Aim => {}
        TcpPart::Hold { sockets } => return punch_tcp_birthday::hold(spec, sockets, stop),
        TcpPart::Spray => return punch_tcp_birthday::spray(spec, stop, hint),
        // The peer connects through our port mapping: a listener on the mapped port is all.
        TcpPart::Listen => return plain(spec, spec.local_port, start, stop),
    }
    if spec.plan.far_ports.is_empty() {
        return Err(PunchError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the plan gives no far port to aim at",
        )));
    }
    if !spec.plan.crafts() {
        return plain(spec, spec.local_port, start, stop);
    }
    let raw = match open_raw(spec) {
        Ok(raw) => raw,
        Err(err @ (RawTcpError::NoCapability | RawTcpError::Io(_))) => {
            hint(&err.to_string());
            return plain(spec, spec.local_port, start, stop);
        }
    };
    // A fixed port: the guard and the crafted SYNs need it before any kernel socket exists.
    let port = punched_port(spec)?;
    match RstGuard::install(port, spec.peer_ip) {
        Ok(guard) => crafted(spec, &raw, port, guard, start, stop),
        Err(err) => {
            hint(&format!("{err:#}; falling back to plain simultaneous open"));
            plain(spec, port, start, stop)
        }
    }
}

/// The raw socket for crafted SYNs, bound to --interface's device when there is one (binding
/// it first needs no capability, so it can come after the drop).
pub(crate) fn open_raw(spec: &TcpPunch) -> Result<RawTcp, RawTcpError> {
    let raw = RawTcp::open_then_drop_caps(Family::of(spec.peer_ip), 1 << caps::CAP_NET_ADMIN)?;
    if let Some(name) = &spec.interface {
        raw.bind_device(name).map_err(RawTcpError::Io)?;
    }
    Ok(raw)
}

/// The port this punch sends from: the session's, or a free one when it has none.
pub(crate) fn punched_port(spec: &TcpPunch) -> io::Result<u16> {
    let bound =
        reusable_socket(spec.bind_on(spec.local_port), spec.interface.as_deref())?.local_addr()?;
    Ok(bound.as_socket().map_or(spec.local_port, |a| a.port()))
}

/// Plain simultaneous open from `port` (kernel sockets only).
fn plain(
    spec: &TcpPunch,
    port: u16,
    start: Instant,
    stop: Option<&AtomicBool>,
) -> Result<TcpPunched, PunchError> {
    let machine = spec.machine(start, false);
    let driven = Shell::new(machine, spec.bind_on(port), None)
        .on_device(spec.interface.as_deref())
        .run(stop)?;
    Ok(TcpPunched::from_driven(driven, 0))
}

/// The punch with crafted SYNs from `port`, the RST guard keeping our kernel's RSTs home
/// until it ends.
pub(crate) fn crafted(
    spec: &TcpPunch,
    raw: &RawTcp,
    port: u16,
    guard: RstGuard,
    start: Instant,
    stop: Option<&AtomicBool>,
) -> Result<TcpPunched, PunchError> {
    // The schedule starts once the raw socket and the guard are up, as the peer's does: the
    // peer's timing (`far_opened`, its lag) counts from its first SYN, not from its start
    // signal, and the set-up (an nft process) can take tens of milliseconds under load.
    let scheduled = Instant::now();
    let result = raw_tcp::source_ip_for(spec.peer_ip)
        .map_err(PunchError::from)
        .and_then(|lan_ip| {
            let lan = SocketAddr::new(lan_ip, port);
            let machine = spec.machine(scheduled, true);
            Shell::new(machine, spec.bind_on(port), Some((raw, lan)))
                .on_device(spec.interface.as_deref())
                .run(stop)
        });
    let rsts_kept = guard.dropped().unwrap_or(0);
    let removed = guard.remove();
    let mut driven = result?;
    // `elapsed` counts from the punch's start, the set-up included.
    driven.punched.elapsed += scheduled.saturating_duration_since(start);
    removed.map_err(|err| PunchError::Io(io::Error::other(format!("{err:#}"))))?;
    Ok(TcpPunched::from_driven(driven, rsts_kept))
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
/// the stream), then our FIN and the peer's ([`await_peer_end`]). `timeout` bounds every wait
/// for the peer (no progress for that long ends the exchange). Returns the peer's record and
/// how the exchange ended.
pub fn exchange(
    stream: &TcpStream,
    own: &DirectionRecord,
    input: Option<Box<dyn Read + Send>>,
    output: &mut dyn Write,
    timeout: Option<Duration>,
) -> (Option<DirectionRecord>, TransferEnd) {
    let started = Instant::now();
    match swap_hellos(stream, own, timeout) {
        Ok(peer) => {
            let mut end = transfer(stream, input, output);
            end.elapsed = started.elapsed();
            (Some(peer), end)
        }
        Err(err) => (None, closed_early(stream, err, started)),
    }
}

/// The hellos both ways: ours written, the peer's read (within `timeout`, which stays the
/// stream's read timeout for what follows).
pub fn swap_hellos(
    stream: &TcpStream,
    own: &DirectionRecord,
    timeout: Option<Duration>,
) -> io::Result<DirectionRecord> {
    cap_retransmission_backoff(stream);
    stream.set_read_timeout(timeout)?;
    let own_hello = hello(own);
    let mut writer = stream;
    writer.write_all(&own_hello)?;
    crate::io::pcap::tcp_sent(writer, &own_hello);
    let mut reader = stream;
    let mut peer = [0u8; HELLO_LEN];
    reader.read_exact(&mut peer)?;
    crate::io::pcap::tcp_received(reader, &peer);
    parse_hello(&peer)
}

/// The callee's verdict on a connection of a two-family race, written after its hello.
pub fn say_verdict(stream: &TcpStream, verdict: Verdict) -> io::Result<()> {
    let byte = [verdict.to_byte()];
    let mut writer = stream;
    writer.write_all(&byte)?;
    crate::io::pcap::tcp_sent(writer, &byte);
    Ok(())
}

/// How often a wait for the callee's verdict looks at its stop flag.
const VERDICT_POLL: Duration = Duration::from_millis(20);

/// The caller's read of the callee's verdict, after the hellos: gives up at `deadline`, when
/// the callee closes the connection, or (as [`io::ErrorKind::Interrupted`]) when `stop` goes
/// up because the other family's connection was kept.
pub fn hear_verdict(
    stream: &TcpStream,
    stop: &AtomicBool,
    deadline: Instant,
) -> io::Result<Verdict> {
    let restore = stream.read_timeout()?;
    stream.set_read_timeout(Some(VERDICT_POLL))?;
    let mut byte = [0u8; VERDICT_LEN];
    let heard = loop {
        if stop.load(Ordering::Relaxed) {
            break Err(io::Error::new(io::ErrorKind::Interrupted, "stopped"));
        }
        if Instant::now() >= deadline {
            break Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no verdict from the callee",
            ));
        }
        match (&*stream).read(&mut byte) {
            Ok(0) => break Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => break Ok(byte[0]),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(err) => break Err(err),
        }
    };
    stream.set_read_timeout(restore)?;
    let byte = heard?;
    crate::io::pcap::tcp_received(stream, &[byte]);
    Verdict::parse(byte).map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
}

/// After the hellos (and, in a race, the verdict): our `input` in frames to the peer and the
/// peer's frames to `output`, then our half of the stream closed. `elapsed` counts from here.
pub fn transfer(
    stream: &TcpStream,
    input: Option<Box<dyn Read + Send>>,
    output: &mut dyn Write,
) -> TransferEnd {
    let started = Instant::now();
    let mut stats = TransferStats::default();
    let result = (|| -> io::Result<()> {
        let mut writer = stream.try_clone()?;
        let mut reader = stream;
        std::thread::scope(|scope| {
            let sender = scope.spawn(move || send_frames(input, &mut writer));
            let received = receive_frames(&mut reader, output);
            output.flush()?;
            let sent = sender
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the sender panicked")));
            stats.bytes_received = received?;
            stats.bytes_sent = sent?;
            Ok(())
        })
    })();
    crate::io::pcap::tcp_shutdown(stream);
    let _ = stream.shutdown(Shutdown::Write);
    let result = result.and_then(|()| await_peer_end(stream));
    TransferEnd {
        failure: result.err().map(|err| failure_of(&err, stream)),
        stats,
        elapsed: started.elapsed(),
    }
}

/// The end of an exchange that failed before its data: our half of the stream closed.
pub fn closed_early(stream: &TcpStream, error: io::Error, started: Instant) -> TransferEnd {
    crate::io::pcap::tcp_shutdown(stream);
    let _ = stream.shutdown(Shutdown::Write);
    TransferEnd {
        failure: Some(failure_of(&error, stream)),
        stats: TransferStats::default(),
        elapsed: started.elapsed(),
    }
}

/// After our FIN, the peer's: it sends it once it has read our empty frame, so only then has
/// everything we wrote arrived. Without this wait an end that had read the peer's whole stream
/// reported "complete" and exited while its own last segments were still being retransmitted
/// (under 10% loss per link, for seconds), and the peer then timed out short of them.
fn await_peer_end(mut reader: &TcpStream) -> io::Result<()> {
    let mut rest = [0u8; 64];
    loop {
        match reader.read(&mut rest) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                crate::io::pcap::tcp_received(reader, &rest[..n]);
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the peer sent data after its stream's end",
                ));
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

/// What the report says about an exchange that failed: a read timeout (EAGAIN from a socket
/// with SO_RCVTIMEO) in words.
fn failure_of(err: &io::Error, stream: &TcpStream) -> String {
    match (err.kind(), stream.read_timeout().ok().flatten()) {
        (io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut, Some(timeout)) => format!(
            "nothing from the peer for {}",
            humantime::format_duration(timeout)
        ),
        (io::ErrorKind::UnexpectedEof, _) => "the peer ended the stream early".into(),
        _ => err.to_string(),
    }
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
            crate::io::pcap::tcp_sent(writer, &len.to_be_bytes());
            writer.write_all(&buf[..n])?;
            crate::io::pcap::tcp_sent(writer, &buf[..n]);
            sent += n as u64;
        }
    }
    writer.write_all(&0u32.to_be_bytes())?;
    crate::io::pcap::tcp_sent(writer, &0u32.to_be_bytes());
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
        crate::io::pcap::tcp_received(*reader, &len);
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
        crate::io::pcap::tcp_received(*reader, &buf[..len]);
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

    /// `TCP_RTO_MAX_MS` as this kernel sees it on `stream` (None: the kernel lacks it).
    fn rto_max_ms(stream: &TcpStream) -> Option<libc::c_int> {
        use std::os::fd::AsRawFd;
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt(2) writes at most `len` bytes into `value`, which lives here.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                TCP_RTO_MAX_MS,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (rc == 0).then_some(value)
    }

    #[test]
    fn the_exchange_caps_the_retransmission_backoff_where_the_kernel_can() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        if rto_max_ms(&stream).is_none() {
            eprintln!("SKIPPED: this kernel has no TCP_RTO_MAX_MS (Linux 6.15+)");
            return;
        }
        cap_retransmission_backoff(&stream);
        assert_eq!(rto_max_ms(&stream), Some(EXCHANGE_RTO_MAX_MS));
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
