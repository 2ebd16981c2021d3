//! The UDP punch of one leg: the plan's sockets (the fingerprint's mapping socket among them),
//! the punch and the data exchange in one poll loop that carries the session link along.

use std::io::{self, Read};
use std::net::SocketAddr;

use anyhow::Context;

use super::leg::{self, Punched};
use super::meet::Meeting;
use super::own_nat::OwnNat;
use super::{Run, Session};
use crate::core::punch::plan::PunchPlan;
use crate::core::punch::report::PunchReport;
use crate::io::client::{Link, Pump};
use crate::io::punch_udp::{self, DataIo};
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
    let sync_rounds = plan.sync_rounds(own.server_rtt());
    let sockets = punch_udp::open_sockets(plan.local(), own.mapping, own.local_ip, &own.source)
        .context("opening the punch's sockets")?;
    let locals: Vec<Option<SocketAddr>> = sockets.iter().map(|s| s.local_addr().ok()).collect();
    let mut sink = leg::data_sink(run);
    link.set_nonblocking(true)?;
    let mut pump = Pump {
        link,
        session,
        events: Vec::new(),
    };
    let finished = punch_udp::run(
        plan,
        sockets,
        meeting.start,
        &sync_rounds,
        DataIo {
            input,
            output: &mut *sink,
        },
        &mut pump,
        Some(run.stop),
        &mut |progress, at| run.tell(leg::progress_event(progress, at)),
        &mut run.rng(),
    );
    pump.link.set_nonblocking(false)?;
    let finished = match finished {
        Err(err) if err.kind() == io::ErrorKind::Interrupted => {
            return Err(crate::exit::interrupted("while punching"))
        }
        other => other.context("punching")?,
    };
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
