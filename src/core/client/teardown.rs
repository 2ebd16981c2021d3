//! The session's one teardown path. When the TCP connection closes while logged in the session
//! dials again ([`ClientSession::start_reconnect`]); when it ends for good
//! ([`ClientSession::close`]) nothing more happens. Either way whatever was in flight is over,
//! and both hand it to [`ClientSession::abandon_in_flight`]: logins, keepalives and logouts are
//! forgotten, calls fail with why, in the order they were placed. When the session has another
//! server to go to ([`super::failover`]), losing the one in use moves it there
//! ([`ClientSession::fail_over`]) instead of ending it.

use std::time::{Duration, Instant};

use rand::RngCore;

use super::requests::Pending;
use super::{
    ClientEvent, ClientSession, Lost, State, Transport, RECONNECT_BUDGET, RECONNECT_FIRST,
};

/// Why calls in flight fail when the session ends.
pub(super) const SESSION_ENDED: &str = "the session ended first";
/// Why calls in flight fail when the connection to the server closes.
const CONNECTION_CLOSED: &str = "the connection to the server closed";

impl<R: RngCore> ClientSession<R> {
    /// The shell lost the connection (TCP closed or reset). A TCP session that had logged in
    /// starts dialling again ([`ClientEvent::ConnectionLost`]); otherwise the session closes.
    pub fn handle_disconnect(&mut self, now: Instant) {
        match self.state {
            State::Closed | State::Reconnecting { .. } => {}
            State::LoggingOut => self.close(ClientEvent::LoggedOut),
            State::LoggedIn { .. } | State::LoggingIn { relogin: true }
                if self.config.transport == Transport::Tcp =>
            {
                self.start_reconnect(now)
            }
            State::Switching => {}
            _ => self.fail_over(Lost::Connection),
        }
    }

    /// The shell learned that the server cannot be reached (an ICMP error quoting our LOGIN,
    /// a refused connection) before it ever answered: the session closes now with
    /// [`Lost::Login`] instead of retransmitting into the void until the login timeout. Once
    /// the server has answered, such news is ignored: a server restarting under a live session
    /// is what the retransmissions and the reconnect budget are for, unless there is another
    /// server to move to: then the session moves at once.
    pub fn handle_unreachable(&mut self) {
        match self.state {
            State::LoggingIn { relogin: false } => self.fail_over(Lost::Login),
            State::LoggingIn { relogin: true } if self.failover.can_move() => {
                self.fail_over(Lost::Login)
            }
            State::LoggedIn { .. } if self.failover.can_move() => self.fail_over(Lost::Keepalive),
            _ => {}
        }
    }

    /// The server in use is lost (`lost` says how it was found): move to the next server when
    /// there is one not yet given up on since the last login, else end the session as
    /// unreachable. Calls in flight fail now, naming the lost server: they are not placed again
    /// on the next one, since the callee may have answered already and moved on to punch.
    pub(super) fn fail_over(&mut self, lost: Lost) {
        let Some(step) = self.failover.give_up() else {
            return self.close(ClientEvent::ServerUnreachable { lost });
        };
        self.state = State::Switching;
        self.switch_wanted = Some(step.to);
        self.lost_at = None;
        // A nonce is one server's: the next one hands out its own on the first LOGIN.
        self.nonce = None;
        self.events.push_back(ClientEvent::ServerChanged {
            from: step.from,
            to: step.to,
            lost,
        });
        let reason = format!(
            "the server {} stopped answering (the session moved to {})",
            step.from, step.to
        );
        self.abandon_in_flight(&reason);
        self.auth_tries.clear();
    }

    /// Forgets what was in flight on the dead connection (calls fail now rather than after
    /// the stream timeout) and asks for the first dial at once.
    pub(super) fn start_reconnect(&mut self, now: Instant) {
        self.abandon_in_flight(CONNECTION_CLOSED);
        if self.lost_at.is_none() {
            self.lost_at = Some(now);
            self.events.push_back(ClientEvent::ConnectionLost);
        }
        self.state = State::Reconnecting {
            next_attempt: now,
            backoff: RECONNECT_FIRST,
        };
    }

    /// Ends the session with `event`; calls still in flight fail after it.
    pub(super) fn close(&mut self, event: ClientEvent) {
        self.state = State::Closed;
        self.events.push_back(event);
        self.abandon_in_flight(SESSION_ENDED);
    }

    /// Ends every request in flight, in start order; calls fail with `reason`.
    fn abandon_in_flight(&mut self, reason: &str) {
        for (_, pending) in self.transactions.cancel_where(|_| true) {
            self.abandon(pending, reason);
        }
    }

    /// One request that will get no answer: a call fails with `reason`, the rest is dropped.
    pub(super) fn abandon(&mut self, pending: Pending, reason: &str) {
        if let Pending::Call { callee, call_id } = pending {
            self.events.push_back(ClientEvent::CallFailed {
                callee,
                call_id,
                code: None,
                reason: reason.into(),
            });
        }
    }

    /// A dial is due: ask the shell for it and schedule the next one with doubled backoff, up
    /// to the keepalive interval; past [`RECONNECT_BUDGET`] (the silence budget when there is
    /// another server to move to) the server counts as lost.
    pub(super) fn attempt_reconnect(&mut self, now: Instant, backoff: Duration) {
        let lost_at = self.lost_at.unwrap_or(now);
        let budget = self
            .failover
            .silence_budget(self.keepalive_interval(), RECONNECT_BUDGET);
        if now.duration_since(lost_at) >= budget {
            return self.fail_over(Lost::Connection);
        }
        self.connect_wanted = true;
        self.state = State::Reconnecting {
            next_attempt: (now + backoff).min(lost_at + budget),
            backoff: (backoff * 2).min(self.keepalive_interval()),
        };
    }

    /// The server forgot the session (437, or 403 to a call): log in again on the same
    /// connection; the keepalive in flight is moot.
    pub(super) fn relogin(&mut self, now: Instant) {
        self.forget_pending(|pending| *pending == Pending::Keepalive);
        self.state = State::LoggingIn { relogin: true };
        self.send_login(now);
    }

    /// Drops the requests in flight that `doomed` picks, without events.
    pub(super) fn forget_pending(&mut self, doomed: impl Fn(&Pending) -> bool) {
        self.transactions.cancel_where(doomed);
    }
}
