//! PCP (RFC 6887), version 2, over UDP to the gateway's port 5351: the common header, ANNOUNCE
//! and MAP. Addresses are 16 bytes; IPv4 ones are IPv4-mapped (`::ffff:a.b.c.d`). Options after
//! the opcode's payload are skipped by their length (each padded to 4 bytes); a truncated option
//! is an error.
//!
//! ```text
//! request header (24):  | ver 2 | R=0, opcode (7 bits) | reserved (u16) | lifetime (u32) |
//!                       | client address (16) |
//! response header (24): | ver 2 | R=1, opcode | reserved (u8) | result (u8) | lifetime (u32) |
//!                       | epoch (u32) | reserved (12) |
//! MAP payload (36):     | nonce (12) | protocol (u8) | reserved (3) | internal port (u16) |
//!                       | external port (u16) | external address (16) |
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The only PCP version natlens speaks.
pub const VERSION: u8 = 2;
/// Bytes of the common request or response header.
pub const HEADER_LEN: usize = 24;
/// Bytes of the MAP opcode's payload.
pub const MAP_PAYLOAD_LEN: usize = 36;
/// RFC 6887 §7: a PCP message is at most 1100 bytes.
pub const MAX_MESSAGE_LEN: usize = 1100;
/// Bytes of a MAP nonce.
pub const NONCE_LEN: usize = 12;
/// A MAP nonce. (Spelled with a literal length: `[u8; NONCE_LEN]` in closures crashed rustc 1.95
/// with "broken MIR".)
pub type Nonce = [u8; 12];
const RESPONSE_BIT: u8 = 0x80;
/// IANA protocol numbers MAP carries.
pub const PROTOCOL_TCP: u8 = 6;
pub const PROTOCOL_UDP: u8 = 17;

mod field {
    use std::ops::Range;
    pub const VERSION: usize = 0;
    pub const OPCODE: usize = 1;
    pub const RESULT: usize = 3;
    pub const LIFETIME: Range<usize> = 4..8;
    pub const CLIENT_ADDRESS: Range<usize> = 8..24;
    pub const EPOCH: Range<usize> = 8..12;
    // MAP payload, relative to its start.
    pub const NONCE: Range<usize> = 0..12;
    pub const PROTOCOL: usize = 12;
    pub const INTERNAL_PORT: Range<usize> = 16..18;
    pub const EXTERNAL_PORT: Range<usize> = 18..20;
    pub const EXTERNAL_ADDRESS: Range<usize> = 20..36;
}

/// PCP opcodes natlens knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Announce,
    Map,
    Peer,
    Unknown(u8),
}

impl Opcode {
    pub fn from_u8(code: u8) -> Opcode {
        match code {
            0 => Opcode::Announce,
            1 => Opcode::Map,
            2 => Opcode::Peer,
            other => Opcode::Unknown(other),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            Opcode::Announce => 0,
            Opcode::Map => 1,
            Opcode::Peer => 2,
            Opcode::Unknown(other) => other & !RESPONSE_BIT,
        }
    }
}

/// RFC 6887 §7.4 result codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    Success,
    UnsupportedVersion,
    /// The server speaks PCP but refuses this client (mapping switched off or not allowed).
    NotAuthorized,
    MalformedRequest,
    UnsupportedOpcode,
    UnsupportedOption,
    MalformedOption,
    NetworkFailure,
    NoResources,
    UnsupportedProtocol,
    UserExceededQuota,
    CannotProvideExternal,
    /// The client address in the request is not the source the server saw: a NAT between the
    /// host and the PCP server.
    AddressMismatch,
    ExcessiveRemotePeers,
    Unknown(u8),
}

const RESULT_CODES: [ResultCode; 14] = [
    ResultCode::Success,
    ResultCode::UnsupportedVersion,
    ResultCode::NotAuthorized,
    ResultCode::MalformedRequest,
    ResultCode::UnsupportedOpcode,
    ResultCode::UnsupportedOption,
    ResultCode::MalformedOption,
    ResultCode::NetworkFailure,
    ResultCode::NoResources,
    ResultCode::UnsupportedProtocol,
    ResultCode::UserExceededQuota,
    ResultCode::CannotProvideExternal,
    ResultCode::AddressMismatch,
    ResultCode::ExcessiveRemotePeers,
];

