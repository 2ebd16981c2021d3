//! The IO shell around a [`ClientSession`]: one connected UDP socket or one TCP stream, the
//! wall clock, and the poll loop. All protocol decisions are the session's.
//!
//! The UDP socket queues ICMP errors ([`icmp`]): one that quotes a recent request of ours to the
//! server and says it cannot be reached is kept ([`Link::unreachable`]) and handed to the session
//! ([`ClientSession::handle_unreachable`]), which ends a first login at once rather than after
//! the login timeout.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::core::client::{ClientEvent, ClientSession, Transport};
use crate::core::unreachable::{self, Unreachable};
use crate::io::icmp;
use crate::io::source::Source;
use crate::wire::framing::{next_frame, Frame};
use crate::wire::stun::TransactionId;

/// Largest TCP frame accepted from the server: a STUN length field cannot say more than
/// 20 + 65 535 bytes anyway, so this only refuses what no server should send.
pub const MAX_FRAME: usize = 64 * 1024;

/// How long a TCP connect may take before the server counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one redial of a server that went away may block the session's loop; the session's
/// backoff spaces the attempts.
const REDIAL_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a write to a stalled TCP connection may block; the session's own timeouts are longer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests remembered for matching an ICMP error's quote: a login's retransmissions and a few
/// calls and keepalives in flight.
const REMEMBERED_REQUESTS: usize = 16;

/// Longest single wait for input, so that an interrupt landing just before a blocking read is
/// still noticed within a second (reads normally return early with EINTR).
const MAX_WAIT: Duration = Duration::from_secs(1);

/// A connection to the location server.
#[derive(Debug)]
pub enum Link {
    /// A UDP socket connected to the server, so the kernel drops datagrams from anyone else.
    Udp {
        socket: UdpSocket,
        server: SocketAddr,
        /// Transaction IDs of the latest requests sent, newest last.
        sent: VecDeque<TransactionId>,
        /// An ICMP error quoting one of them said the server cannot be reached.
        unreachable: Option<Unreachable>,
    },
    /// A TCP stream and the bytes of a frame not yet complete.
    Tcp {
        stream: TcpStream,
        buffer: Vec<u8>,
        /// Where it was dialled, and from where, to dial again after the server went away.
        server: SocketAddr,
        source: Source,
        /// The stream broke (a write hit a reset, or the close was reported): reads and writes
        /// on it are skipped until it is replaced.
        broken: Broken,
    },
}

impl Drop for Link {
    /// The session's stream closes with the link (a redial replaces it): a `--pcap` that
    /// cannot capture records how it ends.
    fn drop(&mut self) {
        if let Link::Tcp { stream, .. } = self {
            crate::io::pcap::tcp_closing(stream);
        }
    }
}

/// How far a TCP stream's breakage has been handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    No,
    /// A write failed; the next read reports the close.
    Unreported,
    /// The session has been told; waits only sleep.
    Reported,
}

/// What one wait for input brought.
enum Received {
    Data,
    Nothing,
    Closed,
}

impl Link {
    /// Opens a connection to `server` from `source` (--bind, --interface): binds a UDP socket
    /// and connects it, with ICMP errors queued ([`icmp`]), or connects over TCP within
    /// [`CONNECT_TIMEOUT`].
    pub fn connect(server: SocketAddr, transport: Transport, source: &Source) -> io::Result<Link> {
        match transport {
            Transport::Udp => {
                let socket: UdpSocket = source.udp_socket(server)?.into();
                icmp::enable(&socket, server.is_ipv6())?;
                socket.connect(server)?;
                crate::io::pcap::watch_udp(&socket);
                Ok(Link::Udp {
                    socket,
                    server,
                    sent: VecDeque::new(),
                    unreachable: None,
                })
            }
            Transport::Tcp => Self::dial(server, CONNECT_TIMEOUT, source),
        }
    }

    fn dial(server: SocketAddr, timeout: Duration, source: &Source) -> io::Result<Link> {
        let stream = source.tcp_connect(server, timeout)?;
        // Small request/response messages: do not wait to coalesce them.
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        Ok(Link::Tcp {
            stream,
            buffer: Vec::new(),
            server,
            source: source.clone(),
            broken: Broken::No,
        })
    }

