//! The UDP punch of one leg: the plan's sockets (the fingerprint's mapping socket among them),
//! the punch and the data exchange in one poll loop that carries the session link along.
//! [`punch_families`] runs two such loops at once, one per address family (see
//! `core::punch::family`), and keeps the first path confirmed.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::leg::{self, Punched};
use super::meet::Meeting;
use super::own_nat::OwnNat;
use super::{Run, Session};
use crate::core::punch::plan::PunchPlan;
use crate::core::punch::report::PunchReport;
use crate::core::punch::PunchEvent;
use crate::io::client::{Link, Pump};
use crate::io::punch_udp::{self, Background, DataIo, Nothing, Progress};
use crate::report::punch::Path;

pub(super) fn punch(
    run: &Run<'_>,
    plan: &PunchPlan,
    meeting: &Meeting,
    own: OwnNat,
    input: Option<Box<dyn Read + Send>>,
    link: &mut Link,
    session: &mut Session,
) -> anyhow::Result<Punched> {
    let mut sink = leg::data_sink(run);
    link.set_nonblocking(true)?;
    let mut pump = Pump {
        link,
        session,
        events: Vec::new(),
    };
    let one = OneFamily {
        plan,
        start: meeting.start,
        own,
        stop: run.stop,
    };
    let punched = punch_one(run, one, input, &mut *sink, &mut pump, &mut |_| true);
    pump.link.set_nonblocking(false)?;
    match punched {
        Err(err) if err.kind() == io::ErrorKind::Interrupted => {
            Err(crate::exit::interrupted("while punching"))
        }
        other => other.context("punching"),
    }
}

/// One family's punch: its plan, its start (the start signal plus its head start), its
/// fingerprint's sockets, and the flag that stops it.
struct OneFamily<'a> {
    plan: &'a PunchPlan,
    start: Instant,
    own: OwnNat,
    stop: &'a AtomicBool,
}

/// Punches one family and exchanges the data; `keep(progress)` says whether a progress event
/// is told (a family that lost the race keeps its `connected` to itself).
fn punch_one(
    run: &Run<'_>,
    one: OneFamily<'_>,
    input: Option<Box<dyn Read + Send>>,
    output: &mut dyn Write,
    background: &mut dyn Background,
    keep: &mut dyn FnMut(&Progress) -> bool,
) -> io::Result<Punched> {
    let OneFamily {
        plan,
        start,
        own,
        stop,
    } = one;
    let sync_rounds = plan.sync_rounds(own.server_rtt());
    let sockets = punch_udp::open_sockets(plan.local(), own.mapping, own.local_ip, &own.source)?;
    let locals: Vec<Option<SocketAddr>> = sockets.iter().map(|s| s.local_addr().ok()).collect();
    let finished = punch_udp::run(
        plan,
        sockets,
        start,
        &sync_rounds,
        DataIo { input, output },
        background,
        Some(stop),
        &mut |progress, at| {
            if keep(&progress) {
                run.tell(leg::progress_event(progress, at));
            }
        },
        &mut run.rng(),
    )?;
    let path = finished.outcome.path.map(|(socket, peer)| Path {
        local: locals.get(socket).copied().flatten(),
        peer,
    });
    Ok(Punched {
        outcome_report: Some(PunchReport::from_outcome(plan, &finished.outcome)),
        path,
        transfer: finished.transfer,
    })
}

/// How one family of [`punch_families`] ended: its punch, or `None` when it was stopped
/// because the other family connected first.
pub(super) type FamilyEnd = Option<Punched>;

/// Punches two families at once: `first` (IPv6) with the session pumped on this thread,
/// `second` (IPv4) on a thread of its own, each from its own start. The first family whose
/// handshake confirms a path wins: the other is stopped, and only the winner reads the input
/// and writes the peer's data. Returns each family's end and the winner's index.
///
/// Both ends keep their own first confirmed path. With IPv6's head start they agree; should
/// they not (both paths confirmed within one round trip, in opposite orders), each sends its
/// data where the other no longer listens, and the data exchange fails and says so.
pub(super) fn punch_families(
    run: &Run<'_>,
    first: Racer<'_>,
    second: Racer<'_>,
    input: Option<Box<dyn Read + Send>>,
    link: &mut Link,
    session: &mut Session,
) -> anyhow::Result<([FamilyEnd; 2], Option<usize>)> {
    let race = Arc::new(Race::new(input, !run.punch.no_data && run.carry_data));
    link.set_nonblocking(true)?;
    let mut pump = Pump {
        link,
        session,
        events: Vec::new(),
    };
    let ends = race_families(run, &race, first, second, &mut pump);
    pump.link.set_nonblocking(false)?;
    let mut out: [FamilyEnd; 2] = [None, None];
    for (index, end) in ends.into_iter().enumerate() {
        out[index] = match end {
            Ok(punched) => Some(punched),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {
                if run.stop.load(Ordering::Relaxed) {
                    return Err(crate::exit::interrupted("while punching"));
                }
                None
            }
            Err(err) => return Err(anyhow::Error::from(err).context("punching")),
        };
    }
    Ok((out, race.winner()))
}