impl ResultCode {
    pub fn from_u8(code: u8) -> ResultCode {
        RESULT_CODES
            .get(usize::from(code))
            .copied()
            .unwrap_or(ResultCode::Unknown(code))
    }

    pub fn to_u8(self) -> u8 {
        match self {
            ResultCode::Unknown(code) => code,
            known => RESULT_CODES
                .iter()
                .position(|c| *c == known)
                .expect("listed") as u8,
        }
    }

    /// RFC 6887's name (upper snake case, as the RFC spells it).
    pub fn name(self) -> String {
        let name = match self {
            ResultCode::Success => "SUCCESS",
            ResultCode::UnsupportedVersion => "UNSUPP_VERSION",
            ResultCode::NotAuthorized => "NOT_AUTHORIZED",
            ResultCode::MalformedRequest => "MALFORMED_REQUEST",
            ResultCode::UnsupportedOpcode => "UNSUPP_OPCODE",
            ResultCode::UnsupportedOption => "UNSUPP_OPTION",
            ResultCode::MalformedOption => "MALFORMED_OPTION",
            ResultCode::NetworkFailure => "NETWORK_FAILURE",
            ResultCode::NoResources => "NO_RESOURCES",
            ResultCode::UnsupportedProtocol => "UNSUPP_PROTOCOL",
            ResultCode::UserExceededQuota => "USER_EX_QUOTA",
            ResultCode::CannotProvideExternal => "CANNOT_PROVIDE_EXTERNAL",
            ResultCode::AddressMismatch => "ADDRESS_MISMATCH",
            ResultCode::ExcessiveRemotePeers => "EXCESSIVE_REMOTE_PEERS",
            ResultCode::Unknown(code) => return format!("RESULT_{code}"),
        };
        name.to_string()
    }
}

/// Why bytes are not a PCP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    Short(usize),
    /// Over 1100 bytes or not a multiple of 4.
    Oversized(usize),
    Misaligned(usize),
    Version(u8),
    /// A request where a response was expected, or the reverse.
    Direction,
    /// An option's length runs past the message.
    TruncatedOption,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Short(len) => write!(f, "a PCP message of {len} bytes is too short"),
            DecodeError::Oversized(len) => write!(f, "a PCP message of {len} bytes is too long"),
            DecodeError::Misaligned(len) => {
                write!(f, "a PCP message of {len} bytes (not a multiple of 4)")
            }
            DecodeError::Version(v) => write!(f, "PCP version {v} (expected 2)"),
            DecodeError::Direction => {
                f.write_str("a PCP request where a response was expected, or the reverse")
            }
            DecodeError::TruncatedOption => f.write_str("a PCP option runs past the message"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The MAP opcode's payload (the same fields in a request and its response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapRepr {
    pub nonce: Nonce,
    /// IANA protocol number ([`PROTOCOL_UDP`], [`PROTOCOL_TCP`]); 0 means all.
    pub protocol: u8,
    pub internal_port: u16,
    /// Request: suggested (0 none). Response: assigned.
    pub external_port: u16,
    /// Request: suggested (unspecified none). Response: assigned.
    pub external_address: IpAddr,
}

impl MapRepr {
    fn emit(&self, out: &mut [u8]) {
        out[field::NONCE].copy_from_slice(&self.nonce);
        out[field::PROTOCOL] = self.protocol;
        out[field::INTERNAL_PORT].copy_from_slice(&self.internal_port.to_be_bytes());
        out[field::EXTERNAL_PORT].copy_from_slice(&self.external_port.to_be_bytes());
        out[field::EXTERNAL_ADDRESS].copy_from_slice(&address_bytes(self.external_address));
    }

