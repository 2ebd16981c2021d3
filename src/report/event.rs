//! The progress events of `natlens listen`, `natlens call` and `natlens login`: one NDJSON
//! object per event with `--json` (on stderr for `listen`/`call`, whose stdout carries the
//! peer's data; on stdout for `login`), a human line otherwise.
//!
//! Keys and value formats are pinned by the golden tests below. Schema 2
//! ([`super::outcome::EVENTS_SCHEMA_VERSION`]) gave them one vocabulary with the other
//! outputs: `public_address` (was `observed`), durations in `_ms` (was `udp_expiry_secs`),
//! `public_address_changed` (was `observed_changed`).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::core::client::{ClientEvent, Lost};
use crate::core::fingerprint::{Behaviour, Pattern, TransportReport};
use crate::core::punch::plan::{PunchPlan, Strategy};
use crate::core::Transport;
use crate::wire::natlens::NatFacts;

use super::{call_id_text, millis};

/// One event of a client command's stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// `--server` named a host: `name` as given, `server` the address used (the first IPv4
    /// one this host has a route to, else the first IPv6 one), `addresses` every address the
    /// name resolved to, in the resolver's order. Comes first; not sent for an IP address.
    Resolved {
        name: String,
        server: SocketAddr,
        addresses: Vec<SocketAddr>,
    },
    /// The server accepted the LOGIN: who we are, where, and the address it sees us at.
    LoggedIn {
        id: String,
        server: SocketAddr,
        /// The transport the session runs over.
        transport: Transport,
        /// The address the server sees this end at.
        public_address: SocketAddr,
        /// How long a silent UDP session lives on the server, in milliseconds.
        udp_expiry_ms: Option<u64>,
    },
    /// The server refused the LOGIN (the command then fails with the worded reason).
    LoginRefused { code: u16, reason: String },
    /// The server stopped answering; `during` is `login`, `keepalive` or `connection`.
    ServerUnreachable { during: String },
    /// The TCP connection to the server closed; the session dials again.
    ConnectionLost,
    /// The server in use stopped answering (`during`: `login`, `keepalive` or `connection`) and
    /// the session moved to the next `--server`, `server`, where it logs in next.
    ServerChanged {
        from: SocketAddr,
        server: SocketAddr,
        during: String,
    },
    /// The server had forgotten the session (a restart), or the session moved to `server`
    /// (`server_changed`), and a new LOGIN was accepted there.
    Relogin {
        server: SocketAddr,
        public_address: SocketAddr,
        udp_expiry_ms: Option<u64>,
    },
    /// The address the server sees this end at changed.
    PublicAddressChanged { old: SocketAddr, new: SocketAddr },
    /// A call came and was answered with this end's facts.
    IncomingCall {
        caller: String,
        call_id: String,
        caller_facts: NatFacts,
    },
    /// The callee answered our call with its facts.
    CallAnswered {
        callee: String,
        call_id: String,
        callee_facts: NatFacts,
    },
    /// Our call failed (`code` null for a local timeout).
    CallFailed {
        callee: String,
        call_id: String,
        code: Option<u16>,
        reason: String,
    },
    /// The server confirmed the LOGOUT.
    LoggedOut,
    /// The callee is logged in and fingerprinted, waiting for a call over `transport`.
    Waiting { transport: Transport },
    /// This end's NAT as a fingerprint over `transport` saw it.
    Fingerprint {
        transport: Transport,
        public_address: Option<SocketAddr>,
        mapping: Option<Behaviour>,
        filtering: Option<Behaviour>,
        /// The port allocation pattern.
        pattern: Option<Pattern>,
        /// The sequential step, when there is one.
        delta: Option<i32>,
        foreign_flows_per_second: Option<f64>,
    },
    /// The caller places its call.
    Calling { callee: String, call_id: String },
    /// The punch's plan, as it starts.
    Plan {
        transport: Transport,
        strategy: Strategy,
        reason: String,
        expected_success: f64,
    },
    /// The first PUNCH message from the peer arrived, `at_ms` after the start.
    PeerHeard { at_ms: u64, from: SocketAddr },
    /// A path to `peer` works both ways.
    Connected { at_ms: u64, peer: SocketAddr },
    /// The punch gave up.
    PunchFailed { at_ms: u64, reason: String },
    /// A `--transport both` leg never got to punch (its fingerprint or its call failed).
    #[serde(rename = "punch_failed")]
    LegFailed {
        transport: Transport,
        reason: String,
    },
    /// The data exchange ended: `reason` null when both streams arrived whole.
    DataDone { at_ms: u64, reason: Option<String> },
    /// Advice about the host (the TCP punch's first one: capabilities, a firewall).
    Hint { message: String },
    /// The callee answered the TCP leg's call with facts of its UDP leg; calling again.
    StaleAnswer {
        transport: Transport,
        /// Named in the human line only.
        #[serde(skip)]
        callee: String,
    },
}

