//! The IO shell: the only code that touches sockets, clocks, threads and signals.

pub mod client;
pub mod coalesce;
pub mod prober;
pub mod punch_udp;
pub mod server;
pub mod signal;
pub mod udp_batch;
