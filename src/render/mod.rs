//! Everything that writes for people or pipelines: logs, tables, progress, JSON.
//!
//! [`terminal`] decides width, charset and colour for all of them; [`verbosity`] holds `-q`/`-v`.

pub mod call;
pub mod events;
pub mod lifetime_progress;
pub mod log;
pub mod nat;
pub mod probes;
pub mod progress;
pub mod punch;
pub mod terminal;
pub mod verbosity;
