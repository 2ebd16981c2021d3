//! What the per-source answer token bucket (`natlens server --answer-rate`) costs on the Binding
//! hot path: `ServerCore::handle_udp` for one Binding request, with the bucket off and on (at a
//! rate it never reaches, so every request is answered), from 1 and from 1,000 source IPs.
//!
//! Run: `cargo bench --bench answer_limit`. Recorded results: `benches/results/answer-limit.md`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use natlens::core::server::{ServerConfig, ServerCore};
use natlens::wire::attr::AttrType;
use natlens::wire::stun::{Class, MessageType, Method};
use natlens::wire::{MessageBuilder, TransactionId};

const ITERATIONS: u32 = 1_000_000;
const ROUNDS: usize = 7;

fn request() -> Vec<u8> {
    let mut buf = Vec::new();
    let ty = MessageType::new(Method::BINDING, Class::Request);
    let mut builder = MessageBuilder::new(&mut buf, ty, TransactionId([0x5A; 12]));
    builder.attribute(AttrType::SOFTWARE, b"bench client");
    builder.fingerprint();
    buf
}

/// Best per-request time over several rounds, `sources` distinct client IPs in turn.
fn time(answer_rate: Option<u32>, sources: u32) -> Duration {
    let start = Instant::now();
    let config = ServerConfig {
        answer_rate,
        ..ServerConfig::new("bench")
    };
    let mut core = ServerCore::new(config, start, 1);
    let local: SocketAddr = "192.0.2.1:3478".parse().unwrap();
    let remotes: Vec<SocketAddr> = (0..sources)
        .map(|i| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0xC633_6400 + i)), 40000))
        .collect();
    let request = request();
    let mut reply = Vec::with_capacity(256);
    let mut best = Duration::MAX;
    let mut now = start;
    for _ in 0..ROUNDS {
        let began = Instant::now();
        let mut answered = 0u32;
        for i in 0..ITERATIONS {
            // Virtual time runs at 1 us per request, like a 1M req/s load.
            now += Duration::from_micros(1);
            let remote = remotes[(i % sources) as usize];
            if core
                .handle_udp(now, local, remote, black_box(&request), &mut reply)
                .is_some()
            {
                answered += 1;
            }
        }
        assert_eq!(
            answered, ITERATIONS,
            "the bucket must not bite in this benchmark"
        );
        best = best.min(began.elapsed() / ITERATIONS);
        while core.poll_event().is_some() {}
    }
    best
}

fn main() {
    for sources in [1, 1000] {
        let off = time(None, sources);
        let on = time(Some(100_000_000), sources);
        println!(
            "{{\"sources\":{sources},\"ns_per_request_off\":{},\"ns_per_request_on\":{},\"added_ns\":{}}}",
            off.as_nanos(),
            on.as_nanos(),
            on.as_nanos() as i128 - off.as_nanos() as i128
        );
    }
}
