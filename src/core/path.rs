//! The path toward the server, hop by hop, and how many NATs sit on it (`natlens nat`'s `path`).
//!
//! [`PathProbe`] is the sans-IO half of a TTL-limited probe: one STUN Binding request per TTL
//! (IPv6: hop limit) 1..=N, each with its own transaction ID, all sent at once. A router where
//! the TTL runs out answers ICMP time exceeded quoting the request; the server answers the
//! requests that reach it. The shell (`io::path_probe`) sends what [`PathProbe::poll_transmit`]
//! gives with the TTL it names, and hands back every datagram and every queued ICMP error.
//!
//! What the quotes cannot tell: a NAT that follows RFC 5508 (Linux does) translates the packet
//! quoted inside an ICMP error back, so every quote shows this host's own address and port,
//! never a NAT's mapping. Where the NATs are is read from the hops' address classes instead
//! ([`class`]), combined with other evidence in [`verdict`].

pub mod class;
pub mod verdict;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::RngCore;
use serde::Serialize;

use crate::core::unreachable::Icmp;
use crate::wire::stun::{Class, Message, MessageType, Method, TransactionId, MAGIC_COOKIE};
use crate::wire::MessageBuilder;

pub use class::{classify, AddressClass};
pub use verdict::{judge, PathEvidence, PathReport};

/// Hops probed when `natlens nat` is not told otherwise: a home gateway and a carrier NAT sit
/// well inside it.
pub const DEFAULT_MAX_TTL: u8 = 8;

/// Most hops that may be probed (and the largest TTL sent).
pub const MAX_TTL: u8 = 32;

/// ICMP time exceeded: type 11 over IPv4, type 3 over ICMPv6.
const TIME_EXCEEDED_V4: u8 = 11;
const TIME_EXCEEDED_V6: u8 = 3;
/// ICMP destination unreachable: type 3 over IPv4, type 1 over ICMPv6.
const UNREACHABLE_V4: u8 = 3;
const UNREACHABLE_V6: u8 = 1;

/// One hop of the path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hop {
    /// The TTL (hop limit) of the request this hop answered.
    pub ttl: u8,
    /// Who answered: the router that sent time exceeded, or the server. `None`: nobody did.
    pub address: Option<IpAddr>,
    /// The answer's address class; `None` when nobody answered.
    pub class: Option<AddressClass>,
    /// From sending the request to its answer, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// True for the hop that is the server itself (a STUN answer came back).
    pub server: bool,
}

/// A request for the shell to send: `payload` with this TTL, to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub ttl: u8,
    pub payload: Vec<u8>,
}

/// An ICMP error as the shell read it off the error queue.
#[derive(Debug, Clone, Copy)]
pub struct IcmpReport<'a> {
    pub icmp: Icmp,
    pub icmp_type: u8,
    pub offender: Option<IpAddr>,
    /// The quoted datagram's destination.
    pub to: SocketAddr,
    /// The quoted datagram's payload (as much as the router quoted).
    pub quote: &'a [u8],
}

#[derive(Debug, Clone)]
struct Probe {
    ttl: u8,
    tid: TransactionId,
    sent_at: Option<Instant>,
    answer: Option<(IpAddr, Instant, bool)>,
}

/// The TTL-limited probe of one path (see the module doc).
#[derive(Debug, Clone)]
pub struct PathProbe {
    server: SocketAddr,
    probes: Vec<Probe>,
    by_tid: BTreeMap<TransactionId, usize>,
    next_to_send: usize,
    ignored: u32,
}

