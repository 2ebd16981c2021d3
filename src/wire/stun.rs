//! The STUN message header and a checked zero-copy view over a whole message (RFC 8489 §5).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |0 0|     STUN Message Type     |         Message Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         Magic Cookie                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     Transaction ID (96 bits)                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::fmt;

use crate::wire::attr::AttrType;

/// Fixed value in bytes 4..8 of every RFC 5389/8489 message; RFC 3489 clients put random bytes
/// there instead, which is how the two are told apart.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 20;
/// Size of an attribute's type + length header.
pub const ATTR_HEADER_LEN: usize = 4;

mod field {
    use std::ops::Range;
    pub const TYPE: Range<usize> = 0..2;
    pub const LENGTH: Range<usize> = 2..4;
    pub const COOKIE: Range<usize> = 4..8;
    pub const TRANSACTION_ID: Range<usize> = 8..20;
}

/// The message class, the two bits interleaved into the type (RFC 8489 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::Success => 0b10,
            Class::Error => 0b11,
        }
    }

    fn from_bits(bits: u16) -> Class {
        match bits & 0b11 {
            0b00 => Class::Request,
            0b01 => Class::Indication,
            0b10 => Class::Success,
            _ => Class::Error,
        }
    }

    /// True for success and error responses.
    pub fn is_response(self) -> bool {
        matches!(self, Class::Success | Class::Error)
    }
}

/// A 12-bit STUN method. Unknown methods round-trip unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Method(pub u16);

impl Method {
    /// RFC 8489 Binding: the only method a plain STUN server answers.
    pub const BINDING: Method = Method(0x001);
}

/// Method and class together, as carried in the first 14 bits of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType {
    pub method: Method,
    pub class: Class,
}

impl MessageType {
    pub const fn new(method: Method, class: Class) -> Self {
        MessageType { method, class }
    }

    /// Interleaves method bits M11..M0 with class bits C1 C0:
    /// `M11..M7 C1 M6..M4 C0 M3..M0`.
    pub fn to_u16(self) -> u16 {
        let m = self.method.0 & 0x0FFF;
        let c = self.class.bits();
        (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7)
    }

    /// Inverse of [`MessageType::to_u16`]; the two top bits must already be known to be zero.
    pub fn from_u16(raw: u16) -> Self {
        let method = (raw & 0x000F) | ((raw & 0x00E0) >> 1) | ((raw & 0x3E00) >> 2);
        let class = ((raw >> 4) & 1) | ((raw >> 7) & 2);
        MessageType {
            method: Method(method),
            class: Class::from_bits(class),
        }
    }

    /// The response type answering a request of this method.
    pub fn response(self, class: Class) -> Self {
        MessageType {
            method: self.method,
            class,
        }
    }
}

/// The 96-bit transaction ID. For RFC 3489 messages the cookie bytes belong to the ID too; the
/// view exposes those as [`Message::legacy_transaction_id`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(pub [u8; 12]);

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Why bytes were not a STUN message. Each maps to a drop counter in the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// Fewer than 20 bytes.
    TooShort,
    /// One of the two top bits is set: another protocol (RTP, DTLS, ...) sharing the port.
    NotStun,
    /// The length field is not a multiple of 4.
    UnalignedLength,
    /// The length field disagrees with the bytes received.
    LengthMismatch,
    /// An attribute runs past the end of the message.
    TruncatedAttribute,
    /// FINGERPRINT is present but not last, or its CRC is wrong.
    BadFingerprint,
}

impl DecodeError {
    /// A short, stable name for logs and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeError::TooShort => "too-short",
            DecodeError::NotStun => "not-stun",
            DecodeError::UnalignedLength => "unaligned-length",
            DecodeError::LengthMismatch => "length-mismatch",
            DecodeError::TruncatedAttribute => "truncated-attribute",
            DecodeError::BadFingerprint => "bad-fingerprint",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for DecodeError {}

/// One attribute inside a [`Message`]: its type, its value (without padding) and where its
/// header starts, which MESSAGE-INTEGRITY and FINGERPRINT need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    pub kind: AttrType,
    pub value: &'a [u8],
    pub offset: usize,
}

/// A checked view over one complete STUN message.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    bytes: &'a [u8],
}

/// Peeks at the header of a possibly incomplete stream buffer and returns the whole message
/// length, or `None` when fewer than 4 bytes are buffered. Used by the TCP framer.
pub fn frame_len(buffer: &[u8]) -> Option<usize> {
    let header = buffer.get(..4)?;
    Some(HEADER_LEN + usize::from(u16::from_be_bytes([header[2], header[3]])))
}

