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

use crate::cli::{Cli, Command, ServerName};
use crate::report::Event;

/// Runs the chosen subcommand with the run's one random generator, which is handed down to the
/// drivers (they seed their own from it).
pub fn dispatch(cli: Cli, mut rng: StdRng) -> anyhow::Result<ExitCode> {
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
