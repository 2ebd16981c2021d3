//! Deciding, from what the kernel reported, that nothing can be reached at a server: an ICMP
//! error quoting one of our requests to it, or a refused TCP connection. Sans-IO: the shell
//! (`io::icmp`) reads the socket's error queue and hands the pieces here.
//!
//! An ICMP error counts only when it is about a request we sent to the server:
//! - the quoted packet's destination is the server's address (the kernel has already matched
//!   the quoted ports to our socket, so errors about other sockets never reach us);
//! - when the quote reaches past the UDP header into the STUN header, its transaction ID is one
//!   of ours (RFC 792 only obliges a router to quote 8 bytes after the IP header, so a shorter
//!   quote is taken on the kernel's port match alone);
//! - a port unreachable comes from the server's host itself: only that host can know that no
//!   socket is bound there, so one from elsewhere is ignored;
//! - the type and code say the destination cannot be reached (net, host, port, administratively
//!   prohibited). "Fragmentation needed", "time exceeded" and the like say nothing of the sort.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::wire::stun::TransactionId;

/// Why the server cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// ICMP port unreachable: the host is there, nothing listens on the port.
    PortUnreachable,
    /// ICMP host (or address) unreachable.
    HostUnreachable,
    /// ICMP network unreachable, or no route.
    NetUnreachable,
    /// ICMP communication administratively prohibited (a firewall's reject).
    Prohibited,
    /// The TCP connection was refused (a RST answered the SYN).
    Refused,
}

/// The server `to` cannot be reached, and why; its text is what the user is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreachable {
    pub to: SocketAddr,
    pub reason: Reason,
    /// Who sent the ICMP error, when one did.
    pub offender: Option<IpAddr>,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let to = self.to;
        let what = match self.reason {
            Reason::PortUnreachable => return write!(f, "{to} answered ICMP port unreachable"),
            Reason::Refused => return write!(f, "{to} refused the TCP connection"),
            Reason::HostUnreachable => "host unreachable",
            Reason::NetUnreachable => "network unreachable",
            Reason::Prohibited => "communication administratively prohibited",
        };
        match self.offender {
            Some(from) if from != to.ip() => write!(f, "{from} answered ICMP {what} for {to}"),
            Some(_) => write!(f, "{to} answered ICMP {what}"),
            None => write!(f, "{to}: {what}"),
        }
    }
}

/// Which ICMP the error came in (`ee_origin` of the kernel's extended error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmp {
    V4,
    V6,
}

/// One ICMP error as the kernel queued it for our socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpError<'a> {
    pub icmp: Icmp,
    pub icmp_type: u8,
    pub code: u8,
    /// The host that sent the ICMP message.
    pub offender: Option<IpAddr>,
    /// The quoted packet's destination.
    pub to: SocketAddr,
    /// The quoted packet's UDP payload, as much of it as the ICMP message carried.
    pub quote: &'a [u8],
}

/// The reason an ICMP type and code give, or `None` for an error that does not mean the
/// destination is unreachable (packet too big, time exceeded, parameter problem...).
pub fn reason_of(icmp: Icmp, icmp_type: u8, code: u8) -> Option<Reason> {
    match (icmp, icmp_type, code) {
        // Destination unreachable (RFC 792, RFC 1122 3.2.2.1, RFC 1812 5.2.7.1).
        (Icmp::V4, 3, 0 | 6 | 9 | 11) => Some(Reason::NetUnreachable),
        (Icmp::V4, 3, 1 | 7 | 8 | 10 | 12) => Some(Reason::HostUnreachable),
        (Icmp::V4, 3, 3) => Some(Reason::PortUnreachable),
        (Icmp::V4, 3, 13) => Some(Reason::Prohibited),
        // Destination unreachable (RFC 4443 3.1).
        (Icmp::V6, 1, 0 | 6) => Some(Reason::NetUnreachable),
        (Icmp::V6, 1, 1 | 5) => Some(Reason::Prohibited),
        (Icmp::V6, 1, 3) => Some(Reason::HostUnreachable),
        (Icmp::V6, 1, 4) => Some(Reason::PortUnreachable),
        _ => None,
    }
}

/// The transaction ID a quoted STUN request carries, when the quote reaches that far.
fn quoted_transaction(quote: &[u8]) -> Option<TransactionId> {
    let bytes: [u8; 12] = quote.get(8..20)?.try_into().ok()?;
    Some(TransactionId(bytes))
}

/// What `error` says about `server`: `Some` only when it quotes one of the requests in `ours`
/// sent to `server` and means the server cannot be reached (see the module doc).
pub fn judge(
    error: &IcmpError<'_>,
    server: SocketAddr,
    ours: &[TransactionId],
) -> Option<Unreachable> {
    if error.to != server {
        return None;
    }
    let reason = reason_of(error.icmp, error.icmp_type, error.code)?;
    if reason == Reason::PortUnreachable && error.offender.is_some_and(|o| o != server.ip()) {
        return None;
    }
    if error.quote.len() >= 20 {
        let tid = quoted_transaction(error.quote)?;
        if !ours.contains(&tid) {
            return None;
        }
    }
    Some(Unreachable {
        to: server,
        reason,
        offender: error.offender,
    })
}

