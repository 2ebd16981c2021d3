//! The location server's IO shell: one mio event loop that owns the UDP sockets, the TCP
//! listeners and connections, the federation dialers and the clock, and feeds
//! [`ServerCore`]. Single-threaded by design: the core is cheap per message and one thread
//! pinned to one core is what the benchmark compares against coturn.
//!
//! Memory per TCP connection is what [`Conn`] holds plus the kernel's socket: the read and
//! write buffers are empty `Vec`s (no heap) except while a frame is half-received or the other
//! end is slow to read, which keeps ~20,000 held logins in a few MiB of RSS.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use crate::core::binding::FullMode;
use crate::core::events::{Command, Event};
use crate::core::registry::{ConnId, Route};
use crate::core::server::{ServerConfig, ServerCore};
use crate::core::stats::{Counters, Drop};
use crate::core::Transport;
use crate::io::coalesce::Coalescer;
use crate::io::udp_batch::{RecvBatch, SendBatch};
use crate::wire::framing::{next_frame, Frame};
use crate::wire::DecodeError;

/// Everything the shell needs besides the core's own configuration.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: Vec<SocketAddr>,
    pub alternate: Option<SocketAddr>,
    /// Servers to hold federation links to (`--link`).
    pub links: Vec<SocketAddr>,
    pub name: String,
    pub udp_expiry: Duration,
    pub max_sessions: usize,
    pub max_sessions_per_ip: usize,
    pub max_pending_calls: usize,
    /// ID → key; `None` runs open (and says so at start).
    pub credentials: Option<crate::core::credentials::Credentials>,
    /// Answers per second per source IP over UDP; `None` for no limit.
    pub answer_rate: Option<u32>,
    pub max_connections: usize,
    pub max_message: usize,
    pub max_tcp_backlog: usize,
    pub tcp_idle: Duration,
    pub stats_interval: Option<Duration>,
}

/// A point-in-time view for the stats line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatsSnapshot {
    pub sessions_udp: usize,
    pub sessions_tcp: usize,
    /// Names of the linked servers; `peers` in the JSON stats line (a contract with readers).
    #[serde(rename = "peers")]
    pub links: Vec<String>,
    pub connections: usize,
    /// Messages received per second since the previous stats line.
    pub requests_per_sec: f64,
    pub counters: Counters,
}

/// Where the shell reports what happens; implemented by the log renderer.
pub trait Reporter {
    fn listening(&mut self, transport: Transport, addr: SocketAddr, full_mode: Option<&FullMode>);
    fn event(&mut self, event: &Event);
    fn stats(&mut self, stats: &StatsSnapshot);
    fn warn(&mut self, message: &str);
}

const LISTENER_BASE: usize = 1 << 16;
const CONN_BASE: usize = 1 << 17;
/// How often idle connections, link redials and stats are looked after.
const HOUSEKEEPING: Duration = Duration::from_millis(250);
/// First wait before redialling a lost federation link; doubles up to [`REDIAL_MAX`].
const REDIAL_MIN: Duration = Duration::from_millis(500);
const REDIAL_MAX: Duration = Duration::from_secs(30);
/// Datagram batches handled per readiness event before other sockets get a turn.
const UDP_BATCHES_PER_TURN: usize = 64;
/// Socket buffers for the UDP sockets: absorbs bursts at 100k+ requests/s (the kernel caps it
/// at net.core.rmem_max unless run as root, which is fine).
const UDP_BUFFER: usize = 8 << 20;
/// Size of one TCP read.
const READ_CHUNK: usize = 16 << 10;

/// A UDP socket and a TCP listener bound to the same address.
type BoundPair = (UdpSocket, TcpListener, SocketAddr);
/// The TCP listeners, each with its address.
type Listeners = Vec<(TcpListener, SocketAddr)>;

