//! `natlens call NAME`: log in, fingerprint, call NAME through the server and punch a direct path
//! to it (`commands::punch`); with `--no-punch`, only print the facts exchanged and log out.

use std::io::Write;
use std::process::ExitCode;

use rand::rngs::StdRng;

use crate::cli::CallArgs;
use crate::io::rendezvous::{self, Watch};
use crate::render::call::facts_table;
use crate::render::events::Terminal;

/// Runs `natlens call`.
pub fn run(args: CallArgs, rng: StdRng) -> anyhow::Result<ExitCode> {
    if args.no_punch {
        exchange_only(args, rng)
    } else {
        crate::commands::punch::call(args, rng)
    }
}

/// `--no-punch`: call, print both ends' facts, log out.
fn exchange_only(args: CallArgs, rng: StdRng) -> anyhow::Result<ExitCode> {
    let transport = args.punch.login_transport;
    // On stderr, as listen's and call's events: stdout carries the one object.
    let terminal = Terminal {
        json: args.session.output.json,
        both: false,
    };
    for event in args.session.server.iter().filter_map(super::resolved) {
        terminal.tell(event);
    }
    let _capture = crate::io::pcap::start_if(args.punch.pcap.as_deref())?;
    let answer = rendezvous::exchange_facts(
        &args.session,
        transport,
        &args.callee,
        args.punch.call_wait(),
        rng,
    )?;
    let mut out = std::io::stdout().lock();
    if args.session.output.json {
        writeln!(out, "{}", answer.json())?;
    } else {
        let own = rendezvous::session::own_facts(transport, answer.own_observed);
        let table = facts_table(&args.session.id, &own, &args.callee, &answer.callee_facts);
        let table = crate::render::terminal::fit(table, crate::render::terminal::Stream::Stdout);
        writeln!(out, "{table}")?;
    }
    Ok(ExitCode::SUCCESS)
}
