//! Golden JSON of every event: the exact lines the commands printed before the events were
//! typed (their `json!` literals, whose keys a `serde_json::Value` sorts).

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::core::fingerprint::{self, PredictOptions};
use crate::wire::natlens::Transports;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn of() -> SessionOf<'static> {
    SessionOf {
        id: "alice",
        server: addr("192.0.2.1:3478"),
        transport: Transport::Udp,
    }
}

fn facts() -> NatFacts {
    NatFacts {
        observed: Some(addr("198.51.100.7:40001")),
        transports: Transports {
            udp: true,
            tcp: false,
        },
        ..NatFacts::default()
    }
}

const FACTS: &str = r#"{"delta":null,"predicted_ports":[],"public_address":"198.51.100.7:40001","transports":{"tcp":false,"udp":true}}"#;

fn session(event: ClientEvent) -> String {
    Event::session(of(), &event).json()
}

#[test]
fn session_events() {
    let observed = addr("198.51.100.7:40001");
    assert_eq!(
        session(ClientEvent::LoggedIn {
            observed,
            udp_expiry: Some(Duration::from_secs(45)),
        }),
        r#"{"event":"logged_in","id":"alice","public_address":"198.51.100.7:40001","server":"192.0.2.1:3478","transport":"udp","udp_expiry_ms":45000}"#
    );
    assert_eq!(
        session(ClientEvent::LoginRefused {
            code: 409,
            reason: "taken".into()
        }),
        r#"{"code":409,"event":"login_refused","reason":"taken"}"#
    );
    for (lost, during) in [
        (Lost::Login, "login"),
        (Lost::Keepalive, "keepalive"),
        (Lost::Connection, "connection"),
    ] {
        assert_eq!(
            session(ClientEvent::ServerUnreachable { lost }),
            format!(r#"{{"during":"{during}","event":"server_unreachable"}}"#)
        );
    }
    assert_eq!(
        session(ClientEvent::ConnectionLost),
        r#"{"event":"connection_lost"}"#
    );
    assert_eq!(
        session(ClientEvent::Relogin {
            observed,
            udp_expiry: None
        }),
        r#"{"event":"relogin","public_address":"198.51.100.7:40001","server":"192.0.2.1:3478","udp_expiry_ms":null}"#
    );
    assert_eq!(
        session(ClientEvent::ServerChanged {
            from: addr("192.0.2.1:3478"),
            to: addr("192.0.2.2:3478"),
            lost: Lost::Keepalive,
        }),
        r#"{"during":"keepalive","event":"server_changed","from":"192.0.2.1:3478","server":"192.0.2.2:3478"}"#
    );
    assert_eq!(
        session(ClientEvent::ObservedChanged {
            old: observed,
            new: addr("198.51.100.7:40002")
        }),
        r#"{"event":"public_address_changed","new":"198.51.100.7:40002","old":"198.51.100.7:40001"}"#
    );
    assert_eq!(session(ClientEvent::LoggedOut), r#"{"event":"logged_out"}"#);
}

#[test]
fn resolved_event() {
    let resolved = Event::Resolved {
        name: "stun.lab.example".into(),
        server: addr("192.0.2.1:3478"),
        addresses: vec![addr("[2001:db8::1]:3478"), addr("192.0.2.1:3478")],
    };
    assert_eq!(
        resolved.json(),
        r#"{"addresses":["[2001:db8::1]:3478","192.0.2.1:3478"],"event":"resolved","name":"stun.lab.example","server":"192.0.2.1:3478"}"#
    );
}

#[test]
fn call_events() {
    assert_eq!(
        session(ClientEvent::IncomingCall {
            caller: "bob".into(),
            call_id: 0xAB,
            facts: facts(),
        }),
        format!(
            r#"{{"call_id":"00000000000000ab","caller":"bob","caller_facts":{FACTS},"event":"incoming_call"}}"#
        )
    );
    assert_eq!(
        session(ClientEvent::CallAnswered {
            callee: "bob".into(),
            call_id: 0xAB,
            facts: facts(),
        }),
        format!(
            r#"{{"call_id":"00000000000000ab","callee":"bob","callee_facts":{FACTS},"event":"call_answered"}}"#
        )
    );
    assert_eq!(
        session(ClientEvent::CallFailed {
            callee: "bob".into(),
            call_id: 1,
            code: Some(404),
            reason: "unknown".into(),
        }),
        r#"{"call_id":"0000000000000001","callee":"bob","code":404,"event":"call_failed","reason":"unknown"}"#
    );
    assert_eq!(
        session(ClientEvent::CallFailed {
            callee: "bob".into(),
            call_id: 1,
            code: None,
            reason: "timeout".into(),
        }),
        r#"{"call_id":"0000000000000001","callee":"bob","code":null,"event":"call_failed","reason":"timeout"}"#
    );
    let calling = Event::Calling {
        callee: "bob".into(),
        call_id: call_id_text(0x1234),
    };
    assert_eq!(
        calling.json(),
        r#"{"call_id":"0000000000001234","callee":"bob","event":"calling"}"#
    );
}

#[test]
fn rendezvous_events() {
    let waiting = Event::Waiting {
        transport: Transport::Tcp,
    };
    assert_eq!(waiting.json(), r#"{"event":"waiting","transport":"tcp"}"#);
    let report = fingerprint::analyse(&[], &PredictOptions::default());
    assert_eq!(
        Event::fingerprint(Transport::Udp, &report).json(),
        r#"{"delta":null,"event":"fingerprint","filtering":null,"foreign_flows_per_second":null,"mapping":null,"pattern":null,"public_address":null,"transport":"udp"}"#
    );
    let measured = Event::Fingerprint {
        transport: Transport::Udp,
        public_address: Some(addr("203.0.113.1:40000")),
        mapping: Some(Behaviour::EndpointIndependent),
        filtering: Some(Behaviour::AddressAndPortDependent),
        pattern: Some(Pattern::Sequential),
        delta: Some(1),
        foreign_flows_per_second: Some(0.5),
    };
    assert_eq!(
        measured.json(),
        r#"{"delta":1,"event":"fingerprint","filtering":"address-and-port-dependent","foreign_flows_per_second":0.5,"mapping":"endpoint-independent","pattern":"sequential","public_address":"203.0.113.1:40000","transport":"udp"}"#
    );
    let plan = Event::Plan {
        transport: Transport::Udp,
        strategy: Strategy::Fanout,
        reason: "why".into(),
        expected_success: 0.99,
    };
    assert_eq!(
        plan.json(),
        r#"{"event":"plan","expected_success":0.99,"reason":"why","strategy":"fanout","transport":"udp"}"#
    );
    let stale = Event::StaleAnswer {
        transport: Transport::Tcp,
        callee: "bob".into(),
    };
    assert_eq!(
        stale.json(),
        r#"{"event":"stale_answer","transport":"tcp"}"#
    );
}

#[test]
fn punch_events() {
    let peer = addr("203.0.113.9:51000");
    let heard = Event::PeerHeard {
        at_ms: 12,
        from: peer,
    };
    assert_eq!(
        heard.json(),
        r#"{"at_ms":12,"event":"peer_heard","from":"203.0.113.9:51000"}"#
    );
    let connected = Event::Connected { at_ms: 13, peer };
    assert_eq!(
        connected.json(),
        r#"{"at_ms":13,"event":"connected","peer":"203.0.113.9:51000"}"#
    );
    let failed = Event::PunchFailed {
        at_ms: 14,
        reason: "timeout".into(),
    };
    assert_eq!(
        failed.json(),
        r#"{"at_ms":14,"event":"punch_failed","reason":"timeout"}"#
    );
    let leg = Event::LegFailed {
        transport: Transport::Tcp,
        reason: "no call".into(),
    };
    assert_eq!(
        leg.json(),
        r#"{"event":"punch_failed","reason":"no call","transport":"tcp"}"#
    );
    assert_eq!(
        Event::data_done(Duration::from_millis(15), None).json(),
        r#"{"at_ms":15,"event":"data_done","reason":null}"#
    );
    assert_eq!(
        Event::data_done(Duration::from_millis(16), Some("cut".into())).json(),
        r#"{"at_ms":16,"event":"data_done","reason":"cut"}"#
    );
    let hint = Event::Hint {
        message: "run as root".into(),
    };
    assert_eq!(hint.json(), r#"{"event":"hint","message":"run as root"}"#);
}

/// One event of every kind. A new variant stops [`sampled`] compiling until it is listed
/// there, and the count in the test below then asks for its sample here.
fn one_of_each() -> Vec<Event> {
    let mut events = session_samples();
    events.extend(rendezvous_samples());
    events.iter().for_each(sampled);
    events
}

fn session_samples() -> Vec<Event> {
    let peer = addr("203.0.113.9:51000");
    [
        ClientEvent::LoggedIn {
            observed: peer,
            udp_expiry: None,
        },
        ClientEvent::LoginRefused {
            code: 409,
            reason: String::new(),
        },
        ClientEvent::ServerUnreachable { lost: Lost::Login },
        ClientEvent::ConnectionLost,
        ClientEvent::ServerChanged {
            from: peer,
            to: peer,
            lost: Lost::Keepalive,
        },
        ClientEvent::Relogin {
            observed: peer,
            udp_expiry: None,
        },
        ClientEvent::ObservedChanged {
            old: peer,
            new: peer,
        },
        ClientEvent::IncomingCall {
            caller: String::new(),
            call_id: 1,
            facts: facts(),
        },
        ClientEvent::CallAnswered {
            callee: String::new(),
            call_id: 1,
            facts: facts(),
        },
        ClientEvent::CallFailed {
            callee: String::new(),
            call_id: 1,
            code: None,
            reason: String::new(),
        },
        ClientEvent::LoggedOut,
    ]
    .iter()
    .map(|event| Event::session(of(), event))
    .collect()
}

fn rendezvous_samples() -> Vec<Event> {
    let peer = addr("203.0.113.9:51000");
    let report = fingerprint::analyse(&[], &PredictOptions::default());
    vec![
        Event::Resolved {
            name: String::new(),
            server: peer,
            addresses: vec![peer],
        },
        Event::Waiting {
            transport: Transport::Udp,
        },
        Event::fingerprint(Transport::Udp, &report),
        Event::Calling {
            callee: String::new(),
            call_id: String::new(),
        },
        Event::Plan {
            transport: Transport::Udp,
            strategy: Strategy::Direct,
            reason: String::new(),
            expected_success: 1.0,
        },
        Event::PeerHeard {
            at_ms: 0,
            from: peer,
        },
        Event::Connected { at_ms: 0, peer },
        Event::PunchFailed {
            at_ms: 0,
            reason: String::new(),
        },
        Event::LegFailed {
            transport: Transport::Tcp,
            reason: String::new(),
        },
        Event::data_done(Duration::ZERO, None),
        Event::Hint {
            message: String::new(),
        },
        Event::StaleAnswer {
            transport: Transport::Tcp,
            callee: String::new(),
        },
    ]
}

/// Lists every variant, with no wildcard.
fn sampled(event: &Event) {
    match event {
        Event::Resolved { .. }
        | Event::LoggedIn { .. }
        | Event::LoginRefused { .. }
        | Event::ServerUnreachable { .. }
        | Event::ConnectionLost
        | Event::ServerChanged { .. }
        | Event::Relogin { .. }
        | Event::PublicAddressChanged { .. }
        | Event::IncomingCall { .. }
        | Event::CallAnswered { .. }
        | Event::CallFailed { .. }
        | Event::LoggedOut
        | Event::Waiting { .. }
        | Event::Fingerprint { .. }
        | Event::Calling { .. }
        | Event::Plan { .. }
        | Event::PeerHeard { .. }
        | Event::Connected { .. }
        | Event::PunchFailed { .. }
        | Event::LegFailed { .. }
        | Event::DataDone { .. }
        | Event::Hint { .. }
        | Event::StaleAnswer { .. } => {}
    }
}

/// The OUTPUT section of `natlens listen --help` (and its man page) names every event.
#[test]
fn every_event_is_documented_in_the_output_section() {
    use clap::CommandFactory;
    let cli = crate::cli::Cli::command();
    for command in ["listen", "call"] {
        let help = cli
            .find_subcommand(command)
            .and_then(|c| c.get_after_long_help())
            .expect("an OUTPUT section")
            .to_string();
        let events = one_of_each();
        assert_eq!(events.len(), 23);
        for event in events {
            let value: serde_json::Value = serde_json::from_str(&event.json()).unwrap();
            let name = value["event"].as_str().unwrap();
            assert!(help.contains(name), "{command}: {name} undocumented");
            for key in value.as_object().unwrap().keys() {
                assert!(
                    help.contains(key.as_str()),
                    "{command}: {name}.{key} undocumented"
                );
            }
        }
    }
}

/// The OUTPUT section of `natlens login --help` names every event a login session emits.
#[test]
fn login_events_are_documented_in_its_output_section() {
    use clap::CommandFactory;
    let cli = crate::cli::Cli::command();
    let help = cli
        .find_subcommand("login")
        .and_then(|c| c.get_after_long_help())
        .expect("an OUTPUT section")
        .to_string();
    let session_events = one_of_each().into_iter().filter(|event| {
        matches!(
            event,
            Event::Resolved { .. }
                | Event::LoggedIn { .. }
                | Event::LoginRefused { .. }
                | Event::ServerUnreachable { .. }
                | Event::ConnectionLost
                | Event::ServerChanged { .. }
                | Event::Relogin { .. }
                | Event::PublicAddressChanged { .. }
                | Event::IncomingCall { .. }
                | Event::LoggedOut
        )
    });
    let mut seen = 0;
    for event in session_events {
        let value: serde_json::Value = serde_json::from_str(&event.json()).unwrap();
        for key in value.as_object().unwrap().keys() {
            let name = if key == "event" {
                value["event"].as_str().unwrap()
            } else {
                key
            };
            assert!(help.contains(name), "login: {name} undocumented");
        }
        seen += 1;
    }
    assert_eq!(seen, 10);
}
