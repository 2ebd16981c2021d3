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
use crate::core::path::{self, PathEvidence, PathReport, DEFAULT_MAX_TTL};
use crate::exit::{self, Kind};
use crate::io::path_probe;
use crate::io::port_mapping::probe as port_mapping;
use crate::io::prober::{self, lifetime, Fingerprint, Options};
use crate::render::lifetime_progress::LifetimeBar;
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
    let port_mapping = start_port_mapping(&args, servers[0]);
    // Its requests leave before the fingerprint's first probe; its answers are collected
    // while the fingerprint runs.
    let path = (!args.no_path)
        .then(|| {
            path_probe::start(
                servers[0],
                &options.source,
                DEFAULT_MAX_TTL,
                path_probe::DEFAULT_WAIT,
                rng,
            )
        })
        .transpose()?;
    let bars = ProbeBars::new(&transports);
    let fingerprints = match prober::fingerprint_all(&transports, &options, &bars, rng) {
        Ok(fingerprints) => fingerprints,
        Err(e) => {
            // Joined even so: a --port-mapping test mapping is deleted before the exit.
            port_mapping.map(|probe| probe.finish(None));
            return Err(e);
        }
    };
    for fingerprint in &fingerprints {
        crate::io::prober::Probing::probed(&bars, fingerprint);
    }
    let mut report = prober::report(&servers, args.preset_delta, &fingerprints, Instant::now());
    // Joined before the lifetime measurement, so a --port-mapping test mapping does not sit on
    // the router for the minutes that takes.
    report.port_mapping = port_mapping.map(|probe| probe.finish(report.public_ip()));
    if let Some(max) = args.lifetime {
        measure_lifetime(&args, max, &mut report, rng)?;
    }
    let silent: Vec<&Fingerprint> = fingerprints.iter().filter(|f| !f.answered()).collect();
    if silent.len() == fingerprints.len() {
        return Err(exit::failed(
            Kind::ServerUnreachable,
            no_answer(&args, &silent),
        ));
    }
    report.path = path.map(|running| path_report(&report, running.finish()));
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

/// Starts the port-mapping probe first, on its own thread, so that it costs no wall time;
/// `None` with `--port-mapping off`.
fn start_port_mapping(args: &NatArgs, server: SocketAddr) -> Option<port_mapping::Background> {
    match args.port_mapping_mode() {
        PortMappingMode::Off => None,
        mode => Some(port_mapping::start(server, mode == PortMappingMode::Test)),
    }
}

/// `--lifetime`: measures the UDP mapping lifetime toward the primary server after the
/// fingerprint, into the UDP report; a measurement that cannot be made leaves its keys null and
/// says why on stderr.
fn measure_lifetime(
    args: &NatArgs,
    max: std::time::Duration,
    report: &mut Report,
    rng: &mut dyn RngCore,
) -> anyhow::Result<()> {
    let Some(udp) = report
        .udp
        .as_mut()
        .filter(|udp| udp.public_address.is_some())
    else {
        terminal::eprint_message(
            "natlens: warning: --lifetime needs a UDP answer from the server; not measured",
        );
        return Ok(());
    };
    let bar = LifetimeBar::new(max);
    let source = args.source.source_toward(report.server);
    let measured = lifetime::measure(report.server, max, &source, rng, &mut |s| bar.update(s));
    bar.finish();
    let measured = measured?;
    if let Some(why) = &measured.failure {
        terminal::eprint_message(&format!(
            "natlens: warning: mapping lifetime not measured: {why}"
        ));
    }
    udp.lifetime = measured.facts;
    Ok(())
}

/// The path verdict over the probe's hops and what the fingerprint saw (the public address:
/// UDP's, else TCP's).
fn path_report(report: &Report, found: path_probe::Finished) -> PathReport {
    let public = [&report.udp, &report.tcp]
        .into_iter()
        .flatten()
        .find_map(|transport| transport.public_address);
    // The other helpers' evidence: the gateway's own idea of its external address (and PCP's
    // ADDRESS_MISMATCH) from the port-mapping probe, and the TTL-limited refresh of --lifetime.
    let mapping = report.port_mapping.as_ref();
    let evidence = PathEvidence {
        hops: found.hops,
        public_address: public.map(|address| address.ip()),
        gateway_external: mapping.and_then(|m| m.external_address),
        pcp_address_mismatch: mapping
            .filter(|m| m.pcp.present)
            .map(|m| m.pcp_address_mismatch()),
        ttl_refresh_outermost_nat_hop: report
            .udp
            .as_ref()
            .and_then(|udp| udp.lifetime.ttl_refresh_outermost_nat_hop),
    };
    path::judge(&evidence, Some(found.local_ip), found.ignored)
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
        if let Some(path) = &report.path {
            writeln!(out, "{}", terminal::prose(&path.line(), Stream::Stdout))?;
            writeln!(out)?;
        }
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
        for child in report["path"].as_object().unwrap().keys() {
            keys.insert(format!("path.{child}"));
        }
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
