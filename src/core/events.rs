//! What the server core reports to its shell: commands to carry out and events to log.

use std::net::SocketAddr;

use serde::Serialize;

use crate::core::registry::{ConnId, Route};
use crate::core::Transport;

/// Something the IO shell must do besides sending the immediate reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send a message on a route (UDP: from `local` to `remote`; TCP: on the connection).
    Send { route: Route, bytes: Vec<u8> },
    /// Close a TCP connection.
    Close { conn: ConnId },
}

/// Something worth logging. Serialises to one NDJSON object with an `event` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// `observed` is `public_address` in JSON, the one name every output gives it.
    Login {
        id: String,
        transport: Transport,
        #[serde(rename = "public_address")]
        observed: SocketAddr,
    },
    LoginRefused {
        id: String,
        transport: Transport,
        from: SocketAddr,
        code: u16,
        reason: &'static str,
    },
    /// `reason`: `logout`, `closed` (TCP connection ended) or `replaced` (another ID on the route).
    Logout {
        id: String,
        transport: Transport,
        reason: &'static str,
    },
    Expire {
        id: String,
        #[serde(rename = "public_address")]
        observed: SocketAddr,
        silent_ms: u64,
    },
    /// A call arrived; `from` is `local` or the name of the linked server that forwarded it.
    Call {
        call_id: String,
        caller: String,
        callee: String,
        from: String,
    },
    /// A call's outcome went back to its origin: `answered`, `not-found`, `timeout` or `error`.
    Relay {
        call_id: String,
        caller: String,
        callee: String,
        outcome: &'static str,
        code: Option<u16>,
    },
    /// A message got no answer, or a connection was closed, for `reason`.
    Drop {
        reason: &'static str,
        transport: Transport,
        from: Option<SocketAddr>,
    },
    /// A federation link to the server `name` is up. Logged as `peer_up`: the JSON event
    /// names are a contract with log readers.
    #[serde(rename = "peer_up")]
    LinkUp { name: String, conn: ConnId },
    /// A federation link went down (logged as `peer_down`).
    #[serde(rename = "peer_down")]
    LinkDown { name: String, conn: ConnId },
    /// The shared registry (`--registry`) is reachable (at start, or again): `sessions` IDs
    /// are re-registered, each naming `home`, this server's link address.
    RegistryUp { home: SocketAddr, sessions: usize },
    /// The shared registry went away: local calls and static links go on; calls for IDs not
    /// here fall back to the static links, or fail with 503.
    RegistryDown { reason: String },
}

/// Call IDs print as 16 hex digits: JSON numbers lose precision past 2^53.
pub fn call_id_text(call_id: u64) -> String {
    format!("{call_id:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Log readers match on the JSON event names: links are still `peer_up` / `peer_down`.
    #[test]
    fn link_events_keep_their_json_names() {
        let up = Event::LinkUp {
            name: "s2".into(),
            conn: 7,
        };
        let down = Event::LinkDown {
            name: "s2".into(),
            conn: 7,
        };
        let json = |event: &Event| serde_json::to_value(event).unwrap();
        assert_eq!(
            json(&up),
            serde_json::json!({"event": "peer_up", "name": "s2", "conn": 7})
        );
        assert_eq!(json(&down)["event"], "peer_down");
    }
}
