//! The location-server session of a rendezvous (and of `natlens login` and `natlens call
//! --no-punch`): opened from the command line, its failures worded the way a person can act on,
//! closed politely.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use rand::rngs::StdRng;
use rand::RngCore;

use crate::cli::{ServerName, SessionArgs};
use crate::core::client::{self, ClientConfig, ClientEvent, ClientSession, Lost, LOGOUT_TIMEOUT};
use crate::core::credentials;
use crate::core::unreachable::Unreachable;
use crate::core::Transport;
use crate::exit::{self, Kind};
use crate::io::client::{self as link_io, Link};
use crate::wire::natlens::{self, NatFacts, Transports};

/// A connected link and a session that has queued its LOGIN.
pub struct Opened {
    pub link: Link,
    pub session: ClientSession<StdRng>,
    /// Servers passed over because they refused the connection (TCP), each as the move away
    /// from it, for the command to report before the session's own events.
    pub passed_over: Vec<ClientEvent>,
}

/// Connects over `transport` to the first of the servers that takes the connection (over UDP,
/// the first: whether it answers is the session's to find out) and starts the session on it
/// (`call_timeout` for `natlens call`). The ID was checked by the command line's parser.
pub fn open(
    args: &SessionArgs,
    transport: Transport,
    call_timeout: Option<Duration>,
    rng: StdRng,
) -> anyhow::Result<Opened> {
    let (link, servers, passed_over) = connect_first(args, transport)?;
    let mut config = ClientConfig::new(args.id.clone(), transport, args.keepalive);
    config.hmac_key = load_key(args)?.map(|key| credentials::hmac_key(&args.id, &key));
    config.servers = servers;
    if let Some(timeout) = call_timeout {
        config.call_timeout = timeout;
    }
    let mut session = ClientSession::new(config, Instant::now(), rng);
    session.set_facts(own_facts(transport, None));
    Ok(Opened {
        link,
        session,
        passed_over,
    })
}

/// The link to the first server that takes a connection, the failover order starting with it
/// (the list turned, so that the move after the last still wraps to the first), and the moves
/// past those that refused. When none does, the first one's error.
fn connect_first(
    args: &SessionArgs,
    transport: Transport,
) -> anyhow::Result<(Link, Vec<SocketAddr>, Vec<ClientEvent>)> {
    let mut servers = args.server_addrs();
    let mut passed_over = Vec::new();
    let mut errors = Vec::new();
    for (i, server) in args.server.iter().enumerate() {
        let source = args.source.source_toward(server.addr);
        match Link::connect(server.addr, transport, &source) {
            Ok(link) => {
                servers.rotate_left(i);
                return Ok((link, servers, passed_over));
            }
            Err(err) => {
                let error = unreachable(server, transport, err);
                let next = args.server.get(i + 1).map(|next| next.addr);
                if !is_unreachable(&error) {
                    return Err(error);
                }
                if let Some(to) = next {
                    passed_over.push(ClientEvent::ServerChanged {
                        from: server.addr,
                        to,
                        lost: Lost::Connection,
                    });
                }
                errors.push(error.to_string());
            }
        }
    }
    Err(exit::failed(Kind::ServerUnreachable, errors.join("; ")))
}

/// True for the error of a server that said no (not of this host's own socket).
fn is_unreachable(error: &anyhow::Error) -> bool {
    exit::code_of(error) == exit::UNREACHABLE
}

