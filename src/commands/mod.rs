//! Glue from a parsed command line to the IO shell and the renderers.

mod call;
mod lab;
mod lab_demo;
mod login;
mod nat;
mod punch;
mod server;
mod session;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Runs the chosen subcommand.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Generate(args) => {
            crate::generate::write_all(&args.out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Server(args) => server::run(args),
        Command::Login(args) => login::run(args),
        Command::Listen(args) => punch::listen(args),
        Command::Call(args) => call::run(args),
        Command::Lab(args) => lab::run(args),
        Command::Nat(args) => nat::run(args),
    }
}
