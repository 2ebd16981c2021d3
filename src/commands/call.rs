//! `natlens call NAME`: log in, fingerprint, call NAME through the server and punch a direct path
//! to it (`commands::punch`); with `--no-punch`, only print the facts exchanged and log out.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use comfy_table::Table;
use serde_json::json;

use crate::cli::CallArgs;
use crate::commands::session::{self, Opened};
use crate::core::client::ClientEvent;
use crate::io::client::{self, Stop};
use crate::wire::natlens::{self, NatFacts};

/// Version of the JSON object `natlens call --json` prints; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Most predicted ports shown in the table; JSON always carries them all.
const PORTS_SHOWN: usize = 8;

/// Runs `natlens call`.
pub fn run(args: CallArgs) -> anyhow::Result<ExitCode> {
    validate_callee(&args.callee)?;
    if args.no_punch {
        exchange_only(args)
    } else {
        crate::commands::punch::call(args)
    }
}

pub(crate) fn validate_callee(callee: &str) -> anyhow::Result<()> {
    natlens::validate_name(callee).map_err(|_| anyhow!("{callee:?} is not a valid ID to call"))?;
    Ok(())
}

/// `--no-punch`: call, print both ends' facts, log out.
fn exchange_only(args: CallArgs) -> anyhow::Result<ExitCode> {
    let transport = args.punch.login_transport;
    let timeout = args.punch.timeout;
    let Opened {
        mut link,
        mut session,
    } = session::open(&args.session, transport, Some(timeout))?;
    let stop = Stop {
        at: None,
        flag: Some(crate::io::signal::stop_flag()?),
    };
    let mut outcome = None;
    client::run(&mut link, &mut session, stop, |session, event| {
        match &event {
            ClientEvent::LoggedIn { observed, .. } => {
                let facts = session::own_facts(transport, Some(*observed));
                session.call(Instant::now(), &args.callee, &facts);
            }
            ClientEvent::CallAnswered { .. } | ClientEvent::CallFailed { .. } => {
                outcome.get_or_insert(event);
                session.logout(Instant::now());
            }
            ClientEvent::LoginRefused { .. } | ClientEvent::ServerUnreachable { .. } => {
                outcome.get_or_insert(event);
            }
            _ => {}
        }
        Ok(())
    })?;
    match outcome {
        Some(ClientEvent::CallAnswered { call_id, facts, .. }) => {
            print_answer(&args, call_id, &facts, session.observed())?;
            Ok(ExitCode::SUCCESS)
        }
        Some(ClientEvent::CallFailed { code, reason, .. }) => {
            Err(call_failure(&args.callee, code, &reason, timeout))
        }
        Some(event) => Err(session::failure(&args.session, transport, &link, &event)
            .unwrap_or_else(|| anyhow!("the session ended unexpectedly"))),
        None => Err(anyhow!("interrupted before the call was answered")),
    }
}

/// Words a failed call.
pub(crate) fn call_failure(
    callee: &str,
    code: Option<u16>,
    reason: &str,
    timeout: Duration,
) -> anyhow::Error {
    match code {
        Some(natlens::error::UNKNOWN_PEER) => {
            anyhow!("{callee:?} is not logged in on this server or its peers (404)")
        }
        Some(natlens::error::PEER_TIMEOUT) => anyhow!("{callee:?} did not answer the call (408)"),
        Some(code) => anyhow!("the call to {callee:?} failed: {reason} ({code})"),
        None => anyhow!("the call to {callee:?} failed: {reason} (--timeout {timeout:?})"),
    }
}

fn print_answer(
    args: &CallArgs,
    call_id: u64,
    facts: &NatFacts,
    own_observed: Option<SocketAddr>,
) -> std::io::Result<()> {
    if args.session.output.json {
        return session::print_json(&answer_json(args, call_id, facts, own_observed));
    }
    let own = session::own_facts(args.punch.login_transport, own_observed);
    let table = facts_table(&args.session.id, &own, &args.callee, facts);
    writeln!(std::io::stdout().lock(), "{table}")
}

