//! The stateless Binding responder: RFC 8489 reflection plus RFC 5780 "full" mode
//! (OTHER-ADDRESS, RESPONSE-ORIGIN, CHANGE-REQUEST, RESPONSE-PORT, PADDING) and RFC 3489 answers
//! for clients without the magic cookie.
//!
//! Hot path: called for every Binding request, it writes the answer into a caller-owned buffer
//! and allocates nothing.

use std::net::{IpAddr, SocketAddr};

use crate::core::stats::Drop;
use crate::core::Transport;
use crate::wire::answer::ErrorAnswer;
use crate::wire::attr::{self, AttrType, ChangeRequest};
use crate::wire::integrity;
use crate::wire::stun::{Class, Message, MessageType, Method};
use crate::wire::MessageBuilder;

/// SOFTWARE value in every answer (RFC 8489 §14.14 recommends naming the implementation).
pub const SOFTWARE: &str = concat!("natlens ", env!("CARGO_PKG_VERSION"));

/// Attributes a Binding request may carry that natlens understands (or deliberately ignores);
/// any other comprehension-required attribute gets a 420.
pub(crate) const BINDING_UNDERSTOOD: &[AttrType] = &[
    AttrType::MAPPED_ADDRESS,
    AttrType::RESPONSE_ADDRESS,
    AttrType::CHANGE_REQUEST,
    AttrType::USERNAME,
    AttrType::MESSAGE_INTEGRITY,
    AttrType::MESSAGE_INTEGRITY_SHA256,
    AttrType::USERHASH,
    AttrType::REALM,
    AttrType::NONCE,
    AttrType::XOR_MAPPED_ADDRESS,
    AttrType::PADDING,
    AttrType::RESPONSE_PORT,
    // ICE connectivity checks (RFC 8445 PRIORITY, USE-CANDIDATE) are answered as plain Bindings.
    AttrType(0x0024),
    AttrType(0x0025),
];

/// The two IPs and two ports of an RFC 5780 full-mode server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FullMode {
    pub primary: SocketAddr,
    pub alternate: SocketAddr,
}

impl FullMode {
    /// All four listening addresses: every mix of the two IPs and two ports.
    pub fn addresses(&self) -> [SocketAddr; 4] {
        let (ip1, ip2) = (self.primary.ip(), self.alternate.ip());
        let (p1, p2) = (self.primary.port(), self.alternate.port());
        [
            SocketAddr::new(ip1, p1),
            SocketAddr::new(ip1, p2),
            SocketAddr::new(ip2, p1),
            SocketAddr::new(ip2, p2),
        ]
    }

    /// True when `local` is one of this server's four addresses.
    pub fn serves(&self, local: &SocketAddr) -> bool {
        self.addresses().contains(local)
    }

    fn other_ip(&self, ip: IpAddr) -> IpAddr {
        if ip == self.primary.ip() {
            self.alternate.ip()
        } else {
            self.primary.ip()
        }
    }

    fn other_port(&self, port: u16) -> u16 {
        if port == self.primary.port() {
            self.alternate.port()
        } else {
            self.primary.port()
        }
    }

    /// OTHER-ADDRESS for a request received on `local`: the address differing in both IP and port.
    pub fn other_address(&self, local: SocketAddr) -> SocketAddr {
        SocketAddr::new(self.other_ip(local.ip()), self.other_port(local.port()))
    }

    /// The address to answer from when the client asked for `change`.
    pub fn source_for(&self, local: SocketAddr, change: ChangeRequest) -> SocketAddr {
        let ip = if change.change_ip {
            self.other_ip(local.ip())
        } else {
            local.ip()
        };
        let port = if change.change_port {
            self.other_port(local.port())
        } else {
            local.port()
        };
        SocketAddr::new(ip, port)
    }
}

/// Where a request came from and on which of our sockets.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// What to do with a Binding request once the answer is in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Send the buffer from local address `from` to `to`.
    Reply {
        from: SocketAddr,
        to: SocketAddr,
        error: bool,
    },
    /// Send nothing.
    Drop(Drop),
}

