//! Wire formats. Everything natlens puts on the wire is STUN (RFC 8489) framing: the standard
//! Binding method for reflection, and natlens's own methods and attributes for logins, calls and
//! federation (see `natlens-protocol(7)`), so that Wireshark and standard clients understand it.
//!
//! Two levels, as in smoltcp: [`stun::Message`] is a checked zero-copy view over received bytes
//! (after `parse` succeeds, no getter can panic), and [`builder::MessageBuilder`] emits into a
//! reusable buffer. Attribute value codecs live in [`attr`], integrity and fingerprint in
//! [`integrity`], natlens's own vocabulary in [`natlens`], TCP stream framing in [`framing`],
//! crafted TCP SYNs for hole punching in [`tcp_syn`]. The one format that is not STUN, the DATA
//! frames sent after a punch, lives in [`data`].

pub mod attr;
pub mod builder;
pub mod data;
pub mod framing;
pub mod integrity;
pub mod natlens;
pub mod stun;
pub mod tcp_hello;
pub mod tcp_syn;

pub use builder::MessageBuilder;
pub use stun::{Class, DecodeError, Message, MessageType, Method, TransactionId};
