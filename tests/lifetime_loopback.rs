//! RESPONSE-PORT (RFC 5780 §7.5) through the real server on loopback, and `natlens nat
//! --lifetime` end to end on loopback, where no NAT ever forgets a mapping. Every packet stays
//! on loopback (127.0.0.1 and 127.0.0.2).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use natlens::wire::attr::{self, AttrType};
use natlens::wire::stun::{Class, Message, MessageType, Method, TransactionId};
use natlens::wire::MessageBuilder;

mod common;
use common::loopback_stun::{Mode, Server};

fn request(response_port: u16) -> Vec<u8> {
    let mut buf = Vec::new();
    let ty = MessageType::new(Method::BINDING, Class::Request);
    let mut builder = MessageBuilder::new(&mut buf, ty, TransactionId([7; 12]));
    builder.attribute(
        AttrType::RESPONSE_PORT,
        &attr::encode_response_port(response_port),
    );
    builder.fingerprint();
    buf
}

fn socket() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    socket
}

fn error_code(answer: &[u8]) -> Option<u16> {
    let message = Message::parse(answer).ok()?;
    Some(
        attr::decode_error_code(message.get(AttrType::ERROR_CODE)?.value)
            .ok()?
            .0,
    )
}

#[test]
fn response_port_sends_the_answer_to_that_port_from_the_receiving_address() {
    let server = Server::natlens(Mode::Full, &[]);
    let (asker, receiver) = (socket(), socket());
    let port = receiver.local_addr().unwrap().port();
    asker.send_to(&request(port), server.primary).unwrap();
    let mut buf = [0u8; 512];
    let (len, from) = receiver
        .recv_from(&mut buf)
        .expect("the answer at RESPONSE-PORT");
    assert_eq!(
        from, server.primary,
        "sent from the address the request reached"
    );
    let message = Message::parse(&buf[..len]).unwrap();
    assert_eq!(message.class(), Class::Success);
    let mapped = attr::decode_xor_address(
        message.get(AttrType::XOR_MAPPED_ADDRESS).unwrap().value,
        &message.transaction_id(),
    )
    .unwrap();
    assert_eq!(mapped, asker.local_addr().unwrap(), "it reflects the asker");
    assert!(
        asker.recv_from(&mut buf).is_err(),
        "the asker gets nothing itself"
    );
}

#[test]
fn response_port_is_refused_over_tcp_and_without_full_mode() {
    let full = Server::natlens(Mode::Full, &[]);
    let mut stream = TcpStream::connect(full.primary).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream.write_all(&request(40_000)).unwrap();
    let mut buf = [0u8; 512];
    let len = stream.read(&mut buf).unwrap();
    assert_eq!(error_code(&buf[..len]), Some(420), "RFC 5780 7.5: UDP only");

    let basic = Server::natlens(Mode::Basic, &[]);
    let asker = socket();
    asker.send_to(&request(40_000), basic.primary).unwrap();
    let (len, _) = asker.recv_from(&mut buf).unwrap();
    assert_eq!(error_code(&buf[..len]), Some(420), "no full mode: unknown");
}

fn nat_lifetime(server: SocketAddr, max: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command
        .args(["nat", "-t", "udp", "--json", "--lifetime", max, "--server"])
        .arg(server.to_string())
        .env_remove("NATLENS_SERVER");
    command
}

#[test]
fn nat_lifetime_on_loopback_sees_no_mapping_expire() {
    let server = Server::natlens(Mode::Full, &[]);
    let started = Instant::now();
    let out = nat_lifetime(server.primary, "3s").output().unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let udp = &report["udp"];
    assert_eq!(udp["mapping_lifetime_ms"], serde_json::Value::Null, "{udp}");
    let lo = udp["mapping_lifetime_bracket_ms"][0].as_u64().unwrap();
    assert!(lo >= 3_000, "{udp}");
    assert_eq!(
        udp["mapping_lifetime_bracket_ms"][1],
        serde_json::Value::Null
    );
    assert_eq!(udp["mapping_keepalive_ms"], lo * 4 / 5);
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[test]
fn nat_lifetime_against_a_basic_server_says_why_and_reports_nulls() {
    let server = Server::natlens(Mode::Basic, &[]);
    let out = nat_lifetime(server.primary, "3s").output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("RESPONSE-PORT"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["udp"]["mapping_lifetime_bracket_ms"],
        serde_json::Value::Null
    );
}

#[test]
fn ctrl_c_ends_a_lifetime_run_with_130() {
    let server = Server::natlens(Mode::Full, &[]);
    let child = nat_lifetime(server.primary, "60s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let object: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(object["result"], "interrupted", "{object}");
}
