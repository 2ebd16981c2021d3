//! Whole-protocol tests of [`ServerCore`] on a virtual clock: clients and federated servers
//! exchange real encoded messages, with no sockets.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::core::events::{Command, Event};
use crate::core::registry::{ConnId, Route};
use crate::wire::attr::AttrType;
use crate::wire::attr::{decode_error_code, decode_xor_address};
use crate::wire::natlens::Transports;
use crate::wire::natlens::{self, NatFacts};
use crate::wire::stun::{Class, Message, MessageType, Method};
use crate::wire::{MessageBuilder, TransactionId};

/// The server's own address in every test here and in `hardening_tests`.
pub(super) const LOCAL: &str = "192.0.2.1:3478";

pub(super) fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// The UDP route from `remote` to [`LOCAL`].
pub(super) fn udp(remote: &str) -> Route {
    Route::Udp {
        local: addr(LOCAL),
        remote: addr(remote),
    }
}

fn config(name: &str) -> ServerConfig {
    ServerConfig {
        max_sessions: 100,
        ..ServerConfig::new(name)
    }
}

/// Builds a client request of `method` with transaction ID byte `tid`.
pub(super) fn request(
    method: Method,
    tid: u8,
    add: impl FnOnce(&mut MessageBuilder<'_>),
) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut builder = MessageBuilder::new(
        &mut buf,
        MessageType::new(method, Class::Request),
        TransactionId([tid; 12]),
    );
    add(&mut builder);
    builder.finish().to_vec()
}

fn login(id: &str, tid: u8) -> Vec<u8> {
    request(natlens::LOGIN, tid, |b| {
        b.attribute(natlens::ID, id.as_bytes());
    })
}

fn call(callee: &str, call_id: u64, tid: u8, facts: &NatFacts) -> Vec<u8> {
    request(natlens::CALL, tid, |b| {
        b.attribute(natlens::PEER_ID, callee.as_bytes());
        b.attribute(natlens::CALL_ID, &call_id.to_be_bytes());
        facts.encode_claims(b);
    })
}

/// The callee's answer to a delivered CALL request.
fn answer(delivered: &[u8], facts: &NatFacts) -> Vec<u8> {
    let message = Message::parse(delivered).unwrap();
    let mut buf = Vec::new();
    let mut builder = MessageBuilder::new(
        &mut buf,
        MessageType::new(natlens::CALL, Class::Success),
        message.transaction_id(),
    );
    facts.encode_claims(&mut builder);
    builder.finish().to_vec()
}

fn error_code(bytes: &[u8]) -> Option<u16> {
    let message = Message::parse(bytes).unwrap();
    message
        .get(AttrType::ERROR_CODE)
        .map(|a| decode_error_code(a.value).unwrap().0)
}

fn facts(delta: i32, ports: &[u16]) -> NatFacts {
    NatFacts {
        observed: None,
        transports: Transports {
            udp: true,
            tcp: false,
        },
        delta: Some(delta),
        predicted_ports: ports.to_vec(),
        profile: None,
        port_mapping: None,
        other_family: None,
    }
}

/// Several servers, some linked by federation connections, plus the clients' inboxes.
struct Mesh {
    now: Instant,
    servers: Vec<ServerCore>,
    /// (server, conn) ↔ (server, conn) for federation links.
    links: HashMap<(usize, ConnId), (usize, ConnId)>,
    /// Messages the servers sent to clients: (server, route, bytes).
    to_clients: VecDeque<(usize, Route, Vec<u8>)>,
}

impl Mesh {
    fn new(names: &[&str]) -> Self {
        let now = Instant::now();
        let servers = names
            .iter()
            .enumerate()
            .map(|(i, name)| ServerCore::new(config(name), now, i as u64))
            .collect();
        Mesh {
            now,
            servers,
            links: HashMap::new(),
            to_clients: VecDeque::new(),
        }
    }

