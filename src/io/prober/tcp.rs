//! TCP probes: one connection per probe from a socket bound to the routed local IP, a Binding
//! request over the stream once it is connected, the framed answer read back.
//!
//! - The mapping tests reuse the discovery connection's local port toward the server's other
//!   addresses (SO_REUSEADDR and SO_REUSEPORT on every socket of that port; the 4-tuples differ,
//!   so the kernel allows it). The discovery connection stays open meanwhile, so the NAT keeps
//!   the mapping being tested.
//! - Hairpinning: a listener on the mapping port accepts what the hairpin socket sends to the
//!   mapping socket's public address, and the request read from it must carry the hairpin
//!   probe's transaction ID.
//! - Every socket has SO_LINGER 0, so that closing it sends a RST: no TIME_WAIT to make the next
//!   run's bind fail with EADDRNOTAVAIL (docs/lab.md). Connections stay open until the fingerprint
//!   ends, so that the NAT's mappings hold while the samples are taken.
//! - No retransmission of our own: the kernel retransmits a lost SYN and the plan's wait covers
//!   one such retransmission. Discovery alone is hedged (`plan::tcp_discovery_connections`):
//!   while no connection has answered or shaken hands quickly, another fresh one starts, and the
//!   first to answer becomes the mapping socket. A probe's `sent_at` is when its request was written, after the
//!   handshake, so that its RTT is a request/answer round trip as over UDP.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, SockRef, Type};

use rand::rngs::StdRng;

use super::{binding_request, transaction_ids, wait, Gate, Ran, Shell};
use crate::core::fingerprint::observation::{Answer, Observation, Socket, Target};
use crate::core::fingerprint::plan::{tcp_discovery_connections, Probe, TCP_SYN_RTO};
use crate::core::fingerprint::schedule::Schedule;
use crate::core::fingerprint::tcp_filtering::TcpFilteringRun;
use crate::core::unreachable::{self, Unreachable};
use crate::core::Transport;
use crate::io::source::Source;
use crate::wire::framing::{next_frame, Frame};
use crate::wire::stun::{Class, Message, Method, TransactionId};

mod filtering;

use filtering::SynTests;

/// Largest frame read: a Binding answer is about 100 bytes; a bigger frame is not one.
const MAX_FRAME: usize = 2048;

/// Connections the hairpin listener queues: one is expected.
const LISTEN_BACKLOG: i32 = 4;

/// The TCP side of one fingerprint.
pub(super) struct TcpShell {
    local_ip: IpAddr,
    /// --bind and --interface: the mapping socket takes its port.
    source: Source,
    poll: Poll,
    next_token: usize,
    /// The discovery connection's local address, which the mapping tests and the hairpin
    /// listener bind again.
    mapping_local: Option<SocketAddr>,
    /// Connections and listeners of finished steps, open until the fingerprint ends.
    held: Vec<TcpStream>,
    held_listeners: Vec<TcpListener>,
    /// Draws the probes' transaction IDs.
    rng: StdRng,
    /// Run the TCP filtering tests beside the samples (`natlens nat`; not before a punch).
    syn_tests: bool,
    /// The discovery probe's round trip: sizes the server's SYN wait.
    discovery_rtt: Option<Duration>,
    /// What the filtering tests gave, once their step is over.
    syn_run: Option<TcpFilteringRun>,
}

impl TcpShell {
    /// The discovery connection's local address: the port a TCP punch reuses.
    pub(super) fn mapping_local(&self) -> Option<SocketAddr> {
        self.mapping_local
    }

    /// Also runs the TCP filtering tests, over the filtering control's connection.
    pub(super) fn with_syn_tests(mut self) -> Self {
        self.syn_tests = true;
        self
    }
}

impl Drop for TcpShell {
    /// The held connections reset as they close (SO_LINGER 0): a `--pcap` that cannot capture
    /// records the RSTs.
    fn drop(&mut self) {
        self.held.iter().for_each(crate::io::pcap::tcp_closing);
    }
}

/// One probe's connection.
enum Conn {
    /// Bound, not connected yet: it exists before the first packet of the step.
    Ready(socket2::Socket),
    Connecting(TcpStream),
    Open(TcpStream, Vec<u8>),
    /// Answered or failed; the stream, if any, stays open until the fingerprint ends.
    Done(Option<TcpStream>),
}

/// What a mio token stands for in the current step.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Probe(usize),
    Listener,
    Accepted(usize),
}

