//! natlens's own STUN methods and attributes (documented in `natlens-protocol(7)`).
//!
//! Methods sit in the expert-review range 0x080-0x0FF (RFC 8489 §18.2): higher codes would make
//! the first byte exceed 3, and RFC 7983 demultiplexing and Wireshark would not see STUN. Attributes a receiver must act on
//! (IDs, call IDs, federation path) are comprehension-required (0x4E01...), so an old peer
//! refuses with 420 instead of silently misrouting; the NAT facts an end shares are
//! comprehension-optional (0xCE01...), so a server relays facts it does not know yet.

use std::net::SocketAddr;

use serde::Serialize;

use crate::wire::attr::{self, AttrType, ValueError};
use crate::wire::stun::{Message, Method};
use crate::wire::MessageBuilder;

/// Log in as an ID and hold a session.
pub const LOGIN: Method = Method(0x0C1);
/// Refresh a session (UDP keeps its NAT mapping open with it).
pub const KEEPALIVE: Method = Method(0x0C2);
/// End a session.
pub const LOGOUT: Method = Method(0x0C3);
/// Ask the server to relay NAT facts to a callee and bring back the callee's.
pub const CALL: Method = Method(0x0C4);
/// Introduce a federation link: the dialling server's name.
pub const PEER_HELLO: Method = Method(0x0C5);
/// A hole-punching probe, sent end to end (never to a server): the request carries the sender's
/// nonce, the success response echoes it. The echo, not the probe, proves a path, because only
/// the peer that received our probe can know our nonce.
pub const PUNCH: Method = Method(0x0C6);
/// "Send one packet to my mapped port": proves from outside that a port mapping a gateway
/// granted really admits packets. The request carries [`PROBE_PORT`] and [`PROBE_NONCE`]; the
/// server sends one PROBE-MAPPING indication carrying the nonce to (the request's source IP,
/// PROBE-PORT) over UDP, from its other address (the RFC 5780 alternate IP and port when it has
/// them, else the socket the request came in on), and answers the request with
/// RESPONSE-ORIGIN set to the address the probe left from. It never sends to another IP, sends
/// one packet per request, and spends a token of the requester's answer bucket on it, so it
/// cannot be aimed at a third party or used to amplify. Over a TCP session link the probe still
/// goes by UDP: only UDP mappings can be proven this way.
pub const PROBE_MAPPING: Method = Method(0x0C7);

/// The sender's login ID.
pub const ID: AttrType = AttrType(0x4E01);
/// The other end's ID: the callee in a call request, the caller when delivered.
pub const PEER_ID: AttrType = AttrType(0x4E02);
/// 64-bit call identifier chosen by the caller; ties together retransmissions and hops.
pub const CALL_ID: AttrType = AttrType(0x4E03);
/// A server's federation name.
pub const SERVER_NAME: AttrType = AttrType(0x4E04);
/// One server a forwarded call has passed through; repeated, in order.
pub const VIA: AttrType = AttrType(0x4E05);
/// 8 random bytes an end puts in every PUNCH message of one call, drawn afresh per call. Only
/// the peer that received one of our probes can echo it, so strays and forgeries never count.
/// Comprehension-required: an end that ignored it could not tell a real echo from a stray.
pub const PUNCH_NONCE: AttrType = AttrType(0x4E06);
/// The peer's PUNCH-NONCE, echoed back: in every success response, and in requests once the
/// sender has seen the peer's nonce (the last leg of the three-way handshake). Receiving our own
/// nonce here confirms the path it came back on. Comprehension-required for the same reason.
pub const PUNCH_ECHO: AttrType = AttrType(0x4E07);
/// In a PROBE-MAPPING request, 4 bytes: the UDP port (big-endian) the server's probe goes to,
/// then two reserved zero bytes. Comprehension-required: a server that ignored it would answer
/// without sending anything, which the client would misread as a mapping that does not work.
pub const PROBE_PORT: AttrType = AttrType(0x4E08);
/// In a PROBE-MAPPING request and in the probe it asks for, 8 random bytes the client chose:
/// only the probe carrying them counts as having arrived. Comprehension-required.
pub const PROBE_NONCE: AttrType = AttrType(0x4E09);