/// One family of the race: its plan, its start and this end's fingerprint in it.
pub(super) type Racer<'a> = (&'a PunchPlan, Instant, OwnNat);

/// Runs both families, the first on this thread with the session pumped, the second on its
/// own; the user's Ctrl-C stops both.
fn race_families(
    run: &Run<'_>,
    race: &Arc<Race>,
    first: Racer<'_>,
    second: Racer<'_>,
    pump: &mut dyn Background,
) -> [io::Result<Punched>; 2] {
    let stops = [AtomicBool::new(false), AtomicBool::new(false)];
    let over = AtomicBool::new(false);
    let (stops, over) = (&stops, &over);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            while !over.load(Ordering::Relaxed) {
                if run.stop.load(Ordering::Relaxed) {
                    stops.iter().for_each(|s| s.store(true, Ordering::Relaxed));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let second = scope.spawn(move || race_one(run, race, 1, second, stops, &mut Nothing));
        let first = race_one(run, race, 0, first, stops, pump);
        // No winner by now: none will come; readers still waiting read nothing.
        race.close();
        let second = second
            .join()
            .expect("the second family's thread does not panic");
        over.store(true, Ordering::Relaxed);
        [first, second]
    })
}

/// Family `index` of the race: connecting first claims the win and stops the other family;
/// connecting second stops this one, and its `connected` is not told.
fn race_one(
    run: &Run<'_>,
    race: &Arc<Race>,
    index: usize,
    (plan, start, own): Racer<'_>,
    stops: &[AtomicBool; 2],
    background: &mut dyn Background,
) -> io::Result<Punched> {
    let one = OneFamily {
        plan,
        start,
        own,
        stop: &stops[index],
    };
    let mut output = RaceOutput(Arc::clone(race), index);
    let input = Box::new(RaceInput::new(race, index));
    let mut keep = |progress: &Progress| {
        if let Progress::Punch(PunchEvent::Connected { .. }) = progress {
            let loser = if race.claim(index) { 1 - index } else { index };
            stops[loser].store(true, Ordering::Relaxed);
        }
        race.winner().is_none_or(|w| w == index)
    };
    punch_one(run, one, Some(input), &mut output, background, &mut keep)
}

/// Which family won, and the input only the winner reads.
struct Race {
    state: Mutex<RaceState>,
    decided: Condvar,
    /// The leg writes the peer's data to stdout (not `--no-data`, not `both`'s TCP leg).
    carries: bool,
}

struct RaceState {
    winner: Option<usize>,
    /// No winner will come any more.
    closed: bool,
    input: Option<Box<dyn Read + Send>>,
}

impl Race {
    fn new(input: Option<Box<dyn Read + Send>>, carries: bool) -> Self {
        Race {
            carries,
            state: Mutex::new(RaceState {
                winner: None,
                closed: false,
                input,
            }),
            decided: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RaceState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `index` connected: true when it is the first.
    fn claim(&self, index: usize) -> bool {
        let mut state = self.lock();
        if state.winner.is_none() && !state.closed {
            state.winner = Some(index);
            self.decided.notify_all();
        }
        state.winner == Some(index)
    }

    fn winner(&self) -> Option<usize> {
        self.lock().winner
    }

    fn close(&self) {
        self.lock().closed = true;
        self.decided.notify_all();
    }
}

/// The input as family `index` sees it: the first read blocks until a family wins, then takes
/// the real input if this family won (reading it without holding the race's lock), else ends.
struct RaceInput {
    race: Arc<Race>,
    index: usize,
    input: Option<Box<dyn Read + Send>>,
    decided: bool,
}

impl RaceInput {
    fn new(race: &Arc<Race>, index: usize) -> Self {
        RaceInput {
            race: Arc::clone(race),
            index,
            input: None,
            decided: false,
        }
    }
}

impl Read for RaceInput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.decided {
            let mut state = self.race.lock();
            while state.winner.is_none() && !state.closed {
                state = (self.race.decided.wait(state)).unwrap_or_else(|p| p.into_inner());
            }
            if state.winner == Some(self.index) {
                self.input = state.input.take();
            }
            self.decided = true;
        }
        match self.input.as_mut() {
            Some(input) => input.read(buf),
            None => Ok(0),
        }
    }
}

/// The peer's data as family `.1` delivers it: to stdout if this family won and the leg carries
/// data, else nowhere.
struct RaceOutput(Arc<Race>, usize);

impl Write for RaceOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.carries && self.0.winner() == Some(self.1) {
            io::stdout().write(buf)
        } else {
            Ok(buf.len())
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}
