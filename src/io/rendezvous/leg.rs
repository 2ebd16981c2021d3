//! One punch: the plan from both ends' facts, the punch over the leg's transport, the data
//! exchange, the report.

use std::io::{self, Read, Write};
use std::time::Duration;

use anyhow::Context;

use super::meet::Meeting;
use super::own_nat::OwnNat;
use super::{tcp_leg, tcp_race, udp_leg, Run, Session};
use crate::cli::PunchArgs;
use crate::core::punch::family::{plan_families, FamilyPlan};
use crate::core::punch::handshake::Handshake;
use crate::core::punch::plan::{make_plan, PlanInput, PunchOptions, PunchPlan, Strategy};
use crate::core::punch::report::{PunchReport, PunchResult};
use crate::core::punch::PunchEvent;
use crate::core::Transport;
use crate::io::client::Link;
use crate::io::punch_udp::{Progress, TransferEnd};
use crate::report::punch::{Data, FamilyOutcome, Output, Path};
use crate::report::{call_id_text, millis, Event};
use crate::wire::natlens::IpFamily;

/// How one family of a two-family race ended: `None` when it was stopped before its path
/// came up; a path the other end dropped (TCP: the callee's verdict) is `Some` with a
/// connected report and no data.
pub(super) type FamilyEnd = Option<Punched>;

/// What a punch produced.
pub(super) struct Punched {
    pub outcome_report: Option<PunchReport>,
    pub path: Option<Path>,
    pub transfer: Option<TransferEnd>,
}

/// One punch: plans each address family, punches (both families at once over UDP when both
/// are shared), exchanges data (unless `run.carry_data` is off) and returns the report, or
/// `None` after showing the plans with `--dry-run`. The session stays logged in.
pub(super) fn run_leg(
    run: &Run<'_>,
    meeting: Meeting,
    own: OwnNat,
    input: Option<Box<dyn Read + Send>>,
    link: &mut Link,
    session: &mut Session,
) -> anyhow::Result<Option<Output>> {
    let options = options(run.punch);
    let plan_input = PlanInput {
        role: meeting.role,
        transport: run.leg,
        call_id: meeting.call_id,
        own: &meeting.own,
        peer: &meeting.peer,
        options: &options,
    };
    let families = plan_families(&plan_input, run.punch.family);
    let runnable: Vec<&FamilyPlan> = families
        .iter()
        .filter(|f| {
            f.plan
                .as_ref()
                .is_ok_and(|p| p.strategy != Strategy::Refused)
        })
        .collect();
    if run.punch.dry_run {
        dry_run(run, &plan_input, &families)?;
        return Ok(None);
    }
    let mut owns = own.into_families();
    let (punched, outcomes, winner) = match (runnable.as_slice(), run.leg) {
        ([], _) => no_family(run, &plan_input, &families, &meeting),
        ([first, second, ..], _) => {
            let racing = [
                (*first, take_own(&mut owns, first.family)?),
                (*second, take_own(&mut owns, second.family)?),
            ];
            both_families(run, &families, racing, &meeting, input, link, session)?
        }
        ([chosen], _) => {
            let own = take_own(&mut owns, chosen.family)?;
            let punch = (&families[..], *chosen, own);
            one_family(run, punch, &meeting, input, link, session)?
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
        families: outcomes,
        winner,
    }))
}

/// `--dry-run`: every planned family's plan (IPv6 first), or the refusal when none is shared.
fn dry_run(run: &Run<'_>, input: &PlanInput<'_>, families: &[FamilyPlan]) -> io::Result<()> {
    let planned: Vec<&PunchPlan> = families
        .iter()
        .filter_map(|f| f.plan.as_ref().ok())
        .collect();
    if planned.is_empty() {
        return run.watch.dry_run(&no_family_plan(input, families));
    }
    planned
        .into_iter()
        .try_for_each(|plan| run.watch.dry_run(plan))
}

/// No family to punch in: the first family's refused plan (or the refusal for lack of a
/// shared family), its outcome without a packet sent.
fn no_family(
    run: &Run<'_>,
    input: &PlanInput<'_>,
    families: &[FamilyPlan],
    meeting: &Meeting,
) -> FamilyPunches {
    let lead = families
        .iter()
        .find_map(|f| f.plan.as_ref().ok().cloned())
        .unwrap_or_else(|| no_family_plan(input, families));
    run.tell(Event::plan(&lead));
    run.watch.planned(&lead);
    let outcomes = families.iter().map(FamilyOutcome::unpunched).collect();
    (refused(run, &lead, meeting), outcomes, None)
}

/// Every family's plan, the one punched and this end's fingerprint in it.
type OneOf<'a> = (&'a [FamilyPlan], &'a FamilyPlan, OwnNat);

