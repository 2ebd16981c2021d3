//! NAT-PMP (RFC 6886): the gateway's external address and UDP/TCP port mappings, over UDP to the
//! gateway's port 5351. Version 0 only; every field is big-endian.
//!
//! ```text
//! external address request:  | ver 0 | op 0 |
//! external address response: | ver 0 | op 128 | result (u16) | epoch (u32) | address (4) |
//! map request:  | ver 0 | op 1 udp / 2 tcp | reserved (u16) | internal port | suggested
//!               external port | requested lifetime (u32, s) |
//! map response: | ver 0 | op 129 / 130 | result (u16) | epoch (u32) | internal port |
//!               mapped external port | lifetime granted (u32, s) |
//! ```
//!
//! A gateway that refuses a request may answer with the first 8 bytes only (version, opcode,
//! result, epoch): [`ResponseRepr::parse`] accepts that short form when the result is not
//! success. Everything else that is shorter, longer, of another version or a request opcode is
//! an error, never a panic.

use std::fmt;
use std::net::Ipv4Addr;

use crate::core::Transport;

/// The gateway's NAT-PMP (and PCP) port.
pub const SERVER_PORT: u16 = 5351;
/// The only NAT-PMP version.
pub const VERSION: u8 = 0;
/// Bytes of the external address request.
pub const EXTERNAL_REQUEST_LEN: usize = 2;
/// Bytes of a map request.
pub const MAP_REQUEST_LEN: usize = 12;
/// Bytes of the common response head (version, opcode, result, epoch).
pub const RESPONSE_HEAD_LEN: usize = 8;
/// Bytes of the external address response.
pub const EXTERNAL_RESPONSE_LEN: usize = 12;
/// Bytes of a map response.
pub const MAP_RESPONSE_LEN: usize = 16;
/// A response opcode is its request's plus this.
const RESPONSE_BIT: u8 = 128;

mod field {
    use std::ops::Range;
    pub const VERSION: usize = 0;
    pub const OPCODE: usize = 1;
    pub const RESULT: Range<usize> = 2..4;
    pub const EPOCH: Range<usize> = 4..8;
    pub const EXTERNAL_ADDRESS: Range<usize> = 8..12;
    pub const INTERNAL_PORT: Range<usize> = 8..10;
    pub const MAPPED_PORT: Range<usize> = 10..12;
    pub const LIFETIME: Range<usize> = 12..16;
    pub const REQUEST_INTERNAL_PORT: Range<usize> = 4..6;
    pub const REQUEST_EXTERNAL_PORT: Range<usize> = 6..8;
    pub const REQUEST_LIFETIME: Range<usize> = 8..12;
}

/// RFC 6886 §3.5 result codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    Success,
    UnsupportedVersion,
    /// "Not Authorized/Refused": the box speaks NAT-PMP but mapping is switched off.
    NotAuthorized,
    /// The gateway has no external address yet (DHCP pending), or its NAT failed.
    NetworkFailure,
    OutOfResources,
    UnsupportedOpcode,
    Unknown(u16),
}

impl ResultCode {
    pub fn from_u16(code: u16) -> ResultCode {
        match code {
            0 => ResultCode::Success,
            1 => ResultCode::UnsupportedVersion,
            2 => ResultCode::NotAuthorized,
            3 => ResultCode::NetworkFailure,
            4 => ResultCode::OutOfResources,
            5 => ResultCode::UnsupportedOpcode,
            other => ResultCode::Unknown(other),
        }
    }

    pub fn to_u16(self) -> u16 {
        match self {
            ResultCode::Success => 0,
            ResultCode::UnsupportedVersion => 1,
            ResultCode::NotAuthorized => 2,
            ResultCode::NetworkFailure => 3,
            ResultCode::OutOfResources => 4,
            ResultCode::UnsupportedOpcode => 5,
            ResultCode::Unknown(other) => other,
        }
    }

    /// The name reports show (snake case, stable).
    pub fn name(self) -> String {
        match self {
            ResultCode::Success => "success".into(),
            ResultCode::UnsupportedVersion => "unsupported_version".into(),
            ResultCode::NotAuthorized => "not_authorized".into(),
            ResultCode::NetworkFailure => "network_failure".into(),
            ResultCode::OutOfResources => "out_of_resources".into(),
            ResultCode::UnsupportedOpcode => "unsupported_opcode".into(),
            ResultCode::Unknown(code) => format!("result_{code}"),
        }
    }
}

