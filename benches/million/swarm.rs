//! A swarm of UDP sessions on loopback: N natlens sessions, each from its own source transport
//! address, carried by a few hundred sockets (the open-file limit is 20,000 here).
//!
//! Session `i` belongs to socket `i / per_socket` (bound to `0.0.0.0:port`) and sends from
//! `127.1.0.0 + 1 + i % per_socket`, chosen per datagram with `IP_PKTINFO` (`ipi_spec_dst`):
//! every 127/8 address is local, so the kernel accepts it as a source, and the server's answer
//! to `127.1.x.y:port` comes back to the socket bound to `0.0.0.0:port`. So (address, port) is
//! distinct per session, and one address carries one session per socket (256 sockets: exactly
//! the server's default `--max-sessions-per-ip`).
//!
//! Transaction IDs carry what the answer is matched on: byte 0 the request kind, bytes 4..8 the
//! session, bytes 8..12 the request's sequence number (the index of its send time).
//!
//! Shared by `benches/million.rs` and `tests/server_million.rs`; std and libc only.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use natlens::wire::natlens as nl;
use natlens::wire::{Class, MessageType, Method};

/// Datagrams per sendmmsg/recvmmsg call.
const BATCH: usize = 64;
const MAGIC: u32 = 0x2112_A442;
/// The first source address; session addresses follow it.
const FIRST_SOURCE: u32 = u32::from_be_bytes([127, 1, 0, 1]);
/// Latency histogram resolution and range: 10 µs buckets up to 1 s.
const BUCKET_US: u64 = 10;
const BUCKETS: usize = 100_000;

/// What a request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Login = 1,
    Keepalive = 2,
    Binding = 3,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Login),
            2 => Some(Kind::Keepalive),
            3 => Some(Kind::Binding),
            _ => None,
        }
    }

    fn message_type(self) -> u16 {
        let method = match self {
            Kind::Login => nl::LOGIN,
            Kind::Keepalive => nl::KEEPALIVE,
            Kind::Binding => Method(1),
        };
        MessageType::new(method, Class::Request).to_u16()
    }
}

/// Answers counted per kind: successes, error answers, and requests sent.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
}

/// Answer latencies in [`BUCKET_US`] buckets.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Vec<u32>,
    count: u64,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS],
            count: 0,
            max_us: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, us: u64) {
        let bucket = ((us / BUCKET_US) as usize).min(BUCKETS - 1);
        self.buckets[bucket] += 1;
        self.count += 1;
        self.max_us = self.max_us.max(us);
    }

    /// The latency below which a `q` share of the answers came, in microseconds (the bucket's
    /// upper edge).
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let wanted = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += u64::from(n);
            if seen >= wanted {
                return (i as u64 + 1) * BUCKET_US;
            }
        }
        self.max_us
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max_us(&self) -> u64 {
        self.max_us
    }
}

/// The swarm: its sockets, the send time of every request in flight, and the tallies.
pub struct Swarm {
    sockets: Vec<UdpSocket>,
    per_socket: usize,
    sessions: usize,
    target: SocketAddrV4,
    /// Sockets with requests unanswered that they sent within the last [`GRACE`]: the only
    /// ones read without waiting.
    hot: Vec<usize>,
    /// Per socket: whether it is in `hot`, when it last sent (µs since `start`), and its
    /// requests not answered yet.
    is_hot: Vec<bool>,
    last_send: Vec<u32>,
    unanswered: Vec<u32>,
    /// The receive buffers, kept (not zeroed for every read).
    buffers: Vec<[u8; 128]>,
    start: Instant,
    /// Send time of request `seq` in µs since `start`, plus one; 0 once answered.
    sent_at: Vec<u32>,
    pub logged_in: Vec<bool>,
    pub tally: [Tally; 3],
    /// Latency of every answer since the last [`Swarm::take_latencies`].
    pub latencies: Histogram,
    /// Error codes of error answers (the first few, to say why).
    pub first_errors: Vec<(Kind, u16)>,
}

