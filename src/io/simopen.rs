//! Kernel TCP simultaneous open through two NATs: a real connection made by kernel sockets on
//! the punched port.
//!
//! Two sockets share the punched port (both with SO_REUSEADDR and SO_REUSEPORT, the only way
//! Linux lets a connecting socket share a port with a listener):
//!
//! * a connecting socket that `connect()`s to the peer's (predicted) public address again and
//!   again until it connects or the deadline passes. Both ends doing this is the classic
//!   simultaneous open: SYN out, SYN in, SYN-ACK both ways, ACK; conntrack follows it, and when
//!   one side is late its SYN matches the early side's entry and the handshake completes.
//! * a listener, for a peer SYN that arrives while our connecting socket is between attempts
//!   (or from another far port, through a full-cone NAT). It accepts only from the peer's IP.
//!
//! With a crafted SYN fan-out ([`crate::io::raw_tcp`]), [`SimOpen::run_adopting`] replaces the
//! listener: the peer's SYN (or SYN-ACK) on a crafted 4-tuple is adopted by a socket that
//! continues from the crafted ISN ([`crate::io::adopt`]), since our NAT tracks that tuple's
//! sequence numbers.
//!
//! Whichever yields a connection first wins.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::io::adopt;
use crate::io::raw_tcp::{CraftedSyn, FanoutReport, RawTcp};
use crate::wire::tcp_syn::SegmentKind;

/// How long one connecting socket waits before it is closed and a new one sent. The kernel's
/// first SYN retransmission comes after 1 s (TCP_TIMEOUT_INIT) and the next after 3 s more; a
/// fresh socket every second keeps re-sending at the first pace instead of backing off, which
/// matters when the peer's NAT opens its hole a little after our first SYN. Closing a socket in
/// SYN_SENT sends nothing and keeps the conntrack entry (and so the NAT mapping).
pub const ATTEMPT: Duration = Duration::from_secs(1);

/// First wait after an attempt that failed at once (refused, unreachable, address not yet
/// free); doubled after each such failure up to [`BACKOFF_MAX`]. A refusal means something
/// answered for the peer's address (its NAT or its host, before its socket exists): retrying at
/// once would only draw the same answer.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(50);

/// Longest wait between attempts after failures: well under [`ATTEMPT`], so a refusal that
/// stops costs at most this much of the punch.
pub const BACKOFF_MAX: Duration = Duration::from_millis(800);

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
pub fn reusable_socket(local: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(local), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&local.into())?;
    Ok(socket)
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
        let socket = reusable_socket(local)?;
        socket.listen(16)?;
        socket.set_nonblocking(true)?;
        let listener = TcpListener::from(socket);
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
        Loop::new(self, deadline, None).run(stop)
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
        // A fan-out already sent: every record filed up front, nothing holding connect() back.
        let (file, filed) = mpsc::channel();
        for syn in &fanout.syns {
            let _ = file.send(*syn);
        }
        let sent = AtomicBool::new(true);
        self.run_adopting_while_fanning(
            deadline,
            stop,
            raw,
            Fanning { filed, sent: &sent },
            local_ip,
        )
    }

    /// Like [`SimOpen::run_adopting`] while the crafted fan-out is still being sent (on another
    /// thread, [`RawTcp::send_fanout_filing`]): each SYN's record comes through `fanning.filed`
    /// before the SYN leaves, so the peer's SYN is adopted the moment it arrives instead of
    /// after the whole fan-out (255 SYNs at 1,000/s would add a quarter of a second). Our own
    /// `connect()` waits for `fanning.sent`: on a symmetric NAT of ours, its flow must take its
    /// public port after every crafted one, as the plan predicted.
    pub fn run_adopting_while_fanning(
        self,
        deadline: Instant,
        stop: Option<&AtomicBool>,
        raw: &RawTcp,
        fanning: Fanning<'_>,
        local_ip: IpAddr,
    ) -> Result<Punched, PunchError> {
        let adopting = Adopting {
            raw,
            syns: HashMap::new(),
            filed: fanning.filed,
            local: SocketAddr::new(local_ip, self.local.port()),
        };
        let mut state = Loop::new(self, deadline, Some(adopting));
        state.connect_after = Some(fanning.sent);
        state.run(stop)
    }
}

/// A crafted fan-out being sent while [`SimOpen::run_adopting_while_fanning`] waits.
pub struct Fanning<'a> {
    /// Each crafted SYN's record, filed before it is sent.
    pub filed: mpsc::Receiver<CraftedSyn>,
    /// Goes up when the last crafted SYN has been sent (or the fan-out stopped).
    pub sent: &'a AtomicBool,
}

