//! `natlens nat --port-mapping test`: a short UDP mapping for a socket of our own, the server
//! asked to send one packet to the mapped external port, and the mapping deleted (by a
//! [`LeaseGuard`], so an interrupt deletes it too).

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use super::{prove, request_mapping_from, Gateway, LeaseGuard};
use crate::core::port_mapping::MappingTest;
use crate::core::Transport;

/// What `--port-mapping test` asks for.
pub const TEST_LIFETIME: Duration = Duration::from_secs(60);
/// How long the mapped socket waits for the server's packet.
const ARRIVAL_WAIT: Duration = Duration::from_millis(500);

/// Runs the test against `gateway`, proving through `server`.
pub fn run(gateway: &Gateway, server: SocketAddr) -> MappingTest {
    let socket = UdpSocket::bind((gateway.local_ip, 0));
    let internal = socket
        .as_ref()
        .ok()
        .and_then(|s| s.local_addr().ok())
        .unwrap_or_else(|| SocketAddr::new(gateway.local_ip, 0));
    let mut test = MappingTest {
        protocol: None,
        transport: Transport::Udp,
        internal,
        external: None,
        lifetime_s: None,
        proven: None,
        deleted: false,
        error: None,
    };
    let socket = match socket {
        Ok(socket) => socket,
        Err(e) => {
            test.error = Some(format!("binding the socket to map: {e}"));
            return test;
        }
    };
    let lease = match request_mapping_from(gateway, Transport::Udp, internal, TEST_LIFETIME) {
        Ok(lease) => LeaseGuard::new(lease),
        Err(e) => {
            test.error = Some(format!("{e:#}"));
            return test;
        }
    };
    test.protocol = Some(lease.lease().protocol);
    test.external = Some(lease.lease().external);
    test.lifetime_s = Some(lease.lease().lifetime.as_secs() as u32);
    match prove::ask_server_to_send(&socket, server, lease.lease().external, ARRIVAL_WAIT) {
        Ok(proven) => test.proven = proven,
        Err(e) => test.error = Some(format!("asking the server to send: {e:#}")),
    }
    match lease.delete() {
        Ok(()) => test.deleted = true,
        Err(e) => test.error = Some(format!("deleting the mapping: {e:#}")),
    }
    test
}