impl Swarm {
    /// Opens `sockets` sockets for `sessions` sessions aimed at `target` (a loopback address).
    pub fn new(sessions: usize, sockets: usize, target: SocketAddrV4) -> io::Result<Swarm> {
        assert!(
            target.ip().is_loopback(),
            "the swarm only talks to loopback"
        );
        let per_socket = sessions.div_ceil(sockets);
        assert!(per_socket < 60_000, "too many sessions per socket");
        let mut opened = Vec::with_capacity(sockets);
        for _ in 0..sockets {
            let socket = UdpSocket::bind("0.0.0.0:0")?;
            socket.set_nonblocking(true)?;
            set_int(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                4 << 20,
            );
            // Don't Fragment (requests are 32 bytes): the kernel then stamps IP ID 0 instead of
            // drawing one per destination-hashed datagram (3.5% of the generator's CPU).
            set_int(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                libc::IP_PMTUDISC_PROBE,
            );
            opened.push(socket);
        }
        Ok(Swarm {
            sockets: opened,
            per_socket,
            sessions,
            target,
            hot: Vec::new(),
            is_hot: vec![false; sockets],
            last_send: vec![0; sockets],
            unanswered: vec![0; sockets],
            buffers: vec![[0; 128]; BATCH],
            start: Instant::now(),
            sent_at: Vec::new(),
            logged_in: vec![false; sessions],
            tally: [Tally::default(); 3],
            latencies: Histogram::default(),
            first_errors: Vec::new(),
        })
    }

    pub fn sessions(&self) -> usize {
        self.sessions
    }

    pub fn tally(&self, kind: Kind) -> Tally {
        self.tally[kind as usize - 1]
    }

    /// The session's source address.
    pub fn source(&self, session: usize) -> SocketAddrV4 {
        let socket = &self.sockets[session / self.per_socket];
        let port = socket.local_addr().map_or(0, |a| a.port());
        let ip = FIRST_SOURCE + (session % self.per_socket) as u32;
        SocketAddrV4::new(Ipv4Addr::from(ip), port)
    }

    /// Requests still unanswered, among those sent since sequence number `from`.
    pub fn unanswered_since(&self, from: usize) -> usize {
        self.sent_at[from.min(self.sent_at.len())..]
            .iter()
            .filter(|&&t| t != 0)
            .count()
    }

    pub fn next_seq(&self) -> usize {
        self.sent_at.len()
    }

    /// Resets the latency histogram and returns what it held.
    pub fn take_latencies(&mut self) -> Histogram {
        mem::take(&mut self.latencies)
    }

    /// Sends `kind` from sessions `first..first + count` (wrapping at the session count), in
    /// one sendmmsg per socket run.
    pub fn send(&mut self, kind: Kind, first: usize, count: usize) -> io::Result<()> {
        let mut done = 0;
        while done < count {
            let session = (first + done) % self.sessions;
            let socket_end = (session / self.per_socket + 1) * self.per_socket;
            let run = (count - done)
                .min(socket_end - session)
                .min(self.sessions - session)
                .min(BATCH);
            self.send_run(kind, session, run)?;
            done += run;
        }
        Ok(())
    }

    /// Sends `kind` from each session in `sessions` (any order, any sockets).
    pub fn send_each(&mut self, kind: Kind, sessions: &[usize]) -> io::Result<()> {
        for &session in sessions {
            self.send_run(kind, session, 1)?;
        }
        Ok(())
    }

