//! How the NAT picks public ports, from the allocation samples (one fresh socket each):
//! preserving (public port = local port), sequential (a fixed step, with gaps where other hosts'
//! flows took ports) or random, with a confidence that drops with noise and with few samples.
//!
//! Confidence = fit × support. *Fit* is the share of the evidence that agrees with the verdict:
//! for preserving, the share of samples that kept their port; for sequential, the mean pair score
//! (1 for a step of exactly `delta` per sample, ½ for a multiple of it explained by other hosts'
//! flows, 0 otherwise); for random, one minus the better of those two fits (a sequential fit
//! counts only when its step repeats). *Support* is 1 − 1/n for n answered samples: ½ with two,
//! ⅞ with the default eight, so lost samples cost confidence too.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::core::fingerprint::observation::{Observation, Socket};

/// Largest step still called sequential. LAB-NOTES met a real +256 (a byte-order slip in an nft
/// rule); a random NAT's steps agree on anything this small only by a rare chance.
pub const MAX_STEP: i32 = 1024;

/// Exact steps needed before calling a NAT sequential: one pair agreeing with itself proves
/// nothing.
const MIN_EXACT_PAIRS: usize = 2;

/// One allocation sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Position in send order (the plan's `Socket::Sample` number).
    pub index: u8,
    pub local_port: u16,
    /// `None` when the probe was lost.
    pub public_port: Option<u16>,
    pub sent_at: Instant,
}

/// The samples in send order.
pub fn samples(observations: &[Observation]) -> Vec<Sample> {
    let mut samples: Vec<Sample> = observations
        .iter()
        .filter_map(|o| match o.socket {
            Socket::Sample(index) => Some(Sample {
                index,
                local_port: o.local.port(),
                public_port: o.public().map(|p| p.port()),
                sent_at: o.sent_at,
            }),
            _ => None,
        })
        .collect();
    samples.sort_by_key(|s| s.index);
    samples
}

/// The allocation patterns a fingerprint can tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    Preserving,
    Sequential,
    Random,
}

/// Other hosts' flows seen between two samples: ports skipped beyond the expected step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// Sample indexes on either side of the gap.
    pub after: u8,
    pub before: u8,
    /// Allocations other flows took in between.
    pub foreign: u32,
}

/// The allocation verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Allocation {
    /// `None`: too few answered samples to say.
    pub pattern: Option<Pattern>,
    /// Signed step per new flow (sequential only).
    pub delta: Option<i32>,
    /// Mean distance, in ports per sample, of the steps that neither match `delta` nor are
    /// explained by a gap (sequential only).
    pub jitter: Option<f64>,
    /// In [0, 1]; see the module doc.
    pub confidence: f64,
    pub samples: u8,
    pub answered: u8,
    /// Public port of each sample in send order; `null` for a lost one.
    pub ports: Vec<Option<u16>>,
    pub gaps: Vec<Gap>,
    /// Other hosts' new flows per second, measured across the gaps between samples sent apart
    /// in time (sequential only, and only when such a pair exists).
    pub foreign_flows_per_second: Option<f64>,
    /// Whether UDP and TCP draw their ports from one counter; `None` unless both transports were
    /// measured as sequential (see [`Report::share_counter`](super::Report::share_counter)).
    pub shared_counter: Option<bool>,
}

/// Two answered samples next to each other in the answered sequence.
#[derive(Debug, Clone, Copy)]
struct Pair {
    after: Sample,
    before: Sample,
    /// Port difference.
    raw: i32,
    /// Samples sent from `after` to `before` (> 1 when some between were lost: a lost probe's
    /// outbound packet still made its mapping, since loss is beyond the NAT far more often).
    span: i32,
}

impl Pair {
    /// The step per sample, when the lost samples in between divide it evenly.
    fn step(&self) -> Option<i32> {
        (self.raw % self.span == 0).then_some(self.raw / self.span)
    }

    /// Allocations others took in between, when the difference is a larger multiple of `delta`.
    fn foreign(&self, delta: i32) -> Option<u32> {
        let multiple = (self.raw % delta == 0).then_some(self.raw / delta)?;
        u32::try_from(multiple - self.span).ok().filter(|&f| f > 0)
    }

    fn elapsed(&self) -> Duration {
        self.before
            .sent_at
            .saturating_duration_since(self.after.sent_at)
    }
}

fn pairs(answered: &[(Sample, u16)]) -> Vec<Pair> {
    answered
        .windows(2)
        .map(|w| Pair {
            after: w[0].0,
            before: w[1].0,
            raw: i32::from(w[1].1) - i32::from(w[0].1),
            span: i32::from(w[1].0.index) - i32::from(w[0].0.index),
        })
        .collect()
}

