//! Federation links this server dials (`--link`): one dialer per configured server, redialled
//! at once after a link that worked and with a doubling backoff after a dial that failed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::{Reporter, Server};

/// Whether a configured link is connected (or connecting), or waits to be dialled.
enum LinkState {
    Idle { retry_at: Instant },
    Linked,
}

/// One configured `--link` and its dialling state.
pub(super) struct LinkDial {
    addr: SocketAddr,
    state: LinkState,
    /// Wait before the next dial after a failed one.
    backoff: Duration,
}

/// First wait before redialling a lost federation link; doubles up to [`REDIAL_MAX`].
const REDIAL_MIN: Duration = Duration::from_millis(500);
const REDIAL_MAX: Duration = Duration::from_secs(30);

impl LinkDial {
    /// A dialer for the server at `addr`, due at once.
    pub(super) fn new(addr: SocketAddr, now: Instant) -> Self {
        LinkDial {
            addr,
            state: LinkState::Idle { retry_at: now },
            backoff: REDIAL_MIN,
        }
    }
}

impl Server {
    /// Schedules a redial: at once-ish after a link that worked, with a doubling backoff (and a
    /// warning) after a dial that never connected, so a dead server is not hammered.
    pub(super) fn link_lost(
        &mut self,
        now: Instant,
        dial: usize,
        never_connected: bool,
        reporter: &mut dyn Reporter,
    ) {
        let link = &mut self.links[dial];
        let backoff = if never_connected {
            link.backoff
        } else {
            REDIAL_MIN
        };
        if never_connected {
            reporter.warn(&format!(
                "cannot connect to linked server {}; retrying in {:.1}s",
                link.addr,
                backoff.as_secs_f64()
            ));
        }
        link.backoff = (backoff * 2).min(REDIAL_MAX);
        link.state = LinkState::Idle {
            retry_at: now + backoff,
        };
    }

    pub(super) fn redial(&mut self, now: Instant, reporter: &mut dyn Reporter) {
        for index in 0..self.links.len() {
            let LinkState::Idle { retry_at } = self.links[index].state else {
                continue;
            };
            if now < retry_at {
                continue;
            }
            let addr = self.links[index].addr;
            let linked = TcpStream::connect(addr).ok().and_then(|stream| {
                let local = stream.local_addr().unwrap_or(addr);
                self.add_conn(now, stream, local, addr, Some(index), true)
            });
            match linked {
                Some(_) => self.links[index].state = LinkState::Linked,
                None => self.link_lost(now, index, true, reporter),
            }
        }
    }
}

impl Server {
    /// Dials the home server whose link listens at `addr` (forward on miss); the hello
    /// follows once connected, as for a configured link.
    pub(super) fn dial_home(&mut self, now: Instant, addr: SocketAddr) {
        let conn = TcpStream::connect(addr).ok().and_then(|stream| {
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().unwrap_or(addr);
            self.add_conn(now, stream, local, addr, None, true)
        });
        self.core.home_dialled(now, addr, conn);
    }
}
