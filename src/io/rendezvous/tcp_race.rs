//! A TCP punch over both address families at once: each family's punch on a thread of its own
//! from its own start (IPv6 first, IPv4 after its head start), the session pumped on this one.
//! Which connection both ends keep is `core::punch::family_race`'s rule (the callee chooses and
//! says so after its hello); the other family's punch is stopped (its sockets closed, its SYN
//! sprays ended, its RST guard removed) and only the kept connection carries the data.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};

use super::leg::{self, FamilyEnd, Punched};
use super::own_nat::OwnNat;
use super::tcp_leg::{punch_on_own_thread, spec_for};
use super::{Run, Session};
use crate::core::punch::family_race::{FamilyRace, OnConnected, Verdict};
use crate::core::punch::handshake::DirectionRecord;
use crate::core::punch::plan::PunchPlan;
use crate::core::punch::report::PunchReport;
use crate::core::punch::{PunchEvent, Role};
use crate::io::client::{Link, Pump};
use crate::io::punch_tcp::{self, TcpPunched};
use crate::io::punch_udp::{Progress, TransferEnd};
use crate::io::simopen::PunchError;
use crate::report::punch::Path;
use crate::report::Event;
use crate::wire::natlens::IpFamily;

/// The longest the session loop goes without looking whether the punches are over.
const SERVICE_TICK: Duration = Duration::from_millis(5);

/// One family of the race: its plan, its start and this end's fingerprint in it.
pub(super) type TcpRacer<'a> = (&'a PunchPlan, Instant, &'a OwnNat);

/// Punches both families at once and exchanges the data over the connection both ends keep.
/// Returns each family's end and the kept family's index.
pub(super) fn punch_families(
    run: &Run<'_>,
    role: Role,
    racers: [TcpRacer<'_>; 2],
    input: Option<Box<dyn Read + Send>>,
    link: &mut Link,
    session: &mut Session,
) -> anyhow::Result<([FamilyEnd; 2], Option<usize>)> {
    let shared = Shared {
        race: Mutex::new(FamilyRace::new(role)),
        stops: [AtomicBool::new(false), AtomicBool::new(false)],
        input: Mutex::new(input),
        families: racers.map(|(_, _, own)| own.family()),
    };
    link.set_nonblocking(true)?;
    let mut pump = Pump {
        link,
        session,
        events: Vec::new(),
    };
    let [first, second] = racers;
    let shared = &shared;
    let ends = std::thread::scope(|scope| {
        let first = scope.spawn(move || race_one(run, shared, 0, first));
        let second = scope.spawn(move || race_one(run, shared, 1, second));
        // The user's Ctrl-C stops both; a session hiccup stops neither (the session reports
        // it afterwards).
        let _ = pump.serve_while(SERVICE_TICK, &|| {
            if run.stop.load(Ordering::Relaxed) {
                shared.stop_all();
            }
            !(first.is_finished() && second.is_finished())
        });
        let join = |handle: std::thread::ScopedJoinHandle<'_, anyhow::Result<FamilyEnd>>| {
            handle
                .join()
                .unwrap_or_else(|_| Err(anyhow!("a family's TCP punch panicked")))
        };
        [join(first), join(second)]
    });
    pump.link.set_nonblocking(false)?;
    if run.stop.load(Ordering::Relaxed) {
        return Err(crate::exit::interrupted("while punching"));
    }
    let [first, second] = ends;
    let winner = shared.winner();
    Ok(([first?, second?], winner))
}

/// What the two families' threads share.
struct Shared {
    race: Mutex<FamilyRace>,
    /// Each family's stop flag: the user's Ctrl-C, or the other family's connection kept.
    stops: [AtomicBool; 2],
    /// The input, taken by the kept connection only.
    input: Mutex<Option<Box<dyn Read + Send>>>,
    families: [IpFamily; 2],
}

impl Shared {
    fn race(&self) -> std::sync::MutexGuard<'_, FamilyRace> {
        self.race.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stop_all(&self) {
        self.stops
            .iter()
            .for_each(|s| s.store(true, Ordering::Relaxed));
    }

    /// Family `index` was kept: the other one stops.
    fn kept(&self, index: usize) {
        self.stops[1 - index].store(true, Ordering::Relaxed);
    }

    fn winner(&self) -> Option<usize> {
        let winner = self.race().winner()?;
        self.families.iter().position(|&f| f == winner)
    }
}

