//! Call relay, intake side: a CALL from a logged-in client or over a federation link becomes a
//! pending call with one leg per place the callee may be (a local session, or every link not
//! already on the call's path). What comes back on those legs is handled in `legs`.

use std::net::SocketAddr;
use std::time::Instant;

use crate::core::events::{call_id_text, Event};
use crate::core::registry::{ConnId, Route};
use crate::core::stats::Drop;
use crate::core::transaction::Retry;
use crate::wire::natlens::{self, error};
use crate::wire::{Message, TransactionId};

use super::call_request::{parse_call_fields, parse_forwarded_call, CallRequest};
use super::legs::write_call_error;
use super::request::Request;
use super::{ServerCore, DELIVER_TIMEOUT, FORWARD_TIMEOUT};

/// Where a call came from, and so where its answer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Origin {
    Client(Route),
    Link(ConnId),
}

impl Origin {
    pub fn route(self) -> Route {
        match self {
            Origin::Client(route) => route,
            Origin::Link(conn) => Route::Tcp { conn },
        }
    }
}

/// A call waiting for its callee or its links.
#[derive(Debug)]
pub(super) struct PendingCall {
    pub origin: Origin,
    pub origin_tid: TransactionId,
    pub call_id: u64,
    pub caller: String,
    pub callee: String,
    /// Legs (callee delivery or link forwards) still unanswered.
    pub waiting: usize,
    /// The most telling failure so far: a timeout beats "not found", since it means the callee
    /// exists somewhere.
    pub failure: (u16, &'static str),
    /// The callee's public address, when delivered to a local session.
    pub callee_observed: Option<SocketAddr>,
    /// The caller's HMAC key when its CALL was authenticated here: the answer carrying the
    /// callee's facts is signed with it (RFC 8489 §9.2.4), so that no one on the path can
    /// hand the caller other facts and aim its punch at a third party.
    pub caller_key: Option<[u8; 16]>,
}

/// An outgoing request of the server's own.
#[derive(Debug, Clone, Copy)]
pub(super) enum Leg {
    Deliver { call: u64, route: Route },
    Forward { call: u64, conn: ConnId },
    Hello { conn: ConnId },
}

impl Leg {
    pub fn route(self) -> Route {
        match self {
            Leg::Deliver { route, .. } => route,
            Leg::Forward { conn, .. } | Leg::Hello { conn } => Route::Tcp { conn },
        }
    }
}

/// The state of a call request seen from one origin, for retransmission handling.
#[derive(Debug)]
pub(super) enum Seen {
    Pending,
    Answered { bytes: Vec<u8>, at: Instant },
}

impl ServerCore {
    /// The server was asked to relay a call: from a logged-in client, or over a link.
    pub(super) fn call(&mut self, req: &mut Request<'_>) -> bool {
        let link = match req.route {
            Route::Tcp { conn } => self.links.get(&conn).cloned().map(|name| (conn, name)),
            Route::Udp { .. } => None,
        };
        let origin = match &link {
            Some((conn, _)) => Origin::Link(*conn),
            None => Origin::Client(req.route),
        };
        // A call is authenticated at the caller's own server, as the session's ID; calls
        // forwarded over a federation link are vouched for by the linked server (an operator
        // link).
        let caller_key = match link {
            Some(_) => None,
            None => match self.authenticate_caller(req) {
                Ok(key) => key,
                Err(answered) => return answered,
            },
        };
        if let Some(answered) = self.repeated_call(req, origin) {
            return answered;
        }
        if self.calls.len() >= self.config.max_pending_calls {
            self.dropped(Drop::PendingCallsLimit, req.transport(), Some(req.remote));
            return self.refuse(req, error::SERVER_FULL, "Too many calls in progress");
        }
        let parsed = match &link {
            Some(_) => parse_forwarded_call(req.message),
            None => self.parse_client_call(req.now, req.route, req.message),
        };
        let call = match parsed {
            Ok(call) => call,
            Err((code, reason)) => return self.refuse(req, code, reason),
        };
        let from = link.map_or_else(|| "local".to_owned(), |(_, name)| name);
        self.call_arrived(&call, from);
        if call.via.contains(&self.config.name) || call.via.len() >= natlens::MAX_VIA {
            return self.refuse(req, error::UNKNOWN_PEER, "Unknown peer (forwarding loop)");
        }
        self.route_call(req, origin, call, caller_key)
    }

    /// With credentials, a client's CALL must come from a session and be signed as its ID.
    fn authenticate_caller(&mut self, req: &mut Request<'_>) -> Result<Option<[u8; 16]>, bool> {
        if self.auth.is_none() {
            return Ok(None);
        }
        let Some(caller) = self.registry.on_route(&req.route).map(|s| s.id.clone()) else {
            return Err(self.refuse(req, error::NOT_LOGGED_IN, "Log in before calling"));
        };
        self.authenticate(req, &caller)
    }

