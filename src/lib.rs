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

use std::io::Write;
use std::process::ExitCode;

use report::outcome::{Failure, FinalObject, Stream};

/// Runs one parsed command line, with a random generator seeded from the OS for its drivers.
pub fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    let flags = cli.verbosity;
    render::verbosity::set(render::verbosity::Verbosity::from_flags(
        flags.quiet,
        flags.verbose,
    ));
    commands::dispatch(cli, rand::SeedableRng::from_entropy())
}

/// Runs one parsed command line and ends it: with `--json`, a failure that printed no final
/// object yet prints its failure object where the report would have gone; the plain
/// `natlens: ...` line goes to stderr unless stderr carries the NDJSON stream.
pub fn run_to_exit(cli: cli::Cli) -> ExitCode {
    let last = commands::final_object(&cli.command);
    render::terminal::set_stderr_is_json(last.is_some_and(|last| last.stderr_is_json));
    match run(cli) {
        Ok(code) => code,
        Err(err) => finish(&err, last),
    }
}

/// The end of a failed run (see [`run_to_exit`]).
fn finish(err: &anyhow::Error, last: Option<FinalObject>) -> ExitCode {
    if exit::is_broken_pipe(err) {
        return ExitCode::SUCCESS;
    }
    let Some(last) = last else {
        return exit::report(err);
    };
    if !exit::is_reported(err) {
        let line = Failure::of(last.schema_version, err).json();
        // The stream may be closed already; the exit code still says what happened.
        let _ = match last.stream {
            Stream::Stdout => writeln!(std::io::stdout().lock(), "{line}"),
            Stream::Stderr => writeln!(std::io::stderr().lock(), "{line}"),
        };
    }
    if last.stderr_is_json {
        ExitCode::from(exit::code_of(err))
    } else {
        exit::report(err)
    }
}

/// A command line clap refused (`natlens` then exits 2): with `--json` anywhere in `args`,
/// the usage failure object on stdout too, after clap's own message on stderr. `--help` and
/// `--version` print as they always have.
pub fn usage_error(err: &clap::Error, args: &[std::ffi::OsString]) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) || !args.iter().any(|arg| arg == "--json")
    {
        err.exit();
    }
    let _ = err.print();
    let message = first_line(&err.render().to_string());
    let error = report::outcome::ErrorObject {
        kind: exit::kind_name_of_code(exit::USAGE),
        message,
    };
    let command = args.get(1).and_then(|arg| arg.to_str());
    let schema_version = commands::schema_version_named(command);
    let line = Failure::new(schema_version, error).json();
    let _ = writeln!(std::io::stdout().lock(), "{line}");
    ExitCode::from(exit::USAGE)
}

/// clap's first line without its `error: ` prefix: what was wrong, without the usage lines.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}
