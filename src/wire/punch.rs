//! PUNCH messages (`natlens-protocol(7)`): STUN framing, so that RFC 7983 demultiplexing and
//! Wireshark see them, with FINGERPRINT so they are told apart from other protocols on the port.
//!
//! A PUNCH *request* carries NL-CALL-ID, the sender's NL-PUNCH-NONCE, the peer's nonce in
//! NL-PUNCH-ECHO once the sender has seen it, NL-PUNCH-TARGET (the address it was aimed at) and
//! NL-PUNCH-PROBE (which of the predicted targets it was, how many requests had been sent). An
//! *echo* is the success response: the same transaction ID, NL-CALL-ID, the request's nonce in
//! NL-PUNCH-ECHO, the responder's own nonce, XOR-MAPPED-ADDRESS (where the request came from) and
//! the request's NL-PUNCH-PROBE.
//!
//! Two levels, as in smoltcp: [`Punch`] is a checked view (after [`Punch::new_checked`] no getter
//! panics: it has checked the STUN framing, the method and class, FINGERPRINT, the
//! comprehension-required attributes and every value this module reads), and [`PunchRepr`] is
//! the owned form. [`PunchRepr::parse`] cannot fail, since the view has refused everything the
//! Repr could not hold. [`PunchRepr::emit`] writes through [`MessageBuilder`], like every STUN
//! message natlens sends: FINGERPRINT covers the header's length, which the builder keeps
//! current. The view has no setters for the same reason: attributes have no fixed offsets.

use std::fmt;
use std::net::SocketAddr;

use crate::wire::attr::{self, AttrType};
use crate::wire::integrity;
use crate::wire::natlens::{self, CALL_ID, PUNCH_ECHO, PUNCH_NONCE, PUNCH_PROBE, PUNCH_TARGET};
use crate::wire::stun::{ATTR_HEADER_LEN, HEADER_LEN};
use crate::wire::{Class, Message, MessageBuilder, MessageType, TransactionId};

/// Size of the 64-bit values (call ID, nonces) and of NL-PUNCH-PROBE.
const U64_LEN: usize = 8;
/// Size of FINGERPRINT's value.
const FINGERPRINT_LEN: usize = 4;

/// Which predicted target a PUNCH request was aimed at, and how many requests the sender had
/// sent with it (the NL-PUNCH-PROBE attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Index of the target in the sender's predicted ports.
    pub index: u32,
    /// PUNCH requests the sender had sent, this one included.
    pub sent: u32,
}

impl Attempt {
    fn decode(value: &[u8]) -> Result<Attempt, Malformed> {
        let b: [u8; U64_LEN] = value.try_into().map_err(|_| Malformed::BadValue)?;
        Ok(Attempt {
            index: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            sent: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        })
    }

    fn encode(self) -> [u8; U64_LEN] {
        let mut value = [0u8; U64_LEN];
        value[..4].copy_from_slice(&self.index.to_be_bytes());
        value[4..].copy_from_slice(&self.sent.to_be_bytes());
        value
    }
}

/// Why received bytes are not a PUNCH message this end acts on. A stable name per kind, for
/// counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Malformed {
    NotStun,
    /// STUN, but another method or an indication or error.
    NotPunch,
    BadFingerprint,
    /// A comprehension-required attribute this version does not know.
    UnknownRequired,
    MissingCallId,
    MissingNonce,
    /// An echo without NL-PUNCH-ECHO.
    MissingEcho,
    BadValue,
}