/// The error for a server `Link::connect` could not reach: [`Kind::ServerUnreachable`] when the
/// server's side said no (refused, unreachable, timed out), a plain failure otherwise (this
/// host's own socket could not be made).
fn unreachable(server: &ServerName, transport: Transport, err: std::io::Error) -> anyhow::Error {
    let what = format!("cannot reach {server} over {}", transport.as_str());
    let errno = err.raw_os_error();
    if let Some(reason) = errno.and_then(crate::core::unreachable::connect_failure) {
        let unreachable = Unreachable {
            to: server.addr,
            reason,
            offender: None,
        };
        return exit::failed(Kind::ServerUnreachable, format!("{what}: {unreachable}"));
    }
    if errno == Some(libc::ETIMEDOUT) || err.kind() == std::io::ErrorKind::TimedOut {
        return exit::failed(Kind::ServerUnreachable, format!("{what}: {err}"));
    }
    anyhow::Error::new(err).context(what)
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
pub fn own_facts(transport: Transport, observed: Option<SocketAddr>) -> NatFacts {
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
pub fn failure(
    args: &SessionArgs,
    transport: Transport,
    link: &Link,
    event: &ClientEvent,
) -> Option<anyhow::Error> {
    let server = link.server();
    let via = transport.as_str();
    if args.server.len() > 1 && matches!(event, ClientEvent::ServerUnreachable { .. }) {
        return Some(every_server_lost(args, via, link));
    }
    Some(match event {
        ClientEvent::LoginRefused { code, reason } => refusal(&args.id, *code, reason),
        ClientEvent::ServerUnreachable { lost: Lost::Login } if link.unreachable().is_some() => {
            let unreachable = link.unreachable().expect("checked");
            exit::failed(
                Kind::ServerUnreachable,
                format!("no natlens server reachable at {server} over {via}: {unreachable}"),
            )
        }
        ClientEvent::ServerUnreachable { lost: Lost::Login } => exit::failed(
            Kind::ServerUnreachable,
            format!(
                "no answer from {server} over {via} within {}s; is a natlens server running there?",
                client::LOGIN_TIMEOUT.as_secs()
            ),
        ),
        ClientEvent::ServerUnreachable {
            lost: Lost::Keepalive,
        } => exit::failed(
            Kind::ServerUnreachable,
            format!(
                "lost the server {server}: a keepalive went unanswered for {}s",
                client::LOGIN_TIMEOUT.as_secs()
            ),
        ),
        ClientEvent::ServerUnreachable {
            lost: Lost::Connection,
        } => anyhow!("the server {server} closed the connection"),
        _ => return None,
    })
}

/// The error of a session that gave up on every one of several servers in turn.
fn every_server_lost(args: &SessionArgs, via: &str, link: &Link) -> anyhow::Error {
    let servers: Vec<String> = args.server.iter().map(ToString::to_string).collect();
    let last = match link.unreachable() {
        Some(unreachable) => format!("{unreachable}"),
        None => format!("{} did not answer", link.server()),
    };
    exit::failed(
        Kind::ServerUnreachable,
        format!(
            "no server answered over {via}: {} were tried in turn (the last: {last}); are \
             natlens servers running there?",
            servers.join(", ")
        ),
    )
}

/// Words a refused login the way a person can act on.
pub fn refusal(id: &str, code: u16, reason: &str) -> anyhow::Error {
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

/// Words a failed call: the callee unknown (404) or not answering (408) is
/// [`Kind::CalleeUnavailable`].
pub fn call_failure(
    callee: &str,
    code: Option<u16>,
    reason: &str,
    timeout: Duration,
) -> anyhow::Error {
    let unavailable = |text: String| exit::failed(Kind::CalleeUnavailable, text);
    match code {
        Some(natlens::error::UNKNOWN_PEER) => unavailable(format!(
            "{callee:?} is not logged in on this server or its peers (404)"
        )),
        Some(natlens::error::PEER_TIMEOUT) => {
            unavailable(format!("{callee:?} did not answer the call (408)"))
        }
        Some(code) => anyhow!("the call to {callee:?} failed: {reason} ({code})"),
        // No answer of any kind within --call-timeout, or a session that closed under the call:
        // the server may be the one that went quiet, so this is not the callee's code.
        None => anyhow!("the call to {callee:?} failed: {reason} (--call-timeout {timeout:?})"),
    }
}

/// Logs out and waits for the answer (at most [`LOGOUT_TIMEOUT`]); failures here change
/// nothing, the server forgets the session anyway.
pub fn log_out<R: RngCore>(link: &mut Link, session: &mut ClientSession<R>) {
    if session.is_closed() {
        return;
    }
    session.logout(Instant::now());
    let until = Instant::now() + LOGOUT_TIMEOUT + Duration::from_millis(100);
    let _ = link_io::drive(
        link,
        session,
        Some(until),
        None,
        &mut |_, _| {},
        &mut |_, event| Ok(matches!(event, ClientEvent::LoggedOut)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn failures_name_the_callee() {
        let text = |code| call_failure("bob", code, "why", Duration::from_secs(10)).to_string();
        assert_eq!(
            text(Some(404)),
            "\"bob\" is not logged in on this server or its peers (404)"
        );
        assert_eq!(text(Some(408)), "\"bob\" did not answer the call (408)");
        let code = |code| exit::code_of(&call_failure("bob", code, "why", Duration::ZERO));
        assert_eq!(code(Some(404)), exit::NO_CALLEE);
        assert_eq!(code(Some(408)), exit::NO_CALLEE);
        assert_eq!(code(Some(503)), exit::FAILURE);
        assert_eq!(code(None), exit::FAILURE);
        assert_eq!(
            text(None),
            "the call to \"bob\" failed: why (--call-timeout 10s)"
        );
    }
}