    fn parse(payload: &[u8]) -> MapRepr {
        MapRepr {
            nonce: payload[field::NONCE].try_into().expect("checked length"),
            protocol: payload[field::PROTOCOL],
            internal_port: be16(&payload[field::INTERNAL_PORT]),
            external_port: be16(&payload[field::EXTERNAL_PORT]),
            external_address: address_from(&payload[field::EXTERNAL_ADDRESS]),
        }
    }
}

/// A PCP request (natlens sends ANNOUNCE and MAP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRepr {
    pub lifetime_secs: u32,
    /// The client's own address as it knows it: the server answers ADDRESS_MISMATCH when it
    /// saw another source.
    pub client_address: IpAddr,
    /// `None`: ANNOUNCE.
    pub map: Option<MapRepr>,
}

impl RequestRepr {
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + if self.map.is_some() {
                MAP_PAYLOAD_LEN
            } else {
                0
            }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.buffer_len()];
        out[field::VERSION] = VERSION;
        out[field::OPCODE] = if self.map.is_some() { 1 } else { 0 };
        out[field::LIFETIME].copy_from_slice(&self.lifetime_secs.to_be_bytes());
        out[field::CLIENT_ADDRESS].copy_from_slice(&address_bytes(self.client_address));
        if let Some(map) = &self.map {
            map.emit(&mut out[HEADER_LEN..]);
        }
        out
    }

    /// Reads a request (a fake server's side; also the round-trip tests). Only MAP has a
    /// payload natlens reads; any other opcode reads as ANNOUNCE-like (header only).
    pub fn parse(bytes: &[u8]) -> Result<RequestRepr, DecodeError> {
        check_frame(bytes)?;
        if bytes[field::OPCODE] & RESPONSE_BIT != 0 {
            return Err(DecodeError::Direction);
        }
        let map = match Opcode::from_u8(bytes[field::OPCODE]) {
            Opcode::Map => Some(MapRepr::parse(payload(bytes, MAP_PAYLOAD_LEN)?)),
            _ => None,
        };
        Ok(RequestRepr {
            lifetime_secs: be32(&bytes[field::LIFETIME]),
            client_address: address_from(&bytes[field::CLIENT_ADDRESS]),
            map,
        })
    }
}

/// A PCP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseRepr {
    pub opcode: Opcode,
    pub result: ResultCode,
    /// Seconds granted (an error's: how long the error is expected to last).
    pub lifetime_secs: u32,
    /// Seconds since the server's state was (re)initialised.
    pub epoch: u32,
    /// A MAP response's payload; `None` for others, or for an error answer too short to carry
    /// one.
    pub map: Option<MapRepr>,
}

impl ResponseRepr {
    pub fn parse(bytes: &[u8]) -> Result<ResponseRepr, DecodeError> {
        check_frame(bytes)?;
        let opcode_byte = bytes[field::OPCODE];
        if opcode_byte & RESPONSE_BIT == 0 {
            return Err(DecodeError::Direction);
        }
        let opcode = Opcode::from_u8(opcode_byte & !RESPONSE_BIT);
        let result = ResultCode::from_u8(bytes[field::RESULT]);
        let map = match opcode {
            Opcode::Map if bytes.len() >= HEADER_LEN + MAP_PAYLOAD_LEN => {
                Some(MapRepr::parse(payload(bytes, MAP_PAYLOAD_LEN)?))
            }
            Opcode::Map if result == ResultCode::Success => {
                return Err(DecodeError::Short(bytes.len()))
            }
            _ => None,
        };
        Ok(ResponseRepr {
            opcode,
            result,
            lifetime_secs: be32(&bytes[field::LIFETIME]),
            epoch: be32(&bytes[field::EPOCH]),
            map,
        })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + if self.map.is_some() {
                MAP_PAYLOAD_LEN
            } else {
                0
            }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.buffer_len()];
        out[field::VERSION] = VERSION;
        out[field::OPCODE] = RESPONSE_BIT | self.opcode.to_u8();
        out[field::RESULT] = self.result.to_u8();
        out[field::LIFETIME].copy_from_slice(&self.lifetime_secs.to_be_bytes());
        out[field::EPOCH].copy_from_slice(&self.epoch.to_be_bytes());
        if let Some(map) = &self.map {
            map.emit(&mut out[HEADER_LEN..]);
        }
        out
    }
}

