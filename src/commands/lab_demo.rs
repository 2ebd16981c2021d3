//! `natlens lab demo`: a lab, a natlens server in it, `natlens nat` behind each NAT, the
//! reports, and the truth to hold them against; then the lab is torn down.
//!
//! The fingerprint runs in-process inside each LAN host's namespace (the same code as
//! `natlens nat`, UDP and TCP at once) and prints the same table and narrative. Then the host
//! opens one new UDP flow and one new TCP connection to the server, and the router's conntrack
//! table says which public ports the NAT really gave them: the ground truth for the predictions.
//!
//! Then `natlens listen` on host a and `natlens call` on host b meet through the server and punch
//! over UDP, each sending a short message; the demo prints both ends' punch reports, the
//! messages as they arrived, and whether the `port_through` each end reports is the public port
//! the far router's conntrack table really shows for the confirmed path.
//!
//! With `--port-mapping`, miniupnpd runs in router a (after the server: it learns its external
//! address by STUN from it), `natlens listen` maps its punch port there, and the demo says
//! whether `natlens call` got in through that mapping.

use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::cli::LabDemoArgs;
use crate::core::fingerprint::{PlanConfig, Report};
use crate::core::Transport;
use crate::exit;
use crate::io::prober::{self, Options};
use crate::lab::plan::router_wan;
use crate::lab::server::{alternate, primary};
use crate::lab::{CtEntry, Exited, Host, Lab, LabProcess, LabSpec, Side};
use crate::render::nat as render;
use crate::render::progress::ProbeBars;
use crate::render::terminal::{self, Stream};

/// `println!` for the demo's explanations: wrapped to stdout's width, spelled for the locale.
/// Headings (they hold commands to copy) and result lines (a verdict a script or a test finds on
/// one line) are printed as they are.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", terminal::prose(&format!($($arg)*), Stream::Stdout))
    };
}

/// How long the server may take to start listening.
const SERVER_START: Duration = Duration::from_secs(5);
/// `natlens nat`'s own default wait for the server's first answer.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(4);
/// How long the ground-truth TCP connection may take (a lossy lab may lose a SYN or two).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);
/// How long `natlens listen` may take to log in and fingerprint.
const LISTEN_READY: Duration = Duration::from_secs(15);
/// Longest the punch may take, both ends: logins, fingerprints, a punch of at most its 10 s
/// timeout, the messages, the logouts.
const PUNCH_LIMIT: Duration = Duration::from_secs(40);
/// What each end sends once connected.
const LISTEN_MESSAGE: &str = "hello from a (natlens listen)";
const CALL_MESSAGE: &str = "hello from b (natlens call)";

pub fn run(args: LabDemoArgs, rng: &mut dyn RngCore) -> anyhow::Result<ExitCode> {
    let spec = LabSpec {
        port_mapping: args.port_mapping,
        ..super::lab::spec(&args.spec)
    };
    let lab = Lab::up(spec)?;
    print!("{}", super::lab::describe(lab.state()));
    let server = start_server(&lab)?;
    let result = start_port_mapping(&lab)
        .and_then(|()| {
            Side::BOTH
                .iter()
                .try_for_each(|&side| fingerprint(&lab, side, StdRng::from_rng(&mut *rng)?))
        })
        .and_then(|()| punch(&lab));
    // Dropping the server kills it.
    drop(server);
    let shown = result?;
    lab.down()?;
    Ok(shown.exit_code())
}

/// How the demonstrated punch ended: the demo's exit status says it, so a script (or CI) running
/// the demo learns what a person reads at the end of its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    /// Connected, both messages delivered, both ends' `port_through` matched the far router.
    Connected,
    /// Connected and delivered, but a `port_through` did not match the far router's table.
    PortThroughMismatch,
    /// No direct path with both messages delivered (including a pair the planner refused).
    NotConnected,
}

