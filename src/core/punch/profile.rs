//! What each end's NAT will do with the flows of a punch, in terms both ends compute alike.
//!
//! An end turns its own fingerprint into the facts it sends ([`NatSummary::facts`]); both ends
//! then read *both* facts with [`SideModel::from_facts`]. The plan rests only on what both ends
//! know, so both compute the same one. A side's NAT is one of three things to a punch:
//!
//! - **fixed**: endpoint-independent mapping, so the session socket keeps the public port the
//!   server saw for every destination (cone NATs, Linux `masquerade`);
//! - **sequential**: a new binding per flow at `base + k·delta`, `k` counted from the earliest
//!   port the side predicted, so a side's own fan-out moves its own port (symmetric NATs with
//!   `numgen inc`); an address-dependent one makes one binding per peer address, not per port;
//! - **random**: nothing to aim at (`masquerade random-fully`).
//!
//! An end whose gateway granted its punch socket a port mapping (NAT-PMP, PCP, UPnP IGD) and
//! says so in its facts is **mapped**: fixed at the mapped port with endpoint-independent
//! filtering, whatever its NAT does otherwise, since the gateway forwards anything sent there.

use std::net::SocketAddr;
use std::time::Duration;

use crate::core::fingerprint::predict::offset_port;
use crate::core::fingerprint::{Behaviour, Pattern, TransportReport};
use crate::wire::natlens::{
    Dependence, MappedTransport, NatFacts, NatProfile, PortMapping, PortPattern, Transports,
};

/// Lowest port a NAT hands out: Linux NAT keeps source ports of 1024 and up unprivileged, and
/// `masquerade random-fully` draws from 1024–65535, as the NAT model does.
pub const LOWEST_PORT: u16 = 1024;

/// N of the birthday formula: the ports a random NAT draws from (1024–65535).
pub const PORT_RANGE: u32 = 65536 - LOWEST_PORT as u32;

/// How long after its prediction a side's first punch flow may open: the facts are computed when
/// the call is placed or answered, and the punch starts a relay later (one or two server round
/// trips, up to about 400 ms on intercontinental paths). Other hosts' flows in that window push
/// the side's ports beyond the prediction.
pub const DRIFT_WINDOW: Duration = Duration::from_millis(400);

/// Flows added to every sequential side's uncertainty on top of other hosts' flows in
/// [`DRIFT_WINDOW`]: the predictor rounds its foreign-flow count, and other flows also slip in
/// while a fan-out is being sent (about one per 50 requests at the default rate).
pub const DRIFT_SLACK: u32 = 2;

/// Largest uncertainty a side is credited with, in flows: four times what one fan-out may cover
/// ([`MAX_FANOUT`](crate::core::punch::fanout::MAX_FANOUT)), so a hopeless prediction still
/// reads as hopeless, while whatever a peer's facts claim keeps the planner's arithmetic small.
pub const MAX_UNCERTAINTY: u32 = 1024;

/// The parts of an end's own fingerprint that punching needs.
#[derive(Debug, Clone, PartialEq)]
pub struct NatSummary {
    pub mapping: Option<Behaviour>,
    pub filtering: Option<Behaviour>,
    pub pattern: Option<Pattern>,
    /// Signed step per new flow (sequential only).
    pub delta: Option<i32>,
    pub foreign_flows_per_second: Option<f64>,
    /// The predictor's candidate ports for the next flow, most likely first.
    pub candidates: Vec<u16>,
}

impl NatSummary {
    /// The summary of one transport's fingerprint. Predict with `since_last` up to the moment
    /// the facts are sent, so that the candidates are for the punch's first flow.
    pub fn from_report(report: &TransportReport) -> Self {
        NatSummary {
            mapping: report.mapping,
            filtering: report.filtering,
            pattern: report.allocation.pattern,
            delta: report.allocation.delta,
            foreign_flows_per_second: report.allocation.foreign_flows_per_second,
            candidates: report.prediction.candidates.clone(),
        }
    }

    /// The four-byte profile the peer plans with.
    pub fn profile(&self) -> NatProfile {
        let rate = self.foreign_flows_per_second.unwrap_or(0.0);
        NatProfile {
            mapping: self.mapping.map(dependence),
            filtering: self.filtering.map(dependence),
            allocation: self.pattern.map(|p| match p {
                Pattern::Preserving => PortPattern::Preserving,
                Pattern::Sequential => PortPattern::Sequential,
                Pattern::Random => PortPattern::Random,
            }),
            foreign_flows_per_second: rate.ceil().clamp(0.0, 255.0) as u8,
        }
    }