/// Answers one Binding message. `full` is the RFC 5780 configuration for the socket it arrived
/// on, if that socket is part of a full-mode set.
pub fn answer(
    message: &Message<'_>,
    rx: Received,
    full: Option<&FullMode>,
    out: &mut Vec<u8>,
) -> Outcome {
    // Never answer indications or responses: answering them would reflect traffic at whoever
    // forged the source address, and RFC 8489 §6.3.2/§6.3.3 says they get no answer anyway.
    match message.class() {
        Class::Request => {}
        Class::Indication => return Outcome::Drop(Drop::Indication),
        Class::Success | Class::Error => return Outcome::Drop(Drop::NotRequest),
    }
    if !message.has_magic_cookie() {
        return answer_legacy(message, rx, full, out);
    }
    if integrity::check_fingerprint(message) == Some(false) {
        return Outcome::Drop(Drop::BadFingerprint);
    }
    let unknown = unknown_required(message, BINDING_UNDERSTOOD);
    if !unknown.is_empty() {
        return error(message, rx, 420, "Unknown Attribute", &unknown, out);
    }
    let change = match message
        .get(AttrType::CHANGE_REQUEST)
        .map(|a| ChangeRequest::decode(a.value))
    {
        None => ChangeRequest::default(),
        Some(Ok(change)) => change,
        Some(Err(_)) => return error(message, rx, 400, "Malformed CHANGE-REQUEST", &[], out),
    };
    let (from, to) = match route(message, rx, full, change) {
        Ok(route) => route,
        Err((code, reason, unknown)) => return error(message, rx, code, reason, unknown, out),
    };
    let mut builder = MessageBuilder::new(
        out,
        MessageType::new(Method::BINDING, Class::Success),
        message.transaction_id(),
    );
    builder.xor_address(AttrType::XOR_MAPPED_ADDRESS, &rx.remote);
    // MAPPED-ADDRESS too, for RFC 3489-era parsers and so that a client can spot an ALG that
    // rewrites addresses in the clear (MAPPED ≠ XOR-MAPPED).
    builder.address(AttrType::MAPPED_ADDRESS, &rx.remote);
    if let Some(full) = full {
        builder.address(AttrType::RESPONSE_ORIGIN, &from);
        builder.address(AttrType::OTHER_ADDRESS, &full.other_address(rx.local));
    }
    builder.attribute(AttrType::SOFTWARE, SOFTWARE.as_bytes());
    add_padding(message, rx, &mut builder);
    if message.get(AttrType::FINGERPRINT).is_some() {
        builder.fingerprint();
    }
    Outcome::Reply {
        from,
        to,
        error: false,
    }
}

/// Source and destination of the answer, honouring CHANGE-REQUEST and RESPONSE-PORT.
fn route(
    message: &Message<'_>,
    rx: Received,
    full: Option<&FullMode>,
    change: ChangeRequest,
) -> Result<(SocketAddr, SocketAddr), (u16, &'static str, &'static [AttrType])> {
    let mut to = rx.remote;
    if let Some(port) = message.get(AttrType::RESPONSE_PORT) {
        // RFC 5780 §7.5: only meaningful over UDP; a server without it answers 420.
        if full.is_none() || rx.transport != Transport::Udp {
            return Err((420, "Unknown Attribute", &[AttrType::RESPONSE_PORT]));
        }
        let port = attr::decode_response_port(port.value)
            .map_err(|_| (400, "Malformed RESPONSE-PORT", &[][..]))?;
        to.set_port(port);
    }
    if !change.any() {
        return Ok((rx.local, to));
    }
    match full {
        // Over TCP the answer must come back on the same connection, so nothing can change.
        Some(_) if rx.transport == Transport::Tcp => Err((400, "CHANGE-REQUEST needs UDP", &[])),
        Some(full) => Ok((full.source_for(rx.local, change), to)),
        // Without a second address a server cannot honour it; 420 tells the client so instead
        // of an answer from the same address that it would misread as an open NAT.
        None => Err((420, "Unknown Attribute", &[AttrType::CHANGE_REQUEST])),
    }
}