/// Why bytes are not a NAT-PMP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the opcode's response needs.
    Short(usize),
    /// More bytes than the opcode's response has.
    Oversized(usize),
    /// A version other than 0 (a PCP answer, or garbage).
    Version(u8),
    /// An opcode that is not a response NAT-PMP defines.
    Opcode(u8),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Short(len) => write!(f, "a NAT-PMP response of {len} bytes is too short"),
            DecodeError::Oversized(len) => {
                write!(f, "a NAT-PMP response of {len} bytes is too long")
            }
            DecodeError::Version(v) => write!(f, "NAT-PMP version {v} (expected 0)"),
            DecodeError::Opcode(op) => write!(f, "NAT-PMP opcode {op} is not a response"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A request natlens sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestRepr {
    ExternalAddress,
    Map {
        transport: Transport,
        internal_port: u16,
        /// 0: no preference.
        suggested_external_port: u16,
        /// Seconds; 0 deletes the mapping.
        lifetime_secs: u32,
    },
}

fn map_opcode(transport: Transport) -> u8 {
    match transport {
        Transport::Udp => 1,
        Transport::Tcp => 2,
    }
}

impl RequestRepr {
    pub fn buffer_len(&self) -> usize {
        match self {
            RequestRepr::ExternalAddress => EXTERNAL_REQUEST_LEN,
            RequestRepr::Map { .. } => MAP_REQUEST_LEN,
        }
    }

    /// The request's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.buffer_len()];
        out[field::VERSION] = VERSION;
        match *self {
            RequestRepr::ExternalAddress => out[field::OPCODE] = 0,
            RequestRepr::Map {
                transport,
                internal_port,
                suggested_external_port,
                lifetime_secs,
            } => {
                out[field::OPCODE] = map_opcode(transport);
                out[field::REQUEST_INTERNAL_PORT].copy_from_slice(&internal_port.to_be_bytes());
                out[field::REQUEST_EXTERNAL_PORT]
                    .copy_from_slice(&suggested_external_port.to_be_bytes());
                out[field::REQUEST_LIFETIME].copy_from_slice(&lifetime_secs.to_be_bytes());
            }
        }
        out
    }

    /// Reads a request (a fake gateway's side; also the round-trip tests).
    pub fn parse(bytes: &[u8]) -> Result<RequestRepr, DecodeError> {
        let (&version, rest) = bytes.split_first().ok_or(DecodeError::Short(0))?;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let &opcode = rest.first().ok_or(DecodeError::Short(bytes.len()))?;
        let expected = match opcode {
            0 => EXTERNAL_REQUEST_LEN,
            1 | 2 => MAP_REQUEST_LEN,
            other => return Err(DecodeError::Opcode(other)),
        };
        check_len(bytes.len(), expected)?;
        if opcode == 0 {
            return Ok(RequestRepr::ExternalAddress);
        }
        Ok(RequestRepr::Map {
            transport: if opcode == 1 {
                Transport::Udp
            } else {
                Transport::Tcp
            },
            internal_port: be16(bytes, field::REQUEST_INTERNAL_PORT),
            suggested_external_port: be16(bytes, field::REQUEST_EXTERNAL_PORT),
            lifetime_secs: be32(bytes, field::REQUEST_LIFETIME),
        })
    }
}

fn check_len(len: usize, expected: usize) -> Result<(), DecodeError> {
    match len.cmp(&expected) {
        std::cmp::Ordering::Less => Err(DecodeError::Short(len)),
        std::cmp::Ordering::Greater => Err(DecodeError::Oversized(len)),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

fn be16(bytes: &[u8], range: std::ops::Range<usize>) -> u16 {
    u16::from_be_bytes(bytes[range].try_into().expect("checked length"))
}

fn be32(bytes: &[u8], range: std::ops::Range<usize>) -> u32 {
    u32::from_be_bytes(bytes[range].try_into().expect("checked length"))
}

/// What a response carries beyond its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBody {
    ExternalAddress(Ipv4Addr),
    Map {
        transport: Transport,
        internal_port: u16,
        external_port: u16,
        lifetime_secs: u32,
    },
    /// The 8-byte head only (a refusal): `opcode` is the response opcode.
    HeadOnly {
        opcode: u8,
    },
}

/// A gateway's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseRepr {
    pub result: ResultCode,
    /// Seconds since the gateway's port-mapping table was (re)initialised.
    pub epoch: u32,
    pub body: ResponseBody,
}

