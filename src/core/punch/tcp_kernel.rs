//! Our kernel's side of a simultaneous open: one connecting socket at a time on the punched
//! port, a fresh one each [`ATTEMPT`] (or one kept to the deadline), backing off after
//! failures.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::tcp::{Bind, Command, ConnectResult, SocketId};

/// How long one connecting socket waits before it is closed and a new one sent. The kernel's
/// first SYN retransmission comes after 1 s (TCP_TIMEOUT_INIT) and the next after 3 s more; a
/// fresh socket every second keeps re-sending at the first pace instead of backing off, which
/// matters when the peer's NAT opens its hole a little after our first SYN. Closing a socket in
/// SYN_SENT sends nothing and keeps the conntrack entry (and so the NAT mapping).
pub const ATTEMPT: Duration = Duration::from_secs(1);

/// First wait after an attempt that failed at once (refused, unreachable, address not yet
/// free); doubled after each such failure up to [`BACKOFF_MAX`]. A refusal means something
/// answered for the peer's address (its NAT or its host, before its socket exists): retrying at
/// once would only draw the same answer.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(50);

/// Longest wait between attempts after failures: well under [`ATTEMPT`], so a refusal that
/// stops costs at most this much of the punch.
pub const BACKOFF_MAX: Duration = Duration::from_millis(800);

/// The socket connecting now.
#[derive(Debug, Clone, Copy)]
struct Current {
    socket: SocketId,
    until: Instant,
    /// Asked whether it is handshaking; no answer yet.
    checking: bool,
}

/// Connect attempts toward one far address.
#[derive(Debug)]
pub(super) struct KernelOpen {
    to: SocketAddr,
    /// How long one socket lives.
    lifetime: Duration,
    next_attempt: Instant,
    backoff: Duration,
    current: Option<Current>,
    attempts: u32,
}

impl KernelOpen {
    /// Attempts toward `to`, the first at `first`, each socket living `lifetime`.
    pub(super) fn new(to: SocketAddr, lifetime: Duration, first: Instant) -> KernelOpen {
        KernelOpen {
            to,
            lifetime: lifetime.max(Duration::from_millis(1)),
            next_attempt: first,
            backoff: BACKOFF_FIRST,
            current: None,
            attempts: 0,
        }
    }

    pub(super) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// When something is due: the socket's end, or the next attempt (once `may_connect`).
    pub(super) fn next_due(&self, may_connect: bool) -> Option<Instant> {
        match self.current {
            Some(current) if current.checking => None,
            Some(current) => Some(current.until),
            None => may_connect.then_some(self.next_attempt),
        }
    }

    /// Starts an attempt when one is due and allowed; asks about a socket whose time is up.
    pub(super) fn advance(
        &mut self,
        now: Instant,
        may_connect: bool,
        commands: &mut VecDeque<Command>,
    ) {
        match &mut self.current {
            None if may_connect && now >= self.next_attempt => {
                let socket = SocketId(self.attempts);
                self.attempts += 1;
                commands.push_back(Command::Connect {
                    socket,
                    bind: Bind::Punched,
                    to: self.to,
                });
                self.current = Some(Current {
                    socket,
                    until: now + self.lifetime,
                    checking: false,
                });
            }
            Some(current) if !current.checking && now >= current.until => {
                current.checking = true;
                commands.push_back(Command::CheckHandshaking {
                    socket: current.socket,
                });
            }
            _ => {}
        }
    }

    /// A socket whose time was up: kept while handshaking, else closed and replaced at once.
    pub(super) fn handle_state(
        &mut self,
        now: Instant,
        socket: SocketId,
        handshaking: bool,
        commands: &mut VecDeque<Command>,
    ) {
        let Some(current) = &mut self.current else {
            return;
        };
        if current.socket != socket {
            return;
        }
        if handshaking {
            current.until = now + self.lifetime;
            current.checking = false;
        } else {
            commands.push_back(Command::Close { socket });
            self.current = None;
            self.next_attempt = now;
        }
    }

    /// How our `connect()` ended: the far port when it connected; after a failure, the next
    /// attempt after the backoff.
    pub(super) fn handle_connect(
        &mut self,
        now: Instant,
        socket: SocketId,
        result: ConnectResult,
        commands: &mut VecDeque<Command>,
    ) -> Option<u16> {
        if self.current.is_none_or(|c| c.socket != socket) {
            return None;
        }
        match result {
            ConnectResult::Connected => Some(self.to.port()),
            ConnectResult::Failed => {
                commands.push_back(Command::Close { socket });
                self.current = None;
                self.next_attempt = now + self.backoff;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                None
            }
        }
    }
}
