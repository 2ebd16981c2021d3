//! Client transactions (RFC 8489 §6.2): a table of requests in flight, each retransmitted over
//! UDP with a doubling timeout until answered or given up, or merely timed out over TCP.
//!
//! Sans-IO: callers pass `now`, drain [`Transactions::poll_due`] after every input, and sleep
//! until [`Transactions::next_deadline`].
//!
//! Everything that walks the table (retransmissions, timeouts, cancellations, payloads) does so
//! in the order the transactions started, never in hash order: what the callers make of it
//! reaches the wire and the logs, and a replayed session must produce the same output.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::wire::TransactionId;

/// How a transaction is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// UDP: send, then again after `rto`, `2·rto`, `4·rto`, … up to `sends` sends in all, then
    /// wait `final_wait` for a late answer. RFC 8489 §6.2.1 defaults: RTO 500 ms, Rc 7,
    /// Rm 16 (so the last wait is 16 · RTO = 8 s, 39.5 s in all).
    Datagram {
        rto: Duration,
        sends: u32,
        final_wait: Duration,
    },
    /// TCP: the stream retransmits; give up after `timeout` (RFC 8489 Ti = 39.5 s).
    Stream { timeout: Duration },
}

impl Retry {
    /// RFC 8489's UDP defaults.
    pub const RFC_DATAGRAM: Retry = Retry::Datagram {
        rto: Duration::from_millis(500),
        sends: 7,
        final_wait: Duration::from_millis(8000),
    };

    /// The same doubling schedule cut to end by `budget`, for hops that must answer inside an
    /// outer transaction's lifetime.
    pub fn datagram_within(budget: Duration) -> Retry {
        Retry::Datagram {
            rto: Duration::from_millis(250),
            sends: 7,
            final_wait: budget,
        }
    }
}

#[derive(Debug)]
struct InFlight<P> {
    tid: TransactionId,
    bytes: Vec<u8>,
    retry: Retry,
    sends: u32,
    next_send: Option<Instant>,
    give_up_at: Instant,
    payload: P,
}

/// What became due at a point in time.
#[derive(Debug)]
pub enum Due<'a, P> {
    /// Send these bytes again.
    Retransmit {
        tid: TransactionId,
        bytes: &'a [u8],
        payload: &'a P,
    },
    /// No answer came in time; the transaction is gone.
    TimedOut { tid: TransactionId, payload: P },
}

/// Requests in flight, in start order, found by transaction ID.
#[derive(Debug)]
pub struct Transactions<P> {
    /// Keyed by start sequence number, so iteration is start order.
    in_flight: BTreeMap<u64, InFlight<P>>,
    by_tid: HashMap<TransactionId, u64>,
    next_seq: u64,
}

impl<P> Default for Transactions<P> {
    fn default() -> Self {
        Transactions {
            in_flight: BTreeMap::new(),
            by_tid: HashMap::new(),
            next_seq: 0,
        }
    }
}

impl<P> Transactions<P> {
    /// Records a request that the caller has just sent for the first time.
    pub fn start(
        &mut self,
        now: Instant,
        tid: TransactionId,
        bytes: Vec<u8>,
        retry: Retry,
        payload: P,
    ) {
        let (next_send, give_up_at) = match retry {
            Retry::Datagram {
                rto,
                sends,
                final_wait,
            } => {
                let total = schedule_total(rto, sends, final_wait);
                let next = (sends > 1).then(|| now + rto);
                (next, now + total)
            }
            Retry::Stream { timeout } => (None, now + timeout),
        };
        let entry = InFlight {
            tid,
            bytes,
            retry,
            sends: 1,
            next_send,
            give_up_at,
            payload,
        };
        // A reused transaction ID replaces the old transaction, as a map insert would.
        self.remove(&tid);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_tid.insert(tid, seq);
        self.in_flight.insert(seq, entry);
    }

    fn remove(&mut self, tid: &TransactionId) -> Option<InFlight<P>> {
        let seq = self.by_tid.remove(tid)?;
        self.in_flight.remove(&seq)
    }

