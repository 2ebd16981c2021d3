//! `natlens login`: hold a session with a location server, answer the calls it delivers and
//! report what happens, until `--duration`, `--calls` or an interrupt; then log out.

use std::process::ExitCode;

use rand::rngs::StdRng;

use crate::cli::LoginArgs;
use crate::io::rendezvous::{self, Hold};
use crate::render::events;

/// Runs `natlens login`: NDJSON events on stdout with `--json`, else human lines on stderr.
pub fn run(args: LoginArgs, rng: StdRng) -> anyhow::Result<ExitCode> {
    let hold = Hold {
        transport: args.login_transport,
        duration: args.duration,
        calls: args.calls,
    };
    let json = args.session.output.json;
    if let Some(event) = super::resolved(&args.session.server) {
        events::to_stdout(&event, json)?;
    }
    rendezvous::login(&args.session, hold, rng, &mut |event| {
        events::to_stdout(&event, json)
    })?;
    Ok(ExitCode::SUCCESS)
}
