//! Kernel TCP simultaneous open through two NATs, and the shell that carries out a
//! [`TcpPunchMachine`]: the machine decides (which SYN goes when, when our kernel connects,
//! what is adopted, when to give up); this loop owns the sockets and the clock.
//!
//! Two kinds of kernel socket share the punched port (both with SO_REUSEADDR and SO_REUSEPORT,
//! the only way Linux lets a connecting socket share a port with a listener):
//!
//! * a connecting socket that `connect()`s to the peer's (predicted) public address again and
//!   again until it connects or the deadline passes. Both ends doing this is the classic
//!   simultaneous open: SYN out, SYN in, SYN-ACK both ways, ACK; conntrack follows it, and when
//!   one side is late its SYN matches the early side's entry and the handshake completes.
//! * a listener, for a peer SYN that arrives while our connecting socket is between attempts
//!   (or from another far port, through a full-cone NAT). It accepts only from the peer's IP.
//!
//! With crafted SYNs ([`crate::io::raw_tcp`]) there is no listener: the peer's SYN (or SYN-ACK)
//! on a crafted 4-tuple is adopted by a socket that continues from the crafted ISN
//! ([`crate::io::adopt`]), since our NAT tracks that tuple's sequence numbers.
//!
//! Whichever yields a connection first wins.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::core::punch::tcp::{
    Bind, Command, ConnectResult, SeenSegment, SocketId, SynRecord, TcpOutcome, TcpPunchMachine,
    Won,
};
use crate::io::adopt;
use crate::io::raw_tcp::{self, CraftedSyn, FanoutReport, RawTcp};
use crate::wire::tcp_syn::SegmentRepr;

pub use crate::core::punch::tcp::{ATTEMPT, BACKOFF_FIRST, BACKOFF_MAX};

/// Longest a poll waits, so that a stop flag is seen promptly.
const POLL_SLICE: Duration = Duration::from_millis(50);

/// Where the connection came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Our `connect()` completed (plain or simultaneous open).
    Connect,
    /// The listener accepted the peer's SYN.
    Accept,
    /// The peer's SYN came in on a 4-tuple a crafted SYN opened, and a socket adopted it
    /// ([`crate::io::adopt`]).
    Adopt,
}

/// A punched connection.
#[derive(Debug)]
pub struct Punched {
    /// Blocking, connected.
    pub stream: TcpStream,
    pub via: Via,
    /// `connect()` calls made (the first included).
    pub attempts: u32,
    pub elapsed: Duration,
}

/// Why no connection came.
#[derive(Debug)]
pub enum PunchError {
    /// The deadline passed; the last error an attempt got, if any.
    TimedOut {
        attempts: u32,
        last_error: Option<io::Error>,
    },
    /// The stop flag went up.
    Stopped,
    /// A local failure retrying cannot fix (bad address, out of descriptors…).
    Io(io::Error),
}

impl std::fmt::Display for PunchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PunchError::TimedOut {
                attempts,
                last_error: Some(err),
            } => write!(
                f,
                "no TCP connection after {attempts} attempts (last: {err})"
            ),
            PunchError::TimedOut { attempts, .. } => {
                write!(f, "no TCP connection after {attempts} attempts")
            }
            PunchError::Stopped => f.write_str("interrupted"),
            PunchError::Io(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for PunchError {}

impl From<io::Error> for PunchError {
    fn from(err: io::Error) -> Self {
        PunchError::Io(err)
    }
}

/// A TCP socket bound to `local` with SO_REUSEADDR and SO_REUSEPORT, ready to connect or
/// listen.
pub fn reusable_socket(local: SocketAddr, device: Option<&str>) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(local), Type::STREAM, None)?;
    if let Some(name) = device {
        // --interface: the first binding of a fresh socket needs no CAP_NET_RAW (Linux 5.7+),
        // so it works after the punch dropped its capabilities.
        socket.bind_device(Some(name.as_bytes()))?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&local.into())?;
    crate::io::pcap::watch_tcp(&socket);
    Ok(socket)
}

