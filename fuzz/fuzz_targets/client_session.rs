//! The client session (`core::client`) fed whatever a server, or someone spoofing one, sends:
//! arbitrary messages (datagrams, or frames cut from the TCP stream), clock steps, calls,
//! logouts and lost connections, on a fixed virtual clock.
//!
//! Beyond "never panics": everything the session sends is a well-formed STUN request or
//! response with the magic cookie.
//!
//! Input: one byte (even: UDP, odd: TCP), then operations as described in `natlens_fuzz`.
//! - op 0: a message from the server;
//! - op 1: the clock advances `selector * 100 ms`, then timers run;
//! - op 2: call the ID in the bytes (`selector` sets the facts sent);
//! - op 3: log out;
//! - op 4: the connection is lost.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use natlens::core::client::{ClientConfig, ClientSession, Transport};
use natlens::wire::natlens::{NatFacts, Transports};
use natlens::wire::Message;
use natlens_fuzz::Ops;
use rand::rngs::SmallRng;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let transport = if first % 2 == 0 {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    let start = Instant::now();
    let mut now = start;
    let config = ClientConfig::new("alice", transport, Duration::from_secs(15));
    let mut session = ClientSession::new(config, now, SmallRng::seed_from_u64(7));
    session.handle_timeout(now);
    for op in Ops::new(rest) {
        match op.code % 5 {
            0 => session.handle_input(now, op.bytes),
            1 => {
                now += Duration::from_millis(100) * u32::from(op.selector);
                session.handle_timeout(now);
            }
            2 => {
                let callee = String::from_utf8_lossy(op.bytes);
                let facts = NatFacts {
                    transports: Transports {
                        udp: op.selector & 1 != 0,
                        tcp: op.selector & 2 != 0,
                    },
                    delta: (op.selector & 4 != 0).then_some(i32::from(op.selector)),
                    predicted_ports: vec![
                        40_000 + u16::from(op.selector);
                        usize::from(op.selector % 8)
                    ],
                    ..NatFacts::default()
                };
                session.call(now, &callee, &facts);
            }
            3 => session.logout(now),
            _ => session.handle_disconnect(now),
        }
        while let Some(bytes) = session.poll_transmit() {
            let message = Message::parse(&bytes).expect("the client only sends well-formed STUN");
            assert!(message.has_magic_cookie());
        }
        while session.poll_event().is_some() {}
        let _ = (session.poll_timeout(), session.observed(), session.stats());
        let _ = (session.is_logged_in(), session.is_closed());
    }
});
