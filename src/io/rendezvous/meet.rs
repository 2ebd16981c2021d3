//! The meeting through the server: the callee waits for a call (fingerprinting again while
//! none comes), the caller places one; either way both ends' facts and the start signal.

use std::time::{Duration, Instant};

use anyhow::anyhow;

use super::own_nat::{self, OwnNat, FINGERPRINT_REFRESH};
use super::session;
use super::{Run, Session};
use crate::core::client::ClientEvent;
use crate::core::punch::Role;
use crate::exit;
use crate::io::client::{self as link_io, Driven, Link};
use crate::report::{call_id_text, Event};
use crate::wire::natlens::NatFacts;

/// Both ends' facts and the start signal: everything the plan and the punch need.
pub(super) struct Meeting {
    pub role: Role,
    pub peer_id: String,
    pub call_id: u64,
    /// Our facts as sent, `observed` as the server saw our session.
    pub own: NatFacts,
    pub peer: NatFacts,
    pub start: Instant,
}

/// Waits for a call, fingerprinting again every [`FINGERPRINT_REFRESH`] while none comes; with
/// `give_up`, returns `None` once that long has passed without a call.
pub(super) fn answer_call(
    run: &Run<'_>,
    link: &mut Link,
    session: &mut Session,
    mut own: OwnNat,
    give_up: Option<Duration>,
) -> anyhow::Result<Option<(Meeting, OwnNat)>> {
    let since = Instant::now();
    run.tell(Event::Waiting { transport: run.leg });
    loop {
        if let Some(meeting) = wait_for_call(run, link, session, &own)? {
            return Ok(Some((meeting, own)));
        }
        if give_up.is_some_and(|limit| since.elapsed() >= limit) {
            return Ok(None);
        }
        drop(own);
        own = own_nat::fingerprint_families(run, session.server_addresses())?;
    }
}

/// Holds the session until a call comes (answered with facts fresh at that moment) or the
/// fingerprint is due for a refresh (`None`).
fn wait_for_call(
    run: &Run<'_>,
    link: &mut Link,
    session: &mut Session,
    own: &OwnNat,
) -> anyhow::Result<Option<Meeting>> {
    let transports = run.transports();
    let mut sent = NatFacts::default();
    let mut call = None;
    let mut ending = None;
    let driven = link_io::drive(
        link,
        session,
        Some(own.taken_at + FINGERPRINT_REFRESH),
        Some(run.stop),
        &mut |session, now| {
            sent = own.facts_at(now, transports);
            session.set_facts(sent.clone());
        },
        &mut |_, event| {
            run.tell_session(&event);
            match event {
                ClientEvent::IncomingCall {
                    caller,
                    call_id,
                    facts,
                } => {
                    call = Some((caller, call_id, facts, Instant::now()));
                    Ok(true)
                }
                ClientEvent::LoginRefused { .. } | ClientEvent::ServerUnreachable { .. } => {
                    ending = Some(event);
                    Ok(true)
                }
                _ => Ok(false),
            }
        },
    )?;
    if let Some((peer_id, call_id, peer, start)) = call {
        let own = NatFacts {
            observed: session.observed(),
            ..sent
        };
        return Ok(Some(Meeting {
            role: Role::Callee,
            peer_id,
            call_id,
            own,
            peer,
            start,
        }));
    }
    match driven {
        Driven::Deadline => Ok(None),
        Driven::Stopped => {
            session::log_out(link, session);
            Err(exit::interrupted("before a call came"))
        }
        _ => Err(ending
            .and_then(|event| {
                session::failure(run.session, run.punch.login_transport, link, &event)
            })
            .unwrap_or_else(|| anyhow!("the session with the server ended"))),
    }
}

/// Calls `callee` with facts predicted now and waits for the answer.
pub(super) fn place_call(
    run: &Run<'_>,
    link: &mut Link,
    session: &mut Session,
    own: &OwnNat,
    callee: &str,
) -> anyhow::Result<Meeting> {
    let facts = own.facts_at(Instant::now(), run.transports());
    let call_id = session.call(Instant::now(), callee, &facts);
    run.tell(Event::Calling {
        callee: callee.to_owned(),
        call_id: call_id_text(call_id),
    });
    let (answered, driven) = wait_for_answer(run, link, session, call_id)?;
    let ending = match answered {
        Ok((peer, start)) => {
            run.tell_session(&ClientEvent::CallAnswered {
                callee: callee.to_owned(),
                call_id,
                facts: peer.clone(),
            });
            let own = NatFacts {
                observed: session.observed(),
                ..facts
            };
            return Ok(Meeting {
                role: Role::Caller,
                peer_id: callee.to_owned(),
                call_id,
                own,
                peer,
                start,
            });
        }
        Err(ending) => ending,
    };
    if driven == Driven::Stopped {
        session::log_out(link, session);
        return Err(exit::interrupted("before the call was answered"));
    }
    Err(unanswered(run, link, session, callee, ending))
}

/// The answer's facts and when it came, or the event that ended the wait instead.
type Answer = Result<(NatFacts, Instant), Option<ClientEvent>>;

/// Drives the session until call `call_id` is answered or fails, or the session ends.
fn wait_for_answer(
    run: &Run<'_>,
    link: &mut Link,
    session: &mut Session,
    call_id: u64,
) -> anyhow::Result<(Answer, Driven)> {
    let mut answer = Err(None);
    let driven = link_io::drive(
        link,
        session,
        None,
        Some(run.stop),
        &mut |_, _| {},
        &mut |_, event| match event {
            ClientEvent::CallAnswered {
                call_id: id, facts, ..
            } if id == call_id => {
                answer = Ok((facts, Instant::now()));
                Ok(true)
            }
            ClientEvent::CallFailed { call_id: id, .. } if id == call_id => {
                answer = Err(Some(event));
                Ok(true)
            }
            ClientEvent::LoginRefused { .. } | ClientEvent::ServerUnreachable { .. } => {
                answer = Err(Some(event));
                Ok(true)
            }
            _ => Ok(false),
        },
    )?;
    Ok((answer, driven))
}

/// The error for a call that got no answer (logging out first when the call itself failed).
fn unanswered(
    run: &Run<'_>,
    link: &mut Link,
    session: &mut Session,
    callee: &str,
    ending: Option<ClientEvent>,
) -> anyhow::Error {
    match ending {
        Some(ClientEvent::CallFailed { code, reason, .. }) => {
            session::log_out(link, session);
            session::call_failure(callee, code, &reason, run.punch.call_wait())
        }
        Some(event) => session::failure(run.session, run.punch.login_transport, link, &event)
            .unwrap_or_else(|| anyhow!("the session ended before the answer")),
        None => anyhow!("the session ended before the answer"),
    }
}
