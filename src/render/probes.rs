//! `-v`: every probe of a fingerprint, one line each, in the order they were sent: which socket
//! sent what to where, and what came back. The detail behind the report's verdicts, for a
//! network engineer holding it against a packet capture.

use std::time::Instant;

use crate::core::fingerprint::{Observation, Socket, Target};
use crate::io::prober::Fingerprint;

/// The lines of one transport's probes, earliest first.
pub fn lines(fingerprint: &Fingerprint) -> Vec<String> {
    let mut observations: Vec<&Observation> = fingerprint.observations.iter().collect();
    observations.sort_by_key(|o| o.sent_at);
    let start = observations.first().map(|o| o.sent_at);
    observations
        .into_iter()
        .map(|o| line(o, start.unwrap_or(o.sent_at)))
        .collect()
}

/// "udp +12.0 ms sample 3 10.0.0.2:50001 -> 192.0.2.1:3478: public 198.51.100.1:40003 in 1.2 ms".
fn line(o: &Observation, start: Instant) -> String {
    let at = o.sent_at.saturating_duration_since(start).as_secs_f64() * 1e3;
    let change = match (o.change.change_ip, o.change.change_port) {
        (false, false) => String::new(),
        (true, true) => " CHANGE-REQUEST ip+port".into(),
        (true, false) => " CHANGE-REQUEST ip".into(),
        (false, true) => " CHANGE-REQUEST port".into(),
    };
    let handshake = o
        .handshake
        .map(|h| format!(" (connected in {:.1} ms)", h.as_secs_f64() * 1e3))
        .unwrap_or_default();
    format!(
        "{} +{at:.1} ms {} {} -> {} ({}){change}{handshake}: {}",
        o.transport.as_str(),
        socket(o.socket),
        o.local,
        o.to,
        target(o.target),
        answer(o),
    )
}

fn socket(socket: Socket) -> String {
    match socket {
        Socket::Mapping => "mapping socket".into(),
        Socket::Filtering => "filtering socket".into(),
        Socket::Hairpin => "hairpin socket".into(),
        Socket::Sample(n) => format!("sample {n}"),
    }
}

fn target(target: Target) -> String {
    match target {
        Target::Primary => "primary".into(),
        Target::AltPort => "other port".into(),
        Target::AltIp => "other IP".into(),
        Target::AltBoth => "other IP and port".into(),
        Target::OwnPublic => "own public address".into(),
        Target::Extra(n) => format!("server {}", u16::from(n) + 2),
    }
}

/// What came back: the public address and the round trip, an error code, or nothing.
fn answer(o: &Observation) -> String {
    let Some(answer) = &o.answer else {
        return "no answer".into();
    };
    let rtt = o
        .rtt()
        .map(|rtt| format!(" in {:.1} ms", rtt.as_secs_f64() * 1e3))
        .unwrap_or_default();
    let from = if answer.source == o.to {
        String::new()
    } else {
        format!(" from {}", answer.source)
    };
    match (answer.error_code, answer.public()) {
        (Some(code), _) => format!("error {code}{from}{rtt}"),
        (None, Some(public)) => format!("public {public}{from}{rtt}"),
        (None, None) => format!("answer without an address{from}{rtt}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fingerprint::Answer;
    use crate::core::Transport;
    use crate::wire::attr::ChangeRequest;
    use std::time::Duration;

    #[test]
    fn each_probe_says_what_went_where_and_what_came_back() {
        let sent = Instant::now();
        let to = "192.0.2.1:3478".parse().unwrap();
        let mut answered = Answer::arrival(to, sent + Duration::from_millis(2));
        answered.xor_mapped = "198.51.100.1:40003".parse().ok();
        let probe = |socket, answer| Observation {
            transport: Transport::Udp,
            socket,
            target: Target::Primary,
            change: ChangeRequest::default(),
            local: "10.0.0.2:50001".parse().unwrap(),
            to,
            sent_at: sent,
            handshake: None,
            answer,
        };
        let fingerprint = Fingerprint {
            transport: Transport::Udp,
            observations: vec![
                probe(Socket::Sample(3), Some(answered)),
                probe(Socket::Mapping, None),
            ],
            plan: None,
            unreachable: None,
            last_sent_at: sent,
            tcp_filtering: None,
        };
        let lines = lines(&fingerprint);
        assert_eq!(
            lines,
            [
                "udp +0.0 ms sample 3 10.0.0.2:50001 -> 192.0.2.1:3478 (primary): public \
                 198.51.100.1:40003 in 2.0 ms",
                "udp +0.0 ms mapping socket 10.0.0.2:50001 -> 192.0.2.1:3478 (primary): no answer",
            ]
        );
    }
}
