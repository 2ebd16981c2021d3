//! Port prediction: the public port the NAT gives the next new flow, and an ordered list of
//! candidates for a punch to fan out over.
//!
//! Two rules from the patent claims are reported as they stand, so that they can be checked
//! against the samples: the *two-probe delta* (claims 5–8: p1, p2 from two fresh sockets, delta
//! = p2 − p1, next = p2 + delta; the text says p2 + |p2 − p1|, but keeping the sign is what makes
//! it right for a NAT that counts down) and the *preset delta* (claims 9–12: one probe p, next =
//! p + D, D = 1 unless told otherwise). The predictor natlens uses reads the whole sample instead:
//! the modal step (so one noisy pair does not decide), lost trailing samples (which still took
//! their ports) and other hosts' flow rate times the time since the last sample.

use std::time::Duration;

use serde::Serialize;

use crate::core::fingerprint::allocation::{Allocation, Pattern, Sample};

/// D of the preset-delta rule when the user gives none: the commonest step of sequential NATs.
pub const DEFAULT_PRESET_DELTA: i32 = 1;

/// Candidate ports listed for a punch by default.
pub const DEFAULT_FAN_OUT: usize = 16;

/// The two-probe delta rule applied to the first two answered samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TwoProbe {
    pub p1: u16,
    pub p2: u16,
    /// p2 − p1, with its sign.
    pub delta: i32,
    /// p2 + delta; `None` when that leaves the port space.
    pub next_port: Option<u16>,
    /// Whether the sample sent right after p2 got `next_port`; `None` if it was not answered.
    pub hit: Option<bool>,
}

/// The preset-delta rule applied to the first answered sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PresetDelta {
    pub port: u16,
    pub delta: i32,
    pub next_port: Option<u16>,
    /// Whether the next sample got `next_port`; `None` if it was not answered.
    pub hit: Option<bool>,
}

/// What the prediction rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The NAT preserves ports: a socket's public port is its local port.
    LocalPort,
    /// The NAT steps by the measured delta.
    Sequential,
}

/// The prediction for one transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prediction {
    /// `None` when the ports cannot be predicted (random allocation, too few samples).
    pub rule: Option<Rule>,
    /// The next flow's public port (sequential only: under `local-port` it is whatever local
    /// port the punching socket binds).
    pub next_port: Option<u16>,
    /// Ports to try, most likely first; `next_port` leads.
    pub candidates: Vec<u16>,
    pub two_probe: Option<TwoProbe>,
    pub preset_delta: Option<PresetDelta>,
}

impl Prediction {
    /// The public port a new socket bound to `local_port` should get as the next flow.
    pub fn expected_public_port(&self, local_port: u16) -> Option<u16> {
        match self.rule? {
            Rule::LocalPort => Some(local_port),
            Rule::Sequential => self.next_port,
        }
    }
}

/// Knobs of the prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PredictOptions {
    /// D of the preset-delta rule.
    pub preset_delta: i32,
    /// Candidates to list.
    pub fan_out: usize,
    /// Time from the last sample's send to the flow being predicted: other hosts' flows keep
    /// taking ports meanwhile. Zero means "right after the samples".
    pub since_last: Duration,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions {
            preset_delta: DEFAULT_PRESET_DELTA,
            fan_out: DEFAULT_FAN_OUT,
            since_last: Duration::ZERO,
        }
    }
}

/// `port + by` when it stays a valid, non-zero port. The punch planner steps through predicted
/// ports with it too (core/punch depends on core/fingerprint, never the reverse).
pub fn offset_port(port: u16, by: i64) -> Option<u16> {
    u16::try_from(i64::from(port) + by).ok().filter(|&p| p != 0)
}

/// Claims 5–8: two probes → delta and the port after p2.
pub fn two_probe(p1: u16, p2: u16) -> TwoProbe {
    let delta = i32::from(p2) - i32::from(p1);
    TwoProbe {
        p1,
        p2,
        delta,
        next_port: offset_port(p2, delta.into()),
        hit: None,
    }
}

/// Claims 9–12: one probe and a preset step.
pub fn preset_delta(port: u16, delta: i32) -> PresetDelta {
    PresetDelta {
        port,
        delta,
        next_port: offset_port(port, delta.into()),
        hit: None,
    }
}

