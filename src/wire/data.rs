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
//! `next + 1 + i`: a whole sender window); CLOSE (header only, `seq` 0) says "I have your whole stream and you have
//! acknowledged mine", which lets the peer stop at once instead of lingering.

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
    pub const MAP: Range<usize> = 14..22;
}

const KIND_DATA: u8 = 1;
const KIND_FIN: u8 = 2;
const KIND_ACK: u8 = 3;
const KIND_CLOSE: u8 = 4;

/// One frame, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data { seq: u32, payload: Vec<u8> },
    Fin { seq: u32 },
    Ack { next: u32, received: u64 },
    Close,
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

/// True when `bytes` starts like a DATA frame (the demultiplexing test).
pub fn is_data(bytes: &[u8]) -> bool {
    bytes.first() == Some(&MARKER)
}

impl Frame {
    /// Reads a frame and the receiver nonce it carries.
    pub fn parse(bytes: &[u8]) -> Result<(u64, Frame), Malformed> {
        if bytes.len() < HEADER_LEN || bytes[field::MARKER] != MARKER {
            return Err(Malformed::NotData);
        }
        let nonce = u64::from_be_bytes(bytes[field::NONCE].try_into().expect("8 bytes"));
        let seq = u32::from_be_bytes(bytes[field::SEQ].try_into().expect("4 bytes"));
        let frame = match bytes[field::KIND] {
            KIND_DATA => {
                let payload = &bytes[HEADER_LEN..];
                if payload.is_empty() || payload.len() > MAX_PAYLOAD {
                    return Err(Malformed::BadLength);
                }
                Frame::Data {
                    seq,
                    payload: payload.to_vec(),
                }
            }
            KIND_FIN if bytes.len() == HEADER_LEN => Frame::Fin { seq },
            KIND_ACK if bytes.len() == field::MAP.end => Frame::Ack {
                next: seq,
                received: u64::from_be_bytes(bytes[field::MAP].try_into().expect("8 bytes")),
            },
            KIND_CLOSE if bytes.len() == HEADER_LEN => Frame::Close,
            KIND_FIN | KIND_ACK | KIND_CLOSE => return Err(Malformed::BadLength),
            _ => return Err(Malformed::UnknownKind),
        };
        Ok((nonce, frame))
    }

    /// The frame's bytes, addressed to the end whose nonce is `nonce`.
    pub fn emit(&self, nonce: u64) -> Vec<u8> {
        let (kind, seq) = match self {
            Frame::Data { seq, .. } => (KIND_DATA, *seq),
            Frame::Fin { seq } => (KIND_FIN, *seq),
            Frame::Ack { next, .. } => (KIND_ACK, *next),
            Frame::Close => (KIND_CLOSE, 0),
        };
        let mut bytes = Vec::with_capacity(HEADER_LEN + MAX_PAYLOAD);
        bytes.extend_from_slice(&[MARKER, kind]);
        bytes.extend_from_slice(&nonce.to_be_bytes());
        bytes.extend_from_slice(&seq.to_be_bytes());
        match self {
            Frame::Data { payload, .. } => bytes.extend_from_slice(payload),
            Frame::Ack { received, .. } => bytes.extend_from_slice(&received.to_be_bytes()),
            Frame::Fin { .. } | Frame::Close => {}
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NONCE: u64 = 0x0102_0304_0506_0708;

    #[test]
    fn data_bytes_field_by_field() {
        let bytes = Frame::Data {
            seq: 7,
            payload: b"hi".to_vec(),
        }
        .emit(NONCE);
        // Marker, kind 1.
        assert_eq!(&bytes[0..2], &[0xEA, 1]);
        // The receiver's nonce, big-endian.
        assert_eq!(&bytes[2..10], &[1, 2, 3, 4, 5, 6, 7, 8]);
        // Sequence number 7.
        assert_eq!(&bytes[10..14], &[0, 0, 0, 7]);
        assert_eq!(&bytes[14..], b"hi");
        let (nonce, frame) = Frame::parse(&bytes).unwrap();
        assert_eq!(nonce, NONCE);
        assert_eq!(
            frame,
            Frame::Data {
                seq: 7,
                payload: b"hi".to_vec()
            }
        );
    }

    #[test]
    fn fin_and_ack_round_trip() {
        let fin = Frame::Fin { seq: 3 }.emit(NONCE);
        assert_eq!(fin.len(), HEADER_LEN);
        assert_eq!(Frame::parse(&fin).unwrap().1, Frame::Fin { seq: 3 });
        let ack = Frame::Ack {
            next: 9,
            received: 0b101,
        };
        let bytes = ack.emit(NONCE);
        // Kind 3, next 9, then the map: bits 0 and 2 are sequence numbers 10 and 12.
        assert_eq!(bytes[1], 3);
        assert_eq!(&bytes[14..22], &[0, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(Frame::parse(&bytes).unwrap().1, ack);
        let close = Frame::Close.emit(NONCE);
        assert_eq!((close.len(), close[1]), (HEADER_LEN, 4));
        assert_eq!(Frame::parse(&close).unwrap().1, Frame::Close);
    }

    #[test]
    fn damage_is_refused() {
        let data = Frame::Data {
            seq: 1,
            payload: vec![0; MAX_PAYLOAD],
        }
        .emit(NONCE);
        assert!(Frame::parse(&data).is_ok());
        let mut long = data.clone();
        long.push(0);
        assert_eq!(Frame::parse(&long), Err(Malformed::BadLength));
        assert_eq!(Frame::parse(&data[..HEADER_LEN]), Err(Malformed::BadLength));
        assert_eq!(Frame::parse(&data[..13]), Err(Malformed::NotData));
        let mut stun = data.clone();
        stun[0] = 0x01;
        assert_eq!(Frame::parse(&stun), Err(Malformed::NotData));
        assert!(!is_data(&stun) && is_data(&data));
        let mut kind = data;
        kind[1] = 9;
        assert_eq!(Frame::parse(&kind), Err(Malformed::UnknownKind));
        let mut fin = Frame::Fin { seq: 1 }.emit(NONCE);
        fin.push(0);
        assert_eq!(Frame::parse(&fin), Err(Malformed::BadLength));
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: Some(Box::new(
                proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
            )),
            ..ProptestConfig::default()
        })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Frame::parse(&bytes);
        }

        #[test]
        fn frames_round_trip(seq in any::<u32>(), nonce in any::<u64>(),
                             payload in proptest::collection::vec(any::<u8>(), 1..MAX_PAYLOAD)) {
            let frame = Frame::Data { seq, payload };
            prop_assert_eq!(Frame::parse(&frame.emit(nonce)), Ok((nonce, frame)));
        }
    }
}