/// An end's public address as its server saw it (XOR-encoded; only servers set it).
pub const OBSERVED_ADDRESS: AttrType = AttrType(0xCE01);
/// Transports the end will punch over: bit 0 UDP, bit 1 TCP.
pub const TRANSPORTS: AttrType = AttrType(0xCE02);
/// Signed port allocation delta of the end's NAT.
pub const DELTA: AttrType = AttrType(0xCE03);
/// The end's predicted public ports, most likely first.
pub const PREDICTED_PORTS: AttrType = AttrType(0xCE04);
/// 4 bytes: the end's NAT as its fingerprint saw it (mapping, filtering, port allocation, other
/// hosts' new flows per second), so that both ends plan the same punch from the same facts.
/// Comprehension-optional: without it the peer infers what it can from DELTA and the ports.
pub const NAT_PROFILE: AttrType = AttrType(0xCE05);
/// In a PUNCH request, the address it was sent to (XOR-encoded): the receiver cannot see its
/// own public port for the flow, and learns here which predicted port got through.
pub const PUNCH_TARGET: AttrType = AttrType(0xCE06);
/// In a PUNCH request, 8 bytes: the index of the target in the sender's list of predicted ports,
/// then how many probes the sender had sent, this one included (both unsigned 32-bit). Echoed
/// unchanged in the success response. Diagnostic only: the report says which guess worked.
pub const PUNCH_PROBE: AttrType = AttrType(0xCE07);
/// The end's public address for the punch transport as a port-mapping protocol (NAT-PMP, PCP or
/// UPnP IGD) granted it: 4 bytes (the IP protocol number, 17 UDP or 6 TCP, then three zero
/// bytes) followed by an XOR-MAPPED-ADDRESS-style address. The gateway forwards anything sent
/// there to the end's punch socket, so the peer treats the end as an open port with
/// endpoint-independent filtering. Comprehension-optional: an older end ignores it and plans as
/// before.
pub const PORT_MAPPING: AttrType = AttrType(0xCE08);
/// In a LOGIN success: one address the server listens on, XOR-encoded; repeated, at most one
/// per address family, the family of the login's own first. An end logged in over one family
/// learns here where to fingerprint its other family. A server listening on a wildcard address
/// names none unless `--advertise` names them. Comprehension-optional: an older client ignores
/// it and punches over the login's family only.
pub const SERVER_ADDRESS: AttrType = AttrType(0xCE09);
/// The end's side in the address family other than its OBSERVED-ADDRESS's (the session's): 4
/// bytes (the family, 1 IPv4 or 2 IPv6 as in MAPPED-ADDRESS; flags: bit 0 the end has a public
/// address in that family, bit 1 the profile is measured, bit 2 the delta is; the number of
/// predicted ports, unsigned 16-bit), the 4-byte NAT profile (as NAT-PROFILE), the signed
/// 32-bit delta, the predicted ports (2 bytes each), then, with bit 0, the public address its
/// fingerprint saw in that family, XOR-encoded. Without bit 0 the end says it has no address
/// in that family ("no IPv6"). Comprehension-optional: an older end ignores it and punches over
/// the session's family only.
pub const FAMILY_FACTS: AttrType = AttrType(0xCE0A);
/// Seconds a server keeps a silent UDP session.
pub const EXPIRY: AttrType = AttrType(0xCE10);
/// In a Binding success over TCP that answers CHANGE-REQUEST (the TCP filtering test, RFC 5382):
/// 4 bytes, an unsigned 32-bit value, 1 when the SYN the server crafted from the changed address
/// to the connection's source was answered (a SYN-ACK or RST from that address acknowledging
/// it) within the wait, 0 when not. Comprehension-optional: RESPONSE-ORIGIN says where the SYN
/// came from.
pub const SYN_ANSWERED: AttrType = AttrType(0xCE21);
/// In a Binding request over TCP carrying CHANGE-REQUEST: 4 bytes, an unsigned 32-bit count of
/// milliseconds the server should wait for the answer to its crafted SYN (the client knows its
/// round trip; the server clamps it). Comprehension-optional.
pub const SYN_WAIT: AttrType = AttrType(0xCE22);

