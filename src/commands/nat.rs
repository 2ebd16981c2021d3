//! `natlens nat`: fingerprint the NAT toward one STUN server, UDP and TCP at once, and print
//! the report (a table and a narrative, or JSON).

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use rand::RngCore;

use crate::cli::NatArgs;
use crate::core::fingerprint::{PlanConfig, Report};
use crate::exit::{self, Kind};
use crate::io::prober::{self, Fingerprint, Options};
use crate::render::nat as render;
use crate::render::progress::ProbeBars;

/// Runs `natlens nat`.
pub fn run(args: NatArgs, rng: &mut dyn RngCore) -> anyhow::Result<ExitCode> {
    if let Some(line) = super::resolved_line(&args.server) {
        eprintln!("natlens: {line}");
    }
    let transports = args.transport.list();
    let options = Options {
        server: args.server.addr,
        config: PlanConfig {
            samples: args.samples,
        },
        discovery_timeout: args.timeout,
        source: args.source.source_toward(args.server.addr),
    };
    let bars = ProbeBars::new(&transports);
    let fingerprints = prober::fingerprint_all(&transports, &options, &bars, rng)?;
    let report = prober::report(
        args.server.addr,
        args.preset_delta,
        &fingerprints,
        Instant::now(),
    );
    let silent: Vec<&Fingerprint> = fingerprints.iter().filter(|f| !f.answered()).collect();
    if silent.len() == fingerprints.len() {
        return Err(exit::failed(
            Kind::ServerUnreachable,
            no_answer(&args, &silent),
        ));
    }
    for fingerprint in silent {
        eprintln!("natlens: warning: {}", no_answer(&args, &[fingerprint]));
    }
    print(&args, &report)?;
    Ok(ExitCode::SUCCESS)
}

/// "no STUN answer from ADDR over udp within 3s: is a STUN server there?", or for what the
/// kernel reported at once, without waiting, its reason: "ADDR answered ICMP port unreachable
/// (udp)", "ADDR refused the TCP connection (tcp)".
fn no_answer(args: &NatArgs, silent: &[&Fingerprint]) -> String {
    let waited: Vec<&str> = silent
        .iter()
        .filter(|f| f.unreachable.is_none())
        .map(|f| f.transport.as_str())
        .collect();
    let mut parts = Vec::new();
    if !waited.is_empty() {
        let timeout = humantime::format_duration(args.timeout);
        parts.push(format!(
            "no STUN answer from {} over {} within {timeout}",
            args.server,
            waited.join(" or ")
        ));
    }
    for fingerprint in silent {
        if let Some(unreachable) = fingerprint.unreachable {
            parts.push(format!(
                "{unreachable} ({})",
                fingerprint.transport.as_str()
            ));
        }
    }
    let question = if waited.is_empty() {
        ""
    } else {
        ": is a STUN server there?"
    };
    format!("{}{question}", parts.join("; "))
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
        assert_eq!(
            report["schema_version"],
            crate::core::fingerprint::SCHEMA_VERSION
        );
        assert_eq!(documented_keys(), key_paths(&report));
    }
}
