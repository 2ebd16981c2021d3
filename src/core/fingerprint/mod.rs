//! NAT fingerprint, sans-IO: the probe plan, the observations a shell fills in, the
//! RFC 5780 / allocation verdicts, port prediction and the report.
//!
//! A shell fingerprints one transport like this:
//! 1. send [`plan::discovery_probe`] and record it as an [`Observation`];
//! 2. [`plan::make_plan`] with the [`plan::Discovery`] read from that answer as soon as it
//!    arrives, open every socket of the plan, then let a [`schedule::Schedule`] say when each
//!    attempt goes out and when the run is over;
//! 3. [`analyse`] all observations (discovery included) into a [`TransportReport`].

pub mod allocation;
pub mod classify;
pub mod family;
pub mod lifetime;
pub mod observation;
pub mod plan;
pub mod predict;
pub mod report;
pub mod schedule;
pub mod tcp_filtering;
pub mod verdict;

#[cfg(test)]
pub(crate) mod sim;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;

pub use allocation::{Allocation, Gap, Pattern, Sample};
pub use classify::{Behaviour, ChangeRequestSupport};
pub use family::{Families, FamilyReport, FamilyStatus, Translation};
pub use observation::{Answer, Observation, Socket, Target};
pub use plan::{Discovery, Plan, PlanConfig, Probe};
pub use predict::{PredictOptions, Prediction, Rule};
pub use report::{Report, TransportReport, SCHEMA_VERSION};
pub use verdict::{Difficulty, Reach, Rfc3489Type};

/// When each of our non-sample flows (a local address and a destination) that never got an
/// answer opened: its first send. Its NAT mapping was made all the same (loss is beyond the NAT
/// far more often than before it), at a port no answer told us. Samples are left out: a lost
/// sample is already counted where it falls in the sample sequence.
fn unseen_own_flows(observations: &[Observation]) -> Vec<std::time::Instant> {
    let mut flows: Vec<(SocketAddr, SocketAddr, std::time::Instant, bool)> = Vec::new();
    for o in observations.iter().filter(|o| !o.socket.is_sample()) {
        let seen = o.public().is_some();
        match flows
            .iter_mut()
            .find(|(local, to, ..)| *local == o.local && *to == o.to)
        {
            Some(flow) => {
                flow.2 = flow.2.min(o.sent_at);
                flow.3 |= seen;
            }
            None => flows.push((o.local, o.to, o.sent_at, seen)),
        }
    }
    flows
        .into_iter()
        .filter(|&(.., seen)| !seen)
        .map(|(_, _, opened, _)| opened)
        .collect()
}

/// Turns one transport's observations into its report.
pub fn analyse(observations: &[Observation], options: &PredictOptions) -> TransportReport {
    let samples = allocation::samples(observations);
    // Ports our other probes hold (discovery, mapping tests, a late TCP sample's own): a gap
    // between samples that contains them is not another host's doing.
    let own: Vec<u16> = observations
        .iter()
        .filter(|o| !o.socket.is_sample())
        .filter_map(|o| o.public().map(|p| p.port()))
        .collect();
    let allocation = allocation::classify_with(&samples, &own, &unseen_own_flows(observations));
    let prediction = predict::predict(&allocation, &samples, options);
    let mut report = TransportReport {
        public_address: classify::public_address(observations),
        behind_nat: classify::behind_nat(observations),
        rtt_ms: classify::rtt(observations)
            .map(|rtt| (rtt.as_secs_f64() * 10_000.0).round() / 10.0),
        full_mode: classify::other_address(observations).is_some(),
        mapping: classify::mapping(observations),
        mapping_varies_by_dest_ip: classify::mapping_varies_by_dest_ip(observations),
        filtering: classify::filtering(observations),
        filtering_reason: None,
        change_request: classify::change_request_support(observations),
        hairpinning: classify::hairpinning(observations),
        alg: classify::alg_rewrites(observations),
        allocation,
        prediction,
        lifetime: Default::default(),
        rfc3489_type: None,
        difficulty: None,
        punch: None,
    };
    report.rfc3489_type = verdict::rfc3489_type(&report);
    if let Some(transport) = observations.first().map(|o| o.transport) {
        report.punch = verdict::reach(&report, transport);
        report.difficulty = report.punch.map(|reach| reach.difficulty());
    }
    report
}