/// Longest ID or server name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Most predicted ports one message carries (keeps a CALL well inside one datagram).
pub const MAX_PREDICTED_PORTS: usize = 256;
/// Most servers a call may pass through before it is refused as a loop.
pub const MAX_VIA: usize = 8;

/// Error codes natlens uses beyond RFC 8489's own.
pub mod error {
    pub const BAD_REQUEST: u16 = 400;
    pub const NOT_LOGGED_IN: u16 = 403;
    pub const UNKNOWN_PEER: u16 = 404;
    pub const PEER_TIMEOUT: u16 = 408;
    pub const ID_TAKEN: u16 = 409;
    pub const UNKNOWN_ATTRIBUTE: u16 = 420;
    pub const NO_SESSION: u16 = 437;
    /// RFC 8489 §9.2: credentials missing or wrong; the answer carries REALM and NONCE.
    pub const UNAUTHORIZED: u16 = 401;
    /// RFC 8489 §9.2: the NONCE expired or is not valid for this client; a new one comes along.
    pub const STALE_NONCE: u16 = 438;
    /// `--max-sessions-per-ip` reached (borrowed from TURN's 486 Allocation Quota Reached,
    /// RFC 8656: the same meaning, a per-client quota).
    pub const QUOTA_REACHED: u16 = 486;
    pub const SERVER_FULL: u16 = 503;
    /// A CALL's callee lives on a server (per the shared registry) that cannot be reached.
    pub const HOME_UNREACHABLE: u16 = 500;
    /// A CALL's callee is not here and the shared registry cannot say where it is.
    pub const REGISTRY_UNAVAILABLE: u16 = 503;
}

/// The attribute types natlens methods understand; anything else comprehension-required
/// earns a 420.
pub const NATLENS_REQUIRED: &[AttrType] = &[ID, PEER_ID, CALL_ID, SERVER_NAME, VIA];

/// The comprehension-required attributes a PUNCH message may carry; a PUNCH with any other is
/// dropped (not answered with 420: a punch peer runs the same protocol, and silence costs
/// nothing while a punch retries anyway).
pub const PUNCH_REQUIRED: &[AttrType] = &[CALL_ID, PUNCH_NONCE, PUNCH_ECHO];

/// Checks an ID or server name: 1 to 64 bytes of printable UTF-8 without whitespace, so that it
/// prints unambiguously in logs and tables.
pub fn validate_name(text: &str) -> Result<&str, ValueError> {
    let printable = text.chars().all(|c| !c.is_control() && !c.is_whitespace());
    if text.is_empty() || text.len() > MAX_NAME_LEN || !printable {
        return Err(ValueError::Text);
    }
    Ok(text)
}

/// Reads a name attribute (ID, PEER-ID, SERVER-NAME, VIA).
pub fn read_name<'a>(message: &Message<'a>, kind: AttrType) -> Option<Result<&'a str, ValueError>> {
    let attribute = message.get(kind)?;
    Some(attr::decode_text(attribute.value, MAX_NAME_LEN).and_then(validate_name))
}

/// Reads CALL-ID.
pub fn read_call_id(message: &Message<'_>) -> Option<Result<u64, ValueError>> {
    let attribute = message.get(CALL_ID)?;
    Some(
        <[u8; 8]>::try_from(attribute.value)
            .map(u64::from_be_bytes)
            .map_err(|_| ValueError::Length),
    )
}

/// Transports an end offers to punch over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Transports {
    pub udp: bool,
    pub tcp: bool,
}

impl Transports {
    fn to_byte(self) -> u8 {
        u8::from(self.udp) | (u8::from(self.tcp) << 1)
    }

    fn from_byte(byte: u8) -> Self {
        Transports {
            udp: byte & 1 != 0,
            tcp: byte & 2 != 0,
        }
    }
}

/// RFC 4787 dependence on the remote endpoint, of mapping or of filtering, as NL-NAT-PROFILE
/// carries it. The wire layer keeps its own type so that it depends on nothing above it;
/// `core::punch::profile` converts from the fingerprint's verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dependence {
    EndpointIndependent,
    AddressDependent,
    AddressAndPortDependent,
}

/// How a NAT picks public ports, as NL-NAT-PROFILE carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PortPattern {
    Preserving,
    Sequential,
    Random,
}

