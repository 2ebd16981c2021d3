//! One request/answer exchange over UDP with a short budget: send, resend once halfway, keep the
//! first answer from the gateway that decodes and matches; count everything else.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Largest datagram read; anything longer is cut here and then refused by the decoder as
/// oversized (a PCP message is at most 1100 bytes).
const RECEIVE_BUFFER: usize = 2048;

/// What an exchange got.
#[derive(Debug)]
pub struct Answered<T> {
    /// The first acceptable answer, if any came within the budget.
    pub answer: Option<T>,
    /// Datagrams dropped: from another address, undecodable, or not an answer to this request.
    pub ignored: u32,
    /// The gateway answered ICMP port unreachable: nothing listens there, no need to wait.
    pub refused: bool,
}

impl<T> Answered<T> {
    fn new(answer: Option<T>, ignored: u32, refused: bool) -> Self {
        Answered {
            answer,
            ignored,
            refused,
        }
    }
}

/// A UDP socket on `local` that reports ICMP errors (IP_RECVERR: an unconnected socket learns
/// of port unreachable only so), so that an absent service costs one round trip, not the
/// whole budget.
pub fn socket_on(local: std::net::IpAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind((local, 0))?;
    crate::io::icmp::enable(&socket, local.is_ipv6())?;
    Ok(socket)
}

/// Sends `request` to `to` at once and again halfway through `budget` (RFC 6886 and 6887 ask
/// for retransmissions; a LAN gateway that answers at all answers within milliseconds), and
/// returns the first datagram from `to` that `accept` turns into a value.
pub fn exchange<T>(
    socket: &UdpSocket,
    to: SocketAddr,
    request: &[u8],
    budget: Duration,
    mut accept: impl FnMut(&[u8]) -> Option<T>,
) -> io::Result<Answered<T>> {
    let start = Instant::now();
    let deadline = start + budget;
    let mut resend_at = Some(start + budget / 2);
    let mut ignored = 0;
    let mut buffer = [0u8; RECEIVE_BUFFER];
    socket.send_to(request, to)?;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(Answered::new(None, ignored, false));
        }
        if resend_at.is_some_and(|at| now >= at) {
            resend_at = None;
            socket.send_to(request, to)?;
        }
        let wake = resend_at.map_or(deadline, |at| at.min(deadline));
        socket.set_read_timeout(Some(
            wake.saturating_duration_since(now)
                .max(Duration::from_millis(1)),
        ))?;
        match socket.recv_from(&mut buffer) {
            Ok((len, from)) if from == to => match accept(&buffer[..len]) {
                Some(answer) => return Ok(Answered::new(Some(answer), ignored, false)),
                None => ignored += 1,
            },
            Ok(_) => ignored += 1,
            Err(e) if is_timeout(&e) => {}
            // An ICMP error reported on the socket (port unreachable): nobody listens there.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Ok(Answered::new(None, ignored, true))
            }
            Err(e) => return Err(e),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}
