//! Logging in, then fingerprinting this end's NAT over the punch transport: the session link
//! exists before the first probe, so it costs no port between the samples and the punch.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use super::session::{self, Opened};
use super::{Run, Session};
use crate::cli::PortMappingUse;
use crate::core::client::ClientEvent;
use crate::core::fingerprint::{self, PlanConfig, PredictOptions};
use crate::core::punch::NatSummary;
use crate::core::Transport;
use crate::io::client::{self as link_io, Driven, Link};
use crate::io::port_mapping::{self, request_mapping_via, LeaseGuard, MappingProtocol};
use crate::io::prober::{self, Fingerprint, Gate, Probing};
use crate::report::Event;
use crate::wire::natlens::{
    FamilySide, IpFamily, MappedTransport, NatFacts, PortMapping, Transports,
};

/// How long a listener keeps one fingerprint while no call comes: well inside the 30 s a NAT
/// keeps an idle UDP mapping (the mapping socket's must still hold when a call comes), and
/// short enough that other hosts' flows have not yet carried a sequential NAT far from the
/// prediction. Refreshing costs about ten flows and a second.
pub const FINGERPRINT_REFRESH: Duration = Duration::from_secs(20);

/// Lifetime asked for the punch socket's port mapping: the listener re-fingerprints (and asks
/// again, deleting the old one) every [`FINGERPRINT_REFRESH`], and a punch lasts at most 25 s;
/// two minutes covers both with room, and a mapping left by a killed natlens dies soon.
const MAPPING_LIFETIME: Duration = Duration::from_secs(120);

/// How long the server may take to answer the discovery probe of a fingerprint.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(3);

/// Logs in, then fingerprints.
pub(super) fn log_in_and_fingerprint(
    run: &Run<'_>,
    call_timeout: Option<Duration>,
) -> anyhow::Result<(Link, Session, OwnNat)> {
    let transport = run.punch.login_transport;
    let Opened {
        mut link,
        mut session,
        passed_over,
    } = session::open(run.session, transport, call_timeout, run.rng())?;
    passed_over.iter().for_each(|event| run.tell_session(event));
    let mut ending = None;
    let driven = link_io::drive(
        &mut link,
        &mut session,
        None,
        Some(run.stop),
        &mut |_, _| {},
        &mut |_, event| {
            // A move to the next server is not an ending: the login there is still to come.
            let done = !matches!(
                event,
                ClientEvent::ObservedChanged { .. } | ClientEvent::ServerChanged { .. }
            );
            run.tell_session(&event);
            ending = Some(event);
            Ok(done)
        },
    )?;
    match (driven, ending) {
        (Driven::Done, Some(ClientEvent::LoggedIn { .. })) => {}
        (Driven::Stopped, _) => return Err(crate::exit::interrupted("while logging in")),
        (_, Some(event)) => {
            return Err(session::failure(run.session, transport, &link, &event)
                .unwrap_or_else(|| anyhow!("the session ended while logging in")))
        }
        (_, None) => bail!("the session ended while logging in"),
    }
    let own = fingerprint_families(run, session.server_addresses())?;
    Ok((link, session, own))
}

