//! The command-line tree: clap derive types only, no behaviour.
//!
//! This tree is the single source of truth for `--help`, the man pages in `man/` and the shell
//! completions in `completions/`; `natlens generate` writes both and `tests/generated_files.rs`
//! fails when the committed copies drift from it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::lab::{Host, NatMode};

mod server_name;
pub use server_name::ServerName;

/// Diagnose NAT routers and connect two hosts behind NATs directly.
#[derive(Debug, Parser)]
#[command(name = "natlens", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a location server: STUN Binding reflection, logins, call relay, federation.
    Server(ServerArgs),
    /// Log in to a location server and hold the session, answering calls with this end's facts.
    Login(LoginArgs),
    /// Log in, fingerprint this end's NAT, wait for a call and punch a direct path to the
    /// caller; then what one end sends arrives on the other's stdout, netcat-style.
    #[command(long_about = LISTEN_LONG_ABOUT, after_long_help = PUNCH_OUTPUT)]
    Listen(ListenArgs),
    /// Log in, fingerprint this end's NAT, call another ID through the server and punch a direct
    /// path to it (with --no-punch, only print the facts exchanged).
    #[command(long_about = CALL_LONG_ABOUT, after_long_help = PUNCH_OUTPUT)]
    Call(CallArgs),
    /// Build a NAT lab of network namespaces on this machine (needs root) and work in it.
    Lab(LabArgs),
    /// Fingerprint the NAT between this host and a STUN server: mapping, filtering, hairpinning,
    /// port allocation and the next port it will hand out.
    #[command(long_about = NAT_LONG_ABOUT, after_long_help = NAT_JSON_SCHEMA)]
    Nat(NatArgs),
    /// Write man pages and shell completions from this command tree (for maintainers).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

/// Output format shared by the client commands.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct OutputArgs {
    /// Print machine-readable JSON instead of tables and lines (login: NDJSON events on stdout;
    /// call --no-punch: one object on stdout; listen and call: see OUTPUT).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to serve STUN and natlens on, over both UDP and TCP. Repeatable; IPv4 or IPv6.
    #[arg(
        long = "listen",
        value_name = "ADDR:PORT",
        default_value = "0.0.0.0:3478"
    )]
    pub listen: Vec<SocketAddr>,

    /// Second IP and port for RFC 5780 "full" mode: enables OTHER-ADDRESS, RESPONSE-ORIGIN and
    /// CHANGE-REQUEST. The server then also listens on every mix of the two IPs and two ports.
    #[arg(long, value_name = "IP:PORT", value_parser = parse_endpoint)]
    pub alternate: Option<SocketAddr>,

    /// Another natlens server to hold a federation link to over TCP (repeatable). Calls to IDs
    /// not logged in here are forwarded over the links. `--peer` is the older name. HOST[:PORT]
    /// as for --server of the client commands: a name is resolved once, at start (the line
    /// naming the address used is printed unless --json); the port defaults to 3478.
    #[arg(
        long = "link",
        visible_alias = "peer",
        value_name = "HOST[:PORT]",
        value_parser = ServerName::parse
    )]
    pub links: Vec<ServerName>,

    /// Name of this server in federation (defaults to a random one); must differ between linked
    /// servers.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Forget a UDP session that has sent nothing for this long.
    #[arg(long, value_name = "DURATION", default_value = "45s", value_parser = parse_positive_duration)]
    pub udp_expiry: Duration,

    /// Maximum number of logged-in sessions.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub max_sessions: usize,

    /// Maximum number of sessions logged in from one source IP (refused with 486 beyond it).
    #[arg(long, value_name = "N", default_value_t = crate::core::server::DEFAULT_MAX_SESSIONS_PER_IP)]
    pub max_sessions_per_ip: usize,

    /// Maximum number of calls waiting for their callee or a linked server (refused with 503
    /// beyond it).
    #[arg(long, value_name = "N", default_value_t = crate::core::server::DEFAULT_MAX_PENDING_CALLS)]
    pub max_pending_calls: usize,

    /// Answers per second to one source IP over UDP (burst: twice as many); requests beyond it
    /// are dropped and counted as `rate-limited`. Keeps a forged source address from turning
    /// the server into a flood aimed at someone else. 0 disables the limit (benchmarks).
    #[arg(long, value_name = "N", default_value_t = crate::core::token_bucket::DEFAULT_RATE)]
    pub answer_rate: u32,

    /// Require credentials: LOGIN and CALL must carry USERNAME and MESSAGE-INTEGRITY-SHA256
    /// (RFC 8489 long-term credentials with a server nonce, see natlens-protocol(7)), and an
    /// ID may only be logged in with its key. FILE holds one `ID KEY` pair per line, separated
    /// by spaces; blank lines and lines starting with `#` are ignored; keys have no spaces.
    /// Keep it readable by the server's user only (a warning is printed otherwise). Without
    /// this option the server runs open and says so at start.
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,

    /// Maximum number of open TCP connections (clients and federation links).
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    pub max_connections: usize,

    /// Largest STUN message accepted, in bytes (TCP frames and UDP datagrams).
    #[arg(long, value_name = "BYTES", default_value_t = 2048)]
    pub max_message: usize,

    /// Largest amount of unsent data buffered for one TCP connection before it is closed.
    #[arg(long, value_name = "BYTES", default_value_t = 65_536)]
    pub max_tcp_backlog: usize,

    /// Close a TCP connection that has not logged in, or has sent half a frame, after this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration)]
    pub tcp_idle: Duration,

    /// Print a statistics line this often (0 disables; SIGUSR1 prints one on demand).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub stats_interval: Duration,

    /// Log events as NDJSON on stderr instead of human-readable lines.
    #[arg(long)]
    pub json: bool,

    /// Log only warnings and statistics, not every login, call and drop.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Transport used to reach the location server (one type for the CLI and the core).