    /// One sendmmsg: `count` (at most [`BATCH`]) consecutive sessions of one socket.
    fn send_run(&mut self, kind: Kind, first: usize, count: usize) -> io::Result<()> {
        let mut messages = [[0u8; 36]; BATCH];
        let mut lengths = [0usize; BATCH];
        let mut controls = [[0u64; 4]; BATCH];
        let now = self.micros();
        for (i, (message, length)) in messages
            .iter_mut()
            .zip(&mut lengths)
            .take(count)
            .enumerate()
        {
            let session = first + i;
            let seq = self.sent_at.len() as u32;
            self.sent_at.push(now + 1);
            *length = build(message, kind, session as u32, seq);
            write_pktinfo(
                &mut controls[i],
                FIRST_SOURCE + (session % self.per_socket) as u32,
            );
        }
        let mut iovecs: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
        // SAFETY: mmsghdr is plain old data; all-zero is valid before the fields are set.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        let mut to = sockaddr(self.target);
        for i in 0..count {
            iovecs[i] = libc::iovec {
                iov_base: messages[i].as_mut_ptr().cast(),
                iov_len: lengths[i],
            };
            let header = &mut headers[i].msg_hdr;
            header.msg_name = (&mut to as *mut libc::sockaddr_in).cast();
            header.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            header.msg_iov = &mut iovecs[i];
            header.msg_iovlen = 1;
            header.msg_control = controls[i].as_mut_ptr().cast();
            header.msg_controllen = cmsg_space();
        }
        let socket = first / self.per_socket;
        self.last_send[socket] = now;
        self.unanswered[socket] += count as u32;
        if !self.is_hot[socket] {
            self.is_hot[socket] = true;
            self.hot.push(socket);
        }
        let fd = self.sockets[socket].as_raw_fd();
        let mut sent = 0;
        while sent < count {
            // SAFETY: every header points at buffers of this frame, sized as declared.
            let n = unsafe {
                libc::sendmmsg(fd, headers[sent..].as_mut_ptr(), (count - sent) as u32, 0)
            };
            if n < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::WouldBlock {
                    // The socket's send buffer is full: the loopback drains it at once.
                    std::thread::yield_now();
                    continue;
                }
                return Err(error);
            }
            sent += n as usize;
        }
        self.tally[kind as usize - 1].sent += count as u64;
        Ok(())
    }

    /// Reads the answers waiting on the sockets that sent lately, or, when there are none and
    /// `wait` is not zero, waits up to `wait` for any socket's; returns how many.
    ///
    /// No epoll while the load runs: a socket in an epoll set costs a wake-up callback for
    /// every datagram the kernel queues to it, and on loopback that callback runs in the
    /// sender's system call, the server's (2% of its CPU during the logins), and epoll_wait
    /// itself was 12% of the generator's. The swarm sends to a few sockets at a time (sessions
    /// in order), so reading those few is cheaper than being told which are ready.
    pub fn receive(&mut self, wait: Duration) -> io::Result<usize> {
        let now = self.micros();
        let grace = GRACE.as_micros() as u32;
        let mut answers = 0;
        let mut i = 0;
        while i < self.hot.len() {
            let socket = self.hot[i];
            answers += self.drain(socket)?;
            let quiet = now.saturating_sub(self.last_send[socket]) > grace;
            if self.unanswered[socket] == 0 || quiet {
                self.is_hot[socket] = false;
                self.hot.swap_remove(i);
            } else {
                i += 1;
            }
        }
        if answers == 0 && !wait.is_zero() {
            answers = self.wait_any(wait)?;
        }
        Ok(answers)
    }

    /// Waits up to `wait` for answers on any socket (poll(2), whose wait-queue entries last
    /// only for the call) and reads those that came.
    fn wait_any(&mut self, wait: Duration) -> io::Result<usize> {
        let mut fds: Vec<libc::pollfd> = (self.sockets.iter())
            .map(|socket| libc::pollfd {
                fd: socket.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: poll(2) over a buffer of the length given.
        let ready = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                wait.as_millis() as i32,
            )
        };
        if ready < 0 {
            let error = io::Error::last_os_error();
            return if error.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(error)
            };
        }
        let mut answers = 0;
        for (socket, fd) in fds.iter().enumerate() {
            if fd.revents != 0 {
                answers += self.drain(socket)?;
            }
        }
        Ok(answers)
    }

    fn drain(&mut self, socket: usize) -> io::Result<usize> {
        let fd = self.sockets[socket].as_raw_fd();
        let mut buffers = mem::take(&mut self.buffers);
        let mut total = 0;
        let result = loop {
            let mut iovecs: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
            // SAFETY: all-zero mmsghdrs, then pointed at this frame's buffers.
            let mut headers: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
            for i in 0..BATCH {
                iovecs[i] = libc::iovec {
                    iov_base: buffers[i].as_mut_ptr().cast(),
                    iov_len: 128,
                };
                headers[i].msg_hdr.msg_iov = &mut iovecs[i];
                headers[i].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: as above; the kernel writes at most 128 bytes per buffer.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    headers.as_mut_ptr(),
                    BATCH as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                let error = io::Error::last_os_error();
                match error.kind() {
                    io::ErrorKind::WouldBlock => break Ok(total),
                    io::ErrorKind::ConnectionRefused => continue,
                    _ => break Err(error),
                }
            }
            let now = self.micros();
            for i in 0..n as usize {
                let len = headers[i].msg_len as usize;
                self.answer(&buffers[i][..len.min(128)], now);
            }
            total += n as usize;
            if (n as usize) < BATCH {
                break Ok(total);
            }
        };
        self.buffers = buffers;
        result
    }

    fn answer(&mut self, bytes: &[u8], now: u32) {
        if bytes.len() < 20 || u32::from_be_bytes(bytes[4..8].try_into().unwrap()) != MAGIC {
            return;
        }
        let Some(kind) = Kind::from_byte(bytes[8]) else {
            return;
        };
        let session = u32::from_be_bytes(bytes[12..16].try_into().unwrap()) as usize;
        let seq = u32::from_be_bytes(bytes[16..20].try_into().unwrap()) as usize;
        let Some(sent) = self.sent_at.get_mut(seq) else {
            return;
        };
        if *sent == 0 || session >= self.sessions {
            return;
        }
        let latency = u64::from(now.saturating_sub(*sent - 1));
        *sent = 0;
        let socket = &mut self.unanswered[session / self.per_socket];
        *socket = socket.saturating_sub(1);
        self.latencies.record(latency);
        let typ = u16::from_be_bytes([bytes[0], bytes[1]]);
        let tally = &mut self.tally[kind as usize - 1];
        if typ & 0x0110 == 0x0100 {
            tally.ok += 1;
            if kind == Kind::Login {
                self.logged_in[session] = true;
            }
        } else {
            tally.errors += 1;
            if self.first_errors.len() < 8 {
                self.first_errors.push((kind, error_code(bytes)));
            }
        }
    }

    fn micros(&self) -> u32 {
        self.start.elapsed().as_micros() as u32
    }
}

