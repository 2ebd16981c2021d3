//! `natlens nat`'s driver: every transport fingerprinted at once, one thread each, sharing one
//! [`Gate`]; and the report predicting from their fingerprints.

use std::net::SocketAddr;
use std::thread;
use std::time::Instant;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::{fingerprint, Fingerprint, Gate, Options, Probing};
use crate::core::fingerprint::{
    self as core_fingerprint, family, tcp_filtering, FamilyReport, PredictOptions, Report,
};
use crate::core::Transport;

/// Fingerprints every transport at once, one thread each, their progress to `probing` (which
/// is finished before this returns).
pub fn fingerprint_all(
    transports: &[Transport],
    options: &Options,
    probing: &dyn Probing,
    rng: &mut dyn RngCore,
) -> anyhow::Result<Vec<Fingerprint>> {
    let gate = Gate::default();
    // One generator per thread, each seeded from the caller's.
    let mut rngs = transports
        .iter()
        .map(|_| StdRng::from_rng(&mut *rng))
        .collect::<Result<Vec<_>, _>>()?;
    let results: Vec<std::io::Result<Fingerprint>> = thread::scope(|scope| {
        let handles: Vec<_> = transports
            .iter()
            .zip(&mut rngs)
            .map(|(&transport, rng)| {
                let gate = &gate;
                scope.spawn(move || {
                    fingerprint(transport, options, gate, &|p| probing.update(p), rng)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a prober thread panicked"))
            .collect()
    });
    probing.finish();
    transports
        .iter()
        .zip(results)
        .map(|(transport, result)| {
            result
                .with_context(|| format!("probing {} over {}", options.server, transport.as_str()))
        })
        .collect()
}

/// Progress that goes nowhere: the second family's, while the first one's has the bars.
struct Quiet;

impl Probing for Quiet {
    fn update(&self, _: super::Progress) {}
    fn finish(&self) {}
}

/// Fingerprints each family's transports at once ([`fingerprint_all`] per family, the families
/// in parallel too, so a dual-stack run takes as long as its slower family): one result per
/// entry of `families`, in order. The first family's progress goes to `probing`, the others'
/// nowhere (one set of bars), but every family's finished probes go to `probing.probed`.
pub fn fingerprint_families(
    transports: &[Transport],
    families: &[Options],
    probing: &dyn Probing,
    rng: &mut dyn RngCore,
) -> Vec<anyhow::Result<Vec<Fingerprint>>> {
    let mut rngs = Vec::new();
    for _ in families {
        match StdRng::from_rng(&mut *rng) {
            Ok(family_rng) => rngs.push(family_rng),
            Err(err) => return vec![Err(err.into())],
        }
    }
    let results: Vec<anyhow::Result<Vec<Fingerprint>>> = thread::scope(|scope| {
        let handles: Vec<_> = families
            .iter()
            .zip(&mut rngs)
            .enumerate()
            .map(|(i, (options, rng))| {
                let probing: &dyn Probing = if i == 0 { probing } else { &Quiet };
                scope.spawn(move || fingerprint_all(transports, options, probing, rng))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a family's prober thread panicked"))
            .collect()
    });
    for fingerprint in results.iter().flatten().flatten() {
        probing.probed(fingerprint);
    }
    results
}

/// The IPv6 part of a report: [`report`] over the family's servers, with the translation its
/// answers show (none, NPTv6 or NAT66).
pub fn family_report(
    servers: &[SocketAddr],
    preset_delta: i32,
    fingerprints: &[Fingerprint],
    now: Instant,
) -> FamilyReport {
    let report = report(servers, preset_delta, fingerprints, now);
    let observations = fingerprints.iter().flat_map(|f| &f.observations);
    FamilyReport::new(report, family::translation_of(observations))
}

/// The report on `servers` (the primary first), predicting for a flow opened `now`, with its
/// verdict.
pub fn report(
    servers: &[SocketAddr],
    preset_delta: i32,
    fingerprints: &[Fingerprint],
    now: Instant,
) -> Report {
    let mut report = Report::new(servers[0]);
    report.servers = servers.to_vec();
    for fingerprint in fingerprints {
        let options = PredictOptions {
            preset_delta,
            since_last: now.saturating_duration_since(fingerprint.last_sent_at),
            ..PredictOptions::default()
        };
        let mut analysed = core_fingerprint::analyse(&fingerprint.observations, &options);
        if fingerprint.transport == Transport::Tcp {
            tcp_filtering::apply(&mut analysed, fingerprint.tcp_filtering.as_ref());
        }
        let analysed = Some(analysed);
        match fingerprint.transport {
            Transport::Udp => report.udp = analysed,
            Transport::Tcp => report.tcp = analysed,
        }
    }
    if let Some(later) = sampled_last(fingerprints) {
        report.share_counter(later);
    }
    report.settle();
    report
}

/// The transport whose allocation samples went out last, when both were sampled (the gate
/// keeps the two transports' samples apart, so one's all come after the other's).
fn sampled_last(fingerprints: &[Fingerprint]) -> Option<Transport> {
    let first_samples: Vec<(Instant, Transport)> = fingerprints
        .iter()
        .filter_map(|f| {
            let samples = f.observations.iter().filter(|o| o.socket.is_sample());
            Some((samples.map(|o| o.sent_at).min()?, f.transport))
        })
        .collect();
    if first_samples.len() < 2 {
        return None;
    }
    first_samples
        .into_iter()
        .max_by_key(|(at, _)| *at)
        .map(|(_, t)| t)
}
