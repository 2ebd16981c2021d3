//! Wire formats. Everything natlens puts on the wire is STUN (RFC 8489) framing: the standard
//! Binding method for reflection, and natlens's own methods and attributes for logins, calls and
//! federation (see `natlens-protocol(7)`), so that Wireshark and standard clients understand it.
//!
//! One codec shape, smoltcp's, for every format:
//! - a checked zero-copy view over bytes (`Foo<T: AsRef<[u8]>>`), whose checked constructor
//!   refuses what its getters could not read, so that afterwards no getter panics; field offsets
//!   are named byte ranges in a private `mod field`; setters (on `T: AsMut<[u8]>`) where the
//!   format has fixed offsets;
//! - an owned `FooRepr` with `parse` (from a checked view), `emit` and `buffer_len`. `parse`
//!   returns a `Result` when the Repr refuses something the view accepts (DATA: unknown kinds,
//!   wrong lengths); where the view has refused everything already (STUN, PUNCH, TCP) it cannot
//!   fail and returns the Repr;
//! - registry numbers that have no open-ended registry as enums with `Unknown(n)`
//!   ([`data::Kind`]); STUN methods and attribute types, whose registries IANA keeps growing, are
//!   newtypes with named constants ([`stun::Method`], [`attr::AttrType`]), which round-trip any
//!   number the same way.
//!
//! The formats:
//! - STUN messages: [`stun::Message`] is the checked view (its checked constructor is
//!   [`Message::parse`]; it borrows a `&[u8]` rather than owning a `T`, because every receiver
//!   reads a datagram in place), [`message_repr::MessageRepr`] the Repr. Attributes have no
//!   fixed offsets, so the view has no setters; messages are written with
//!   [`builder::MessageBuilder`], which streams attributes into a reusable `Vec` and keeps the
//!   header's length current for MESSAGE-INTEGRITY and FINGERPRINT. `MessageRepr::emit` is a
//!   loop over that builder. The server's Binding answers stay on view + builder: no allocation
//!   per request (a Repr allocates per attribute).
//! - PUNCH messages (STUN with natlens's PUNCH method): [`punch::Punch`] and
//!   [`punch::PunchRepr`], emitted through the builder too.
//! - DATA frames, the one format that is not STUN, sent after a punch: [`data::Frame`] and
//!   [`data::FrameRepr`], emitted into a buffer the caller owns.
//! - Crafted TCP SYNs for hole punching: [`tcp_syn::Segment`] and [`tcp_syn::SegmentRepr`].
//! - The TCP hello each end writes first on a punched stream: [`tcp_hello::TcpHello`] and
//!   [`tcp_hello::TcpHelloRepr`].
//!
//! - The port-mapping protocols, which are not STUN: NAT-PMP ([`natpmp`], RFC 6886) and PCP
//!   ([`pcp`], RFC 6887), small fixed formats with owned Reprs only (`parse` / `to_bytes`).
//!
//! Alongside: attribute value codecs in [`attr`], integrity and fingerprint in [`integrity`],
//! natlens's own vocabulary in [`natlens`], error answers in [`answer`], TCP stream framing in
//! [`framing`].

pub mod answer;
pub mod attr;
pub mod builder;
pub mod data;
pub mod framing;
pub mod integrity;
pub mod message_repr;
pub mod natlens;
pub mod natpmp;
pub mod pcp;
pub mod punch;
#[cfg(test)]
mod rfc5769;
pub mod stun;
pub mod tcp_hello;
pub mod tcp_syn;
pub mod tcp_verdict;

pub use builder::MessageBuilder;
pub use stun::{Class, DecodeError, Message, MessageType, Method, TransactionId};