impl Shown {
    fn exit_code(self) -> ExitCode {
        ExitCode::from(match self {
            Shown::Connected => exit::OK,
            Shown::PortThroughMismatch => exit::FAILURE,
            Shown::NotConnected => exit::PUNCH_FAILED,
        })
    }
}

/// This natlens executable, to run in a lab host.
fn natlens(args: &[&str]) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("finding the natlens executable")?;
    let mut command = Command::new(exe);
    command.args(args);
    Ok(command)
}

/// `natlens server --listen 203.0.113.10:3478 --alternate 203.0.113.11:3479` in the server
/// namespace, once it says it is listening.
fn start_server(lab: &Lab) -> anyhow::Result<LabProcess> {
    let mut command = natlens(&["server", "--listen", &primary().to_string()])?;
    command.args(["--alternate", &alternate().to_string()]);
    let server = LabProcess::spawn(lab, Host::Server, command, None)?;
    if !server.wait_for("listening udp", SERVER_START) {
        bail!("natlens server did not start in the lab's server namespace");
    }
    println!(
        "server: natlens server on {} and {}",
        primary(),
        alternate()
    );
    Ok(server)
}

/// miniupnpd in router a when the demo asks for it (the lab's teardown ends it with every
/// process in the lab's namespaces).
fn start_port_mapping(lab: &Lab) -> anyhow::Result<()> {
    let protocols = lab.spec().port_mapping;
    if !protocols.any() {
        return Ok(());
    }
    let netns = lab.netns(Host::Router(Side::A))?;
    crate::lab::port_mapping::start(netns, lab.prefix(), protocols)?;
    println!("router-a: miniupnpd serving {protocols}");
    Ok(())
}

/// `natlens nat --server 203.0.113.10:3478` from the LAN host behind `side`, its report, and
/// the ports the NAT gave the next flows.
fn fingerprint(lab: &Lab, side: Side, mut rng: StdRng) -> anyhow::Result<()> {
    let host = Host::Lan(side);
    let private = lab.addr(host).expect("a LAN host has an address");
    println!(
        "\n== {host} ({private}) behind router-{side} ({}): natlens nat --server {} ==\n",
        lab.spec().nat(side),
        primary()
    );
    let options = Options {
        server: primary(),
        config: PlanConfig::default(),
        discovery_timeout: DISCOVERY_TIMEOUT,
        source: Default::default(),
    };
    let transports = [Transport::Udp, Transport::Tcp];
    let started = Instant::now();
    let report = lab.in_netns(host, || -> anyhow::Result<Report> {
        let bars = ProbeBars::new(&transports);
        let fingerprints = prober::fingerprint_all(&transports, &options, &bars, &mut rng)?;
        let preset = crate::core::fingerprint::predict::DEFAULT_PRESET_DELTA;
        Ok(prober::report(
            &[primary()],
            preset,
            &fingerprints,
            Instant::now(),
        ))
    })??;
    let took = started.elapsed();
    if let Some(verdict) = render::verdict(&report) {
        println!("{verdict}\n");
    }
    println!(
        "{}\n",
        terminal::fit(render::table(&report), Stream::Stdout)
    );
    say!("{}\n", render::narrative(&report));
    println!("(fingerprint took {} ms)", took.as_millis());
    ground_truth(lab, side, &report)
}

