//! The IO shell of a UDP punch: the plan's sockets, the wall clock and one poll loop around the
//! sans-IO [`Handshake`] and, once it connects, the [`Transfer`] over the confirmed path.
//!
//! Sockets: [`open_sockets`] gives the plan's `Session` slot the socket the fingerprint measured
//! (its mapping socket, whose public port the facts announced) and binds a fresh socket for each
//! `Fresh` slot. Binding sends nothing, so a NAT sees no new flow until the schedule's first
//! packet: the caller opens them after the call is answered, right before its start.
//!
//! Timing: the handshake's schedule counts from the start signal the command passes in (the
//! callee answering the call, the caller receiving that answer), with the callee's sync rounds
//! added to it; the loop sleeps until the
//! earliest of the handshake's, the transfer's and the background's timers, or a socket.
//!
//! Rate cap: every PUNCH and DATA packet goes through one token bucket of `--rate` packets per
//! second with a 20 ms burst. The plan already paces its schedule at that rate; the bucket also
//! holds answers, confirmations and data to it, and a loop that woke late cannot burst.
//!
//! Demultiplexing: a datagram starting with [`data::MARKER`] is a DATA frame, counted only from
//! the peer's IP and once the transfer exists (frames that come before our own confirmation are
//! dropped and retransmitted); everything else goes to the handshake while it runs. The
//! handshake stops being driven when it is done or when the first frame from the peer proves the
//! peer connected too.
//!
//! Background: the location-server session keeps running during the punch (keepalives, a CALL
//! the server retransmits because our answer was lost) through a [`Background`] whose file
//! descriptor joins the same poll.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use rand::RngCore;

use crate::core::punch::handshake::{Handshake, Outcome, PunchEvent, Transmit};
use crate::core::punch::plan::{LocalSocket, PunchPlan, SidePlan};
use crate::core::punch::transfer::{self, Transfer, TransferStats};
use crate::wire::data::{self, MAX_PAYLOAD};

/// Largest datagram read: a PUNCH message is under 100 bytes, a DATA frame at most 1214.
const MAX_DATAGRAM: usize = 2048;

/// Read errors tolerated in one drain before it stops (each queued error is reported once).
const MAX_READ_ERRORS: u32 = 8;

/// Burst of the rate cap: 20 ms worth of packets, at least one.
const BURST: Duration = Duration::from_millis(20);

/// Input read ahead of the transfer, in chunks: a window's worth, so reading never stalls
/// sending and memory stays bounded whatever the input.
const INPUT_AHEAD: usize = transfer::WINDOW;

const WAKER: Token = Token(usize::MAX);
const BACKGROUND: Token = Token(usize::MAX - 1);

/// Work the loop carries alongside the punch: the location-server session.
pub trait Background {
    /// A descriptor to watch for input (it must be non-blocking: readiness is edge-triggered,
    /// so [`Background::readable`] reads until it would block).
    fn fd(&self) -> Option<RawFd>;
    fn readable(&mut self, now: Instant) -> io::Result<()>;
    fn timeout(&mut self, now: Instant) -> io::Result<()>;
    fn poll_timeout(&self) -> Option<Instant>;
}

/// No background work.
pub struct Nothing;

impl Background for Nothing {
    fn fd(&self) -> Option<RawFd> {
        None
    }
    fn readable(&mut self, _: Instant) -> io::Result<()> {
        Ok(())
    }
    fn timeout(&mut self, _: Instant) -> io::Result<()> {
        Ok(())
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

/// What the exchange after the punch reads and writes.
pub struct DataIo<'a> {
    /// Our stream (a file, stdin); `None` sends an empty one.
    pub input: Option<Box<dyn Read + Send>>,
    /// Where the peer's stream goes.
    pub output: &'a mut dyn Write,
}

/// How the data exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferEnd {
    /// `None` when both streams arrived whole; else why not.
    pub failure: Option<String>,
    pub stats: TransferStats,
    /// From the connection to the end of the exchange.
    pub elapsed: Duration,
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Finished {
    pub outcome: Outcome,
    /// `None` when the punch did not connect.
    pub transfer: Option<TransferEnd>,
    /// Datagrams neither the handshake nor the transfer took.
    pub dropped: u64,
    /// Packets this end sent (PUNCH and DATA).
    pub packets_sent: u64,
}

/// Something to tell the user, with the time since the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Punch(PunchEvent),
    /// The peer's first DATA frame on the confirmed path (told once): the peer uses this path
    /// too. A two-family race's caller keeps the family this comes on (`core::punch::family_race`).
    PeerUsesPath,
    /// Both streams arrived (or the exchange failed: `failure`).
    DataDone {
        failure: Option<String>,
    },
}