/// Fingerprints the session's family and, when `--family` allows, the other one at the
/// server's address in it (the one its login answer named, `named`, else one its name resolved
/// to), both at once on threads of their own: a dual-stack end waits for its slower family, not
/// for the sum of the two. A missing address, route or answer in the other family is not an
/// error: the facts then say this end has none there, and a hint says why.
pub(super) fn fingerprint_families(run: &Run<'_>, named: &[SocketAddr]) -> anyhow::Result<OwnNat> {
    // The server the session is on now (it may have failed over to another --server).
    let server = run.server();
    let other = IpFamily::of(server.ip()).other();
    if !run.punch.family.allows(other) {
        return fingerprint_nat(run, server, true, Bars::Shown);
    }
    let Some(at) = other_family_server(run, server, named, other) else {
        run.tell(Event::Hint {
            message: format!(
                "no {} punch: the server named no {} address (a wildcard listener names none: \
                 see server --advertise)",
                other.label(),
                other.label()
            ),
        });
        let mut own = fingerprint_nat(run, server, true, Bars::Shown)?;
        own.other = OtherFamily::Absent(other);
        return Ok(own);
    };
    let (own, in_other) = std::thread::scope(|scope| {
        let in_other = scope.spawn(|| fingerprint_nat(run, at, false, Bars::Hidden));
        let own = fingerprint_nat(run, server, true, Bars::Shown);
        let in_other = in_other
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the {} fingerprint panicked", other.label())));
        (own, in_other)
    });
    let mut own = own?;
    own.other = match in_other {
        Ok(measured) => {
            // Its probes for -v, now that the session family's bars are gone.
            let bars = run.watch.probing(run.leg);
            bars.finish();
            bars.probed(&measured.fingerprint);
            OtherFamily::Measured(Box::new(measured))
        }
        Err(error) => {
            run.tell(Event::Hint {
                message: format!("no {} punch: {error:#}", other.label()),
            });
            OtherFamily::Absent(other)
        }
    };
    Ok(own)
}

/// The server's address in `other`: the one its login answer named, else one its name (the
/// `--server` the session is on) resolved to.
fn other_family_server(
    run: &Run<'_>,
    server: SocketAddr,
    named: &[SocketAddr],
    other: IpFamily,
) -> Option<SocketAddr> {
    let in_other = |a: &&SocketAddr| IpFamily::of(a.ip()) == other;
    // What that server's name resolved to (a dual-stack name gives both families).
    let resolved: &[SocketAddr] = (run.session.server.iter())
        .find(|name| name.addr == server || name.resolved.contains(&server))
        .map_or(&[], |name| &name.resolved);
    named
        .iter()
        .find(in_other)
        .or(resolved.iter().find(in_other))
        .copied()
}

/// Whether a fingerprint draws progress bars: one set on the terminal, so the family measured
/// beside the session's draws none (its result is still told as an event, and its probes
/// printed with -v once both are over).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Bars {
    Shown,
    Hidden,
}

/// Progress that goes nowhere: the other family's, while the session family's has the bars.
struct NoProgress;

impl Probing for NoProgress {
    fn update(&self, _: prober::Progress) {}
    fn finish(&self) {}
}

/// This end in the family other than its session's.
pub(super) enum OtherFamily {
    /// `--family` left it out: the facts say nothing about it.
    NotAsked,
    /// No server address, route or answer there: the facts say this end has none.
    Absent(IpFamily),
    Measured(Box<OwnNat>),
}

/// This end's NAT as one fingerprint saw it, and the socket it measured.
pub(super) struct OwnNat {
    pub fingerprint: Fingerprint,
    /// The mapping socket: the `Session` socket of a UDP punch.
    pub mapping: Option<mio::net::UdpSocket>,
    /// Over TCP, the discovery connection's local address: the port the punch binds again (and
    /// the one a TCP port mapping maps).
    pub tcp_local: Option<SocketAddr>,
    /// The local IP the fingerprint's sockets bound to; fresh punch sockets bind to it too.
    pub local_ip: IpAddr,
    /// --bind and --interface (without the port, which the session socket took).
    pub source: crate::io::source::Source,
    pub taken_at: Instant,
    /// The gateway's mapping of the punch socket's port (`--port-mapping auto`), deleted when
    /// this is dropped: after the punch, or when a refresh replaces the fingerprint.
    pub lease: Option<LeaseGuard>,
    /// This end in its other family (only on the session family's own `OwnNat`).
    pub other: OtherFamily,
}

impl OwnNat {
    /// The round trip to the server the fingerprint measured: the callee's estimate of its
    /// answer's trip through the server to the caller (what its sync rounds are timed by).
    pub fn server_rtt(&self) -> Option<Duration> {
        fingerprint::classify::rtt(&self.fingerprint.observations)
    }

