//! `loadgen`: a STUN load generator for comparing `natlens server` with other STUN servers.
//!
//! Run it through cargo (`cargo bench --bench loadgen -- udp-rate --target 127.0.0.1:3478 ...`) or
//! build it with `cargo bench --bench loadgen --no-run` and run the printed executable directly, as
//! `benches/server.sh` does. Every mode prints one JSON line on stdout.
//!
//! Safety rails: the target must be a loopback address, durations are capped at 600 s and every
//! loop is bounded by a deadline, so a mistyped command cannot flood a network or run forever.
//!
//! Modes:
//! - `udp-rate`: open loop, Binding requests offered at a fixed rate over several connected UDP
//!   sockets (sendmmsg/recvmmsg); responses matched by transaction ID.
//! - `udp-saturate`: closed loop, a window of outstanding requests per socket; the answered rate
//!   in the measurement window is the server's maximum (unless the generator is the limit: see
//!   `gen_cpu_util`).
//! - `tcp-hold`: N TCP connections, each logged in (natlens LOGIN) or given one Binding
//!   (`--stun-binding`), held open, then checked with a second request.
//! - `udp-garbage`: Binding requests mixed with malformed datagrams (`--garbage-ratio`) at a
//!   fixed rate; every valid request counted answered or lost, the server's RSS sampled
//!   (`benches/garbage.sh`).
//! - `wait-ready`: waits until a server answers a Binding over UDP and accepts TCP.
//! - `summarize`: turns the JSON lines of a run into a markdown table of medians and ratios.
//!
//! Transaction IDs look random (RFC 8489 section 6) but carry the request's sequence number:
//! bytes 0..8 are a keyed 64-bit permutation of the sequence number, bytes 8..12 a keyed tag that
//! rejects stray packets. The keys come from getrandom(2) for each run.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use natlens::wire::natlens as nl;
use natlens::wire::{Class, MessageType, Method};
use serde_json::{json, Map, Value};
use socket2::{Domain, Protocol, Socket, Type};

#[path = "loadgen/garbage.rs"]
mod garbage;

const MAGIC: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const BINDING_ERROR: u16 = 0x0111;
// natlens's own method codes come from the crate, so the generator always speaks the protocol of
// the server it is built with (the codes moved once, from 0x801.. to 0x0C1..).
const LOGIN_REQUEST: u16 = msg_type(nl::LOGIN.0, 0);
const LOGIN_SUCCESS: u16 = msg_type(nl::LOGIN.0, 2);
const LOGIN_ERROR: u16 = msg_type(nl::LOGIN.0, 3);
const KEEPALIVE_REQUEST: u16 = msg_type(nl::KEEPALIVE.0, 0);
const KEEPALIVE_SUCCESS: u16 = msg_type(nl::KEEPALIVE.0, 2);
const KEEPALIVE_ERROR: u16 = msg_type(nl::KEEPALIVE.0, 3);
const ATTR_ERROR_CODE: u16 = 0x0009;
const ATTR_NL_ID: u16 = nl::ID.0;

/// Messages per sendmmsg/recvmmsg call.
const BATCH: usize = 64;
/// Receive buffer per datagram; responses are far smaller, longer ones are truncated.
const RECV_BUF: usize = 512;
/// Upper bound on any duration argument, seconds.
const MAX_SECONDS: f64 = 600.0;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "STUN load generator (loopback only) for natlens server benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Offer Binding requests over UDP at a fixed rate; report sent, answered, lost.
    UdpRate(UdpRateArgs),
    /// Closed loop over UDP with a window of outstanding requests: maximum answered rate.
    UdpSaturate(UdpSaturateArgs),
    /// Open N TCP connections, log each in (or send one Binding), hold them, report.
    TcpHold(TcpHoldArgs),
    /// Binding requests mixed with malformed datagrams at a fixed rate; report answered, lost,
    /// answers to garbage, the server's RSS and the drops it should have counted.
    UdpGarbage(garbage::UdpGarbageArgs),
    /// Wait until the server answers a UDP Binding and accepts a TCP connection.
    WaitReady(WaitReadyArgs),
    /// Wait (bounded) until the machine's CPUs are mostly idle, to measure without other work.
    WaitQuiet(WaitQuietArgs),
    /// Summarize a file of JSON result lines as markdown (medians, natlens/other ratios).
    Summarize(SummarizeArgs),
}

#[derive(Debug, Args)]
struct Common {
    /// Server address (must be loopback: 127.0.0.0/8 or ::1).
    #[arg(long, value_name = "ADDR:PORT")]
    target: SocketAddr,
    /// PID of the server process, to sample its CPU time (/proc/PID/stat) and VmRSS.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Label copied into the JSON line (e.g. the server's name).
    #[arg(long, default_value = "")]
    label: String,
    /// Round number copied into the JSON line.
    #[arg(long, default_value_t = 0)]
    round: u32,
}

#[derive(Debug, Args)]
struct UdpOpts {
    /// Number of UDP sockets (distinct source ports) to spread requests over.
    #[arg(long, default_value_t = 4)]
    sockets: usize,
    /// SO_RCVBUF/SO_SNDBUF for the generator's sockets, bytes.
    #[arg(long, default_value_t = 4 << 20)]
    sock_buf: usize,
    /// Send each batch as one UDP GSO buffer (UDP_SEGMENT = 20 bytes) instead of sendmmsg: the
    /// server still receives one datagram per request, the generator pays one stack traversal
    /// per batch. Use it when the generator, not the server, is the limit.
    #[arg(long)]
    gso: bool,
    /// Never sleep: poll the sockets in a loop. Saves the wake-ups (costly in a VM) on both
    /// sides; the generator's spare capacity is then `gen_idle_frac`.
    #[arg(long)]
    spin: bool,
}

#[derive(Debug, Args)]
struct UdpRateArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    udp: UdpOpts,
    /// Offered rate, requests per second.
    #[arg(long)]
    rate: u64,
    /// Sending time, seconds.
    #[arg(long)]
    duration: f64,
    /// After sending stops, wait this long for answers; unanswered requests are lost.
    #[arg(long, default_value_t = 1.0)]
    grace: f64,
    /// Smallest sleep between send bursts, microseconds (bursts are rate x tick requests).
    #[arg(long, default_value_t = 50)]
    tick_us: u64,
}

#[derive(Debug, Args)]
struct UdpSaturateArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    udp: UdpOpts,
    /// Measurement time after the warm-up, seconds.
    #[arg(long)]
    duration: f64,
    /// Warm-up before measuring, seconds.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Outstanding requests per socket.
    #[arg(long, default_value_t = 32)]
    window: u32,
    /// Refill a socket's window only when at least this many slots are free (batching).
    #[arg(long, default_value_t = 8)]
    min_batch: u32,
    /// A request unanswered after this long is counted lost and its window slot reused, ms.
    #[arg(long, default_value_t = 200)]
    timeout_ms: u64,
}

#[derive(Debug, Args)]
struct TcpHoldArgs {
    #[command(flatten)]
    common: Common,
    /// Number of connections (mind the per-process open-file limit).
    #[arg(long)]
    count: usize,
    /// How long to hold all connections after the last one is set up, seconds.
    #[arg(long)]
    hold: f64,
    /// Send a STUN Binding request instead of a natlens LOGIN (for servers without LOGIN).
    #[arg(long)]
    stun_binding: bool,
    /// Connections being set up (connect + request) at the same time.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Spread connections over this many source IPs 127.0.0.2.. (0: let the kernel choose).
    #[arg(long, default_value_t = 8)]
    src_ips: u8,
    /// Give up on connections not set up after this long, seconds.
    #[arg(long, default_value_t = 60.0)]
    setup_timeout: f64,
    /// After the hold, wait this long for the answers to the check request, seconds.
    #[arg(long, default_value_t = 10.0)]
    verify_timeout: f64,
    /// Skip the check request (KEEPALIVE or Binding) on every held connection after the hold.
    #[arg(long)]
    no_verify: bool,
    /// Login IDs are PREFIX0, PREFIX1, ...
    #[arg(long, default_value = "u")]
    id_prefix: String,
}

#[derive(Debug, Args)]
struct WaitReadyArgs {
    /// Server address (must be loopback).
    #[arg(long, value_name = "ADDR:PORT")]
    target: SocketAddr,
    /// Give up after this long, seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Do not require TCP to accept connections.
    #[arg(long)]
    udp_only: bool,
}

