//! `natlens nat`: fingerprint the NAT toward one STUN server, UDP and TCP at once, and print
//! the report (a table and a narrative, or JSON).

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use std::time::Instant;

use rand::RngCore;

use crate::cli::{NatArgs, PortMappingMode};
use crate::core::fingerprint::plan::MAX_SERVERS;
use crate::core::fingerprint::{PlanConfig, Report};
use crate::exit::{self, Kind};
use crate::io::port_mapping::probe as port_mapping;
use crate::io::prober::{self, Fingerprint, Options};
use crate::render::nat as render;
use crate::render::progress::ProbeBars;
use crate::render::terminal::{self, Stream};
use crate::render::verbosity;
use crate::report::nat::NatOutput;
use crate::report::outcome::{ErrorObject, Failure};

/// Runs `natlens nat`.
pub fn run(args: NatArgs, rng: &mut dyn RngCore) -> anyhow::Result<ExitCode> {
    if args.server.len() > MAX_SERVERS {
        let message = format!("--server may be given at most {MAX_SERVERS} times");
        return Err(exit::failed(Kind::Usage, message));
    }
    interrupt_ends_the_run(&args)?;
    for server in args.server.iter().filter(|_| !verbosity::quiet()) {
        if let Some(line) = super::resolved_line(server) {
            terminal::eprint_message(&format!("natlens: {line}"));
        }
    }
    let servers = same_family(&args);
    let _capture = crate::io::pcap::start_if(args.pcap.as_deref())?;
    let transports = args.transport.list();
    let options = Options {
        server: servers[0],
        config: PlanConfig {
            samples: args.samples,
            more_servers: servers[1..].to_vec(),
        },
        discovery_timeout: args.timeout,
        source: args.source.source_toward(servers[0]),
    };
    // Started first, on its own thread, so that it costs no wall time.
    let port_mapping = match args.port_mapping_mode() {
        PortMappingMode::Off => None,
        mode => Some(port_mapping::start(
            servers[0],
            mode == PortMappingMode::Test,
        )),
    };
    let bars = ProbeBars::new(&transports);
    let fingerprints = prober::fingerprint_all(&transports, &options, &bars, rng)?;
    for fingerprint in &fingerprints {
        crate::io::prober::Probing::probed(&bars, fingerprint);
    }
    let mut report = prober::report(&servers, args.preset_delta, &fingerprints, Instant::now());
    report.port_mapping = port_mapping.map(|probe| probe.finish(report.public_ip()));
    let silent: Vec<&Fingerprint> = fingerprints.iter().filter(|f| !f.answered()).collect();
    if silent.len() == fingerprints.len() {
        return Err(exit::failed(
            Kind::ServerUnreachable,
            no_answer(&args, &silent),
        ));
    }
    // A transport that got no answer makes the result partial (exit status 7): the report is
    // printed all the same, with JSON naming what is missing.
    let missing =
        (!silent.is_empty()).then(|| exit::failed(Kind::Partial, no_answer(&args, &silent)));
    print(&args, &report, missing.as_ref())?;
    match missing {
        Some(err) if args.json => Err(exit::reported(err)),
        Some(err) => Err(err),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// SIGINT or SIGTERM end the run at once with status 130, and with `--json` the interrupted
/// object on stdout (the probes have no stop flag to poll: a run lasts seconds).
fn interrupt_ends_the_run(args: &NatArgs) -> anyhow::Result<()> {
    let err = exit::interrupted("while fingerprinting");
    let object = args
        .json
        .then(|| Failure::of(crate::core::fingerprint::SCHEMA_VERSION, &err).json());
    crate::io::signal::exit_on_interrupt(object, format!("natlens: {}", exit::message(&err)))?;
    Ok(())
}

/// The servers to ask: the first, and every other one of its address family (the probes share
/// one socket per transport); the others are named on stderr and left out.
fn same_family(args: &NatArgs) -> Vec<SocketAddr> {
    let first = args.server[0].addr;
    let mut servers = vec![first];
    for server in &args.server[1..] {
        if server.addr.is_ipv4() == first.is_ipv4() {
            servers.push(server.addr);
        } else {
            terminal::eprint_message(&format!(
                "natlens: warning: skipping --server {server}: not of the first server's \
                 address family"
            ));
        }
    }
    servers
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
            args.server[0],
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

/// The report on stdout: JSON (with its outcome, `missing` making it partial), or the table
/// and the narrative.
fn print(args: &NatArgs, report: &Report, missing: Option<&anyhow::Error>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        let output = NatOutput::new(report, missing.map(ErrorObject::of));
        serde_json::to_writer_pretty(&mut out, &output)?;
        writeln!(out)
    } else {
        if let Some(verdict) = render::verdict(report) {
            writeln!(out, "{verdict}")?;
            writeln!(out)?;
        }
        let table = terminal::fit(render::table(report), Stream::Stdout);
        writeln!(out, "{table}")?;
        writeln!(out)?;
        writeln!(
            out,
            "{}",
            terminal::prose(&render::narrative(report), Stream::Stdout)
        )?;
        if let Some(port_mapping) = &report.port_mapping {
            writeln!(out)?;
            writeln!(
                out,
                "{}",
                terminal::prose(&port_mapping.line(), Stream::Stdout)
            )?;
        }
        Ok(())
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
        let mut keys = key_paths(&report);
        // The outcome envelope `commands::nat` adds around the report (report/nat.rs).
        keys.extend(["result".to_owned(), "error".to_owned()]);
        assert_eq!(documented_keys(), keys);
    }
}