/// What the loop needs to adopt connections on crafted 4-tuples.
struct Adopting<'a> {
    raw: &'a RawTcp,
    /// Far port → the crafted SYN sent to it.
    syns: HashMap<u16, CraftedSyn>,
    /// Records of the fan-out as it is sent, moved into `syns` before each lookup.
    filed: mpsc::Receiver<CraftedSyn>,
    /// Our LAN address and punched port.
    local: SocketAddr,
}

impl Loop<'_> {
    fn run(mut self, stop: Option<&AtomicBool>) -> Result<Punched, PunchError> {
        let state = &mut self;
        loop {
            if stop.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
                return Err(PunchError::Stopped);
            }
            if Instant::now() >= state.deadline {
                return Err(state.timed_out());
            }
            if let Some(done) = state.step()? {
                return Ok(done);
            }
        }
    }
}

/// One connecting socket and when it was started.
struct Attempt {
    socket: Socket,
    until: Instant,
}

struct Loop<'a> {
    open: SimOpen,
    adopting: Option<Adopting<'a>>,
    deadline: Instant,
    start: Instant,
    attempt: Option<Attempt>,
    next_attempt: Instant,
    backoff: Duration,
    attempts: u32,
    last_error: Option<io::Error>,
    /// No `connect()` before this flag is up (a fan-out still being sent).
    connect_after: Option<&'a AtomicBool>,
}

impl<'a> Loop<'a> {
    fn new(open: SimOpen, deadline: Instant, adopting: Option<Adopting<'a>>) -> Loop<'a> {
        let now = Instant::now();
        Loop {
            open,
            adopting,
            deadline,
            start: now,
            attempt: None,
            next_attempt: now,
            backoff: BACKOFF_FIRST,
            attempts: 0,
            last_error: None,
            connect_after: None,
        }
    }

    /// True once nothing holds our `connect()` back.
    fn may_connect(&self) -> bool {
        self.connect_after
            .is_none_or(|flag| flag.load(Ordering::Acquire))
    }

    fn timed_out(&mut self) -> PunchError {
        PunchError::TimedOut {
            attempts: self.attempts,
            last_error: self.last_error.take(),
        }
    }

    /// Starts an attempt if one is due, waits for the sockets, handles what happened.
    fn step(&mut self) -> Result<Option<Punched>, PunchError> {
        let now = Instant::now();
        if self.attempt.is_none() && now >= self.next_attempt && self.may_connect() {
            self.start_attempt(now)?;
        }
        let (listener_ready, connect_ready, sniffer_ready) = self.wait()?;
        if sniffer_ready {
            if let Some(stream) = self.adopt_peer_syn()? {
                return Ok(Some(self.done(stream, Via::Adopt)?));
            }
        }
        if listener_ready {
            if let Some(stream) = self.accept_from_peer()? {
                return Ok(Some(self.done(stream, Via::Accept)?));
            }
        }
        if connect_ready {
            if let Some(stream) = self.finish_connect()? {
                return Ok(Some(self.done(stream, Via::Connect)?));
            }
        }
        self.expire_attempt();
        Ok(None)
    }

    fn start_attempt(&mut self, now: Instant) -> Result<(), PunchError> {
        let socket = reusable_socket(self.open.local)?;
        socket.set_nonblocking(true)?;
        self.attempts += 1;
        match socket.connect(&SockAddr::from(self.open.peer)) {
            Ok(()) => {}
            Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(err) if is_retryable(&err) => {
                self.failed(now, err);
                return Ok(());
            }
            Err(err) => return Err(err.into()),
        }
        self.attempt = Some(Attempt {
            socket,
            until: now + self.open.attempt,
        });
        Ok(())
    }

    /// Records an attempt that failed at once and schedules the next after the backoff.
    fn failed(&mut self, now: Instant, err: io::Error) {
        self.last_error = Some(err);
        self.attempt = None;
        self.next_attempt = now + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Polls the listener (readable) and the connecting socket (writable) until one is ready
    /// or the next timer (attempt end, next attempt, deadline) is due.
    fn wait(&self) -> io::Result<(bool, bool, bool)> {
        let now = Instant::now();
        let mut wake = self.deadline;
        match &self.attempt {
            Some(attempt) => wake = wake.min(attempt.until),
            None => wake = wake.min(self.next_attempt),
        }
        // Wake at least every 100 ms so a stop flag is seen promptly, and every few ms while
        // a fan-out holds our connect() back, so that it follows the last crafted SYN closely.
        let slice = if self.may_connect() { 100 } else { 5 };
        let timeout = wake
            .saturating_duration_since(now)
            .min(Duration::from_millis(slice));
        let mut fds = Vec::with_capacity(2);
        if let Some(listener) = &self.open.listener {
            fds.push(pollfd(listener.as_raw_fd(), libc::POLLIN));
        }
        if let Some(adopting) = &self.adopting {
            fds.push(pollfd(adopting.raw.sniffer_fd(), libc::POLLIN));
        }
        if let Some(attempt) = &self.attempt {
            fds.push(pollfd(attempt.socket.as_raw_fd(), libc::POLLOUT));
        }
        let millis = timeout.as_millis().max(1) as libc::c_int;
        // SAFETY: poll(2) on a vector of pollfd we own, with its exact length.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok((false, false, false));
            }
            return Err(err);
        }
        let ready = |fd: &libc::pollfd| fd.revents != 0;
        let listener_ready = self.open.listener.is_some() && ready(&fds[0]);
        let sniffer_index = usize::from(self.open.listener.is_some());
        let sniffer_ready = self.adopting.is_some() && ready(&fds[sniffer_index]);
        let connect_ready = self.attempt.is_some() && fds.last().is_some_and(ready);
        Ok((listener_ready, connect_ready, sniffer_ready))
    }

