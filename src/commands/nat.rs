//! `natlens nat`: fingerprint the NAT toward one STUN server, UDP and TCP at once, and print
//! the report (a table and a narrative, or JSON).

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::thread;
use std::time::Instant;

use anyhow::{anyhow, Context};

use crate::cli::NatArgs;
use crate::core::fingerprint::{self, PlanConfig, PredictOptions, Report};
use crate::core::Transport;
use crate::io::prober::{self, Fingerprint, Gate, Options};
use crate::render::nat as render;
use crate::render::progress::ProbeBars;

/// Runs `natlens nat`.
pub fn run(args: NatArgs) -> anyhow::Result<ExitCode> {
    let transports = args.transport.list();
    let options = Options {
        server: args.server,
        config: PlanConfig {
            samples: args.samples,
        },
        discovery_timeout: args.timeout,
    };
    let fingerprints = probe(&transports, &options)?;
    let report = report(
        args.server,
        args.preset_delta,
        &fingerprints,
        Instant::now(),
    );
    let silent: Vec<&Fingerprint> = fingerprints.iter().filter(|f| !f.answered()).collect();
    if silent.len() == fingerprints.len() {
        return Err(anyhow!(no_answer(&args, &silent)));
    }
    for fingerprint in silent {
        eprintln!("natlens: warning: {}", no_answer(&args, &[fingerprint]));
    }
    print(&args, &report)?;
    Ok(ExitCode::SUCCESS)
}

/// Fingerprints every transport at once, one thread each, with a progress bar each.
pub(super) fn probe(
    transports: &[Transport],
    options: &Options,
) -> anyhow::Result<Vec<Fingerprint>> {
    let bars = ProbeBars::new(transports);
    let gate = Gate::default();
    let results: Vec<std::io::Result<Fingerprint>> = thread::scope(|scope| {
        let handles: Vec<_> = transports
            .iter()
            .map(|&transport| {
                let (bars, gate) = (&bars, &gate);
                scope.spawn(move || {
                    prober::fingerprint(transport, options, gate, &|p| bars.update(p))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a prober thread panicked"))
            .collect()
    });
    bars.finish();
    transports
        .iter()
        .zip(results)
        .map(|(transport, result)| {
            result
                .with_context(|| format!("probing {} over {}", options.server, transport.as_str()))
        })
        .collect()
}

/// The report, predicting for a flow opened `now`.
pub(super) fn report(
    server: SocketAddr,
    preset_delta: i32,
    fingerprints: &[Fingerprint],
    now: Instant,
) -> Report {
    let mut report = Report::new(server);
    for fingerprint in fingerprints {
        let options = PredictOptions {
            preset_delta,
            since_last: now.saturating_duration_since(fingerprint.last_sent_at),
            ..PredictOptions::default()
        };
        let analysed = Some(fingerprint::analyse(&fingerprint.observations, &options));
        match fingerprint.transport {
            Transport::Udp => report.udp = analysed,
            Transport::Tcp => report.tcp = analysed,
        }
    }
    if let Some(later) = sampled_last(fingerprints) {
        report.share_counter(later);
    }
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

/// "no STUN answer from ADDR over udp within 3s: is a STUN server there?", naming a refused
/// TCP connection as such (it did not take the whole timeout).
fn no_answer(args: &NatArgs, silent: &[&Fingerprint]) -> String {
    let waited: Vec<&str> = silent
        .iter()
        .filter(|f| !f.refused)
        .map(|f| f.transport.as_str())
        .collect();
    let mut over = Vec::new();
    if !waited.is_empty() {
        let timeout = humantime::format_duration(args.timeout);
        over.push(format!("over {} within {timeout}", waited.join(" or ")));
    }
    if silent.iter().any(|f| f.refused) {
        over.push("over tcp (connection refused)".into());
    }
    format!(
        "no STUN answer from {} {}: is a STUN server there?",
        args.server,
        over.join(" or ")
    )
}

/// The report on stdout: JSON, or the table and the narrative.
fn print(args: &NatArgs, report: &Report) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, report)?;
        writeln!(out)
    } else {
        writeln!(out, "{}", render::table(report))?;
        writeln!(out)?;
        writeln!(out, "{}", render::narrative(report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::collections::BTreeSet;

    /// The keys the JSON OUTPUT section of `natlens nat --help` documents.
    fn documented_keys() -> BTreeSet<String> {
        let cli = crate::cli::Cli::command();
        let nat = cli.find_subcommand("nat").expect("a nat subcommand");
        let help = nat.get_after_long_help().expect("JSON OUTPUT").to_string();
        help.lines()
            .filter_map(|line| line.strip_prefix("  "))
            .filter_map(|entry| entry.split_once("  ").map(|(keys, _)| keys))
            .flat_map(|keys| keys.split(", ").map(str::to_owned))
            .collect()
    }

    /// Key paths of a report: top-level keys, a transport's keys, and for its objects
    /// (`allocation`, `prediction`) their keys instead.
    fn key_paths(report: &serde_json::Value) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        let object = report.as_object().unwrap();
        keys.extend(object.keys().cloned());
        for (key, value) in report["udp"].as_object().unwrap() {
            match value.as_object() {
                Some(children) => keys.extend(children.keys().map(|c| format!("{key}.{c}"))),
                None => {
                    keys.insert(key.clone());
                }
            }
        }
        keys
    }

    /// The man page documents exactly the keys the report serialises (the core's golden report).
    #[test]
    fn json_output_section_matches_the_report() {
        let golden = include_str!("../core/fingerprint/testdata/report.json");
        let report: serde_json::Value = serde_json::from_str(golden).unwrap();
        assert_eq!(report["schema_version"], fingerprint::SCHEMA_VERSION);
        assert_eq!(documented_keys(), key_paths(&report));
    }
}
