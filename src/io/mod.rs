//! The IO shell: the only code that touches sockets, clocks, threads and signals.

pub mod adopt;
pub mod caps;
pub mod client;
pub mod coalesce;
pub mod icmp;
pub mod path_probe;
pub mod pcap;
pub mod poll;
pub mod port_mapping;
pub mod prober;
pub mod punch_tcp;
pub mod punch_tcp_birthday;
pub mod punch_udp;
pub mod raw_tcp;
pub mod rendezvous;
pub mod route;
pub mod rst_guard;
pub mod server;
pub mod signal;
pub mod simopen;
pub mod source;
pub mod udp_batch;
