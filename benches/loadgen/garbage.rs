//! `udp-garbage` mode: valid Binding requests mixed with malformed datagrams at a fixed rate.
//!
//! A fraction `--garbage-ratio` of the datagrams is garbage, cycling through the malformed kinds
//! below (truncated STUN, empty, random bytes, bad length fields, attribute past the end, a
//! response, RTP-looking, bad FINGERPRINT, oversized, LOGIN without the magic cookie); the rest
//! are Binding requests, each with its own transaction ID (the sequence number in bytes 0..8, a
//! per-run tag in 8..12), so every valid request is counted as answered or lost without
//! retransmission. Answers to garbage are counted separately (there must be none).
//!
//! With `--server-pid`, the server's VmRSS is sampled every `--sample-interval` seconds: the
//! first sample after `--warmup` seconds of load is the baseline, and the line reports it, the
//! last and the largest. The line also gives the garbage sent per drop reason the server should
//! count, for a comparison with its stats line.

use std::collections::BTreeMap;
use std::net::UdpSocket;

use natlens::wire::attr::AttrType;
use natlens::wire::{MessageBuilder, TransactionId};

use super::*;

#[derive(Debug, Args)]
pub(crate) struct UdpGarbageArgs {
    #[command(flatten)]
    common: Common,
    /// Datagrams per second, valid and garbage together.
    #[arg(long)]
    rate: u64,
    /// Sending time, seconds.
    #[arg(long)]
    duration: f64,
    /// Fraction of the datagrams that are garbage (0 to 1).
    #[arg(long, default_value_t = 0.5)]
    garbage_ratio: f64,
    /// Connected UDP sockets the datagrams are spread over.
    #[arg(long, default_value_t = 4)]
    sockets: usize,
    /// After sending stops, wait this long for answers; unanswered requests are lost.
    #[arg(long, default_value_t = 1.0)]
    grace: f64,
    /// Seconds of load before the RSS baseline sample.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// RSS sampling interval, seconds.
    #[arg(long, default_value_t = 0.25)]
    sample_interval: f64,
}

/// The malformed kinds and the drop reason `natlens server` counts for each.
const KINDS: [(&str, &str); 11] = [
    ("truncated", "too-short"),
    ("empty", "too-short"),
    ("random", "not-stun"),
    ("wrong-length", "length-mismatch"),
    ("unaligned", "unaligned-length"),
    ("past-end", "truncated-attribute"),
    ("response", "not-request"),
    ("rtp", "not-stun"),
    ("bad-fingerprint", "bad-fingerprint"),
    ("oversized", "length-mismatch"),
    ("no-cookie-login", "legacy-non-binding"),
];

/// One malformed datagram of kind `kind`; `tid` keeps them apart, `noise` varies the random one.
fn garbage(kind: usize, tid: [u8; 12], noise: u64) -> Vec<u8> {
    let valid = binding(tid);
    let build = |ty: MessageType, f: &dyn Fn(&mut MessageBuilder<'_>)| {
        let mut buf = Vec::new();
        let mut builder = MessageBuilder::new(&mut buf, ty, TransactionId(tid));
        f(&mut builder);
        buf
    };
    match kind {
        0 => valid[..13].to_vec(),
        1 => Vec::new(),
        2 => {
            let mut x = noise | 1;
            let len = 20 + (noise % 180) as usize;
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            bytes[0] |= 0xC0; // the top two bits of STUN are zero (RFC 8489 section 5)
            bytes
        }
        3 => {
            let mut bytes = valid;
            bytes[3] = 8; // claims 8 bytes of attributes that are not there
            bytes
        }
        4 => {
            let mut bytes = valid;
            bytes[3] = 2;
            bytes
        }
        5 => {
            let mut bytes = valid;
            bytes[3] = 8;
            bytes.extend_from_slice(&[0x80, 0x22, 0x00, 0x40, b'x', b'y', b'z', b'!']);
            bytes
        }
        6 => build(
            MessageType::new(Method::BINDING, Class::Success),
            &|b: &mut MessageBuilder<'_>| {
                b.xor_address(
                    AttrType::XOR_MAPPED_ADDRESS,
                    &"192.0.2.66:1".parse().unwrap(),
                );
            },
        ),
        7 => vec![0x80; 172],
        8 => {
            let mut bytes = build(
                MessageType::new(Method::BINDING, Class::Request),
                &|b: &mut MessageBuilder<'_>| {
                    b.attribute(AttrType::SOFTWARE, b"evil");
                    b.fingerprint();
                },
            );
            let last = bytes.len() - 1;
            bytes[last] ^= 0xFF;
            bytes
        }
        9 => vec![0; 4000],
        _ => {
            let mut bytes = request(LOGIN_REQUEST, &tid, Some("mallory"));
            bytes[4..8].copy_from_slice(&[1, 2, 3, 4]); // RFC 3489 framing has no LOGIN
            bytes
        }
    }
}

/// Most datagrams sent between two rounds of reading the answers.
const BURST: u64 = 128;

