//! `natlens listen` and `natlens call`: the rendezvous driver ([`crate::io::rendezvous`]) with
//! its events on the terminal, then the report and the exit status.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::anyhow;
use rand::rngs::StdRng;

use crate::cli::{CallArgs, ListenArgs, PunchArgs, PunchTransport, SessionArgs};
use crate::core::punch::report::PunchResult;
use crate::exit::{self, Kind};
use crate::io::rendezvous::{self, Rendezvous, Rendezvoused, Watch};
use crate::render::events::Terminal;
use crate::render::punch as render;
use crate::report::outcome::ErrorObject;
use crate::report::punch::{BothOutput, Data, Output};

/// Runs `natlens listen`.
pub fn listen(args: ListenArgs, rng: StdRng) -> anyhow::Result<ExitCode> {
    rendezvous(&args.session, &args.punch, None, rng)
}

/// Runs `natlens call` (unless `--no-punch`).
pub fn call(args: CallArgs, rng: StdRng) -> anyhow::Result<ExitCode> {
    rendezvous(&args.session, &args.punch, Some(&args.callee), rng)
}

fn rendezvous(
    session: &SessionArgs,
    punch: &PunchArgs,
    callee: Option<&str>,
    rng: StdRng,
) -> anyhow::Result<ExitCode> {
    let terminal = Terminal {
        json: session.output.json,
        both: punch.transport == PunchTransport::Both,
    };
    for event in session.server.iter().filter_map(super::resolved) {
        terminal.tell(event);
    }
    let _capture = crate::io::pcap::start_if(punch.pcap.as_deref())?;
    let rendezvous = Rendezvous {
        session,
        punch,
        watch: &terminal,
    };
    let json = session.output.json;
    match rendezvous::run(rendezvous, callee, rng)? {
        Rendezvoused::Planned => Ok(ExitCode::SUCCESS),
        Rendezvoused::One(output) => {
            let failure = verdict(&output);
            let error = failure.as_ref().map(ErrorObject::of);
            print_report(punch, &render::report_text(&output, error, json)?)?;
            outcome(failure, json)
        }
        Rendezvoused::Both(output) => {
            let failure = verdict_both(&output);
            let error = failure.as_ref().map(ErrorObject::of);
            print_report(punch, &render::both_report_text(&output, error, json)?)?;
            outcome(failure, json)
        }
    }
}

/// The report: stdout with `--no-data` (it carries nothing else), stderr otherwise.
fn print_report(punch: &PunchArgs, text: &str) -> io::Result<()> {
    if punch.no_data {
        writeln!(io::stdout().lock(), "{text}")
    } else {
        writeln!(io::stderr().lock(), "{text}")
    }
}

/// The exit after the report: success, or the failure it described (with `--json` the report
/// carried it, so no second object is printed).
fn outcome(failure: Option<anyhow::Error>, json: bool) -> anyhow::Result<ExitCode> {
    match failure {
        None => Ok(ExitCode::SUCCESS),
        Some(err) if json => Err(exit::reported(err)),
        Some(err) => Err(err),
    }
}

/// Why the run did not succeed, if it did not: a punch that found no path (or was refused)
/// ends with [`exit::PUNCH_FAILED`], lost data with a plain failure.
fn verdict(output: &Output) -> Option<anyhow::Error> {
    let report = &output.report;
    if report.result == PunchResult::Failed {
        return Some(exit::failed(
            Kind::PunchFailed,
            format!(
                "no direct path to {:?}: {}",
                output.peer_id,
                report.reason.as_deref().unwrap_or("no reason given")
            ),
        ));
    }
    data_failure(&output.peer_id, output.data.as_ref())
}

/// As [`verdict`] over both legs: success when either connected and the data, if any, arrived
/// whole over the one that carried it.
fn verdict_both(output: &BothOutput) -> Option<anyhow::Error> {
    if output.result == PunchResult::Failed {
        return Some(exit::failed(
            Kind::PunchFailed,
            format!(
                "no direct path to {:?} over udp or tcp: {}",
                output.peer_id,
                output.reason.as_deref().unwrap_or("no reason given")
            ),
        ));
    }
    data_failure(
        &output.peer_id,
        output.carrier().and_then(|o| o.data.as_ref()),
    )
}

/// The data exchange's failure after a connected punch.
fn data_failure(peer_id: &str, data: Option<&Data>) -> Option<anyhow::Error> {
    let reason = data?.reason.as_deref()?;
    Some(anyhow!(
        "connected to {peer_id:?}, but the data exchange failed: {reason}"
    ))
}
