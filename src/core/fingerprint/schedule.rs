//! When each attempt of each probe goes out, and when a probe is settled or given up: all the
//! timing a prober shell needs, sans-IO, so that it can be tested on made-up instants. The shell
//! asks for the attempts [`due`](Schedule::due) at `now`, reports answers with
//! [`settle`](Schedule::settle), sleeps until [`next_wake`](Schedule::next_wake), and stops when
//! the step is [`finished`](Schedule::finished): a probe's answer ends its retransmissions and,
//! once every probe is answered or given up, the step, whatever the plan's deadline says.

use std::time::Instant;

use crate::core::fingerprint::plan::Probe;

/// The attempts of one step's probes, from the instant the step started.
#[derive(Debug)]
pub struct Schedule {
    start: Instant,
    probes: Vec<Probe>,
    /// Attempts already sent, per probe.
    sent: Vec<u8>,
    /// Answered, or failed for good (a refused TCP connection).
    settled: Vec<bool>,
    /// Attempts sent at most per probe: the plan's for UDP, one for TCP (the kernel retransmits).
    retransmit: bool,
}

impl Schedule {
    pub fn new(start: Instant, probes: &[Probe], retransmit: bool) -> Self {
        Schedule {
            start,
            probes: probes.to_vec(),
            sent: vec![0; probes.len()],
            settled: vec![false; probes.len()],
            retransmit,
        }
    }

    fn attempts(&self, i: usize) -> u8 {
        if self.retransmit {
            self.probes[i].attempts
        } else {
            self.probes[i].attempts.min(1)
        }
    }

    fn attempt_at(&self, i: usize, attempt: u8) -> Instant {
        self.start + self.probes[i].attempt_at(attempt)
    }

    /// When probe `i` is given up as unanswered.
    pub fn gives_up_at(&self, i: usize) -> Instant {
        self.start + self.probes[i].gives_up_at()
    }

    /// True while an answer to probe `i` still counts.
    pub fn is_open(&self, i: usize, now: Instant) -> bool {
        !self.settled[i] && now < self.gives_up_at(i)
    }

    /// The attempts due at `now` (probe index, attempt number), in plan order, marked as sent.
    /// An attempt overtaken by a later one (the loop woke late) is skipped, not sent twice.
    pub fn due(&mut self, now: Instant) -> Vec<(usize, u8)> {
        let mut due = Vec::new();
        for i in 0..self.probes.len() {
            if !self.is_open(i, now) {
                continue;
            }
            let mut latest = None;
            while self.sent[i] < self.attempts(i) && self.attempt_at(i, self.sent[i]) <= now {
                latest = Some(self.sent[i]);
                self.sent[i] += 1;
            }
            if let Some(attempt) = latest {
                due.push((i, attempt));
            }
        }
        due
    }

    /// True once every probe has had its first attempt (or was settled before it): the step
    /// opens no new flow after this, only retransmissions of the ones it has.
    pub fn first_attempts_sent(&self) -> bool {
        (0..self.probes.len()).all(|i| self.sent[i] > 0 || self.settled[i])
    }

    /// Probe `i` needs nothing more: it was answered or failed.
    pub fn settle(&mut self, i: usize) {
        self.settled[i] = true;
    }

    /// Probes settled or given up by `now`.
    pub fn done(&self, now: Instant) -> usize {
        (0..self.probes.len())
            .filter(|&i| !self.is_open(i, now))
            .count()
    }

    /// True when no probe is open any more.
    pub fn finished(&self, now: Instant) -> bool {
        self.done(now) == self.probes.len()
    }