    /// Links server `a` (dialling, conn `ca`) to server `b` (accepting, conn `cb`).
    fn link(&mut self, a: usize, ca: ConnId, b: usize, cb: ConnId) {
        self.links.insert((a, ca), (b, cb));
        self.links.insert((b, cb), (a, ca));
        self.servers[a].link_connected(self.now, ca);
        self.pump();
    }

    /// A client message to server `s`; returns the immediate reply, then runs the mesh.
    fn client(&mut self, s: usize, route: Route, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut reply = Vec::new();
        let answered = match route {
            Route::Udp { local, remote } => self.servers[s]
                .handle_udp(self.now, local, remote, bytes, &mut reply)
                .is_some(),
            Route::Tcp { conn } => self.servers[s].handle_tcp(
                self.now,
                conn,
                addr(LOCAL),
                addr("203.0.113.200:1"),
                bytes,
                &mut reply,
            ),
        };
        self.pump();
        answered.then_some(reply)
    }

    /// Delivers server-to-server traffic until nothing moves.
    fn pump(&mut self) {
        let mut moved = true;
        while moved {
            moved = false;
            for s in 0..self.servers.len() {
                while let Some(command) = self.servers[s].poll_command() {
                    moved = true;
                    match command {
                        Command::Send {
                            route: Route::Tcp { conn },
                            bytes,
                        } if self.links.contains_key(&(s, conn)) => {
                            let (t, tc) = self.links[&(s, conn)];
                            let mut reply = Vec::new();
                            let (local, remote) = (addr(LOCAL), addr("192.0.2.99:1"));
                            if self.servers[t]
                                .handle_tcp(self.now, tc, local, remote, &bytes, &mut reply)
                            {
                                self.servers[s].handle_tcp(
                                    self.now,
                                    conn,
                                    local,
                                    remote,
                                    &reply,
                                    &mut Vec::new(),
                                );
                            }
                        }
                        Command::Send { route, bytes } => {
                            self.to_clients.push_back((s, route, bytes))
                        }
                        Command::Close { .. } => {}
                    }
                }
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        for server in &mut self.servers {
            server.handle_timeout(self.now);
        }
        self.pump();
    }

    /// The next message server `s` sent to a client on `route`.
    fn take(&mut self, route: Route) -> Vec<u8> {
        let index = self
            .to_clients
            .iter()
            .position(|(_, r, _)| *r == route)
            .expect("a message for that client");
        self.to_clients.remove(index).unwrap().2
    }

    fn events(&mut self, s: usize) -> Vec<Event> {
        std::iter::from_fn(|| self.servers[s].poll_event()).collect()
    }
}

#[test]
fn udp_and_tcp_clients_log_in_and_calls_are_relayed_both_ways() {
    let mut mesh = Mesh::new(&["s1"]);
    let alice = udp("198.51.100.1:5000");
    let bob = Route::Tcp { conn: 1 };
    let reply = mesh.client(0, alice, &login("alice", 1)).unwrap();
    let message = Message::parse(&reply).unwrap();
    assert_eq!(message.class(), Class::Success);
    let mapped = decode_xor_address(
        message.get(AttrType::XOR_MAPPED_ADDRESS).unwrap().value,
        &message.transaction_id(),
    );
    assert_eq!(mapped, Ok(addr("198.51.100.1:5000")));
    assert!(mesh.client(0, bob, &login("bob", 2)).is_some());
    assert_eq!(mesh.servers[0].session_counts(), (1, 1));

    // Alice (UDP) calls Bob (TCP).
    assert!(mesh
        .client(0, alice, &call("bob", 42, 3, &facts(2, &[5002, 5004])))
        .is_none());
    let delivered = mesh.take(bob);
    let message = Message::parse(&delivered).unwrap();
    assert_eq!(message.method(), natlens::CALL);
    assert_eq!(
        natlens::read_name(&message, natlens::PEER_ID),
        Some(Ok("alice"))
    );
    assert_eq!(natlens::read_call_id(&message), Some(Ok(42)));
    let caller_facts = NatFacts::decode(&message).unwrap();
    assert_eq!(
        caller_facts.observed,
        Some(addr("198.51.100.1:5000")),
        "the server fills in what it saw"
    );
    assert_eq!(
        (caller_facts.delta, caller_facts.predicted_ports),
        (Some(2), vec![5002, 5004])
    );

    assert!(mesh
        .client(0, bob, &answer(&delivered, &facts(1, &[6001])))
        .is_none());
    let answered = mesh.take(alice);
    let message = Message::parse(&answered).unwrap();
    assert_eq!(
        (message.class(), message.transaction_id()),
        (Class::Success, TransactionId([3; 12]))
    );
    let callee_facts = NatFacts::decode(&message).unwrap();
    assert_eq!(callee_facts.observed, Some(addr("203.0.113.200:1")));
    assert_eq!(
        (callee_facts.delta, callee_facts.predicted_ports),
        (Some(1), vec![6001])
    );

    // A retransmission of the answered call gets the same answer, and no second delivery.
    let again = mesh
        .client(0, alice, &call("bob", 42, 3, &facts(2, &[5002, 5004])))
        .unwrap();
    assert_eq!(again, answered);
    assert!(mesh.to_clients.is_empty());

    // Bob (TCP) calls Alice (UDP): delivery over UDP is retransmitted until answered.
    assert!(mesh
        .client(0, bob, &call("alice", 43, 4, &facts(1, &[6002])))
        .is_none());
    let delivered = mesh.take(alice);
    mesh.advance(Duration::from_millis(250));
    assert_eq!(mesh.take(alice), delivered, "retransmitted after the RTO");
    mesh.client(0, alice, &answer(&delivered, &facts(2, &[5006])));
    let message_bytes = mesh.take(bob);
    let message = Message::parse(&message_bytes).unwrap();
    assert_eq!(message.class(), Class::Success);
    assert_eq!(
        NatFacts::decode(&message).unwrap().predicted_ports,
        vec![5006]
    );
    mesh.advance(Duration::from_secs(10));
    assert!(
        mesh.to_clients.is_empty(),
        "no retransmission after the answer"
    );

    let events = mesh.events(0);
    let relays = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Relay {
                    outcome: "answered",
                    ..
                }
            )
        })
        .count();
    assert_eq!(relays, 2);
    assert_eq!(mesh.servers[0].counters().relayed, 2);
}

