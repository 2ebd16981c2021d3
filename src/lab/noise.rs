//! `--noise`: a second LAN host that keeps opening new UDP flows, so a NAT's ports are consumed
//! between a prober's probes the way other people's traffic consumes them on a real network.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// First source port of the noise flows.
pub const FIRST_PORT: u16 = 20_000;
/// Source ports cycled through. At up to 100 flows/s a port comes round again after two
/// minutes, once the kernel has forgotten its last flow (30 s unreplied UDP timeout), so every
/// datagram really is a new flow and a new NAT mapping.
pub const PORTS: u16 = 12_000;
/// The discard port: nothing listens there, and nothing needs to.
pub const TARGET_PORT: u16 = 9;

/// Sends one datagram from a new source port to `target` every `1/rate` seconds until `stop`.
pub fn run(rate: f64, target: SocketAddr, stop: &AtomicBool) -> io::Result<()> {
    if rate <= 0.0 {
        return Ok(());
    }
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut sent: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = start + interval * sent;
        let now = Instant::now();
        if due > now {
            std::thread::sleep((due - now).min(Duration::from_millis(50)));
            continue;
        }
        let port = source_port(sent);
        // A port still bound by someone else is skipped: the next one is just as new.
        if let Ok(socket) = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)) {
            let _ = socket.send_to(b"natlens lab noise", target);
        }
        sent = sent.wrapping_add(1);
    }
    Ok(())
}

/// The source port of the `n`th flow.
pub fn source_port(n: u32) -> u16 {
    FIRST_PORT + (n % u32::from(PORTS)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ports_cycle_below_the_ephemeral_range() {
        assert_eq!(source_port(0), 20_000);
        assert_eq!(source_port(1), 20_001);
        assert_eq!(source_port(u32::from(PORTS)), 20_000);
        // Clear of Linux's default ephemeral range (32768–60999) and the sequential NAT's ports.
        assert!(u32::from(FIRST_PORT) + u32::from(PORTS) <= 32_768);
    }
}