/// Classifies the samples.
pub fn classify(samples: &[Sample]) -> Allocation {
    let answered: Vec<(Sample, u16)> = samples
        .iter()
        .filter_map(|s| Some((*s, s.public_port?)))
        .collect();
    let mut verdict = Allocation {
        pattern: None,
        delta: None,
        jitter: None,
        confidence: 0.0,
        samples: u8::try_from(samples.len()).unwrap_or(u8::MAX),
        answered: u8::try_from(answered.len()).unwrap_or(u8::MAX),
        ports: samples.iter().map(|s| s.public_port).collect(),
        gaps: Vec::new(),
        foreign_flows_per_second: None,
        shared_counter: None,
    };
    if answered.len() < 2 {
        return verdict;
    }
    let support = 1.0 - 1.0 / answered.len() as f64;
    let kept = answered.iter().filter(|(s, p)| s.local_port == *p).count();
    let preserving_fit = kept as f64 / answered.len() as f64;
    if preserving_fit >= 0.5 {
        verdict.pattern = Some(Pattern::Preserving);
        verdict.confidence = round(preserving_fit * support);
        return verdict;
    }
    let pairs = pairs(&answered);
    let sequential = modal_step(&pairs).map(|delta| Sequential::score(&pairs, delta));
    match sequential {
        Some(s) if s.exact >= MIN_EXACT_PAIRS && s.fit >= 0.5 => {
            verdict.pattern = Some(Pattern::Sequential);
            verdict.delta = Some(s.delta);
            verdict.jitter = Some(round(s.jitter));
            verdict.confidence = round(s.fit * support);
            verdict.foreign_flows_per_second = s.rate.map(round);
            verdict.gaps = s.gaps;
        }
        _ if pairs.len() >= 2 => {
            // A step seen once is what random ports give now and then; only a repeated one
            // speaks against randomness.
            let repeated = sequential.filter(|s| s.exact >= MIN_EXACT_PAIRS);
            let best = preserving_fit.max(repeated.map_or(0.0, |s| s.fit));
            verdict.pattern = Some(Pattern::Random);
            verdict.confidence = round((1.0 - best) * support);
        }
        _ => {}
    }
    verdict
}

/// The most common non-zero step no larger than [`MAX_STEP`]; ties go to the smaller step, then
/// to the rising one, since those are what real NATs use.
fn modal_step(pairs: &[Pair]) -> Option<i32> {
    let steps: Vec<i32> = pairs
        .iter()
        .filter_map(Pair::step)
        .filter(|s| *s != 0 && s.abs() <= MAX_STEP)
        .collect();
    let count = |d: i32| steps.iter().filter(|&&s| s == d).count();
    steps
        .iter()
        .copied()
        .max_by_key(|&d| (count(d), std::cmp::Reverse(d.abs()), d > 0))
}

/// How well the pairs fit a sequential NAT with step `delta`.
#[derive(Debug, Clone)]
struct Sequential {
    delta: i32,
    fit: f64,
    exact: usize,
    jitter: f64,
    gaps: Vec<Gap>,
    rate: Option<f64>,
}

impl Sequential {
    fn score(pairs: &[Pair], delta: i32) -> Self {
        let (mut total, mut exact, mut deviation) = (0.0, 0, 0.0);
        let mut gaps = Vec::new();
        let (mut foreign_total, mut elapsed) = (0u32, Duration::ZERO);
        for pair in pairs {
            let foreign = pair.foreign(delta);
            if pair.raw == delta * pair.span {
                total += 1.0;
                exact += 1;
            } else if let Some(foreign) = foreign {
                total += 0.5;
                gaps.push(Gap {
                    after: pair.after.index,
                    before: pair.before.index,
                    foreign,
                });
            } else {
                deviation += f64::from((pair.raw - delta * pair.span).abs()) / f64::from(pair.span);
            }
            if pair.elapsed() > Duration::ZERO {
                foreign_total += foreign.unwrap_or(0);
                elapsed += pair.elapsed();
            }
        }
        let n = pairs.len() as f64;
        Sequential {
            delta,
            fit: total / n,
            exact,
            jitter: deviation / n,
            gaps,
            rate: (!elapsed.is_zero()).then(|| f64::from(foreign_total) / elapsed.as_secs_f64()),
        }
    }
}