/// The unspecified address of `ip`'s family.
pub fn unspecified(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// A simultaneous open in preparation: the listener holds the punched port from the start,
/// so a peer SYN that comes early already finds it.
#[derive(Debug)]
pub struct SimOpen {
    listener: Option<TcpListener>,
    local: SocketAddr,
    peer: SocketAddr,
    /// How long one connecting socket lives ([`ATTEMPT`] unless changed).
    attempt: Duration,
}

impl SimOpen {
    /// Binds the listener on `local` (port 0: an ephemeral port, see [`SimOpen::local_addr`])
    /// for a connection to `peer`.
    pub fn bind(local: SocketAddr, peer: SocketAddr) -> io::Result<SimOpen> {
        let listener = listener_on(local, None)?;
        let local = listener.local_addr()?;
        Ok(SimOpen {
            listener: Some(listener),
            local,
            peer,
            attempt: ATTEMPT,
        })
    }

    /// Only the connecting socket, no listener (plain simultaneous open).
    pub fn connect_only(local: SocketAddr, peer: SocketAddr) -> SimOpen {
        SimOpen {
            listener: None,
            local,
            peer,
            attempt: ATTEMPT,
        }
    }

    /// Keeps each connecting socket this long instead of [`ATTEMPT`]. A socket kept to the
    /// deadline retransmits its SYN with the same sequence number: what a peer's crafted
    /// fan-out needs when its SYN reached our NAT's entry first (conntrack then expects our
    /// next SYN to continue the first; a fresh socket's would be INVALID there).
    pub fn attempt_every(mut self, attempt: Duration) -> SimOpen {
        self.attempt = attempt.max(Duration::from_millis(1));
        self
    }

    /// The punched local address (the port actually bound).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Connects (and accepts) until a connection with the peer exists, `deadline` passes or
    /// `stop` goes up.
    pub fn run(self, deadline: Instant, stop: Option<&AtomicBool>) -> Result<Punched, PunchError> {
        self.drive(deadline, stop, None, &[])
    }

    /// Like [`SimOpen::run`], and also adopts a connection when the peer's SYN arrives on one
    /// of the 4-tuples a crafted fan-out opened (`fanout`, sent from `local_ip` and this
    /// punched port by `raw`). Use it with [`SimOpen::connect_only`]: a listener on the port
    /// would take the peer's SYN first (see [`crate::io::adopt`]), and with an RST guard.
    pub fn run_adopting(
        self,
        deadline: Instant,
        stop: Option<&AtomicBool>,
        raw: &RawTcp,
        fanout: &FanoutReport,
        local_ip: IpAddr,
    ) -> Result<Punched, PunchError> {
        let sent: Vec<SynRecord> = fanout.syns.iter().map(|&syn| record(syn)).collect();
        let lan = SocketAddr::new(local_ip, self.local.port());
        self.drive(deadline, stop, Some((raw, lan)), &sent)
    }

    fn drive(
        self,
        deadline: Instant,
        stop: Option<&AtomicBool>,
        raw: Option<(&RawTcp, SocketAddr)>,
        sent: &[SynRecord],
    ) -> Result<Punched, PunchError> {
        let start = Instant::now();
        let listen = self.listener.is_some();
        let machine = TcpPunchMachine::simultaneous_open(
            self.peer,
            listen,
            self.attempt,
            sent,
            start,
            deadline,
        );
        let mut shell = Shell::new(machine, self.local, raw);
        shell.listener = self.listener;
        shell.run(stop).map(|done| done.punched)
    }
}

/// A listening, non-blocking socket on `local`, sharing the port.
fn listener_on(local: SocketAddr, device: Option<&str>) -> io::Result<TcpListener> {
    let socket = reusable_socket(local, device)?;
    socket.listen(16)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from(socket))
}

/// The machine's record of a crafted SYN sent by [`RawTcp::send_fanout`].
fn record(syn: CraftedSyn) -> SynRecord {
    SynRecord {
        port: syn.port,
        isn: syn.isn,
        tsval: syn.tsval,
    }
}

/// A connection the shell made, with the machine's account of it.
#[derive(Debug)]
pub struct Driven {
    pub punched: Punched,
    pub port_through: u16,
    pub offset: Option<usize>,
    pub packets_sent: u32,
    pub crafted: bool,
}

/// The sockets of one punch and the loop that feeds them to its machine.
pub struct Shell<'a> {
    machine: TcpPunchMachine,
    /// The punched address kernel sockets bind (unspecified IP, the punched port).
    local: SocketAddr,
    /// The raw socket and our LAN address on the crafted 4-tuples.
    raw: Option<(&'a RawTcp, SocketAddr)>,
    /// The device every kernel socket is bound to (--interface), if any.
    device: Option<String>,
    listener: Option<TcpListener>,
    /// Connecting sockets, with where each is bound.
    sockets: Vec<(SocketId, Socket, Bind)>,
    last_error: Option<io::Error>,
    /// The segment an adoption answers (the last one fed).
    adopting: Option<SegmentRepr>,
    accepted: Option<TcpStream>,
}

