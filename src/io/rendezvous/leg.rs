//! One punch: the plan from both ends' facts, the punch over the leg's transport, the data
//! exchange, the report.

use std::io::{self, Read, Write};
use std::time::Duration;

use super::meet::Meeting;
use super::own_nat::OwnNat;
use super::{tcp_leg, udp_leg, Run, Session};
use crate::cli::PunchArgs;
use crate::core::punch::handshake::Handshake;
use crate::core::punch::plan::{make_plan, PlanInput, PunchOptions, PunchPlan, Strategy};
use crate::core::punch::report::PunchReport;
use crate::core::punch::PunchEvent;
use crate::core::Transport;
use crate::io::client::Link;
use crate::io::punch_udp::{Progress, TransferEnd};
use crate::report::punch::{Data, Output, Path};
use crate::report::{call_id_text, millis, Event};

/// What a punch produced.
pub(super) struct Punched {
    pub outcome_report: Option<PunchReport>,
    pub path: Option<Path>,
    pub transfer: Option<TransferEnd>,
}

/// One punch: plans, punches, exchanges data (unless `run.carry_data` is off) and returns the
/// report, or `None` after showing the plan with `--dry-run`. The session stays logged in.
pub(super) fn run_leg(
    run: &Run<'_>,
    meeting: Meeting,
    own: OwnNat,
    input: Option<Box<dyn Read + Send>>,
    link: &mut Link,
    session: &mut Session,
) -> anyhow::Result<Option<Output>> {
    let options = options(run.punch);
    let plan = make_plan(&PlanInput {
        role: meeting.role,
        transport: run.leg,
        call_id: meeting.call_id,
        own: &meeting.own,
        peer: &meeting.peer,
        options: &options,
    });
    if run.punch.dry_run {
        run.watch.dry_run(&plan)?;
        return Ok(None);
    }
    run.tell(Event::plan(&plan));
    run.watch.planned(&plan);
    let punched = match (plan.strategy, plan.transport) {
        (Strategy::Refused, _) => refused(run, &plan, &meeting),
        (_, Transport::Udp) => udp_leg::punch(run, &plan, &meeting, own, input, link, session)?,
        (_, Transport::Tcp) => {
            tcp_leg::punch_pumping(run, &plan, &meeting, &own, input, link, session)?
        }
    };
    let report = punched
        .outcome_report
        .expect("a punch ends with an outcome");
    Ok(Some(Output {
        peer_id: meeting.peer_id.clone(),
        call_id: call_id_text(meeting.call_id),
        path: punched.path,
        // A leg that did not carry the data (`both`'s TCP leg after UDP connected) exchanged
        // only its report records: no data to show.
        data: punched
            .transfer
            .as_ref()
            .filter(|_| run.carry_data)
            .map(data_report),
        report,
    }))
}

/// A plan the planner refused: its outcome without a packet sent.
fn refused(run: &Run<'_>, plan: &PunchPlan, meeting: &Meeting) -> Punched {
    let refused = Handshake::new(plan, meeting.start, &mut run.rng());
    Punched {
        outcome_report: refused
            .outcome()
            .map(|o| PunchReport::from_outcome(plan, o)),
        path: None,
        transfer: None,
    }
}

fn options(punch: &PunchArgs) -> PunchOptions {
    PunchOptions {
        fanout: punch.fanout,
        delta: punch.delta,
        preset_delta: punch.preset_delta,
        timeout: punch.timeout,
        rate: punch.rate,
        force: punch.force,
        ..PunchOptions::default()
    }
}

/// Where the peer's data goes: stdout, unless this leg carries none.
pub(super) fn data_sink(run: &Run<'_>) -> Box<dyn Write> {
    if run.punch.no_data || !run.carry_data {
        Box::new(io::sink())
    } else {
        Box::new(io::stdout().lock())
    }
}

/// A punch's progress as an event, `at` after its start.
pub(super) fn progress_event(progress: Progress, at: Duration) -> Event {
    let at_ms = millis(at);
    match progress {
        Progress::Punch(PunchEvent::PeerHeard { from, .. }) => Event::PeerHeard { at_ms, from },
        Progress::Punch(PunchEvent::Connected { peer, .. }) => Event::Connected { at_ms, peer },
        Progress::Punch(PunchEvent::Failed { reason }) => Event::PunchFailed { at_ms, reason },
        Progress::DataDone { failure } => Event::data_done(at, failure),
    }
}

fn data_report(end: &TransferEnd) -> Data {
    Data {
        result: if end.failure.is_none() {
            "complete"
        } else {
            "failed"
        },
        reason: end.failure.clone(),
        bytes_sent: end.stats.bytes_sent,
        bytes_received: end.stats.bytes_received,
        retransmissions: end.stats.retransmissions,
        elapsed_ms: millis(end.elapsed),
    }
}
