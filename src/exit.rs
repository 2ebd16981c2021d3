//! Exit codes, documented in the man pages' EXIT STATUS section.

use std::process::ExitCode;

/// Success.
pub const OK: u8 = 0;
/// A runtime failure: network error, refused login, call not answered, no direct path found.
pub const FAILURE: u8 = 1;
/// Bad command-line usage (clap's own code).
pub const USAGE: u8 = 2;

/// Prints `natlens: error` with its context chain and returns the failure code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    // A closed stdout (`natlens ... | head`) is not an error worth a message.
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        if io.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::SUCCESS;
        }
    }
    eprintln!("natlens: {err:#}");
    ExitCode::from(FAILURE)
}