/// RFC 5780 §7.6 PADDING tests fragmentation; natlens pads only up to the request's own size,
/// so the answer is never bigger than the question and cannot amplify.
fn add_padding(message: &Message<'_>, rx: Received, builder: &mut MessageBuilder<'_>) {
    let Some(padding) = message.get(AttrType::PADDING) else {
        return;
    };
    if rx.transport != Transport::Udp {
        return;
    }
    let fingerprint = if message.get(AttrType::FINGERPRINT).is_some() {
        8
    } else {
        0
    };
    let budget = message
        .as_bytes()
        .len()
        .saturating_sub(builder.len() + 4 + fingerprint);
    let len = padding.value.len().min(budget) & !3;
    if len > 0 {
        builder.attribute_with(AttrType::PADDING, |out| out.resize(out.len() + len, 0));
    }
}

/// RFC 3489 answer: MAPPED-ADDRESS, and SOURCE-ADDRESS / CHANGED-ADDRESS in full mode, echoing
/// the 128-bit transaction ID. No XOR-MAPPED-ADDRESS: it is comprehension-required and an
/// RFC 3489 client would reject the whole answer for it.
fn answer_legacy(
    message: &Message<'_>,
    rx: Received,
    full: Option<&FullMode>,
    out: &mut Vec<u8>,
) -> Outcome {
    let change = message
        .get(AttrType::CHANGE_REQUEST)
        .and_then(|a| ChangeRequest::decode(a.value).ok())
        .unwrap_or_default();
    let (from, to) = match (full, change.any(), rx.transport) {
        (Some(full), true, Transport::Udp) => (full.source_for(rx.local, change), rx.remote),
        // A legacy client asking for a change we cannot make: silence is what RFC 3489 servers
        // without a second address effectively give, and what its client reads as "blocked".
        (_, true, _) => return Outcome::Drop(Drop::ChangeUnsupported),
        (_, false, _) => (rx.local, rx.remote),
    };
    let ty = MessageType::new(Method::BINDING, Class::Success);
    let mut builder = MessageBuilder::new_legacy(out, ty, message.legacy_transaction_id());
    builder.address(AttrType::MAPPED_ADDRESS, &rx.remote);
    if let Some(full) = full {
        builder.address(AttrType::SOURCE_ADDRESS, &from);
        builder.address(AttrType::CHANGED_ADDRESS, &full.other_address(rx.local));
    }
    // RFC 3489 §11.1 has no padding rule: attribute lengths must be multiples of 4, and
    // Vovida-derived clients (Debian's `stun`) reject the whole answer otherwise. Pad the text
    // itself with spaces, as RFC 5769's own SOFTWARE example does.
    builder.attribute_with(AttrType::SOFTWARE, |out| {
        out.extend_from_slice(SOFTWARE.as_bytes());
        out.resize(out.len() + (4 - SOFTWARE.len() % 4) % 4, b' ');
    });
    Outcome::Reply {
        from,
        to,
        error: false,
    }
}

/// Writes an error answer, sent from the socket the request arrived on.
fn error(
    message: &Message<'_>,
    rx: Received,
    code: u16,
    reason: &str,
    unknown: &[AttrType],
    out: &mut Vec<u8>,
) -> Outcome {
    ErrorAnswer::to_request(message, code, reason)
        .unknown(unknown)
        .software(SOFTWARE)
        .write(out);
    Outcome::Reply {
        from: rx.local,
        to: rx.remote,
        error: true,
    }
}

