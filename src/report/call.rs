//! `natlens call --no-punch`'s report: the facts the callee answered with.

use std::net::SocketAddr;

use serde::Serialize;

use crate::wire::natlens::NatFacts;

/// Version of the JSON object `natlens call --json --no-punch` prints; bumped on incompatible
/// changes. 2: `own_observed` became `own_public_address`, `callee_facts.observed`
/// `callee_facts.public_address`.
pub const SCHEMA_VERSION: u32 = 2;

/// The documented `natlens call --no-punch --json` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallAnswer {
    pub schema_version: u32,
    pub caller: String,
    pub callee: String,
    /// 16 hex digits.
    pub call_id: String,
    pub callee_facts: NatFacts,
    /// Where the server saw the caller's session (`own_public_address` in JSON).
    #[serde(rename = "own_public_address")]
    pub own_observed: Option<SocketAddr>,
}

impl CallAnswer {
    /// One JSON line, keys sorted (as the first releases printed it), with `result` `ok`: the
    /// final object of a facts-only call that got its answer.
    pub fn json(&self) -> String {
        let mut value = serde_json::to_value(self).expect("an answer serialises");
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("result".into(), "ok".into());
        }
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::natlens::Transports;

    #[test]
    fn the_answer_keeps_its_json() {
        let answer = CallAnswer {
            schema_version: SCHEMA_VERSION,
            caller: "alice".into(),
            callee: "bob".into(),
            call_id: super::super::call_id_text(0x1234),
            callee_facts: NatFacts {
                observed: Some("203.0.113.9:51000".parse().unwrap()),
                transports: Transports {
                    udp: true,
                    tcp: true,
                },
                delta: Some(2),
                predicted_ports: vec![51002, 51004],
                profile: None,
                port_mapping: None,
                other_family: None,
            },
            own_observed: "198.51.100.7:40001".parse().ok(),
        };
        assert_eq!(
            answer.json(),
            r#"{"call_id":"0000000000001234","callee":"bob","callee_facts":{"delta":2,"predicted_ports":[51002,51004],"public_address":"203.0.113.9:51000","transports":{"tcp":true,"udp":true}},"caller":"alice","own_public_address":"198.51.100.7:40001","result":"ok","schema_version":2}"#
        );
    }
}
