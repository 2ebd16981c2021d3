//! The `natlens` binary: parse arguments, run, map the outcome to an exit code. Nothing else.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match natlens::cli::Cli::try_parse_from(&args) {
        Ok(cli) => natlens::run_to_exit(cli),
        Err(err) => natlens::usage_error(&err, &args),
    }
}
