//! The sans-IO core: state machines over bytes, events and timestamps. Nothing here touches a
//! socket, a clock or a global RNG; time and randomness come in as arguments.

pub mod auth;
pub mod binding;
pub mod client;
pub mod credentials;
pub mod events;
pub mod fingerprint;
pub mod nat_model;
pub mod nonce;
pub mod path;
pub mod port_mapping;
pub mod punch;
pub mod registry;
pub mod replay;
pub mod server;
pub mod stats;
pub mod token_bucket;
pub mod transaction;
pub mod unreachable;

use serde::Serialize;

/// The transport a message travelled over. Also a command-line value (`--transport udp|tcp`),
/// so the CLI and the core share one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Datagrams; the session is kept alive (and the NAT mapping open) by keep-alives.
    Udp,
    /// One long-lived connection.
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}
