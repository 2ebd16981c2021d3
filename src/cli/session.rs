//! Arguments of the commands that hold a session with a location server: `login`, `listen`
//! and `call`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{
    parse_delta, parse_id, parse_positive_duration, parse_punch_timeout, OutputArgs, ServerName,
    SourceArgs, Transport,
};

#[derive(Debug, Args)]
pub struct SessionArgs {
    /// Location server to log in to: a host name or an IP address, with an optional port (default
    /// 3478); an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved
    /// once, at start, with the system resolver (/etc/hosts, DNS; a name under .example or .test,
    /// which RFC 6761 reserves, from /etc/hosts only); of several addresses natlens takes the first
    /// IPv4 one this host has a route to (else the first IPv6 one) and says which (the `resolved`
    /// event). A name that does not resolve is a usage error (exit status 2). Without --server, the
    /// NATLENS_SERVER environment variable names the server; one of the two is required.
    ///
    /// Give --server more than once (or a comma-separated list, in NATLENS_SERVER too) to fail
    /// over: the session uses the first server that answers, and when the one it uses stops
    /// answering it moves to the next (wrapping around) and logs in there, within two keepalive
    /// intervals of the server's death (the `server_changed` event, then `relogin` naming the new
    /// server; the servers should be federated with --link so that calls reach across). With more
    /// than one server, a server counts as lost when a login or keepalive goes unanswered for half
    /// the keepalive interval (at most 10s), when an ICMP error says it cannot be reached, or when
    /// a TCP connection to it closes and cannot be dialled again within half an interval; a server
    /// refusing the first TCP connection is passed over. A call waiting for its answer on the lost
    /// server fails at once with an error naming it (exit status 1); it is not placed again on the
    /// next server, since the callee may have answered it already. When every server has been
    /// given up on in a row, the command fails as it does with one server.
    #[arg(
        long,
        short,
        value_name = "HOST[:PORT]",
        env = "NATLENS_SERVER",
        required = true,
        action = clap::ArgAction::Append,
        value_delimiter = ',',
        value_parser = ServerName::parse
    )]
    pub server: Vec<ServerName>,

    /// The ID to log in as: 1 to 64 bytes of printable UTF-8 without spaces.
    #[arg(long, value_name = "MY_ID", value_parser = parse_id)]
    pub id: String,

    /// How often to refresh the session (UDP keeps the NAT mapping open with it). After a
    /// server restart the session logs in again by itself: over UDP when a keepalive is answered
    /// 437, over TCP by dialling again (backoff from 100 ms up to this interval, for 10 s).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_positive_duration)]
    pub keepalive: Duration,

    /// File holding this ID's key (the first line that is not blank or a `#` comment), for a
    /// server run with --credentials. The environment variable NATLENS_KEY may hold the key
    /// instead. A refused key ends the command with exit status 3 (EXIT STATUS).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

impl SessionArgs {
    /// The addresses of the servers, in the order given (the session's failover order).
    pub fn server_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.server.iter().map(|server| server.addr).collect()
    }
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub session: SessionArgs,

    /// Transport for the session with the server (as on listen and call). The old spelling
    /// -t/--transport still works here, with a deprecation warning.
    #[arg(long, value_enum, value_name = "TRANSPORT", default_value_t = Transport::Udp)]
    pub login_transport: Transport,

    /// Deprecated spelling of --login-transport (on the other commands --transport is what is
    /// probed or punched); still accepted, with a warning.
    #[arg(
        long = "transport",
        short = 't',
        value_enum,
        hide = true,
        conflicts_with = "login_transport"
    )]
    pub deprecated_transport: Option<Transport>,

    /// Log out and exit after this long (default: hold the session until interrupted).
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,

    /// Exit after answering this many calls.
    #[arg(long, value_name = "N")]
    pub calls: Option<u64>,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The ID to call.
    #[arg(value_name = "PEER_ID", value_parser = parse_id)]
    pub callee: String,

    /// How long to wait for the callee's answer, relayed by the server (default: as long as
    /// --punch-timeout).
    #[arg(long, value_name = "DURATION", value_parser = parse_punch_timeout)]
    pub call_timeout: Option<Duration>,

    #[command(flatten)]
    pub session: SessionArgs,

    #[command(flatten)]
    pub punch: PunchArgs,

    /// Only exchange facts through the server and print them (both ends' public addresses,
    /// transports, port delta, predicted ports): no fingerprint, no punch.
    #[arg(long, conflicts_with_all = ["dry_run", "send", "no_data", "force"])]
    pub no_punch: bool,
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    #[command(flatten)]
    pub session: SessionArgs,

    #[command(flatten)]
    pub punch: PunchArgs,
}

