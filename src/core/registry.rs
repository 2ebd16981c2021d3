//! The session registry: login ID → session (transport, route, observed public address,
//! last seen), and route → session for messages that arrive without naming their sender's ID.
//!
//! Built for a million UDP sessions on one server: sessions are stored compactly (`stored`),
//! and silent ones expire through a timing wheel (`wheel`) rather than a sweep over all.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hashbrown::HashTable;

use crate::core::Transport;

mod stored;
mod wheel;

use stored::{Clock, Locals, Place, Stored, StoredId};
use wheel::ExpiryWheel;

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

/// Sessions handed out by one [`Registry::expire`] call at most: a mass expiry is spread over
/// calls so that the server answers requests between them.
pub const EXPIRE_BATCH: usize = 256;

/// The hasher of every registry table. IDs and routes are chosen by clients, so the hash is
/// keyed (foldhash seeds each instance at random, per process): colliding keys cannot be
/// computed offline. foldhash rather than the standard SipHash: SipHash was 4.4% of the
/// server's CPU during a million logins (it hashed each ID, route and IP twice), foldhash
/// hashes the same keys in a few nanoseconds.
type KeyedHasher = foldhash::quality::RandomState;

/// An index entry: a slab slot and 32 bits of its key's hash. Keeping the hash saves the
/// table's growth from hashing every key again, which meant a cache miss into the slab per
/// session (the growth of the two tables was 8% of the server's CPU over a million logins;
/// with the hash kept it is a copy), and a lookup compares the hash before it reads the slab.
/// It costs 4 bytes per entry and table.
#[derive(Debug, Clone, Copy)]
struct Indexed {
    slot: u32,
    tag: u32,
}

impl Indexed {
    /// The table hash of an entry with this tag: spread over 64 bits, since the table takes
    /// its bucket from the low bits and its control byte from the top seven.
    fn hash(tag: u32) -> u64 {
        u64::from(tag).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// All sessions: one slab of compact [`Stored`] sessions, indexed twice (by ID and by route)
/// by hash tables of slab indices, so that no key is stored twice and no session allocates
/// (unless its ID is long or its route not UDP over IPv4). About 110 bytes per UDP session
/// at a million (`benches/results/million.md`).
#[derive(Default)]
pub struct Registry {
    slots: Vec<Option<Stored>>,
    /// Empty slots, reused before the slab grows.
    free: Vec<u32>,
    by_id: HashTable<Indexed>,
    by_route: HashTable<Indexed>,
    hasher: KeyedHasher,
    locals: Locals,
    clock: Clock,
    wheel: ExpiryWheel,
    /// Sessions per source IP (the IP of the login's observed address).
    per_ip: HashMap<IpAddr, u32, KeyedHasher>,
    udp_sessions: usize,
    /// Bumped for every new session, so a reused slot is told from its former tenant.
    generation: u32,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("sessions", &self.len())
            .field("udp_sessions", &self.udp_sessions)
            .finish_non_exhaustive()
    }
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
        let now = self.clock.nanos(now);
        // Each key is hashed once: the lookups and the insertion share the tags.
        let id_tag = self.tag(id.as_bytes());
        if let Some(slot) = self.find_id(id, id_tag) {
            if self.route_of(slot) != route {
                return Err(LoginError::Taken);
            }
            let locals = &mut self.locals;
            let stored = self.slots[slot as usize].as_mut().expect("indexed");
            stored.last_seen = now;
            if stored.place.observed() != observed {
                stored.place = Place::new(route, observed, locals);
            }
            return Ok(LoginOutcome::Refreshed);
        }
        let route_tag = self.tag(route);
        let replaced = match self.find_route(&route, route_tag) {
            Some(slot) => Some(self.remove_slot(slot)),
            None if self.len() >= limits.sessions => return Err(LoginError::Full),
            None => None,
        };
        let from_ip = self.per_ip.get(&observed.ip()).copied().unwrap_or(0);
        if from_ip as usize >= limits.per_ip {
            // Put back what was removed to make room: a refused login changes nothing.
            if let Some((old, last_seen)) = replaced {
                let old_tag = self.tag(old.id.as_bytes());
                self.insert(
                    (&old.id, old_tag),
                    (old.route, route_tag),
                    old.observed,
                    last_seen,
                );
            }
            return Err(LoginError::PerIpLimit);
        }
        self.insert((id, id_tag), (route, route_tag), observed, now);
        Ok(replaced.map_or(LoginOutcome::New, |(old, _)| LoginOutcome::Replaced(old)))
    }

