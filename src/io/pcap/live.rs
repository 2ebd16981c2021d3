//! Live capture: an AF_PACKET socket (ETH_P_ALL, every interface of this network namespace)
//! read on a thread of its own, keeping the frames to or from one of natlens's sockets.
//!
//! Surprises handled here:
//! * A socket's port is known only once it is bound, and a connecting socket bound by
//!   `connect()` sends its SYN before natlens can register it. Every UDP/TCP frame is therefore
//!   held for [`HOLD`] before it is kept or discarded, so a registration made just after the
//!   first packet still claims it.
//! * On `lo` each packet is seen twice, leaving (PACKET_OUTGOING) and arriving: only the
//!   arriving copy is kept.
//! * Interfaces without a link header (tun, WireGuard) give bare IP packets; they get an
//!   Ethernet header so the whole file has one link type.
//! * The socket is opened before natlens drops capabilities (the TCP punch does); an open
//!   packet socket keeps working without them.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::file::PcapFile;
use super::frame::{self, Flow};
use super::watch::Watched;

/// How long a frame waits for the socket that sent or received it to be registered.
const HOLD: Duration = Duration::from_millis(250);
/// Frames held at most; beyond it the oldest are decided early (a very busy host).
const MAX_HELD: usize = 50_000;
/// How long the thread sleeps in `poll` when nothing arrives.
const POLL_MS: i32 = 20;
/// Receive buffer asked for, so a punch's burst is not dropped while the thread sleeps.
const RECEIVE_BUFFER: usize = 8 << 20;
/// Largest frame read whole (a GSO super-packet on `lo` can reach 64 KiB).
const MAX_FRAME: usize = 65_536 + frame::ETHERNET_LEN;

// linux/if_packet.h and asm-generic/sockios.h, not all in the libc crate.
const PACKET_OUTGOING: u8 = 4;
const PACKET_STATISTICS: libc::c_int = 6;
const SIOCGSTAMPNS: libc::c_ulong = 0x8907;

#[repr(C)]
#[derive(Default)]
struct PacketStats {
    packets: u32,
    drops: u32,
}

/// Opens the packet socket; fails with EPERM without CAP_NET_RAW.
pub fn open_socket() -> io::Result<OwnedFd> {
    let protocol = (libc::ETH_P_ALL as u16).to_be() as libc::c_int;
    let flags = libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
    // SAFETY: socket(2) with constant arguments; the descriptor is owned from here on.
    let fd = unsafe { libc::socket(libc::AF_PACKET, flags, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let size = RECEIVE_BUFFER as libc::c_int;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setsockopt(2) with an int option of the right size.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            break;
        }
    }
    Ok(fd)
}

/// The capture thread; [`Live::finish`] stops it and closes the file.
pub struct Live {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<io::Result<u32>>,
}

impl Live {
    /// Starts the capture thread. `interrupted` becomes the number of a SIGINT/SIGTERM: when
    /// the command does not wind down by itself on them ([`crate::io::signal::stop_installed`]
    /// is false, as in `nat`), the thread finishes the file and exits the process with status
    /// 128 + signal (130 for Ctrl-C), as the signal's default action would have.
    pub fn spawn(
        fd: OwnedFd,
        watched: Arc<Watched>,
        file: PcapFile,
        interrupted: Arc<AtomicUsize>,
    ) -> io::Result<Live> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("natlens-pcap".into())
            .spawn(move || {
                let mut capture = Capture {
                    fd,
                    watched,
                    file,
                    held: VecDeque::new(),
                    names: HashMap::new(),
                };
                let result = capture.run(&flag, &interrupted);
                // Also when the command was already ending (its own error, say): the signal
                // came first, and its status is what the shell should see.
                let signal = interrupted.load(Ordering::Acquire);
                if signal != 0 && !crate::io::signal::stop_installed() {
                    std::process::exit(128 + signal as i32);
                }
                result
            })?;
        Ok(Live { stop, thread })
    }

    /// Reads what is still queued, writes every frame natlens's sockets claim and closes the
    /// file. Returns the number of frames the kernel dropped (receive buffer full).
    pub fn finish(self) -> io::Result<u32> {
        self.stop.store(true, Ordering::Release);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the capture thread panicked")))
    }
}

/// One UDP or TCP frame waiting for its verdict.
struct Held {
    seen: Instant,
    since_epoch: Duration,
    ifindex: u32,
    frame: Vec<u8>,
    original_len: usize,
    flow: Flow,
}