/// How `natlens listen` and `natlens call` punch, and what they send once connected.
#[derive(Debug, Args)]
pub struct PunchArgs {
    /// Transport for the session with the location server (the punch itself goes over
    /// --transport).
    #[arg(long, value_enum, value_name = "TRANSPORT", default_value_t = Transport::Udp)]
    pub login_transport: Transport,

    /// Transport to punch over: udp, tcp (simultaneous open, with crafted SYNs when root or
    /// CAP_NET_RAW), or both (a UDP punch, then a TCP punch; both ends must say both).
    #[arg(long, short, value_enum, default_value_t = PunchTransport::Udp)]
    pub transport: PunchTransport,

    /// Far ports this end aims at, 1 to 65535: fan-out flows over a sequential NAT's predicted
    /// ports (at most 256 flows are opened; a larger K aims at 256), or random ports a birthday
    /// spray tries (within the packet budget --rate and --punch-timeout allow). Default: sized from
    /// both ends' facts.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub fanout: Option<u32>,

    /// The peer's NAT gives each new flow the port D after the previous one, whatever its
    /// facts say (counted from its most likely port).
    #[arg(long, value_name = "D", allow_negative_numbers = true, value_parser = parse_delta)]
    pub delta: Option<i32>,

    /// The peer's NAT steps by D from the port its server saw (the preset-delta rule); wins
    /// over --delta.
    #[arg(long, value_name = "D", allow_negative_numbers = true, value_parser = parse_delta)]
    pub preset_delta: Option<i32>,