    /// Connects to another server when the session moved ([`ClientSession::poll_switch`]), or
    /// dials the server again when the session asks for it (a TCP session whose connection
    /// closed); true when the session was told of a new connection (or of a failed switch). A
    /// failed redial is not an error: the session has the next attempt scheduled.
    fn redial_if_asked<R: RngCore>(&mut self, session: &mut ClientSession<R>) -> bool {
        if let Some(to) = session.poll_switch() {
            match self.switch_to(to) {
                Ok(()) => session.handle_switched(Instant::now()),
                Err(_) => session.handle_switch_failed(),
            }
            return true;
        }
        let Link::Tcp { server, source, .. } = self else {
            return false;
        };
        if !session.poll_connect() {
            return false;
        }
        match Self::dial(*server, REDIAL_TIMEOUT, source) {
            Ok(link) => {
                *self = link;
                session.handle_connected(Instant::now());
                true
            }
            Err(_) => false,
        }
    }

    /// Points the link at another server: a UDP socket is connected to it (the same local
    /// port, so a NAT keeps the same mapping where it can), a TCP stream is dialled anew from
    /// the same source.
    fn switch_to(&mut self, to: SocketAddr) -> io::Result<()> {
        match self {
            Link::Udp {
                socket,
                server,
                sent,
                unreachable,
            } => {
                socket.connect(to)?;
                *server = to;
                sent.clear();
                *unreachable = None;
                Ok(())
            }
            Link::Tcp { source, .. } => {
                let source = source.clone();
                *self = Self::dial(to, REDIAL_TIMEOUT, &source)?;
                Ok(())
            }
        }
    }

    /// The server the link talks to.
    pub fn server(&self) -> SocketAddr {
        match self {
            Link::Udp { server, .. } | Link::Tcp { server, .. } => *server,
        }
    }

