//! `natlens nat`'s arguments and its long help (DESCRIPTION, JSON OUTPUT).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{parse_delta, parse_positive_duration, Family, ServerName, SourceArgs, Transport};

#[derive(Debug, Args)]
pub struct NatArgs {
    /// The STUN server to probe; natlens sends to no other host. Any STUN server gives the public
    /// address and the port allocation; an RFC 5780 server (natlens server --alternate, coturn with
    /// two listening IPs) also lets natlens test mapping and filtering. HOST[:PORT]: a host name or
    /// an IP address, the port defaulting to 3478; an IPv6 address with a port goes in brackets,
    /// [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts,
    /// DNS; a name under .example or .test, which RFC 6761 reserves, from /etc/hosts only); of
    /// several addresses natlens takes the first of each family (see --family) and names the
    /// chosen one on stderr. A name that does not resolve is a usage error (exit status
    /// 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the
    /// two is required.  Give --server up to 8 times to ask several servers: the first is the
    /// primary (RFC 5780 tests, hairpinning, the round trip); the same socket also asks every other
    /// one, so that two servers at different IPs tell whether the mapping varies by destination
    /// even when neither speaks RFC 5780, and the allocation samples go to the servers in turn, so
    /// that a NAT counting ports per destination shows. Each IP family has its own primary: the
    /// first --server of that family (see --family).
    #[arg(
        long,
        short,
        value_name = "HOST[:PORT]",
        env = "NATLENS_SERVER",
        required = true,
        action = clap::ArgAction::Append,
        value_parser = ServerName::parse
    )]
    pub server: Vec<ServerName>,

    /// Which IP families to fingerprint: 4, 6, or any (every family a --server offers, probed
    /// at the same time). Each family is probed against the first --server of that family
    /// (a name that resolves to both families serves both); the other servers of the family
    /// come after it as for one family. With any, a family without a server, of the other
    /// family than --bind, or (for a name) without a route from this host is reported as not
    /// probed, with the reason, and is no error; with 4 or 6, a family without a server is a
    /// usage error. IPv4 results are the report's udp and tcp as always, IPv6 ones are under
    /// ipv6 (JSON OUTPUT). The port-mapping probe, the path probe and --lifetime go toward the
    /// IPv4 server (the IPv6 one when IPv4 is not probed).
    #[arg(long, value_enum, value_name = "FAMILY", default_value_t = FamilyChoice::Any)]
    pub family: FamilyChoice,

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
    /// plan needs: a few round trips. An ICMP unreachable or a refused connection ends the wait
    /// at once. The old spelling --timeout still works, with a deprecation warning.
    #[arg(
        long = "server-timeout",
        value_name = "DURATION",
        default_value = "4s",
        value_parser = parse_positive_duration
    )]
    pub timeout: Duration,

    /// Deprecated spelling of --server-timeout; still accepted, with a warning.
    #[arg(long = "timeout", value_name = "DURATION", hide = true, conflicts_with = "timeout", value_parser = parse_positive_duration)]
    pub deprecated_timeout: Option<Duration>,

    /// Also measure how long an idle UDP mapping lives (RFC 5780 4.6), trying idle intervals up
    /// to MAX (default 180s; durations as for --server-timeout), and whether outbound and
    /// inbound traffic each refresh a mapping (RFC 4787 REQ-6). Needs an RFC 5780 server that
    /// honours RESPONSE-PORT (natlens server --alternate, coturn with two IPs). Dozens of
    /// sockets get a mapping at once and stay idle for intervals from 1 s, every 0.5 s up to
    /// 10 s, then each 6% longer; when one's interval is up, another socket asks the server to
    /// answer to its public port (RESPONSE-PORT), and the answer arrives only if the mapping
    /// still lives. The first dead one ends the run: it lasts about the lifetime found plus one
    /// step (at most MAX and a few seconds). Two more sockets are kept alive only by outbound
    /// (a Binding indication) or only by inbound traffic (an answer sent to them), and eight by
    /// outbound traffic sent with IP TTL 1 to 8 (to locate the outermost NAT), and are all
    /// checked past the lifetime. The recommended keepalive is 80% of the longest interval a
    /// mapping survived. UDP only; keys mapping_lifetime_ms and the like under JSON OUTPUT.
    #[arg(
        long,
        value_name = "MAX",
        num_args = 0..=1,
        default_missing_value = "180s",
        value_parser = parse_lifetime_max
    )]
    pub lifetime: Option<Duration>,

    #[command(flatten)]
    pub source: SourceArgs,

    /// Write every packet natlens sends and receives on its sockets (the probes to the server
    /// and its answers) to FILE, a pcapng file for Wireshark or tshark (created or truncated).
    /// With root or CAP_NET_RAW the packets are captured as they are on the wire, TCP
    /// handshakes included; without, natlens says so in one line on stderr and writes what it
    /// sent and received with synthesized headers, each packet marked by a comment: the UDP
    /// datagrams, and each TCP connection as a handshake, a segment per write or read with
    /// continuous sequence numbers, and the RST that closes it.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,

    /// The port-mapping probe, run beside the STUN probes (so the run takes no longer): ask the
    /// gateway on the way to the server, in parallel, whether it speaks PCP (ANNOUNCE, and a
    /// MAP deleted at once), NAT-PMP (external address) and UPnP IGD (SSDP M-SEARCH unicast to
    /// its port 1900, then multicast; GetExternalIPAddress), within about 250 ms (400 ms for
    /// UPnP), and compare its external address with the public address STUN saw: when they
    /// differ, another NAT sits upstream. `probe` (the default) does that; `test` also asks for
    /// a 60 s UDP mapping, asks the server to send one packet to the mapped port (servers
    /// that cannot yet: proven null), and deletes the mapping, on Ctrl-C too; `off` skips it.
    /// Nothing is asked when the server is on this host or on-link (no gateway between).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = PortMappingMode::Probe)]
    pub port_mapping: PortMappingMode,

    /// Same as --port-mapping off.
    #[arg(long, conflicts_with = "port_mapping")]
    pub no_port_mapping: bool,

    /// Skip the path probe. By default, alongside the fingerprint and within its time, one UDP
    /// socket sends the server a Binding request with each TTL (IPv6: hop limit) from 1 to 8,
    /// all at once; each router where the TTL runs out answers ICMP time exceeded (read from the
    /// socket's error queue: no privilege needed) and the server answers those that reach it,
    /// which lists the hops up to the server. How many NATs sit on the path, and whether one is
    /// a carrier-grade NAT, is read from that: the server seeing another address than this
    /// host's own means a NAT at the first gateway; a hop beyond the first answering from
    /// RFC 6598 shared space (100.64.0.0/10) is a carrier's NAT (CGNAT), one from private space
    /// another NAT of unknown owner; CGNAT is false only when every hop from the second up to
    /// the first one in public space answered, and null (with the reason) when a hop there was
    /// silent or none answered. RFC 5737 documentation addresses count as public (the NAT lab
    /// is built from them). The hops' ICMP quotes say nothing about the NATs: an RFC 5508 NAT
    /// translates the quoted packet back to this host's own address. Answers and errors that
    /// match none of the probe's requests are ignored and counted (path.ignored).
    #[arg(long)]
    pub no_path: bool,
}

