//! Forward on miss on a virtual clock: lookups, dials on demand, and every way a call placed
//! through the registry ends with an answer to its caller.

use std::time::{Duration, Instant};

use super::super::tests::{addr, request, udp, LOCAL};
use super::super::{ServerConfig, ServerCore};
use super::{HOME_DIAL_TIMEOUT, HOME_LINK_IDLE, LOOKUP_TIMEOUT};
use crate::core::events::{Command, Event};
use crate::core::registry::Route;
use crate::core::server::home_registry::{RegistryOp, RegistryReply};
use crate::wire::attr::{decode_error_code, AttrType};
use crate::wire::natlens;
use crate::wire::stun::{Class, Message, MessageType};
use crate::wire::MessageBuilder;

const ALICE: &str = "198.51.100.7:4000";
const HOME: &str = "192.0.2.50:3478";

/// A server with the registry on and connected, alice logged in over UDP; her claim drained.
fn server(t0: Instant) -> ServerCore {
    let mut core = ServerCore::new(ServerConfig::new("s1"), t0, 1);
    core.enable_registry(addr(LOCAL), Duration::from_secs(15));
    core.registry_reply(t0, RegistryReply::Connected);
    let login = request(natlens::LOGIN, 1, |b| {
        b.attribute(natlens::ID, b"alice");
    });
    let mut reply = Vec::new();
    core.handle_udp(t0, addr(LOCAL), addr(ALICE), &login, &mut reply);
    drain_events(&mut core);
    assert_eq!(
        core.poll_registry_op(),
        Some(RegistryOp::Claim {
            ids: vec!["alice".into()]
        })
    );
    core
}

fn drain_events(core: &mut ServerCore) -> Vec<Event> {
    std::iter::from_fn(|| core.poll_event()).collect()
}

/// alice calls `callee` (transaction byte `tid`); returns whether an answer came at once.
fn call(core: &mut ServerCore, now: Instant, callee: &str, tid: u8) -> Option<Vec<u8>> {
    let bytes = request(natlens::CALL, tid, |b| {
        b.attribute(natlens::PEER_ID, callee.as_bytes());
        b.attribute(natlens::CALL_ID, &u64::from(tid).to_be_bytes());
    });
    let mut reply = Vec::new();
    core.handle_udp(now, addr(LOCAL), addr(ALICE), &bytes, &mut reply)
        .map(|_| reply)
}

/// The error code of the answer sent to alice, if one went out.
fn answer_to_alice(core: &mut ServerCore) -> Option<(u16, String)> {
    std::iter::from_fn(|| core.poll_command()).find_map(|command| match command {
        Command::Send { route, bytes } if route == udp(ALICE) => {
            let message = Message::parse(&bytes).unwrap();
            let (code, reason) = message
                .get(AttrType::ERROR_CODE)
                .and_then(|a| decode_error_code(a.value).ok())?;
            Some((code, reason.to_owned()))
        }
        _ => None,
    })
}

fn lookup_call(core: &mut ServerCore, callee: &str) -> u64 {
    match core.poll_registry_op() {
        Some(RegistryOp::Lookup { call, id }) if id == callee => call,
        other => panic!("expected a lookup for {callee}, got {other:?}"),
    }
}

/// Calls `callee` and answers the lookup it starts with `value` (the home's link address, or
/// None for no entry).
fn call_found(core: &mut ServerCore, now: Instant, callee: &str, tid: u8, value: Option<String>) {
    call(core, now, callee, tid);
    let key = lookup_call(core, callee);
    core.registry_reply(now, RegistryReply::Found { call: key, value });
}

#[test]
fn a_home_that_never_answers_fails_the_call_with_500_within_the_dial_timeout() {
    let t0 = Instant::now();
    let mut core = server(t0);
    assert!(
        call(&mut core, t0, "bob", 2).is_none(),
        "parked on the lookup"
    );
    let key = lookup_call(&mut core, "bob");
    core.registry_reply(
        t0,
        RegistryReply::Found {
            call: key,
            value: Some(HOME.into()),
        },
    );
    assert_eq!(core.poll_dial(), Some(addr(HOME)));
    core.home_dialled(t0, addr(HOME), Some(9));
    // Connecting, never greeted: nothing yet, then 500 at the deadline.
    let before = t0 + HOME_DIAL_TIMEOUT - Duration::from_millis(1);
    core.handle_timeout(before);
    assert_eq!(answer_to_alice(&mut core), None);
    assert!(core.poll_timeout() <= t0 + HOME_DIAL_TIMEOUT);
    core.handle_timeout(t0 + HOME_DIAL_TIMEOUT);
    let commands: Vec<Command> = std::iter::from_fn(|| core.poll_command()).collect();
    assert!(
        commands.contains(&Command::Close { conn: 9 }),
        "{commands:?}"
    );
    let answer = commands.iter().find_map(|command| match command {
        Command::Send { route, bytes } if *route == udp(ALICE) => Some(bytes.clone()),
        _ => None,
    });
    let message_bytes = answer.expect("alice gets an answer");
    let message = Message::parse(&message_bytes).unwrap();
    let (code, reason) = message
        .get(AttrType::ERROR_CODE)
        .and_then(|a| decode_error_code(a.value).ok())
        .unwrap();
    assert_eq!((code, reason), (500, "Home server unreachable"));
    assert!(HOME_DIAL_TIMEOUT + LOOKUP_TIMEOUT <= Duration::from_secs(1));
    // The entry that sent the call to the dead home is deleted (while it still names it).
    assert_eq!(
        core.poll_registry_op(),
        Some(RegistryOp::Evict {
            home: addr(HOME),
            ids: vec!["bob".into()]
        })
    );
}

