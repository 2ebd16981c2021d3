//! `natlens nat --json`'s object: the fingerprint report (`core::fingerprint::Report`, keys
//! documented under JSON OUTPUT) with the outcome envelope after it: `result` and, when not
//! every transport probed was heard, `error`.

use serde::Serialize;

use super::outcome::ErrorObject;
use crate::core::fingerprint::Report;

/// The report and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NatOutput<'a> {
    #[serde(flatten)]
    pub report: &'a Report,
    /// `ok`, or `partial` when a transport probed got no answer (exit status 7).
    pub result: &'static str,
    /// What is missing, with kind `partial`; absent when the result is `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

impl<'a> NatOutput<'a> {
    /// `report`, complete (`error` None) or partial.
    pub fn new(report: &'a Report, error: Option<ErrorObject>) -> Self {
        NatOutput {
            report,
            result: if error.is_some() { "partial" } else { "ok" },
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{failed, Kind};

    /// The envelope comes after the report's own keys; a partial run names what is missing.
    #[test]
    fn the_envelope_follows_the_report() {
        let report = Report::new("192.0.2.1:3478".parse().unwrap());
        let ok = serde_json::to_string(&NatOutput::new(&report, None)).unwrap();
        assert_eq!(
            ok,
            r#"{"schema_version":2,"server":"192.0.2.1:3478","servers":["192.0.2.1:3478"],"verdict":null,"udp":null,"tcp":null,"ipv6":null,"families":{"ipv4":{"probed":true,"server":"192.0.2.1:3478","reason":null},"ipv6":{"probed":false,"server":null,"reason":"not asked"}},"port_mapping":null,"path":null,"result":"ok"}"#
        );
        let missing = failed(Kind::Partial, "no STUN answer from 192.0.2.1:3478 over tcp");
        let partial = NatOutput::new(&report, Some(ErrorObject::of(&missing)));
        assert_eq!(
            serde_json::to_string(&partial).unwrap(),
            r#"{"schema_version":2,"server":"192.0.2.1:3478","servers":["192.0.2.1:3478"],"verdict":null,"udp":null,"tcp":null,"ipv6":null,"families":{"ipv4":{"probed":true,"server":"192.0.2.1:3478","reason":null},"ipv6":{"probed":false,"server":null,"reason":"not asked"}},"port_mapping":null,"path":null,"result":"partial","error":{"kind":"partial","message":"no STUN answer from 192.0.2.1:3478 over tcp"}}"#
        );
    }
}
