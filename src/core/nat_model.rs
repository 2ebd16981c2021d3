//! A deterministic model of one NAT's translation table for one transport (RFC 4787 vocabulary),
//! so that the fingerprint classifier and the punch planner can be tested against every
//! mapping × filtering × allocation combination on a virtual clock.
//!
//! The model is deliberately strict where real NATs differ: a public port belongs to one binding
//! at a time (so a port-preserving NAT with address-dependent mapping gives the second
//! destination a different port, instead of silently looking endpoint-independent), only
//! outbound packets refresh a binding (RFC 4787 REQ-6 allows either), and hairpinned packets skip
//! filtering (a NAT that hairpins trusts its own inside hosts). A UDP and a TCP table are two
//! models: docs/lab.md found one `numgen` counter serving both, which a test can mimic by feeding
//! both transports' flows into one model.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::core::fingerprint::Behaviour;

/// Linux's idle timeout for an answered UDP flow (`nf_conntrack_udp_timeout_stream`), the
/// longest a home router commonly keeps a UDP binding; RFC 4787 REQ-5 asks for at least 2 min.
pub const DEFAULT_BINDING_TIMEOUT: Duration = Duration::from_secs(120);

/// How a NAT picks the public port of a new binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortAllocation {
    /// Keep the internal port when it is free, else the next free one above it (Linux
    /// `masquerade`).
    Preserving,
    /// `start`, `start + step`, `start + 2·step`, … one per new binding, skipping ports in use
    /// and wrapping inside the port range (`snat … numgen inc`). `step` may be negative.
    Sequential { start: u16, step: i32 },
    /// A uniformly random free port from a seeded generator (`masquerade random-fully`).
    Random { seed: u64 },
}

/// Other inside hosts opening one new flow every `every`, each taking a public port the way
/// the NAT allocates them. This is the noise docs/lab.md saw slip in between probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contention {
    pub every: Duration,
}

/// Everything that decides what the model does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatConfig {
    pub public_ip: IpAddr,
    pub mapping: Behaviour,
    pub filtering: Behaviour,
    pub allocation: PortAllocation,
    pub contention: Option<Contention>,
    pub hairpin: bool,
    /// Idle time after which a binding is forgotten (refreshed by outbound packets only).
    pub binding_timeout: Duration,
    /// Public ports the NAT hands out.
    pub ports: RangeInclusive<u16>,
}

impl NatConfig {
    /// A NAT with the given behaviours, no contention, no hairpinning, the default timeout and
    /// the non-privileged port range.
    pub fn new(
        public_ip: IpAddr,
        mapping: Behaviour,
        filtering: Behaviour,
        allocation: PortAllocation,
    ) -> Self {
        NatConfig {
            public_ip,
            mapping,
            filtering,
            allocation,
            contention: None,
            hairpin: false,
            binding_timeout: DEFAULT_BINDING_TIMEOUT,
            ports: 1024..=65535,
        }
    }
}

/// One row of the translation table.
#[derive(Debug, Clone)]
struct Binding {
    internal: SocketAddr,
    /// The destination the binding was made for (only its IP matters for address-dependent
    /// mapping, none of it for endpoint-independent).
    first_destination: SocketAddr,
    public_port: u16,
    /// Every remote endpoint an outbound packet went to: the filter's permissions.
    contacted: Vec<SocketAddr>,
    expires: Instant,
}

/// The NAT. Time comes in as an argument and randomness from the seed: the same inputs give the
/// same ports, run after run.
#[derive(Debug)]
pub struct NatModel {
    config: NatConfig,
    bindings: Vec<Binding>,
    rng: SmallRng,
    /// Next port a sequential NAT tries.
    counter: i32,
    /// When the next foreign flow opens (contention), once the clock has been seen.
    next_foreign: Option<Instant>,
    foreign_flows: u16,
    /// Public ports the router's own connection tracking holds toward one remote endpoint
    /// ([`NatModel::answer_unsolicited`]), until when.
    held: Vec<(u16, SocketAddr, Instant)>,
    /// Port mappings a port-mapping protocol granted (public port → inside address), as a
    /// router's DNAT rules: a new inbound flow to the port reaches the inside address.
    forwards: Vec<(u16, SocketAddr)>,
}

