//! Why natlens has its own STUN codec: the Binding answer path (parse a request, build the
//! answer with XOR-MAPPED-ADDRESS, MAPPED-ADDRESS, SOFTWARE and FINGERPRINT) timed against the
//! same work (less MAPPED-ADDRESS, which it lacks) done with `stun-types`, a fuzzed and
//! benchmarked STUN crate. The natlens side is the server's own path: the checked view
//! (`Message::parse`) and the streaming builder, with no allocation per request.
//!
//! Run: `cargo bench --bench codec` (prints one JSON line per codec and a ratio). Recorded
//! results: `benches/results/codec.md`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use natlens::core::binding::{self, Received};
use natlens::core::Transport;
use natlens::wire::attr::AttrType;
use natlens::wire::stun::{Class, Message, MessageType, Method};
use natlens::wire::{MessageBuilder, TransactionId};

const ITERATIONS: u32 = 1_000_000;
const ROUNDS: usize = 7;

/// A typical client request: SOFTWARE and FINGERPRINT, as coturn's and libjuice's clients send.
fn request() -> Vec<u8> {
    let mut buf = Vec::new();
    let ty = MessageType::new(Method::BINDING, Class::Request);
    let mut builder = MessageBuilder::new(&mut buf, ty, TransactionId([0x5A; 12]));
    builder.attribute(AttrType::SOFTWARE, b"bench client");
    builder.fingerprint();
    buf
}

fn natlens_answer(request: &[u8], rx: Received, out: &mut Vec<u8>) -> usize {
    let message = Message::parse(request).expect("valid");
    match binding::answer(&message, rx, None, out) {
        binding::Outcome::Reply { .. } => out.len(),
        binding::Outcome::Drop(_) => 0,
    }
}

fn stun_types_answer(request: &[u8], remote: SocketAddr) -> usize {
    use stun_types::attribute::{Fingerprint, Software, XorMappedAddress};
    use stun_types::message::{Message, MessageWriteVec};
    use stun_types::prelude::*;
    let message = Message::from_bytes(request).expect("valid");
    let mut reply = Message::builder_success(&message, MessageWriteVec::new());
    let xor = XorMappedAddress::new(remote, message.transaction_id());
    reply.add_attribute(&xor).unwrap();
    // stun-types has no MAPPED-ADDRESS type; natlens writes one more attribute than this.
    reply
        .add_attribute(&Software::new("natlens 0.1.0").unwrap())
        .unwrap();
    if message.has_attribute(Fingerprint::TYPE) {
        reply.add_fingerprint().unwrap();
    }
    reply.finish().len()
}

/// Best per-operation time over several rounds: the minimum is the least noisy estimate of
/// what the code costs on this machine.
fn time(mut op: impl FnMut() -> usize) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let mut sink = 0;
        for _ in 0..ITERATIONS {
            sink += op();
        }
        black_box(sink);
        best = best.min(start.elapsed() / ITERATIONS);
    }
    best
}

fn main() {
    let request = request();
    let remote: SocketAddr = "198.51.100.7:40000".parse().unwrap();
    let rx = Received {
        transport: Transport::Udp,
        local: "192.0.2.1:3478".parse().unwrap(),
        remote,
    };
    let mut out = Vec::with_capacity(256);
    let natlens = time(|| natlens_answer(black_box(&request), rx, &mut out));
    let stun_types = time(|| stun_types_answer(black_box(&request), remote));
    println!(
        "{{\"codec\":\"natlens\",\"ns_per_answer\":{}}}",
        natlens.as_nanos()
    );
    println!(
        "{{\"codec\":\"stun-types 2\",\"ns_per_answer\":{}}}",
        stun_types.as_nanos()
    );
    println!(
        "stun-types / natlens = {:.2}",
        stun_types.as_secs_f64() / natlens.as_secs_f64()
    );
}
