//! The location server's IO shell: one mio event loop that owns the UDP sockets, the TCP
//! listeners and connections, the federation dialers and the clock, and feeds
//! [`ServerCore`]. Single-threaded by design: the core is cheap per message and one thread
//! pinned to one core is what the benchmark compares against coturn.
//!
//! Memory per TCP connection is what [`Conn`] holds plus the kernel's socket: the read and
//! write buffers are empty `Vec`s (no heap) except while a frame is half-received or the other
//! end is slow to read, which keeps ~20,000 held logins in a few MiB of RSS.
//!
//! The loop, the UDP path and the core's commands are here; TCP connections are in `conns`, the
//! federation dialers in `links`, binding the sockets in `sockets`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token};

use crate::core::binding::FullMode;
use crate::core::events::{Command, Event};
use crate::core::registry::Route;
use crate::core::server::{ServerConfig, ServerCore};
use crate::core::stats::Counters;
use crate::core::Transport;
use crate::io::coalesce::Coalescer;
use crate::io::udp_batch::{RecvBatch, SendBatch};

mod conns;
mod links;
pub mod redis_registry;
mod sockets;
mod syn_tests;

use conns::{queue_write, Conn};
use links::LinkDial;
use redis_registry::{RedisRegistry, RegistryTarget};
use sockets::{bind_all, watch_bound};
use syn_tests::SynCrafters;

/// Everything the shell needs besides the core's own configuration.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: Vec<SocketAddr>,
    /// `--alternate`: at most one per IP family, each paired with the first `--listen` of its
    /// family (RFC 5780 full mode per family).
    pub alternate: Vec<SocketAddr>,
    /// Addresses a LOGIN success names besides the specific `--listen` ones (`--advertise`).
    pub advertise: Vec<SocketAddr>,
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
    /// The shared registry (`--registry`), if any.
    pub registry: Option<RegistryTarget>,
    /// The address other servers dial to link to this one (`--link-address`); needed with
    /// a registry, whose entries name it.
    pub link_address: Option<SocketAddr>,
    /// How often each ID's registry entry is rewritten (`--registry-refresh`).
    pub registry_refresh: Duration,
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
    /// The shared registry: `connecting`, `up` or `down`; absent without `--registry`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<&'static str>,
}

/// Where the shell reports what happens; implemented by the log renderer.
pub trait Reporter {
    fn listening(&mut self, transport: Transport, addr: SocketAddr, full_mode: Option<&FullMode>);
    fn event(&mut self, event: &Event);
    fn stats(&mut self, stats: &StatsSnapshot);
    fn warn(&mut self, message: &str);
}

const LISTENER_BASE: usize = 1 << 16;
/// The raw sockets that see the answers to the TCP filtering test's SYNs, one per family
/// sharing the token (below the listeners' tokens, above any UDP socket's).
const SYN_SNIFFER: usize = LISTENER_BASE - 1;
/// The registry thread's wake-up: its answers are waiting.
const REGISTRY_WAKER: usize = LISTENER_BASE - 2;
const CONN_BASE: usize = 1 << 17;
/// How often idle connections, link redials and stats are looked after.
const HOUSEKEEPING: Duration = Duration::from_millis(250);
/// Datagram batches handled per readiness event before other sockets get a turn.
const UDP_BATCHES_PER_TURN: usize = 64;
/// Size of one TCP read.
const READ_CHUNK: usize = 16 << 10;

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
    /// The TCP filtering test's raw sockets, one pair per full-mode family; none without full
    /// mode or CAP_NET_RAW.
    syn: SynCrafters,
    /// The registry thread (`--registry`).
    registry: Option<RedisRegistry>,
}

