//! TCP filtering (RFC 5382 section 4.3) from the server's crafted SYNs.
//!
//! Over the filtering control's connection (see `plan::tcp_filtering_control`) the client asks
//! the server, with CHANGE-REQUEST, to send one SYN from its other IP and port and one from its
//! other port only, to the connection's public address; a listener on the connection's local
//! port answers a SYN that gets through with a SYN-ACK, which the server sees and reports in
//! NL-SYN-ANSWERED. The tests run beside the allocation samples, over a connection the plan
//! opens anyway, so they open no flow that could take a port between the samples and a punch; a
//! SYN that gets in is a flow the NAT opened from outside, and the SYN-ACK its reply.
//!
//! The verdict reads as RFC 5780's for UDP: the SYN from the other IP and port got in →
//! endpoint-independent; only the one from the other port → address-dependent; neither →
//! address-and-port-dependent.

use std::time::Duration;

use crate::core::fingerprint::classify::{Behaviour, ChangeRequestSupport};
use crate::core::fingerprint::plan::{answer_wait, sized, TCP_DATA_RTO};
use crate::core::fingerprint::report::TransportReport;
use crate::core::fingerprint::verdict;
use crate::core::Transport;
use crate::wire::attr::ChangeRequest;

/// The two tests: change IP and port, then change port only.
pub const CHANGES: [ChangeRequest; 2] = [
    ChangeRequest {
        change_ip: true,
        change_port: true,
    },
    ChangeRequest {
        change_ip: false,
        change_port: true,
    },
];

/// What came of one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SynOutcome {
    /// The server saw our host answer its SYN: the NAT let it in.
    Answered,
    /// The server's SYN went unanswered for the whole wait.
    Unanswered,
    /// The server refused the test (its reason phrase): no raw socket, busy, no RFC 5780.
    Refused { code: u16, reason: String },
    /// No answer to the request came back over the connection.
    Lost,
}

/// One test and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynTest {
    pub change: ChangeRequest,
    pub outcome: SynOutcome,
}

/// Whether the TCP filtering tests ran, and what they gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpFilteringRun {
    /// Both tests, in [`CHANGES`] order.
    Ran(Vec<SynTest>),
    /// They could not run (why).
    NotRun(String),
}

/// Least time the server waits beyond one round trip for the answer to its SYN.
///
/// Smaller than the floor a probe's answer gets ([`crate::core::fingerprint::plan::MIN_MARGIN`],
/// which covers the server reading and answering a request on a busy host): nothing in
/// user space lies on this path. The server's SYN crosses the NAT to the client's kernel,
/// whose listener answers in the same softirq, and the SYN-ACK lands in the server's raw
/// socket, whose readiness the server's loop handles before it looks at the tests' deadlines
/// (a late wake-up still counts an answer that is there). What is left is the path's jitter.
pub const SYN_MIN_MARGIN: Duration = Duration::from_millis(15);

/// How long the server should wait for the answer to its SYN (NL-SYN-WAIT): the SYN and the
/// SYN-ACK cross the path once each, one round trip, plus a quarter of it for the path's
/// jitter (RFC 6298's RTO is the RTT and four variations) but at least [`SYN_MIN_MARGIN`].
///
/// The server answers both tests only when this wait is over (unless the SYNs were answered),
/// and the plan's step lasts until those answers are in: with the probes' 50 ms floor the
/// tests ended 30 ms after the second burst's answers at a 50 ms RTT, and so did the TCP
/// fingerprint (benches/nat_wall_time.sh).
pub fn syn_wait(rtt: Option<Duration>) -> Duration {
    let rtt = sized(rtt);
    rtt + (rtt / 4).max(SYN_MIN_MARGIN)
}

/// How long the client waits for the server's answers once the requests are written: the
/// server's wait, a round trip for request and answer, and one data retransmission (only a
/// lossy run waits it out: the wait ends when both answers are in).
pub fn reply_wait(rtt: Option<Duration>) -> Duration {
    syn_wait(rtt) + answer_wait(Transport::Udp, rtt) + TCP_DATA_RTO
}