#[derive(Debug, Args)]
struct WaitQuietArgs {
    /// Quiet means the CPUs' average busy fraction over one interval is below this.
    #[arg(long, default_value_t = 0.1)]
    max_busy: f64,
    /// Sampling interval, seconds.
    #[arg(long, default_value_t = 0.5)]
    interval: f64,
    /// Give up after this long, seconds (exit status 1).
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
}

#[derive(Debug, Args)]
struct SummarizeArgs {
    /// File of JSON lines written by the other modes.
    #[arg(long)]
    input: PathBuf,
    /// Label of the server in the numerator of the ratios.
    #[arg(long, default_value = "natlens")]
    a: String,
    /// Label of the server in the denominator of the ratios.
    #[arg(long, default_value = "coturn")]
    b: String,
}

fn main() -> ExitCode {
    // `cargo bench` appends `--bench` to the arguments of harness = false targets.
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if args.len() <= 1 {
        // A plain `cargo bench` runs every bench target: this one needs a mode and a server.
        eprintln!("loadgen: no mode given, nothing to do (see --help, or run benches/server.sh)");
        return ExitCode::SUCCESS;
    }
    check_message_types();
    let cli = Cli::parse_from(args);
    let result = match cli.mode {
        Mode::UdpRate(a) => udp_rate(&a),
        Mode::UdpSaturate(a) => udp_saturate(&a),
        Mode::TcpHold(a) => tcp_hold(&a),
        Mode::UdpGarbage(a) => garbage::udp_garbage(&a),
        Mode::WaitReady(a) => wait_ready(&a),
        Mode::WaitQuiet(a) => wait_quiet(&a),
        Mode::Summarize(a) => summarize(&a),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Argument checks and small helpers

fn check_target(target: SocketAddr) -> Result<()> {
    if !target.ip().is_loopback() {
        bail!("target {target} is not a loopback address: this generator only loads loopback");
    }
    Ok(())
}

fn check_seconds(name: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && (0.0..=MAX_SECONDS).contains(&v)) {
        bail!("--{name} must be between 0 and {MAX_SECONDS} seconds, got {v}");
    }
    Ok(())
}

fn common_json(mode: &str, c: &Common) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("mode".into(), json!(mode));
    m.insert("label".into(), json!(c.label));
    m.insert("round".into(), json!(c.round));
    m.insert("target".into(), json!(c.target.to_string()));
    m
}

fn print_json(m: Map<String, Value>) {
    println!("{}", Value::Object(m));
}

fn getrandom_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: the buffer is valid for 8 bytes of writes.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != 8 {
        // Fall back on the clock: the keys only need to differ between runs.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_ne_bytes(b)
}

/// This process's CPU time (user + system), seconds.
fn self_cpu_seconds() -> f64 {
    // SAFETY: rusage is plain data, getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[idx.min(sorted.len() - 1)])
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------------------------
// Server sampling through /proc

#[derive(Debug, Clone, Copy, Default)]
struct ServerSample {
    /// utime + stime of all threads, seconds (clock-tick resolution).
    cpu_s: f64,
    /// Sum of per-thread run time from /proc/PID/task/*/schedstat, seconds (ns resolution).
    sched_s: f64,
    rss_kb: u64,
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn sample_server(pid: u32) -> Result<ServerSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("server PID {pid} is gone"))?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("bad /proc/PID/stat")?;
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the ')' field 3 (state) is index 0: utime (14) is index 11, stime (15) index 12.
    let utime: u64 = f.get(11).context("no utime")?.parse()?;
    let stime: u64 = f.get(12).context("no stime")?.parse()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut sched_ns: u64 = 0;
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in dir.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                sched_ns += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    Ok(ServerSample {
        cpu_s: (utime + stime) as f64 / clk_tck(),
        sched_s: sched_ns as f64 / 1e9,
        rss_kb,
    })
}

fn sample_opt(pid: Option<u32>) -> Result<Option<ServerSample>> {
    pid.map(sample_server).transpose()
}

/// Per-CPU tick counters from /proc/stat: (total, idle + iowait, softirq).
fn cpu_ticks() -> Vec<(u64, u64, u64)> {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            let get = |i: usize| v.get(i).copied().unwrap_or(0);
            // user nice system idle iowait irq softirq steal (guest time is inside user).
            let total: u64 = (0..8).map(get).sum();
            (total, get(3) + get(4), get(6))
        })
        .collect()
}

/// Busy and softirq fraction of each CPU between two `cpu_ticks` samples.
fn cpu_json(m: &mut Map<String, Value>, a: &[(u64, u64, u64)], b: &[(u64, u64, u64)]) {
    let mut busy = Map::new();
    let mut soft = Map::new();
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let total = y.0.saturating_sub(x.0).max(1) as f64;
        let idle = y.1.saturating_sub(x.1) as f64;
        let si = y.2.saturating_sub(x.2) as f64;
        busy.insert(format!("cpu{i}"), json!(round3(1.0 - idle / total)));
        soft.insert(format!("cpu{i}"), json!(round3(si / total)));
    }
    m.insert("cpu_busy".into(), Value::Object(busy));
    m.insert("cpu_softirq".into(), Value::Object(soft));
}

/// CPU used by everything but the server and this generator (other work on the machine), in
/// CPUs: the sum of all CPUs' busy fractions minus the server's and the generator's utilisation.
fn other_cpu_json(m: &mut Map<String, Value>) {
    let busy: f64 = m
        .get("cpu_busy")
        .and_then(Value::as_object)
        .map(|o| o.values().filter_map(Value::as_f64).sum())
        .unwrap_or(0.0);
    let srv = m
        .get("server_cpu_util")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let gen = m.get("gen_cpu_util").and_then(Value::as_f64).unwrap_or(0.0);
    m.insert(
        "other_cpu_util".into(),
        json!(round3((busy - srv - gen).max(0.0))),
    );
}

/// Sum of the `drops` column of /proc/net/udp{,6} over sockets bound to `port`.
fn udp_socket_drops(port: u16) -> u64 {
    let mut total = 0;
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let Some(local) = f.get(1) else { continue };
            let Some((_, p)) = local.rsplit_once(':') else {
                continue;
            };
            if u16::from_str_radix(p, 16).ok() == Some(port) {
                total += f.last().and_then(|d| d.parse::<u64>().ok()).unwrap_or(0);
            }
        }
    }
    total
}

/// Udp RcvbufErrors from /proc/net/snmp (whole machine).
fn udp_rcvbuf_errors() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/net/snmp") else {
        return 0;
    };
    let udp: Vec<&str> = text.lines().filter(|l| l.starts_with("Udp:")).collect();
    if udp.len() < 2 {
        return 0;
    }
    let names: Vec<&str> = udp[0].split_whitespace().collect();
    let vals: Vec<&str> = udp[1].split_whitespace().collect();
    names
        .iter()
        .position(|n| *n == "RcvbufErrors")
        .and_then(|i| vals.get(i))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// STUN messages

/// A keyed, invertible mapping between sequence numbers and random-looking transaction IDs.
struct TxCodec {
    k1: u64,
    k2: u64,
    inv1: u64,
    inv2: u64,
}

const MIX1: u64 = 0xbf58_476d_1ce4_e5b9;
const MIX2: u64 = 0x94d0_49bb_1331_11eb;

fn mod_inverse(c: u64) -> u64 {
    // Newton's iteration for the inverse of an odd number modulo 2^64.
    let mut x = c;
    for _ in 0..6 {
        x = x.wrapping_mul(2u64.wrapping_sub(c.wrapping_mul(x)));
    }
    x
}

fn unxorshift(y: u64, s: u32) -> u64 {
    let mut x = y;
    for _ in 0..(64 / s) {
        x = y ^ (x >> s);
    }
    x
}

