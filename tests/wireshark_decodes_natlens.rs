//! natlens's own messages must look like STUN to Wireshark: the test writes a pcap of LOGIN,
//! CALL (with NAT facts), PEER-HELLO, an error answer and a PUNCH request and echo (as
//! `wire::punch` writes them) in UDP to port 3478, and checks what `tshark` decodes. No capture privileges needed: the pcap is written, not captured.

use std::io::Write;
use std::process::Command;

use natlens::wire::attr::AttrType;
use natlens::wire::natlens::{self as nl, NatFacts, Transports};
use natlens::wire::punch::{Attempt, PunchRepr};
use natlens::wire::stun::{Class, MessageType, Method};
use natlens::wire::{MessageBuilder, TransactionId};

fn message(method: Method, class: Class, add: impl FnOnce(&mut MessageBuilder<'_>)) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut builder = MessageBuilder::new(
        &mut buf,
        MessageType::new(method, class),
        TransactionId([7; 12]),
    );
    add(&mut builder);
    builder.fingerprint();
    buf
}

/// A PUNCH request, or the echo answering it.
fn punch(echo: bool) -> Vec<u8> {
    let address = "198.51.100.7:40003".parse().unwrap();
    let repr = PunchRepr {
        echo_response: echo,
        tid: TransactionId([9; 12]),
        call_id: 42,
        nonce: 0x0102_0304_0506_0708,
        echo: echo.then_some(0x1112_1314_1516_1718),
        target: (!echo).then_some(address),
        mapped: echo.then_some(address),
        attempt: Some(Attempt { index: 1, sent: 2 }),
    };
    let mut buf = Vec::new();
    repr.emit(&mut buf).to_vec()
}

/// IPv4 + UDP around a payload, for a LINKTYPE_RAW pcap (UDP checksum 0: "not computed").
fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut packet = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ];
    packet.extend_from_slice(&[192, 0, 2, 1, 203, 0, 113, 5]);
    let checksum = {
        let sum: u32 = packet
            .chunks(2)
            .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]])))
            .sum();
        let folded = (sum & 0xFFFF) + (sum >> 16);
        !((folded & 0xFFFF) + (folded >> 16)) as u16
    };
    packet[10..12].copy_from_slice(&checksum.to_be_bytes());
    let udp_len = (8 + payload.len()) as u16;
    packet.extend_from_slice(&40000u16.to_be_bytes());
    packet.extend_from_slice(&3478u16.to_be_bytes());
    packet.extend_from_slice(&udp_len.to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(payload);
    packet
}

fn pcap(packets: &[Vec<u8>]) -> Vec<u8> {
    // Magic, version 2.4, zone 0, sigfigs 0, snaplen 65535, LINKTYPE_RAW (101).
    let mut file = Vec::new();
    file.extend_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
    file.extend_from_slice(&2u16.to_le_bytes());
    file.extend_from_slice(&4u16.to_le_bytes());
    for field in [0u32, 0, 65535, 101] {
        file.extend_from_slice(&field.to_le_bytes());
    }
    for (i, packet) in packets.iter().enumerate() {
        for field in [i as u32, 0, packet.len() as u32, packet.len() as u32] {
            file.extend_from_slice(&field.to_le_bytes());
        }
        file.extend_from_slice(packet);
    }
    file
}

#[test]
fn tshark_decodes_natlens_methods_and_attributes_as_stun() {
    if Command::new("tshark").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "tshark missing in CI: .ci/run must install it"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: tshark not installed (apt-get install tshark)"
        );
        return;
    }
    let facts = NatFacts {
        observed: Some("198.51.100.7:40001".parse().unwrap()),
        transports: Transports {
            udp: true,
            tcp: true,
        },
        delta: Some(2),
        predicted_ports: vec![40003, 40005],
        profile: None,
        port_mapping: None,
        other_family: None,
    };
    let messages = [
        message(nl::LOGIN, Class::Request, |b| {
            b.attribute(nl::ID, b"alice");
        }),
        message(nl::CALL, Class::Request, |b| {
            b.attribute(nl::PEER_ID, b"bob");
            b.attribute(nl::CALL_ID, &42u64.to_be_bytes());
            facts.encode(b);
        }),
        message(nl::PEER_HELLO, Class::Request, |b| {
            b.attribute(nl::SERVER_NAME, b"s1");
        }),
        message(nl::LOGIN, Class::Error, |b| {
            b.error_code(409, "ID already logged in");
        }),
        punch(false),
        punch(true),
    ];
    let packets: Vec<Vec<u8>> = messages.iter().map(|m| ipv4_udp(m)).collect();
    let path = std::env::temp_dir().join(format!("natlens-wireshark-{}.pcap", std::process::id()));
    std::fs::write(&path, pcap(&packets)).unwrap();
    let output = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&path)
        .args([
            "-d",
            "udp.port==3478,stun",
            "-T",
            "fields",
            "-E",
            "separator=;",
            "-e",
            "stun.type",
            "-e",
            "stun.att.type",
            "-e",
            "stun.att.error",
            "-e",
            "_ws.expert.message",
            "-e",
            "stun.att.error.class",
        ])
        .output()
        .expect("run tshark");
    let _ = std::fs::remove_file(&path);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let rows: Vec<Vec<&str>> = text.lines().map(|line| line.split(';').collect()).collect();
    assert_eq!(rows.len(), 6, "one STUN message per packet: {text}");
    let types: Vec<u16> = rows.iter().map(|row| parse_hex(row[0])).collect();
    assert_eq!(
        types,
        [0x0281, 0x0284, 0x0285, 0x0391, 0x0286, 0x0386],
        "{text}"
    );
    // The PUNCH echo's XOR-MAPPED-ADDRESS and FINGERPRINT are standard attributes.
    let echo_attributes: Vec<u16> = rows[5][1].split(',').map(parse_hex).collect();
    assert!(
        echo_attributes.contains(&AttrType::XOR_MAPPED_ADDRESS.0)
            && echo_attributes.contains(&AttrType::FINGERPRINT.0),
        "{text}"
    );
    // Known attributes appear as stun.att.type; natlens's own as "Unknown attribute 0x4e02"
    // notes, each still shown with its type, length and value.
    let unknown = rows[1][3]
        .split(',')
        .filter_map(|note| note.strip_prefix("Unknown attribute "));
    let call_attributes: Vec<u16> = rows[1][1]
        .split(',')
        .chain(unknown)
        .filter(|t| !t.is_empty())
        .map(parse_hex)
        .collect();
    for expected in [
        nl::PEER_ID,
        nl::CALL_ID,
        nl::OBSERVED_ADDRESS,
        nl::TRANSPORTS,
        nl::DELTA,
        nl::PREDICTED_PORTS,
        AttrType::FINGERPRINT,
    ] {
        assert!(
            call_attributes.contains(&expected.0),
            "{expected:?} not seen in {call_attributes:x?}"
        );
    }
    // ERROR-CODE is class 4, number 9: 409.
    assert_eq!(
        (rows[3][4], rows[3][2]),
        ("4", "9"),
        "error code decoded: {text}"
    );
}

fn parse_hex(text: &str) -> u16 {
    let text = text.trim();
    u16::from_str_radix(text.trim_start_matches("0x"), 16).unwrap_or_else(|_| text.parse().unwrap())
}