    /// The local address the link sends from.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Link::Udp { socket, .. } => socket.local_addr(),
            Link::Tcp { stream, .. } => stream.local_addr(),
        }
    }

    /// The socket's descriptor, for a poll loop that watches it alongside others.
    pub fn raw_fd(&self) -> RawFd {
        match self {
            Link::Udp { socket, .. } => socket.as_raw_fd(),
            Link::Tcp { stream, .. } => stream.as_raw_fd(),
        }
    }

    /// Switches the socket between blocking reads with timeouts (the default, for [`run`] and
    /// [`drive`]) and non-blocking reads (for [`Pump`] inside another poll loop).
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Link::Udp { socket, .. } => socket.set_nonblocking(nonblocking),
            Link::Tcp { stream, .. } => stream.set_nonblocking(nonblocking),
        }
    }

    /// Why the server cannot be reached, when an ICMP error quoting one of our requests said
    /// so (UDP only).
    pub fn unreachable(&self) -> Option<Unreachable> {
        match self {
            Link::Udp { unreachable, .. } => *unreachable,
            Link::Tcp { .. } => None,
        }
    }

    /// Reads the UDP socket's queued ICMP errors after a call failed with `err`; true when
    /// there were any (the failure was their echo, not a broken socket).
    fn take_icmp_errors(&mut self) -> bool {
        let Link::Udp {
            socket,
            server,
            sent,
            unreachable,
        } = self
        else {
            return false;
        };
        let queued = icmp::read_errors(socket.as_raw_fd());
        let ours: Vec<TransactionId> = sent.iter().copied().collect();
        for error in &queued {
            if let Some(verdict) = unreachable::judge(&error.as_error(), *server, &ours) {
                unreachable.get_or_insert(verdict);
            }
        }
        !queued.is_empty()
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Link::Udp { socket, .. } = self {
            crate::io::pcap::udp_sent(socket, None, bytes);
        }
        match self {
            Link::Udp { socket, sent, .. } => {
                if let Some(tid) = bytes.get(8..20).and_then(|b| b.try_into().ok()) {
                    if sent.len() == REMEMBERED_REQUESTS {
                        sent.pop_front();
                    }
                    sent.push_back(TransactionId(tid));
                }
                match socket.send(bytes) {
                    Ok(_) => Ok(()),
                    // An ICMP error surfaces on the next call; the session decides what it
                    // means (the first login ends, a live session retransmits).
                    Err(err) if self.take_icmp_errors() || is_icmp_echo(&err) => Ok(()),
                    Err(err) => Err(err),
                }
            }
            Link::Tcp { broken, .. } if *broken != Broken::No => Ok(()),
            Link::Tcp { stream, broken, .. } => match stream.write_all(bytes) {
                Ok(()) => {
                    crate::io::pcap::tcp_sent(stream, bytes);
                    Ok(())
                }
                // The server went away: the next read tells the session, which dials again.
                Err(err) if is_reset(&err) => {
                    *broken = Broken::Unreported;
                    Ok(())
                }
                other => other,
            },
        }
    }

    /// Waits up to `wait` for input and hands every whole message to `deliver`.
    fn receive(&mut self, wait: Duration, deliver: &mut dyn FnMut(&[u8])) -> io::Result<Received> {
        // A zero read timeout means "block forever" to the OS, so wait at least 1 ms.
        let wait = wait.max(Duration::from_millis(1));
        if let Link::Tcp { broken, .. } = self {
            match *broken {
                Broken::No => {}
                Broken::Unreported => {
                    *broken = Broken::Reported;
                    return Ok(Received::Closed);
                }
                Broken::Reported => {
                    // A dead stream reads EOF at once: sleep instead of spinning until the
                    // session's next redial.
                    std::thread::sleep(wait);
                    return Ok(Received::Nothing);
                }
            }
        }
        let mut chunk = [0u8; MAX_FRAME];
        let result = match self {
            Link::Udp { socket, .. } => {
                socket.set_read_timeout(Some(wait))?;
                socket.recv(&mut chunk)
            }
            Link::Tcp { stream, .. } => {
                stream.set_read_timeout(Some(wait))?;
                stream.read(&mut chunk)
            }
        };
        match (result, self) {
            (Ok(len), Link::Udp { socket, .. }) => {
                crate::io::pcap::udp_received(socket, None, &chunk[..len]);
                deliver(&chunk[..len]);
                Ok(Received::Data)
            }
            (Ok(0), Link::Tcp { stream, broken, .. }) => {
                crate::io::pcap::tcp_received(stream, &[]);
                *broken = Broken::Reported;
                Ok(Received::Closed)
            }
            (Ok(len), Link::Tcp { stream, buffer, .. }) => {
                crate::io::pcap::tcp_received(stream, &chunk[..len]);
                buffer.extend_from_slice(&chunk[..len]);
                split_frames(buffer, deliver)?;
                Ok(Received::Data)
            }
            (Err(err), link @ Link::Udp { .. }) if !is_wake_up(&err) => {
                if link.take_icmp_errors() || is_icmp_echo(&err) {
                    Ok(Received::Nothing)
                } else {
                    Err(err)
                }
            }
            (Err(err), Link::Tcp { broken, .. }) if is_reset(&err) => {
                *broken = Broken::Reported;
                Ok(Received::Closed)
            }
            (Err(err), _) if is_wake_up(&err) => Ok(Received::Nothing),
            (Err(err), _) => Err(err),
        }
    }
}

/// The peer reset or closed the stream under us.
fn is_reset(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// The errno a UDP socket reports once for an ICMP error (see [`icmp`]); not a broken socket.
fn is_icmp_echo(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::EMSGSIZE
                | libc::EPROTO
                | libc::ENOPROTOOPT
                | libc::EACCES
        )
    )
}