    /// A CALL seen before from the same origin: dropped while its first copy is pending,
    /// answered again once answered. `None` for a new call.
    fn repeated_call(&mut self, req: &mut Request<'_>, origin: Origin) -> Option<bool> {
        match self.seen.get(&(origin, req.message.transaction_id()))? {
            Seen::Pending => Some(self.dropped(Drop::Duplicate, req.transport(), None)),
            Seen::Answered { bytes, .. } => {
                req.repeat(bytes);
                Some(true)
            }
        }
    }

    fn parse_client_call(
        &mut self,
        now: Instant,
        route: Route,
        message: &Message<'_>,
    ) -> Result<CallRequest, (u16, &'static str)> {
        let Some(session) = self.registry.touch_route(now, route) else {
            return Err((error::NOT_LOGGED_IN, "Log in before calling"));
        };
        let (caller, observed) = (session.id.clone(), session.observed);
        let mut call = parse_call_fields(message, caller)?;
        // The caller's public address is what this server saw, never what the caller claims.
        call.facts.observed = Some(observed);
        Ok(call)
    }

    fn call_arrived(&mut self, call: &CallRequest, from: String) {
        self.counters.calls += 1;
        self.events.push_back(Event::Call {
            call_id: call_id_text(call.call_id),
            caller: call.caller.clone(),
            callee: call.callee.clone(),
            from,
        });
    }

    /// Delivers a call to a local callee, forwards it over links, or answers "not found".
    fn route_call(
        &mut self,
        req: &mut Request<'_>,
        origin: Origin,
        call: CallRequest,
        caller_key: Option<[u8; 16]>,
    ) -> bool {
        let key = self.next_call;
        self.next_call += 1;
        let mut pending = PendingCall {
            origin,
            origin_tid: req.message.transaction_id(),
            call_id: call.call_id,
            caller: call.caller.clone(),
            callee: call.callee.clone(),
            waiting: 0,
            failure: (error::UNKNOWN_PEER, "Unknown peer"),
            callee_observed: None,
            caller_key,
        };
        if let Some(callee) = self.registry.get(&call.callee) {
            let (route, observed) = (callee.route, callee.observed);
            pending.callee_observed = Some(observed);
            self.deliver(req.now, key, route, &call);
            pending.waiting = 1;
        } else if matches!(origin, Origin::Client(_)) && self.home.is_some() {
            // Forward on miss: the registry says where the callee lives; the lookup is the
            // call's one leg until its answer.
            pending.waiting = 1;
            self.seen
                .insert((origin, pending.origin_tid), Seen::Pending);
            self.calls.insert(key, pending);
            self.look_up_home(req.now, key, call);
            return false;
        } else {
            let from_conn = match origin {
                Origin::Link(conn) => Some(conn),
                Origin::Client(_) => None,
            };
            pending.waiting = self.forward(req.now, key, &call, from_conn);
        }
        if pending.waiting == 0 {
            self.relayed(&pending, "not-found", Some(error::UNKNOWN_PEER));
            self.counters.errors += 1;
            let (code, reason) = pending.failure;
            write_call_error(pending.origin_tid, code, reason, req.reply);
            return true;
        }
        self.seen
            .insert((origin, pending.origin_tid), Seen::Pending);
        self.calls.insert(key, pending);
        false
    }

    /// Sends pending call `key` to the local callee's session on `route`.
    fn deliver(&mut self, now: Instant, key: u64, route: Route, call: &CallRequest) {
        let bytes = self.call_request(|builder| {
            builder.attribute(natlens::PEER_ID, call.caller.as_bytes());
            builder.attribute(natlens::CALL_ID, &call.call_id.to_be_bytes());
            call.facts.encode(builder);
        });
        let retry = match route {
            Route::Udp { .. } => Retry::datagram_within(DELIVER_TIMEOUT),
            Route::Tcp { .. } => Retry::Stream {
                timeout: DELIVER_TIMEOUT,
            },
        };
        self.send_leg(now, bytes, retry, Leg::Deliver { call: key, route });
    }

    /// Forwards pending call `key` over every link it may go to, with this server added to
    /// its path; returns how many legs went out.
    pub(super) fn forward(
        &mut self,
        now: Instant,
        key: u64,
        call: &CallRequest,
        from_conn: Option<ConnId>,
    ) -> usize {
        let targets = self.forward_targets(&call.via, from_conn);
        for &conn in &targets {
            self.forward_over(now, key, call, conn);
        }
        targets.len()
    }

    /// Forwards pending call `key` over the link on `conn`, with this server added to its path.
    pub(super) fn forward_over(
        &mut self,
        now: Instant,
        key: u64,
        call: &CallRequest,
        conn: ConnId,
    ) {
        let own = self.config.name.clone();
        let bytes = self.call_request(|builder| {
            builder.attribute(natlens::ID, call.caller.as_bytes());
            builder.attribute(natlens::PEER_ID, call.callee.as_bytes());
            builder.attribute(natlens::CALL_ID, &call.call_id.to_be_bytes());
            for name in call.via.iter().map(String::as_str).chain([own.as_str()]) {
                builder.attribute(natlens::VIA, name.as_bytes());
            }
            call.facts.encode(builder);
        });
        let retry = Retry::Stream {
            timeout: FORWARD_TIMEOUT,
        };
        self.send_leg(now, bytes, retry, Leg::Forward { call: key, conn });
    }
}
