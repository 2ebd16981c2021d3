//! `natlens server`: binds, then serves until SIGINT/SIGTERM.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ServerArgs;
use crate::io::server::{ServeOptions, Server};
use crate::io::signal;
use crate::render::log::ServerLog;
use crate::wire::natlens::validate_name;

pub fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let name = match args.name {
        Some(name) => validate_name(&name).map(str::to_owned).map_err(|_| {
            anyhow::anyhow!("--name {name:?}: use 1 to 64 printable characters without spaces")
        })?,
        None => random_name(),
    };
    let options = ServeOptions {
        listen: args.listen,
        alternate: args.alternate,
        peers: args.peers,
        name,
        udp_expiry: args.udp_expiry,
        max_sessions: args.max_sessions,
        max_connections: args.max_connections,
        max_message: args.max_message.clamp(548, 65_535),
        max_tcp_backlog: args.max_tcp_backlog,
        tcp_idle: args.tcp_idle,
        stats_interval: (!args.stats_interval.is_zero()).then_some(args.stats_interval),
    };
    let mut log = ServerLog::new(args.json, args.quiet);
    let (stop, stats_now) = (signal::stop_flag()?, signal::stats_flag()?);
    let mut server = Server::bind(options, &mut log).context("starting the server")?;
    server.run(stop, stats_now, &mut log)?;
    Ok(ExitCode::SUCCESS)
}

/// A federation name unlikely to collide: `natlens-` and 8 hex digits from the clock and PID.
fn random_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("natlens-{:08x}", nanos ^ std::process::id().rotate_left(16))
}
