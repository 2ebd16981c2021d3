//! The client shell and the `login` / `call` commands against a tiny fake location server on
//! 127.0.0.1. The fake only knows the happy paths of `natlens-protocol(7)`: login (409 when the
//! ID is held by another address), keepalive, logout, and call relaying with 404 for unknown
//! IDs. End-to-end tests against the real server live with the server.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use natlens::core::client::{ClientConfig, ClientEvent, ClientSession, Transport};
use natlens::exit;
use natlens::io::client::{self, Link, Stop};
use natlens::wire::attr::AttrType;
use natlens::wire::framing::{next_frame, Frame};
use natlens::wire::natlens::{self as nl, NatFacts, Transports};
use natlens::wire::{Class, Message, MessageBuilder, MessageType, TransactionId};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;

/// The fake server's protocol logic, shared by its UDP and TCP shells. Ends are keyed by their
/// address (a TCP connection's peer address is unique too).
#[derive(Default)]
struct Fake {
    sessions: HashMap<String, SocketAddr>,
    /// Forwarded CALL transaction -> (caller, caller's transaction, call ID).
    forwards: HashMap<TransactionId, (SocketAddr, TransactionId, u64)>,
    relayed: Vec<TransactionId>,
    next_tid: u8,
}

type Out = Vec<(SocketAddr, Vec<u8>)>;

impl Fake {
    fn handle(&mut self, from: SocketAddr, bytes: &[u8]) -> Out {
        let Ok(message) = Message::parse(bytes) else {
            return vec![];
        };
        let method = message.method();
        match message.class() {
            Class::Request if method == nl::LOGIN => self.login(from, &message),
            Class::Request if method == nl::KEEPALIVE => {
                let known = self.id_of(from).is_some();
                vec![(from, self.mapped_or_437(&message, from, known))]
            }
            Class::Request if method == nl::LOGOUT => {
                self.sessions.retain(|_, addr| *addr != from);
                vec![(from, reply(&message, Class::Success, |_| {}))]
            }
            Class::Request if method == nl::CALL => self.call(from, &message),
            Class::Success if method == nl::CALL => self.answered(from, &message),
            _ => vec![],
        }
    }

    fn id_of(&self, from: SocketAddr) -> Option<String> {
        self.sessions
            .iter()
            .find(|(_, addr)| **addr == from)
            .map(|(id, _)| id.clone())
    }

    fn login(&mut self, from: SocketAddr, message: &Message<'_>) -> Out {
        let id = nl::read_name(message, nl::ID).unwrap().unwrap().to_owned();
        if self.sessions.get(&id).is_some_and(|addr| *addr != from) {
            let refusal = reply(message, Class::Error, |b| {
                b.error_code(409, "ID already logged in");
            });
            return vec![(from, refusal)];
        }
        self.sessions.insert(id, from);
        vec![(from, self.mapped_or_437(message, from, true))]
    }

    fn mapped_or_437(&self, message: &Message<'_>, from: SocketAddr, known: bool) -> Vec<u8> {
        if !known {
            return reply(message, Class::Error, |b| {
                b.error_code(437, "no such session");
            });
        }
        reply(message, Class::Success, |b| {
            b.xor_address(AttrType::XOR_MAPPED_ADDRESS, &from);
            b.u32(nl::EXPIRY, 45);
        })
    }