/// One step in flight.
struct Step<'a> {
    probes: &'a [Probe],
    tids: Vec<TransactionId>,
    observations: Vec<Observation>,
    schedule: Schedule,
    conns: Vec<Conn>,
    slots: HashMap<Token, Slot>,
    tokens: Vec<Token>,
    listener: Option<TcpListener>,
    /// Connections the hairpin listener accepted: stream, peer, bytes so far.
    accepted: Vec<(TcpStream, SocketAddr, Vec<u8>)>,
    /// The first probe's destination refused the connection or was unreachable.
    unreachable: Option<Unreachable>,
    /// When each probe's connect started.
    connect_started: Vec<Option<Instant>>,
    /// Each probe's handshake completed within [`TCP_SYN_RTO`]: no SYN was retransmitted, so
    /// the kernel retransmits its data quickly too.
    quick_handshake: Vec<bool>,
    /// The TCP filtering tests, when this step has the filtering control and the fingerprint
    /// runs them.
    syn_tests: Option<SynTests>,
}

impl TcpShell {
    pub fn new(local_ip: IpAddr, source: &Source, rng: StdRng) -> io::Result<Self> {
        Ok(TcpShell {
            local_ip,
            source: source.clone(),
            poll: Poll::new()?,
            next_token: 0,
            mapping_local: None,
            held: Vec::new(),
            held_listeners: Vec::new(),
            rng,
            syn_tests: false,
            discovery_rtt: None,
            syn_run: None,
        })
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        Token(self.next_token)
    }

