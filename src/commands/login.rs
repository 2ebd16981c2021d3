//! `natlens login`: hold a session with a location server, answer the calls it delivers and
//! report what happens, until `--duration`, `--calls` or an interrupt; then log out.

use std::process::ExitCode;
use std::time::Instant;

use crate::cli::LoginArgs;
use crate::commands::session::{self, Opened};
use crate::core::client::ClientEvent;
use crate::io::client::{self, Stop};

/// Runs `natlens login`.
pub fn run(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let Opened {
        mut link,
        mut session,
    } = session::open(&args.session, args.transport, None)?;
    let stop = Stop {
        at: args.duration.map(|duration| Instant::now() + duration),
        flag: Some(crate::io::signal::stop_flag()?),
    };
    let mut answered = 0u64;
    let mut ending = None;
    client::run(&mut link, &mut session, stop, |session, event| {
        let enough = |answered| args.calls.is_some_and(|calls| answered >= calls);
        match &event {
            ClientEvent::LoggedIn { .. } if enough(answered) => session.logout(Instant::now()),
            ClientEvent::IncomingCall { .. } => {
                answered += 1;
                if enough(answered) {
                    session.logout(Instant::now());
                }
            }
            ClientEvent::LoginRefused { .. } | ClientEvent::ServerUnreachable { .. } => {
                ending = Some(event.clone());
            }
            _ => {}
        }
        report(&args.session, args.transport, &event)
    })?;
    let failure = |event| session::failure(&args.session, args.transport, &link, &event);
    match ending.and_then(failure) {
        Some(err) => Err(err),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// NDJSON on stdout with `--json`, else a human line on stderr.
fn report(
    args: &crate::cli::SessionArgs,
    transport: crate::core::Transport,
    event: &ClientEvent,
) -> std::io::Result<()> {
    if args.output.json {
        session::print_json(&session::event_json(args, transport, event))
    } else {
        if let Some(line) = session::event_line(args, transport, event) {
            eprintln!("{line}");
        }
        Ok(())
    }
}
