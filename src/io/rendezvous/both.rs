//! `natlens listen|call --transport both`: a UDP punch, then a TCP punch, on one session with
//! the location server; both reported, the data over the first that connected (UDP when both
//! did), exit 0 when either connected.
//!
//! One leg after the other, not both at once, for two reasons. The facts a call carries
//! describe one transport's allocation (one delta, one list of predicted ports), so each leg
//! needs its own call and its own fingerprint. And each prediction must be the last thing the
//! NAT sees before its punch (docs/lab.md: on a sequential NAT every new flow costs a port): a
//! NAT that numbers UDP and TCP flows from one counter (the lab's sequential modes do, like
//! CGNATs that hand out one port block per subscriber) would have the other transport's
//! fingerprint and fan-out eat the ports predicted for this one if they ran at once. So: UDP
//! fingerprint, call, punch; then TCP fingerprint, a second call, punch. The UDP leg goes
//! first because it is the cheaper and likelier one (it carries the data when it connects),
//! and because its handshake ends on both sides at about the same time, so the second call
//! finds the callee ready.
//!
//! The second call can still reach the callee while it finishes its UDP leg; its session then
//! answers with the UDP facts it holds. Those say `transports: udp`, so the caller knows them
//! for stale and calls again shortly ([`SECOND_CALL_TRIES`]).
//!
//! The data (`--send` or stdin) is read whole before the first leg, since it may have to go
//! over either: UDP's if the UDP leg connected, else TCP's.

use std::io::{Cursor, Read};
use std::time::Duration;

use anyhow::{bail, Context};

use super::meet::{self, Meeting};
use super::own_nat::{self, OwnNat, FINGERPRINT_REFRESH};
use super::{leg, prepare, session, Run, Session};
use crate::core::punch::report::PunchResult;
use crate::core::punch::Role;
use crate::core::Transport;
use crate::io::client::Link;
use crate::report::punch::{Attempt, BothOutput, Output};
use crate::report::Event;

/// How many times the caller places the TCP leg's call while the callee still answers with
/// its UDP facts, and how long it waits between tries: the callee lingers up to
/// [`LINGER`](crate::core::punch::handshake::LINGER) after its UDP punch, then fingerprints
/// over TCP.
const SECOND_CALL_TRIES: u32 = 20;
const SECOND_CALL_PAUSE: Duration = Duration::from_millis(500);

/// How long the callee waits for the TCP leg's call before it reports that leg failed (it
/// gives up at the first fingerprint refresh past this, [`FINGERPRINT_REFRESH`] after its TCP
/// fingerprint).
const SECOND_CALL_WAIT: Duration = Duration::from_secs(15);

/// Runs both legs as the callee (`callee` is `None`) or calling `callee`; the combined report
/// (`None` with `--dry-run`).
pub(super) fn run(run: &Run<'_>, callee: Option<&str>) -> anyhow::Result<Option<BothOutput>> {
    let whole = read_input(run)?;
    let udp = run.over(Transport::Udp, true);
    let (mut link, mut session, own) =
        own_nat::log_in_and_fingerprint(&udp, callee.map(|_| run.punch.call_wait()))?;
    let attempts = legs(run, callee, whole.as_deref(), &mut link, &mut session, own);
    session::log_out(&mut link, &mut session);
    let attempts = attempts?;
    if run.punch.dry_run {
        return Ok(None);
    }
    let role = if callee.is_some() {
        Role::Caller
    } else {
        Role::Callee
    };
    Ok(Some(BothOutput::new(role, attempts, !run.punch.no_data)))
}

/// The data, read whole (nothing with `--no-data` or `--dry-run`).
fn read_input(run: &Run<'_>) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(mut input) = prepare(run)? else {
        return Ok(None);
    };
    let mut whole = Vec::new();
    input
        .read_to_end(&mut whole)
        .context("reading the data to send")?;
    Ok(Some(whole))
}

fn reader(whole: Option<&[u8]>) -> Option<Box<dyn Read + Send>> {
    whole.map(|bytes| Box::new(Cursor::new(bytes.to_vec())) as Box<dyn Read + Send>)
}

/// The UDP leg, then the TCP leg. An error in the UDP leg ends the run (as it would with
/// `--transport udp`); one in the TCP leg only fails that attempt.
fn legs(
    run: &Run<'_>,
    callee: Option<&str>,
    whole: Option<&[u8]>,
    link: &mut Link,
    session: &mut Session,
    own: OwnNat,
) -> anyhow::Result<Vec<Attempt>> {
    let udp_run = run.over(Transport::Udp, true);
    let (meeting, own) = match callee {
        None => meet::answer_call(&udp_run, link, session, own, None)?.context("no call came")?,
        Some(name) => (meet::place_call(&udp_run, link, session, &own, name)?, own),
    };
    let udp = leg::run_leg(&udp_run, meeting, own, reader(whole), link, session)?;
    let udp_connected = udp
        .as_ref()
        .is_some_and(|o| o.report.result == PunchResult::Connected);
    let tcp_run = run.over(Transport::Tcp, !udp_connected);
    let tcp_input = if udp_connected { None } else { reader(whole) };
    let tcp = tcp_leg(&tcp_run, callee, tcp_input, link, session);
    let mut attempts = Vec::new();
    attempts.extend(udp.map(|o| Attempt::Ran(Box::new(o))));
    match tcp {
        Ok(Some(output)) => attempts.push(Attempt::Ran(Box::new(output))),
        Ok(None) => {}
        // Ctrl-C ends the whole run, not just this attempt.
        Err(err) if crate::exit::is_interrupted(&err) => return Err(err),
        Err(err) => {
            let reason = format!("{err:#}");
            run.tell(Event::LegFailed {
                transport: Transport::Tcp,
                reason: reason.clone(),
            });
            attempts.push(Attempt::not_run(Transport::Tcp, reason));
        }
    }
    Ok(attempts)
}

/// The TCP leg: fingerprint over TCP, meet again (a second call), punch.
fn tcp_leg(
    run: &Run<'_>,
    callee: Option<&str>,
    input: Option<Box<dyn Read + Send>>,
    link: &mut Link,
    session: &mut Session,
) -> anyhow::Result<Option<Output>> {
    let own = own_nat::fingerprint_families(run, session.server_addresses())?;
    let (meeting, own) = match callee {
        None => meet::answer_call(run, link, session, own, Some(SECOND_CALL_WAIT))?.with_context(
            || {
                format!(
                "no second call (the TCP leg) within {} s: does the caller run --transport both?",
                FINGERPRINT_REFRESH.as_secs()
            )
            },
        )?,
        Some(name) => (second_call(run, link, session, &own, name)?, own),
    };
    leg::run_leg(run, meeting, own, input, link, session)
}

/// Calls `callee` for the TCP leg until it answers with TCP facts (see the module's text).
fn second_call(
    run: &Run<'_>,
    link: &mut Link,
    session: &mut Session,
    own: &OwnNat,
    callee: &str,
) -> anyhow::Result<Meeting> {
    for _ in 0..SECOND_CALL_TRIES {
        let meeting = meet::place_call(run, link, session, own, callee)?;
        if meeting.peer.transports.tcp {
            return Ok(meeting);
        }
        run.tell(Event::StaleAnswer {
            transport: Transport::Tcp,
            callee: callee.to_owned(),
        });
        std::thread::sleep(SECOND_CALL_PAUSE);
    }
    bail!(
        "{callee:?} kept answering with UDP facts: does it run --transport both? (tried {} times)",
        SECOND_CALL_TRIES
    )
}