impl TxCodec {
    fn new() -> Self {
        let c = TxCodec {
            k1: getrandom_u64(),
            k2: getrandom_u64(),
            inv1: mod_inverse(MIX1),
            inv2: mod_inverse(MIX2),
        };
        for seq in [0, 1, 2, 1 << 20, u64::MAX >> 1] {
            assert_eq!(c.decode(&c.encode(seq)), Some(seq), "transaction ID codec");
        }
        c
    }
    fn mix(x: u64) -> u64 {
        let x = (x ^ (x >> 30)).wrapping_mul(MIX1);
        let x = (x ^ (x >> 27)).wrapping_mul(MIX2);
        x ^ (x >> 31)
    }
    fn unmix(&self, y: u64) -> u64 {
        let x = unxorshift(y, 31).wrapping_mul(self.inv2);
        let x = unxorshift(x, 27).wrapping_mul(self.inv1);
        unxorshift(x, 30)
    }
    fn tag(&self, seq: u64) -> u32 {
        (Self::mix(seq ^ self.k2) >> 32) as u32
    }
    fn encode(&self, seq: u64) -> [u8; 12] {
        let mut t = [0u8; 12];
        t[..8].copy_from_slice(&Self::mix(seq ^ self.k1).to_be_bytes());
        t[8..].copy_from_slice(&self.tag(seq).to_be_bytes());
        t
    }
    fn decode(&self, t: &[u8; 12]) -> Option<u64> {
        let a = u64::from_be_bytes(t[..8].try_into().ok()?);
        let seq = self.unmix(a) ^ self.k1;
        let tag = u32::from_be_bytes(t[8..].try_into().ok()?);
        (tag == self.tag(seq)).then_some(seq)
    }
}

/// RFC 8489 section 5: the 12 method bits interleaved with the 2 class bits.
const fn msg_type(method: u16, class: u16) -> u16 {
    (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((class & 1) << 4)
        | ((class & 2) << 7)
}

/// The hand-built message types agree with the crate's codec.
fn check_message_types() {
    let classes = [Class::Request, Class::Success, Class::Error];
    for (m, types) in [
        (nl::LOGIN, [LOGIN_REQUEST, LOGIN_SUCCESS, LOGIN_ERROR]),
        (
            nl::KEEPALIVE,
            [KEEPALIVE_REQUEST, KEEPALIVE_SUCCESS, KEEPALIVE_ERROR],
        ),
        (Method(1), [BINDING_REQUEST, BINDING_SUCCESS, BINDING_ERROR]),
    ] {
        for (c, t) in classes.into_iter().zip(types) {
            assert_eq!(MessageType::new(m, c).to_u16(), t, "message type of {m:?}");
        }
    }
}

fn header(typ: u16, len: u16, txid: &[u8; 12]) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0..2].copy_from_slice(&typ.to_be_bytes());
    h[2..4].copy_from_slice(&len.to_be_bytes());
    h[4..8].copy_from_slice(&MAGIC.to_be_bytes());
    h[8..20].copy_from_slice(txid);
    h
}

/// A request carrying one NL-ID attribute (LOGIN, KEEPALIVE), or none when `id` is None.
fn request(typ: u16, txid: &[u8; 12], id: Option<&str>) -> Vec<u8> {
    let mut attrs = Vec::new();
    if let Some(id) = id {
        let v = id.as_bytes();
        attrs.extend_from_slice(&ATTR_NL_ID.to_be_bytes());
        attrs.extend_from_slice(&(v.len() as u16).to_be_bytes());
        attrs.extend_from_slice(v);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
    }
    let mut m = header(typ, attrs.len() as u16, txid).to_vec();
    m.extend_from_slice(&attrs);
    m
}

#[derive(Debug, Clone, Copy)]
struct Header {
    typ: u16,
    len: u16,
    cookie: u32,
    txid: [u8; 12],
}

fn parse_header(b: &[u8]) -> Option<Header> {
    if b.len() < 20 {
        return None;
    }
    Some(Header {
        typ: u16::from_be_bytes([b[0], b[1]]),
        len: u16::from_be_bytes([b[2], b[3]]),
        cookie: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        txid: b[8..20].try_into().ok()?,
    })
}

/// The ERROR-CODE of an error response, as a number like 409.
fn error_code(msg: &[u8]) -> Option<u16> {
    let mut i = 20;
    while i + 4 <= msg.len() {
        let t = u16::from_be_bytes([msg[i], msg[i + 1]]);
        let l = u16::from_be_bytes([msg[i + 2], msg[i + 3]]) as usize;
        if t == ATTR_ERROR_CODE && l >= 4 && i + 8 <= msg.len() {
            return Some(u16::from(msg[i + 6] & 7) * 100 + u16::from(msg[i + 7]));
        }
        i += 4 + l.div_ceil(4) * 4;
    }
    None
}

// ---------------------------------------------------------------------------------------------
// UDP engine

#[derive(Default)]
struct UdpCounters {
    answered: u64,
    error_responses: u64,
    duplicates: u64,
    late: u64,
    invalid: u64,
    timed_out: u64,
    send_blocked: u64,
    refused: u64,
    other_errors: u64,
}

struct UdpEngine {
    socks: Vec<Socket>,
    fds: Vec<RawFd>,
    ports: Vec<u16>,
    codec: TxCodec,
    start: Instant,
    /// Send time of each request, microseconds since start, indexed by sequence number.
    send_us: Vec<u32>,
    /// 0 outstanding, 1 answered, 2 timed out, 3 error response.
    state: Vec<u8>,
    rtt_us: Vec<u32>,
    c: UdpCounters,
    /// Closed-loop bookkeeping: requests in flight per socket, in send order.
    track: bool,
    gso: bool,
    spin: bool,
    /// Time spent with nothing to do (asleep, or spinning without progress), microseconds.
    idle_us: u64,
    tx_flat: Vec<u8>,
    outstanding: Vec<u32>,
    queues: Vec<VecDeque<u64>>,
    /// Answers counted in [window_start, window_end) microseconds.
    window: (u32, u32),
    answered_in_window: u64,
    tx: Vec<[u8; 20]>,
    tx_iov: Vec<libc::iovec>,
    tx_hdr: Vec<libc::mmsghdr>,
    rx: Vec<[u8; RECV_BUF]>,
    rx_iov: Vec<libc::iovec>,
    rx_hdr: Vec<libc::mmsghdr>,
    pollfds: Vec<libc::pollfd>,
}

impl UdpEngine {
    fn new(target: SocketAddr, opts: &UdpOpts, track: bool) -> Result<Self> {
        if opts.sockets == 0 || opts.sockets > 1024 {
            bail!("--sockets must be 1..=1024");
        }
        let mut socks = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..opts.sockets {
            let s = Socket::new(
                Domain::for_address(target),
                Type::DGRAM,
                Some(Protocol::UDP),
            )?;
            s.set_recv_buffer_size(opts.sock_buf)?;
            s.set_send_buffer_size(opts.sock_buf)?;
            s.connect(&target.into())
                .with_context(|| format!("connect UDP socket to {target}"))?;
            s.set_nonblocking(true)?;
            if opts.gso {
                let seg: libc::c_int = 20;
                // SAFETY: valid fd and a pointer to a c_int of the stated size.
                let r = unsafe {
                    libc::setsockopt(
                        s.as_raw_fd(),
                        libc::SOL_UDP,
                        libc::UDP_SEGMENT,
                        (&seg as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    )
                };
                if r != 0 {
                    bail!("UDP_SEGMENT: {}", io::Error::last_os_error());
                }
            }
            let port = s
                .local_addr()?
                .as_socket()
                .map(|a| a.port())
                .unwrap_or_default();
            ports.push(port);
            socks.push(s);
        }
        let fds: Vec<RawFd> = socks.iter().map(|s| s.as_raw_fd()).collect();
        let n = socks.len();
        // SAFETY: iovec and mmsghdr are plain C structs for which all-zero is a valid value.
        let zero_iov: libc::iovec = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let zero_hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let mut e = UdpEngine {
            pollfds: fds
                .iter()
                .map(|&fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect(),
            socks,
            fds,
            ports,
            codec: TxCodec::new(),
            start: Instant::now(),
            send_us: Vec::with_capacity(1 << 20),
            state: Vec::with_capacity(1 << 20),
            rtt_us: Vec::with_capacity(1 << 20),
            c: UdpCounters::default(),
            track,
            gso: opts.gso,
            spin: opts.spin,
            idle_us: 0,
            tx_flat: vec![0u8; 20 * BATCH],
            outstanding: vec![0; n],
            queues: vec![VecDeque::new(); n],
            window: (0, u32::MAX),
            answered_in_window: 0,
            tx: vec![[0u8; 20]; BATCH],
            tx_iov: vec![zero_iov; BATCH],
            tx_hdr: vec![zero_hdr; BATCH],
            rx: vec![[0u8; RECV_BUF]; BATCH],
            rx_iov: vec![zero_iov; BATCH],
            rx_hdr: vec![zero_hdr; BATCH],
        };
        // The vectors never grow, so pointers into them stay valid.
        for i in 0..BATCH {
            e.tx_iov[i].iov_base = e.tx[i].as_mut_ptr().cast();
            e.tx_iov[i].iov_len = 20;
            e.tx_hdr[i].msg_hdr.msg_iov = &mut e.tx_iov[i];
            e.tx_hdr[i].msg_hdr.msg_iovlen = 1;
            e.rx_iov[i].iov_base = e.rx[i].as_mut_ptr().cast();
            e.rx_iov[i].iov_len = RECV_BUF;
            e.rx_hdr[i].msg_hdr.msg_iov = &mut e.rx_iov[i];
            e.rx_hdr[i].msg_hdr.msg_iovlen = 1;
        }
        Ok(e)
    }

    fn now_us(&self) -> u32 {
        self.start.elapsed().as_micros() as u32
    }

    fn sent(&self) -> u64 {
        self.send_us.len() as u64
    }

    fn classify_errno(&mut self, e: io::Error, sending: bool) {
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::ENOBUFS) if sending => self.c.send_blocked += 1,
            Some(libc::EAGAIN) | Some(libc::EINTR) => {}
            Some(libc::ECONNREFUSED) => self.c.refused += 1,
            _ => self.c.other_errors += 1,
        }
    }

