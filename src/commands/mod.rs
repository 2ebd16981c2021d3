//! Glue from a parsed command line to the IO shell and the renderers.

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Runs the chosen subcommand.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Generate(args) => {
            crate::generate::write_all(&args.out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Server(_) | Command::Login(_) | Command::Call(_) => {
            anyhow::bail!("not built yet")
        }
    }
}