/// How long a router's conntrack keeps the entry of an unsolicited TCP SYN it answered with an
/// RST (Linux `nf_conntrack_tcp_timeout_close`).
pub const ANSWERED_HOLD: Duration = Duration::from_secs(10);

impl NatModel {
    pub fn new(config: NatConfig) -> Self {
        let (counter, seed) = match config.allocation {
            PortAllocation::Sequential { start, .. } => (i32::from(start), 0),
            PortAllocation::Random { seed } => (0, seed),
            PortAllocation::Preserving => (0, 0),
        };
        NatModel {
            config,
            bindings: Vec::new(),
            rng: SmallRng::seed_from_u64(seed),
            counter,
            next_foreign: None,
            foreign_flows: 0,
            held: Vec::new(),
            forwards: Vec::new(),
        }
    }

    pub fn config(&self) -> &NatConfig {
        &self.config
    }

    /// An inside packet from `internal` to `destination`: returns the public source address it
    /// leaves with, creating or refreshing the binding, or `None` when no port is free.
    pub fn outbound(
        &mut self,
        now: Instant,
        internal: SocketAddr,
        destination: SocketAddr,
    ) -> Option<SocketAddr> {
        self.advance(now);
        let index = match self.find_mapping(internal, destination) {
            Some(index) => index,
            None => self.create(now, internal, destination)?,
        };
        let binding = &mut self.bindings[index];
        binding.expires = now + self.config.binding_timeout;
        if !binding.contacted.contains(&destination) {
            binding.contacted.push(destination);
        }
        Some(SocketAddr::new(self.config.public_ip, binding.public_port))
    }

    /// An outside packet from `from` to `to_public`: returns the inside address it is delivered
    /// to, or `None` when no binding holds that port or the filter refuses the sender.
    pub fn inbound(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to_public: SocketAddr,
    ) -> Option<SocketAddr> {
        self.advance(now);
        match self.binding_at(to_public) {
            Some(binding) if self.admits(binding, from) => Some(binding.internal),
            _ => self.forwarded(now, from, to_public),
        }
    }

    /// Grants a port mapping, as NAT-PMP, PCP or UPnP IGD would: anyone's packets to
    /// `public_port` reach `internal`, and the flow each one opens answers from that port. The
    /// port is never handed to another flow.
    pub fn map_port(&mut self, internal: SocketAddr, public_port: u16) {
        self.forwards.push((public_port, internal));
    }

    /// A new inbound flow through a port mapping, as Linux conntrack makes it: a binding for
    /// exactly that flow, so that the inside end's answers leave from the mapped port.
    fn forwarded(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to_public: SocketAddr,
    ) -> Option<SocketAddr> {
        if to_public.ip() != self.config.public_ip {
            return None;
        }
        let port = to_public.port();
        let &(_, internal) = self.forwards.iter().find(|(p, _)| *p == port)?;
        let known = self.bindings.iter().any(|b| {
            b.public_port == port && b.internal == internal && b.first_destination == from
        });
        if !known {
            self.bindings.push(Binding {
                internal,
                first_destination: from,
                public_port: port,
                contacted: vec![from],
                expires: now + self.config.binding_timeout,
            });
        }
        Some(internal)
    }

    /// An inside packet from `internal` to one of the NAT's own public addresses (RFC 4787
    /// REQ-9). Returns the translated source the target sees and the inside address it reaches,
    /// or `None` when the NAT does not hairpin (then it allocates nothing: the packet ends at
    /// the router itself, as on Linux without a hairpin rule).
    pub fn hairpin(
        &mut self,
        now: Instant,
        internal: SocketAddr,
        to_public: SocketAddr,
    ) -> Option<(SocketAddr, SocketAddr)> {
        if !self.config.hairpin || to_public.ip() != self.config.public_ip {
            return None;
        }
        let source = self.outbound(now, internal, to_public)?;
        let target = self.binding_at(to_public)?.internal;
        Some((source, target))
    }