/// The session's natlens ID.
pub fn session_id(session: u32) -> [u8; 8] {
    let mut id = *b"s0000000";
    let mut n = session;
    for byte in id[1..].iter_mut().rev() {
        *byte = b'0' + (n % 10) as u8;
        n /= 10;
    }
    id
}

/// Writes the request into `out`; returns its length.
pub fn build(out: &mut [u8; 36], kind: Kind, session: u32, seq: u32) -> usize {
    let with_id = kind != Kind::Binding;
    let attrs: u16 = if with_id { 12 } else { 0 };
    out[0..2].copy_from_slice(&kind.message_type().to_be_bytes());
    out[2..4].copy_from_slice(&attrs.to_be_bytes());
    out[4..8].copy_from_slice(&MAGIC.to_be_bytes());
    out[8..12].copy_from_slice(&[kind as u8, 0, 0, 0]);
    out[12..16].copy_from_slice(&session.to_be_bytes());
    out[16..20].copy_from_slice(&seq.to_be_bytes());
    if with_id {
        out[20..22].copy_from_slice(&nl::ID.0.to_be_bytes());
        out[22..24].copy_from_slice(&8u16.to_be_bytes());
        out[24..32].copy_from_slice(&session_id(session));
        return 32;
    }
    20
}

fn error_code(bytes: &[u8]) -> u16 {
    let mut at = 20;
    while at + 4 <= bytes.len() {
        let typ = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
        let len = u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
        if typ == 0x0009 && at + 8 <= bytes.len() {
            return u16::from(bytes[at + 6] & 7) * 100 + u16::from(bytes[at + 7]);
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    0
}

fn cmsg_space() -> usize {
    // SAFETY: CMSG_SPACE is a pure size computation.
    unsafe { libc::CMSG_SPACE(mem::size_of::<libc::in_pktinfo>() as u32) as usize }
}

/// An IP_PKTINFO control message naming `source` as the datagram's source address.
fn write_pktinfo(buffer: &mut [u64; 4], source: u32) {
    debug_assert!(cmsg_space() <= mem::size_of_val(buffer));
    let base = buffer.as_mut_ptr().cast::<u8>();
    // SAFETY: the buffer is 8-byte aligned and CMSG_SPACE(in_pktinfo) = 32 bytes long, which
    // holds one cmsghdr followed by one in_pktinfo.
    unsafe {
        let header = base.cast::<libc::cmsghdr>();
        (*header).cmsg_len = libc::CMSG_LEN(mem::size_of::<libc::in_pktinfo>() as u32) as _;
        (*header).cmsg_level = libc::IPPROTO_IP;
        (*header).cmsg_type = libc::IP_PKTINFO;
        let info = libc::CMSG_DATA(header).cast::<libc::in_pktinfo>();
        info.write_unaligned(libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: libc::in_addr {
                s_addr: source.to_be(),
            },
            ipi_addr: libc::in_addr { s_addr: 0 },
        });
    }
}

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn set_int(fd: RawFd, level: i32, name: i32, value: i32) {
    // SAFETY: setsockopt(2) with a c_int of the declared size.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            mem::size_of::<i32>() as libc::socklen_t,
        );
    }
}