    /// Sends up to `n` (at most BATCH) new requests on socket `s`; returns how many went out.
    fn send(&mut self, s: usize, n: usize) -> usize {
        let n = n.min(BATCH);
        if n == 0 {
            return 0;
        }
        let base = self.sent();
        let k = if self.gso {
            for (i, chunk) in self.tx_flat.chunks_exact_mut(20).take(n).enumerate() {
                chunk.copy_from_slice(&header(
                    BINDING_REQUEST,
                    0,
                    &self.codec.encode(base + i as u64),
                ));
            }
            // SAFETY: tx_flat holds at least n * 20 initialized bytes.
            let r = unsafe { libc::send(self.fds[s], self.tx_flat.as_ptr().cast(), n * 20, 0) };
            if r < 0 {
                self.classify_errno(io::Error::last_os_error(), true);
                return 0;
            }
            r as usize / 20
        } else {
            for (i, buf) in self.tx.iter_mut().take(n).enumerate() {
                *buf = header(BINDING_REQUEST, 0, &self.codec.encode(base + i as u64));
            }
            // SAFETY: tx_hdr[..n] point at valid iovecs over tx buffers owned by self.
            let r = unsafe { libc::sendmmsg(self.fds[s], self.tx_hdr.as_mut_ptr(), n as u32, 0) };
            if r < 0 {
                self.classify_errno(io::Error::last_os_error(), true);
                return 0;
            }
            r as usize
        };
        let t = self.now_us();
        for i in 0..k as u64 {
            self.send_us.push(t);
            self.state.push(0);
            if self.track {
                self.queues[s].push_back(base + i);
            }
        }
        if self.track {
            self.outstanding[s] += k as u32;
        }
        k
    }