#[test]
fn a_refused_dial_fails_at_once_and_a_missing_entry_is_not_found() {
    let t0 = Instant::now();
    let mut core = server(t0);
    call_found(&mut core, t0, "bob", 2, Some(HOME.into()));
    assert_eq!(core.poll_dial(), Some(addr(HOME)));
    // Two calls for bob and one for carol wait on the same dial.
    call_found(&mut core, t0, "bob", 5, Some(HOME.into()));
    call_found(&mut core, t0, "carol", 6, Some(HOME.into()));
    assert_eq!(core.poll_dial(), None, "one dial per home");
    core.home_dialled(t0, addr(HOME), None);
    let answers: Vec<_> = std::iter::from_fn(|| answer_to_alice(&mut core)).collect();
    assert_eq!(answers, vec![(500, "Home server unreachable".into()); 3]);
    assert_eq!(
        core.poll_registry_op(),
        Some(RegistryOp::Evict {
            home: addr(HOME),
            ids: vec!["bob".into(), "carol".into()]
        })
    );
    call_found(&mut core, t0, "carol", 3, None);
    assert_eq!(
        answer_to_alice(&mut core),
        Some((404, "Unknown peer".into()))
    );
    // An entry naming this server for an ID not here is stale: not found either.
    call_found(&mut core, t0, "dave", 4, Some(LOCAL.into()));
    assert_eq!(
        answer_to_alice(&mut core),
        Some((404, "Unknown peer".into()))
    );
}

#[test]
fn an_unanswered_lookup_or_a_registry_that_is_down_answers_503() {
    let t0 = Instant::now();
    let mut core = server(t0);
    call(&mut core, t0, "bob", 2);
    lookup_call(&mut core, "bob");
    core.handle_timeout(t0 + LOOKUP_TIMEOUT);
    assert_eq!(
        answer_to_alice(&mut core),
        Some((503, "Registry unavailable".into()))
    );
    drain_events(&mut core);
    core.registry_reply(
        t0,
        RegistryReply::Lost {
            reason: "gone".into(),
        },
    );
    assert_eq!(
        drain_events(&mut core),
        [Event::RegistryDown {
            reason: "gone".into()
        }]
    );
    call(&mut core, t0, "bob", 3);
    assert_eq!(core.poll_registry_op(), None, "no lookup while down");
    assert_eq!(
        answer_to_alice(&mut core),
        Some((503, "Registry unavailable".into()))
    );
    // Back: alice is registered again, and the event says how many.
    drain_events(&mut core);
    core.registry_reply(t0, RegistryReply::Connected);
    assert_eq!(
        drain_events(&mut core),
        [Event::RegistryUp {
            home: addr(LOCAL),
            sessions: 1
        }]
    );
    assert_eq!(
        core.poll_registry_op(),
        Some(RegistryOp::Refresh {
            ids: vec!["alice".into()]
        })
    );
}

/// The far server's answer to our hello on `conn`.
fn hello_answer(hello: &[u8], name: &str) -> Vec<u8> {
    let message = Message::parse(hello).unwrap();
    let mut out = Vec::new();
    let ty = MessageType::new(natlens::PEER_HELLO, Class::Success);
    let mut builder = MessageBuilder::new(&mut out, ty, message.transaction_id());
    builder.attribute(natlens::SERVER_NAME, name.as_bytes());
    builder.finish().to_vec()
}

#[test]
fn calls_go_out_once_the_dialled_link_is_greeted_and_the_link_is_reused_then_idled_out() {
    let t0 = Instant::now();
    let mut core = server(t0);
    for (tid, callee) in [(2, "bob"), (3, "carol")] {
        call(&mut core, t0, callee, tid);
        let key = lookup_call(&mut core, callee);
        core.registry_reply(
            t0,
            RegistryReply::Found {
                call: key,
                value: Some(HOME.into()),
            },
        );
    }
    // Two calls for the same home: one dial.
    assert_eq!(core.poll_dial(), Some(addr(HOME)));
    assert_eq!(core.poll_dial(), None);
    core.home_dialled(t0, addr(HOME), Some(9));
    core.link_connected(t0, 9);
    let hello = match core.poll_command() {
        Some(Command::Send {
            route: Route::Tcp { conn: 9 },
            bytes,
        }) => bytes,
        other => panic!("expected the hello, got {other:?}"),
    };
    let answer = hello_answer(&hello, "s2");
    core.handle_tcp(t0, 9, addr(LOCAL), addr(HOME), &answer, &mut Vec::new());
    let forwarded: Vec<String> = std::iter::from_fn(|| core.poll_command())
        .filter_map(|command| match command {
            Command::Send {
                route: Route::Tcp { conn: 9 },
                bytes,
            } => {
                let message = Message::parse(&bytes).unwrap();
                assert_eq!(message.method(), natlens::CALL);
                natlens::read_name(&message, natlens::PEER_ID)
                    .and_then(Result::ok)
                    .map(str::to_owned)
            }
            _ => None,
        })
        .collect();
    assert_eq!(forwarded, ["bob", "carol"]);
    // A third call goes straight over the same link.
    let later = t0 + Duration::from_secs(1);
    call_found(&mut core, later, "dave", 4, Some(HOME.into()));
    assert_eq!(core.poll_dial(), None);
    assert!(
        std::iter::from_fn(|| core.poll_command()).any(|command| matches!(
            command,
            Command::Send {
                route: Route::Tcp { conn: 9 },
                ..
            }
        ))
    );
    // Idle long enough (the calls long timed out): closed.
    let idle = later + HOME_LINK_IDLE;
    core.handle_timeout(idle);
    assert!(std::iter::from_fn(|| core.poll_command())
        .any(|command| command == Command::Close { conn: 9 }));
}
