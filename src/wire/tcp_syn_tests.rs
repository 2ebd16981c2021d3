//! Byte fixtures and properties for crafted SYNs.
//!
//! The fixtures' checksums were computed outside this code (a 20-line Python RFC 1071 sum over
//! the pseudo-header and segment) and are checked again here by [`rfc1071`], which shares
//! nothing with pnet.

use super::*;
use proptest::prelude::*;

/// A SYN 192.0.2.10:40000 → 203.0.113.2:50000, TTL 2, as `SegmentRepr::syn` writes it.
const SYN_V4: [u8; 60] = [
    0x45, 0x00, // version 4, IHL 5; DSCP/ECN 0
    0x00, 0x3c, // total length 60
    0x00, 0x00, 0x40, 0x00, // identification 0; DF, offset 0
    0x02, 0x06, // TTL 2, protocol TCP
    0x7a, 0xaf, // header checksum
    0xc0, 0x00, 0x02, 0x0a, // 192.0.2.10
    0xcb, 0x00, 0x71, 0x02, // 203.0.113.2
    0x9c, 0x40, 0xc3, 0x50, // ports 40000 → 50000
    0x11, 0x22, 0x33, 0x44, // sequence number
    0x00, 0x00, 0x00, 0x00, // acknowledgement 0
    0xa0, 0x02, // data offset 10 words; SYN
    0xfa, 0xf0, // window 64240
    0xa7, 0x04, // checksum
    0x00, 0x00, // urgent pointer
    0x02, 0x04, 0x05, 0xb4, // MSS 1460
    0x04, 0x02, // SACK permitted (in the NOP NOP slot before the timestamps)
    0x08, 0x0a, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, // TSval 0x01020304, TSecr 0
    0x01, 0x03, 0x03, 0x07, // NOP, window scale 7
];

/// The same SYN shape over IPv6: 2001:db8::a:40000 → 2001:db8:1::2:50000, hop limit 3.
const SYN_V6: [u8; 80] = [
    0x60, 0x00, 0x00, 0x00, // version 6, traffic class 0, flow label 0
    0x00, 0x28, 0x06, 0x03, // payload length 40, next header TCP, hop limit 3
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a, // 2001:db8::a
    0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // 2001:db8:1::2
    0x9c, 0x40, 0xc3, 0x50, // ports 40000 → 50000
    0xde, 0xad, 0xbe, 0xef, // sequence number
    0x00, 0x00, 0x00, 0x00, // acknowledgement 0
    0xa0, 0x02, 0xfd, 0x20, // data offset 10; SYN; window 64800
    0xdc, 0x2d, 0x00, 0x00, // checksum; urgent pointer
    0x02, 0x04, 0x05, 0xa0, // MSS 1440
    0x04, 0x02, 0x08, 0x0a, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x00, 0x00, 0x00, // SACK-perm, TS
    0x01, 0x03, 0x03, 0x07, // NOP, window scale 7
];

/// A SYN Linux 6.x sent on loopback (captured with a raw socket): ID and TTL 64 as the kernel
/// set them, MSS 65495, window scale 10, and a checksum field holding only the pseudo-header
/// sum because loopback offloads the rest.
const LINUX_LOOPBACK_SYN: &str = "4500003c40e240004006fbd77f0000017f0000019c400009c718665f\
00000000a002ffd7fe3000000204ffd70402080a67591625000000000103030a";

