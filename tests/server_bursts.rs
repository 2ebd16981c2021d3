//! Load that switches the server's UDP receive path into coalescing (above 20,000 datagrams/s
//! it wakes on a timer and takes its UDP sockets out of epoll) and back: every request of a
//! burst is answered, TCP sessions are served meanwhile, and once the burst stops a lone request
//! is answered at once (the sockets are watched again), twice over.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::{binding_request, id_request, ServerProcess};
use natlens::wire::natlens as nl;
use natlens::wire::stun::Message;
use socket2::SockRef;

/// Four sockets at 10,000 requests/s each: twice the rate at which coalescing starts.
const SOCKETS: usize = 4;
const PER_SOCKET_RATE: u64 = 10_000;
const BURST: Duration = Duration::from_millis(1500);

fn tid(socket: usize, n: u64) -> [u8; 12] {
    let mut tid = [0u8; 12];
    tid[0] = socket as u8;
    tid[4..].copy_from_slice(&n.to_be_bytes());
    tid
}

/// Sends one paced burst from `socket` and collects its answers; returns (sent, answered).
fn burst(socket: &UdpSocket, index: usize, server: SocketAddr) -> (u64, u64) {
    socket.set_nonblocking(true).unwrap();
    let interval = Duration::from_nanos(1_000_000_000 / PER_SOCKET_RATE);
    let start = Instant::now();
    let mut answered = HashSet::new();
    let mut buf = [0u8; 1500];
    let mut drain = |answered: &mut HashSet<[u8; 12]>| {
        while let Ok(n) = socket.recv(&mut buf) {
            if let Ok(message) = Message::parse(&buf[..n]) {
                answered.insert(message.transaction_id().0);
            }
        }
    };
    let mut sent = 0u64;
    // Whatever is due goes out at once, then the thread reads and sleeps: four spinning
    // senders would starve the server of one of this machine's two cores.
    while start.elapsed() < BURST {
        let now = Instant::now();
        while start + interval * sent as u32 <= now {
            if socket
                .send_to(&binding_request(tid(index, sent)), server)
                .is_err()
            {
                break;
            }
            sent += 1;
        }
        drain(&mut answered);
        std::thread::sleep(Duration::from_millis(1));
    }
    let grace = Instant::now() + Duration::from_secs(1);
    while Instant::now() < grace && (answered.len() as u64) < sent {
        drain(&mut answered);
        std::thread::sleep(Duration::from_millis(1));
    }
    (sent, answered.len() as u64)
}

/// One Binding from a fresh socket; the time its answer took.
fn lone_request(server: SocketAddr) -> Option<Duration> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let sent = Instant::now();
    socket.send_to(&binding_request([7; 12]), server).unwrap();
    let mut buf = [0u8; 1500];
    let n = socket.recv(&mut buf).ok()?;
    let message = Message::parse(&buf[..n]).ok()?;
    (message.transaction_id().0 == [7; 12]).then(|| sent.elapsed())
}

/// A TCP LOGIN followed by a KEEPALIVE; true when both were answered.
fn tcp_session_answers(server: SocketAddr, id: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(server) else {
        return false;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    [nl::LOGIN, nl::KEEPALIVE]
        .iter()
        .enumerate()
        .all(|(i, &method)| {
            let request = id_request(method, id, [i as u8 + 1; 12]);
            if stream.write_all(&request).is_err() {
                return false;
            }
            let mut header = [0u8; 20];
            if stream.read_exact(&mut header).is_err() {
                return false;
            }
            let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
            let mut body = vec![0u8; len];
            stream.read_exact(&mut body).is_ok() && header[8..20] == [i as u8 + 1; 12]
        })
}

#[test]
fn bursts_are_answered_and_a_lone_request_after_them_at_once() {
    let server =
        ServerProcess::start(&["--listen", "127.0.0.1:0", "--answer-rate", "0", "--quiet"]);
    let addr = server.addr();
    let sockets: Vec<UdpSocket> = (0..SOCKETS)
        .map(|_| {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            // Room for the answers of a few ms of the server's batches while this thread
            // sleeps (the default buffer holds about 270 small datagrams).
            SockRef::from(&socket)
                .set_recv_buffer_size(4 << 20)
                .unwrap();
            socket
        })
        .collect();
    for round in 0..2 {
        let (results, tcp_ok) = std::thread::scope(|scope| {
            let senders: Vec<_> = sockets
                .iter()
                .enumerate()
                .map(|(i, socket)| scope.spawn(move || burst(socket, i, addr)))
                .collect();
            // Mid-burst, with the UDP sockets out of epoll: TCP is still served.
            std::thread::sleep(BURST / 2);
            let tcp_ok = tcp_session_answers(addr, &format!("burst-{round}"));
            let results: Vec<(u64, u64)> = senders.into_iter().map(|s| s.join().unwrap()).collect();
            (results, tcp_ok)
        });
        let sent: u64 = results.iter().map(|r| r.0).sum();
        let answered: u64 = results.iter().map(|r| r.1).sum();
        // At least 1.5 s at over 20,000/s, so coalescing was on.
        assert!(sent >= 45_000, "round {round}: only {sent} sent");
        assert_eq!(
            answered, sent,
            "round {round}: answered {answered} of {sent}"
        );
        assert!(
            tcp_ok,
            "round {round}: a TCP LOGIN/KEEPALIVE went unanswered"
        );
        // The load has stopped: the rate estimate falls within one 10 ms window and the
        // sockets go back into epoll. A lone request is then answered like any other.
        std::thread::sleep(Duration::from_millis(200));
        let took = lone_request(addr);
        assert!(
            took.is_some_and(|t| t < Duration::from_millis(200)),
            "round {round}: a lone request after the burst: {took:?}"
        );
    }
}