/// An end's NAT in four bytes: what the peer needs to plan the same punch as this end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct NatProfile {
    pub mapping: Option<Dependence>,
    pub filtering: Option<Dependence>,
    pub allocation: Option<PortPattern>,
    /// Other hosts' new flows per second through the NAT, saturating at 255.
    pub foreign_flows_per_second: u8,
}

impl NatProfile {
    /// Byte codes: 0 is "not measured", and so is any code this version does not know, so that
    /// a later version can add values without an older end misreading them.
    fn to_bytes(self) -> [u8; 4] {
        let dependence = |d: Option<Dependence>| match d {
            None => 0,
            Some(Dependence::EndpointIndependent) => 1,
            Some(Dependence::AddressDependent) => 2,
            Some(Dependence::AddressAndPortDependent) => 3,
        };
        let pattern = match self.allocation {
            None => 0,
            Some(PortPattern::Preserving) => 1,
            Some(PortPattern::Sequential) => 2,
            Some(PortPattern::Random) => 3,
        };
        [
            dependence(self.mapping),
            dependence(self.filtering),
            pattern,
            self.foreign_flows_per_second,
        ]
    }

    fn from_bytes(value: &[u8]) -> Result<Self, ValueError> {
        let bytes: [u8; 4] = value.try_into().map_err(|_| ValueError::Length)?;
        let dependence = |code| match code {
            1 => Some(Dependence::EndpointIndependent),
            2 => Some(Dependence::AddressDependent),
            3 => Some(Dependence::AddressAndPortDependent),
            _ => None,
        };
        let allocation = match bytes[2] {
            1 => Some(PortPattern::Preserving),
            2 => Some(PortPattern::Sequential),
            3 => Some(PortPattern::Random),
            _ => None,
        };
        Ok(NatProfile {
            mapping: dependence(bytes[0]),
            filtering: dependence(bytes[1]),
            allocation,
            foreign_flows_per_second: bytes[3],
        })
    }
}

/// What one end tells the other through the server: the NAT facts punching needs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct NatFacts {
    /// The public address the end's server saw (filled in by the server, never by the end).
    /// `public_address` in JSON, the one name every output gives it.
    #[serde(rename = "public_address")]
    pub observed: Option<SocketAddr>,
    pub transports: Transports,
    /// Signed allocation delta, when measured.
    pub delta: Option<i32>,
    /// Predicted public ports, most likely first.
    pub predicted_ports: Vec<u16>,
    /// The fingerprint's verdicts, when the end sent them. Left out of JSON when absent, so the
    /// documented `natlens call` and `login` outputs of ends that send none stay as they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<NatProfile>,
    /// A public address a port-mapping protocol granted the end's punch socket, when it holds
    /// one. Left out of JSON when absent, like `profile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_mapping: Option<PortMapping>,
    /// The end's side in the other address family than `observed`'s, when it said (an older
    /// end says nothing). Left out of JSON when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_family: Option<FamilySide>,
}

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    Ipv4,
    Ipv6,
}

impl IpFamily {
    /// The family of `ip`; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) counts as IPv4, the
    /// family its packets really travel in.
    pub fn of(ip: std::net::IpAddr) -> Self {
        match ip.to_canonical() {
            std::net::IpAddr::V4(_) => IpFamily::Ipv4,
            std::net::IpAddr::V6(_) => IpFamily::Ipv6,
        }
    }

    /// The other family.
    pub fn other(self) -> Self {
        match self {
            IpFamily::Ipv4 => IpFamily::Ipv6,
            IpFamily::Ipv6 => IpFamily::Ipv4,
        }
    }

    /// "IPv4" or "IPv6", for people.
    pub fn label(self) -> &'static str {
        match self {
            IpFamily::Ipv4 => "IPv4",
            IpFamily::Ipv6 => "IPv6",
        }
    }

    fn code(self) -> u8 {
        match self {
            IpFamily::Ipv4 => 1,
            IpFamily::Ipv6 => 2,
        }
    }
}

/// An end's NAT facts in one address family besides its session's (NL-FAMILY-FACTS): what its
/// fingerprint in that family saw, or `public: None` when it has no address there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FamilySide {
    pub family: IpFamily,
    /// The public address the end's own fingerprint saw in this family; `None`: the end has
    /// none ("no IPv6").
    #[serde(rename = "public_address")]
    pub public: Option<SocketAddr>,
    pub delta: Option<i32>,
    pub predicted_ports: Vec<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<NatProfile>,
}

