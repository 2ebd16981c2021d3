//! Bad input against a real `natlens server` on loopback: every malformed kind interleaved with
//! valid requests; every valid request must be answered, nothing malformed may be, and the
//! server keeps serving.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::{binding_request, id_request, ServerProcess};
use natlens::wire::attr::{decode_error_code, AttrType};
use natlens::wire::natlens as nl;
use natlens::wire::stun::{Class, Message, MessageType, Method};
use natlens::wire::{MessageBuilder, TransactionId};

/// One of each malformed kind; `tid_byte` keeps them distinct across rounds.
fn malformed(round: u8) -> Vec<(&'static str, Vec<u8>)> {
    let valid = binding_request([round; 12]);
    let mut wrong_length = valid.clone();
    wrong_length[3] = 8; // claims 8 bytes of attributes that are not there
    let mut unaligned = valid.clone();
    unaligned[3] = 2;
    let mut legacy_login = id_request(nl::LOGIN, "mallory", [round; 12]);
    legacy_login[4..8].copy_from_slice(&[1, 2, 3, 4]); // no magic cookie: RFC 3489 has no LOGIN
    let mut past_end = binding_request([round; 12]);
    past_end[3] = 8;
    past_end.extend_from_slice(&[0x80, 0x22, 0x00, 0x40, b'x', b'y', b'z', b'!']);
    let response = {
        let mut buf = Vec::new();
        let mut builder = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::BINDING, Class::Success),
            TransactionId([round; 12]),
        );
        builder.xor_address(
            AttrType::XOR_MAPPED_ADDRESS,
            &"192.0.2.66:1".parse().unwrap(),
        );
        buf
    };
    let bad_fingerprint = {
        let mut buf = Vec::new();
        let mut builder = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::BINDING, Class::Request),
            TransactionId([round; 12]),
        );
        builder.attribute(AttrType::SOFTWARE, b"evil");
        builder.fingerprint();
        let mut bytes = buf.clone();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        bytes
    };
    vec![
        ("truncated", valid[..13].to_vec()),
        ("empty", Vec::new()),
        ("wrong-length", wrong_length),
        ("unaligned", unaligned),
        ("no-cookie-login", legacy_login),
        ("past-end", past_end),
        ("response", response),
        ("rtp", vec![0x80; 172]),
        ("bad-fingerprint", bad_fingerprint),
        ("oversized", vec![0; 4000]),
    ]
}

fn unknown_attribute_request(tid: [u8; 12]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut builder = MessageBuilder::new(
        &mut buf,
        MessageType::new(Method::BINDING, Class::Request),
        TransactionId(tid),
    );
    builder.attribute(AttrType(0x7E57), b"what");
    buf
}

