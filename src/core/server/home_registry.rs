//! The home registry's decisions (`--registry`): which of this server's IDs to write to the
//! shared registry and when, and what a lookup's answer means. Sans-IO: the shell carries the
//! [`RegistryOp`]s to Redis on its own thread and hands back what happened as
//! [`RegistryReply`]s.
//!
//! Every logged-in ID has one entry, `ID → home`, where home is the address other servers dial
//! to link to the server that holds the session. An entry lives for [`HomeRegistry::ttl`]
//! unless refreshed, so a server that dies takes its entries with it after at most one TTL.
//! Refreshing is not tied to keep-alives: each ID is rewritten once per refresh interval,
//! and the IDs due in one tick go out as one batch (one pipeline), so a million sessions
//! cost a steady trickle of batched writes rather than one write per keep-alive.
//!
//! Writes are of three kinds, and the difference is what makes a keyed ID move cleanly:
//! a login *claims* (overwrites: the ID lives here now, wherever it lived before); a refresh
//! only renews an entry that still names this server or has vanished (a Redis restart); a
//! logout or expiry *releases* only an entry that still names this server. So a server that
//! still holds the old session of an ID taken over elsewhere neither steals the entry back
//! nor deletes the new home's entry.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default interval between two writes of the same ID: a third of the entry's TTL, so that
/// two refreshes in a row may fail (Redis restarting) before an entry of a live session lapses.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(15);
/// An entry outlives its last refresh by this many refresh intervals.
pub const TTL_REFRESHES: u32 = 3;

/// Something to write to or read from the registry, in the order the core decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryOp {
    /// These IDs logged in here: overwrite their entries with this server.
    Claim { ids: Vec<String> },
    /// Renew these IDs' entries, only where the entry names this server or is missing.
    Refresh { ids: Vec<String> },
    /// These IDs left: delete their entries, only where they still name this server.
    Release { ids: Vec<String> },
    /// Where does `id` live? The answer comes back as [`RegistryReply::Found`] for `call`.
    Lookup { call: u64, id: String },
    /// These IDs' entries named `home`, a server that could not be dialled: delete them, only
    /// where they still name `home` (an ID that moved meanwhile keeps its new entry).
    Evict { home: SocketAddr, ids: Vec<String> },
}

/// What the shell saw of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryReply {
    /// Connected (at start, or again after a loss).
    Connected,
    /// The connection failed or broke; what was in flight is lost.
    Lost { reason: String },
    /// A lookup's answer: the entry's value, or `None` when there is no entry.
    Found { call: u64, value: Option<String> },
    /// A lookup that could not be made (the registry went away under it).
    LookupFailed { call: u64 },
}

/// What a lookup's answer means for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    /// The ID lives on the server whose link listens here.
    Elsewhere(SocketAddr),
    /// No entry: the ID is logged in nowhere (as far as the registry knows).
    Nowhere,
    /// The entry names this server, but the ID is not logged in here: a stale entry (our own
    /// release has not landed yet), so nowhere.
    Stale,
    /// The registry is unavailable, or the entry is not an address.
    Unknown,
}

/// Reads a lookup's answer as seen from the server whose link address is `own`.
pub fn interpret(value: Option<&str>, own: SocketAddr) -> Home {
    match value.map(str::parse::<SocketAddr>) {
        None => Home::Nowhere,
        Some(Ok(addr)) if addr == own => Home::Stale,
        Some(Ok(addr)) => Home::Elsewhere(addr),
        Some(Err(_)) => Home::Unknown,
    }
}

/// The registry as this server sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Not connected yet since start.
    Connecting,
    Up,
    Down,
}

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Connecting => "connecting",
            Availability::Up => "up",
            Availability::Down => "down",
        }
    }
}

/// What changed in the registry's availability, for the server's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Up again (or for the first time); `sessions` IDs are being re-registered.
    Up {
        sessions: usize,
    },
    Down {
        reason: String,
    },
}

