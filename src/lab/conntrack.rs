//! Reading a router's conntrack table: the ground truth of which public port the NAT gave a
//! flow, whatever the endpoints believe.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::Serialize;

/// One flow as `conntrack -L` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CtEntry {
    /// `udp`, `tcp`, `icmp`…
    pub proto: String,
    /// TCP state (`SYN_SENT`, `ESTABLISHED`…), `None` for other protocols.
    pub state: Option<String>,
    /// Original direction: the LAN host as it sent.
    pub orig_src: SocketAddr,
    pub orig_dst: SocketAddr,
    /// Reply direction: `reply_dst` is the public address and port the NAT allocated.
    pub reply_src: SocketAddr,
    pub reply_dst: SocketAddr,
    /// False while the entry is `[UNREPLIED]`.
    pub replied: bool,
    pub assured: bool,
}

impl CtEntry {
    /// The public port the NAT gave this flow (the orig source port when it did not translate).
    pub fn public_port(&self) -> u16 {
        self.reply_dst.port()
    }
}

/// Parses `conntrack -L` output; lines that are not flows are skipped.
pub fn parse(text: &str) -> Vec<CtEntry> {
    text.lines().filter_map(parse_line).collect()
}

/// `udp 17 29 src=… dst=… sport=… dport=… [UNREPLIED] src=… dst=… sport=… dport=… mark=0 use=1`
fn parse_line(line: &str) -> Option<CtEntry> {
    let mut words = line.split_whitespace();
    let proto = words.next()?.to_owned();
    let mut state = None;
    let mut tuples: Vec<Tuple> = Vec::new();
    let mut replied = true;
    let mut assured = false;
    for word in words {
        match word.split_once('=') {
            Some(("src", value)) => tuples.push(Tuple {
                src: value.parse().ok()?,
                ..Tuple::default()
            }),
            Some((key, value)) => {
                if let Some(tuple) = tuples.last_mut() {
                    tuple.set(key, value);
                }
            }
            None if word == "[UNREPLIED]" => replied = false,
            None if word == "[ASSURED]" => assured = true,
            None if word.chars().all(|c| c.is_ascii_uppercase() || c == '_') => {
                state = Some(word.to_owned());
            }
            None => {}
        }
    }
    let [orig, reply] = <[Tuple; 2]>::try_from(tuples).ok()?;
    Some(CtEntry {
        proto,
        state,
        orig_src: SocketAddr::new(orig.src, orig.sport),
        orig_dst: SocketAddr::new(orig.dst, orig.dport),
        reply_src: SocketAddr::new(reply.src, reply.sport),
        reply_dst: SocketAddr::new(reply.dst, reply.dport),
        replied,
        assured,
    })
}

#[derive(Debug)]
struct Tuple {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
}

impl Default for Tuple {
    fn default() -> Self {
        Tuple {
            src: Ipv4Addr::UNSPECIFIED.into(),
            dst: Ipv4Addr::UNSPECIFIED.into(),
            sport: 0,
            dport: 0,
        }
    }
}

impl Tuple {
    fn set(&mut self, key: &str, value: &str) {
        match key {
            "dst" => self.dst = value.parse().unwrap_or(self.dst),
            "sport" => self.sport = value.parse().unwrap_or(0),
            "dport" => self.dport = value.parse().unwrap_or(0),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
udp      17 29 src=192.0.2.10 dst=203.0.113.10 sport=50000 dport=3478 [UNREPLIED] src=203.0.113.10 dst=203.0.113.1 sport=3478 dport=40002 mark=0 use=1
tcp      6 118 SYN_SENT src=192.0.2.10 dst=203.0.113.10 sport=41000 dport=80 [UNREPLIED] src=203.0.113.10 dst=203.0.113.1 sport=80 dport=41000 mark=0 use=1
udp      17 117 src=192.0.2.11 dst=203.0.113.10 sport=20001 dport=9 src=203.0.113.10 dst=203.0.113.1 sport=9 dport=20001 [ASSURED] mark=0 use=1
icmp     1 29 src=192.0.2.10 dst=203.0.113.10 type=8 code=0 id=7 src=203.0.113.10 dst=203.0.113.1 type=0 code=0 id=7 mark=0 use=1
conntrack v1.4.7 (conntrack-tools): 4 flow entries have been shown.
";

    #[test]
    fn udp_entry_gives_the_allocated_port() {
        let entries = parse(SAMPLE);
        assert_eq!(entries.len(), 4);
        let udp = &entries[0];
        assert_eq!(udp.proto, "udp");
        assert_eq!(udp.orig_src, "192.0.2.10:50000".parse().unwrap());
        assert_eq!(udp.orig_dst, "203.0.113.10:3478".parse().unwrap());
        assert_eq!(udp.reply_src, "203.0.113.10:3478".parse().unwrap());
        assert_eq!(udp.reply_dst, "203.0.113.1:40002".parse().unwrap());
        assert_eq!(udp.public_port(), 40002);
        assert!(!udp.replied && !udp.assured);
        assert_eq!(udp.state, None);
    }

    #[test]
    fn tcp_state_and_flags_are_read() {
        let entries = parse(SAMPLE);
        assert_eq!(entries[1].state.as_deref(), Some("SYN_SENT"));
        assert_eq!(entries[1].public_port(), 41000);
        assert!(entries[2].replied && entries[2].assured);
    }

    #[test]
    fn icmp_has_no_ports_and_trailer_lines_are_skipped() {
        let entries = parse(SAMPLE);
        assert_eq!(entries[3].proto, "icmp");
        assert_eq!(entries[3].orig_src.port(), 0);
        assert!(
            parse("conntrack v1.4.7 (conntrack-tools): 0 flow entries have been shown.\n")
                .is_empty()
        );
        assert!(parse("udp 17 29 src=garbage").is_empty());
    }
}
