//! The shell of the TTL-limited path probe ([`crate::core::path`]): one UDP socket sends a
//! Binding request per TTL, all at once, and a thread collects the server's answers and the
//! ICMP time-exceeded errors the kernel queues on the socket (IP_RECVERR / IPV6_RECVERR, see
//! [`crate::io::icmp`]: no privilege needed, and the kernel attributes each error to the
//! socket whose packet it quotes, so a raw ICMP socket would add nothing).
//!
//! The requests leave in [`start`], before the caller starts anything else: on a sequential
//! NAT the probe's one flow then takes its port before the fingerprint's samples, never
//! between two of them. One socket means one flow, so the probe costs one mapping per NAT.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use rand::RngCore;

use crate::core::path::{Hop, IcmpReport, PathProbe};
use crate::io::icmp;
use crate::io::source::Source;

/// Longest the probe waits for answers, counted from sending.
pub const DEFAULT_WAIT: Duration = Duration::from_millis(1000);

/// After the server answered, how long a lower hop that is still silent gets: the server's
/// round trip again, at least this.
const MIN_GRACE: Duration = Duration::from_millis(20);

/// Tries per request: each queued ICMP error fails one call, and more than a few arriving
/// between two sends of a burst would be odd.
const SEND_ATTEMPTS: usize = 4;

/// How long the probe goes on once its caller has finished (see [`Running::finish`]).
pub const FINISH_GRACE: Duration = Duration::from_millis(100);

/// How often the collecting thread looks whether its caller has finished.
const HURRY_CHECK: Duration = Duration::from_millis(10);

/// Largest datagram read; a STUN answer is far smaller.
const MAX_DATAGRAM: usize = 1500;

/// A probe whose requests are out and whose answers a thread is collecting.
pub struct Running {
    local_ip: IpAddr,
    /// Set by [`Running::finish`]: the caller is done, so the probe stops soon after.
    hurry: Arc<AtomicBool>,
    thread: JoinHandle<Finished>,
}

/// What the probe found.
#[derive(Debug, Clone)]
pub struct Finished {
    pub hops: Vec<Hop>,
    /// Answers and errors that matched none of the requests.
    pub ignored: u32,
    /// This host's address toward the server (the probe socket's).
    pub local_ip: IpAddr,
}

/// Sends the requests of TTLs 1..=`max_ttl` to `server` from `source` (a fresh port), and
/// starts collecting the answers for at most `wait`.
pub fn start(
    server: SocketAddr,
    source: &Source,
    max_ttl: u8,
    wait: Duration,
    rng: &mut dyn RngCore,
) -> io::Result<Running> {
    let source = source.port_free();
    let local_ip = source.local_ip_toward(server)?;
    let raw = socket2::Socket::new(
        socket2::Domain::for_address(server),
        socket2::Type::DGRAM,
        None,
    )?;
    source.bind_at(&raw, local_ip)?;
    icmp::enable(&raw, server.is_ipv6())?;
    raw.set_nonblocking(true)?;
    let std: StdUdpSocket = raw.into();
    crate::io::pcap::watch_udp(&std);
    let mut probe = PathProbe::new(server, max_ttl, rng);
    let started = Instant::now();
    while let Some(transmit) = probe.poll_transmit(Instant::now()) {
        set_ttl(&std, server.is_ipv6(), transmit.ttl)?;
        crate::io::pcap::udp_sent(&std, Some(server), &transmit.payload);
        send(&std, &transmit.payload, server);
    }
    let deadline = started + wait;
    let hurry = Arc::new(AtomicBool::new(false));
    let thread = std::thread::Builder::new()
        .name("path-probe".into())
        .spawn({
            let hurry = Arc::clone(&hurry);
            move || collect(probe, std, deadline, local_ip, &hurry)
        })?;
    Ok(Running {
        local_ip,
        hurry,
        thread,
    })
}

impl Running {
    /// This host's address toward the server.
    pub fn local_ip(&self) -> IpAddr {
        self.local_ip
    }

    /// Waits for the collecting thread: at most [`FINISH_GRACE`] more (the caller's own work,
    /// which ran meanwhile, is over: a hop still silent by then is taken as silent), and never
    /// past the probe's deadline.
    pub fn finish(self) -> Finished {
        self.hurry.store(true, Ordering::Relaxed);
        let local_ip = self.local_ip;
        self.thread.join().unwrap_or(Finished {
            hops: Vec::new(),
            ignored: 0,
            local_ip,
        })
    }
}

/// Sends one request. The time exceeded a lower TTL's request already drew (on a LAN it
/// comes back within microseconds) makes the next send fail once with its errno
/// (EHOSTUNREACH): that failure is the error queue's news, not this request's, so the send is
/// tried again. A request that still fails is lost: its hop stays silent.
fn send(socket: &StdUdpSocket, payload: &[u8], server: SocketAddr) {
    for _ in 0..SEND_ATTEMPTS {
        match socket.send_to(payload, server) {
            Ok(_) => return,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => continue,
        }
    }
}

fn set_ttl(socket: &StdUdpSocket, ipv6: bool, ttl: u8) -> io::Result<()> {
    let socket = socket2::SockRef::from(socket);
    if ipv6 {
        socket.set_unicast_hops_v6(u32::from(ttl))
    } else {
        socket.set_ttl(u32::from(ttl))
    }
}