impl FamilySide {
    /// "I have no address in `family`."
    pub fn absent(family: IpFamily) -> Self {
        FamilySide {
            family,
            public: None,
            delta: None,
            predicted_ports: Vec::new(),
            profile: None,
        }
    }

    fn encode(&self, builder: &mut MessageBuilder<'_>) {
        let ports = &self.predicted_ports[..self.predicted_ports.len().min(MAX_PREDICTED_PORTS)];
        let flags = u8::from(self.public.is_some())
            | u8::from(self.profile.is_some()) << 1
            | u8::from(self.delta.is_some()) << 2;
        let tid = builder.transaction_id();
        builder.attribute_with(FAMILY_FACTS, |out| {
            out.extend_from_slice(&[self.family.code(), flags]);
            out.extend_from_slice(&(ports.len() as u16).to_be_bytes());
            out.extend_from_slice(&self.profile.unwrap_or_default().to_bytes());
            out.extend_from_slice(&self.delta.unwrap_or(0).to_be_bytes());
            for port in ports {
                out.extend_from_slice(&port.to_be_bytes());
            }
            if let Some(public) = &self.public {
                let start = out.len();
                out.resize(start + attr::address_len(public), 0);
                attr::encode_xor_address(public, &tid, &mut out[start..]);
            }
        });
    }

    /// Reads NL-FAMILY-FACTS. An unknown family code, a port count beyond the value or an
    /// address whose family differs from the one the header names is refused (the whole facts
    /// with it: a peer that says contradictory things is not planned with).
    fn decode(value: &[u8], tid: &crate::wire::TransactionId) -> Result<Self, ValueError> {
        if value.len() < 12 {
            return Err(ValueError::Length);
        }
        let family = match value[0] {
            1 => IpFamily::Ipv4,
            2 => IpFamily::Ipv6,
            _ => return Err(ValueError::Family),
        };
        let flags = value[1];
        let count = usize::from(u16::from_be_bytes([value[2], value[3]]));
        let ports_end = 12 + 2 * count;
        if count > MAX_PREDICTED_PORTS || value.len() < ports_end {
            return Err(ValueError::Length);
        }
        let predicted_ports = value[12..ports_end]
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .collect();
        let public = if flags & 1 != 0 {
            let public = attr::decode_xor_address(&value[ports_end..], tid)?;
            // The family named must be the address's own (an IPv4-mapped IPv6 address is
            // not IPv6 either: it travels as IPv4).
            if public.is_ipv6() != (family == IpFamily::Ipv6) {
                return Err(ValueError::Family);
            }
            Some(public)
        } else if value.len() != ports_end {
            return Err(ValueError::Length);
        } else {
            None
        };
        let delta = i32::from_be_bytes([value[8], value[9], value[10], value[11]]);
        Ok(FamilySide {
            family,
            public,
            delta: (flags & 4 != 0).then_some(delta),
            predicted_ports,
            profile: (flags & 2 != 0)
                .then(|| NatProfile::from_bytes(&value[4..8]))
                .transpose()?,
        })
    }
}

/// Appends the server's listening addresses to a LOGIN success (NL-SERVER-ADDRESS).
pub fn encode_server_addresses(builder: &mut MessageBuilder<'_>, addresses: &[SocketAddr]) {
    for address in addresses {
        builder.xor_address(SERVER_ADDRESS, address);
    }
}

/// Reads every NL-SERVER-ADDRESS of a LOGIN success; one that does not decode is skipped (the
/// attribute is optional: a login never fails over it).
pub fn read_server_addresses(message: &Message<'_>) -> Vec<SocketAddr> {
    let tid = message.transaction_id();
    message
        .attributes()
        .filter(|a| a.kind == SERVER_ADDRESS)
        .filter_map(|a| attr::decode_xor_address(a.value, &tid).ok())
        .collect()
}

/// A port mapping an end's gateway granted: anything sent to `external` over `transport`
/// reaches the end's punch socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PortMapping {
    pub external: SocketAddr,
    pub transport: MappedTransport,
}