/// Predicts from the allocation verdict and its samples.
pub fn predict(
    allocation: &Allocation,
    samples: &[Sample],
    options: &PredictOptions,
) -> Prediction {
    let (rule, candidates) = match allocation.pattern {
        Some(Pattern::Preserving) => (Some(Rule::LocalPort), Vec::new()),
        Some(Pattern::Sequential) => match sequential(allocation, samples, options) {
            Some(candidates) => (Some(Rule::Sequential), candidates),
            None => (None, Vec::new()),
        },
        Some(Pattern::Random) | None => (None, Vec::new()),
    };
    Prediction {
        rule,
        next_port: candidates.first().copied(),
        candidates,
        two_probe: claim_two_probe(samples),
        preset_delta: claim_preset(samples, options.preset_delta),
    }
}

/// The public port of the sample sent right after `index`, if it was answered.
fn port_after(samples: &[Sample], index: u8) -> Option<u16> {
    samples
        .iter()
        .find(|s| s.index == index.wrapping_add(1))?
        .public_port
}

fn answered(samples: &[Sample]) -> impl Iterator<Item = (&Sample, u16)> {
    samples.iter().filter_map(|s| Some((s, s.public_port?)))
}

fn claim_two_probe(samples: &[Sample]) -> Option<TwoProbe> {
    let mut answered = answered(samples);
    let (_, p1) = answered.next()?;
    let (second, p2) = answered.next()?;
    let mut rule = two_probe(p1, p2);
    rule.hit = port_after(samples, second.index).map(|p| Some(p) == rule.next_port);
    Some(rule)
}

fn claim_preset(samples: &[Sample], delta: i32) -> Option<PresetDelta> {
    let (first, port) = answered(samples).next()?;
    let mut rule = preset_delta(port, delta);
    rule.hit = port_after(samples, first.index).map(|p| Some(p) == rule.next_port);
    Some(rule)
}

/// Candidates for a sequential NAT: `k` steps past the last answered sample, `k` ordered by
/// distance from the expected count (its own step, the lost samples after it, other hosts'
/// flows since), the larger first on a tie because other flows only ever add steps.
fn sequential(
    allocation: &Allocation,
    samples: &[Sample],
    options: &PredictOptions,
) -> Option<Vec<u16>> {
    let delta = i64::from(allocation.delta?);
    let (last, port) = answered(samples).last()?;
    let final_sample = samples.last()?;
    let trailing = i64::from(final_sample.index - last.index);
    let elapsed = final_sample.sent_at.saturating_duration_since(last.sent_at) + options.since_last;
    let rate = allocation.foreign_flows_per_second.unwrap_or(0.0);
    let foreign = (rate * elapsed.as_secs_f64()).round() as i64;
    let fewest = 1 + trailing;
    let expected = fewest + foreign;
    let mut steps: Vec<i64> = steps_around(expected)
        .take(options.fan_out.saturating_mul(4).max(1))
        .filter(|&k| offset_port(port, k * delta).is_some())
        .take(options.fan_out.max(1))
        .collect();
    // The port no other host's flow moved, last: the foreign count is a rate times a time,
    // and a rate read wrong (one unseen flow of ours between two bursts under loss) or a quiet
    // spell must not leave the real port below every candidate. A punch counts its flows from
    // the earliest candidate, so this widens its fan-out down to the port it cannot miss.
    if steps.iter().all(|&k| k > fewest) && offset_port(port, fewest * delta).is_some() {
        steps.push(fewest);
    }
    let candidates: Vec<u16> = steps
        .into_iter()
        .filter_map(|k| offset_port(port, k * delta))
        .collect();
    (!candidates.is_empty()).then_some(candidates)
}