impl ResponseRepr {
    /// Reads a response; see the module documentation for what is refused.
    pub fn parse(bytes: &[u8]) -> Result<ResponseRepr, DecodeError> {
        if bytes.len() < RESPONSE_HEAD_LEN {
            return Err(DecodeError::Short(bytes.len()));
        }
        if bytes[field::VERSION] != VERSION {
            return Err(DecodeError::Version(bytes[field::VERSION]));
        }
        let opcode = bytes[field::OPCODE];
        let result = ResultCode::from_u16(be16(bytes, field::RESULT));
        let epoch = be32(bytes, field::EPOCH);
        let full_len = match opcode {
            128 => EXTERNAL_RESPONSE_LEN,
            129 | 130 => MAP_RESPONSE_LEN,
            // Opcode 128 + an unknown request opcode: a refusal of something we never send.
            other if other >= RESPONSE_BIT => RESPONSE_HEAD_LEN,
            other => return Err(DecodeError::Opcode(other)),
        };
        if bytes.len() == RESPONSE_HEAD_LEN && result != ResultCode::Success {
            let body = ResponseBody::HeadOnly { opcode };
            return Ok(ResponseRepr {
                result,
                epoch,
                body,
            });
        }
        check_len(bytes.len(), full_len)?;
        let body = match opcode {
            128 => {
                ResponseBody::ExternalAddress(Ipv4Addr::from(be32(bytes, field::EXTERNAL_ADDRESS)))
            }
            129 | 130 => ResponseBody::Map {
                transport: if opcode == 129 {
                    Transport::Udp
                } else {
                    Transport::Tcp
                },
                internal_port: be16(bytes, field::INTERNAL_PORT),
                external_port: be16(bytes, field::MAPPED_PORT),
                lifetime_secs: be32(bytes, field::LIFETIME),
            },
            _ => ResponseBody::HeadOnly { opcode },
        };
        Ok(ResponseRepr {
            result,
            epoch,
            body,
        })
    }

