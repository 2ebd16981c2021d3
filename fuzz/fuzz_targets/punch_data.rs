//! The two decoders a punching end runs on datagrams from the open internet: the PUNCH
//! handshake (`core::punch::handshake`, over `wire::punch`) and the DATA frames that
//! follow it (`wire::data`, driven by `core::punch::transfer`). Both state machines get arbitrary
//! datagrams, clock steps and local data on a fixed virtual clock.
//!
//! Beyond "never panics": a DATA frame that parses re-emits to the same frame (and, except for
//! CLOSE whose sequence field is ignored, to the same bytes); handshake requests go only to the
//! peer's public IP, whatever arrives.
//!
//! Input: operations as described in `natlens_fuzz` (op, selector, length, bytes).
//! - op 0: a datagram for the transfer (DATA frames; our nonce is [`OWN_NONCE`]);
//! - op 1: a datagram for the handshake, on socket `selector % 2` from one of three sources;
//! - op 2: the clock advances `selector * 20 ms`, then timers run;
//! - op 3: local data to send (`selector` odd: then end the stream).
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use natlens::core::punch::handshake::Handshake;
use natlens::core::punch::plan::{make_plan, PlanInput, PunchOptions};
use natlens::core::punch::Role;
use natlens::core::Transport;
use natlens::wire::data::{Body, Frame, FrameRepr};
use natlens::wire::natlens::NatFacts;
use natlens_fuzz::Ops;
use rand::rngs::SmallRng;
use rand::SeedableRng;

/// Our nonce in the transfer (what a DATA frame for us carries); seeds use it.
const OWN_NONCE: u64 = 0x0102_0304_0506_0708;
const PEER_NONCE: u64 = 0x1112_1314_1516_1718;
const CALL_ID: u64 = 77;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn check_frame(bytes: &[u8]) {
    let Ok(view) = Frame::new_checked(bytes) else {
        return;
    };
    let _ = (
        view.kind(),
        view.nonce(),
        view.seq(),
        view.received(),
        view.payload(),
    );
    if let Ok(repr) = FrameRepr::parse(&view) {
        let mut emitted = vec![0; repr.buffer_len()];
        repr.emit(&mut Frame::new_unchecked(&mut emitted[..]));
        let again = FrameRepr::parse(&Frame::new_checked(&emitted[..]).expect("emitted"));
        assert_eq!(again, Ok(repr.clone()));
        if repr.body != Body::Close {
            assert_eq!(emitted, bytes, "DATA parse∘emit");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut now = start;
    let own = NatFacts {
        observed: Some(addr("198.51.100.1:40000")),
        ..NatFacts::default()
    };
    let peer = NatFacts {
        observed: Some(addr("198.51.100.2:41000")),
        ..NatFacts::default()
    };
    let plan = make_plan(&PlanInput {
        role: Role::Caller,
        transport: Transport::Udp,
        call_id: CALL_ID,
        own: &own,
        peer: &peer,
        options: &PunchOptions::default(),
    });
    let mut rng = SmallRng::seed_from_u64(5);
    let mut handshake = Handshake::new(&plan, start, &mut rng);
    let mut transfer = natlens::core::punch::transfer::Transfer::new(OWN_NONCE, PEER_NONCE, start);
    let sources = [
        addr("198.51.100.2:41000"),
        addr("198.51.100.2:41001"),
        addr("203.0.113.5:9"),
    ];
    for op in Ops::new(data) {
        match op.code % 4 {
            0 => {
                check_frame(op.bytes);
                transfer.handle_input(now, op.bytes);
            }
            1 => {
                let from = sources[usize::from(op.selector / 2) % sources.len()];
                handshake.handle_input(now, usize::from(op.selector % 2), from, op.bytes);
            }
            2 => {
                now += Duration::from_millis(20) * u32::from(op.selector);
                handshake.handle_timeout(now);
                transfer.handle_timeout(now);
            }
            _ => {
                if transfer.wants_input() && !op.bytes.is_empty() {
                    transfer.push(op.bytes);
                }
                if op.selector % 2 == 1 {
                    transfer.finish();
                }
            }
        }
        while let Some(transmit) = handshake.poll_transmit() {
            // Whatever arrives, PUNCH requests go only to the peer's public IP as the server
            // saw it.
            assert_eq!(Some(transmit.to.ip()), plan.peer.map(|p| p.ip()));
        }
        while handshake.poll_event().is_some() {}
        let mut sent = 0;
        while let Some(frame) = transfer.poll_transmit(now) {
            check_frame(&frame);
            sent += 1;
            assert!(sent < 100_000, "transfer transmits forever");
        }
        while transfer.poll_delivered().is_some() {}
        let _ = (
            handshake.dropped(),
            transfer.stats(),
            transfer.is_finished(),
        );
    }
});