/// One new UDP flow and one new TCP connection from the LAN host, and the public ports router
/// `side`'s conntrack table shows for them, against the report's predictions.
fn ground_truth(lab: &Lab, side: Side, report: &Report) -> anyhow::Result<()> {
    let host = Host::Lan(side);
    let udp = lab.in_netns(host, || -> std::io::Result<SocketAddr> {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.connect(primary())?;
        socket.send(b"natlens lab demo")?;
        socket.local_addr()
    })??;
    let tcp = lab.in_netns(host, || -> std::io::Result<(SocketAddr, TcpStream)> {
        let stream = TcpStream::connect_timeout(&primary(), CONNECT_TIMEOUT)?;
        Ok((stream.local_addr()?, stream))
    })?;
    let entries = lab.conntrack_entries(side)?;
    let public = |proto: &str, local: SocketAddr| {
        entries
            .iter()
            .find(|e| e.proto == proto && e.orig_src == local)
            .map(|e| e.public_port())
    };
    println!("router-{side} conntrack, for the next new flow of each kind:");
    let udp_truth = public("udp", udp);
    let facts = report.udp.as_ref();
    let predicted = facts.and_then(|r| r.prediction.expected_public_port(udp.port()));
    let candidates = facts.map_or(&[][..], |r| &r.prediction.candidates[..]);
    println!(
        "  {}",
        verdict("udp", udp, udp_truth, predicted, candidates)
    );
    let Ok((tcp, _stream)) = tcp else {
        println!("  tcp: could not connect to {}", primary());
        return Ok(());
    };
    let facts = report.tcp.as_ref();
    let mut predicted = facts.and_then(|r| r.prediction.expected_public_port(tcp.port()));
    let mut candidates = facts.map_or(&[][..], |r| &r.prediction.candidates[..]);
    // On one counter the UDP flow just took the port both were predicted: TCP's is the next.
    let shared = facts.filter(|r| r.allocation.shared_counter == Some(true));
    if let (Some(facts), Some(taken)) = (shared, udp_truth) {
        let delta = facts.allocation.delta.unwrap_or(1);
        predicted = u16::try_from(i32::from(taken) + delta).ok();
        candidates = &[];
        say!("  (one counter for UDP and TCP: the UDP flow took {taken}, so TCP expects the next)");
    }
    println!(
        "  {}",
        verdict("tcp", tcp, public("tcp", tcp), predicted, candidates)
    );
    Ok(())
}

/// "udp from port 41000: the NAT gave 40017; natlens predicted 40017: hit".
fn verdict(
    proto: &str,
    local: SocketAddr,
    truth: Option<u16>,
    predicted: Option<u16>,
    candidates: &[u16],
) -> String {
    let gave = truth.map_or("no conntrack entry".into(), |p| format!("the NAT gave {p}"));
    let check = match (predicted, truth) {
        (Some(p), Some(t)) if p == t => format!("natlens predicted {p}: hit"),
        (Some(p), Some(t)) => match candidates.iter().position(|&c| c == t) {
            Some(rank) => format!("natlens predicted {p}: miss (candidate #{})", rank + 1),
            None => format!("natlens predicted {p}: miss"),
        },
        (Some(p), None) => format!("natlens predicted {p}"),
        (None, _) => "natlens made no prediction (ports not predictable)".into(),
    };
    format!("{proto} from port {}: {gave}; {check}", local.port())
}

/// One end of the punch: `natlens listen` or `natlens call` in a LAN host's namespace, with
/// `message` as the whole of its stdin (what it sends once connected).
fn punch_end(lab: &Lab, side: Side, args: &[&str], message: &str) -> anyhow::Result<LabProcess> {
    let command = natlens(args)?;
    LabProcess::spawn(lab, Host::Lan(side), command, Some(message.as_bytes()))
}