/// This server's IDs and the writes they need.
#[derive(Debug)]
pub struct HomeRegistry {
    own: SocketAddr,
    refresh: Duration,
    /// Live IDs, each with the generation of its latest login (stale queue entries are skipped).
    /// The ID is shared with its `due` entry: one allocation per login instead of two. Keyed
    /// foldhash rather than SipHash (IDs are chosen by clients, the seed is random per
    /// process). Together these took `session_up` from 0.87-1.07 µs to 0.52 µs of CPU
    /// (`benches/million --core-only`).
    live: HashMap<Arc<str>, u64, foldhash::quality::RandomState>,
    /// (due, generation, ID) in due order: every entry is queued at `now + refresh`, and time
    /// only moves forward, so appending keeps the order.
    due: VecDeque<(Instant, u64, Arc<str>)>,
    next_generation: u64,
    ops: VecDeque<RegistryOp>,
    availability: Availability,
}

impl HomeRegistry {
    /// The registry of the server whose link listens at `own`, rewriting each ID every
    /// `refresh`.
    pub fn new(own: SocketAddr, refresh: Duration) -> Self {
        HomeRegistry {
            own,
            refresh,
            live: HashMap::default(),
            due: VecDeque::new(),
            next_generation: 0,
            ops: VecDeque::new(),
            availability: Availability::Connecting,
        }
    }

    /// The address this server's entries name.
    pub fn own(&self) -> SocketAddr {
        self.own
    }

    /// How long an entry lives after its last write.
    pub fn ttl(&self) -> Duration {
        self.refresh * TTL_REFRESHES
    }

    pub fn availability(&self) -> Availability {
        self.availability
    }

