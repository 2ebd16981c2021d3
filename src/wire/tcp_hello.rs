//! The TCP hello: the first 16 bytes each end writes on a punched TCP stream, its own
//! direction's record, so that both ends' reports show both directions (over UDP the PUNCH
//! messages carry the same facts). Documented in `natlens-protocol(7)`, "TCP hello".
//!
//! ```text
//!  0 ...... 1   2 ...... 3   4 ............ 7   8 ........................ 15
//! +------------+------------+----------------+-----------------------------+
//! | port       | offset     | packets sent   | first through (ms)          |
//! | through    | (u16, BE)  | (u32, BE)      | (u64, BE)                   |
//! | (u16, BE)  |            |                |                             |
//! +------------+------------+----------------+-----------------------------+
//! ```
//!
//! Each field has a value that means "unknown": port 0 (no NAT hands it out), offset
//! `0xFFFF`, packets `0xFFFF_FFFF`, first through `u64::MAX`. A known value too large for its
//! field is written as the largest known one (offset `0xFFFE`, first through `u64::MAX - 1`),
//! so that it never reads back as unknown.

use std::fmt;
use std::time::Duration;

/// Bytes of a hello.
pub const HELLO_LEN: usize = 16;

/// Field offsets.
mod field {
    use std::ops::Range;
    pub const PORT_THROUGH: Range<usize> = 0..2;
    pub const OFFSET: Range<usize> = 2..4;
    pub const PACKETS_SENT: Range<usize> = 4..8;
    pub const FIRST_THROUGH_MS: Range<usize> = 8..16;
}

const NO_PORT: u16 = 0;
const NO_OFFSET: u16 = u16::MAX;
const NO_PACKETS: u32 = u32::MAX;
const NO_TIME: u64 = u64::MAX;

/// Why bytes are not a hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncated {
    /// Fewer than [`HELLO_LEN`] bytes.
    Short(usize),
}

impl fmt::Display for Truncated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Truncated::Short(len) = self;
        write!(f, "a TCP hello of {len} bytes (needs {HELLO_LEN})")
    }
}

impl std::error::Error for Truncated {}