/// Timeouts and signals end a wait without being errors.
fn is_wake_up(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Cuts whole STUN messages off the front of a TCP stream buffer (RFC 8489 §6.2.2).
fn split_frames(buffer: &mut Vec<u8>, deliver: &mut dyn FnMut(&[u8])) -> io::Result<()> {
    loop {
        match next_frame(buffer, MAX_FRAME) {
            Frame::Complete(len) => {
                deliver(&buffer[..len]);
                buffer.drain(..len);
            }
            Frame::Partial => return Ok(()),
            // No delimiter to resynchronise on: the stream is unusable.
            Frame::TooLarge(_) | Frame::NotStun => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the server sent bytes that are not STUN on the TCP stream",
                ))
            }
        }
    }
}

/// When to stop holding the session: at a deadline or when a flag is raised. Either way the
/// session logs out first, and [`run`] returns once it is closed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stop<'a> {
    pub at: Option<Instant>,
    pub flag: Option<&'a AtomicBool>,
}

impl Stop<'_> {
    fn reached(&self, now: Instant) -> bool {
        let flagged = self.flag.is_some_and(|flag| flag.load(Ordering::Relaxed));
        flagged || self.at.is_some_and(|at| now >= at)
    }
}

/// Drives `session` over `link` until it closes (refused, unreachable, logged out). Every event
/// goes to `on_event`, which may act on the session (call, logout) or fail the run (a closed
/// stdout, say).
pub fn run<R: RngCore>(
    link: &mut Link,
    session: &mut ClientSession<R>,
    stop: Stop<'_>,
    mut on_event: impl FnMut(&mut ClientSession<R>, ClientEvent) -> io::Result<()>,
) -> io::Result<()> {
    let mut stopping = false;
    loop {
        drain(link, session, &mut on_event)?;
        if session.is_closed() {
            return Ok(());
        }
        if link.redial_if_asked(session) {
            continue;
        }
        let now = Instant::now();
        if !stopping && stop.reached(now) {
            stopping = true;
            session.logout(now);
            continue;
        }
        let deadline = [session.poll_timeout(), stop.at.filter(|_| !stopping)]
            .into_iter()
            .flatten()
            .min();
        if deadline.is_some_and(|at| at <= now) {
            session.handle_timeout(now);
            continue;
        }
        let wait = deadline.map_or(MAX_WAIT, |at| (at - now).min(MAX_WAIT));
        let received = link.receive(wait, &mut |bytes| {
            session.handle_input(Instant::now(), bytes)
        })?;
        if let Received::Closed = received {
            session.handle_disconnect(Instant::now());
        }
    }
}

/// Why [`drive`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driven {
    /// The event handler said it had what it waited for.
    Done,
    /// `until` passed.
    Deadline,
    /// The stop flag was raised (the session is still open).
    Stopped,
    /// The session closed (refused, unreachable, logged out).
    Closed,
}

/// Drives `session` over `link` until the event handler returns `true`, `until` passes, `stop`
/// is raised or the session closes. `before_input` runs right before every message is handed
/// to the session, at the time it is handed over: a callee sets the facts it answers a call
/// with there, so that they are as fresh as the call.
pub fn drive<R: RngCore>(
    link: &mut Link,
    session: &mut ClientSession<R>,
    until: Option<Instant>,
    stop: Option<&AtomicBool>,
    before_input: &mut dyn FnMut(&mut ClientSession<R>, Instant),
    on_event: &mut dyn FnMut(&mut ClientSession<R>, ClientEvent) -> io::Result<bool>,
) -> io::Result<Driven> {
    loop {
        let mut done = false;
        drain(link, session, &mut |session, event| {
            done |= on_event(session, event)?;
            Ok(())
        })?;
        if done {
            return Ok(Driven::Done);
        }
        if session.is_closed() {
            return Ok(Driven::Closed);
        }
        if link.redial_if_asked(session) {
            continue;
        }
        let now = Instant::now();
        if stop.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            return Ok(Driven::Stopped);
        }
        if until.is_some_and(|at| now >= at) {
            return Ok(Driven::Deadline);
        }
        let deadline = [session.poll_timeout(), until].into_iter().flatten().min();
        if deadline.is_some_and(|at| at <= now) {
            session.handle_timeout(now);
            continue;
        }
        let wait = deadline.map_or(MAX_WAIT, |at| (at - now).min(MAX_WAIT));
        let received = link.receive(wait, &mut |bytes| {
            let now = Instant::now();
            before_input(session, now);
            session.handle_input(now, bytes)
        })?;
        if let Received::Closed = received {
            session.handle_disconnect(Instant::now());
        }
    }
}

