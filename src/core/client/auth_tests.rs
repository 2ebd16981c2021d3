//! The client session against the real server core with credentials, on a virtual clock: the
//! 401 → signed LOGIN exchange, wrong and missing keys, a stale nonce, signed call answers.

use std::net::SocketAddr;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::core::credentials::{hmac_key, Credentials};
use crate::core::events::Command;
use crate::core::nonce::NONCE_LIFETIME;
use crate::core::registry::Route;
use crate::core::server::{ServerConfig, ServerCore};
use crate::wire::attr::AttrType;
use crate::wire::{MessageBuilder, MessageType};

const LOCAL: &str = "192.0.2.1:3478";

/// One server core and its clients, all over UDP, exchanging real bytes.
struct Net {
    now: Instant,
    server: ServerCore,
    clients: Vec<(SocketAddr, ClientSession<StdRng>, Vec<ClientEvent>)>,
}

impl Net {
    fn new(credentials: Option<Credentials>) -> Self {
        let now = Instant::now();
        let config = ServerConfig {
            credentials,
            nonce_secret: [9; 32],
            ..ServerConfig::new("test")
        };
        Net {
            now,
            server: ServerCore::new(config, now, 3),
            clients: Vec::new(),
        }
    }

    /// Adds a client at `from` logging in as `id` with `key` (None: no key).
    fn client(&mut self, from: &str, id: &str, key: Option<&str>) -> usize {
        let mut config = ClientConfig::new(id, Transport::Udp, Duration::from_secs(15));
        config.hmac_key = key.map(|key| hmac_key(id, key));
        let seed = self.clients.len() as u64 + 1;
        let session = ClientSession::new(config, self.now, StdRng::seed_from_u64(seed));
        self.clients
            .push((from.parse().unwrap(), session, Vec::new()));
        self.pump();
        self.clients.len() - 1
    }

    fn pump(&mut self) {
        let local: SocketAddr = LOCAL.parse().unwrap();
        let mut moved = true;
        while moved {
            moved = false;
            for i in 0..self.clients.len() {
                while let Some(bytes) = self.clients[i].1.poll_transmit() {
                    moved = true;
                    let (from, session, _) = &mut self.clients[i];
                    let mut reply = Vec::new();
                    if self
                        .server
                        .handle_udp(self.now, local, *from, &bytes, &mut reply)
                        .is_some()
                    {
                        session.handle_input(self.now, &reply);
                    }
                }
                let (_, session, events) = &mut self.clients[i];
                events.extend(std::iter::from_fn(|| session.poll_event()));
            }
            while let Some(command) = self.server.poll_command() {
                moved = true;
                if let Command::Send {
                    route: Route::Udp { remote, .. },
                    bytes,
                } = command
                {
                    if let Some(client) = self.clients.iter_mut().find(|c| c.0 == remote) {
                        client.1.handle_input(self.now, &bytes);
                    }
                }
            }
        }
    }

    /// Runs timers up to `until`.
    fn run_until(&mut self, until: Instant) {
        loop {
            let next = self
                .clients
                .iter()
                .filter_map(|c| c.1.poll_timeout())
                .chain([self.server.poll_timeout()])
                .min()
                .unwrap();
            if next > until {
                break;
            }
            self.now = next.max(self.now);
            for client in &mut self.clients {
                client.1.handle_timeout(self.now);
            }
            self.server.handle_timeout(self.now);
            self.pump();
        }
        self.now = until;
    }

    fn events(&mut self, i: usize) -> Vec<ClientEvent> {
        std::mem::take(&mut self.clients[i].2)
    }
}

fn credentials() -> Credentials {
    Credentials::from_pairs([("alice", "alice-key"), ("bob", "bob-key")])
}

#[test]
fn the_right_key_logs_in_after_one_challenge() {
    let mut net = Net::new(Some(credentials()));
    let alice = net.client("198.51.100.7:40001", "alice", Some("alice-key"));
    assert!(net.clients[alice].1.is_logged_in());
    assert!(matches!(
        net.events(alice)[..],
        [ClientEvent::LoggedIn { .. }]
    ));
    assert_eq!(net.server.counters().drops.get("auth-required"), Some(&1));
}

#[test]
fn a_wrong_or_missing_key_is_refused_with_401() {
    let mut net = Net::new(Some(credentials()));
    let wrong = net.client("198.51.100.7:40001", "alice", Some("guess"));
    let nokey = net.client("198.51.100.8:40001", "bob", None);
    for client in [wrong, nokey] {
        let events = net.events(client);
        assert!(
            matches!(&events[..], [ClientEvent::LoginRefused { code: 401, .. }]),
            "{events:?}"
        );
        assert!(net.clients[client].1.is_closed());
    }
    // The wrong key tried exactly once signed: no guessing loop.
    assert_eq!(net.server.counters().drops.get("auth-failed"), Some(&1));
}

#[test]
fn a_key_is_harmless_against_an_open_server() {
    let mut net = Net::new(None);
    let alice = net.client("198.51.100.7:40001", "alice", Some("alice-key"));
    assert!(net.clients[alice].1.is_logged_in());
}

