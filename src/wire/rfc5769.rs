//! The RFC 5769 test vectors, shared by the tests of the STUN view, the Repr and the integrity
//! checks. The sample request is spelled out field by field; the others as the RFC prints them
//! (one 32-bit word a line).

/// The short-term password of every sample but the long-term one.
pub const PASSWORD: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";

/// §2.1 Sample Request: SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME, MI, FINGERPRINT.
pub const SAMPLE_REQUEST: [u8; 108] = [
    0x00, 0x01, // type: Binding request
    0x00, 0x58, // length: 88 bytes of attributes
    0x21, 0x12, 0xa4, 0x42, // magic cookie
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, // transaction ID
    0x80, 0x22, 0x00, 0x10, // SOFTWARE, 16 bytes
    b'S', b'T', b'U', b'N', b' ', b't', b'e', b's', b't', b' ', b'c', b'l', b'i', b'e', b'n', b't',
    0x00, 0x24, 0x00, 0x04, // PRIORITY, 4 bytes
    0x6e, 0x00, 0x01, 0xff, // priority value
    0x80, 0x29, 0x00, 0x08, // ICE-CONTROLLED, 8 bytes
    0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, // tie-breaker
    0x00, 0x06, 0x00, 0x09, // USERNAME, 9 bytes
    b'e', b'v', b't', b'j', b':', b'h', b'6', b'v', b'Y', // "evtj:h6vY"
    0x20, 0x20, 0x20, // padding: the RFC pads with spaces, not zeros
    0x00, 0x08, 0x00, 0x14, // MESSAGE-INTEGRITY, 20 bytes
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, // HMAC-SHA1 ...
    0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, // ... over everything before
    0x80, 0x28, 0x00, 0x04, // FINGERPRINT, 4 bytes
    0xe5, 0x7a, 0x3b, 0xcf, // CRC-32 xor 0x5354554e
];

fn hex(words: &str) -> Vec<u8> {
    let digits: String = words.split_whitespace().collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

/// §2.2 Sample IPv4 Response.
pub fn ipv4_response() -> Vec<u8> {
    hex("0101003c 2112a442 b7e7a701 bc34d686 fa87dfae
         8022000b 74657374 20766563 746f7220
         00200008 0001a147 e112a643
         00080014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7
         80280004 c07d4c96")
}

/// §2.3 Sample IPv6 Response.
pub fn ipv6_response() -> Vec<u8> {
    hex("01010048 2112a442 b7e7a701 bc34d686 fa87dfae
         8022000b 74657374 20766563 746f7220
         00200014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9
         00080014 a382954e 4be67bf1 1784c97c 8292c275 bfe3ed41
         80280004 c8fb0b4c")
}

/// §2.4 Sample Request with Long-Term Authentication (no FINGERPRINT). Its padding is zeros, so
/// it re-emits byte for byte.
pub fn long_term_request() -> Vec<u8> {
    hex("00010060 2112a442 78ad3433 c6ad72c0 29da412e
         00060012 e3839ee3 8388e383 aae38383 e382afe3 82b90000
         0015001c 662f2f34 39396b39 35346436 4f4c3334 6f4c3946 53547679 36347341
         0014000b 6578616d 706c652e 6f726700
         00080014 f6702465 6dd64a3e 02b8e071 2e85c9a2 8ca89666")
}