/// `--family`: which IP families `natlens nat` probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FamilyChoice {
    /// IPv4 only.
    #[value(name = "4")]
    V4,
    /// IPv6 only.
    #[value(name = "6")]
    V6,
    /// Every family a --server offers.
    Any,
}

impl FamilyChoice {
    fn wants(self, family: Family) -> bool {
        match self {
            FamilyChoice::V4 => family == Family::V4,
            FamilyChoice::V6 => family == Family::V6,
            FamilyChoice::Any => true,
        }
    }
}

/// The servers of one family to probe (the primary first), or why the family is not probed.
pub type FamilyServers = Result<Vec<SocketAddr>, String>;

/// "IPv4" or "IPv6".
pub fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

impl NatArgs {
    /// The servers of `family`, or why it is not probed. `routed` says whether this host has a
    /// route to an address (asked only of addresses a name resolved to: a literal the user typed
    /// is probed, and fails loudly when it cannot be reached).
    pub fn family_servers(
        &self,
        family: Family,
        routed: &dyn Fn(SocketAddr) -> bool,
    ) -> FamilyServers {
        let name = family_name(family);
        if !self.family.wants(family) {
            let only = if family == Family::V4 { "6" } else { "4" };
            return Err(format!("not asked (--family {only})"));
        }
        let mut servers: Vec<SocketAddr> = Vec::new();
        for server in &self.server {
            if let Some(addr) = server.addr_of_family(family) {
                if !servers.contains(&addr) {
                    servers.push(addr);
                }
            }
        }
        let Some(&primary) = servers.first() else {
            return Err(format!("no --server has an {name} address"));
        };
        if let Some(bind) = self.source.bind.filter(|b| Family::of(b.ip) != family) {
            return Err(format!("--bind {} is not an {name} address", bind.ip));
        }
        let from_name = self
            .server
            .iter()
            .any(|s| s.is_name() && s.addr_of_family(family) == Some(primary));
        if self.family == FamilyChoice::Any && from_name && !routed(primary) {
            return Err(format!("this host has no route to {primary}"));
        }
        Ok(servers)
    }
}

