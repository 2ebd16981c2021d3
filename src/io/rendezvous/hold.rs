//! The drivers of the session-only commands: `natlens login` holds a session and answers the
//! calls it delivers; `natlens call --no-punch` places one call and keeps the answer.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use rand::rngs::StdRng;

use super::session::{self, Opened};
use crate::cli::SessionArgs;
use crate::core::client::ClientEvent;
use crate::core::Transport;
use crate::io::client::{self, Stop};
use crate::report::call::{CallAnswer, SCHEMA_VERSION};
use crate::report::call_id_text;
use crate::report::event::{Event, SessionOf};

/// How long `natlens login` holds the session.
#[derive(Debug, Clone, Copy)]
pub struct Hold {
    pub transport: Transport,
    /// Log out after this long.
    pub duration: Option<Duration>,
    /// Log out after answering this many calls.
    pub calls: Option<u64>,
}

/// Holds a session until `hold` says enough or an interrupt, every event to `tell` (whose error,
/// a closed stdout, ends the run); the server the session was on at the end.
pub fn login(
    args: &SessionArgs,
    hold: Hold,
    rng: StdRng,
    tell: &mut dyn FnMut(Event) -> io::Result<()>,
) -> anyhow::Result<SocketAddr> {
    let Opened {
        mut link,
        mut session,
        passed_over,
    } = session::open(args, hold.transport, None, rng)?;
    let stop = Stop {
        at: hold.duration.map(|duration| Instant::now() + duration),
        flag: Some(crate::io::signal::stop_flag()?),
    };
    let mut of = SessionOf {
        id: &args.id,
        server: args.server[0].addr,
        transport: hold.transport,
    };
    for event in &passed_over {
        of.follow(event);
        tell(Event::session(of, event))?;
    }
    let mut answered = 0u64;
    let mut ending = None;
    client::run(&mut link, &mut session, stop, |session, event| {
        let enough = |answered| hold.calls.is_some_and(|calls| answered >= calls);
        match &event {
            ClientEvent::LoggedIn { .. } if enough(answered) => session.logout(Instant::now()),
            ClientEvent::IncomingCall { .. } => {
                answered += 1;
                if enough(answered) {
                    session.logout(Instant::now());
                }
            }
            ClientEvent::LoginRefused { .. } | ClientEvent::ServerUnreachable { .. } => {
                ending = Some(event.clone());
            }
            _ => {}
        }
        of.follow(&event);
        tell(Event::session(of, &event))
    })?;
    let failure = |event| session::failure(args, hold.transport, &link, &event);
    match ending.and_then(failure) {
        Some(err) => Err(err),
        None => Ok(link.server()),
    }
}

/// Calls `callee` (`timeout` for its answer), keeps the answer, logs out.
pub fn exchange_facts(
    args: &SessionArgs,
    transport: Transport,
    callee: &str,
    timeout: Duration,
    rng: StdRng,
) -> anyhow::Result<CallAnswer> {
    let Opened {
        mut link,
        mut session,
        ..
    } = session::open(args, transport, Some(timeout), rng)?;
    let stop = Stop {
        at: None,
        flag: Some(crate::io::signal::stop_flag()?),
    };
    let mut outcome = None;
    client::run(&mut link, &mut session, stop, |session, event| {
        match &event {
            ClientEvent::LoggedIn { observed, .. } => {
                let facts = session::own_facts(transport, Some(*observed));
                session.call(Instant::now(), callee, &facts);
            }
            ClientEvent::CallAnswered { .. } | ClientEvent::CallFailed { .. } => {
                outcome.get_or_insert(event);
                session.logout(Instant::now());
            }
            ClientEvent::LoginRefused { .. } | ClientEvent::ServerUnreachable { .. } => {
                outcome.get_or_insert(event);
            }
            _ => {}
        }
        Ok(())
    })?;
    match outcome {
        Some(ClientEvent::CallAnswered { call_id, facts, .. }) => Ok(CallAnswer {
            schema_version: SCHEMA_VERSION,
            caller: args.id.clone(),
            callee: callee.to_owned(),
            call_id: call_id_text(call_id),
            callee_facts: facts,
            own_observed: session.observed(),
        }),
        Some(ClientEvent::CallFailed { code, reason, .. }) => {
            Err(session::call_failure(callee, code, &reason, timeout))
        }
        Some(event) => Err(session::failure(args, transport, &link, &event)
            .unwrap_or_else(|| anyhow!("the session ended unexpectedly"))),
        None => Err(crate::exit::interrupted("before the call was answered")),
    }
}
