//! The location server fed hostile traffic: arbitrary datagrams on every socket of a full-mode
//! (RFC 5780) address set and of a plain one, arbitrary byte streams on TCP connections cut into
//! frames the way the shell cuts them, clock steps, closed connections and federation links —
//! on a fixed virtual clock, so every crash reproduces.
//!
//! The property is "never crashes the server", plus: every UDP answer and every message the core
//! asks the shell to send is a well-formed STUN message no larger than the shell's buffer; a
//! PROBE-MAPPING probe goes only to the IP of a client that sent something, from one of the
//! server's own addresses; a crafted SYN (TCP filtering test, mode bit 2) goes only to a client
//! and, with mode bit 4, is answered. The builder seeds (`examples/seed_builders.rs`) reach both:
//! PROBE-MAPPING over UDP and TCP, and TCP Binding requests with CHANGE-REQUEST and NL-SYN-WAIT.
//!
//! Input: one byte choosing an open (even) or keyed (odd) server, then operations as described
//! in `natlens_fuzz` (op, selector, length, bytes).
//! - op 0: datagram from remote `selector % 4` to local socket `selector / 4 % 5`;
//! - op 1: stream bytes on connection `selector % 3` (framed with `next_frame`, cut at
//!   `--max-message`'s default; a foreign or oversized frame closes the connection);
//! - op 2: the clock advances `selector * 250 ms`, then timers run;
//! - op 3: connection `selector % 3` closes;
//! - op 4: connection `selector % 3` becomes an outbound federation link.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use natlens::core::binding::FullMode;
use natlens::core::credentials::Credentials;
use natlens::core::events::Command;
use natlens::core::registry::Route;
use natlens::core::server::{ServerConfig, ServerCore};
use natlens::wire::framing::{next_frame, Frame};
use natlens::wire::natlens::PROBE_MAPPING;
use natlens::wire::Message;
use natlens_fuzz::Ops;

/// The shell's default `--max-message`.
const MAX_MESSAGE: usize = 2048;
const CONNS: usize = 3;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn check_sent(bytes: &[u8]) {
    assert!(bytes.len() <= 65_535 + 20);
    Message::parse(bytes).expect("the server only sends well-formed STUN");
}

fuzz_target!(|data: &[u8]| {
    let full = FullMode {
        primary: addr("192.0.2.1:3478"),
        alternate: addr("192.0.2.2:3479"),
    };
    let mut locals = full.addresses().to_vec();
    locals.push(addr("[2001:db8::1]:3478"));
    let remotes = [
        addr("198.51.100.7:40001"),
        addr("203.0.113.9:51000"),
        addr("[2001:db8::7]:40001"),
        addr("198.51.100.7:40002"),
    ];
    // The first byte picks an open or a keyed server (credentials, nonces, replay guard), so
    // both login paths meet hostile bytes; the budgets are small so the caps and the answer
    // bucket bite within a short input.
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let mut config = ServerConfig::new("fuzz");
    config.max_sessions = 8;
    config.max_sessions_per_ip = 3;
    config.max_pending_calls = 4;
    config.full_modes = vec![full];
    config.nonce_secret = [7; 32];
    config.answer_rate = Some(20);
    if mode & 1 == 1 {
        config.credentials = Some(Credentials::from_pairs([
            ("alice", "alice-key"),
            ("bob", "bob-key"),
        ]));
    }
    let start = Instant::now();
    let mut now = start;
    let mut core = ServerCore::new(config, now, 1);
    if mode & 2 == 2 {
        core.enable_syn_tests();
    }
    let mut buffers: [Vec<u8>; CONNS] = Default::default();
    let mut reply = Vec::new();
    for op in Ops::new(data) {
        let conn = usize::from(op.selector) % CONNS;
        match op.code % 5 {
            0 => {
                let remote = remotes[usize::from(op.selector) % remotes.len()];
                let local = locals[usize::from(op.selector / 4) % locals.len()];
                reply.clear();
                if core
                    .handle_udp(now, local, remote, op.bytes, &mut reply)
                    .is_some()
                {
                    check_sent(&reply);
                }
            }
            1 => {
                let buffer = &mut buffers[conn];
                buffer.extend_from_slice(op.bytes);
                loop {
                    match next_frame(buffer, MAX_MESSAGE) {
                        Frame::Complete(len) => {
                            let frame: Vec<u8> = buffer.drain(..len).collect();
                            reply.clear();
                            let local = locals[0];
                            let remote = remotes[conn];
                            if core.handle_tcp(now, conn as u64, local, remote, &frame, &mut reply)
                            {
                                check_sent(&reply);
                            }
                        }
                        Frame::Partial => break,
                        Frame::TooLarge(_) | Frame::NotStun => {
                            buffer.clear();
                            core.tcp_closed(conn as u64);
                            break;
                        }
                    }
                }
            }
            2 => {
                now += Duration::from_millis(250) * u32::from(op.selector);
                if now >= core.poll_timeout() {
                    core.handle_timeout(now);
                }
            }
            3 => {
                buffers[conn].clear();
                core.tcp_closed(conn as u64);
            }
            _ => core.link_connected(now, conn as u64),
        }
        while let Some(command) = core.poll_command() {
            if let Command::Send { bytes, route } = command {
                check_sent(&bytes);
                let probe = Message::parse(&bytes).is_ok_and(|m| m.method() == PROBE_MAPPING);
                if let (true, Route::Udp { local, remote }) = (probe, route) {
                    assert!(
                        remotes.iter().any(|r| r.ip() == remote.ip()),
                        "a mapping probe to {remote}"
                    );
                    assert!(locals.contains(&local), "a mapping probe from {local}");
                }
            }
        }
        // A crafted SYN goes only to a requester, and may be answered.
        while let Some(order) = core.poll_syn() {
            assert!(remotes.contains(&order.to), "a SYN to {}", order.to);
            if mode & 4 == 4 {
                core.handle_syn_reply(now, order.to, order.from.port(), order.isn.wrapping_add(1));
            }
        }
        while core.poll_event().is_some() {}
        let _ = (core.counters(), core.session_counts(), core.link_names());
    }
    assert!(now.duration_since(start) <= Duration::from_secs(64 * 1024));
});
