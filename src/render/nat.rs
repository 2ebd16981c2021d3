//! The `natlens nat` report for people: a table with one column per transport, and the
//! narrative in plain language. Every "not measured" cell says why when the report can tell.

use std::net::SocketAddr;

use comfy_table::{ContentArrangement, Table};

use crate::core::fingerprint::classify::{Behaviour, ChangeRequestSupport};
use crate::core::fingerprint::predict::{PresetDelta, TwoProbe};
use crate::core::fingerprint::verdict::PeerKind;
use crate::core::fingerprint::{FamilyReport, Pattern, Report, Rule, Translation, TransportReport};
use crate::core::Transport;

/// Most candidate ports shown; `--json` carries them all.
const CANDIDATES_SHOWN: usize = 8;

/// One row: its label and the cell of each transport.
type Row = (&'static str, fn(Transport, &TransportReport) -> String);

const ROWS: [Row; 19] = [
    ("public address", |_, r| {
        r.public_address
            .map_or("no answer".into(), |a| a.to_string())
    }),
    ("RFC 3489 type", |_, r| {
        r.rfc3489_type
            .map_or("-".into(), |t| t.as_str().to_string())
    }),
    ("punching", punching),
    ("mapping", mapping),
    ("filtering", filtering),
    ("CHANGE-REQUEST", change_request),
    ("hairpinning", |_, r| match (r.hairpinning, r.behind_nat) {
        (None, Some(false)) => "- (no NAT)".into(),
        (hairpinning, _) => yes_no(hairpinning, "yes", "no"),
    }),
    ("ALG", |_, r| {
        yes_no(r.alg, "rewrites MAPPED-ADDRESS", "none seen")
    }),
    ("allocation", allocation),
    ("  sample ports", sample_ports),
    ("  gaps", gaps),
    ("  shared counter", |transport, r| {
        match r.allocation.shared_counter {
            Some(true) => match transport {
                Transport::Udp => "yes, with TCP".into(),
                Transport::Tcp => "yes, with UDP".into(),
            },
            Some(false) => "no".into(),
            None => "-".into(),
        }
    }),
    ("prediction", prediction),
    ("  candidates", candidates),
    ("  two-probe rule", |_, r| two_probe(r.prediction.two_probe)),
    ("  preset-delta rule", |_, r| {
        preset_delta(r.prediction.preset_delta)
    }),
    ("mapping lifetime", |_, r| mapping_lifetime(r)),
    ("  refreshed by", |_, r| refreshed_by(r)),
    ("RTT", |_, r| {
        r.rtt_ms
            .map_or("unknown".into(), |ms| format!("{ms:.1} ms"))
    }),
];

/// `--lifetime`: "19.6 s (19.0-20.1 s), keepalive 15.2 s"; "-" when not measured.
fn mapping_lifetime(r: &TransportReport) -> String {
    let facts = &r.lifetime;
    let secs = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
    let Some([Some(lo), hi]) = facts.mapping_lifetime_bracket_ms else {
        return "-".into();
    };
    let keepalive = facts
        .mapping_keepalive_ms
        .map_or(String::new(), |ms| format!(", keepalive {}", secs(ms)));
    match (facts.mapping_lifetime_ms, hi) {
        (Some(found), Some(hi)) => format!(
            "{} ({:.1}-{}){keepalive}",
            secs(found),
            lo as f64 / 1000.0,
            secs(hi)
        ),
        _ => format!("over {}{keepalive}", secs(lo)),
    }
}

/// Which traffic refreshed a mapping, with the outermost NAT's hop when TTL-limited refreshes
/// found it; "-" when not tested.
fn refreshed_by(r: &TransportReport) -> String {
    let facts = &r.lifetime;
    let (outbound, inbound) = (
        facts.mapping_refreshed_by_outbound,
        facts.mapping_refreshed_by_inbound,
    );
    if outbound.is_none() && inbound.is_none() {
        return "-".into();
    }
    let word = |v: Option<bool>| match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    };
    let mut text = format!("outbound {}, inbound {}", word(outbound), word(inbound));
    if let Some(hop) = facts.ttl_refresh_outermost_nat_hop {
        text += &format!("; outermost NAT at hop {hop}");
    }
    text
}