    /// Give up punching after this long (more than 0, at most 25s: inside the 30s a NAT keeps
    /// an unanswered UDP flow). `natlens call` waits as long for the call's answer unless
    /// --call-timeout says otherwise. The old spelling --timeout still works, with a deprecation
    /// warning (on call it sets both).
    #[arg(
        long = "punch-timeout",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_punch_timeout
    )]
    pub timeout: Duration,

    /// Deprecated spelling of --punch-timeout (and, on call, of --call-timeout too); still
    /// accepted, with a warning.
    #[arg(long = "timeout", value_name = "DURATION", hide = true, conflicts_with = "timeout", value_parser = parse_punch_timeout)]
    pub deprecated_timeout: Option<Duration>,

    /// `natlens call`'s wait for the answer (--call-timeout), set after parsing
    /// ([`super::resolve_aliases`]); `None` on listen.
    #[arg(skip)]
    pub call_timeout: Option<Duration>,

    /// Packets per second this end sends at most, probes and data alike (bursts of 20 ms).
    #[arg(
        long,
        value_name = "PPS",
        default_value_t = crate::core::punch::plan::DEFAULT_RATE,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    pub rate: u32,

    /// TTL of the crafted TCP SYNs (--transport tcp): enough hops to cross this end's own NAT
    /// and open its mappings, too few to reach the far NAT (2 behind one home router; raise it
    /// behind a carrier-grade NAT).
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::io::punch_tcp::DEFAULT_SYN_TTL,
        value_parser = clap::value_parser!(u8).range(1..=255)
    )]
    pub syn_ttl: u8,

    /// Punch a pair the planner refuses (random ports against random or per-destination
    /// ports): a blind spray within the budget, with little chance.
    #[arg(long)]
    pub force: bool,

    /// auto: ask the gateway on the way to the server (PCP, then NAT-PMP, then UPnP IGD) for a
    /// short mapping of the punch's port (over UDP, the punch socket's; over TCP, the port the
    /// punch binds, which a mapped end then only listens on while the peer connects to the
    /// mapping), announce it in this end's facts so the peer aims straight at it (random-port
    /// NATs then connect), and delete it when the punch ends, Ctrl-C included. With no gateway
    /// on the way (a loopback or on-link server) nothing is asked; a gateway that refuses or
    /// does not answer costs one line on stderr (a hint event with --json) and the punch runs
    /// as without. off: never ask.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = PortMappingUse::Auto)]
    pub port_mapping: PortMappingUse,

    /// Address families to punch over: 4, 6, or any (every family both ends have). With any,
    /// an end logged in over one family also fingerprints its other family at the server's
    /// address in it (the one the server's login answer names, see server --advertise) and
    /// announces both; the punch (UDP or TCP) then runs over both families at once, IPv6 first
    /// and IPv4 50 ms later. The callee keeps the first path confirmed at its end and stops the
    /// other family; the caller keeps the path the callee's data comes on (over TCP, the
    /// connection the callee marks kept), so both ends keep the same one. A family either end
    /// lacks is reported as not shared, not an error. Give
    /// both ends the same --family: each plans from its own choice, so 4 against any leaves
    /// the IPv6 half of the other end punching alone.
    #[arg(long, value_name = "FAMILY", default_value = "any", value_parser = parse_family)]
    pub family: crate::core::punch::family::FamilyChoice,

    /// Exchange the facts, print the punch plan (strategy, expected success, each side's
    /// sockets, ports and packets) on stdout and exit without punching. The peer, not told,
    /// punches alone and fails.
    #[arg(long)]
    pub dry_run: bool,

    /// Once connected, send this file to the peer (default: stdin, until it ends).
    #[arg(long, value_name = "FILE")]
    pub send: Option<PathBuf>,

    /// Once connected, send nothing and write nothing to stdout: the report goes to stdout.
    #[arg(long, conflicts_with = "send")]
    pub no_data: bool,

    /// Write every packet natlens sends and receives on its sockets (the session with the
    /// server, the fingerprint's probes, the punch and the data) to FILE, a pcapng file for
    /// Wireshark or tshark (created or truncated). With root or CAP_NET_RAW the packets are
    /// captured as they are on the wire, TCP handshakes, resets and crafted SYNs included;
    /// without, natlens says so in one line on stderr and writes what it sent and received with
    /// synthesized headers, each packet marked by a comment: the UDP datagrams, and each TCP
    /// connection (the session's, the probes', the punched one) as a handshake, a segment per
    /// write or read with continuous sequence numbers, and the FINs or RST natlens closed it
    /// with (the connect() tries of the punch that failed are not in the file).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
}

/// `--family 4|6|any`.
fn parse_family(text: &str) -> Result<crate::core::punch::family::FamilyChoice, String> {
    use crate::core::punch::family::FamilyChoice;
    use crate::wire::natlens::IpFamily;
    match text {
        "any" => Ok(FamilyChoice::Any),
        "4" | "ipv4" => Ok(FamilyChoice::Only(IpFamily::Ipv4)),
        "6" | "ipv6" => Ok(FamilyChoice::Only(IpFamily::Ipv6)),
        _ => Err("use 4, 6 or any".into()),
    }
}

impl PunchArgs {
    /// How long `natlens call` waits for the callee's answer.
    pub fn call_wait(&self) -> Duration {
        self.call_timeout.unwrap_or(self.timeout)
    }
}

/// Whether a punch asks the gateway for a port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PortMappingUse {
    /// Ask, use what is granted, delete it afterwards.
    Auto,
    /// Never ask.
    Off,
}

/// Transports `natlens listen` and `natlens call` punch over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PunchTransport {
    /// UDP: fan-out from the planned sockets, nonce handshake, then the data exchange.
    Udp,
    /// TCP: low-TTL crafted SYN fan-out, simultaneous open with takeover, then the data
    /// exchange over the stream.
    Tcp,
    /// UDP, then TCP, each with its own fingerprint and call on the same session: both
    /// reported, the data over UDP when it connected (else over TCP), exit 0 when either did.
    Both,
}
