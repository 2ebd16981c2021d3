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
    /// [`Background::finish`] says [`News::Hurry`] here: the caller waits; cut the wait to
    /// [`HURRIED_BUDGET`]. A message rather than a flag the probe polls, so that the probe
    /// ends the moment it may, not up to a polling period later.
    news: mpsc::Sender<News>,
}

/// What wakes the probe's collecting loop.
enum News {
    /// One protocol's probe is over.
    Answer(MappingProtocol, ProtocolProbe),
    /// The STUN probes are done and the caller waits.
    Hurry,
}

/// Starts the probe of the gateway on the way to `server` (none for a loopback or on-link
/// server: see [`gateway::toward`](super::gateway::toward)); with `test`, also
/// `--port-mapping test`'s mapping, proven through `server` and deleted.
pub fn start(server: SocketAddr, test: bool) -> Background {
    let (news, received) = mpsc::channel();
    let answers = news.clone();
    let thread = std::thread::spawn(move || {
        let start = Instant::now();
        let mut summary = match super::gateway::toward(server.ip()) {
            Ok(Some(gateway)) => probe_gateway_until(&gateway, answers, &received),
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
    Background { thread, news }
}

impl Background {
    /// Waits for the probe and compares the gateway's external address with `public`, the
    /// address STUN saw.
    pub fn finish(self, public: Option<IpAddr>) -> PortMappingSummary {
        // The probe may be over already (no gateway): then nobody hears this, which is fine.
        let _ = self.news.send(News::Hurry);
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
    let (answers, received) = mpsc::channel();
    probe_gateway_until(gateway, answers, &received)
}

/// [`probe_gateway`], the protocols' answers sent to `answers` and read from `received`, which
/// may also bring [`News::Hurry`]: from then on the probe waits no longer than
/// [`HURRIED_BUDGET`] (and only [`QUIET_BUDGET`] while every protocol still out is silent).
fn probe_gateway_until(
    gateway: &Gateway,
    answers: mpsc::Sender<News>,
    received: &mpsc::Receiver<News>,
) -> PortMappingSummary {
    let started = Instant::now();
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
        let answers = answers.clone();
        let gateway = *gateway;
        let alive = Arc::clone(alive);
        std::thread::Builder::new()
            .name(format!("port-mapping-{protocol:?}"))
            .spawn(move || {
                let probe = ask(&gateway, budget, &alive);
                let _ = answers.send(News::Answer(protocol, probe));
            })
            .expect("spawning a probe thread");
    }
    drop(answers);
    let deadline = started + UPNP_BUDGET + Duration::from_millis(100);
    let mut found = [None, None, None];
    let mut hurry = false;
    loop {
        let now = Instant::now();
        let hurried = hurry && now >= started + HURRIED_BUDGET;
        // Every protocol still out is silent so far: nothing on the way is worth the wait.
        let silent =
            (found.iter().zip(&alive)).all(|(f, a)| f.is_some() || !a.load(Ordering::Relaxed));
        let quiet = hurry && now >= started + QUIET_BUDGET && silent;
        let all_in = found.iter().all(Option::is_some);
        if now >= deadline || hurried || quiet || all_in {
            break;
        }
        // The next instant one of the conditions above can turn true without news: a
        // protocol showing signs of life only ever makes `quiet` false.
        let wake = match (hurry, now < started + QUIET_BUDGET) {
            (false, _) => deadline,
            (true, true) => started + QUIET_BUDGET,
            (true, false) => started + HURRIED_BUDGET,
        };
        match received.recv_timeout(wake.min(deadline).saturating_duration_since(now)) {
            Ok(News::Answer(protocol, probe)) => found[protocol as usize] = Some(probe),
            Ok(News::Hurry) => hurry = true,
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
