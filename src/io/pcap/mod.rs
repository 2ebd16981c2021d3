//! `--pcap FILE`: every packet natlens sends and receives on its sockets, in a pcapng file for
//! Wireshark or tshark.
//!
//! Two ways, chosen at [`start`]:
//! * Live (root or CAP_NET_RAW): a packet socket sees the frames as they are on the wire (the
//!   kernel's headers, crafted SYNs, TCP handshakes and resets included); [`live`] keeps those
//!   whose local transport address is one of natlens's sockets, which register as they are
//!   bound ([`watch_udp`], [`watch_tcp`]).
//! * Synthesized (no CAP_NET_RAW, [`synth`]): each UDP datagram natlens sends or receives
//!   ([`udp_sent`], [`udp_received`]) is written with made-up Ethernet/IP/UDP headers (valid
//!   lengths and checksums) and a packet comment saying so. Each TCP stream is written as the
//!   segments it would have been: a handshake when it opens ([`tcp_connected`],
//!   [`tcp_accepted`]), a segment per write and read ([`tcp_sent`], [`tcp_received`]), and
//!   its FINs or RST when natlens ends it ([`tcp_shutdown`], [`tcp_closing`]), with
//!   continuous sequence and acknowledgement numbers ([`streams`]). Not in such a file: the
//!   connect() tries that failed, and how a stream the peer reset ended (a reset socket no
//!   longer knows its peer's address).
//!
//! Why a process-wide recorder rather than a handle passed down: the sockets are opened in a
//! dozen places across the prober, the session client and the UDP and TCP punches, on several
//! threads, each behind its own options struct; a handle would change every one of those
//! signatures for a diagnostic that is off almost always. The hooks are one line each and cost
//! one atomic load when no capture runs.

mod file;
mod frame;
mod live;
mod streams;
mod synth;
mod watch;

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context;

use file::PcapFile;
use frame::Proto;
use live::Live;
use streams::{Ending, Key, Opener, Way};
use synth::Synthesizer;
use watch::Watched;

/// The line said (once, on stderr) when natlens cannot capture.
pub const NO_CAP_NET_RAW: &str = "natlens: --pcap: no CAP_NET_RAW, writing the packets natlens \
                                  sent and received with synthesized headers";
/// The comment on every synthesized packet.
pub const SYNTHESIZED_COMMENT: &str =
    "synthesized by natlens (no CAP_NET_RAW): the payload as sent or received, made-up headers";

/// True while a capture runs: the hooks' only cost otherwise.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static RECORDER: RwLock<Option<Arc<Recorder>>> = RwLock::new(None);
/// The live capture thread and its file's path, while one runs: process-wide so that an exit
/// on Ctrl-C ([`crate::io::signal::exit_on_interrupt`]) can finish the file first.
static LIVE: Mutex<Option<(Live, PathBuf)>> = Mutex::new(None);

enum Recorder {
    /// Registered sockets, which the capture thread consults.
    Live(Arc<Watched>),
    /// What the hooks write to, and natlens's sockets: a datagram one of them sends to
    /// another, or a connection between two of them (a hairpin probe on loopback), is
    /// recorded once, from the side that sends or connects.
    Synthesized(Box<Mutex<Synthesizer>>, Watched),
}

/// A running `--pcap` capture. Dropping it (on every way out of a command, errors included)
/// writes what is still pending and closes the file.
pub struct Capture {
    _private: (),
}

/// Starts capturing into `path` (created or truncated): live when this process may open a
/// packet socket, synthesized otherwise (saying so in one line on stderr). Call it before any
/// socket is opened and before capabilities are dropped.
pub fn start(path: &Path) -> anyhow::Result<Capture> {
    let file = PcapFile::create(path)
        .with_context(|| format!("--pcap: cannot create {}", path.display()))?;
    let (recorder, live) = match live::open_socket() {
        Ok(fd) => {
            let watched = Arc::new(Watched::default());
            let live = Live::spawn(fd, Arc::clone(&watched), file, interrupt_flag()?)?;
            (Recorder::Live(watched), Some(live))
        }
        Err(err) if matches!(err.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
            eprintln!("{NO_CAP_NET_RAW}");
            let watched = Watched::default();
            let synth = Box::new(Mutex::new(Synthesizer::new(file)));
            (Recorder::Synthesized(synth, watched), None)
        }
        Err(err) => return Err(err).context("--pcap: cannot open a packet socket"),
    };
    *RECORDER.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(recorder));
    *LIVE.lock().unwrap_or_else(|e| e.into_inner()) = live.map(|live| (live, path.to_owned()));
    crate::io::signal::before_interrupt_exit(finish);
    ACTIVE.store(true, Ordering::Release);
    Ok(Capture { _private: () })
}