struct Capture {
    fd: OwnedFd,
    watched: Arc<Watched>,
    file: PcapFile,
    held: VecDeque<Held>,
    names: HashMap<u32, String>,
}

impl Capture {
    fn run(&mut self, stop: &AtomicBool, interrupted: &AtomicUsize) -> io::Result<u32> {
        loop {
            // Read the flag before draining: whatever natlens sent before asking to stop is
            // queued by then, and this last drain takes it.
            let stopping = stop.load(Ordering::Acquire)
                || (interrupted.load(Ordering::Acquire) != 0
                    && !crate::io::signal::stop_installed());
            self.read_queued()?;
            self.write_decided(stopping)?;
            if stopping {
                return Ok(self.dropped());
            }
            let mut poll = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll(2) on one pollfd we own; EINTR just means another round.
            unsafe { libc::poll(&mut poll, 1, POLL_MS) };
        }
    }

    /// Reads every frame queued on the socket.
    fn read_queued(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; MAX_FRAME];
        loop {
            // SAFETY: sockaddr_ll is plain old data.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: recvfrom(2) into a buffer and an address we own, with their sizes.
            // MSG_TRUNC makes it return the frame's full length even when cut short.
            let len = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut from_len,
                )
            };
            if len < 0 {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::WouldBlock => Ok(()),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(err),
                };
            }
            let original_len = len as usize;
            let captured = &buf[..original_len.min(buf.len())];
            self.hold(&from, captured, original_len);
        }
    }

    /// Holds one frame if it is UDP or TCP (and not `lo`'s outgoing copy).
    fn hold(&mut self, from: &libc::sockaddr_ll, captured: &[u8], original_len: usize) {
        let since_epoch = self.timestamp();
        let (frame, original_len) = match from.sll_hatype {
            libc::ARPHRD_LOOPBACK if from.sll_pkttype == PACKET_OUTGOING => return,
            libc::ARPHRD_ETHER | libc::ARPHRD_LOOPBACK => (captured.to_vec(), original_len),
            _ => match frame::with_ethernet_header(captured) {
                Some(frame) => (frame, original_len + frame::ETHERNET_LEN),
                None => return,
            },
        };
        let Some(flow) = frame::flow_of(&frame) else {
            return;
        };
        self.held.push_back(Held {
            seen: Instant::now(),
            since_epoch,
            ifindex: from.sll_ifindex as u32,
            frame,
            original_len,
            flow,
        });
    }

    /// When the kernel received the frame just read (SIOCGSTAMPNS); now if it cannot say.
    fn timestamp(&self) -> Duration {
        let mut stamp = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ioctl(2) SIOCGSTAMPNS fills one timespec we own.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), SIOCGSTAMPNS as _, &mut stamp) };
        if rc == 0 && stamp.tv_sec > 0 {
            Duration::new(stamp.tv_sec as u64, stamp.tv_nsec as u32)
        } else {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
        }
    }

    /// Writes or discards the frames held long enough (all of them when `everything`).
    fn write_decided(&mut self, everything: bool) -> io::Result<()> {
        let now = Instant::now();
        while let Some(front) = self.held.front() {
            let due =
                everything || self.held.len() > MAX_HELD || now.duration_since(front.seen) >= HOLD;
            if !due {
                break;
            }
            let held = self.held.pop_front().expect("a front frame");
            if self.watched.claims(&held.flow) {
                let name = self.interface_name(held.ifindex);
                let interface = self.file.interface(held.ifindex, &name)?;
                let (frame, len) = (&held.frame, held.original_len);
                self.file
                    .packet(interface, held.since_epoch, frame, len, None)?;
            }
        }
        Ok(())
    }

    fn interface_name(&mut self, ifindex: u32) -> String {
        self.names
            .entry(ifindex)
            .or_insert_with(|| {
                let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
                // SAFETY: if_indextoname(3) writes at most IF_NAMESIZE bytes, NUL included.
                let found = unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr()) };
                if found.is_null() {
                    return format!("if{ifindex}");
                }
                // SAFETY: on success `name` holds a NUL-terminated string.
                unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
                    .to_string_lossy()
                    .into_owned()
            })
            .clone()
    }

    /// Frames the kernel dropped since the socket opened.
    fn dropped(&self) -> u32 {
        let mut stats = PacketStats::default();
        let mut len = std::mem::size_of::<PacketStats>() as libc::socklen_t;
        // SAFETY: getsockopt(2) PACKET_STATISTICS fills a tpacket_stats (two u32s).
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                (&mut stats as *mut PacketStats).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            stats.drops
        } else {
            0
        }
    }
}