    fn call(&mut self, from: SocketAddr, message: &Message<'_>) -> Out {
        let tid = message.transaction_id();
        if self.relayed.contains(&tid) {
            return vec![]; // a retransmission of a call already relayed
        }
        let caller = self.id_of(from).unwrap();
        let callee = nl::read_name(message, nl::PEER_ID).unwrap().unwrap();
        let call_id = nl::read_call_id(message).unwrap().unwrap();
        let Some(&callee_addr) = self.sessions.get(callee) else {
            return vec![(
                from,
                reply(message, Class::Error, |b| {
                    b.error_code(404, "unknown peer");
                }),
            )];
        };
        self.relayed.push(tid);
        let mut facts = NatFacts::decode(message).unwrap();
        facts.observed = Some(from);
        self.next_tid += 1;
        let forward_tid = TransactionId([self.next_tid; 12]);
        self.forwards.insert(forward_tid, (from, tid, call_id));
        let mut bytes = Vec::new();
        let ty = MessageType::new(nl::CALL, Class::Request);
        let mut b = MessageBuilder::new(&mut bytes, ty, forward_tid);
        b.attribute(nl::PEER_ID, caller.as_bytes());
        b.attribute(nl::CALL_ID, &call_id.to_be_bytes());
        facts.encode(&mut b);
        vec![(callee_addr, bytes)]
    }

    fn answered(&mut self, from: SocketAddr, message: &Message<'_>) -> Out {
        let Some((caller, caller_tid, call_id)) = self.forwards.remove(&message.transaction_id())
        else {
            return vec![];
        };
        let mut facts = NatFacts::decode(message).unwrap();
        facts.observed = Some(from);
        let mut bytes = Vec::new();
        let ty = MessageType::new(nl::CALL, Class::Success);
        let mut b = MessageBuilder::new(&mut bytes, ty, caller_tid);
        b.attribute(nl::CALL_ID, &call_id.to_be_bytes());
        facts.encode(&mut b);
        vec![(caller, bytes)]
    }
}

fn reply(
    request: &Message<'_>,
    class: Class,
    build: impl FnOnce(&mut MessageBuilder<'_>),
) -> Vec<u8> {
    let mut bytes = Vec::new();
    let ty = MessageType::new(request.method(), class);
    let mut builder = MessageBuilder::new(&mut bytes, ty, request.transaction_id());
    build(&mut builder);
    bytes
}

/// Serves the fake over UDP on an ephemeral loopback port, for the life of the test process.
fn udp_fake() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    thread::spawn(move || {
        let mut fake = Fake::default();
        let mut buf = [0u8; 2048];
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            for (to, bytes) in fake.handle(from, &buf[..len]) {
                socket.send_to(&bytes, to).unwrap();
            }
        }
    });
    addr
}

/// Serves the fake over TCP on an ephemeral loopback port, one thread per connection.
fn tcp_fake() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = Arc::new(Mutex::new(Fake::default()));
    let streams: Arc<Mutex<HashMap<SocketAddr, TcpStream>>> = Arc::default();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let stream = stream.unwrap();
            let peer = stream.peer_addr().unwrap();
            streams
                .lock()
                .unwrap()
                .insert(peer, stream.try_clone().unwrap());
            let (fake, streams) = (fake.clone(), streams.clone());
            thread::spawn(move || serve_tcp(stream, peer, &fake, &streams));
        }
    });
    addr
}

fn serve_tcp(
    mut stream: TcpStream,
    peer: SocketAddr,
    fake: &Mutex<Fake>,
    streams: &Mutex<HashMap<SocketAddr, TcpStream>>,
) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 2048];
    while let Ok(len @ 1..) = stream.read(&mut chunk) {
        buffer.extend_from_slice(&chunk[..len]);
        while let Frame::Complete(len) = next_frame(&buffer, 2048) {
            let out = fake.lock().unwrap().handle(peer, &buffer[..len]);
            buffer.drain(..len);
            for (to, bytes) in out {
                let mut streams = streams.lock().unwrap();
                streams.get_mut(&to).unwrap().write_all(&bytes).unwrap();
            }
        }
    }
    fake.lock()
        .unwrap()
        .sessions
        .retain(|_, addr| *addr != peer);
}

fn session(id: &str, transport: Transport) -> ClientSession<StdRng> {
    let config = ClientConfig::new(id, transport, Duration::from_secs(15));
    ClientSession::new(config, Instant::now(), StdRng::seed_from_u64(1))
}

/// A stop that ends a run which would otherwise hang, so a broken test fails instead.
fn backstop() -> Stop<'static> {
    Stop {
        at: Some(Instant::now() + Duration::from_secs(20)),
        flag: None,
    }
}

