//! Half garbage, half valid Binding requests against a real `natlens server` on loopback, for a
//! few seconds at a moderate rate (the full-rate run is benches/garbage.sh): every valid request
//! (each with its own transaction ID, sent once) must be answered, no garbage may be, the
//! server's drop counters must equal the garbage sent reason by reason, and its memory must stay
//! flat after warm-up.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{binding_request, id_request, ServerProcess};
use natlens::wire::attr::AttrType;
use natlens::wire::natlens as nl;
use natlens::wire::stun::{Class, Message, MessageType, Method};
use natlens::wire::{MessageBuilder, TransactionId};
use serde_json::Value;

/// Datagrams per second, valid and garbage together.
const RATE: u64 = 10_000;
const DURATION: Duration = Duration::from_secs(4);
const WARMUP: Duration = Duration::from_secs(1);
/// Allowed VmRSS growth from the end of the warm-up to the end of the run.
const RSS_GROWTH_KIB: u64 = 1024;

/// One malformed datagram of kind `n % 11`, and the drop reason the server counts for it.
fn garbage(n: u64, tid: [u8; 12]) -> (Vec<u8>, &'static str) {
    let valid = binding_request(tid);
    let build = |ty: MessageType, f: &dyn Fn(&mut MessageBuilder<'_>)| {
        let mut buf = Vec::new();
        let mut builder = MessageBuilder::new(&mut buf, ty, TransactionId(tid));
        f(&mut builder);
        buf
    };
    let with_length = |len: u8, extra: &[u8]| {
        let mut bytes = valid.clone();
        bytes[3] = len;
        bytes.extend_from_slice(extra);
        bytes
    };
    match n % 11 {
        0 => (valid[..13].to_vec(), "too-short"),
        1 => (Vec::new(), "too-short"),
        2 => {
            // Random bytes with the top two bits set: not STUN (RFC 8489 section 5).
            let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut bytes: Vec<u8> = (0..20 + n % 180)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            bytes[0] |= 0xC0;
            (bytes, "not-stun")
        }
        3 => (with_length(8, &[]), "length-mismatch"),
        4 => (with_length(2, &[]), "unaligned-length"),
        5 => (
            with_length(8, &[0x80, 0x22, 0x00, 0x40, b'x', b'y', b'z', b'!']),
            "truncated-attribute",
        ),
        6 => (
            build(
                MessageType::new(Method::BINDING, Class::Success),
                &|b: &mut MessageBuilder<'_>| {
                    b.xor_address(
                        AttrType::XOR_MAPPED_ADDRESS,
                        &"192.0.2.66:1".parse().unwrap(),
                    );
                },
            ),
            "not-request",
        ),
        7 => (vec![0x80; 172], "not-stun"),
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
            (bytes, "bad-fingerprint")
        }
        9 => (vec![0; 4000], "length-mismatch"),
        _ => {
            let mut bytes = id_request(nl::LOGIN, "mallory", tid);
            bytes[4..8].copy_from_slice(&[1, 2, 3, 4]); // RFC 3489 framing has no LOGIN
            (bytes, "legacy-non-binding")
        }
    }
}

fn tid(seq: u64, tag: u32) -> [u8; 12] {
    let mut tid = [0u8; 12];
    tid[..8].copy_from_slice(&seq.to_be_bytes());
    tid[8..].copy_from_slice(&tag.to_be_bytes());
    tid
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// The server's drop counters, from a stats line (SIGUSR1).
fn drops(server: &ServerProcess) -> BTreeMap<String, u64> {
    let stats: Value = serde_json::from_str(&server.stats()).expect("a JSON stats line");
    stats["counters"]["drops"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

#[test]
fn half_garbage_at_a_steady_rate_loses_no_valid_request_and_no_memory() {
    const VALID: u32 = 0x5EED_0001;
    const JUNK: u32 = 0xBAD0_0002;
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0", "--json"]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(server.addr()).unwrap();
    socket.set_nonblocking(true).unwrap();
    let drops_before = drops(&server);

    let mut outstanding = HashSet::new();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let (mut valid_sent, mut garbage_sent) = (0u64, 0u64);
    let mut answers_to_garbage = 0u64;
    let mut strays = 0u64;
    let mut buf = [0u8; 2048];
    let mut receive = |outstanding: &mut HashSet<[u8; 12]>| {
        while let Ok(len) = socket.recv(&mut buf) {
            let Ok(message) = Message::parse(&buf[..len]) else {
                strays += 1;
                continue;
            };
            let tid = message.transaction_id().0;
            if tid[8..] == JUNK.to_be_bytes() {
                answers_to_garbage += 1;
            } else if message.class() != Class::Success || !outstanding.remove(&tid) {
                strays += 1;
            }
        }
    };
    let total = RATE * DURATION.as_secs();
    let start = Instant::now();
    let mut rss_warm = None;
    let mut sent = 0u64;
    while sent < total {
        let due = ((start.elapsed().as_secs_f64() * RATE as f64) as u64 + 1)
            .min(total)
            .min(sent + 64);
        while sent < due {
            // Alternate: even datagrams valid, odd ones garbage.
            let bytes = if sent % 2 == 0 {
                let id = tid(valid_sent, VALID);
                outstanding.insert(id);
                valid_sent += 1;
                binding_request(id)
            } else {
                let (bytes, reason) = garbage(garbage_sent, tid(garbage_sent, JUNK));
                *expected.entry(reason.to_owned()).or_default() += 1;
                garbage_sent += 1;
                bytes
            };
            socket.send(&bytes).expect("sending on loopback");
            sent += 1;
        }
        receive(&mut outstanding);
        if rss_warm.is_none() && start.elapsed() >= WARMUP {
            rss_warm = Some(rss_kib(server.pid()));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let grace = Instant::now() + Duration::from_secs(2);
    while !outstanding.is_empty() && Instant::now() < grace {
        receive(&mut outstanding);
        std::thread::sleep(Duration::from_millis(5));
    }
    let rss_end = rss_kib(server.pid());
    let rss_warm = rss_warm.unwrap();
    let drops_after = drops(&server);
    let counted: BTreeMap<String, u64> = drops_after
        .iter()
        .map(|(k, v)| (k.clone(), v - drops_before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect();
    eprintln!(
        "{sent} datagrams in {:.1?} ({garbage_sent} garbage): {} of {valid_sent} valid \
         unanswered, {answers_to_garbage} answers to garbage, {strays} strays; server RSS {rss_warm} \
         KiB after warm-up, {rss_end} KiB at the end; drops counted {counted:?}",
        start.elapsed(),
        outstanding.len()
    );
    assert!(
        outstanding.is_empty(),
        "{} of {valid_sent} valid requests unanswered",
        outstanding.len()
    );
    assert_eq!(answers_to_garbage, 0, "garbage was answered");
    assert_eq!(strays, 0, "answers that match no request");
    assert_eq!(counted, expected, "drop counters against the garbage sent");
    assert_eq!(counted.values().sum::<u64>(), garbage_sent);
    assert!(
        rss_end <= rss_warm + RSS_GROWTH_KIB,
        "server RSS grew from {rss_warm} KiB to {rss_end} KiB"
    );
}
