//! Writes the seeds that loopback captures cannot give (see `seed.sh`): crafted TCP segments as
//! `wire::tcp_syn`'s builder writes them (IPv4 and IPv6), and punch-path inputs that reach deep
//! states of the `punch_data` target (a real handshake with the target's own plan and nonces,
//! then DATA frames carrying the target's nonce).
//!
//!   cargo run --example seed_builders -- fuzz/corpus

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use natlens::core::punch::handshake::Handshake;
use natlens::core::punch::plan::{make_plan, PlanInput, PunchOptions};
use natlens::core::punch::Role;
use natlens::core::Transport;
use natlens::wire::data::{Body, Frame, FrameRepr};
use natlens::wire::natlens::NatFacts;
use natlens::wire::attr::{AttrType, ChangeRequest};
use natlens::wire::natlens::{PROBE_MAPPING, PROBE_NONCE, PROBE_PORT, SYN_WAIT};
use natlens::wire::stun::{Class, Method, MessageType, TransactionId};
use natlens::wire::tcp_syn::SegmentRepr;
use natlens::wire::MessageBuilder;
use rand::rngs::SmallRng;
use rand::SeedableRng;

/// Must match `fuzz_targets/punch_data.rs`.
const OWN_NONCE: u64 = 0x0102_0304_0506_0708;
const CALL_ID: u64 = 77;
const A: &str = "198.51.100.1:40000";
const B: &str = "198.51.100.2:41000";

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn op(code: u8, selector: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![code, selector];
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn handshake(role: Role, rng: &mut SmallRng, t: Instant) -> Handshake {
    let (a, b) = (
        NatFacts {
            observed: Some(addr(A)),
            ..NatFacts::default()
        },
        NatFacts {
            observed: Some(addr(B)),
            ..NatFacts::default()
        },
    );
    let (own, peer) = match role {
        Role::Caller => (&a, &b),
        Role::Callee => (&b, &a),
    };
    let plan = make_plan(&PlanInput {
        role,
        transport: Transport::Udp,
        call_id: CALL_ID,
        own,
        peer,
        options: &PunchOptions::default(),
    });
    Handshake::new(&plan, t, rng)
}

fn main() {
    let root = std::env::args()
        .nth(1)
        .expect("usage: seed_builders CORPUS_DIR");
    let root = Path::new(&root);

    let syn_dir = root.join("tcp_syn");
    let v4 = (addr("192.0.2.10:40000"), addr("203.0.113.2:50000"));
    let v6 = (addr("[2001:db8::a]:40000"), addr("[2001:db8:1::2]:50000"));
    for (family, (src, dst)) in [("v4", v4), ("v6", v6)] {
        let syn = SegmentRepr::syn(src, dst, 2, 0x1234_5678, 99);
        write(
            &syn_dir,
            &format!("builder-syn-{family}"),
            &syn.to_bytes().unwrap(),
        );
        let mut synack = SegmentRepr::syn(dst, src, 64, 0x0abc_def0, 7);
        synack.flags |= 0x10;
        synack.ack = 0x1234_5679;
        write(
            &syn_dir,
            &format!("builder-synack-{family}"),
            &synack.to_bytes().unwrap(),
        );
        let mut rst = syn;
        rst.flags = 0x04;
        write(
            &syn_dir,
            &format!("builder-rst-{family}"),
            &rst.to_bytes().unwrap(),
        );
    }

    // The target's caller handshake (same plan, same rng seed) and a callee that answers it.
    let t = Instant::now();
    let mut rng = SmallRng::seed_from_u64(5);
    let mut caller = handshake(Role::Caller, &mut rng, t);
    let mut callee = handshake(Role::Callee, &mut SmallRng::seed_from_u64(9), t);
    caller.handle_timeout(t);
    let request = caller.poll_transmit().expect("a first request");
    callee.handle_input(t, 0, addr(A), &request.bytes);
    let echo = callee.poll_transmit().expect("an echo");
    let mut seed = op(2, 0, &[]);
    seed.extend(op(1, 0, &echo.bytes));
    seed.extend(op(2, 5, &[]));
    let punch_dir = root.join("punch_data");
    write(&punch_dir, "builder-handshake", &seed);

    let frames = [
        Body::Data {
            seq: 0,
            payload: b"hello from bob\n".to_vec(),
        },
        Body::Data {
            seq: 2,
            payload: vec![0x55; 300],
        },
        Body::Data {
            seq: 1,
            payload: b"out of order".to_vec(),
        },
        Body::Fin { seq: 3 },
        Body::Ack {
            next: 0,
            received: 0b1,
        },
        Body::Close,
    ];
    let mut seed = op(3, 0, b"hello from alice\n");
    for body in frames {
        let repr = FrameRepr {
            nonce: OWN_NONCE,
            body,
        };
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut Frame::new_unchecked(&mut bytes[..]));
        seed.extend(op(0, 0, &bytes));
        seed.extend(op(2, 3, &[]));
    }
    seed.extend(op(3, 1, &[]));
    seed.extend(op(2, 50, &[]));
    write(&punch_dir, "builder-data", &seed);
    server_core_seeds(&root.join("server_core"));
    println!("seeds written under {}", root.display());
}

/// A request of `method` with `attributes` and FINGERPRINT.
fn request(method: Method, tid: u8, attributes: &[(AttrType, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let ty = MessageType::new(method, Class::Request);
    let mut builder = MessageBuilder::new(&mut out, ty, TransactionId([tid; 12]));
    for (kind, value) in attributes {
        builder.attribute(*kind, value);
    }
    builder.fingerprint();
    out
}

/// `server_core` inputs (first byte: the mode; see the target): PROBE-MAPPING over UDP and TCP,
/// and the TCP filtering test's two requests on one connection with SYN tests on and answered
/// (mode 6) or left unanswered until the wait runs out (mode 2).
fn server_core_seeds(dir: &Path) {
    let probe = request(
        PROBE_MAPPING,
        1,
        &[
            (PROBE_PORT, vec![0x9c, 0x40, 0, 0]),
            (PROBE_NONCE, vec![7; 8]),
        ],
    );
    let mut seed = vec![0];
    seed.extend(op(0, 0, &probe));
    seed.extend(op(0, 5, &probe));
    seed.extend(op(1, 1, &probe));
    write(dir, "builder-probe-mapping", &seed);
    for mode in [2u8, 6] {
        let mut seed = vec![mode];
        for (i, change) in [(true, true), (false, true)].into_iter().enumerate() {
            let change = ChangeRequest {
                change_ip: change.0,
                change_port: change.1,
            };
            let syn_test = request(
                Method::BINDING,
                10 + i as u8,
                &[
                    (AttrType::CHANGE_REQUEST, change.encode().to_vec()),
                    (SYN_WAIT, 100u32.to_be_bytes().to_vec()),
                ],
            );
            seed.extend(op(1, 0, &syn_test));
        }
        seed.extend(op(2, 1, &[]));
        write(dir, &format!("builder-syn-test-mode{mode}"), &seed);
    }
}
