//! A NAT lab made of network namespaces: the ground truth `natlens` is tested against.
//!
//! Two NAT routers with a LAN host (and a noise host) each, a server with two public addresses
//! and an optional public host, joined by an "internet" segment; every router is a Linux
//! netfilter NAT in one of the [`NatMode`]s. Nothing leaves the machine: every address is an
//! RFC 5737 documentation address, every veth joins two lab namespaces, and no lab interface
//! ever exists in the root namespace.
//!
//! [`Lab::up`] builds one and tears it down on drop (panics included); a terminating signal
//! tears down every lab the process owns. `natlens lab` is a thin shell over the same code.

pub mod conntrack;
pub mod instance;
pub mod netns;
pub mod noise;
pub mod plan;
pub mod plumbing;
pub mod relay;
pub mod ruleset;
pub mod spec;
pub mod state;
pub mod teardown;
pub mod worker;

pub use conntrack::CtEntry;
pub use instance::Lab;
pub use plumbing::DelayMethod;
pub use spec::{Host, LabSpec, NatMode, Side};
pub use state::LabState;