pub use crate::core::Transport;

#[derive(Debug, Args)]
pub struct SessionArgs {
    /// Location server to log in to: a host name or an IP address, with an optional port
    /// (default 3478); an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name
    /// is resolved once, at start, with the system resolver (/etc/hosts, DNS); of several
    /// addresses natlens takes the first IPv4 one this host has a route to (else the first
    /// IPv6 one) and says which (the `resolved` event). A name that does not resolve is a usage
    /// error (exit status 2). Without --server, the NATLENS_SERVER environment variable names
    /// the server; one of the two is required.
    #[arg(
        long,
        short,
        value_name = "HOST[:PORT]",
        env = "NATLENS_SERVER",
        value_parser = ServerName::parse
    )]
    pub server: ServerName,

    /// The ID to log in as: 1 to 64 bytes of printable UTF-8 without spaces.
    #[arg(long, value_name = "NAME", value_parser = parse_id)]
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
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub session: SessionArgs,

    /// Transport for the session with the server.
    #[arg(long, short, value_enum, default_value_t = Transport::Udp)]
    pub transport: Transport,

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
    #[arg(value_name = "NAME", value_parser = parse_id)]
    pub callee: String,

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
    /// spray tries (within the packet budget --rate and --timeout allow). Default: sized from
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
    /// an unanswered UDP flow); `natlens call` also waits this long for the call's answer.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_punch_timeout)]
    pub timeout: Duration,

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

/// The DESCRIPTION of `natlens listen`.
const LISTEN_LONG_ABOUT: &str = "\
Wait for a call and punch a direct path to the caller.

natlens logs in to the location server (--login-transport), fingerprints this end's NAT toward \
it over the punch transport (the same probes as natlens nat), and waits. Every 20 seconds \
without a call it fingerprints again, so the facts it answers with stay fresh. A call is \
answered with this end's NAT facts and brings the caller's; both ends then compute the same \
plan, and this end starts punching at once: its start signal is the moment it answers. The \
caller's start signal is the answer reaching it, one relay later (this end -> server -> caller), \
so this end's first PUNCH requests reach the caller's NAT about when the caller's first request \
opens it, and may be dropped; this end therefore sends its first round again half a relay and one \
relay after answering (the sync rounds; the relay taken as its own round trip to the server, as the \
fingerprint measured it), which the caller answers at once. The punch sends only to the peer's public IP as \
the server saw it.

Once a nonce handshake has confirmed a path both ways, the two ends exchange data over it: what \
this end reads (--send FILE, or stdin until it ends) arrives on the caller's stdout, and what \
the caller sends arrives on this end's stdout. Then natlens logs out and exits; one call per \
run.

