//! The IO shell: the only code that touches sockets, clocks, threads and signals.

pub mod server;
pub mod udp_batch;