    /// The public port an outbound packet from `internal` to `destination` would leave with at
    /// `now`, if a live binding already serves it. Creates and refreshes nothing, so a test can
    /// check a port the other end reported against the one this NAT really allocated.
    pub fn mapped_port(
        &self,
        now: Instant,
        internal: SocketAddr,
        destination: SocketAddr,
    ) -> Option<u16> {
        let index = self.find_mapping(internal, destination)?;
        let binding = &self.bindings[index];
        (binding.expires > now).then_some(binding.public_port)
    }

    /// The router answered an unsolicited TCP SYN from `from` to `to_public` itself (an RST:
    /// no input policy dropped it). Its connection tracking now holds that 4-tuple for a while,
    /// so no new binding toward `from` can take that public port: a sequential NAT gives the
    /// inside flow meant for it the next port instead, a preserving one the next free port.
    /// This is why a SYN must not reach a far NAT before the flow it is meant to meet exists
    /// there.
    pub fn answer_unsolicited(&mut self, now: Instant, from: SocketAddr, to_public: SocketAddr) {
        if to_public.ip() == self.config.public_ip {
            self.held
                .push((to_public.port(), from, now + ANSWERED_HOLD));
        }
    }

    /// How many foreign flows (contention) have taken a port so far.
    pub fn foreign_flows(&self) -> u16 {
        self.foreign_flows
    }

    /// The live binding owning `to_public`'s port, if any.
    fn binding_at(&self, to_public: SocketAddr) -> Option<&Binding> {
        if to_public.ip() != self.config.public_ip {
            return None;
        }
        self.bindings
            .iter()
            .find(|b| b.public_port == to_public.port())
    }

    /// RFC 4787 §5: which senders may use a binding.
    fn admits(&self, binding: &Binding, from: SocketAddr) -> bool {
        match self.config.filtering {
            Behaviour::EndpointIndependent => true,
            Behaviour::AddressDependent => binding.contacted.iter().any(|c| c.ip() == from.ip()),
            Behaviour::AddressAndPortDependent => binding.contacted.contains(&from),
        }
    }

    /// RFC 4787 §4.1: the binding an outbound packet reuses, if any.
    /// A binding of exactly this flow comes first (one a port mapping opened inbound, as a
    /// conntrack entry would); otherwise the behaviour decides.
    fn find_mapping(&self, internal: SocketAddr, destination: SocketAddr) -> Option<usize> {
        let exact = self
            .bindings
            .iter()
            .position(|b| b.internal == internal && b.first_destination == destination);
        exact.or_else(|| self.behaviour_mapping(internal, destination))
    }

    fn behaviour_mapping(&self, internal: SocketAddr, destination: SocketAddr) -> Option<usize> {
        self.bindings.iter().position(|b| {
            b.internal == internal
                && match self.config.mapping {
                    Behaviour::EndpointIndependent => true,
                    Behaviour::AddressDependent => b.first_destination.ip() == destination.ip(),
                    Behaviour::AddressAndPortDependent => b.first_destination == destination,
                }
        })
    }

    fn create(
        &mut self,
        now: Instant,
        internal: SocketAddr,
        destination: SocketAddr,
    ) -> Option<usize> {
        let public_port = self.allocate(internal.port(), destination)?;
        self.bindings.push(Binding {
            internal,
            first_destination: destination,
            public_port,
            contacted: Vec::new(),
            expires: now + self.config.binding_timeout,
        });
        Some(self.bindings.len() - 1)
    }

