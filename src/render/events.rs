//! The client commands' events ([`crate::report::Event`]) for people, one line each, or as
//! NDJSON; and the terminal a rendezvous driver reports to.

use std::io::{self, Write};

use crate::core::fingerprint::{Behaviour, Pattern};
use crate::core::punch::plan::PunchPlan;
use crate::core::Transport;
use crate::io::prober::Probing;
use crate::io::rendezvous::Watch;
use crate::report::punch::DryRun;
use crate::report::Event;

use super::progress::ProbeBars;

/// The human line of an event, or `None` for those a failure's error message words instead.
pub fn line(event: &Event) -> Option<String> {
    Some(match event {
        Event::LoggedIn {
            id,
            server,
            transport,
            public_address,
            udp_expiry_ms,
        } => format!(
            "logged in to {server} as {id:?} over {}; the server sees you at {public_address}{}",
            transport.as_str(),
            udp_expiry_ms.map_or(String::new(), |ms| format!(
                " (a silent session expires after {})",
                humantime::format_duration(std::time::Duration::from_millis(ms))
            ))
        ),
        Event::ConnectionLost => {
            "the server closed the connection (restart?); dialling again".into()
        }
        Event::Relogin {
            server,
            public_address,
            ..
        } => format!(
            "logged in again to {server} (the server had forgotten the session, or the session \
             moved); the server sees you at {public_address}"
        ),
        Event::ServerChanged {
            from,
            server,
            during,
        } => {
            format!("the server {from} stopped answering (during the {during}); moving to {server}")
        }
        Event::PublicAddressChanged { old, new } => {
            format!("your public address changed: {old} -> {new}")
        }
        Event::IncomingCall {
            caller,
            call_id,
            caller_facts,
        } => format!(
            "call {call_id} from {caller:?} at {}, transports {}: answered with your facts",
            address_text(caller_facts.observed),
            transports_text(caller_facts.transports)
        ),
        Event::CallAnswered {
            callee,
            call_id,
            callee_facts,
        } => format!(
            "call {call_id} answered by {callee:?}, seen at {}",
            address_text(callee_facts.observed)
        ),
        Event::LoggedOut => "logged out".into(),
        Event::Resolved {
            name,
            server,
            addresses,
        } => resolved_line(name, *server, addresses),
        Event::LoginRefused { .. } | Event::ServerUnreachable { .. } | Event::CallFailed { .. } => {
            return None
        }
        other => rendezvous_line(other)?,
    })
}

/// The lines of `listen`'s and `call`'s own events.
fn rendezvous_line(event: &Event) -> Option<String> {
    Some(match event {
        Event::Waiting { .. } => "waiting for a call (interrupt to stop)".into(),
        Event::Fingerprint { .. } => nat_line(event)?,
        Event::Calling { callee, .. } => format!("calling {callee:?}"),
        Event::Plan {
            transport,
            strategy,
            reason,
            expected_success,
        } => format!(
            "punching over {}: {} ({reason}); expected success {:.1}%",
            transport.as_str(),
            strategy.as_str(),
            expected_success * 100.0
        ),
        Event::PeerHeard { at_ms, from } => {
            format!("{at_ms} ms: first punch packet from the peer arrived from {from}")
        }
        Event::Connected { at_ms, peer } => {
            format!("{at_ms} ms: connected: a path to {peer} works both ways")
        }
        Event::PunchFailed { at_ms, reason } => format!("{at_ms} ms: punch failed: {reason}"),
        Event::LegFailed { transport, reason } => {
            format!("{} leg failed: {reason}", transport.as_str())
        }
        Event::DataDone { at_ms, reason } => match reason {
            None => format!("{at_ms} ms: data exchange complete"),
            Some(reason) => format!("{at_ms} ms: data exchange failed: {reason}"),
        },
        Event::Hint { message } => format!("natlens: {message}"),
        Event::StaleAnswer { callee, .. } => {
            format!("{callee:?} answered with its UDP facts (still on the UDP leg); calling again")
        }
        _ => return None,
    })
}

/// "server localhost resolved to 127.0.0.1:3478", naming the others when there were several.
fn resolved_line(
    name: &str,
    server: std::net::SocketAddr,
    addresses: &[std::net::SocketAddr],
) -> String {
    if addresses.len() <= 1 {
        return format!("server {name} resolved to {server}");
    }
    let all: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    format!(
        "server {name} resolved to {}; using {server}",
        all.join(", ")
    )
}

/// "your NAT (udp): public 203.0.113.1:40000; mapping …, filtering …; ports sequential +1".
fn nat_line(event: &Event) -> Option<String> {
    let Event::Fingerprint {
        transport,
        public_address,
        mapping,
        filtering,
        pattern,
        delta,
        ..
    } = event
    else {
        return None;
    };
    let name = |b: &Option<Behaviour>| b.map_or("not measured", |b| b.as_str());
    let ports = match (pattern, delta) {
        (Some(Pattern::Sequential), Some(delta)) => format!("sequential {delta:+}"),
        (Some(pattern), _) => format!("{pattern:?}").to_lowercase(),
        (None, _) => "not measured".into(),
    };
    Some(format!(
        "your NAT ({}): public {}; mapping {}, filtering {}; ports {ports}",
        transport.as_str(),
        public_address.map_or("unknown".into(), |a| a.to_string()),
        name(mapping),
        name(filtering),
    ))
}

