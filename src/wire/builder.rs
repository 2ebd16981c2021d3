//! Emits STUN messages into a reusable buffer.
//!
//! The header's length field is kept current after every attribute, because MESSAGE-INTEGRITY
//! and FINGERPRINT are computed over the message "as if" it ended with them (RFC 8489 §14.5).

use std::net::SocketAddr;

use crate::wire::attr::{self, AttrType};
use crate::wire::integrity;
use crate::wire::stun::{
    padded, MessageType, TransactionId, ATTR_HEADER_LEN, HEADER_LEN, MAGIC_COOKIE,
};

/// Writes one message into `buf`, which it clears first, so a server can reuse one allocation.
#[derive(Debug)]
pub struct MessageBuilder<'b> {
    buf: &'b mut Vec<u8>,
    tid: TransactionId,
}

impl<'b> MessageBuilder<'b> {
    /// Starts an RFC 8489 message.
    pub fn new(buf: &'b mut Vec<u8>, ty: MessageType, tid: TransactionId) -> Self {
        let mut cookie_and_tid = [0u8; 16];
        cookie_and_tid[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        cookie_and_tid[4..].copy_from_slice(&tid.0);
        Self::with_header(buf, ty, cookie_and_tid)
    }

    /// Starts an RFC 3489 answer, echoing the client's 128-bit transaction ID.
    pub fn new_legacy(buf: &'b mut Vec<u8>, ty: MessageType, legacy_tid: [u8; 16]) -> Self {
        Self::with_header(buf, ty, legacy_tid)
    }

    fn with_header(buf: &'b mut Vec<u8>, ty: MessageType, cookie_and_tid: [u8; 16]) -> Self {
        buf.clear();
        buf.extend_from_slice(&ty.to_u16().to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&cookie_and_tid);
        let tid = TransactionId(cookie_and_tid[4..].try_into().expect("12 bytes"));
        MessageBuilder { buf, tid }
    }

    pub fn transaction_id(&self) -> TransactionId {
        self.tid
    }

    /// Appends an attribute whose value `write` produces, then pads it with zeros.
    pub fn attribute_with(
        &mut self,
        kind: AttrType,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> &mut Self {
        let header_at = self.buf.len();
        self.buf.extend_from_slice(&kind.0.to_be_bytes());
        self.buf.extend_from_slice(&[0, 0]);
        write(self.buf);
        let len = self.buf.len() - header_at - ATTR_HEADER_LEN;
        let len16 = u16::try_from(len).expect("attribute longer than 65535 bytes");
        self.buf[header_at + 2..header_at + 4].copy_from_slice(&len16.to_be_bytes());
        self.buf
            .resize(header_at + ATTR_HEADER_LEN + padded(len), 0);
        self.update_length();
        self
    }

    /// Appends an attribute with the given value.
    pub fn attribute(&mut self, kind: AttrType, value: &[u8]) -> &mut Self {
        self.attribute_with(kind, |out| out.extend_from_slice(value))
    }

    /// Appends a MAPPED-ADDRESS style attribute.
    pub fn address(&mut self, kind: AttrType, addr: &SocketAddr) -> &mut Self {
        self.attribute_with(kind, |out| {
            let start = out.len();
            out.resize(start + attr::address_len(addr), 0);
            attr::encode_address(addr, &mut out[start..]);
        })
    }

    /// Appends an XOR-encoded address attribute (XOR-MAPPED-ADDRESS and natlens's own).
    pub fn xor_address(&mut self, kind: AttrType, addr: &SocketAddr) -> &mut Self {
        let tid = self.tid;
        self.attribute_with(kind, |out| {
            let start = out.len();
            out.resize(start + attr::address_len(addr), 0);
            attr::encode_xor_address(addr, &tid, &mut out[start..]);
        })
    }

    /// Appends ERROR-CODE with its reason phrase.
    pub fn error_code(&mut self, code: u16, reason: &str) -> &mut Self {
        self.attribute_with(AttrType::ERROR_CODE, |out| {
            attr::encode_error_code(code, reason, out)
        })
    }

    /// Appends UNKNOWN-ATTRIBUTES listing the types a 420 answer refuses.
    pub fn unknown_attributes(&mut self, kinds: &[AttrType]) -> &mut Self {
        self.attribute_with(AttrType::UNKNOWN_ATTRIBUTES, |out| {
            for kind in kinds {
                out.extend_from_slice(&kind.0.to_be_bytes());
            }
        })
    }

    /// Appends a 4-byte big-endian integer attribute.
    pub fn u32(&mut self, kind: AttrType, value: u32) -> &mut Self {
        self.attribute(kind, &value.to_be_bytes())
    }

    /// Appends MESSAGE-INTEGRITY (HMAC-SHA1) keyed with `key`.
    pub fn message_integrity(&mut self, key: &[u8]) -> &mut Self {
        self.integrity_attribute(AttrType::MESSAGE_INTEGRITY, |data| {
            integrity::hmac_sha1(key, data).to_vec()
        })
    }

    /// Appends MESSAGE-INTEGRITY-SHA256 keyed with `key`.
    pub fn message_integrity_sha256(&mut self, key: &[u8]) -> &mut Self {
        self.integrity_attribute(AttrType::MESSAGE_INTEGRITY_SHA256, |data| {
            integrity::hmac_sha256(key, data).to_vec()
        })
    }

    fn integrity_attribute(
        &mut self,
        kind: AttrType,
        mac: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> &mut Self {
        // The MAC covers the message up to the attribute, with a length that already counts it.
        let covered = self.buf.len();
        let digest_len = if kind == AttrType::MESSAGE_INTEGRITY {
            20
        } else {
            32
        };
        self.set_length(covered + ATTR_HEADER_LEN + digest_len - HEADER_LEN);
        let digest = mac(&self.buf[..covered]);
        self.attribute(kind, &digest)
    }

    /// Appends FINGERPRINT; must be the last attribute.
    pub fn fingerprint(&mut self) -> &mut Self {
        let covered = self.buf.len();
        self.set_length(covered + ATTR_HEADER_LEN + 4 - HEADER_LEN);
        let crc = integrity::fingerprint(&self.buf[..covered]);
        self.u32(AttrType::FINGERPRINT, crc)
    }

    /// The finished message.
    pub fn finish(self) -> &'b [u8] {
        self.buf
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn update_length(&mut self) {
        let len = self.buf.len() - HEADER_LEN;
        self.set_length(len);
    }

    fn set_length(&mut self, len: usize) {
        let len16 = u16::try_from(len).expect("STUN message longer than 65535 bytes");
        self.buf[2..4].copy_from_slice(&len16.to_be_bytes());
    }
}