/// Length, alignment and version checks every message passes, then the options are walked.
fn check_frame(bytes: &[u8]) -> Result<(), DecodeError> {
    let len = bytes.len();
    if len < HEADER_LEN {
        // A NAT-PMP-only gateway answers a PCP request with an 8-byte NAT-PMP
        // "unsupported version": report the version, which says more than the length.
        if len >= 1 && bytes[field::VERSION] != VERSION {
            return Err(DecodeError::Version(bytes[field::VERSION]));
        }
        return Err(DecodeError::Short(len));
    }
    if len > MAX_MESSAGE_LEN {
        return Err(DecodeError::Oversized(len));
    }
    if len % 4 != 0 {
        return Err(DecodeError::Misaligned(len));
    }
    if bytes[field::VERSION] != VERSION {
        return Err(DecodeError::Version(bytes[field::VERSION]));
    }
    Ok(())
}

/// The opcode's payload of `len` bytes after the header, once the options after it are found
/// well-formed (and skipped: natlens sends none and needs none back).
fn payload(bytes: &[u8], len: usize) -> Result<&[u8], DecodeError> {
    let end = HEADER_LEN + len;
    let payload = bytes
        .get(HEADER_LEN..end)
        .ok_or(DecodeError::Short(bytes.len()))?;
    skip_options(&bytes[end..])?;
    Ok(payload)
}

/// Walks the options: code (u8), reserved (u8), length (u16), data padded to 4 bytes.
fn skip_options(mut rest: &[u8]) -> Result<(), DecodeError> {
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(DecodeError::TruncatedOption);
        }
        let data_len = usize::from(be16(&rest[2..4]));
        let padded = 4 + data_len.div_ceil(4) * 4;
        rest = rest.get(padded..).ok_or(DecodeError::TruncatedOption)?;
    }
    Ok(())
}

fn be16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes(bytes.try_into().expect("checked length"))
}

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes.try_into().expect("checked length"))
}

