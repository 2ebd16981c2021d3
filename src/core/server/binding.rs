//! Binding requests: the stateless responder in [`crate::core::binding`] answers them, with
//! the RFC 5780 full-mode set of the socket they arrived on; this counts what it did.
//!
//! The hot path: every Binding request passes here, so nothing allocates.

use crate::core::binding::{self, Outcome, Received};
use crate::wire::stun::Message;

use super::ServerCore;

impl ServerCore {
    pub(super) fn binding(
        &mut self,
        message: &Message<'_>,
        rx: Received,
        reply: &mut Vec<u8>,
    ) -> Outcome {
        let full = self
            .config
            .full_modes
            .iter()
            .find(|full| full.serves(&rx.local));
        let outcome = binding::answer(message, rx, full, reply);
        match outcome {
            Outcome::Reply { error: false, .. } => self.counters.bindings += 1,
            Outcome::Reply { error: true, .. } => self.counters.errors += 1,
            Outcome::Drop(reason) => {
                self.dropped(reason, rx.transport, Some(rx.remote));
            }
        }
        outcome
    }
}
