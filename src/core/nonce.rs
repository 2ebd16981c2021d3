//! Stateless server nonces (RFC 8489 §9.2): the server keeps nothing per client or per attacker.
//!
//! A nonce is `hex(t) ‖ hex(mac)`: `t` is the issue time in seconds since the issuer started
//! (4 bytes), `mac` the first 8 bytes of HMAC-SHA256(secret, t ‖ client IP). The secret is drawn
//! afresh per process, so a restart invalidates every nonce (clients get 438 and retry once).
//! Binding the nonce to the client's IP means a request captured on the wire and replayed from
//! another address fails the nonce check before its MESSAGE-INTEGRITY is even looked at; replays
//! from the same IP are caught by [`crate::core::replay`].

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::wire::integrity::hmac_sha256;

/// How long a nonce is good for. Long enough that a client calling a few times an hour rarely
/// pays a 438 round trip; short enough that the replay guard, which must remember every
/// authenticated transaction for this long, stays small.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// Length of a nonce on the wire: 8 hex digits of time, 16 of MAC. Kept short because the
/// nonce rides in the 401 that unauthenticated sources receive (see the amplification test).
pub const NONCE_LEN: usize = 24;

/// What a presented nonce is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Ours, for this IP, within its lifetime; `issued` is its time stamp (seconds).
    Fresh { issued: u32 },
    /// Ours and for this IP, but too old: answer 438 with a new one.
    Stale,
    /// Not ours, or issued to another IP, or garbled: also answered 438, since RFC 8489 treats
    /// any nonce the server does not accept as stale.
    Invalid,
}

/// Issues and checks nonces.
#[derive(Debug, Clone)]
pub struct NonceIssuer {
    secret: [u8; 32],
    epoch: Instant,
    lifetime: Duration,
}

impl NonceIssuer {
    /// `secret` must be random and private to this process; `epoch` is the issuer's start.
    pub fn new(secret: [u8; 32], epoch: Instant) -> Self {
        NonceIssuer {
            secret,
            epoch,
            lifetime: NONCE_LIFETIME,
        }
    }

    /// The issue-time stamp for `now`.
    pub fn stamp(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_secs() as u32
    }

    /// A nonce for a client at `ip`.
    pub fn issue(&self, now: Instant, ip: IpAddr) -> String {
        let stamp = self.stamp(now);
        let mac = self.mac(stamp, ip);
        let mut text = format!("{stamp:08x}");
        for byte in mac {
            text.push_str(&format!("{byte:02x}"));
        }
        text
    }

    /// Checks a nonce presented by a client at `ip`.
    pub fn check(&self, now: Instant, ip: IpAddr, nonce: &[u8]) -> NonceCheck {
        let Some((stamp, mac)) = decode(nonce) else {
            return NonceCheck::Invalid;
        };
        if !constant_time_eq(&mac, &self.mac(stamp, ip)) {
            return NonceCheck::Invalid;
        }
        let age = Duration::from_secs(u64::from(self.stamp(now).saturating_sub(stamp)));
        if stamp > self.stamp(now) || age >= self.lifetime {
            return NonceCheck::Stale;
        }
        NonceCheck::Fresh { issued: stamp }
    }

    fn mac(&self, stamp: u32, ip: IpAddr) -> [u8; 8] {
        let mut data = stamp.to_be_bytes().to_vec();
        match ip {
            IpAddr::V4(v4) => data.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => data.extend_from_slice(&v6.octets()),
        }
        hmac_sha256(&self.secret, &data)[..8]
            .try_into()
            .expect("8 of 32 bytes")
    }
}

fn decode(nonce: &[u8]) -> Option<(u32, [u8; 8])> {
    if nonce.len() != NONCE_LEN {
        return None;
    }
    let text = std::str::from_utf8(nonce).ok()?;
    let stamp = u32::from_str_radix(&text[..8], 16).ok()?;
    let mut mac = [0u8; 8];
    for (i, byte) in mac.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(8 + 2 * i..10 + 2 * i)?, 16).ok()?;
    }
    Some((stamp, mac))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_nonce_is_good_for_its_ip_and_lifetime_only() {
        let start = Instant::now();
        let issuer = NonceIssuer::new([7; 32], start);
        let at = start + Duration::from_secs(100);
        let nonce = issuer.issue(at, ip("198.51.100.7"));
        assert_eq!(nonce.len(), NONCE_LEN);
        let client = ip("198.51.100.7");
        assert_eq!(
            issuer.check(at, client, nonce.as_bytes()),
            NonceCheck::Fresh { issued: 100 }
        );
        let later = at + NONCE_LIFETIME - Duration::from_secs(1);
        assert!(matches!(
            issuer.check(later, client, nonce.as_bytes()),
            NonceCheck::Fresh { .. }
        ));
        assert_eq!(
            issuer.check(at + NONCE_LIFETIME, client, nonce.as_bytes()),
            NonceCheck::Stale
        );
        // Another address (a replay from elsewhere), IPv6 included.
        assert_eq!(
            issuer.check(at, ip("198.51.100.8"), nonce.as_bytes()),
            NonceCheck::Invalid
        );
        assert_eq!(
            issuer.check(at, ip("2001:db8::7"), nonce.as_bytes()),
            NonceCheck::Invalid
        );
    }

    #[test]
    fn another_process_secret_or_garbage_is_invalid() {
        let start = Instant::now();
        let client = ip("192.0.2.1");
        let nonce = NonceIssuer::new([1; 32], start).issue(start, client);
        let other = NonceIssuer::new([2; 32], start);
        assert_eq!(
            other.check(start, client, nonce.as_bytes()),
            NonceCheck::Invalid
        );
        for garbage in [
            &b""[..],
            b"zz",
            &[b'g'; NONCE_LEN],
            "é".repeat(12).as_bytes(),
        ] {
            assert_eq!(other.check(start, client, garbage), NonceCheck::Invalid);
        }
        // A nonce from the future (clock stamp forged upwards) cannot carry a valid MAC.
        let mut forged = nonce.clone().into_bytes();
        forged[7] = b'f';
        assert_eq!(
            NonceIssuer::new([1; 32], start).check(start, client, &forged),
            NonceCheck::Invalid
        );
    }
}
