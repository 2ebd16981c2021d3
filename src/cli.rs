//! The command-line tree: clap derive types only, no behaviour.
//!
//! This tree is the single source of truth for `--help`, the man pages in `man/` and the shell
//! completions in `completions/`; `natlens generate` writes both and `tests/generated_files.rs`
//! fails when the committed copies drift from it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

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
