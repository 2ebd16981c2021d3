//! STUN over a TCP stream (RFC 8489 §6.2.2): messages follow each other with no extra framing;
//! each one's length comes from its own header.

use crate::wire::stun::{frame_len, HEADER_LEN};

/// What the next bytes of a stream buffer hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A whole message of this many bytes is at the front of the buffer.
    Complete(usize),
    /// More bytes are needed.
    Partial,
    /// The header announces a message larger than the limit: the stream cannot be resynchronised
    /// (there is no delimiter to skip to), so the connection must be closed.
    TooLarge(usize),
    /// The first byte has one of the two top bits set: not STUN, close.
    NotStun,
}

/// Looks at the front of a stream buffer.
pub fn next_frame(buffer: &[u8], max_message: usize) -> Frame {
    if let Some(&first) = buffer.first() {
        if first & 0xC0 != 0 {
            return Frame::NotStun;
        }
    }
    match frame_len(buffer) {
        None => Frame::Partial,
        Some(len) if len > max_message => Frame::TooLarge(len),
        Some(len) if buffer.len() >= len && len >= HEADER_LEN => Frame::Complete(len),
        Some(_) => Frame::Partial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_back_to_back_messages() {
        let mut stream = vec![0, 1, 0, 4, 0x21, 0x12, 0xA4, 0x42];
        stream.extend_from_slice(&[0; 16]);
        assert_eq!(next_frame(&stream, 2048), Frame::Complete(24));
        assert_eq!(next_frame(&stream[..23], 2048), Frame::Partial);
        assert_eq!(next_frame(&stream[..2], 2048), Frame::Partial);
        assert_eq!(next_frame(&[], 2048), Frame::Partial);
    }

    #[test]
    fn refuses_oversized_and_foreign_frames() {
        assert_eq!(
            next_frame(&[0, 1, 0xFF, 0xFC], 2048),
            Frame::TooLarge(20 + 0xFFFC)
        );
        assert_eq!(next_frame(b"GET / HTTP/1.1", 2048), Frame::NotStun);
    }
}
