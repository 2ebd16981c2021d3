//! The report of `natlens listen` and `natlens call`: one JSON object (the punch report plus
//! the call, the path and the data exchange); `render::punch` draws it as tables for people.

use std::net::SocketAddr;

use serde::Serialize;

use crate::core::punch::family::FamilyPlan;
use crate::core::punch::report::{PunchReport, PunchResult};
use crate::core::punch::{Role, Strategy};
use crate::core::Transport;
use crate::wire::natlens::IpFamily;

/// The confirmed path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Path {
    /// This end's socket.
    pub local: Option<SocketAddr>,
    /// The peer's public address on the path.
    pub peer: SocketAddr,
}

/// The data exchange after the punch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Data {
    /// `complete` or `failed`.
    pub result: &'static str,
    pub reason: Option<String>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub retransmissions: u64,
    pub elapsed_ms: u64,
}

/// Everything one end reports (the `--json` object, documented in the man pages' JSON OUTPUT).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    #[serde(flatten)]
    pub report: PunchReport,
    pub peer_id: String,
    /// 16 hex digits, as `natlens call --no-punch` prints it.
    pub call_id: String,
    pub path: Option<Path>,
    pub data: Option<Data>,
    /// Each address family's part, in the order tried (IPv6 first).
    pub families: Vec<FamilyOutcome>,
    /// The family whose path was kept; null when none connected.
    pub winner: Option<IpFamily>,
}

/// How one address family's punch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FamilyResult {
    Connected,
    Failed,
    /// The plan refused the pair in this family.
    Refused,
    /// The other family confirmed its path first; this one was stopped.
    Stopped,
    /// One end has no usable address in this family.
    NotShared,
}

/// One address family's part of a punch (`families` in the JSON report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FamilyOutcome {
    pub family: IpFamily,
    /// The family's strategy; null when not shared.
    pub plan: Option<Strategy>,
    pub outcome: FamilyResult,
    /// Why it did not connect; null when it did.
    pub reason: Option<String>,
    /// The far port this end's packets got through to in this family.
    pub port_through: Option<u16>,
    /// From the start signal to this family's connection; null unless connected.
    pub connected_ms: Option<u64>,
}

impl FamilyOutcome {
    /// A family that was not punched (not shared, or refused by its plan).
    pub fn unpunched(family: &FamilyPlan) -> Self {
        let (plan, outcome, reason) = match &family.plan {
            Ok(plan) => (
                Some(plan.strategy),
                FamilyResult::Refused,
                Some(plan.reason.clone()),
            ),
            Err(not_shared) => (
                None,
                FamilyResult::NotShared,
                Some(not_shared.reason.clone()),
            ),
        };
        FamilyOutcome {
            family: family.family,
            plan,
            outcome,
            reason,
            port_through: None,
            connected_ms: None,
        }
    }

    /// A shared family this end did not punch, with why.
    pub fn not_tried(family: &FamilyPlan, reason: &str) -> Self {
        FamilyOutcome {
            outcome: FamilyResult::Stopped,
            reason: Some(reason.to_owned()),
            plan: family.plan.as_ref().ok().map(|p| p.strategy),
            ..FamilyOutcome::unpunched(family)
        }
    }

    /// A family punched to the end (or stopped when `stopped`), from its report; the report's
    /// times count from this family's own start, `delay` after the start signal.
    pub fn punched(family: &FamilyPlan, report: &PunchReport, stopped: bool) -> Self {
        let connected = report.result == PunchResult::Connected;
        let own = report.directions.iter().find(|d| d.from == report.role);
        let outcome = match (connected, stopped) {
            (true, _) => FamilyResult::Connected,
            (false, true) => FamilyResult::Stopped,
            (false, false) if report.strategy == Strategy::Refused => FamilyResult::Refused,
            (false, false) => FamilyResult::Failed,
        };
        FamilyOutcome {
            family: family.family,
            plan: Some(report.strategy),
            outcome,
            reason: match outcome {
                FamilyResult::Connected => None,
                FamilyResult::Stopped => Some("the other family connected first".into()),
                _ => report.reason.clone(),
            },
            port_through: own.and_then(|d| d.port_through),
            connected_ms: connected
                .then(|| report.elapsed_ms + crate::report::millis(family.delay)),
        }
    }
}

impl FamilyOutcome {
    /// A family whose own connection came up but lost the race: stopped, with the port it
    /// got through to.
    pub fn dropped(self) -> Self {
        FamilyOutcome {
            outcome: FamilyResult::Stopped,
            reason: Some("the other family's connection was kept".into()),
            connected_ms: None,
            ..self
        }
    }
}

/// One leg of `--transport both`: its full report, or why it never got to punch (its
/// fingerprint or its call failed).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Attempt {
    Ran(Box<Output>),
    NotRun {
        schema_version: u32,
        result: PunchResult,
        reason: String,
        transport: Transport,
    },
}

impl Attempt {
    pub fn not_run(transport: Transport, reason: String) -> Self {
        Attempt::NotRun {
            schema_version: crate::core::punch::report::SCHEMA_VERSION,
            result: PunchResult::Failed,
            reason,
            transport,
        }
    }

