//! Which connection both ends keep when a punch races two address families over TCP.
//!
//! Each family's punch may bring up a connection of its own, and the two ends see them complete
//! in their own orders: a connection is up at one end a round trip before the other, and the
//! IPv6 head start is shorter than some paths' round trip. If each end kept its own first
//! connection, they could keep different ones and send their data where the other no longer
//! reads. So one end decides: the **callee** keeps the first connection that completes at its
//! end (hellos exchanged) and says so on it with a verdict ([`Verdict::Kept`]), then stops the
//! other family's punch; a connection of the other family that still completes gets
//! [`Verdict::Dropped`]. The **caller** keeps no connection of its own accord: on each one it
//! waits for the callee's verdict, keeps the one marked kept, and stops the other family then.
//! The data goes over the kept connection only; both ends name the same winner because only one
//! of them ever chooses.
//!
//! The cost is half a round trip at the caller (the verdict follows the callee's hello), paid
//! only when two families race; a single-family punch sends no verdict.

use super::Role;
use crate::wire::natlens::IpFamily;
pub use crate::wire::tcp_verdict::Verdict;

/// What to do with a connection that came up at this end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConnected {
    /// The callee: write this verdict after the hello (then use the connection if `Kept`).
    Say(Verdict),
    /// The caller: read the callee's verdict before using or closing it.
    AwaitVerdict,
    /// The caller, once another family was kept: close it without waiting.
    Drop,
}

/// The race between the two families of one TCP punch, at one end.
#[derive(Debug, Clone)]
pub struct FamilyRace {
    role: Role,
    winner: Option<IpFamily>,
}

impl FamilyRace {
    pub fn new(role: Role) -> Self {
        FamilyRace { role, winner: None }
    }

    /// A connection in `family` came up at this end (its hellos exchanged).
    pub fn handle_connected(&mut self, family: IpFamily) -> OnConnected {
        match (self.role, self.winner) {
            (Role::Callee, None) => {
                self.winner = Some(family);
                OnConnected::Say(Verdict::Kept)
            }
            (Role::Callee, Some(winner)) if winner == family => OnConnected::Say(Verdict::Kept),
            (Role::Callee, Some(_)) => OnConnected::Say(Verdict::Dropped),
            (Role::Caller, Some(winner)) if winner != family => OnConnected::Drop,
            (Role::Caller, _) => OnConnected::AwaitVerdict,
        }
    }

    /// The caller read the callee's `verdict` on `family`'s connection: true when this end
    /// keeps it. A second `Kept` (a callee that broke the rule) is dropped: the first stands.
    pub fn handle_verdict(&mut self, family: IpFamily, verdict: Verdict) -> bool {
        match (verdict, self.winner) {
            (Verdict::Kept, None) => {
                self.winner = Some(family);
                true
            }
            (Verdict::Kept, Some(winner)) => winner == family,
            (Verdict::Dropped, _) => false,
        }
    }

    /// The family whose connection this end keeps, once known.
    pub fn winner(&self) -> Option<IpFamily> {
        self.winner
    }