/// `natlens listen` on host a and `natlens call` on host b, through the lab's server over UDP,
/// a short message each way; both reports, and each end's `port_through` against the far
/// router's conntrack table.
fn punch(lab: &Lab) -> anyhow::Result<Shown> {
    let server = primary().to_string();
    println!(
        "\n== punch: natlens listen --id alice on a, natlens call alice --id bob on b, \
         over udp via {server} ==\n"
    );
    let started = Instant::now();
    let (listen, call) = run_ends(lab, &server, started + PUNCH_LIMIT)?;
    let (listen_ok, call_ok) = (listen.status.success(), call.status.success());
    // Router tables right after, before anything expires.
    let ct_a = lab.conntrack_entries(Side::A)?;
    let ct_b = lab.conntrack_entries(Side::B)?;
    let ends = [
        End {
            host: "a",
            what: "natlens listen",
            side: Side::A,
            exited: &listen,
            own: &ct_a,
            far: &ct_b,
        },
        End {
            host: "b",
            what: "natlens call",
            side: Side::B,
            exited: &call,
            own: &ct_b,
            far: &ct_a,
        },
    ];
    let through: Vec<Result<u16, String>> = ends.iter().map(|end| show_end(lab, end)).collect();
    show_port_through(&ends, &through);
    println!(
        "(punch took {} ms, logins and fingerprints included)",
        started.elapsed().as_millis()
    );
    let delivered =
        listen.stdout == CALL_MESSAGE.as_bytes() && call.stdout == LISTEN_MESSAGE.as_bytes();
    // A pair the planner refuses (random against random or sequential) is shown to the end,
    // the reports above say why; the exit status then says the punch failed.
    if lab.spec().port_mapping.any() {
        show_port_mapping(&call);
    }
    if listen_ok && call_ok && delivered {
        println!("punch: connected, both messages delivered");
        if through.iter().all(Result::is_ok) {
            Ok(Shown::Connected)
        } else {
            Ok(Shown::PortThroughMismatch)
        }
    } else {
        println!("punch: no direct path between a and b with both messages delivered");
        Ok(Shown::NotConnected)
    }
}

/// Starts `natlens listen` on a, waits until it waits for a call, then `natlens call` on b;
/// both finished by `limit`.
fn run_ends(lab: &Lab, server: &str, limit: Instant) -> anyhow::Result<(Exited, Exited)> {
    let common = ["--server", server, "--transport", "udp"];
    let mut args = vec!["listen", "--id", "alice"];
    args.extend(common);
    let listen = punch_end(lab, Side::A, &args, LISTEN_MESSAGE)?;
    if !listen.wait_for("waiting for a call", LISTEN_READY) {
        bail!(
            "natlens listen did not get ready:\n{}",
            listen.stderr_so_far().join("\n")
        );
    }
    let mut args = vec!["call", "alice", "--id", "bob"];
    args.extend(common);
    let call = punch_end(lab, Side::B, &args, CALL_MESSAGE)?;
    let call = call.finish(limit)?;
    let listen = listen.finish(limit)?;
    Ok((listen, call))
}

/// Whether the caller (b) aimed at a's port mapping, as its report's "port mapping" row says.
fn show_port_mapping(call: &Exited) {
    let row = call
        .stderr
        .iter()
        .find(|l| table_cell(l, 0).as_deref() == Some("port mapping"))
        .and_then(|l| table_cell(l, 1));
    match row {
        Some(how) => println!("port mapping: used ({how})"),
        None => println!("port mapping: not used (the reports above say why)"),
    }
}

/// One end of the demo's punch as it ended, with both routers' tables.
struct End<'a> {
    host: &'static str,
    what: &'static str,
    side: Side,
    exited: &'a Exited,
    own: &'a [CtEntry],
    far: &'a [CtEntry],
}

/// Prints what an end said and received; its `port_through` checked against the far router.
fn show_end(lab: &Lab, end: &End<'_>) -> Result<u16, String> {
    let ok = end.exited.status.success();
    println!(
        "-- {} on {} (behind router-{}, {}) --",
        end.what,
        end.host,
        end.side,
        lab.spec().nat(end.side)
    );
    // The end's own lines: one record each in its pipe (its tables already fit 80 columns),
    // wrapped here when longer than this terminal.
    let width = terminal::width(Stream::Stdout);
    for line in &end.exited.stderr {
        if line.chars().count() > width {
            println!("{}", terminal::wrap(line, width));
        } else {
            println!("{line}");
        }
    }
    println!(
        "received on stdout: {:?}{}",
        String::from_utf8_lossy(&end.exited.stdout),
        if ok { "" } else { " (exit status: failure)" }
    );
    let (far_side, own_direction) = match end.side {
        Side::A => (Side::B, "callee -> caller"),
        Side::B => (Side::A, "caller -> callee"),
    };
    let through = if ok {
        check_port_through(
            &end.exited.stderr,
            own_direction,
            end.own,
            end.far,
            far_side,
        )
        .map_err(|why| format!("no match: {why}"))
    } else {
        Err("not connected, nothing to check".into())
    };
    println!();
    through
}

