//! Forward on miss (`--registry`): a client's CALL for an ID not logged in here is looked up
//! in the shared registry and forwarded to the ID's home server over a link dialled on demand
//! (the same link protocol as `--link`: PEER-HELLO, then forwarded CALLs); the answer returns
//! the same way. Links dialled on demand are reused while calls keep coming and closed when
//! idle.
//!
//! Every way this can fail ends the call with an answer, never silence: a home server that
//! cannot be dialled and greeted within [`HOME_DIAL_TIMEOUT`] (a stale entry naming a dead
//! server) fails its calls with 500 "Home server unreachable" and has the entries that named it
//! deleted (only while they still name it), so the next call for them does not pay the dead
//! dial again; a registry that does not answer a lookup within [`LOOKUP_TIMEOUT`], or is down, falls back to the static links, and with
//! none fails the call with 503 "Registry unavailable".

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::core::events::{Command, Event};
use crate::core::registry::ConnId;
use crate::wire::natlens::error;

use super::call_request::CallRequest;
use super::home_registry::{interpret, Change, Home, HomeRegistry, RegistryOp, RegistryReply};
use super::ServerCore;

/// A lookup unanswered this long is treated as a registry that is not there.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_millis(500);
/// A home server must accept the link and answer its hello within this long; a stale entry
/// naming a dead server must fail the call within a second, lookup included.
pub const HOME_DIAL_TIMEOUT: Duration = Duration::from_millis(400);
/// A link dialled on demand that carried no call for this long is closed.
pub const HOME_LINK_IDLE: Duration = Duration::from_secs(30);

/// A link to a home server, dialled on demand.
#[derive(Debug)]
struct HomeLink {
    /// The connection, once the shell has one.
    conn: Option<ConnId>,
    /// The far server answered the hello: calls go straight out.
    up: bool,
    /// Calls waiting for the link to come up.
    queued: Vec<u64>,
    /// The link must be up by then.
    deadline: Instant,
    last_used: Instant,
}

/// The forward-on-miss state: the registry's decisions, calls waiting for a lookup or a link,
/// and the links dialled on demand.
#[derive(Debug)]
pub(super) struct HomeCalls {
    pub registry: HomeRegistry,
    /// Calls waiting for their lookup, with the deadline of the lookup.
    lookups: BTreeMap<u64, (CallRequest, Instant)>,
    /// Calls waiting for a link to their callee's home, by call number.
    parked: BTreeMap<u64, CallRequest>,
    links: BTreeMap<SocketAddr, HomeLink>,
    dials: Vec<SocketAddr>,
    /// Calls forwarded to a home, the same way as the registry's other consumers.
    pub forwarded: u64,
}

impl HomeCalls {
    pub fn new(registry: HomeRegistry) -> Self {
        HomeCalls {
            registry,
            lookups: BTreeMap::new(),
            parked: BTreeMap::new(),
            links: BTreeMap::new(),
            dials: Vec::new(),
            forwarded: 0,
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let lookups = self.lookups.values().map(|(_, deadline)| *deadline);
        let links = self.links.values().map(|link| {
            if link.up {
                link.last_used + HOME_LINK_IDLE
            } else {
                link.deadline
            }
        });
        lookups
            .chain(links)
            .chain(self.registry.poll_timeout())
            .min()
    }
}

impl ServerCore {
    /// Turns on the shared registry: this server's link listens at `home` (the address other
    /// servers dial), and each ID's entry is rewritten every `refresh`.
    pub fn enable_registry(&mut self, home: SocketAddr, refresh: Duration) {
        self.home = Some(HomeCalls::new(HomeRegistry::new(home, refresh)));
    }

    /// The registry's decisions, when `--registry` is on.
    pub fn home_registry(&self) -> Option<&HomeRegistry> {
        self.home.as_ref().map(|home| &home.registry)
    }

    /// The next registry operation for the shell to carry out.
    pub fn poll_registry_op(&mut self) -> Option<RegistryOp> {
        self.home.as_mut()?.registry.poll_op()
    }

    /// The next home server to dial; the shell answers with [`ServerCore::home_dialled`].
    pub fn poll_dial(&mut self) -> Option<SocketAddr> {
        let home = self.home.as_mut()?;
        (!home.dials.is_empty()).then(|| home.dials.remove(0))
    }