struct UdpEndpoint {
    socket: UdpSocket,
    local: SocketAddr,
    send: SendBatch,
    /// Still readable when the last turn ended (edge-triggered readiness will not repeat),
    /// or not watched by epoll at all (see [`Server::watch_udp`]): read on every turn.
    backlog: bool,
}

struct Conn {
    stream: TcpStream,
    id: ConnId,
    local: SocketAddr,
    remote: SocketAddr,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    /// Last complete message, or when the connection opened.
    last_active: Instant,
    /// When the half-received frame in `inbuf` began.
    partial_since: Instant,
    /// Index into the configured links when this is our outbound federation link.
    dial: Option<usize>,
    connecting: bool,
}

enum LinkState {
    Idle { retry_at: Instant },
    Linked,
}

struct LinkDial {
    addr: SocketAddr,
    state: LinkState,
    /// Wait before the next dial after a failed one.
    backoff: Duration,
}

/// The running server.
pub struct Server {
    poll: Poll,
    core: ServerCore,
    udp: Vec<UdpEndpoint>,
    listeners: Listeners,
    conns: Vec<Option<Conn>>,
    generations: Vec<u32>,
    free: Vec<usize>,
    open_conns: usize,
    links: Vec<LinkDial>,
    options: ServeOptions,
    recv: RecvBatch,
    coalescer: Coalescer,
    /// Whether the UDP sockets are in epoll ([`Server::watch_udp`]).
    udp_watched: bool,
    reply: Vec<u8>,
    read_buf: Vec<u8>,
    next_housekeeping: Instant,
    next_stats: Option<Instant>,
    last_stats: (Instant, u64),
    fd_warned_at: Option<Instant>,
}

impl Server {
    /// Binds every socket; fails with context when an address is taken or invalid.
    pub fn bind(options: ServeOptions, reporter: &mut dyn Reporter) -> anyhow::Result<Server> {
        let poll = Poll::new().context("creating the epoll instance")?;
        let (bound, full_mode) = bind_all(&options)?;
        let now = Instant::now();
        let config = core_config(&options, full_mode);
        if config.credentials.is_none() {
            reporter.warn(
                "running open (no --credentials): anyone can log in as any free ID; \
                 use only in a lab or a demo",
            );
        }
        let (udp, listeners) = watch_bound(&poll, bound, &config.full_modes, reporter)?;
        let links = options
            .links
            .iter()
            .map(|&addr| LinkDial {
                addr,
                state: LinkState::Idle { retry_at: now },
                backoff: REDIAL_MIN,
            })
            .collect();
        let seed = seed_from_clock();
        Ok(Server {
            poll,
            core: ServerCore::new(config, now, seed),
            udp,
            listeners,
            conns: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            open_conns: 0,
            links,
            recv: RecvBatch::new(options.max_message + 1),
            coalescer: Coalescer::new(now),
            udp_watched: true,
            reply: Vec::with_capacity(512),
            read_buf: vec![0; READ_CHUNK],
            next_housekeeping: now,
            next_stats: options.stats_interval.map(|interval| now + interval),
            last_stats: (now, 0),
            fd_warned_at: None,
            options,
        })
    }