/// Logs `id` in over `transport` on a thread that answers one call; returns the events it saw
/// once it has logged out, and its public address once logged in.
fn answer_one_call(
    server: SocketAddr,
    transport: Transport,
) -> (thread::JoinHandle<Vec<ClientEvent>>, SocketAddr) {
    let (logged_in, observed) = std::sync::mpsc::channel();
    let handle = thread::spawn(move || {
        let mut link = Link::connect(server, transport, &Default::default()).unwrap();
        let mut session = session("alice", transport);
        session.set_facts(NatFacts {
            transports: Transports {
                udp: true,
                tcp: false,
            },
            delta: Some(2),
            ..NatFacts::default()
        });
        let mut seen = Vec::new();
        client::run(&mut link, &mut session, backstop(), |session, event| {
            match &event {
                ClientEvent::LoggedIn { observed, .. } => logged_in.send(*observed).unwrap(),
                ClientEvent::IncomingCall { .. } => session.logout(Instant::now()),
                _ => {}
            }
            seen.push(event);
            Ok(())
        })
        .unwrap();
        seen
    });
    let observed = observed.recv_timeout(Duration::from_secs(10)).unwrap();
    (handle, observed)
}

/// Logs `bob` in and calls `callee`; returns the call's outcome event.
fn call(server: SocketAddr, transport: Transport, callee: &str) -> ClientEvent {
    let mut link = Link::connect(server, transport, &Default::default()).unwrap();
    let mut session = session("bob", transport);
    let mut outcome = None;
    client::run(&mut link, &mut session, backstop(), |session, event| {
        match &event {
            ClientEvent::LoggedIn { .. } => {
                session.call(Instant::now(), callee, &NatFacts::default());
            }
            ClientEvent::CallAnswered { .. } | ClientEvent::CallFailed { .. } => {
                outcome = Some(event);
                session.logout(Instant::now());
            }
            _ => {}
        }
        Ok(())
    })
    .unwrap();
    outcome.expect("the call ended")
}

fn relays_a_call(transport: Transport) {
    let server = match transport {
        Transport::Udp => udp_fake(),
        Transport::Tcp => tcp_fake(),
    };
    let (alice, alice_public) = answer_one_call(server, transport);
    let ClientEvent::CallAnswered { callee, facts, .. } = call(server, transport, "alice") else {
        panic!("call not answered");
    };
    assert_eq!(callee, "alice");
    assert_eq!(facts.observed, Some(alice_public));
    assert_eq!(facts.delta, Some(2));
    let seen = alice.join().unwrap();
    assert!(
        matches!(seen.as_slice(), [ClientEvent::LoggedIn { .. }, ClientEvent::IncomingCall { caller, .. }, ClientEvent::LoggedOut] if caller == "bob"),
        "{seen:?}"
    );
}

#[test]
fn udp_call_is_relayed_between_two_sessions() {
    relays_a_call(Transport::Udp);
}

#[test]
fn tcp_call_is_relayed_between_two_sessions() {
    relays_a_call(Transport::Tcp);
}

#[test]
fn calling_an_unknown_id_fails_with_404() {
    for (transport, server) in [(Transport::Udp, udp_fake()), (Transport::Tcp, tcp_fake())] {
        let outcome = call(server, transport, "nobody");
        assert!(
            matches!(
                outcome,
                ClientEvent::CallFailed {
                    code: Some(404),
                    ..
                }
            ),
            "{outcome:?}"
        );
    }
}

fn natlens(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command.args(args);
    command
}

