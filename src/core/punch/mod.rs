//! Hole punching, sans-IO: the planner, the nonce handshake and the report.
//!
//! After a call, both ends hold the same two [`NatFacts`](crate::wire::natlens::NatFacts) (their
//! own and the peer's, exchanged through the location server). A shell punches like this:
//! 1. [`plan::make_plan`] from those facts, the call ID, this end's role and the options; both
//!    ends compute the same plan, so each knows what the other will do;
//! 2. if the strategy is not refused, open the plan's sockets (before the start: on a
//!    sequential NAT every new flow costs a port), then drive a [`handshake::Handshake`] from the
//!    start signal (the callee answering the call, the caller receiving that answer), the
//!    callee with its sync rounds ([`plan::PunchPlan::sync_rounds`]: its first round again
//!    half a relay and one relay after answering, so that its PUNCH requests reach the caller's
//!    NAT after the caller's first request opened it): send what `poll_transmit` gives, feed every
//!    datagram to `handle_input`, sleep until `poll_timeout`;
//! 3. once connected, exchange data over the confirmed path with a [`transfer::Transfer`]
//!    (its first frame from the peer also tells that the peer is connected);
//! 4. turn the handshake's [`handshake::Outcome`] into a [`report::PunchReport`].
//!
//! What an end tells its peer comes from its own fingerprint through [`profile::NatSummary`].
//!
//! Over TCP, step 2 is a [`tcp::TcpPunchMachine`] instead (from [`tcp::TcpSpec::for_plan`]):
//! crafted SYNs from `poll_transmit`, kernel sockets to listen, connect or close from
//! `poll_command`, every sniffed segment and kernel result fed back, the outcome once
//! over (the winning socket, accepted connection or crafted 4-tuple to adopt).

pub mod birthday;
pub mod family;
pub mod family_race;
pub mod fanout;
pub mod handshake;
pub mod plan;
pub mod profile;
pub mod report;
mod schedule;
mod strategy;
pub mod tcp;
mod tcp_birthday;
mod tcp_crafted;
mod tcp_kernel;
pub mod transfer;

#[cfg(test)]
mod handshake_tests;
#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod sim_tcp;
#[cfg(test)]
mod tcp_tests;
#[cfg(test)]
mod tests;

pub use handshake::{Handshake, Outcome, PunchEvent, Transmit};
pub use plan::{make_plan, PlanInput, PunchOptions, PunchPlan, SidePlan, Strategy};
pub use profile::{NatSummary, PortModel, SideModel};
pub use report::PunchReport;

use serde::Serialize;

/// Which end of the call this is. The roles break the symmetry both ends need to agree on
/// without talking: which side steps by 1 and which by 2 through the other's ports, and whose
/// spray ports come from which seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Placed the call; starts last (it hears the callee's facts one relay later).
    Caller,
    /// Answered the call; starts first.
    Callee,
}

impl Role {
    /// The other end.
    pub fn peer(self) -> Role {
        match self {
            Role::Caller => Role::Callee,
            Role::Callee => Role::Caller,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Caller => "caller",
            Role::Callee => "callee",
        }
    }
}