/// Who a session's events are about (the `logged_in` and `relogin` events name them).
#[derive(Debug, Clone, Copy)]
pub struct SessionOf<'a> {
    pub id: &'a str,
    /// The server the session is on when the event happens: after a `server_changed`, the one
    /// it moved to ([`SessionOf::follow`]).
    pub server: SocketAddr,
    pub transport: Transport,
}

impl SessionOf<'_> {
    /// Follows the session to the server it moved to, when `event` says it moved.
    pub fn follow(&mut self, event: &ClientEvent) {
        if let ClientEvent::ServerChanged { to, .. } = event {
            self.server = *to;
        }
    }
}

impl Event {
    /// A location-server session's event.
    pub fn session(of: SessionOf<'_>, event: &ClientEvent) -> Event {
        let ms = |e: &Option<Duration>| e.map(super::millis);
        match event {
            ClientEvent::LoggedIn {
                observed,
                udp_expiry,
            } => Event::LoggedIn {
                id: of.id.to_owned(),
                server: of.server,
                transport: of.transport,
                public_address: *observed,
                udp_expiry_ms: ms(udp_expiry),
            },
            ClientEvent::LoginRefused { code, reason } => Event::LoginRefused {
                code: *code,
                reason: reason.clone(),
            },
            ClientEvent::ServerUnreachable { lost } => Event::ServerUnreachable {
                during: lost_text(*lost).into(),
            },
            ClientEvent::ConnectionLost => Event::ConnectionLost,
            ClientEvent::ServerChanged { from, to, lost } => Event::ServerChanged {
                from: *from,
                server: *to,
                during: lost_text(*lost).into(),
            },
            ClientEvent::Relogin {
                observed,
                udp_expiry,
            } => Event::Relogin {
                server: of.server,
                public_address: *observed,
                udp_expiry_ms: ms(udp_expiry),
            },
            ClientEvent::ObservedChanged { old, new } => Event::PublicAddressChanged {
                old: *old,
                new: *new,
            },
            ClientEvent::LoggedOut => Event::LoggedOut,
            _ => Event::call(event),
        }
    }

    /// The call events of a session.
    fn call(event: &ClientEvent) -> Event {
        match event {
            ClientEvent::IncomingCall {
                caller,
                call_id,
                facts,
            } => Event::IncomingCall {
                caller: caller.clone(),
                call_id: call_id_text(*call_id),
                caller_facts: facts.clone(),
            },
            ClientEvent::CallAnswered {
                callee,
                call_id,
                facts,
            } => Event::CallAnswered {
                callee: callee.clone(),
                call_id: call_id_text(*call_id),
                callee_facts: facts.clone(),
            },
            ClientEvent::CallFailed {
                callee,
                call_id,
                code,
                reason,
            } => Event::CallFailed {
                callee: callee.clone(),
                call_id: call_id_text(*call_id),
                code: *code,
                reason: reason.clone(),
            },
            other => unreachable!("not a call event: {other:?}"),
        }
    }

    /// The `fingerprint` event of one fingerprint's report.
    pub fn fingerprint(transport: Transport, report: &TransportReport) -> Event {
        Event::Fingerprint {
            transport,
            public_address: report.public_address,
            mapping: report.mapping,
            filtering: report.filtering,
            pattern: report.allocation.pattern,
            delta: report.allocation.delta,
            foreign_flows_per_second: report.allocation.foreign_flows_per_second,
        }
    }

    /// The `plan` event of a punch about to start.
    pub fn plan(plan: &PunchPlan) -> Event {
        Event::Plan {
            transport: plan.transport,
            strategy: plan.strategy,
            reason: plan.reason.clone(),
            expected_success: plan.expected_success,
        }
    }

    /// The `data_done` event, `at` after the punch's start.
    pub fn data_done(at: Duration, failure: Option<String>) -> Event {
        Event::DataDone {
            at_ms: millis(at),
            reason: failure,
        }
    }

    /// The event as one JSON line. Through a `serde_json::Value`, whose keys are sorted: the
    /// order the first releases printed.
    pub fn json(&self) -> String {
        serde_json::to_value(self)
            .expect("an event serialises")
            .to_string()
    }
}

/// `login`, `keepalive` or `connection`.
fn lost_text(lost: Lost) -> &'static str {
    match lost {
        Lost::Login => "login",
        Lost::Keepalive => "keepalive",
        Lost::Connection => "connection",
    }
}

#[cfg(test)]
#[path = "event_golden.rs"]
mod golden;