/// Comprehension-required attributes in `message` that are not in `known` (at most 8 listed:
/// enough for any honest client, and bounded for a hostile one).
pub fn unknown_required(message: &Message<'_>, known: &[AttrType]) -> Vec<AttrType> {
    let mut unknown = Vec::new();
    for attribute in message.attributes() {
        if attribute.kind.is_comprehension_required()
            && !known.contains(&attribute.kind)
            && !unknown.contains(&attribute.kind)
        {
            unknown.push(attribute.kind);
            if unknown.len() == 8 {
                break;
            }
        }
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::attr::{decode_address, decode_error_code, decode_xor_address};
    use crate::wire::TransactionId;

    fn full() -> FullMode {
        FullMode {
            primary: "192.0.2.1:3478".parse().unwrap(),
            alternate: "192.0.2.2:3479".parse().unwrap(),
        }
    }

    fn rx(transport: Transport) -> Received {
        Received {
            transport,
            local: "192.0.2.1:3478".parse().unwrap(),
            remote: "198.51.100.7:40000".parse().unwrap(),
        }
    }

    fn binding(add: impl FnOnce(&mut MessageBuilder<'_>)) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut builder = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::BINDING, Class::Request),
            TransactionId([5; 12]),
        );
        add(&mut builder);
        builder.finish().to_vec()
    }

    fn run(request: &[u8], rx: Received, full: Option<&FullMode>) -> (Outcome, Vec<u8>) {
        let mut out = Vec::new();
        let outcome = answer(&Message::parse(request).unwrap(), rx, full, &mut out);
        (outcome, out)
    }

    fn address_of(reply: &[u8], kind: AttrType) -> Option<SocketAddr> {
        let message = Message::parse(reply).unwrap();
        let value = message.get(kind)?.value;
        if kind == AttrType::XOR_MAPPED_ADDRESS {
            decode_xor_address(value, &message.transaction_id()).ok()
        } else {
            decode_address(value).ok()
        }
    }

    fn code_of(reply: &[u8]) -> Option<u16> {
        let message = Message::parse(reply).unwrap();
        Some(
            decode_error_code(message.get(AttrType::ERROR_CODE)?.value)
                .unwrap()
                .0,
        )
    }

    #[test]
    fn basic_answer_reflects_the_source() {
        let (outcome, reply) = run(&binding(|_| {}), rx(Transport::Udp), None);
        assert_eq!(
            outcome,
            Outcome::Reply {
                from: rx(Transport::Udp).local,
                to: rx(Transport::Udp).remote,
                error: false
            }
        );
        assert_eq!(
            address_of(&reply, AttrType::XOR_MAPPED_ADDRESS),
            Some(rx(Transport::Udp).remote)
        );
        assert_eq!(
            address_of(&reply, AttrType::MAPPED_ADDRESS),
            Some(rx(Transport::Udp).remote)
        );
        assert_eq!(
            address_of(&reply, AttrType::OTHER_ADDRESS),
            None,
            "basic mode has no OTHER-ADDRESS"
        );
        assert!(Message::parse(&reply)
            .unwrap()
            .get(AttrType::FINGERPRINT)
            .is_none());
    }

    #[test]
    fn full_mode_answers_change_requests_from_the_changed_address() {
        let cases = [
            (false, false, "192.0.2.1:3478"),
            (false, true, "192.0.2.1:3479"),
            (true, false, "192.0.2.2:3478"),
            (true, true, "192.0.2.2:3479"),
        ];
        for (change_ip, change_port, expected) in cases {
            let change = ChangeRequest {
                change_ip,
                change_port,
            };
            let request = binding(|b| {
                b.attribute(AttrType::CHANGE_REQUEST, &change.encode());
                b.fingerprint();
            });
            let (outcome, reply) = run(&request, rx(Transport::Udp), Some(&full()));
            let from: SocketAddr = expected.parse().unwrap();
            assert_eq!(
                outcome,
                Outcome::Reply {
                    from,
                    to: rx(Transport::Udp).remote,
                    error: false
                }
            );
            assert_eq!(address_of(&reply, AttrType::RESPONSE_ORIGIN), Some(from));
            assert_eq!(
                address_of(&reply, AttrType::OTHER_ADDRESS),
                Some("192.0.2.2:3479".parse().unwrap())
            );
            assert_eq!(
                integrity::check_fingerprint(&Message::parse(&reply).unwrap()),
                Some(true)
            );
        }
    }

    #[test]
    fn change_request_without_full_mode_or_over_tcp_is_refused() {
        let request = binding(|b| {
            b.attribute(
                AttrType::CHANGE_REQUEST,
                &ChangeRequest {
                    change_ip: true,
                    change_port: false,
                }
                .encode(),
            );
        });
        let (outcome, reply) = run(&request, rx(Transport::Udp), None);
        assert!(matches!(outcome, Outcome::Reply { error: true, .. }));
        assert_eq!(code_of(&reply), Some(420));
        let (_, reply) = run(&request, rx(Transport::Tcp), Some(&full()));
        assert_eq!(code_of(&reply), Some(400));
        // A CHANGE-REQUEST asking for no change is fine anywhere.
        let no_change = binding(|b| {
            b.attribute(AttrType::CHANGE_REQUEST, &[0, 0, 0, 0]);
        });
        assert_eq!(code_of(&run(&no_change, rx(Transport::Tcp), None).1), None);
    }

    #[test]
    fn response_port_redirects_to_the_same_ip_only() {
        let request = binding(|b| {
            b.attribute(AttrType::RESPONSE_PORT, &[0x9C, 0x41, 0, 0]);
        });
        let (outcome, _) = run(&request, rx(Transport::Udp), Some(&full()));
        let to: SocketAddr = "198.51.100.7:40001".parse().unwrap();
        assert!(matches!(outcome, Outcome::Reply { to: actual, .. } if actual == to));
    }

    #[test]
    fn padding_never_makes_the_answer_larger_than_the_request() {
        for pad in [0usize, 4, 100, 1000] {
            let request = binding(|b| {
                b.attribute(AttrType::PADDING, &vec![0; pad]);
            });
            let (_, reply) = run(&request, rx(Transport::Udp), Some(&full()));
            let padding = Message::parse(&reply)
                .unwrap()
                .get(AttrType::PADDING)
                .map_or(0, |a| a.value.len());
            assert!(
                reply.len() <= request.len().max(124),
                "pad {pad}: {} > {}",
                reply.len(),
                request.len()
            );
            if pad >= 1000 {
                assert!(padding > 800, "large requests get their padding echoed");
            }
        }
    }

    #[test]
    fn unknown_required_attribute_gets_420_listing_it() {
        let request = binding(|b| {
            b.attribute(AttrType(0x7ABC), &[1, 2, 3, 4]);
            b.attribute(AttrType(0xC001), &[1]);
        });
        let (_, reply) = run(&request, rx(Transport::Udp), None);
        assert_eq!(code_of(&reply), Some(420));
        let message = Message::parse(&reply).unwrap();
        assert_eq!(
            message.get(AttrType::UNKNOWN_ATTRIBUTES).unwrap().value,
            [0x7A, 0xBC]
        );
    }

    #[test]
    fn indications_responses_and_bad_fingerprints_get_no_answer() {
        let mut buf = Vec::new();
        MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::BINDING, Class::Indication),
            TransactionId([1; 12]),
        );
        assert_eq!(
            run(&buf, rx(Transport::Udp), None).0,
            Outcome::Drop(Drop::Indication)
        );
        MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::BINDING, Class::Success),
            TransactionId([1; 12]),
        );
        assert_eq!(
            run(&buf, rx(Transport::Udp), None).0,
            Outcome::Drop(Drop::NotRequest)
        );
        let mut request = binding(|b| {
            b.attribute(AttrType::SOFTWARE, b"test");
            b.fingerprint();
        });
        request[24] ^= 1;
        assert_eq!(
            run(&request, rx(Transport::Udp), None).0,
            Outcome::Drop(Drop::BadFingerprint)
        );
    }

    #[test]
    fn rfc3489_clients_get_mapped_source_and_changed_addresses() {
        // No magic cookie: bytes 4..20 are the client's 128-bit transaction ID.
        let mut request = vec![0x00, 0x01, 0x00, 0x08];
        request.extend_from_slice(&[0xAB; 16]);
        request.extend_from_slice(&[0x00, 0x03, 0x00, 0x04, 0, 0, 0, 0x06]);
        let (outcome, reply) = run(&request, rx(Transport::Udp), Some(&full()));
        assert!(
            matches!(outcome, Outcome::Reply { from, .. } if from == "192.0.2.2:3479".parse().unwrap())
        );
        assert_eq!(reply[4..20], [0xAB; 16]);
        assert_eq!(
            address_of(&reply, AttrType::MAPPED_ADDRESS),
            Some(rx(Transport::Udp).remote)
        );
        assert_eq!(
            address_of(&reply, AttrType::SOURCE_ADDRESS),
            Some("192.0.2.2:3479".parse().unwrap())
        );
        assert_eq!(
            address_of(&reply, AttrType::CHANGED_ADDRESS),
            Some("192.0.2.2:3479".parse().unwrap())
        );
        let message = Message::parse(&reply).unwrap();
        assert!(message.get(AttrType::XOR_MAPPED_ADDRESS).is_none());
        assert!(
            message.attributes().all(|a| a.value.len() % 4 == 0),
            "RFC 3489 lengths are multiples of 4"
        );
    }
}
