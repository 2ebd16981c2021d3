//! RFC 5780 verdicts from observations: mapping (§4.3), filtering (§4.4), hairpinning (§4.5),
//! whether the server really honoured CHANGE-REQUEST, and ALG rewriting. Each verdict is `None`
//! when the observations cannot decide it: "not measured" is an answer, a guess is not.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::core::fingerprint::observation::{Observation, Socket, Target};
use crate::wire::attr::ChangeRequest;

/// RFC 4787's three degrees of dependence on the remote endpoint, for mapping (§4.1: when is a
/// binding reused) and for filtering (§5: who may send in through it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    EndpointIndependent,
    AddressDependent,
    AddressAndPortDependent,
}

impl Behaviour {
    pub fn as_str(self) -> &'static str {
        match self {
            Behaviour::EndpointIndependent => "endpoint-independent",
            Behaviour::AddressDependent => "address-dependent",
            Behaviour::AddressAndPortDependent => "address-and-port-dependent",
        }
    }
}

/// What the server did with CHANGE-REQUEST. Anything but `Honoured` voids the filtering test:
/// a server answering from the address the probe went to would make every NAT look open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeRequestSupport {
    /// Answers came from the changed address.
    Honoured,
    /// An answer came from somewhere else (usually the unchanged address), or claimed so in
    /// RESPONSE-ORIGIN: the server ignores the attribute.
    Ignored,
    /// The server said it cannot (420 or 400).
    Refused,
}

/// Which kinds of evidence the mapping socket's answers gave: for each pair of destinations,
/// whether they differ in IP or only in port, and whether the public address stayed.
#[derive(Debug, Default)]
struct MappingEvidence {
    port_kept: bool,
    port_changed: bool,
    ip_kept: bool,
    ip_changed: bool,
}

/// RFC 5780 §4.3, from the mapping socket's answers toward up to four server addresses. Any
/// pair decides what it can: a new public address for another port at the same IP means
/// address-and-port-dependent; the same one for another IP means endpoint-independent; a new one
/// per IP but not per port means address-dependent. So one lost probe seldom voids the verdict.
pub fn mapping(observations: &[Observation]) -> Option<Behaviour> {
    // The primary server's four addresses only: other servers' answers go to
    // `mapping_varies_by_dest_ip`, so `mapping` keeps its RFC 5780 meaning.
    let seen: Vec<(SocketAddr, SocketAddr)> = observations
        .iter()
        .filter(|o| o.socket == Socket::Mapping && !matches!(o.target, Target::Extra(_)))
        .filter(|o| o.is_plain_success())
        .filter_map(|o| Some((o.to, o.public()?)))
        .collect();
    let mut evidence = MappingEvidence::default();
    for (i, (to_a, public_a)) in seen.iter().enumerate() {
        for (to_b, public_b) in seen.iter().skip(i + 1).filter(|(to, _)| to != to_a) {
            let kept = public_a == public_b;
            match (to_a.ip() == to_b.ip(), kept) {
                (true, true) => evidence.port_kept = true,
                (true, false) => evidence.port_changed = true,
                (false, true) => evidence.ip_kept = true,
                (false, false) => evidence.ip_changed = true,
            }
        }
    }
    decide_mapping(&evidence)
}

fn decide_mapping(e: &MappingEvidence) -> Option<Behaviour> {
    if e.port_changed {
        Some(Behaviour::AddressAndPortDependent)
    } else if e.ip_kept && !e.ip_changed {
        Some(Behaviour::EndpointIndependent)
    } else if e.ip_changed && e.port_kept && !e.ip_kept {
        Some(Behaviour::AddressDependent)
    } else {
        None
    }
}

/// Whether the mapping socket got another public address from a server at another IP than the
/// primary (tailscale netcheck's MappingVariesByDestIP: it needs no RFC 5780 server). `None`
/// when no such server answered.
pub fn mapping_varies_by_dest_ip(observations: &[Observation]) -> Option<bool> {
    let first = discovery(observations)?;
    let public = first.public()?;
    observations
        .iter()
        .filter(|o| o.socket == Socket::Mapping && matches!(o.target, Target::Extra(_)))
        .filter(|o| o.to.ip() != first.to.ip() && o.is_plain_success())
        .filter_map(Observation::public)
        .map(|other| other != public)
        .reduce(|a, b| a || b)
}

/// OTHER-ADDRESS from any answer of the primary server: its alternate IP and port.
pub fn other_address(observations: &[Observation]) -> Option<SocketAddr> {
    observations
        .iter()
        .filter(|o| !matches!(o.target, Target::Extra(_)))
        .filter_map(|o| o.answer.as_ref()?.other_address)
        .next()
}

