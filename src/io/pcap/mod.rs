//! `--pcap FILE`: every packet natlens sends and receives on its sockets, in a pcapng file for
//! Wireshark or tshark.
//!
//! Two ways, chosen at [`start`]:
//! * Live (root or CAP_NET_RAW): a packet socket sees the frames as they are on the wire (the
//!   kernel's headers, crafted SYNs, TCP handshakes and resets included); [`live`] keeps those
//!   whose local transport address is one of natlens's sockets, which register as they are
//!   bound ([`watch_udp`], [`watch_tcp`]).
//! * Synthesized (no CAP_NET_RAW): each UDP datagram natlens sends or receives
//!   ([`udp_sent`], [`udp_received`]) is written with made-up Ethernet/IP/UDP headers (valid
//!   lengths and checksums) and a packet comment saying so. TCP is not recorded then.
//!
//! Why a process-wide recorder rather than a handle passed down: the sockets are opened in a
//! dozen places across the prober, the session client and the UDP and TCP punches, on several
//! threads, each behind its own options struct; a handle would change every one of those
//! signatures for a diagnostic that is off almost always. The hooks are one line each and cost
//! one atomic load when no capture runs.

mod file;
mod frame;
mod live;
mod watch;

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use file::PcapFile;
use frame::Proto;
use live::Live;
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
    /// The file the hooks write to (`None` after a write failed, said once), and natlens's
    /// UDP sockets: a datagram one of them sends to another (a hairpin probe on loopback) is
    /// recorded once, when sent.
    Synthesized(Mutex<Option<PcapFile>>, Watched),
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
            (Recorder::Synthesized(Mutex::new(Some(file)), watched), None)
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
    synthesize(socket, to, payload, true);
}

/// Records a datagram `socket` received from `from` (its connected peer when `None`) when
/// natlens cannot capture.
pub fn udp_received(socket: &impl Bound, from: Option<SocketAddr>, payload: &[u8]) {
    synthesize(socket, from, payload, false);
}

fn synthesize(socket: &impl Bound, remote: Option<SocketAddr>, payload: &[u8], sent: bool) {
    let Some(recorder) = recorder() else {
        return;
    };
    let Recorder::Synthesized(file, watched) = &*recorder else {
        return;
    };
    let (Some(mut local), Some(remote)) = (socket.local(), remote.or_else(|| socket.peer())) else {
        return;
    };
    if local.ip().is_unspecified() {
        // A wildcard socket: the source is what the kernel routes toward the far end.
        if let Ok(ip) = crate::io::route::local_ip_toward(remote) {
            local.set_ip(ip);
        }
    }
    let (src, dst) = if sent {
        (local, remote)
    } else {
        (remote, local)
    };
    if !sent && watched.owns(Proto::Udp, src) {
        return;
    }
    let Some(frame) = frame::synthesize_udp(src, dst, payload) else {
        return;
    };
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
    let Some(pcap) = file.as_mut() else {
        return;
    };
    let written = pcap.interface(0, "natlens").and_then(|interface| {
        pcap.packet(
            interface,
            since_epoch,
            &frame,
            frame.len(),
            Some(SYNTHESIZED_COMMENT),
        )
    });
    if let Err(err) = written {
        eprintln!("natlens: --pcap: writing the capture file: {err}; recording stops");
        *file = None;
    }
}
