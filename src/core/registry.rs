//! The session registry: login ID → session (transport, route, observed public address,
//! last seen), and route → ID for messages that arrive without naming their sender's ID.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::core::Transport;

/// A TCP connection as numbered by the IO shell.
pub type ConnId = u64;

/// Where a session's (or a peer link's) messages come from and go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// A UDP 5-tuple: our socket's address and the client's public address.
    Udp {
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// A TCP connection.
    Tcp { conn: ConnId },
}

impl Route {
    pub fn transport(&self) -> Transport {
        match self {
            Route::Udp { .. } => Transport::Udp,
            Route::Tcp { .. } => Transport::Tcp,
        }
    }
}

/// One logged-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub route: Route,
    /// The public address the server sees the user at: what it relays to callers.
    pub observed: SocketAddr,
    pub logged_in_at: Instant,
    pub last_seen: Instant,
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginError {
    /// The ID has a live session elsewhere.
    Taken,
    /// `--max-sessions` reached.
    Full,
}

/// What a successful login did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// A new session.
    New,
    /// The same ID on the same route again (a retransmitted or repeated login): refreshed.
    Refreshed,
    /// The route held another ID, which was logged out to make room (one session per route).
    Replaced(Session),
}

/// All sessions.
#[derive(Debug, Default)]
pub struct Registry {
    by_id: HashMap<String, Session>,
    by_route: HashMap<Route, String>,
    udp_sessions: usize,
}

impl Registry {
    /// Logs `id` in on `route`. A second live login for a taken ID is refused: the first holder
    /// keeps it until it logs out, its TCP connection closes or its UDP session expires.
    pub fn login(
        &mut self,
        now: Instant,
        id: &str,
        route: Route,
        observed: SocketAddr,
        max: usize,
    ) -> Result<LoginOutcome, LoginError> {
        if let Some(existing) = self.by_id.get_mut(id) {
            if existing.route != route {
                return Err(LoginError::Taken);
            }
            existing.last_seen = now;
            existing.observed = observed;
            return Ok(LoginOutcome::Refreshed);
        }
        let replaced = match self.by_route.get(&route).cloned() {
            Some(old_id) => self.remove(&old_id),
            None if self.by_id.len() >= max => return Err(LoginError::Full),
            None => None,
        };
        let session = Session {
            id: id.to_owned(),
            route,
            observed,
            logged_in_at: now,
            last_seen: now,
        };
        if matches!(route, Route::Udp { .. }) {
            self.udp_sessions += 1;
        }
        self.by_route.insert(route, id.to_owned());
        self.by_id.insert(id.to_owned(), session);
        Ok(replaced.map_or(LoginOutcome::New, LoginOutcome::Replaced))
    }

    /// Marks `id` alive if it is logged in on `route`.
    pub fn refresh(&mut self, now: Instant, id: &str, route: Route) -> Option<&Session> {
        let session = self
            .by_id
            .get_mut(id)
            .filter(|session| session.route == route)?;
        session.last_seen = now;
        Some(session)
    }

    /// The session logged in on `route`, refreshed.
    pub fn touch_route(&mut self, now: Instant, route: Route) -> Option<&Session> {
        let id = self.by_route.get(&route)?;
        let session = self.by_id.get_mut(id)?;
        session.last_seen = now;
        Some(session)
    }

    /// Logs `id` out if it is logged in on `route`.
    pub fn logout(&mut self, id: &str, route: Route) -> Option<Session> {
        if self.by_id.get(id)?.route != route {
            return None;
        }
        self.remove(id)
    }

    /// Frees the session on a route, e.g. when its TCP connection closes.
    pub fn remove_route(&mut self, route: Route) -> Option<Session> {
        let id = self.by_route.get(&route)?.clone();
        self.remove(&id)
    }

    fn remove(&mut self, id: &str) -> Option<Session> {
        let session = self.by_id.remove(id)?;
        self.by_route.remove(&session.route);
        if matches!(session.route, Route::Udp { .. }) {
            self.udp_sessions -= 1;
        }
        Some(session)
    }