/// A session carried along inside another poll loop (the punch's): the link must be
/// non-blocking ([`Link::set_nonblocking`]). Events are kept for the command to report.
pub struct Pump<'a, R> {
    pub link: &'a mut Link,
    pub session: &'a mut ClientSession<R>,
    pub events: Vec<ClientEvent>,
}

impl<R: RngCore> Pump<'_, R> {
    /// Services the session (answers the server's retransmitted deliveries, keepalives,
    /// re-logins) while `busy()` holds, waking at least every `tick` to ask. Used while work that
    /// does not watch the link, such as the TCP punch on its own thread, runs: a session left
    /// unserviced meanwhile leaves the server retransmitting a delivered call into the void.
    /// The link must be non-blocking.
    pub fn serve_while(&mut self, tick: Duration, busy: &dyn Fn() -> bool) -> io::Result<()> {
        use crate::io::punch_udp::Background;
        while busy() {
            let now = Instant::now();
            let wait = self
                .poll_timeout()
                .map_or(tick, |at| at.saturating_duration_since(now))
                .min(tick);
            let mut fd = libc::pollfd {
                fd: self.link.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let millis = libc::c_int::try_from(wait.as_millis()).unwrap_or(libc::c_int::MAX);
            // SAFETY: poll(2) on one pollfd we own.
            let rc = unsafe { libc::poll(&mut fd, 1, millis) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            let now = Instant::now();
            if fd.revents != 0 {
                self.readable(now)?;
            }
            if self.poll_timeout().is_some_and(|at| at <= now) {
                self.timeout(now)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let events = &mut self.events;
        drain(self.link, self.session, &mut |_, event| {
            events.push(event);
            Ok(())
        })
    }
}

impl<R: RngCore> crate::io::punch_udp::Background for Pump<'_, R> {
    fn fd(&self) -> Option<RawFd> {
        Some(self.link.raw_fd())
    }

    fn readable(&mut self, now: Instant) -> io::Result<()> {
        let session = &mut *self.session;
        loop {
            let received = self.link.receive(Duration::ZERO, &mut |bytes| {
                session.handle_input(now, bytes)
            })?;
            match received {
                Received::Data => continue,
                Received::Nothing => break,
                Received::Closed => {
                    session.handle_disconnect(now);
                    break;
                }
            }
        }
        self.flush()
    }

    fn timeout(&mut self, now: Instant) -> io::Result<()> {
        self.session.handle_timeout(now);
        self.flush()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.session.poll_timeout()
    }
}

/// Sends what the session queued and hands out its events until both are empty (an event
/// handler may queue more).
fn drain<R: RngCore>(
    link: &mut Link,
    session: &mut ClientSession<R>,
    on_event: &mut dyn FnMut(&mut ClientSession<R>, ClientEvent) -> io::Result<()>,
) -> io::Result<()> {
    loop {
        while let Some(bytes) = session.poll_transmit() {
            link.send(&bytes)?;
        }
        if link.unreachable().is_some() {
            session.handle_unreachable();
        }
        match session.poll_event() {
            Some(event) => on_event(session, event)?,
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_cut_from_a_stream_buffer() {
        let mut message = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
        message.extend_from_slice(&[7; 12]);
        let mut buffer = [message.clone(), message.clone(), message[..5].to_vec()].concat();
        let mut seen = Vec::new();
        split_frames(&mut buffer, &mut |bytes| seen.push(bytes.to_vec())).unwrap();
        assert_eq!(seen, [message.clone(), message.clone()]);
        assert_eq!(buffer, message[..5]);
    }

    #[test]
    fn a_foreign_stream_is_an_error() {
        let mut buffer = b"HTTP/1.1 400 Bad Request\r\n".to_vec();
        let err = split_frames(&mut buffer, &mut |_| {}).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
