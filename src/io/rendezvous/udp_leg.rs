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

use super::leg::{self, FamilyEnd, Punched};
use super::meet::Meeting;
use super::own_nat::OwnNat;
use super::{Run, Session};
use crate::core::punch::family_race::{FamilyRace, OnConnected, Verdict};
use crate::core::punch::plan::PunchPlan;
use crate::core::punch::report::PunchReport;
use crate::core::punch::{PunchEvent, Role};
use crate::io::client::{Link, Pump};
use crate::io::punch_udp::{self, Background, DataIo, Nothing, Progress};
use crate::report::punch::Path;
use crate::wire::natlens::IpFamily;

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
    let mut tell = |progress, at| leg::tell_progress(run, progress, at);
    let punched = punch_one(run, one, input, &mut *sink, &mut pump, &mut tell);
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

/// Punches one family and exchanges the data; `tell` gets its progress (a race decides there
/// which family it keeps, and what of a losing family's is told).
fn punch_one(
    run: &Run<'_>,
    one: OneFamily<'_>,
    input: Option<Box<dyn Read + Send>>,
    output: &mut dyn Write,
    background: &mut dyn Background,
    tell: &mut dyn FnMut(Progress, Duration),
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
        tell,
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

/// Punches two families at once: `first` (IPv6) with the session pumped on this thread,
/// `second` (IPv4) on a thread of its own, each from its own start. The first family whose
/// handshake confirms a path wins: the other is stopped, and only the winner reads the input
/// and writes the peer's data. Returns each family's end and the winner's index.
///
/// Both ends keep the same path by `core::punch::family_race`'s rule: the callee keeps its
/// first confirmed path; the caller keeps the path the callee's first DATA frame comes on (the
/// callee sends data, or at least its end of stream, only on the path it kept, and stops the
/// other family at once).
pub(super) fn punch_families(
    run: &Run<'_>,
    role: Role,
    first: Racer<'_>,
    second: Racer<'_>,
    input: Option<Box<dyn Read + Send>>,
    link: &mut Link,
    session: &mut Session,
) -> anyhow::Result<([FamilyEnd; 2], Option<usize>)> {
    let families = [first.2.family(), second.2.family()];
    let carries = !run.punch.no_data && run.carry_data;
    let race = Arc::new(Race::new(input, carries, role, families));
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
        let second = second
            .join()
            .expect("the second family's thread does not panic");
        // Both over and no winner: none will come; readers still waiting read nothing. (Not
        // when only the first ended: the second may still connect and be kept.)
        race.close();
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
    // The caller's `connected`, told once the callee's data shows this family kept.
    let mut held = None;
    let mut tell = |progress: Progress, at: Duration| {
        match &progress {
            Progress::Punch(PunchEvent::Connected { .. }) => match race.connected(index) {
                OnConnected::Say(Verdict::Kept) => stops[1 - index].store(true, Ordering::Relaxed),
                OnConnected::AwaitVerdict => return held = Some((progress, at)),
                OnConnected::Say(Verdict::Dropped) | OnConnected::Drop => {
                    return stops[index].store(true, Ordering::Relaxed)
                }
            },
            Progress::PeerUsesPath => {
                if race.peer_uses(index) {
                    stops[1 - index].store(true, Ordering::Relaxed);
                    if let Some((connected, at)) = held.take() {
                        leg::tell_progress(run, connected, at);
                    }
                }
                return;
            }
            _ => {}
        }
        if race.winner().is_none_or(|w| w == index) {
            leg::tell_progress(run, progress, at);
        }
    };
    punch_one(run, one, Some(input), &mut output, background, &mut tell)
}

/// Which family won, and the input only the winner reads.
struct Race {
    state: Mutex<RaceState>,
    decided: Condvar,
    /// The leg writes the peer's data to stdout (not `--no-data`, not `both`'s TCP leg).
    carries: bool,
    families: [IpFamily; 2],
}

struct RaceState {
    rule: FamilyRace,
    /// No winner will come any more.
    closed: bool,
    input: Option<Box<dyn Read + Send>>,
}

impl Race {
    fn new(
        input: Option<Box<dyn Read + Send>>,
        carries: bool,
        role: Role,
        families: [IpFamily; 2],
    ) -> Self {
        Race {
            carries,
            families,
            state: Mutex::new(RaceState {
                rule: FamilyRace::new(role),
                closed: false,
                input,
            }),
            decided: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RaceState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Family `index` confirmed its path: what the rule says of it.
    fn connected(&self, index: usize) -> OnConnected {
        let mut state = self.lock();
        if state.closed {
            return OnConnected::Drop;
        }
        let said = state.rule.handle_connected(self.families[index]);
        self.decided.notify_all();
        said
    }

    /// The peer's first DATA frame came on family `index`'s path: true when this end (the
    /// caller) keeps it now.
    fn peer_uses(&self, index: usize) -> bool {
        let mut state = self.lock();
        if state.closed || state.rule.winner().is_some() {
            return false;
        }
        let kept = state
            .rule
            .handle_verdict(self.families[index], Verdict::Kept);
        self.decided.notify_all();
        kept
    }

    fn winner(&self) -> Option<usize> {
        let winner = self.lock().rule.winner()?;
        self.families.iter().position(|&f| f == winner)
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
            while state.rule.winner().is_none() && !state.closed {
                state = (self.race.decided.wait(state)).unwrap_or_else(|p| p.into_inner());
            }
            if state.rule.winner() == Some(self.race.families[self.index]) {
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