    /// IDs this server holds.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// `id` logged in here: claim its entry now, refresh it from now on.
    pub fn session_up(&mut self, now: Instant, id: &str) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let shared: Arc<str> = Arc::from(id);
        self.live.insert(Arc::clone(&shared), generation);
        self.due.push_back((now + self.refresh, generation, shared));
        self.push(id, |ids| RegistryOp::Claim { ids });
    }

    /// `id` logged out or expired here: release its entry.
    pub fn session_down(&mut self, id: &str) {
        if self.live.remove(id).is_some() {
            self.push(id, |ids| RegistryOp::Release { ids });
        }
    }

    /// Appends `id` to the last queued op when it is of the same kind (one batch per turn),
    /// else queues a new op. Nothing is queued while the registry is unreachable: what
    /// matters is re-registered in full when it returns.
    fn push(&mut self, id: &str, make: fn(Vec<String>) -> RegistryOp) {
        if self.availability != Availability::Up {
            return;
        }
        let fresh = make(Vec::new());
        match self.ops.back_mut() {
            Some(RegistryOp::Claim { ids }) if matches!(fresh, RegistryOp::Claim { .. }) => {
                ids.push(id.to_owned())
            }
            Some(RegistryOp::Release { ids }) if matches!(fresh, RegistryOp::Release { .. }) => {
                ids.push(id.to_owned())
            }
            _ => self.ops.push_back(make(vec![id.to_owned()])),
        }
    }

    /// The home server at `home` could not be reached for calls to `ids`: their entries are
    /// stale (a server that died keeps being named until the TTL runs out), so delete them and
    /// spare the next call the same dead dial. A home that was only slow puts its entries back
    /// with its next refresh, which renews an entry that has gone.
    pub fn home_unreachable(&mut self, home: SocketAddr, mut ids: Vec<String>) {
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() || self.availability != Availability::Up {
            return;
        }
        self.ops.push_back(RegistryOp::Evict { home, ids });
    }

    /// A lookup for `call`; `None` when the registry is unreachable (no point asking).
    pub fn look_up(&mut self, call: u64, id: &str) -> Option<()> {
        if self.availability != Availability::Up {
            return None;
        }
        self.ops.push_back(RegistryOp::Lookup {
            call,
            id: id.to_owned(),
        });
        Some(())
    }

    /// When [`HomeRegistry::handle_timeout`] has refreshes to batch.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.due.front().map(|(due, ..)| *due)
    }

    /// Batches the refreshes due at `now` into one op (the IDs still live, each requeued).
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut ids = Vec::new();
        while let Some((due, generation, _)) = self.due.front() {
            if *due > now {
                break;
            }
            let generation = *generation;
            let (_, _, id) = self.due.pop_front().expect("just seen");
            if self.live.get(&id) == Some(&generation) {
                ids.push(id.to_string());
                self.due.push_back((now + self.refresh, generation, id));
            }
        }
        if !ids.is_empty() && self.availability == Availability::Up {
            self.ops.push_back(RegistryOp::Refresh { ids });
        }
    }

    /// The next op for the shell to carry out.
    pub fn poll_op(&mut self) -> Option<RegistryOp> {
        self.ops.pop_front()
    }

    /// The shell connected to the registry: every live ID is re-registered at once (a
    /// restarted Redis has forgotten them all; a refresh leaves entries that moved alone).
    pub fn connected(&mut self) -> Change {
        self.availability = Availability::Up;
        let mut ids: Vec<String> = self.live.keys().map(|id| id.to_string()).collect();
        // Sorted: what reaches the outside does not depend on hash-map order.
        ids.sort_unstable();
        let sessions = ids.len();
        if !ids.is_empty() {
            self.ops.push_back(RegistryOp::Refresh { ids });
        }
        Change::Up { sessions }
    }

    /// The registry went away: queued ops are dropped (they are redone on reconnection). Only
    /// the first loss in a row is a change worth reporting.
    pub fn lost(&mut self, reason: String) -> Option<Change> {
        self.ops.clear();
        let was = std::mem::replace(&mut self.availability, Availability::Down);
        (was != Availability::Down).then_some(Change::Down { reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> SocketAddr {
        "192.0.2.1:3478".parse().unwrap()
    }

    fn up_registry(refresh: Duration) -> HomeRegistry {
        let mut registry = HomeRegistry::new(own(), refresh);
        registry.connected();
        registry
    }

    fn drain(registry: &mut HomeRegistry) -> Vec<RegistryOp> {
        std::iter::from_fn(|| registry.poll_op()).collect()
    }

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn logins_in_one_turn_are_one_claim_and_logouts_one_release() {
        let t0 = Instant::now();
        let mut registry = up_registry(Duration::from_secs(15));
        registry.session_up(t0, "alice");
        registry.session_up(t0, "bob");
        registry.session_down("alice");
        registry.session_down("carol"); // never here: nothing to release
        assert_eq!(
            drain(&mut registry),
            [
                RegistryOp::Claim {
                    ids: ids(&["alice", "bob"])
                },
                RegistryOp::Release {
                    ids: ids(&["alice"])
                },
            ]
        );
    }

    #[test]
    fn refreshes_come_once_per_interval_in_batches_not_per_keepalive() {
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        let refresh = Duration::from_secs(15);
        let mut registry = up_registry(refresh);
        registry.session_up(t0, "alice");
        registry.session_up(at(1), "bob");
        drain(&mut registry);
        assert_eq!(registry.poll_timeout(), Some(t0 + refresh));
        registry.handle_timeout(at(14));
        assert_eq!(drain(&mut registry), []);
        // One tick after both are due: one batch with both.
        registry.handle_timeout(at(17));
        assert_eq!(
            drain(&mut registry),
            [RegistryOp::Refresh {
                ids: ids(&["alice", "bob"])
            }]
        );
        registry.session_up(at(20), "carol");
        drain(&mut registry);
        // Requeued a whole interval after the tick that wrote them; carol after them.
        assert_eq!(registry.poll_timeout(), Some(at(32)));
        registry.handle_timeout(at(33));
        assert_eq!(
            drain(&mut registry),
            [RegistryOp::Refresh {
                ids: ids(&["alice", "bob"])
            }]
        );
        registry.handle_timeout(at(35));
        assert_eq!(
            drain(&mut registry),
            [RegistryOp::Refresh {
                ids: ids(&["carol"])
            }]
        );
        assert_eq!(registry.poll_timeout(), Some(at(48)));
    }

    #[test]
    fn a_logged_out_id_is_no_longer_refreshed_and_a_relogin_is_refreshed_once() {
        let t0 = Instant::now();
        let refresh = Duration::from_secs(10);
        let mut registry = up_registry(refresh);
        registry.session_up(t0, "alice");
        registry.session_down("alice");
        registry.session_up(t0 + Duration::from_secs(2), "alice");
        drain(&mut registry);
        registry.handle_timeout(t0 + Duration::from_secs(12));
        // The first queue entry belongs to the first login: skipped; the second one counts.
        assert_eq!(
            drain(&mut registry),
            [RegistryOp::Refresh {
                ids: ids(&["alice"])
            }]
        );
        registry.session_down("alice");
        registry.handle_timeout(t0 + Duration::from_secs(30));
        assert_eq!(
            drain(&mut registry),
            [RegistryOp::Release {
                ids: ids(&["alice"])
            }]
        );
        assert_eq!(registry.poll_timeout(), None);
    }

    #[test]
    fn while_down_nothing_is_queued_and_reconnecting_reregisters_everything() {
        let t0 = Instant::now();
        let mut registry = up_registry(Duration::from_secs(10));
        registry.session_up(t0, "bob");
        assert_eq!(
            registry.lost("refused".into()),
            Some(Change::Down {
                reason: "refused".into()
            })
        );
        // A second failure in a row (a reconnect attempt) is not news.
        assert_eq!(registry.lost("refused".into()), None);
        assert_eq!(drain(&mut registry), [], "the claim in flight is dropped");
        registry.session_up(t0, "alice");
        registry.session_up(t0, "carol");
        registry.session_down("carol");
        assert_eq!(registry.look_up(1, "bob"), None);
        registry.handle_timeout(t0 + Duration::from_secs(11));
        assert_eq!(drain(&mut registry), []);
        assert_eq!(registry.availability(), Availability::Down);
        assert_eq!(registry.connected(), Change::Up { sessions: 2 });
        assert_eq!(
            drain(&mut registry),
            [RegistryOp::Refresh {
                ids: ids(&["alice", "bob"])
            }]
        );
    }

    #[test]
    fn lookups_go_out_in_order_with_the_writes() {
        let t0 = Instant::now();
        let mut registry = up_registry(Duration::from_secs(10));
        registry.session_up(t0, "alice");
        assert_eq!(registry.look_up(7, "bob"), Some(()));
        registry.session_up(t0, "carol");
        assert_eq!(
            drain(&mut registry),
            [
                RegistryOp::Claim {
                    ids: ids(&["alice"])
                },
                RegistryOp::Lookup {
                    call: 7,
                    id: "bob".into()
                },
                RegistryOp::Claim {
                    ids: ids(&["carol"])
                },
            ]
        );
    }

    #[test]
    fn a_lookup_answer_means_elsewhere_nowhere_stale_or_unknown() {
        let other: SocketAddr = "192.0.2.2:3478".parse().unwrap();
        assert_eq!(
            interpret(Some("192.0.2.2:3478"), own()),
            Home::Elsewhere(other)
        );
        assert_eq!(interpret(None, own()), Home::Nowhere);
        assert_eq!(interpret(Some("192.0.2.1:3478"), own()), Home::Stale);
        assert_eq!(interpret(Some("not an address"), own()), Home::Unknown);
        assert_eq!(
            interpret(Some("[2001:db8::1]:3478"), own()),
            Home::Elsewhere("[2001:db8::1]:3478".parse().unwrap())
        );
    }

    #[test]
    fn an_unreachable_home_evicts_its_entries_once_each_and_not_while_down() {
        let dead: SocketAddr = "192.0.2.9:3478".parse().unwrap();
        let mut registry = up_registry(Duration::from_secs(10));
        registry.home_unreachable(dead, ids(&["bob", "alice", "bob"]));
        registry.home_unreachable(dead, Vec::new());
        assert_eq!(
            drain(&mut registry),
            [RegistryOp::Evict {
                home: dead,
                ids: ids(&["alice", "bob"])
            }]
        );
        registry.lost("refused".into());
        registry.home_unreachable(dead, ids(&["bob"]));
        assert_eq!(drain(&mut registry), []);
    }

    #[test]
    fn the_ttl_is_three_refreshes() {
        let registry = HomeRegistry::new(own(), Duration::from_secs(5));
        assert_eq!(registry.ttl(), Duration::from_secs(15));
        assert_eq!(registry.availability(), Availability::Connecting);
    }
}