With --transport both, the UDP punch comes first (fingerprint over UDP, answer the call, punch), \
then the TCP punch (fingerprint over TCP, answer the caller's second call, punch), one after the \
other so that neither transport's flows eat the ports predicted for the other. Both ends must \
use --transport both. The data (read whole first) goes over UDP when the UDP punch connected, \
else over TCP; the report covers both (JSON OUTPUT).";

/// The DESCRIPTION of `natlens call`.
const CALL_LONG_ABOUT: &str = "\
Call another ID and punch a direct path to it.

natlens logs in to the location server (--login-transport), fingerprints this end's NAT toward \
it over the punch transport, and calls NAME with its NAT facts; the callee (natlens listen) \
answers with its own. Both ends compute the same plan from both facts, and each punches from \
the sockets the plan names toward the ports it predicts for the other. The punch sends only to \
the peer's public IP as the server saw it.

Once a nonce handshake has confirmed a path both ways, what this end reads (--send FILE, or \
stdin until it ends) arrives on the callee's stdout and the callee's data on this end's stdout. \
With --no-punch, natlens only exchanges facts and prints both ends' (the JSON object keeps \
schema_version 1 of that output).

This end's start signal is the callee's answer reaching it; it starts punching then. With \
--transport both, it punches over UDP first, then fingerprints over TCP and calls again for the \
TCP punch (calling again while the callee still answers with its UDP facts); the data (read \
whole first) goes over UDP when the UDP punch connected, else over TCP.";

/// The output sections of `natlens listen` and `natlens call`.
const PUNCH_OUTPUT: &str = "\
OUTPUT
stdout carries the peer's data, byte for byte. Progress goes to stderr: lines for people, or \
with --json one JSON object per line with an \"event\" key: resolved first when --server is \
a name (name, server: the address used, addresses: every address it resolved to), then the \
session's (logged_in, login_refused, server_unreachable, connection_lost, relogin, \
observed_changed, incoming_call, calling, call_answered, call_failed, logged_out), then the \
punch's (fingerprint, waiting, plan, hint, peer_heard, connected, punch_failed, data_done; \
with --transport both also stale_answer, and punch_failed with a transport instead of at_ms \
for a leg that could not run). The report comes last: a table, or with --json one JSON \
object on one line (the keys below, no \"event\"), on stderr, or on stdout with --no-data. \
With --dry-run, stdout carries the plan instead (its describe lines, or with --json one object \
with dry_run true); with --transport both, the UDP plan, then the TCP plan (two objects, one \
per line).

JSON OUTPUT
schema_version changes when a field changes meaning or disappears; adding a field does not. \
What was not measured is null.

  schema_version  1.
  result  connected or failed.
  reason  Why the punch failed or was refused; null when connected.
  transport  udp.
  strategy  direct, fanout, birthday or refused.
  role  caller or callee: this end.
  elapsed_ms  From this end's start signal to the confirmed path (or the failure). The start \
signal: for the callee (listen), the moment it answers the call; for the caller, the moment \
that answer reaches it.
  expected_success  The plan's odds, 0 to 1.
  directions  Caller to callee, then callee to caller; each {from, to, predicted_ports, \
port_through, offset, packets_sent, first_through_ms}: the far ports the sender aimed at, the \
one a packet got through to and its index, the probes sent by then, and when it got through, \
in ms from this end's start signal (for this end's own direction, when its first echo came \
back; for the peer's, when its first packet arrived).
  peer_id  The other end's ID.
  call_id  The call's ID, 16 hex digits.
  path  {local, peer}: this end's socket and the peer's public address on the confirmed path; \
null when not connected.
  data  null when not connected; else {result (complete or failed), reason, bytes_sent, \
bytes_received, retransmissions, elapsed_ms}.

With --transport both the object is (same schema_version, the keys above inside attempts):
  schema_version  1.
  result  connected when either transport connected, else failed.
  reason  Each attempt's reason (\"udp: ...; tcp: ...\") when neither connected; else null.
  transport  both.
  role, peer_id  As above.
  data_transport  udp or tcp: the attempt whose path carried the data (UDP when it connected); \
null when neither connected or with --no-data.
  attempts  The UDP attempt, then the TCP one: each the object above (with transport udp or \
tcp, its own data, null on the attempt that did not carry it), or, for an attempt that never \
got to punch (its fingerprint or its call failed), {schema_version, result (failed), reason, \
transport}.";

/// `natlens lab`: a lab is two NAT routers (A and B), each with a LAN host (`a`, `b`) and a
/// noise host (`a2`, `b2`), a server with two public addresses (203.0.113.10 and .11) and an
/// optional public host, joined by an "internet" segment. Every address is an RFC 5737
/// documentation address and nothing is connected to a real interface.
#[derive(Debug, Args)]
#[command(after_long_help = LAB_HOSTS)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

/// The host names `natlens lab exec` takes, with their addresses.
const LAB_HOSTS: &str = "Hosts: a (192.0.2.10) and a2 (192.0.2.11) behind router-a \
(203.0.113.1, LAN 192.0.2.1); b (198.51.100.10) and b2 (198.51.100.11) behind router-b \
(203.0.113.2, LAN 198.51.100.1); server (203.0.113.10 and 203.0.113.11); public (203.0.113.20, \
with --public-host); internet (the segment itself, no address). Each host is the network \
namespace <prefix>-<host>; labs are described in /run/natlens/<prefix>.json.";

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build a lab and leave it running; print its prefix, hosts and addresses.
    Up(LabUpArgs),
    /// Tear down one lab, or every lab no running process owns.
    Down(LabDownArgs),
    /// Show labs: namespaces, addresses, NAT modes, conntrack entry counts.
    Status(LabStatusArgs),
    /// Run a command inside one host of a lab; natlens exits with the command's own status.
    Exec(LabExecArgs),
    /// Build a lab, run a natlens server in it and `natlens nat` behind each NAT, print both
    /// reports and the ports the NATs really gave the next flows, punch from a to b over UDP
    /// (`natlens listen` and `natlens call`, a message each way, both punch reports, port_through
    /// against the far router's conntrack), and tear the lab down. Exits 0 only when the punch
    /// connected and both checks matched (6 when it did not connect).
    Demo(LabDemoArgs),
    /// Run one background job of a lab (frame relay, noise); `lab up` starts these.
    #[command(hide = true)]
    Worker(LabWorkerArgs),
}