    /// The facts this end sends in a call. `observed` is the public address of the socket a
    /// fixed side will punch from (the fingerprint's mapping socket, in natlens): its port is
    /// the one the peer must aim at, so it goes out as the one predicted port (the server fills
    /// in the facts' own `observed` from the login).
    pub fn facts(&self, observed: Option<SocketAddr>, transports: Transports) -> NatFacts {
        let mut facts = NatFacts {
            observed,
            transports,
            profile: Some(self.profile()),
            ..NatFacts::default()
        };
        let profile = self.profile();
        if is_fixed(&profile) {
            facts.predicted_ports = observed.map(|a| a.port()).into_iter().collect();
        } else if let (Some(Pattern::Sequential), Some(delta)) = (self.pattern, self.delta) {
            facts.delta = Some(delta);
            facts.predicted_ports = self.candidates.clone();
        }
        facts
    }
}

fn dependence(behaviour: Behaviour) -> Dependence {
    match behaviour {
        Behaviour::EndpointIndependent => Dependence::EndpointIndependent,
        Behaviour::AddressDependent => Dependence::AddressDependent,
        Behaviour::AddressAndPortDependent => Dependence::AddressAndPortDependent,
    }
}

/// Endpoint-independent mapping, or a preserving NAT whose mapping was not measured (taken for
/// Linux `masquerade`, which is endpoint-independent).
fn is_fixed(profile: &NatProfile) -> bool {
    match profile.mapping {
        Some(Dependence::EndpointIndependent) => true,
        None => profile.allocation == Some(PortPattern::Preserving),
        Some(_) => false,
    }
}

/// What a side's NAT gives the flows of a punch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortModel {
    /// The session socket's one public port, whatever it sends to.
    Fixed { port: u16 },
    /// Flow `k` (counted from the earliest predicted port) gets `base + k·delta`; `expected` is
    /// the `k` of the most likely port. With `per_destination` false (address-dependent
    /// mapping) all ports of one peer address share one binding.
    Sequential {
        base: u16,
        delta: i32,
        expected: u32,
        per_destination: bool,
    },
    /// Nothing to aim at.
    Random,
}

/// One side of the call as both ends see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SideModel {
    /// The session socket's public address as the server saw it.
    pub address: Option<SocketAddr>,
    pub ports: PortModel,
    /// `None` (not measured) is treated as the strictest, address-and-port-dependent.
    pub filtering: Option<Dependence>,
    pub foreign_flows_per_second: u32,
    /// The side's gateway mapped its punch socket's port: `address` is the mapping's, and it
    /// admits anything sent there.
    pub mapped: bool,
}

impl SideModel {
    /// Reads a side from its facts. Without a profile (an older end) it infers: a delta with
    /// ports is sequential, ports or an address alone are taken for a cone, as classic hole
    /// punching does, and nothing at all is random.
    pub fn from_facts(facts: &NatFacts) -> Self {
        let known_port = facts
            .predicted_ports
            .first()
            .copied()
            .or(facts.observed.map(|a| a.port()));
        let sequential = || {
            let delta = facts.delta.filter(|&d| d != 0)?;
            let per_destination =
                facts.profile.and_then(|p| p.mapping) != Some(Dependence::AddressDependent);
            sequential(&facts.predicted_ports, delta, per_destination)
        };
        let ports = match facts.profile {
            Some(profile) if is_fixed(&profile) => known_port.map(|port| PortModel::Fixed { port }),
            Some(profile) if profile.allocation == Some(PortPattern::Sequential) => sequential(),
            Some(_) => None,
            None => sequential().or(known_port.map(|port| PortModel::Fixed { port })),
        };
        let side = SideModel {
            address: facts.observed,
            ports: ports.unwrap_or(PortModel::Random),
            filtering: facts.profile.and_then(|p| p.filtering),
            foreign_flows_per_second: facts
                .profile
                .map_or(0, |p| u32::from(p.foreign_flows_per_second)),
            mapped: false,
        };
        match usable_mapping(facts) {
            Some(mapping) => side.through_mapping(mapping),
            None => side,
        }
    }

    /// The side as its port mapping makes it: fixed at the mapped port, open to anyone.
    fn through_mapping(self, mapping: PortMapping) -> Self {
        SideModel {
            address: Some(mapping.external),
            ports: PortModel::Fixed {
                port: mapping.external.port(),
            },
            filtering: Some(Dependence::EndpointIndependent),
            mapped: true,
            ..self
        }
    }

