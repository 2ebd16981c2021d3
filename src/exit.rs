//! Exit codes, documented in the man pages' EXIT STATUS section (from [`CODES`]).
//!
//! A failure whose kind a script can act on travels up as a typed error ([`Failed`], or
//! [`CredentialsRefused`]) made where the failure is known, and [`report`] maps it to its code;
//! nothing here matches message text. The numbers follow the usual small-integer convention
//! (1 generic, 2 usage, then one code per kind) and 128 + SIGINT for an interrupt, as shells
//! report a process killed by it.

use std::process::ExitCode;

/// Success.
pub const OK: u8 = 0;
/// A runtime failure not covered by a code of its own: a network error, a refused login, a
/// lost session, data lost after a punch connected.
pub const FAILURE: u8 = 1;
/// Bad command-line usage (clap's own code).
pub const USAGE: u8 = 2;
/// The server refused this end's credentials (wrong key, unknown ID), or needs a key and none
/// was given. Its own code so that a script can tell "fix the key" from "try again later".
pub const CREDENTIALS: u8 = 3;
/// The server could not be reached: no answer, ICMP port unreachable, TCP connection refused.
pub const UNREACHABLE: u8 = 4;
/// The callee is not logged in on the server or its links (404), or did not answer the call the
/// server relayed to it (408).
pub const NO_CALLEE: u8 = 5;
/// The punch found no direct path, or the planner refused the pair.
pub const PUNCH_FAILED: u8 = 6;
/// Interrupted (SIGINT or SIGTERM) before `listen` or `call` finished: 128 + SIGINT.
pub const INTERRUPTED: u8 = 130;

/// Every code with what it means, as the man pages' EXIT STATUS section lists them.
pub const CODES: [(u8, &str); 8] = [
    (OK, "Success."),
    (
        FAILURE,
        "A runtime failure not covered below: a network error, a refused login, a lost \
         session, data lost after the punch connected.",
    ),
    (
        USAGE,
        "Bad command-line usage: an unknown option, a missing or malformed value, a number \
         outside the range --help states, an invalid ID, a --server or --link name that does \
         not resolve.",
    ),
    (
        CREDENTIALS,
        "Credentials refused: the server (run with --credentials) did not accept this ID's \
         key, or needs one and none was given (--key-file or NATLENS_KEY).",
    ),
    (
        UNREACHABLE,
        "Server unreachable: no answer from the server (natlens nat: no STUN answer), its host \
         answered ICMP port unreachable, or it refused the TCP connection.",
    ),
    (
        NO_CALLEE,
        "Callee unavailable (call): the ID called is not logged in on the server or its \
         links (404), or did not answer the call the server relayed (408).",
    ),
    (
        PUNCH_FAILED,
        "Punch failed (listen, call): no direct path was found, or the planner refused the \
         pair (see the report's reason); lab demo: its punch did not connect.",
    ),
    (
        INTERRUPTED,
        "Interrupted: SIGINT (Ctrl-C) or SIGTERM before listen or call finished. server and \
         login end on it as they are meant to, with status 0.",
    ),
];

/// The kinds of failure with a code of their own (beyond credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// [`UNREACHABLE`].
    ServerUnreachable,
    /// [`NO_CALLEE`].
    CalleeUnavailable,
    /// [`PUNCH_FAILED`].
    PunchFailed,
    /// [`INTERRUPTED`].
    Interrupted,
}

impl Kind {
    /// The exit code of this kind.
    pub fn code(self) -> u8 {
        match self {
            Kind::ServerUnreachable => UNREACHABLE,
            Kind::CalleeUnavailable => NO_CALLEE,
            Kind::PunchFailed => PUNCH_FAILED,
            Kind::Interrupted => INTERRUPTED,
        }
    }
}

/// An error that ends natlens with its kind's code; its text is the line printed.
#[derive(Debug)]
pub struct Failed {
    pub kind: Kind,
    pub message: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failed {}

/// A failure of `kind`, worded by `message`.
pub fn failed(kind: Kind, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failed {
        kind,
        message: message.into(),
    })
}

/// The run was interrupted while it was `doing` ("while punching").
pub fn interrupted(doing: &str) -> anyhow::Error {
    failed(Kind::Interrupted, format!("interrupted {doing}"))
}

/// True when `err` (or an error it wraps) is an interrupt.
pub fn is_interrupted(err: &anyhow::Error) -> bool {
    kind_of(err) == Some(Kind::Interrupted)
}

/// The kind `err` carries anywhere in its chain (context may have been added on the way up).
fn kind_of(err: &anyhow::Error) -> Option<Kind> {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Failed>())
        .map(|failed| failed.kind)
}

/// An error that ends natlens with [`CREDENTIALS`]; its text is the one line printed.
#[derive(Debug)]
pub struct CredentialsRefused(pub String);

impl std::fmt::Display for CredentialsRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CredentialsRefused {}

/// The exit code for `err`: its kind's, else [`FAILURE`].
pub fn code_of(err: &anyhow::Error) -> u8 {
    if err
        .chain()
        .any(|cause| cause.downcast_ref::<CredentialsRefused>().is_some())
    {
        return CREDENTIALS;
    }
    kind_of(err).map_or(FAILURE, Kind::code)
}

/// Prints `natlens: error` with its context chain and returns its code ([`code_of`]).
pub fn report(err: &anyhow::Error) -> ExitCode {
    // A closed stdout (`natlens ... | head`) is not an error worth a message.
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        if io.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::SUCCESS;
        }
    }
    crate::render::terminal::eprint_message(&format!("natlens: {err:#}"));
    ExitCode::from(code_of(err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn kinds_survive_added_context() {
        let err = Err::<(), _>(failed(Kind::ServerUnreachable, "no answer"))
            .context("logging in")
            .unwrap_err();
        assert_eq!(code_of(&err), UNREACHABLE);
        assert_eq!(format!("{err:#}"), "logging in: no answer");
        assert_eq!(code_of(&interrupted("while punching")), INTERRUPTED);
        assert_eq!(code_of(&anyhow::anyhow!("other")), FAILURE);
        let refused = anyhow::Error::new(CredentialsRefused("key".into()));
        assert_eq!(code_of(&refused), CREDENTIALS);
    }

    #[test]
    fn every_code_is_documented_once() {
        let mut codes: Vec<u8> = CODES.iter().map(|(code, _)| *code).collect();
        codes.dedup();
        assert_eq!(codes.len(), CODES.len());
        for kind in [
            Kind::ServerUnreachable,
            Kind::CalleeUnavailable,
            Kind::PunchFailed,
            Kind::Interrupted,
        ] {
            assert!(codes.contains(&kind.code()), "{kind:?}");
        }
    }
}