/// Two decimals: enough for a confidence, and stable in JSON.
fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples with local ports far from the public ones, sent in two bursts 300 ms apart.
    fn run(ports: &[Option<u16>]) -> Vec<Sample> {
        let start = Instant::now();
        let half = ports.len().div_ceil(2);
        ports
            .iter()
            .enumerate()
            .map(|(i, &public_port)| Sample {
                index: i as u8,
                local_port: 20000 + 7 * i as u16,
                public_port,
                sent_at: start
                    + if i < half {
                        Duration::ZERO
                    } else {
                        Duration::from_millis(300)
                    },
            })
            .collect()
    }

    fn some(ports: &[u16]) -> Vec<Option<u16>> {
        ports.iter().map(|&p| Some(p)).collect()
    }

    #[test]
    fn clean_sequential_runs_either_way() {
        for (ports, delta) in [
            (some(&[40000, 40001, 40002, 40003]), 1),
            (some(&[40000, 39998, 39996, 39994]), -2),
        ] {
            let verdict = classify(&run(&ports));
            assert_eq!(verdict.pattern, Some(Pattern::Sequential));
            assert_eq!(verdict.delta, Some(delta));
            assert_eq!(verdict.jitter, Some(0.0));
            assert_eq!(verdict.confidence, 0.75, "fit 1 × support 3/4");
            assert_eq!(verdict.foreign_flows_per_second, Some(0.0));
            assert!(verdict.gaps.is_empty());
        }
    }

    #[test]
    fn gaps_show_other_hosts_and_cost_confidence() {
        // Six foreign flows between the bursts (300 ms): 20 per second.
        let verdict = classify(&run(&some(&[40000, 40001, 40002, 40009, 40010, 40011])));
        assert_eq!(verdict.pattern, Some(Pattern::Sequential));
        assert_eq!(verdict.delta, Some(1));
        assert_eq!(
            verdict.gaps,
            [Gap {
                after: 2,
                before: 3,
                foreign: 6
            }]
        );
        assert_eq!(verdict.foreign_flows_per_second, Some(20.0));
        assert_eq!(verdict.confidence, round(0.9 * (1.0 - 1.0 / 6.0)));
    }

    #[test]
    fn lost_samples_are_bridged() {
        let verdict = classify(&run(&[Some(40000), None, Some(40004), Some(40006), None]));
        assert_eq!(verdict.pattern, Some(Pattern::Sequential));
        assert_eq!(verdict.delta, Some(2));
        assert_eq!(verdict.answered, 3);
        assert_eq!(
            verdict.ports,
            [Some(40000), None, Some(40004), Some(40006), None]
        );
        assert_eq!(verdict.confidence, round(2.0 / 3.0));
    }

    #[test]
    fn preserving_wins_even_when_one_port_was_taken() {
        let mut samples = run(&[None; 8]);
        for s in samples.iter_mut() {
            s.public_port = Some(s.local_port);
        }
        samples[3].public_port = Some(samples[3].local_port + 1);
        let verdict = classify(&samples);
        assert_eq!(verdict.pattern, Some(Pattern::Preserving));
        assert_eq!(verdict.delta, None);
        assert_eq!(verdict.confidence, round(7.0 / 8.0 * 7.0 / 8.0));
    }

    #[test]
    fn scattered_ports_are_random() {
        let verdict = classify(&run(&some(&[
            51234, 8001, 60311, 33333, 12345, 47000, 2999, 41000,
        ])));
        assert_eq!(verdict.pattern, Some(Pattern::Random));
        assert_eq!(verdict.delta, None);
        assert_eq!(verdict.confidence, 0.88);
    }

    #[test]
    fn noise_and_few_samples_lower_confidence() {
        let clean = classify(&run(&some(&[100, 101, 102, 103, 104, 105, 106, 107])));
        // A step backwards is noise no gap explains; the jump after it is a gap.
        let noisy = classify(&run(&some(&[100, 101, 102, 103, 104, 90, 105, 106])));
        let few = classify(&run(&some(&[100, 101, 102])));
        assert!(noisy.confidence < clean.confidence);
        assert!(few.confidence < clean.confidence);
        assert_eq!(noisy.delta, Some(1));
        assert!(noisy.jitter.unwrap() > 0.0);
        for verdict in [clean, noisy, few] {
            assert!((0.0..=1.0).contains(&verdict.confidence));
        }
    }

    #[test]
    fn too_little_evidence_says_nothing() {
        for ports in [
            vec![None, None, Some(40000)],
            some(&[40000, 40001]),
            some(&[4000, 9000]),
        ] {
            let verdict = classify(&run(&ports));
            assert_eq!(verdict.pattern, None, "{ports:?}");
            assert_eq!(verdict.confidence, 0.0);
        }
    }
}
