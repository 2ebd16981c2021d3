//! PROBE-MAPPING: "send one packet to my mapped port". A client that asked its gateway for a
//! port mapping (NAT-PMP, PCP, UPnP IGD) learns here whether packets from outside really reach
//! it: the server sends one small indication carrying the client's nonce to the mapped port,
//! from an address the client never sent to, so only the mapping can let it in.
//!
//! What keeps it from being abused: the probe only ever goes to the IP the request came from
//! (a forged source gets one small packet it did not ask for, as with any STUN answer), one
//! probe per request, and over UDP it spends a token of that IP's answer bucket like every
//! answer does. The answer is lean (no SOFTWARE), so answer plus probe stay well inside what
//! a Binding request earns per request byte.

use std::net::SocketAddr;

use crate::core::registry::Route;
use crate::core::stats::Drop;
use crate::wire::attr::AttrType;
use crate::wire::natlens::{self, error};
use crate::wire::stun::{Class, Message, MessageType};
use crate::wire::{MessageBuilder, TransactionId};

use super::request::Request;
use super::ServerCore;

/// Length of PROBE-NONCE.
pub const PROBE_NONCE_LEN: usize = 8;

/// What a PROBE-MAPPING request asks for: where the probe goes and what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeAsk {
    pub port: u16,
    pub nonce: [u8; PROBE_NONCE_LEN],
}

impl ProbeAsk {
    /// Reads PROBE-PORT and PROBE-NONCE; the reason of the 400 when either is missing or wrong.
    pub fn read(message: &Message<'_>) -> Result<Self, &'static str> {
        let port = message
            .get(natlens::PROBE_PORT)
            .and_then(|a| <[u8; 4]>::try_from(a.value).ok())
            .map(|v| u16::from_be_bytes([v[0], v[1]]))
            .filter(|&port| port != 0)
            .ok_or("Missing or invalid NL-PROBE-PORT")?;
        let nonce = message
            .get(natlens::PROBE_NONCE)
            .and_then(|a| <[u8; PROBE_NONCE_LEN]>::try_from(a.value).ok())
            .ok_or("Missing or invalid NL-PROBE-NONCE")?;
        Ok(ProbeAsk { port, nonce })
    }

    /// Appends PROBE-PORT and PROBE-NONCE to a request (the client's side).
    pub fn encode(&self, builder: &mut MessageBuilder<'_>) {
        let port = self.port.to_be_bytes();
        builder.attribute(natlens::PROBE_PORT, &[port[0], port[1], 0, 0]);
        builder.attribute(natlens::PROBE_NONCE, &self.nonce);
    }
}

/// The probe itself: a PROBE-MAPPING indication with the nonce and a FINGERPRINT, so that the
/// client (and a capture) can tell it from anything else arriving on the port.
pub fn probe_packet(nonce: &[u8; PROBE_NONCE_LEN], tid: TransactionId) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    let ty = MessageType::new(natlens::PROBE_MAPPING, Class::Indication);
    let mut builder = MessageBuilder::new(&mut out, ty, tid);
    builder.attribute(natlens::PROBE_NONCE, nonce);
    builder.fingerprint();
    out
}

/// True when `bytes` is the probe carrying `nonce`.
pub fn is_probe(bytes: &[u8], nonce: &[u8; PROBE_NONCE_LEN]) -> bool {
    let Ok(message) = Message::parse(bytes) else {
        return false;
    };
    message.method() == natlens::PROBE_MAPPING
        && message.class() == Class::Indication
        && message
            .get(natlens::PROBE_NONCE)
            .is_some_and(|a| a.value == nonce)
}