/// Reads answers and queued errors until the probe is done, the server's answer has had its
/// grace, or `deadline`.
fn collect(
    mut probe: PathProbe,
    std: StdUdpSocket,
    deadline: Instant,
    local_ip: IpAddr,
    hurry: &AtomicBool,
) -> Finished {
    let sent_at = Instant::now();
    let mut socket = UdpSocket::from_std(std);
    let mut events = Events::with_capacity(4);
    let poll = Poll::new().and_then(|poll| {
        poll.registry()
            .register(&mut socket, Token(0), Interest::READABLE)?;
        Ok(poll)
    });
    let Ok(mut poll) = poll else {
        return finished(&probe, local_ip);
    };
    let mut stop = deadline;
    let mut hurried = false;
    loop {
        let now = Instant::now();
        if !hurried && hurry.load(Ordering::Relaxed) {
            hurried = true;
            stop = stop.min(now + FINISH_GRACE);
        }
        if probe.is_done() || now >= stop {
            break;
        }
        let wait =
            crate::io::poll::wait_until(&mut poll, &mut events, now, Some(stop), Some(HURRY_CHECK));
        if wait.is_err() {
            break;
        }
        let had_server = probe.server_ttl().is_some();
        drain(&mut probe, &socket);
        if !had_server && probe.server_ttl().is_some() {
            let rtt = Instant::now().saturating_duration_since(sent_at);
            stop = stop.min(Instant::now() + rtt.max(MIN_GRACE));
        }
    }
    finished(&probe, local_ip)
}

fn finished(probe: &PathProbe, local_ip: IpAddr) -> Finished {
    Finished {
        hops: probe.hops(),
        ignored: probe.ignored(),
        local_ip,
    }
}

/// Everything waiting: datagrams (edge-triggered readiness: until WouldBlock) and the error
/// queue, whose entries make a receive fail once each with their errno.
fn drain(probe: &mut PathProbe, socket: &UdpSocket) {
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut errors = 0;
    while errors < 16 {
        match socket.recv_from(&mut buf) {
            Ok((len, from)) => {
                crate::io::pcap::udp_received(socket, Some(from), &buf[..len]);
                probe.handle_datagram(from, &buf[..len], Instant::now());
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => errors += 1,
        }
    }
    for error in icmp::read_errors(socket.as_raw_fd()) {
        let report = IcmpReport {
            icmp: error.icmp,
            icmp_type: error.icmp_type,
            offender: error.offender,
            to: error.to,
            quote: &error.quote,
        };
        probe.handle_icmp(report, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Over loopback the server is the first hop: TTL (hop limit) 1 reaches it, and its
    /// answer ends the probe long before the deadline. IPv4 and IPv6.
    #[test]
    fn a_loopback_server_is_hop_one() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let server = StdUdpSocket::bind(bind).unwrap();
            let addr = server.local_addr().unwrap();
            let echo = std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                for _ in 0..3 {
                    let (len, from) = server.recv_from(&mut buf).unwrap();
                    // A Binding success with the request's transaction ID.
                    buf[..2].copy_from_slice(&0x0101u16.to_be_bytes());
                    server.send_to(&buf[..len], from).unwrap();
                }
            });
            let mut rng = rand::rngs::mock::StepRng::new(7, 11);
            let started = Instant::now();
            let running = start(addr, &Source::default(), 3, DEFAULT_WAIT, &mut rng).unwrap();
            let finished = running.finish();
            echo.join().unwrap();
            let took = started.elapsed();
            assert!(took < DEFAULT_WAIT / 2, "{bind}: {took:?}");
            assert_eq!(finished.hops.len(), 1, "{bind}: {:?}", finished.hops);
            assert!(finished.hops[0].server, "{bind}");
            assert_eq!(finished.hops[0].address, Some(addr.ip()));
            assert_eq!(finished.local_ip, addr.ip());
            assert_eq!(finished.ignored, 0, "{bind}");
        }
    }

    /// Nothing on the port: the port unreachable the kernel queues names the server's host as
    /// the last hop, and the probe ends at once.
    #[test]
    fn a_closed_port_ends_the_probe_at_once() {
        let closed = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let mut rng = rand::rngs::mock::StepRng::new(3, 5);
        let started = Instant::now();
        let finished = start(addr, &Source::default(), 4, DEFAULT_WAIT, &mut rng)
            .unwrap()
            .finish();
        assert!(
            started.elapsed() < DEFAULT_WAIT / 2,
            "{:?}",
            started.elapsed()
        );
        assert_eq!(finished.hops.len(), 1, "{:?}", finished.hops);
        assert!(finished.hops[0].server);
    }

    /// A server that never answers: once the caller finishes, the probe stops within its
    /// grace, not at its deadline, and every hop it probed is silent.
    #[test]
    fn finishing_cuts_a_silent_probe_short() {
        let silent = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let mut rng = rand::rngs::mock::StepRng::new(9, 13);
        let started = Instant::now();
        let finished = start(addr, &Source::default(), 3, DEFAULT_WAIT, &mut rng)
            .unwrap()
            .finish();
        let took = started.elapsed();
        assert!(took >= FINISH_GRACE && took < DEFAULT_WAIT / 2, "{took:?}");
        assert_eq!(finished.hops.len(), 3, "{:?}", finished.hops);
        assert!(finished.hops.iter().all(|h| h.address.is_none()));
        drop(silent);
    }
}
