//! PROBE-MAPPING end to end on loopback: a real `natlens server` sends the one probe to the
//! port the client names, from its other address in RFC 5780 full mode, and the client function
//! `ask_server_to_send` sees it arrive (or, aimed at a port nobody watches, reports that it did
//! not). Everything stays on loopback (127.0.0.1 and 127.0.0.2).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use natlens::core::server::mapping_probe::is_probe;
use natlens::io::port_mapping::prove::ask_server_to_send;

mod common;
use common::loopback_stun::{Mode, Server, PRIMARY_IP};

const TIMEOUT: Duration = Duration::from_millis(800);

/// A mapped external address on loopback: the server sends to the request's source IP anyway.
fn at(port: u16) -> SocketAddr {
    SocketAddr::new(PRIMARY_IP.into(), port)
}

fn client() -> UdpSocket {
    UdpSocket::bind(SocketAddr::new(PRIMARY_IP.into(), 0)).expect("bind a loopback socket")
}

#[test]
fn the_probe_reaches_the_named_port_from_the_alternate_address() {
    let server = Server::natlens(Mode::Full, &[]);
    let socket = client();
    let port = socket.local_addr().unwrap().port();
    let started = Instant::now();
    let arrived = ask_server_to_send(&socket, server.primary, at(port), TIMEOUT)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", server.describe()));
    assert_eq!(arrived, Some(true), "{}", server.describe());
    assert!(started.elapsed() < TIMEOUT, "returns as soon as both came");

    // Aimed at another socket's port, the probe lands there (from the alternate address, the
    // other IP and port) and not on the asking socket.
    let watcher = client();
    watcher
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let watched = watcher.local_addr().unwrap().port();
    let arrived = ask_server_to_send(&socket, server.primary, at(watched), TIMEOUT).unwrap();
    assert_eq!(arrived, Some(false));
    let mut buf = [0u8; 1500];
    let (len, from) = watcher
        .recv_from(&mut buf)
        .expect("the probe at the watched port");
    assert_eq!(
        Some(from),
        server.alternate,
        "sent from the other IP and port"
    );
    let message = natlens::wire::stun::Message::parse(&buf[..len]).unwrap();
    assert_eq!(message.method(), natlens::wire::natlens::PROBE_MAPPING);
    assert!(!is_probe(&buf[..len], &[0; 8]), "another nonce is not it");
}

#[test]
fn a_basic_server_sends_the_probe_from_its_one_address() {
    let server = Server::natlens(Mode::Basic, &[]);
    let socket = client();
    let port = socket.local_addr().unwrap().port();
    let arrived = ask_server_to_send(&socket, server.primary, at(port), TIMEOUT).unwrap();
    assert_eq!(arrived, Some(true), "{}", server.describe());
}

#[test]
fn a_server_without_probe_mapping_reads_as_unsupported_and_silence_as_an_error() {
    // A stand-in for an older server: it refuses every request with 400 "Unknown method", as
    // natlens servers before PROBE-MAPPING do.
    let old = client();
    let old_addr = old.local_addr().unwrap();
    let responder = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        old.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (len, from) = old.recv_from(&mut buf).expect("a request");
        let message = natlens::wire::stun::Message::parse(&buf[..len]).unwrap();
        let mut out = Vec::new();
        natlens::wire::answer::ErrorAnswer::to_request(&message, 400, "Unknown method")
            .write(&mut out);
        old.send_to(&out, from).unwrap();
    });
    let socket = client();
    let port = socket.local_addr().unwrap().port();
    assert_eq!(
        ask_server_to_send(&socket, old_addr, at(port), TIMEOUT).unwrap(),
        None
    );
    responder.join().unwrap();

    let silent = client();
    let error = ask_server_to_send(&socket, silent.local_addr().unwrap(), at(port), TIMEOUT)
        .expect_err("no answer at all is an error");
    assert!(error.to_string().contains("no answer"), "{error}");
}