    /// Stores a new session last seen at `last_seen` (which is also its login time); the ID
    /// and the route come with their tags ([`Registry::tag`]).
    fn insert(
        &mut self,
        (id, id_tag): (&str, u32),
        (route, route_tag): (Route, u32),
        observed: SocketAddr,
        last_seen: u64,
    ) {
        self.generation = self.generation.wrapping_add(1);
        let stored = Stored {
            id: StoredId::new(id),
            place: Place::new(route, observed, &mut self.locals),
            logged_in_at: last_seen,
            last_seen,
            generation: self.generation,
        };
        let udp = stored.place.is_udp();
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(stored);
                slot
            }
            None => {
                self.slots.push(Some(stored));
                (self.slots.len() - 1) as u32
            }
        };
        if udp {
            self.udp_sessions += 1;
            self.wheel.file((slot, self.generation), last_seen);
        }
        *self.per_ip.entry(observed.ip()).or_default() += 1;
        let rehash = |entry: &Indexed| Indexed::hash(entry.tag);
        let entry = Indexed { slot, tag: id_tag };
        self.by_id
            .insert_unique(Indexed::hash(id_tag), entry, rehash);
        let entry = Indexed {
            slot,
            tag: route_tag,
        };
        self.by_route
            .insert_unique(Indexed::hash(route_tag), entry, rehash);
    }

    /// The 32 bits of `key`'s hash that the tables keep ([`Indexed`]).
    fn tag(&self, key: impl Hash) -> u32 {
        // The low half: foldhash's quality variant mixes every input bit into it.
        self.hasher.hash_one(key) as u32
    }

    /// Frees `id` if it is held on another route than `route`, so that an authenticated login
    /// can take it over (the key proves it is the same user, e.g. restarted on a new port).
    pub fn take_over(&mut self, id: &str, route: Route) -> Option<Session> {
        let slot = self.find_id(id, self.tag(id.as_bytes()))?;
        if self.route_of(slot) == route {
            return None;
        }
        Some(self.remove_slot(slot).0)
    }

    /// Marks `id` alive if it is logged in on `route`; returns its observed address.
    pub fn refresh(&mut self, now: Instant, id: &str, route: Route) -> Option<SocketAddr> {
        let slot = self
            .find_id(id, self.tag(id.as_bytes()))
            .filter(|&slot| self.route_of(slot) == route)?;
        let now = self.clock.nanos(now);
        let stored = self.slots[slot as usize].as_mut().expect("indexed");
        stored.last_seen = now;
        Some(stored.place.observed())
    }

    /// The session logged in on `route`, refreshed.
    pub fn touch_route(&mut self, now: Instant, route: Route) -> Option<Session> {
        let slot = self.find_route(&route, self.tag(route))?;
        let now = self.clock.nanos(now);
        let stored = self.slots[slot as usize].as_mut().expect("indexed");
        stored.last_seen = now;
        Some(stored.session(&self.locals, &self.clock))
    }

    /// Logs `id` out if it is logged in on `route`.
    pub fn logout(&mut self, id: &str, route: Route) -> Option<Session> {
        let slot = self.find_id(id, self.tag(id.as_bytes()))?;
        if self.route_of(slot) != route {
            return None;
        }
        Some(self.remove_slot(slot).0)
    }

    /// Frees the session on a route, e.g. when its TCP connection closes.
    pub fn remove_route(&mut self, route: Route) -> Option<Session> {
        let slot = self.find_route(&route, self.tag(route))?;
        Some(self.remove_slot(slot).0)
    }

    /// Empties `slot`, unindexing its session; returns the session and its last-seen time.
    /// Its expiry entry, if any, stays in the wheel and is skipped when due.
    fn remove_slot(&mut self, slot: u32) -> (Session, u64) {
        let session = stored_at(&self.slots, slot).session(&self.locals, &self.clock);
        let stored = self.slots[slot as usize].take().expect("indexed");
        let is_slot = |entry: &Indexed| entry.slot == slot;
        let id_hash = Indexed::hash(self.tag(stored.id.as_bytes()));
        if let Ok(entry) = self.by_id.find_entry(id_hash, is_slot) {
            entry.remove();
        }
        let route_hash = Indexed::hash(self.tag(session.route));
        if let Ok(entry) = self.by_route.find_entry(route_hash, is_slot) {
            entry.remove();
        }
        self.free.push(slot);
        if stored.place.is_udp() {
            self.udp_sessions -= 1;
        }
        let ip = session.observed.ip();
        if let Some(count) = self.per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&ip);
            }
        }
        (session, stored.last_seen)
    }

    /// Removes and returns UDP sessions silent for longer than `expiry`, at most
    /// [`EXPIRE_BATCH`] per call (see [`Registry::expire_pending`]), each batch in ID order.
    /// TCP sessions live as long as their connection: the kernel tells us when it dies.
    pub fn expire(&mut self, now: Instant, expiry: Duration) -> Vec<Session> {
        let mut expired = Vec::new();
        let (now, expiry) = (self.clock.nanos(now), expiry.as_nanos() as u64);
        // Entries still alive are cheap to look at, but bounded too.
        let mut looked_at = 0;
        while expired.len() < EXPIRE_BATCH && looked_at < 8 * EXPIRE_BATCH {
            let Some((slot, generation)) = self.wheel.next(now, expiry) else {
                break;
            };
            looked_at += 1;
            let Some(stored) = self.slots[slot as usize].as_ref() else {
                continue;
            };
            if stored.generation != generation {
                continue;
            }
            if now.saturating_sub(stored.last_seen) > expiry {
                expired.push(self.remove_slot(slot).0);
            } else {
                self.wheel.file((slot, generation), stored.last_seen);
            }
        }
        // In ID order, not slot order: the caller logs one line per expired session.
        expired.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        expired
    }

    /// Whether sessions may be due to expire at `now` beyond what [`Registry::expire`] handed
    /// out: then it should be called again soon (after the requests waiting are answered).
    pub fn expire_pending(&self, now: Instant, expiry: Duration) -> bool {
        let mut clock = self.clock;
        self.udp_sessions > 0
            && self
                .wheel
                .has_due(clock.nanos(now), expiry.as_nanos() as u64)
    }

    pub fn get(&self, id: &str) -> Option<Session> {
        let slot = self.find_id(id, self.tag(id.as_bytes()))?;
        Some(stored_at(&self.slots, slot).session(&self.locals, &self.clock))
    }

    pub fn on_route(&self, route: &Route) -> Option<Session> {
        let slot = self.find_route(route, self.tag(route))?;
        Some(stored_at(&self.slots, slot).session(&self.locals, &self.clock))
    }

    /// Whether a session is logged in on `route` (without building it).
    pub fn holds_route(&self, route: &Route) -> bool {
        self.find_route(route, self.tag(route)).is_some()
    }

    /// The slot of `id`, whose tag is `tag`.
    fn find_id(&self, id: &str, tag: u32) -> Option<u32> {
        let matches = |entry: &Indexed| {
            entry.tag == tag && stored_at(&self.slots, entry.slot).id.as_bytes() == id.as_bytes()
        };
        let entry = self.by_id.find(Indexed::hash(tag), matches)?;
        Some(entry.slot)
    }

    /// The slot of the session on `route`, whose tag is `tag`.
    fn find_route(&self, route: &Route, tag: u32) -> Option<u32> {
        let matches = |entry: &Indexed| entry.tag == tag && self.route_of(entry.slot) == *route;
        let entry = self.by_route.find(Indexed::hash(tag), matches)?;
        Some(entry.slot)
    }

    fn route_of(&self, slot: u32) -> Route {
        stored_at(&self.slots, slot).place.route(&self.locals)
    }

    /// Sessions by transport: (UDP, TCP).
    pub fn counts(&self) -> (usize, usize) {
        (self.udp_sessions, self.len() - self.udp_sessions)
    }

    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The session in an indexed slot (the indices only hold occupied slots).
