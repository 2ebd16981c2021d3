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
use crate::render::terminal::{self, Stream};
use crate::render::verbosity;

/// Runs `natlens nat`.
pub fn run(args: NatArgs, rng: &mut dyn RngCore) -> anyhow::Result<ExitCode> {
    if let Some(line) = super::resolved_line(&args.server).filter(|_| !verbosity::quiet()) {
        terminal::eprint_message(&format!("natlens: {line}"));
    }
    let transports = args.transport.list();
    let options = Options {
        server: args.server.addr,
        config: PlanConfig {
            samples: args.samples,
        },
        discovery_timeout: args.timeout,
    };
    let bars = ProbeBars::new(&transports);
    let fingerprints = prober::fingerprint_all(&transports, &options, &bars, rng)?;
    for fingerprint in &fingerprints {
        crate::io::prober::Probing::probed(&bars, fingerprint);
    }
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
        terminal::eprint_message(&format!(
            "natlens: warning: {}",
            no_answer(&args, &[fingerprint])
        ));
    }
    print(&args, &report)?;
    Ok(ExitCode::SUCCESS)
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
        let table = terminal::fit(render::table(report), Stream::Stdout);
        writeln!(out, "{table}")?;
        writeln!(out)?;
        writeln!(
            out,
            "{}",
            terminal::prose(&render::narrative(report), Stream::Stdout)
        )
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