impl Malformed {
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::NotStun => "not-stun",
            Malformed::NotPunch => "not-punch",
            Malformed::BadFingerprint => "bad-fingerprint",
            Malformed::UnknownRequired => "unknown-required",
            Malformed::MissingCallId => "missing-call-id",
            Malformed::MissingNonce => "missing-nonce",
            Malformed::MissingEcho => "missing-echo",
            Malformed::BadValue => "bad-value",
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Malformed {}

impl From<attr::ValueError> for Malformed {
    fn from(_: attr::ValueError) -> Self {
        Malformed::BadValue
    }
}

fn decode_u64(value: &[u8]) -> Result<u64, Malformed> {
    <[u8; U64_LEN]>::try_from(value)
        .map(u64::from_be_bytes)
        .map_err(|_| Malformed::BadValue)
}

/// The first attribute of `kind` decoded with `decode`, `None` when absent.
fn read<V>(
    message: &Message<'_>,
    kind: AttrType,
    decode: impl FnOnce(&[u8]) -> Result<V, Malformed>,
) -> Result<Option<V>, Malformed> {
    message.get(kind).map(|a| decode(a.value)).transpose()
}

fn read_address(message: &Message<'_>, kind: AttrType) -> Result<Option<SocketAddr>, Malformed> {
    let tid = message.transaction_id();
    read(message, kind, |value| {
        Ok(attr::decode_xor_address(value, &tid)?)
    })
}

/// A checked view over the bytes of one PUNCH request or echo.
#[derive(Debug, Clone, Copy)]
pub struct Punch<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Punch<T> {
    /// Checks everything the getters read; cheapest checks first, and in the order that decides
    /// which [`Malformed`] a broken message is counted as.
    pub fn new_checked(buffer: T) -> Result<Punch<T>, Malformed> {
        let message = Message::parse(buffer.as_ref()).map_err(|_| Malformed::NotStun)?;
        let response = match (message.method(), message.class()) {
            (natlens::PUNCH, Class::Request) => false,
            (natlens::PUNCH, Class::Success) => true,
            _ => return Err(Malformed::NotPunch),
        };
        if integrity::check_fingerprint(&message) == Some(false) {
            return Err(Malformed::BadFingerprint);
        }
        let unknown = message.attributes().any(|a| {
            a.kind.is_comprehension_required()
                && a.kind != AttrType::XOR_MAPPED_ADDRESS
                && !natlens::PUNCH_REQUIRED.contains(&a.kind)
        });
        if unknown {
            return Err(Malformed::UnknownRequired);
        }
        check_values(&message, response)?;
        Ok(Punch { buffer })
    }

    /// The STUN message underneath, for what this view does not name.
    pub fn message(&self) -> Message<'_> {
        Message::new_unchecked(self.buffer.as_ref())
    }

    /// True for an echo (success response), false for a request.
    pub fn is_echo(&self) -> bool {
        self.message().class() == Class::Success
    }

    pub fn transaction_id(&self) -> TransactionId {
        self.message().transaction_id()
    }

    pub fn call_id(&self) -> u64 {
        self.u64_value(CALL_ID).expect("checked by new_checked")
    }

    /// The sender's NL-PUNCH-NONCE.
    pub fn nonce(&self) -> u64 {
        self.u64_value(PUNCH_NONCE).expect("checked by new_checked")
    }

    /// The peer's nonce in NL-PUNCH-ECHO: always in an echo, in a request once its sender has
    /// seen it.
    pub fn echo(&self) -> Option<u64> {
        self.u64_value(PUNCH_ECHO)
    }

    /// Request only: NL-PUNCH-TARGET, where it was aimed.
    pub fn target(&self) -> Option<SocketAddr> {
        read_address(&self.message(), PUNCH_TARGET).ok().flatten()
    }

    /// Echo only: XOR-MAPPED-ADDRESS, the request's source as the responder saw it.
    pub fn mapped(&self) -> Option<SocketAddr> {
        read_address(&self.message(), AttrType::XOR_MAPPED_ADDRESS)
            .ok()
            .flatten()
    }

    /// NL-PUNCH-PROBE.
    pub fn attempt(&self) -> Option<Attempt> {
        read(&self.message(), PUNCH_PROBE, Attempt::decode)
            .ok()
            .flatten()
    }

    fn u64_value(&self, kind: AttrType) -> Option<u64> {
        read(&self.message(), kind, decode_u64).ok().flatten()
    }
}

/// Every value a getter of [`Punch`] reads decodes, and what a PUNCH needs is there.
fn check_values(message: &Message<'_>, response: bool) -> Result<(), Malformed> {
    read(message, CALL_ID, decode_u64)?.ok_or(Malformed::MissingCallId)?;
    read(message, PUNCH_NONCE, decode_u64)?.ok_or(Malformed::MissingNonce)?;
    let echo = read(message, PUNCH_ECHO, decode_u64)?;
    if response && echo.is_none() {
        return Err(Malformed::MissingEcho);
    }
    read(message, PUNCH_PROBE, Attempt::decode)?;
    read_address(message, PUNCH_TARGET)?;
    read_address(message, AttrType::XOR_MAPPED_ADDRESS)?;
    Ok(())
}

/// A PUNCH request or echo, owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PunchRepr {
    /// `true` for the success response (an echo), `false` for a request.
    pub echo_response: bool,
    pub tid: TransactionId,
    pub call_id: u64,
    pub nonce: u64,
    /// The peer's nonce: always in an echo, in a request once the sender has seen it.
    pub echo: Option<u64>,
    /// Request only: where it was aimed.
    pub target: Option<SocketAddr>,
    /// Echo only: the request's source as the responder saw it.
    pub mapped: Option<SocketAddr>,
    pub attempt: Option<Attempt>,
}