/// The reason a failed TCP connect gives (`errno`), or `None` for a failure that does not say
/// the server is unreachable.
pub fn connect_failure(errno: i32) -> Option<Reason> {
    match errno {
        libc::ECONNREFUSED => Some(Reason::Refused),
        libc::EHOSTUNREACH | libc::EHOSTDOWN => Some(Reason::HostUnreachable),
        libc::ENETUNREACH => Some(Reason::NetUnreachable),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "192.0.2.1:3478";

    fn request(tid: [u8; 12]) -> Vec<u8> {
        let mut bytes = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42];
        bytes.extend_from_slice(&tid);
        bytes.extend_from_slice(&[0x80, 0x28, 0x00, 0x04, 1, 2, 3, 4]);
        bytes
    }

    fn port_unreachable(quote: &[u8]) -> IcmpError<'_> {
        IcmpError {
            icmp: Icmp::V4,
            icmp_type: 3,
            code: 3,
            offender: Some("192.0.2.1".parse().unwrap()),
            to: SERVER.parse().unwrap(),
            quote,
        }
    }

    #[test]
    fn a_port_unreachable_quoting_our_request_counts() {
        let quote = request([7; 12]);
        let verdict = judge(
            &port_unreachable(&quote),
            SERVER.parse().unwrap(),
            &[TransactionId([7; 12])],
        );
        let verdict = verdict.expect("our request, the server's host");
        assert_eq!(verdict.reason, Reason::PortUnreachable);
        assert_eq!(
            verdict.to_string(),
            "192.0.2.1:3478 answered ICMP port unreachable"
        );
    }

    #[test]
    fn a_quote_of_someone_elses_request_does_not() {
        let quote = request([9; 12]);
        let ours = [TransactionId([7; 12])];
        assert_eq!(
            judge(&port_unreachable(&quote), SERVER.parse().unwrap(), &ours),
            None
        );
        // Nothing of ours is in flight at all.
        assert_eq!(
            judge(&port_unreachable(&quote), SERVER.parse().unwrap(), &[]),
            None
        );
    }

    #[test]
    fn an_error_about_another_destination_does_not() {
        // The alternate address (or the own public address) unreachable is not the server.
        let quote = request([7; 12]);
        let ours = [TransactionId([7; 12])];
        let mut error = port_unreachable(&quote);
        error.to = "192.0.2.2:3479".parse().unwrap();
        assert_eq!(judge(&error, SERVER.parse().unwrap(), &ours), None);
        error.to = "192.0.2.1:3479".parse().unwrap();
        assert_eq!(judge(&error, SERVER.parse().unwrap(), &ours), None);
    }

    #[test]
    fn a_port_unreachable_from_a_third_host_does_not() {
        let quote = request([7; 12]);
        let ours = [TransactionId([7; 12])];
        let mut error = port_unreachable(&quote);
        error.offender = Some("198.51.100.9".parse().unwrap());
        assert_eq!(judge(&error, SERVER.parse().unwrap(), &ours), None);
        // A router may say the host is unreachable, though.
        error.code = 1;
        let verdict = judge(&error, SERVER.parse().unwrap(), &ours).unwrap();
        assert_eq!(verdict.reason, Reason::HostUnreachable);
        assert_eq!(
            verdict.to_string(),
            "198.51.100.9 answered ICMP host unreachable for 192.0.2.1:3478"
        );
    }

    #[test]
    fn a_short_quote_is_taken_on_the_kernels_port_match() {
        let ours = [TransactionId([7; 12])];
        assert!(judge(&port_unreachable(&[]), SERVER.parse().unwrap(), &ours).is_some());
        assert!(judge(
            &port_unreachable(&[0, 1, 0, 8]),
            SERVER.parse().unwrap(),
            &ours
        )
        .is_some());
    }

    #[test]
    fn errors_that_do_not_mean_unreachable_are_ignored() {
        assert_eq!(reason_of(Icmp::V4, 3, 4), None, "fragmentation needed");
        assert_eq!(reason_of(Icmp::V4, 11, 0), None, "time exceeded");
        assert_eq!(reason_of(Icmp::V6, 2, 0), None, "packet too big");
        assert_eq!(reason_of(Icmp::V6, 3, 0), None, "time exceeded");
        assert_eq!(reason_of(Icmp::V6, 1, 4), Some(Reason::PortUnreachable));
        assert_eq!(reason_of(Icmp::V6, 1, 3), Some(Reason::HostUnreachable));
        assert_eq!(reason_of(Icmp::V4, 3, 13), Some(Reason::Prohibited));
        let quote = request([7; 12]);
        let mut error = port_unreachable(&quote);
        error.code = 4;
        assert_eq!(
            judge(&error, SERVER.parse().unwrap(), &[TransactionId([7; 12])]),
            None
        );
    }

    #[test]
    fn connect_failures_name_their_reason() {
        assert_eq!(connect_failure(libc::ECONNREFUSED), Some(Reason::Refused));
        assert_eq!(
            connect_failure(libc::EHOSTUNREACH),
            Some(Reason::HostUnreachable)
        );
        assert_eq!(connect_failure(libc::ETIMEDOUT), None);
        let refused = Unreachable {
            to: SERVER.parse().unwrap(),
            reason: Reason::Refused,
            offender: None,
        };
        assert_eq!(
            refused.to_string(),
            "192.0.2.1:3478 refused the TCP connection"
        );
    }
}