    /// The shell dialled `addr`: `Some(conn)` is connecting (its hello follows on connect),
    /// `None` failed at once.
    pub fn home_dialled(&mut self, now: Instant, addr: SocketAddr, conn: Option<ConnId>) {
        self.now = now;
        match conn {
            Some(conn) => {
                if let Some(link) = self.home.as_mut().and_then(|h| h.links.get_mut(&addr)) {
                    link.conn = Some(conn);
                }
            }
            None => self.home_link_failed(addr),
        }
    }

    /// The session events drive the registry: a login claims the ID, a logout or an expiry
    /// releases it. Called for every event as the shell drains them.
    pub(super) fn home_follow(&mut self, event: &Event) {
        let Some(home) = &mut self.home else { return };
        match event {
            Event::Login { id, .. } => home.registry.session_up(self.now, id),
            // A local takeover logs the old route out after the new one logged in.
            Event::Logout { id, .. } | Event::Expire { id, .. }
                if self.registry.get(id).is_none() =>
            {
                home.registry.session_down(id)
            }
            _ => {}
        }
    }

    /// What the shell saw of the registry.
    pub fn registry_reply(&mut self, now: Instant, reply: RegistryReply) {
        self.now = now;
        let Some(home) = &mut self.home else { return };
        match reply {
            RegistryReply::Connected => {
                let Change::Up { sessions } = home.registry.connected() else {
                    return;
                };
                let own = home.registry.own();
                self.events.push_back(Event::RegistryUp {
                    home: own,
                    sessions,
                });
            }
            RegistryReply::Lost { reason } => {
                if let Some(Change::Down { reason }) = home.registry.lost(reason) {
                    self.events.push_back(Event::RegistryDown { reason });
                }
                // Lookups in flight are lost with the connection.
                let calls: Vec<u64> = home.lookups.keys().copied().collect();
                for call in calls {
                    self.home_answer(now, call, Home::Unknown);
                }
            }
            RegistryReply::Found { call, value } => {
                let answer = interpret(value.as_deref(), home.registry.own());
                self.home_answer(now, call, answer);
            }
            RegistryReply::LookupFailed { call } => self.home_answer(now, call, Home::Unknown),
        }
    }

    /// A client's CALL for an ID not logged in here: look its home up. False when there is no
    /// registry (the caller floods the static links as before).
    pub(super) fn look_up_home(&mut self, now: Instant, key: u64, call: CallRequest) -> bool {
        let Some(home) = &mut self.home else {
            return false;
        };
        if home.registry.look_up(key, &call.callee).is_some() {
            home.lookups.insert(key, (call, now + LOOKUP_TIMEOUT));
        } else {
            // The registry is down: answer at once from the static links.
            home.lookups.insert(key, (call, now));
            self.home_answer(now, key, Home::Unknown);
        }
        true
    }

    /// A lookup's answer for pending call `key`.
    fn home_answer(&mut self, now: Instant, key: u64, answer: Home) {
        let Some(home) = &mut self.home else { return };
        let Some((call, _)) = home.lookups.remove(&key) else {
            return;
        };
        match answer {
            Home::Elsewhere(addr) => self.send_home(now, key, addr, call),
            Home::Nowhere | Home::Stale => self.home_fallback(now, key, &call, None),
            Home::Unknown => {
                let failure = (error::REGISTRY_UNAVAILABLE, "Registry unavailable");
                self.home_fallback(now, key, &call, Some(failure))
            }
        }
    }

