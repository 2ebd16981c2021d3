//! UDP probes: one unconnected socket per [`Socket`] role, bound to the routed local IP on a
//! fresh ephemeral port; requests retransmitted with the same transaction ID at the plan's
//! times; answers matched by transaction ID and by the socket they arrived on.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Instant;

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use rand::rngs::StdRng;

use super::{binding_request, transaction_ids, wait, Gate, Ran, Shell};
use crate::core::fingerprint::observation::{Answer, Observation, Socket, Target};
use crate::core::fingerprint::plan::Probe;
use crate::core::fingerprint::schedule::Schedule;
use crate::core::unreachable::{self, Unreachable};
use crate::core::Transport;
use crate::io::icmp;
use crate::io::source::Source;
use crate::wire::stun::{Class, Message, Method, TransactionId};

/// Largest datagram read: a Binding answer is about 100 bytes; anything bigger is not one.
const MAX_DATAGRAM: usize = 2048;

/// Read errors tolerated in one drain before it stops (each queued error is reported once).
const MAX_READ_ERRORS: u32 = 8;

/// The UDP sockets of one fingerprint, kept open until it ends.
pub(super) struct UdpShell {
    local_ip: IpAddr,
    /// --bind and --interface: the mapping socket takes its port.
    source: Source,
    poll: Poll,
    /// Indexed by mio token.
    sockets: Vec<(Socket, UdpSocket, SocketAddr)>,
    /// Draws the probes' transaction IDs.
    rng: StdRng,
}

/// One step in flight.
struct Step<'a> {
    probes: &'a [Probe],
    tids: Vec<TransactionId>,
    observations: Vec<Observation>,
    schedule: Schedule,
    /// An ICMP error said the first probe's destination cannot be reached.
    unreachable: Option<Unreachable>,
}

impl UdpShell {
    pub fn new(local_ip: IpAddr, source: &Source, rng: StdRng) -> io::Result<Self> {
        Ok(UdpShell {
            local_ip,
            source: source.clone(),
            poll: Poll::new()?,
            sockets: Vec::new(),
            rng,
        })
    }

    /// The token of `role`'s socket, opened (on a fresh port) the first time it is asked for.
    fn open(&mut self, role: Socket) -> io::Result<usize> {
        if let Some(token) = self.sockets.iter().position(|(r, _, _)| *r == role) {
            return Ok(token);
        }
        let from = match role {
            Socket::Mapping => self.source.clone(),
            _ => self.source.port_free(),
        };
        let domain = socket2::Domain::for_address(SocketAddr::new(self.local_ip, 0));
        let raw = socket2::Socket::new(domain, socket2::Type::DGRAM, None)?;
        from.bind_at(&raw, self.local_ip)?;
        icmp::enable(&raw, self.local_ip.is_ipv6())?;
        let std: std::net::UdpSocket = raw.into();
        std.set_nonblocking(true)?;
        let local = std.local_addr()?;
        crate::io::pcap::watch_udp(&std);
        let mut socket = UdpSocket::from_std(std);
        let token = self.sockets.len();
        self.poll
            .registry()
            .register(&mut socket, Token(token), Interest::READABLE)?;
        self.sockets.push((role, socket, local));
        Ok(token)
    }

    /// Removes `role`'s socket from the shell, still open, once the fingerprint is over (tokens
    /// are indices: nothing may run on the shell afterwards).
    pub fn take(&mut self, role: Socket) -> io::Result<Option<UdpSocket>> {
        let Some(index) = self.sockets.iter().position(|(r, _, _)| *r == role) else {
            return Ok(None);
        };
        let (_, mut socket, local) = self.sockets.remove(index);
        self.poll.registry().deregister(&mut socket)?;
        icmp::disable(&socket, local.is_ipv6())?;
        Ok(Some(socket))
    }

    fn socket(&self, role: Socket) -> &(Socket, UdpSocket, SocketAddr) {
        self.sockets
            .iter()
            .find(|(r, _, _)| *r == role)
            .expect("every socket is opened before the step starts")
    }

    /// Sends every attempt due at `now`, back to back.
    fn send_due(&self, step: &mut Step<'_>, now: Instant) -> Option<Instant> {
        let due = step.schedule.due(now);
        let mut last = None;
        for (i, attempt) in due {
            let probe = &step.probes[i];
            let request = binding_request(step.tids[i], probe.change);
            let sent_at = Instant::now();
            if attempt == 0 {
                step.observations[i].sent_at = sent_at;
            }
            // A failed send (no route, a full buffer) is a lost packet: the schedule retransmits
            // or gives up, as it would for loss on the path.
            let socket = &self.socket(probe.socket).1;
            crate::io::pcap::udp_sent(socket, Some(probe.to), &request);
            let _ = socket.send_to(&request, probe.to);
            last = Some(sent_at);
        }
        last
    }