/// What `natlens nat` does with the port-mapping protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PortMappingMode {
    /// Ask which protocols the gateway speaks and its external address.
    Probe,
    /// Probe, and prove a short mapping from outside, then delete it.
    Test,
    /// Do not ask the gateway.
    Off,
}

impl NatArgs {
    /// --port-mapping, with --no-port-mapping folded in.
    pub fn port_mapping_mode(&self) -> PortMappingMode {
        if self.no_port_mapping {
            PortMappingMode::Off
        } else {
            self.port_mapping
        }
    }
}

/// `--lifetime`'s MAX: from 2 s (the ladder starts at 1 s) to an hour.
fn parse_lifetime_max(text: &str) -> Result<Duration, String> {
    let max = parse_positive_duration(text)?;
    if !(Duration::from_secs(2)..=Duration::from_secs(3600)).contains(&max) {
        return Err(format!("`{text}`: give a MAX from 2s to 1h"));
    }
    Ok(max)
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
pub(super) const NAT_LONG_ABOUT: &str = "\
Fingerprint the NAT between this host and a STUN server.

natlens asks the server for this host's public address, then (against an RFC 5780 server) \
sends from one socket to the server's four addresses to see whether the NAT keeps its mapping \
(RFC 5780 4.3), asks the server to answer from its other addresses to see what the NAT lets in \
(4.4, UDP only), sends to its own public address to see whether the NAT hairpins (4.5), and \
finally opens fresh sockets in two back-to-back bursts to see how the NAT allocates public \
ports: preserving, sequential (with its step) or random. From those samples it predicts the \
port the next new flow will get, and checks two simpler rules (two-probe delta, preset delta) \
against them.

Every packet goes to the servers named with --server (their RFC 5780 alternate addresses \
included); nothing else is contacted. A run takes under a second on a LAN and at most about \
ten seconds against a far server.

The report goes to stdout: a one-line verdict to paste into a ticket, never wrapped (see verdict \
under JSON OUTPUT), a table with one column per transport and a plain-language explanation, or with \
--json one JSON object. Progress goes to stderr when it is a terminal.";

/// The JSON OUTPUT section of `natlens nat` (see `generate.rs` for how it becomes man sections).
pub(super) const NAT_JSON_SCHEMA: &str = "\
JSON OUTPUT
With --json, stdout carries one JSON object. A fact that was not measured is null, never a \
guess. schema_version changes when a field changes meaning or disappears; adding a field does \
not.

When the run ends without a report (no answer over any transport probed, a usage error, an \
interrupt), stdout carries instead one failure object: {schema_version, result (failed or \
interrupted), error: {kind, message}}, kind as under EXIT STATUS.

IPv4 and IPv6 (--family): the top-level server, servers, udp and tcp are IPv4's, as they \
were before natlens probed IPv6; IPv6's results are in ipv6, an object with the same udp and \
tcp. That is why schema_version went from 1 to 2: for a run against an IPv6 server, udp and \
tcp changed meaning (they held its results; now they are null). Migration from 1: a reader that \
ran natlens nat against an IPv6 server and read udp or tcp reads ipv6.udp and ipv6.tcp; IPv4 \
readers change nothing.

  schema_version  2.
  result  ok; partial when a transport probed got no answer (exit status 7), over either \
family.
  error  Only when result is partial: {kind (partial), message (which transport got no answer)}.
  server  The IPv4 primary server's address (for a --server name, the address it resolved to): \
the first IPv4 --server. When IPv4 was not probed, the IPv6 primary's.
  servers  Every IPv4 server asked, in the order given, the first being server; empty when \
IPv4 was not probed.
  ipv6  The IPv6 fingerprint, null when IPv6 was not probed (see families). The keys below.
  ipv6.server, ipv6.servers  As server and servers, for IPv6 (the first IPv6 --server first).
  ipv6.verdict  IPv6's own verdict line, as verdict for one family, opened by \"NPTv6, \" or \
\"NAT66, \" when there is translation.
  ipv6.behind_nat  false when the server saw this host's own IPv6 address: no translation, \
though a stateful firewall may still filter (its filtering is measured as a NAT's); true under \
NPTv6 or NAT66; null when no transport was answered.
  ipv6.translation  none (the own address), nptv6 (the prefix changed and the interface ID, the \
low 64 bits, did not: RFC 6296 prefix translation) or nat66 (another address altogether: mapping \
and allocation as for an IPv4 NAT); null when no answer told.
  ipv6.udp, ipv6.tcp  As udp and tcp, over IPv6 (port_mapping, path and --lifetime stay with the \
primary family: IPv4, or IPv6 when IPv4 was not probed).
  families  Which families were probed: {ipv4, ipv6}, each with the keys below.
  families.ipv4, families.ipv6  One family's status.
  families.*.probed  true when the family was probed.
  families.*.server  The family's primary server; null when no --server has an address of the \
family.
  families.*.reason  Why it was not probed (\"no --server has an IPv6 address\", \"not asked \
(--family 4)\", \"--bind 192.0.2.7 is not an IPv6 address\", \"this host has no route to ...\" \
for a name's address, or the error that stopped its probing); null when probed.
  Bad answers: an address in an answer of the other family than the server's, an IPv4-mapped \
IPv6 address, or an IPv6 link-local, unspecified or multicast one is ignored, as if absent \
(public_address then null, OTHER-ADDRESS not followed).
  verdict  The one line the human report opens with. With both families probed, \
\"IPv4: ... || IPv6: ...\" (each as below, IPv6's as ipv6.verdict); with IPv6 alone, \
\"IPv6: ...\". Per family, per transport (\"UDP: ... | TCP: ...\", \
or \"UDP and TCP: ...\" when both say the same but for a filtering only UDP measured, which \
is then marked \"(UDP)\"): mapping and filtering in RFC 4787 words, the allocation \
(preserving, sequential with its step and next port, random), hairpinning, then which peer \
kinds natlens can punch to (see punch) and the difficulty. What was not measured is left out, \
but for the mapping. null when no transport was measured.
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
  mapping_varies_by_dest_ip  With two or more servers at different IPs: true when the same \
socket got another public address from another server's IP, false when it got the same one \
from every server that answered; no RFC 5780 server needed. null with one server, servers on \
one IP, or no answer from another IP.
  filtering  RFC 4787 filtering, same values. Over UDP by RFC 5780's CHANGE-REQUEST tests; over \
TCP (RFC 5382) after the allocation samples, by two SYNs a natlens server crafts from its other \
IP and port and from its other port to this host's public TCP address (it needs CAP_NET_RAW), \
which a listener on the tested port answers when the NAT lets them in.
  filtering_reason  Over TCP, why filtering is null: the server refused the test (for example \
\"420 TCP filtering test off: the server lacks CAP_NET_RAW\"), lacks RFC 5780, or did not \
answer; null otherwise, and always null over UDP.
  change_request  What the server did with CHANGE-REQUEST: honoured, ignored or refused; null \
when no such answer came.
  hairpinning  true when a packet to the own public address came back in; null when there is \
no NAT (nothing to hairpin through).
  alg  true when MAPPED-ADDRESS differs from XOR-MAPPED-ADDRESS (something rewrote it).
  allocation.pattern  preserving, sequential or random; null with too few answered samples.
  allocation.delta  Signed port step per new flow (sequential only).
  allocation.jitter  Mean deviation, in ports per sample, of the steps that fit neither delta \
nor a gap.
  allocation.confidence  0 to 1: the share of the samples' evidence the pattern explains. \
preserving: the share of answered samples that kept their local port. sequential: the share of \
steps between consecutive answered samples that are exactly delta per sample sent, or a \
further multiple of delta that our own other probes or at most 64 other hosts' flows account \
for. random: one minus the larger of those two shares for the best step. It measures fit, not \
how many samples there were (see answered); 0 without a pattern.
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
sample: {port, delta, next_port, hit}.
  mapping_lifetime_ms  With --lifetime (UDP only, else null): how long an idle UDP mapping \
lived, in milliseconds: the middle of mapping_lifetime_bracket_ms. null without --lifetime, when \
the measurement failed (a server without RESPONSE-PORT: the reason is on stderr) and when the \
mapping outlived MAX.
  mapping_lifetime_bracket_ms  [lo, hi]: the longest idle time a mapping survived (0 when none \
did) and the shortest it did not (null when every one up to MAX survived), each measured from \
the mapping's last answer to when the server's answer to the test reached the NAT (the test's \
send time plus the round trip to the server: the NAT is taken to be near this host).
  mapping_keepalive_ms  A keepalive interval to recommend: 80% of lo.
  mapping_refreshed_by_outbound  true when a mapping kept alive only by packets sent from \
behind the NAT (Binding indications, which the server does not answer) outlived the lifetime; \
false when it died like an idle one; null when not tested (no hi, or a lifetime too short to \
tell).
  mapping_refreshed_by_inbound  The same for a mapping that only received packets (answers \
the server sent to it with RESPONSE-PORT). RFC 4787 REQ-6 asks that outbound traffic refresh; \
Linux conntrack refreshes on both.
  ttl_refresh_outermost_nat_hop  With --lifetime: the hop of the outermost NAT on the path, \
from TTL-limited refreshes. Sockets refreshed only by packets sent with IP TTL k (1 to 8) keep \
their mapping only if every NAT on the path lies within k hops (a NAT refreshes a mapping on \
a packet it then drops for its TTL); the smallest k that kept it alive is the hop of the \
outermost NAT. null when outbound traffic does not refresh, when no lifetime was found, or \
when no k up to 8 kept a mapping.
  rfc3489_type  The classic RFC 3489 name: full-cone, restricted-cone, port-restricted-cone \
(endpoint-independent mapping with endpoint-independent, address-dependent or \
address-and-port-dependent filtering), symmetric (the mapping depends on the destination, by \
the RFC 5780 test or mapping_varies_by_dest_ip); without a NAT, open-internet (nothing \
filters) or symmetric-firewall (a firewall filters). null when what it needs was not measured \
(over TCP, filtering needs a natlens server with CAP_NET_RAW).
  difficulty  easy, medium or hard, from what natlens's punch planner does with this host's \
facts toward four kinds of peer (see punch): easy when it plans a way to every kind; medium \
when not to every kind, but to a cone peer without a birthday spray (direct or fanout); hard \
otherwise. null when nothing was measured to plan with.
  punch.open, punch.cone, punch.sequential, punch.random  The planner's strategy (direct, \
fanout, birthday or refused, as natlens listen/call would choose) toward a peer with no NAT or \
a full cone (open), a port-restricted cone (cone), a symmetric NAT with sequential ports \
(sequential) or one with random ports (random). null like difficulty.
  port_mapping  The port-mapping probe (--port-mapping); null with --port-mapping off. An \
object: gateway (the IPv4 gateway asked; null when none stands between this host and the \
server), pcp, nat_pmp and upnp (each {present, version (PCP 2, NAT-PMP 0, UPnP the \
InternetGatewayDevice version), service (UPnP: WANIPConnection:1, WANIPConnection:2 or \
WANPPPConnection:1), external_address, lifetime_s (what the gateway granted PCP's MAP probe), \
epoch, result (the protocol's result code when not success: PCP's NOT_AUTHORIZED means present \
but refusing, ADDRESS_MISMATCH a NAT between this host and the PCP server), error (why absent \
or incomplete), ignored (answers dropped: from another address, malformed, oversized)}), \
external_address (the gateway's, PCP's first, then NAT-PMP's, then UPnP's), \
external_matches_public (true when it is the public address STUN saw, false when another NAT \
sits upstream of the gateway, null when either is unknown), test (--port-mapping test: \
{protocol (pcp, nat_pmp or upnp; null when none granted one), transport, internal, external, \
lifetime_s, proven (the server's packet arrived; null when the server cannot send one), \
deleted, error}; else null), elapsed_ms, error (why the probe could not run).
  path  The path probe (see --no-path), or null with --no-path. The keys below.
  path.hops  One object per TTL up to the server (every TTL probed when the server never \
answered): {ttl, address (who answered; null when nobody did), class (loopback, private, \
shared, link-local, documentation, reserved or public; null when nobody answered), rtt_ms, \
server (true for the server's own answer)}.
  path.nat_layers  How many NATs the evidence shows: 0 when the server sees this host's own \
address; null when nothing measured could say.
  path.layers  Where each NAT layer is, innermost first: {hop (null when only known to be \
upstream), address}.
  path.cgnat  true when a NAT layer is in RFC 6598 shared space; false when every hop between \
the gateway and public space answered from outside it; null otherwise (see cgnat_reason).
  path.cgnat_reason  Why cgnat is what it is, in words.
  path.evidence  The facts behind the verdict, one sentence each.
  path.ignored  Answers and ICMP errors that matched none of the probe's requests.";