/// [`start`] when `--pcap` named a file; keep the capture for as long as the command runs.
pub fn start_if(path: Option<&Path>) -> anyhow::Result<Option<Capture>> {
    path.map(start).transpose()
}

/// What SIGINT and SIGTERM set: the signal's number, for the capture thread to finish the
/// file on Ctrl-C in a command that has no stop flag of its own and exit as the signal would
/// have. Registering it takes the signals' default action (terminate) away, so a second signal
/// exits at once with 128 + signal, as in [`crate::io::signal`].
fn interrupt_flag() -> std::io::Result<Arc<AtomicUsize>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let raised = Arc::new(AtomicBool::new(false));
    let number = Arc::new(AtomicUsize::new(0));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(
            signal,
            128 + signal,
            Arc::clone(&raised),
        )?;
        signal_hook::flag::register(signal, Arc::clone(&raised))?;
        signal_hook::flag::register_usize(signal, Arc::clone(&number), signal as usize)?;
    }
    Ok(number)
}

impl Drop for Capture {
    fn drop(&mut self) {
        finish();
    }
}

/// Stops recording, writes what is still pending and closes the file (once: later calls find
/// nothing to do).
fn finish() {
    ACTIVE.store(false, Ordering::Release);
    RECORDER.write().unwrap_or_else(|e| e.into_inner()).take();
    let live = LIVE.lock().unwrap_or_else(|e| e.into_inner()).take();
    let Some((live, path)) = live else {
        return;
    };
    match live.finish() {
        Ok(0) => {}
        Ok(dropped) => eprintln!(
            "natlens: --pcap: the kernel dropped {dropped} frames before natlens read them; \
             {} may lack some",
            path.display()
        ),
        Err(err) => eprintln!("natlens: --pcap: writing {}: {err}", path.display()),
    }
}

