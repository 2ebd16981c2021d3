//! Expiry of silent UDP sessions without a sweep over all of them: a timing wheel of one-second
//! buckets, each holding the sessions last seen in that second when they were filed.
//!
//! A keepalive costs nothing here: it only moves the session's `last_seen`. When a bucket comes
//! due (its second lies more than the expiry in the past), each entry is checked against the
//! session's real `last_seen`: silent ones expire, the others are filed again under the second
//! they were last seen in. So each session is looked at about once per expiry period, whatever
//! the keepalive rate. Entries of sessions removed meanwhile (logout, take-over) are left in
//! place and skipped when their turn comes (their slot is empty or holds a newer generation).
//!
//! A mass expiry is spread over calls: [`ExpiryWheel::next`] hands out due entries one at a
//! time and the registry stops after a batch, so that the server can answer requests between
//! batches instead of stalling on a million removals at once.

/// Buckets in the wheel: one per second. Expiry times beyond this still work; their entries
/// are just looked at (and filed again) more than once per expiry period.
const BUCKETS: u64 = 256;
const SECOND: u64 = 1_000_000_000;

/// A slot index and the generation of the session filed from it.
pub(super) type Entry = (u32, u32);

#[derive(Debug)]
pub(super) struct ExpiryWheel {
    buckets: Vec<Vec<Entry>>,
    /// The next second whose bucket has not been taken out yet.
    next_second: u64,
    /// Entries of the buckets taken out and not yet handed out.
    draining: Vec<Entry>,
}

impl Default for ExpiryWheel {
    fn default() -> Self {
        ExpiryWheel {
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            next_second: 0,
            draining: Vec::new(),
        }
    }
}

impl ExpiryWheel {
    /// Files `entry` under the second its session was last seen in (nanoseconds since the
    /// registry's epoch).
    pub(super) fn file(&mut self, entry: Entry, last_seen: u64) {
        self.buckets[((last_seen / SECOND) % BUCKETS) as usize].push(entry);
    }

    /// The last second all of whose sessions are silent for longer than `expiry` at `now`
    /// (all nanoseconds), if any.
    fn due_until(now: u64, expiry: u64) -> Option<u64> {
        (now.checked_sub(expiry)? / SECOND).checked_sub(1)
    }

    /// Whether entries are due at `now`: taken out and not handed out, or in a due bucket.
    pub(super) fn has_due(&self, now: u64, expiry: u64) -> bool {
        if !self.draining.is_empty() {
            return true;
        }
        let Some(last) = Self::due_until(now, expiry) else {
            return false;
        };
        // At most one turn of the wheel, and usually none: the sweep left nothing due.
        let first = self.next_second.max((last + 1).saturating_sub(BUCKETS));
        (first..=last).any(|second| !self.buckets[(second % BUCKETS) as usize].is_empty())
    }

    /// The next due entry: one whose session may be silent for longer than `expiry` (the
    /// caller checks, and files it again when it is not).
    pub(super) fn next(&mut self, now: u64, expiry: u64) -> Option<Entry> {
        loop {
            if let Some(entry) = self.draining.pop() {
                return Some(entry);
            }
            let last = Self::due_until(now, expiry)?;
            if self.next_second > last {
                return None;
            }
            // After a long quiet spell, one turn of the wheel covers every bucket.
            self.next_second = self.next_second.max((last + 1).saturating_sub(BUCKETS));
            let bucket = &mut self.buckets[(self.next_second % BUCKETS) as usize];
            std::mem::swap(&mut self.draining, bucket);
            self.next_second += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_comes_due_once_its_whole_second_is_past_the_expiry() {
        let mut wheel = ExpiryWheel::default();
        let expiry = 45 * SECOND;
        wheel.file((1, 0), 2 * SECOND + 500);
        assert!(!wheel.has_due(47 * SECOND, expiry));
        assert_eq!(wheel.next(47 * SECOND + 999, expiry), None);
        assert!(wheel.has_due(48 * SECOND, expiry));
        assert_eq!(wheel.next(48 * SECOND, expiry), Some((1, 0)));
        assert_eq!(wheel.next(48 * SECOND, expiry), None);
        assert!(!wheel.has_due(48 * SECOND, expiry));
    }

    #[test]
    fn a_long_jump_still_hands_out_every_entry_once() {
        let mut wheel = ExpiryWheel::default();
        for second in 0..600 {
            wheel.file((second as u32, 0), second * SECOND);
        }
        let mut seen: Vec<u32> = std::iter::from_fn(|| wheel.next(10_000 * SECOND, SECOND))
            .map(|(slot, _)| slot)
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..600).collect::<Vec<u32>>());
    }
}