/// The transport of a [`PortMapping`] (the wire layer keeps its own type, as with
/// [`Dependence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MappedTransport {
    Udp,
    Tcp,
}

impl PortMapping {
    fn encode(&self, builder: &mut MessageBuilder<'_>) {
        let protocol = match self.transport {
            MappedTransport::Udp => 17,
            MappedTransport::Tcp => 6,
        };
        let tid = builder.transaction_id();
        builder.attribute_with(PORT_MAPPING, |out| {
            out.extend_from_slice(&[protocol, 0, 0, 0]);
            let start = out.len();
            out.resize(start + attr::address_len(&self.external), 0);
            attr::encode_xor_address(&self.external, &tid, &mut out[start..]);
        });
    }

    /// `None` for a protocol this version does not know (a later one may map others).
    fn decode(value: &[u8], tid: &crate::wire::TransactionId) -> Result<Option<Self>, ValueError> {
        if value.len() < 4 {
            return Err(ValueError::Length);
        }
        let external = attr::decode_xor_address(&value[4..], tid)?;
        let transport = match value[0] {
            17 => MappedTransport::Udp,
            6 => MappedTransport::Tcp,
            _ => return Ok(None),
        };
        Ok(Some(PortMapping {
            external,
            transport,
        }))
    }
}

impl NatFacts {
    /// Appends the facts an end itself may state (everything but `observed`).
    pub fn encode_claims(&self, builder: &mut MessageBuilder<'_>) {
        builder.attribute(TRANSPORTS, &[self.transports.to_byte(), 0, 0, 0]);
        if let Some(delta) = self.delta {
            builder.attribute(DELTA, &delta.to_be_bytes());
        }
        if !self.predicted_ports.is_empty() {
            let ports =
                &self.predicted_ports[..self.predicted_ports.len().min(MAX_PREDICTED_PORTS)];
            builder.attribute_with(PREDICTED_PORTS, |out| {
                for port in ports {
                    out.extend_from_slice(&port.to_be_bytes());
                }
            });
        }
        if let Some(profile) = self.profile {
            builder.attribute(NAT_PROFILE, &profile.to_bytes());
        }
        if let Some(mapping) = &self.port_mapping {
            mapping.encode(builder);
        }
        if let Some(side) = &self.other_family {
            side.encode(builder);
        }
    }

    /// Appends everything, `observed` included (servers only).
    pub fn encode(&self, builder: &mut MessageBuilder<'_>) {
        if let Some(observed) = &self.observed {
            builder.xor_address(OBSERVED_ADDRESS, observed);
        }
        self.encode_claims(builder);
    }

