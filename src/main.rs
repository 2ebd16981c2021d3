//! The `natlens` binary: parse arguments, run, map the outcome to an exit code. Nothing else.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = natlens::cli::Cli::parse();
    match natlens::run(cli) {
        Ok(code) => code,
        Err(err) => natlens::exit::report(&err),
    }
}
