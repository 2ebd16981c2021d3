//! STUN over a TCP stream (`wire::framing`): the frames cut from a byte stream must not depend
//! on how the stream arrived. The same stream is framed once whole and once in arbitrary chunks
//! (1 to 64 bytes, sizes from the input); both must yield the same frames and stop at the same
//! point with the same verdict. Every complete frame also goes through `Message::parse`.
//!
//! Input: one byte `n`, then `n % 16` chunk sizes, then the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natlens::wire::framing::{next_frame, Frame};
use natlens::wire::stun::{frame_len, HEADER_LEN};
use natlens::wire::Message;
use natlens_fuzz::chunks;

const MAX_MESSAGE: usize = 2048;

/// Frames everything the receiver holds after each chunk; returns the frames and how the
/// stream ended (`None`: still waiting for bytes).
fn frame<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> (Vec<Vec<u8>>, Option<Frame>) {
    let mut buffer = Vec::new();
    let mut frames = Vec::new();
    for piece in pieces {
        buffer.extend_from_slice(piece);
        loop {
            match next_frame(&buffer, MAX_MESSAGE) {
                Frame::Complete(len) => {
                    assert!((HEADER_LEN..=MAX_MESSAGE).contains(&len) && len <= buffer.len());
                    assert_eq!(frame_len(&buffer), Some(len));
                    let frame: Vec<u8> = buffer.drain(..len).collect();
                    let _ = Message::parse(&frame);
                    frames.push(frame);
                }
                Frame::Partial => break,
                end @ (Frame::TooLarge(_) | Frame::NotStun) => return (frames, Some(end)),
            }
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let sizes = &rest[..usize::from(n % 16).min(rest.len())];
    let stream = &rest[sizes.len()..];
    let whole = frame(std::iter::once(stream));
    let chunked = frame(chunks(stream, sizes));
    assert_eq!(whole, chunked, "framing depends on chunking");
    let framed: usize = whole.0.iter().map(Vec::len).sum();
    assert!(framed <= stream.len());
});