/// What to build.
#[derive(Debug, Args, Clone)]
pub struct LabSpecArgs {
    /// NAT mode of router A: `cone` (port-preserving, endpoint-independent mapping,
    /// address-and-port-dependent filtering), `full-cone` (endpoint-independent mapping and
    /// filtering), `seq:D` (symmetric: each new flow gets the port D after the previous one,
    /// from 40000) or `random` (symmetric with random ports).
    #[arg(long, value_name = "MODE", default_value = "cone")]
    pub nat_a: NatMode,

    /// NAT mode of router B (see --nat-a).
    #[arg(long, value_name = "MODE", default_value = "cone")]
    pub nat_b: NatMode,

    /// New UDP flows per second opened by the second LAN host behind each router (a2, b2), so
    /// NAT ports are consumed between a prober's probes.
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    pub noise: f64,

    /// Noise rate behind router A only (overrides --noise).
    #[arg(long, value_name = "RATE")]
    pub noise_a: Option<f64>,

    /// Noise rate behind router B only (overrides --noise).
    #[arg(long, value_name = "RATE")]
    pub noise_b: Option<f64>,

    /// One-way delay added on each router's WAN link, in each direction (so a LAN host's round
    /// trip to the server grows by twice this): `25ms`, `0.1s`, or a bare number of
    /// milliseconds. Made with netem when the kernel has it, else by a user-space frame relay on
    /// the internet segment.
    #[arg(long, value_name = "DELAY", default_value = "0", value_parser = parse_delay)]
    pub delay: Duration,

    /// Percentage of IP packets dropped on each router's WAN link, in each direction.
    #[arg(long, value_name = "PCT", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub loss: u8,

    /// Add a public host without NAT (`public`, 203.0.113.20).
    #[arg(long)]
    pub public_host: bool,
}

#[derive(Debug, Args)]
pub struct LabUpArgs {
    #[command(flatten)]
    pub spec: LabSpecArgs,

    /// Print the lab's description (the state file's contents) as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LabDownArgs {
    /// Prefix of the lab to tear down (as `lab up` and `lab status` print it).
    #[arg(
        value_name = "PREFIX",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub prefix: Option<String>,

    /// Tear down every natlens lab on this machine except those a running process owns (a
    /// test or a demo in progress), including leftover namespaces without a state file.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct LabStatusArgs {
    /// Show only this lab.
    #[arg(value_name = "PREFIX")]
    pub prefix: Option<String>,

