//! STUN attribute types and value codecs (RFC 8489 §14, RFC 5780 §7, RFC 3489 §11.2).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::wire::stun::{TransactionId, MAGIC_COOKIE};

/// A 16-bit attribute type. Unknown types round-trip unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrType(pub u16);

impl AttrType {
    pub const MAPPED_ADDRESS: AttrType = AttrType(0x0001);
    /// RFC 3489 only; never honoured (it would let anyone aim our answers at a third party).
    pub const RESPONSE_ADDRESS: AttrType = AttrType(0x0002);
    pub const CHANGE_REQUEST: AttrType = AttrType(0x0003);
    /// RFC 3489 SOURCE-ADDRESS: where the answer was sent from.
    pub const SOURCE_ADDRESS: AttrType = AttrType(0x0004);
    /// RFC 3489 CHANGED-ADDRESS: the RFC 5780 OTHER-ADDRESS of old clients.
    pub const CHANGED_ADDRESS: AttrType = AttrType(0x0005);
    pub const USERNAME: AttrType = AttrType(0x0006);
    pub const MESSAGE_INTEGRITY: AttrType = AttrType(0x0008);
    pub const ERROR_CODE: AttrType = AttrType(0x0009);
    pub const UNKNOWN_ATTRIBUTES: AttrType = AttrType(0x000A);
    pub const REALM: AttrType = AttrType(0x0014);
    pub const NONCE: AttrType = AttrType(0x0015);
    pub const MESSAGE_INTEGRITY_SHA256: AttrType = AttrType(0x001C);
    pub const USERHASH: AttrType = AttrType(0x001E);
    pub const XOR_MAPPED_ADDRESS: AttrType = AttrType(0x0020);
    pub const PADDING: AttrType = AttrType(0x0026);
    pub const RESPONSE_PORT: AttrType = AttrType(0x0027);
    pub const SOFTWARE: AttrType = AttrType(0x8022);
    pub const ALTERNATE_SERVER: AttrType = AttrType(0x8023);
    pub const FINGERPRINT: AttrType = AttrType(0x8028);
    pub const RESPONSE_ORIGIN: AttrType = AttrType(0x802B);
    pub const OTHER_ADDRESS: AttrType = AttrType(0x802C);

    /// RFC 8489 §14: types 0x0000-0x7FFF must be understood, or the request is refused with 420.
    pub fn is_comprehension_required(self) -> bool {
        self.0 < 0x8000
    }
}

impl fmt::Debug for AttrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AttrType({:#06x})", self.0)
    }
}

/// Why an attribute value could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueError {
    /// Wrong length for its type.
    Length,
    /// Address family other than 1 (IPv4) or 2 (IPv6).
    Family,
    /// Not UTF-8, or too long.
    Text,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueError::Length => "attribute has the wrong length",
            ValueError::Family => "unknown address family",
            ValueError::Text => "attribute is not valid UTF-8 text of an allowed length",
        })
    }
}

impl std::error::Error for ValueError {}

const FAMILY_IPV4: u8 = 0x01;
const FAMILY_IPV6: u8 = 0x02;

/// Length of an address attribute's value for this address.
pub fn address_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 8,
        SocketAddr::V6(_) => 20,
    }
}

/// Writes MAPPED-ADDRESS style: reserved byte, family, port, address.
pub fn encode_address(addr: &SocketAddr, out: &mut [u8]) {
    out[0] = 0;
    out[2..4].copy_from_slice(&addr.port().to_be_bytes());
    match addr.ip() {
        IpAddr::V4(ip) => {
            out[1] = FAMILY_IPV4;
            out[4..8].copy_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out[1] = FAMILY_IPV6;
            out[4..20].copy_from_slice(&ip.octets());
        }
    }
}