    /// One recvmmsg on socket `s`; returns the number of datagrams read.
    fn recv(&mut self, s: usize) -> usize {
        // SAFETY: rx_hdr point at valid iovecs over rx buffers owned by self.
        let r = unsafe {
            libc::recvmmsg(
                self.fds[s],
                self.rx_hdr.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            self.classify_errno(io::Error::last_os_error(), false);
            return 0;
        }
        let now = self.now_us();
        for i in 0..r as usize {
            let len = (self.rx_hdr[i].msg_len as usize).min(RECV_BUF);
            let h = parse_header(&self.rx[i][..len]);
            self.on_response(s, h, now);
        }
        r as usize
    }

    /// Reads everything queued on every socket; returns the number of datagrams.
    fn recv_all(&mut self) -> usize {
        let mut total = 0;
        for s in 0..self.fds.len() {
            // Bounded: at most 64 batches per socket per call.
            for _ in 0..64 {
                let k = self.recv(s);
                total += k;
                if k < BATCH {
                    break;
                }
            }
        }
        total
    }

    fn on_response(&mut self, s: usize, h: Option<Header>, now: u32) {
        let Some(h) = h else {
            self.c.invalid += 1;
            return;
        };
        let seq = match self.codec.decode(&h.txid) {
            Some(seq) if h.cookie == MAGIC && seq < self.sent() => seq as usize,
            _ => {
                self.c.invalid += 1;
                return;
            }
        };
        let ok = match h.typ {
            BINDING_SUCCESS => true,
            BINDING_ERROR => false,
            _ => {
                self.c.invalid += 1;
                return;
            }
        };
        match self.state[seq] {
            0 => {
                if ok {
                    self.state[seq] = 1;
                    self.c.answered += 1;
                    self.rtt_us.push(now.saturating_sub(self.send_us[seq]));
                    if now >= self.window.0 && now < self.window.1 {
                        self.answered_in_window += 1;
                    }
                } else {
                    self.state[seq] = 3;
                    self.c.error_responses += 1;
                }
                if self.track {
                    self.outstanding[s] = self.outstanding[s].saturating_sub(1);
                }
            }
            2 => {
                self.c.late += 1;
                self.state[seq] = if ok { 1 } else { 3 };
            }
            _ => self.c.duplicates += 1,
        }
    }

    /// Closed loop: drops answered requests from the queues, times out the old ones.
    fn reap(&mut self, now: u32, timeout_us: u32) {
        for s in 0..self.queues.len() {
            while let Some(&seq) = self.queues[s].front() {
                let i = seq as usize;
                if self.state[i] != 0 {
                    self.queues[s].pop_front();
                } else if now.saturating_sub(self.send_us[i]) > timeout_us {
                    self.state[i] = 2;
                    self.c.timed_out += 1;
                    self.outstanding[s] = self.outstanding[s].saturating_sub(1);
                    self.queues[s].pop_front();
                } else {
                    break;
                }
            }
        }
    }

    /// Sleeps until a socket is readable or `us` microseconds pass.
    fn wait(&mut self, us: u64) {
        let ts = libc::timespec {
            tv_sec: (us / 1_000_000) as libc::time_t,
            tv_nsec: ((us % 1_000_000) * 1000) as libc::c_long,
        };
        // SAFETY: pollfds is a valid array of pollfd, ts a valid timespec.
        unsafe {
            libc::ppoll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
    }

    /// Nothing to do in the iteration that began at `iter_start`: sleep up to `us` (or, when
    /// spinning, go round again) and count the time as idle.
    fn idle(&mut self, us: u64, iter_start: u32) {
        if !self.spin {
            self.wait(us);
        }
        self.idle_us += u64::from(self.now_us().saturating_sub(iter_start));
    }

    fn gen_socket_drops(&self) -> u64 {
        self.ports.iter().map(|&p| udp_socket_drops(p)).sum()
    }

    fn latency_json(&mut self, m: &mut Map<String, Value>) {
        self.rtt_us.sort_unstable();
        let r = &self.rtt_us;
        m.insert("rtt_p50_us".into(), json!(percentile(r, 0.5)));
        m.insert("rtt_p90_us".into(), json!(percentile(r, 0.9)));
        m.insert("rtt_p99_us".into(), json!(percentile(r, 0.99)));
        m.insert("rtt_p999_us".into(), json!(percentile(r, 0.999)));
        m.insert("rtt_max_us".into(), json!(r.last()));
    }

    fn counters_json(&self, m: &mut Map<String, Value>) {
        let c = &self.c;
        m.insert("sockets".into(), json!(self.socks.len()));
        m.insert(
            "send_api".into(),
            json!(if self.gso { "gso" } else { "sendmmsg" }),
        );
        m.insert("spin".into(), json!(self.spin));
        m.insert("sent".into(), json!(self.sent()));
        m.insert("answered".into(), json!(c.answered));
        m.insert("error_responses".into(), json!(c.error_responses));
        m.insert("duplicates".into(), json!(c.duplicates));
        m.insert("late".into(), json!(c.late));
        m.insert("invalid".into(), json!(c.invalid));
        m.insert("send_blocked".into(), json!(c.send_blocked));
        m.insert("refused".into(), json!(c.refused));
        m.insert("other_errors".into(), json!(c.other_errors));
    }
}

fn set_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer argument.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
}

fn server_json(
    m: &mut Map<String, Value>,
    before: Option<ServerSample>,
    after: Option<ServerSample>,
    requests: u64,
    wall_s: f64,
) {
    if let (Some(b), Some(a)) = (before, after) {
        let cpu = a.cpu_s - b.cpu_s;
        let sched = a.sched_s - b.sched_s;
        m.insert("server_cpu_s".into(), json!(round3(cpu)));
        m.insert("server_sched_s".into(), json!(round3(sched)));
        m.insert("server_cpu_util".into(), json!(round3(sched / wall_s)));
        if requests > 0 {
            m.insert(
                "server_cpu_us_per_req".into(),
                json!(round3(cpu * 1e6 / requests as f64)),
            );
            m.insert(
                "server_sched_us_per_req".into(),
                json!(round3(sched * 1e6 / requests as f64)),
            );
            if sched > 0.0 {
                m.insert(
                    "answered_per_cpu_s".into(),
                    json!((requests as f64 / sched).round()),
                );
            }
        }
        m.insert("server_rss_kb".into(), json!(a.rss_kb));
    }
}

fn udp_rate(a: &UdpRateArgs) -> Result<bool> {
    check_target(a.common.target)?;
    check_seconds("duration", a.duration)?;
    check_seconds("grace", a.grace)?;
    if a.rate == 0 || a.rate > 5_000_000 {
        bail!("--rate must be 1..=5000000");
    }
    set_timer_slack();
    let mut e = UdpEngine::new(a.common.target, &a.udp, false)?;
    let rate = a.rate as f64;
    let dur_us = (a.duration * 1e6) as u64;
    let total = (rate * a.duration).round() as u64;
    let tick = a.tick_us.max(1);
    let n = e.fds.len();

    let srv_drops0 = udp_socket_drops(a.common.target.port());
    let gen_drops0 = e.gen_socket_drops();
    let sys0 = udp_rcvbuf_errors();
    let srv0 = sample_opt(a.common.server_pid)?;
    let gen0 = self_cpu_seconds();
    let cpus0 = cpu_ticks();
    e.start = Instant::now();
    let mut rr = 0;
    loop {
        let now = u64::from(e.now_us());
        if now >= dur_us || e.sent() >= total {
            break;
        }
        let due = ((now as f64 * rate / 1e6) as u64).min(total);
        let mut progress = false;
        // Bounded: each pass sends at most 4 batches per socket, then reads.
        for _ in 0..4 * n {
            if e.sent() >= due {
                break;
            }
            let want = (due - e.sent()) as usize;
            let k = e.send(rr, want);
            rr = (rr + 1) % n;
            if k == 0 {
                break;
            }
            progress = true;
        }
        if e.recv_all() > 0 {
            progress = true;
        }
        if !progress {
            let next_due = (((e.sent() + 1) as f64) * 1e6 / rate).ceil() as u64;
            let wait = next_due.saturating_sub(now).max(tick).min(dur_us - now);
            e.idle(wait, now as u32);
        }
    }
    let send_s = e.start.elapsed().as_secs_f64();
    let gen1 = self_cpu_seconds();
    let cpus1 = cpu_ticks();
    // Grace period: collect late answers.
    let grace_end = Instant::now() + Duration::from_secs_f64(a.grace);
    while Instant::now() < grace_end && e.c.answered + e.c.error_responses < e.sent() {
        if e.recv_all() == 0 {
            e.wait(1000);
        }
    }
    let srv1 = sample_opt(a.common.server_pid)?;
    let sent = e.sent();
    let lost = sent - e.c.answered - e.c.error_responses;

    let mut m = common_json("udp-rate", &a.common);
    m.insert("offered_rate".into(), json!(a.rate));
    m.insert("duration_s".into(), json!(a.duration));
    m.insert("grace_s".into(), json!(a.grace));
    e.counters_json(&mut m);
    m.insert("lost".into(), json!(lost));
    m.insert(
        "loss_pct".into(),
        json!(round3(100.0 * lost as f64 / sent.max(1) as f64)),
    );
    m.insert("send_s".into(), json!(round3(send_s)));
    m.insert("send_rate".into(), json!((sent as f64 / send_s).round()));
    m.insert(
        "answered_rate".into(),
        json!((e.c.answered as f64 / send_s).round()),
    );
    m.insert(
        "rate_reached".into(),
        json!(sent as f64 >= 0.99 * rate * a.duration),
    );
    m.insert("gen_cpu_util".into(), json!(round3((gen1 - gen0) / send_s)));
    m.insert(
        "gen_idle_frac".into(),
        json!(round3(e.idle_us as f64 / 1e6 / send_s)),
    );
    m.insert(
        "gen_sock_drops".into(),
        json!(e.gen_socket_drops() - gen_drops0),
    );
    m.insert(
        "server_sock_drops".into(),
        json!(udp_socket_drops(a.common.target.port()).saturating_sub(srv_drops0)),
    );
    m.insert(
        "sys_udp_rcvbuf_errors".into(),
        json!(udp_rcvbuf_errors().saturating_sub(sys0)),
    );
    server_json(&mut m, srv0, srv1, e.c.answered, send_s);
    cpu_json(&mut m, &cpus0, &cpus1);
    other_cpu_json(&mut m);
    e.latency_json(&mut m);
    print_json(m);
    Ok(true)
}

fn udp_saturate(a: &UdpSaturateArgs) -> Result<bool> {
    check_target(a.common.target)?;
    check_seconds("duration", a.duration)?;
    check_seconds("warmup", a.warmup)?;
    if a.duration <= 0.0 {
        bail!("--duration must be positive");
    }
    if a.window == 0 || a.window > 4096 {
        bail!("--window must be 1..=4096");
    }
    set_timer_slack();
    let mut e = UdpEngine::new(a.common.target, &a.udp, true)?;
    let warm_us = (a.warmup * 1e6) as u32;
    let end_us = ((a.warmup + a.duration) * 1e6) as u32;
    let timeout_us = (a.timeout_ms * 1000) as u32;
    let min_batch = a.min_batch.clamp(1, a.window);
    e.window = (warm_us, end_us);
    let n = e.fds.len();

    type Marks = (Option<ServerSample>, f64, u64, u64, u64, u64);
    let mut marks: Option<Marks> = None;
    let mut cpus0 = Vec::new();
    e.start = Instant::now();
    let mut last_reap = 0u32;
    loop {
        let now = e.now_us();
        if now >= end_us {
            break;
        }
        if marks.is_none() && now >= warm_us {
            marks = Some((
                sample_opt(a.common.server_pid)?,
                self_cpu_seconds(),
                udp_socket_drops(a.common.target.port()),
                e.gen_socket_drops(),
                udp_rcvbuf_errors(),
                e.c.timed_out,
            ));
            cpus0 = cpu_ticks();
            e.idle_us = 0;
        }
        let mut progress = e.recv_all() > 0;
        if now.wrapping_sub(last_reap) >= 1000 {
            e.reap(now, timeout_us);
            last_reap = now;
        }
        for s in 0..n {
            let free = a.window.saturating_sub(e.outstanding[s]);
            if free >= min_batch && e.send(s, free as usize) > 0 {
                progress = true;
            }
        }
        if !progress {
            e.idle(1000, now);
        }
    }
    let srv1 = sample_opt(a.common.server_pid)?;
    let gen1 = self_cpu_seconds();
    let srv_drops1 = udp_socket_drops(a.common.target.port());
    let gen_drops1 = e.gen_socket_drops();
    let sys1 = udp_rcvbuf_errors();
    let cpus1 = cpu_ticks();
    let timed_out_window = e.c.timed_out;
    // Drain what is still in flight (bounded by twice the timeout).
    let drain_end = Instant::now() + Duration::from_micros(2 * u64::from(timeout_us));
    while Instant::now() < drain_end && e.outstanding.iter().any(|&o| o > 0) {
        if e.recv_all() == 0 {
            e.wait(1000);
        }
        e.reap(e.now_us(), timeout_us);
    }
    let (srv0, gen0, srv_drops0, gen_drops0, sys0, to0) =
        marks.unwrap_or((None, gen1, srv_drops1, gen_drops1, sys1, timed_out_window));

    let mut m = common_json("udp-saturate", &a.common);
    m.insert("duration_s".into(), json!(a.duration));
    m.insert("warmup_s".into(), json!(a.warmup));
    m.insert("window_per_socket".into(), json!(a.window));
    e.counters_json(&mut m);
    let lost = e.sent() - e.c.answered - e.c.error_responses;
    m.insert("lost".into(), json!(lost));
    m.insert("timed_out".into(), json!(e.c.timed_out));
    m.insert("timed_out_in_window".into(), json!(timed_out_window - to0));
    m.insert("answered_in_window".into(), json!(e.answered_in_window));
    m.insert(
        "answered_rate".into(),
        json!((e.answered_in_window as f64 / a.duration).round()),
    );
    m.insert(
        "gen_cpu_util".into(),
        json!(round3((gen1 - gen0) / a.duration)),
    );
    m.insert(
        "gen_idle_frac".into(),
        json!(round3(e.idle_us as f64 / 1e6 / a.duration)),
    );
    m.insert("gen_sock_drops".into(), json!(gen_drops1 - gen_drops0));
    m.insert(
        "server_sock_drops".into(),
        json!(srv_drops1.saturating_sub(srv_drops0)),
    );
    m.insert(
        "sys_udp_rcvbuf_errors".into(),
        json!(sys1.saturating_sub(sys0)),
    );
    server_json(&mut m, srv0, srv1, e.answered_in_window, a.duration);
    cpu_json(&mut m, &cpus0, &cpus1);
    other_cpu_json(&mut m);
    e.latency_json(&mut m);
    print_json(m);
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// TCP hold

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Requested,
    Held,
    Verifying,
    Verified,
}

struct Conn {
    stream: TcpStream,
    phase: Phase,
    out: Vec<u8>,
    written: usize,
    inbuf: Vec<u8>,
    txid: [u8; 12],
    started: Instant,
}

fn open_tcp(target: SocketAddr, src: Option<IpAddr>) -> io::Result<TcpStream> {
    let s = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    s.set_nonblocking(true)?;
    s.set_nodelay(true)?;
    if let Some(ip) = src {
        let one: libc::c_int = 1;
        // SAFETY: valid fd and a pointer to a c_int of the stated size.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        s.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match s.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(std::net::TcpStream::from(s)))
}

fn errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EMFILE) => "EMFILE (open-file limit)".into(),
        Some(libc::ENFILE) => "ENFILE".into(),
        Some(libc::EADDRNOTAVAIL) => "EADDRNOTAVAIL (ports exhausted)".into(),
        Some(libc::ECONNREFUSED) => "ECONNREFUSED".into(),
        Some(libc::ECONNRESET) => "ECONNRESET".into(),
        Some(libc::ETIMEDOUT) => "ETIMEDOUT".into(),
        Some(libc::EPIPE) => "EPIPE".into(),
        _ => e.kind().to_string(),
    }
}