#[test]
fn a_call_after_the_nonce_went_stale_retries_once_and_is_answered() {
    let mut net = Net::new(Some(credentials()));
    let alice = net.client("198.51.100.7:40001", "alice", Some("alice-key"));
    let bob = net.client("203.0.113.9:50000", "bob", Some("bob-key"));
    net.run_until(net.now + NONCE_LIFETIME + Duration::from_secs(5));
    assert!(net.clients[alice].1.is_logged_in() && net.clients[bob].1.is_logged_in());
    net.events(alice);
    let now = net.now;
    net.clients[alice].1.call(now, "bob", &NatFacts::default());
    net.pump();
    let events = net.events(alice);
    let answered = events
        .iter()
        .find_map(|e| match e {
            ClientEvent::CallAnswered { facts, .. } => Some(facts.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no answer: {events:?}"));
    assert_eq!(answered.observed, "203.0.113.9:50000".parse().ok());
    assert_eq!(net.server.counters().drops.get("stale-nonce"), Some(&1));
    assert!(net
        .events(bob)
        .iter()
        .any(|e| matches!(e, ClientEvent::IncomingCall { caller, .. } if caller == "alice")));
}

#[test]
fn a_restarted_client_on_a_new_port_takes_its_id_back() {
    let mut net = Net::new(Some(credentials()));
    net.client("198.51.100.7:40001", "alice", Some("alice-key"));
    let again = net.client("198.51.100.7:40002", "alice", Some("alice-key"));
    assert!(net.clients[again].1.is_logged_in());
    assert_eq!(net.server.session_counts(), (1, 0));
    // The old end, still alive, learns on its next keepalive and gives way: no flapping.
    net.run_until(net.now + Duration::from_secs(60));
    let old = net.events(0);
    assert!(
        matches!(&old[..], [.., ClientEvent::LoginRefused { code: 409, .. }]),
        "{old:?}"
    );
    assert!(net.clients[0].1.is_closed());
    assert!(net.clients[again].1.is_logged_in());
    assert!(!net
        .events(again)
        .iter()
        .any(|e| matches!(e, ClientEvent::LoginRefused { .. })));
}

#[test]
fn after_a_server_restart_the_client_logs_in_again_through_a_438() {
    let mut net = Net::new(Some(credentials()));
    let alice = net.client("198.51.100.7:40001", "alice", Some("alice-key"));
    net.events(alice);
    // A new server process: no sessions, a new nonce secret.
    let config = ServerConfig {
        credentials: Some(credentials()),
        nonce_secret: [10; 32],
        ..ServerConfig::new("test")
    };
    net.server = ServerCore::new(config, net.now, 4);
    net.run_until(net.now + Duration::from_secs(20));
    let events = net.events(alice);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::Relogin { .. })),
        "{events:?}"
    );
    assert!(net.clients[alice].1.is_logged_in());
    assert_eq!(net.server.counters().drops.get("stale-nonce"), Some(&1));
    assert_eq!(net.server.session_counts(), (1, 0));
}

#[test]
fn a_forged_call_answer_is_dropped_and_the_signed_one_taken() {
    let mut net = Net::new(Some(credentials()));
    let alice = net.client("198.51.100.7:40001", "alice", Some("alice-key"));
    net.client("203.0.113.9:50000", "bob", Some("bob-key"));
    net.events(alice);
    let now = net.now;
    net.clients[alice].1.call(now, "bob", &NatFacts::default());
    let request = net.clients[alice]
        .1
        .poll_transmit()
        .expect("the signed CALL");
    let call = Message::parse(&request).unwrap();
    assert!(call.get(AttrType::MESSAGE_INTEGRITY_SHA256).is_some());
    // Someone on the path answers first, naming a third party as bob: unsigned, then signed
    // under a key that is not alice's.
    let victim: SocketAddr = "192.0.2.99:53".parse().unwrap();
    for key in [None, Some(hmac_key("alice", "guess"))] {
        let mut forged = Vec::new();
        let ty = MessageType::new(natlens::CALL, Class::Success);
        let mut builder = MessageBuilder::new(&mut forged, ty, call.transaction_id());
        builder.attribute(natlens::PEER_ID, b"bob");
        NatFacts {
            observed: Some(victim),
            ..NatFacts::default()
        }
        .encode(&mut builder);
        if let Some(key) = key {
            builder.message_integrity_sha256(&key);
        }
        builder.fingerprint();
        builder.finish();
        net.clients[alice].1.handle_input(now, &forged);
    }
    assert_eq!(net.clients[alice].1.stats().unsigned_answers, 2);
    assert!(net.events(alice).is_empty());
    // The real request reaches the server; bob answers; alice takes the signed answer.
    let local: SocketAddr = LOCAL.parse().unwrap();
    let from = net.clients[alice].0;
    let mut reply = Vec::new();
    assert!(net
        .server
        .handle_udp(now, local, from, &request, &mut reply)
        .is_none());
    net.pump();
    let answered = net.events(alice).into_iter().find_map(|e| match e {
        ClientEvent::CallAnswered { facts, .. } => Some(facts),
        _ => None,
    });
    assert_eq!(
        answered.and_then(|facts| facts.observed),
        "203.0.113.9:50000".parse().ok()
    );
}