    /// The facts to send in a call or an answer at `now`: the prediction accounts for other
    /// hosts' flows since the last sample.
    pub fn facts_at(&self, now: Instant, transports: Transports) -> NatFacts {
        let mut facts = self.family_facts_at(now, transports);
        facts.other_family = match &self.other {
            OtherFamily::NotAsked => None,
            OtherFamily::Absent(family) => Some(FamilySide::absent(*family)),
            OtherFamily::Measured(other) => {
                let theirs = other.family_facts_at(now, transports);
                Some(FamilySide {
                    family: other.family(),
                    public: theirs.observed,
                    delta: theirs.delta,
                    predicted_ports: theirs.predicted_ports,
                    profile: theirs.profile,
                })
            }
        };
        facts
    }

    /// The family this fingerprint measured (its sockets' local IP's).
    pub fn family(&self) -> IpFamily {
        IpFamily::of(self.local_ip)
    }

    /// The session family's fingerprint, then the other family's when measured.
    pub fn into_families(mut self) -> Vec<OwnNat> {
        let other = std::mem::replace(&mut self.other, OtherFamily::NotAsked);
        let mut all = vec![self];
        if let OtherFamily::Measured(other) = other {
            all.push(*other);
        }
        all
    }

    /// The facts of this fingerprint's own family alone.
    fn family_facts_at(&self, now: Instant, transports: Transports) -> NatFacts {
        let options = PredictOptions {
            since_last: now.saturating_duration_since(self.fingerprint.last_sent_at),
            ..PredictOptions::default()
        };
        let report = fingerprint::analyse(&self.fingerprint.observations, &options);
        let mut facts = NatSummary::from_report(&report).facts(report.public_address, transports);
        facts.port_mapping = self.lease.as_ref().map(|guard| {
            let lease = guard.lease();
            PortMapping {
                external: lease.external,
                transport: match lease.transport {
                    Transport::Udp => MappedTransport::Udp,
                    Transport::Tcp => MappedTransport::Tcp,
                },
            }
        });
        facts
    }
}

/// Fingerprints over the run's transport toward `server`, keeping what the punch reuses; asks
/// the gateway for a port mapping only when `map_port` (the session's family).
pub(super) fn fingerprint_nat(
    run: &Run<'_>,
    server: SocketAddr,
    map_port: bool,
    bars: Bars,
) -> anyhow::Result<OwnNat> {
    let options = prober::Options {
        server,
        config: PlanConfig::default(),
        discovery_timeout: DISCOVERY_TIMEOUT,
        // The session socket took --bind's port: the probes and the punch take fresh ones.
        source: run.session.source.source_toward(server).port_free(),
    };
    let local_ip = (options.source.local_ip_toward(server))
        .with_context(|| format!("no route toward {server}"))?;
    let transport = run.leg;
    // Which port-mapping protocols the gateway speaks is asked beside the fingerprint, on a
    // thread of its own (the gateway's LAN side: no NAT port is spent), so that a gateway that
    // speaks none costs the punch nothing.
    let mapping_probe = (map_port && run.punch.port_mapping == PortMappingUse::Auto)
        .then(|| port_mapping::probe::start(server, false));
    let (fingerprint, mapping, tcp_local) = probe(run, transport, &options, bars)?;
    if let Some(unreachable) = fingerprint.unreachable {
        return Err(crate::exit::failed(
            crate::exit::Kind::ServerUnreachable,
            format!("no STUN answer over {}: {unreachable}", transport.as_str()),
        ));
    }
    if !fingerprint.answered() {
        return Err(crate::exit::failed(
            crate::exit::Kind::ServerUnreachable,
            format!(
                "no STUN answer from {server} over {} within {}s: is a natlens server there?",
                transport.as_str(),
                DISCOVERY_TIMEOUT.as_secs()
            ),
        ));
    }
    let report = fingerprint::analyse(&fingerprint.observations, &PredictOptions::default());
    run.tell(Event::fingerprint(transport, &report));
    // The port the punch sends from: UDP's mapping socket; over TCP the discovery
    // connection's, which the punch binds again (and, mapped, listens on).
    let punch_port = match transport {
        Transport::Udp => mapping.as_ref().and_then(|s| s.local_addr().ok()),
        Transport::Tcp => tcp_local,
    };
    let lease = punch_port.zip(mapping_probe).and_then(|(port, probe)| {
        map_punch_port(run, probe, SocketAddr::new(local_ip, port.port()))
    });
    Ok(OwnNat {
        lease,
        fingerprint,
        mapping,
        tcp_local,
        local_ip,
        source: options.source.clone(),
        taken_at: Instant::now(),
        other: OtherFamily::NotAsked,
    })
}