/// The one-line verdict that opens the report (see `core::fingerprint::verdict`).
pub fn verdict(report: &Report) -> Option<String> {
    report.verdict.clone()
}

/// The table: a row per fact, a column per transport measured; rows that are "-" in every
/// column are left out. Printers pass it through [`terminal::fit`](super::terminal::fit) for
/// the width and charset of their stream.
pub fn table(report: &Report) -> Table {
    table_of(columns(report))
}

/// The IPv6 table, as [`table`] for IPv4.
pub fn family_table(family: &FamilyReport) -> Table {
    table_of(transports(&family.udp, &family.tcp))
}

/// The IPv6 narrative, as [`narrative`] for IPv4.
pub fn family_narrative(family: &FamilyReport) -> String {
    narrative_of(transports(&family.udp, &family.tcp))
}

/// The line above a family's table when the report holds two: "IPv4, server 192.0.2.1:3478:",
/// "IPv6, server [2001:db8::1]:3478: prefix translation (NPTv6) …".
pub fn family_heading(name: &str, server: SocketAddr, translation: Option<Translation>) -> String {
    let words = match translation {
        None => "",
        Some(Translation::None) => {
            " no translation: the server sees this host's own address (a firewall may still \
             filter)."
        }
        Some(Translation::Nptv6) => {
            " prefix translation (NPTv6): the server sees this host's interface ID under \
             another prefix; ports are kept."
        }
        Some(Translation::Nat66) => {
            " NAT66: the server sees another address altogether, with the mapping and \
             allocation below."
        }
    };
    format!("{name}, server {server}:{words}")
}

/// "IPv6 not probed: no --server has an IPv6 address.", one line per family not probed.
pub fn not_probed(report: &Report) -> Vec<String> {
    let families = [
        ("IPv4", &report.families.ipv4),
        ("IPv6", &report.families.ipv6),
    ];
    families
        .into_iter()
        .filter(|(_, status)| !status.probed)
        .map(|(name, status)| {
            let why = status.reason.as_deref().unwrap_or("not asked");
            format!("{name} not probed: {why}.")
        })
        .collect()
}

fn table_of(columns: Vec<(Transport, &TransportReport)>) -> Table {
    let mut table = Table::new();
    table.set_content_arrangement(ContentArrangement::Dynamic);
    let mut header = vec![String::new()];
    header.extend(columns.iter().map(|(t, _)| t.as_str().to_uppercase()));
    table.set_header(header);
    for (label, cell) in ROWS {
        let cells: Vec<String> = columns.iter().map(|(t, r)| cell(*t, r)).collect();
        // A row with nothing to say in any column (no gaps, no shared counter, no
        // candidates on a NAT that has none) is left out: the table stays short.
        if !cells.is_empty() && cells.iter().all(|c| c == "-") {
            continue;
        }
        let mut row = vec![label.to_string()];
        row.extend(cells);
        table.add_row(row);
    }
    table
}

/// The narrative: one paragraph per transport, each on one line; printers wrap it to their
/// stream with [`terminal::prose`](super::terminal::prose).
pub fn narrative(report: &Report) -> String {
    narrative_of(columns(report))
}

fn narrative_of(columns: Vec<(Transport, &TransportReport)>) -> String {
    let paragraphs: Vec<String> = columns
        .into_iter()
        .map(|(transport, r)| r.narrative(transport).join(" "))
        .collect();
    paragraphs.join("\n\n")
}

fn columns(report: &Report) -> Vec<(Transport, &TransportReport)> {
    transports(&report.udp, &report.tcp)
}

fn transports<'a>(
    udp: &'a Option<TransportReport>,
    tcp: &'a Option<TransportReport>,
) -> Vec<(Transport, &'a TransportReport)> {
    let udp = udp.iter().map(|r| (Transport::Udp, r));
    let tcp = tcp.iter().map(|r| (Transport::Tcp, r));
    udp.chain(tcp).collect()
}