/// Reads a MAPPED-ADDRESS style value.
pub fn decode_address(value: &[u8]) -> Result<SocketAddr, ValueError> {
    if value.len() < 4 {
        return Err(ValueError::Length);
    }
    let port = u16::from_be_bytes([value[2], value[3]]);
    match (value[1], value.len()) {
        (FAMILY_IPV4, 8) => {
            let ip: [u8; 4] = value[4..8].try_into().expect("4 bytes");
            Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        (FAMILY_IPV6, 20) => {
            let ip: [u8; 16] = value[4..20].try_into().expect("16 bytes");
            Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
        }
        (FAMILY_IPV4 | FAMILY_IPV6, _) => Err(ValueError::Length),
        _ => Err(ValueError::Family),
    }
}

/// XOR-MAPPED-ADDRESS obfuscation (RFC 8489 §14.2): the port with the cookie's top half, IPv4
/// with the cookie, IPv6 with cookie ‖ transaction ID. It exists because some ALGs rewrote
/// plain MAPPED-ADDRESS values; applying it twice is the identity, so one function does both.
fn xor_in_place(value: &mut [u8], tid: &TransactionId) {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    value[2] ^= cookie[0];
    value[3] ^= cookie[1];
    for (i, byte) in value[4..].iter_mut().enumerate() {
        *byte ^= if i < 4 { cookie[i] } else { tid.0[i - 4] };
    }
}

/// Writes an XOR-encoded address.
pub fn encode_xor_address(addr: &SocketAddr, tid: &TransactionId, out: &mut [u8]) {
    encode_address(addr, out);
    xor_in_place(&mut out[..address_len(addr)], tid);
}

/// Reads an XOR-encoded address.
pub fn decode_xor_address(value: &[u8], tid: &TransactionId) -> Result<SocketAddr, ValueError> {
    let mut plain = [0u8; 20];
    let len = value.len().min(20);
    plain[..len].copy_from_slice(&value[..len]);
    if value.len() > 20 {
        return Err(ValueError::Length);
    }
    xor_in_place(&mut plain[..len.max(4)], tid);
    decode_address(&plain[..len])
}

/// The CHANGE-REQUEST flags (RFC 5780 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChangeRequest {
    pub change_ip: bool,
    pub change_port: bool,
}

impl ChangeRequest {
    const CHANGE_IP: u8 = 0x04;
    const CHANGE_PORT: u8 = 0x02;

    pub fn decode(value: &[u8]) -> Result<Self, ValueError> {
        let bytes: [u8; 4] = value.try_into().map_err(|_| ValueError::Length)?;
        Ok(ChangeRequest {
            change_ip: bytes[3] & Self::CHANGE_IP != 0,
            change_port: bytes[3] & Self::CHANGE_PORT != 0,
        })
    }

    pub fn encode(self) -> [u8; 4] {
        let mut flags = 0;
        if self.change_ip {
            flags |= Self::CHANGE_IP;
        }
        if self.change_port {
            flags |= Self::CHANGE_PORT;
        }
        [0, 0, 0, flags]
    }

    /// True when the client asked for anything to change.
    pub fn any(self) -> bool {
        self.change_ip || self.change_port
    }
}

/// ERROR-CODE (RFC 8489 §14.8): class and number, then a UTF-8 reason phrase.
pub fn encode_error_code(code: u16, reason: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0, 0, (code / 100) as u8, (code % 100) as u8]);
    out.extend_from_slice(reason.as_bytes());
}

/// Reads ERROR-CODE into the number (e.g. 420) and the reason phrase.
pub fn decode_error_code(value: &[u8]) -> Result<(u16, &str), ValueError> {
    if value.len() < 4 {
        return Err(ValueError::Length);
    }
    let code = u16::from(value[2] & 0x07) * 100 + u16::from(value[3]);
    let reason = std::str::from_utf8(&value[4..]).map_err(|_| ValueError::Text)?;
    Ok((code, reason))
}