#[test]
fn a_taken_id_is_refused_and_freed_by_tcp_close() {
    let mut mesh = Mesh::new(&["s1"]);
    mesh.client(0, Route::Tcp { conn: 1 }, &login("carol", 1))
        .unwrap();
    let refused = mesh
        .client(0, udp("198.51.100.2:7000"), &login("carol", 2))
        .unwrap();
    assert_eq!(error_code(&refused), Some(natlens::error::ID_TAKEN));
    mesh.servers[0].tcp_closed(1);
    let accepted = mesh
        .client(0, udp("198.51.100.2:7000"), &login("carol", 3))
        .unwrap();
    assert_eq!(error_code(&accepted), None);
    let events = mesh.events(0);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::LoginRefused { code: 409, .. })));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Logout {
            reason: "closed",
            ..
        }
    )));
}

#[test]
fn silent_udp_sessions_expire_and_keepalives_keep_them() {
    let mut mesh = Mesh::new(&["s1"]);
    let quiet = udp("198.51.100.3:1000");
    let chatty = udp("198.51.100.3:1001");
    mesh.client(0, quiet, &login("quiet", 1));
    mesh.client(0, chatty, &login("chatty", 2));
    for step in 0..6u8 {
        mesh.advance(Duration::from_secs(15));
        let keepalive = request(natlens::KEEPALIVE, 10 + step, |b| {
            b.attribute(natlens::ID, b"chatty");
        });
        let reply = mesh.client(0, chatty, &keepalive).unwrap();
        assert_eq!(error_code(&reply), None, "step {step}");
    }
    assert_eq!(mesh.servers[0].session_counts(), (1, 0));
    let keepalive = request(natlens::KEEPALIVE, 30, |b| {
        b.attribute(natlens::ID, b"quiet");
    });
    let reply = mesh.client(0, quiet, &keepalive).unwrap();
    assert_eq!(
        error_code(&reply),
        Some(natlens::error::NO_SESSION),
        "expired: must log in again"
    );
    assert!(mesh
        .events(0)
        .iter()
        .any(|e| matches!(e, Event::Expire { id, .. } if id == "quiet")));
}