struct TcpRun<'a> {
    a: &'a TcpHoldArgs,
    poll: Poll,
    conns: Vec<Option<Conn>>,
    codec: TxCodec,
    errors: BTreeMap<String, u64>,
    inflight: usize,
    logged_in: usize,
    connected: usize,
    verified: usize,
    setup_ms: Vec<u32>,
    next_txid: u64,
}

impl TcpRun<'_> {
    fn err(&mut self, what: String) {
        *self.errors.entry(what).or_insert(0) += 1;
    }

    fn id(&self, i: usize) -> String {
        format!("{}{i}", self.a.id_prefix)
    }

    fn build_request(&mut self, i: usize, check: bool) -> (Vec<u8>, [u8; 12]) {
        let txid = self.codec.encode(self.next_txid);
        self.next_txid += 1;
        let msg = if self.a.stun_binding {
            request(BINDING_REQUEST, &txid, None)
        } else if check {
            request(KEEPALIVE_REQUEST, &txid, Some(&self.id(i)))
        } else {
            request(LOGIN_REQUEST, &txid, Some(&self.id(i)))
        };
        (msg, txid)
    }

    fn close(&mut self, i: usize) {
        if let Some(mut c) = self.conns[i].take() {
            let _ = self.poll.registry().deregister(&mut c.stream);
            if matches!(c.phase, Phase::Connecting | Phase::Requested) {
                self.inflight -= 1;
            }
        }
    }

    fn fail(&mut self, i: usize, what: String) {
        let phase = self.conns[i].as_ref().map(|c| c.phase);
        let prefix = match phase {
            Some(Phase::Connecting) => "connect",
            Some(Phase::Requested) => "request",
            Some(Phase::Held) => "hold",
            Some(Phase::Verifying) | Some(Phase::Verified) => "check",
            None => "?",
        };
        self.err(format!("{prefix}: {what}"));
        self.close(i);
    }

    fn flush(&mut self, i: usize) {
        let Some(c) = self.conns[i].as_mut() else {
            return;
        };
        while c.written < c.out.len() {
            match c.stream.write(&c.out[c.written..]) {
                Ok(0) => break,
                Ok(k) => c.written += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    let what = errno_name(&e);
                    self.fail(i, what);
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, i: usize) {
        let Some(phase) = self.conns[i].as_ref().map(|c| c.phase) else {
            return;
        };
        if phase == Phase::Connecting {
            let c = self.conns[i].as_mut().expect("conn");
            match c.stream.take_error() {
                Ok(Some(e)) | Err(e) => {
                    let what = errno_name(&e);
                    self.fail(i, what);
                    return;
                }
                Ok(None) => {}
            }
            match c.stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => {
                    let what = errno_name(&e);
                    self.fail(i, what);
                    return;
                }
            }
            self.connected += 1;
            let (msg, txid) = self.build_request(i, false);
            let c = self.conns[i].as_mut().expect("conn");
            c.out = msg;
            c.written = 0;
            c.txid = txid;
            c.phase = Phase::Requested;
        }
        self.flush(i);
        self.read(i);
    }

    fn read(&mut self, i: usize) {
        let mut buf = [0u8; 1024];
        loop {
            let Some(c) = self.conns[i].as_mut() else {
                return;
            };
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    self.fail(i, "closed by server".into());
                    return;
                }
                Ok(k) => {
                    if c.inbuf.len() + k > 65_536 {
                        self.fail(i, "unexpected data flood".into());
                        return;
                    }
                    c.inbuf.extend_from_slice(&buf[..k]);
                    self.parse(i);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let what = errno_name(&e);
                    self.fail(i, what);
                    return;
                }
            }
        }
    }

    fn parse(&mut self, i: usize) {
        // Bounded: each pass consumes one frame.
        for _ in 0..1024 {
            let Some(c) = self.conns[i].as_mut() else {
                return;
            };
            let Some(h) = parse_header(&c.inbuf) else {
                return;
            };
            let total = 20 + h.len as usize;
            if c.inbuf.len() < total {
                return;
            }
            let frame: Vec<u8> = c.inbuf.drain(..total).collect();
            let phase = c.phase;
            let elapsed_ms = c.started.elapsed().as_millis() as u32;
            if h.cookie != MAGIC || h.txid != c.txid {
                self.err(format!("{phase:?}: unexpected message 0x{:04x}", h.typ));
                continue;
            }
            let (ok, err) = match (self.a.stun_binding, phase) {
                (true, _) => (BINDING_SUCCESS, BINDING_ERROR),
                (false, Phase::Requested) => (LOGIN_SUCCESS, LOGIN_ERROR),
                (false, _) => (KEEPALIVE_SUCCESS, KEEPALIVE_ERROR),
            };
            if h.typ == ok {
                let c = self.conns[i].as_mut().expect("conn");
                match phase {
                    Phase::Requested => {
                        c.phase = Phase::Held;
                        self.inflight -= 1;
                        self.logged_in += 1;
                        self.setup_ms.push(elapsed_ms);
                    }
                    Phase::Verifying => {
                        c.phase = Phase::Verified;
                        self.verified += 1;
                    }
                    _ => self.err(format!("{phase:?}: duplicate answer")),
                }
            } else if h.typ == err {
                let code = error_code(&frame).map_or("?".to_string(), |c| c.to_string());
                self.fail(i, format!("error response {code}"));
                return;
            } else {
                self.fail(i, format!("unexpected message type 0x{:04x}", h.typ));
                return;
            }
        }
    }

    fn poll_once(&mut self, events: &mut Events, timeout: Duration) -> Result<()> {
        match self.poll.poll(events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let tokens: Vec<usize> = events.iter().map(|e| e.token().0).collect();
        for t in tokens {
            self.on_event(t);
        }
        Ok(())
    }

    fn count_phase(&self, p: Phase) -> usize {
        self.conns.iter().flatten().filter(|c| c.phase == p).count()
    }
}

