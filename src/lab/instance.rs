//! [`Lab`]: a running lab, the handle tests and `natlens lab` drive.

use std::ffi::OsStr;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::{Child, Command, Output};

use anyhow::{bail, Context};

use crate::lab::conntrack::{self, CtEntry};
use crate::lab::netns;
use crate::lab::noise;
use crate::lab::plan::{self, Plan};
use crate::lab::plan6;
use crate::lab::plumbing::{self, DelayMethod};
use crate::lab::server;
use crate::lab::spec::{Host, LabSpec, Side};
use crate::lab::state::{self, LabState};
use crate::lab::teardown;
use crate::lab::worker::{self, Job, WorkerThread};

/// A running lab. Dropping it tears everything down: processes in its namespaces, the
/// namespaces with their veths, the state file.
pub struct Lab {
    spec: LabSpec,
    plan: Plan,
    state: LabState,
    threads: Vec<WorkerThread>,
    detached: bool,
}

/// Where background jobs run.
enum Workers<'a> {
    /// Threads of this process: the lab lives as long as the `Lab` value.
    Threads,
    /// Detached `natlens lab worker` processes, so the lab can outlive this process.
    Processes(&'a Path),
}

impl Lab {
    /// Builds the lab `spec` describes and returns once every router, relay and noise source
    /// is running.
    pub fn up(spec: LabSpec) -> anyhow::Result<Lab> {
        Lab::build(spec, Workers::Threads)
    }

    /// Builds a lab that outlives this process (`natlens lab up`): background jobs run as
    /// `exe lab worker` processes, and the lab stays until `natlens lab down`. With
    /// `with_server`, `exe server` runs in the server host too (see [`server`]).
    pub fn up_detached(spec: LabSpec, exe: &Path, with_server: bool) -> anyhow::Result<LabState> {
        let mut lab = Lab::build(spec, Workers::Processes(exe))?;
        let port_mapping = lab.spec.port_mapping;
        // miniupnpd learns its external address from the lab's server: it needs one.
        if with_server || port_mapping.any() {
            // Still owned here: a server that does not start tears the lab down on return.
            let netns = lab.netns(Host::Server)?.to_owned();
            lab.state.server = Some(server::start(exe, &netns, lab.prefix())?);
        }
        if port_mapping.any() {
            let netns = lab.netns(Host::Router(Side::A))?.to_owned();
            let daemon = crate::lab::port_mapping::start(&netns, lab.prefix(), port_mapping)?;
            lab.state.miniupnpd = Some(daemon);
        }
        lab.state.owner_pid = None;
        state::update(&lab.state)?;
        lab.detached = true;
        teardown::unregister(&lab.plan.prefix);
        Ok(lab.state.clone())
    }

    fn build(spec: LabSpec, workers: Workers) -> anyhow::Result<Lab> {
        spec.validate().map_err(anyhow::Error::msg)?;
        require_root()?;
        let prefix = match &spec.prefix {
            Some(prefix) => prefix.clone(),
            None => teardown::fresh_prefix(),
        };
        if let Some(other) = teardown::sharing_net6(&prefix) {
            bail!(
                "lab {other} already has {}/48, the IPv6 prefix of {prefix}: choose a prefix whose last four digits differ",
                plan6::lab_net6(&prefix)
            );
        }
        let plan = Plan::new(&spec, &prefix);
        let state = LabState::new(&spec, &plan);
        state::claim(&state)?;
        teardown::register(&prefix);
        // From here on, an early return drops `lab`, which tears down whatever exists.
        let mut lab = Lab {
            spec,
            plan,
            state,
            threads: Vec::new(),
            detached: false,
        };
        let method = plumbing::build(&lab.plan, &lab.spec)
            .with_context(|| format!("building lab {prefix}"))?;
        lab.state.delay_method = Some(method);
        lab.start_workers(&workers)?;
        state::update(&lab.state)?;
        Ok(lab)
    }

    fn start_workers(&mut self, workers: &Workers) -> anyhow::Result<()> {
        for (host, job) in self.jobs() {
            let netns = self.netns(host)?.to_owned();
            match workers {
                Workers::Threads => self.threads.push(WorkerThread::start(&netns, job)?),
                Workers::Processes(exe) => {
                    let pid = worker::start_process(exe, &netns, &job)?;
                    self.state.worker_pids.push(pid);
                }
            }
        }
        Ok(())
    }

    /// The relay (when it makes the delay) and the noise sources, with their hosts.
    fn jobs(&self) -> Vec<(Host, Job)> {
        let mut jobs = Vec::new();
        if self.state.delay_method == Some(DelayMethod::Relay) {
            let delay = self.spec.delay.as_micros() as u64;
            let ports = self
                .plan
                .segment
                .iter()
                .map(|port| (port.iface.clone(), if port.wan_link { delay } else { 0 }))
                .collect();
            jobs.push((Host::Internet, Job::Relay { ports }));
        }
        for side in Side::BOTH {
            let rate = self.spec.noise(side);
            if rate > 0.0 {
                let target =
                    SocketAddr::V4(SocketAddrV4::new(plan::SERVER_PRIMARY, noise::TARGET_PORT));
                jobs.push((Host::Noise(side), Job::Noise { rate, target }));
            }
        }
        jobs
    }