    /// Reads the facts from a message; absent attributes stay `None` / empty.
    pub fn decode(message: &Message<'_>) -> Result<Self, ValueError> {
        let mut facts = NatFacts::default();
        if let Some(attribute) = message.get(OBSERVED_ADDRESS) {
            facts.observed = Some(attr::decode_xor_address(
                attribute.value,
                &message.transaction_id(),
            )?);
        }
        if let Some(attribute) = message.get(TRANSPORTS) {
            let byte = *attribute.value.first().ok_or(ValueError::Length)?;
            facts.transports = Transports::from_byte(byte);
        }
        if let Some(attribute) = message.get(DELTA) {
            facts.delta = Some(i32::from_be_bytes(
                attribute.value.try_into().map_err(|_| ValueError::Length)?,
            ));
        }
        if let Some(attribute) = message.get(PREDICTED_PORTS) {
            if attribute.value.len() % 2 != 0 || attribute.value.len() / 2 > MAX_PREDICTED_PORTS {
                return Err(ValueError::Length);
            }
            facts.predicted_ports = attribute
                .value
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
        }
        if let Some(attribute) = message.get(NAT_PROFILE) {
            facts.profile = Some(NatProfile::from_bytes(attribute.value)?);
        }
        if let Some(attribute) = message.get(PORT_MAPPING) {
            facts.port_mapping = PortMapping::decode(attribute.value, &message.transaction_id())?;
        }
        if let Some(attribute) = message.get(FAMILY_FACTS) {
            let side = FamilySide::decode(attribute.value, &message.transaction_id())?;
            facts.other_family = Some(side);
        }
        Ok(facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::stun::{Class, MessageType, TransactionId};

    #[test]
    fn facts_round_trip() {
        let facts = NatFacts {
            observed: Some("198.51.100.7:40001".parse().unwrap()),
            transports: Transports {
                udp: true,
                tcp: true,
            },
            delta: Some(-2),
            predicted_ports: vec![40003, 40005, 40007],
            profile: Some(NatProfile {
                mapping: Some(Dependence::AddressAndPortDependent),
                filtering: Some(Dependence::AddressDependent),
                allocation: Some(PortPattern::Sequential),
                foreign_flows_per_second: 20,
            }),
            port_mapping: Some(PortMapping {
                external: "198.51.100.7:51000".parse().unwrap(),
                transport: MappedTransport::Udp,
            }),
            other_family: Some(FamilySide {
                family: IpFamily::Ipv6,
                public: Some("[2001:db8:1::7]:40001".parse().unwrap()),
                delta: None,
                predicted_ports: vec![40001],
                profile: Some(NatProfile {
                    mapping: Some(Dependence::EndpointIndependent),
                    filtering: Some(Dependence::AddressAndPortDependent),
                    allocation: Some(PortPattern::Preserving),
                    foreign_flows_per_second: 0,
                }),
            }),
        };
        let mut buf = Vec::new();
        let mut builder = MessageBuilder::new(
            &mut buf,
            MessageType::new(CALL, Class::Request),
            TransactionId([9; 12]),
        );
        facts.encode(&mut builder);
        let bytes = builder.finish().to_vec();
        let message = Message::parse(&bytes).unwrap();
        assert_eq!(NatFacts::decode(&message).unwrap(), facts);
    }

    fn encoded_side(side: &FamilySide, tid: TransactionId) -> Vec<u8> {
        let mut buf = Vec::new();
        let ty = MessageType::new(CALL, Class::Request);
        let mut builder = MessageBuilder::new(&mut buf, ty, tid);
        side.encode(&mut builder);
        let bytes = builder.finish().to_vec();
        Message::parse(&bytes)
            .unwrap()
            .get(FAMILY_FACTS)
            .unwrap()
            .value
            .to_vec()
    }

    #[test]
    fn family_sides_round_trip_present_or_absent() {
        let tid = TransactionId([5; 12]);
        let sides = [
            FamilySide::absent(IpFamily::Ipv6),
            FamilySide {
                family: IpFamily::Ipv4,
                public: Some("203.0.113.9:50000".parse().unwrap()),
                delta: Some(-1),
                predicted_ports: vec![50001, 50002],
                profile: None,
            },
        ];
        for side in sides {
            let value = encoded_side(&side, tid);
            assert_eq!(FamilySide::decode(&value, &tid), Ok(side));
        }
    }

    #[test]
    fn contradictory_family_sides_are_refused() {
        let tid = TransactionId([5; 12]);
        let v6 = FamilySide {
            family: IpFamily::Ipv6,
            public: Some("[2001:db8::9]:50000".parse().unwrap()),
            ..FamilySide::absent(IpFamily::Ipv6)
        };
        let value = encoded_side(&v6, tid);
        // Header says IPv4, address is IPv6.
        let mut lying = value.clone();
        lying[0] = 1;
        assert_eq!(FamilySide::decode(&lying, &tid), Err(ValueError::Family));
        // An unknown family code.
        lying[0] = 3;
        assert_eq!(FamilySide::decode(&lying, &tid), Err(ValueError::Family));
        // More ports counted than carried.
        let mut lying = value.clone();
        lying[3] = 200;
        assert!(FamilySide::decode(&lying, &tid).is_err());
        // Absent, yet with trailing bytes.
        let mut lying = value.clone();
        lying[1] = 0;
        assert_eq!(FamilySide::decode(&lying, &tid), Err(ValueError::Length));
        // Truncated anywhere: an error, never a panic.
        for end in 0..value.len() {
            assert!(FamilySide::decode(&value[..end], &tid).is_err(), "{end}");
        }
    }

    #[test]
    fn server_addresses_round_trip_and_bad_ones_are_skipped() {
        let addresses: Vec<SocketAddr> = vec![
            "192.0.2.1:3478".parse().unwrap(),
            "[2001:db8::1]:3478".parse().unwrap(),
        ];
        let mut buf = Vec::new();
        let ty = MessageType::new(LOGIN, Class::Success);
        let mut builder = MessageBuilder::new(&mut buf, ty, TransactionId([1; 12]));
        encode_server_addresses(&mut builder, &addresses);
        builder.attribute(SERVER_ADDRESS, &[0, 9, 0, 1]);
        let bytes = builder.finish().to_vec();
        let message = Message::parse(&bytes).unwrap();
        assert_eq!(read_server_addresses(&message), addresses);
    }

    #[test]
    fn unknown_profile_codes_read_as_not_measured() {
        let profile = NatProfile::from_bytes(&[1, 9, 7, 3]).unwrap();
        assert_eq!(profile.mapping, Some(Dependence::EndpointIndependent));
        assert_eq!((profile.filtering, profile.allocation), (None, None));
        assert_eq!(profile.foreign_flows_per_second, 3);
        assert_eq!(NatProfile::from_bytes(&[1, 2, 3]), Err(ValueError::Length));
        let all = NatProfile {
            mapping: Some(Dependence::AddressDependent),
            filtering: Some(Dependence::AddressAndPortDependent),
            allocation: Some(PortPattern::Random),
            foreign_flows_per_second: 255,
        };
        assert_eq!(NatProfile::from_bytes(&all.to_bytes()), Ok(all));
        assert_eq!(NatProfile::default().to_bytes(), [0; 4]);
    }

    #[test]
    fn port_mappings_round_trip_and_unknown_protocols_are_ignored() {
        let tid = crate::wire::TransactionId([3; 12]);
        for external in ["203.0.113.5:40000", "[2001:db8::5]:40000"] {
            let mapping = PortMapping {
                external: external.parse().unwrap(),
                transport: MappedTransport::Tcp,
            };
            let mut buf = Vec::new();
            let ty = MessageType::new(CALL, Class::Request);
            let mut builder = MessageBuilder::new(&mut buf, ty, tid);
            mapping.encode(&mut builder);
            let bytes = builder.finish().to_vec();
            let message = Message::parse(&bytes).unwrap();
            let value = message.get(PORT_MAPPING).unwrap().value;
            assert_eq!(PortMapping::decode(value, &tid), Ok(Some(mapping)));
            let mut other = value.to_vec();
            other[0] = 132; // SCTP: not ours to read.
            assert_eq!(PortMapping::decode(&other, &tid), Ok(None));
        }
        assert_eq!(PortMapping::decode(&[17, 0], &tid), Err(ValueError::Length));
        assert!(PortMapping::decode(&[17, 0, 0, 0, 0, 1], &tid).is_err());
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("alice").is_ok());
        assert!(validate_name("δ-router_7").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("two words").is_err());
        assert!(validate_name("bell\u{7}").is_err());
        assert!(validate_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn natlens_types_sit_in_the_right_ranges() {
        for kind in NATLENS_REQUIRED.iter().chain(PUNCH_REQUIRED) {
            assert!(kind.is_comprehension_required(), "{kind:?}");
        }
        let optional = [
            OBSERVED_ADDRESS,
            TRANSPORTS,
            DELTA,
            PREDICTED_PORTS,
            NAT_PROFILE,
            PUNCH_TARGET,
            PUNCH_PROBE,
            PORT_MAPPING,
            SERVER_ADDRESS,
            FAMILY_FACTS,
            EXPIRY,
        ];
        for kind in optional {
            assert!(!kind.is_comprehension_required(), "{kind:?}");
        }
        for kind in [PROBE_PORT, PROBE_NONCE] {
            assert!(kind.is_comprehension_required(), "{kind:?}");
        }
        for method in [
            LOGIN,
            KEEPALIVE,
            LOGOUT,
            CALL,
            PEER_HELLO,
            PUNCH,
            PROBE_MAPPING,
        ] {
            assert!((0x080..0x100).contains(&method.0));
            for class in [
                Class::Request,
                Class::Indication,
                Class::Success,
                Class::Error,
            ] {
                let ty = MessageType::new(method, class).to_u16();
                assert!(ty >> 8 <= 3, "RFC 7983: first byte 0-3 is STUN");
            }
        }
    }
}
