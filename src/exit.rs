//! Exit codes, documented in the man pages' EXIT STATUS section.

use std::process::ExitCode;

/// Success.
pub const OK: u8 = 0;
/// A runtime failure: network error, refused login, call not answered, no direct path found.
pub const FAILURE: u8 = 1;
/// Bad command-line usage (clap's own code).
pub const USAGE: u8 = 2;
/// The server refused this end's credentials (wrong key, unknown ID), or needs a key and none
/// was given. Its own code so that a script can tell "fix the key" from "try again later".
pub const CREDENTIALS: u8 = 3;

/// An error that ends natlens with [`CREDENTIALS`]; its text is the one line printed.
#[derive(Debug)]
pub struct CredentialsRefused(pub String);

impl std::fmt::Display for CredentialsRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CredentialsRefused {}

/// Prints `natlens: error` with its context chain and returns the failure code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    // A closed stdout (`natlens ... | head`) is not an error worth a message.
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        if io.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::SUCCESS;
        }
    }
    eprintln!("natlens: {err:#}");
    if err.downcast_ref::<CredentialsRefused>().is_some() {
        return ExitCode::from(CREDENTIALS);
    }
    ExitCode::from(FAILURE)
}
