//! `natlens lab`'s arguments.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::{parse_delay, Suggesting, LAB_HOST_NAMES, NAT_MODES};
use crate::lab::{Host, NatMode, V6Mode};

/// `natlens lab`: a lab is two NAT routers (A and B), each with a LAN host (`a`, `b`) and a
/// noise host (`a2`, `b2`), a server with two public addresses (203.0.113.10 and .11) and an
/// optional public host, joined by an "internet" segment. It is dual-stack: beside IPv4, every
/// host has IPv6 from its own /48 of 2001:db8::/32 (routers firewall it by default; see
/// --v6-a). Every address is an RFC 5737 or RFC 3849 documentation address and nothing is
/// connected to a real interface.
#[derive(Debug, Args)]
#[command(after_long_help = LAB_HOSTS)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

/// The host names `natlens lab exec` takes, with their addresses.
const LAB_HOSTS: &str = "Hosts: a (192.0.2.10) and a2 (192.0.2.11) behind router-a \
(203.0.113.1, LAN 192.0.2.1); b (198.51.100.10) and b2 (198.51.100.11) behind router-b \
(203.0.113.2, LAN 198.51.100.1); server (203.0.113.10 and 203.0.113.11, where `lab up \
--with-server` and `lab demo` run natlens server on port 3478, alternate 203.0.113.11:3479); \
public (203.0.113.20, with --public-host); internet (the segment itself, no address); with \
--cgnat-a, carrier-a (a carrier-grade NAT with router A's public address 203.0.113.1 on the \
internet segment and 100.64.0.1 on a carrier segment in RFC 6598 shared space, where router-a's \
WAN then sits as 100.64.0.2). IPv6: each lab has 2001:db8:HHHH::/48, HHHH the last four hex \
digits of its prefix (call it N); the internet segment is N::/64 (router-a N::1, router-b N::2, \
server N::10 and N::11, where the lab's server also listens on port 3478, public N::20), the \
LANs N:a::/64 and N:b::/64 (router N:a::1, a N:a::10, a2 N:a::11; likewise behind B); a \
`nptv6` router shows its LAN as N:ea::/64 or N:eb::/64, a `nat66` one as its WAN address; \
behind a carrier, router-a's WAN is N:c::2 on N:c::/64 (carrier-a N:c::1, and N::1 outside). \
`lab up` and `lab status` print every address. Each host is the network \
namespace <prefix>-<host>; labs are described in /run/natlens/<prefix>.json.";

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build a lab and leave it running (with --with-server, a natlens server in it too); print
    /// its prefix, hosts and addresses.
    Up(LabUpArgs),
    /// Tear down a lab (the only one, or PREFIX), or every lab no running process owns.
    Down(LabDownArgs),
    /// Show labs: namespaces, addresses, NAT modes, conntrack entry counts.
    Status(LabStatusArgs),
    /// Run a command inside one host of a lab, with this natlens first on PATH; natlens exits
    /// with the command's own status. Its stdout is the command's own: natlens adds no final
    /// JSON object to it (the one exception to the rule that --json runs end with one).
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
    /// filtering), `restricted` (endpoint-independent mapping, address-dependent filtering:
    /// any port of a host the LAN endpoint has sent to may answer), `seq:D` (symmetric: each
    /// new flow gets the port D after the previous one, from 40000) or `random` (symmetric
    /// with random ports).
    #[arg(long, value_name = "MODE", default_value = "cone", hide_possible_values = true,
          value_parser = Suggesting::<NatMode>::new(&NAT_MODES))]
    pub nat_a: NatMode,

    /// NAT mode of router B (see --nat-a).
    #[arg(long, value_name = "MODE", default_value = "cone", hide_possible_values = true,
          value_parser = Suggesting::<NatMode>::new(&NAT_MODES))]
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

    /// How long both routers keep an idle UDP mapping, in whole seconds (`30s`, `2m`): sets
    /// conntrack's UDP timeouts in the routers (nf_conntrack_udp_timeout and _stream) and the
    /// full-cone mode's UDP map timeout, so that no UDP state outlives it. The ground truth for
    /// `natlens nat --lifetime`. Without it the kernel's defaults stay (30 s for a flow
    /// answered once, 120 s or more for a flow with traffic both ways).
    #[arg(long, value_name = "DURATION", value_parser = parse_udp_timeout)]
    pub udp_timeout: Option<Duration>,

    /// Put a carrier-grade NAT in MODE (see --nat-a) between router A and the internet: a
    /// second NAT layer. Router A's WAN moves onto a carrier segment in RFC 6598 shared space
    /// (router-a 100.64.0.2, carrier-a 100.64.0.1) and the carrier takes router A's public
    /// address 203.0.113.1; --delay and --loss act on the carrier's link to the internet.
    #[arg(long, value_name = "MODE", hide_possible_values = true,
          value_parser = Suggesting::<NatMode>::new(&NAT_MODES))]
    pub cgnat_a: Option<NatMode>,

    /// What router A does with IPv6: `off` (side A is IPv4-only: neither the router nor its
    /// LAN hosts have IPv6), `open` (routes the LAN prefix, no filtering), `firewall` or
    /// `firewall:eif|adf|apdf` (stateful, RFC 6092: outbound opens a pinhole, unsolicited
    /// inbound is dropped unless the filtering admits it: endpoint-independent, the RFC's
    /// default and `firewall` alone, address-dependent, or address-and-port-dependent), `nptv6`
    /// (RFC 6296 prefix translation both ways, interface IDs kept, no firewall), `nat66`,
    /// `nat66:seq:D` or `nat66:random` (masquerade to the router's WAN address, port-preserving,
    /// sequential or random, as the IPv4 modes).
    #[arg(long, value_name = "MODE", default_value = "firewall", hide_possible_values = true,
          value_parser = Suggesting::<V6Mode>::new(&V6_MODES))]
    pub v6_a: V6Mode,

    /// What router B does with IPv6 (see --v6-a).
    #[arg(long, value_name = "MODE", default_value = "firewall", hide_possible_values = true,
          value_parser = Suggesting::<V6Mode>::new(&V6_MODES))]
    pub v6_b: V6Mode,
}