    /// A non-blocking socket that resets its connection when closed, bound to `local` (port 0
    /// for a fresh one) with address and port reuse when the mapping port is shared.
    fn bind(&self, local: SocketAddr, shared: bool) -> io::Result<socket2::Socket> {
        let socket = socket2::Socket::new(Domain::for_address(local), Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket.set_linger(Some(Duration::ZERO))?;
        socket.set_nodelay(true)?;
        if shared {
            socket.set_reuse_address(true)?;
            socket.set_reuse_port(true)?;
        }
        let from = match local.port() {
            0 => self.source.port_free(),
            port => Source {
                port: Some(port),
                ..self.source.clone()
            },
        };
        from.bind_at(&socket, local.ip())?;
        crate::io::pcap::watch_tcp(&socket);
        Ok(socket)
    }

    /// The socket for `probe`, bound before anything of the step is sent.
    fn prepare(&mut self, probe: &Probe) -> io::Result<socket2::Socket> {
        let fresh = SocketAddr::new(self.local_ip, 0);
        match (probe.socket, probe.fresh, self.mapping_local) {
            (Socket::Mapping, false, Some(local)) => self.bind(local, true),
            (Socket::Mapping, _, _) => {
                // --bind's port, when given, is the mapping socket's.
                let first = SocketAddr::new(self.local_ip, self.source.port.unwrap_or(0));
                let socket = self.bind(first, true)?;
                self.mapping_local = socket.local_addr()?.as_socket();
                Ok(socket)
            }
            // The filtering control's port gets a listener too (see `filtering`).
            (Socket::Filtering, _, _) => self.bind(fresh, true),
            _ => self.bind(fresh, false),
        }
    }

    /// The hairpin listener on the mapping port, when the step has a hairpin probe.
    fn listen(&mut self, probes: &[Probe]) -> io::Result<Option<TcpListener>> {
        let hairpin = probes.iter().any(|p| p.target == Target::OwnPublic);
        let (true, Some(local)) = (hairpin, self.mapping_local) else {
            return Ok(None);
        };
        let socket = self.bind(local, true)?;
        socket.listen(LISTEN_BACKLOG)?;
        Ok(Some(TcpListener::from_std(socket.into())))
    }

    /// Connects every probe due at `now`, back to back.
    fn connect_due(&mut self, step: &mut Step<'_>, now: Instant) -> Option<Instant> {
        let due = step.schedule.due(now);
        let mut last = None;
        for (i, _) in due {
            let Conn::Ready(socket) = std::mem::replace(&mut step.conns[i], Conn::Done(None))
            else {
                continue;
            };
            let sent_at = Instant::now();
            step.observations[i].sent_at = sent_at;
            step.connect_started[i] = Some(sent_at);
            last = Some(sent_at);
            match connect(socket, step.probes[i].to) {
                Ok(mut stream) => {
                    if let Ok(local) = stream.local_addr() {
                        step.observations[i].local = local;
                    }
                    let registered = self.poll.registry().register(
                        &mut stream,
                        step.tokens[i],
                        Interest::READABLE | Interest::WRITABLE,
                    );
                    step.conns[i] = match registered {
                        Ok(()) => Conn::Connecting(stream),
                        Err(_) => Conn::Done(Some(stream)),
                    };
                }
                Err(err) => step.fail(i, &err),
            }
        }
        last
    }

    /// Accepts the hairpin listener's connections.
    fn accept(&mut self, step: &mut Step<'_>) {
        let Some(listener) = &step.listener else {
            return;
        };
        while let Ok((mut stream, peer)) = listener.accept() {
            crate::io::pcap::tcp_accepted(&stream);
            let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            let token = self.token();
            if self
                .poll
                .registry()
                .register(&mut stream, token, Interest::READABLE)
                .is_ok()
            {
                step.slots
                    .insert(token, Slot::Accepted(step.accepted.len()));
                step.accepted.push((stream, peer, Vec::new()));
            }
        }
    }
}

/// Starts a non-blocking connect; EINPROGRESS is the normal answer.
fn connect(socket: socket2::Socket, to: SocketAddr) -> io::Result<TcpStream> {
    match socket.connect(&to.into()) {
        Ok(()) => {}
        Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(err) => return Err(err),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// Reads what `stream` has into `buffer`; `Err` when the stream ended or failed.
fn read_into(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; MAX_FRAME];
    loop {
        match stream
            .read(&mut chunk)
            .inspect(|&n| crate::io::pcap::tcp_received(stream, &chunk[..n]))
        {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
        if buffer.len() > MAX_FRAME {
            return Err(io::ErrorKind::InvalidData.into());
        }
    }
}

/// The first whole STUN message in `buffer`, if one has arrived.
fn first_frame(buffer: &[u8]) -> Result<Option<Message<'_>>, ()> {
    match next_frame(buffer, MAX_FRAME) {
        Frame::Complete(len) => Message::parse(&buffer[..len]).map(Some).map_err(drop),
        Frame::Partial => Ok(None),
        Frame::TooLarge(_) | Frame::NotStun => Err(()),
    }
}

impl Step<'_> {
    /// Probe `i` failed for good; a refused or unreachable probe to the first probe's
    /// destination means the server cannot be reached there (every discovery connection goes
    /// to the server; in later steps only the first probe does).
    fn fail(&mut self, i: usize, err: &io::Error) {
        let to = self.probes[i].to;
        let reason = err.raw_os_error().and_then(unreachable::connect_failure);
        if let (Some(reason), true) = (reason, to == self.probes[0].to) {
            self.unreachable.get_or_insert(Unreachable {
                to,
                reason,
                offender: None,
            });
        }
        self.schedule.settle(i);
    }

    /// Readiness on probe `i`'s connection.
    fn on_probe(&mut self, i: usize) {
        let now = Instant::now();
        match std::mem::replace(&mut self.conns[i], Conn::Done(None)) {
            Conn::Connecting(stream) => self.conns[i] = self.on_connecting(i, stream),
            Conn::Open(stream, buffer) => self.conns[i] = self.on_open(i, stream, buffer, now),
            Conn::Done(Some(mut stream)) => {
                // The filtering control's connection carries the SYN tests' answers.
                if let Some(tests) = self.syn_tests.as_mut().filter(|t| t.probe == i) {
                    tests.read(&mut stream);
                }
                self.conns[i] = Conn::Done(Some(stream));
            }
            other => self.conns[i] = other,
        }
    }

    /// The handshake ended one way or the other: send the request, or give the probe up.
    fn on_connecting(&mut self, i: usize, mut stream: TcpStream) -> Conn {
        match stream.take_error() {
            Ok(Some(err)) | Err(err) => {
                self.fail(i, &err);
                return Conn::Done(None);
            }
            Ok(None) => {}
        }
        match stream.peer_addr() {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotConnected => {
                return Conn::Connecting(stream);
            }
            Err(err) => {
                self.fail(i, &err);
                return Conn::Done(None);
            }
        }
        crate::io::pcap::tcp_connected(&stream);
        let now = Instant::now();
        let took = self.connect_started[i].map(|started| now.saturating_duration_since(started));
        self.observations[i].handshake = took;
        self.quick_handshake[i] = took.is_some_and(|took| took < TCP_SYN_RTO);
        if !self.schedule.is_open(i, now) {
            return Conn::Done(Some(stream));
        }
        let request = binding_request(self.tids[i], self.probes[i].change);
        self.observations[i].sent_at = Instant::now();
        // 30-odd bytes into an empty send buffer: written whole, or the connection is broken.
        if let Err(err) = stream.write_all(&request) {
            self.fail(i, &err);
            return Conn::Done(Some(stream));
        }
        crate::io::pcap::tcp_sent(&stream, &request);
        if let Some(tests) = self.syn_tests.as_mut().filter(|t| t.probe == i) {
            tests.send(&mut stream);
        }
        // The answer may already be waiting, and readiness is edge-triggered.
        self.on_open(i, stream, Vec::new(), Instant::now())
    }

    /// Bytes on an open probe connection: its answer, once whole.
    fn on_open(
        &mut self,
        i: usize,
        mut stream: TcpStream,
        mut buffer: Vec<u8>,
        at: Instant,
    ) -> Conn {
        // A server may answer and close at once: the answer read before the end still counts.
        let read = read_into(&mut stream, &mut buffer);
        let message = match (first_frame(&buffer), read) {
            (Ok(Some(message)), _) => message,
            (Ok(None), Ok(())) => return Conn::Open(stream, buffer),
            (Ok(None), Err(err)) => {
                self.fail(i, &err);
                return Conn::Done(Some(stream));
            }
            (Err(()), _) => {
                self.schedule.settle(i);
                return Conn::Done(Some(stream));
            }
        };
        let response = matches!(message.class(), Class::Success | Class::Error);
        let ours = message.method() == Method::BINDING && message.transaction_id() == self.tids[i];
        if response && ours && self.schedule.is_open(i, at) {
            let from = stream.peer_addr().unwrap_or(self.probes[i].to);
            self.observations[i].answer = Some(Answer::from_message(&message, from, at));
        }
        self.schedule.settle(i);
        // What came after the control's own answer belongs to the SYN tests.
        if let (Some(tests), Frame::Complete(len)) = (
            self.syn_tests.as_mut().filter(|t| t.probe == i),
            next_frame(&buffer, MAX_FRAME),
        ) {
            tests.absorb(&buffer[len..]);
        }
        Conn::Done(Some(stream))
    }

    /// Bytes on a connection the hairpin listener accepted: the hairpin probe's request?
    fn on_accepted(&mut self, k: usize) {
        let at = Instant::now();
        let (stream, peer, buffer) = &mut self.accepted[k];
        let peer = *peer;
        if read_into(stream, buffer).is_err() && buffer.is_empty() {
            return;
        }
        let Ok(Some(message)) = first_frame(buffer) else {
            return;
        };
        let tid = message.transaction_id();
        let request = message.class() == Class::Request && message.method() == Method::BINDING;
        let hairpin = self
            .tids
            .iter()
            .position(|t| *t == tid)
            .filter(|&i| self.probes[i].target == Target::OwnPublic);
        if let (true, Some(i)) = (request, hairpin) {
            if self.schedule.is_open(i, at) {
                self.observations[i].answer = Some(Answer::arrival(peer, at));
                self.schedule.settle(i);
            }
        }
    }

    /// Discovery hedges not started yet are dropped (their sockets never sent anything) once a
    /// connection has answered, was refused or shook hands quickly: nothing is left for them to win.
    fn drop_needless_hedges(&mut self) {
        // A refused connection means nothing listens there: no hedge would do better.
        let answered =
            self.unreachable.is_some() || self.observations.iter().any(|o| o.answer.is_some());
        let quick = self.quick_handshake.iter().any(|&q| q);
        if !(answered || quick) {
            return;
        }
        for i in 0..self.conns.len() {
            if matches!(self.conns[i], Conn::Ready(_)) {
                self.conns[i] = Conn::Done(None);
                self.schedule.settle(i);
            }
            if answered {
                self.schedule.settle(i);
            }
        }
    }

    /// Every stream and listener of the step, to hold until the fingerprint ends.
    fn into_held(self) -> (Vec<TcpStream>, Option<TcpListener>) {
        let mut streams: Vec<TcpStream> = self
            .conns
            .into_iter()
            .filter_map(|conn| match conn {
                Conn::Connecting(stream) | Conn::Open(stream, _) | Conn::Done(Some(stream)) => {
                    Some(stream)
                }
                Conn::Ready(_) | Conn::Done(None) => None,
            })
            .collect();
        streams.extend(self.accepted.into_iter().map(|(stream, _, _)| stream));
        (streams, self.listener)
    }
}

impl TcpShell {
    /// Binds every socket of the step (and the hairpin listener) before anything is sent.
    fn open_step<'a>(&mut self, probes: &'a [Probe]) -> io::Result<Step<'a>> {
        let mut conns = Vec::with_capacity(probes.len());
        let mut locals = Vec::with_capacity(probes.len());
        for probe in probes {
            let socket = self.prepare(probe)?;
            locals.push(socket.local_addr()?.as_socket().expect("an IP socket"));
            conns.push(Conn::Ready(socket));
        }
        let mut listener = self.listen(probes)?;
        let syn_tests = self.plan_syn_tests(probes, &locals)?;
        let tokens: Vec<Token> = (0..probes.len()).map(|_| self.token()).collect();
        let mut slots: HashMap<Token, Slot> = (tokens.iter().copied())
            .zip((0..probes.len()).map(Slot::Probe))
            .collect();
        if let Some(listener) = &mut listener {
            let token = self.token();
            self.poll
                .registry()
                .register(listener, token, Interest::READABLE)?;
            slots.insert(token, Slot::Listener);
        }
        let start = Instant::now();
        let observations = (probes.iter().zip(locals))
            .map(|(p, local)| p.observe(Transport::Tcp, local, start + p.at))
            .collect();
        Ok(Step {
            probes,
            tids: transaction_ids(&mut self.rng, probes.len()),
            observations,
            schedule: Schedule::new(start, probes, false),
            conns,
            slots,
            tokens,
            listener,
            accepted: Vec::new(),
            unreachable: None,
            connect_started: vec![None; probes.len()],
            quick_handshake: vec![false; probes.len()],
            syn_tests,
        })
    }
}

