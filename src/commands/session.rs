//! Glue shared by `natlens login` and `natlens call`: opening a session from the command line,
//! wording its failures, and printing its events (human lines on stderr, NDJSON on stdout).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{anyhow, Context};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

use crate::cli::SessionArgs;
use crate::core::client::{self, ClientConfig, ClientEvent, ClientSession, Lost};
use crate::core::credentials;
use crate::core::Transport;
use crate::io::client::Link;
use crate::wire::natlens::{self, NatFacts, Transports};

/// A connected link and a session that has queued its LOGIN.
pub(crate) struct Opened {
    pub link: Link,
    pub session: ClientSession<StdRng>,
}

/// Checks the ID, connects over `transport` and starts the session (`call_timeout` for
/// `natlens call`).
pub(crate) fn open(
    args: &SessionArgs,
    transport: Transport,
    call_timeout: Option<std::time::Duration>,
) -> anyhow::Result<Opened> {
    natlens::validate_name(&args.id).map_err(|_| {
        anyhow!(
            "{:?} is not a valid ID: use 1 to 64 bytes of printable UTF-8 without spaces",
            args.id
        )
    })?;
    let link = Link::connect(args.server, transport)
        .with_context(|| format!("cannot reach {} over {}", args.server, transport.as_str()))?;
    let mut config = ClientConfig::new(args.id.clone(), transport, args.keepalive);
    config.hmac_key = load_key(args)?.map(|key| credentials::hmac_key(&args.id, &key));
    if let Some(timeout) = call_timeout {
        config.call_timeout = timeout;
    }
    let mut session = ClientSession::new(config, Instant::now(), StdRng::from_entropy());
    session.set_facts(own_facts(transport, None));
    Ok(Opened { link, session })
}

/// This ID's key: from --key-file, else from NATLENS_KEY, else none.
fn load_key(args: &SessionArgs) -> anyhow::Result<Option<String>> {
    if let Some(path) = &args.key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the key file {}", path.display()))?;
        let key = credentials::parse_key_file(&text)
            .with_context(|| format!("malformed key file {}", path.display()))?;
        return Ok(Some(key));
    }
    match std::env::var("NATLENS_KEY") {
        Ok(key) if !key.trim().is_empty() => Ok(Some(key.trim().to_owned())),
        _ => Ok(None),
    }
}

/// The facts this end states: its observed address once known, the transport it uses. Delta
/// and predicted ports stay unmeasured until fingerprinting fills them in.
pub(crate) fn own_facts(transport: Transport, observed: Option<SocketAddr>) -> NatFacts {
    NatFacts {
        observed,
        transports: Transports {
            udp: transport == Transport::Udp,
            tcp: transport == Transport::Tcp,
        },
        ..NatFacts::default()
    }
}

/// The error for a session that ended badly, or `None` for an event that is not an ending.
pub(crate) fn failure(
    args: &SessionArgs,
    transport: Transport,
    link: &Link,
    event: &ClientEvent,
) -> Option<anyhow::Error> {
    let server = args.server;
    let via = transport.as_str();
    Some(match event {
        ClientEvent::LoginRefused { code, reason } => refusal(&args.id, *code, reason),
        ClientEvent::ServerUnreachable { lost: Lost::Login } if link.was_refused() => anyhow!(
            "no natlens server at {server}: its host answered ICMP port unreachable ({via})"
        ),
        ClientEvent::ServerUnreachable { lost: Lost::Login } => anyhow!(
            "no answer from {server} over {via} within {}s; is a natlens server running there?",
            client::LOGIN_TIMEOUT.as_secs()
        ),
        ClientEvent::ServerUnreachable {
            lost: Lost::Keepalive,
        } => anyhow!(
            "lost the server {server}: a keepalive went unanswered for {}s",
            client::LOGIN_TIMEOUT.as_secs()
        ),
        ClientEvent::ServerUnreachable {
            lost: Lost::Connection,
        } => anyhow!("the server {server} closed the connection"),
        _ => return None,
    })
}

/// Words a refused login the way a person can act on.
pub(crate) fn refusal(id: &str, code: u16, reason: &str) -> anyhow::Error {
    match code {
        natlens::error::ID_TAKEN => {
            anyhow!("ID {id:?} is already logged in on this server ({code})")
        }
        natlens::error::BAD_REQUEST => anyhow!("the server refused ID {id:?}: {reason} ({code})"),
        natlens::error::SERVER_FULL => anyhow!("the server is full: {reason} ({code})"),
        natlens::error::QUOTA_REACHED => {
            anyhow!("too many sessions from this address on the server: {reason} ({code})")
        }
        natlens::error::UNAUTHORIZED | natlens::error::STALE_NONCE => {
            anyhow::Error::new(crate::exit::CredentialsRefused(format!(
                "the server refused the credentials for {id:?}: wrong key, unknown ID, or the \
                 server needs a key (--key-file FILE or NATLENS_KEY) ({code})"
            )))
        }
        _ => anyhow!("the server refused the login as {id:?}: {reason} ({code})"),
    }
}

/// A call ID as 16 hex digits: JSON numbers lose precision above 2^53 in most consumers.
pub(crate) fn call_id_text(call_id: u64) -> String {
    format!("{call_id:016x}")
}