    /// Print JSON: one object per lab with its description and live counts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LabExecArgs {
    /// The lab to run in (needed only when more than one lab exists).
    #[arg(long, value_name = "PREFIX")]
    pub lab: Option<String>,

    /// Host to run in: a, a2, b, b2, router-a, router-b, server, public or internet.
    #[arg(value_name = "HOST")]
    pub host: Host,

    /// The command and its arguments, after `--`.
    #[arg(value_name = "CMD", last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LabDemoArgs {
    #[command(flatten)]
    pub spec: LabSpecArgs,
}

#[derive(Debug, Args)]
pub struct LabWorkerArgs {
    /// The job, as JSON.
    #[arg(value_name = "JOB")]
    pub job: String,
}

#[derive(Debug, Args)]
pub struct NatArgs {
    /// The STUN server to probe; natlens sends to no other host. Any STUN server gives the
    /// public address and the port allocation; an RFC 5780 server (natlens server --alternate,
    /// coturn with two listening IPs) also lets natlens test mapping and filtering.
    /// HOST[:PORT]: a host name or an IP address, the port defaulting to 3478; an IPv6 address
    /// with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start,
    /// with the system resolver (/etc/hosts, DNS); of several addresses natlens takes the first
    /// IPv4 one this host has a route to (else the first IPv6 one) and names it on stderr. A
    /// name that does not resolve is a usage error (exit status 2). Without --server, the
    /// NATLENS_SERVER environment variable names the server; one of the two is required.
    #[arg(
        long,
        short,
        value_name = "HOST[:PORT]",
        env = "NATLENS_SERVER",
        value_parser = ServerName::parse
    )]
    pub server: ServerName,

    /// Which transports to fingerprint; with both, UDP and TCP are probed at the same time.
    #[arg(long, short, value_enum, default_value_t = ProbeTransports::Both)]
    pub transport: ProbeTransports,

    /// Allocation samples per transport, 2 to 32: fresh sockets sent to the server in two
    /// back-to-back bursts. More samples outvote noise; each costs a port on a sequential NAT.
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::core::fingerprint::plan::DEFAULT_SAMPLES,
        value_parser = clap::value_parser!(u8).range(
            crate::core::fingerprint::plan::MIN_SAMPLES as i64
                ..=crate::core::fingerprint::plan::MAX_SAMPLES as i64
        )
    )]
    pub samples: u8,

    /// D of the preset-delta rule (the next flow gets the first sample's port + D), reported
    /// with whether the samples bore it out. Non-zero, at most 1024 either way.
    #[arg(
        long,
        value_name = "D",
        default_value_t = crate::core::fingerprint::predict::DEFAULT_PRESET_DELTA,
        allow_negative_numbers = true,
        value_parser = parse_delta
    )]
    pub preset_delta: i32,

    /// Print the report as one JSON object on stdout instead of a table (keys under JSON OUTPUT in
    /// --help and the man page).
    #[arg(long)]
    pub json: bool,

    /// How long to wait for the server's first answer on each transport before deciding that
    /// no STUN server is there. The default lets TCP's third SYN through (Linux retransmits a
    /// lost SYN after 1 s and again after 3 s). The fingerprint itself then takes as long as its
    /// plan needs: a few round trips.
    #[arg(long, value_name = "DURATION", default_value = "4s", value_parser = parse_positive_duration)]
    pub timeout: Duration,
}

/// Transports `natlens nat` probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeTransports {
    /// UDP only.
    Udp,
    /// TCP only.
    Tcp,
    /// UDP and TCP at the same time.
    Both,
}

impl ProbeTransports {
    /// The transports to probe, UDP first.
    pub fn list(self) -> Vec<Transport> {
        match self {
            ProbeTransports::Udp => vec![Transport::Udp],
            ProbeTransports::Tcp => vec![Transport::Tcp],
            ProbeTransports::Both => vec![Transport::Udp, Transport::Tcp],
        }
    }
}

/// The DESCRIPTION of `natlens nat`.
const NAT_LONG_ABOUT: &str = "\
Fingerprint the NAT between this host and a STUN server.