#[test]
fn udp_malformed_input_is_never_answered_and_valid_requests_always_are() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(server.addr()).unwrap();
    let rounds = 100u8;
    let mut expected_ok = HashSet::new();
    let mut expected_420 = HashSet::new();
    for round in 0..rounds {
        for (_, bytes) in malformed(round) {
            socket.send(&bytes).unwrap();
        }
        let ok_tid = [round, 0xAA, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        socket.send(&binding_request(ok_tid)).unwrap();
        expected_ok.insert(ok_tid);
        let bad_tid = [round, 0xBB, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        socket.send(&unknown_attribute_request(bad_tid)).unwrap();
        expected_420.insert(bad_tid);
        // Pace a little so the test measures the server, not the socket buffer.
        if round % 10 == 9 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let mut unexpected = Vec::new();
    while let Ok(len) = socket.recv(&mut buf) {
        let message = Message::parse(&buf[..len]).expect("the server only sends valid STUN");
        let tid = message.transaction_id().0;
        match message.class() {
            Class::Success if expected_ok.remove(&tid) => {}
            Class::Error if expected_420.contains(&tid) => {
                let code = decode_error_code(message.get(AttrType::ERROR_CODE).unwrap().value)
                    .unwrap()
                    .0;
                assert_eq!(code, 420);
                expected_420.remove(&tid);
            }
            other => unexpected.push((other, tid)),
        }
    }
    assert!(
        expected_ok.is_empty(),
        "{} valid requests unanswered",
        expected_ok.len()
    );
    assert!(
        expected_420.is_empty(),
        "{} 420s missing",
        expected_420.len()
    );
    assert!(
        unexpected.is_empty(),
        "answers to malformed input: {unexpected:?}"
    );
    let stats = server.stats();
    // truncated + empty are both too short; wrong-length and oversized both disagree with
    // their length field.
    let expected = [
        ("too-short", 2),
        ("length-mismatch", 2),
        ("unaligned-length", 1),
        ("legacy-non-binding", 1),
        ("truncated-attribute", 1),
        ("not-request", 1),
        ("not-stun", 1),
        ("bad-fingerprint", 1),
    ];
    for (reason, per_round) in expected {
        let count = per_round * u32::from(rounds);
        assert!(
            stats.contains(&format!("{reason}={count}")),
            "{reason} not counted {count} times: {stats}"
        );
    }
    assert!(stats.contains(&format!("bindings={rounds}")), "{stats}");
}

fn tcp_binding(stream: &mut TcpStream, tid: [u8; 12]) -> bool {
    stream.write_all(&binding_request(tid)).unwrap();
    let mut header = [0u8; 20];
    if stream.read_exact(&mut header).is_err() {
        return false;
    }
    let len = u16::from_be_bytes([header[2], header[3]]) as usize;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).unwrap();
    header[8..20] == tid
}

/// True when the server closed the connection within `timeout`.
fn closed_by_server(stream: &mut TcpStream, timeout: Duration) -> bool {
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 64];
    matches!(stream.read(&mut buf), Ok(0))
        || matches!(stream.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
}

#[test]
fn tcp_bad_frames_close_only_their_own_connection() {
    let server = ServerProcess::start(&[
        "--listen",
        "127.0.0.1:0",
        "--tcp-idle",
        "1s",
        "--max-message",
        "1024",
    ]);
    let mut good = TcpStream::connect(server.addr()).unwrap();
    good.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert!(tcp_binding(&mut good, [1; 12]));

    let mut oversized = TcpStream::connect(server.addr()).unwrap();
    oversized.write_all(&[0x00, 0x01, 0xFF, 0xF0]).unwrap();
    assert!(
        closed_by_server(&mut oversized, Duration::from_secs(2)),
        "oversized frame must close"
    );
    assert!(tcp_binding(&mut good, [2; 12]));

    let mut http = TcpStream::connect(server.addr()).unwrap();
    http.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(
        closed_by_server(&mut http, Duration::from_secs(2)),
        "non-STUN must close"
    );
    assert!(tcp_binding(&mut good, [3; 12]));

    let started = Instant::now();
    let mut slow = TcpStream::connect(server.addr()).unwrap();
    slow.write_all(&binding_request([4; 12])[..11]).unwrap();
    // Keep the good client busy while the slow one stalls: it must never be affected.
    for i in 0..10u8 {
        assert!(tcp_binding(&mut good, [10 + i; 12]));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        closed_by_server(&mut slow, Duration::from_secs(3)),
        "a half frame must not hold a connection forever"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed by the idle rule, not at once"
    );

    // Split frames and back-to-back frames in one write both work.
    let mut split = TcpStream::connect(server.addr()).unwrap();
    split
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let request = binding_request([30; 12]);
    split.write_all(&request[..7]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut two = request[7..].to_vec();
    two.extend_from_slice(&binding_request([31; 12]));
    split.write_all(&two).unwrap();
    let mut answers = [0u8; 2048];
    let mut got = 0;
    let mut count = 0;
    while count < 2 {
        let n = split.read(&mut answers[got..]).unwrap();
        assert!(n > 0);
        got += n;
        count = 0;
        let mut offset = 0;
        while offset + 20 <= got {
            let len = 20 + u16::from_be_bytes([answers[offset + 2], answers[offset + 3]]) as usize;
            if offset + len > got {
                break;
            }
            count += 1;
            offset += len;
        }
    }
    assert!(tcp_binding(&mut good, [40; 12]));
    let stats = server.stats();
    for reason in ["oversized-frame=1", "not-stun=1", "idle-connection=1"] {
        assert!(stats.contains(reason), "{reason} missing: {stats}");
    }
}

#[test]
fn a_login_flood_hits_the_session_cap_and_bindings_still_work() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0", "--max-sessions", "50"]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut refused = 0;
    let mut accepted = 0;
    // Many source ports, one login each: the shape of a flood from a botnet behind NATs.
    let flooders: Vec<UdpSocket> = (0..80)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for (i, flooder) in flooders.iter().enumerate() {
        flooder
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        flooder
            .send_to(
                &id_request(nl::LOGIN, &format!("bot{i}"), [i as u8; 12]),
                server.addr(),
            )
            .unwrap();
        let mut buf = [0u8; 512];
        let len = flooder.recv(&mut buf).unwrap();
        let message = Message::parse(&buf[..len]).unwrap();
        match message.get(AttrType::ERROR_CODE) {
            None => accepted += 1,
            Some(attribute) => {
                assert_eq!(decode_error_code(attribute.value).unwrap().0, 503);
                refused += 1;
            }
        }
    }
    assert_eq!((accepted, refused), (50, 30));
    socket
        .send_to(&binding_request([7; 12]), server.addr())
        .unwrap();
    let mut buf = [0u8; 512];
    let len = socket.recv(&mut buf).unwrap();
    assert_eq!(Message::parse(&buf[..len]).unwrap().class(), Class::Success);
    assert!(server.stats().contains("sessions udp=50"));
}
