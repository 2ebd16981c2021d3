//! Everything that writes for people or pipelines: logs, tables, progress, JSON.

pub mod call;
pub mod events;
pub mod log;
pub mod nat;
pub mod progress;
pub mod punch;
