//! DATA frames (`natlens-protocol(7)`, DATA): the short exchange that follows a punch on the
//! confirmed path, proving that bytes really travel directly between the two ends.
//!
//! Not STUN: a frame starts with [`MARKER`], a first byte outside every range RFC 7983 assigns
//! (STUN 0–3, ZRTP 16–19, DTLS 20–63, TURN channels 64–79, RTP/RTCP 128–191), so it is told apart
//! from the PUNCH messages that share the socket with one comparison.
//!
//! ```text
//!  0        1        2 ............ 9   10 ........ 13   14 ...
//! +--------+--------+----------------+----------------+-----------------------------+
//! | 0xEA   | kind   | receiver nonce | seq / next     | DATA: payload               |
//! |        |        | (u64, BE)      | (u32, BE)      | ACK: received map (u64, BE) |
//! +--------+--------+----------------+----------------+-----------------------------+
//! ```
//!
//! The receiver nonce is the receiver's own NL-PUNCH-NONCE of the call: only the peer that
//! completed the handshake knows it, so a frame carrying it is the peer's (the same proof the
//! handshake rests on). DATA carries chunk `seq`; FIN says the sender's stream ends at `seq` (it
//! takes that sequence number itself, so it is acknowledged like data); ACK carries the next
//! sequence number expected and a map of the 64 after it already received (bit `i` for
//! `next + 1 + i`: a whole sender window); CLOSE (header only, `seq` 0) says "I have your whole
//! stream and you have acknowledged mine", which lets the peer stop at once instead of lingering.
//!
//! Two levels, as in smoltcp: [`Frame`] is a checked view over bytes (after
//! [`Frame::new_checked`] no getter panics) with setters for writing, and [`FrameRepr`] is the
//! owned form, read with [`FrameRepr::parse`] and written with [`FrameRepr::emit`] into a buffer
//! of [`FrameRepr::buffer_len`] bytes that the caller owns.

use std::fmt;

/// First byte of every DATA frame.
pub const MARKER: u8 = 0xEA;

/// Bytes before the payload.
pub const HEADER_LEN: usize = 14;

/// Largest payload: a frame of 1214 bytes fits in the 1280-byte IPv6 minimum MTU with the IPv6
/// (40) and UDP (8) headers, so no path fragments it.
pub const MAX_PAYLOAD: usize = 1200;

/// Offsets of the fixed fields.
mod field {
    use std::ops::Range;
    pub const MARKER: usize = 0;
    pub const KIND: usize = 1;
    pub const NONCE: Range<usize> = 2..10;
    pub const SEQ: Range<usize> = 10..14;
    pub const PAYLOAD: usize = 14;
    /// ACK only: the received map, the whole of an ACK's payload.
    pub const MAP: Range<usize> = 14..22;
}

/// The frame kind (byte 1). Unknown kinds round-trip through the view, never through
/// [`FrameRepr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Data,
    Fin,
    Ack,
    Close,
    Unknown(u8),
}

impl From<u8> for Kind {
    fn from(value: u8) -> Self {
        match value {
            1 => Kind::Data,
            2 => Kind::Fin,
            3 => Kind::Ack,
            4 => Kind::Close,
            other => Kind::Unknown(other),
        }
    }
}

impl From<Kind> for u8 {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Data => 1,
            Kind::Fin => 2,
            Kind::Ack => 3,
            Kind::Close => 4,
            Kind::Unknown(other) => other,
        }
    }
}

/// Why bytes are not a frame this end reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Wrong first byte, or shorter than a header.
    NotData,
    UnknownKind,
    /// DATA with no payload or too much, FIN, ACK or CLOSE with the wrong length.
    BadLength,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Malformed::NotData => "not-data",
            Malformed::UnknownKind => "unknown-kind",
            Malformed::BadLength => "bad-length",
        })
    }
}

impl std::error::Error for Malformed {}

/// True when `bytes` starts like a DATA frame (the demultiplexing test).
pub fn is_data(bytes: &[u8]) -> bool {
    bytes.first() == Some(&MARKER)
}

