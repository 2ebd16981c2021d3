//! The probe `natlens nat` runs: PCP, NAT-PMP and UPnP IGD asked in parallel, each on its own
//! thread, all within one budget. A protocol that has not answered by then is reported absent
//! ("no answer within ..."); its thread is left to finish on its own (igd-next's HTTP calls
//! have no deadline of their own) and its result is dropped.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::gateway::Gateway;
use super::{pcp, pmp, upnp};
use crate::core::port_mapping::{MappingProtocol, PortMappingSummary, ProtocolProbe};

/// The whole probe's budget on a LAN.
pub const PROBE_BUDGET: Duration = Duration::from_millis(250);
/// UPnP needs SSDP, two HTTP GETs and a SOAP call: a little more room than the UDP protocols.
const UPNP_BUDGET: Duration = Duration::from_millis(400);
/// Once the STUN probes are done ([`Background::finish`]), how long from its start the probe
/// may still wait for a protocol that has not answered. A LAN gateway answers PCP and NAT-PMP
/// in milliseconds and all of UPnP (SSDP, description, SOAP) in about 150 ms (miniupnpd in the
/// lab); a silent gateway would otherwise hold `natlens nat` to the full UPnP budget, twice
/// the wall time of a UDP fingerprint at a 50 ms round trip.
const HURRIED_BUDGET: Duration = Duration::from_millis(200);
/// Once the STUN probes are done, how long from its start the probe waits for a protocol that
/// has shown no sign of life (no answer at all; for UPnP, no SSDP answer): a gateway that
/// speaks one shows it sooner. PCP and NAT-PMP answer in milliseconds; miniupnpd delays its
/// answers to an M-SEARCH, by 52 to 85 ms in the lab (unicast and multicast alike). Without
/// this, a gateway that speaks no UPnP held every `natlens nat` to [`HURRIED_BUDGET`], 20-odd
/// ms past a UDP fingerprint at a 50 ms round trip.
const QUIET_BUDGET: Duration = Duration::from_millis(150);

/// The probe running beside the STUN probes (`natlens nat`), on a thread of its own.
pub struct Background {
    thread: std::thread::JoinHandle<PortMappingSummary>,
    /// Set by [`Background::finish`]: the caller waits; cut the wait to [`HURRIED_BUDGET`].
    hurry: Arc<AtomicBool>,
}

/// Starts the probe of the gateway on the way to `server` (none for a loopback or on-link
/// server: see [`gateway::toward`](super::gateway::toward)); with `test`, also
/// `--port-mapping test`'s mapping, proven through `server` and deleted.
pub fn start(server: SocketAddr, test: bool) -> Background {
    let hurry = Arc::new(AtomicBool::new(false));
    let hurried = Arc::clone(&hurry);
    let thread = std::thread::spawn(move || {
        let start = Instant::now();
        let mut summary = match super::gateway::toward(server.ip()) {
            Ok(Some(gateway)) => probe_gateway_until(&gateway, &hurried),
            Ok(None) => PortMappingSummary::failed(
                "no IPv4 gateway between this host and the server (loopback, on-link or IPv6): \
                 nothing to ask"
                    .into(),
            ),
            Err(e) => PortMappingSummary::failed(format!("reading the routing table: {e}")),
        };
        if test {
            if let Some(gateway) = summary.gateway.and_then(|ip| Gateway::at(ip).ok()) {
                summary.test = Some(super::trial::run(&gateway, server));
            }
        }
        summary.elapsed_ms = start.elapsed().as_millis() as u64;
        summary
    });
    Background { thread, hurry }
}

impl Background {
    /// Waits for the probe and compares the gateway's external address with `public`, the
    /// address STUN saw.
    pub fn finish(self, public: Option<IpAddr>) -> PortMappingSummary {
        self.hurry.store(true, Ordering::Relaxed);
        let mut summary = self
            .thread
            .join()
            .unwrap_or_else(|_| PortMappingSummary::failed("the port-mapping probe failed".into()));
        summary.compare_with_public(public);
        summary
    }
}

/// Probes the default gateway.
pub fn probe() -> PortMappingSummary {
    let start = Instant::now();
    let mut summary = match Gateway::default_route() {
        Ok(gateway) => probe_gateway(&gateway),
        Err(e) => PortMappingSummary::failed(format!("no gateway to ask: {e}")),
    };
    summary.elapsed_ms = start.elapsed().as_millis() as u64;
    summary
}

/// One protocol's probe; it sets the flag when the gateway has shown that it speaks the
/// protocol but the answer is not complete yet (UPnP after SSDP).
type Ask = fn(&Gateway, Duration, &AtomicBool) -> ProtocolProbe;

/// Probes `gateway` (a fake one on loopback in tests).
pub fn probe_gateway(gateway: &Gateway) -> PortMappingSummary {
    probe_gateway_until(gateway, &AtomicBool::new(false))
}

/// [`probe_gateway`], waiting no longer than [`HURRIED_BUDGET`] once `hurry` is set.
fn probe_gateway_until(gateway: &Gateway, hurry: &AtomicBool) -> PortMappingSummary {
    let started = Instant::now();
    let (sender, receiver) = mpsc::channel();
    let asks: [(MappingProtocol, Ask, Duration); 3] = [
        (
            MappingProtocol::Pcp,
            |g, b, _| pcp::probe(g, b),
            PROBE_BUDGET,
        ),
        (
            MappingProtocol::NatPmp,
            |g, b, _| pmp::probe(g, b),
            PROBE_BUDGET,
        ),
        (
            MappingProtocol::Upnp,
            upnp::probe_noting_discovery,
            UPNP_BUDGET,
        ),
    ];
    let alive: [Arc<AtomicBool>; 3] = Default::default();
    for ((protocol, ask, budget), alive) in asks.into_iter().zip(&alive) {
        let sender = sender.clone();
        let gateway = *gateway;
        let alive = Arc::clone(alive);
        std::thread::Builder::new()
            .name(format!("port-mapping-{protocol:?}"))
            .spawn(move || {
                let _ = sender.send((protocol, ask(&gateway, budget, &alive)));
            })
            .expect("spawning a probe thread");
    }
    drop(sender);
    let deadline = started + UPNP_BUDGET + Duration::from_millis(100);
    let mut found = [None, None, None];
    loop {
        let now = Instant::now();
        let hurry = hurry.load(Ordering::Relaxed);
        let hurried = hurry && now >= started + HURRIED_BUDGET;
        // Every protocol still out is silent so far: nothing on the way is worth the wait.
        let quiet = hurry
            && now >= started + QUIET_BUDGET
            && (found.iter().zip(&alive)).all(|(f, a)| f.is_some() || !a.load(Ordering::Relaxed));
        if now >= deadline || hurried || quiet {
            break;
        }
        // Short waits, so that a hurry is seen within 10 ms.
        let slice = deadline
            .saturating_duration_since(now)
            .min(Duration::from_millis(10));
        match receiver.recv_timeout(slice) {
            Ok((protocol, probe)) => found[protocol as usize] = Some(probe),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let [pcp, nat_pmp, upnp] = found.map(|probe| {
        probe.unwrap_or_else(|| ProtocolProbe {
            error: Some("no answer within the probe's budget".into()),
            ..Default::default()
        })
    });
    PortMappingSummary::new(Some(gateway.ip()), pcp, nat_pmp, upnp)
}
