//! Waiting on a mio poll until a deadline: the one wait every mio loop of the client side uses.

use std::io;
use std::time::{Duration, Instant};

use mio::{Events, Poll};

/// Waits on `poll` until `wake` (forever when `wake` is `None`, at most `cap` when given) or
/// until a source is ready. An interrupted wait (EINTR: a signal such as SIGINT arrived) returns
/// with no events, so the caller's loop looks at its stop flag and the clock again.
pub fn wait_until(
    poll: &mut Poll,
    events: &mut Events,
    now: Instant,
    wake: Option<Instant>,
    cap: Option<Duration>,
) -> io::Result<()> {
    let timeout = wake.map(|at| at.saturating_duration_since(now));
    let timeout = match (timeout, cap) {
        (Some(t), Some(cap)) => Some(t.min(cap)),
        (None, cap) => cap,
        (t, None) => t,
    };
    match poll.poll(events, timeout) {
        Err(err) if err.kind() == io::ErrorKind::Interrupted => {
            events.clear();
            Ok(())
        }
        other => other,
    }
}