fn stored_at(slots: &[Option<Stored>], slot: u32) -> &Stored {
    slots[slot as usize]
        .as_ref()
        .expect("indexed slots are occupied")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

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

    /// A mass expiry comes out in batches, with `expire_pending` saying when more are due;
    /// a session kept alive meanwhile is not among them.
    #[test]
    fn a_mass_expiry_comes_in_bounded_batches() {
        let start = Instant::now();
        let mut registry = Registry::default();
        let count = 2 * EXPIRE_BATCH + 88;
        for i in 0..count {
            let route = Route::Udp {
                local: "192.0.2.1:3478".parse().unwrap(),
                remote: SocketAddr::new("198.51.100.9".parse().unwrap(), 1000 + i as u16),
            };
            let remote = match route {
                Route::Udp { remote, .. } => remote,
                Route::Tcp { .. } => unreachable!(),
            };
            registry
                .login(start, &format!("user{i:04}"), route, remote, cap(10_000))
                .unwrap();
        }
        let expiry = Duration::from_secs(45);
        let kept = start + Duration::from_secs(30);
        let first = Route::Udp {
            local: "192.0.2.1:3478".parse().unwrap(),
            remote: "198.51.100.9:1000".parse().unwrap(),
        };
        assert!(registry.refresh(kept, "user0000", first).is_some());
        let later = start + Duration::from_secs(47);
        assert!(registry.expire_pending(later, expiry));
        let mut batches = Vec::new();
        while registry.expire_pending(later, expiry) {
            batches.push(registry.expire(later, expiry).len());
        }
        assert_eq!(batches, [EXPIRE_BATCH, EXPIRE_BATCH, 87]);
        assert_eq!(registry.len(), 1);
        assert!(registry.get("user0000").is_some());
        assert!(registry.expire(later, expiry).is_empty());
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
        assert_eq!(
            registry.on_route(&udp(2)).map(|s| s.id),
            Some("b".to_owned())
        );
    }

    /// The tables grow by their kept tags, without hashing a key again: after many
    /// growths every session is still found by its ID and by its route, and removals find
    /// their entries.
    #[test]
    fn sessions_stay_findable_as_the_tables_grow() {
        let now = Instant::now();
        let mut registry = Registry::default();
        let route = |i: u32| {
            let remote = SocketAddr::new(Ipv4Addr::from(0xC633_6400 + (i >> 16)).into(), i as u16);
            (
                Route::Udp {
                    local: "192.0.2.1:3478".parse().unwrap(),
                    remote,
                },
                remote,
            )
        };
        let count = 20_000;
        for i in 0..count {
            let (route, remote) = route(i);
            let outcome = registry.login(now, &format!("u{i}"), route, remote, cap(usize::MAX));
            assert_eq!(outcome, Ok(LoginOutcome::New));
        }
        for i in (0..count).step_by(2) {
            assert!(registry.logout(&format!("u{i}"), route(i).0).is_some());
        }
        for i in 0..count {
            let (route, _) = route(i);
            let by_id = registry.get(&format!("u{i}")).map(|s| s.route);
            let by_route = registry.on_route(&route).map(|s| s.id);
            if i % 2 == 0 {
                assert_eq!((by_id, by_route), (None, None), "u{i} logged out");
            } else {
                assert_eq!((by_id, by_route), (Some(route), Some(format!("u{i}"))));
            }
        }
        assert_eq!(registry.counts(), (count as usize / 2, 0));
    }

    #[test]
    fn entry_hashes_spread_tags_over_bucket_and_control_bits() {
        // A bijection (an odd multiplier), so distinct tags never share a table hash, and the
        // top seven bits (the control byte) differ for tags that differ only in low bits.
        let hashes: Vec<u64> = (0..128u32).map(Indexed::hash).collect();
        let mut tops: Vec<u64> = hashes.iter().map(|h| h >> 57).collect();
        tops.sort_unstable();
        tops.dedup();
        assert!(tops.len() > 64, "control bytes vary: {}", tops.len());
        assert_eq!(Indexed::hash(0), 0);
        assert_ne!(Indexed::hash(1), Indexed::hash(u32::MAX));
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