fn recorder() -> Option<Arc<Recorder>> {
    if !ACTIVE.load(Ordering::Acquire) {
        return None;
    }
    RECORDER.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A socket whose addresses the hooks can ask for.
pub trait Bound {
    fn local(&self) -> Option<SocketAddr>;
    fn peer(&self) -> Option<SocketAddr>;
}

macro_rules! bound_std {
    ($($socket:ty),*) => {$(
        impl Bound for $socket {
            fn local(&self) -> Option<SocketAddr> {
                self.local_addr().ok()
            }
            fn peer(&self) -> Option<SocketAddr> {
                None
            }
        }
    )*};
}
bound_std!(TcpListener, mio::net::TcpListener);

macro_rules! bound_connected {
    ($($socket:ty),*) => {$(
        impl Bound for $socket {
            fn local(&self) -> Option<SocketAddr> {
                self.local_addr().ok()
            }
            fn peer(&self) -> Option<SocketAddr> {
                self.peer_addr().ok()
            }
        }
    )*};
}
bound_connected!(
    UdpSocket,
    TcpStream,
    mio::net::UdpSocket,
    mio::net::TcpStream
);

impl Bound for socket2::Socket {
    fn local(&self) -> Option<SocketAddr> {
        self.local_addr().ok()?.as_socket()
    }
    fn peer(&self) -> Option<SocketAddr> {
        self.peer_addr().ok()?.as_socket()
    }
}

/// Registers a bound UDP socket with a live capture.
pub fn watch_udp(socket: &impl Bound) {
    watch(Proto::Udp, socket);
}

/// Registers a bound (or connecting) TCP socket with a live capture.
pub fn watch_tcp(socket: &impl Bound) {
    watch(Proto::Tcp, socket);
}

fn watch(proto: Proto, socket: &impl Bound) {
    let (Some(recorder), Some(local)) = (recorder(), socket.local()) else {
        return;
    };
    match &*recorder {
        Recorder::Live(watched) => watched.add(proto, local),
        Recorder::Synthesized(_, watched) => watched.add(proto, local),
    }
}

/// Records a datagram `socket` sent to `to` (its connected peer when `None`) when natlens
/// cannot capture.
pub fn udp_sent(socket: &impl Bound, to: Option<SocketAddr>, payload: &[u8]) {
    synthesize_udp(socket, to, payload, true);
}

/// Records a datagram `socket` received from `from` (its connected peer when `None`) when
/// natlens cannot capture.
pub fn udp_received(socket: &impl Bound, from: Option<SocketAddr>, payload: &[u8]) {
    synthesize_udp(socket, from, payload, false);
}

fn synthesize_udp(socket: &impl Bound, remote: Option<SocketAddr>, payload: &[u8], sent: bool) {
    let Some(recorder) = recorder() else {
        return;
    };
    let Recorder::Synthesized(synth, watched) = &*recorder else {
        return;
    };
    let (Some(local), Some(remote)) = (socket.local(), remote.or_else(|| socket.peer())) else {
        return;
    };
    let local = routed(local, remote);
    let (src, dst) = if sent {
        (local, remote)
    } else {
        (remote, local)
    };
    if !sent && watched.owns(Proto::Udp, src) {
        return;
    }
    lock(synth).udp(src, dst, payload);
}

/// A wildcard socket's address as the kernel fills it in toward `remote`.
fn routed(mut local: SocketAddr, remote: SocketAddr) -> SocketAddr {
    if local.ip().is_unspecified() {
        if let Ok(ip) = crate::io::route::local_ip_toward(remote) {
            local.set_ip(ip);
        }
    }
    local
}

fn lock(synth: &Mutex<Synthesizer>) -> std::sync::MutexGuard<'_, Synthesizer> {
    synth.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records the handshake of a TCP stream natlens's socket connected (a simultaneous open
/// included), when natlens cannot capture. Call it once the connection is established.
pub fn tcp_connected(stream: &impl Bound) {
    synthesize_tcp(stream, |synth, key, _| synth.tcp_open(key, Opener::Local));
}

/// Records the handshake of a TCP stream a listener of natlens's accepted, when natlens cannot
/// capture. A connection from another of natlens's own sockets (a hairpin probe on one host) is
/// recorded once, from the connecting side.
pub fn tcp_accepted(stream: &impl Bound) {
    synthesize_tcp(stream, |synth, key, watched| {
        if !watched.owns(Proto::Tcp, key.1) {
            synth.tcp_open(key, Opener::Remote);
        }
    });
}

/// Records bytes natlens wrote on a TCP stream (after the write succeeded), when natlens
/// cannot capture.
pub fn tcp_sent(stream: &impl Bound, bytes: &[u8]) {
    synthesize_tcp(stream, |synth, key, _| synth.tcp_data(key, Way::Out, bytes));
}

/// Records what a read on a TCP stream returned, when natlens cannot capture: the bytes, or
/// for an empty read (the end of the stream) the remote end's FIN.
pub fn tcp_received(stream: &impl Bound, bytes: &[u8]) {
    synthesize_tcp(stream, |synth, key, _| synth.tcp_data(key, Way::In, bytes));
}

/// Records natlens's FIN on a TCP stream it is about to shut down for writing, when natlens
/// cannot capture (and the remote end's, if it is already waiting to be read). Call it before
/// `shutdown`: once both ends have closed, the socket no longer knows its peer's address.
pub fn tcp_shutdown(stream: &(impl Bound + AsFd)) {
    synthesize_tcp(stream, |synth, key, _| {
        synth.tcp_end(key, Ending::Fin, queued(stream) == Queued::End)
    });
}

/// Records how a TCP stream natlens is about to close ends, when natlens cannot capture: a RST
/// when the socket lingers 0 s or has unread bytes (the kernel resets then), FINs otherwise.
pub fn tcp_closing(stream: &(impl Bound + AsFd)) {
    synthesize_tcp(stream, |synth, key, _| {
        let queued = queued(stream);
        let lingers_zero = socket2::SockRef::from(stream)
            .linger()
            .is_ok_and(|linger| linger == Some(std::time::Duration::ZERO));
        let ending = if lingers_zero || queued == Queued::Bytes {
            Ending::Reset
        } else {
            Ending::Fin
        };
        synth.tcp_end(key, ending, queued == Queued::End)
    });
}

/// What waits in a stream's receive queue.
#[derive(Debug, PartialEq, Eq)]
enum Queued {
    Nothing,
    Bytes,
    /// The remote end's FIN, and nothing before it.
    End,
}

fn queued(stream: &impl AsFd) -> Queued {
    let mut byte = 0u8;
    // SAFETY: recv(2) of at most one byte into a byte we own; MSG_PEEK leaves it queued and
    // MSG_DONTWAIT keeps a blocking socket from waiting.
    let read = unsafe {
        libc::recv(
            stream.as_fd().as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match read {
        0 => Queued::End,
        n if n > 0 => Queued::Bytes,
        _ => Queued::Nothing,
    }
}

/// Runs `record` on the synthesized capture with the stream's key (its local and remote
/// addresses, IPv4-mapped ones as IPv4), if natlens is writing one.
fn synthesize_tcp(stream: &impl Bound, record: impl FnOnce(&mut Synthesizer, Key, &Watched)) {
    let Some(recorder) = recorder() else {
        return;
    };
    let Recorder::Synthesized(synth, watched) = &*recorder else {
        return;
    };
    let (Some(local), Some(remote)) = (stream.local(), stream.peer()) else {
        return;
    };
    let key = (canonical(routed(local, remote)), canonical(remote));
    record(&mut lock(synth), key, watched);
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}
