//! `natlens login`: hold a session with a location server, answer the calls it delivers and
//! report what happens, until `--duration`, `--calls` or an interrupt; then log out.

use std::process::ExitCode;
use std::sync::atomic::Ordering;

use rand::rngs::StdRng;

use crate::cli::LoginArgs;
use crate::io::rendezvous::{self, Hold};
use crate::render::events;
use crate::report::outcome::{Done, EVENTS_SCHEMA_VERSION};
use crate::report::Event;

/// Runs `natlens login`: NDJSON events on stdout with `--json`, else human lines on stderr.
/// With `--json` the stream ends with one final object: the summary, or (through
/// `lib::run_to_exit`) the failure object. An interrupt logs out cleanly, then ends with
/// status 130.
pub fn run(args: LoginArgs, rng: StdRng) -> anyhow::Result<ExitCode> {
    let hold = Hold {
        transport: args.login_transport,
        duration: args.duration,
        calls: args.calls,
    };
    let json = args.session.output.json;
    for event in args.session.server.iter().filter_map(super::resolved) {
        events::to_stdout(&event, json)?;
    }
    let mut calls_answered = 0u64;
    let server = rendezvous::login(&args.session, hold, rng, &mut |event| {
        if matches!(event, Event::IncomingCall { .. }) {
            calls_answered += 1;
        }
        events::to_stdout(&event, json)
    })?;
    if crate::io::signal::stop_flag()?.load(Ordering::Relaxed) {
        return Err(crate::exit::interrupted(
            "while logged in; logged out cleanly",
        ));
    }
    if json {
        let summary = Done {
            server: Some(server),
            ..Done::new(EVENTS_SCHEMA_VERSION, Some(calls_answered))
        };
        events::line_to_stdout(&summary.json())?;
    }
    Ok(ExitCode::SUCCESS)
}