/// VmRSS of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other("no VmRSS"))
}

/// CPU time (user + system) process `pid` has used, in seconds.
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat
        .rfind(')')
        .ok_or_else(|| io::Error::other("bad stat"))?
        + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat(5), so 11 and 12 after the name.
    // SAFETY: sysconf is always safe to call.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((ticks(11) + ticks(12)) as f64 / hz)
}

/// What logging every session in took.
#[derive(Debug, Clone, Copy)]
pub struct LoginRun {
    /// Time from the first LOGIN to the last answer of the first pass.
    pub first_pass: Duration,
    /// LOGINs of the first pass that got no answer (each was retried).
    pub first_pass_lost: usize,
    /// Sessions still not logged in after the retries.
    pub not_logged_in: usize,
}

/// What an open-loop load phase saw.
#[derive(Debug, Clone)]
pub struct LoadRun {
    pub elapsed: Duration,
    pub keepalives: Tally,
    pub bindings: Tally,
    /// Requests of the phase without an answer after the grace period.
    pub lost: usize,
    pub latencies: Histogram,
    /// Per second of the phase: (answers, p99 µs, max µs).
    pub per_second: Vec<(u64, u64, u64)>,
}

/// How long an unanswered request is waited for before it counts as lost.
pub const GRACE: Duration = Duration::from_secs(1);