    pub fn transport(&self) -> Transport {
        match self {
            Attempt::Ran(output) => output.report.transport,
            Attempt::NotRun { transport, .. } => *transport,
        }
    }

    pub fn connected(&self) -> bool {
        matches!(self, Attempt::Ran(o) if o.report.result == PunchResult::Connected)
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Attempt::Ran(output) => output.report.reason.as_deref(),
            Attempt::NotRun { reason, .. } => Some(reason),
        }
    }
}

/// The report of `--transport both` (JSON OUTPUT in the man pages): the same schema_version,
/// `transport` "both", a `result` over both legs, and each leg's own report in `attempts`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BothOutput {
    pub schema_version: u32,
    /// `connected` when either leg connected.
    pub result: PunchResult,
    /// Every leg's reason, when none connected.
    pub reason: Option<String>,
    /// Always `both`.
    pub transport: &'static str,
    pub role: Role,
    pub peer_id: String,
    /// The leg whose path carried the data: UDP when it connected, else TCP; null when neither
    /// connected or with --no-data.
    pub data_transport: Option<Transport>,
    /// The UDP leg's report, then the TCP leg's.
    pub attempts: Vec<Attempt>,
}

impl BothOutput {
    pub fn new(role: Role, attempts: Vec<Attempt>, with_data: bool) -> Self {
        let connected = attempts.iter().find(|a| a.connected());
        let result = if connected.is_some() {
            PunchResult::Connected
        } else {
            PunchResult::Failed
        };
        let reason = connected.is_none().then(|| {
            attempts
                .iter()
                .map(|a| {
                    format!(
                        "{}: {}",
                        a.transport().as_str(),
                        a.reason().unwrap_or("no reason given")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        });
        let peer_id = attempts
            .iter()
            .find_map(|a| match a {
                Attempt::Ran(o) => Some(o.peer_id.clone()),
                Attempt::NotRun { .. } => None,
            })
            .unwrap_or_default();
        BothOutput {
            schema_version: crate::core::punch::report::SCHEMA_VERSION,
            result,
            reason,
            transport: "both",
            role,
            peer_id,
            data_transport: connected
                .filter(|_| with_data)
                .map(|attempt| attempt.transport()),
            attempts,
        }
    }

    /// The leg that carried the data.
    pub fn carrier(&self) -> Option<&Output> {
        let transport = self.data_transport?;
        self.attempts.iter().find_map(|a| match a {
            Attempt::Ran(o) if o.report.transport == transport => Some(&**o),
            _ => None,
        })
    }
}

/// `--dry-run --json`: the plan this end would punch by, on stdout, instead of punching.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRun {
    pub schema_version: u32,
    /// Always true.
    pub dry_run: bool,
    /// Always `planned`: the run's outcome, as every final object has one.
    pub result: &'static str,
    pub transport: Transport,
    pub strategy: crate::core::punch::plan::Strategy,
    pub role: Role,
    pub reason: String,
    /// Rounded to four decimals.
    pub expected_success: f64,
    /// 16 hex digits.
    pub call_id: String,
    pub peer: Option<SocketAddr>,
    /// The plan's lines, as `--dry-run` prints them for people.
    pub plan: Vec<String>,
}

impl DryRun {
    pub fn new(plan: &crate::core::punch::plan::PunchPlan) -> Self {
        DryRun {
            schema_version: crate::core::punch::report::SCHEMA_VERSION,
            dry_run: true,
            result: "planned",
            transport: plan.transport,
            strategy: plan.strategy,
            role: plan.role,
            reason: plan.reason.clone(),
            expected_success: (plan.expected_success * 10_000.0).round() / 10_000.0,
            call_id: super::call_id_text(plan.call_id),
            peer: plan.peer,
            plan: plan.describe(),
        }
    }

    /// One JSON line, keys sorted (as the first releases printed it).
    pub fn json(&self) -> String {
        serde_json::to_value(self)
            .expect("a plan serialises")
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::punch::plan::{make_plan, PlanInput, PunchOptions};
    use crate::wire::natlens::NatFacts;

    /// The dry-run object's keys and formats, as its `json!` literal printed them.
    #[test]
    fn the_dry_run_keeps_its_json() {
        let facts = NatFacts::default();
        let plan = make_plan(&PlanInput {
            role: Role::Caller,
            transport: Transport::Udp,
            call_id: 0xAB,
            own: &facts,
            peer: &facts,
            options: &PunchOptions::default(),
        });
        let value: serde_json::Value = serde_json::from_str(&DryRun::new(&plan).json()).unwrap();
        let expected = serde_json::json!({
            "schema_version": crate::core::punch::report::SCHEMA_VERSION,
            "dry_run": true,
            "result": "planned",
            "transport": plan.transport,
            "strategy": plan.strategy,
            "role": plan.role,
            "reason": plan.reason,
            "expected_success": (plan.expected_success * 10_000.0).round() / 10_000.0,
            "call_id": "00000000000000ab",
            "peer": plan.peer,
            "plan": plan.describe(),
        });
        assert_eq!(value, expected);
        assert!(DryRun::new(&plan)
            .json()
            .starts_with(r#"{"call_id":"00000000000000ab","dry_run":true,"expected_success":"#));
    }
}
