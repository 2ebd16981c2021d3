//! What a prober collects: one [`Observation`] per planned probe, holding what was sent (from
//! which socket, to which of the server's addresses, with which CHANGE-REQUEST) and what came
//! back. The classifier reads nothing else, so any shell (UDP, TCP, a simulation) that fills these
//! can be fingerprinted by the same code.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::core::Transport;
use crate::wire::attr::{self, AttrType, ChangeRequest};
use crate::wire::stun::Message;

/// Which of the server's addresses a probe goes to. An RFC 5780 full-mode server listens on two
/// IPs × two ports; the primary is the one the user named, the others follow from OTHER-ADDRESS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Primary,
    /// Primary IP, alternate port.
    AltPort,
    /// Alternate IP, primary port (RFC 5780 §4.3 test II).
    AltIp,
    /// Alternate IP and port (RFC 5780 §4.3 test III).
    AltBoth,
    /// The public address the server reported for the mapping socket: the hairpin test (§4.5).
    OwnPublic,
    /// Another server the user named (`nat --server` given more than once), by its index among
    /// the servers after the first: the mapping socket asks it too (does the mapping vary by
    /// destination?), and allocation samples go to it in turn.
    Extra(u8),
}

impl Target {
    /// The concrete address of a server target, given the primary and the OTHER-ADDRESS (which
    /// differs from the primary in both IP and port). `OwnPublic` is not a server address, and
    /// an `Extra` server's address is in the plan, not in the primary's answer.
    pub fn resolve(self, primary: SocketAddr, other: SocketAddr) -> Option<SocketAddr> {
        let (ip1, ip2, p1, p2) = (primary.ip(), other.ip(), primary.port(), other.port());
        match self {
            Target::Primary => Some(primary),
            Target::AltPort => Some(SocketAddr::new(ip1, p2)),
            Target::AltIp => Some(SocketAddr::new(ip2, p1)),
            Target::AltBoth => Some(other),
            Target::OwnPublic | Target::Extra(_) => None,
        }
    }
}

/// The local socket a probe leaves from, which also says what the probe is for. Fresh sockets
/// show how the NAT allocates ports; one socket reused toward several addresses shows whether
/// it keeps the mapping (RFC 5780 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Socket {
    /// Reused for the discovery probe and every mapping test.
    Mapping,
    /// Fresh, then reused for the filtering control and the CHANGE-REQUEST probes. Separate from
    /// `Mapping` because the mapping tests open the NAT toward the alternate addresses, which
    /// would let every CHANGE-REQUEST answer through and read as endpoint-independent filtering.
    Filtering,
    /// Fresh: sends to the mapping socket's public address.
    Hairpin,
    /// Fresh, one per allocation sample, numbered in send order.
    Sample(u8),
}

impl Socket {
    /// An allocation sample's socket.
    pub fn is_sample(self) -> bool {
        matches!(self, Socket::Sample(_))
    }
}

/// What came back for one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Where the answer came from, as the socket saw it: the authority on whether a
    /// CHANGE-REQUEST was honoured.
    pub source: SocketAddr,
    /// XOR-MAPPED-ADDRESS: the public address, safe from ALGs.
    pub xor_mapped: Option<SocketAddr>,
    /// MAPPED-ADDRESS (or the only address an RFC 3489 server sends).
    pub mapped: Option<SocketAddr>,
    /// RESPONSE-ORIGIN, or RFC 3489 SOURCE-ADDRESS: where the server says it answered from.
    pub response_origin: Option<SocketAddr>,
    /// OTHER-ADDRESS, or RFC 3489 CHANGED-ADDRESS: present only from a full-mode server.
    pub other_address: Option<SocketAddr>,
    /// ERROR-CODE of an error answer (420 or 400 for a CHANGE-REQUEST the server cannot do).
    pub error_code: Option<u16>,
    pub received_at: Instant,
}

impl Answer {
    /// Something arrived that is not a server answer (the hairpinned request on the mapping
    /// socket): only its source and time count.
    pub fn arrival(source: SocketAddr, received_at: Instant) -> Self {
        Answer {
            source,
            xor_mapped: None,
            mapped: None,
            response_origin: None,
            other_address: None,
            error_code: None,
            received_at,
        }
    }

    /// Reads a Binding answer. An attribute that is present but unreadable counts as absent:
    /// the verdicts that need it then say "not measured" rather than guess. So does an address
    /// that cannot be one of this exchange's (see [`usable_address`]): of the other family than
    /// the answer's source, an IPv4-mapped IPv6 address, or an IPv6 link-local, unspecified or
    /// multicast one. A server that sends those is broken or lying, and following its
    /// OTHER-ADDRESS would send probes of the wrong family.
    pub fn from_message(message: &Message<'_>, source: SocketAddr, received_at: Instant) -> Self {
        let usable = |addr: Option<SocketAddr>| addr.filter(|a| usable_address(*a, source));
        let plain = |kind| {
            let attribute = message.get(kind)?;
            usable(attr::decode_address(attribute.value).ok())
        };
        let xor_mapped = usable(
            message
                .get(AttrType::XOR_MAPPED_ADDRESS)
                .and_then(|a| attr::decode_xor_address(a.value, &message.transaction_id()).ok()),
        );
        let error_code = message
            .get(AttrType::ERROR_CODE)
            .and_then(|a| attr::decode_error_code(a.value).ok())
            .map(|(code, _)| code);
        Answer {
            source,
            xor_mapped,
            mapped: plain(AttrType::MAPPED_ADDRESS),
            response_origin: plain(AttrType::RESPONSE_ORIGIN)
                .or_else(|| plain(AttrType::SOURCE_ADDRESS)),
            other_address: plain(AttrType::OTHER_ADDRESS)
                .or_else(|| plain(AttrType::CHANGED_ADDRESS)),
            error_code,
            received_at,
        }
    }

