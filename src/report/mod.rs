//! What the client commands tell: every progress event (`natlens listen`, `call`, `login`) and
//! every report (`listen`/`call`'s punch report, `call --no-punch`'s answer, a `--dry-run`
//! plan), as typed values. The IO drivers produce them; `render` writes them as human lines and
//! tables or as JSON. The server's own log events are another matter (`core::events`).
//!
//! The JSON of every type here is pinned by golden tests ([`event`]'s and [`call`]'s): scripts
//! read it, so a field or an event name changes only with a schema version.

pub mod call;
pub mod event;
pub mod nat;
pub mod outcome;
pub mod punch;

pub use event::Event;

/// A call ID as 16 hex digits: JSON numbers lose precision above 2^53 in most consumers.
pub fn call_id_text(call_id: u64) -> String {
    format!("{call_id:016x}")
}

/// Milliseconds since a start, saturating, as every `at_ms` field carries them.
pub fn millis(at: std::time::Duration) -> u64 {
    u64::try_from(at.as_millis()).unwrap_or(u64::MAX)
}