    /// The lab's name prefix (`nl` and 6 hex digits).
    pub fn prefix(&self) -> &str {
        &self.plan.prefix
    }

    pub fn spec(&self) -> &LabSpec {
        &self.spec
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The description written to the state file.
    pub fn state(&self) -> &LabState {
        &self.state
    }

    /// How `--delay` is made here.
    pub fn delay_method(&self) -> DelayMethod {
        self.state.delay_method.unwrap_or(DelayMethod::None)
    }

    /// The namespace of `host`; an error for a host this lab lacks (`public` without
    /// `--public-host`).
    pub fn netns(&self, host: Host) -> anyhow::Result<&str> {
        match self.plan.host(host) {
            Some(plan) => Ok(&plan.netns),
            None => bail!("lab {} has no host {host}", self.prefix()),
        }
    }

    /// The address of `host` on its own segment (a router's is its public address).
    pub fn addr(&self, host: Host) -> Option<Ipv4Addr> {
        self.plan.host(host).and(plan::primary_addr(host))
    }

    /// The IPv6 address of `host` on its own segment (a router's is its internet-segment
    /// address, N::1 or N::2); `None` when the host has no IPv6 (its side is `off`, or the lab
    /// lacks the host). Plan functions in [`plan6`](crate::lab::plan6) give the others (the
    /// server's second address, the routers' LAN addresses, the NPTv6 prefixes).
    pub fn addr6(&self, host: Host) -> Option<Ipv6Addr> {
        let planned = self.plan.host(host)?;
        planned
            .v6
            .ipv6
            .then(|| plan6::primary_addr6(self.prefix(), host))
            .flatten()
    }

    /// Runs `f` on a thread inside `host`'s namespace. Sockets it opens stay in that namespace
    /// and can be returned and used from any thread.
    pub fn in_netns<T: Send>(&self, host: Host, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
        let netns = self.netns(host)?;
        netns::run_in(netns, f).with_context(|| format!("entering {netns}"))
    }

    /// Runs `argv` in `host`'s namespace to completion and returns its output, whatever its
    /// exit status.
    pub fn exec<S: AsRef<OsStr>>(&self, host: Host, argv: &[S]) -> anyhow::Result<Output> {
        let (program, args) = argv.split_first().context("exec needs a command")?;
        let mut command = netns::command_in(self.netns(host)?, program)?;
        command.args(args);
        command
            .output()
            .with_context(|| format!("running {command:?} in {host}"))
    }

    /// Starts `command` inside `host`'s namespace. The lab ends it at teardown if it is still
    /// running then.
    pub fn spawn(&self, host: Host, mut command: Command) -> anyhow::Result<Child> {
        netns::into(&mut command, self.netns(host)?)?;
        command
            .spawn()
            .with_context(|| format!("starting {command:?} in {host}"))
    }

    /// Router `side`'s conntrack table, parsed: IPv4 flows first, then IPv6 ones
    /// (`conntrack -L` alone lists only IPv4).
    pub fn conntrack_entries(&self, side: Side) -> anyhow::Result<Vec<CtEntry>> {
        self.host_conntrack(Host::Router(side))
    }

    /// The conntrack table of any host (both families), parsed: a carrier's, say.
    pub fn host_conntrack(&self, host: Host) -> anyhow::Result<Vec<CtEntry>> {
        let mut entries = Vec::new();
        for family in ["ipv4", "ipv6"] {
            let output = self.checked(host, &["conntrack", "-L", "-f", family])?;
            entries.extend(conntrack::parse(&String::from_utf8_lossy(&output.stdout)));
        }
        Ok(entries)
    }

    /// Forgets all NAT state: reloads the router (and carrier) rulesets, restarting sequential
    /// counters and emptying full-cone maps, and flushes conntrack on every NAT host.
    ///
    /// Let TCP connections finish closing first: a FIN retransmitted after the flush is
    /// INVALID and dropped, which the peer sees as a hang.
    pub fn reset_nat_state(&self) -> anyhow::Result<()> {
        plumbing::load_rulesets(&self.plan, &self.spec)?;
        let nat_hosts = self.plan.hosts.iter().map(|h| h.host);
        for host in nat_hosts.filter(|h| crate::lab::carrier::is_nat(*h)) {
            for family in ["ipv4", "ipv6"] {
                self.checked(host, &["conntrack", "-F", "-f", family])?;
            }
        }
        Ok(())
    }

    fn checked(&self, host: Host, argv: &[&str]) -> anyhow::Result<Output> {
        let (program, args) = argv.split_first().expect("a command");
        let mut command = netns::command_in(self.netns(host)?, program)?;
        command.args(args);
        netns::run(&mut command, None)
    }

    /// Tears the lab down now, reporting failures (dropping it does the same silently).
    pub fn down(mut self) -> anyhow::Result<()> {
        self.detached = true;
        self.threads.clear();
        teardown::by_prefix(&self.plan.prefix)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        // Threads first: a relay thread inside the internet namespace keeps it alive.
        self.threads.clear();
        if let Err(err) = teardown::by_prefix(&self.plan.prefix) {
            eprintln!("natlens: tearing down lab {}: {err:#}", self.plan.prefix);
        }
    }
}

fn require_root() -> anyhow::Result<()> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the lab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create network namespaces: run it with sudo");
    }
    Ok(())
}
