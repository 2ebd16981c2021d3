//! Background jobs a lab needs while it runs (the frame relay, noise), on a thread inside the
//! lab (for a lab owned by this process) or as a detached `natlens lab worker` process (for
//! `natlens lab up`, which exits and leaves the lab running).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::lab::netns;
use crate::lab::noise;
use crate::lab::relay::{Relay, RelayPort};
use crate::lab::spec::is_prefix;

/// What the worker process prints once its sockets are open.
pub const READY: &str = "ready";
/// How long a worker may take to open its sockets.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// One background job, serialisable so it can be handed to a worker process as an argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "lowercase")]
pub enum Job {
    /// The internet segment's frame relay: (interface, one-way delay in µs) per port.
    Relay { ports: Vec<(String, u64)> },
    /// New UDP flows at `rate` per second toward `target`.
    Noise { rate: f64, target: SocketAddr },
}

/// A job whose sockets are open, ready to run.
pub enum Prepared {
    Relay(Relay),
    Noise { rate: f64, target: SocketAddr },
}

impl Job {
    /// Opens what the job needs, in the calling thread's namespace, which must be a lab's.
    ///
    /// The check is the last line of defence for the network-safety rule: a relay started in
    /// the root namespace would bridge real interfaces, and noise would leave the machine.
    pub fn prepare(&self) -> std::io::Result<Prepared> {
        let inside_lab = netns::current().is_some_and(|name| {
            name.split_once('-')
                .is_some_and(|(prefix, _)| is_prefix(prefix))
        });
        if !inside_lab {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "lab jobs run only inside a natlens lab namespace",
            ));
        }
        Ok(match self {
            Job::Relay { ports } => {
                let ports: Vec<RelayPort> = ports
                    .iter()
                    .map(|(iface, micros)| RelayPort {
                        iface: iface.clone(),
                        delay: Duration::from_micros(*micros),
                    })
                    .collect();
                Prepared::Relay(Relay::open(&ports)?)
            }
            Job::Noise { rate, target } => Prepared::Noise {
                rate: *rate,
                target: *target,
            },
        })
    }
}

impl Prepared {
    /// Runs until `stop` is set.
    pub fn run(self, stop: &AtomicBool) -> std::io::Result<()> {
        match self {
            Prepared::Relay(relay) => relay.run(stop),
            Prepared::Noise { rate, target } => noise::run(rate, target, stop),
        }
    }
}

/// A job on a thread inside a namespace; stopped and joined on drop.
pub struct WorkerThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl WorkerThread {
    /// Starts `job` in namespace `netns` and returns once it is ready (or failed to start).
    pub fn start(netns: &str, job: Job) -> anyhow::Result<WorkerThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let name = netns.to_owned();
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name(format!("lab-{name}"))
            .spawn(move || {
                let prepared = netns::enter(&name).and_then(|()| job.prepare());
                match prepared {
                    Ok(prepared) => {
                        let _ = ready_tx.send(Ok(()));
                        if let Err(err) = prepared.run(&flag) {
                            eprintln!("natlens: lab worker in {name} stopped: {err}");
                        }
                    }
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                    }
                }
            })?;
        let worker = WorkerThread {
            stop,
            handle: Some(handle),
        };
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(())) => Ok(worker),
            Ok(Err(err)) => Err(err).with_context(|| format!("starting a lab worker in {netns}")),
            Err(_) => bail!("a lab worker in {netns} did not start"),
        }
    }
}

impl Drop for WorkerThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Starts `exe lab worker JOB` detached (own session, no terminal) inside `netns` and returns
/// its process id once it reports ready.
pub fn start_process(exe: &Path, netns: &str, job: &Job) -> anyhow::Result<u32> {
    let mut command = netns::command_in(netns, exe)?;
    command
        .args(["lab", "worker", &serde_json::to_string(job)?])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    crate::lab::process::detach(&mut command);
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {} lab worker", exe.display()))?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(line) if line.trim() == READY => Ok(child.id()),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the lab worker in {netns} did not start")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_refuse_to_run_outside_a_lab() {
        let job = Job::Noise {
            rate: 1.0,
            target: "203.0.113.10:9".parse().unwrap(),
        };
        let err = job.prepare().err().expect("the test runs outside any lab");
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn jobs_round_trip_as_one_argument() {
        let jobs = [
            Job::Relay {
                ports: vec![("router-a".into(), 40_000), ("server".into(), 0)],
            },
            Job::Noise {
                rate: 20.0,
                target: "203.0.113.10:9".parse().unwrap(),
            },
        ];
        for job in jobs {
            let text = serde_json::to_string(&job).unwrap();
            assert!(!text.contains('\n'));
            assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), job);
        }
    }
}
