//! Refusing replayed authenticated requests with bounded memory.
//!
//! A nonce is bound to the client's IP ([`crate::core::nonce`]), so a captured LOGIN or CALL
//! replayed from another address already fails. What is left is a replay from the same IP (a
//! host behind the same NAT, or a spoofer) while the nonce is still fresh. The guard remembers
//! every authenticated transaction ID with the route it came from, for as long as its nonce
//! lives: the same ID again from the same route is a retransmission (answered as before, RFC
//! 8489 §6.3.1), from any other route a replay.
//!
//! Memory is capped. When the cap forces the guard to forget a transaction, it raises a floor:
//! nonces issued at or before the forgotten one's are refused from then on (the client gets a
//! 438 and retries with a fresh nonce), so forgetting never lets a replay through.

use std::collections::{HashMap, VecDeque};

use crate::core::registry::Route;
use crate::wire::TransactionId;

/// Default number of authenticated transactions remembered: at 64 bytes each about 4 MB, and
/// a 300 s nonce lifetime's worth of logins and calls at over 200 per second.
pub const REPLAY_MEMORY: usize = 65_536;

/// The verdict on one authenticated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayCheck {
    /// Never seen: go ahead.
    Fresh,
    /// The same transaction from the same route: a retransmission, answer it as before.
    Retransmission,
    /// The same transaction from another route: refuse.
    Replay,
    /// Its nonce is older than what the guard can still vouch for: answer 438.
    NonceTooOld,
}

/// Remembered authenticated transactions.
#[derive(Debug)]
pub struct ReplayGuard {
    seen: HashMap<TransactionId, Route>,
    order: VecDeque<(TransactionId, u32)>,
    /// Nonces stamped at or before this are refused: the guard forgot some of their requests.
    floor: Option<u32>,
    capacity: usize,
    lifetime_secs: u32,
}

impl ReplayGuard {
    /// Remembers up to `capacity` transactions, each until its nonce (valid `lifetime_secs`)
    /// expires.
    pub fn new(capacity: usize, lifetime_secs: u32) -> Self {
        ReplayGuard {
            seen: HashMap::new(),
            order: VecDeque::new(),
            floor: None,
            capacity: capacity.max(1),
            lifetime_secs,
        }
    }

    /// Checks (and, when fresh, records) transaction `tid` from `route` authenticated with a
    /// nonce stamped `issued`.
    pub fn check(&mut self, tid: TransactionId, route: Route, issued: u32) -> ReplayCheck {
        if let Some(first) = self.seen.get(&tid) {
            return if *first == route {
                ReplayCheck::Retransmission
            } else {
                ReplayCheck::Replay
            };
        }
        if self.floor.is_some_and(|floor| issued <= floor) {
            return ReplayCheck::NonceTooOld;
        }
        self.seen.insert(tid, route);
        self.order.push_back((tid, issued));
        while self.order.len() > self.capacity {
            let (old, stamp) = self.order.pop_front().expect("over capacity");
            self.seen.remove(&old);
            self.floor = Some(self.floor.map_or(stamp, |floor| floor.max(stamp)));
        }
        ReplayCheck::Fresh
    }

    /// Forgets transactions whose nonce has expired by stamp `now`: they cannot come back
    /// with a nonce that passes anyway.
    pub fn sweep(&mut self, now: u32) {
        while let Some(&(tid, stamp)) = self.order.front() {
            if now.saturating_sub(stamp) < self.lifetime_secs {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&tid);
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(port: u16) -> Route {
        Route::Udp {
            local: "192.0.2.1:3478".parse().unwrap(),
            remote: std::net::SocketAddr::new("198.51.100.9".parse().unwrap(), port),
        }
    }

    fn tid(n: u32) -> TransactionId {
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        TransactionId(bytes)
    }

    #[test]
    fn retransmissions_pass_and_replays_from_elsewhere_do_not() {
        let mut guard = ReplayGuard::new(16, 300);
        assert_eq!(guard.check(tid(1), udp(1), 10), ReplayCheck::Fresh);
        assert_eq!(guard.check(tid(1), udp(1), 10), ReplayCheck::Retransmission);
        assert_eq!(guard.check(tid(1), udp(2), 10), ReplayCheck::Replay);
        assert_eq!(
            guard.check(tid(1), Route::Tcp { conn: 4 }, 10),
            ReplayCheck::Replay
        );
        assert_eq!(guard.check(tid(2), udp(2), 10), ReplayCheck::Fresh);
    }

    #[test]
    fn memory_stays_bounded_and_forgetting_never_admits_a_replay() {
        let mut guard = ReplayGuard::new(4, 300);
        for n in 0..4 {
            assert_eq!(guard.check(tid(n), udp(1), 10 + n), ReplayCheck::Fresh);
        }
        // The fifth pushes out tid 0 (nonce stamp 10): stamps <= 10 are refused from now on.
        assert_eq!(guard.check(tid(4), udp(1), 20), ReplayCheck::Fresh);
        assert_eq!(guard.len(), 4);
        assert_eq!(guard.check(tid(0), udp(2), 10), ReplayCheck::NonceTooOld);
        assert_eq!(guard.check(tid(9), udp(2), 10), ReplayCheck::NonceTooOld);
        // Still remembered: still recognised.
        assert_eq!(guard.check(tid(1), udp(2), 11), ReplayCheck::Replay);
        assert_eq!(guard.check(tid(10), udp(1), 21), ReplayCheck::Fresh);
        for n in 100..10_000 {
            guard.check(tid(n), udp(1), 30 + n);
        }
        assert_eq!(guard.len(), 4);
    }

    #[test]
    fn entries_leave_once_their_nonce_expired() {
        let mut guard = ReplayGuard::new(16, 300);
        guard.check(tid(1), udp(1), 0);
        guard.check(tid(2), udp(1), 200);
        guard.sweep(299);
        assert_eq!(guard.len(), 2);
        guard.sweep(300);
        assert_eq!(guard.len(), 1);
        guard.sweep(500);
        assert!(guard.is_empty());
    }
}
