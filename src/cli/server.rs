//! `natlens server`'s arguments.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{parse_duration, parse_endpoint, parse_positive_duration, ServerName};

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to serve STUN and natlens on, over both UDP and TCP. Repeatable; IPv4 or IPv6.
    #[arg(
        long = "listen",
        value_name = "ADDR:PORT",
        default_value = "0.0.0.0:3478"
    )]
    pub listen: Vec<SocketAddr>,

    /// Second IP and port for RFC 5780 "full" mode: enables OTHER-ADDRESS, RESPONSE-ORIGIN,
    /// CHANGE-REQUEST and RESPONSE-PORT. The server then also listens on every mix of the two
    /// IPs and two ports. RESPONSE-PORT (UDP only; over TCP, and without --alternate, it is
    /// refused with 420) sends the answer to the request's own source IP at the port named,
    /// from the address the request arrived on; like every answer it counts against
    /// --answer-rate, and it can only reach the requester's IP (natlens nat --lifetime relies
    /// on it). PADDING is echoed over UDP up to the request's own size, never more.
    /// With CAP_NET_RAW (root, or `setcap cap_net_raw+ep`) it also answers CHANGE-REQUEST over
    /// TCP, the TCP filtering test of `natlens nat`, by sending one crafted SYN from the changed
    /// address to the requester; without it, it says so in one line at start and refuses those.
    /// Give --alternate once per IP family for full mode over both: each pairs with the first
    /// --listen of its own family (--listen 192.0.2.1:3478 --alternate 192.0.2.2:3479 --listen
    /// [2001:db8::1]:3478 --alternate [2001:db8::2]:3479), and OTHER-ADDRESS always names an
    /// address of the request's own family. Two of one family are refused.
    #[arg(long, value_name = "IP:PORT", value_parser = parse_endpoint, action = clap::ArgAction::Append)]
    pub alternate: Vec<SocketAddr>,

    /// An address of this server to name in every LOGIN success (repeatable; the first of each
    /// family counts), beside the specific --listen addresses, which are named by themselves: a
    /// client logged in over one family fingerprints and punches its other family through the
    /// address named in that family. A wildcard --listen (0.0.0.0, [::]) names none, since the
    /// server cannot tell which of the host's addresses clients reach it at: name them here.
    #[arg(long, value_name = "IP:PORT", value_parser = parse_endpoint)]
    pub advertise: Vec<SocketAddr>,

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

    /// Share one registry of logged-in IDs with other natlens servers through Redis (or a
    /// Redis Cluster, see --registry-cluster). Each login records `ID → home`, home being this
    /// server's --link-address, and a CALL for an ID not logged in here is looked up and
    /// forwarded to its home server over a link dialled on demand (the --link protocol),
    /// reused while calls come and closed after 30 s idle. A stale entry naming a server that
    /// cannot be reached fails the call within a second (500 Home server unreachable) and is
    /// deleted (if it still names that server), so the next call is not found at once; a home
    /// that was only slow writes its entry again at its next refresh.
    /// Entries are rewritten every --registry-refresh in pipelined batches (not once per
    /// keep-alive) and live three refresh intervals; a logout or an expiry deletes an entry
    /// only while it still names this server, and a keyed ID logging in elsewhere moves it.
    /// Key layout: one string key per ID, `natlens:home:<ID>` = `IP:PORT`, with a TTL; every
    /// command touches one key (SET, GET and two one-key Lua scripts, run by SHA1 with EVALSHA
    /// and loaded again on NOSCRIPT), so it works unchanged on a Redis Cluster without hash
    /// tags. If Redis is unreachable the server keeps serving its own sessions and static
    /// links, says so (registry_down event, stats), answers calls it cannot place with 503
    /// Registry unavailable, and re-registers every session as soon as Redis is back (it
    /// tries every half second). Repeat the option to give several seed nodes of a cluster.
    #[arg(long = "registry", value_name = "redis://HOST:PORT[/DB]")]
    pub registry: Vec<String>,

    /// The --registry URLs are seed nodes of a Redis Cluster.
    #[arg(long, requires = "registry")]
    pub registry_cluster: bool,

    /// The address other servers dial to link to this one: what this server's registry
    /// entries name. One of its --listen addresses as the others reach it; defaults to the
    /// first --listen address unless that is a wildcard (then this option is required with
    /// --registry).
    #[arg(long, value_name = "IP:PORT", value_parser = parse_endpoint)]
    pub link_address: Option<SocketAddr>,

    /// How often each ID's --registry entry is rewritten; an entry lives three times this
    /// long, which bounds how long a server that died stays named as home.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_positive_duration)]
    pub registry_refresh: Duration,

    /// Name of this server in federation (defaults to a random one); must differ between linked
    /// servers.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Forget a UDP session that has sent nothing for this long.
    #[arg(long, value_name = "DURATION", default_value = "45s", value_parser = parse_positive_duration)]
    pub udp_expiry: Duration,

    /// Maximum number of logged-in sessions. By default sized to the machine: a quarter of the
    /// memory available at start (MemAvailable in /proc/meminfo) at 256 bytes per session, and
    /// at least 100,000. A UDP session over IPv4 with an ID of up to 22 bytes costs the server
    /// about 110 bytes of memory (measured: 1,000,000 sessions in under 256 MiB of RSS); TCP
    /// and IPv6 sessions, and longer IDs, cost more, and a TCP session also holds a connection
    /// (see --max-connections).
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<usize>,

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
    // -q/--quiet is the global flag (`crate::cli::VerbosityArgs`): same meaning as before.
}