    /// No home in the registry: today's behaviour, the static links (or "not found").
    fn home_fallback(
        &mut self,
        now: Instant,
        key: u64,
        call: &CallRequest,
        failure: Option<(u16, &'static str)>,
    ) {
        let sent = self.forward(now, key, call, None);
        let Some(pending) = self.calls.get_mut(&key) else {
            return;
        };
        // The lookup was the call's one leg so far; the forwards replace it.
        pending.waiting = pending.waiting + sent - 1;
        if sent == 0 {
            pending.waiting = 1;
            self.fail_call(
                key,
                failure.unwrap_or((error::UNKNOWN_PEER, "Unknown peer")),
            );
        }
    }

    /// Forwards call `key` to the home server at `addr`: now over a link that is up, or once
    /// the link dialled for it (or already being dialled) comes up.
    fn send_home(&mut self, now: Instant, key: u64, addr: SocketAddr, call: CallRequest) {
        let home = self.home.as_mut().expect("registry on");
        match home.links.get_mut(&addr) {
            Some(link) if link.up => {
                link.last_used = now;
                let conn = link.conn.expect("an up link has a connection");
                home.forwarded += 1;
                self.forward_over(now, key, &call, conn);
            }
            Some(link) => {
                link.queued.push(key);
                home.parked.insert(key, call);
            }
            None => {
                home.links.insert(
                    addr,
                    HomeLink {
                        conn: None,
                        up: false,
                        queued: vec![key],
                        deadline: now + HOME_DIAL_TIMEOUT,
                        last_used: now,
                    },
                );
                home.parked.insert(key, call);
                home.dials.push(addr);
            }
        }
    }

    /// A link came up: when it is one dialled on demand, its parked calls go out.
    pub(super) fn home_link_up(&mut self, conn: ConnId) {
        let now = self.now;
        let Some(home) = &mut self.home else { return };
        let Some(link) = home.links.values_mut().find(|link| link.conn == Some(conn)) else {
            return;
        };
        link.up = true;
        link.last_used = now;
        let queued = std::mem::take(&mut link.queued);
        let calls: Vec<(u64, CallRequest)> = queued
            .into_iter()
            .filter_map(|key| home.parked.remove(&key).map(|call| (key, call)))
            .collect();
        home.forwarded += calls.len() as u64;
        for (key, call) in calls {
            self.forward_over(now, key, &call, conn);
        }
    }

    /// A connection closed: a link dialled on demand is forgotten, and when it never came up
    /// its calls fail now.
    pub(super) fn home_link_closed(&mut self, conn: ConnId) {
        let Some(home) = &self.home else { return };
        let addr = home
            .links
            .iter()
            .find(|(_, link)| link.conn == Some(conn))
            .map(|(addr, _)| *addr);
        if let Some(addr) = addr {
            self.home_link_failed(addr);
        }
    }

    /// The link to `addr` is gone (or never came): its parked calls fail.
    fn home_link_failed(&mut self, addr: SocketAddr) {
        let Some(home) = &mut self.home else { return };
        let Some(link) = home.links.remove(&addr) else {
            return;
        };
        if let (Some(conn), false) = (link.conn, link.up) {
            self.commands.push_back(Command::Close { conn });
        }
        // The entries that sent these calls here name a home that is not there: evicted, so
        // the next call for them is "not found" at once instead of another dead dial.
        let callees: Vec<String> = link
            .queued
            .iter()
            .filter_map(|key| home.parked.remove(key))
            .map(|call| call.callee)
            .collect();
        home.registry.home_unreachable(addr, callees);
        for key in link.queued {
            self.home_unreachable(key);
        }
    }

    fn home_unreachable(&mut self, key: u64) {
        self.fail_call(key, (error::HOME_UNREACHABLE, "Home server unreachable"));
    }

    /// Ends pending call `key` with `failure` (its one remaining leg fails).
    fn fail_call(&mut self, key: u64, failure: (u16, &'static str)) {
        if let Some(pending) = self.calls.get_mut(&key) {
            pending.failure = failure;
            pending.waiting = 1;
        }
        self.leg_failed(key, failure);
    }

    /// Lookups out of time, dials out of time, idle links closed.
    pub(super) fn home_due(&mut self, now: Instant) {
        let Some(home) = &mut self.home else { return };
        home.registry.handle_timeout(now);
        let late: Vec<u64> = home
            .lookups
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(key, _)| *key)
            .collect();
        let mut failed = Vec::new();
        let mut idle = Vec::new();
        for (addr, link) in &home.links {
            if !link.up && link.deadline <= now {
                failed.push(*addr);
            } else if link.up && link.last_used + HOME_LINK_IDLE <= now {
                idle.push(*addr);
            }
        }
        for addr in idle {
            if let Some(conn) = home.links.remove(&addr).and_then(|link| link.conn) {
                self.commands.push_back(Command::Close { conn });
            }
        }
        for key in late {
            self.home_answer(now, key, Home::Unknown);
        }
        for addr in failed {
            self.home_link_failed(addr);
        }
    }
}

#[cfg(test)]
#[path = "home_calls_tests.rs"]
mod tests;
