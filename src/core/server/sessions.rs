//! Sessions: LOGIN, KEEPALIVE and LOGOUT, credentials, and the expiry of silent UDP sessions.

use std::time::Instant;

use crate::core::auth::Refusal;
use crate::core::events::Event;
use crate::core::registry::{Limits, LoginError, LoginOutcome, Route};
use crate::core::stats::Drop;
use crate::core::Transport;
use crate::wire::attr::AttrType;
use crate::wire::natlens::{self, error};

use super::request::Request;
use super::ServerCore;

impl ServerCore {
    pub(super) fn login(&mut self, req: &mut Request<'_>, id: &str) -> bool {
        if let Route::Tcp { conn } = req.route {
            if self.links.contains_key(&conn) {
                return self.refuse(req, error::BAD_REQUEST, "Federation links cannot log in");
            }
        }
        let key = match self.authenticate(req, id) {
            Ok(key) => key,
            Err(answered) => return answered,
        };
        if key.is_some() {
            self.take_over(req.now, req.route, id);
        }
        let limits = Limits {
            sessions: self.config.max_sessions,
            per_ip: self.config.max_sessions_per_ip,
        };
        let (code, reason) = match self
            .registry
            .login(req.now, id, req.route, req.remote, limits)
        {
            Ok(outcome) => {
                self.logged_in(id, req.transport(), req.remote, outcome);
                let (transport, remote) = (req.transport(), req.remote);
                let expiry = self.config.udp_expiry.as_secs() as u32;
                let addresses = self.config.addresses_for(remote);
                req.signed_success(key, |builder| {
                    builder.xor_address(AttrType::XOR_MAPPED_ADDRESS, &remote);
                    if transport == Transport::Udp {
                        builder.u32(natlens::EXPIRY, expiry);
                    }
                    natlens::encode_server_addresses(builder, &addresses);
                });
                return true;
            }
            Err(refusal) => self.login_refusal(refusal),
        };
        self.events.push_back(Event::LoginRefused {
            id: id.to_owned(),
            transport: req.transport(),
            from: req.remote,
            code,
            reason,
        });
        self.refuse(req, code, reason)
    }

    /// The key proves this is the ID's owner (restarted, or on a new port or network): the new
    /// login replaces the old session instead of waiting for it to expire. Open servers keep
    /// first-come ownership (409).
    fn take_over(&mut self, now: Instant, route: Route, id: &str) {
        self.taken_over.remove(&route);
        if let Some(old) = self.registry.take_over(id, route) {
            self.taken_over.insert(old.route, now);
            self.events.push_back(Event::Logout {
                id: old.id,
                transport: old.route.transport(),
                reason: "taken-over",
            });
        }
    }

    /// The error a refused login gets; budget refusals are counted as drops too.
    fn login_refusal(&mut self, refusal: LoginError) -> (u16, &'static str) {
        match refusal {
            LoginError::Taken => (error::ID_TAKEN, "ID already logged in"),
            LoginError::Full => {
                self.counters.drop(Drop::ServerFull);
                (error::SERVER_FULL, "Server full")
            }
            LoginError::PerIpLimit => {
                self.counters.drop(Drop::PerIpLimit);
                (error::QUOTA_REACHED, "Too many sessions from this address")
            }
        }
    }