/// Where an honoured CHANGE-REQUEST answer must come from.
fn changed_source(to: SocketAddr, other: SocketAddr, change: ChangeRequest) -> SocketAddr {
    let ip = if change.change_ip {
        other.ip()
    } else {
        to.ip()
    };
    let port = if change.change_port {
        other.port()
    } else {
        to.port()
    };
    SocketAddr::new(ip, port)
}

/// The CHANGE-REQUEST probes of the filtering socket.
fn change_probes(observations: &[Observation]) -> impl Iterator<Item = &Observation> {
    observations
        .iter()
        .filter(|o| o.socket == Socket::Filtering && o.change.any())
}

/// True when an answer to a CHANGE-REQUEST probe came from the changed address and says so.
fn honoured(observation: &Observation, other: SocketAddr) -> bool {
    let Some(answer) = &observation.answer else {
        return false;
    };
    let expected = changed_source(observation.to, other, observation.change);
    answer.error_code.is_none()
        && answer.source == expected
        && answer
            .response_origin
            .is_none_or(|origin| origin == expected)
}

/// Whether the server honoured CHANGE-REQUEST; `None` when no probe asked or none was answered
/// (silence cannot tell a filtering NAT from a server that drops such requests).
pub fn change_request_support(observations: &[Observation]) -> Option<ChangeRequestSupport> {
    let answered: Vec<&Observation> = change_probes(observations)
        .filter(|o| o.answer.is_some())
        .collect();
    if answered.is_empty() {
        return None;
    }
    if answered
        .iter()
        .any(|o| o.answer.as_ref().is_some_and(|a| a.error_code.is_some()))
    {
        return Some(ChangeRequestSupport::Refused);
    }
    let Some(other) = other_address(observations) else {
        return Some(ChangeRequestSupport::Ignored);
    };
    if answered.iter().all(|o| honoured(o, other)) {
        Some(ChangeRequestSupport::Honoured)
    } else {
        Some(ChangeRequestSupport::Ignored)
    }
}

/// RFC 5780 §4.4 from the filtering socket: the answer from the other IP and port got through →
/// endpoint-independent; only the one from the other port → address-dependent; neither →
/// address-and-port-dependent. Needs the plain control answered (else silence may just be a dead
/// path) and a server that did not ignore or refuse CHANGE-REQUEST.
pub fn filtering(observations: &[Observation]) -> Option<Behaviour> {
    let control = observations
        .iter()
        .any(|o| o.socket == Socket::Filtering && o.is_plain_success());
    if !control {
        return None;
    }
    if let Some(ChangeRequestSupport::Ignored | ChangeRequestSupport::Refused) =
        change_request_support(observations)
    {
        return None;
    }
    let other = other_address(observations)?;
    let through = |change_ip: bool| {
        change_probes(observations)
            .filter(|o| o.change.change_ip == change_ip && o.change.change_port)
            .any(|o| honoured(o, other))
    };
    let asked = |change_ip: bool| {
        change_probes(observations).any(|o| o.change.change_ip == change_ip && o.change.change_port)
    };
    if through(true) {
        Some(Behaviour::EndpointIndependent)
    } else if through(false) {
        Some(Behaviour::AddressDependent)
    } else if asked(true) && asked(false) {
        Some(Behaviour::AddressAndPortDependent)
    } else {
        None
    }
}

/// RFC 5780 §4.5: did the hairpin socket's packet reach the mapping socket? `None` when no
/// hairpin probe was sent, and when there is no NAT: a packet to one's own address arrives
/// through no NAT, so it would read as hairpinning where there is nothing to hairpin.
pub fn hairpinning(observations: &[Observation]) -> Option<bool> {
    if behind_nat(observations) == Some(false) {
        return None;
    }
    observations
        .iter()
        .filter(|o| o.socket == Socket::Hairpin)
        .map(|o| o.answer.is_some())
        .reduce(|a, b| a || b)
}

/// An ALG rewrites addresses it finds in the clear: MAPPED-ADDRESS then differs from
/// XOR-MAPPED-ADDRESS (RFC 8489 §14.2 gives the XOR form for exactly this reason). `None` when
/// no answer carried both.
pub fn alg_rewrites(observations: &[Observation]) -> Option<bool> {
    observations
        .iter()
        .filter_map(|o| o.answer.as_ref())
        .filter(|a| a.error_code.is_none())
        .filter_map(|a| Some(a.mapped? != a.xor_mapped?))
        .reduce(|a, b| a || b)
}