/// One family punched: the only one shared (and not refused).
fn one_family(
    run: &Run<'_>,
    (families, chosen, own): OneOf<'_>,
    meeting: &Meeting,
    input: Option<Box<dyn Read + Send>>,
    link: &mut Link,
    session: &mut Session,
) -> anyhow::Result<FamilyPunches> {
    let plan = chosen.plan.as_ref().expect("a runnable family has a plan");
    run.tell(Event::plan(plan));
    run.watch.planned(plan);
    let punched = match plan.transport {
        Transport::Udp => udp_leg::punch(run, plan, meeting, own, input, link, session)?,
        Transport::Tcp => tcp_leg::punch_pumping(run, plan, meeting, &own, input, link, session)?,
    };
    let report = (punched.outcome_report.as_ref()).expect("a punch ends with an outcome");
    let connected = report.result == PunchResult::Connected;
    let outcomes = families
        .iter()
        .map(|f| match f.family == chosen.family {
            true => FamilyOutcome::punched(f, report, false),
            false => FamilyOutcome::unpunched(f),
        })
        .collect();
    Ok((punched, outcomes, connected.then_some(chosen.family)))
}

/// The punch, each family's outcome and the winning family.
type FamilyPunches = (Punched, Vec<FamilyOutcome>, Option<IpFamily>);

/// Both families at once: each from its own start (the start signal plus its head start).
fn both_families(
    run: &Run<'_>,
    families: &[FamilyPlan],
    racing: [(&FamilyPlan, OwnNat); 2],
    meeting: &Meeting,
    input: Option<Box<dyn Read + Send>>,
    link: &mut Link,
    session: &mut Session,
) -> anyhow::Result<FamilyPunches> {
    let [(first, first_own), (second, second_own)] = racing;
    let plan = |f: &FamilyPlan| f.plan.clone().expect("a runnable family has a plan");
    let (first_plan, second_plan) = (plan(first), plan(second));
    for plan in [&first_plan, &second_plan] {
        run.tell(Event::plan(plan));
        run.watch.planned(plan);
    }
    let (first_start, second_start) = (meeting.start + first.delay, meeting.start + second.delay);
    let (ends, winner) = match run.leg {
        Transport::Udp => udp_leg::punch_families(
            run,
            meeting.role,
            (&first_plan, first_start, first_own),
            (&second_plan, second_start, second_own),
            input,
            link,
            session,
        )?,
        Transport::Tcp => tcp_race::punch_families(
            run,
            meeting.role,
            [
                (&first_plan, first_start, &first_own),
                (&second_plan, second_start, &second_own),
            ],
            input,
            link,
            session,
        )?,
    };
    let raced = [(first, &first_plan), (second, &second_plan)];
    let mut outcomes = Vec::new();
    for family in families {
        let index = raced.iter().position(|(r, _)| r.family == family.family);
        outcomes.push(match index {
            None => FamilyOutcome::unpunched(family),
            Some(i) => match &ends[i] {
                Some(punched) => {
                    let report = punched.outcome_report.as_ref().expect("an outcome");
                    let outcome = FamilyOutcome::punched(family, report, false);
                    match winner.is_some_and(|w| w != i) {
                        // A TCP connection of its own, which the callee dropped for the other.
                        true => outcome.dropped(),
                        false => outcome,
                    }
                }
                None => FamilyOutcome::not_tried(family, "the other family connected first"),
            },
        });
    }
    // The report's own fields come from the winner, else from the first family that ran.
    let [first_end, second_end] = ends;
    let carrier = match winner {
        Some(1) => second_end.or(first_end),
        _ => first_end.or(second_end),
    };
    let carrier = carrier.unwrap_or_else(|| refused(run, &first_plan, meeting));
    let winner = winner.map(|i| raced[i].0.family);
    Ok((carrier, outcomes, winner))
}

/// This end's fingerprint in `family`.
fn take_own(owns: &mut Vec<OwnNat>, family: IpFamily) -> anyhow::Result<OwnNat> {
    let index = owns
        .iter()
        .position(|own| own.family() == family)
        .with_context(|| format!("no fingerprint of this end in {}", family.label()))?;
    Ok(owns.remove(index))
}

/// The plan when no family is shared: the session family's own plan, refused with every
/// family's reason.
fn no_family_plan(input: &PlanInput<'_>, families: &[FamilyPlan]) -> PunchPlan {
    let mut plan = make_plan(input);
    let reasons: Vec<String> = families
        .iter()
        .map(|f| match &f.plan {
            Ok(plan) => format!("{}: {}", f.family.label(), plan.reason),
            Err(not_shared) => format!("{}: {}", f.family.label(), not_shared.reason),
        })
        .collect();
    plan.strategy = Strategy::Refused;
    plan.reason = format!(
        "no address family both ends can punch in ({})",
        reasons.join("; ")
    );
    plan
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

/// Tells a punch's progress, `at` after its start.
pub(super) fn tell_progress(run: &Run<'_>, progress: Progress, at: Duration) {
    if let Some(event) = progress_event(progress, at) {
        run.tell(event);
    }
}

/// A punch's progress as an event, `at` after its start (none for what only a race reads).
pub(super) fn progress_event(progress: Progress, at: Duration) -> Option<Event> {
    let at_ms = millis(at);
    Some(match progress {
        Progress::Punch(PunchEvent::PeerHeard { from, .. }) => Event::PeerHeard { at_ms, from },
        Progress::Punch(PunchEvent::Connected { peer, .. }) => Event::Connected { at_ms, peer },
        Progress::Punch(PunchEvent::Failed { reason }) => Event::PunchFailed { at_ms, reason },
        Progress::DataDone { failure } => Event::data_done(at, failure),
        Progress::PeerUsesPath => return None,
    })
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
