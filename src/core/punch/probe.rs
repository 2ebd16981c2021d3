//! PUNCH messages (`natlens-protocol(7)`): STUN framing, so that RFC 7983 demultiplexing and
//! Wireshark see them, with FINGERPRINT so they are told apart from other protocols on the port.
//!
//! A *probe* is a PUNCH request: NL-CALL-ID, the sender's NL-PUNCH-NONCE, the peer's nonce in
//! NL-PUNCH-ECHO once the sender has seen it, NL-PUNCH-TARGET (the address it was aimed at) and
//! NL-PUNCH-PROBE (which guess, how many sent). An *echo* is the success response: the same
//! transaction ID, NL-CALL-ID, the request's nonce in NL-PUNCH-ECHO, the responder's own nonce,
//! XOR-MAPPED-ADDRESS (where the request came from) and the request's NL-PUNCH-PROBE.

use std::fmt;
use std::net::SocketAddr;

use crate::wire::attr::{self, AttrType};
use crate::wire::integrity;
use crate::wire::natlens::{self, CALL_ID, PUNCH_ECHO, PUNCH_NONCE, PUNCH_PROBE, PUNCH_TARGET};
use crate::wire::{Class, Message, MessageBuilder, MessageType, TransactionId};

/// Which guess a probe was, and how many the sender had sent with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeInfo {
    /// Index of the target in the sender's predicted ports.
    pub index: u32,
    /// Probes the sender had sent, this one included.
    pub sent: u32,
}

/// A PUNCH request or success response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PunchMessage {
    /// `true` for the success response (an echo), `false` for a probe.
    pub echo_response: bool,
    pub tid: TransactionId,
    pub call_id: u64,
    pub nonce: u64,
    /// The peer's nonce: always in an echo, in a probe once the sender has seen it.
    pub echo: Option<u64>,
    /// Probe only: where it was aimed.
    pub target: Option<SocketAddr>,
    /// Echo only: the probe's source as the responder saw it.
    pub mapped: Option<SocketAddr>,
    pub info: Option<ProbeInfo>,
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

impl From<attr::ValueError> for Malformed {
    fn from(_: attr::ValueError) -> Self {
        Malformed::BadValue
    }
}

fn read_u64(message: &Message<'_>, kind: AttrType) -> Result<Option<u64>, Malformed> {
    match message.get(kind) {
        None => Ok(None),
        Some(a) => <[u8; 8]>::try_from(a.value)
            .map(|b| Some(u64::from_be_bytes(b)))
            .map_err(|_| Malformed::BadValue),
    }
}