    /// The public address: XOR-MAPPED when present (an ALG cannot rewrite it), else MAPPED.
    pub fn public(&self) -> Option<SocketAddr> {
        self.xor_mapped.or(self.mapped)
    }
}

/// True when `addr`, read from an answer that came from `source`, can be an address of this
/// exchange: the same family as `source` (an IPv4-mapped `source`, from a dual-stack socket,
/// counts as IPv4), and over IPv6 neither IPv4-mapped (`::ffff:a.b.c.d` names an IPv4 host,
/// which an IPv6 probe cannot have been sent from or to), link-local (`fe80::/10` is
/// meaningless off its link, and carries no scope in STUN), unspecified nor multicast.
pub fn usable_address(addr: SocketAddr, source: SocketAddr) -> bool {
    let source_v4 = match source.ip() {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
    };
    match addr.ip() {
        IpAddr::V4(_) => source_v4,
        IpAddr::V6(v6) => {
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            !source_v4
                && v6.to_ipv4_mapped().is_none()
                && !link_local
                && !v6.is_unspecified()
                && !v6.is_multicast()
        }
    }
}

/// One probe as sent, and its answer if one came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub transport: Transport,
    pub socket: Socket,
    pub target: Target,
    pub change: ChangeRequest,
    /// The local address the probe left from: port preservation is judged against its port,
    /// "behind a NAT" against its IP (give the connected socket's address, not 0.0.0.0).
    pub local: SocketAddr,
    /// The address the probe was sent to.
    pub to: SocketAddr,
    /// First transmission; retransmissions reuse the transaction ID, so the RTT read from an
    /// answer to a retransmission is an overestimate, never an underestimate.
    pub sent_at: Instant,
    /// TCP: how long the connection took to open (connect to connected); `None` over UDP or
    /// when it never opened. A handshake far slower than its burst-mates' had a SYN or SYN-ACK
    /// lost or delayed, and such a connection's mapping may come late (see
    /// [`allocation::Sample::late`](super::allocation::Sample::late)).
    pub handshake: Option<Duration>,
    pub answer: Option<Answer>,
}

impl Observation {
    /// The public address of an answered, successful probe.
    pub fn public(&self) -> Option<SocketAddr> {
        self.answer
            .as_ref()
            .filter(|a| a.error_code.is_none())
            .and_then(Answer::public)
    }

    /// Time from first send to answer.
    pub fn rtt(&self) -> Option<Duration> {
        let answer = self.answer.as_ref()?;
        Some(answer.received_at.saturating_duration_since(self.sent_at))
    }

