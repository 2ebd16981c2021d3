//! `natlens listen` and `natlens call`: the rendezvous driver ([`crate::io::rendezvous`]) with
//! its events on the terminal, then the report and the exit status.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::bail;
use rand::rngs::StdRng;

use crate::cli::{CallArgs, ListenArgs, PunchArgs, PunchTransport, SessionArgs};
use crate::core::punch::report::PunchResult;
use crate::exit::{self, Kind};
use crate::io::rendezvous::{self, Rendezvous, Rendezvoused, Watch};
use crate::render::events::Terminal;
use crate::render::punch as render;
use crate::report::punch::{BothOutput, Output};

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
    if let Some(event) = super::resolved(&session.server) {
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
            print_report(punch, &render::report_text(&output, json)?)?;
            verdict(&output)
        }
        Rendezvoused::Both(output) => {
            print_report(punch, &render::both_report_text(&output, json)?)?;
            verdict_both(&output)
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

/// Exit status: success only when the punch connected and both streams arrived whole; a punch
/// that found no path (or was refused) ends with [`exit::PUNCH_FAILED`], lost data with a plain
/// failure.
fn verdict(output: &Output) -> anyhow::Result<ExitCode> {
    let report = &output.report;
    if report.result == PunchResult::Failed {
        return Err(exit::failed(
            Kind::PunchFailed,
            format!(
                "no direct path to {:?}: {}",
                output.peer_id,
                report.reason.as_deref().unwrap_or("no reason given")
            ),
        ));
    }
    match &output.data {
        Some(data) if data.reason.is_some() => bail!(
            "connected to {:?}, but the data exchange failed: {}",
            output.peer_id,
            data.reason.as_deref().unwrap_or_default()
        ),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Success when either leg connected and the data, if any, arrived whole over the one that
/// carried it.
fn verdict_both(output: &BothOutput) -> anyhow::Result<ExitCode> {
    if output.result == PunchResult::Failed {
        return Err(exit::failed(
            Kind::PunchFailed,
            format!(
                "no direct path to {:?} over udp or tcp: {}",
                output.peer_id,
                output.reason.as_deref().unwrap_or("no reason given")
            ),
        ));
    }
    match output.carrier().and_then(|o| o.data.as_ref()) {
        Some(data) if data.reason.is_some() => bail!(
            "connected to {:?}, but the data exchange failed: {}",
            output.peer_id,
            data.reason.as_deref().unwrap_or_default()
        ),
        _ => Ok(ExitCode::SUCCESS),
    }
}