    /// Drops expired bindings, then opens the foreign flows due by `now`. Tolerates a clock
    /// that steps back a little (a simulation may deliver an answer before a later send).
    fn advance(&mut self, now: Instant) {
        self.bindings.retain(|b| b.expires > now);
        self.held.retain(|&(_, _, until)| until > now);
        let Some(contention) = self.config.contention else {
            return;
        };
        let every = contention.every.max(Duration::from_micros(1));
        let mut due = *self.next_foreign.get_or_insert(now + every);
        while due <= now {
            self.open_foreign(due);
            due += every;
        }
        self.next_foreign = Some(due);
    }

    /// Another inside host's new flow: it takes a port like any binding and keeps it until the
    /// timeout. Foreign hosts live in 100.64.0.0/10 so that they never collide with a test's.
    fn open_foreign(&mut self, at: Instant) {
        self.foreign_flows = self.foreign_flows.wrapping_add(1);
        let internal = SocketAddr::from(([100, 64, 0, 1], self.foreign_flows.max(1)));
        let destination = SocketAddr::from(([203, 0, 113, 200], 443));
        if let Some(index) = self.create(at, internal, destination) {
            self.bindings[index].contacted.push(destination);
        }
    }

    /// A free public port by the configured strategy, or `None` when the range is full.
    fn allocate(&mut self, internal_port: u16, destination: SocketAddr) -> Option<u16> {
        let span = self.span();
        match self.config.allocation {
            PortAllocation::Preserving => {
                let start = self.clamp(i32::from(internal_port));
                (0..span)
                    .map(|i| self.wrap(start + i))
                    .find(|&p| self.is_free(p, destination))
            }
            PortAllocation::Sequential { step, .. } => {
                let step = if step == 0 { 1 } else { step };
                for _ in 0..span {
                    let port = self.wrap(self.counter);
                    self.counter = i32::from(port) + step;
                    if self.is_free(port, destination) {
                        return Some(port);
                    }
                }
                None
            }
            PortAllocation::Random { .. } => {
                let range = self.config.ports.clone();
                for _ in 0..span.max(64) {
                    let port = self.rng.gen_range(range.clone());
                    if self.is_free(port, destination) {
                        return Some(port);
                    }
                }
                None
            }
        }
    }

    /// No binding has `port`, and the router's tracking does not hold it toward `destination`.
    fn is_free(&self, port: u16, destination: SocketAddr) -> bool {
        self.bindings.iter().all(|b| b.public_port != port)
            && self.forwards.iter().all(|&(p, _)| p != port)
            && !self
                .held
                .iter()
                .any(|&(held, remote, _)| held == port && remote == destination)
    }

    fn span(&self) -> i32 {
        i32::from(*self.config.ports.end()) - i32::from(*self.config.ports.start()) + 1
    }

    /// A port below the range starts at its bottom (a preserving NAT never hands out port 80).
    fn clamp(&self, port: i32) -> i32 {
        port.max(i32::from(*self.config.ports.start()))
    }

