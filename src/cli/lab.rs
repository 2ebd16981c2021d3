//! `natlens lab`'s arguments.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::{parse_delay, Suggesting, LAB_HOST_NAMES, NAT_MODES};
use crate::lab::{Host, NatMode};

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
    #[arg(value_name = "HOST", hide_possible_values = true,
          value_parser = Suggesting::<Host>::new(&LAB_HOST_NAMES))]
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