/// A view over the bytes of one DATA frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps bytes without checking them: for writing a frame into a buffer of
    /// [`FrameRepr::buffer_len`] bytes. Getters may panic on a buffer shorter than a header.
    pub fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps received bytes once they start with [`MARKER`] and are long enough for the fields
    /// their kind has (an ACK's map included), so that no getter can panic.
    pub fn new_checked(buffer: T) -> Result<Frame<T>, Malformed> {
        let frame = Frame::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// The checks of [`Frame::new_checked`].
    pub fn check_len(&self) -> Result<(), Malformed> {
        let bytes = self.buffer.as_ref();
        if bytes.len() < HEADER_LEN || bytes[field::MARKER] != MARKER {
            return Err(Malformed::NotData);
        }
        if self.kind() == Kind::Ack && bytes.len() < field::MAP.end {
            return Err(Malformed::BadLength);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The first byte, [`MARKER`] in every checked frame.
    pub fn marker(&self) -> u8 {
        self.buffer.as_ref()[field::MARKER]
    }

    pub fn kind(&self) -> Kind {
        Kind::from(self.buffer.as_ref()[field::KIND])
    }

    /// The receiver's NL-PUNCH-NONCE.
    pub fn nonce(&self) -> u64 {
        u64::from_be_bytes(
            self.buffer.as_ref()[field::NONCE]
                .try_into()
                .expect("8 bytes"),
        )
    }

    /// DATA and FIN: the frame's sequence number; ACK: the next one expected; CLOSE: 0.
    pub fn seq(&self) -> u32 {
        u32::from_be_bytes(
            self.buffer.as_ref()[field::SEQ]
                .try_into()
                .expect("4 bytes"),
        )
    }

    /// ACK only: the map of sequence numbers received after [`Frame::seq`] (bit `i` for
    /// `seq + 1 + i`); `None` for any other kind.
    pub fn received(&self) -> Option<u64> {
        if self.kind() != Kind::Ack {
            return None;
        }
        let map = self.buffer.as_ref().get(field::MAP)?;
        Some(u64::from_be_bytes(map.try_into().expect("8 bytes")))
    }

    /// Everything after the header: a DATA chunk, an ACK's map, nothing for FIN and CLOSE.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Writes [`MARKER`].
    pub fn set_marker(&mut self) {
        self.buffer.as_mut()[field::MARKER] = MARKER;
    }

    pub fn set_kind(&mut self, kind: Kind) {
        self.buffer.as_mut()[field::KIND] = kind.into();
    }

    pub fn set_nonce(&mut self, nonce: u64) {
        self.buffer.as_mut()[field::NONCE].copy_from_slice(&nonce.to_be_bytes());
    }

    pub fn set_seq(&mut self, seq: u32) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&seq.to_be_bytes());
    }

    /// Writes an ACK's map; the buffer must hold it.
    pub fn set_received(&mut self, received: u64) {
        self.buffer.as_mut()[field::MAP].copy_from_slice(&received.to_be_bytes());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// What a frame says, apart from whom it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Data { seq: u32, payload: Vec<u8> },
    Fin { seq: u32 },
    Ack { next: u32, received: u64 },
    Close,
}

impl Body {
    fn kind(&self) -> Kind {
        match self {
            Body::Data { .. } => Kind::Data,
            Body::Fin { .. } => Kind::Fin,
            Body::Ack { .. } => Kind::Ack,
            Body::Close => Kind::Close,
        }
    }
}

/// One frame, owned: the receiver's nonce and what the frame says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRepr {
    /// The receiver's NL-PUNCH-NONCE (see the module doc).
    pub nonce: u64,
    pub body: Body,
}

