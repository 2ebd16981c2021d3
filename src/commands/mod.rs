//! Glue from a parsed command line to the IO drivers and the renderers: a command parses its
//! arguments, calls one driver and hands what it reports to `render`.

mod call;
mod docs;
mod lab;
mod lab_demo;
mod login;
mod nat;
mod punch;
mod server;

use std::process::ExitCode;

use rand::rngs::StdRng;

use crate::cli::{Cli, Command, LabCommand, ServerName};
use crate::report::outcome::{
    FinalObject, Stream, EVENTS_SCHEMA_VERSION, LAB_SCHEMA_VERSION, SERVER_SCHEMA_VERSION,
};
use crate::report::Event;

/// Runs the chosen subcommand with the run's one random generator, which is handed down to the
/// drivers (they seed their own from it).
pub fn dispatch(mut cli: Cli, mut rng: StdRng) -> anyhow::Result<ExitCode> {
    for warning in crate::cli::resolve_aliases(&mut cli) {
        eprintln!("natlens: warning: {warning}");
    }
    match cli.command {
        Command::Generate(args) => {
            crate::generate::write_all(&args.out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions(args) => docs::completions(&args),
        Command::Man(args) => docs::man(&args),
        Command::Server(args) => server::run(args),
        Command::Login(args) => login::run(args, rng),
        Command::Listen(args) => punch::listen(args, rng),
        Command::Call(args) => call::run(args, rng),
        Command::Lab(args) => lab::run(args, &mut rng),
        Command::Nat(args) => nat::run(args, &mut rng),
    }
}

/// Where `command`'s final JSON object goes and which schema it follows; `None` without
/// `--json` (and for `lab exec`, whose stdout belongs to the command it runs).
pub fn final_object(command: &Command) -> Option<FinalObject> {
    let on = |stream, schema_version, stderr_is_json| FinalObject {
        stream,
        schema_version,
        stderr_is_json,
    };
    match command {
        Command::Server(args) => args
            .json
            .then(|| on(Stream::Stdout, SERVER_SCHEMA_VERSION, true)),
        Command::Login(args) => args
            .session
            .output
            .json
            .then(|| on(Stream::Stdout, EVENTS_SCHEMA_VERSION, false)),
        Command::Call(args) if args.no_punch => args
            .session
            .output
            .json
            .then(|| on(Stream::Stdout, crate::report::call::SCHEMA_VERSION, true)),
        Command::Listen(crate::cli::ListenArgs { session, punch, .. })
        | Command::Call(crate::cli::CallArgs { session, punch, .. }) => {
            // The report's stream: stdout when it carries no data, else stderr (punch.rs).
            let stream = if punch.no_data || punch.dry_run {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            let version = crate::core::punch::report::SCHEMA_VERSION;
            session.output.json.then(|| on(stream, version, true))
        }
        Command::Nat(args) => args.json.then(|| {
            on(
                Stream::Stdout,
                crate::core::fingerprint::SCHEMA_VERSION,
                false,
            )
        }),
        Command::Lab(args) => match &args.command {
            LabCommand::Up(up) => up.json,
            LabCommand::Status(status) => status.json,
            _ => false,
        }
        .then(|| on(Stream::Stdout, LAB_SCHEMA_VERSION, false)),
        // Their stdout is the file they print, verbatim.
        Command::Generate(_) | Command::Completions(_) | Command::Man(_) => None,
    }
}

/// The schema of the final object of the subcommand named `name` (as argv spells it), for a
/// usage error found before the arguments could be parsed.
pub fn schema_version_named(name: Option<&str>) -> u32 {
    match name {
        Some("server") => SERVER_SCHEMA_VERSION,
        Some("login") => EVENTS_SCHEMA_VERSION,
        Some("listen" | "call") => crate::core::punch::report::SCHEMA_VERSION,
        Some("lab") => LAB_SCHEMA_VERSION,
        _ => crate::core::fingerprint::SCHEMA_VERSION,
    }
}

/// The `resolved` event of a server given by name; `None` for an IP address (nothing was
/// looked up, nothing to say).
fn resolved(server: &ServerName) -> Option<Event> {
    server.is_name().then(|| Event::Resolved {
        name: server.text.clone(),
        server: server.addr,
        addresses: server.resolved.clone(),
    })
}

/// The human line naming the address a server name resolved to, for the commands without an
/// event stream (`nat`, `server --link`).
fn resolved_line(server: &ServerName) -> Option<String> {
    resolved(server).and_then(|event| crate::render::events::line(&event))
}