#[test]
fn calls_to_unknown_ids_and_silent_callees_fail_clearly() {
    let mut mesh = Mesh::new(&["s1"]);
    let caller = udp("198.51.100.4:1000");
    mesh.client(0, caller, &login("dave", 1));
    let reply = mesh
        .client(0, caller, &call("nobody", 1, 2, &NatFacts::default()))
        .unwrap();
    assert_eq!(error_code(&reply), Some(natlens::error::UNKNOWN_PEER));

    let callee = Route::Tcp { conn: 5 };
    mesh.client(0, callee, &login("erin", 3));
    assert!(mesh
        .client(0, caller, &call("erin", 2, 4, &NatFacts::default()))
        .is_none());
    mesh.take(callee);
    mesh.advance(DELIVER_TIMEOUT);
    let reply = mesh.take(caller);
    assert_eq!(error_code(&reply), Some(natlens::error::PEER_TIMEOUT));

    let unlogged = udp("198.51.100.4:2000");
    let reply = mesh
        .client(0, unlogged, &call("erin", 3, 5, &NatFacts::default()))
        .unwrap();
    assert_eq!(error_code(&reply), Some(natlens::error::NOT_LOGGED_IN));
}

#[test]
fn federated_servers_relay_a_call_both_ways() {
    let mut mesh = Mesh::new(&["s1", "s2"]);
    mesh.link(0, 100, 1, 200);
    assert_eq!(mesh.servers[0].link_names(), ["s2"]);
    assert_eq!(mesh.servers[1].link_names(), ["s1"]);
    let alice = udp("198.51.100.1:5000");
    let bob = Route::Tcp { conn: 7 };
    mesh.client(0, alice, &login("alice", 1)).unwrap();
    mesh.client(1, bob, &login("bob", 2)).unwrap();

    assert!(mesh
        .client(0, alice, &call("bob", 9, 3, &facts(1, &[5001])))
        .is_none());
    let delivered = mesh.take(bob);
    let message = Message::parse(&delivered).unwrap();
    assert_eq!(
        natlens::read_name(&message, natlens::PEER_ID),
        Some(Ok("alice"))
    );
    assert_eq!(
        NatFacts::decode(&message).unwrap().observed,
        Some(addr("198.51.100.1:5000"))
    );
    mesh.client(1, bob, &answer(&delivered, &facts(2, &[7002])));
    let answered = mesh.take(alice);
    let message = Message::parse(&answered).unwrap();
    assert_eq!(message.class(), Class::Success);
    let callee = NatFacts::decode(&message).unwrap();
    assert_eq!(
        callee.observed,
        Some(addr("203.0.113.200:1")),
        "as server 2 saw bob"
    );
    assert_eq!(callee.predicted_ports, vec![7002]);

    // And back: bob on s2 calls alice on s1.
    assert!(mesh
        .client(1, bob, &call("alice", 10, 4, &facts(2, &[7004])))
        .is_none());
    let delivered = mesh.take(alice);
    mesh.client(0, alice, &answer(&delivered, &facts(1, &[5002])));
    let answered = mesh.take(bob);
    assert_eq!(Message::parse(&answered).unwrap().class(), Class::Success);
    let from_s2: Vec<Event> = mesh.events(1);
    assert!(from_s2
        .iter()
        .any(|e| matches!(e, Event::Call { from, .. } if from == "s1")));
}

