//! Crafted TCP/IP parsing (`wire::tcp_syn`): what the raw socket of a TCP punch reads, IPv4 and
//! IPv6. `Segment::new_checked` and every getter on arbitrary packets; for whatever parses, the
//! summary (`SegmentRepr`) re-emits to a segment with correct checksums that reads back to the
//! same summary.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natlens::wire::tcp_syn::{Segment, SegmentRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(segment) = Segment::new_checked(data) else {
        return;
    };
    let _ = (
        segment.src(),
        segment.dst(),
        segment.hop_limit(),
        segment.kind(),
    );
    let _ = (
        segment.seq(),
        segment.ack(),
        segment.flags(),
        segment.window(),
    );
    let _ = (
        segment.checksum(),
        segment.options_bytes(),
        segment.options(),
    );
    let _ = (segment.payload_len(), segment.expected_checksum());
    let _ = (
        segment.checksum_ok(),
        segment.ip_checksum_ok(),
        segment.tcp_bytes(),
    );
    let repr = SegmentRepr::parse(&segment);
    let _ = repr.kind();
    if let Ok(bytes) = repr.to_bytes() {
        assert_eq!(bytes.len(), repr.buffer_len());
        let again = Segment::new_checked(&bytes[..]).expect("emitted segment parses");
        assert!(again.checksum_ok() && again.ip_checksum_ok());
        assert_eq!(SegmentRepr::parse(&again), repr, "SegmentRepr emit∘parse");
    }
});
