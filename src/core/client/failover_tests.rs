//! Virtual-clock tests of the failover policy in a session: real server cores that die, a
//! client that moves to the next server within two keepalive intervals, calls in flight that
//! fail with why, and the one-server behaviour left as it was.

use std::net::SocketAddr;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::core::credentials::{hmac_key, Credentials};
use crate::core::server::{ServerConfig, ServerCore};
use crate::wire::attr::AttrType;

const KEEPALIVE: Duration = Duration::from_secs(1);
const CLIENT: &str = "198.51.100.7:40001";

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn servers() -> Vec<SocketAddr> {
    ["192.0.2.1:3478", "192.0.2.2:3478", "192.0.2.3:3478"]
        .iter()
        .map(|s| addr(s))
        .collect()
}

/// Server cores at [`servers`], each alive or dead (a dead one answers nothing), and one UDP
/// client whose shell connects wherever the session asks at once.
struct Net {
    now: Instant,
    servers: Vec<(SocketAddr, ServerCore, bool)>,
    client: ClientSession<StdRng>,
    events: Vec<(Instant, ClientEvent)>,
    /// Switches the shell refuses (a server that cannot be connected to).
    refuse: Vec<SocketAddr>,
}

impl Net {
    fn new(credentials: Option<Credentials>, key: Option<&str>) -> Self {
        let now = Instant::now();
        let servers = servers()
            .into_iter()
            .enumerate()
            .map(|(i, at)| {
                let config = ServerConfig {
                    credentials: credentials.clone(),
                    nonce_secret: [i as u8; 32],
                    ..ServerConfig::new("test")
                };
                (at, ServerCore::new(config, now, i as u64), true)
            })
            .collect();
        let mut config = ClientConfig::new("alice", Transport::Udp, KEEPALIVE);
        config.servers = self::servers();
        config.hmac_key = key.map(|key| hmac_key("alice", key));
        let client = ClientSession::new(config, now, StdRng::seed_from_u64(1));
        let mut net = Net {
            now,
            servers,
            client,
            events: Vec::new(),
            refuse: Vec::new(),
        };
        net.pump();
        net
    }

