//! The report of `natlens listen` and `natlens call`: one JSON object (the punch report plus
//! the call, the path and the data exchange) and the same as two tables for people.

use std::net::SocketAddr;

use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

use crate::core::punch::report::{PunchReport, PunchResult};
use crate::core::punch::Role;
use crate::core::Transport;

/// Most predicted ports shown per direction; `--json` carries them all.
const PORTS_SHOWN: usize = 6;

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

    fn transport(&self) -> Transport {
        match self {
            Attempt::Ran(output) => output.report.transport,
            Attempt::NotRun { transport, .. } => *transport,
        }
    }

    fn connected(&self) -> bool {
        matches!(self, Attempt::Ran(o) if o.report.result == PunchResult::Connected)
    }

    fn reason(&self) -> Option<&str> {
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

/// `--transport both` for people: each leg's two tables under its name, then the verdict.
pub fn both_text(output: &BothOutput) -> String {
    let mut text = String::new();
    for attempt in &output.attempts {
        let name = attempt.transport().as_str();
        match attempt {
            Attempt::Ran(leg) => {
                let (summary, directions) = tables(leg);
                text.push_str(&format!("{name} attempt:\n{summary}\n{directions}\n"));
            }
            Attempt::NotRun { reason, .. } => {
                text.push_str(&format!("{name} attempt: not run: {reason}\n"));
            }
        }
    }
    let connected: Vec<&str> = output
        .attempts
        .iter()
        .filter(|a| a.connected())
        .map(|a| a.transport().as_str())
        .collect();
    let verdict = match (connected.is_empty(), output.data_transport) {
        (true, _) => format!(
            "both: failed: {}",
            output.reason.as_deref().unwrap_or("no reason given")
        ),
        (false, Some(data)) => format!(
            "both: connected over {}; data over {}",
            connected.join(" and "),
            data.as_str()
        ),
        (false, None) => format!("both: connected over {}", connected.join(" and ")),
    };
    text.push_str(&verdict);
    text
}

/// The summary table, then the directions table.
pub fn tables(output: &Output) -> (Table, Table) {
    let report = &output.report;
    let mut summary = Table::new();
    summary.set_content_arrangement(ContentArrangement::Dynamic);
    let result = match report.result {
        PunchResult::Connected => format!("connected in {} ms", report.elapsed_ms),
        PunchResult::Failed => format!(
            "failed after {} ms: {}",
            report.elapsed_ms,
            report.reason.as_deref().unwrap_or("no reason given")
        ),
    };
    let rows = [
        (
            "peer",
            format!("{} (call {})", output.peer_id, output.call_id),
        ),
        ("punch", result),
        (
            "strategy",
            format!(
                "{} over {}",
                report.strategy.as_str(),
                report.transport.as_str()
            ),
        ),
        (
            "expected success",
            format!("{:.1}%", report.expected_success * 100.0),
        ),
        ("role", report.role.as_str().to_owned()),
        ("path", output.path.map_or("-".into(), path_text)),
        ("data", output.data.as_ref().map_or("-".into(), data_text)),
    ];
    for (label, value) in rows {
        summary.add_row(vec![label.to_owned(), value]);
    }
    let mut directions = Table::new();
    directions.set_content_arrangement(ContentArrangement::Dynamic);
    directions.set_header(vec![
        "direction",
        "predicted ports",
        "port through",
        "offset",
        "packets sent",
        "first through",
    ]);
    for d in &report.directions {
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        directions.add_row(vec![
            format!("{} -> {}", d.from.as_str(), d.to.as_str()),
            ports_text(&d.predicted_ports),
            or_dash(d.port_through.map(|p| p.to_string())),
            or_dash(d.offset.map(|o| o.to_string())),
            or_dash(d.packets_sent.map(|n| n.to_string())),
            or_dash(d.first_through_ms.map(|ms| format!("{ms} ms"))),
        ]);
    }
    (summary, directions)
}

fn path_text(path: Path) -> String {
    match path.local {
        Some(local) => format!("{local} -> {}", path.peer),
        None => format!("-> {}", path.peer),
    }
}

fn data_text(data: &Data) -> String {
    let counts = format!(
        "sent {} bytes, received {} bytes in {} ms ({} retransmitted)",
        data.bytes_sent, data.bytes_received, data.elapsed_ms, data.retransmissions
    );
    match &data.reason {
        Some(reason) => format!("failed: {reason}; {counts}"),
        None => counts,
    }
}

fn ports_text(ports: &[u16]) -> String {
    let shown: Vec<String> = ports.iter().take(PORTS_SHOWN).map(u16::to_string).collect();
    match ports.len() {
        0 => "-".into(),
        n if n <= PORTS_SHOWN => shown.join(" "),
        n => format!("{} … ({n})", shown.join(" ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::punch::report::{Direction, SCHEMA_VERSION};
    use crate::core::punch::{Role, Strategy};
    use crate::core::Transport;

    fn output() -> Output {
        let direction = |from: Role, ports: Vec<u16>, through| Direction {
            from,
            to: from.peer(),
            predicted_ports: ports,
            port_through: through,
            offset: through.map(|_| 2),
            packets_sent: Some(3),
            first_through_ms: Some(21),
        };
        Output {
            report: PunchReport {
                schema_version: SCHEMA_VERSION,
                result: PunchResult::Connected,
                reason: None,
                transport: Transport::Udp,
                strategy: Strategy::Fanout,
                role: Role::Caller,
                elapsed_ms: 25,
                expected_success: 1.0,
                directions: vec![
                    direction(Role::Caller, (40000..40010).collect(), Some(40002)),
                    direction(Role::Callee, vec![5555], Some(5555)),
                ],
            },
            peer_id: "bob".into(),
            call_id: "00000000000000ab".into(),
            path: Some(Path {
                local: "192.0.2.10:5555".parse().ok(),
                peer: "203.0.113.2:40002".parse().unwrap(),
            }),
            data: Some(Data {
                result: "complete",
                reason: None,
                bytes_sent: 1024,
                bytes_received: 0,
                retransmissions: 0,
                elapsed_ms: 3,
            }),
        }
    }

    #[test]
    fn json_is_the_punch_report_then_the_call_path_and_data() {
        let text = serde_json::to_string(&output()).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        // Top-level keys in the order printed (serde_json::Value would sort them).
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_by_key(|key| text.find(&format!("\"{key}\":")).unwrap());
        assert_eq!(
            keys,
            [
                "schema_version",
                "result",
                "reason",
                "transport",
                "strategy",
                "role",
                "elapsed_ms",
                "expected_success",
                "directions",
                "peer_id",
                "call_id",
                "path",
                "data"
            ]
        );
        assert_eq!(json["path"]["peer"], "203.0.113.2:40002");
        assert_eq!(json["data"]["bytes_sent"], 1024);
        assert_eq!(json["directions"][0]["port_through"], 40002);
    }

    #[test]
    fn tables_show_the_result_and_each_direction() {
        let (summary, directions) = tables(&output());
        let text = format!("{summary}\n{directions}");
        for needle in [
            "connected in 25 ms",
            "fanout over udp",
            "192.0.2.10:5555 -> 203.0.113.2:40002",
            "sent 1024 bytes",
            "caller -> callee",
            "40000 40001 40002 40003 40004 40005 … (10)",
            "21 ms",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
    }

    /// `--transport both`: the result over both legs, the data's leg, each leg's own report
    /// inside `attempts`, and a leg that never punched as a failed stub with its reason.
    #[test]
    fn both_reports_each_attempt_and_the_leg_that_carried_the_data() {
        let udp = output();
        let mut tcp = output();
        tcp.report.transport = Transport::Tcp;
        tcp.data = None;
        let both = BothOutput::new(
            Role::Caller,
            vec![Attempt::Ran(Box::new(udp)), Attempt::Ran(Box::new(tcp))],
            true,
        );
        let json = serde_json::to_value(&both).unwrap();
        assert_eq!(json["schema_version"], SCHEMA_VERSION);
        assert_eq!(json["transport"], "both");
        assert_eq!(json["result"], "connected");
        assert_eq!(json["data_transport"], "udp");
        assert_eq!(json["attempts"][0]["transport"], "udp");
        assert_eq!(json["attempts"][1]["transport"], "tcp");
        assert_eq!(json["attempts"][1]["directions"][0]["port_through"], 40002);
        assert_eq!(both.carrier().unwrap().report.transport, Transport::Udp);
        let text = both_text(&both);
        assert!(
            text.contains("udp attempt:") && text.contains("tcp attempt:"),
            "{text}"
        );
        assert!(
            text.ends_with("both: connected over udp and tcp; data over udp"),
            "{text}"
        );

        let mut failed = output();
        failed.report.result = PunchResult::Failed;
        failed.report.reason = Some("no probe got through".into());
        let both = BothOutput::new(
            Role::Callee,
            vec![
                Attempt::Ran(Box::new(failed)),
                Attempt::not_run(Transport::Tcp, "no STUN answer over tcp".into()),
            ],
            true,
        );
        let json = serde_json::to_value(&both).unwrap();
        assert_eq!(json["result"], "failed");
        assert_eq!(json["data_transport"], serde_json::Value::Null);
        assert_eq!(
            json["reason"],
            "udp: no probe got through; tcp: no STUN answer over tcp"
        );
        assert_eq!(json["attempts"][1]["result"], "failed");
        assert!(both.carrier().is_none());
    }
}