impl PathProbe {
    /// A probe of TTLs 1..=`max_ttl` (clamped to 1..=[`MAX_TTL`]) toward `server`.
    pub fn new(server: SocketAddr, max_ttl: u8, rng: &mut dyn RngCore) -> Self {
        let mut probes = Vec::new();
        let mut by_tid = BTreeMap::new();
        for ttl in 1..=max_ttl.clamp(1, MAX_TTL) {
            let mut id = [0u8; 12];
            rng.fill_bytes(&mut id);
            let tid = TransactionId(id);
            by_tid.insert(tid, probes.len());
            probes.push(Probe {
                ttl,
                tid,
                sent_at: None,
                answer: None,
            });
        }
        PathProbe {
            server,
            probes,
            by_tid,
            next_to_send: 0,
            ignored: 0,
        }
    }

    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The next request to send, lowest TTL first; `None` once all are out. Every request
    /// goes at once: the hops answer in parallel, not one round trip per hop.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        let probe = self.probes.get_mut(self.next_to_send)?;
        self.next_to_send += 1;
        probe.sent_at = Some(now);
        let mut payload = Vec::with_capacity(20);
        let ty = MessageType::new(Method::BINDING, Class::Request);
        MessageBuilder::new(&mut payload, ty, probe.tid);
        Some(Transmit {
            ttl: probe.ttl,
            payload,
        })
    }

    /// A datagram that came back on the probe's socket: a STUN answer from the server to one
    /// of our requests marks that request's hop as the server. Anything else is counted and
    /// ignored.
    pub fn handle_datagram(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) {
        let answer = Message::parse(bytes)
            .ok()
            .filter(|m| m.class().is_response() && m.has_magic_cookie() && from == self.server);
        match answer.and_then(|m| self.by_tid.get(&m.transaction_id()).copied()) {
            Some(index) => self.answer(index, from.ip(), now, true),
            None => self.ignored += 1,
        }
    }

    /// An ICMP error queued on the probe's socket, about one of our requests to the server
    /// (the quote holds its transaction ID). Time exceeded names that request's hop; destination
    /// unreachable from the server's own address (no STUN server on the port) says the request
    /// reached the server's host, which is then the last hop, as a STUN answer would be.
    /// Anything else (another type or sender, a quote too short to hold a transaction ID, an ID
    /// that is not ours, no offender) is counted and ignored.
    pub fn handle_icmp(&mut self, error: IcmpReport<'_>, now: Instant) {
        let (time_exceeded, unreachable) = match error.icmp {
            Icmp::V4 => (TIME_EXCEEDED_V4, UNREACHABLE_V4),
            Icmp::V6 => (TIME_EXCEEDED_V6, UNREACHABLE_V6),
        };
        let index = quoted_tid(error.quote).and_then(|tid| self.by_tid.get(&tid).copied());
        let ours = error.to == self.server;
        match (index, error.offender) {
            (Some(index), Some(from)) if ours && error.icmp_type == time_exceeded => {
                self.answer(index, from, now, false)
            }
            (Some(index), Some(from))
                if ours && error.icmp_type == unreachable && from == self.server.ip() =>
            {
                self.answer(index, from, now, true)
            }
            _ => self.ignored += 1,
        }
    }

    fn answer(&mut self, index: usize, from: IpAddr, now: Instant, server: bool) {
        let probe = &mut self.probes[index];
        if probe.answer.is_none() && probe.sent_at.is_some() {
            probe.answer = Some((from, now, server));
        } else {
            // A duplicate or an answer to a request never sent.
            self.ignored += 1;
        }
    }

    /// The lowest TTL the server answered, if any did.
    pub fn server_ttl(&self) -> Option<u8> {
        self.probes
            .iter()
            .find(|p| matches!(p.answer, Some((_, _, true))))
            .map(|p| p.ttl)
    }

    /// True once nothing more can be learned: the server answered and every lower TTL did
    /// too, or every request has its answer.
    pub fn is_done(&self) -> bool {
        let last = self.server_ttl().unwrap_or(u8::MAX);
        self.next_to_send == self.probes.len()
            && self
                .probes
                .iter()
                .filter(|p| p.ttl <= last)
                .all(|p| p.answer.is_some())
    }

    /// Datagrams and ICMP errors that matched none of our requests.
    pub fn ignored(&self) -> u32 {
        self.ignored
    }

    /// The hops, by TTL, up to the server (or every TTL probed when it never answered).
    pub fn hops(&self) -> Vec<Hop> {
        let last = self.server_ttl().unwrap_or(u8::MAX);
        self.probes
            .iter()
            .filter(|p| p.sent_at.is_some() && p.ttl <= last)
            .map(|p| {
                let (address, rtt, server) = match (p.answer, p.sent_at) {
                    (Some((from, at, server)), Some(sent)) => {
                        (Some(from), Some(at.saturating_duration_since(sent)), server)
                    }
                    _ => (None, None, false),
                };
                Hop {
                    ttl: p.ttl,
                    address,
                    class: address.map(classify),
                    rtt_ms: rtt.map(millis),
                    server,
                }
            })
            .collect()
    }
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e5).round() / 100.0
}