/// IPv6 modes offered for `lab --v6-a/--v6-b`; `nat66:seq:D` takes any step from 1.
pub const V6_MODES: [&str; 10] = [
    "off",
    "open",
    "firewall",
    "firewall:eif",
    "firewall:adf",
    "firewall:apdf",
    "nptv6",
    "nat66",
    "nat66:seq:1",
    "nat66:random",
];

/// `--udp-timeout`: whole seconds from 1 s to a day (conntrack counts in seconds).
fn parse_udp_timeout(text: &str) -> Result<Duration, String> {
    let timeout = super::parse_positive_duration(text)?;
    if timeout.subsec_nanos() != 0 || timeout > Duration::from_secs(86_400) {
        return Err(format!(
            "`{text}`: give whole seconds from 1s to 24h (conntrack counts in seconds)"
        ));
    }
    Ok(timeout)
}

#[derive(Debug, Args)]
pub struct LabUpArgs {
    #[command(flatten)]
    pub spec: LabSpecArgs,

    /// Also run the lab's own natlens server in the server host, in RFC 5780 full mode on
    /// 203.0.113.10:3478 with 203.0.113.11:3479 as its alternate (as `lab demo` does) and over
    /// IPv6 on [N::10]:3478 with [N::11]:3479 as its alternate (N the lab's /48, which `lab up`
    /// prints), so that `natlens lab exec a -- natlens nat --server 203.0.113.10` works at once. It is recorded in
    /// the lab's state (`lab status` shows it, with its log file) and `lab down` stops it.
    #[arg(long)]
    pub with_server: bool,

    /// Run miniupnpd (Debian miniupnpd-nftables) in router a serving these port-mapping
    /// protocols: `upnp`, `pmp`, `pcp`, comma-separated, or `none`. miniupnpd serves NAT-PMP and
    /// PCP together (one switch, one port), so `pmp` and `pcp` each switch on both. It learns
    /// its external address by STUN from the lab's server, so this implies --with-server; it is
    /// recorded in the lab's state, logs to /run/natlens/PREFIX-miniupnpd.log, and `lab down`
    /// stops it.
    #[arg(long, value_name = "PROTOCOLS", default_value = "none")]
    pub port_mapping: crate::lab::port_mapping::PortMappingSpec,

    /// Print the lab's description as one JSON object: schema_version (1), result (ok), then
    /// the state file's keys; on a failure, {schema_version, result (failed), error: {kind,
    /// message}} instead.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LabDownArgs {
    /// Prefix of the lab to tear down (as `lab up` and `lab status` print it); needed only when
    /// more than one lab is left running by `lab up` (labs a running process owns, such as a
    /// demo's, count only when there is none of those).
    #[arg(value_name = "PREFIX", conflicts_with = "all")]
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

    /// Print one JSON object: {schema_version (1), result (ok), labs: one object per lab with
    /// its description and live counts}; on a failure, {schema_version, result (failed),
    /// error: {kind, message}} instead.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LabExecArgs {
    /// The lab to run in; needed only when more than one lab is left running by `lab up` (labs
    /// a running process owns, such as a demo's, count only when there is none of those).
    #[arg(long, value_name = "PREFIX")]
    pub lab: Option<String>,

    /// Host to run in: a, a2, b, b2, router-a, router-b, server, public, internet or carrier-a.
    #[arg(value_name = "HOST", hide_possible_values = true,
          value_parser = Suggesting::<Host>::new(&LAB_HOST_NAMES))]
    pub host: Host,

    /// The command and its arguments, after `--`. The directory of the natlens executable
    /// running `lab exec` comes first on the command's PATH, so `natlens` names this natlens
    /// even where it is not on root's PATH (sudo resets PATH).
    #[arg(value_name = "CMD", last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LabDemoArgs {
    #[command(flatten)]
    pub spec: LabSpecArgs,

    /// Run miniupnpd in router a serving these port-mapping protocols (`upnp`, `pmp`, `pcp`,
    /// comma-separated, or `none`; see `lab up --port-mapping`). The demo's `natlens listen` on
    /// a then maps its punch port and announces it, `natlens call` on b aims at the mapping,
    /// and the demo says whether the punch went through it: random-port NATs on both sides
    /// (`--nat-a random --nat-b random`, refused without a mapping) then connect.
    #[arg(long, value_name = "PROTOCOLS", default_value = "none")]
    pub port_mapping: crate::lab::port_mapping::PortMappingSpec,
}

#[derive(Debug, Args)]
pub struct LabWorkerArgs {
    /// The job, as JSON.
    #[arg(value_name = "JOB")]
    pub job: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ipv6_suggestion_parses() {
        for mode in V6_MODES {
            mode.parse::<V6Mode>().expect(mode);
        }
    }
}
