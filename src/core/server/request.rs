//! The request context every natlens handler takes, and the answers it writes.

use std::net::SocketAddr;
use std::time::Instant;

use crate::core::binding::SOFTWARE;
use crate::core::credentials::REALM;
use crate::core::registry::Route;
use crate::core::Transport;
use crate::wire::answer::ErrorAnswer;
use crate::wire::attr::AttrType;
use crate::wire::natlens;
use crate::wire::stun::{Class, Message};
use crate::wire::MessageBuilder;

/// Comprehension-required attributes a natlens request may carry: the methods' own, plus the
/// credential attributes (and XOR-MAPPED-ADDRESS, which clients may echo); any other earns a
/// 420.
pub(super) const NATLENS_REQUEST_UNDERSTOOD: &[AttrType] = &[
    natlens::ID,
    natlens::PEER_ID,
    natlens::CALL_ID,
    natlens::SERVER_NAME,
    natlens::VIA,
    natlens::PROBE_PORT,
    natlens::PROBE_NONCE,
    AttrType::USERNAME,
    AttrType::MESSAGE_INTEGRITY,
    AttrType::MESSAGE_INTEGRITY_SHA256,
    AttrType::REALM,
    AttrType::NONCE,
    AttrType::XOR_MAPPED_ADDRESS,
];

/// One received natlens request: when and where it came from, the message, and the caller's
/// buffer its immediate answer goes into.
pub(super) struct Request<'a> {
    pub now: Instant,
    /// Where the sender's messages come from and go to (a UDP 5-tuple or a TCP connection).
    pub route: Route,
    /// The sender's address as this server sees it.
    pub remote: SocketAddr,
    /// The server's own address the request came in on, when the route does not say (TCP).
    pub local: Option<SocketAddr>,
    pub message: &'a Message<'a>,
    pub reply: &'a mut Vec<u8>,
}

impl<'a> Request<'a> {
    pub fn new(
        now: Instant,
        route: Route,
        remote: SocketAddr,
        message: &'a Message<'a>,
        reply: &'a mut Vec<u8>,
    ) -> Self {
        Request {
            now,
            route,
            remote,
            local: None,
            message,
            reply,
        }
    }

    pub fn transport(&self) -> Transport {
        self.route.transport()
    }

    /// Writes an error answer. Deliberately lean (no SOFTWARE): any unauthenticated source can
    /// provoke one, so per request byte it must stay below what a Binding answer costs (see
    /// `every_unauthenticated_answer_is_smaller_than_a_binding_answer`). A credential refusal
    /// carries REALM and a fresh `nonce`.
    pub fn lean_error(
        &mut self,
        code: u16,
        reason: &str,
        unknown: &[AttrType],
        nonce: Option<&str>,
    ) {
        let mut answer = ErrorAnswer::to_request(self.message, code, reason).unknown(unknown);
        if let Some(nonce) = nonce {
            answer = answer.challenge(REALM, nonce);
        }
        answer.write(self.reply);
    }

    /// Writes a success answer with SOFTWARE and, when the request had one, FINGERPRINT
    /// around what `add` appends.
    pub fn success(&mut self, add: impl FnOnce(&mut MessageBuilder<'_>)) {
        self.signed_success(None, add)
    }

    /// [`Self::success`], with MESSAGE-INTEGRITY-SHA256 keyed with `key` after SOFTWARE
    /// (RFC 8489 §9.2.4: the answer to an authenticated request is signed).
    pub fn signed_success(
        &mut self,
        key: Option<[u8; 16]>,
        add: impl FnOnce(&mut MessageBuilder<'_>),
    ) {
        let ty = self.message.message_type().response(Class::Success);
        let mut builder = MessageBuilder::new(self.reply, ty, self.message.transaction_id());
        add(&mut builder);
        builder.attribute(AttrType::SOFTWARE, SOFTWARE.as_bytes());
        if let Some(key) = key {
            builder.message_integrity_sha256(&key);
        }
        if self.message.get(AttrType::FINGERPRINT).is_some() {
            builder.fingerprint();
        }
    }

    /// Answers with the bytes of an earlier answer (a retransmitted request).
    pub fn repeat(&mut self, bytes: &[u8]) {
        self.reply.clear();
        self.reply.extend_from_slice(bytes);
    }
}
