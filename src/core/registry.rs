//! The session registry: login ID → session (transport, route, observed public address,
//! last seen), and route → ID for messages that arrive without naming their sender's ID.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
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
    /// `--max-sessions-per-ip` reached for the login's source IP.
    PerIpLimit,
}

/// Caps a login must fit under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// All sessions (`--max-sessions`).
    pub sessions: usize,
    /// Sessions logged in from one source IP (`--max-sessions-per-ip`), so one host cannot
    /// take the whole server's budget.
    pub per_ip: usize,
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
    /// Sessions per source IP (the IP of the login's observed address).
    per_ip: HashMap<IpAddr, usize>,
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
        limits: Limits,
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
            None if self.by_id.len() >= limits.sessions => return Err(LoginError::Full),
            None => None,
        };
        let from_ip = self.per_ip.get(&observed.ip()).copied().unwrap_or(0);
        if from_ip >= limits.per_ip {
            // Put back what was removed to make room: a refused login changes nothing.
            if let Some(old) = replaced {
                self.insert(old);
            }
            return Err(LoginError::PerIpLimit);
        }
        let session = Session {
            id: id.to_owned(),
            route,
            observed,
            logged_in_at: now,
            last_seen: now,
        };
        self.insert(session);
        Ok(replaced.map_or(LoginOutcome::New, LoginOutcome::Replaced))
    }

    fn insert(&mut self, session: Session) {
        if matches!(session.route, Route::Udp { .. }) {
            self.udp_sessions += 1;
        }
        *self.per_ip.entry(session.observed.ip()).or_default() += 1;
        self.by_route.insert(session.route, session.id.clone());
        self.by_id.insert(session.id.clone(), session);
    }

    /// Frees `id` if it is held on another route than `route`, so that an authenticated login
    /// can take it over (the key proves it is the same user, e.g. restarted on a new port).
    pub fn take_over(&mut self, id: &str, route: Route) -> Option<Session> {
        if self.by_id.get(id)?.route == route {
            return None;
        }
        self.remove(id)
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
        let ip = session.observed.ip();
        if let Some(count) = self.per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&ip);
            }
        }
        Some(session)
    }

    /// Removes and returns UDP sessions silent for longer than `expiry`, in ID order. TCP
    /// sessions live as long as their connection: the kernel tells us when it dies.
    pub fn expire(&mut self, now: Instant, expiry: Duration) -> Vec<Session> {
        if self.udp_sessions == 0 {
            return Vec::new();
        }
        let mut stale: Vec<String> = self
            .by_id
            .values()
            .filter(|s| {
                matches!(s.route, Route::Udp { .. })
                    && now.saturating_duration_since(s.last_seen) > expiry
            })
            .map(|s| s.id.clone())
            .collect();
        // In ID order, not hash order: the caller logs one line per expired session.
        stale.sort_unstable();
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

    fn cap(sessions: usize) -> Limits {
        Limits {
            sessions,
            per_ip: usize::MAX,
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
            registry.login(now, "alice", udp(1), addr(), cap(10)),
            Ok(LoginOutcome::New)
        );
        assert_eq!(
            registry.login(now, "alice", Route::Tcp { conn: 7 }, addr(), cap(10)),
            Err(LoginError::Taken)
        );
        assert_eq!(
            registry.login(now, "alice", udp(1), addr(), cap(10)),
            Ok(LoginOutcome::Refreshed)
        );
        assert!(
            registry.logout("alice", udp(2)).is_none(),
            "only the holder may log out"
        );
        assert!(registry.logout("alice", udp(1)).is_some());
        assert_eq!(
            registry.login(now, "alice", Route::Tcp { conn: 7 }, addr(), cap(10)),
            Ok(LoginOutcome::New)
        );
        assert_eq!(registry.counts(), (0, 1));
    }

    /// The server logs one line per expired session: they come in ID order, not hash order.
    #[test]
    fn expired_sessions_come_in_id_order() {
        let start = Instant::now();
        let mut registry = Registry::default();
        let ids: Vec<String> = (0..32)
            .map(|i| format!("user{:02}", (i * 7) % 32))
            .collect();
        for (port, id) in ids.iter().enumerate() {
            registry
                .login(start, id, udp(port as u16 + 1), addr(), cap(100))
                .unwrap();
        }
        let expired: Vec<String> = registry
            .expire(start + Duration::from_secs(60), Duration::from_secs(45))
            .into_iter()
            .map(|session| session.id)
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(expired, sorted);
    }

    #[test]
    fn silent_udp_sessions_expire_and_tcp_ones_do_not() {
        let start = Instant::now();
        let mut registry = Registry::default();
        registry
            .login(start, "udp-quiet", udp(1), addr(), cap(10))
            .unwrap();
        registry
            .login(start, "udp-chatty", udp(2), addr(), cap(10))
            .unwrap();
        registry
            .login(start, "tcp", Route::Tcp { conn: 1 }, addr(), cap(10))
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
        registry.login(now, "a", udp(1), addr(), cap(2)).unwrap();
        let outcome = registry.login(now, "b", udp(1), addr(), cap(2)).unwrap();
        assert!(matches!(outcome, LoginOutcome::Replaced(old) if old.id == "a"));
        registry.login(now, "c", udp(2), addr(), cap(2)).unwrap();
        assert_eq!(
            registry.login(now, "d", udp(3), addr(), cap(2)),
            Err(LoginError::Full)
        );
        assert_eq!(
            registry.remove_route(udp(2)).map(|s| s.id),
            Some("c".to_owned())
        );
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn per_ip_cap_counts_sessions_from_one_address() {
        let now = Instant::now();
        let mut registry = Registry::default();
        let limits = Limits {
            sessions: 100,
            per_ip: 2,
        };
        let from = |port| SocketAddr::new("198.51.100.9".parse().unwrap(), port);
        registry.login(now, "a", udp(1), from(1), limits).unwrap();
        registry.login(now, "b", udp(2), from(2), limits).unwrap();
        assert_eq!(
            registry.login(now, "c", udp(3), from(3), limits),
            Err(LoginError::PerIpLimit)
        );
        // Another IP is not affected; freeing one session makes room again.
        let elsewhere: SocketAddr = "203.0.113.5:1".parse().unwrap();
        let route = Route::Udp {
            local: "192.0.2.1:3478".parse().unwrap(),
            remote: elsewhere,
        };
        registry.login(now, "d", route, elsewhere, limits).unwrap();
        registry.logout("a", udp(1)).unwrap();
        registry.login(now, "c", udp(3), from(3), limits).unwrap();
        // Re-login of the same ID on the same route is a refresh, not a new session.
        assert_eq!(
            registry.login(now, "c", udp(3), from(3), limits),
            Ok(LoginOutcome::Refreshed)
        );
        // A refused login changes nothing.
        assert_eq!(
            registry.login(now, "e", udp(9), from(9), limits),
            Err(LoginError::PerIpLimit)
        );
        assert_eq!(registry.on_route(&udp(2)).map(|s| s.id.as_str()), Some("b"));
    }

    #[test]
    fn take_over_frees_an_id_held_elsewhere_only() {
        let now = Instant::now();
        let mut registry = Registry::default();
        registry
            .login(now, "alice", udp(1), addr(), cap(10))
            .unwrap();
        assert!(registry.take_over("alice", udp(1)).is_none());
        let old = registry.take_over("alice", udp(2)).unwrap();
        assert_eq!(old.route, udp(1));
        assert_eq!(
            registry.login(now, "alice", udp(2), addr(), cap(10)),
            Ok(LoginOutcome::New)
        );
        assert!(registry.take_over("nobody", udp(2)).is_none());
    }
}