    /// Takes the transaction an answer belongs to; `None` for strays and late duplicates.
    pub fn finish(&mut self, tid: &TransactionId) -> Option<P> {
        self.remove(tid).map(|entry| entry.payload)
    }

    /// Drops every transaction whose payload matches, e.g. those on a closed connection, and
    /// returns them in start order.
    pub fn cancel_where(&mut self, mut matches: impl FnMut(&P) -> bool) -> Vec<(TransactionId, P)> {
        let doomed: Vec<TransactionId> = self
            .in_flight
            .values()
            .filter(|entry| matches(&entry.payload))
            .map(|entry| entry.tid)
            .collect();
        doomed
            .iter()
            .filter_map(|tid| self.remove(tid))
            .map(|entry| (entry.tid, entry.payload))
            .collect()
    }

    /// The payload of a transaction in flight, without finishing it.
    pub fn payload(&self, tid: &TransactionId) -> Option<&P> {
        let seq = self.by_tid.get(tid)?;
        self.in_flight.get(seq).map(|entry| &entry.payload)
    }

    /// Every payload in flight, in start order.
    pub fn payloads(&self) -> impl Iterator<Item = &P> {
        self.in_flight.values().map(|entry| &entry.payload)
    }

    pub fn contains(&self, tid: &TransactionId) -> bool {
        self.by_tid.contains_key(tid)
    }

    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// The earliest retransmission or give-up time.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.in_flight
            .values()
            .map(|entry| {
                entry
                    .next_send
                    .unwrap_or(entry.give_up_at)
                    .min(entry.give_up_at)
            })
            .min()
    }

    /// Everything due at `now`: timeouts are removed and returned by value, retransmissions are
    /// rescheduled and returned by reference to their bytes.
    /// Both kinds come in start order: retransmissions first, then timeouts.
    pub fn poll_due(&mut self, now: Instant) -> Vec<Due<'_, P>> {
        let expired: Vec<TransactionId> = self
            .in_flight
            .values()
            .filter(|entry| entry.give_up_at <= now)
            .map(|entry| entry.tid)
            .collect();
        let mut due: Vec<Due<'_, P>> = Vec::new();
        let mut timed_out = Vec::new();
        for tid in expired {
            if let Some(entry) = self.remove(&tid) {
                timed_out.push(Due::TimedOut {
                    tid,
                    payload: entry.payload,
                });
            }
        }
        for entry in self.in_flight.values_mut() {
            if entry.next_send.is_some_and(|at| at <= now) {
                entry.sends += 1;
                entry.next_send = next_send_after(entry.retry, entry.sends, now);
                due.push(Due::Retransmit {
                    tid: entry.tid,
                    bytes: &entry.bytes,
                    payload: &entry.payload,
                });
            }
        }
        due.extend(timed_out);
        due
    }
}

/// When the next retransmission goes out after send number `sends`, if any.
fn next_send_after(retry: Retry, sends: u32, now: Instant) -> Option<Instant> {
    match retry {
        Retry::Datagram {
            rto, sends: max, ..
        } if sends < max => Some(now + rto * 2u32.pow(sends - 1)),
        _ => None,
    }
}

/// Total lifetime of a datagram transaction: the doubling waits between sends plus the final wait.
fn schedule_total(rto: Duration, sends: u32, final_wait: Duration) -> Duration {
    let waits: Duration = (0..sends.saturating_sub(1))
        .map(|i| rto * 2u32.pow(i))
        .sum();
    waits + final_wait
}

#[cfg(test)]
mod tests {
    use super::*;

    const TID: TransactionId = TransactionId([1; 12]);

    #[test]
    fn rfc_schedule_totals_39_5_seconds() {
        let Retry::Datagram {
            rto,
            sends,
            final_wait,
        } = Retry::RFC_DATAGRAM
        else {
            unreachable!()
        };
        assert_eq!(
            schedule_total(rto, sends, final_wait),
            Duration::from_millis(39_500)
        );
    }

