//! The command-line tree: clap derive types only, no behaviour.
//!
//! This tree is the single source of truth for `--help`, the man pages in `man/` and the shell
//! completions in `completions/`; `natlens generate` writes both and `tests/generated_files.rs`
//! fails when the committed copies drift from it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::lab::{Host, NatMode};

/// Diagnose NAT routers and connect two hosts behind NATs directly.
#[derive(Debug, Parser)]
#[command(name = "natlens", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a location server: STUN Binding reflection, logins, call relay, federation.
    Server(ServerArgs),
    /// Log in to a location server and hold the session, answering calls with this end's facts.
    Login(LoginArgs),
    /// Log in, call another logged-in ID through the server and print the facts exchanged.
    Call(CallArgs),
    /// Build a NAT lab of network namespaces on this machine (needs root) and work in it.
    Lab(LabArgs),
    /// Write man pages and shell completions from this command tree (for maintainers).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

/// Output format shared by the client commands.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct OutputArgs {
    /// Print machine-readable JSON on stdout (NDJSON events for long-running commands).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to serve STUN and natlens on, over both UDP and TCP. Repeatable; IPv4 or IPv6.
    #[arg(
        long = "listen",
        value_name = "ADDR:PORT",
        default_value = "0.0.0.0:3478"
    )]
    pub listen: Vec<SocketAddr>,

    /// Second IP and port for RFC 5780 "full" mode: enables OTHER-ADDRESS, RESPONSE-ORIGIN and
    /// CHANGE-REQUEST. The server then also listens on every mix of the two IPs and two ports.
    #[arg(long, value_name = "IP:PORT")]
    pub alternate: Option<SocketAddr>,

    /// Another natlens server to federate with over TCP (repeatable). Calls to IDs not logged in
    /// here are forwarded to peers.
    #[arg(long = "peer", value_name = "ADDR:PORT")]
    pub peers: Vec<SocketAddr>,

    /// Name of this server in federation (defaults to a random one); must differ between peers.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Forget a UDP session that has sent nothing for this long.
    #[arg(long, value_name = "DURATION", default_value = "45s", value_parser = parse_duration)]
    pub udp_expiry: Duration,

    /// Maximum number of logged-in sessions.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub max_sessions: usize,

    /// Maximum number of open TCP connections (clients and peers).
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    pub max_connections: usize,

    /// Largest STUN message accepted, in bytes (TCP frames and UDP datagrams).
    #[arg(long, value_name = "BYTES", default_value_t = 2048)]
    pub max_message: usize,

    /// Largest amount of unsent data buffered for one TCP connection before it is closed.
    #[arg(long, value_name = "BYTES", default_value_t = 65_536)]
    pub max_tcp_backlog: usize,

    /// Close a TCP connection that has not logged in, or has sent half a frame, after this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub tcp_idle: Duration,

    /// Print a statistics line this often (0 disables; SIGUSR1 prints one on demand).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub stats_interval: Duration,

    /// Log events as NDJSON on stderr instead of human-readable lines.
    #[arg(long)]
    pub json: bool,

    /// Log only warnings and statistics, not every login, call and drop.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Transport used to reach the location server (one type for the CLI and the core).
pub use crate::core::Transport;

#[derive(Debug, Args)]
pub struct SessionArgs {
    /// Location server to log in to.
    #[arg(long, short, value_name = "ADDR:PORT")]
    pub server: SocketAddr,

    /// The ID to log in as.
    #[arg(long, value_name = "NAME")]
    pub id: String,

    /// Transport for the session with the server.
    #[arg(long, short, value_enum, default_value_t = Transport::Udp)]
    pub transport: Transport,

    /// How often to refresh the session (UDP keeps the NAT mapping open with it).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub keepalive: Duration,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub session: SessionArgs,

    /// Log out and exit after this long (default: hold the session until interrupted).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Exit after answering this many calls.
    #[arg(long, value_name = "N")]
    pub calls: Option<u64>,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The ID to call.
    #[arg(value_name = "NAME")]
    pub callee: String,

    #[command(flatten)]
    pub session: SessionArgs,