impl FrameRepr {
    /// Reads a checked frame: its kind must be known and its length must be the kind's.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &Frame<&T>) -> Result<FrameRepr, Malformed> {
        let len = frame.buffer.as_ref().len();
        let seq = frame.seq();
        let body = match frame.kind() {
            Kind::Data => {
                let payload = frame.payload();
                if payload.is_empty() || payload.len() > MAX_PAYLOAD {
                    return Err(Malformed::BadLength);
                }
                Body::Data {
                    seq,
                    payload: payload.to_vec(),
                }
            }
            Kind::Fin if len == HEADER_LEN => Body::Fin { seq },
            Kind::Ack if len == field::MAP.end => Body::Ack {
                next: seq,
                received: frame.received().ok_or(Malformed::BadLength)?,
            },
            // CLOSE's sequence field carries nothing: it is not read.
            Kind::Close if len == HEADER_LEN => Body::Close,
            Kind::Fin | Kind::Ack | Kind::Close => return Err(Malformed::BadLength),
            Kind::Unknown(_) => return Err(Malformed::UnknownKind),
        };
        Ok(FrameRepr {
            nonce: frame.nonce(),
            body,
        })
    }

    /// Bytes [`FrameRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match &self.body {
                Body::Data { payload, .. } => payload.len(),
                Body::Ack { .. } => field::MAP.len(),
                Body::Fin { .. } | Body::Close => 0,
            }
    }

    /// Writes the frame into a view over exactly [`FrameRepr::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, frame: &mut Frame<&mut T>) {
        frame.set_marker();
        frame.set_kind(self.body.kind());
        frame.set_nonce(self.nonce);
        match &self.body {
            Body::Data { seq, payload } => {
                frame.set_seq(*seq);
                frame.payload_mut().copy_from_slice(payload);
            }
            Body::Fin { seq } => frame.set_seq(*seq),
            Body::Ack { next, received } => {
                frame.set_seq(*next);
                frame.set_received(*received);
            }
            Body::Close => frame.set_seq(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NONCE: u64 = 0x0102_0304_0506_0708;

    /// A DATA frame carrying chunk 7, "hi", for the end whose nonce is [`NONCE`].
    static DATA_BYTES: [u8; 16] = [
        0xEA, // marker
        0x01, // kind: DATA
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // receiver nonce
        0x00, 0x00, 0x00, 0x07, // seq 7
        b'h', b'i', // payload
    ];

    /// An ACK: next expected 9, and 10 and 12 already received (bits 0 and 2).
    static ACK_BYTES: [u8; 22] = [
        0xEA, // marker
        0x03, // kind: ACK
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // receiver nonce
        0x00, 0x00, 0x00, 0x09, // next expected: 9
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, // received map
    ];

    fn data_repr() -> FrameRepr {
        FrameRepr {
            nonce: NONCE,
            body: Body::Data {
                seq: 7,
                payload: b"hi".to_vec(),
            },
        }
    }

    fn ack_repr() -> FrameRepr {
        FrameRepr {
            nonce: NONCE,
            body: Body::Ack {
                next: 9,
                received: 0b101,
            },
        }
    }

    /// The bytes `repr` emits.
    fn emitted(repr: &FrameRepr) -> Vec<u8> {
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut Frame::new_unchecked(&mut bytes[..]));
        bytes
    }

    fn parsed(bytes: &[u8]) -> Result<FrameRepr, Malformed> {
        FrameRepr::parse(&Frame::new_checked(bytes)?)
    }

    #[test]
    fn deconstruct() {
        let frame = Frame::new_checked(&DATA_BYTES[..]).unwrap();
        assert_eq!(frame.marker(), MARKER);
        assert_eq!(frame.kind(), Kind::Data);
        assert_eq!(frame.nonce(), NONCE);
        assert_eq!(frame.seq(), 7);
        assert_eq!(frame.received(), None);
        assert_eq!(frame.payload(), b"hi");
        let ack = Frame::new_checked(&ACK_BYTES[..]).unwrap();
        assert_eq!(ack.kind(), Kind::Ack);
        assert_eq!(ack.seq(), 9);
        assert_eq!(ack.received(), Some(0b101));
    }

    #[test]
    fn construct() {
        let mut bytes = [0xFFu8; 16];
        let mut frame = Frame::new_unchecked(&mut bytes[..]);
        frame.set_marker();
        frame.set_kind(Kind::Data);
        frame.set_nonce(NONCE);
        frame.set_seq(7);
        frame.payload_mut().copy_from_slice(b"hi");
        assert_eq!(bytes, DATA_BYTES);
        let mut bytes = [0xFFu8; 22];
        let mut frame = Frame::new_unchecked(&mut bytes[..]);
        frame.set_marker();
        frame.set_kind(Kind::Ack);
        frame.set_nonce(NONCE);
        frame.set_seq(9);
        frame.set_received(0b101);
        assert_eq!(bytes, ACK_BYTES);
    }

    #[test]
    fn parse() {
        assert_eq!(parsed(&DATA_BYTES), Ok(data_repr()));
        assert_eq!(parsed(&ACK_BYTES), Ok(ack_repr()));
    }

    #[test]
    fn emit() {
        assert_eq!(data_repr().buffer_len(), DATA_BYTES.len());
        assert_eq!(emitted(&data_repr()), DATA_BYTES);
        assert_eq!(emitted(&ack_repr()), ACK_BYTES);
    }

    #[test]
    fn fin_and_close_round_trip() {
        let fin = FrameRepr {
            nonce: NONCE,
            body: Body::Fin { seq: 3 },
        };
        let bytes = emitted(&fin);
        assert_eq!(bytes.len(), HEADER_LEN);
        assert_eq!(parsed(&bytes), Ok(fin));
        let close = FrameRepr {
            nonce: NONCE,
            body: Body::Close,
        };
        let bytes = emitted(&close);
        assert_eq!((bytes.len(), bytes[1]), (HEADER_LEN, 4));
        assert_eq!(parsed(&bytes), Ok(close));
    }

    #[test]
    fn kinds_round_trip_their_numbers() {
        for raw in 0..=u8::MAX {
            assert_eq!(u8::from(Kind::from(raw)), raw);
        }
        assert_eq!(Kind::from(9), Kind::Unknown(9));
    }

    #[test]
    fn truncated_and_damaged_frames_are_refused() {
        let data = emitted(&FrameRepr {
            nonce: NONCE,
            body: Body::Data {
                seq: 1,
                payload: vec![0; MAX_PAYLOAD],
            },
        });
        assert!(parsed(&data).is_ok());
        let mut long = data.clone();
        long.push(0);
        assert_eq!(parsed(&long), Err(Malformed::BadLength));
        assert_eq!(parsed(&data[..HEADER_LEN]), Err(Malformed::BadLength));
        assert_eq!(parsed(&data[..13]), Err(Malformed::NotData));
        let mut stun = data.clone();
        stun[0] = 0x01;
        assert_eq!(parsed(&stun), Err(Malformed::NotData));
        assert!(!is_data(&stun) && is_data(&data));
        let mut kind = data;
        kind[1] = 9;
        assert_eq!(parsed(&kind), Err(Malformed::UnknownKind));
        let mut fin = emitted(&FrameRepr {
            nonce: NONCE,
            body: Body::Fin { seq: 1 },
        });
        fin.push(0);
        assert_eq!(parsed(&fin), Err(Malformed::BadLength));
        // An ACK cut inside its map is refused by the view, before any getter reads the map.
        assert_eq!(
            Frame::new_checked(&ACK_BYTES[..21]),
            Err(Malformed::BadLength)
        );
    }

    proptest! {
        // Failing cases are kept beside this file (see test_support::proptest_config).
        #![proptest_config(crate::test_support::proptest_config())]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(frame) = Frame::new_checked(&bytes[..]) {
                let _ = (frame.kind(), frame.nonce(), frame.seq(), frame.received(), frame.payload());
                let _ = FrameRepr::parse(&frame);
            }
        }

        #[test]
        fn frames_round_trip(seq in any::<u32>(), nonce in any::<u64>(),
                             payload in proptest::collection::vec(any::<u8>(), 1..MAX_PAYLOAD)) {
            let repr = FrameRepr { nonce, body: Body::Data { seq, payload } };
            prop_assert_eq!(parsed(&emitted(&repr)), Ok(repr));
        }
    }
}