fn tcp_hold(a: &TcpHoldArgs) -> Result<bool> {
    check_target(a.common.target)?;
    check_seconds("hold", a.hold)?;
    check_seconds("setup-timeout", a.setup_timeout)?;
    check_seconds("verify-timeout", a.verify_timeout)?;
    if a.count == 0 || a.count > 1_000_000 {
        bail!("--count must be 1..=1000000");
    }
    if !a.stun_binding && a.id_prefix.len() + 7 > 64 {
        bail!("--id-prefix too long for a 64-byte NL-ID");
    }
    let target = a.common.target;
    let srcs: Vec<Option<IpAddr>> = match target.ip() {
        IpAddr::V4(_) if a.src_ips > 0 => (0..a.src_ips)
            .map(|k| Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + k))))
            .collect(),
        _ => vec![None],
    };
    let mut run = TcpRun {
        a,
        poll: Poll::new()?,
        conns: Vec::with_capacity(a.count),
        codec: TxCodec::new(),
        errors: BTreeMap::new(),
        inflight: 0,
        logged_in: 0,
        connected: 0,
        verified: 0,
        setup_ms: Vec::with_capacity(a.count),
        next_txid: 0,
    };
    let mut events = Events::with_capacity(4096);
    let rss0 = sample_opt(a.common.server_pid)?;
    let start = Instant::now();
    let setup_deadline = start + Duration::from_secs_f64(a.setup_timeout);
    let mut opened = 0usize;
    let mut stop_opening = false;
    let mut open_failures = 0usize;

    // Setup: connect + request, `concurrency` at a time.
    while (run.inflight > 0 || (opened < a.count && !stop_opening))
        && Instant::now() < setup_deadline
    {
        while !stop_opening && opened < a.count && run.inflight < a.concurrency {
            let i = opened;
            opened += 1;
            run.conns.push(None);
            match open_tcp(target, srcs[i % srcs.len()]) {
                Ok(mut stream) => {
                    run.poll.registry().register(
                        &mut stream,
                        Token(i),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    run.conns[i] = Some(Conn {
                        stream,
                        phase: Phase::Connecting,
                        out: Vec::new(),
                        written: 0,
                        inbuf: Vec::new(),
                        txid: [0; 12],
                        started: Instant::now(),
                    });
                    run.inflight += 1;
                }
                Err(e) => {
                    open_failures += 1;
                    if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) {
                        stop_opening = true;
                    }
                    run.err(format!("socket: {}", errno_name(&e)));
                }
            }
        }
        run.poll_once(&mut events, Duration::from_millis(20))?;
    }
    let setup_s = start.elapsed().as_secs_f64();
    let pending: Vec<usize> = (0..run.conns.len())
        .filter(|&i| {
            matches!(
                run.conns[i].as_ref().map(|c| c.phase),
                Some(Phase::Connecting) | Some(Phase::Requested)
            )
        })
        .collect();
    for i in pending {
        run.fail(i, "setup timeout".into());
    }
    let logged_after_setup = run.logged_in;
    let rss_setup = sample_opt(a.common.server_pid)?;

    // Hold: watch for connections the server closes.
    let hold_end = Instant::now() + Duration::from_secs_f64(a.hold);
    while Instant::now() < hold_end {
        let left = hold_end.saturating_duration_since(Instant::now());
        run.poll_once(&mut events, left.min(Duration::from_millis(200)))?;
    }
    let rss_held = sample_opt(a.common.server_pid)?;
    let held_at_end = run.count_phase(Phase::Held);

    // Check: one more request on every held connection.
    if !a.no_verify {
        for i in 0..run.conns.len() {
            if run.conns[i].as_ref().map(|c| c.phase) != Some(Phase::Held) {
                continue;
            }
            let (msg, txid) = run.build_request(i, true);
            let c = run.conns[i].as_mut().expect("conn");
            c.out = msg;
            c.written = 0;
            c.txid = txid;
            c.phase = Phase::Verifying;
            run.flush(i);
        }
        let verify_end = Instant::now() + Duration::from_secs_f64(a.verify_timeout);
        while Instant::now() < verify_end && run.count_phase(Phase::Verifying) > 0 {
            run.poll_once(&mut events, Duration::from_millis(50))?;
        }
        let unanswered = run.count_phase(Phase::Verifying);
        if unanswered > 0 {
            *run.errors.entry("check: no answer".into()).or_insert(0) += unanswered as u64;
        }
    }
    let total_s = start.elapsed().as_secs_f64();
    for i in 0..run.conns.len() {
        if let Some(mut c) = run.conns[i].take() {
            let _ = run.poll.registry().deregister(&mut c.stream);
        }
    }

    run.setup_ms.sort_unstable();
    let mut m = common_json("tcp-hold", &a.common);
    m.insert(
        "request".into(),
        json!(if a.stun_binding { "binding" } else { "login" }),
    );
    m.insert("count".into(), json!(a.count));
    m.insert("hold_s".into(), json!(a.hold));
    m.insert("src_ips".into(), json!(srcs.len()));
    m.insert("opened".into(), json!(opened - open_failures));
    m.insert("connected".into(), json!(run.connected));
    m.insert("logged_in".into(), json!(logged_after_setup));
    m.insert("held_at_end".into(), json!(held_at_end));
    if !a.no_verify {
        m.insert("alive_at_end".into(), json!(run.verified));
    }
    let nerr: u64 = run.errors.values().sum();
    m.insert("errors_total".into(), json!(nerr));
    m.insert("errors".into(), json!(run.errors));
    m.insert("setup_s".into(), json!(round3(setup_s)));
    m.insert(
        "setup_rate".into(),
        json!((logged_after_setup as f64 / setup_s.max(1e-9)).round()),
    );
    m.insert("setup_p50_ms".into(), json!(percentile(&run.setup_ms, 0.5)));
    m.insert(
        "setup_p99_ms".into(),
        json!(percentile(&run.setup_ms, 0.99)),
    );
    m.insert("total_s".into(), json!(round3(total_s)));
    if let (Some(r0), Some(r1), Some(r2)) = (rss0, rss_setup, rss_held) {
        m.insert("server_rss_before_kb".into(), json!(r0.rss_kb));
        m.insert("server_rss_setup_kb".into(), json!(r1.rss_kb));
        m.insert("server_rss_held_kb".into(), json!(r2.rss_kb));
        if held_at_end > 0 {
            let delta = r2.rss_kb as f64 - r0.rss_kb as f64;
            m.insert(
                "rss_per_conn_bytes".into(),
                json!((delta * 1024.0 / held_at_end as f64).round()),
            );
        }
        m.insert("server_cpu_s".into(), json!(round3(r2.cpu_s - r0.cpu_s)));
    }
    print_json(m);
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// wait-ready