fn json_line(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

#[test]
fn login_and_call_commands_exchange_facts() {
    let server = udp_fake().to_string();
    let mut alice = natlens(&[
        "login",
        "--server",
        &server,
        "--id",
        "alice",
        "--calls",
        "1",
        "--json",
        "--duration",
        "20s",
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(alice.stdout.take().unwrap()).lines();
    let logged_in = json_line(&lines.next().unwrap().unwrap());
    assert_eq!(logged_in["event"], "logged_in");
    assert_eq!(logged_in["transport"], "udp");
    assert_eq!(logged_in["udp_expiry_ms"], 45_000);

    let bob = natlens(&[
        "call",
        "alice",
        "--server",
        &server,
        "--id",
        "bob",
        "--json",
        "--no-punch",
    ])
    .output()
    .unwrap();
    assert!(
        bob.status.success(),
        "{}",
        String::from_utf8_lossy(&bob.stderr)
    );
    let answer = json_line(String::from_utf8(bob.stdout).unwrap().trim());
    assert_eq!(answer["schema_version"], 2);
    assert_eq!(answer["result"], "ok");
    assert_eq!(answer["caller"], "bob");
    assert_eq!(answer["callee"], "alice");
    assert_eq!(
        answer["callee_facts"]["public_address"],
        logged_in["public_address"]
    );
    assert_eq!(answer["callee_facts"]["transports"]["udp"], true);
    assert!(answer["own_public_address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    let call_id = answer["call_id"].as_str().unwrap();
    assert_eq!(call_id.len(), 16);

    let rest: Vec<Value> = lines.map(|line| json_line(&line.unwrap())).collect();
    assert_eq!(rest[0]["event"], "incoming_call");
    assert_eq!(rest[0]["caller"], "bob");
    assert_eq!(rest[0]["call_id"], call_id);
    assert_eq!(
        rest[0]["caller_facts"]["public_address"],
        answer["own_public_address"]
    );
    // The events, then the one final object: the summary.
    assert_eq!(rest[rest.len() - 2]["event"], "logged_out");
    let summary = rest.last().unwrap();
    assert_eq!(summary["result"], "ok", "{summary}");
    assert_eq!(summary["calls_answered"], 1, "{summary}");
    assert!(alice.wait().unwrap().success());
}

/// `--server localhost:PORT`: the `resolved` event comes first and names the address used
/// (127.0.0.1, IPv4 first), then the session runs against it.
#[test]
fn login_takes_a_server_name() {
    let server = udp_fake();
    let name = format!("localhost:{}", server.port());
    let out = natlens(&[
        "login",
        "--server",
        &name,
        "--id",
        "carol",
        "--json",
        "--duration",
        "300ms",
    ])
    .env_remove("NATLENS_SERVER")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let events: Vec<Value> = stdout.lines().map(json_line).collect();
    assert_eq!(events[0]["event"], "resolved", "{stdout}");
    assert_eq!(events[0]["name"], name);
    assert_eq!(events[0]["server"], server.to_string());
    let addresses = events[0]["addresses"].as_array().unwrap();
    assert!(
        addresses.contains(&Value::from(server.to_string())),
        "{stdout}"
    );
    assert_eq!(events[1]["event"], "logged_in", "{stdout}");
    assert_eq!(events[1]["server"], server.to_string());
}

/// NATLENS_SERVER names the server when --server is absent (an IP address: no `resolved`).
#[test]
fn login_takes_the_server_from_natlens_server() {
    let server = udp_fake();
    let out = natlens(&["login", "--id", "dave", "--json", "--duration", "300ms"])
        .env("NATLENS_SERVER", server.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let first = json_line(stdout.lines().next().unwrap_or_default());
    assert_eq!(first["event"], "logged_in", "{stdout}");
    assert_eq!(first["server"], server.to_string());
}

#[test]
fn taken_id_is_refused_with_a_clear_message() {
    let server = udp_fake();
    let (alice, _) = answer_one_call(server, Transport::Udp);
    let out = natlens(&["login", "--server", &server.to_string(), "--id", "alice"])
        .output()
        .unwrap();
    assert_failure(
        &out,
        exit::FAILURE,
        "natlens: ID \"alice\" is already logged in on this server (409)",
    );
    // Let alice's thread finish through a call.
    call(server, Transport::Udp, "alice");
    alice.join().unwrap();
}

#[test]
fn call_to_unknown_id_exits_with_no_callee_over_tcp() {
    let server = tcp_fake().to_string();
    let out = natlens(&[
        "call",
        "nobody",
        "-s",
        &server,
        "--id",
        "bob",
        "--login-transport",
        "tcp",
        "--no-punch",
    ])
    .output()
    .unwrap();
    assert_failure(
        &out,
        exit::NO_CALLEE,
        "natlens: \"nobody\" is not logged in on this server or its peers (404)",
    );
}

#[test]
fn refused_tcp_connection_exits_unreachable() {
    // Bind then drop a listener: nothing listens on that port afterwards.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = natlens(&[
        "login",
        "-s",
        &port.to_string(),
        "--id",
        "alice",
        "--login-transport",
        "tcp",
    ])
    .output()
    .unwrap();
    assert_failure(
        &out,
        exit::UNREACHABLE,
        &format!("natlens: cannot reach {port} over tcp: "),
    );
}

#[test]
fn invalid_id_is_refused_before_sending() {
    let out = natlens(&["login", "-s", "127.0.0.1:9", "--id", "two words"])
        .output()
        .unwrap();
    // A usage error, in clap's words.
    assert_failure(
        &out,
        exit::USAGE,
        "error: invalid value 'two words' for '--id <MY_ID>': not a valid ID",
    );
}

fn assert_failure(out: &Output, code: u8, stderr_start: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code.into()), "{stderr}");
    assert!(stderr.starts_with(stderr_start), "{stderr}");
}

#[test]
fn human_output_goes_to_the_right_streams() {
    let server = udp_fake().to_string();
    let mut alice = natlens(&[
        "login",
        "--server",
        &server,
        "--id",
        "alice",
        "--calls",
        "1",
        "--duration",
        "20s",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut alice_err = BufReader::new(alice.stderr.take().unwrap());
    let mut first = String::new();
    alice_err.read_line(&mut first).unwrap();
    assert!(first.starts_with("logged in to "), "{first}");

    let bob = natlens(&[
        "call",
        "alice",
        "--server",
        &server,
        "--id",
        "bob",
        "--no-punch",
    ])
    .output()
    .unwrap();
    assert!(bob.status.success());
    let table = String::from_utf8(bob.stdout).unwrap();
    for needle in ["bob (you)", "alice", "public address", "127.0.0.1:"] {
        assert!(table.contains(needle), "{needle:?} missing from\n{table}");
    }
    assert!(bob.stderr.is_empty());

    let mut rest = String::new();
    alice_err.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("from \"bob\""), "{rest}");
    assert!(rest.ends_with("logged out\n"), "{rest}");
    let out = alice.wait_with_output().unwrap();
    assert!(out.status.success() && out.stdout.is_empty());
}

#[test]
fn interrupt_logs_out_before_exiting() {
    let server = udp_fake();
    let mut alice = natlens(&["login", "-s", &server.to_string(), "--id", "alice"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut alice_err = BufReader::new(alice.stderr.take().unwrap());
    let mut first = String::new();
    alice_err.read_line(&mut first).unwrap();
    assert!(first.starts_with("logged in to "), "{first}");
    // SAFETY: kill(2) on our own child's PID.
    assert_eq!(unsafe { libc::kill(alice.id() as i32, libc::SIGINT) }, 0);
    let mut rest = String::new();
    alice_err.read_to_string(&mut rest).unwrap();
    // It logs out, then ends as an interrupted command does: 130 and a line saying so.
    assert_eq!(
        rest,
        "logged out\nnatlens: interrupted while logged in; logged out cleanly\n"
    );
    assert_eq!(alice.wait().unwrap().code(), Some(130));
    // The server freed the ID: calling it now finds nobody.
    let outcome = call(server, Transport::Udp, "alice");
    assert!(matches!(
        outcome,
        ClientEvent::CallFailed {
            code: Some(404),
            ..
        }
    ));
}