#[test]
fn unknown_ids_in_a_federation_ring_end_in_not_found_without_looping() {
    let mut mesh = Mesh::new(&["s1", "s2", "s3"]);
    mesh.link(0, 1, 1, 1);
    mesh.link(1, 2, 2, 2);
    mesh.link(2, 3, 0, 3);
    let alice = udp("198.51.100.1:5000");
    mesh.client(0, alice, &login("alice", 1));
    assert!(mesh
        .client(0, alice, &call("ghost", 1, 2, &NatFacts::default()))
        .is_none());
    let reply = mesh.take(alice);
    assert_eq!(error_code(&reply), Some(natlens::error::UNKNOWN_PEER));
    // Every server saw the call at most twice (once per inbound link), never more.
    for s in 0..3 {
        let calls = mesh
            .events(s)
            .iter()
            .filter(|e| matches!(e, Event::Call { .. }))
            .count();
        assert!((1..=2).contains(&calls), "server {s} saw {calls} calls");
    }
}

#[test]
fn a_dead_link_fails_the_call_instead_of_hanging() {
    let mut mesh = Mesh::new(&["s1", "s2"]);
    mesh.link(0, 100, 1, 200);
    let alice = udp("198.51.100.1:5000");
    mesh.client(0, alice, &login("alice", 1));
    // Cut the link silently: s1's forward goes nowhere.
    mesh.links.clear();
    assert!(mesh
        .client(0, alice, &call("bob", 1, 2, &NatFacts::default()))
        .is_none());
    mesh.to_clients.retain(|(_, route, _)| *route == alice);
    mesh.advance(FORWARD_TIMEOUT);
    let reply = mesh.take(alice);
    assert_eq!(error_code(&reply), Some(natlens::error::PEER_TIMEOUT));
}

/// Calls pending on a link that goes down fail in the order they arrived, in the events and in
/// the answers sent: with hash-ordered legs this order came out shuffled.
#[test]
fn calls_pending_on_a_lost_link_fail_in_arrival_order() {
    let mut mesh = Mesh::new(&["s1", "s2"]);
    mesh.link(0, 100, 1, 200);
    // Cut the link silently: s1's forwards wait for answers that never come.
    mesh.links.clear();
    let callers: Vec<Route> = (0..12u16)
        .map(|i| udp(&format!("198.51.100.{}:{}", i + 1, 5000 + i)))
        .collect();
    for (i, &caller) in callers.iter().enumerate() {
        let i = i as u8;
        mesh.client(0, caller, &login(&format!("caller{i}"), i));
        let call_id = 0x100 + u64::from(i);
        let request = call("bob", call_id, 100 + i, &NatFacts::default());
        assert!(mesh.client(0, caller, &request).is_none());
    }
    mesh.to_clients.clear();
    mesh.events(0);
    mesh.servers[0].tcp_closed(100);
    let failed: Vec<String> = mesh
        .events(0)
        .into_iter()
        .filter_map(|event| match event {
            Event::Relay { call_id, .. } => Some(call_id),
            _ => None,
        })
        .collect();
    let expected: Vec<String> = (0..12u64)
        .map(|i| crate::core::events::call_id_text(0x100 + i))
        .collect();
    assert_eq!(failed, expected);
    let answered: Vec<Route> = std::iter::from_fn(|| mesh.servers[0].poll_command())
        .filter_map(|command| match command {
            Command::Send { route, .. } => Some(route),
            Command::Close { .. } => None,
        })
        .collect();
    assert_eq!(answered, callers);
}

#[test]
fn timeouts_fit_together() {
    // A remote callee's 408 must get back before the forwarding server gives up, and a
    // caller with the default `natlens call --call-timeout 10s` outlives both.
    assert!(DELIVER_TIMEOUT + Duration::from_secs(1) < FORWARD_TIMEOUT);
    assert!(FORWARD_TIMEOUT < Duration::from_secs(10));
    assert!(
        SWEEP_INTERVAL * 10 <= Duration::from_secs(45),
        "expiry resolution well under the default expiry"
    );
}