/// Raises the receive buffer past `net.core.rmem_max` when allowed (root); the plain setting
/// stays otherwise.
fn force_rcvbuf(socket: &Socket, bytes: libc::c_int) {
    // SAFETY: a valid descriptor and a pointer to a c_int of the stated size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn binding(tid: [u8; 12]) -> Vec<u8> {
    header(BINDING_REQUEST, 0, &tid).to_vec()
}

/// A valid request's transaction ID: sequence number and the run's tag.
fn valid_tid(seq: u64, tag: u32) -> [u8; 12] {
    let mut tid = [0u8; 12];
    tid[..8].copy_from_slice(&seq.to_be_bytes());
    tid[8..].copy_from_slice(&tag.to_be_bytes());
    tid
}

#[derive(Default)]
struct Tally {
    answered: u64,
    duplicates: u64,
    answers_to_garbage: u64,
    error_answers: u64,
    strays: u64,
}

/// Reads every datagram waiting on `socket` and books it.
fn receive(socket: &UdpSocket, tag: u32, answered: &mut [bool], tally: &mut Tally) {
    let mut buf = [0u8; RECV_BUF];
    while let Ok(len) = socket.recv(&mut buf) {
        let Some(h) = parse_header(&buf[..len]) else {
            tally.strays += 1;
            continue;
        };
        let seq = u64::from_be_bytes(h.txid[..8].try_into().unwrap());
        let their_tag = u32::from_be_bytes(h.txid[8..].try_into().unwrap());
        if their_tag == !tag {
            tally.answers_to_garbage += 1;
        } else if their_tag != tag || seq as usize >= answered.len() {
            tally.strays += 1;
        } else if h.typ != BINDING_SUCCESS {
            tally.error_answers += 1;
        } else if std::mem::replace(&mut answered[seq as usize], true) {
            tally.duplicates += 1;
        } else {
            tally.answered += 1;
        }
    }
}