    /// Give up on the call after this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `natlens lab`: a lab is two NAT routers (A and B), each with a LAN host (`a`, `b`) and a
/// noise host (`a2`, `b2`), a server with two public addresses (203.0.113.10 and .11) and an
/// optional public host, joined by an "internet" segment. Every address is an RFC 5737
/// documentation address and nothing is connected to a real interface.
#[derive(Debug, Args)]
#[command(after_long_help = LAB_HOSTS)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

/// The host names `natlens lab exec` takes, with their addresses.
const LAB_HOSTS: &str = "Hosts: a (192.0.2.10) and a2 (192.0.2.11) behind router-a \
(203.0.113.1, LAN 192.0.2.1); b (198.51.100.10) and b2 (198.51.100.11) behind router-b \
(203.0.113.2, LAN 198.51.100.1); server (203.0.113.10 and 203.0.113.11); public (203.0.113.20, \
with --public-host); internet (the segment itself, no address). Each host is the network \
namespace <prefix>-<host>; labs are described in /run/natlens/<prefix>.json.";

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build a lab and leave it running; print its prefix, hosts and addresses.
    Up(LabUpArgs),
    /// Tear down one lab, or every lab no running process owns.
    Down(LabDownArgs),
    /// Show labs: namespaces, addresses, NAT modes, conntrack entry counts.
    Status(LabStatusArgs),
    /// Run a command inside one host of a lab; natlens exits with the command's own status.
    Exec(LabExecArgs),
    /// Build a lab, run a server in it and a STUN client behind each NAT, print the public
    /// addresses they were given, and tear the lab down.
    Demo(LabDemoArgs),
    /// Run one background job of a lab (frame relay, noise); `lab up` starts these.
    #[command(hide = true)]
    Worker(LabWorkerArgs),
}

/// What to build.
#[derive(Debug, Args, Clone)]
pub struct LabSpecArgs {
    /// NAT mode of router A: `cone` (port-preserving, endpoint-independent mapping,
    /// address-and-port-dependent filtering), `full-cone` (endpoint-independent mapping and
    /// filtering), `seq:D` (symmetric: each new flow gets the port D after the previous one,
    /// from 40000) or `random` (symmetric with random ports).
    #[arg(long, value_name = "MODE", default_value = "cone")]
    pub nat_a: NatMode,

    /// NAT mode of router B (see --nat-a).
    #[arg(long, value_name = "MODE", default_value = "cone")]
    pub nat_b: NatMode,

    /// New UDP flows per second opened by the second LAN host behind each router (a2, b2), so
    /// NAT ports are consumed between a prober's probes.
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    pub noise: f64,

    /// Noise rate behind router A only (overrides --noise).
    #[arg(long, value_name = "RATE")]
    pub noise_a: Option<f64>,

    /// Noise rate behind router B only (overrides --noise).
    #[arg(long, value_name = "RATE")]
    pub noise_b: Option<f64>,

    /// One-way delay in milliseconds added on each router's WAN link, in each direction (so a
    /// LAN host's round trip to the server grows by twice this). Made with netem when the
    /// kernel has it, else by a user-space frame relay on the internet segment.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub delay: u64,

    /// Percentage of IP packets dropped on each router's WAN link, in each direction.
    #[arg(long, value_name = "PCT", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub loss: u8,

    /// Add a public host without NAT (`public`, 203.0.113.20).
    #[arg(long)]
    pub public_host: bool,
}

#[derive(Debug, Args)]
pub struct LabUpArgs {
    #[command(flatten)]
    pub spec: LabSpecArgs,

    /// Print the lab's description (the state file's contents) as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LabDownArgs {
    /// Prefix of the lab to tear down (as `lab up` and `lab status` print it).
    #[arg(
        value_name = "PREFIX",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub prefix: Option<String>,

    /// Tear down every natlens lab on this machine except those a running process owns (a
    /// test or a demo in progress), including leftover namespaces without a state file.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct LabStatusArgs {
    /// Show only this lab.
    #[arg(value_name = "PREFIX")]
    pub prefix: Option<String>,

    /// Print JSON: one object per lab with its description and live counts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LabExecArgs {
    /// The lab to run in (needed only when more than one lab exists).
    #[arg(long, value_name = "PREFIX")]
    pub lab: Option<String>,

    /// Host to run in: a, a2, b, b2, router-a, router-b, server, public or internet.
    #[arg(value_name = "HOST")]
    pub host: Host,

    /// The command and its arguments, after `--`.
    #[arg(value_name = "CMD", last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LabDemoArgs {
    #[command(flatten)]
    pub spec: LabSpecArgs,
}

#[derive(Debug, Args)]
pub struct LabWorkerArgs {
    /// The job, as JSON.
    #[arg(value_name = "JOB")]
    pub job: String,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Repository root to write `man/` and `completions/` into.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
}

/// Parses `250ms`, `15s`, `2m`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 500ms, 15s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`: use ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }
}
