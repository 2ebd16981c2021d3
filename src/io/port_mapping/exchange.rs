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
            return Ok(Answered {
                answer: None,
                ignored,
            });
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
                Some(answer) => {
                    return Ok(Answered {
                        answer: Some(answer),
                        ignored,
                    })
                }
                None => ignored += 1,
            },
            Ok(_) => ignored += 1,
            Err(e) if is_timeout(&e) => {}
            // An ICMP error reported on the socket (port unreachable): nobody listens there.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Ok(Answered {
                    answer: None,
                    ignored,
                })
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