pub(crate) fn udp_garbage(a: &UdpGarbageArgs) -> Result<bool> {
    check_target(a.common.target)?;
    check_seconds("duration", a.duration)?;
    check_seconds("grace", a.grace)?;
    if !(0.0..=1.0).contains(&a.garbage_ratio) {
        bail!("--garbage-ratio must be between 0 and 1");
    }
    if a.sockets == 0 || a.sockets > 1024 || a.rate == 0 || a.rate > 2_000_000 {
        bail!("--sockets must be 1..=1024 and --rate 1..=2000000");
    }
    let any: SocketAddr = match a.common.target {
        SocketAddr::V4(_) => (Ipv4Addr::LOCALHOST, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::LOCALHOST, 0).into(),
    };
    let sockets: Vec<UdpSocket> = (0..a.sockets)
        .map(|_| -> Result<UdpSocket> {
            let s = Socket::new(
                Domain::for_address(a.common.target),
                Type::DGRAM,
                Some(Protocol::UDP),
            )?;
            s.set_recv_buffer_size(4 << 20)?;
            force_rcvbuf(&s, 32 << 20);
            s.set_send_buffer_size(4 << 20)?;
            s.bind(&any.into())?;
            s.connect(&a.common.target.into())?;
            s.set_nonblocking(true)?;
            Ok(s.into())
        })
        .collect::<Result<_>>()?;
    let ports: Vec<u16> = sockets
        .iter()
        .map(|s| s.local_addr().map(|l| l.port()))
        .collect::<io::Result<_>>()?;
    let tag = getrandom_u64() as u32;
    let total = (a.rate as f64 * a.duration) as u64;
    // Deterministic mix: datagram i is garbage when the running garbage count lags the ratio.
    let valid_planned = total - (total as f64 * a.garbage_ratio).round() as u64;
    let mut answered = vec![false; valid_planned as usize + 1];
    let mut tally = Tally::default();
    let mut per_kind = [0u64; KINDS.len()];
    let (mut valid_sent, mut garbage_sent, mut send_blocked) = (0u64, 0u64, 0u64);
    let mut rss: Vec<(f64, u64)> = Vec::new();
    let rcvbuf_before = udp_rcvbuf_errors();
    let start = Instant::now();
    let mut next_sample = start;
    let mut sent = 0u64;
    // Built once: sending, not building, is what the generator's CPU must go to. Each
    // datagram gets its own transaction ID patched in where the kind has one (bytes 8..20 of a
    // STUN header); 64 variants of the random kind.
    let mut noise = getrandom_u64();
    let templates: Vec<Vec<Vec<u8>>> = (0..KINDS.len())
        .map(|kind| {
            let variants = if kind == 2 { 64 } else { 1 };
            (0..variants)
                .map(|_| {
                    noise = noise.wrapping_mul(6364136223846793005).wrapping_add(1);
                    garbage(kind, valid_tid(0, !tag), noise >> 7)
                })
                .collect()
        })
        .collect();
    // Kinds whose bytes 8..20 are a transaction ID (not the short, empty, random and RTP ones).
    let has_tid = |kind: usize| !matches!(kind, 0..=2 | 7);
    let mut valid = binding(valid_tid(0, tag));
    let mut scratch = Vec::with_capacity(4096);
    while sent < total {
        let now = Instant::now();
        let elapsed = now.duration_since(start).as_secs_f64();
        // At most BURST sends between two reads, so answers never pile up past the socket
        // buffers while the generator catches up with its schedule.
        let due = ((elapsed * a.rate as f64) as u64 + 1)
            .min(total)
            .min(sent + BURST);
        while sent < due {
            let is_garbage = (garbage_sent as f64) < (sent + 1) as f64 * a.garbage_ratio - 0.5;
            let socket = &sockets[(sent % sockets.len() as u64) as usize];
            let (bytes, kind): (&[u8], _) = if is_garbage {
                let kind = (garbage_sent % KINDS.len() as u64) as usize;
                let variants = &templates[kind];
                let template =
                    &variants[(garbage_sent / KINDS.len() as u64) as usize % variants.len()];
                if has_tid(kind) {
                    scratch.clear();
                    scratch.extend_from_slice(template);
                    scratch[8..20].copy_from_slice(&valid_tid(garbage_sent, !tag));
                    (&scratch, Some(kind))
                } else {
                    (template, Some(kind))
                }
            } else {
                valid[8..20].copy_from_slice(&valid_tid(valid_sent, tag));
                (&valid, None)
            };
            match socket.send(bytes) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    send_blocked += 1;
                    break;
                }
                Err(e) => return Err(e).context("sending"),
            }
            match kind {
                Some(kind) => {
                    per_kind[kind] += 1;
                    garbage_sent += 1;
                }
                None => valid_sent += 1,
            }
            sent += 1;
        }
        for socket in &sockets {
            receive(socket, tag, &mut answered, &mut tally);
        }
        if let Some(pid) = a.common.server_pid.filter(|_| now >= next_sample) {
            rss.push((elapsed, sample_server(pid)?.rss_kb));
            next_sample = now + Duration::from_secs_f64(a.sample_interval);
        }
        let behind = (elapsed * a.rate as f64) as u64 > sent;
        if !behind {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let send_elapsed = start.elapsed().as_secs_f64();
    let grace_end = Instant::now() + Duration::from_secs_f64(a.grace);
    while Instant::now() < grace_end && tally.answered < valid_sent {
        for socket in &sockets {
            receive(socket, tag, &mut answered, &mut tally);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    if let Some(pid) = a.common.server_pid {
        rss.push((start.elapsed().as_secs_f64(), sample_server(pid)?.rss_kb));
    }
    let lost = valid_sent - tally.answered;
    let mut m = common_json("udp-garbage", &a.common);
    m.insert("rate".into(), json!(a.rate));
    m.insert("garbage_ratio".into(), json!(a.garbage_ratio));
    m.insert("send_seconds".into(), json!(round3(send_elapsed)));
    m.insert(
        "offered_per_sec".into(),
        json!(round3(sent as f64 / send_elapsed)),
    );
    m.insert("valid_sent".into(), json!(valid_sent));
    m.insert("valid_answered".into(), json!(tally.answered));
    m.insert("valid_lost".into(), json!(lost));
    m.insert("duplicates".into(), json!(tally.duplicates));
    m.insert("error_answers".into(), json!(tally.error_answers));
    m.insert("garbage_sent".into(), json!(garbage_sent));
    m.insert("answers_to_garbage".into(), json!(tally.answers_to_garbage));
    m.insert("strays".into(), json!(tally.strays));
    m.insert("send_blocked".into(), json!(send_blocked));
    let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_kind = Map::new();
    for ((kind, reason), count) in KINDS.iter().zip(per_kind) {
        *by_reason.entry(reason).or_default() += count;
        by_kind.insert((*kind).into(), json!(count));
    }
    m.insert("garbage_by_kind".into(), json!(by_kind));
    m.insert("expected_drops".into(), json!(by_reason));
    let gen_drops: u64 = ports.iter().map(|p| udp_socket_drops(*p)).sum();
    m.insert("gen_socket_drops".into(), json!(gen_drops));
    m.insert(
        "udp_rcvbuf_errors".into(),
        json!(udp_rcvbuf_errors().saturating_sub(rcvbuf_before)),
    );
    if !rss.is_empty() {
        let baseline = rss
            .iter()
            .find(|(t, _)| *t >= a.warmup)
            .or(rss.last())
            .map(|s| s.1)
            .unwrap_or(0);
        let first = rss[0].1;
        let last = rss.last().unwrap().1;
        let max = rss.iter().map(|s| s.1).max().unwrap_or(0);
        m.insert("rss_kb_first".into(), json!(first));
        m.insert("rss_kb_after_warmup".into(), json!(baseline));
        m.insert("rss_kb_end".into(), json!(last));
        m.insert("rss_kb_max".into(), json!(max));
        m.insert("rss_samples".into(), json!(rss.len()));
    }
    print_json(m);
    Ok(lost == 0 && tally.answers_to_garbage == 0)
}