/// Opens the plan's sockets for this end: `session` (the fingerprint's mapping socket) in the
/// `Session` slot, a fresh socket on `local_ip` in every `Fresh` one, through `source`'s
/// interface (--interface).
pub fn open_sockets(
    side: &SidePlan,
    session: Option<UdpSocket>,
    local_ip: IpAddr,
    source: &crate::io::source::Source,
) -> io::Result<Vec<UdpSocket>> {
    let mut session = session;
    side.sockets
        .iter()
        .map(|slot| match slot {
            LocalSocket::Session => session.take().ok_or_else(|| {
                io::Error::other("the plan punches from the session socket twice, or it is gone")
            }),
            LocalSocket::Fresh => {
                let domain = socket2::Domain::for_address(SocketAddr::new(local_ip, 0));
                let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, None)?;
                source.port_free().bind_at(&socket, local_ip)?;
                let socket: std::net::UdpSocket = socket.into();
                crate::io::pcap::watch_udp(&socket);
                socket.set_nonblocking(true)?;
                Ok(UdpSocket::from_std(socket))
            }
        })
        .collect()
}

/// Runs this end's half of `plan` from `start` on `sockets` (in the plan's order), with the
/// callee's sync rounds at `sync_rounds` after the start ([`PunchPlan::sync_rounds`]), then the data
/// exchange, until both are over or `stop` is raised. `rng` draws the handshake's nonce.
#[allow(clippy::too_many_arguments)]
pub fn run(
    plan: &PunchPlan,
    sockets: Vec<UdpSocket>,
    start: Instant,
    sync_rounds: &[Duration],
    data: DataIo<'_>,
    background: &mut dyn Background,
    stop: Option<&AtomicBool>,
    on_progress: &mut dyn FnMut(Progress, Duration),
    rng: &mut dyn RngCore,
) -> io::Result<Finished> {
    let mut poll = Poll::new()?;
    let mut sockets = sockets;
    for (i, socket) in sockets.iter_mut().enumerate() {
        poll.registry()
            .register(socket, Token(i), Interest::READABLE)?;
    }
    if let Some(fd) = background.fd() {
        poll.registry()
            .register(&mut SourceFd(&fd), BACKGROUND, Interest::READABLE)?;
    }
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let input = data
        .input
        .map(|reader| spawn_reader(reader, Arc::clone(&waker)));
    let mut shell = Shell {
        handshake: Handshake::new(plan, start, &mut &mut *rng).with_sync_rounds(sync_rounds),
        handshake_active: true,
        peer_ip: plan.peer.map(|a| a.ip()),
        sockets,
        start,
        queue: VecDeque::new(),
        pacer: Pacer::new(plan.rate, start),
        exchange: None,
        input,
        output: data.output,
        dropped: 0,
        packets_sent: 0,
        peer_uses_path: false,
        on_progress,
    };
    shell.after_handshake(start);
    let mut events = Events::with_capacity(64);
    loop {
        if stop.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
        }
        let now = Instant::now();
        shell.timers(now);
        if background.poll_timeout().is_some_and(|at| at <= now) {
            background.timeout(now)?;
        }
        shell.feed_input();
        shell.deliver()?;
        let paced = shell.send(now);
        if shell.finished() {
            return Ok(shell.into_finished());
        }
        let wake = [
            shell.next_timer(),
            background.poll_timeout(),
            paced.then(|| shell.pacer.next_token()),
        ]
        .into_iter()
        .flatten()
        .min();
        wait(&mut poll, &mut events, now, wake)?;
        for event in events.iter() {
            match event.token() {
                WAKER => {}
                BACKGROUND => background.readable(Instant::now())?,
                Token(i) => shell.drain(i),
            }
        }
    }
}

/// The loop's state between wake-ups.
struct Shell<'a, 'p> {
    handshake: Handshake,
    /// Still fed input and timers (see the module doc for when it stops).
    handshake_active: bool,
    peer_ip: Option<IpAddr>,
    sockets: Vec<UdpSocket>,
    start: Instant,
    /// Handshake packets waiting for the rate cap.
    queue: VecDeque<Transmit>,
    pacer: Pacer,
    exchange: Option<Exchange>,
    input: Option<Input>,
    output: &'a mut dyn Write,
    dropped: u64,
    packets_sent: u64,
    /// [`Progress::PeerUsesPath`] was told.
    peer_uses_path: bool,
    on_progress: &'p mut dyn FnMut(Progress, Duration),
}

/// The transfer on the confirmed path.
struct Exchange {
    transfer: Transfer,
    socket: usize,
    peer: SocketAddr,
    since: Instant,
    ended: Option<TransferEnd>,
}

