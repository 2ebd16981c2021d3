//! How the NAT picks public ports, from the allocation samples (one fresh socket each):
//! preserving (public port = local port), sequential (a fixed step, with gaps where other hosts'
//! flows took ports) or random, with a confidence that says how well the samples fit it.
//!
//! Confidence is the share of the evidence the verdict explains, in [0, 1]:
//! - preserving: the share of answered samples that kept their local port;
//! - sequential: the share of steps between consecutive answered samples that the model
//!   explains: exactly `delta` per sample sent (a lost sample in between still took its port),
//!   or a further multiple of `delta` that other flows account for: our own other probes, or
//!   at most [`MAX_FOREIGN_IN_GAP`] other hosts' flows;
//! - random: the share of steps no regular pattern explains: one minus the larger of the
//!   preserving share and the best sequential step's explained share.
//!
//! It measures fit, not the amount of evidence (`answered` says how many samples it rests on):
//! eight clean sequential samples and three are both 1.0, one step out of seven that no gap
//! explains gives 0.86.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::core::fingerprint::observation::{Observation, Socket};

/// Largest step still called sequential. docs/lab.md met a real +256 (a byte-order slip in an nft
/// rule); a random NAT's steps agree on anything this small only by a rare chance.
pub const MAX_STEP: i32 = 1024;

/// Exact steps needed before calling a NAT sequential: one pair agreeing with itself proves
/// nothing.
const MIN_EXACT_PAIRS: usize = 2;

/// Most other hosts' flows a gap between two samples may hold and still count as explained
/// by a sequential NAT: a busy NAT (docs/lab.md measured 20 new flows a second) fills the
/// 70 ms pause between the bursts with one or two; a random NAT lands this close above the
/// previous port only by a rare chance (64 in 64 512).
pub const MAX_FOREIGN_IN_GAP: u32 = 64;

/// One allocation sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Position in send order (the plan's `Socket::Sample` number).
    pub index: u8,
    pub local_port: u16,
    /// `None` when the probe was lost.
    pub public_port: Option<u16>,
    pub sent_at: Instant,
    /// TCP: its handshake took far longer than the quickest sample's (a SYN or SYN-ACK lost or
    /// held up). In the lab at 10% loss such a connection's public port sometimes came after
    /// later samples' and one more port went missing: its mapping was made again, late. Its
    /// port is then ours but out of order, so it is left out of the steps and counted as one
    /// of our own ports in whatever gap it sits in.
    pub late: bool,
}

/// A TCP handshake is late when it took more than twice the quickest sample's (a mapping made
/// again costs at least one more round trip), plus this for scheduling on a busy host.
const LATE_SLACK: Duration = Duration::from_millis(5);

/// More late samples than one in this many means the host, not the path, was slow (a loaded
/// machine delays every readiness event): then none counts as late.
const MOST_LATE: usize = 4;