/// 16 bytes for an address; IPv4 as IPv4-mapped IPv6.
pub fn address_bytes(address: IpAddr) -> [u8; 16] {
    match address {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// An address from 16 bytes; IPv4-mapped ones come back as IPv4.
pub fn address_from(bytes: &[u8]) -> IpAddr {
    let octets: [u8; 16] = bytes.try_into().expect("checked length");
    let v6 = Ipv6Addr::from(octets);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// The unspecified IPv4 address in PCP's form (`::ffff:0.0.0.0`): "no suggestion".
pub fn unspecified_v4() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn map_request() -> RequestRepr {
        RequestRepr {
            lifetime_secs: 60,
            client_address: "192.0.2.10".parse().unwrap(),
            map: Some(MapRepr {
                nonce: [7; 12],
                protocol: PROTOCOL_UDP,
                internal_port: 40000,
                external_port: 0,
                external_address: unspecified_v4(),
            }),
        }
    }

    #[test]
    fn map_request_layout_follows_rfc_6887() {
        let bytes = map_request().to_bytes();
        assert_eq!(bytes.len(), 60);
        assert_eq!(&bytes[..8], [2, 1, 0, 0, 0, 0, 0, 60]);
        assert_eq!(
            &bytes[8..24],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 10]
        );
        assert_eq!(&bytes[24..36], [7; 12]);
        assert_eq!(&bytes[36..42], [17, 0, 0, 0, 0x9c, 0x40]);
        assert_eq!(
            &bytes[44..60],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]
        );
    }

    #[test]
    fn announce_is_a_bare_header() {
        let announce = RequestRepr {
            lifetime_secs: 0,
            client_address: "192.0.2.10".parse().unwrap(),
            map: None,
        };
        let bytes = announce.to_bytes();
        assert_eq!(bytes.len(), HEADER_LEN);
        assert_eq!(bytes[1], 0);
        assert_eq!(RequestRepr::parse(&bytes), Ok(announce));
    }

    #[test]
    fn map_response_decodes_with_options_skipped() {
        let response = ResponseRepr {
            opcode: Opcode::Map,
            result: ResultCode::Success,
            lifetime_secs: 60,
            epoch: 1234,
            map: Some(MapRepr {
                external_port: 40001,
                external_address: "203.0.113.1".parse().unwrap(),
                ..map_request().map.unwrap()
            }),
        };
        let mut bytes = response.to_bytes();
        // A THIRD_PARTY-like option with 5 bytes of data, padded to 8.
        bytes.extend_from_slice(&[1, 0, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0]);
        assert_eq!(ResponseRepr::parse(&bytes), Ok(response));
        bytes.truncate(bytes.len() - 4);
        assert_eq!(
            ResponseRepr::parse(&bytes),
            Err(DecodeError::TruncatedOption)
        );
    }

    #[test]
    fn error_answers_name_their_result() {
        let mut bytes = vec![0u8; HEADER_LEN];
        bytes[0] = 2;
        bytes[1] = 0x81;
        bytes[3] = 12;
        let response = ResponseRepr::parse(&bytes).unwrap();
        assert_eq!(response.result, ResultCode::AddressMismatch);
        assert_eq!(response.result.name(), "ADDRESS_MISMATCH");
        assert_eq!(response.map, None);
        bytes[3] = 2;
        assert_eq!(
            ResponseRepr::parse(&bytes).unwrap().result.name(),
            "NOT_AUTHORIZED"
        );
    }

    #[test]
    fn every_result_code_is_named_and_round_trips() {
        for code in 0..=255u8 {
            let result = ResultCode::from_u8(code);
            assert_eq!(result.to_u8(), code);
            assert_eq!(result.name().starts_with("RESULT_"), code > 13, "{code}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(ResponseRepr::parse(&[]), Err(DecodeError::Short(0)));
        // A NAT-PMP "unsupported version" answer to a PCP request.
        assert_eq!(
            ResponseRepr::parse(&[0, 129, 0, 1, 0, 0, 0, 5]),
            Err(DecodeError::Version(0))
        );
        assert_eq!(
            ResponseRepr::parse(&[2; 26]),
            Err(DecodeError::Misaligned(26))
        );
        assert_eq!(
            ResponseRepr::parse(&[2; 1104]),
            Err(DecodeError::Oversized(1104))
        );
        assert_eq!(
            ResponseRepr::parse(&map_request().to_bytes()),
            Err(DecodeError::Direction)
        );
    }

    proptest! {
        #[test]
        fn requests_round_trip(lifetime in any::<u32>(), nonce in any::<[u8; 12]>(), protocol in any::<u8>(),
                               internal in any::<u16>(), external in any::<u16>(), v4 in any::<u32>(),
                               v6 in any::<u128>(), announce in any::<bool>()) {
            let map = MapRepr { nonce, protocol, internal_port: internal, external_port: external,
                                external_address: IpAddr::V6(Ipv6Addr::from(v6)) };
            let mut map = map;
            // IPv4-mapped v6 reads back as v4: compare in the canonical form.
            map.external_address = address_from(&address_bytes(map.external_address));
            let request = RequestRepr { lifetime_secs: lifetime,
                                        client_address: IpAddr::V4(Ipv4Addr::from(v4)),
                                        map: (!announce).then_some(map) };
            prop_assert_eq!(RequestRepr::parse(&request.to_bytes()), Ok(request));
            let response = ResponseRepr { opcode: if announce { Opcode::Announce } else { Opcode::Map },
                                          result: ResultCode::from_u8(protocol), lifetime_secs: lifetime,
                                          epoch: v4, map: (!announce).then_some(map) };
            prop_assert_eq!(ResponseRepr::parse(&response.to_bytes()), Ok(response));
        }

        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let _ = ResponseRepr::parse(&bytes);
            let _ = RequestRepr::parse(&bytes);
        }
    }
}