fn yes_no(value: Option<bool>, yes: &str, no: &str) -> String {
    match value {
        Some(true) => yes.into(),
        Some(false) => no.into(),
        None => "not measured".into(),
    }
}

/// Why mapping or filtering has no verdict.
fn untested(r: &TransportReport) -> String {
    if r.public_address.is_none() {
        "not measured".into()
    } else if !r.full_mode {
        "not tested (server lacks RFC 5780)".into()
    } else {
        "undecided (answers lost)".into()
    }
}

fn behaviour(b: Behaviour) -> String {
    b.as_str().into()
}

fn mapping(_: Transport, r: &TransportReport) -> String {
    let by_ip = match r.mapping_varies_by_dest_ip {
        Some(true) => "varies by server IP",
        Some(false) => "same at every server IP",
        None => return r.mapping.map_or_else(|| untested(r), behaviour),
    };
    match r.mapping {
        Some(mapping) => format!("{}; {by_ip}", mapping.as_str()),
        None => by_ip.into(),
    }
}

/// The difficulty and the planner's strategy toward each peer kind.
fn punching(_: Transport, r: &TransportReport) -> String {
    let Some(reach) = r.punch else {
        return "-".into();
    };
    let strategies: Vec<String> = PeerKind::ALL
        .iter()
        .map(|&kind| format!("{} {}", kind.as_str(), reach.toward(kind).as_str()))
        .collect();
    format!("{}: {}", reach.difficulty().as_str(), strategies.join(", "))
}

fn filtering(transport: Transport, r: &TransportReport) -> String {
    if let Some(filtering) = r.filtering {
        return behaviour(filtering);
    }
    match (transport, r.change_request) {
        (Transport::Tcp, _) if r.public_address.is_some() => match &r.filtering_reason {
            Some(reason) => format!("unknown ({reason})"),
            None => untested(r),
        },
        (_, Some(ChangeRequestSupport::Ignored)) => {
            "unknown (server ignored CHANGE-REQUEST)".into()
        }
        (_, Some(ChangeRequestSupport::Refused)) => {
            "unknown (server refused CHANGE-REQUEST)".into()
        }
        _ => untested(r),
    }
}

fn change_request(_: Transport, r: &TransportReport) -> String {
    match r.change_request {
        Some(ChangeRequestSupport::Honoured) => "honoured".into(),
        Some(ChangeRequestSupport::Ignored) => "ignored".into(),
        Some(ChangeRequestSupport::Refused) => "refused".into(),
        None if r.public_address.is_none() => "not measured".into(),
        None if !r.full_mode => "not asked (server lacks RFC 5780)".into(),
        // Silence: a filtering NAT or a server that drops such requests.
        None => "no answer came".into(),
    }
}

fn allocation(_: Transport, r: &TransportReport) -> String {
    let a = &r.allocation;
    let sure = format!("{:.0}% fit", a.confidence * 100.0);
    let jitter = match a.jitter {
        Some(jitter) if jitter > 0.0 => format!(", jitter {jitter:.2} ports/sample"),
        _ => String::new(),
    };
    match (a.pattern, a.delta) {
        (Some(Pattern::Sequential), Some(delta)) => {
            format!("sequential, delta {delta:+} ({sure}{jitter})")
        }
        (Some(Pattern::Preserving), _) => format!("preserving ({sure})"),
        (Some(Pattern::Random), _) => format!("random ({sure})"),
        (Some(Pattern::Sequential), None) => format!("sequential ({sure})"),
        (None, _) => format!("unknown ({} of {} answered)", a.answered, a.samples),
    }
}

fn sample_ports(_: Transport, r: &TransportReport) -> String {
    let a = &r.allocation;
    if a.ports.is_empty() {
        return "-".into();
    }
    let ports: Vec<String> = a
        .ports
        .iter()
        .map(|p| p.map_or("lost".into(), |p| p.to_string()))
        .collect();
    format!(
        "{} ({} of {} answered)",
        ports.join(" "),
        a.answered,
        a.samples
    )
}

