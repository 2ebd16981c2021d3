//! Software interrupt coalescing for the UDP receive path.
//!
//! At a high request rate, waking for every datagram costs more than answering it: each wake is
//! an `epoll_wait`, a `recvmmsg` and a `sendmmsg` for one request. When the rate is high the
//! server therefore sleeps a fraction of a millisecond before polling, so that one wake finds a
//! batch. The added delay is far below any STUN client's 500 ms retransmission timeout; at low
//! rates nothing changes and answers go out at once.

use std::time::{Duration, Instant};

/// How long to let datagrams gather: ~20 requests at 100,000/s, and at most 0.2 ms added to an
/// answer.
pub const WAIT: Duration = Duration::from_micros(200);
/// Rate above which coalescing starts: below it, per-wake costs are a small share of a core.
pub const ENTER_RATE: f64 = 20_000.0;
/// Rate below which it stops again (hysteresis, so a rate near the threshold does not flap).
pub const EXIT_RATE: f64 = 10_000.0;
/// How often the rate is re-estimated.
pub const WINDOW: Duration = Duration::from_millis(10);

/// Tracks the receive rate and says whether to wait before polling.
#[derive(Debug)]
pub struct Coalescer {
    window_start: Instant,
    received: u64,
    active: bool,
}

impl Coalescer {
    pub fn new(now: Instant) -> Self {
        Coalescer {
            window_start: now,
            received: 0,
            active: false,
        }
    }

    /// Counts datagrams received at `now` and re-estimates the rate once a window has passed.
    pub fn record(&mut self, now: Instant, datagrams: usize) {
        self.received += datagrams as u64;
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < WINDOW {
            return;
        }
        let rate = self.received as f64 / elapsed.as_secs_f64();
        self.active = if self.active {
            rate > EXIT_RATE
        } else {
            rate > ENTER_RATE
        };
        self.window_start = now;
        self.received = 0;
    }

    /// The pause to take before the next poll, if the rate calls for one.
    pub fn wait(&self) -> Option<Duration> {
        self.active.then_some(WAIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(coalescer: &mut Coalescer, start: Instant, rate_per_ms: usize, ms: u64) -> Instant {
        let mut now = start;
        for _ in 0..ms {
            now += Duration::from_millis(1);
            coalescer.record(now, rate_per_ms);
        }
        now
    }

    #[test]
    fn waits_only_under_load_with_hysteresis() {
        let start = Instant::now();
        let mut coalescer = Coalescer::new(start);
        let now = feed(&mut coalescer, start, 5, 20); // 5,000/s
        assert_eq!(coalescer.wait(), None);
        let now = feed(&mut coalescer, now, 100, 20); // 100,000/s
        assert_eq!(coalescer.wait(), Some(WAIT));
        let now = feed(&mut coalescer, now, 15, 20); // 15,000/s: between the thresholds
        assert_eq!(coalescer.wait(), Some(WAIT), "stays on above the exit rate");
        feed(&mut coalescer, now, 5, 20);
        assert_eq!(coalescer.wait(), None);
    }

    #[test]
    fn thresholds_fit_together() {
        const { assert!(EXIT_RATE < ENTER_RATE) };
        // At the entry rate a window holds enough datagrams to estimate from.
        assert!(ENTER_RATE * WINDOW.as_secs_f64() >= 100.0);
        // The wait is short against STUN's RTO and against the window.
        assert!(WAIT * 50 <= WINDOW * 5 && WAIT < Duration::from_millis(1));
    }
}