impl PunchMessage {
    /// Reads a PUNCH message; cheapest checks first.
    pub fn parse(bytes: &[u8]) -> Result<Self, Malformed> {
        let message = Message::parse(bytes).map_err(|_| Malformed::NotStun)?;
        let echo_response = match (message.method(), message.class()) {
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
        let tid = message.transaction_id();
        let call_id = read_u64(&message, CALL_ID)?.ok_or(Malformed::MissingCallId)?;
        let nonce = read_u64(&message, PUNCH_NONCE)?.ok_or(Malformed::MissingNonce)?;
        let echo = read_u64(&message, PUNCH_ECHO)?;
        if echo_response && echo.is_none() {
            return Err(Malformed::MissingEcho);
        }
        let address = |kind| -> Result<Option<SocketAddr>, Malformed> {
            match message.get(kind) {
                None => Ok(None),
                Some(a) => Ok(Some(attr::decode_xor_address(a.value, &tid)?)),
            }
        };
        let info = match message.get(PUNCH_PROBE) {
            None => None,
            Some(a) => {
                let b: [u8; 8] = a.value.try_into().map_err(|_| Malformed::BadValue)?;
                Some(ProbeInfo {
                    index: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                    sent: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                })
            }
        };
        Ok(PunchMessage {
            echo_response,
            tid,
            call_id,
            nonce,
            echo,
            target: address(PUNCH_TARGET)?,
            mapped: address(AttrType::XOR_MAPPED_ADDRESS)?,
            info,
        })
    }

    /// Writes the message into `buf` (cleared first) and returns the bytes.
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
        if let Some(info) = self.info {
            let mut value = [0u8; 8];
            value[..4].copy_from_slice(&info.index.to_be_bytes());
            value[4..].copy_from_slice(&info.sent.to_be_bytes());
            builder.attribute(PUNCH_PROBE, &value);
        }
        builder.fingerprint();
        builder.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> PunchMessage {
        PunchMessage {
            echo_response: false,
            tid: TransactionId([3; 12]),
            call_id: 0x0102_0304_0506_0708,
            nonce: 0xAABB_CCDD_EEFF_0011,
            echo: None,
            target: Some("198.51.100.2:40007".parse().unwrap()),
            mapped: None,
            info: Some(ProbeInfo { index: 6, sent: 7 }),
        }
    }

    #[test]
    fn probe_bytes_field_by_field() {
        let mut buf = Vec::new();
        let bytes = probe().emit(&mut buf).to_vec();
        // PUNCH request, method 0x0C6: bit 6 moves to type bit 7, bit 7 to bit 9 → 0x0286.
        assert_eq!(&bytes[0..2], &[0x02, 0x86]);
        // Magic cookie, then the transaction ID.
        assert_eq!(&bytes[4..8], &[0x21, 0x12, 0xA4, 0x42]);
        assert_eq!(&bytes[8..20], &[3; 12]);
        // NL-CALL-ID: type 0x4E03, length 8, value.
        assert_eq!(&bytes[20..24], &[0x4E, 0x03, 0, 8]);
        assert_eq!(&bytes[24..32], &[1, 2, 3, 4, 5, 6, 7, 8]);
        // NL-PUNCH-NONCE: type 0x4E06, length 8.
        assert_eq!(&bytes[32..36], &[0x4E, 0x06, 0, 8]);
        // NL-PUNCH-TARGET: 0xCE06, XOR-encoded IPv4 (8 bytes): port 40007 ^ 0x2112.
        assert_eq!(&bytes[44..48], &[0xCE, 0x06, 0, 8]);
        assert_eq!(u16::from_be_bytes([bytes[50], bytes[51]]), 40007 ^ 0x2112);
        // NL-PUNCH-PROBE: 0xCE07, index 6, sent 7.
        assert_eq!(&bytes[56..60], &[0xCE, 0x07, 0, 8]);
        assert_eq!(&bytes[60..68], &[0, 0, 0, 6, 0, 0, 0, 7]);
        // FINGERPRINT last.
        assert_eq!(&bytes[68..70], &[0x80, 0x28]);
        assert_eq!(bytes.len(), 76);
        assert_eq!(PunchMessage::parse(&bytes), Ok(probe()));
    }

    #[test]
    fn echo_round_trips_and_needs_its_echo() {
        let echo = PunchMessage {
            echo_response: true,
            echo: Some(42),
            target: None,
            mapped: Some("[2001:db8::1]:4000".parse().unwrap()),
            ..probe()
        };
        let mut buf = Vec::new();
        let bytes = echo.emit(&mut buf).to_vec();
        // Success: class bit C1 is type bit 8 → 0x0386.
        assert_eq!(&bytes[0..2], &[0x03, 0x86]);
        assert_eq!(PunchMessage::parse(&bytes), Ok(echo));
        let mut bare = echo;
        bare.echo = None;
        let bytes = bare.emit(&mut buf).to_vec();
        assert_eq!(PunchMessage::parse(&bytes), Err(Malformed::MissingEcho));
    }

    #[test]
    fn strays_and_damage_are_refused() {
        let mut buf = Vec::new();
        let good = probe().emit(&mut buf).to_vec();
        assert_eq!(PunchMessage::parse(&good[..19]), Err(Malformed::NotStun));
        let mut flipped = good.clone();
        flipped[30] ^= 1;
        assert_eq!(
            PunchMessage::parse(&flipped),
            Err(Malformed::BadFingerprint)
        );
        let mut binding = Vec::new();
        let ty = MessageType::new(crate::wire::Method::BINDING, Class::Request);
        let bytes = MessageBuilder::new(&mut binding, ty, TransactionId([1; 12]))
            .finish()
            .to_vec();
        assert_eq!(PunchMessage::parse(&bytes), Err(Malformed::NotPunch));
        let mut unknown = Vec::new();
        let ty = MessageType::new(natlens::PUNCH, Class::Request);
        let mut builder = MessageBuilder::new(&mut unknown, ty, TransactionId([1; 12]));
        builder.attribute(CALL_ID, &[0; 8]);
        builder.attribute(PUNCH_NONCE, &[0; 8]);
        builder.attribute(AttrType(0x4E7F), &[0; 4]);
        let bytes = builder.finish().to_vec();
        assert_eq!(PunchMessage::parse(&bytes), Err(Malformed::UnknownRequired));
        let mut short = Vec::new();
        let mut builder = MessageBuilder::new(&mut short, ty, TransactionId([1; 12]));
        builder.attribute(CALL_ID, &[0; 8]);
        builder.attribute(PUNCH_NONCE, &[0; 4]);
        let bytes = builder.finish().to_vec();
        assert_eq!(PunchMessage::parse(&bytes), Err(Malformed::BadValue));
        let mut nonceless = Vec::new();
        let mut builder = MessageBuilder::new(&mut nonceless, ty, TransactionId([1; 12]));
        builder.attribute(CALL_ID, &[0; 8]);
        let bytes = builder.finish().to_vec();
        assert_eq!(PunchMessage::parse(&bytes), Err(Malformed::MissingNonce));
    }
}
