//! Which location server a session uses, and how long it waits for one before moving on: the
//! failover policy over an ordered list of servers (`--server` given more than once).
//!
//! The session uses the first server that answers. When the server it uses stops answering (a
//! LOGIN or KEEPALIVE unanswered for [`Failover::silence_budget`], a TCP connection lost and
//! not dialled again within it, or an ICMP error saying it cannot be reached) it moves to the
//! next one, wrapping around, and logs in there. The budget is half a keepalive interval: the
//! keepalive that finds a dead server goes out at most one interval after the death, so the
//! session is logged in elsewhere within two intervals of it (one interval, half of one, and a
//! login's round trip). Every server given up on in a row without a login in between ends the
//! session as unreachable: a session never cycles forever through servers that are all down.
//!
//! With one server nothing changes: the session keeps the patient budgets (a keepalive may go
//! unanswered for [`super::LOGIN_TIMEOUT`], a TCP session redials for
//! [`super::RECONNECT_BUDGET`]), since there is nowhere else to go.

use std::net::SocketAddr;
use std::time::Duration;

use super::MIN_KEEPALIVE;

/// The ordered servers and which one the session uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    servers: Vec<SocketAddr>,
    current: usize,
    /// Servers given up on since the session was last logged in.
    given_up: usize,
}

/// The session moves from one server to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub from: SocketAddr,
    pub to: SocketAddr,
}

impl Failover {
    /// A policy over `servers`, in order of preference, starting with the first. An empty list
    /// is a session whose shell connected it to one server it did not name: it never moves.
    pub fn new(servers: Vec<SocketAddr>) -> Self {
        Failover {
            servers,
            current: 0,
            given_up: 0,
        }
    }

    /// The server in use, when the list named it.
    pub fn current(&self) -> Option<SocketAddr> {
        self.servers.get(self.current).copied()
    }

    /// True when there is another server to move to.
    pub fn can_move(&self) -> bool {
        self.servers.len() > 1
    }

    /// Gives up on the server in use: the move to the next one (wrapping around), or `None`
    /// once every server has been given up on since the last login (or there is no other).
    pub fn give_up(&mut self) -> Option<Move> {
        if !self.can_move() {
            return None;
        }
        self.given_up += 1;
        if self.given_up >= self.servers.len() {
            return None;
        }
        let from = self.servers[self.current];
        self.current = (self.current + 1) % self.servers.len();
        Some(Move {
            from,
            to: self.servers[self.current],
        })
    }

    /// The server in use accepted a login: a later loss starts a new round.
    pub fn logged_in(&mut self) {
        self.given_up = 0;
    }

    /// How long a LOGIN or KEEPALIVE may go unanswered, and a lost TCP connection may go
    /// without a new one, before the server in use counts as lost: half of `keepalive` (at
    /// least [`MIN_KEEPALIVE`], at most `patient`) when there is another server to move to,
    /// `patient` (the one-server budget) otherwise.
    pub fn silence_budget(&self, keepalive: Duration, patient: Duration) -> Duration {
        if self.can_move() {
            (keepalive / 2).clamp(MIN_KEEPALIVE, patient.max(MIN_KEEPALIVE))
        } else {
            patient
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-server budget of a LOGIN or KEEPALIVE.
    const PATIENT: Duration = crate::core::client::LOGIN_TIMEOUT;

    fn servers(n: u16) -> Vec<SocketAddr> {
        (1..=n)
            .map(|i| SocketAddr::from(([192, 0, 2, i as u8], 3478)))
            .collect()
    }

    #[test]
    fn moves_to_the_next_server_wrapping_around() {
        let list = servers(3);
        let mut failover = Failover::new(list.clone());
        assert_eq!(failover.current(), Some(list[0]));
        failover.logged_in();
        let first = failover.give_up().unwrap();
        assert_eq!((first.from, first.to), (list[0], list[1]));
        failover.logged_in();
        let second = failover.give_up().unwrap();
        assert_eq!((second.from, second.to), (list[1], list[2]));
        failover.logged_in();
        let wrapped = failover.give_up().unwrap();
        assert_eq!((wrapped.from, wrapped.to), (list[2], list[0]));
        assert_eq!(failover.current(), Some(list[0]));
    }

    #[test]
    fn a_round_without_a_login_ends() {
        let list = servers(3);
        let mut failover = Failover::new(list.clone());
        assert_eq!(failover.give_up().map(|m| m.to), Some(list[1]));
        assert_eq!(failover.give_up().map(|m| m.to), Some(list[2]));
        assert_eq!(failover.give_up(), None, "every server was tried");
    }

    #[test]
    fn one_server_never_moves_and_keeps_the_patient_budget() {
        for list in [servers(1), Vec::new()] {
            let mut failover = Failover::new(list);
            assert!(!failover.can_move());
            assert_eq!(failover.give_up(), None);
            let budget = failover.silence_budget(Duration::from_secs(1), PATIENT);
            assert_eq!(budget, PATIENT);
        }
    }

    #[test]
    fn the_silence_budget_is_half_a_keepalive_within_bounds() {
        let failover = Failover::new(servers(2));
        let budget = |secs: f64| failover.silence_budget(Duration::from_secs_f64(secs), PATIENT);
        assert_eq!(budget(1.0), Duration::from_millis(500));
        assert_eq!(budget(15.0), Duration::from_millis(7500));
        assert_eq!(budget(60.0), PATIENT);
        assert_eq!(budget(0.1), MIN_KEEPALIVE);
    }
}