impl TcpShell {
    /// Runs one step; `hedged` marks a discovery step whose probes are alternatives.
    fn run_step(
        &mut self,
        probes: &[Probe],
        hedged: bool,
        gate: &Gate,
        done: &mut dyn FnMut(usize),
    ) -> io::Result<Ran> {
        let mut flows = Some(gate.enter());
        let mut step = self.open_step(probes)?;
        let mut events = Events::with_capacity(64);
        let mut last_sent_at = Instant::now();
        loop {
            let now = Instant::now();
            if hedged {
                step.drop_needless_hedges();
            }
            if let Some(sent) = self.connect_due(&mut step, now) {
                last_sent_at = sent;
            }
            if step.schedule.first_attempts_sent() {
                drop(flows.take());
            }
            done(step.schedule.done(now));
            let syn_tests_settled = step.syn_tests.as_ref().is_none_or(|t| t.settled(now));
            if step.schedule.finished(now) && syn_tests_settled {
                break;
            }
            let syn_wake = step.syn_tests.as_ref().and_then(|t| t.wake(now));
            let wake = match (step.schedule.next_wake(now), syn_wake) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            wait(&mut self.poll, &mut events, now, wake)?;
            for event in events.iter() {
                match step.slots.get(&event.token()).copied() {
                    Some(Slot::Probe(i)) => step.on_probe(i),
                    Some(Slot::Listener) => self.accept(&mut step),
                    Some(Slot::Accepted(k)) => step.on_accepted(k),
                    None => {}
                }
            }
        }
        if let Some(tests) = step.syn_tests.take() {
            self.keep_syn_tests(tests);
        }
        let unreachable = step.unreachable;
        let observations = std::mem::take(&mut step.observations);
        let (streams, listener) = step.into_held();
        self.held.extend(streams);
        self.held_listeners.extend(listener);
        Ok(Ran {
            observations,
            unreachable,
            last_sent_at,
        })
    }
}

impl Shell for TcpShell {
    fn run(
        &mut self,
        probes: &[Probe],
        gate: &Gate,
        done: &mut dyn FnMut(usize),
    ) -> io::Result<Ran> {
        self.run_step(probes, false, gate, done)
    }

    /// Discovery over hedged connections: the first answered one is the observation, and its
    /// local address the mapping socket's (the port the mapping tests and a punch bind again).
    fn discover(
        &mut self,
        probe: Probe,
        gate: &Gate,
        done: &mut dyn FnMut(usize),
    ) -> io::Result<Ran> {
        let mut connections = tcp_discovery_connections(&probe);
        if self.source.port.is_some() {
            // Hedges would take other ports than the one --bind asked for: one connection,
            // whose lost SYN the kernel retransmits.
            connections.truncate(1);
        }
        let mut ran = self.run_step(&connections, true, gate, &mut |n| {
            done(usize::from(n == connections.len()))
        })?;
        let winner = (ran.observations.iter())
            .position(|o| o.answer.is_some())
            .unwrap_or(0);
        let observation = ran.observations.swap_remove(winner);
        self.mapping_local = Some(observation.local);
        self.discovery_rtt = observation.rtt();
        ran.observations = vec![observation];
        Ok(ran)
    }
}