/// The discovery answer: the mapping socket toward the primary address.
fn discovery(observations: &[Observation]) -> Option<&Observation> {
    observations.iter().find(|o| {
        o.socket == Socket::Mapping && o.target == Target::Primary && o.is_plain_success()
    })
}

/// The public address the primary server saw for the mapping socket.
pub fn public_address(observations: &[Observation]) -> Option<SocketAddr> {
    discovery(observations)?.public()
}

/// True when the public address differs from the local one; `None` when the local IP is the
/// unspecified address (a shell that gave the bound, not the connected, address).
pub fn behind_nat(observations: &[Observation]) -> Option<bool> {
    let observation = discovery(observations)?;
    if observation.local.ip().is_unspecified() {
        return None;
    }
    Some(observation.public()? != observation.local)
}

/// The shortest round trip of any plain answered probe to the primary server (the hairpin probe
/// is not a round trip, and other servers may be further away).
pub fn rtt(observations: &[Observation]) -> Option<Duration> {
    observations
        .iter()
        .filter(|o| o.socket != Socket::Hairpin && o.is_plain_success())
        .filter(|o| !matches!(o.target, Target::Extra(_)))
        .filter_map(Observation::rtt)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fingerprint::observation::Answer;
    use crate::core::Transport;
    use std::time::Instant;

    const PRIMARY: &str = "192.0.2.1:3478";
    const OTHER: &str = "192.0.2.2:3479";

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn probe(socket: Socket, target: Target, change: (bool, bool)) -> Observation {
        let to = target.resolve(addr(PRIMARY), addr(OTHER)).unwrap();
        Observation {
            transport: Transport::Udp,
            socket,
            target,
            change: ChangeRequest {
                change_ip: change.0,
                change_port: change.1,
            },
            local: addr("192.168.1.10:5000"),
            to,
            sent_at: Instant::now(),
            handshake: None,
            answer: None,
        }
    }

    fn answered(mut o: Observation, public: &str, source: SocketAddr) -> Observation {
        let mut answer = Answer::arrival(source, o.sent_at);
        answer.xor_mapped = Some(addr(public));
        answer.mapped = Some(addr(public));
        answer.response_origin = Some(source);
        answer.other_address = Some(addr(OTHER));
        o.answer = Some(answer);
        o
    }

    fn mapping_run(publics: [Option<&str>; 4]) -> Vec<Observation> {
        let targets = [
            Target::Primary,
            Target::AltPort,
            Target::AltIp,
            Target::AltBoth,
        ];
        targets
            .into_iter()
            .zip(publics)
            .map(|(target, public)| {
                let o = probe(Socket::Mapping, target, (false, false));
                let to = o.to;
                match public {
                    Some(public) => answered(o, public, to),
                    None => o,
                }
            })
            .collect()
    }

    #[test]
    fn mapping_table() {
        use Behaviour::*;
        let (a, b, c, d) = (
            Some("198.51.100.7:1"),
            Some("198.51.100.7:2"),
            Some("198.51.100.7:3"),
            Some("198.51.100.7:4"),
        );
        let cases: [([Option<&str>; 4], Option<Behaviour>); 9] = [
            ([a, a, a, a], Some(EndpointIndependent)),
            ([a, a, b, b], Some(AddressDependent)),
            ([a, b, c, d], Some(AddressAndPortDependent)),
            // Losses: what is left still decides, or the verdict is withheld.
            ([a, None, a, None], Some(EndpointIndependent)),
            ([a, None, None, a], Some(EndpointIndependent)),
            ([a, b, None, None], Some(AddressAndPortDependent)),
            ([a, None, b, None], None),
            ([a, a, None, None], None),
            ([None, None, None, None], None),
        ];
        for (publics, want) in cases {
            assert_eq!(mapping(&mapping_run(publics)), want, "{publics:?}");
        }
    }

    /// The filtering socket's control plus the two CHANGE-REQUEST probes, each answered from
    /// `source` (None = silence).
    fn filtering_run(control: bool, both: Option<&str>, port: Option<&str>) -> Vec<Observation> {
        let mut run = vec![probe(Socket::Filtering, Target::Primary, (false, false))];
        if control {
            run[0] = answered(run[0].clone(), "198.51.100.7:9", addr(PRIMARY));
        }
        for (change, source) in [((true, true), both), ((false, true), port)] {
            let o = probe(Socket::Filtering, Target::Primary, change);
            run.push(match source {
                Some(source) => answered(o, "198.51.100.7:9", addr(source)),
                None => o,
            });
        }
        run
    }

    #[test]
    fn filtering_table() {
        use Behaviour::*;
        use ChangeRequestSupport::*;
        let (both, port) = (Some(OTHER), Some("192.0.2.1:3479"));
        let cases = [
            (true, both, port, Some(EndpointIndependent), Some(Honoured)),
            (true, both, None, Some(EndpointIndependent), Some(Honoured)),
            (true, None, port, Some(AddressDependent), Some(Honoured)),
            (true, None, None, Some(AddressAndPortDependent), None),
            // The control was lost: silence proves nothing.
            (false, None, None, None, None),
            // Answers from the unchanged address: the server ignores CHANGE-REQUEST.
            (true, Some(PRIMARY), Some(PRIMARY), None, Some(Ignored)),
            (true, Some("192.0.2.2:3478"), None, None, Some(Ignored)),
        ];
        for (control, both, port, want, support) in cases {
            let run = filtering_run(control, both, port);
            assert_eq!(filtering(&run), want, "{control} {both:?} {port:?}");
            assert_eq!(
                change_request_support(&run),
                support,
                "{control} {both:?} {port:?}"
            );
        }
    }

    #[test]
    fn a_lying_response_origin_is_caught() {
        let mut run = filtering_run(true, Some(OTHER), None);
        run[1].answer.as_mut().unwrap().response_origin = Some(addr(PRIMARY));
        assert_eq!(
            change_request_support(&run),
            Some(ChangeRequestSupport::Ignored)
        );
        assert_eq!(filtering(&run), None);
    }

    #[test]
    fn a_refusing_server_voids_filtering() {
        let mut run = filtering_run(true, None, None);
        let mut refusal = Answer::arrival(addr(PRIMARY), Instant::now());
        refusal.error_code = Some(420);
        run[1].answer = Some(refusal);
        assert_eq!(
            change_request_support(&run),
            Some(ChangeRequestSupport::Refused)
        );
        assert_eq!(filtering(&run), None);
    }

    #[test]
    fn alg_hairpin_and_nat_presence() {
        let mut run = mapping_run([Some("198.51.100.7:1"), None, None, None]);
        assert_eq!(alg_rewrites(&run), Some(false));
        assert_eq!(behind_nat(&run), Some(true));
        assert_eq!(public_address(&run), Some(addr("198.51.100.7:1")));
        run[0].answer.as_mut().unwrap().mapped = Some(addr("192.168.1.10:5000"));
        assert_eq!(alg_rewrites(&run), Some(true));
        assert_eq!(hairpinning(&run), None);
        run.push(probe(Socket::Hairpin, Target::Primary, (false, false)));
        assert_eq!(hairpinning(&run), Some(false));
        run.last_mut().unwrap().answer =
            Some(Answer::arrival(addr("198.51.100.7:5"), Instant::now()));
        assert_eq!(hairpinning(&run), Some(true));
        run[0].local = addr("198.51.100.7:1");
        assert_eq!(behind_nat(&run), Some(false));
        assert_eq!(hairpinning(&run), None, "no NAT, nothing to hairpin");
        run[0].local = addr("0.0.0.0:1");
        assert_eq!(behind_nat(&run), None);
    }

    #[test]
    fn another_server_ip_tells_whether_the_mapping_varies() {
        let extra = |to: &str, public: Option<&str>| {
            let mut o = probe(Socket::Mapping, Target::Primary, (false, false));
            o.target = Target::Extra(0);
            o.to = addr(to);
            match public {
                Some(public) => answered(o, public, addr(to)),
                None => o,
            }
        };
        let discovery = mapping_run([Some("198.51.100.7:1"), None, None, None]);
        let with = |o: Observation| {
            let mut run = discovery.clone();
            run.push(o);
            run
        };
        let cases = [
            (
                extra("203.0.113.5:3478", Some("198.51.100.7:1")),
                Some(false),
            ),
            (
                extra("203.0.113.5:3478", Some("198.51.100.7:2")),
                Some(true),
            ),
            (extra("203.0.113.5:3478", None), None),
            // Same IP as the primary, another port: says nothing about the destination IP.
            (extra("192.0.2.1:3480", Some("198.51.100.7:2")), None),
        ];
        for (o, want) in cases {
            let run = with(o.clone());
            assert_eq!(mapping_varies_by_dest_ip(&run), want, "{o:?}");
            // Other servers never feed the RFC 5780 mapping test, nor its OTHER-ADDRESS.
            assert_eq!(mapping(&run), None, "{o:?}");
            assert_eq!(other_address(std::slice::from_ref(&o)), None);
        }
        assert_eq!(mapping_varies_by_dest_ip(&discovery), None);
    }
}