impl Swarm {
    /// Logs every session in, at most `window` LOGINs in flight; LOGINs lost in the first pass
    /// are retried (three more passes).
    pub fn login_all(&mut self, window: usize) -> io::Result<LoginRun> {
        let start = Instant::now();
        let first_seq = self.next_seq();
        let mut next = 0;
        let mut answered = 0usize;
        let mut last_progress = Instant::now();
        while next < self.sessions || answered < next {
            let in_flight = next - answered.min(next);
            if next < self.sessions && in_flight < window {
                let count = (window - in_flight).min(self.sessions - next).min(BATCH);
                self.send(Kind::Login, next, count)?;
                next += count;
            }
            let got = self.receive(Duration::ZERO)?;
            answered += got;
            if got > 0 {
                last_progress = Instant::now();
            } else if last_progress.elapsed() > Duration::from_millis(200) {
                // What is still in flight is lost: stop waiting for it.
                answered = next;
                last_progress = Instant::now();
            }
        }
        let first_pass = start.elapsed();
        let first_pass_lost = self.unanswered_since(first_seq);
        for _ in 0..3 {
            let missing: Vec<usize> = (0..self.sessions).filter(|&s| !self.logged_in[s]).collect();
            if missing.is_empty() {
                break;
            }
            for chunk in missing.chunks(window) {
                self.send_each(Kind::Login, chunk)?;
                let until = Instant::now() + Duration::from_millis(200);
                while Instant::now() < until && self.receive(Duration::from_millis(5))? > 0 {}
            }
            self.settle(GRACE)?;
        }
        let not_logged_in = self.logged_in.iter().filter(|&&l| !l).count();
        Ok(LoginRun {
            first_pass,
            first_pass_lost,
            not_logged_in,
        })
    }

    /// Receives until `wait` has passed with nothing left in flight, or `wait` after the call.
    pub fn settle(&mut self, wait: Duration) -> io::Result<()> {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            self.receive(Duration::from_millis(10))?;
        }
        Ok(())
    }

    /// Open loop for `duration`: a KEEPALIVE from every session once per `keepalive_period`
    /// (none when zero), and Binding requests at `binding_rate` per second, both walking the
    /// sessions in order; then [`GRACE`] to collect the last answers.
    pub fn load(
        &mut self,
        duration: Duration,
        keepalive_period: Duration,
        binding_rate: f64,
    ) -> io::Result<LoadRun> {
        let keepalive_rate = if keepalive_period.is_zero() {
            0.0
        } else {
            self.sessions as f64 / keepalive_period.as_secs_f64()
        };
        let first_seq = self.next_seq();
        let before = (self.tally(Kind::Keepalive), self.tally(Kind::Binding));
        let all = self.take_latencies();
        let start = Instant::now();
        let (mut keepalives, mut bindings) = (0u64, 0u64);
        let mut per_second = Vec::new();
        let mut whole = Histogram::default();
        let mut second_end = start + Duration::from_secs(1);
        loop {
            let now = Instant::now();
            if now >= second_end {
                let window = self.take_latencies();
                per_second.push((window.count(), window.quantile_us(0.99), window.max_us()));
                whole.merge(&window);
                second_end += Duration::from_secs(1);
            }
            let elapsed = now.duration_since(start);
            if elapsed >= duration {
                break;
            }
            let due =
                |rate: f64, sent: u64| ((elapsed.as_secs_f64() * rate) as u64 - sent) as usize;
            let keepalives_due = due(keepalive_rate, keepalives).min(4 * BATCH);
            let first = keepalives as usize % self.sessions;
            self.send(Kind::Keepalive, first, keepalives_due)?;
            keepalives += keepalives_due as u64;
            let bindings_due = due(binding_rate, bindings).min(4 * BATCH);
            let first = (bindings as usize + self.sessions / 2) % self.sessions;
            self.send(Kind::Binding, first, bindings_due)?;
            bindings += bindings_due as u64;
            self.receive(Duration::ZERO)?;
        }
        let elapsed = start.elapsed();
        self.settle(GRACE)?;
        whole.merge(&self.take_latencies());
        self.latencies = all;
        let delta = |after: Tally, before: Tally| Tally {
            sent: after.sent - before.sent,
            ok: after.ok - before.ok,
            errors: after.errors - before.errors,
        };
        Ok(LoadRun {
            elapsed,
            keepalives: delta(self.tally(Kind::Keepalive), before.0),
            bindings: delta(self.tally(Kind::Binding), before.1),
            lost: self.unanswered_since(first_seq),
            latencies: whole,
            per_second,
        })
    }
}

impl Histogram {
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.count += other.count;
        self.max_us = self.max_us.max(other.max_us);
    }
}