/// Asks the gateway on the way to the server for a mapping of `internal` (the punch socket's
/// port, over the leg's transport), with `--port-mapping auto`, in the protocols `probe` found
/// it speaking. No gateway on the way: nothing asked, nothing said. None spoken, a refusal or
/// silence: one hint, and the punch goes on without.
fn map_punch_port(
    run: &Run<'_>,
    probe: port_mapping::probe::Background,
    internal: SocketAddr,
) -> Option<LeaseGuard> {
    let summary = probe.finish(None);
    let gateway_ip = summary.gateway?;
    let spoken: Vec<MappingProtocol> = [
        (MappingProtocol::Pcp, &summary.pcp),
        (MappingProtocol::NatPmp, &summary.nat_pmp),
        (MappingProtocol::Upnp, &summary.upnp),
    ]
    .into_iter()
    .filter(|(_, probed)| probed.present)
    .map(|(protocol, _)| protocol)
    .collect();
    let hint = |message: String| run.tell(Event::Hint { message });
    if spoken.is_empty() {
        hint(format!(
            "no port mapping: the gateway {gateway_ip} speaks none of PCP, NAT-PMP and UPnP IGD: \
             punching without"
        ));
        return None;
    }
    let requested = port_mapping::Gateway::at(gateway_ip)
        .map_err(anyhow::Error::from)
        .and_then(|gateway| {
            request_mapping_via(&gateway, &spoken, run.leg, internal, MAPPING_LIFETIME)
        });
    match requested {
        Ok(lease) => Some(LeaseGuard::new(lease)),
        Err(error) => {
            hint(format!(
                "no port mapping from the gateway {gateway_ip} ({error:#}): punching without"
            ));
            None
        }
    }
}

/// What a fingerprint for a punch keeps: the mapping socket (UDP) or its local address (TCP).
type Probed = (Fingerprint, Option<mio::net::UdpSocket>, Option<SocketAddr>);

fn probe(
    run: &Run<'_>,
    transport: Transport,
    options: &prober::Options,
    shown: Bars,
) -> anyhow::Result<Probed> {
    let server = options.server;
    let bars: Box<dyn Probing + '_> = match shown {
        Bars::Shown => run.watch.probing(transport),
        Bars::Hidden => Box::new(NoProgress),
    };
    let progress = |p| bars.update(p);
    let mut rng = run.rng();
    Ok(match transport {
        Transport::Udp => {
            let result =
                prober::fingerprint_udp_for_punch(options, &Gate::default(), &progress, &mut rng);
            bars.finish();
            let (fingerprint, mapping) =
                result.with_context(|| format!("fingerprinting toward {server} over udp"))?;
            bars.probed(&fingerprint);
            (fingerprint, mapping, None)
        }
        Transport::Tcp => {
            let result =
                prober::fingerprint_tcp_for_punch(options, &Gate::default(), &progress, &mut rng);
            bars.finish();
            let (fingerprint, local) =
                result.with_context(|| format!("fingerprinting toward {server} over tcp"))?;
            bars.probed(&fingerprint);
            (fingerprint, None, local)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::punch::plan::UNREPLIED_UDP_TIMEOUT;

    #[test]
    fn a_listeners_fingerprint_is_refreshed_before_its_mapping_expires() {
        // The mapping socket last sends during the fingerprint's first second or so (the mapping
        // tests); a call that comes just before the refresh must still find its binding, with
        // room for a slow fingerprint on a far server.
        assert!(FINGERPRINT_REFRESH + Duration::from_secs(5) <= UNREPLIED_UDP_TIMEOUT);
        // A discovery probe gives up well before a call's answer is due at the server.
        assert!(DISCOVERY_TIMEOUT < crate::core::server::DELIVER_TIMEOUT);
    }
}