    /// Delivers what the client sent to the server it is on, and the answers back; carries
    /// out switches.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(bytes) = self.client.poll_transmit() {
                moved = true;
                let at = self.client.server().expect("a server in use");
                let (_, core, alive) = self.servers.iter_mut().find(|s| s.0 == at).unwrap();
                let mut reply = Vec::new();
                if *alive
                    && core
                        .handle_udp(self.now, at, addr(CLIENT), &bytes, &mut reply)
                        .is_some()
                {
                    self.client.handle_input(self.now, &reply);
                }
            }
            while let Some(event) = self.client.poll_event() {
                self.events.push((self.now, event));
            }
            if let Some(to) = self.client.poll_switch() {
                moved = true;
                if self.refuse.contains(&to) {
                    self.client.handle_switch_failed();
                } else {
                    self.client.handle_switched(self.now);
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn run_until(&mut self, until: Instant) {
        while let Some(at) = self.client.poll_timeout().filter(|at| *at <= until) {
            self.now = at.max(self.now);
            self.client.handle_timeout(self.now);
            self.pump();
        }
        self.now = until;
    }

    fn kill(&mut self, server: SocketAddr) {
        self.servers.iter_mut().find(|s| s.0 == server).unwrap().2 = false;
    }

    /// When the first event `matches` picks happened.
    fn when(&self, matches: impl Fn(&ClientEvent) -> bool) -> Option<Instant> {
        self.events
            .iter()
            .find(|(_, e)| matches(e))
            .map(|(at, _)| *at)
    }

    fn take_events(&mut self) -> Vec<ClientEvent> {
        self.events.drain(..).map(|(_, e)| e).collect()
    }
}

#[test]
fn a_dead_server_is_left_for_the_next_within_two_keepalives() {
    let list = servers();
    // Death at every phase of the keepalive cycle: just after one, midway, just before one.
    for offset_ms in [10, 500, 990] {
        let mut net = Net::new(None, None);
        assert!(net.client.is_logged_in());
        assert_eq!(net.client.server(), Some(list[0]));
        net.run_until(net.now + Duration::from_secs(3));
        let death = net.now + Duration::from_millis(offset_ms);
        net.run_until(death);
        net.kill(list[0]);
        net.take_events();
        net.run_until(death + 3 * KEEPALIVE);
        let moved = net
            .when(|e| matches!(e, ClientEvent::ServerChanged { .. }))
            .expect("moved");
        let back = net
            .when(|e| matches!(e, ClientEvent::Relogin { .. }))
            .expect("logged in again");
        assert!(back - death <= 2 * KEEPALIVE, "{:?}", back - death);
        assert!(moved <= back);
        assert_eq!(
            net.events[0].1,
            ClientEvent::ServerChanged {
                from: list[0],
                to: list[1],
                lost: Lost::Keepalive
            }
        );
        assert_eq!(net.client.server(), Some(list[1]));
        assert!(net.client.is_logged_in());
        assert_eq!(net.servers[1].1.session_counts(), (1, 0));
    }
}

#[test]
fn a_call_in_flight_on_the_dead_server_fails_naming_it() {
    let list = servers();
    let mut net = Net::new(None, None);
    net.kill(list[0]);
    let placed = net.now;
    let call_id = net.client.call(placed, "bob", &NatFacts::default());
    net.run_until(placed + 3 * KEEPALIVE);
    let failed = net.events.iter().find_map(|(at, e)| match e {
        ClientEvent::CallFailed {
            call_id: id,
            code: None,
            reason,
            ..
        } if *id == call_id => Some((*at, reason.clone())),
        _ => None,
    });
    let (at, reason) = failed.expect("the call failed");
    assert!(
        reason.contains("192.0.2.1:3478 stopped answering"),
        "{reason}"
    );
    assert!(reason.contains("192.0.2.2:3478"), "{reason}");
    // Well before the call's own timeout: the move ends it.
    assert!(at - placed < CALL_TIMEOUT / 2);
}

#[test]
fn the_first_server_not_answering_the_first_login_is_skipped() {
    let list = servers();
    let mut config = ClientConfig::new("alice", Transport::Udp, KEEPALIVE);
    config.servers = list.clone();
    let now = Instant::now();
    let mut session = ClientSession::new(config, now, StdRng::seed_from_u64(3));
    // The LOGIN to the first server goes unanswered for half an interval.
    assert!(session.poll_transmit().is_some());
    let mut at = now;
    while session.poll_switch().is_none() {
        at = session.poll_timeout().expect("a timer");
        session.handle_timeout(at);
    }
    assert_eq!(at - now, KEEPALIVE / 2);
    let events: Vec<_> = std::iter::from_fn(|| session.poll_event()).collect();
    assert_eq!(
        events,
        [ClientEvent::ServerChanged {
            from: list[0],
            to: list[1],
            lost: Lost::Login
        }]
    );
    // Logged in on the second: that is the session's first login, not a relogin.
    session.handle_switched(at);
    let login = session.poll_transmit().unwrap();
    let reply = login_answer(&login);
    session.handle_input(at, &reply);
    assert!(matches!(
        session.poll_event(),
        Some(ClientEvent::LoggedIn { .. })
    ));
}

/// A LOGIN success answer as a server writes it.
fn login_answer(login: &[u8]) -> Vec<u8> {
    let request = Message::parse(login).unwrap();
    let mut bytes = Vec::new();
    let ty = crate::wire::MessageType::new(natlens::LOGIN, Class::Success);
    let mut builder = crate::wire::MessageBuilder::new(&mut bytes, ty, request.transaction_id());
    builder.xor_address(AttrType::XOR_MAPPED_ADDRESS, &addr(CLIENT));
    bytes
}

#[test]
fn every_server_dead_ends_the_session_after_one_round() {
    let mut net = Net::new(None, None);
    net.take_events();
    for server in servers() {
        net.kill(server);
    }
    net.run_until(net.now + 10 * KEEPALIVE);
    let events = net.take_events();
    let moves = events
        .iter()
        .filter(|e| matches!(e, ClientEvent::ServerChanged { .. }))
        .count();
    assert_eq!(moves, 2, "{events:?}");
    assert_eq!(
        events.last(),
        Some(&ClientEvent::ServerUnreachable { lost: Lost::Login })
    );
    assert!(net.client.is_closed());
}

#[test]
fn a_server_that_cannot_be_connected_to_is_passed_over() {
    let list = servers();
    let mut net = Net::new(None, None);
    net.refuse.push(list[1]);
    net.kill(list[0]);
    net.take_events();
    net.run_until(net.now + 3 * KEEPALIVE);
    let events = net.take_events();
    assert!(
        matches!(
            &events[..],
            [
                ClientEvent::ServerChanged { lost: Lost::Keepalive, .. },
                ClientEvent::ServerChanged { to, lost: Lost::Connection, .. },
                ClientEvent::Relogin { .. },
                ..
            ] if *to == list[2]
        ),
        "{events:?}"
    );
    assert_eq!(net.client.server(), Some(list[2]));
}

#[test]
fn a_keyed_id_logs_in_on_the_next_server_with_that_servers_nonce() {
    let credentials = Credentials::from_pairs([("alice", "alice-key")]);
    let list = servers();
    let mut net = Net::new(Some(credentials), Some("alice-key"));
    assert!(net.client.is_logged_in());
    net.kill(list[0]);
    net.run_until(net.now + 3 * KEEPALIVE);
    assert_eq!(net.client.server(), Some(list[1]));
    assert!(net.client.is_logged_in(), "{:?}", net.events);
    let next = &net.servers[1].1;
    assert_eq!(next.session_counts(), (1, 0));
    // One challenge on the new server (its first LOGIN went unsigned), no stale nonce.
    assert_eq!(next.counters().drops.get("auth-required"), Some(&1));
    assert_eq!(next.counters().drops.get("stale-nonce"), None);
}

#[test]
fn an_icmp_unreachable_moves_a_logged_in_session_at_once() {
    let list = servers();
    let mut net = Net::new(None, None);
    net.take_events();
    net.client.handle_unreachable();
    assert_eq!(net.client.poll_switch(), Some(list[1]));
    assert_eq!(
        net.client.poll_event(),
        Some(ClientEvent::ServerChanged {
            from: list[0],
            to: list[1],
            lost: Lost::Keepalive
        })
    );
}

#[test]
fn a_lost_tcp_connection_moves_on_after_half_an_interval_of_redials() {
    let list = servers();
    let now = Instant::now();
    let mut config = ClientConfig::new("alice", Transport::Tcp, KEEPALIVE);
    config.servers = list.clone();
    let mut session = ClientSession::new(config, now, StdRng::seed_from_u64(5));
    let login = session.poll_transmit().unwrap();
    session.handle_input(now, &login_answer(&login));
    while session.poll_event().is_some() {}
    session.handle_disconnect(now);
    let (mut dials, mut switched) = (Vec::new(), None);
    while let Some(at) = session.poll_timeout() {
        session.handle_timeout(at);
        if session.poll_connect() {
            dials.push((at - now).as_millis());
        }
        if let Some(to) = session.poll_switch() {
            switched = Some((at - now, to));
            break;
        }
    }
    assert_eq!(dials, [0, 100, 300]);
    assert_eq!(switched, Some((KEEPALIVE / 2, list[1])));
    let events: Vec<_> = std::iter::from_fn(|| session.poll_event()).collect();
    assert_eq!(
        events,
        [
            ClientEvent::ConnectionLost,
            ClientEvent::ServerChanged {
                from: list[0],
                to: list[1],
                lost: Lost::Connection
            }
        ]
    );
}

#[test]
fn one_server_keeps_the_patient_keepalive_budget() {
    let now = Instant::now();
    let config = ClientConfig::new("alice", Transport::Udp, KEEPALIVE);
    let mut session = ClientSession::new(config, now, StdRng::seed_from_u64(5));
    let login = session.poll_transmit().unwrap();
    session.handle_input(now, &login_answer(&login));
    while session.poll_event().is_some() {}
    assert_eq!(session.server(), None);
    assert_eq!(session.silence_budget(), LOGIN_TIMEOUT);
    session.handle_unreachable();
    assert!(session.is_logged_in(), "one server: ICMP news is ignored");
    let mut at = now;
    while !session.is_closed() {
        at = session.poll_timeout().unwrap();
        session.handle_timeout(at);
    }
    // The first keepalive (at 1 s) went unanswered for the whole login timeout.
    assert_eq!(at - now, KEEPALIVE + LOGIN_TIMEOUT);
    assert_eq!(session.poll_switch(), None);
}