/// `center, center + 1, center − 1, center + 2, …`, skipping anything below one step.
fn steps_around(center: i64) -> impl Iterator<Item = i64> {
    (0..)
        .flat_map(move |d: i64| {
            if d == 0 {
                vec![center]
            } else {
                vec![center + d, center - d]
            }
        })
        .filter(|&k| k >= 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fingerprint::allocation::classify;
    use crate::core::fingerprint::allocation::tests::samples;

    fn run(ports: &[Option<u16>], gap_ms: u64, options: &PredictOptions) -> Prediction {
        let samples = samples(ports, gap_ms);
        predict(&classify(&samples), &samples, options)
    }

    fn some(ports: &[u16]) -> Vec<Option<u16>> {
        ports.iter().map(|&p| Some(p)).collect()
    }

    #[test]
    fn claim_rules_keep_the_sign() {
        let up = two_probe(40000, 40002);
        assert_eq!((up.delta, up.next_port), (2, Some(40004)));
        let down = two_probe(40000, 39999);
        assert_eq!((down.delta, down.next_port), (-1, Some(39998)));
        assert_eq!(
            two_probe(65000, 65535).next_port,
            None,
            "past the port space"
        );
        assert_eq!(preset_delta(1, -1).next_port, None, "port 0 is no port");
        assert_eq!(
            preset_delta(40000, DEFAULT_PRESET_DELTA).next_port,
            Some(40001)
        );
    }

    #[test]
    fn claim_rules_are_checked_against_the_next_sample() {
        let prediction = run(
            &some(&[40000, 40002, 40004, 40006]),
            300,
            &PredictOptions::default(),
        );
        let two = prediction.two_probe.unwrap();
        assert_eq!(
            (two.p1, two.p2, two.next_port, two.hit),
            (40000, 40002, Some(40004), Some(true))
        );
        let preset = prediction.preset_delta.unwrap();
        assert_eq!((preset.next_port, preset.hit), (Some(40001), Some(false)));
    }

    #[test]
    fn sequential_prediction_follows_the_last_sample() {
        let prediction = run(
            &some(&[40000, 39999, 39998, 39997]),
            300,
            &PredictOptions::default(),
        );
        assert_eq!(prediction.rule, Some(Rule::Sequential));
        assert_eq!(prediction.next_port, Some(39996));
        assert_eq!(&prediction.candidates[..4], [39996, 39995, 39994, 39993]);
        assert_eq!(prediction.candidates.len(), DEFAULT_FAN_OUT);
    }

    #[test]
    fn lost_trailing_samples_still_took_their_ports() {
        let ports = [
            Some(40000),
            Some(40001),
            Some(40002),
            Some(40003),
            Some(40004),
            None,
        ];
        let prediction = run(&ports, 0, &PredictOptions::default());
        assert_eq!(prediction.next_port, Some(40006));
        assert_eq!(&prediction.candidates[..3], [40006, 40007, 40005]);
    }

    #[test]
    fn contention_pushes_the_prediction_by_rate_times_time() {
        // Six foreign flows in 300 ms: 20/s; 250 ms later about five more have gone by.
        let ports = some(&[40000, 40001, 40002, 40009, 40010, 40011]);
        let options = PredictOptions {
            since_last: Duration::from_millis(250),
            ..PredictOptions::default()
        };
        let prediction = run(&ports, 300, &options);
        assert_eq!(prediction.next_port, Some(40011 + 1 + 5));
        assert_eq!(&prediction.candidates[..3], [40017, 40018, 40016]);
        // Within the 16 around the expected count: nothing added.
        assert_eq!(prediction.candidates.len(), 16);
        assert!(prediction.candidates.contains(&40012));
    }

    #[test]
    fn the_port_no_other_flow_moved_stays_a_candidate() {
        // 20 foreign flows/s read, and the call came 2 s later: about 40 flows expected, but
        // the NAT may have been quiet since (or the rate was misread): 40012 is still listed,
        // last, so a punch's fan-out reaches down to it.
        let ports = some(&[40000, 40001, 40002, 40009, 40010, 40011]);
        let options = PredictOptions {
            since_last: Duration::from_secs(2),
            ..PredictOptions::default()
        };
        let prediction = run(&ports, 300, &options);
        assert_eq!(prediction.next_port, Some(40011 + 1 + 40));
        assert_eq!(prediction.candidates.len(), 17);
        assert_eq!(prediction.candidates.last(), Some(&40012));
        assert_eq!(prediction.candidates.iter().min(), Some(&40012));
    }

    #[test]
    fn preserving_predicts_the_local_port_and_random_nothing() {
        let mut preserving = samples(&[None; 4], 0);
        for s in preserving.iter_mut() {
            s.public_port = Some(s.local_port);
        }
        let prediction = predict(
            &classify(&preserving),
            &preserving,
            &PredictOptions::default(),
        );
        assert_eq!(prediction.rule, Some(Rule::LocalPort));
        assert_eq!(prediction.next_port, None);
        assert_eq!(prediction.expected_public_port(50123), Some(50123));

        let random = run(
            &some(&[51234, 8001, 60311, 33333]),
            0,
            &PredictOptions::default(),
        );
        assert_eq!(random.rule, None);
        assert_eq!(random.expected_public_port(50123), None);
        assert!(random.candidates.is_empty());
        assert_eq!(random.two_probe.unwrap().hit, Some(false));
    }

    #[test]
    fn candidates_order_around_the_expected_step() {
        let order: Vec<i64> = steps_around(3).take(6).collect();
        assert_eq!(order, [3, 4, 2, 5, 1, 6]);
        let order: Vec<i64> = steps_around(1).take(3).collect();
        assert_eq!(order, [1, 2, 3]);
    }
}