impl<'a> Shell<'a> {
    /// `local`: the punched port (unspecified IP); `raw`: crafted SYNs from the LAN address.
    pub fn new(
        machine: TcpPunchMachine,
        local: SocketAddr,
        raw: Option<(&'a RawTcp, SocketAddr)>,
    ) -> Shell<'a> {
        Shell {
            machine,
            local,
            raw,
            device: None,
            listener: None,
            sockets: Vec::new(),
            last_error: None,
            adopting: None,
            accepted: None,
        }
    }

    /// Binds every kernel socket of the punch to `device` (--interface), if any.
    pub fn on_device(mut self, device: Option<&str>) -> Shell<'a> {
        self.device = device.map(str::to_owned);
        self
    }

    /// Carries out the machine until it connects, gives up or `stop` goes up.
    pub fn run(mut self, stop: Option<&AtomicBool>) -> Result<Driven, PunchError> {
        loop {
            if stop.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
                return Err(PunchError::Stopped);
            }
            self.carry_out()?;
            match self.machine.outcome() {
                Some(&TcpOutcome::Connected { .. }) => return self.connected(),
                Some(&TcpOutcome::TimedOut { attempts }) => {
                    return Err(PunchError::TimedOut {
                        attempts,
                        last_error: self.last_error.take(),
                    })
                }
                None => {}
            }
            self.wait_and_feed()?;
            self.machine.handle_timeout(Instant::now());
        }
    }

    /// Sends the due SYNs and does what the machine asks, until it asks nothing more.
    fn carry_out(&mut self) -> Result<(), PunchError> {
        while let Some(transmit) = self.machine.poll_transmit() {
            if let Some((raw, lan)) = self.raw {
                let (syn, _) = raw_tcp::syn_with(
                    lan,
                    transmit.to,
                    transmit.ttl,
                    transmit.syn.isn,
                    transmit.syn.tsval,
                );
                // A SYN the kernel would not take counts as sent: like a lost one, the
                // resend rounds (or the other flows) cover it.
                let _ = raw.send(&syn);
            }
        }
        while let Some(command) = self.machine.poll_command() {
            match command {
                Command::Listen if self.listener.is_none() => {
                    let listener = listener_on(self.local, self.device.as_deref())?;
                    // Port 0 picked a port: the connecting sockets share it.
                    self.local = listener.local_addr()?;
                    self.listener = Some(listener);
                }
                Command::Listen => {}
                Command::Connect { socket, bind, to } => self.connect(socket, bind, to)?,
                Command::Close { socket } => self.sockets.retain(|(id, _, _)| *id != socket),
                Command::CheckHandshaking { socket } => {
                    let handshaking = self
                        .socket(socket)
                        .is_some_and(|s| tcp_state(s) == Some(TCP_SYN_RECV));
                    let now = Instant::now();
                    self.machine.handle_socket_state(now, socket, handshaking);
                }
            }
        }
        Ok(())
    }

    fn socket(&self, id: SocketId) -> Option<&Socket> {
        self.sockets
            .iter()
            .find(|(s, _, _)| *s == id)
            .map(|(_, s, _)| s)
    }

    /// A non-blocking `connect()`; a failure at once goes back to the machine.
    fn connect(&mut self, id: SocketId, bind: Bind, to: SocketAddr) -> Result<(), PunchError> {
        let socket = match bind {
            Bind::Punched => reusable_socket(self.local, self.device.as_deref())?,
            Bind::Any => Socket::new(Domain::for_address(to), Type::STREAM, None)?,
        };
        socket.set_nonblocking(true)?;
        match socket.connect(&SockAddr::from(to)) {
            Ok(()) => {}
            Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(err) if bind == Bind::Any || is_retryable(&err) => {
                self.last_error = Some(err);
                let now = Instant::now();
                self.machine.handle_connect(now, id, ConnectResult::Failed);
                return Ok(());
            }
            Err(err) => return Err(err.into()),
        }
        // A socket bound by connect() has its port only now (its SYN left already: the
        // capture holds frames long enough for this late registration).
        crate::io::pcap::watch_tcp(&socket);
        self.sockets.push((id, socket, bind));
        Ok(())
    }

    /// Polls the listener, the sniffer and the connecting sockets until one is ready or the
    /// machine's next timer is due, and feeds what happened to the machine.
    fn wait_and_feed(&mut self) -> Result<(), PunchError> {
        let ready = self.wait()?;
        let mut fds = ready.iter();
        if self.listener.is_some() && fds.next().is_some_and(|&r| r) {
            self.accept_all()?;
        }
        if self.raw.is_some() && fds.next().is_some_and(|&r| r) {
            self.read_sniffer()?;
        }
        let writable: Vec<SocketId> = self
            .sockets
            .iter()
            .zip(fds)
            .filter(|(_, &r)| r)
            .map(|((id, _, _), _)| *id)
            .collect();
        for id in writable {
            if self.machine.outcome().is_some() {
                break;
            }
            self.finish_connect(id)?;
        }
        Ok(())
    }

    /// Which of listener, sniffer, sockets (in that order, those present) are ready.
    fn wait(&self) -> io::Result<Vec<bool>> {
        let now = Instant::now();
        let due = self.machine.poll_timeout().unwrap_or(now);
        let timeout = due.saturating_duration_since(now).min(POLL_SLICE);
        let mut fds = Vec::with_capacity(self.sockets.len() + 2);
        if let Some(listener) = &self.listener {
            fds.push(pollfd(listener.as_raw_fd(), libc::POLLIN));
        }
        if let Some((raw, _)) = self.raw {
            fds.push(pollfd(raw.sniffer_fd(), libc::POLLIN));
        }
        for (_, socket, _) in &self.sockets {
            fds.push(pollfd(socket.as_raw_fd(), libc::POLLOUT));
        }
        let spec = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: ppoll(2) on a vector of pollfd we own, with its exact length, and a timespec.
        let rc = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &spec,
                std::ptr::null(),
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(vec![false; fds.len()]);
            }
            return Err(err);
        }
        Ok(fds.iter().map(|fd| fd.revents != 0).collect())
    }

    /// Accepts pending connections and tells the machine; keeps the one it takes, closes
    /// the others (a stranger reaching the port through a full-cone NAT).
    fn accept_all(&mut self) -> io::Result<()> {
        let Some(listener) = &self.listener else {
            return Ok(());
        };
        loop {
            match listener.accept() {
                Ok((stream, from)) => {
                    self.machine.handle_accepted(Instant::now(), from);
                    if self.machine.outcome().is_some() {
                        self.accepted = Some(stream);
                        return Ok(());
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) if is_retryable(&err) => return Ok(()),
                Err(err) => return Err(err),
            }
        }
    }

    /// Feeds what the sniffer saw on our punched port to the machine, until it adopts.
    fn read_sniffer(&mut self) -> io::Result<()> {
        let Some((raw, lan)) = self.raw else {
            return Ok(());
        };
        let peer_ip = self.machine.peer_ip();
        while let Some(segment) = raw.recv_from(peer_ip, lan.ip())? {
            if segment.dst.port() != lan.port() {
                continue;
            }
            let seen = SeenSegment {
                src: segment.src,
                dst: segment.dst,
                kind: segment.kind(),
                seq: segment.seq,
                ack: segment.ack,
            };
            self.machine.handle_segment(Instant::now(), &seen);
            if self.machine.outcome().is_some() {
                self.adopting = Some(segment);
                return Ok(());
            }
        }
        Ok(())
    }

    /// A connecting socket became writable: connected, or failed.
    fn finish_connect(&mut self, id: SocketId) -> Result<(), PunchError> {
        let Some((_, socket, bind)) = self.sockets.iter().find(|(s, _, _)| *s == id) else {
            return Ok(());
        };
        let result = match socket.take_error()? {
            None if socket.peer_addr().is_ok() => ConnectResult::Connected,
            // Spurious wake-up: still connecting.
            None => return Ok(()),
            // A holding socket's failure (reset, timed out) ends only that socket.
            Some(err) if *bind == Bind::Any || is_retryable(&err) => {
                self.last_error = Some(err);
                ConnectResult::Failed
            }
            Some(err) => return Err(err.into()),
        };
        self.machine.handle_connect(Instant::now(), id, result);
        Ok(())
    }

    /// The connection the machine chose, as a blocking stream.
    fn connected(mut self) -> Result<Driven, PunchError> {
        let Some(&TcpOutcome::Connected {
            won,
            port_through,
            offset,
            packets_sent,
            attempts,
            crafted,
            elapsed,
        }) = self.machine.outcome()
        else {
            unreachable!("called once connected");
        };
        let (stream, via) = match won {
            Won::Connect(id) => {
                let index = self.sockets.iter().position(|(s, _, _)| *s == id);
                let (_, socket, _) = self.sockets.swap_remove(index.expect("a live socket"));
                (TcpStream::from(socket), Via::Connect)
            }
            Won::Accept(_) => (self.accepted.take().expect("accepted"), Via::Accept),
            Won::Adopt { syn, .. } => {
                let (raw, lan) = self.raw.expect("adoption needs the raw socket");
                let segment = self.adopting.take().expect("the adopted segment");
                let crafted = CraftedSyn {
                    port: syn.port,
                    isn: syn.isn,
                    tsval: syn.tsval,
                };
                (
                    adopt::adopt(raw, lan, &segment, crafted, self.device.as_deref())?,
                    Via::Adopt,
                )
            }
        };
        if via == Via::Accept {
            crate::io::pcap::tcp_accepted(&stream);
        } else {
            crate::io::pcap::tcp_connected(&stream);
        }
        stream.set_nonblocking(false)?;
        Ok(Driven {
            punched: Punched {
                stream,
                via,
                attempts,
                elapsed,
            },
            port_through,
            offset,
            packets_sent,
            crafted,
        })
    }
}