fn address_text(address: Option<std::net::SocketAddr>) -> String {
    address.map_or("an unknown address".into(), |a| a.to_string())
}

/// "udp, tcp", "udp", "tcp" or "none".
pub fn transports_text(transports: crate::wire::natlens::Transports) -> String {
    match (transports.udp, transports.tcp) {
        (true, true) => "udp, tcp".into(),
        (true, false) => "udp".into(),
        (false, true) => "tcp".into(),
        (false, false) => "none".into(),
    }
}

/// `natlens login`'s events: NDJSON on stdout with `--json` (a closed stdout is an error to
/// stop on), else a human line on stderr.
pub fn to_stdout(event: &Event, json: bool) -> io::Result<()> {
    if json {
        let mut out = io::stdout().lock();
        writeln!(out, "{}", event.json())
    } else {
        if let Some(line) = line(event).filter(|_| !super::verbosity::quiet()) {
            eprintln!("{}", super::terminal::for_locale(&line));
        }
        Ok(())
    }
}

/// One line on stdout (`natlens login`'s final object); a closed stdout is an error to stop on.
pub fn line_to_stdout(line: &str) -> io::Result<()> {
    writeln!(io::stdout().lock(), "{line}")
}

/// Progress that draws nothing (`--json`: the fingerprint's result is the `fingerprint` event).
struct NoBars;

impl Probing for NoBars {
    fn update(&self, _: crate::io::prober::Progress) {}
    fn finish(&self) {}
}

/// The terminal of `natlens listen` and `natlens call`: events on stderr (stdout carries the
/// peer's data), progress bars while fingerprinting, a `--dry-run` plan on stdout.
pub struct Terminal {
    pub json: bool,
    /// `--transport both`: a dry run names each leg's plan.
    pub both: bool,
}

impl Watch for Terminal {
    fn tell(&self, event: Event) {
        if self.json {
            eprintln!("{}", event.json());
        } else if let Some(line) = line(&event).filter(|_| !super::verbosity::quiet()) {
            eprintln!("{}", super::terminal::for_locale(&line));
        }
    }

    fn probing(&self, transport: Transport) -> Box<dyn Probing + '_> {
        if self.json {
            // stderr is the NDJSON stream: no bars on it, even on a terminal.
            return Box::new(NoBars);
        }
        Box::new(ProbeBars::new(&[transport]))
    }

    /// `-v`: the plan's lines under the `plan` event's line (not in the NDJSON stream).
    fn planned(&self, plan: &PunchPlan) {
        if super::verbosity::verbose() && !self.json {
            for line in plan.describe() {
                eprintln!("  {}", super::terminal::for_locale(&line));
            }
        }
    }

    fn dry_run(&self, plan: &PunchPlan) -> io::Result<()> {
        let mut out = io::stdout().lock();
        if self.json {
            return writeln!(out, "{}", DryRun::new(plan).json());
        }
        if self.both {
            writeln!(out, "{} plan:", plan.transport.as_str())?;
        }
        for line in plan.describe() {
            writeln!(out, "{}", super::terminal::for_locale(&line))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fingerprint::{self, PredictOptions};

    #[test]
    fn the_nat_line_names_the_pattern_and_step() {
        let report = fingerprint::analyse(&[], &PredictOptions::default());
        assert_eq!(
            line(&Event::fingerprint(Transport::Udp, &report)).unwrap(),
            "your NAT (udp): public unknown; mapping not measured, filtering not measured; \
             ports not measured"
        );
        let sequential = Event::Fingerprint {
            transport: Transport::Tcp,
            public_address: "203.0.113.1:40000".parse().ok(),
            mapping: Some(Behaviour::EndpointIndependent),
            filtering: Some(Behaviour::EndpointIndependent),
            pattern: Some(Pattern::Sequential),
            delta: Some(1),
            foreign_flows_per_second: None,
        };
        assert_eq!(
            line(&sequential).unwrap(),
            "your NAT (tcp): public 203.0.113.1:40000; mapping endpoint-independent, filtering \
             endpoint-independent; ports sequential +1"
        );
    }

    #[test]
    fn the_resolved_line_names_the_address_used() {
        let one = Event::Resolved {
            name: "localhost:3478".into(),
            server: "127.0.0.1:3478".parse().unwrap(),
            addresses: vec!["127.0.0.1:3478".parse().unwrap()],
        };
        assert_eq!(
            line(&one).unwrap(),
            "server localhost:3478 resolved to 127.0.0.1:3478"
        );
        let two = Event::Resolved {
            name: "stun.lab.example".into(),
            server: "192.0.2.1:3478".parse().unwrap(),
            addresses: vec![
                "[2001:db8::1]:3478".parse().unwrap(),
                "192.0.2.1:3478".parse().unwrap(),
            ],
        };
        assert_eq!(
            line(&two).unwrap(),
            "server stun.lab.example resolved to [2001:db8::1]:3478, 192.0.2.1:3478; using \
             192.0.2.1:3478"
        );
    }

    #[test]
    fn failures_have_no_line_of_their_own() {
        let refused = Event::LoginRefused {
            code: 409,
            reason: "taken".into(),
        };
        assert_eq!(line(&refused), None);
        let hint = Event::Hint {
            message: "run as root".into(),
        };
        assert_eq!(line(&hint).unwrap(), "natlens: run as root");
    }
}