    #[test]
    fn datagram_retransmits_with_doubling_then_times_out() {
        let start = Instant::now();
        let mut table = Transactions::default();
        table.start(start, TID, vec![1, 2, 3], Retry::RFC_DATAGRAM, "login");
        let mut sends_at = Vec::new();
        let mut now = start;
        let mut timed_out = false;
        while let Some(deadline) = table.next_deadline() {
            now = deadline;
            for due in table.poll_due(now) {
                match due {
                    Due::Retransmit { bytes, .. } => {
                        assert_eq!(bytes, [1, 2, 3]);
                        sends_at.push((now - start).as_millis());
                    }
                    Due::TimedOut { payload, .. } => {
                        assert_eq!(payload, "login");
                        timed_out = true;
                    }
                }
            }
        }
        // RFC 8489 §6.2.1: sent at 0, 500, 1500, 3500, 7500, 15500, 31500 ms; gives up at 39500.
        assert_eq!(sends_at, [500, 1500, 3500, 7500, 15500, 31500]);
        assert!(timed_out);
        assert_eq!((now - start).as_millis(), 39_500);
    }

    #[test]
    fn answer_stops_retransmission_and_strays_are_ignored() {
        let now = Instant::now();
        let mut table = Transactions::default();
        table.start(
            now,
            TID,
            vec![],
            Retry::Stream {
                timeout: Duration::from_secs(5),
            },
            7,
        );
        assert_eq!(table.finish(&TransactionId([2; 12])), None);
        assert_eq!(table.finish(&TID), Some(7));
        assert_eq!(table.finish(&TID), None);
        assert!(table.next_deadline().is_none());
    }

    #[test]
    fn stream_transactions_never_retransmit() {
        let now = Instant::now();
        let mut table = Transactions::default();
        table.start(
            now,
            TID,
            vec![9],
            Retry::Stream {
                timeout: Duration::from_secs(2),
            },
            (),
        );
        assert!(table.poll_due(now + Duration::from_millis(1999)).is_empty());
        let due = table.poll_due(now + Duration::from_secs(2));
        assert!(matches!(due.as_slice(), [Due::TimedOut { .. }]));
    }

    /// Retransmissions, timeouts and cancellations come in start order, whatever the
    /// transaction IDs hash to: with hash order this fails for most seeds.
    #[test]
    fn everything_comes_out_in_start_order() {
        let start = Instant::now();
        let mut table = Transactions::default();
        let order: Vec<u8> = (0..32).map(|i| (i * 37 % 251) as u8).collect();
        for &byte in &order {
            let tid = TransactionId([byte; 12]);
            table.start(start, tid, vec![byte], Retry::RFC_DATAGRAM, byte);
        }
        let resent: Vec<u8> = table
            .poll_due(start + Duration::from_millis(500))
            .into_iter()
            .map(|due| match due {
                Due::Retransmit { payload, .. } => *payload,
                Due::TimedOut { payload, .. } => payload,
            })
            .collect();
        assert_eq!(resent, order);
        assert_eq!(table.payloads().copied().collect::<Vec<_>>(), order);
        let odd: Vec<u8> = table
            .cancel_where(|byte| byte % 2 == 1)
            .into_iter()
            .map(|(_, byte)| byte)
            .collect();
        let expected: Vec<u8> = order.iter().copied().filter(|b| b % 2 == 1).collect();
        assert_eq!(odd, expected);
        let timed_out: Vec<u8> = table
            .poll_due(start + Duration::from_secs(40))
            .into_iter()
            .filter_map(|due| match due {
                Due::TimedOut { payload, .. } => Some(payload),
                Due::Retransmit { .. } => None,
            })
            .collect();
        let even: Vec<u8> = order.iter().copied().filter(|b| b % 2 == 0).collect();
        assert_eq!(timed_out, even);
        assert!(table.is_empty());
    }
}