fn v4(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

fn v6(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 1071 one's-complement sum, written out independently of pnet.
fn rfc1071(chunks: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = chunks.concat();
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The TCP checksum of a packet, recomputed with `rfc1071` (checksum field taken as zero).
fn independent_tcp_checksum(packet: &[u8]) -> u16 {
    let (pseudo, tcp) = if packet[0] >> 4 == 4 {
        let tcp = &packet[20..];
        let mut pseudo = packet[12..20].to_vec();
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        (pseudo, tcp)
    } else {
        let tcp = &packet[40..];
        let mut pseudo = packet[8..40].to_vec();
        pseudo.extend_from_slice(&(tcp.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 6]);
        (pseudo, tcp)
    };
    let mut zeroed = tcp.to_vec();
    zeroed[16..18].fill(0);
    rfc1071(&[&pseudo, &zeroed])
}

fn fixture_v4_repr() -> SegmentRepr {
    SegmentRepr::syn(
        v4([192, 0, 2, 10], 40_000),
        v4([203, 0, 113, 2], 50_000),
        2,
        0x1122_3344,
        0x0102_0304,
    )
}

fn fixture_v6_repr() -> SegmentRepr {
    SegmentRepr {
        window: 64_800,
        ..SegmentRepr::syn(
            v6("2001:db8::a", 40_000),
            v6("2001:db8:1::2", 50_000),
            3,
            0xdead_beef,
            0x0a0b_0c0d,
        )
    }
}

#[test]
fn fixtures_carry_independently_checked_checksums() {
    assert_eq!(independent_tcp_checksum(&SYN_V4), 0xa704);
    assert_eq!(independent_tcp_checksum(&SYN_V6), 0xdc2d);
    let mut header = SYN_V4[..20].to_vec();
    header[10..12].fill(0);
    assert_eq!(rfc1071(&[&header]), 0x7aaf);
}

#[test]
fn deconstruct_ipv4_syn() {
    let segment = Segment::new_checked(&SYN_V4[..]).unwrap();
    assert_eq!(segment.src(), v4([192, 0, 2, 10], 40_000));
    assert_eq!(segment.dst(), v4([203, 0, 113, 2], 50_000));
    assert_eq!(segment.hop_limit(), 2);
    assert_eq!(segment.seq(), 0x1122_3344);
    assert_eq!(segment.ack(), 0);
    assert_eq!(segment.flags(), TcpFlags::SYN);
    assert_eq!(segment.kind(), SegmentKind::Syn);
    assert_eq!(segment.window(), 64_240);
    assert_eq!(segment.checksum(), 0xa704);
    assert!(segment.checksum_ok() && segment.ip_checksum_ok());
    assert_eq!(segment.options(), SynOptions::linux(1460, 0x0102_0304));
    assert_eq!(segment.payload_len(), 0);
}

#[test]
fn deconstruct_ipv6_syn() {
    let segment = Segment::new_checked(&SYN_V6[..]).unwrap();
    assert_eq!(segment.src(), v6("2001:db8::a", 40_000));
    assert_eq!(segment.dst(), v6("2001:db8:1::2", 50_000));
    assert_eq!(segment.hop_limit(), 3);
    assert_eq!(segment.seq(), 0xdead_beef);
    assert_eq!(segment.window(), 64_800);
    assert!(segment.checksum_ok());
    assert_eq!(segment.options(), SynOptions::linux(1440, 0x0a0b_0c0d));
    assert_eq!(SegmentRepr::parse(&segment), fixture_v6_repr());
}

#[test]
fn construct_matches_the_fixtures_byte_for_byte() {
    assert_eq!(fixture_v4_repr().to_bytes().unwrap(), SYN_V4);
    assert_eq!(fixture_v6_repr().to_bytes().unwrap(), SYN_V6);
    assert_eq!(fixture_v4_repr().buffer_len(), 60);
    assert_eq!(fixture_v6_repr().buffer_len(), 80);
}

#[test]
fn parse_emit_round_trips_the_fixture() {
    let segment = Segment::new_checked(&SYN_V4[..]).unwrap();
    assert_eq!(SegmentRepr::parse(&segment), fixture_v4_repr());
}

#[test]
fn linux_own_syn_reads_with_linux_options() {
    let bytes = hex(LINUX_LOOPBACK_SYN);
    let segment = Segment::new_checked(&bytes[..]).unwrap();
    assert_eq!(segment.src(), v4([127, 0, 0, 1], 40_000));
    assert_eq!(segment.dst(), v4([127, 0, 0, 1], 9));
    assert_eq!(segment.hop_limit(), 64);
    assert_eq!(
        segment.options(),
        SynOptions {
            mss: Some(65_495),
            sack_permitted: true,
            window_scale: Some(10),
            timestamps: Some((0x6759_1625, 0)),
        }
    );
    // The option bytes are laid out exactly as ours are.
    assert_eq!(segment.options_bytes()[..4], [0x02, 0x04, 0xff, 0xd7]);
    assert_eq!(segment.options_bytes()[4..8], SYN_V4[44..48]);
    // Offloaded: the field holds the pseudo-header sum, not the checksum.
    assert!(!segment.checksum_ok());
    assert!(segment.ip_checksum_ok());
}

#[test]
fn syn_ack_and_rst_are_recognised() {
    let mut bytes = SYN_V4;
    bytes[33] = TcpFlags::SYN | TcpFlags::ACK;
    assert_eq!(
        Segment::new_checked(&bytes[..]).unwrap().kind(),
        SegmentKind::SynAck
    );
    bytes[33] = TcpFlags::RST;
    assert_eq!(
        Segment::new_checked(&bytes[..]).unwrap().kind(),
        SegmentKind::Rst
    );
    bytes[33] = TcpFlags::RST | TcpFlags::ACK;
    assert_eq!(
        Segment::new_checked(&bytes[..]).unwrap().kind(),
        SegmentKind::Rst
    );
    bytes[33] = TcpFlags::ACK;
    assert_eq!(
        Segment::new_checked(&bytes[..]).unwrap().kind(),
        SegmentKind::Other
    );
    // A flipped flag breaks the checksum.
    assert!(!Segment::new_checked(&bytes[..]).unwrap().checksum_ok());
}

#[test]
fn truncated_and_malformed_packets_are_refused() {
    for len in 0..SYN_V4.len() {
        assert!(Segment::new_checked(&SYN_V4[..len]).is_err(), "{len}");
    }
    for len in 0..SYN_V6.len() {
        assert!(Segment::new_checked(&SYN_V6[..len]).is_err(), "{len}");
    }
    let mut bad = SYN_V4;
    bad[0] = 0x55;
    assert_eq!(
        Segment::new_checked(&bad[..]).unwrap_err(),
        ParseError::Version(5)
    );
    let mut bad = SYN_V4;
    bad[0] = 0x44;
    assert_eq!(
        Segment::new_checked(&bad[..]).unwrap_err(),
        ParseError::IpHeaderLength
    );
    let mut bad = SYN_V4;
    bad[9] = 17;
    assert_eq!(
        Segment::new_checked(&bad[..]).unwrap_err(),
        ParseError::NotTcp(17)
    );
    let mut bad = SYN_V4;
    bad[6] = 0x20; // more fragments
    assert_eq!(
        Segment::new_checked(&bad[..]).unwrap_err(),
        ParseError::Fragment
    );
    let mut bad = SYN_V4;
    bad[32] = 0x40; // data offset 4 words
    assert_eq!(
        Segment::new_checked(&bad[..]).unwrap_err(),
        ParseError::TcpHeaderLength
    );
    let mut bad = SYN_V4;
    bad[32] = 0xf0; // 60-byte header in a 40-byte segment
    assert_eq!(
        Segment::new_checked(&bad[..]).unwrap_err(),
        ParseError::TcpHeaderLength
    );
    let mut bad = SYN_V6;
    bad[6] = 0; // hop-by-hop options first
    assert_eq!(
        Segment::new_checked(&bad[..]).unwrap_err(),
        ParseError::NotTcp(0)
    );
}

#[test]
fn ethernet_padding_after_the_packet_is_ignored() {
    let mut padded = SYN_V4.to_vec();
    padded.extend_from_slice(&[0xee; 6]);
    let segment = Segment::new_checked(&padded[..]).unwrap();
    assert!(segment.checksum_ok());
    assert_eq!(segment.payload_len(), 0);
}

#[test]
fn malformed_options_stop_the_walk_without_failing() {
    // MSS, then an option claiming 40 bytes.
    let raw = [0x02, 0x04, 0x05, 0xb4, 0x08, 0x28, 0x00];
    assert_eq!(
        SynOptions::parse(&raw),
        SynOptions {
            mss: Some(1460),
            ..SynOptions::default()
        }
    );
    // Length 0 and 1 would loop forever or read the kind as length.
    assert_eq!(
        SynOptions::parse(&[0x03, 0x00, 0x03, 0x03, 0x07]),
        SynOptions::default()
    );
    assert_eq!(SynOptions::parse(&[0x03, 0x01]), SynOptions::default());
    // End of list stops; unknown kinds (TFO cookie 34) are skipped.
    assert_eq!(
        SynOptions::parse(&[0x22, 0x02, 0x04, 0x02, 0x00, 0x02, 0x04, 0x05, 0xb4]),
        SynOptions {
            sack_permitted: true,
            ..SynOptions::default()
        }
    );
    // A wrong length for a known kind is ignored, not misread.
    assert_eq!(
        SynOptions::parse(&[0x02, 0x03, 0x05]),
        SynOptions::default()
    );
}

#[test]
fn every_option_combination_has_linux_layout() {
    for mss in [None, Some(1460)] {
        for sack_permitted in [false, true] {
            for window_scale in [None, Some(7)] {
                for timestamps in [None, Some((1, 2))] {
                    let options = SynOptions {
                        mss,
                        sack_permitted,
                        window_scale,
                        timestamps,
                    };
                    let repr = SegmentRepr {
                        options,
                        ..fixture_v4_repr()
                    };
                    let bytes = repr.to_bytes().unwrap();
                    assert_eq!(options.encoded_len() % 4, 0);
                    assert_eq!(bytes.len(), 40 + options.encoded_len());
                    let segment = Segment::new_checked(&bytes[..]).unwrap();
                    assert_eq!(segment.options(), options);
                    assert_eq!(independent_tcp_checksum(&bytes), segment.checksum());
                }
            }
        }
    }
}

#[test]
fn emit_refuses_mixed_families_and_short_buffers() {
    let repr = SegmentRepr {
        dst: v6("2001:db8::1", 1),
        ..fixture_v4_repr()
    };
    assert_eq!(repr.to_bytes().unwrap_err(), EmitError::MixedFamilies);
    let mut short = [0u8; 59];
    assert_eq!(
        fixture_v4_repr().emit(&mut short).unwrap_err(),
        EmitError::BufferTooSmall
    );
}

fn any_options() -> impl Strategy<Value = SynOptions> {
    (
        proptest::option::of(any::<u16>()),
        any::<bool>(),
        proptest::option::of(any::<u8>()),
        proptest::option::of(any::<(u32, u32)>()),
    )
        .prop_map(
            |(mss, sack_permitted, window_scale, timestamps)| SynOptions {
                mss,
                sack_permitted,
                window_scale,
                timestamps,
            },
        )
}

fn any_endpoints() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
    prop_oneof![
        any::<([u8; 4], u16, [u8; 4], u16)>()
            .prop_map(|(a, p, b, q)| (SocketAddr::from((a, p)), SocketAddr::from((b, q)))),
        any::<([u8; 16], u16, [u8; 16], u16)>().prop_map(|(a, p, b, q)| (
            SocketAddr::from((Ipv6Addr::from(a), p)),
            SocketAddr::from((Ipv6Addr::from(b), q))
        )),
    ]
}

fn any_repr() -> impl Strategy<Value = SegmentRepr> {
    (
        any_endpoints(),
        any::<(u8, u32, u32, u8, u16)>(),
        any_options(),
    )
        .prop_map(
            |((src, dst), (hop_limit, seq, ack, flags, window), options)| SegmentRepr {
                src,
                dst,
                hop_limit,
                seq,
                ack,
                flags,
                window,
                options,
            },
        )
}

/// Calls every getter, as a receiver might.
fn read_everything(bytes: &[u8]) {
    if let Ok(segment) = Segment::new_checked(bytes) {
        let _ = (
            segment.src(),
            segment.dst(),
            segment.hop_limit(),
            segment.kind(),
        );
        let _ = (
            segment.seq(),
            segment.ack(),
            segment.window(),
            segment.options(),
        );
        let _ = (
            segment.checksum_ok(),
            segment.ip_checksum_ok(),
            segment.payload_len(),
        );
        let _ = SegmentRepr::parse(&segment);
    }
}

proptest! {
    // Failing cases are kept beside this file (see test_support::proptest_config).
    #![proptest_config(crate::test_support::proptest_config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        read_everything(&bytes);
    }

    #[test]
    fn damaged_syns_never_panic(
        v6 in any::<bool>(),
        cut in 0usize..80,
        flips in proptest::collection::vec((0usize..80, any::<u8>()), 0..6),
    ) {
        let mut bytes = if v6 { SYN_V6.to_vec() } else { SYN_V4.to_vec() };
        for (at, value) in flips {
            if let Some(byte) = bytes.get_mut(at) {
                *byte = value;
            }
        }
        bytes.truncate(cut.max(1));
        read_everything(&bytes);
    }

    #[test]
    fn parse_of_emit_is_identity(repr in any_repr()) {
        let bytes = repr.to_bytes().unwrap();
        let segment = Segment::new_checked(&bytes[..]).unwrap();
        prop_assert!(segment.checksum_ok());
        prop_assert!(segment.ip_checksum_ok());
        prop_assert_eq!(independent_tcp_checksum(&bytes), segment.checksum());
        prop_assert_eq!(SegmentRepr::parse(&segment), repr);
    }
}