impl PunchRepr {
    /// Reads a checked message; nothing is left to refuse.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(punch: &Punch<&T>) -> PunchRepr {
        PunchRepr {
            echo_response: punch.is_echo(),
            tid: punch.transaction_id(),
            call_id: punch.call_id(),
            nonce: punch.nonce(),
            echo: punch.echo(),
            target: punch.target(),
            mapped: punch.mapped(),
            attempt: punch.attempt(),
        }
    }

    /// Bytes [`PunchRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        let u64_attr = ATTR_HEADER_LEN + U64_LEN;
        let address = |addr: &SocketAddr| ATTR_HEADER_LEN + attr::address_len(addr);
        HEADER_LEN
            + 2 * u64_attr
            + self.echo.map_or(0, |_| u64_attr)
            + self.target.as_ref().map_or(0, address)
            + self.mapped.as_ref().map_or(0, address)
            + self.attempt.map_or(0, |_| u64_attr)
            + ATTR_HEADER_LEN
            + FINGERPRINT_LEN
    }

    /// Writes the message into `buf` (cleared first, so one allocation serves every message)
    /// and returns the bytes.
    pub fn emit<'b>(&self, buf: &'b mut Vec<u8>) -> &'b [u8] {
        let class = if self.echo_response {
            Class::Success
        } else {
            Class::Request
        };
        let ty = MessageType::new(natlens::PUNCH, class);
        let mut builder = MessageBuilder::new(buf, ty, self.tid);
        builder.attribute(CALL_ID, &self.call_id.to_be_bytes());
        builder.attribute(PUNCH_NONCE, &self.nonce.to_be_bytes());
        if let Some(echo) = self.echo {
            builder.attribute(PUNCH_ECHO, &echo.to_be_bytes());
        }
        if let Some(target) = &self.target {
            builder.xor_address(PUNCH_TARGET, target);
        }
        if let Some(mapped) = &self.mapped {
            builder.xor_address(AttrType::XOR_MAPPED_ADDRESS, mapped);
        }
        if let Some(attempt) = self.attempt {
            builder.attribute(PUNCH_PROBE, &attempt.encode());
        }
        builder.fingerprint();
        builder.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Method;

    /// A PUNCH request from the end with nonce 0xAABBCCDDEEFF0011, aimed at 198.51.100.2:40007,
    /// its 7th request and the 7th predicted target (index 6).
    static REQUEST_BYTES: [u8; 76] = [
        0x02, 0x86, // type: PUNCH (0x0C6) request, method bits 6 and 7 on type bits 7 and 9
        0x00, 0x38, // length: 56 bytes of attributes
        0x21, 0x12, 0xA4, 0x42, // magic cookie
        0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03,
        0x03, // transaction ID
        0x4E, 0x03, 0x00, 0x08, // NL-CALL-ID, 8 bytes
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // call ID
        0x4E, 0x06, 0x00, 0x08, // NL-PUNCH-NONCE, 8 bytes
        0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF, 0x00, 0x11, // the sender's nonce
        0xCE, 0x06, 0x00, 0x08, // NL-PUNCH-TARGET, 8 bytes
        0x00, 0x01, // reserved, family IPv4
        0xBD, 0x55, // port 40007 ^ 0x2112
        0xE7, 0x21, 0xC0, 0x40, // 198.51.100.2 ^ magic cookie
        0xCE, 0x07, 0x00, 0x08, // NL-PUNCH-PROBE, 8 bytes
        0x00, 0x00, 0x00, 0x06, // target index 6
        0x00, 0x00, 0x00, 0x07, // 7 requests sent
        0x80, 0x28, 0x00, 0x04, // FINGERPRINT, 4 bytes
        0xE4, 0x4D, 0x24, 0xE6, // CRC-32 of the bytes before, xor 0x5354554E
    ];

    fn request() -> PunchRepr {
        PunchRepr {
            echo_response: false,
            tid: TransactionId([3; 12]),
            call_id: 0x0102_0304_0506_0708,
            nonce: 0xAABB_CCDD_EEFF_0011,
            echo: None,
            target: Some("198.51.100.2:40007".parse().unwrap()),
            mapped: None,
            attempt: Some(Attempt { index: 6, sent: 7 }),
        }
    }

    fn echo() -> PunchRepr {
        PunchRepr {
            echo_response: true,
            echo: Some(42),
            target: None,
            mapped: Some("[2001:db8::1]:4000".parse().unwrap()),
            ..request()
        }
    }

    fn parsed(bytes: &[u8]) -> Result<PunchRepr, Malformed> {
        Punch::new_checked(bytes).map(|punch| PunchRepr::parse(&punch))
    }

    fn emitted(repr: &PunchRepr) -> Vec<u8> {
        let mut buf = Vec::new();
        repr.emit(&mut buf).to_vec()
    }

    #[test]
    fn deconstruct() {
        let punch = Punch::new_checked(&REQUEST_BYTES[..]).unwrap();
        assert!(!punch.is_echo());
        assert_eq!(punch.transaction_id(), TransactionId([3; 12]));
        assert_eq!(punch.call_id(), 0x0102_0304_0506_0708);
        assert_eq!(punch.nonce(), 0xAABB_CCDD_EEFF_0011);
        assert_eq!(punch.echo(), None);
        assert_eq!(punch.target(), Some("198.51.100.2:40007".parse().unwrap()));
        assert_eq!(punch.mapped(), None);
        assert_eq!(punch.attempt(), Some(Attempt { index: 6, sent: 7 }));
        assert_eq!(punch.message().method(), natlens::PUNCH);
    }

    #[test]
    fn parse() {
        assert_eq!(parsed(&REQUEST_BYTES), Ok(request()));
    }

    #[test]
    fn emit() {
        assert_eq!(request().buffer_len(), REQUEST_BYTES.len());
        assert_eq!(emitted(&request()), REQUEST_BYTES);
    }

    #[test]
    fn echo_round_trips_and_needs_its_echo() {
        let bytes = emitted(&echo());
        assert_eq!(bytes.len(), echo().buffer_len());
        // Success: class bit C1 is type bit 8 → 0x0386.
        assert_eq!(&bytes[0..2], &[0x03, 0x86]);
        assert_eq!(parsed(&bytes), Ok(echo()));
        let bare = PunchRepr {
            echo: None,
            ..echo()
        };
        assert_eq!(parsed(&emitted(&bare)), Err(Malformed::MissingEcho));
    }

    /// A PUNCH request with the given attributes and no FINGERPRINT.
    fn request_with(attributes: &[(AttrType, &[u8])]) -> Vec<u8> {
        let mut buf = Vec::new();
        let ty = MessageType::new(natlens::PUNCH, Class::Request);
        let mut builder = MessageBuilder::new(&mut buf, ty, TransactionId([1; 12]));
        for (kind, value) in attributes {
            builder.attribute(*kind, value);
        }
        builder.finish().to_vec()
    }

    #[test]
    fn truncated_strays_and_damage_are_refused() {
        assert_eq!(parsed(&REQUEST_BYTES[..19]), Err(Malformed::NotStun));
        assert_eq!(parsed(&REQUEST_BYTES[..75]), Err(Malformed::NotStun));
        let mut flipped = REQUEST_BYTES;
        flipped[30] ^= 1;
        assert_eq!(parsed(&flipped), Err(Malformed::BadFingerprint));
        let mut binding = Vec::new();
        let ty = MessageType::new(Method::BINDING, Class::Request);
        let bytes = MessageBuilder::new(&mut binding, ty, TransactionId([1; 12]))
            .finish()
            .to_vec();
        assert_eq!(parsed(&bytes), Err(Malformed::NotPunch));
        let unknown = request_with(&[
            (CALL_ID, &[0; 8]),
            (PUNCH_NONCE, &[0; 8]),
            (AttrType(0x4E7F), &[0; 4]),
        ]);
        assert_eq!(parsed(&unknown), Err(Malformed::UnknownRequired));
        let short = request_with(&[(CALL_ID, &[0; 8]), (PUNCH_NONCE, &[0; 4])]);
        assert_eq!(parsed(&short), Err(Malformed::BadValue));
        let nonceless = request_with(&[(CALL_ID, &[0; 8])]);
        assert_eq!(parsed(&nonceless), Err(Malformed::MissingNonce));
        let callless = request_with(&[(PUNCH_NONCE, &[0; 8])]);
        assert_eq!(parsed(&callless), Err(Malformed::MissingCallId));
        let bad_target = request_with(&[
            (CALL_ID, &[0; 8]),
            (PUNCH_NONCE, &[0; 8]),
            (PUNCH_TARGET, &[0; 3]),
        ]);
        assert_eq!(parsed(&bad_target), Err(Malformed::BadValue));
    }
}