    /// `--delta D`: the far NAT steps by `D` from its most likely port, whatever it announced.
    /// `--preset-delta D` (the preset-delta rule): it steps by `D` from the port its server saw.
    /// A fixed side is left alone: its port does not move.
    pub fn with_overrides(
        mut self,
        facts: &NatFacts,
        delta: Option<i32>,
        preset: Option<i32>,
    ) -> Self {
        if matches!(self.ports, PortModel::Fixed { .. }) || self.mapped {
            return self;
        }
        let per_destination = match self.ports {
            PortModel::Sequential {
                per_destination, ..
            } => per_destination,
            _ => true,
        };
        if let Some(d) = preset.filter(|&d| d != 0) {
            let from_observed = facts
                .observed
                .and_then(|a| offset_port(a.port(), i64::from(d)));
            if let Some(base) = from_observed {
                self.ports = PortModel::Sequential {
                    base,
                    delta: d,
                    expected: 0,
                    per_destination,
                };
            }
        } else if let Some(d) = delta.filter(|&d| d != 0) {
            let ports = if facts.predicted_ports.is_empty() {
                facts
                    .observed
                    .and_then(|a| offset_port(a.port(), i64::from(d)))
                    .into_iter()
                    .collect()
            } else {
                facts.predicted_ports.clone()
            };
            if let Some(model) = sequential(&ports, d, per_destination) {
                self.ports = model;
            }
        }
        self
    }

    /// Admits a packet from any port of an address it has sent to (endpoint-independent or
    /// address-dependent filtering) with a port known in advance: the other side only has to
    /// aim at that one port.
    pub fn is_open(&self) -> bool {
        matches!(self.ports, PortModel::Fixed { .. })
            && matches!(
                self.filtering,
                Some(Dependence::EndpointIndependent | Dependence::AddressDependent)
            )
    }

    pub fn is_predictable(&self) -> bool {
        !matches!(self.ports, PortModel::Random)
    }

    /// The public port of flow `k`, for a sequential side.
    pub fn port_at(&self, k: u32) -> Option<u16> {
        match self.ports {
            PortModel::Fixed { port } => Some(port),
            PortModel::Sequential { base, delta, .. } => {
                offset_port(base, i64::from(k) * i64::from(delta))
            }
            PortModel::Random => None,
        }
    }

    /// The largest `k` the side's first punch flow may plausibly get: the most likely one plus
    /// other hosts' flows in [`DRIFT_WINDOW`] plus [`DRIFT_SLACK`], at most
    /// [`MAX_UNCERTAINTY`]. Zero for a fixed side.
    pub fn uncertainty(&self) -> u32 {
        match self.ports {
            PortModel::Sequential { expected, .. } => {
                let window = DRIFT_WINDOW.as_secs_f64() * f64::from(self.foreign_flows_per_second);
                let drift = window.ceil() as u32 + DRIFT_SLACK;
                expected.saturating_add(drift).min(MAX_UNCERTAINTY)
            }
            _ => 0,
        }
    }
}

/// The facts' port mapping, when the punch can use it: a mapping for the transport the facts
/// are for (a TCP punch's mapped side listens on it), at the public IP the server saw (a
/// mapping at another IP was granted by a gateway behind another NAT, which would drop what
/// the peer sends to it).
fn usable_mapping(facts: &NatFacts) -> Option<PortMapping> {
    let mapping = facts.port_mapping?;
    let for_transport = match mapping.transport {
        MappedTransport::Udp => facts.transports.udp,
        MappedTransport::Tcp => facts.transports.tcp,
    };
    let observed = facts.observed?;
    (for_transport && observed.ip() == mapping.external.ip()).then_some(mapping)
}