/// The documented `natlens call --json` object.
fn answer_json(
    args: &CallArgs,
    call_id: u64,
    facts: &NatFacts,
    own_observed: Option<SocketAddr>,
) -> serde_json::Value {
    json!({
        "schema_version": SCHEMA_VERSION,
        "caller": args.session.id,
        "callee": args.callee,
        "call_id": session::call_id_text(call_id),
        "callee_facts": facts,
        "own_observed": own_observed,
    })
}

/// Both ends' facts side by side.
fn facts_table(caller: &str, own: &NatFacts, callee: &str, theirs: &NatFacts) -> Table {
    let unknown = || "not measured".to_string();
    let address = |facts: &NatFacts| facts.observed.map_or("unknown".into(), |a| a.to_string());
    let delta = |facts: &NatFacts| facts.delta.map_or_else(unknown, |d| format!("{d:+}"));
    let ports = |facts: &NatFacts| match facts.predicted_ports.as_slice() {
        [] => unknown(),
        ports if ports.len() <= PORTS_SHOWN => join(ports),
        ports => format!("{} … ({} in all)", join(&ports[..PORTS_SHOWN]), ports.len()),
    };
    let mut table = Table::new();
    table.set_header(vec![
        String::new(),
        format!("{caller} (you)"),
        callee.into(),
    ]);
    table.add_row(vec!["public address".into(), address(own), address(theirs)]);
    table.add_row(vec![
        "transports".into(),
        session::transports_text(own.transports),
        session::transports_text(theirs.transports),
    ]);
    table.add_row(vec!["port delta".into(), delta(own), delta(theirs)]);
    table.add_row(vec!["predicted ports".into(), ports(own), ports(theirs)]);
    table
}

fn join(ports: &[u16]) -> String {
    let text: Vec<String> = ports.iter().map(u16::to_string).collect();
    text.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, Transport};
    use crate::wire::natlens::Transports;
    use clap::Parser;

    fn args() -> CallArgs {
        let argv = [
            "natlens",
            "call",
            "bob",
            "--server",
            "192.0.2.1:3478",
            "--id",
            "alice",
            "--json",
            "--no-punch",
        ];
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Call(args) => args,
            other => panic!("{other:?}"),
        }
    }

    fn bob() -> NatFacts {
        NatFacts {
            observed: Some("203.0.113.9:51000".parse().unwrap()),
            transports: Transports {
                udp: true,
                tcp: true,
            },
            delta: Some(2),
            predicted_ports: (51002..51022).step_by(2).collect(),
            profile: None,
        }
    }

    #[test]
    fn answer_json_matches_the_documented_schema() {
        let own = "198.51.100.7:40001".parse().ok();
        let value = answer_json(&args(), 0x1234, &bob(), own);
        let expected = json!({
            "schema_version": 1,
            "caller": "alice",
            "callee": "bob",
            "call_id": "0000000000001234",
            "callee_facts": {
                "observed": "203.0.113.9:51000",
                "delta": 2,
                "predicted_ports": [51002, 51004, 51006, 51008, 51010, 51012, 51014, 51016,
                    51018, 51020],
                "transports": {"udp": true, "tcp": true},
            },
            "own_observed": "198.51.100.7:40001",
        });
        assert_eq!(value, expected);
    }

    #[test]
    fn table_shows_both_ends() {
        let own = session::own_facts(Transport::Udp, "198.51.100.7:40001".parse().ok());
        let text = facts_table("alice", &own, "bob", &bob()).to_string();
        for needle in [
            "alice (you)",
            "203.0.113.9:51000",
            "198.51.100.7:40001",
            "udp, tcp",
            "+2",
            "… (10 in all)",
            "not measured",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
    }

    #[test]
    fn failures_name_the_callee() {
        let text = |code| call_failure("bob", code, "why", Duration::from_secs(10)).to_string();
        assert_eq!(
            text(Some(404)),
            "\"bob\" is not logged in on this server or its peers (404)"
        );
        assert_eq!(text(Some(408)), "\"bob\" did not answer the call (408)");
        assert_eq!(
            text(None),
            "the call to \"bob\" failed: why (--timeout 10s)"
        );
    }
}
