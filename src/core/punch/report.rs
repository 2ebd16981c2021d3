//! The punch report (`natlens listen`/`call --json`).
//!
//! Schema rules as for the fingerprint report: `schema_version` changes when a field changes
//! meaning or disappears (adding one does not); what was not measured is `null`; fields keep the
//! order they are declared in; `directions` is always caller→callee, then callee→caller.

use serde::Serialize;

use crate::core::punch::handshake::{DirectionRecord, Outcome};
use crate::core::punch::plan::{PunchPlan, SidePlan, Strategy};
use crate::core::punch::Role;
use crate::core::Transport;

/// Version of the JSON schema below (and of `listen`'s and `call`'s event stream). 2: the
/// events say `public_address` and `udp_expiry_ms` (were `observed`, `udp_expiry_secs`); the
/// report gained `error`.
pub const SCHEMA_VERSION: u32 = 2;

/// Whether a path was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PunchResult {
    Connected,
    Failed,
}

/// One end's account of one punch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PunchReport {
    pub schema_version: u32,
    pub result: PunchResult,
    /// Why it failed or was refused; `null` when connected.
    pub reason: Option<String>,
    pub transport: Transport,
    pub strategy: Strategy,
    /// This end's role.
    pub role: Role,
    /// From this end's start signal to the connection or the failure.
    pub elapsed_ms: u64,
    /// The plan's expected success, in [0, 1].
    pub expected_success: f64,
    pub directions: Vec<Direction>,
}

/// One direction of the punch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Direction {
    pub from: Role,
    pub to: Role,
    /// The far NAT's ports the sender aimed at, in order, as far as it got (for the peer's
    /// direction, as this end's plan expects them, up to the count its requests gave).
    pub predicted_ports: Vec<u16>,
    /// The far NAT's port a packet got through to.
    pub port_through: Option<u16>,
    /// Index of `port_through` in `predicted_ports`.
    pub offset: Option<usize>,
    /// Requests the sender had sent when the first got through (all of them on failure).
    pub packets_sent: Option<u32>,
    /// From this end's start: for its own direction, when its first echo came back; for the
    /// peer's, when the peer's first packet arrived.
    pub first_through_ms: Option<u64>,
    /// The sender aimed at the receiver's port mapping (NAT-PMP, PCP or UPnP IGD): the path,
    /// if found, runs through it.
    pub via_port_mapping: bool,
}

impl PunchReport {
    /// The report of this end's handshake under `plan`.
    pub fn from_outcome(plan: &PunchPlan, outcome: &Outcome) -> Self {
        let own = direction(plan.local(), &outcome.outbound);
        let peer = direction(plan.remote(), &outcome.inbound);
        let directions = match plan.role {
            Role::Caller => vec![own, peer],
            Role::Callee => vec![peer, own],
        };
        PunchReport {
            schema_version: SCHEMA_VERSION,
            result: if outcome.connected {
                PunchResult::Connected
            } else {
                PunchResult::Failed
            },
            reason: outcome.reason.clone(),
            transport: plan.transport,
            strategy: plan.strategy,
            role: plan.role,
            elapsed_ms: millis(outcome.elapsed),
            expected_success: (plan.expected_success * 10_000.0).round() / 10_000.0,
            directions,
        }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The sender's far ports up to the last it had aimed at after `packets_sent` scheduled requests
/// (all of them when that is unknown).
fn aimed(side: &SidePlan, packets_sent: Option<u32>) -> &[u16] {
    let ports = &side.predicted_ports;
    let Some(sent) = packets_sent else {
        return ports;
    };
    let sends = &side.sends[..side.sends.len().min(sent as usize)];
    let count = sends.iter().map(|s| s.target + 1).max().unwrap_or(0);
    &ports[..count.min(ports.len())]
}

fn direction(side: &SidePlan, record: &DirectionRecord) -> Direction {
    Direction {
        from: side.role,
        to: side.role.peer(),
        predicted_ports: aimed(side, record.packets_sent).to_vec(),
        port_through: record.port_through,
        offset: record.offset,
        packets_sent: record.packets_sent,
        first_through_ms: record.first_through.map(millis),
        via_port_mapping: side.aims_at_port_mapping,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::punch::plan::{make_plan, PlanInput, PunchOptions};
    use crate::wire::natlens::NatFacts;
    use std::time::Duration;

    fn plan(role: Role) -> PunchPlan {
        let caller = NatFacts {
            observed: Some("198.51.100.1:5555".parse().unwrap()),
            ..NatFacts::default()
        };
        let callee = NatFacts {
            observed: Some("198.51.100.2:40000".parse().unwrap()),
            delta: Some(1),
            predicted_ports: vec![40001, 40002],
            ..NatFacts::default()
        };
        let (own, peer) = match role {
            Role::Caller => (&caller, &callee),
            Role::Callee => (&callee, &caller),
        };
        make_plan(&PlanInput {
            role,
            transport: Transport::Udp,
            call_id: 7,
            own,
            peer,
            options: &PunchOptions::default(),
        })
    }

    #[test]
    fn golden_json() {
        let plan = plan(Role::Callee);
        let outcome = Outcome {
            connected: true,
            reason: None,
            elapsed: Duration::from_millis(61),
            path: Some((0, "198.51.100.1:5555".parse().unwrap())),
            outbound: DirectionRecord {
                socket: Some(0),
                peer: Some("198.51.100.1:5555".parse().unwrap()),
                port_through: Some(5555),
                offset: Some(0),
                packets_sent: Some(1),
                first_through: Some(Duration::from_millis(61)),
            },
            inbound: DirectionRecord {
                socket: Some(0),
                peer: Some("198.51.100.1:5555".parse().unwrap()),
                port_through: Some(40001),
                offset: Some(0),
                packets_sent: Some(1),
                first_through: Some(Duration::from_micros(20_500)),
            },
        };
        let report = PunchReport::from_outcome(&plan, &outcome);
        let json = serde_json::to_string_pretty(&report).unwrap();
        let expected = r#"{
  "schema_version": 2,
  "result": "connected",
  "reason": null,
  "transport": "udp",
  "strategy": "fanout",
  "role": "callee",
  "elapsed_ms": 61,
  "expected_success": 1.0,
  "directions": [
    {
      "from": "caller",
      "to": "callee",
      "predicted_ports": [
        40001
      ],
      "port_through": 40001,
      "offset": 0,
      "packets_sent": 1,
      "first_through_ms": 20,
      "via_port_mapping": false
    },
    {
      "from": "callee",
      "to": "caller",
      "predicted_ports": [
        5555
      ],
      "port_through": 5555,
      "offset": 0,
      "packets_sent": 1,
      "first_through_ms": 61,
      "via_port_mapping": false
    }
  ]
}"#;
        assert_eq!(json, expected);
    }

    #[test]
    fn a_refusal_reports_its_reason() {
        let mut plan = plan(Role::Caller);
        plan.strategy = Strategy::Refused;
        plan.reason = "no".into();
        let outcome = Outcome {
            connected: false,
            reason: Some("no".into()),
            elapsed: Duration::ZERO,
            path: None,
            outbound: DirectionRecord::default(),
            inbound: DirectionRecord::default(),
        };
        let report = PunchReport::from_outcome(&plan, &outcome);
        assert_eq!(report.result, PunchResult::Failed);
        assert_eq!(report.reason.as_deref(), Some("no"));
        assert_eq!(report.directions[0].from, Role::Caller);
        assert_eq!(report.directions[0].port_through, None);
    }
}
