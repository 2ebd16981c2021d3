//! The birthday strategy for a random-port NAT against a fixed one, and its odds.
//!
//! The random side holds `k` fresh sockets, each sending to the fixed side's one port, so its NAT
//! opens `k` bindings at unknown random ports. The fixed side sprays `n` distinct random ports of
//! the random side's range `N` from its one socket. One spray landing on one of the `k` ports
//! connects: if the spray comes first, the fixed side's NAT now admits that port and the holder's
//! next round gets in; if the binding came first, the spray gets in. So
//! `P = 1 − (1 − k/N)ⁿ` (sampling without replacement does a little better). The lab measured
//! this with k = 256 (docs/lab.md): about 174 requests for 50%; tailscale quotes 1024 → 98%, 2048 → 99.9%.
//!
//! Two random NATs (or a random one and a symmetric sequential one, whose every request leaves from
//! a new port) have no common port to aim at: a request pair meets only when *both* guesses are
//! right, so `P = 1 − (1 − 1/N²)^(nₐ·n_b)` (or `1 − (1 − 1/N)^k` for the sequential case), a few
//! per cent at any sane budget. The planner refuses those unless forced.

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::core::punch::profile::LOWEST_PORT;

/// Sockets the random side holds: frp and tailscale use 256, docs/lab.md measured it, and it is
/// far below the 1024 descriptors a default `ulimit -n` allows.
pub const BIRTHDAY_SOCKETS: u32 = 256;

/// The success probability a birthday spray is sized for when the budget allows: 99%, since a
/// failed punch costs the user a relay or a retry, and 99% needs only about 1160 requests with 256
/// sockets (1.2 s at the default rate).
pub const TARGET_SUCCESS: f64 = 0.99;

/// `1 − (1 − k/N)ⁿ`: `n` random requests against `k` open ports out of `N`.
pub fn success(holders: u32, requests: u32, range: u32) -> f64 {
    if holders >= range {
        return if requests > 0 { 1.0 } else { 0.0 };
    }
    let miss = (-f64::from(holders) / f64::from(range)).ln_1p();
    -(f64::from(requests) * miss).exp_m1()
}

/// What a birthday over TCP is sized for: 99.99%, about 2320 spray SYNs with 256 holders
/// (2.3 s at the default rate; the spray stops at the first connection). See
/// `strategy::for_tcp` for why more than [`TARGET_SUCCESS`].
pub const TCP_TARGET_SUCCESS: f64 = 0.9999;

/// Fewest requests for `target` success against `holders` open ports out of `range`.
pub fn requests_for(target: f64, holders: u32, range: u32) -> u32 {
    if holders == 0 || target <= 0.0 {
        return 0;
    }
    let miss = (-f64::from(holders) / f64::from(range.max(holders + 1))).ln_1p();
    let requests = (1.0 - target.min(1.0 - 1e-12)).ln() / miss;
    requests.ceil().min(f64::from(u32::MAX)) as u32
}

/// `1 − (1 − 1/N²)^(nₐ·n_b)`: two sides each guessing the other's random port for every flow.
pub fn blind_pair_success(flows_a: u32, flows_b: u32, range: u32) -> f64 {
    let pairs = f64::from(flows_a) * f64::from(flows_b);
    let miss = (-1.0 / (f64::from(range) * f64::from(range))).ln_1p();
    -(pairs * miss).exp_m1()
}

/// `count` distinct ports spread uniformly over the random NAT's range, in spray order. Seeded,
/// so that both ends compute the same list.
pub fn spray_ports(seed: u64, count: u32, range: u32) -> Vec<u16> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let count = count.min(range) as usize;
    rand::seq::index::sample(&mut rng, range as usize, count)
        .into_iter()
        .map(|i| LOWEST_PORT + i as u16)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::punch::profile::PORT_RANGE;

    #[test]
    fn matches_the_published_figures() {
        // docs/lab.md: 256 sockets, about 174 requests for 50%.
        assert_eq!(requests_for(0.5, 256, 64512), 175);
        // tailscale: 256 → 64%, 1024 → 98%, 2048 → 99.9%.
        let rounded = |n| (success(256, n, 64512) * 1000.0).round() / 10.0;
        assert_eq!(rounded(256), 63.9);
        assert_eq!(rounded(1024), 98.3);
        assert!(success(256, 2048, 64512) > 0.999);
        assert_eq!(
            requests_for(TARGET_SUCCESS, BIRTHDAY_SOCKETS, PORT_RANGE),
            1159
        );
        // tailscale: two hard NATs need about 170,000 requests per side for 99.9%.
        assert!(blind_pair_success(170_000, 170_000, 64512) > 0.999);
        assert!(blind_pair_success(10_000, 10_000, 64512) < 0.03);
    }

    #[test]
    fn edges() {
        assert_eq!(success(0, 1000, 100), 0.0);
        assert_eq!(success(100, 1, 100), 1.0);
        assert_eq!(success(5, 0, 100), 0.0);
        assert_eq!(requests_for(0.99, 0, 100), 0);
    }

    #[test]
    fn spray_ports_are_distinct_in_range_and_seeded() {
        let ports = spray_ports(7, 2000, PORT_RANGE);
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 2000);
        assert!(ports.iter().all(|&p| p >= LOWEST_PORT));
        assert_eq!(ports, spray_ports(7, 2000, PORT_RANGE));
        assert_ne!(ports, spray_ports(8, 2000, PORT_RANGE));
        assert_eq!(spray_ports(1, 10, 5).len(), 5);
    }
}