impl Shell<'_, '_> {
    fn progress(&mut self, progress: Progress, now: Instant) {
        (self.on_progress)(progress, now.saturating_duration_since(self.start));
    }

    /// Queues the handshake's packets and acts on its events.
    fn after_handshake(&mut self, now: Instant) {
        while let Some(transmit) = self.handshake.poll_transmit() {
            self.queue.push_back(transmit);
        }
        while let Some(event) = self.handshake.poll_event() {
            if let PunchEvent::Connected { socket, peer } = event {
                self.connected(now, socket, peer);
            }
            self.progress(Progress::Punch(event), now);
        }
    }

    fn connected(&mut self, now: Instant, socket: usize, peer: SocketAddr) {
        let peer_nonce = self
            .handshake
            .confirmed_peer_nonce()
            .expect("a connected handshake knows the peer's nonce");
        let mut transfer = Transfer::new(self.handshake.nonce(), peer_nonce, now);
        if self.input.is_none() {
            transfer.finish();
        }
        self.exchange = Some(Exchange {
            transfer,
            socket,
            peer,
            since: now,
            ended: None,
        });
    }

    fn timers(&mut self, now: Instant) {
        if self.handshake_active && self.handshake.poll_timeout().is_some_and(|at| at <= now) {
            self.handshake.handle_timeout(now);
            self.after_handshake(now);
        }
        if let Some(exchange) = &mut self.exchange {
            if exchange.transfer.poll_timeout().is_some_and(|at| at <= now) {
                exchange.transfer.handle_timeout(now);
            }
        }
        self.check_exchange(now);
    }

    /// Stops the handshake once it is over or the peer is heard, and records the exchange's end.
    fn check_exchange(&mut self, now: Instant) {
        let heard = self
            .exchange
            .as_ref()
            .is_some_and(|e| e.transfer.heard_from_peer());
        if self.handshake.is_done() || heard {
            self.handshake_active = false;
        }
        if heard && !std::mem::replace(&mut self.peer_uses_path, true) {
            self.progress(Progress::PeerUsesPath, now);
        }
        let Some(exchange) = &mut self.exchange else {
            return;
        };
        if exchange.ended.is_some() || !exchange.transfer.is_finished() {
            return;
        }
        let failure = match exchange.transfer.state() {
            transfer::State::Failed { reason } => Some(reason.clone()),
            _ => None,
        };
        exchange.ended = Some(TransferEnd {
            failure: failure.clone(),
            stats: exchange.transfer.stats(),
            elapsed: now.saturating_duration_since(exchange.since),
        });
        self.progress(Progress::DataDone { failure }, now);
    }