    /// Removes and returns UDP sessions silent for longer than `expiry`. TCP sessions live as
    /// long as their connection: the kernel tells us when it dies.
    pub fn expire(&mut self, now: Instant, expiry: Duration) -> Vec<Session> {
        if self.udp_sessions == 0 {
            return Vec::new();
        }
        let stale: Vec<String> = self
            .by_id
            .values()
            .filter(|s| {
                matches!(s.route, Route::Udp { .. })
                    && now.saturating_duration_since(s.last_seen) > expiry
            })
            .map(|s| s.id.clone())
            .collect();
        stale.iter().filter_map(|id| self.remove(id)).collect()
    }

    pub fn get(&self, id: &str) -> Option<&Session> {
        self.by_id.get(id)
    }

    pub fn on_route(&self, route: &Route) -> Option<&Session> {
        self.by_route.get(route).and_then(|id| self.by_id.get(id))
    }

    /// Sessions by transport: (UDP, TCP).
    pub fn counts(&self) -> (usize, usize) {
        (self.udp_sessions, self.by_id.len() - self.udp_sessions)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(port: u16) -> Route {
        Route::Udp {
            local: "192.0.2.1:3478".parse().unwrap(),
            remote: SocketAddr::new("198.51.100.9".parse().unwrap(), port),
        }
    }

    fn addr() -> SocketAddr {
        "198.51.100.9:40000".parse().unwrap()
    }

    #[test]
    fn taken_id_is_refused_until_freed() {
        let now = Instant::now();
        let mut registry = Registry::default();
        assert_eq!(
            registry.login(now, "alice", udp(1), addr(), 10),
            Ok(LoginOutcome::New)
        );
        assert_eq!(
            registry.login(now, "alice", Route::Tcp { conn: 7 }, addr(), 10),
            Err(LoginError::Taken)
        );
        assert_eq!(
            registry.login(now, "alice", udp(1), addr(), 10),
            Ok(LoginOutcome::Refreshed)
        );
        assert!(
            registry.logout("alice", udp(2)).is_none(),
            "only the holder may log out"
        );
        assert!(registry.logout("alice", udp(1)).is_some());
        assert_eq!(
            registry.login(now, "alice", Route::Tcp { conn: 7 }, addr(), 10),
            Ok(LoginOutcome::New)
        );
        assert_eq!(registry.counts(), (0, 1));
    }

    #[test]
    fn silent_udp_sessions_expire_and_tcp_ones_do_not() {
        let start = Instant::now();
        let mut registry = Registry::default();
        registry
            .login(start, "udp-quiet", udp(1), addr(), 10)
            .unwrap();
        registry
            .login(start, "udp-chatty", udp(2), addr(), 10)
            .unwrap();
        registry
            .login(start, "tcp", Route::Tcp { conn: 1 }, addr(), 10)
            .unwrap();
        let expiry = Duration::from_secs(45);
        registry
            .refresh(start + Duration::from_secs(30), "udp-chatty", udp(2))
            .unwrap();
        assert!(registry
            .expire(start + Duration::from_secs(45), expiry)
            .is_empty());
        let gone = registry.expire(start + Duration::from_secs(46), expiry);
        assert_eq!(
            gone.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["udp-quiet"]
        );
        assert_eq!(registry.counts(), (1, 1));
        assert!(registry
            .expire(start + Duration::from_secs(3600), expiry)
            .iter()
            .all(|s| s.id == "udp-chatty"));
        assert_eq!(registry.counts(), (0, 1));
    }

    #[test]
    fn one_session_per_route_and_a_cap() {
        let now = Instant::now();
        let mut registry = Registry::default();
        registry.login(now, "a", udp(1), addr(), 2).unwrap();
        let outcome = registry.login(now, "b", udp(1), addr(), 2).unwrap();
        assert!(matches!(outcome, LoginOutcome::Replaced(old) if old.id == "a"));
        registry.login(now, "c", udp(2), addr(), 2).unwrap();
        assert_eq!(
            registry.login(now, "d", udp(3), addr(), 2),
            Err(LoginError::Full)
        );
        assert_eq!(
            registry.remove_route(udp(2)).map(|s| s.id),
            Some("c".to_owned())
        );
        assert_eq!(registry.len(), 1);
    }
}