/// Reads a UTF-8 text attribute of at most `max` bytes.
pub fn decode_text(value: &[u8], max: usize) -> Result<&str, ValueError> {
    if value.len() > max {
        return Err(ValueError::Text);
    }
    std::str::from_utf8(value).map_err(|_| ValueError::Text)
}

/// Reads a fixed-size big-endian integer attribute.
pub fn decode_u32(value: &[u8]) -> Result<u32, ValueError> {
    Ok(u32::from_be_bytes(
        value.try_into().map_err(|_| ValueError::Length)?,
    ))
}

/// RESPONSE-PORT (RFC 5780 §7.5): a port then two bytes of padding inside the value.
pub fn decode_response_port(value: &[u8]) -> Result<u16, ValueError> {
    let bytes: [u8; 4] = value.try_into().map_err(|_| ValueError::Length)?;
    Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
}

/// RESPONSE-PORT's value: the port, then two bytes of padding.
pub fn encode_response_port(port: u16) -> [u8; 4] {
    let [high, low] = port.to_be_bytes();
    [high, low, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_port_round_trips() {
        for port in [0, 1, 3478, 40_001, u16::MAX] {
            assert_eq!(decode_response_port(&encode_response_port(port)), Ok(port));
        }
        assert_eq!(encode_response_port(0x9C41), [0x9C, 0x41, 0, 0]);
        assert_eq!(decode_response_port(&[1, 2, 3]), Err(ValueError::Length));
    }

    const TID: TransactionId = TransactionId([
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ]);

    #[test]
    fn xor_address_matches_rfc5769_ipv4() {
        // RFC 5769 §2.2: 192.0.2.1 port 32853 encodes as 0001 a147 e112a643.
        let value = [0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43];
        let addr: SocketAddr = "192.0.2.1:32853".parse().unwrap();
        assert_eq!(decode_xor_address(&value, &TID), Ok(addr));
        let mut out = [0u8; 8];
        encode_xor_address(&addr, &TID, &mut out);
        assert_eq!(out, value);
    }

    #[test]
    fn address_round_trips_v4_and_v6() {
        for text in ["203.0.113.7:3478", "[2001:db8::1]:65535"] {
            let addr: SocketAddr = text.parse().unwrap();
            let mut out = [0u8; 20];
            let len = address_len(&addr);
            encode_address(&addr, &mut out);
            assert_eq!(decode_address(&out[..len]), Ok(addr));
            encode_xor_address(&addr, &TID, &mut out);
            assert_eq!(decode_xor_address(&out[..len], &TID), Ok(addr));
        }
    }

    #[test]
    fn bad_addresses_are_errors() {
        assert_eq!(decode_address(&[0, 1, 0]), Err(ValueError::Length));
        assert_eq!(
            decode_address(&[0, 3, 0, 0, 1, 2, 3, 4]),
            Err(ValueError::Family)
        );
        assert_eq!(
            decode_address(&[0, 2, 0, 0, 1, 2, 3, 4]),
            Err(ValueError::Length)
        );
        assert_eq!(decode_xor_address(&[0; 24], &TID), Err(ValueError::Length));
        assert_eq!(decode_xor_address(&[0; 2], &TID), Err(ValueError::Length));
    }

    #[test]
    fn change_request_flags() {
        let both = ChangeRequest {
            change_ip: true,
            change_port: true,
        };
        assert_eq!(both.encode(), [0, 0, 0, 6]);
        assert_eq!(
            ChangeRequest::decode(&[0, 0, 0, 4]).unwrap(),
            ChangeRequest {
                change_ip: true,
                change_port: false
            }
        );
        assert_eq!(ChangeRequest::decode(&[0, 0, 4]), Err(ValueError::Length));
    }

    #[test]
    fn error_code_round_trips() {
        let mut out = Vec::new();
        encode_error_code(420, "Unknown Attribute", &mut out);
        assert_eq!(decode_error_code(&out), Ok((420, "Unknown Attribute")));
    }
}
