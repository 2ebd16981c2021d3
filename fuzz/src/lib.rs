//! Helpers shared by the fuzz targets: reading a fuzz input as a stream of operations.
//!
//! Stateful targets (the server core, the client session, the punch path) take their input as
//! operations, so that one input can drive a session through several messages and clock steps.
//! The encoding is deliberately plain, so that `seed.sh` can write seeds from captures:
//!
//! ```text
//! op (1 byte) | selector (1 byte) | length (u16, BE) | that many bytes
//! ```
//!
//! Every op carries the same header; ops that need no bytes use length 0. A truncated tail is
//! read as far as it goes.

/// One decoded operation.
#[derive(Debug, Clone, Copy)]
pub struct Op<'a> {
    pub code: u8,
    pub selector: u8,
    pub bytes: &'a [u8],
}

/// Iterates over the operations of a fuzz input.
pub struct Ops<'a> {
    rest: &'a [u8],
}

impl<'a> Ops<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Ops { rest: data }
    }
}

impl<'a> Iterator for Ops<'a> {
    type Item = Op<'a>;

    fn next(&mut self) -> Option<Op<'a>> {
        let (&code, rest) = self.rest.split_first()?;
        let selector = rest.first().copied().unwrap_or(0);
        let len = match rest.get(1..3) {
            Some(len) => usize::from(u16::from_be_bytes([len[0], len[1]])),
            None => 0,
        };
        let body = rest.get(3..).unwrap_or(&[]);
        let len = len.min(body.len());
        self.rest = &body[len..];
        Some(Op {
            code,
            selector,
            bytes: &body[..len],
        })
    }
}

/// Splits `stream` into chunks whose sizes come from `sizes` (1 to 64 bytes each, cycling;
/// the whole stream at once when `sizes` is empty), as a TCP receiver might see it.
pub fn chunks<'a>(stream: &'a [u8], sizes: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut at = 0;
    let mut turn = 0;
    std::iter::from_fn(move || {
        if at >= stream.len() {
            return None;
        }
        let size = if sizes.is_empty() {
            stream.len()
        } else {
            usize::from(sizes[turn % sizes.len()] % 64) + 1
        };
        turn += 1;
        let end = (at + size).min(stream.len());
        let chunk = &stream[at..end];
        at = end;
        Some(chunk)
    })
}