/// The samples in send order.
pub fn samples(observations: &[Observation]) -> Vec<Sample> {
    let quickest = observations
        .iter()
        .filter(|o| o.socket.is_sample())
        .filter_map(|o| o.handshake)
        .min();
    let late = |o: &Observation| match (o.handshake, quickest) {
        (Some(took), Some(quickest)) => took > 2 * quickest + LATE_SLACK,
        _ => false,
    };
    let sampled = observations.iter().filter(|o| o.socket.is_sample());
    let believable = sampled.clone().filter(|o| late(o)).count() * MOST_LATE <= sampled.count();
    let late = |o: &Observation| believable && late(o);
    let mut samples: Vec<Sample> = observations
        .iter()
        .filter_map(|o| match o.socket {
            Socket::Sample(index) => Some(Sample {
                index,
                local_port: o.local.port(),
                public_port: o.public().map(|p| p.port()),
                sent_at: o.sent_at,
                late: late(o),
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
    /// In [0, 1]: the share of the samples' evidence the pattern explains (see the module
    /// doc); 0 without a pattern.
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
    /// `after`'s public port.
    from: u16,
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

    /// How many of `own` (ports our other flows hold) lie strictly between the two samples'
    /// ports: allocations in the gap that were ours, not another host's.
    fn own_between(&self, own: &[u16]) -> u32 {
        let (a, b) = (i32::from(self.from), i32::from(self.from) + self.raw);
        let (low, high) = (a.min(b), a.max(b));
        let inside = own
            .iter()
            .filter(|&&p| low < i32::from(p) && i32::from(p) < high)
            .count();
        u32::try_from(inside).unwrap_or(u32::MAX)
    }

    /// How many of our unanswered flows opened while the pair was being sent (strictly
    /// between the two samples' sends).
    fn unseen_between(&self, opened: &[Instant]) -> u32 {
        let (from, to) = (self.after.sent_at, self.before.sent_at);
        let inside = opened.iter().filter(|&&t| from < t && t < to).count();
        u32::try_from(inside).unwrap_or(u32::MAX)
    }

    fn is_exact(&self, delta: i32) -> bool {
        self.raw == delta * self.span
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
            from: w[0].1,
        })
        .collect()
}

/// Splits off *strays*: answered samples out of step with both neighbours while the neighbours
/// are exactly in step with each other. Over TCP under loss a sample's mapping sometimes comes
/// after its burst-mates' (seen in the lab at 10% loss: ports 40009, 40013, 40011, 40012), which
/// would otherwise read as other hosts' flows in one gap and jitter in the next, and inflate
/// the noise estimate a punch's prediction rests on. A stray's port is still ours.
fn split_strays(answered: &[(Sample, u16)], delta: i32) -> (Vec<(Sample, u16)>, Vec<u16>) {
    let pair = |a: &(Sample, u16), b: &(Sample, u16)| {
        i32::from(b.1) - i32::from(a.1) == delta * (i32::from(b.0.index) - i32::from(a.0.index))
    };
    let mut kept: Vec<(Sample, u16)> = Vec::with_capacity(answered.len());
    let mut strays = Vec::new();
    for (i, sample) in answered.iter().enumerate() {
        let (Some(before), Some(next)) = (kept.last(), answered.get(i + 1)) else {
            kept.push(*sample);
            continue;
        };
        if !pair(before, sample) && !pair(sample, next) && pair(before, next) {
            strays.push(sample.1);
        } else {
            kept.push(*sample);
        }
    }
    (kept, strays)
}

/// Classifies the samples.
pub fn classify(samples: &[Sample]) -> Allocation {
    classify_among(samples, &[])
}

/// Classifies the samples; `own` are the public ports the fingerprint's other probes were seen
/// to hold, which a gap between samples may contain without any other host being involved.
pub fn classify_among(samples: &[Sample], own: &[u16]) -> Allocation {
    classify_with(samples, own, &[])
}

/// [`classify_among`], also given when each of the fingerprint's other flows that was never
/// answered opened (`unseen_own`): its port is unknown, but a gap between two samples sent
/// around it holds one allocation of ours, not another host's. Under loss (a mapping test whose
/// every answer was lost) one such flow between the two sample bursts read as about four
/// foreign flows per second on a quiet NAT, and a punch seconds later aimed 20-odd ports past
/// the real one.
pub fn classify_with(samples: &[Sample], own: &[u16], unseen_own: &[Instant]) -> Allocation {
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
    let kept = answered.iter().filter(|(s, p)| s.local_port == *p).count();
    let preserving_fit = kept as f64 / answered.len() as f64;
    if preserving_fit >= 0.5 {
        verdict.pattern = Some(Pattern::Preserving);
        verdict.confidence = round(preserving_fit);
        return verdict;
    }
    let pairs = pairs(&answered);
    let sequential = modal_step(&pairs).map(|delta| {
        let (on_time, late): (Vec<_>, Vec<_>) = answered.iter().partition(|(s, _)| !s.late);
        let on_time: Vec<(Sample, u16)> = on_time.into_iter().copied().collect();
        let (kept, strays) = split_strays(&on_time, delta);
        let strays = strays.into_iter().chain(late.into_iter().map(|(_, p)| *p));
        let own: Vec<u16> = own.iter().copied().chain(strays).collect();
        Sequential::score(&self::pairs(&kept), delta, &own, unseen_own)
    });
    match sequential {
        Some(s) if s.exact >= MIN_EXACT_PAIRS && s.fit >= 0.5 => {
            verdict.pattern = Some(Pattern::Sequential);
            verdict.delta = Some(s.delta);
            verdict.jitter = Some(round(s.jitter));
            verdict.confidence = round(s.explained);
            verdict.foreign_flows_per_second = s.rate.map(round);
            verdict.gaps = s.gaps;
        }
        _ if pairs.len() >= 2 => {
            let best = preserving_fit.max(sequential.map_or(0.0, |s| s.explained));
            verdict.pattern = Some(Pattern::Random);
            verdict.confidence = round(1.0 - best);
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
    /// Pair score for the verdict: 1 for an exact step or a gap of our own flows, ½ for a gap
    /// of other hosts' flows.
    fit: f64,
    /// The share of pairs the model explains (the confidence; see the module doc).
    explained: f64,
    exact: usize,
    jitter: f64,
    gaps: Vec<Gap>,
    rate: Option<f64>,
}

impl Sequential {
    fn score(pairs: &[Pair], delta: i32, own: &[u16], unseen_own: &[Instant]) -> Self {
        let (mut total, mut exact, mut deviation) = (0.0, 0, 0.0);
        let mut explained = 0usize;
        let mut gaps = Vec::new();
        let (mut foreign_total, mut elapsed) = (0u32, Duration::ZERO);
        for pair in pairs {
            let foreign = pair.foreign(delta).map(|f| {
                f.saturating_sub(pair.own_between(own))
                    .saturating_sub(pair.unseen_between(unseen_own))
            });
            if pair.is_exact(delta) {
                total += 1.0;
                exact += 1;
                explained += 1;
            } else if foreign == Some(0) {
                // The whole gap is our own flows: in step, though not a step seen by itself.
                total += 1.0;
                explained += 1;
            } else if let Some(foreign) = foreign {
                total += 0.5;
                explained += usize::from(foreign <= MAX_FOREIGN_IN_GAP);
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
            explained: explained as f64 / n,
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
pub(crate) mod tests {
    use super::*;

    /// Samples with local ports far from the public ones, sent in two bursts `gap_ms` apart.
    pub(crate) fn samples(ports: &[Option<u16>], gap_ms: u64) -> Vec<Sample> {
        let start = Instant::now();
        let half = ports.len().div_ceil(2);
        ports
            .iter()
            .enumerate()
            .map(|(i, &public_port)| Sample {
                index: i as u8,
                local_port: 20000 + 7 * i as u16,
                public_port,
                sent_at: start + Duration::from_millis(if i < half { 0 } else { gap_ms }),
                late: false,
            })
            .collect()
    }

    /// Two bursts 300 ms apart.
    fn run(ports: &[Option<u16>]) -> Vec<Sample> {
        samples(ports, 300)
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
            assert_eq!(verdict.confidence, 1.0, "every step is the step");
            assert_eq!(verdict.foreign_flows_per_second, Some(0.0));
            assert!(verdict.gaps.is_empty());
        }
    }

    #[test]
    fn gaps_show_other_hosts_and_are_explained_by_them() {
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
        assert_eq!(verdict.confidence, 1.0, "six other flows explain the gap");
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
        assert_eq!(verdict.confidence, 1.0, "a lost sample still took its port");
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
        assert_eq!(
            verdict.confidence,
            round(7.0 / 8.0),
            "seven of eight kept their port"
        );
    }

    #[test]
    fn scattered_ports_are_random() {
        let verdict = classify(&run(&some(&[
            51234, 8001, 60311, 33333, 12345, 47000, 2999, 41000,
        ])));
        assert_eq!(verdict.pattern, Some(Pattern::Random));
        assert_eq!(verdict.delta, None);
        assert_eq!(verdict.confidence, 1.0, "no step fits any pattern");
    }

    #[test]
    fn noise_lowers_confidence_and_few_samples_do_not() {
        let clean = classify(&run(&some(&[100, 101, 102, 103, 104, 105, 106, 107])));
        // A step backwards is noise no gap explains; the jump after it is a gap.
        let noisy = classify(&run(&some(&[100, 101, 102, 103, 104, 90, 105, 106])));
        let few = classify(&run(&some(&[100, 101, 102])));
        assert_eq!(clean.confidence, 1.0);
        assert_eq!(
            noisy.confidence,
            round(6.0 / 7.0),
            "one step of seven unexplained"
        );
        assert_eq!(few.confidence, 1.0, "fit, not the amount of evidence");
        assert_eq!(few.answered, 3);
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

    #[test]
    fn a_tcp_sample_mapped_late_is_a_stray_not_noise() {
        // Lab, 10% loss over TCP: the sixth sample's mapping came after the seventh's and
        // eighth's, and 40010 went to it first or to nothing we saw.
        let ports = some(&[40005, 40006, 40007, 40008, 40009, 40013, 40011, 40012]);
        let verdict = classify(&run(&ports));
        assert_eq!(verdict.pattern, Some(Pattern::Sequential));
        assert_eq!(verdict.delta, Some(1));
        assert_eq!(verdict.foreign_flows_per_second, Some(0.0));
        let ports = some(&[40012, 40014, 40020, 40018, 40022, 40024, 40026, 40028]);
        let verdict = classify(&run(&ports));
        assert_eq!(verdict.delta, Some(2));
        assert_eq!(verdict.foreign_flows_per_second, Some(0.0));
        assert!(verdict.gaps.is_empty());
    }

    #[test]
    fn a_late_tcp_sample_holds_its_port_and_the_one_it_lost() {
        // Lab, 10% loss over TCP: the fourth sample's handshake took more than twice its
        // burst-mates' (112 against 50 ms), and its mapping came after the next burst's first
        // (lost) sample's.
        let ports = [40005, 40006, 40007, 40009, 0, 40011, 40012, 40013];
        let mut samples = run(&ports.map(|p| (p != 0).then_some(p)));
        // Over TCP a sample's time is when its request went out, after the slow handshake.
        samples[3].sent_at += Duration::from_millis(60);
        let noisy = classify(&samples);
        assert!(noisy.foreign_flows_per_second > Some(0.0));
        samples[3].late = true;
        let verdict = classify(&samples);
        assert_eq!(verdict.delta, Some(1));
        assert_eq!(verdict.foreign_flows_per_second, Some(0.0));
        assert!(verdict.gaps.is_empty());
    }

    #[test]
    fn our_own_probes_in_a_gap_are_not_other_hosts() {
        // A mapping-test connection of ours took 40009 between the bursts.
        let ports = some(&[40005, 40006, 40007, 40008, 40010, 40011, 40012, 40013]);
        let noisy = classify(&run(&ports));
        assert_eq!(noisy.gaps.len(), 1);
        let verdict = classify_among(&run(&ports), &[40001, 40002, 40009]);
        assert_eq!(verdict.pattern, Some(Pattern::Sequential));
        assert!(verdict.gaps.is_empty());
        assert_eq!(verdict.foreign_flows_per_second, Some(0.0));
        // Another host's flow next to ours still counts.
        let ports = some(&[40005, 40006, 40007, 40008, 40011, 40012, 40013, 40014]);
        let verdict = classify_among(&run(&ports), &[40009]);
        assert_eq!(verdict.gaps.len(), 1);
        assert_eq!(verdict.gaps[0].foreign, 1);
    }

    #[test]
    fn our_unanswered_flows_between_the_bursts_are_not_other_hosts() {
        // Lab, 10% loss over TCP: a mapping-test connection of ours opened between the bursts
        // and every answer to it was lost, so 40009 is ours though no answer said so.
        let ports = some(&[40005, 40006, 40007, 40008, 40010, 40011, 40012, 40013]);
        let samples = run(&ports);
        let between = samples[3].sent_at + Duration::from_millis(150);
        assert!(classify(&samples).foreign_flows_per_second > Some(3.0));
        let verdict = classify_with(&samples, &[], &[between]);
        assert_eq!(verdict.delta, Some(1));
        assert!(verdict.gaps.is_empty());
        assert_eq!(verdict.foreign_flows_per_second, Some(0.0));
        // One flow of ours explains one port: a second skipped port is another host's.
        let ports = some(&[40005, 40006, 40007, 40008, 40011, 40012, 40013, 40014]);
        let verdict = classify_with(&run(&ports), &[], &[between]);
        assert_eq!(verdict.gaps.len(), 1);
        assert_eq!(verdict.gaps[0].foreign, 1);
        // A flow of ours opened outside the gap explains nothing in it.
        let before = samples[0].sent_at - Duration::from_millis(150);
        let verdict = classify_with(&run(&ports), &[], &[before]);
        assert_eq!(verdict.gaps[0].foreign, 2);
    }

    #[test]
    fn a_gap_too_wide_for_other_flows_is_not_explained() {
        // 65 allocations between two samples 300 ms apart: more than a gap may hold.
        let wide = 40002 + 1 + MAX_FOREIGN_IN_GAP as u16;
        let verdict = classify(&run(&some(&[
            40000,
            40001,
            40002,
            wide + 1,
            wide + 2,
            wide + 3,
        ])));
        assert_eq!(verdict.pattern, Some(Pattern::Sequential));
        assert_eq!(verdict.confidence, round(4.0 / 5.0));
        let near = classify(&run(&some(&[40000, 40001, 40002, 40010, 40011, 40012])));
        assert_eq!(near.confidence, 1.0);
    }
}
