//! The callee's verdict on a punched TCP connection when a punch races two address families:
//! one byte after its hello, `K` (0x4B) for the connection both ends keep, `D` (0x44) for one
//! both drop. Documented in `natlens-protocol(7)`, "TCP hello".

use std::fmt;

/// Bytes of a verdict.
pub const VERDICT_LEN: usize = 1;

const KEPT: u8 = b'K';
const DROPPED: u8 = b'D';

/// What the callee says of one connection of a two-family race.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The connection both ends keep: the data goes over it.
    Kept,
    /// Another family's connection was kept: both ends close this one.
    Dropped,
}

/// A byte that is no verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAVerdict(pub u8);

impl fmt::Display for NotAVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:02x} is no TCP race verdict", self.0)
    }
}

impl std::error::Error for NotAVerdict {}

impl Verdict {
    pub fn to_byte(self) -> u8 {
        match self {
            Verdict::Kept => KEPT,
            Verdict::Dropped => DROPPED,
        }
    }

    pub fn parse(byte: u8) -> Result<Verdict, NotAVerdict> {
        match byte {
            KEPT => Ok(Verdict::Kept),
            DROPPED => Ok(Verdict::Dropped),
            other => Err(NotAVerdict(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_round_trip_and_other_bytes_are_refused() {
        for verdict in [Verdict::Kept, Verdict::Dropped] {
            assert_eq!(Verdict::parse(verdict.to_byte()), Ok(verdict));
        }
        assert_eq!(Verdict::parse(0), Err(NotAVerdict(0)));
        assert_eq!(Verdict::parse(b'k'), Err(NotAVerdict(b'k')));
    }
}
