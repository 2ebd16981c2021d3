//! Per-source token buckets on answers, so the server cannot be used to flood a third party.
//!
//! A UDP source address can be forged, so whoever sends requests "from" a victim's IP makes the
//! server answer the victim. Answers are never larger than the Binding answer needs (see the
//! amplification test in `server_tests.rs`), and this bucket caps how many one IP receives per
//! second. Buckets are keyed by IP, not IP and port: a spoofer picks ports freely, the victim is
//! an address. Memory is capped: once `max_sources` IPs have buckets, every new IP shares one
//! overflow bucket until the once-a-second sweep frees idle (full) buckets.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Default answers per second per source IP. A `natlens nat` run sends a few dozen probes; a
/// carrier-grade NAT puts hundreds of users behind one IP, so 2,000/s (burst 4,000) leaves room
/// for many simultaneous diagnostics while capping what one forged source can direct at a
/// victim to about 200 kB/s of Binding answers.
pub const DEFAULT_RATE: u32 = 2_000;

/// Most IPs with their own bucket: about 48 bytes each, so 100k buckets are ~5 MB.
pub const MAX_SOURCES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Bucket {
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
    }

    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        self.refill(now, rate, burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A keyed multiply-xor hash for IP addresses: this lookup runs once per datagram, and SipHash
/// cost a third of the limiter's time (benches/answer_limit.rs). The key is drawn per process, so
/// a flood from chosen source addresses cannot aim at one bucket chain.
#[derive(Debug, Clone, Copy)]
struct IpHashKey(u64);

impl BuildHasher for IpHashKey {
    type Hasher = IpHasher;
    fn build_hasher(&self) -> IpHasher {
        IpHasher(self.0)
    }
}

#[derive(Debug)]
struct IpHasher(u64);

impl Hasher for IpHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            self.0 ^= self.0 >> 29;
        }
    }

    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (self.0 >> 31)
    }
}

/// Token buckets per source IP.
#[derive(Debug)]
pub struct SourceLimiter {
    rate: f64,
    burst: f64,
    buckets: HashMap<IpAddr, Bucket, IpHashKey>,
    overflow: Bucket,
    max_sources: usize,
}

impl SourceLimiter {
    /// `rate` answers per second per IP, with a burst of twice that; `hash_key` should be
    /// random per process.
    pub fn new(rate: u32, max_sources: usize, now: Instant, hash_key: u64) -> Self {
        let rate = f64::from(rate.max(1));
        SourceLimiter {
            rate,
            burst: rate * 2.0,
            buckets: HashMap::with_hasher(IpHashKey(hash_key | 1)),
            overflow: Bucket::full(rate * 2.0, now),
            max_sources,
        }
    }

    /// True when `ip` may get one more answer at `now` (and takes its token).
    pub fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        let (rate, burst) = (self.rate, self.burst);
        if let Some(bucket) = self.buckets.get_mut(&ip) {
            return bucket.take(now, rate, burst);
        }
        if self.buckets.len() >= self.max_sources {
            return self.overflow.take(now, rate, burst);
        }
        let mut bucket = Bucket::full(burst, now);
        let allowed = bucket.take(now, rate, burst);
        self.buckets.insert(ip, bucket);
        allowed
    }

    /// Frees buckets that have refilled completely: their source has been quiet long enough
    /// that a fresh bucket is the same thing.
    pub fn sweep(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, bucket| {
            bucket.refill(now, rate, burst);
            bucket.tokens < burst
        });
    }

    /// Sources with a bucket of their own.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// How long a drained bucket needs to refill completely.
    pub fn refill_time(&self) -> Duration {
        Duration::from_secs_f64(self.burst / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([198, 51, 100, last])
    }

    #[test]
    fn a_source_gets_its_burst_then_the_rate() {
        let start = Instant::now();
        let mut limiter = SourceLimiter::new(100, 10, start, 7);
        let allowed = (0..1000).filter(|_| limiter.allow(start, ip(1))).count();
        assert_eq!(allowed, 200, "burst = 2 x rate");
        // One virtual second later: exactly the rate's worth more.
        let later = start + Duration::from_secs(1);
        let allowed = (0..1000).filter(|_| limiter.allow(later, ip(1))).count();
        assert_eq!(allowed, 100);
        // Other sources are not affected by the first one's flood.
        assert!(limiter.allow(later, ip(2)));
    }

    #[test]
    fn steady_traffic_under_the_rate_is_never_refused() {
        let start = Instant::now();
        let mut limiter = SourceLimiter::new(100, 10, start, 7);
        for tick in 0..10_000u64 {
            let now = start + Duration::from_millis(tick * 11);
            assert!(limiter.allow(now, ip(1)), "tick {tick}");
        }
    }

    #[test]
    fn memory_is_capped_by_an_overflow_bucket_and_the_sweep() {
        let start = Instant::now();
        let mut limiter = SourceLimiter::new(10, 4, start, 7);
        for last in 0..4 {
            assert!(limiter.allow(start, ip(last)));
        }
        // Spoofed floods from ever new IPs share one bucket of 20.
        let allowed = (4..=250)
            .filter(|&last| limiter.allow(start, ip(last)))
            .count();
        assert_eq!(allowed, 20);
        assert_eq!(limiter.tracked(), 4);
        limiter.sweep(start + limiter.refill_time());
        assert_eq!(limiter.tracked(), 0);
        assert!(limiter.allow(start + limiter.refill_time(), ip(99)));
    }
}
