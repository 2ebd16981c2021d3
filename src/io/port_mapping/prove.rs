//! Proving a mapping from outside: the server sends one packet to the mapped external port.
//!
//! PLACEHOLDER until the server side lands: the natlens request that asks the server to send
//! (over the session/STUN framing) is built by the "server sends to a mapping" work. Until then
//! every server counts as one that does not support it, and reports say `proven: null`.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// Asks `server` to send one packet to `external` (the mapping's outside address) and waits up
/// to `wait` for it on `socket` (the mapped socket). `Ok(Some(arrived))`, or `Ok(None)` when the
/// server does not support the request.
pub fn ask_server_to_send(
    socket: &UdpSocket,
    server: SocketAddr,
    external: SocketAddr,
    wait: Duration,
) -> anyhow::Result<Option<bool>> {
    let _ = (socket, server, external, wait);
    Ok(None)
}