fn gaps(_: Transport, r: &TransportReport) -> String {
    let a = &r.allocation;
    if a.pattern != Some(Pattern::Sequential) {
        return "-".into();
    }
    let rate = a
        .foreign_flows_per_second
        .map(|rate| format!(", {rate:.1} other flows/s"))
        .unwrap_or_default();
    if a.gaps.is_empty() {
        return format!("none{rate}");
    }
    let gaps: Vec<String> = a
        .gaps
        .iter()
        .map(|g| format!("#{}-#{}: {} taken", g.after, g.before, g.foreign))
        .collect();
    format!("{}{rate}", gaps.join("; "))
}

fn prediction(_: Transport, r: &TransportReport) -> String {
    let p = &r.prediction;
    match (p.rule, p.next_port) {
        (Some(Rule::LocalPort), _) => "local port (public port = local port)".into(),
        (Some(Rule::Sequential), Some(next)) => format!("sequential: next port {next}"),
        (Some(Rule::Sequential), None) => "sequential".into(),
        (None, _) if r.allocation.pattern == Some(Pattern::Random) => "unpredictable".into(),
        (None, _) => "not possible (too few samples)".into(),
    }
}

fn candidates(_: Transport, r: &TransportReport) -> String {
    let ports = &r.prediction.candidates;
    let shown: Vec<String> = ports
        .iter()
        .take(CANDIDATES_SHOWN)
        .map(u16::to_string)
        .collect();
    match ports.len() {
        0 => "-".into(),
        n if n <= CANDIDATES_SHOWN => shown.join(" "),
        n => format!("{} … ({n} in all)", shown.join(" ")),
    }
}

fn port(port: Option<u16>) -> String {
    port.map_or("out of range".into(), |p| p.to_string())
}

fn hit(hit: Option<bool>) -> &'static str {
    match hit {
        Some(true) => "hit",
        Some(false) => "miss",
        None => "unchecked",
    }
}

fn two_probe(rule: Option<TwoProbe>) -> String {
    let Some(rule) = rule else {
        return "not checked".into();
    };
    format!(
        "{}, {} (delta {:+}) → {}: {}",
        rule.p1,
        rule.p2,
        rule.delta,
        port(rule.next_port),
        hit(rule.hit)
    )
}

