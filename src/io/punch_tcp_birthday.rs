//! The TCP birthday punch: a random-port NAT against a port-preserving, port-restricted one:
//! the two halves of the plan's `birthday` strategy over TCP.
//!
//! Why a birthday and not a direct aim: the random side's NAT gives each new flow a random
//! public port, and the cone side's NAT only admits segments from an address and port it has
//! sent to. So the random side's SYN to the cone's fixed port is dropped by the cone's NAT
//! (there is no entry for it), and the cone side cannot aim at a port it does not know.
//!
//! * The random side **holds** `k` kernel sockets, each `connect()`ing to the cone's one public
//!   port (full TTL: the cone's NAT drops them silently, docs/lab.md). Each opens a conntrack
//!   entry in SYN_SENT at an unknown random public port of its NAT, kept alive by the kernel's
//!   own SYN retransmissions (1 s, 3 s, 7 s) with the same ISN.
//! * The cone side **sprays** crafted SYNs (full TTL, so they reach the far NAT) from its one
//!   punched port to distinct random ports of the random NAT, at the plan's rate, with an RST
//!   guard on the punched port. A spray SYN that lands on one of the `k` ports matches that
//!   entry's reply direction: the random NAT forwards it to the holding socket, which is in
//!   SYN_SENT, so the kernel takes it as a simultaneous open and answers SYN-ACK. That SYN-ACK
//!   reaches the cone host, where it is adopted from the crafted ISN ([`crate::io::adopt`]).
//!
//! The schedule and the choice of what is adopted are the punch machine's
//! ([`crate::core::punch::tcp`]); here are only the two halves' set-up.
//!
//! Odds: `1 − (1 − k/N)ⁿ` for `n` spray SYNs ([`crate::core::punch::birthday`]); spray SYNs
//! that reach the random NAT before the holders' SYNs left (the holder starts one relay later
//! and opens its sockets at the rate cap) are wasted, which is why the TCP plan sprays more
//! than the UDP one. The spray stops as soon as a connection is adopted.

use std::io;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::io::punch_tcp::{self, TcpPunch, TcpPunched};

use crate::io::rst_guard::RstGuard;
use crate::io::simopen::{PunchError, Shell};

/// The random side: `sockets` kernel sockets, socket `m` connecting to far port
/// `far_ports[m mod len]` (one port against a cone), opened at the plan's rate; the first that
/// completes a handshake is the connection.
pub fn hold(
    spec: &TcpPunch,
    sockets: u32,
    stop: Option<&AtomicBool>,
) -> Result<TcpPunched, PunchError> {
    if spec.plan.far_ports.is_empty() || sockets == 0 {
        return Err(PunchError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the plan gives the holding side no far port or no socket",
        )));
    }
    let machine = spec.machine(Instant::now(), false);
    let driven = Shell::new(machine, spec.bind_on(0), None)
        .on_device(spec.interface.as_deref())
        .run(stop)?;
    Ok(TcpPunched::from_driven(driven, 0))
}

/// The cone side: crafted SYNs from the punched port to every far port in the plan's order, at
/// its rate, while the sniffer waits for the holder's SYN-ACK (or SYN) on one of those 4-tuples
/// and adopts it. `hint` gets the one line said when crafted SYNs cannot be sent.
pub fn spray(
    spec: &TcpPunch,
    stop: Option<&AtomicBool>,
    hint: &mut dyn FnMut(&str),
) -> Result<TcpPunched, PunchError> {
    let start = Instant::now();
    let raw = match crate::io::punch_tcp::open_raw(spec) {
        Ok(raw) => raw,
        Err(err) => {
            let line = format!(
                "a TCP birthday spray sends crafted SYNs and cannot run without them ({err})"
            );
            hint(&line);
            return Err(PunchError::Io(io::Error::other(line)));
        }
    };
    // The punched port: the session's, which the holder aims at through our NAT.
    let port = punch_tcp::punched_port(spec)?;
    let guard = RstGuard::install(port, spec.peer_ip)
        .map_err(|err| PunchError::Io(io::Error::other(format!("{err:#}"))))?;
    punch_tcp::crafted(spec, &raw, port, guard, start, stop)
}