impl<'a> Message<'a> {
    /// The checked constructor (smoltcp's `new_checked`): checks the header and walks every
    /// attribute so that later getters cannot fail on lengths. Cheapest checks first, since
    /// most garbage dies at the first test.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::TooShort);
        }
        // RFC 8489 §5: "The most significant 2 bits of every STUN message MUST be zeroes."
        if bytes[0] & 0xC0 != 0 {
            return Err(DecodeError::NotStun);
        }
        let length = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        if length % 4 != 0 {
            return Err(DecodeError::UnalignedLength);
        }
        if HEADER_LEN + length != bytes.len() {
            return Err(DecodeError::LengthMismatch);
        }
        let message = Message { bytes };
        message.check_attributes()?;
        Ok(message)
    }

    /// Wraps bytes that [`Message::parse`] has already accepted, for views built on this one
    /// that keep only the bytes. Getters may panic on anything else.
    pub(crate) fn new_unchecked(bytes: &'a [u8]) -> Self {
        Message { bytes }
    }

    fn check_attributes(&self) -> Result<(), DecodeError> {
        let mut offset = HEADER_LEN;
        while offset < self.bytes.len() {
            let header = self
                .bytes
                .get(offset..offset + ATTR_HEADER_LEN)
                .ok_or(DecodeError::TruncatedAttribute)?;
            let kind = u16::from_be_bytes([header[0], header[1]]);
            let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
            let next = offset + ATTR_HEADER_LEN + padded(len);
            if next > self.bytes.len() {
                return Err(DecodeError::TruncatedAttribute);
            }
            // RFC 8489 §14.7: FINGERPRINT, when present, is the last attribute.
            if kind == AttrType::FINGERPRINT.0 && next != self.bytes.len() {
                return Err(DecodeError::BadFingerprint);
            }
            offset = next;
        }
        Ok(())
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn message_type(&self) -> MessageType {
        MessageType::from_u16(u16::from_be_bytes([self.bytes[0], self.bytes[1]]))
    }

    pub fn method(&self) -> Method {
        self.message_type().method
    }

    pub fn class(&self) -> Class {
        self.message_type().class
    }

    /// Length of the attributes section.
    pub fn body_len(&self) -> usize {
        usize::from(u16::from_be_bytes(
            self.bytes[field::LENGTH].try_into().expect("2 bytes"),
        ))
    }

    /// False for RFC 3489 messages, whose transaction ID spans the cookie bytes too.
    pub fn has_magic_cookie(&self) -> bool {
        self.bytes[field::COOKIE] == MAGIC_COOKIE.to_be_bytes()
    }

    pub fn transaction_id(&self) -> TransactionId {
        TransactionId(
            self.bytes[field::TRANSACTION_ID]
                .try_into()
                .expect("12 bytes"),
        )
    }

    /// The 128-bit RFC 3489 transaction ID (cookie bytes included).
    pub fn legacy_transaction_id(&self) -> [u8; 16] {
        self.bytes[field::COOKIE.start..field::TRANSACTION_ID.end]
            .try_into()
            .expect("16 bytes")
    }

    /// Raw type field, for messages whose top bits were checked by `parse`.
    pub fn raw_type(&self) -> u16 {
        u16::from_be_bytes(self.bytes[field::TYPE].try_into().expect("2 bytes"))
    }

    /// Every attribute in order, duplicates included.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            bytes: self.bytes,
            offset: HEADER_LEN,
        }
    }

    /// The first attribute of a type: RFC 8489 §14 says only the first occurrence counts.
    pub fn get(&self, kind: AttrType) -> Option<RawAttribute<'a>> {
        self.attributes().find(|attribute| attribute.kind == kind)
    }
}

/// Iterator over a checked message's attributes.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = RawAttribute<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let header = self.bytes.get(self.offset..self.offset + ATTR_HEADER_LEN)?;
        let kind = AttrType(u16::from_be_bytes([header[0], header[1]]));
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let start = self.offset + ATTR_HEADER_LEN;
        let value = self.bytes.get(start..start + len)?;
        let attribute = RawAttribute {
            kind,
            value,
            offset: self.offset,
        };
        self.offset = start + padded(len);
        Some(attribute)
    }
}

