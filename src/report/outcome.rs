//! The envelope every `--json` run ends with: `schema_version`, `result` and, when the run did
//! not succeed, `error: {kind, message}`. A command whose report carries them itself (`nat`,
//! `listen`, `call`) adds [`ErrorObject`] to it; every other outcome (a failure before any
//! report, a usage error, an interrupt) is a [`Failure`] object.
//!
//! `kind` is the name of the exit code (`exit::KINDS`), so a script can branch on either.

use serde::Serialize;

use crate::exit;

/// The schema of `natlens login --json` (its events and its summary) and of the client event
/// vocabulary `listen` and `call` share. 2: `observed` became `public_address` and
/// `udp_expiry_secs` became `udp_expiry_ms` (see "Changes in schema 2" in the man pages).
pub const EVENTS_SCHEMA_VERSION: u32 = 2;

/// The schema of `natlens server --json` (its NDJSON log and its final object). 2: the `login`
/// and `expire` events say `public_address` instead of `observed`.
pub const SERVER_SCHEMA_VERSION: u32 = 2;

/// The schema of the objects of `natlens lab up --json` and `lab status --json`.
pub const LAB_SCHEMA_VERSION: u32 = 1;

/// Why a run did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorObject {
    /// One of `exit::KINDS`: usage, credentials, server_unreachable, callee_unavailable,
    /// punch_failed, partial, interrupted, failed.
    pub kind: &'static str,
    /// The error as the stderr line words it, without the `natlens: ` prefix.
    pub message: String,
}

impl ErrorObject {
    /// The kind and the whole message of `err`.
    pub fn of(err: &anyhow::Error) -> Self {
        ErrorObject {
            kind: exit::kind_name(err),
            message: exit::message(err),
        }
    }
}

/// The final object of a run that ended without its report: `result` is `interrupted` for an
/// interrupt, else `failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub schema_version: u32,
    pub result: &'static str,
    pub error: ErrorObject,
}

impl Failure {
    /// The failure object of `err`, for a command whose objects carry `schema_version`.
    pub fn of(schema_version: u32, err: &anyhow::Error) -> Self {
        Failure::new(schema_version, ErrorObject::of(err))
    }

    /// The failure object of `error`.
    pub fn new(schema_version: u32, error: ErrorObject) -> Self {
        let result = if error.kind == exit::kind_name_of_code(exit::INTERRUPTED) {
            "interrupted"
        } else {
            "failed"
        };
        Failure {
            schema_version,
            result,
            error,
        }
    }

    /// One JSON line, keys in declaration order.
    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("a failure serialises")
    }
}

/// The final object of a run that succeeded and has no report of its own (`login`, `server`):
/// `result` `ok`, plus what the command counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Done {
    pub schema_version: u32,
    /// Always `ok`.
    pub result: &'static str,
    /// `login` only: the calls answered during the session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls_answered: Option<u64>,
    /// `login` only: the server the session was on at the end (after a failover, the one it
    /// moved to).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<std::net::SocketAddr>,
}

impl Done {
    /// `{"schema_version":N,"result":"ok"}`, with `calls_answered` for `login`.
    pub fn new(schema_version: u32, calls_answered: Option<u64>) -> Self {
        Done {
            schema_version,
            result: "ok",
            calls_answered,
            server: None,
        }
    }

    /// One JSON line, keys in declaration order.
    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("a summary serialises")
    }
}

/// A report with the outcome's `error` after its own keys (absent on success): the punch
/// reports of `listen` and `call`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WithError<'a, T: Serialize> {
    #[serde(flatten)]
    pub report: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

/// Where a command's final object goes: the stream its report goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How a `--json` run ends: the stream and schema of its final object, and whether stderr is an
/// NDJSON stream (then no plain `natlens: ...` line may be written there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalObject {
    pub stream: Stream,
    pub schema_version: u32,
    pub stderr_is_json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{failed, interrupted, Kind};

    /// Every failure object, byte for byte: a script reads them.
    #[test]
    fn failure_objects_keep_their_json() {
        let cases = [
            (
                failed(
                    Kind::ServerUnreachable,
                    "127.0.0.1:9 answered ICMP port unreachable",
                )
                .context("logging in to 127.0.0.1:9"),
                r#"{"schema_version":2,"result":"failed","error":{"kind":"server_unreachable","message":"logging in to 127.0.0.1:9: 127.0.0.1:9 answered ICMP port unreachable"}}"#,
            ),
            (
                failed(
                    Kind::CalleeUnavailable,
                    "\"nobody\" is not logged in on this server or its peers (404)",
                ),
                r#"{"schema_version":2,"result":"failed","error":{"kind":"callee_unavailable","message":"\"nobody\" is not logged in on this server or its peers (404)"}}"#,
            ),
            (
                interrupted("before a call came"),
                r#"{"schema_version":2,"result":"interrupted","error":{"kind":"interrupted","message":"interrupted before a call came"}}"#,
            ),
            (
                failed(
                    Kind::Usage,
                    "--name \"a b\": use 1 to 64 printable characters",
                ),
                r#"{"schema_version":2,"result":"failed","error":{"kind":"usage","message":"--name \"a b\": use 1 to 64 printable characters"}}"#,
            ),
            (
                anyhow::Error::new(exit::CredentialsRefused(
                    "the server refused the key".into(),
                )),
                r#"{"schema_version":2,"result":"failed","error":{"kind":"credentials","message":"the server refused the key"}}"#,
            ),
            (
                anyhow::anyhow!("address in use").context("binding UDP 127.0.0.1:3478"),
                r#"{"schema_version":2,"result":"failed","error":{"kind":"failed","message":"binding UDP 127.0.0.1:3478: address in use"}}"#,
            ),
            (
                exit::reported(failed(
                    Kind::PunchFailed,
                    "no direct path to \"bob\": refused",
                )),
                r#"{"schema_version":2,"result":"failed","error":{"kind":"punch_failed","message":"no direct path to \"bob\": refused"}}"#,
            ),
        ];
        for (err, golden) in cases {
            assert_eq!(Failure::of(2, &err).json(), golden);
        }
    }

    #[test]
    fn summaries_keep_their_json() {
        assert_eq!(
            Done::new(SERVER_SCHEMA_VERSION, None).json(),
            r#"{"schema_version":2,"result":"ok"}"#
        );
        assert_eq!(
            Done::new(EVENTS_SCHEMA_VERSION, Some(3)).json(),
            r#"{"schema_version":2,"result":"ok","calls_answered":3}"#
        );
    }
}