/// A sequential model from predicted ports (any order) and a step: `base` is the earliest port
/// on the step's grid through the first one, so a prediction that overshot is still covered.
fn sequential(ports: &[u16], delta: i32, per_destination: bool) -> Option<PortModel> {
    let first = i64::from(*ports.first()?);
    let d = i64::from(delta);
    let lowest = ports
        .iter()
        .map(|&p| i64::from(p) - first)
        .filter(|diff| diff % d == 0)
        .map(|diff| diff / d)
        .min()?;
    Some(PortModel::Sequential {
        base: offset_port(*ports.first()?, lowest * d)?,
        delta,
        expected: u32::try_from(-lowest).ok()?,
        per_destination,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(mapping: Behaviour, pattern: Pattern, delta: Option<i32>) -> NatSummary {
        NatSummary {
            mapping: Some(mapping),
            filtering: Some(Behaviour::AddressAndPortDependent),
            pattern: Some(pattern),
            delta,
            foreign_flows_per_second: Some(19.2),
            candidates: vec![40017, 40018, 40016, 40019, 40015],
        }
    }

    fn udp() -> Transports {
        Transports {
            udp: true,
            tcp: false,
        }
    }

    const OBSERVED: &str = "198.51.100.1:5555";

    #[test]
    fn a_cone_sends_its_session_port_and_is_read_as_fixed() {
        let s = summary(Behaviour::EndpointIndependent, Pattern::Preserving, None);
        let facts = s.facts(Some(OBSERVED.parse().unwrap()), udp());
        assert_eq!(facts.predicted_ports, [5555]);
        assert_eq!(facts.delta, None);
        assert_eq!(facts.profile.unwrap().foreign_flows_per_second, 20);
        let side = SideModel::from_facts(&facts);
        assert_eq!(side.ports, PortModel::Fixed { port: 5555 });
        assert!(!side.is_open(), "port-restricted");
        assert_eq!(side.uncertainty(), 0);
    }

    #[test]
    fn a_symmetric_sequential_nat_counts_from_its_earliest_candidate() {
        let s = summary(
            Behaviour::AddressAndPortDependent,
            Pattern::Sequential,
            Some(1),
        );
        let side = SideModel::from_facts(&s.facts(Some(OBSERVED.parse().unwrap()), udp()));
        assert_eq!(
            side.ports,
            PortModel::Sequential {
                base: 40015,
                delta: 1,
                expected: 2,
                per_destination: true
            }
        );
        assert_eq!(side.port_at(3), Some(40018));
        // 2 + 20/s × 0.4 s + 2.
        assert_eq!(side.uncertainty(), 12);
    }

    #[test]
    fn a_random_nat_sends_no_ports() {
        let s = summary(Behaviour::AddressAndPortDependent, Pattern::Random, None);
        let facts = s.facts(Some(OBSERVED.parse().unwrap()), udp());
        assert!(facts.predicted_ports.is_empty());
        assert_eq!(SideModel::from_facts(&facts).ports, PortModel::Random);
    }

    #[test]
    fn facts_without_a_profile_are_inferred() {
        let mut facts = NatFacts {
            observed: Some(OBSERVED.parse().unwrap()),
            ..NatFacts::default()
        };
        assert_eq!(
            SideModel::from_facts(&facts).ports,
            PortModel::Fixed { port: 5555 }
        );
        facts.delta = Some(-2);
        facts.predicted_ports = vec![50000, 49998, 50002];
        assert_eq!(
            SideModel::from_facts(&facts).ports,
            PortModel::Sequential {
                base: 50002,
                delta: -2,
                expected: 1,
                per_destination: true
            }
        );
        assert_eq!(
            SideModel::from_facts(&NatFacts::default()).ports,
            PortModel::Random
        );
    }

    #[test]
    fn overrides_replace_the_step_or_preset_it_from_the_observed_port() {
        let s = summary(Behaviour::AddressAndPortDependent, Pattern::Random, None);
        let facts = s.facts(Some(OBSERVED.parse().unwrap()), udp());
        let side = SideModel::from_facts(&facts);
        assert_eq!(
            side.with_overrides(&facts, None, Some(2)).ports,
            PortModel::Sequential {
                base: 5557,
                delta: 2,
                expected: 0,
                per_destination: true
            }
        );
        let seq = summary(
            Behaviour::AddressAndPortDependent,
            Pattern::Sequential,
            Some(1),
        );
        let facts = seq.facts(Some(OBSERVED.parse().unwrap()), udp());
        let side = SideModel::from_facts(&facts).with_overrides(&facts, Some(2), None);
        // Only 40017, 40019 and 40015 sit on a grid of 2 through 40017.
        assert_eq!(side.port_at(0), Some(40015));
        assert_eq!(side.port_at(1), Some(40017));
        let cone = summary(Behaviour::EndpointIndependent, Pattern::Preserving, None);
        let facts = cone.facts(Some(OBSERVED.parse().unwrap()), udp());
        let side = SideModel::from_facts(&facts);
        assert_eq!(side.with_overrides(&facts, Some(3), Some(3)), side);
    }
}