    /// The response's bytes (a fake gateway's side; also the round-trip tests).
    pub fn to_bytes(&self) -> Vec<u8> {
        let (opcode, len) = match self.body {
            ResponseBody::ExternalAddress(_) => (128, EXTERNAL_RESPONSE_LEN),
            ResponseBody::Map { transport, .. } => {
                (RESPONSE_BIT + map_opcode(transport), MAP_RESPONSE_LEN)
            }
            ResponseBody::HeadOnly { opcode } => (opcode, RESPONSE_HEAD_LEN),
        };
        let mut out = vec![0u8; len];
        out[field::VERSION] = VERSION;
        out[field::OPCODE] = opcode;
        out[field::RESULT].copy_from_slice(&self.result.to_u16().to_be_bytes());
        out[field::EPOCH].copy_from_slice(&self.epoch.to_be_bytes());
        match self.body {
            ResponseBody::ExternalAddress(address) => {
                out[field::EXTERNAL_ADDRESS].copy_from_slice(&address.octets())
            }
            ResponseBody::Map {
                internal_port,
                external_port,
                lifetime_secs,
                ..
            } => {
                out[field::INTERNAL_PORT].copy_from_slice(&internal_port.to_be_bytes());
                out[field::MAPPED_PORT].copy_from_slice(&external_port.to_be_bytes());
                out[field::LIFETIME].copy_from_slice(&lifetime_secs.to_be_bytes());
            }
            ResponseBody::HeadOnly { .. } => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn external_address_request_is_two_bytes() {
        assert_eq!(RequestRepr::ExternalAddress.to_bytes(), [0, 0]);
    }

    #[test]
    fn map_request_layout_follows_rfc_6886() {
        let request = RequestRepr::Map {
            transport: Transport::Tcp,
            internal_port: 0x1234,
            suggested_external_port: 0x5678,
            lifetime_secs: 7200,
        };
        assert_eq!(
            request.to_bytes(),
            [0, 2, 0, 0, 0x12, 0x34, 0x56, 0x78, 0, 0, 0x1c, 0x20]
        );
    }

    #[test]
    fn external_address_response_decodes() {
        let bytes = [0, 128, 0, 0, 0, 0, 0x01, 0x00, 203, 0, 113, 1];
        let response = ResponseRepr::parse(&bytes).unwrap();
        assert_eq!(response.result, ResultCode::Success);
        assert_eq!(response.epoch, 256);
        assert_eq!(
            response.body,
            ResponseBody::ExternalAddress(Ipv4Addr::new(203, 0, 113, 1))
        );
    }

    #[test]
    fn map_response_decodes() {
        let bytes = [
            0, 129, 0, 0, 0, 0, 0, 9, 0x9c, 0x40, 0x9c, 0x41, 0, 0, 0, 60,
        ];
        let response = ResponseRepr::parse(&bytes).unwrap();
        assert_eq!(
            response.body,
            ResponseBody::Map {
                transport: Transport::Udp,
                internal_port: 40000,
                external_port: 40001,
                lifetime_secs: 60
            }
        );
    }

    #[test]
    fn refusal_may_be_head_only() {
        let bytes = [0, 129, 0, 2, 0, 0, 0, 9];
        let response = ResponseRepr::parse(&bytes).unwrap();
        assert_eq!(response.result, ResultCode::NotAuthorized);
        assert_eq!(response.body, ResponseBody::HeadOnly { opcode: 129 });
        // A success needs its body.
        assert_eq!(
            ResponseRepr::parse(&[0, 129, 0, 0, 0, 0, 0, 9]),
            Err(DecodeError::Short(8))
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(ResponseRepr::parse(&[]), Err(DecodeError::Short(0)));
        assert_eq!(
            ResponseRepr::parse(&[0, 128, 0]),
            Err(DecodeError::Short(3))
        );
        let mut long = vec![0, 128, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5];
        assert_eq!(ResponseRepr::parse(&long), Err(DecodeError::Oversized(13)));
        long[0] = 2;
        assert_eq!(ResponseRepr::parse(&long), Err(DecodeError::Version(2)));
        assert_eq!(
            ResponseRepr::parse(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(DecodeError::Opcode(1))
        );
    }

    #[test]
    fn result_codes_are_named() {
        let names: Vec<String> = (0..=6).map(|c| ResultCode::from_u16(c).name()).collect();
        assert_eq!(
            names,
            [
                "success",
                "unsupported_version",
                "not_authorized",
                "network_failure",
                "out_of_resources",
                "unsupported_opcode",
                "result_6"
            ]
        );
    }

    fn transport() -> impl Strategy<Value = Transport> {
        prop_oneof![Just(Transport::Udp), Just(Transport::Tcp)]
    }

    proptest! {
        #[test]
        fn responses_round_trip(result in any::<u16>(), epoch in any::<u32>(), t in transport(),
                                internal in any::<u16>(), external in any::<u16>(),
                                lifetime in any::<u32>(), address in any::<u32>(), kind in 0..2u8) {
            let body = if kind == 0 {
                ResponseBody::ExternalAddress(Ipv4Addr::from(address))
            } else {
                ResponseBody::Map { transport: t, internal_port: internal, external_port: external,
                                    lifetime_secs: lifetime }
            };
            let response = ResponseRepr { result: ResultCode::from_u16(result), epoch, body };
            prop_assert_eq!(ResponseRepr::parse(&response.to_bytes()), Ok(response));
        }

        #[test]
        fn requests_round_trip(t in transport(), internal in any::<u16>(), external in any::<u16>(),
                               lifetime in any::<u32>()) {
            let request = RequestRepr::Map { transport: t, internal_port: internal,
                                             suggested_external_port: external,
                                             lifetime_secs: lifetime };
            prop_assert_eq!(RequestRepr::parse(&request.to_bytes()), Ok(request));
        }

        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = ResponseRepr::parse(&bytes);
            let _ = RequestRepr::parse(&bytes);
        }
    }
}
