//! The report of `natlens listen` and `natlens call` ([`crate::report::punch`]) for people:
//! two tables per leg.

use comfy_table::{ColumnConstraint, ContentArrangement, Table};

use super::terminal::{self, Stream};

use crate::core::punch::report::PunchResult;
use crate::report::outcome::{ErrorObject, WithError};
pub use crate::report::punch::{
    Attempt, BothOutput, Data, FamilyOutcome, FamilyResult, Output, Path,
};

/// Most predicted ports shown per direction; `--json` carries them all.
const PORTS_SHOWN: usize = 6;

/// One leg's report: one JSON object on one line with `--json` (with `error` when the run did
/// not succeed), else its two tables.
pub fn report_text(
    output: &Output,
    error: Option<ErrorObject>,
    json: bool,
) -> serde_json::Result<String> {
    if json {
        return serde_json::to_string(&WithError {
            report: output,
            error,
        });
    }
    let (summary, directions) = fitted(tables(output));
    Ok(format!("{summary}\n{directions}"))
}

/// `--transport both`'s report: one JSON object on one line with `--json` (with `error` when
/// the run did not succeed), else [`both_text`].
pub fn both_report_text(
    output: &BothOutput,
    error: Option<ErrorObject>,
    json: bool,
) -> serde_json::Result<String> {
    if json {
        serde_json::to_string(&WithError {
            report: output,
            error,
        })
    } else {
        Ok(both_text(output))
    }
}

/// `--transport both` for people: each leg's two tables under its name, then the verdict.
pub fn both_text(output: &BothOutput) -> String {
    let mut text = String::new();
    for attempt in &output.attempts {
        let name = attempt.transport().as_str();
        match attempt {
            Attempt::Ran(leg) => {
                let (summary, directions) = fitted(tables(leg));
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

/// Both tables fitted to stderr, where the report usually goes (see `terminal::fit`).
fn fitted((summary, directions): (Table, Table)) -> (Table, Table) {
    (
        terminal::fit(summary, Stream::Stderr),
        terminal::fit(directions, Stream::Stderr),
    )
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
        ("families", families_text(output)),
        ("path", output.path.map_or("-".into(), path_text)),
        ("data", output.data.as_ref().map_or("-".into(), data_text)),
    ];
    for (label, value) in rows {
        summary.add_row(vec![label.to_owned(), value]);
    }
    // Worded without "caller -> callee": scripts find a direction's row by that.
    for d in report.directions.iter().filter(|d| d.via_port_mapping) {
        let (from, to) = (d.from.as_str(), d.to.as_str());
        summary.add_row(vec![
            "port mapping".to_owned(),
            format!("the {from} aimed at the port the {to}'s gateway mapped"),
        ]);
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
    // Scripts (and `lab demo`) find a direction's row and its port through on one line.
    for column in [0, 2] {
        if let Some(column) = directions.column_mut(column) {
            column.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
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

/// Each family's outcome, the winner marked: "IPv6 connected in 30 ms (kept); IPv4 stopped".
fn families_text(output: &Output) -> String {
    let parts: Vec<String> = output
        .families
        .iter()
        .map(|f| {
            let outcome = match (f.outcome, f.connected_ms) {
                (FamilyResult::Connected, Some(ms)) => format!("connected in {ms} ms"),
                (FamilyResult::Connected, None) => "connected".into(),
                (FamilyResult::Failed, _) => "failed".into(),
                (FamilyResult::Refused, _) => "refused".into(),
                (FamilyResult::Stopped, _) => "stopped".into(),
                (FamilyResult::NotShared, _) => format!(
                    "not shared ({})",
                    f.reason.as_deref().unwrap_or("no reason given")
                ),
            };
            let kept = if output.winner == Some(f.family) {
                " (kept)"
            } else {
                ""
            };
            format!("{} {outcome}{kept}", f.family.label())
        })
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("; ")
    }
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
    use crate::core::punch::report::PunchReport;
    use crate::core::punch::report::{Direction, SCHEMA_VERSION};
    use crate::core::punch::{Role, Strategy};
    use crate::core::Transport;
    use crate::wire::natlens::IpFamily;

    fn output() -> Output {
        let direction = |from: Role, ports: Vec<u16>, through| Direction {
            from,
            to: from.peer(),
            predicted_ports: ports,
            port_through: through,
            offset: through.map(|_| 2),
            packets_sent: Some(3),
            first_through_ms: Some(21),
            via_port_mapping: false,
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
            families: vec![
                FamilyOutcome {
                    family: IpFamily::Ipv6,
                    plan: None,
                    outcome: FamilyResult::NotShared,
                    reason: Some("the peer has no IPv6".into()),
                    port_through: None,
                    connected_ms: None,
                },
                FamilyOutcome {
                    family: IpFamily::Ipv4,
                    plan: Some(Strategy::Fanout),
                    outcome: FamilyResult::Connected,
                    reason: None,
                    port_through: Some(40002),
                    connected_ms: Some(25),
                },
            ],
            winner: Some(IpFamily::Ipv4),
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
                "data",
                "families",
                "winner"
            ]
        );
        assert_eq!(json["winner"], "ipv4");
        assert_eq!(json["families"][0]["outcome"], "not-shared");
        assert_eq!(json["families"][1]["port_through"], 40002);
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
            "IPv6 not shared (the peer has no IPv6); IPv4 connected in 25 ms (kept)",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
    }

    #[test]
    fn a_direction_through_a_port_mapping_gets_a_summary_row() {
        let text = |output: &Output| {
            let (summary, _) = tables(output);
            summary.to_string()
        };
        let mut output = output();
        assert!(!text(&output).contains("port mapping"));
        output.report.directions[1].via_port_mapping = true;
        let shown = text(&output);
        let row = shown.lines().find(|l| l.contains("port mapping"));
        assert!(
            row.is_some_and(|r| r.contains("the callee aimed at the port the caller's gateway")),
            "{shown}"
        );
        // Scripts find a direction's row by "callee -> caller": only the directions table has it.
        assert!(!shown.contains("callee -> caller"), "{shown}");
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
        failed.report.reason = Some("no punch packet got through".into());
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
            "udp: no punch packet got through; tcp: no STUN answer over tcp"
        );
        assert_eq!(json["attempts"][1]["result"], "failed");
        assert!(both.carrier().is_none());
    }
}
