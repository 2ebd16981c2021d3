//! The TCP punch of one leg ([`punch_tcp`]) and its data exchange, on a thread of its own while
//! this one keeps driving the session link, as the UDP punch does: an ANSWER (or any request of
//! the session) lost on its way to the server is then retransmitted instead of leaving the
//! caller's CALL unanswered (seen under 10% loss, tests/lab_faults.rs).

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};

use super::leg::{self, Punched};
use super::meet::Meeting;
use super::own_nat::OwnNat;
use super::{Run, Session};
use crate::core::punch::handshake::DirectionRecord;
use crate::core::punch::plan::PunchPlan;
use crate::core::punch::report::PunchReport;
use crate::core::punch::PunchEvent;
use crate::io::client::{Link, Pump};
use crate::io::punch_tcp::{self, TcpPunch, TcpPunched};
use crate::io::punch_udp::{Progress, TransferEnd};
use crate::io::simopen::PunchError;
use crate::report::punch::Path;
use crate::report::Event;

/// The longest the session loop goes without looking whether the punch is over.
const SERVICE_TICK: Duration = Duration::from_millis(5);

/// The punch on a thread, the session serviced on this one until it ends.
pub(super) fn punch_pumping(
    run: &Run<'_>,
    plan: &PunchPlan,
    meeting: &Meeting,
    own: &OwnNat,
    input: Option<Box<dyn Read + Send>>,
    link: &mut Link,
    session: &mut Session,
) -> anyhow::Result<Punched> {
    link.set_nonblocking(true)?;
    let mut pump = Pump {
        link,
        session,
        events: Vec::new(),
    };
    let result = std::thread::scope(|scope| {
        let punching = scope.spawn(|| punch(run, plan, meeting, own, input));
        // A session hiccup must not end the punch (the session reports it afterwards): on an
        // error the loop stops servicing and the punch runs on to its own end.
        let _ = pump.serve_while(SERVICE_TICK, &|| !punching.is_finished());
        punching
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the TCP punch panicked")))
    });
    pump.link.set_nonblocking(false)?;
    result
}

/// Waits for the start, punches, exchanges the data over the connection it made.
fn punch(
    run: &Run<'_>,
    plan: &PunchPlan,
    meeting: &Meeting,
    own: &OwnNat,
    input: Option<Box<dyn Read + Send>>,
) -> anyhow::Result<Punched> {
    let peer = plan
        .peer
        .context("the server did not report the peer's address")?;
    std::thread::sleep(meeting.start.saturating_duration_since(Instant::now()));
    let started = meeting.start;
    let spec = spec_for(run, plan, peer, own, started);
    let punched = punch_on_own_thread(run, &spec, run.stop);
    if matches!(punched, Err(PunchError::Stopped)) {
        return Err(crate::exit::interrupted("while punching"));
    }
    let event = match &punched {
        Ok(done) => PunchEvent::Connected {
            peer: done.punched.stream.peer_addr().unwrap_or(peer),
            socket: 0,
        },
        Err(err) => PunchEvent::Failed {
            reason: err.to_string(),
        },
    };
    leg::tell_progress(run, Progress::Punch(event), started.elapsed());
    let (path, peer_record, transfer) = match &punched {
        Ok(done) => exchange(run, plan, done, peer, started, input),
        Err(_) => (None, None, None),
    };
    let outcome = punch_tcp::outcome(&punched, started, peer_record);
    Ok(Punched {
        outcome_report: Some(PunchReport::from_outcome(plan, &outcome)),
        path,
        transfer,
    })
}

/// This end's TCP punch under `plan` toward `peer`, from the port its fingerprint used.
pub(super) fn spec_for(
    run: &Run<'_>,
    plan: &PunchPlan,
    peer: SocketAddr,
    own: &OwnNat,
    started: Instant,
) -> TcpPunch {
    let mut spec = TcpPunch::for_plan(
        plan,
        peer.ip(),
        own.tcp_local.map_or(0, |a| a.port()),
        run.punch.syn_ttl,
        started + plan.timeout,
        own.server_rtt(),
        &mut run.rng(),
    );
    spec.interface = own.source.interface.clone();
    spec
}

/// The punch drops capabilities on its thread: it runs on one of its own. Only its first hint
/// is told.
pub(super) fn punch_on_own_thread(
    run: &Run<'_>,
    spec: &TcpPunch,
    stop: &AtomicBool,
) -> Result<TcpPunched, PunchError> {
    let mut hinted = false;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                punch_tcp::punch(spec, Some(stop), &mut |line| {
                    if !std::mem::replace(&mut hinted, true) {
                        run.tell(Event::Hint {
                            message: line.to_string(),
                        });
                    }
                })
            })
            .join()
            .unwrap_or_else(|_| Err(PunchError::Io(io::Error::other("the TCP punch panicked"))))
    })
}

/// The path, the peer's report record and the data exchange's end, over the punched stream.
fn exchange(
    run: &Run<'_>,
    plan: &PunchPlan,
    done: &TcpPunched,
    peer: SocketAddr,
    started: Instant,
    input: Option<Box<dyn Read + Send>>,
) -> (Option<Path>, Option<DirectionRecord>, Option<TransferEnd>) {
    let path = Path {
        local: done.punched.stream.local_addr().ok(),
        peer: done.punched.stream.peer_addr().unwrap_or(peer),
    };
    let mut sink = leg::data_sink(run);
    let (record, end) = punch_tcp::exchange(
        &done.punched.stream,
        &punch_tcp::own_record(done),
        input,
        &mut *sink,
        Some(plan.timeout.max(Duration::from_secs(10))),
    );
    run.tell(Event::data_done(started.elapsed(), end.failure.clone()));
    // The stream closes when the punch's result is dropped, right after the report is made.
    crate::io::pcap::tcp_closing(&done.punched.stream);
    (Some(path), record, Some(end))
}