    /// Whether `family`'s punch should stop: another family's connection was kept.
    pub fn stops(&self, family: IpFamily) -> bool {
        self.winner.is_some_and(|winner| winner != family)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use IpFamily::{Ipv4, Ipv6};

    /// One end's view of when each family's connection completes (None: never, e.g. stopped).
    type Order = [Option<u32>; 2];

    /// Runs the rule over one interleaving: the callee sees its connections complete at
    /// `callee` times, the caller at `caller` times, and each verdict reaches the caller
    /// `trip` after the callee writes it (and no earlier than the caller's connection is up).
    /// A family whose punch the callee stopped before its connection completed never completes
    /// at either end. Returns each end's winner.
    fn race(callee: Order, caller: Order, trip: u32) -> (Option<IpFamily>, Option<IpFamily>) {
        let families = [Ipv6, Ipv4];
        let mut callee_race = FamilyRace::new(Role::Callee);
        let mut said: [Option<(u32, Verdict)>; 2] = [None, None];
        let mut order: Vec<usize> = (0..2).filter(|&i| callee[i].is_some()).collect();
        order.sort_by_key(|&i| callee[i]);
        for i in order {
            if callee_race.stops(families[i]) {
                continue; // stopped before it came up: the connection never completes
            }
            match callee_race.handle_connected(families[i]) {
                OnConnected::Say(verdict) => said[i] = Some((callee[i].unwrap(), verdict)),
                other => panic!("the callee never waits: {other:?}"),
            }
        }
        let mut caller_race = FamilyRace::new(Role::Caller);
        // Caller events: (time, family, what) with the connection first, the verdict after.
        let mut events = Vec::new();
        for i in 0..2 {
            let (Some(up), Some((written, verdict))) = (caller[i], said[i]) else {
                continue; // no connection at one end: no verdict is ever read on it
            };
            events.push((up, 0, i, None));
            events.push(((written + trip).max(up), 1, i, Some(verdict)));
        }
        events.sort_by_key(|&(at, kind, i, _)| (at, kind, i));
        let mut awaiting = [false; 2];
        for (_, _, i, verdict) in events {
            match verdict {
                None => {
                    awaiting[i] =
                        caller_race.handle_connected(families[i]) == OnConnected::AwaitVerdict;
                }
                Some(verdict) if awaiting[i] => {
                    caller_race.handle_verdict(families[i], verdict);
                }
                Some(_) => {}
            }
        }
        (callee_race.winner(), caller_race.winner())
    }

    #[test]
    fn both_ends_keep_the_same_family_whatever_order_they_see_the_connections_in() {
        let times = [None, Some(0), Some(10), Some(20), Some(30)];
        for a in times {
            for b in times {
                for c in times {
                    for d in times {
                        for trip in [0, 5, 25] {
                            let (callee, caller) = race([a, b], [c, d], trip);
                            if let Some(kept) = caller {
                                assert_eq!(callee, Some(kept), "{a:?} {b:?} {c:?} {d:?} {trip}");
                            }
                            // The caller keeps a connection whenever the callee's is up there.
                            let i = usize::from(callee == Some(Ipv4));
                            if callee.is_some() && [c, d][i].is_some() {
                                assert_eq!(caller, callee, "{a:?} {b:?} {c:?} {d:?} {trip}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn ipv4_first_at_the_caller_but_ipv6_first_at_the_callee_keeps_ipv6_at_both() {
        // The case that made the two ends disagree when each kept its own first connection.
        assert_eq!(
            race([Some(0), Some(10)], [Some(20), Some(5)], 15),
            (Some(Ipv6), Some(Ipv6))
        );
    }

    #[test]
    fn the_callee_keeps_its_first_and_drops_a_later_one() {
        let mut race = FamilyRace::new(Role::Callee);
        assert_eq!(race.handle_connected(Ipv4), OnConnected::Say(Verdict::Kept));
        assert!(race.stops(Ipv6));
        assert!(!race.stops(Ipv4));
        assert_eq!(
            race.handle_connected(Ipv6),
            OnConnected::Say(Verdict::Dropped)
        );
        assert_eq!(race.winner(), Some(Ipv4));
    }

    #[test]
    fn the_caller_keeps_only_what_the_callee_marked_kept() {
        let mut race = FamilyRace::new(Role::Caller);
        assert_eq!(race.handle_connected(Ipv4), OnConnected::AwaitVerdict);
        assert_eq!(race.handle_connected(Ipv6), OnConnected::AwaitVerdict);
        assert!(!race.handle_verdict(Ipv4, Verdict::Dropped));
        assert_eq!(race.winner(), None, "a dropped connection decides nothing");
        assert!(race.handle_verdict(Ipv6, Verdict::Kept));
        assert_eq!(race.winner(), Some(Ipv6));
        // A broken callee marking a second one kept does not change the winner.
        assert!(!race.handle_verdict(Ipv4, Verdict::Kept));
        assert_eq!(race.handle_connected(Ipv4), OnConnected::Drop);
    }
}