#[test]
fn malformed_and_hostile_messages_are_counted_and_never_answered_wrongly() {
    let mut mesh = Mesh::new(&["s1"]);
    let mut reply = Vec::new();
    let (local, remote) = (addr(LOCAL), addr("198.51.100.9:9"));
    let server = &mut mesh.servers[0];
    assert!(server
        .handle_udp(mesh.now, local, remote, b"garbage", &mut reply)
        .is_none());
    let indication = {
        let mut buf = Vec::new();
        MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::BINDING, Class::Indication),
            TransactionId([1; 12]),
        );
        buf
    };
    assert!(server
        .handle_udp(mesh.now, local, remote, &indication, &mut reply)
        .is_none());
    let unknown_attribute = request(natlens::LOGIN, 2, |b| {
        b.attribute(natlens::ID, b"x");
        b.attribute(AttrType(0x7F00), b"?");
    });
    assert!(server
        .handle_udp(mesh.now, local, remote, &unknown_attribute, &mut reply)
        .is_some());
    assert_eq!(error_code(&reply), Some(420));
    let counters = server.counters();
    assert_eq!(
        counters.drops.get("too-short").copied().unwrap_or(0)
            + counters.drops.get("not-stun").copied().unwrap_or(0),
        1
    );
    assert_eq!(counters.drops.get("indication"), Some(&1));
}

#[test]
fn an_answer_from_the_wrong_sender_is_ignored_and_delivery_goes_on() {
    let mut mesh = Mesh::new(&["s1"]);
    let alice = udp("198.51.100.1:5000");
    let bob = udp("198.51.100.2:6000");
    let mallory = udp("198.51.100.66:6666");
    mesh.client(0, alice, &login("alice", 1));
    mesh.client(0, bob, &login("bob", 2));
    mesh.client(0, alice, &call("bob", 5, 3, &facts(1, &[5001])));
    let delivered = mesh.take(bob);
    // Mallory guesses the transaction ID and answers with her own facts.
    assert!(mesh
        .client(0, mallory, &answer(&delivered, &facts(9, &[6666])))
        .is_none());
    assert!(mesh.to_clients.is_empty(), "nothing relayed to alice");
    mesh.advance(Duration::from_millis(250));
    assert_eq!(
        mesh.take(bob),
        delivered,
        "still retransmitting to the real callee"
    );
    mesh.client(0, bob, &answer(&delivered, &facts(1, &[6001])));
    let answered = mesh.take(alice);
    let callee = NatFacts::decode(&Message::parse(&answered).unwrap()).unwrap();
    assert_eq!(callee.predicted_ports, vec![6001]);
}

/// The UDP route from `remote` to the server's IPv6 address.
fn udp6(remote: &str) -> Route {
    Route::Udp {
        local: addr("[2001:db8::1]:3478"),
        remote: addr(remote),
    }
}

fn with_other_family(mut facts: NatFacts, public: &str) -> NatFacts {
    let public = addr(public);
    facts.other_family = Some(natlens::FamilySide {
        family: natlens::IpFamily::of(public.ip()),
        public: Some(public),
        predicted_ports: vec![public.port()],
        ..natlens::FamilySide::absent(natlens::IpFamily::of(public.ip()))
    });
    facts
}

#[test]
fn a_login_names_the_servers_addresses_its_own_family_first() {
    let mut mesh = Mesh::new(&["s1"]);
    mesh.servers[0].config.addresses = vec![
        addr("192.0.2.1:3478"),
        addr("192.0.2.2:3478"),
        addr("[2001:db8::1]:3478"),
    ];
    let named = |reply: Vec<u8>| natlens::read_server_addresses(&Message::parse(&reply).unwrap());
    let v4 = mesh.client(0, udp("198.51.100.1:5000"), &login("alice", 1));
    assert_eq!(
        named(v4.unwrap()),
        [addr("192.0.2.1:3478"), addr("[2001:db8::1]:3478")]
    );
    let v6 = mesh.client(0, udp6("[2001:db8:2::5]:6000"), &login("bob", 2));
    assert_eq!(
        named(v6.unwrap()),
        [addr("[2001:db8::1]:3478"), addr("192.0.2.1:3478")]
    );
    mesh.servers[0].config.addresses.clear();
    let none = mesh.client(0, udp("198.51.100.3:5000"), &login("carol", 3));
    assert!(
        named(none.unwrap()).is_empty(),
        "a wildcard listener names none"
    );
}

