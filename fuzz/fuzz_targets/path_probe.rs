//! The path probe's core (`core::path::PathProbe`): arbitrary datagrams and ICMP errors (type,
//! offender, quoted bytes) fed to a probe whose requests are out, with the real requests' bytes
//! spliced in now and then so quotes that match get exercised too. Properties beyond "never
//! panics": every hop's TTL is one probed, at most one hop is the server and it is the last,
//! answered hops carry an address and a class, and the verdict over the hops never says more
//! layers than it lists.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use natlens::core::path::{judge, IcmpReport, PathEvidence, PathProbe};
use natlens::core::unreachable::Icmp;
use rand::rngs::mock::StepRng;

const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)), 3478);

fuzz_target!(|data: &[u8]| {
    let Some((&max_ttl, mut rest)) = data.split_first() else {
        return;
    };
    let mut rng = StepRng::new(0x0102_0304_0506_0708, 0x1111);
    let mut probe = PathProbe::new(SERVER, max_ttl, &mut rng);
    let start = Instant::now();
    let sent: Vec<Vec<u8>> = std::iter::from_fn(|| probe.poll_transmit(start))
        .map(|t| t.payload)
        .collect();
    let mut now = start;
    while let [kind, icmp_type, who, len, tail @ ..] = rest {
        let take = usize::from(*len).min(tail.len());
        let (bytes, after) = tail.split_at(take);
        rest = after;
        now += Duration::from_micros(u64::from(*who) * 10);
        // Half the time the quote or datagram is one of our requests, perhaps cut short.
        let payload: &[u8] = if kind & 0x80 != 0 && !sent.is_empty() {
            let request = &sent[usize::from(*who) % sent.len()];
            &request[..request.len().min(usize::from(*len).max(1))]
        } else {
            bytes
        };
        let from = IpAddr::V4(Ipv4Addr::new(
            if who & 1 == 0 { 203 } else { 100 },
            64,
            0,
            *who,
        ));
        match kind & 0x03 {
            0 => probe.handle_datagram(SocketAddr::new(from, 3478), payload, now),
            1 => probe.handle_datagram(SERVER, payload, now),
            _ => {
                let error = IcmpReport {
                    icmp: if kind & 0x04 == 0 { Icmp::V4 } else { Icmp::V6 },
                    icmp_type: *icmp_type,
                    offender: (kind & 0x08 == 0).then_some(from),
                    to: if kind & 0x10 == 0 {
                        SERVER
                    } else {
                        SocketAddr::new(from, 9)
                    },
                    quote: payload,
                };
                probe.handle_icmp(error, now);
            }
        }
    }
    let hops = probe.hops();
    let mut ttls: Vec<u8> = hops.iter().map(|h| h.ttl).collect();
    ttls.dedup();
    assert_eq!(ttls.len(), hops.len(), "one hop per TTL");
    assert!(hops.iter().all(|h| h.ttl >= 1 && h.ttl <= max_ttl.max(1)));
    let servers = hops.iter().filter(|h| h.server).count();
    assert!(servers <= 1);
    if servers == 1 {
        assert!(hops.last().unwrap().server, "the server is the last hop");
    }
    assert!(hops
        .iter()
        .all(|h| h.address.is_some() == h.class.is_some()));
    let evidence = PathEvidence {
        hops,
        public_address: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1))),
        ..PathEvidence::default()
    };
    let report = judge(
        &evidence,
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))),
        probe.ignored(),
    );
    if let Some(layers) = report.nat_layers {
        assert_eq!(usize::from(layers), report.layers.len());
    }
});
