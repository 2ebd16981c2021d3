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
/// A partial result: `natlens nat` heard the server over one transport but not the other; the
/// report is printed (with `result` "partial") and names what is missing.
pub const PARTIAL: u8 = 7;
/// Interrupted (SIGINT or SIGTERM) before `nat`, `listen`, `call` or `login` finished:
/// 128 + SIGINT.
pub const INTERRUPTED: u8 = 130;

/// Every code with what it means, as the man pages' EXIT STATUS section lists them. Each text
/// starts with the `error.kind` the JSON failure object carries for it (see [`KINDS`]).
pub const CODES: [(u8, &str); 9] = [
    (OK, "Success (no error object)."),
    (
        FAILURE,
        "kind failed: a runtime failure not covered below: a network error, a refused login, \
         a lost session, data lost after the punch connected.",
    ),
    (
        USAGE,
        "kind usage: bad command-line usage: an unknown option, a missing or malformed value, \
         a number outside the range --help states, an invalid ID, a --server or --link name \
         that does not resolve.",
    ),
    (
        CREDENTIALS,
        "kind credentials: the server (run with --credentials) did not accept this ID's key, \
         or needs one and none was given (--key-file or NATLENS_KEY).",
    ),
    (
        UNREACHABLE,
        "kind server_unreachable: no answer from the server (natlens nat: no STUN answer), \
         its host answered ICMP port unreachable, or it refused the TCP connection.",
    ),
    (
        NO_CALLEE,
        "kind callee_unavailable (call): the ID called is not logged in on the server or its \
         links (404), or did not answer the call the server relayed (408).",
    ),
    (
        PUNCH_FAILED,
        "kind punch_failed (listen, call): no direct path was found, or the planner refused \
         the pair (see the report's reason); lab demo: its punch did not connect.",
    ),
    (
        PARTIAL,
        "kind partial (nat): a partial result: the server answered over one transport but not \
         the other; the report is printed, its result is partial and its error names the \
         transport that got no answer.",
    ),
    (
        INTERRUPTED,
        "kind interrupted: SIGINT (Ctrl-C) or SIGTERM before nat, listen, call or login \
         finished (login: at any time before --duration or --calls ended it). server ends on \
         it as it is meant to, with status 0.",
    ),
];

/// The `error.kind` of each exit code, in the order of [`CODES`] (success has none).
pub const KINDS: [(u8, &str); 8] = [
    (FAILURE, "failed"),
    (USAGE, "usage"),
    (CREDENTIALS, "credentials"),
    (UNREACHABLE, "server_unreachable"),
    (NO_CALLEE, "callee_unavailable"),
    (PUNCH_FAILED, "punch_failed"),
    (PARTIAL, "partial"),
    (INTERRUPTED, "interrupted"),
];

/// The kinds of failure with a code of their own (beyond credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// [`USAGE`], found after parsing (a value clap could not check by itself).
    Usage,
    /// [`UNREACHABLE`].
    ServerUnreachable,
    /// [`NO_CALLEE`].
    CalleeUnavailable,
    /// [`PUNCH_FAILED`].
    PunchFailed,
    /// [`PARTIAL`].
    Partial,
    /// [`INTERRUPTED`].
    Interrupted,
}

impl Kind {
    /// The exit code of this kind.
    pub fn code(self) -> u8 {
        match self {
            Kind::Usage => USAGE,
            Kind::ServerUnreachable => UNREACHABLE,
            Kind::CalleeUnavailable => NO_CALLEE,
            Kind::PunchFailed => PUNCH_FAILED,
            Kind::Partial => PARTIAL,
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

/// The `error.kind` of `err` ([`KINDS`]): the name of its exit code.
pub fn kind_name(err: &anyhow::Error) -> &'static str {
    kind_name_of_code(code_of(err))
}

/// The `error.kind` of an exit code; `failed` for a code without a kind of its own.
pub fn kind_name_of_code(code: u8) -> &'static str {
    KINDS
        .iter()
        .find(|(known, _)| *known == code)
        .map_or("failed", |(_, name)| name)
}

/// The error's whole text, its context chain joined with ": " (as the stderr line prints it).
pub fn message(err: &anyhow::Error) -> String {
    match err.downcast_ref::<Reported>() {
        Some(Reported(inner)) => format!("{inner:#}"),
        None => format!("{err:#}"),
    }
}

/// A failure whose final JSON object has already been printed (a punch report carrying its
/// `error`, a partial `nat` report): it still decides the exit code, but nothing prints a
/// second object for it.
#[derive(Debug)]
pub struct Reported(pub anyhow::Error);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the marker; [`message`] words the wrapped error with its chain.
        f.write_str("reported")
    }
}

impl std::error::Error for Reported {
    // The wrapped error stays in the chain, so that its kind still decides the code.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

/// `err`, marked as already carried by the final object on the way out.
pub fn reported(err: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(Reported(err))
}

/// True when the final object carrying `err` was already printed.
pub fn is_reported(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|cause| cause.downcast_ref::<Reported>().is_some())
}

/// True for a closed stdout (`natlens ... | head`): not an error worth a message.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Prints `natlens: error` with its context chain and returns its code ([`code_of`]).
pub fn report(err: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(err) {
        return ExitCode::SUCCESS;
    }
    crate::render::terminal::eprint_message(&format!("natlens: {}", message(err)));
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
            Kind::Usage,
            Kind::ServerUnreachable,
            Kind::CalleeUnavailable,
            Kind::PunchFailed,
            Kind::Partial,
            Kind::Interrupted,
        ] {
            assert!(codes.contains(&kind.code()), "{kind:?}");
        }
    }

    /// Every failing code has one kind name, and its EXIT STATUS text starts with it, so the
    /// man page lists the kinds with their codes.
    #[test]
    fn every_failing_code_names_its_kind() {
        for (code, meaning) in CODES.iter().skip(1) {
            let name = kind_name_of_code(*code);
            assert_eq!(KINDS.iter().filter(|(c, _)| c == code).count(), 1, "{code}");
            assert!(
                meaning.starts_with(&format!("kind {name}")),
                "{code}: {meaning}"
            );
        }
        let mut names: Vec<&str> = KINDS.iter().map(|(_, name)| *name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KINDS.len());
    }

    /// A reported failure keeps its code and text; only the marker says it was printed.
    #[test]
    fn a_reported_failure_keeps_its_kind() {
        let err = reported(failed(Kind::PunchFailed, "no direct path"));
        assert!(is_reported(&err));
        assert_eq!(code_of(&err), PUNCH_FAILED);
        assert_eq!(kind_name(&err), "punch_failed");
        assert_eq!(message(&err), "no direct path");
        assert!(!is_reported(&failed(Kind::Partial, "tcp")));
        assert_eq!(kind_name(&anyhow::anyhow!("other")), "failed");
        assert_eq!(kind_name(&interrupted("while punching")), "interrupted");
    }
}