    /// Folds any integer into the port range, so a sequential counter wraps around either end.
    fn wrap(&self, port: i32) -> u16 {
        let low = i32::from(*self.config.ports.start());
        let folded = (port - low).rem_euclid(self.span()) + low;
        folded as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: [u8; 4] = [198, 51, 100, 1];

    /// A remote peer, for the tests of ports the router holds.
    const PEER_AT: SocketAddr = SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7)),
        6000,
    );

    fn nat(mapping: Behaviour, filtering: Behaviour, allocation: PortAllocation) -> NatModel {
        NatModel::new(NatConfig::new(
            IpAddr::from(PUBLIC),
            mapping,
            filtering,
            allocation,
        ))
    }

    /// A symmetric NAT handing out 40000, 40001, … (address-and-port-dependent both ways).
    fn sequential_config() -> NatConfig {
        NatConfig::new(
            IpAddr::from(PUBLIC),
            Apd,
            Apd,
            PortAllocation::Sequential {
                start: 40000,
                step: 1,
            },
        )
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    use Behaviour::{
        AddressAndPortDependent as Apd, AddressDependent as Ad, EndpointIndependent as Ei,
    };

    #[test]
    fn mapping_reuse_follows_the_behaviour() {
        let inside = addr("192.168.1.10:5000");
        let [a, b, c] = [
            addr("192.0.2.1:3478"),
            addr("192.0.2.1:3479"),
            addr("192.0.2.2:3478"),
        ];
        let cases = [
            (Ei, [true, true]),
            (Ad, [true, false]),
            (Apd, [false, false]),
        ];
        for (mapping, [same_ip_same, other_ip_same]) in cases {
            let mut nat = nat(
                mapping,
                Apd,
                PortAllocation::Sequential {
                    start: 40000,
                    step: 1,
                },
            );
            let t = Instant::now();
            let first = nat.outbound(t, inside, a).unwrap();
            assert_eq!(
                nat.outbound(t, inside, b).unwrap() == first,
                same_ip_same,
                "{mapping:?}"
            );
            assert_eq!(
                nat.outbound(t, inside, c).unwrap() == first,
                other_ip_same,
                "{mapping:?}"
            );
        }
    }

    #[test]
    fn a_port_the_router_answered_for_is_not_handed_out_toward_that_remote() {
        let t = Instant::now();
        let sequential = || {
            let allocation = PortAllocation::Sequential {
                start: 40000,
                step: 1,
            };
            let mut nat = nat(Apd, Apd, allocation);
            // The peer's SYN reached port 40000 before the flow meant for it existed.
            nat.answer_unsolicited(t, PEER_AT, SocketAddr::from((PUBLIC, 40000)));
            nat
        };
        let inside = |port| SocketAddr::from(([192, 168, 1, 10], port));
        let other = addr("203.0.113.8:6000");
        let port =
            |nat: &mut NatModel, at, from, to| nat.outbound(at, inside(from), to).unwrap().port();
        // Toward the peer the flow takes the next port; toward anyone else the held one is free.
        assert_eq!(port(&mut sequential(), t, 5000, PEER_AT), 40001);
        assert_eq!(port(&mut sequential(), t, 5000, other), 40000);
        // Once the router's entry is gone, the port is the peer's again.
        assert_eq!(
            port(&mut sequential(), t + ANSWERED_HOLD, 5000, PEER_AT),
            40000
        );
    }

    #[test]
    fn filtering_admits_by_the_behaviour() {
        let inside = addr("192.168.1.10:5000");
        let server = addr("192.0.2.1:3478");
        let senders = [server, addr("192.0.2.1:3479"), addr("192.0.2.2:3478")];
        let cases = [
            (Ei, [true, true, true]),
            (Ad, [true, true, false]),
            (Apd, [true, false, false]),
        ];
        for (filtering, expected) in cases {
            let mut nat = nat(Ei, filtering, PortAllocation::Preserving);
            let t = Instant::now();
            let public = nat.outbound(t, inside, server).unwrap();
            for (from, admitted) in senders.into_iter().zip(expected) {
                assert_eq!(
                    nat.inbound(t, from, public).is_some(),
                    admitted,
                    "{filtering:?} {from}"
                );
            }
        }
    }

    #[test]
    fn allocations_preserve_step_or_scatter() {
        let server = addr("192.0.2.1:3478");
        let t = Instant::now();
        let mut preserving = nat(Apd, Apd, PortAllocation::Preserving);
        assert_eq!(
            preserving
                .outbound(t, addr("10.0.0.2:7000"), server)
                .unwrap()
                .port(),
            7000
        );
        // Same port from another inside host is taken: the next free one above.
        assert_eq!(
            preserving
                .outbound(t, addr("10.0.0.3:7000"), server)
                .unwrap()
                .port(),
            7001
        );

        let mut down = nat(
            Apd,
            Apd,
            PortAllocation::Sequential {
                start: 1025,
                step: -2,
            },
        );
        let ports: Vec<u16> = (0..3)
            .map(|i| {
                down.outbound(t, addr(&format!("10.0.0.2:{}", 7000 + i)), server)
                    .unwrap()
                    .port()
            })
            .collect();
        assert_eq!(
            ports,
            [1025, 65535, 65533],
            "wraps below the range to its top"
        );

        let mut random = nat(Apd, Apd, PortAllocation::Random { seed: 7 });
        let a = random
            .outbound(t, addr("10.0.0.2:7000"), server)
            .unwrap()
            .port();
        let b = random
            .outbound(t, addr("10.0.0.2:7001"), server)
            .unwrap()
            .port();
        assert!(a.abs_diff(b) > 1 && a >= 1024 && b >= 1024);
    }

    #[test]
    fn random_allocation_is_deterministic_per_seed() {
        let run = |seed| {
            let mut nat = nat(Apd, Apd, PortAllocation::Random { seed });
            let t = Instant::now();
            (0..4)
                .map(|i| {
                    nat.outbound(
                        t,
                        addr(&format!("10.0.0.2:{}", 7000 + i)),
                        addr("192.0.2.1:1"),
                    )
                    .unwrap()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn bindings_expire_after_the_timeout_without_outbound_refresh() {
        let mut nat = nat(
            Ei,
            Ei,
            PortAllocation::Sequential {
                start: 40000,
                step: 1,
            },
        );
        let (inside, server) = (addr("10.0.0.2:7000"), addr("192.0.2.1:3478"));
        let t = Instant::now();
        let public = nat.outbound(t, inside, server).unwrap();
        let late = t + DEFAULT_BINDING_TIMEOUT - Duration::from_secs(1);
        assert_eq!(nat.inbound(late, server, public), Some(inside));
        assert_eq!(nat.mapped_port(late, inside, server), Some(public.port()));
        // Inbound traffic did not refresh it.
        assert_eq!(
            nat.mapped_port(t + DEFAULT_BINDING_TIMEOUT, inside, server),
            None,
            "expired"
        );
        assert_eq!(
            nat.inbound(t + DEFAULT_BINDING_TIMEOUT, server, public),
            None
        );
        let again = nat
            .outbound(t + DEFAULT_BINDING_TIMEOUT, inside, server)
            .unwrap();
        assert_eq!(again.port(), 40001, "a new binding takes a new port");
    }

    #[test]
    fn contention_takes_ports_at_its_rate() {
        let mut config = sequential_config();
        config.contention = Some(Contention {
            every: Duration::from_millis(50),
        });
        let mut nat = NatModel::new(config);
        let server = addr("192.0.2.1:3478");
        let t = Instant::now();
        assert_eq!(
            nat.outbound(t, addr("10.0.0.2:7000"), server)
                .unwrap()
                .port(),
            40000
        );
        let later = t + Duration::from_millis(120);
        assert_eq!(
            nat.outbound(later, addr("10.0.0.2:7001"), server)
                .unwrap()
                .port(),
            40003
        );
        assert_eq!(nat.foreign_flows(), 2);
    }

    #[test]
    fn hairpin_only_when_enabled_and_then_with_the_translated_source() {
        for hairpin in [false, true] {
            let mut config = sequential_config();
            config.hairpin = hairpin;
            let mut nat = NatModel::new(config);
            let t = Instant::now();
            let (a, b) = (addr("10.0.0.2:7000"), addr("10.0.0.2:7001"));
            let a_public = nat.outbound(t, a, addr("192.0.2.1:3478")).unwrap();
            let result = nat.hairpin(t, b, a_public);
            if hairpin {
                assert_eq!(
                    result,
                    Some((SocketAddr::new(IpAddr::from(PUBLIC), 40001), a))
                );
            } else {
                assert_eq!(result, None);
                assert_eq!(
                    nat.outbound(t, b, addr("192.0.2.1:3478")).unwrap().port(),
                    40001,
                    "a refused hairpin allocates nothing"
                );
            }
        }
    }
}