    /// Accepts pending connections; returns the first from the peer's IP. Others (a
    /// stranger reaching the port through a full-cone NAT) are closed.
    fn accept_from_peer(&mut self) -> io::Result<Option<TcpStream>> {
        let Some(listener) = &self.open.listener else {
            return Ok(None);
        };
        loop {
            match listener.accept() {
                Ok((stream, from)) if same_ip(from.ip(), self.open.peer.ip()) => {
                    return Ok(Some(stream))
                }
                Ok(_) => continue,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(err) if is_retryable(&err) => return Ok(None),
                Err(err) => return Err(err),
            }
        }
    }

    /// Reads what the sniffer saw; adopts the connection when, on one of the crafted
    /// 4-tuples (not the one our own `connect()` uses: that socket answers for itself), the
    /// peer sends its SYN, or answers a crafted SYN with a SYN-ACK (its socket was already
    /// connecting, so our SYN made it a simultaneous open).
    fn adopt_peer_syn(&mut self) -> io::Result<Option<TcpStream>> {
        let Some(adopting) = &mut self.adopting else {
            return Ok(None);
        };
        let peer_ip = self.open.peer.ip();
        while let Some(segment) = adopting.raw.recv_from(peer_ip, adopting.local.ip())? {
            if segment.dst.port() != adopting.local.port() || segment.src == self.open.peer {
                continue;
            }
            // A record is filed before its SYN leaves, so an answer's is in `syns` or
            // already waiting in the channel.
            adopting
                .syns
                .extend(adopting.filed.try_iter().map(|syn| (syn.port, syn)));
            let Some(&crafted) = adopting.syns.get(&segment.src.port()) else {
                continue;
            };
            let answers_ours = segment.ack == crafted.isn.wrapping_add(1);
            match segment.kind() {
                SegmentKind::Syn => {}
                SegmentKind::SynAck if answers_ours => {}
                _ => continue,
            }
            return adopt::adopt(adopting.raw, adopting.local, &segment, crafted).map(Some);
        }
        Ok(None)
    }

    /// The connecting socket became writable: connected, or failed.
    fn finish_connect(&mut self) -> Result<Option<TcpStream>, PunchError> {
        let Some(attempt) = self.attempt.take() else {
            return Ok(None);
        };
        match attempt.socket.take_error()? {
            None if attempt.socket.peer_addr().is_ok() => Ok(Some(TcpStream::from(attempt.socket))),
            None => {
                // Spurious wake-up: still connecting.
                self.attempt = Some(attempt);
                Ok(None)
            }
            Some(err) if is_retryable(&err) => {
                self.failed(Instant::now(), err);
                Ok(None)
            }
            Some(err) => Err(err.into()),
        }
    }

    /// Ends an attempt whose time is up, unless its handshake is under way (SYN_RECV after
    /// the peer's SYN crossed ours): closing then would send a FIN into the handshake.
    fn expire_attempt(&mut self) {
        let now = Instant::now();
        let Some(attempt) = &mut self.attempt else {
            return;
        };
        if now < attempt.until {
            return;
        }
        if tcp_state(&attempt.socket) == Some(TCP_SYN_RECV) {
            attempt.until = now + self.open.attempt;
            return;
        }
        self.attempt = None;
        self.next_attempt = now;
    }

    fn done(&self, stream: TcpStream, via: Via) -> io::Result<Punched> {
        stream.set_nonblocking(false)?;
        Ok(Punched {
            stream,
            via,
            attempts: self.attempts,
            elapsed: self.start.elapsed(),
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

/// Compares IPs, taking an IPv4-mapped IPv6 address as the IPv4 one.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
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