fn wait_ready(a: &WaitReadyArgs) -> Result<bool> {
    check_target(a.target)?;
    check_seconds("timeout", a.timeout)?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.timeout);
    let codec = TxCodec::new();
    let bind: SocketAddr = match a.target {
        SocketAddr::V4(_) => (Ipv4Addr::LOCALHOST, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::LOCALHOST, 0).into(),
    };
    let sock = std::net::UdpSocket::bind(bind)?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut udp_ok = false;
    let mut tcp_ok = a.udp_only;
    let mut seq = 0u64;
    let mut buf = [0u8; RECV_BUF];
    while Instant::now() < deadline && !(udp_ok && tcp_ok) {
        if !udp_ok {
            let txid = codec.encode(seq);
            seq += 1;
            let _ = sock.send_to(&header(BINDING_REQUEST, 0, &txid), a.target);
            let until = Instant::now() + Duration::from_millis(100);
            while Instant::now() < until {
                match sock.recv_from(&mut buf) {
                    Ok((n, _)) => {
                        if let Some(h) = parse_header(&buf[..n]) {
                            if h.typ == BINDING_SUCCESS && codec.decode(&h.txid).is_some() {
                                udp_ok = true;
                                break;
                            }
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        if !tcp_ok {
            tcp_ok =
                std::net::TcpStream::connect_timeout(&a.target, Duration::from_millis(200)).is_ok();
            if !tcp_ok {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    let ready = udp_ok && tcp_ok;
    println!(
        "{}",
        json!({"mode": "wait-ready", "target": a.target.to_string(), "ready": ready,
               "udp": udp_ok, "tcp": tcp_ok, "after_ms": start.elapsed().as_millis() as u64})
    );
    Ok(ready)
}

fn wait_quiet(a: &WaitQuietArgs) -> Result<bool> {
    check_seconds("timeout", a.timeout)?;
    if !(a.interval > 0.0 && a.interval <= 10.0) {
        bail!("--interval must be in (0, 10] seconds");
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.timeout);
    let mut prev = cpu_ticks();
    let busy = loop {
        std::thread::sleep(Duration::from_secs_f64(a.interval));
        let now = cpu_ticks();
        let (mut total, mut idle) = (0u64, 0u64);
        for (x, y) in prev.iter().zip(&now) {
            total += y.0.saturating_sub(x.0);
            idle += y.1.saturating_sub(x.1);
        }
        let busy = if total > 0 {
            1.0 - idle as f64 / total as f64
        } else {
            0.0
        };
        prev = now;
        if busy < a.max_busy || Instant::now() >= deadline {
            break busy;
        }
    };
    let quiet = busy < a.max_busy;
    println!(
        "{}",
        json!({"mode": "wait-quiet", "quiet": quiet, "busy": round3(busy),
               "waited_s": round3(start.elapsed().as_secs_f64())})
    );
    Ok(quiet)
}

// ---------------------------------------------------------------------------------------------
// summarize

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 {
        let s = format!("{:.0}", v);
        // Thousands separators for readability.
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (k, ch) in digits.chars().enumerate() {
            if k > 0 && (digits.len() - k) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        format!("{sign}{out}")
    } else if v.abs() >= 10.0 {
        format!("{:.1}", v)
    } else {
        format!("{:.3}", v)
    }
}

struct Metric {
    key: &'static str,
    name: &'static str,
    /// "lower", "higher" or "" (informational).
    better: &'static str,
}

const fn metric(key: &'static str, name: &'static str, better: &'static str) -> Metric {
    Metric { key, name, better }
}

fn summarize(a: &SummarizeArgs) -> Result<bool> {
    let text =
        std::fs::read_to_string(&a.input).with_context(|| format!("read {}", a.input.display()))?;
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(|v| v.get("mode").is_some() && v.get("superseded") != Some(&Value::Bool(true)))
        .collect();
    let sections: [(&str, &str, Vec<Metric>); 3] = [
        (
            "udp-rate",
            "UDP, fixed offered rate",
            vec![
                metric("send_rate", "offered rate achieved (req/s)", ""),
                metric("lost", "lost (unanswered after grace)", "lower"),
                metric("loss_pct", "lost %", "lower"),
                metric(
                    "server_cpu_us_per_req",
                    "server CPU µs/request (utime+stime)",
                    "lower",
                ),
                metric(
                    "server_sched_us_per_req",
                    "server CPU µs/request (schedstat)",
                    "lower",
                ),
                metric("server_cpu_util", "server CPU utilisation", "lower"),
                metric("rtt_p50_us", "RTT p50 (µs)", "lower"),
                metric("rtt_p99_us", "RTT p99 (µs)", "lower"),
                metric("server_sock_drops", "server socket drops", "lower"),
                metric("gen_idle_frac", "generator idle share (spare capacity)", ""),
                metric("other_cpu_util", "other work on the machine (CPUs)", ""),
            ],
        ),
        (
            "udp-saturate",
            "UDP, saturation (closed loop)",
            vec![
                metric("answered_rate", "max answered rate (req/s)", "higher"),
                metric(
                    "answered_per_cpu_s",
                    "answers per server CPU-second (one full core)",
                    "higher",
                ),
                metric("timed_out_in_window", "timed out (lost) in window", "lower"),
                metric("server_cpu_util", "server CPU utilisation", ""),
                metric("gen_idle_frac", "generator idle share (spare capacity)", ""),
                metric("other_cpu_util", "other work on the machine (CPUs)", ""),
                metric(
                    "server_sched_us_per_req",
                    "server CPU µs/request (schedstat)",
                    "lower",
                ),
                metric("rtt_p50_us", "RTT p50 (µs)", "lower"),
                metric("rtt_p99_us", "RTT p99 (µs)", "lower"),
            ],
        ),
        (
            "tcp-hold",
            "TCP, connections held",
            vec![
                metric("count", "connections attempted", ""),
                metric("logged_in", "logged in / answered", "higher"),
                metric("held_at_end", "still open at end of hold", "higher"),
                metric("alive_at_end", "answered the check request", "higher"),
                metric("errors_total", "errors", "lower"),
                metric(
                    "rss_per_conn_bytes",
                    "server RSS per connection (bytes)",
                    "lower",
                ),
                metric(
                    "server_rss_held_kb",
                    "server RSS while holding (KiB)",
                    "lower",
                ),
                metric("setup_rate", "setup rate (conn+request/s)", "higher"),
                metric("setup_p99_ms", "setup p99 (ms)", "lower"),
            ],
        ),
    ];
    for (mode, title, metrics) in &sections {
        let runs: Vec<&Value> = lines.iter().filter(|v| v["mode"] == *mode).collect();
        if runs.is_empty() {
            continue;
        }
        let ok = |l: &str| -> Vec<&Value> {
            runs.iter()
                .copied()
                .filter(|v| v["label"] == l && v.get("error").is_none())
                .collect()
        };
        let failed = |l: &str| {
            runs.iter()
                .filter(|v| v["label"] == l && v.get("error").is_some())
                .count()
        };
        let (ra, rb) = (ok(&a.a), ok(&a.b));
        println!("### {title}\n");
        if let Some(v) = runs.iter().find(|v| v.get("error").is_none()) {
            let mut params = Vec::new();
            for k in [
                "offered_rate",
                "duration_s",
                "window_per_socket",
                "sockets",
                "hold_s",
            ] {
                if let Some(x) = v.get(k) {
                    params.push(format!("{k}={x}"));
                }
            }
            if !params.is_empty() {
                println!("Parameters: {}\n", params.join(", "));
            }
        }
        println!(
            "Runs: {} {} ok, {} failed; {} {} ok, {} failed. Cells: median (min–max).\n",
            a.a,
            ra.len(),
            failed(&a.a),
            a.b,
            rb.len(),
            failed(&a.b)
        );
        println!("| metric | {} | {} | {}/{} | better |", a.a, a.b, a.a, a.b);
        println!("|---|---|---|---|---|");
        for mt in metrics {
            let vals = |rs: &[&Value]| -> Vec<f64> {
                rs.iter().filter_map(|v| v.get(mt.key)?.as_f64()).collect()
            };
            let (mut va, mut vb) = (vals(&ra), vals(&rb));
            if va.is_empty() && vb.is_empty() {
                continue;
            }
            let cell = |v: &mut Vec<f64>| -> (String, Option<f64>) {
                match median(v) {
                    None => ("–".into(), None),
                    Some(md) if v.len() == 1 => (fmt_num(md), Some(md)),
                    Some(md) => (
                        format!(
                            "{} ({}–{})",
                            fmt_num(md),
                            fmt_num(v[0]),
                            fmt_num(v[v.len() - 1])
                        ),
                        Some(md),
                    ),
                }
            };
            let (ca, ma) = cell(&mut va);
            let (cb, mb) = cell(&mut vb);
            let ratio = match (ma, mb) {
                (Some(x), Some(y)) if y != 0.0 => format!("{:.2}", x / y),
                (Some(x), Some(y)) if x == y => "=".into(),
                _ => "n/a".into(),
            };
            println!("| {} | {ca} | {cb} | {ratio} | {} |", mt.name, mt.better);
        }
        let errs: Vec<String> = runs
            .iter()
            .filter_map(|v| {
                let e = v.get("error")?;
                Some(format!(
                    "- {} round {}: {}",
                    v["label"].as_str().unwrap_or("?"),
                    v["round"],
                    e.as_str().unwrap_or("?")
                ))
            })
            .collect();
        if !errs.is_empty() {
            println!("\nFailed runs:\n{}", errs.join("\n"));
        }
        println!();
    }
    Ok(true)
}