    /// Moves input into the transfer while it wants more.
    fn feed_input(&mut self) {
        let (Some(exchange), Some(input)) = (&mut self.exchange, &mut self.input) else {
            return;
        };
        while exchange.transfer.wants_input() {
            match input.chunks.try_recv() {
                Ok(chunk) => exchange.transfer.push(&chunk),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    exchange.transfer.finish();
                    break;
                }
            }
        }
    }

    /// Writes what arrived in order.
    fn deliver(&mut self) -> io::Result<()> {
        let Some(exchange) = &mut self.exchange else {
            return Ok(());
        };
        let mut wrote = false;
        while let Some(piece) = exchange.transfer.poll_delivered() {
            self.output.write_all(&piece)?;
            wrote = true;
        }
        if wrote {
            self.output.flush()?;
        }
        Ok(())
    }

    /// Sends while the rate cap allows: queued handshake packets first, then the transfer's.
    /// Returns true when the cap held something back.
    fn send(&mut self, now: Instant) -> bool {
        loop {
            let next = match self.queue.front() {
                Some(_) if !self.pacer.ready(now) => return true,
                Some(_) => self.queue.pop_front().map(|t| (t.socket, t.to, t.bytes)),
                None => {
                    let Some(exchange) = &mut self.exchange else {
                        return false;
                    };
                    if !self.pacer.ready(now) {
                        return true;
                    }
                    let (socket, peer) = (exchange.socket, exchange.peer);
                    exchange
                        .transfer
                        .poll_transmit(now)
                        .map(|bytes| (socket, peer, bytes))
                }
            };
            let Some((socket, to, bytes)) = next else {
                return false;
            };
            self.pacer.take();
            self.packets_sent += 1;
            // A failed send (no route, a full buffer) is a lost packet: the schedule and the
            // retransmission timers carry on as they would for loss on the path.
            crate::io::pcap::udp_sent(&self.sockets[socket], Some(to), &bytes);
            let _ = self.sockets[socket].send_to(&bytes, to);
        }
    }

    /// Reads everything waiting on socket `i`.
    fn drain(&mut self, i: usize) {
        let mut buf = [0u8; MAX_DATAGRAM];
        let mut errors = 0;
        while errors < MAX_READ_ERRORS {
            match self.sockets[i].recv_from(&mut buf) {
                Ok((len, from)) => {
                    crate::io::pcap::udp_received(&self.sockets[i], Some(from), &buf[..len]);
                    self.dispatch(Instant::now(), i, from, &buf[..len])
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => errors += 1,
            }
        }
    }

    fn dispatch(&mut self, now: Instant, socket: usize, from: SocketAddr, bytes: &[u8]) {
        if data::is_data(bytes) {
            let taken = match &mut self.exchange {
                Some(e) if Some(from.ip()) == self.peer_ip => e.transfer.handle_input(now, bytes),
                _ => false,
            };
            self.dropped += u64::from(!taken);
            self.check_exchange(now);
        } else if self.handshake_active {
            self.handshake.handle_input(now, socket, from, bytes);
            self.after_handshake(now);
        } else {
            self.dropped += 1;
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        let handshake = self
            .handshake_active
            .then(|| self.handshake.poll_timeout())
            .flatten();
        let exchange = self
            .exchange
            .as_ref()
            .and_then(|e| e.transfer.poll_timeout());
        [handshake, exchange].into_iter().flatten().min()
    }

    /// Over: the punch failed, or the exchange ended and nothing is left to send.
    fn finished(&self) -> bool {
        if !self.queue.is_empty() {
            return false;
        }
        match &self.exchange {
            None => self.handshake.is_done(),
            Some(exchange) => {
                exchange.ended.is_some()
                    && !self.handshake_active
                    && !exchange.transfer.owes_close()
            }
        }
    }

    fn into_finished(self) -> Finished {
        Finished {
            outcome: self
                .handshake
                .outcome()
                .cloned()
                .expect("a finished punch has an outcome"),
            transfer: self.exchange.and_then(|e| e.ended),
            dropped: self.dropped + self.handshake.dropped(),
            packets_sent: self.packets_sent,
        }
    }
}

/// A token bucket: `rate` packets per second, bursts of [`BURST`].
#[derive(Debug)]
struct Pacer {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        let capacity = (rate * BURST.as_secs_f64()).max(1.0);
        Pacer {
            rate,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    fn ready(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.last = now.max(self.last);
        self.tokens >= 1.0
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }

    /// When the next whole token is there.
    fn next_token(&self) -> Instant {
        let missing = (1.0 - self.tokens).max(0.0);
        self.last + Duration::from_secs_f64(missing / self.rate)
    }
}

/// Our stream, read on its own thread (stdin may block for as long as the user types).
struct Input {
    chunks: Receiver<Vec<u8>>,
}

/// Reads `reader` in chunks until its end, waking the loop after each; a read error ends the
/// stream early, with a warning.
fn spawn_reader(mut reader: Box<dyn Read + Send>, waker: Arc<Waker>) -> Input {
    let (tx, rx) = mpsc::sync_channel(INPUT_AHEAD);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; MAX_PAYLOAD * 16];
        loop {
            let len = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(len) => len,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    crate::render::terminal::warn(&format!("reading the input ended early: {err}"));
                    break;
                }
            };
            if tx.send(buf[..len].to_vec()).is_err() {
                return;
            }
            let _ = waker.wake();
        }
        drop(tx);
        let _ = waker.wake();
    });
    Input { chunks: rx }
}

/// Waits on `poll` until `wake` (at most a second, to notice a stop flag), retrying on EINTR.
fn wait(
    poll: &mut Poll,
    events: &mut Events,
    now: Instant,
    wake: Option<Instant>,
) -> io::Result<()> {
    crate::io::poll::wait_until(poll, events, now, wake, Some(Duration::from_secs(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_caps_the_rate_with_a_small_burst() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(1000, t0);
        let mut sent = 0;
        while pacer.ready(t0) {
            pacer.take();
            sent += 1;
        }
        assert_eq!(sent, 20, "20 ms of burst at 1000/s");
        assert_eq!(pacer.next_token(), t0 + Duration::from_millis(1));
        // Over one second, about the rate plus the burst.
        let mut t = t0;
        while t < t0 + Duration::from_secs(1) {
            t += Duration::from_micros(100);
            while pacer.ready(t) {
                pacer.take();
                sent += 1;
            }
        }
        assert!((1015..=1021).contains(&sent), "{sent}");
        let mut slow = Pacer::new(1, t0);
        assert!(slow.ready(t0));
        slow.take();
        assert!(!slow.ready(t0 + Duration::from_millis(500)));
        assert!(slow.ready(t0 + Duration::from_secs(1)));
    }
}