/// Rounds an attribute length up to the 4-byte boundary.
pub fn padded(len: usize) -> usize {
    (len + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::rfc5769::SAMPLE_REQUEST;

    #[test]
    fn type_interleaving_matches_rfc() {
        let binding = |class| MessageType::new(Method::BINDING, class).to_u16();
        assert_eq!(binding(Class::Request), 0x0001);
        assert_eq!(binding(Class::Indication), 0x0011);
        assert_eq!(binding(Class::Success), 0x0101);
        assert_eq!(binding(Class::Error), 0x0111);
        // natlens LOGIN (0x0C1): method bits 6 and 7 land on type bits 7 and 9.
        assert_eq!(
            MessageType::new(Method(0x0C1), Class::Request).to_u16(),
            0x0281
        );
        assert_eq!(
            MessageType::new(Method(0x0C1), Class::Error).to_u16(),
            0x0391
        );
    }

    #[test]
    fn type_round_trips_for_every_method_and_class() {
        for method in 0..0x1000u16 {
            for class in [
                Class::Request,
                Class::Indication,
                Class::Success,
                Class::Error,
            ] {
                let ty = MessageType::new(Method(method), class);
                assert_eq!(MessageType::from_u16(ty.to_u16()), ty);
                assert_eq!(ty.to_u16() & 0xC000, 0);
            }
        }
    }

    #[test]
    fn deconstruct() {
        // The fixture carries a comment per field.
        let message = Message::parse(&SAMPLE_REQUEST).unwrap();
        assert_eq!(message.raw_type(), 0x0001);
        assert_eq!(
            message.message_type(),
            MessageType::new(Method::BINDING, Class::Request)
        );
        assert_eq!(message.body_len(), 88);
        assert!(message.has_magic_cookie());
        assert_eq!(
            message.transaction_id(),
            TransactionId([0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae])
        );
        assert_eq!(
            message.legacy_transaction_id()[..4],
            MAGIC_COOKIE.to_be_bytes()
        );
        let attributes: Vec<_> = message.attributes().collect();
        let summary: Vec<(u16, usize, usize)> = attributes
            .iter()
            .map(|a| (a.kind.0, a.value.len(), a.offset))
            .collect();
        assert_eq!(
            summary,
            [
                (0x8022, 16, 20), // SOFTWARE
                (0x0024, 4, 40),  // PRIORITY
                (0x8029, 8, 48),  // ICE-CONTROLLED
                (0x0006, 9, 60),  // USERNAME (3 bytes of padding follow)
                (0x0008, 20, 76), // MESSAGE-INTEGRITY
                (0x8028, 4, 100), // FINGERPRINT
            ]
        );
        assert_eq!(attributes[3].value, b"evtj:h6vY");
        assert_eq!(message.get(AttrType::USERNAME).map(|a| a.offset), Some(60));
        assert_eq!(message.get(AttrType(0x7777)), None);
    }

    #[test]
    fn rejects_malformed_headers() {
        let mut ok = [0u8; 20];
        ok[1] = 1;
        ok[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        assert!(Message::parse(&ok).is_ok());
        assert_eq!(
            Message::parse(&ok[..19]).unwrap_err(),
            DecodeError::TooShort
        );
        let mut rtp = ok;
        rtp[0] = 0x80;
        assert_eq!(Message::parse(&rtp).unwrap_err(), DecodeError::NotStun);
        let mut odd = ok;
        odd[3] = 2;
        assert_eq!(
            Message::parse(&odd).unwrap_err(),
            DecodeError::UnalignedLength
        );
        let mut long = ok;
        long[3] = 4;
        assert_eq!(
            Message::parse(&long).unwrap_err(),
            DecodeError::LengthMismatch
        );
    }

    #[test]
    fn rejects_attribute_running_past_the_end() {
        let mut bytes = vec![0, 1, 0, 8, 0x21, 0x12, 0xA4, 0x42];
        bytes.extend_from_slice(&[0; 12]);
        bytes.extend_from_slice(&[0x80, 0x22, 0x00, 0x09, 1, 2, 3, 4]);
        assert_eq!(
            Message::parse(&bytes).unwrap_err(),
            DecodeError::TruncatedAttribute
        );
    }

    #[test]
    fn frame_len_reads_the_header() {
        assert_eq!(frame_len(&[0, 1, 0]), None);
        assert_eq!(frame_len(&[0, 1, 0, 8]), Some(28));
    }
}
