//! Proving a mapping from outside, the client side of PROBE-MAPPING: ask a natlens server to
//! send one packet to the external port a gateway mapped for `socket`, and watch `socket` for it. The packet comes from an
//! address this host never sent to (the server's other IP and port in RFC 5780 full mode), so
//! only the mapping can let it in: its arrival proves the mapping from outside.
//!
//! Works whether `socket` is blocking or not: it waits with poll(2) and reads only what is
//! ready. Datagrams that are neither the answer nor the probe are ignored.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::core::server::mapping_probe::{is_probe, ProbeAsk, PROBE_NONCE_LEN};
use crate::wire::attr::{decode_error_code, AttrType};
use crate::wire::natlens::{self, error};
use crate::wire::stun::{Class, Message, MessageType};
use crate::wire::{MessageBuilder, TransactionId};

/// First retransmission of the request; doubled after each (RFC 8489 §6.2.1's schedule).
const FIRST_RETRANSMIT: Duration = Duration::from_millis(250);

/// Asks `server` (over UDP, from `socket`, the mapped socket) to send one probe to `external`'s
/// port, and waits up to `wait` for it on `socket`. The server sends to the IP it sees the
/// request come from, whatever `external`'s IP says: it never aims at another address.
/// `Some(true)`: the probe arrived; `Some(false)`: the server sent it and nothing arrived in
/// time; `None`: the server does not know PROBE-MAPPING (an older natlens or another STUN
/// server). An error when the server never answers or refuses for another reason.
pub fn ask_server_to_send(
    socket: &UdpSocket,
    server: SocketAddr,
    external: SocketAddr,
    wait: Duration,
) -> anyhow::Result<Option<bool>> {
    let timeout = wait;
    let ask = ProbeAsk {
        port: external.port(),
        nonce: rand::random::<[u8; PROBE_NONCE_LEN]>(),
    };
    let tid = TransactionId(rand::random());
    let request = request_bytes(&ask, tid);
    let start = Instant::now();
    let deadline = start + timeout;
    let mut resend_at = start;
    let mut interval = FIRST_RETRANSMIT;
    let (mut answered, mut arrived) = (false, false);
    let mut buf = [0u8; 1500];
    while !(answered && arrived) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if !answered && now >= resend_at {
            socket
                .send_to(&request, server)
                .with_context(|| format!("sending PROBE-MAPPING to {server}"))?;
            resend_at = now + interval;
            interval *= 2;
        }
        let wake = if answered {
            deadline
        } else {
            resend_at.min(deadline)
        };
        if !readable_within(socket, wake.saturating_duration_since(now))? {
            continue;
        }
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(err) if is_transient(&err) => continue,
            Err(err) => return Err(err).context("receiving the mapping probe"),
        };
        let bytes = &buf[..len];
        if is_probe(bytes, &ask.nonce) {
            arrived = true;
        } else if from == server {
            match answer_of(bytes, tid)? {
                Answer::Ours => answered = true,
                Answer::Unsupported => return Ok(None),
                Answer::NotOurs => {}
            }
        }
    }
    if !answered && !arrived {
        bail!(
            "no answer to PROBE-MAPPING from {server} within {} ms",
            timeout.as_millis()
        );
    }
    Ok(Some(arrived))
}

fn request_bytes(ask: &ProbeAsk, tid: TransactionId) -> Vec<u8> {
    let mut buf = Vec::with_capacity(48);
    let ty = MessageType::new(natlens::PROBE_MAPPING, Class::Request);
    let mut builder = MessageBuilder::new(&mut buf, ty, tid);
    ask.encode(&mut builder);
    builder.fingerprint();
    buf
}

enum Answer {
    Ours,
    /// The server does not know the method or its attributes.
    Unsupported,
    NotOurs,
}

/// Reads a datagram from the server: our answer, a refusal meaning "not supported", or
/// something else (a stray, another transaction). Any other refusal is an error.
fn answer_of(bytes: &[u8], tid: TransactionId) -> anyhow::Result<Answer> {
    let Ok(message) = Message::parse(bytes) else {
        return Ok(Answer::NotOurs);
    };
    if message.transaction_id() != tid || message.method() != natlens::PROBE_MAPPING {
        return Ok(Answer::NotOurs);
    }
    match message.class() {
        Class::Success => Ok(Answer::Ours),
        Class::Error => {
            let (code, reason) = message
                .get(AttrType::ERROR_CODE)
                .and_then(|a| decode_error_code(a.value).ok())
                .unwrap_or((0, ""));
            // An older natlens answers 400 "Unknown method"; any STUN server refuses the
            // comprehension-required PROBE-PORT with 420.
            let unknown_method = code == error::BAD_REQUEST && reason == "Unknown method";
            if unknown_method || code == error::UNKNOWN_ATTRIBUTE {
                return Ok(Answer::Unsupported);
            }
            bail!("the server refused PROBE-MAPPING: {code} {reason}")
        }
        _ => Ok(Answer::NotOurs),
    }
}

/// Waits until `socket` has a datagram or `wait` passes. EINTR counts as "not yet".
fn readable_within(socket: &UdpSocket, wait: Duration) -> io::Result<bool> {
    let mut fd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // Rounded up, so that a wait of less than a millisecond does not spin.
    let millis = wait.as_micros().div_ceil(1000);
    let millis = libc::c_int::try_from(millis).unwrap_or(libc::c_int::MAX);
    // SAFETY: poll(2) on one pollfd we own.
    let rc = unsafe { libc::poll(&mut fd, 1, millis) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return if err.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(err)
        };
    }
    Ok(rc > 0)
}

/// Errors a UDP read may report that say nothing about this exchange: ICMP errors of earlier
/// sends (ECONNREFUSED), or a datagram another reader took first.
fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}
