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

pub mod carrier;
pub mod conntrack;
pub mod instance;
pub mod netns;
pub mod noise;
pub mod plan;
pub mod plan6;
pub mod plumbing;
pub mod port_mapping;
pub mod process;
pub mod relay;
pub mod ruleset;
pub mod ruleset6;
pub mod server;
pub mod spec;
pub mod state;
pub mod teardown;
pub mod v6mode;
pub mod worker;

pub use conntrack::CtEntry;
pub use instance::Lab;
pub use plumbing::DelayMethod;
pub use process::{Exited, LabProcess};
pub use spec::{Host, LabSpec, NatMode, Side};
pub use state::LabState;
pub use v6mode::{Filtering, V6Mode};

/// Whether this machine can build a lab: root, network namespaces, and the `ip`, `nft` and
/// `conntrack` tools. `Err` says what is missing, in words fit for a SKIPPED line or an error.
pub fn check_available() -> Result<(), String> {
    // SAFETY: geteuid(2) has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let namespaces = std::path::Path::new("/proc/self/ns/net").exists();
    let missing: Vec<&str> = ["ip", "nft", "conntrack"]
        .into_iter()
        .filter(|tool| {
            std::process::Command::new(tool)
                .arg("--version")
                .output()
                .is_err()
        })
        .collect();
    if root && namespaces && missing.is_empty() {
        return Ok(());
    }
    let mut why = Vec::new();
    if !root {
        why.push("needs root".to_owned());
    }
    if !namespaces {
        why.push("needs network namespaces".to_owned());
    }
    if !missing.is_empty() {
        why.push(format!(
            "needs {} (apt-get install iproute2 nftables conntrack)",
            missing.join(", ")
        ));
    }
    Err(why.join("; "))
}