impl ServerCore {
    /// A PROBE-MAPPING request: queue the one probe, answer with where it left from.
    pub(super) fn probe_mapping(&mut self, req: &mut Request<'_>) -> bool {
        let ask = match ProbeAsk::read(req.message) {
            Ok(ask) => ask,
            Err(reason) => return self.refuse(req, error::BAD_REQUEST, reason),
        };
        let local = match req.route {
            Route::Udp { local, .. } => local,
            Route::Tcp { .. } => match req.local {
                Some(local) => local,
                None => return self.refuse(req, error::BAD_REQUEST, "No local address"),
            },
        };
        let from = self.probe_source(local);
        let to = SocketAddr::new(req.remote.ip(), ask.port);
        // The request's own token paid for the answer; the probe is a second packet toward the
        // same IP and pays for itself.
        if let Some(limiter) = &mut self.limiter {
            if !limiter.allow(req.now, to.ip()) {
                self.counters.drop(Drop::RateLimited);
                return self.refuse(req, error::SERVER_FULL, "Answer budget spent: try later");
            }
        }
        let tid = TransactionId(rand::Rng::gen(&mut self.rng));
        self.commands.push_back(crate::core::events::Command::Send {
            route: Route::Udp {
                local: from,
                remote: to,
            },
            bytes: probe_packet(&ask.nonce, tid),
        });
        self.counters.mapping_probes += 1;
        let ty = req.message.message_type().response(Class::Success);
        let mut builder = MessageBuilder::new(req.reply, ty, req.message.transaction_id());
        builder.address(AttrType::RESPONSE_ORIGIN, &from);
        if req.message.get(AttrType::FINGERPRINT).is_some() {
            builder.fingerprint();
        }
        true
    }

