//! natlens: a STUN location server, NAT fingerprinting and predicted-port hole punching.
//!
//! The protocol logic (`wire`, `core`) is sans-IO: plain functions and state machines over bytes,
//! events and timestamps. `io` is the thin shell that owns sockets, clocks and threads; `render`
//! owns the terminal; `commands` glues a parsed command line to both.

pub mod cli;
pub mod commands;
pub mod core;
pub mod exit;
pub mod generate;
pub mod io;
pub mod lab;
pub mod render;
pub mod report;
pub mod wire;

#[cfg(test)]
mod test_support;

use std::process::ExitCode;

/// Runs one parsed command line, with a random generator seeded from the OS for its drivers.
pub fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    let flags = cli.verbosity;
    render::verbosity::set(render::verbosity::Verbosity::from_flags(
        flags.quiet,
        flags.verbose,
    ));
    commands::dispatch(cli, rand::SeedableRng::from_entropy())
}