/// One NDJSON line per event.
pub(crate) fn event_json(args: &SessionArgs, transport: Transport, event: &ClientEvent) -> Value {
    match event {
        ClientEvent::LoggedIn {
            observed,
            udp_expiry,
        } => json!({"event": "logged_in", "id": args.id, "server": args.server,
            "transport": transport, "observed": observed,
            "udp_expiry_secs": udp_expiry.map(|e| e.as_secs())}),
        ClientEvent::LoginRefused { code, reason } => {
            json!({"event": "login_refused", "code": code, "reason": reason})
        }
        ClientEvent::ServerUnreachable { lost } => {
            json!({"event": "server_unreachable", "during": format!("{lost:?}").to_lowercase()})
        }
        ClientEvent::ConnectionLost => json!({"event": "connection_lost"}),
        ClientEvent::Relogin {
            observed,
            udp_expiry,
        } => json!({"event": "relogin", "observed": observed,
            "udp_expiry_secs": udp_expiry.map(|e| e.as_secs())}),
        ClientEvent::ObservedChanged { old, new } => {
            json!({"event": "observed_changed", "old": old, "new": new})
        }
        ClientEvent::IncomingCall {
            caller,
            call_id,
            facts,
        } => json!({"event": "incoming_call", "caller": caller,
            "call_id": call_id_text(*call_id), "caller_facts": facts}),
        ClientEvent::CallAnswered {
            callee,
            call_id,
            facts,
        } => json!({"event": "call_answered", "callee": callee,
            "call_id": call_id_text(*call_id), "callee_facts": facts}),
        ClientEvent::CallFailed {
            callee,
            call_id,
            code,
            reason,
        } => json!({"event": "call_failed", "callee": callee,
            "call_id": call_id_text(*call_id), "code": code, "reason": reason}),
        ClientEvent::LoggedOut => json!({"event": "logged_out"}),
    }
}

/// One human line per event, or `None` for those the command words itself.
pub(crate) fn event_line(
    args: &SessionArgs,
    transport: Transport,
    event: &ClientEvent,
) -> Option<String> {
    let expiry = |e: &Option<std::time::Duration>| match e {
        Some(e) => format!(" (a silent session expires after {}s)", e.as_secs()),
        None => String::new(),
    };
    Some(match event {
        ClientEvent::LoggedIn {
            observed,
            udp_expiry,
        } => format!(
            "logged in to {} as {:?} over {}; the server sees you at {observed}{}",
            args.server,
            args.id,
            transport.as_str(),
            expiry(udp_expiry)
        ),
        ClientEvent::ConnectionLost => {
            "the server closed the connection (restart?); dialling again".into()
        }
        ClientEvent::Relogin { observed, .. } => format!(
            "the server had forgotten the session (restart?); logged in again, seen at {observed}"
        ),
        ClientEvent::ObservedChanged { old, new } => {
            format!("your public address changed: {old} -> {new}")
        }
        ClientEvent::IncomingCall {
            caller,
            call_id,
            facts,
        } => format!(
            "call {} from {caller:?} at {}, transports {}: answered with your facts",
            call_id_text(*call_id),
            facts
                .observed
                .map_or("an unknown address".into(), |a| a.to_string()),
            transports_text(facts.transports)
        ),
        ClientEvent::LoggedOut => "logged out".into(),
        _ => return None,
    })
}

pub(crate) fn transports_text(transports: Transports) -> String {
    match (transports.udp, transports.tcp) {
        (true, true) => "udp, tcp".into(),
        (true, false) => "udp".into(),
        (false, true) => "tcp".into(),
        (false, false) => "none".into(),
    }
}

/// Writes one JSON value as a line on stdout; a closed stdout surfaces as an error to stop on.
pub(crate) fn print_json(value: &Value) -> io::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn args() -> SessionArgs {
        SessionArgs {
            server: "192.0.2.1:3478".parse().unwrap(),
            id: "alice".into(),
            keepalive: Duration::from_secs(15),
            key_file: None,
            output: crate::cli::OutputArgs { json: true },
        }
    }

    #[test]
    fn events_render_as_documented_json() {
        let args = args();
        let observed: SocketAddr = "198.51.100.7:40001".parse().unwrap();
        let logged_in = ClientEvent::LoggedIn {
            observed,
            udp_expiry: Some(Duration::from_secs(45)),
        };
        assert_eq!(
            event_json(&args, Transport::Udp, &logged_in),
            json!({"event": "logged_in", "id": "alice", "server": "192.0.2.1:3478",
                "transport": "udp", "observed": "198.51.100.7:40001", "udp_expiry_secs": 45})
        );
        let call = ClientEvent::IncomingCall {
            caller: "bob".into(),
            call_id: 0xAB,
            facts: own_facts(Transport::Udp, Some(observed)),
        };
        assert_eq!(
            event_json(&args, Transport::Udp, &call),
            json!({"event": "incoming_call", "caller": "bob", "call_id": "00000000000000ab",
                "caller_facts": {"observed": "198.51.100.7:40001", "delta": null,
                    "predicted_ports": [], "transports": {"udp": true, "tcp": false}}})
        );
        let lost = ClientEvent::ServerUnreachable {
            lost: Lost::Keepalive,
        };
        assert_eq!(
            event_json(&args, Transport::Udp, &lost),
            json!({"event": "server_unreachable", "during": "keepalive"})
        );
    }

    #[test]
    fn refusals_say_what_happened() {
        assert_eq!(
            refusal("alice", 409, "ID already logged in").to_string(),
            "ID \"alice\" is already logged in on this server (409)"
        );
        assert_eq!(
            refusal("alice", 503, "server full").to_string(),
            "the server is full: server full (503)"
        );
        let wrong_key = refusal("alice", 401, "Unauthorized");
        assert!(wrong_key
            .downcast_ref::<crate::exit::CredentialsRefused>()
            .is_some());
        assert!(wrong_key.to_string().contains("--key-file"));
    }
}