/// Family `index`: waits for its start, punches, and when its connection comes up swaps the
/// hellos and settles with the race whether it is the one kept.
fn race_one(
    run: &Run<'_>,
    shared: &Shared,
    index: usize,
    (plan, start, own): TcpRacer<'_>,
) -> anyhow::Result<FamilyEnd> {
    let peer = plan
        .peer
        .context("the server did not report the peer's address")?;
    let stop = &shared.stops[index];
    while Instant::now() < start && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(
            start
                .saturating_duration_since(Instant::now())
                .min(SERVICE_TICK),
        );
    }
    if stop.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let spec = spec_for(run, plan, peer, own, start);
    let punched = punch_on_own_thread(run, &spec, stop);
    let done = match punched {
        Err(PunchError::Stopped) => return Ok(None),
        Err(err) => {
            if shared.race().winner().is_none() {
                let reason = err.to_string();
                let event = Progress::Punch(PunchEvent::Failed { reason });
                leg::tell_progress(run, event, start.elapsed());
            }
            let outcome = punch_tcp::outcome(&Err(err), start, None);
            return Ok(Some(report_only(plan, &outcome)));
        }
        Ok(done) => done,
    };
    let path = Path {
        local: done.punched.stream.local_addr().ok(),
        peer: done.punched.stream.peer_addr().unwrap_or(peer),
    };
    let exchanged = settle(run, shared, index, plan, &done, start);
    if matches!(&exchanged, Err(err) if err.kind() == std::io::ErrorKind::Interrupted) {
        // The other family was kept while this one waited for its verdict.
        return Ok(None);
    }
    let (peer_record, transfer, kept) = match exchanged {
        Ok(settled) => settled,
        Err(err) => (
            None,
            Some(punch_tcp::closed_early(&done.punched.stream, err, start)),
            false,
        ),
    };
    let outcome = punch_tcp::outcome(&Ok(done), start, peer_record);
    let mut punched = report_only(plan, &outcome);
    if kept {
        punched.path = Some(path);
        punched.transfer = transfer;
    }
    Ok(Some(punched))
}

/// A family's outcome without a path or data.
fn report_only(plan: &PunchPlan, outcome: &crate::core::punch::handshake::Outcome) -> Punched {
    Punched {
        outcome_report: Some(PunchReport::from_outcome(plan, outcome)),
        path: None,
        transfer: None,
    }
}

/// Over family `index`'s fresh connection: the hellos, the verdict (said by the callee, heard
/// by the caller), then, on the kept connection, the data. Returns the peer's record, the data
/// exchange's end and whether this connection was kept.
fn settle(
    run: &Run<'_>,
    shared: &Shared,
    index: usize,
    plan: &PunchPlan,
    done: &TcpPunched,
    start: Instant,
) -> std::io::Result<(Option<DirectionRecord>, Option<TransferEnd>, bool)> {
    let stream = &done.punched.stream;
    let timeout = plan.timeout.max(Duration::from_secs(10));
    let peer_record = punch_tcp::swap_hellos(stream, &punch_tcp::own_record(done), Some(timeout))?;
    let family = shared.families[index];
    let on_connected = shared.race().handle_connected(family);
    let kept = match on_connected {
        OnConnected::Say(verdict) => {
            punch_tcp::say_verdict(stream, verdict)?;
            verdict == Verdict::Kept
        }
        OnConnected::Drop => false,
        OnConnected::AwaitVerdict => {
            let verdict =
                punch_tcp::hear_verdict(stream, &shared.stops[index], Instant::now() + timeout)?;
            shared.race().handle_verdict(family, verdict)
        }
    };
    if !kept {
        crate::io::pcap::tcp_closing(stream);
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return Ok((Some(peer_record), None, false));
    }
    shared.kept(index);
    let peer = stream.peer_addr().ok();
    let event = Progress::Punch(PunchEvent::Connected {
        peer: peer.unwrap_or_else(|| SocketAddr::new(plan.peer.expect("a peer").ip(), 0)),
        socket: 0,
    });
    leg::tell_progress(run, event, start.elapsed());
    let input = shared
        .input
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let mut sink = leg::data_sink(run);
    let end = punch_tcp::transfer(stream, input, &mut *sink);
    run.tell(Event::data_done(start.elapsed(), end.failure.clone()));
    crate::io::pcap::tcp_closing(stream);
    Ok((Some(peer_record), Some(end), true))
}
