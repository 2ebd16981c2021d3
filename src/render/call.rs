//! `natlens call --no-punch` for people: both ends' facts side by side.

use comfy_table::Table;

use super::events::transports_text;
use crate::wire::natlens::NatFacts;

/// Most predicted ports shown in the table; JSON always carries them all.
const PORTS_SHOWN: usize = 8;

/// Both ends' facts side by side.
pub fn facts_table(caller: &str, own: &NatFacts, callee: &str, theirs: &NatFacts) -> Table {
    let unknown = || "not measured".to_string();
    let address = |facts: &NatFacts| facts.observed.map_or("unknown".into(), |a| a.to_string());
    let delta = |facts: &NatFacts| facts.delta.map_or_else(unknown, |d| format!("{d:+}"));
    let ports = |facts: &NatFacts| match facts.predicted_ports.as_slice() {
        [] => unknown(),
        ports if ports.len() <= PORTS_SHOWN => join(ports),
        ports => format!("{} … ({} in all)", join(&ports[..PORTS_SHOWN]), ports.len()),
    };
    let mut table = Table::new();
    table.set_header(vec![
        String::new(),
        format!("{caller} (you)"),
        callee.into(),
    ]);
    table.add_row(vec!["public address".into(), address(own), address(theirs)]);
    table.add_row(vec![
        "transports".into(),
        transports_text(own.transports),
        transports_text(theirs.transports),
    ]);
    table.add_row(vec!["port delta".into(), delta(own), delta(theirs)]);
    table.add_row(vec!["predicted ports".into(), ports(own), ports(theirs)]);
    table
}

fn join(ports: &[u16]) -> String {
    let text: Vec<String> = ports.iter().map(u16::to_string).collect();
    text.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Transport;
    use crate::io::rendezvous::session::own_facts;
    use crate::wire::natlens::Transports;

    fn bob() -> NatFacts {
        NatFacts {
            observed: Some("203.0.113.9:51000".parse().unwrap()),
            transports: Transports {
                udp: true,
                tcp: true,
            },
            delta: Some(2),
            predicted_ports: (51002..51022).step_by(2).collect(),
            profile: None,
            port_mapping: None,
            other_family: None,
        }
    }

    #[test]
    fn table_shows_both_ends() {
        let own = own_facts(Transport::Udp, "198.51.100.7:40001".parse().ok());
        let text = facts_table("alice", &own, "bob", &bob()).to_string();
        for needle in [
            "alice (you)",
            "203.0.113.9:51000",
            "198.51.100.7:40001",
            "udp, tcp",
            "+2",
            "… (10 in all)",
            "not measured",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
    }
}
