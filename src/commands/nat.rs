//! `natlens nat`: fingerprint the NAT toward one STUN server, UDP and TCP at once, and print
//! the report (a table and a narrative, or JSON).

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use std::time::Instant;

use rand::RngCore;

use crate::cli::{family_name, Family, FamilyChoice, FamilyServers, NatArgs, PortMappingMode};
use crate::core::fingerprint::plan::MAX_SERVERS;
use crate::core::fingerprint::{Families, FamilyStatus, PlanConfig, Report};
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
    let plan = FamilyPlan::of(&args)?;
    let primary = plan.primary();
    let _capture = crate::io::pcap::start_if(args.pcap.as_deref())?;
    let transports = args.transport.list();
    let options: Vec<Options> = plan
        .probed()
        .map(|(_, s)| probe_options(&args, s))
        .collect();
    let port_mapping = start_port_mapping(&args, primary);
    // Its requests leave before the fingerprint's first probe; its answers are collected
    // while the fingerprint runs.
    let path = (!args.no_path)
        .then(|| {
            let source = args.source.source_toward(primary);
            let wait = path_probe::DEFAULT_WAIT;
            path_probe::start(primary, &source, DEFAULT_MAX_TTL, wait, rng)
        })
        .transpose()?;
    let bars = ProbeBars::new(&transports);
    let results = prober::fingerprint_families(&transports, &options, &bars, rng);
    let probed = match plan.settle(results, &args) {
        Ok(probed) => probed,
        Err(e) => {
            // Joined even so: a --port-mapping test mapping is deleted before the exit.
            port_mapping.map(|probe| probe.finish(None));
            return Err(e);
        }
    };
    let mut report = probed.report(args.preset_delta, Instant::now());
    // Joined before the lifetime measurement, so a --port-mapping test mapping does not sit on
    // the router for the minutes that takes.
    report.port_mapping = port_mapping.map(|probe| probe.finish(report.public_ip()));
    if let Some(max) = args.lifetime {
        measure_lifetime(&args, max, &mut report, rng)?;
    }
    let silent = probed.silent(&args);
    let heard = probed
        .families
        .iter()
        .flat_map(|(.., f)| f)
        .any(Fingerprint::answered);
    if !heard {
        return Err(exit::failed(Kind::ServerUnreachable, silent.join("; ")));
    }
    report.path = path.map(|running| path_report(&report, running.finish()));
    // A transport that got no answer makes the result partial (exit status 7): the report is
    // printed all the same, with JSON naming what is missing.
    let missing = (!silent.is_empty()).then(|| exit::failed(Kind::Partial, silent.join("; ")));
    print(&args, &report, missing.as_ref())?;
    match missing {
        Some(err) if args.json => Err(exit::reported(err)),
        Some(err) => Err(err),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// One family's fingerprint options: its primary server, the rest of its servers after it.
fn probe_options(args: &NatArgs, servers: &[SocketAddr]) -> Options {
    Options {
        server: servers[0],
        config: PlanConfig {
            samples: args.samples,
            more_servers: servers[1..].to_vec(),
        },
        discovery_timeout: args.timeout,
        source: args.source.source_toward(servers[0]),
    }
}

/// Which families the run probes (IPv4 first), each with its servers or why it is not probed.
struct FamilyPlan {
    choice: FamilyChoice,
    families: [(Family, FamilyServers); 2],
}

impl FamilyPlan {
    /// The families `args` asks for; a usage error when none can be probed, or when the one
    /// `--family` names has no server.
    fn of(args: &NatArgs) -> anyhow::Result<FamilyPlan> {
        let routed = |addr: SocketAddr| crate::io::route::local_ip_toward(addr).is_ok();
        let plan = FamilyPlan {
            choice: args.family,
            families: [Family::V4, Family::V6].map(|f| (f, args.family_servers(f, &routed))),
        };
        let reasons: Vec<String> = plan
            .families
            .iter()
            .filter(|(family, _)| args.family == FamilyChoice::Any || *family == plan.wanted())
            .filter_map(|(family, servers)| {
                let why = servers.as_ref().err()?;
                Some(format!("{}: {why}", family_name(*family)))
            })
            .collect();
        if plan.probed().next().is_none() || args.family != FamilyChoice::Any && !reasons.is_empty()
        {
            let message = format!("nothing to probe ({})", reasons.join("; "));
            return Err(exit::failed(Kind::Usage, message));
        }
        Ok(plan)
    }

    /// The family `--family 4` or `6` names (IPv4 for any).
    fn wanted(&self) -> Family {
        match self.choice {
            FamilyChoice::V6 => Family::V6,
            _ => Family::V4,
        }
    }

    /// Each family probed, IPv4 first, with its servers.
    fn probed(&self) -> impl Iterator<Item = (Family, &[SocketAddr])> {
        self.families
            .iter()
            .filter_map(|(family, servers)| Some((*family, servers.as_deref().ok()?)))
    }

    /// The first probed family's primary server: where the port-mapping probe, the path probe
    /// and --lifetime go.
    fn primary(&self) -> SocketAddr {
        self.probed().next().expect("FamilyPlan::of checked one").1[0]
    }

    /// The fingerprints of each family probed, in the order of [`FamilyPlan::probed`]. With
    /// `--family any`, a family whose probing failed outright (no route, no address of the
    /// family) is reported as not probed, with the error, unless every family failed.
    fn settle(
        self,
        results: Vec<anyhow::Result<Vec<Fingerprint>>>,
        args: &NatArgs,
    ) -> anyhow::Result<Probed> {
        let mut probed = Vec::new();
        let mut statuses = Vec::new();
        let mut first_error = None;
        let mut results = results.into_iter();
        for (family, servers) in self.families {
            let first = args.server.iter().find_map(|s| s.addr_of_family(family));
            let servers = match servers {
                Ok(servers) => servers,
                Err(why) => {
                    statuses.push(FamilyStatus::not_probed(first, why));
                    continue;
                }
            };
            match results.next().expect("one result per family probed") {
                Ok(fingerprints) => {
                    statuses.push(FamilyStatus::probed(servers[0]));
                    probed.push((family, servers, fingerprints));
                }
                Err(err) if self.choice == FamilyChoice::Any => {
                    statuses.push(FamilyStatus::not_probed(first, format!("{err:#}")));
                    first_error.get_or_insert(err);
                }
                Err(err) => return Err(err),
            }
        }
        if probed.is_empty() {
            return Err(first_error.expect("a family was probed"));
        }
        let [ipv4, ipv6]: [FamilyStatus; 2] = statuses.try_into().expect("two families");
        Ok(Probed {
            families: probed,
            statuses: Families { ipv4, ipv6 },
        })
    }
}

/// What the families probed found.
struct Probed {
    /// Each family probed: its servers and its fingerprints.
    families: Vec<(Family, Vec<SocketAddr>, Vec<Fingerprint>)>,
    statuses: Families,
}

impl Probed {
    /// The report: IPv4 at the top as always, IPv6 under `ipv6`.
    fn report(&self, preset_delta: i32, now: Instant) -> Report {
        let of = |wanted: Family| {
            self.families
                .iter()
                .find(|(family, ..)| *family == wanted)
                .map(|(_, servers, fingerprints)| (servers, fingerprints))
        };
        let ipv4 = of(Family::V4).map(|(s, f)| prober::report(s, preset_delta, f, now));
        let ipv6 = of(Family::V6).map(|(s, f)| prober::family_report(s, preset_delta, f, now));
        Report::dual(ipv4, ipv6, self.statuses.clone()).expect("a family was probed")
    }

    /// One message per family with a transport the server never answered.
    fn silent(&self, args: &NatArgs) -> Vec<String> {
        self.families
            .iter()
            .filter_map(|(_, servers, fingerprints)| {
                let silent: Vec<&Fingerprint> =
                    fingerprints.iter().filter(|f| !f.answered()).collect();
                (!silent.is_empty()).then(|| no_answer(args, servers[0], &silent))
            })
            .collect()
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
    // The primary family's: IPv4's, IPv6's when IPv4 was not probed.
    let (server, udp) = match &mut report.ipv6 {
        Some(v6) if !report.families.ipv4.probed => (v6.server, &mut v6.udp),
        _ => (report.server, &mut report.udp),
    };
    let Some(udp) = udp.as_mut().filter(|udp| udp.public_address.is_some()) else {
        terminal::eprint_message(
            "natlens: warning: --lifetime needs a UDP answer from the server; not measured",
        );
        return Ok(());
    };
    let bar = LifetimeBar::new(max);
    let source = args.source.source_toward(server);
    let measured = lifetime::measure(server, max, &source, rng, &mut |s| bar.update(s));
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
    let ipv6 = report
        .ipv6
        .as_ref()
        .filter(|_| !report.families.ipv4.probed);
    let public = ipv6.map_or_else(|| report.public_ip(), |v6| v6.public_ip());
    // The other helpers' evidence: the gateway's own idea of its external address (and PCP's
    // ADDRESS_MISMATCH) from the port-mapping probe, and the TTL-limited refresh of --lifetime.
    let mapping = report.port_mapping.as_ref();
    let evidence = PathEvidence {
        hops: found.hops,
        public_address: public,
        gateway_external: mapping.and_then(|m| m.external_address),
        pcp_address_mismatch: mapping
            .filter(|m| m.pcp.present)
            .map(|m| m.pcp_address_mismatch()),
        ttl_refresh_outermost_nat_hop: ipv6
            .map_or(report.udp.as_ref(), |v6| v6.udp.as_ref())
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

/// "no STUN answer from ADDR over udp within 3s: is a STUN server there?", or for what the
/// kernel reported at once, without waiting, its reason: "ADDR answered ICMP port unreachable
/// (udp)", "ADDR refused the TCP connection (tcp)".
fn no_answer(args: &NatArgs, server: SocketAddr, silent: &[&Fingerprint]) -> String {
    let named = args.server.iter().find(|s| s.addr == server);
    let server = named.map_or(server.to_string(), |s| s.to_string());
    let waited: Vec<&str> = silent
        .iter()
        .filter(|f| f.unreachable.is_none())
        .map(|f| f.transport.as_str())
        .collect();
    let mut parts = Vec::new();
    if !waited.is_empty() {
        let timeout = humantime::format_duration(args.timeout);
        parts.push(format!(
            "no STUN answer from {server} over {} within {timeout}",
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

/// The report on stdout: JSON (with its outcome, `missing` making it partial), or the verdict,
/// each family's table and narrative, and the path and port-mapping lines.
fn print(args: &NatArgs, report: &Report, missing: Option<&anyhow::Error>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        let output = NatOutput::new(report, missing.map(ErrorObject::of));
        serde_json::to_writer_pretty(&mut out, &output)?;
        return writeln!(out);
    }
    // Blocks separated by one blank line: the verdict, each family's table and narrative,
    // the families not probed, the path, the port mapping.
    let prose = |text: &str| terminal::prose(text, Stream::Stdout);
    let mut blocks: Vec<String> = render::verdict(report).into_iter().collect();
    let two = report.families.ipv4.probed && report.ipv6.is_some();
    if report.families.ipv4.probed {
        let table = terminal::fit(render::table(report), Stream::Stdout);
        blocks.push(match two {
            true => format!(
                "{}\n{table}",
                prose(&render::family_heading("IPv4", report.server, None))
            ),
            false => table.to_string(),
        });
        blocks.push(prose(&render::narrative(report)));
    }
    if let Some(v6) = &report.ipv6 {
        let heading = render::family_heading("IPv6", v6.server, v6.translation);
        let table = terminal::fit(render::family_table(v6), Stream::Stdout);
        blocks.push(format!("{}\n{table}", prose(&heading)));
        blocks.push(prose(&render::family_narrative(v6)));
    }
    let not_probed: Vec<String> = render::not_probed(report)
        .iter()
        .map(|l| prose(l))
        .collect();
    if !not_probed.is_empty() {
        blocks.push(not_probed.join("\n"));
    }
    blocks.extend(report.path.as_ref().map(|path| prose(&path.line())));
    blocks.extend(report.port_mapping.as_ref().map(|m| prose(&m.line())));
    writeln!(out, "{}", blocks.join("\n\n"))?;
    Ok(())
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
    /// (`allocation`, `prediction`) their keys instead; `ipv6`'s keys and the families'.
    fn key_paths(report: &serde_json::Value) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        let object = report.as_object().unwrap();
        keys.extend(object.keys().cloned());
        for child in report["path"].as_object().unwrap().keys() {
            keys.insert(format!("path.{child}"));
        }
        for key in report["ipv6"].as_object().unwrap().keys() {
            keys.insert(format!("ipv6.{key}"));
        }
        for (family, status) in report["families"].as_object().unwrap() {
            keys.insert(format!("families.{family}"));
            keys.extend(
                status
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(|k| format!("families.*.{k}")),
            );
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
        let golden = include_str!("../core/fingerprint/testdata/report_dual_stack.json");
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