fn pollfd(fd: libc::c_int, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Errors that a later attempt may not meet: the peer's side was not ready (refused, reset,
/// unreachable while its NAT had no mapping), or our 4-tuple was still held by an old
/// connection (EADDRNOTAVAIL/EADDRINUSE while it sits in TIME_WAIT).
fn is_retryable(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::ECONNRESET
                | libc::ECONNABORTED
                | libc::ETIMEDOUT
                | libc::EADDRNOTAVAIL
                | libc::EADDRINUSE
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EAGAIN
        )
    )
}

/// `TCP_SYN_RECV` in linux/tcp_states.h.
const TCP_SYN_RECV: u8 = 3;

/// The kernel's TCP state of a socket (TCP_INFO), if it can be read.
fn tcp_state(socket: &Socket) -> Option<u8> {
    // SAFETY: an all-zero tcp_info is valid; getsockopt(2) writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(info.tcpi_state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn loopback(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn two_sockets_connecting_to_each_other_on_loopback_meet() {
        // Ports from a listener that is dropped at once: free, and unlikely to be reused.
        let ports: Vec<u16> = (0..2)
            .map(|_| {
                TcpListener::bind(loopback(0))
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        let a = SimOpen::bind(loopback(ports[0]), loopback(ports[1])).unwrap();
        let b = SimOpen::bind(loopback(ports[1]), loopback(ports[0])).unwrap();
        let other = std::thread::spawn(move || b.run(deadline, None).unwrap());
        let mut mine = a.run(deadline, None).unwrap();
        let mut theirs = other.join().unwrap();
        assert_eq!(mine.stream.peer_addr().unwrap(), loopback(ports[1]));
        mine.stream.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        theirs.stream.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }

    #[test]
    fn refused_attempts_back_off_until_the_deadline() {
        let port = TcpListener::bind(loopback(0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let started = Instant::now();
        let err = SimOpen::connect_only(loopback(0), loopback(port))
            .run(started + Duration::from_millis(600), None)
            .unwrap_err();
        let PunchError::TimedOut {
            attempts,
            last_error,
        } = err
        else {
            panic!("{err}");
        };
        // 50 + 100 + 200 ms of backoff fit in 600 ms, 50 + … + 400 do not.
        assert!((3..=5).contains(&attempts), "{attempts}");
        assert_eq!(last_error.unwrap().kind(), io::ErrorKind::ConnectionRefused);
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_stop_flag_ends_the_punch() {
        let stop = AtomicBool::new(true);
        let open = SimOpen::bind(loopback(0), loopback(9)).unwrap();
        let err = open
            .run(Instant::now() + Duration::from_secs(5), Some(&stop))
            .unwrap_err();
        assert!(matches!(err, PunchError::Stopped));
    }

    #[test]
    fn the_listener_takes_a_connection_from_the_peer_ip() {
        // The "peer" connects to our listener; our own connect() goes to a closed port.
        let open = SimOpen::bind(loopback(0), loopback(9)).unwrap();
        let local = open.local_addr();
        let client = std::thread::spawn(move || TcpStream::connect(local).unwrap());
        let punched = open
            .run(Instant::now() + Duration::from_secs(5), None)
            .unwrap();
        assert_eq!(punched.via, Via::Accept);
        drop(client.join().unwrap());
    }

    #[test]
    fn timeouts_fit_together() {
        assert!(BACKOFF_FIRST < BACKOFF_MAX);
        assert!(BACKOFF_MAX < ATTEMPT);
    }
}