fn preset_delta(rule: Option<PresetDelta>) -> String {
    let Some(rule) = rule else {
        return "not checked".into();
    };
    format!(
        "{} {:+} → {}: {}",
        rule.port,
        rule.delta,
        port(rule.next_port),
        hit(rule.hit)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fingerprint::predict::{preset_delta, two_probe, Prediction};
    use crate::core::fingerprint::{Allocation, Gap};

    fn sequential_udp() -> TransportReport {
        let mut two = two_probe(40003, 40004);
        two.hit = Some(true);
        let mut preset = preset_delta(40003, 2);
        preset.hit = Some(false);
        TransportReport {
            public_address: "198.51.100.1:40000".parse().ok(),
            behind_nat: Some(true),
            rtt_ms: Some(40.0),
            full_mode: true,
            mapping: Some(Behaviour::AddressAndPortDependent),
            mapping_varies_by_dest_ip: None,
            filtering: Some(Behaviour::AddressAndPortDependent),
            filtering_reason: None,
            change_request: None,
            hairpinning: Some(false),
            alg: Some(false),
            allocation: Allocation {
                pattern: Some(Pattern::Sequential),
                delta: Some(1),
                jitter: Some(0.0),
                confidence: 0.77,
                samples: 4,
                answered: 3,
                ports: vec![Some(40003), Some(40004), None, Some(40012)],
                gaps: vec![Gap {
                    after: 1,
                    before: 3,
                    foreign: 6,
                }],
                foreign_flows_per_second: Some(20.0),
                shared_counter: Some(true),
            },
            prediction: Prediction {
                rule: Some(Rule::Sequential),
                next_port: Some(40013),
                candidates: (40013..40029).collect(),
                two_probe: Some(two),
                preset_delta: Some(preset),
            },
            lifetime: Default::default(),
            rfc3489_type: None,
            difficulty: None,
            punch: None,
        }
    }

    fn silent_tcp() -> TransportReport {
        let silent = crate::core::fingerprint::analyse(&[], &Default::default());
        assert_eq!(silent.public_address, None);
        silent
    }

    #[test]
    fn lifetime_rows_show_only_when_measured() {
        let mut report = Report::new("192.0.2.1:3478".parse().unwrap());
        report.udp = Some(sequential_udp());
        let text = table(&report).to_string();
        assert!(!text.contains("mapping lifetime"), "{text}");
        let udp = report.udp.as_mut().unwrap();
        udp.lifetime = crate::core::fingerprint::lifetime::LifetimeFacts {
            mapping_lifetime_ms: Some(19_554),
            mapping_lifetime_bracket_ms: Some([Some(18_985), Some(20_124)]),
            mapping_keepalive_ms: Some(15_188),
            mapping_refreshed_by_outbound: Some(true),
            mapping_refreshed_by_inbound: Some(false),
            ttl_refresh_outermost_nat_hop: Some(2),
        };
        let text = table(&report).to_string();
        for needle in [
            "mapping lifetime",
            "19.6 s (19.0-20.1 s), keepalive 15.2 s",
            "outbound yes, inbound no; outermost NAT at hop 2",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
    }

    #[test]
    fn table_shows_every_fact_per_transport() {
        let mut report = Report::new("192.0.2.1:3478".parse().unwrap());
        report.udp = Some(sequential_udp());
        report.tcp = Some(silent_tcp());
        let text = table(&report).to_string();
        for needle in [
            "UDP",
            "TCP",
            "198.51.100.1:40000",
            "address-and-port-dependent",
            "no answer came",
            "not measured",
            "sequential, delta +1 (77% fit)",
            "40003 40004 lost 40012 (3 of 4 answered)",
            "#1-#3: 6 taken, 20.0 other flows/s",
            "yes, with TCP",
            "sequential: next port 40013",
            "40013 40014 40015 40016 40017 40018 40019 40020 … (16 in all)",
            "40003, 40004 (delta +1) → 40005: hit",
            "40003 +2 → 40005: miss",
            "40.0 ms",
            "no answer",
            "unknown (0 of 0 answered)",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
    }

    #[test]
    fn only_measured_transports_get_a_column() {
        let mut report = Report::new("192.0.2.1:3478".parse().unwrap());
        report.tcp = Some(silent_tcp());
        let text = table(&report).to_string();
        let header = text.lines().nth(1).unwrap();
        assert!(header.contains("TCP") && !header.contains("UDP"), "{text}");
        assert!(narrative(&report).starts_with("Over TCP, the server never answered"));
    }

    #[test]
    fn narrative_has_one_paragraph_per_transport() {
        let mut report = Report::new("192.0.2.1:3478".parse().unwrap());
        report.udp = Some(sequential_udp());
        report.tcp = Some(silent_tcp());
        let text = narrative(&report);
        let paragraphs: Vec<&str> = text.split("\n\n").collect();
        assert_eq!(paragraphs.len(), 2, "{text}");
        assert!(paragraphs[0].starts_with("Over UDP, the server sees you as 198.51.100.1:40000."));
        assert_eq!(text.lines().count(), 3, "one line per paragraph:\n{text}");
    }

    /// The nat report's facts, both transports, in an 80-column pipe: nothing wider.
    #[test]
    fn the_table_fits_80_columns() {
        use super::super::terminal::{fit_to, Charset};
        let mut report = Report::new("192.0.2.1:3478".parse().unwrap());
        report.udp = Some(sequential_udp());
        report.tcp = Some(sequential_udp());
        for charset in [Charset::Utf8, Charset::Ascii] {
            let text = fit_to(table(&report), 80, charset).to_string();
            let widest = text.lines().map(|l| l.chars().count()).max().unwrap();
            assert!(widest <= 80, "{widest} columns:\n{text}");
            assert!(text.contains("sequential: next port"), "{text}");
        }
    }
}
