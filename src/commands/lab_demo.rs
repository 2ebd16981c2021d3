//! `natlens lab demo`: a lab, a natlens server in it, `natlens nat` behind each NAT, the
//! reports, and the truth to hold them against; then the lab is torn down.
//!
//! The fingerprint runs in-process inside each LAN host's namespace (the same code as
//! `natlens nat`, UDP and TCP at once) and prints the same table and narrative. Then the host
//! opens one new UDP flow and one new TCP connection to the server, and the router's conntrack
//! table says which public ports the NAT really gave them: the ground truth for the predictions.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::cli::LabDemoArgs;
use crate::core::fingerprint::{PlanConfig, Report};
use crate::core::Transport;
use crate::io::prober::Options;
use crate::lab::plan::{SERVER_ALTERNATE, SERVER_PRIMARY};
use crate::lab::{Host, Lab, Side};
use crate::render::nat as render;

/// The server's STUN port on its primary address.
const PRIMARY_PORT: u16 = 3478;
/// Its RFC 5780 alternate port, on the alternate address.
const ALTERNATE_PORT: u16 = 3479;
/// How long the server may take to start listening.
const SERVER_START: Duration = Duration::from_secs(5);
/// `natlens nat`'s own default wait for the server's first answer.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(4);
/// How long the ground-truth TCP connection may take (a lossy lab may lose a SYN or two).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);

pub fn run(args: LabDemoArgs) -> anyhow::Result<ExitCode> {
    let lab = Lab::up(super::lab::spec(&args.spec))?;
    print!("{}", super::lab::describe(lab.state()));
    let mut server = start_server(&lab)?;
    let result = Side::BOTH
        .iter()
        .try_for_each(|&side| fingerprint(&lab, side));
    let _ = server.kill();
    let _ = server.wait();
    result?;
    lab.down()?;
    Ok(ExitCode::SUCCESS)
}

fn primary() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(SERVER_PRIMARY, PRIMARY_PORT))
}

fn alternate() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(SERVER_ALTERNATE, ALTERNATE_PORT))
}

/// `natlens server --listen 203.0.113.10:3478 --alternate 203.0.113.11:3479` in the server
/// namespace, once it says it is listening.
fn start_server(lab: &Lab) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("finding the natlens executable")?;
    let mut command = Command::new(exe);
    command
        .args(["server", "--listen", &primary().to_string()])
        .args(["--alternate", &alternate().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = lab.spawn(Host::Server, command)?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + SERVER_START;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("listening udp") => {
                println!(
                    "server: natlens server on {} and {}",
                    primary(),
                    alternate()
                );
                return Ok(child);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    bail!("natlens server did not start in the lab's server namespace")
}

/// `natlens nat --server 203.0.113.10:3478` from the LAN host behind `side`, its report, and
/// the ports the NAT gave the next flows.
fn fingerprint(lab: &Lab, side: Side) -> anyhow::Result<()> {
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
    };
    let transports = [Transport::Udp, Transport::Tcp];
    let started = Instant::now();
    let report = lab.in_netns(host, || -> anyhow::Result<Report> {
        let fingerprints = super::nat::probe(&transports, &options)?;
        let preset = crate::core::fingerprint::predict::DEFAULT_PRESET_DELTA;
        Ok(super::nat::report(
            primary(),
            preset,
            &fingerprints,
            Instant::now(),
        ))
    })??;
    let took = started.elapsed();
    println!("{}\n", render::table(&report));
    println!("{}\n", render::narrative(&report));
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
        println!(
            "  (one counter for UDP and TCP: the UDP flow took {taken}, so TCP expects the next)"
        );
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