    /// A plain Binding (no CHANGE-REQUEST) answered with an address.
    pub fn is_plain_success(&self) -> bool {
        !self.change.any() && self.public().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::stun::{Class, MessageType, Method, TransactionId};
    use crate::wire::MessageBuilder;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn targets_resolve_to_the_four_server_addresses() {
        let (primary, other) = (addr("192.0.2.1:3478"), addr("192.0.2.2:3479"));
        let resolved: Vec<_> = [
            Target::Primary,
            Target::AltPort,
            Target::AltIp,
            Target::AltBoth,
        ]
        .map(|t| t.resolve(primary, other).unwrap())
        .to_vec();
        let expected = [
            "192.0.2.1:3478",
            "192.0.2.1:3479",
            "192.0.2.2:3478",
            "192.0.2.2:3479",
        ];
        assert_eq!(resolved, expected.map(addr).to_vec());
        assert_eq!(Target::OwnPublic.resolve(primary, other), None);
    }

    #[test]
    fn answer_reads_every_address_attribute() {
        let tid = TransactionId([3; 12]);
        let mut buf = Vec::new();
        let mut builder = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::BINDING, Class::Success),
            tid,
        );
        builder
            .xor_address(AttrType::XOR_MAPPED_ADDRESS, &addr("198.51.100.7:40001"))
            .address(AttrType::MAPPED_ADDRESS, &addr("192.168.1.10:5000"))
            .address(AttrType::RESPONSE_ORIGIN, &addr("192.0.2.2:3479"))
            .address(AttrType::OTHER_ADDRESS, &addr("192.0.2.2:3479"));
        let bytes = builder.finish().to_vec();
        let at = Instant::now();
        let answer =
            Answer::from_message(&Message::parse(&bytes).unwrap(), addr("192.0.2.2:3479"), at);
        assert_eq!(answer.xor_mapped, Some(addr("198.51.100.7:40001")));
        assert_eq!(answer.mapped, Some(addr("192.168.1.10:5000")));
        assert_eq!(answer.response_origin, Some(addr("192.0.2.2:3479")));
        assert_eq!(answer.other_address, Some(addr("192.0.2.2:3479")));
        assert_eq!(answer.error_code, None);
        assert_eq!(
            answer.public(),
            answer.xor_mapped,
            "XOR-MAPPED wins over MAPPED"
        );
    }

    /// An answer over IPv6 whose addresses are IPv4-mapped, link-local or of the other family:
    /// each is dropped as if absent, never followed, never a panic.
    #[test]
    fn addresses_that_cannot_be_this_exchanges_are_dropped() {
        let tid = TransactionId([5; 12]);
        let answer_with = |xor: &str, other: &str, source: &str| {
            let mut buf = Vec::new();
            let ty = MessageType::new(Method::BINDING, Class::Success);
            let mut builder = MessageBuilder::new(&mut buf, ty, tid);
            builder
                .xor_address(AttrType::XOR_MAPPED_ADDRESS, &addr(xor))
                .address(AttrType::MAPPED_ADDRESS, &addr(xor))
                .address(AttrType::OTHER_ADDRESS, &addr(other));
            let bytes = builder.finish().to_vec();
            let message = Message::parse(&bytes).unwrap();
            Answer::from_message(&message, addr(source), Instant::now())
        };
        let v6_server = "[2001:db8::1]:3478";
        for bad in [
            "[::ffff:198.51.100.7]:40001",
            "[fe80::1]:40001",
            "[febf::1]:40001",
            "198.51.100.7:40001",
            "[::]:40001",
            "[ff02::1]:40001",
        ] {
            let answer = answer_with(bad, "192.0.2.2:3479", v6_server);
            assert_eq!(answer.public(), None, "{bad}");
            assert_eq!(answer.other_address, None, "{bad}");
        }
        let good = answer_with("[2001:db8:1::7]:40001", "[2001:db8::2]:3479", v6_server);
        assert_eq!(good.public(), Some(addr("[2001:db8:1::7]:40001")));
        assert_eq!(good.other_address, Some(addr("[2001:db8::2]:3479")));
        // Over IPv4, an IPv6 address is the wrong family.
        let v4 = answer_with(
            "[2001:db8:1::7]:40001",
            "[2001:db8::2]:3479",
            "192.0.2.1:3478",
        );
        assert_eq!((v4.public(), v4.other_address), (None, None));
        // A dual-stack socket's view of an IPv4 server is IPv4.
        let mapped_source = answer_with(
            "198.51.100.7:40001",
            "192.0.2.2:3479",
            "[::ffff:192.0.2.1]:3478",
        );
        assert_eq!(mapped_source.public(), Some(addr("198.51.100.7:40001")));
        // fec0::/10 (deprecated site-local) is not link-local: kept.
        assert!(usable_address(addr("[fec0::1]:1"), addr(v6_server)));
    }

    #[test]
    fn rfc3489_answers_fill_the_same_fields() {
        let mut buf = Vec::new();
        let ty = MessageType::new(Method::BINDING, Class::Success);
        let mut builder = MessageBuilder::new_legacy(&mut buf, ty, [9; 16]);
        builder
            .address(AttrType::MAPPED_ADDRESS, &addr("198.51.100.7:40001"))
            .address(AttrType::SOURCE_ADDRESS, &addr("192.0.2.1:3478"))
            .address(AttrType::CHANGED_ADDRESS, &addr("192.0.2.2:3479"));
        let bytes = builder.finish().to_vec();
        let answer = Answer::from_message(
            &Message::parse(&bytes).unwrap(),
            addr("192.0.2.1:3478"),
            Instant::now(),
        );
        assert_eq!(answer.public(), Some(addr("198.51.100.7:40001")));
        assert_eq!(answer.response_origin, Some(addr("192.0.2.1:3478")));
        assert_eq!(answer.other_address, Some(addr("192.0.2.2:3479")));
    }

    #[test]
    fn error_answers_carry_their_code_and_no_public_address() {
        let mut buf = Vec::new();
        let ty = MessageType::new(Method::BINDING, Class::Error);
        let mut builder = MessageBuilder::new(&mut buf, ty, TransactionId([1; 12]));
        builder.error_code(420, "Unknown Attribute");
        let bytes = builder.finish().to_vec();
        let at = Instant::now();
        let answer =
            Answer::from_message(&Message::parse(&bytes).unwrap(), addr("192.0.2.1:3478"), at);
        assert_eq!(answer.error_code, Some(420));
        let observation = Observation {
            transport: Transport::Udp,
            socket: Socket::Filtering,
            target: Target::Primary,
            change: ChangeRequest {
                change_ip: true,
                change_port: true,
            },
            local: addr("192.168.1.10:5000"),
            to: addr("192.0.2.1:3478"),
            sent_at: at,
            handshake: None,
            answer: Some(answer),
        };
        assert_eq!(observation.public(), None);
        assert_eq!(observation.rtt(), Some(Duration::ZERO));
    }
}