    /// Where a probe for a request received on `local` leaves from: the RFC 5780 other address
    /// (other IP and other port) when `local` is part of a full-mode set, else `local` itself.
    fn probe_source(&self, local: SocketAddr) -> SocketAddr {
        self.config
            .full_modes
            .iter()
            .find(|full| full.serves(&local))
            .map_or(local, |full| full.other_address(local))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::core::binding::FullMode;
    use crate::core::events::Command;
    use crate::core::registry::ConnId;
    use crate::core::server::ServerConfig;
    use crate::wire::attr::{decode_address, decode_error_code};

    const PRIMARY: &str = "192.0.2.1:3478";
    const ALTERNATE: &str = "192.0.2.2:3479";
    const CLIENT: &str = "198.51.100.7:40001";
    const NONCE: [u8; 8] = *b"nonce-01";

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn server(full: bool, answer_rate: Option<u32>) -> (ServerCore, Instant) {
        let now = Instant::now();
        let mut config = ServerConfig::new("probe");
        config.answer_rate = answer_rate;
        if full {
            config.full_modes = vec![FullMode {
                primary: addr(PRIMARY),
                alternate: addr(ALTERNATE),
            }];
        }
        (ServerCore::new(config, now, 7), now)
    }

    fn ask(port: u16, tid: u8) -> Vec<u8> {
        let mut buf = Vec::new();
        let ty = MessageType::new(natlens::PROBE_MAPPING, Class::Request);
        let mut builder = MessageBuilder::new(&mut buf, ty, TransactionId([tid; 12]));
        ProbeAsk { port, nonce: NONCE }.encode(&mut builder);
        builder.finish().to_vec()
    }

    fn sent(core: &mut ServerCore) -> Vec<(Route, Vec<u8>)> {
        std::iter::from_fn(|| core.poll_command())
            .filter_map(|c| match c {
                Command::Send { route, bytes } => Some((route, bytes)),
                _ => None,
            })
            .collect()
    }

    fn udp_ask(core: &mut ServerCore, now: Instant, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut reply = Vec::new();
        core.handle_udp(now, addr(PRIMARY), addr(CLIENT), bytes, &mut reply)
            .map(|_| reply)
    }

    fn error_code(reply: &[u8]) -> Option<u16> {
        let message = Message::parse(reply).unwrap();
        Some(
            decode_error_code(message.get(AttrType::ERROR_CODE)?.value)
                .ok()?
                .0,
        )
    }

    #[test]
    fn one_probe_goes_to_the_requesters_ip_from_the_other_address() {
        let (mut core, now) = server(true, None);
        let request = ask(51000, 1);
        let reply = udp_ask(&mut core, now, &request).expect("answered");
        let message = Message::parse(&reply).unwrap();
        assert_eq!(message.class(), Class::Success);
        let origin = decode_address(message.get(AttrType::RESPONSE_ORIGIN).unwrap().value);
        assert_eq!(origin, Ok(addr("192.0.2.2:3479")));
        let probes = sent(&mut core);
        assert_eq!(probes.len(), 1, "one packet per request");
        let (route, bytes) = &probes[0];
        assert_eq!(
            *route,
            Route::Udp {
                local: addr(ALTERNATE),
                remote: addr("198.51.100.7:51000")
            }
        );
        assert!(is_probe(bytes, &NONCE));
        assert!(!is_probe(bytes, b"nonce-02"), "another nonce is not ours");
        assert!(integrity_ok(bytes));
        assert_eq!(core.counters().mapping_probes, 1);
        // Answer and probe together stay within a small multiple of the request.
        assert!(reply.len() + bytes.len() <= 2 * request.len());
    }

    fn integrity_ok(bytes: &[u8]) -> bool {
        crate::wire::integrity::check_fingerprint(&Message::parse(bytes).unwrap()) == Some(true)
    }

    #[test]
    fn without_a_second_address_the_probe_leaves_the_socket_it_was_asked_on() {
        let (mut core, now) = server(false, None);
        udp_ask(&mut core, now, &ask(51000, 1)).expect("answered");
        let probes = sent(&mut core);
        assert_eq!(
            probes[0].0,
            Route::Udp {
                local: addr(PRIMARY),
                remote: addr("198.51.100.7:51000")
            }
        );
    }

    #[test]
    fn over_tcp_the_probe_still_goes_by_udp_to_the_connections_ip() {
        let (mut core, now) = server(true, None);
        let mut reply = Vec::new();
        let local = addr("192.0.2.1:3479");
        let answered = core.handle_tcp(
            now,
            4 as ConnId,
            local,
            addr(CLIENT),
            &ask(52000, 2),
            &mut reply,
        );
        assert!(answered);
        assert_eq!(Message::parse(&reply).unwrap().class(), Class::Success);
        let probes = sent(&mut core);
        assert_eq!(
            probes[0].0,
            Route::Udp {
                local: addr("192.0.2.2:3478"),
                remote: addr("198.51.100.7:52000")
            }
        );
    }

    #[test]
    fn a_request_without_port_or_nonce_is_refused_and_sends_nothing() {
        let (mut core, now) = server(true, None);
        let cases: [&dyn Fn(&mut MessageBuilder<'_>); 4] = [
            &|_| {},
            &|b| {
                b.attribute(natlens::PROBE_NONCE, &NONCE);
            },
            &|b| {
                b.attribute(natlens::PROBE_PORT, &[0, 0, 0, 0]);
                b.attribute(natlens::PROBE_NONCE, &NONCE);
            },
            &|b| {
                b.attribute(natlens::PROBE_PORT, &[0xC3, 0x50, 0, 0]);
                b.attribute(natlens::PROBE_NONCE, &NONCE[..4]);
            },
        ];
        for (i, add) in cases.into_iter().enumerate() {
            let mut buf = Vec::new();
            let ty = MessageType::new(natlens::PROBE_MAPPING, Class::Request);
            let mut builder = MessageBuilder::new(&mut buf, ty, TransactionId([i as u8; 12]));
            add(&mut builder);
            let bytes = builder.finish().to_vec();
            let reply = udp_ask(&mut core, now, &bytes).expect("an error answer");
            assert_eq!(error_code(&reply), Some(400), "case {i}");
        }
        assert!(sent(&mut core).is_empty());
        assert_eq!(core.counters().mapping_probes, 0);
    }

    #[test]
    fn probes_spend_the_requesters_answer_tokens() {
        // 10 answers a second, a burst of twice that: each accepted request costs two tokens
        // (its answer and its probe), so a flood gets at most ten probes out of the burst.
        let (mut core, now) = server(true, Some(10));
        let answered = (0..100u8)
            .filter(|&i| udp_ask(&mut core, now, &ask(51000, i)).is_some())
            .count();
        assert_eq!(answered, 10);
        assert_eq!(sent(&mut core).len(), 10);
        assert_eq!(core.counters().drops.get("rate-limited"), Some(&90));
        assert_eq!(core.counters().mapping_probes, 10);
        let later = now + Duration::from_secs(1);
        assert!(udp_ask(&mut core, later, &ask(51000, 200)).is_some());
        assert_eq!(sent(&mut core).len(), 1, "the bucket refills");
    }

    #[test]
    fn probes_are_recognised_only_as_indications_with_the_nonce() {
        let probe = probe_packet(&NONCE, TransactionId([1; 12]));
        assert!(is_probe(&probe, &NONCE));
        assert!(
            !is_probe(&ask(51000, 1), &NONCE),
            "a request is not a probe"
        );
        assert!(!is_probe(&probe[..10], &NONCE));
        assert!(!is_probe(b"not stun at all", &NONCE));
    }
}