/// The transaction ID of a quoted STUN request: the quote must hold the 20-byte header with
/// the magic cookie. Only the header is read, so a router that quotes little still counts.
fn quoted_tid(quote: &[u8]) -> Option<TransactionId> {
    let header = quote.get(..20)?;
    if header[0] & 0xc0 != 0 || header[4..8] != MAGIC_COOKIE.to_be_bytes() {
        return None;
    }
    Some(TransactionId(header[8..20].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::mock::StepRng;

    const SERVER: &str = "203.0.113.10:3478";

    fn probe(max_ttl: u8) -> (PathProbe, Vec<Transmit>, Instant) {
        let mut rng = StepRng::new(1, 0x0101_0101_0101);
        let mut probe = PathProbe::new(SERVER.parse().unwrap(), max_ttl, &mut rng);
        let start = Instant::now();
        let sent: Vec<Transmit> = std::iter::from_fn(|| probe.poll_transmit(start)).collect();
        (probe, sent, start)
    }

    fn time_exceeded<'a>(offender: &str, quote: &'a [u8]) -> IcmpReport<'a> {
        IcmpReport {
            icmp: Icmp::V4,
            icmp_type: TIME_EXCEEDED_V4,
            offender: Some(offender.parse().unwrap()),
            to: SERVER.parse().unwrap(),
            quote,
        }
    }

    fn success(request: &[u8]) -> Vec<u8> {
        let mut answer = request.to_vec();
        answer[..2].copy_from_slice(
            &MessageType::new(Method::BINDING, Class::Success)
                .to_u16()
                .to_be_bytes(),
        );
        answer
    }

    #[test]
    fn every_ttl_goes_out_at_once_with_its_own_transaction_id() {
        let (_, sent, _) = probe(8);
        let ttls: Vec<u8> = sent.iter().map(|t| t.ttl).collect();
        assert_eq!(ttls, [1, 2, 3, 4, 5, 6, 7, 8]);
        let mut tids: Vec<&[u8]> = sent.iter().map(|t| &t.payload[8..20]).collect();
        tids.sort();
        tids.dedup();
        assert_eq!(tids.len(), 8);
        assert!(sent.iter().all(|t| Message::parse(&t.payload).is_ok()));
    }

    #[test]
    fn routers_and_the_server_make_the_hops() {
        let (mut probe, sent, start) = probe(8);
        let later = start + Duration::from_millis(3);
        probe.handle_icmp(time_exceeded("192.0.2.1", &sent[0].payload), later);
        probe.handle_icmp(time_exceeded("100.64.0.1", &sent[1].payload), later);
        assert!(!probe.is_done());
        for transmit in &sent[2..] {
            probe.handle_datagram(SERVER.parse().unwrap(), &success(&transmit.payload), later);
        }
        assert!(probe.is_done());
        assert_eq!(probe.server_ttl(), Some(3));
        let hops = probe.hops();
        let addresses: Vec<String> = hops
            .iter()
            .map(|h| h.address.unwrap().to_string())
            .collect();
        assert_eq!(addresses, ["192.0.2.1", "100.64.0.1", "203.0.113.10"]);
        assert_eq!(hops[1].class, Some(AddressClass::Shared));
        assert!(hops[2].server && !hops[0].server);
        assert_eq!(hops[0].rtt_ms, Some(3.0));
        assert_eq!(probe.ignored(), 0);
    }

    #[test]
    fn silent_hops_stay_in_the_list_without_an_address() {
        let (mut probe, sent, start) = probe(4);
        probe.handle_icmp(time_exceeded("192.0.2.1", &sent[0].payload), start);
        probe.handle_datagram(SERVER.parse().unwrap(), &success(&sent[2].payload), start);
        assert!(!probe.is_done(), "hop 2 may still answer");
        let hops = probe.hops();
        assert_eq!(hops.len(), 3);
        assert_eq!(
            (hops[1].address, hops[1].class, hops[1].rtt_ms),
            (None, None, None)
        );
    }

    #[test]
    fn quotes_matching_none_of_our_probes_are_ignored_and_counted() {
        let (mut probe, sent, start) = probe(2);
        let mut foreign = sent[0].payload.clone();
        foreign[10] ^= 0xff;
        probe.handle_icmp(time_exceeded("192.0.2.1", &foreign), start);
        probe.handle_icmp(time_exceeded("192.0.2.1", &sent[0].payload[..12]), start);
        probe.handle_icmp(time_exceeded("192.0.2.1", b""), start);
        let mut unreachable = time_exceeded("192.0.2.1", &sent[0].payload);
        unreachable.icmp_type = UNREACHABLE_V4;
        probe.handle_icmp(unreachable, start);
        let mut elsewhere = time_exceeded("192.0.2.1", &sent[0].payload);
        elsewhere.to = "203.0.113.11:3478".parse().unwrap();
        probe.handle_icmp(elsewhere, start);
        probe.handle_datagram(
            "203.0.113.99:3478".parse().unwrap(),
            &success(&sent[1].payload),
            start,
        );
        probe.handle_datagram(SERVER.parse().unwrap(), b"not stun", start);
        assert_eq!(probe.ignored(), 7);
        assert!(probe.hops().iter().all(|h| h.address.is_none()));
        probe.handle_icmp(time_exceeded("192.0.2.1", &sent[0].payload), start);
        probe.handle_icmp(time_exceeded("192.0.2.1", &sent[0].payload), start);
        assert_eq!(probe.ignored(), 8, "a duplicate counts too");
    }

    /// No STUN server on the port: the server's host answers port unreachable, and the probe
    /// ends there rather than waiting for answers that will not come.
    #[test]
    fn a_port_unreachable_from_the_server_is_the_last_hop() {
        let (mut probe, sent, start) = probe(3);
        probe.handle_icmp(time_exceeded("192.0.2.1", &sent[0].payload), start);
        for transmit in &sent[1..] {
            let mut error = time_exceeded("203.0.113.10", &transmit.payload);
            error.icmp_type = UNREACHABLE_V4;
            probe.handle_icmp(error, start);
        }
        assert!(probe.is_done());
        let hops = probe.hops();
        assert_eq!(hops.len(), 2);
        assert!(hops[1].server);
        assert_eq!(probe.ignored(), 0);
    }

    #[test]
    fn icmpv6_time_exceeded_is_type_3() {
        let (mut probe, sent, start) = probe(1);
        let mut error = time_exceeded("2001:db8::1", &sent[0].payload);
        error.icmp = Icmp::V6;
        error.icmp_type = TIME_EXCEEDED_V6;
        probe.handle_icmp(error, start);
        assert_eq!(probe.hops()[0].class, Some(AddressClass::Documentation));
    }
}