    /// With credentials, checks that `req` is authenticated as `id`: `Ok(Some(key))` to go
    /// ahead (sign the answer with `key`), `Ok(None)` on an open server, `Err(answered)` when it
    /// was refused (`answered`: whether `req.reply` holds the refusal).
    pub(super) fn authenticate(
        &mut self,
        req: &mut Request<'_>,
        id: &str,
    ) -> Result<Option<[u8; 16]>, bool> {
        let Some(auth) = &mut self.auth else {
            return Ok(None);
        };
        let refusal = match auth.check(req.now, req.message, req.route, req.remote.ip(), id) {
            Ok(key) => return Ok(Some(key)),
            Err(refusal) => refusal,
        };
        let reason = match refusal {
            Refusal::Challenge => Drop::AuthRequired,
            Refusal::Incomplete | Refusal::BadCredentials => Drop::AuthFailed,
            Refusal::StaleNonce => Drop::StaleNonce,
            Refusal::Replay => Drop::Replay,
        };
        let nonce = refusal
            .with_nonce()
            .then(|| auth.nonce(req.now, req.remote.ip()));
        if refusal == Refusal::Challenge {
            // The normal first step of every login: counted, but not logged line by line.
            self.counters.drop(reason);
        } else {
            self.dropped(reason, req.transport(), Some(req.remote));
        }
        let Some((code, text)) = refusal.error() else {
            return Err(false);
        };
        self.counters.errors += 1;
        req.lean_error(code, text, &[], nonce.as_deref());
        Err(true)
    }

    fn logged_in(
        &mut self,
        id: &str,
        transport: Transport,
        observed: std::net::SocketAddr,
        outcome: LoginOutcome,
    ) {
        if let LoginOutcome::Replaced(old) = &outcome {
            self.events.push_back(Event::Logout {
                id: old.id.clone(),
                transport,
                reason: "replaced",
            });
        }
        if outcome != LoginOutcome::Refreshed {
            self.counters.logins += 1;
            self.events.push_back(Event::Login {
                id: id.to_owned(),
                transport,
                observed,
            });
        }
    }

    pub(super) fn keepalive(&mut self, req: &mut Request<'_>, id: &str) -> bool {
        if self.registry.refresh(req.now, id, req.route).is_none() {
            if self.taken_over.contains_key(&req.route) {
                return self.refuse(req, error::ID_TAKEN, "ID logged in elsewhere with its key");
            }
            return self.refuse(req, error::NO_SESSION, "No such session: log in again");
        }
        let remote = req.remote;
        req.success(|builder| {
            builder.xor_address(AttrType::XOR_MAPPED_ADDRESS, &remote);
        });
        true
    }

    pub(super) fn logout(&mut self, req: &mut Request<'_>, id: &str) -> bool {
        if let Some(session) = self.registry.logout(id, req.route) {
            self.counters.logouts += 1;
            self.events.push_back(Event::Logout {
                id: session.id,
                transport: req.transport(),
                reason: "logout",
            });
        }
        // Success even when there was nothing to log out: a retransmitted LOGOUT whose first
        // answer was lost must not look like a failure.
        req.success(|_| {});
        true
    }

    /// Frees the session on a closed TCP connection.
    pub(super) fn session_closed(&mut self, route: Route) {
        if let Some(session) = self.registry.remove_route(route) {
            self.counters.logouts += 1;
            self.events.push_back(Event::Logout {
                id: session.id,
                transport: Transport::Tcp,
                reason: "closed",
            });
        }
    }

    /// Expires silent UDP sessions (a batch at a time, each in ID order), and forgets stale
    /// nonces and take-overs.
    pub(super) fn expire_sessions(&mut self, now: Instant) {
        self.expire_batch(now);
        if let Some(auth) = &mut self.auth {
            auth.sweep(now);
        }
        let expiry = self.config.udp_expiry;
        self.taken_over
            .retain(|_, at| now.saturating_duration_since(*at) <= expiry);
    }

    /// Expires one batch of silent UDP sessions; a mass expiry takes several, with requests
    /// answered in between ([`ServerCore::expiry_pending`]).
    pub(super) fn expire_batch(&mut self, now: Instant) {
        for session in self.registry.expire(now, self.config.udp_expiry) {
            self.counters.expired += 1;
            let silent_ms = now.saturating_duration_since(session.last_seen).as_millis() as u64;
            self.events.push_back(Event::Expire {
                id: session.id,
                observed: session.observed,
                silent_ms,
            });
        }
    }

    /// Whether more sessions are due to expire than the last batch took.
    pub(super) fn expiry_pending(&self) -> bool {
        self.registry
            .expire_pending(self.now, self.config.udp_expiry)
    }
}