fn show_port_through(ends: &[End<'_>], through: &[Result<u16, String>]) {
    println!("port_through against the far router's conntrack table:");
    for (end, verdict) in ends.iter().zip(through) {
        let far = if end.side == Side::A {
            Side::B
        } else {
            Side::A
        };
        match verdict {
            Ok(port) => println!(
                "  {}: its packets got through to router-{far}'s port {port}: router-{far} \
                 shows that port on the answered flow: match",
                end.host
            ),
            Err(why) => println!("  {}: {why}", end.host),
        }
    }
}

/// The end's report says its own direction got through to far WAN:P on the confirmed path
/// (its socket, far WAN:P); its router maps that socket toward far WAN:P to a public address Q;
/// the far router's answered entry for the flow between Q and far WAN must have P as its port.
fn check_port_through(
    report: &[String],
    own_direction: &str,
    own: &[CtEntry],
    far: &[CtEntry],
    far_side: Side,
) -> Result<u16, String> {
    let through = report
        .iter()
        .find(|l| l.contains(own_direction))
        .and_then(|l| table_cell(l, 2))
        .and_then(|cell| cell.parse::<u16>().ok())
        .ok_or("no port through in the report")?;
    let path = report
        .iter()
        .find(|l| table_cell(l, 0).as_deref() == Some("path"))
        .and_then(|l| table_cell(l, 1))
        .ok_or("no path in the report")?;
    let (local, peer) = path.split_once(" -> ").ok_or("no path in the report")?;
    let local: SocketAddr = local.parse().map_err(|_| format!("path {path}"))?;
    let peer: SocketAddr = peer.parse().map_err(|_| format!("path {path}"))?;
    let far_wan = IpAddr::from(router_wan(far_side));
    if peer.port() != through || peer.ip() != far_wan {
        return Err(format!("path peer {peer} is not {far_wan}:{through}"));
    }
    let ours = own
        .iter()
        .filter(|e| e.proto == "udp")
        .find_map(|e| {
            if e.orig_src == local && e.orig_dst == peer {
                Some(e.reply_dst)
            } else if e.orig_src == peer && e.reply_src == local {
                Some(e.orig_dst)
            } else {
                None
            }
        })
        .ok_or_else(|| format!("no conntrack entry for {local} <-> {peer} on its own router"))?;
    let far_ports: Vec<u16> = far
        .iter()
        .filter(|e| e.proto == "udp" && e.replied)
        .filter_map(|e| {
            if e.orig_dst == ours && e.reply_dst.ip() == far_wan {
                Some(e.reply_dst.port())
            } else if e.orig_src == ours && e.orig_dst.ip() == far_wan {
                Some(e.orig_dst.port())
            } else {
                None
            }
        })
        .collect();
    if far_ports.contains(&through) {
        Ok(through)
    } else {
        Err(format!(
            "router-{far_side} gave the flow toward {ours} ports {far_ports:?}, not {through}"
        ))
    }
}

/// The trimmed text of column `index` of a table row ("│ a │ b │" or "| a | b |").
fn table_cell(line: &str, index: usize) -> Option<String> {
    let cells: Vec<&str> = line.split(['│', '|', '┆']).map(str::trim).collect();
    if cells.len() < 3 {
        return None;
    }
    // The text before the first separator is empty on a table row.
    cells.get(index + 1).map(|c| (*c).to_owned())
}