natlens asks the server for this host's public address, then (against an RFC 5780 server) \
sends from one socket to the server's four addresses to see whether the NAT keeps its mapping \
(RFC 5780 4.3), asks the server to answer from its other addresses to see what the NAT lets in \
(4.4, UDP only), sends to its own public address to see whether the NAT hairpins (4.5), and \
finally opens fresh sockets in two back-to-back bursts to see how the NAT allocates public \
ports: preserving, sequential (with its step) or random. From those samples it predicts the \
port the next new flow will get, and checks two simpler rules (two-probe delta, preset delta) \
against them.

Every packet goes to the server named with --server (its RFC 5780 alternate addresses \
included); nothing else is contacted. A run takes under a second on a LAN and at most about \
ten seconds against a far server.

The report goes to stdout: a table with one column per transport followed by a plain-language \
explanation, or with --json one JSON object. Progress goes to stderr when it is a terminal.";

/// The JSON OUTPUT section of `natlens nat` (see `generate.rs` for how it becomes man sections).
const NAT_JSON_SCHEMA: &str = "\
JSON OUTPUT
With --json, stdout carries one JSON object. A fact that was not measured is null, never a \
guess. schema_version changes when a field changes meaning or disappears; adding a field does \
not.

  schema_version  1.
  server  The server's primary address (for a --server name, the address it resolved to).
  udp, tcp  null when that transport was not probed (--transport); otherwise an object with \
the keys below. When the server never answered over it, public_address is null and so is \
nearly everything else.
  public_address  The mapping socket's address as the server saw it (\"IP:PORT\").
  behind_nat  false when the public address is this host's own address.
  rtt_ms  Shortest request-to-answer time, in milliseconds (over TCP measured after the \
handshake).
  full_mode  true when the server sent OTHER-ADDRESS, so mapping and filtering could be tested.
  mapping  RFC 4787 mapping: endpoint-independent, address-dependent or \
address-and-port-dependent.
  filtering  RFC 4787 filtering, same values; always null over TCP.
  change_request  What the server did with CHANGE-REQUEST: honoured, ignored or refused; null \
when no such answer came.
  hairpinning  true when a packet to the own public address came back in; null when there is \
no NAT (nothing to hairpin through).
  alg  true when MAPPED-ADDRESS differs from XOR-MAPPED-ADDRESS (something rewrote it).
  allocation.pattern  preserving, sequential or random; null with too few answered samples.
  allocation.delta  Signed port step per new flow (sequential only).
  allocation.jitter  Mean deviation, in ports per sample, of the steps that fit neither delta \
nor a gap.
  allocation.confidence  0 to 1: how well the samples fit the pattern, times 1 - 1/answered.
  allocation.samples, allocation.answered  Samples sent and answered.
  allocation.ports  Each sample's public port in send order; null for a lost one.
  allocation.gaps  Ports other flows took between two samples: {after, before, foreign}.
  allocation.foreign_flows_per_second  Other hosts' new flows per second, from the gaps.
  allocation.shared_counter  true when UDP and TCP take their ports from one counter (both \
sequential with the same delta, one transport's samples continuing the other's); the \
transport sampled first then carries the other's prediction, which is for the next flow of \
either kind. false when both are sequential otherwise; null unless both are sequential.
  prediction.rule  local-port (the public port is the local one) or sequential; null when the \
ports cannot be predicted.
  prediction.next_port  The next new flow's public port (sequential only).
  prediction.candidates  Ports to try for a punch, most likely first.
  prediction.two_probe  The two-probe rule on the first two answered samples: {p1, p2, delta, \
next_port, hit}; hit tells whether the next sample got next_port.
  prediction.preset_delta  The preset-delta rule (--preset-delta) on the first answered \
sample: {port, delta, next_port, hit}.";

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Repository root to write `man/` and `completions/` into.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
}

/// Parses `250ms`, `15s`, `2m`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 500ms, 15s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`: use ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

/// The lab's `--delay`: a duration as [`parse_duration`] reads it, except that a bare number
/// counts milliseconds (the unit the option has always taken, and the one delays are spoken in).
pub fn parse_delay(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        let ms: u64 = text
            .parse()
            .map_err(|_| format!("`{text}` is not a delay such as 25ms"))?;
        return Ok(Duration::from_millis(ms));
    }
    parse_duration(text)
}

/// A duration that must be longer than zero (a zero timeout, interval or expiry would end or
/// repeat at once).
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("`{text}` is zero: give a duration longer than 0"));
    }
    Ok(duration)
}