impl Server {
    /// Binds every socket; fails with context when an address is taken or invalid.
    pub fn bind(options: ServeOptions, reporter: &mut dyn Reporter) -> anyhow::Result<Server> {
        let poll = Poll::new().context("creating the epoll instance")?;
        let (bound, full_modes) = bind_all(&options)?;
        let now = Instant::now();
        // The `--listen` pairs come first, ports resolved; a wildcard one names no address.
        let listening = bound.iter().take(options.listen.len()).map(|pair| pair.2);
        let named = listening.filter(|a| !a.ip().is_unspecified());
        let addresses = named.chain(options.advertise.iter().copied()).collect();
        let config = ServerConfig {
            addresses,
            ..core_config(&options, full_modes)
        };
        if config.credentials.is_none() {
            reporter.warn(
                "running open (no --credentials): anyone can log in as any free ID; \
                 use only in a lab or a demo",
            );
        }
        let (udp, listeners) = watch_bound(&poll, bound, &config.full_modes, reporter)?;
        let syn = syn_tests::open(&poll, &config.full_modes, Token(SYN_SNIFFER), reporter);
        let links = options
            .links
            .iter()
            .map(|&addr| LinkDial::new(addr, now))
            .collect();
        let seed = seed_from_clock();
        let mut core = ServerCore::new(config, now, seed);
        if !syn.is_empty() {
            core.enable_syn_tests();
        }
        let first_listener = listeners.first().map(|(_, local)| *local);
        let registry = redis_registry::start_for(&poll, &options, &mut core, first_listener)?;
        Ok(Server {
            poll,
            core,
            syn,
            registry,
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
            SYN_SNIFFER => self.syn_replies(now, reporter),
            REGISTRY_WAKER => self.registry_replies(now, reporter),
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

    /// Carries out the core's commands and reports its events.
    fn drain_core(&mut self, now: Instant, reporter: &mut dyn Reporter) {
        while let Some(command) = self.core.poll_command() {
            match command {
                Command::Send {
                    route: Route::Udp { local, remote },
                    bytes,
                } => {
                    if let Some(endpoint) = udp_endpoint_for(&self.udp, local) {
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
        self.send_syns(reporter);
        self.drain_events(reporter);
        if self.registry_out(now) {
            self.drain_core(now, reporter);
        }
    }

    fn drain_events(&mut self, reporter: &mut dyn Reporter) {
        while let Some(event) = self.core.poll_event() {
            reporter.event(&event);
        }
    }

    /// Closes idle connections, redials links, prints periodic stats.
    fn housekeeping(&mut self, now: Instant, reporter: &mut dyn Reporter) {
        self.next_housekeeping = now + HOUSEKEEPING;
        self.close_idle(now, reporter);
        self.redial(now, reporter);
        if self.next_stats.is_some_and(|at| now >= at) {
            self.next_stats = self.options.stats_interval.map(|interval| now + interval);
            reporter.stats(&self.snapshot(now));
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
            registry: self
                .core
                .home_registry()
                .map(|registry| registry.availability().as_str()),
        }
    }
}

/// The UDP socket that sends as `local`: the one bound there, or a wildcard one on its port (a
/// TCP connection's local address names the IP a `--listen 0.0.0.0:P` socket serves).
fn udp_endpoint_for(udp: &[UdpEndpoint], local: SocketAddr) -> Option<&UdpEndpoint> {
    udp.iter().find(|e| e.local == local).or_else(|| {
        udp.iter().find(|e| {
            e.local.port() == local.port()
                && e.local.ip().is_unspecified()
                && e.local.is_ipv4() == local.is_ipv4()
        })
    })
}

/// What `--max-sessions` budgets per session when it sizes itself to the machine: the measured
/// cost of a UDP session (about 110 bytes at a million) with room for longer IDs and the
/// per-address counts.
pub const SESSION_BUDGET_BYTES: u64 = 256;
/// The least default `--max-sessions`, whatever the memory: the fixed default it replaced.
pub const MIN_DEFAULT_MAX_SESSIONS: usize = 100_000;

/// The default `--max-sessions`: a quarter of the memory available now, at
/// [`SESSION_BUDGET_BYTES`] a session, and at least [`MIN_DEFAULT_MAX_SESSIONS`].
pub fn default_max_sessions() -> usize {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|meminfo| mem_available_bytes(&meminfo))
        .unwrap_or(0);
    sessions_for_memory(available)
}

fn sessions_for_memory(available_bytes: u64) -> usize {
    let sessions = available_bytes / 4 / SESSION_BUDGET_BYTES;
    // The registry numbers its slots with u32.
    (sessions.min(u64::from(u32::MAX) / 2) as usize).max(MIN_DEFAULT_MAX_SESSIONS)
}

/// MemAvailable from /proc/meminfo's text, in bytes.
fn mem_available_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The core's configuration, with a fresh random nonce secret for this process.
fn core_config(options: &ServeOptions, full_modes: Vec<FullMode>) -> ServerConfig {
    let mut nonce_secret = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce_secret);
    ServerConfig {
        name: options.name.clone(),
        udp_expiry: options.udp_expiry,
        max_sessions: options.max_sessions,
        max_sessions_per_ip: options.max_sessions_per_ip,
        max_pending_calls: options.max_pending_calls,
        full_modes,
        credentials: options.credentials.clone(),
        nonce_secret,
        answer_rate: options.answer_rate,
        addresses: Vec::new(),
    }
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

    #[test]
    fn the_default_session_cap_follows_the_memory_available() {
        let meminfo = "MemTotal:       24683520 kB\nMemAvailable:    8388608 kB\n";
        let available = mem_available_bytes(meminfo).unwrap();
        assert_eq!(available, 8 << 30);
        // 2 GiB of 8 at 256 B a session.
        assert_eq!(sessions_for_memory(available), 8_388_608);
        assert_eq!(sessions_for_memory(0), MIN_DEFAULT_MAX_SESSIONS);
        assert_eq!(mem_available_bytes("MemTotal: 1 kB\n"), None);
    }

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
            registry: None,
        };
        let json = serde_json::to_value(&snapshot).unwrap();
        assert_eq!(json["peers"], serde_json::json!(["s2"]));
        assert!(json.get("links").is_none());
    }
}