    /// The addresses actually bound (ports resolved), in the order UDP/TCP pairs were bound.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.udp.iter().map(|endpoint| endpoint.local).collect()
    }

    /// Serves until `stop` is set; `stats_now` asks for one stats line (SIGUSR1).
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        stats_now: &AtomicBool,
        reporter: &mut dyn Reporter,
    ) -> anyhow::Result<()> {
        let mut events = Events::with_capacity(1024);
        while !stop.load(Ordering::Relaxed) {
            let coalescing = self.coalescer.wait();
            if coalescing.is_some() == self.udp_watched {
                self.watch_udp(coalescing.is_none())?;
            }
            if let Some(wait) = coalescing {
                std::thread::sleep(wait);
            }
            let timeout = self.poll_timeout(Instant::now());
            if let Err(error) = self.poll.poll(&mut events, Some(timeout)) {
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error).context("waiting for socket events");
                }
            }
            let now = Instant::now();
            for event in events.iter() {
                self.dispatch(
                    now,
                    event.token(),
                    event.is_readable(),
                    event.is_writable(),
                    reporter,
                );
            }
            self.udp_backlog(now, reporter);
            if now >= self.core.poll_timeout() {
                self.core.handle_timeout(now);
                self.drain_core(now, reporter);
            }
            if now >= self.next_housekeeping {
                self.housekeeping(now, reporter);
            }
            if stats_now.swap(false, Ordering::Relaxed) {
                reporter.stats(&self.snapshot(now));
            }
        }
        reporter.stats(&self.snapshot(Instant::now()));
        Ok(())
    }

    /// Puts the UDP sockets in epoll (`true`) or takes them out. While the rate keeps the
    /// coalescer on, the loop wakes on its timer and reads every socket anyway, and a socket
    /// epoll watches costs a wake-up call for every datagram: each answer the kernel frees
    /// runs the socket's write-space callback, which walks its wait queue (lock, epoll
    /// callback, unlock with interrupts restored; 3.3% of the server's CPU at 100,000
    /// requests/s). Out of epoll, the wait queue is empty and that callback returns at once.
    /// Back in epoll, a socket with datagrams waiting is reported at once (epoll checks
    /// readiness when a socket is added), so the switch loses nothing.
    fn watch_udp(&mut self, watch: bool) -> anyhow::Result<()> {
        for (i, endpoint) in self.udp.iter_mut().enumerate() {
            if watch {
                self.poll
                    .registry()
                    .register(&mut endpoint.socket, Token(i), Interest::READABLE)
                    .context("watching a UDP socket again")?;
            } else {
                self.poll
                    .registry()
                    .deregister(&mut endpoint.socket)
                    .context("unwatching a UDP socket")?;
                endpoint.backlog = true;
            }
        }
        self.udp_watched = watch;
        Ok(())
    }

    fn poll_timeout(&self, now: Instant) -> Duration {
        if self.udp.iter().any(|endpoint| endpoint.backlog) {
            return Duration::ZERO;
        }
        let wake = self.core.poll_timeout().min(self.next_housekeeping);
        wake.saturating_duration_since(now)
    }

    fn dispatch(
        &mut self,
        now: Instant,
        token: Token,
        readable: bool,
        writable: bool,
        reporter: &mut dyn Reporter,
    ) {
        match token.0 {
            i if i < LISTENER_BASE => self.udp_readable(now, i, reporter),
            i if i < CONN_BASE => self.accept(now, i - LISTENER_BASE, reporter),
            i => {
                let slot = i - CONN_BASE;
                if writable {
                    self.conn_writable(now, slot, reporter);
                }
                if readable {
                    self.conn_readable(now, slot, reporter);
                }
            }
        }
    }

    fn udp_backlog(&mut self, now: Instant, reporter: &mut dyn Reporter) {
        for i in 0..self.udp.len() {
            if self.udp[i].backlog {
                self.udp_readable(now, i, reporter);
            }
        }
    }

    /// Drains a UDP socket in batches, answering each datagram in the same batch.
    fn udp_readable(&mut self, now: Instant, index: usize, reporter: &mut dyn Reporter) {
        let fd = self.udp[index].socket.as_raw_fd();
        let local = self.udp[index].local;
        self.udp[index].backlog = false;
        for turn in 0.. {
            if turn == UDP_BATCHES_PER_TURN {
                self.udp[index].backlog = true;
                break;
            }
            let count = match self.recv.recv(fd) {
                Ok(0) => {
                    // An empty read counts too: the rate must fall when the load stops, or an
                    // unwatched socket would keep the loop on its timer with nothing to do.
                    self.coalescer.record(now, 0);
                    break;
                }
                Ok(count) => count,
                Err(error) => {
                    // ICMP errors from earlier sends surface here (ECONNREFUSED): not fatal.
                    if error.kind() != io::ErrorKind::ConnectionRefused {
                        reporter.warn(&format!("receiving on udp {local}: {error}"));
                    }
                    continue;
                }
            };
            self.coalescer.record(now, count);
            for i in 0..count {
                let (bytes, from) = self.recv.get(i);
                let Some(from) = from else { continue };
                if let Some((source, to)) =
                    self.core
                        .handle_udp(now, local, from, bytes, &mut self.reply)
                {
                    let out = if source == local {
                        index
                    } else {
                        self.udp
                            .iter()
                            .position(|e| e.local == source)
                            .unwrap_or(index)
                    };
                    self.udp[out].send.push(to, &self.reply);
                }
            }
            self.flush_udp();
            self.drain_core(now, reporter);
            if count < crate::io::udp_batch::BATCH {
                break;
            }
        }
        if !self.udp_watched {
            self.udp[index].backlog = true;
        }
    }

    fn flush_udp(&mut self) {
        for endpoint in &mut self.udp {
            if !endpoint.send.is_empty() {
                endpoint.send.flush(endpoint.socket.as_raw_fd());
            }
        }
    }

    fn accept(&mut self, now: Instant, index: usize, reporter: &mut dyn Reporter) {
        loop {
            let (stream, remote) = match self.listeners[index].0.accept() {
                Ok(accepted) => accepted,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error)
                    if error.raw_os_error() == Some(libc::EMFILE)
                        || error.raw_os_error() == Some(libc::ENFILE) =>
                {
                    self.warn_fd_limit(now, reporter);
                    return;
                }
                Err(error) => {
                    reporter.warn(&format!(
                        "accepting on tcp {}: {error}",
                        self.listeners[index].1
                    ));
                    return;
                }
            };
            if self.open_conns >= self.options.max_connections {
                self.core_drop(Drop::ConnectionLimit, Some(remote), reporter);
                continue;
            }
            let _ = stream.set_nodelay(true);
            let local = self.listeners[index].1;
            self.add_conn(now, stream, local, remote, None, false);
        }
    }

    fn warn_fd_limit(&mut self, now: Instant, reporter: &mut dyn Reporter) {
        if self
            .fd_warned_at
            .is_none_or(|at| now.duration_since(at) > Duration::from_secs(10))
        {
            self.fd_warned_at = Some(now);
            reporter.warn("out of file descriptors: not accepting TCP connections (raise `ulimit -n` or lower --max-connections)");
        }
    }

    fn core_drop(&mut self, reason: Drop, from: Option<SocketAddr>, reporter: &mut dyn Reporter) {
        // Shell-level drops are counted in the core so that one counter set tells all.
        self.core.count_drop(reason, Transport::Tcp, from);
        self.drain_events(reporter);
    }

    fn add_conn(
        &mut self,
        now: Instant,
        mut stream: TcpStream,
        local: SocketAddr,
        remote: SocketAddr,
        dial: Option<usize>,
        connecting: bool,
    ) -> Option<ConnId> {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.generations.push(0);
            self.conns.len() - 1
        });
        let interest = Interest::READABLE | Interest::WRITABLE;
        if self
            .poll
            .registry()
            .register(&mut stream, Token(CONN_BASE + slot), interest)
            .is_err()
        {
            self.free.push(slot);
            return None;
        }
        let id = (u64::from(self.generations[slot]) << 32) | slot as u64;
        self.conns[slot] = Some(Conn {
            stream,
            id,
            local,
            remote,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            last_active: now,
            partial_since: now,
            dial,
            connecting,
        });
        self.open_conns += 1;
        Some(id)
    }

    fn slot_of(&self, id: ConnId) -> Option<usize> {
        let slot = (id & 0xFFFF_FFFF) as usize;
        let generation = (id >> 32) as u32;
        (self.generations.get(slot) == Some(&generation) && self.conns[slot].is_some())
            .then_some(slot)
    }

    fn conn_writable(&mut self, now: Instant, slot: usize, reporter: &mut dyn Reporter) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if conn.connecting {
            match conn.stream.take_error() {
                Ok(None) if conn.stream.peer_addr().is_ok() => {
                    conn.connecting = false;
                    conn.local = conn.stream.local_addr().unwrap_or(conn.local);
                    let id = conn.id;
                    self.core.link_connected(now, id);
                    self.drain_core(now, reporter);
                }
                Ok(None) => {}
                _ => self.close(now, slot, None, reporter),
            }
            return;
        }
        if let Err(reason) = flush(conn) {
            self.close(now, slot, reason, reporter);
        }
    }

    fn conn_readable(&mut self, now: Instant, slot: usize, reporter: &mut dyn Reporter) {
        let mut buf = std::mem::take(&mut self.read_buf);
        while let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
            if conn.connecting {
                break;
            }
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    self.close(now, slot, None, reporter);
                    break;
                }
                Ok(n) => {
                    if let Err(reason) = self.consume(now, slot, &buf[..n], reporter) {
                        self.close(now, slot, reason, reporter);
                        break;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close(now, slot, None, reporter);
                    break;
                }
            }
        }
        self.read_buf = buf;
    }

    /// Splits received bytes into frames and hands each to the core. Unfinished frames wait in
    /// the connection's own buffer, which only then allocates.
    fn consume(
        &mut self,
        now: Instant,
        slot: usize,
        data: &[u8],
        reporter: &mut dyn Reporter,
    ) -> Result<(), Option<Drop>> {
        let conn = self.conns[slot].as_mut().expect("live connection");
        let mut pending = std::mem::take(&mut conn.inbuf);
        let owned = !pending.is_empty();
        if owned {
            pending.extend_from_slice(data);
        }
        let (id, local, remote) = (conn.id, conn.local, conn.remote);
        let mut offset = 0;
        let result = loop {
            let buffer = if owned {
                &pending[offset..]
            } else {
                &data[offset..]
            };
            match next_frame(buffer, self.options.max_message) {
                Frame::Complete(len) => {
                    let answered = self.core.handle_tcp(
                        now,
                        id,
                        local,
                        remote,
                        &buffer[..len],
                        &mut self.reply,
                    );
                    offset += len;
                    if let Some(conn) = self.conns[slot].as_mut() {
                        conn.last_active = now;
                        if answered {
                            queue_write(conn, &self.reply, self.options.max_tcp_backlog)?;
                        }
                    }
                    self.drain_core(now, reporter);
                    if self.conns[slot].is_none() {
                        return Ok(());
                    }
                }
                Frame::Partial => break Ok(()),
                Frame::TooLarge(_) => break Err(Some(Drop::OversizedFrame)),
                Frame::NotStun => break Err(Some(Drop::Malformed(DecodeError::NotStun))),
            }
        };
        let conn = self.conns[slot].as_mut().expect("live connection");
        let rest = if owned {
            &pending[offset..]
        } else {
            &data[offset..]
        };
        if !rest.is_empty() {
            if conn.inbuf.is_empty() && (!owned || offset > 0) {
                conn.partial_since = now;
            }
            conn.inbuf = rest.to_vec();
        }
        result
    }

    /// Carries out the core's commands and reports its events.
    fn drain_core(&mut self, now: Instant, reporter: &mut dyn Reporter) {
        while let Some(command) = self.core.poll_command() {
            match command {
                Command::Send {
                    route: Route::Udp { local, remote },
                    bytes,
                } => {
                    if let Some(endpoint) = self.udp.iter().find(|e| e.local == local) {
                        let _ = endpoint.socket.send_to(&bytes, remote);
                    }
                }
                Command::Send {
                    route: Route::Tcp { conn },
                    bytes,
                } => {
                    let Some(slot) = self.slot_of(conn) else {
                        continue;
                    };
                    let conn = self.conns[slot].as_mut().expect("live");
                    if let Err(reason) = queue_write(conn, &bytes, self.options.max_tcp_backlog) {
                        self.close(now, slot, reason, reporter);
                    }
                }
                Command::Close { conn } => {
                    if let Some(slot) = self.slot_of(conn) {
                        self.close(now, slot, None, reporter);
                    }
                }
            }
        }
        self.drain_events(reporter);
    }

    fn drain_events(&mut self, reporter: &mut dyn Reporter) {
        while let Some(event) = self.core.poll_event() {
            reporter.event(&event);
        }
    }

    fn close(
        &mut self,
        now: Instant,
        slot: usize,
        reason: Option<Drop>,
        reporter: &mut dyn Reporter,
    ) {
        let Some(mut conn) = self.conns[slot].take() else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.generations[slot] = self.generations[slot].wrapping_add(1);
        self.free.push(slot);
        self.open_conns -= 1;
        if let Some(reason) = reason {
            self.core
                .count_drop(reason, Transport::Tcp, Some(conn.remote));
        }
        if let Some(dial) = conn.dial {
            self.link_lost(now, dial, conn.connecting, reporter);
        }
        self.core.tcp_closed(conn.id);
        self.drain_core(now, reporter);
    }

    /// Schedules a redial: at once-ish after a link that worked, with a doubling backoff (and a
    /// warning) after a dial that never connected, so a dead server is not hammered.
    fn link_lost(
        &mut self,
        now: Instant,
        dial: usize,
        never_connected: bool,
        reporter: &mut dyn Reporter,
    ) {
        let link = &mut self.links[dial];
        let backoff = if never_connected {
            link.backoff
        } else {
            REDIAL_MIN
        };
        if never_connected {
            reporter.warn(&format!(
                "cannot connect to linked server {}; retrying in {:.1}s",
                link.addr,
                backoff.as_secs_f64()
            ));
        }
        link.backoff = (backoff * 2).min(REDIAL_MAX);
        link.state = LinkState::Idle {
            retry_at: now + backoff,
        };
    }

    /// Closes idle connections, redials links, prints periodic stats.
    fn housekeeping(&mut self, now: Instant, reporter: &mut dyn Reporter) {
        self.next_housekeeping = now + HOUSEKEEPING;
        let idle = self.options.tcp_idle;
        let mut doomed = Vec::new();
        for (slot, conn) in self.conns.iter().enumerate() {
            let Some(conn) = conn else { continue };
            let stalled_frame =
                !conn.inbuf.is_empty() && now.duration_since(conn.partial_since) > idle;
            let idle_unheld = !self.core.holds_conn(conn.id)
                && conn.dial.is_none()
                && now.duration_since(conn.last_active) > idle;
            if stalled_frame || idle_unheld {
                doomed.push(slot);
            }
        }
        for slot in doomed {
            self.close(now, slot, Some(Drop::IdleConnection), reporter);
        }
        self.redial(now, reporter);
        if self.next_stats.is_some_and(|at| now >= at) {
            self.next_stats = self.options.stats_interval.map(|interval| now + interval);
            reporter.stats(&self.snapshot(now));
        }
    }

    fn redial(&mut self, now: Instant, reporter: &mut dyn Reporter) {
        for index in 0..self.links.len() {
            let LinkState::Idle { retry_at } = self.links[index].state else {
                continue;
            };
            if now < retry_at {
                continue;
            }
            let addr = self.links[index].addr;
            let linked = TcpStream::connect(addr).ok().and_then(|stream| {
                let local = stream.local_addr().unwrap_or(addr);
                self.add_conn(now, stream, local, addr, Some(index), true)
            });
            match linked {
                Some(_) => self.links[index].state = LinkState::Linked,
                None => self.link_lost(now, index, true, reporter),
            }
        }
    }

    fn snapshot(&mut self, now: Instant) -> StatsSnapshot {
        let counters = self.core.counters().clone();
        let (since, received_then) = self.last_stats;
        let elapsed = now.duration_since(since).as_secs_f64();
        let rate = if elapsed > 0.0 {
            (counters.received - received_then) as f64 / elapsed
        } else {
            0.0
        };
        self.last_stats = (now, counters.received);
        let (sessions_udp, sessions_tcp) = self.core.session_counts();
        StatsSnapshot {
            sessions_udp,
            sessions_tcp,
            links: self
                .core
                .link_names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            connections: self.open_conns,
            requests_per_sec: rate,
            counters,
        }
    }
}