/// The RFC 5382 filtering, or why there is none.
pub fn classify(tests: &[SynTest]) -> Result<Behaviour, String> {
    if let Some((code, reason)) = tests.iter().find_map(|t| match &t.outcome {
        SynOutcome::Refused { code, reason } => Some((code, reason)),
        _ => None,
    }) {
        return Err(format!("server refused the test: {code} {reason}"));
    }
    let outcome = |change_ip: bool| {
        tests
            .iter()
            .find(|t| t.change.change_ip == change_ip && t.change.change_port)
            .map(|t| &t.outcome)
    };
    match (outcome(true), outcome(false)) {
        (Some(SynOutcome::Answered), _) => Ok(Behaviour::EndpointIndependent),
        (Some(SynOutcome::Unanswered), Some(SynOutcome::Answered)) => {
            Ok(Behaviour::AddressDependent)
        }
        (Some(SynOutcome::Unanswered), Some(SynOutcome::Unanswered)) => {
            Ok(Behaviour::AddressAndPortDependent)
        }
        _ => Err("the server did not answer the test".into()),
    }
}

/// Puts the TCP filtering verdict (or why there is none) into a TCP report, and the verdicts
/// that rest on filtering (RFC 3489 name, punch reach, difficulty) after it. `run` is `None`
/// when the fingerprint never got to the tests (no answer, no RFC 5780).
pub fn apply(report: &mut TransportReport, run: Option<&TcpFilteringRun>) {
    if report.public_address.is_none() {
        return;
    }
    let result = match run {
        Some(TcpFilteringRun::Ran(tests)) => classify(tests),
        Some(TcpFilteringRun::NotRun(why)) => Err(why.clone()),
        None if !report.full_mode => Err("the server lacks RFC 5780 (no OTHER-ADDRESS)".into()),
        None => Err("not run".into()),
    };
    report.change_request = match run {
        Some(TcpFilteringRun::Ran(tests)) if refused(tests) => Some(ChangeRequestSupport::Refused),
        Some(TcpFilteringRun::Ran(_)) if result.is_ok() => Some(ChangeRequestSupport::Honoured),
        _ => None,
    };
    match result {
        Ok(behaviour) => {
            report.filtering = Some(behaviour);
            report.filtering_reason = None;
        }
        Err(reason) => {
            report.filtering = None;
            report.filtering_reason = Some(reason);
        }
    }
    report.rfc3489_type = verdict::rfc3489_type(report);
    report.punch = verdict::reach(report, Transport::Tcp);
    report.difficulty = report.punch.map(|reach| reach.difficulty());
}

fn refused(tests: &[SynTest]) -> bool {
    tests
        .iter()
        .any(|t| matches!(t.outcome, SynOutcome::Refused { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Behaviour::{
        AddressAndPortDependent as Apd, AddressDependent as Ad, EndpointIndependent as Ei,
    };
    use SynOutcome::{Answered, Lost, Unanswered};

    fn run(both: SynOutcome, port: SynOutcome) -> Vec<SynTest> {
        CHANGES
            .into_iter()
            .zip([both, port])
            .map(|(change, outcome)| SynTest { change, outcome })
            .collect()
    }

    #[test]
    fn the_two_tests_decide_as_rfc_5780_does_for_udp() {
        let table = [
            (Answered, Answered, Ok(Ei)),
            (Answered, Unanswered, Ok(Ei)),
            (Unanswered, Answered, Ok(Ad)),
            (Unanswered, Unanswered, Ok(Apd)),
        ];
        for (both, port, want) in table {
            let context = format!("{both:?} {port:?}");
            assert_eq!(classify(&run(both, port)), want, "{context}");
        }
    }

    #[test]
    fn a_lost_or_refused_test_leaves_filtering_unknown_with_the_reason() {
        assert!(classify(&run(Unanswered, Lost)).is_err());
        assert!(classify(&run(Lost, Answered)).is_err());
        let refused = SynOutcome::Refused {
            code: 420,
            reason: "TCP filtering test off".into(),
        };
        let why = classify(&run(refused.clone(), refused)).unwrap_err();
        assert!(why.contains("420 TCP filtering test off"), "{why}");
        assert!(classify(&[]).is_err());
    }

    #[test]
    fn the_waits_grow_with_the_rtt() {
        let short = syn_wait(Some(Duration::from_millis(1)));
        assert_eq!(short, Duration::from_millis(16));
        // A 50 ms path: the wait ends before the second burst's answers are in (a step of
        // the plan at that RTT: the control's handshake, then half a round trip each way).
        let lab = syn_wait(Some(Duration::from_millis(50)));
        assert_eq!(lab, Duration::from_millis(65));
        let long = syn_wait(Some(Duration::from_millis(200)));
        assert_eq!(long, Duration::from_millis(250));
        assert!(reply_wait(Some(Duration::from_millis(200))) > long);
    }
}
