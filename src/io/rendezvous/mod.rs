//! The driver of `natlens listen` and `natlens call`: log in, fingerprint over the punch
//! transport, exchange facts through the server, punch, exchange data, log out; every step
//! told to a [`Watch`] as a typed [`Event`], the report handed back.
//!
//! Both ends run the same steps; only the meeting differs (`meet`). The callee (`listen`)
//! answers a call with facts predicted for the moment the CALL arrives and starts punching as it
//! answers; the caller (`call`) sends facts predicted as it calls and starts when the answer
//! reaches it, one relay later, as the planner assumes; the callee sends its first round again
//! half a relay and one relay after answering (the sync rounds; its relay estimate is its
//! fingerprint's round trip to the server). `--transport both` runs a UDP leg, then a TCP leg
//! (`both`).
//!
//! Between the fingerprint's last sample and the punch nothing new is opened toward anyone
//! (docs/lab.md: on a sequential NAT every new flow costs a port): the session link and the
//! fingerprint's mapping socket already exist, and the punch's fresh sockets send nothing until
//! the schedule says so.
//!
//! One job per file: [`session`] opens, words and closes the server session, `own_nat` logs
//! in and fingerprints, `meet` waits for or places a call, `leg` plans and runs one punch,
//! `udp_leg` and `tcp_leg` punch over each transport (the TCP one with the session pumped
//! meanwhile), `both` runs the two legs of `--transport both`. `hold` drives the
//! session-only commands (`natlens login`, `natlens call --no-punch`).

mod both;
mod hold;
mod leg;
mod meet;
mod own_nat;
pub mod session;
mod tcp_leg;
mod tcp_race;
mod udp_leg;

use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::cli::{PunchArgs, PunchTransport, SessionArgs};
use crate::core::client::{ClientEvent, ClientSession};
use crate::core::punch::plan::PunchPlan;
use crate::core::Transport;
use crate::io::prober::Probing;
use crate::report::event::SessionOf;
use crate::report::punch::{BothOutput, Output};
use crate::report::Event;
use crate::wire::natlens::Transports;

pub use hold::{exchange_facts, login, Hold};

/// Where a rendezvous tells what it does. Called from the punch's threads too.
pub trait Watch: Sync {
    /// One progress event.
    fn tell(&self, event: Event);
    /// A fingerprint over `transport` starts: where its progress goes.
    fn probing(&self, transport: Transport) -> Box<dyn Probing + '_>;
    /// `--dry-run`: the plan, instead of a punch.
    fn dry_run(&self, plan: &PunchPlan) -> io::Result<()>;
    /// The plan of a punch about to start, in full (`-v` prints it); nothing by default.
    fn planned(&self, _plan: &PunchPlan) {}
}

/// What a rendezvous ends with.
#[derive(Debug)]
pub enum Rendezvoused {
    /// `--dry-run`: the plans went to [`Watch::dry_run`], nothing was punched.
    Planned,
    /// One transport's report.
    One(Box<Output>),
    /// `--transport both`'s combined report.
    Both(BothOutput),
}

/// One end's command line.
#[derive(Clone, Copy)]
pub struct Rendezvous<'a> {
    pub session: &'a SessionArgs,
    pub punch: &'a PunchArgs,
    pub watch: &'a dyn Watch,
}

/// Runs `natlens listen` (`callee` is `None`) or `natlens call CALLEE` with the run's one
/// generator.
pub fn run(
    rendezvous: Rendezvous<'_>,
    callee: Option<&str>,
    rng: StdRng,
) -> anyhow::Result<Rendezvoused> {
    let rng = Mutex::new(rng);
    let server = Mutex::new(rendezvous.session.server[0].addr);
    let run = Run {
        server: &server,
        session: rendezvous.session,
        punch: rendezvous.punch,
        watch: rendezvous.watch,
        stop: crate::io::signal::stop_flag()?,
        rng: &rng,
        leg: first_leg(rendezvous.punch.transport),
        carry_data: true,
    };
    if run.punch.transport == PunchTransport::Both {
        return Ok(both::run(&run, callee)?.map_or(Rendezvoused::Planned, Rendezvoused::Both));
    }
    let input = prepare(&run)?;
    let (mut link, mut session, own) =
        own_nat::log_in_and_fingerprint(&run, callee.map(|_| run.punch.call_wait()))?;
    let meeting = match callee {
        None => {
            meet::answer_call(&run, &mut link, &mut session, own, None)?.context("no call came")?
        }
        Some(callee) => {
            let meeting = meet::place_call(&run, &mut link, &mut session, &own, callee)?;
            (meeting, own)
        }
    };
    let output = leg::run_leg(&run, meeting.0, meeting.1, input, &mut link, &mut session);
    session::log_out(&mut link, &mut session);
    Ok(output?.map_or(Rendezvoused::Planned, |o| Rendezvoused::One(Box::new(o))))
}

/// What a run is doing and how it talks.
#[derive(Clone, Copy)]
struct Run<'a> {
    session: &'a SessionArgs,
    punch: &'a PunchArgs,
    watch: &'a dyn Watch,
    stop: &'static AtomicBool,
    /// The run's one generator (the session's, the fingerprints' and the handshakes' are drawn
    /// from it).
    rng: &'a Mutex<StdRng>,
    /// The transport this run (or, with `--transport both`, this leg) punches over.
    leg: Transport,
    /// Whether this leg carries the data (`both`'s TCP leg does not when UDP connected).
    carry_data: bool,
    /// The server the session is on (it follows `server_changed`): the one fingerprinted.
    server: &'a Mutex<SocketAddr>,
}

type Session = ClientSession<StdRng>;

impl Run<'_> {
    fn tell(&self, event: Event) {
        self.watch.tell(event);
    }

    /// A location-server session event.
    fn tell_session(&self, event: &ClientEvent) {
        let mut of = SessionOf {
            id: &self.session.id,
            server: self.server(),
            transport: self.punch.login_transport,
        };
        of.follow(event);
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) = of.server;
        self.tell(Event::session(of, event));
    }

    /// The server the session is on.
    fn server(&self) -> SocketAddr {
        *self.server.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A generator of its own, seeded from the run's.
    fn rng(&self) -> StdRng {
        let mut parent = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        StdRng::from_rng(&mut *parent).expect("a seeded generator does not fail")
    }

    /// The same run over another transport: `--transport both`'s second leg.
    fn over(&self, leg: Transport, carry_data: bool) -> Self {
        Run {
            leg,
            carry_data,
            ..*self
        }
    }

    fn transports(&self) -> Transports {
        Transports {
            udp: self.leg == Transport::Udp,
            tcp: self.leg == Transport::Tcp,
        }
    }
}

/// The first (with `both`, the only UDP) leg's transport.
fn first_leg(transport: PunchTransport) -> Transport {
    match transport {
        PunchTransport::Tcp => Transport::Tcp,
        PunchTransport::Udp | PunchTransport::Both => Transport::Udp,
    }
}

/// Opens `--send`'s file (or stdin) before anything goes out.
fn prepare(run: &Run<'_>) -> anyhow::Result<Option<Box<dyn Read + Send>>> {
    if run.punch.no_data || run.punch.dry_run {
        return Ok(None);
    }
    Ok(Some(match &run.punch.send {
        Some(path) => {
            Box::new(File::open(path).with_context(|| format!("cannot read {}", path.display()))?)
        }
        None => Box::new(io::stdin()),
    }))
}