    /// The next instant something happens on its own: an attempt falls due or a probe is given
    /// up. `None` when every probe is done.
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        (0..self.probes.len())
            .filter(|&i| self.is_open(i, now))
            .map(|i| {
                let give_up = self.gives_up_at(i);
                if self.sent[i] < self.attempts(i) {
                    self.attempt_at(i, self.sent[i]).min(give_up)
                } else {
                    give_up
                }
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fingerprint::{Socket, Target};
    use crate::wire::attr::ChangeRequest;
    use std::time::Duration;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn probe(at: u64, attempts: u8, wait: u64) -> Probe {
        spaced(at, attempts, wait, wait)
    }

    fn spaced(at: u64, attempts: u8, interval: u64, wait: u64) -> Probe {
        Probe {
            socket: Socket::Mapping,
            fresh: true,
            target: Target::Primary,
            to: "192.0.2.1:3478".parse().unwrap(),
            change: ChangeRequest::default(),
            at: MS(at),
            attempts,
            interval: MS(interval),
            wait: MS(wait),
        }
    }

    #[test]
    fn attempts_go_out_at_their_times_until_settled() {
        let t0 = Instant::now();
        let at = |ms| t0 + MS(ms);
        let mut schedule = Schedule::new(t0, &[probe(0, 3, 100), probe(50, 2, 100)], true);
        assert_eq!(schedule.due(at(0)), [(0, 0)]);
        assert_eq!(schedule.due(at(0)), []);
        assert!(!schedule.first_attempts_sent());
        assert_eq!(schedule.next_wake(at(0)), Some(at(50)));
        assert_eq!(schedule.due(at(50)), [(1, 0)]);
        assert!(schedule.first_attempts_sent());
        assert_eq!(schedule.next_wake(at(50)), Some(at(100)));
        assert_eq!(schedule.due(at(100)), [(0, 1)]);
        schedule.settle(0);
        assert_eq!(schedule.done(at(100)), 1);
        assert_eq!(schedule.next_wake(at(100)), Some(at(150)));
        assert_eq!(schedule.due(at(150)), [(1, 1)]);
        assert_eq!(schedule.due(at(200)), []);
        assert_eq!(
            schedule.next_wake(at(200)),
            Some(at(250)),
            "probe 1 gives up"
        );
        assert!(!schedule.finished(at(249)));
        assert!(schedule.finished(at(250)));
        assert_eq!(schedule.next_wake(at(250)), None);
    }

    #[test]
    fn a_late_wakeup_sends_only_the_latest_attempt() {
        let t0 = Instant::now();
        let mut schedule = Schedule::new(t0, &[probe(0, 3, 100)], true);
        assert_eq!(schedule.due(t0 + MS(250)), [(0, 2)]);
        assert_eq!(schedule.next_wake(t0 + MS(250)), Some(t0 + MS(300)));
    }

    #[test]
    fn without_retransmission_one_attempt_waits_the_whole_window() {
        let t0 = Instant::now();
        let mut schedule = Schedule::new(t0, &[probe(10, 2, 100)], false);
        assert_eq!(schedule.due(t0 + MS(10)), [(0, 0)]);
        assert_eq!(schedule.due(t0 + MS(150)), []);
        assert_eq!(schedule.next_wake(t0 + MS(150)), Some(t0 + MS(210)));
        assert!(schedule.is_open(0, t0 + MS(209)));
        assert!(!schedule.is_open(0, t0 + MS(210)));
    }

    #[test]
    fn closely_spaced_attempts_then_one_long_wait() {
        let t0 = Instant::now();
        let at = |ms| t0 + MS(ms);
        let mut schedule = Schedule::new(t0, &[spaced(0, 3, 10, 100)], true);
        assert_eq!(schedule.due(at(0)), [(0, 0)]);
        assert_eq!(schedule.next_wake(at(0)), Some(at(10)));
        assert_eq!(schedule.due(at(10)), [(0, 1)]);
        assert_eq!(schedule.due(at(20)), [(0, 2)]);
        assert_eq!(schedule.next_wake(at(20)), Some(at(120)));
        assert!(schedule.is_open(0, at(119)));
        assert!(schedule.finished(at(120)));
    }

    #[test]
    fn a_probe_settled_before_its_time_counts_as_sent() {
        let t0 = Instant::now();
        let mut schedule = Schedule::new(t0, &[probe(0, 1, 100), probe(50, 1, 100)], false);
        assert_eq!(schedule.due(t0), [(0, 0)]);
        schedule.settle(1);
        assert!(schedule.first_attempts_sent());
        assert_eq!(schedule.due(t0 + MS(50)), []);
    }
}