/// A checked view over a hello's bytes: after [`TcpHello::new_checked`] no getter panics.
#[derive(Debug, Clone, Copy)]
pub struct TcpHello<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpHello<T> {
    /// Wraps `buffer` once it is long enough for every field.
    pub fn new_checked(buffer: T) -> Result<TcpHello<T>, Truncated> {
        let len = buffer.as_ref().len();
        if len < HELLO_LEN {
            return Err(Truncated::Short(len));
        }
        Ok(TcpHello { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes<const N: usize>(&self, range: std::ops::Range<usize>) -> [u8; N] {
        self.buffer.as_ref()[range]
            .try_into()
            .expect("checked length")
    }

    /// The far public port the sender's connection reached (0: unknown).
    pub fn port_through(&self) -> u16 {
        u16::from_be_bytes(self.bytes(field::PORT_THROUGH))
    }

    /// That port's index among the sender's predicted far ports (`0xFFFF`: unknown).
    pub fn offset(&self) -> u16 {
        u16::from_be_bytes(self.bytes(field::OFFSET))
    }

    /// `connect()` attempts plus crafted SYNs the sender's punch took (`u32::MAX`: unknown).
    pub fn packets_sent(&self) -> u32 {
        u32::from_be_bytes(self.bytes(field::PACKETS_SENT))
    }

    /// Milliseconds from the sender's start to its connection (`u64::MAX`: unknown).
    pub fn first_through_ms(&self) -> u64 {
        u64::from_be_bytes(self.bytes(field::FIRST_THROUGH_MS))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpHello<T> {
    fn put(&mut self, range: std::ops::Range<usize>, value: &[u8]) {
        self.buffer.as_mut()[range].copy_from_slice(value);
    }

    pub fn set_port_through(&mut self, port: u16) {
        self.put(field::PORT_THROUGH, &port.to_be_bytes());
    }

    pub fn set_offset(&mut self, offset: u16) {
        self.put(field::OFFSET, &offset.to_be_bytes());
    }

    pub fn set_packets_sent(&mut self, packets: u32) {
        self.put(field::PACKETS_SENT, &packets.to_be_bytes());
    }

    pub fn set_first_through_ms(&mut self, ms: u64) {
        self.put(field::FIRST_THROUGH_MS, &ms.to_be_bytes());
    }
}

/// A hello, owned: every field optional, as the sender may not know it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpHelloRepr {
    pub port_through: Option<u16>,
    pub offset: Option<usize>,
    pub packets_sent: Option<u32>,
    /// Millisecond precision on the wire.
    pub first_through: Option<Duration>,
}

impl TcpHelloRepr {
    /// Reads every field of a checked hello.
    pub fn parse<T: AsRef<[u8]>>(hello: &TcpHello<T>) -> TcpHelloRepr {
        let port = hello.port_through();
        let offset = hello.offset();
        let packets = hello.packets_sent();
        let ms = hello.first_through_ms();
        TcpHelloRepr {
            port_through: (port != NO_PORT).then_some(port),
            offset: (offset != NO_OFFSET).then_some(usize::from(offset)),
            packets_sent: (packets != NO_PACKETS).then_some(packets),
            first_through: (ms != NO_TIME).then(|| Duration::from_millis(ms)),
        }
    }

    /// Writes every field; a value past its field's range is written as the largest known one.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, hello: &mut TcpHello<T>) {
        hello.set_port_through(self.port_through.unwrap_or(NO_PORT));
        hello.set_offset(self.offset.map_or(NO_OFFSET, |o| {
            u16::try_from(o).unwrap_or(NO_OFFSET - 1).min(NO_OFFSET - 1)
        }));
        hello.set_packets_sent(self.packets_sent.unwrap_or(NO_PACKETS));
        hello.set_first_through_ms(self.first_through.map_or(NO_TIME, |d| {
            u64::try_from(d.as_millis())
                .unwrap_or(NO_TIME - 1)
                .min(NO_TIME - 1)
        }));
    }

    /// Bytes [`TcpHelloRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        HELLO_LEN
    }

    /// The hello as bytes.
    pub fn to_bytes(&self) -> [u8; HELLO_LEN] {
        let mut out = [0u8; HELLO_LEN];
        self.emit(&mut TcpHello::new_checked(&mut out[..]).expect("HELLO_LEN bytes"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hello of a punch that got through far port 40002, the third predicted one, after 7
    /// packets and 300 ms.
    const FIXTURE: [u8; HELLO_LEN] = [
        0x9c, 0x42, // port through: 40002
        0x00, 0x02, // offset: 2
        0x00, 0x00, 0x00, 0x07, // packets sent: 7
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x2c, // first through: 300 ms
    ];

    fn fixture_repr() -> TcpHelloRepr {
        TcpHelloRepr {
            port_through: Some(40_002),
            offset: Some(2),
            packets_sent: Some(7),
            first_through: Some(Duration::from_millis(300)),
        }
    }

    #[test]
    fn the_view_reads_each_field() {
        let hello = TcpHello::new_checked(&FIXTURE[..]).unwrap();
        assert_eq!(hello.port_through(), 40_002);
        assert_eq!(hello.offset(), 2);
        assert_eq!(hello.packets_sent(), 7);
        assert_eq!(hello.first_through_ms(), 300);
    }

    #[test]
    fn parse_reads_the_fixture() {
        let hello = TcpHello::new_checked(&FIXTURE[..]).unwrap();
        assert_eq!(TcpHelloRepr::parse(&hello), fixture_repr());
    }

    #[test]
    fn emit_writes_the_fixture() {
        let repr = fixture_repr();
        let mut buf = vec![0xAAu8; repr.buffer_len()];
        repr.emit(&mut TcpHello::new_checked(&mut buf[..]).unwrap());
        assert_eq!(buf, FIXTURE);
        assert_eq!(repr.to_bytes(), FIXTURE);
    }

    #[test]
    fn unknown_fields_round_trip_as_unknown() {
        let unknown = TcpHelloRepr::default();
        let bytes = unknown.to_bytes();
        assert_eq!(
            bytes,
            [
                0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff
            ]
        );
        let back = TcpHelloRepr::parse(&TcpHello::new_checked(&bytes[..]).unwrap());
        assert_eq!(back, unknown);
    }

    #[test]
    fn values_too_large_stay_known() {
        let huge = TcpHelloRepr {
            offset: Some(1 << 20),
            first_through: Some(Duration::MAX),
            ..fixture_repr()
        };
        let bytes = huge.to_bytes();
        let back = TcpHelloRepr::parse(&TcpHello::new_checked(&bytes[..]).unwrap());
        assert_eq!(back.offset, Some(usize::from(u16::MAX - 1)));
        assert_eq!(
            back.first_through,
            Some(Duration::from_millis(u64::MAX - 1))
        );
    }

    #[test]
    fn truncated_input_is_refused() {
        for len in 0..HELLO_LEN {
            assert_eq!(
                TcpHello::new_checked(&FIXTURE[..len]).unwrap_err(),
                Truncated::Short(len)
            );
        }
        assert!(TcpHello::new_checked(&FIXTURE[..]).is_ok());
    }
}