/// Appends to a connection's output, writing straight away when nothing is queued.
fn queue_write(conn: &mut Conn, bytes: &[u8], max_backlog: usize) -> Result<(), Option<Drop>> {
    if conn.outbuf.is_empty() && !conn.connecting {
        match conn.stream.write(bytes) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(n) => conn.outbuf.extend_from_slice(&bytes[n..]),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                conn.outbuf.extend_from_slice(bytes)
            }
            Err(_) => return Err(None),
        }
    } else {
        conn.outbuf.extend_from_slice(bytes);
    }
    if conn.outbuf.len() > max_backlog {
        return Err(Some(Drop::SlowReader));
    }
    Ok(())
}

/// Writes queued output; frees the buffer once empty.
fn flush(conn: &mut Conn) -> Result<(), Option<Drop>> {
    while !conn.outbuf.is_empty() {
        match conn.stream.write(&conn.outbuf) {
            Ok(0) => return Err(None),
            Ok(n) => {
                conn.outbuf.drain(..n);
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(None),
        }
    }
    conn.outbuf = Vec::new();
    Ok(())
}

/// Binds UDP and TCP on the same address; with port 0, TCP takes the port UDP was given.
fn bind_pair(addr: SocketAddr) -> anyhow::Result<BoundPair> {
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last_error = None;
    for _ in 0..attempts {
        let udp = bind_udp(addr)?;
        let local = udp.local_addr()?;
        match bind_tcp(local) {
            Ok(listener) => {
                return Ok((
                    UdpSocket::from_std(udp),
                    TcpListener::from_std(listener),
                    local,
                ))
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.expect("at least one attempt")).with_context(|| format!("binding TCP {addr}"))
}

fn new_socket(addr: SocketAddr, kind: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    if addr.is_ipv6() {
        // So that [::]:3478 and 0.0.0.0:3478 can both be given.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Asks for a large receive buffer: SO_RCVBUFFORCE when privileged (it ignores
/// net.core.rmem_max, often only 208 KiB), else SO_RCVBUF up to that cap.
fn set_receive_buffer(socket: &Socket, bytes: usize) {
    let value = bytes as libc::c_int;
    // SAFETY: setsockopt(2) on a socket we own, with a c_int value of the declared size.
    let forced = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if forced != 0 {
        let _ = socket.set_recv_buffer_size(bytes);
    }
}

fn bind_udp(addr: SocketAddr) -> anyhow::Result<std::net::UdpSocket> {
    let socket = new_socket(addr, Type::DGRAM, Protocol::UDP).context("creating a UDP socket")?;
    set_receive_buffer(&socket, UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    socket.bind(&addr.into()).with_context(|| {
        format!("binding UDP {addr} (is another server using it? choose another --listen)")
    })?;
    Ok(socket.into())
}

fn bind_tcp(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = new_socket(addr, Type::STREAM, Protocol::TCP)?;
    // Restarting the server must not wait for old connections in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Pairs `--alternate` with the first `--listen` of its family and binds the other three
/// addresses of the RFC 5780 set.
fn full_mode(
    listen: &[SocketAddr],
    bound: &[BoundPair],
    alternate: SocketAddr,
) -> anyhow::Result<(FullMode, Vec<BoundPair>)> {
    let Some(index) = listen
        .iter()
        .position(|addr| addr.is_ipv4() == alternate.is_ipv4())
    else {
        bail!("--alternate {alternate} needs a --listen address of the same IP family");
    };
    let primary = bound[index].2;
    if primary.ip().is_unspecified() || alternate.ip().is_unspecified() {
        bail!("RFC 5780 full mode needs specific IPs: --listen {primary} and --alternate {alternate} must not be wildcards");
    }
    if primary.ip() == alternate.ip() || primary.port() == alternate.port() || alternate.port() == 0
    {
        bail!("--alternate {alternate} must differ from --listen {primary} in both IP and port (RFC 5780 §4.2)");
    }
    let full = FullMode { primary, alternate };
    let mut extra = Vec::new();
    for addr in full.addresses().into_iter().skip(1) {
        let (udp, tcp) = (
            bind_udp(addr)?,
            bind_tcp(addr).with_context(|| format!("binding TCP {addr}"))?,
        );
        extra.push((UdpSocket::from_std(udp), TcpListener::from_std(tcp), addr));
    }
    Ok((full, extra))
}

/// Binds a UDP socket and a TCP listener on every `--listen` address, and with `--alternate`
/// the other three addresses of the RFC 5780 set.
fn bind_all(options: &ServeOptions) -> anyhow::Result<(Vec<BoundPair>, Option<FullMode>)> {
    let mut bound = Vec::new();
    for addr in &options.listen {
        bound.push(bind_pair(*addr)?);
    }
    let Some(alternate) = options.alternate else {
        return Ok((bound, None));
    };
    let (full, extra) = full_mode(&options.listen, &bound, alternate)?;
    bound.extend(extra);
    Ok((bound, Some(full)))
}

/// The core's configuration, with a fresh random nonce secret for this process.
fn core_config(options: &ServeOptions, full_mode: Option<FullMode>) -> ServerConfig {
    let mut nonce_secret = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce_secret);
    ServerConfig {
        name: options.name.clone(),
        udp_expiry: options.udp_expiry,
        max_sessions: options.max_sessions,
        max_sessions_per_ip: options.max_sessions_per_ip,
        max_pending_calls: options.max_pending_calls,
        full_modes: full_mode.into_iter().collect(),
        credentials: options.credentials.clone(),
        nonce_secret,
        answer_rate: options.answer_rate,
    }
}

/// Registers the bound sockets with epoll (UDP socket `i` as token `i`, its listener as
/// `LISTENER_BASE + i`) and reports each address listened on.
fn watch_bound(
    poll: &Poll,
    bound: Vec<BoundPair>,
    full_modes: &[FullMode],
    reporter: &mut dyn Reporter,
) -> anyhow::Result<(Vec<UdpEndpoint>, Listeners)> {
    let mut udp = Vec::new();
    let mut listeners = Vec::new();
    for (i, (mut socket, mut listener, local)) in bound.into_iter().enumerate() {
        poll.registry()
            .register(&mut socket, Token(i), Interest::READABLE)?;
        poll.registry()
            .register(&mut listener, Token(LISTENER_BASE + i), Interest::READABLE)?;
        let full = full_modes.iter().find(|f| f.serves(&local));
        reporter.listening(Transport::Udp, local, full);
        reporter.listening(Transport::Tcp, local, full);
        udp.push(UdpEndpoint {
            socket,
            local,
            send: SendBatch::default(),
            backlog: false,
        });
        listeners.push((listener, local));
    }
    Ok((udp, listeners))
}

/// Transaction-ID seed for the core: not security-relevant until credentials exist, but
/// different per run so that two servers never share IDs.
fn seed_from_clock() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stats line's JSON keeps its `peers` key for the linked servers' names.
    #[test]
    fn stats_json_names_the_links_peers() {
        let snapshot = StatsSnapshot {
            sessions_udp: 0,
            sessions_tcp: 0,
            links: vec!["s2".into()],
            connections: 1,
            requests_per_sec: 0.0,
            counters: Counters::default(),
        };
        let json = serde_json::to_value(&snapshot).unwrap();
        assert_eq!(json["peers"], serde_json::json!(["s2"]));
        assert!(json.get("links").is_none());
    }
}