    /// Reads everything waiting on socket `token`.
    fn drain(&self, token: usize, step: &mut Step<'_>) {
        let (role, socket, _) = &self.sockets[token];
        let mut buf = [0u8; MAX_DATAGRAM];
        let mut errors = 0;
        // Readiness is edge-triggered: read until WouldBlock. Other errors (a queued ICMP
        // error, say) are reported once each, so a few are skipped before giving up.
        while errors < MAX_READ_ERRORS {
            match socket.recv_from(&mut buf) {
                Ok((len, from)) => {
                    crate::io::pcap::udp_received(socket, Some(from), &buf[..len]);
                    receive(*role, &buf[..len], from, Instant::now(), step)
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => errors += 1,
            }
        }
        for error in icmp::read_errors(socket.as_raw_fd()) {
            step.unreachable_from(*role, &error);
        }
    }
}

impl Step<'_> {
    /// Settles the open probe of `role`'s socket an ICMP error is about, when it says the
    /// probe's destination cannot be reached: waiting for its answer is pointless. Probes to
    /// other destinations go on (an unreachable alternate address is not an unreachable server).
    fn unreachable_from(&mut self, role: Socket, error: &icmp::Queued) {
        let now = Instant::now();
        let about = (0..self.probes.len()).find_map(|i| {
            let probe = &self.probes[i];
            let open =
                probe.socket == role && probe.to == error.to && self.schedule.is_open(i, now);
            open.then(|| unreachable::judge(&error.as_error(), probe.to, &[self.tids[i]]))
                .flatten()
                .map(|verdict| (i, verdict))
        });
        if let Some((i, verdict)) = about {
            self.schedule.settle(i);
            if i == 0 {
                self.unreachable.get_or_insert(verdict);
            }
        }
    }
}

/// Files one datagram that arrived on `role`'s socket: an answer to one of that socket's
/// probes, or the hairpin probe's request reaching the mapping socket.
fn receive(role: Socket, bytes: &[u8], from: SocketAddr, at: Instant, step: &mut Step<'_>) {
    let Ok(message) = Message::parse(bytes) else {
        return;
    };
    if message.method() != Method::BINDING {
        return;
    }
    let tid = message.transaction_id();
    let Some(i) = step.tids.iter().position(|t| *t == tid) else {
        return;
    };
    let probe = &step.probes[i];
    if !step.schedule.is_open(i, at) {
        return;
    }
    let answer = match message.class() {
        Class::Success | Class::Error
            if probe.target != Target::OwnPublic && role == probe.socket =>
        {
            Answer::from_message(&message, from, at)
        }
        Class::Request if probe.target == Target::OwnPublic && role == Socket::Mapping => {
            Answer::arrival(from, at)
        }
        _ => return,
    };
    step.observations[i].answer = Some(answer);
    step.schedule.settle(i);
}

impl Shell for UdpShell {
    fn run(
        &mut self,
        probes: &[Probe],
        gate: &Gate,
        done: &mut dyn FnMut(usize),
    ) -> io::Result<Ran> {
        for probe in probes {
            self.open(probe.socket)?;
        }
        let mut flows = Some(gate.enter());
        let start = Instant::now();
        let mut step = Step {
            probes,
            tids: transaction_ids(&mut self.rng, probes.len()),
            observations: probes
                .iter()
                .map(|p| p.observe(Transport::Udp, self.socket(p.socket).2, start + p.at))
                .collect(),
            schedule: Schedule::new(start, probes, true),
            unreachable: None,
        };
        let mut events = Events::with_capacity(64);
        let mut last_sent_at = start;
        loop {
            let now = Instant::now();
            if let Some(sent) = self.send_due(&mut step, now) {
                last_sent_at = sent;
            }
            if step.schedule.first_attempts_sent() {
                drop(flows.take());
            }
            done(step.schedule.done(now));
            if step.schedule.finished(now) {
                break;
            }
            wait(
                &mut self.poll,
                &mut events,
                now,
                step.schedule.next_wake(now),
            )?;
            for event in events.iter() {
                self.drain(event.token().0, &mut step);
            }
        }
        Ok(Ran {
            observations: step.observations,
            unreachable: step.unreachable,
            last_sent_at,
        })
    }
}