/// The punch `--timeout`: longer than zero and at most
/// [`MAX_TIMEOUT`](crate::core::punch::plan::MAX_TIMEOUT), as its help says.
pub fn parse_punch_timeout(text: &str) -> Result<Duration, String> {
    let max = crate::core::punch::plan::MAX_TIMEOUT;
    let duration = parse_positive_duration(text)?;
    if duration > max {
        return Err(format!(
            "`{text}` is longer than {}s, the longest punch a NAT's unanswered UDP flow outlives",
            max.as_secs()
        ));
    }
    Ok(duration)
}

/// An address another host listens on: port 0 names no port there.
pub fn parse_endpoint(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text
        .trim()
        .parse()
        .map_err(|e| format!("`{text}` is not an IP:PORT address: {e}"))?;
    if addr.port() == 0 {
        return Err(format!("`{text}`: port 0 names no port; give 1 to 65535"));
    }
    Ok(addr)
}

/// An ID (`--id`, the callee): the name the wire carries, checked before anything is sent.
pub fn parse_id(text: &str) -> Result<String, String> {
    crate::wire::natlens::validate_name(text)
        .map(str::to_owned)
        .map_err(|_| {
            format!(
                "not a valid ID: use 1 to {} bytes of printable UTF-8 without spaces",
                crate::wire::natlens::MAX_NAME_LEN
            )
        })
}

/// A preset delta: non-zero and no larger than the biggest step called sequential.
pub fn parse_delta(text: &str) -> Result<i32, String> {
    let max = crate::core::fingerprint::allocation::MAX_STEP;
    match text.trim().parse::<i32>() {
        Ok(0) => Err("a delta of 0 predicts nothing: use a non-zero step such as 1".into()),
        Ok(delta) if delta.abs() <= max => Ok(delta),
        Ok(_) => Err(format!("a delta must lie within -{max}..={max}")),
        Err(_) => Err(format!("`{text}` is not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }

    #[test]
    fn lab_delays_take_units_and_bare_milliseconds() {
        assert_eq!(parse_delay("25"), Ok(Duration::from_millis(25)));
        assert_eq!(parse_delay("25ms"), Ok(Duration::from_millis(25)));
        assert_eq!(parse_delay("0.1s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_delay("0"), Ok(Duration::ZERO));
        assert!(parse_delay("25 ms later").is_err());
        assert!(parse_delay("").is_err());
    }

    #[test]
    fn ranges_the_help_states_are_enforced() {
        assert!(parse_positive_duration("0s").is_err());
        assert!(parse_positive_duration("0").is_err());
        assert_eq!(parse_positive_duration("1ms"), Ok(Duration::from_millis(1)));
        assert!(parse_punch_timeout("0s").is_err());
        assert_eq!(parse_punch_timeout("25s"), Ok(Duration::from_secs(25)));
        assert!(parse_punch_timeout("25.001s").is_err());
        assert!(parse_endpoint("127.0.0.1:0").is_err());
        assert!(parse_endpoint("[::1]:3478").is_ok());
        assert!(parse_id("two words").is_err());
        assert!(parse_id("").is_err());
        assert!(parse_id(&"x".repeat(65)).is_err());
        assert_eq!(parse_id("alice"), Ok("alice".to_owned()));
    }

    #[test]
    fn usage_errors_name_the_range() {
        for args in [
            &[
                "natlens",
                "listen",
                "-s",
                "127.0.0.1:1",
                "--id",
                "a",
                "--timeout",
                "60s",
            ][..],
            &[
                "natlens",
                "listen",
                "-s",
                "127.0.0.1:1",
                "--id",
                "a",
                "--timeout",
                "0s",
            ],
            &[
                "natlens",
                "listen",
                "-s",
                "127.0.0.1:1",
                "--id",
                "a",
                "--fanout",
                "0",
            ],
            &["natlens", "listen", "-s", "127.0.0.1:1", "--id", "a b"],
            &[
                "natlens",
                "login",
                "-s",
                "127.0.0.1:1",
                "--id",
                "a",
                "--keepalive",
                "0s",
            ],
            &["natlens", "server", "--alternate", "127.0.0.2:0"],
            &["natlens", "server", "--link", "127.0.0.2:0"],
            &["natlens", "server", "--tcp-idle", "0s"],
        ] {
            let err = Cli::try_parse_from(args).expect_err(&format!("{args:?}"));
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