#[test]
fn an_ipv4_session_calls_an_ipv6_one_and_both_families_facts_arrive_whole() {
    let mut mesh = Mesh::new(&["s1"]);
    let alice = udp("198.51.100.1:5000");
    let bob = udp6("[2001:db8:2::5]:6000");
    mesh.client(0, alice, &login("alice", 1)).unwrap();
    mesh.client(0, bob, &login("bob", 2)).unwrap();
    let alice_facts = with_other_family(facts(1, &[5001]), "[2001:db8:3::7]:5001");
    mesh.client(0, alice, &call("bob", 11, 3, &alice_facts));
    let delivered = mesh.take(bob);
    let relayed = NatFacts::decode(&Message::parse(&delivered).unwrap()).unwrap();
    assert_eq!(relayed.observed, Some(addr("198.51.100.1:5000")));
    assert_eq!(relayed.other_family, alice_facts.other_family);
    let bob_facts = with_other_family(facts(0, &[6000]), "203.0.113.5:6000");
    mesh.client(0, bob, &answer(&delivered, &bob_facts));
    let answered = NatFacts::decode(&Message::parse(&mesh.take(alice)).unwrap()).unwrap();
    assert_eq!(answered.observed, Some(addr("[2001:db8:2::5]:6000")));
    assert_eq!(answered.other_family, bob_facts.other_family);
}

#[test]
fn a_federated_call_crosses_families_and_keeps_the_other_familys_facts() {
    // Server 1's link to server 2 is whatever family it is (the mesh carries bytes); alice is
    // on server 1 over IPv6, bob on server 2 over IPv4.
    let mut mesh = Mesh::new(&["s1", "s2"]);
    mesh.link(0, 100, 1, 200);
    let alice = udp6("[2001:db8:2::5]:6000");
    let bob = udp("198.51.100.9:7000");
    mesh.client(0, alice, &login("alice", 1)).unwrap();
    mesh.client(1, bob, &login("bob", 2)).unwrap();
    let alice_facts = with_other_family(facts(0, &[6000]), "203.0.113.5:6000");
    mesh.client(0, alice, &call("bob", 12, 3, &alice_facts));
    let delivered = mesh.take(bob);
    let relayed = NatFacts::decode(&Message::parse(&delivered).unwrap()).unwrap();
    assert_eq!(relayed.observed, Some(addr("[2001:db8:2::5]:6000")));
    assert_eq!(relayed.other_family, alice_facts.other_family);
    let bob_facts = with_other_family(facts(0, &[7000]), "[2001:db8:4::9]:7000");
    mesh.client(1, bob, &answer(&delivered, &bob_facts));
    let answered = NatFacts::decode(&Message::parse(&mesh.take(alice)).unwrap()).unwrap();
    assert_eq!(answered.observed, Some(addr("198.51.100.9:7000")));
    assert_eq!(answered.other_family, bob_facts.other_family);
}

/// A LOGIN names the first address of the client's family, then the other family's; none
/// when the server has no specific address.
#[test]
fn login_addresses_come_own_family_first_without_a_vec() {
    let mut config = ServerConfig::new("s");
    let v4: SocketAddr = "192.0.2.1:3478".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::1]:3478".parse().unwrap();
    let client4: SocketAddr = "198.51.100.9:40000".parse().unwrap();
    let client6: SocketAddr = "[2001:db8::9]:40000".parse().unwrap();
    assert!(config.addresses_for(client4).is_empty());
    config.addresses = vec![v4, "192.0.2.2:3478".parse().unwrap(), v6];
    assert_eq!(*config.addresses_for(client4), [v4, v6]);
    assert_eq!(*config.addresses_for(client6), [v6, v4]);
    config.addresses = vec![v6];
    assert_eq!(*config.addresses_for(client4), [v6]);
}
