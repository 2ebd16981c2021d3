//! The nonce handshake, sans-IO: runs one side's schedule and confirms a path both ways.
//!
//! Each end draws a nonce per call and sends it in every PUNCH request. An end that receives a
//! request answers it at once, from the socket it came in on to its source, echoing the nonce and
//! adding its own. Receiving our own nonce back (in an echo, or in a request that carries it)
//! proves the path it came back on works both ways: the peer could only know the nonce from one
//! of our requests, and its packet came back through both NATs. An end confirmed by an echo sends
//! one more request on that path carrying the peer's nonce, which confirms the peer: three
//! messages in all. Packets from another address, with another call ID, or echoing another
//! nonce never count.
//!
//! The run loop is str0m's: after every `handle_input` or `handle_timeout`, drain
//! `poll_transmit` and `poll_event`, then sleep until `poll_timeout`.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::core::punch::plan::{PunchPlan, Send, Strategy, ROUND_INTERVAL};
use crate::wire::punch::{Attempt, Punch, PunchRepr};
use crate::wire::TransactionId;

/// How long an end keeps answering after it is connected: ten of the peer's rounds, so a peer
/// whose confirmation was lost is answered again by its next requests.
pub const LINGER: Duration = Duration::from_millis(10 * ROUND_INTERVAL.as_millis() as u64);

/// Peer nonces remembered before confirmation. Only one is genuine; a few cover a forger racing
/// the peer, and the cap keeps a flood of forged nonces from growing memory.
const MAX_PEER_NONCES: usize = 4;

/// One datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Index into the plan's sockets.
    pub socket: usize,
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

/// What happened, for the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PunchEvent {
    /// The first PUNCH request carrying the peer's call ID arrived from its address (not yet
    /// proven: only an echo proves a path).
    PeerHeard { socket: usize, from: SocketAddr },
    /// Our nonce came back: this socket and peer address make a path both ways.
    Connected { socket: usize, peer: SocketAddr },
    /// No path in time, or the plan was refused.
    Failed { reason: String },
}

/// What one direction of the punch showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirectionRecord {
    /// Our socket on the path.
    pub socket: Option<usize>,
    /// The peer's public address on the path.
    pub peer: Option<SocketAddr>,
    /// The far NAT's public port the packets got through to.
    pub port_through: Option<u16>,
    /// Index of that port in the sender's predicted ports.
    pub offset: Option<usize>,
    /// PUNCH requests the sender had sent when the first got through (ours: until our echo came
    /// back; the peer's: as its request said).
    pub packets_sent: Option<u32>,
    /// For our direction, when our first echo came back (when we knew); for the peer's, when
    /// its first packet reached us. From this end's start.
    pub first_through: Option<Duration>,
}

/// The result of a finished handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub connected: bool,
    /// Why it failed.
    pub reason: Option<String>,
    /// From the start to the connection or the failure.
    pub elapsed: Duration,
    /// The socket and peer address to use.
    pub path: Option<(usize, SocketAddr)>,
    /// From this end to the peer.
    pub outbound: DirectionRecord,
    /// From the peer to this end.
    pub inbound: DirectionRecord,
}

/// The first packet seen with one peer nonce.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    nonce: u64,
    record: DirectionRecord,
}

/// The confirmation an end confirmed by an echo owes its peer, re-sent every
/// [`ROUND_INTERVAL`] until the peer answers it: the peer may have stopped probing already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ack {
    socket: usize,
    to: SocketAddr,
    next: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Running,
    /// Connected; answering until `until`.
    Lingering {
        until: Instant,
        ack: Option<Ack>,
    },
    Done,
}

/// One end's handshake.
#[derive(Debug)]
pub struct Handshake {
    call_id: u64,
    nonce: u64,
    peer_ip: Option<IpAddr>,
    start: Instant,
    deadline: Instant,
    sends: Vec<Send>,
    next_send: usize,
    /// Our targets' ports → index; the peer's targets (our ports) → index.
    own_targets: HashMap<u16, usize>,
    peer_targets: HashMap<u16, usize>,
    tid_prefix: [u8; 8],
    tid_counter: u32,
    /// Transaction IDs of our confirmations: an answer to one means the peer is confirmed.
    ack_tids: Vec<TransactionId>,
    /// The nonce our requests echo: the latest seen until confirmation, then the genuine one.
    peer_nonce: Option<u64>,
    arrivals: Vec<Arrival>,
    requests_sent: u32,
    dropped: u64,
    state: State,
    outcome: Option<Outcome>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<PunchEvent>,
}

fn port_index(ports: &[u16]) -> HashMap<u16, usize> {
    ports.iter().enumerate().map(|(i, &p)| (p, i)).collect()
}

impl Handshake {
    /// Starts this end's half of `plan` at its start signal `start`. A refused plan fails at
    /// once with the plan's reason.
    pub fn new(plan: &PunchPlan, start: Instant, rng: &mut impl RngCore) -> Self {
        let mut tid_prefix = [0u8; 8];
        rng.fill_bytes(&mut tid_prefix);
        let local = plan.local();
        let mut handshake = Handshake {
            call_id: plan.call_id,
            nonce: rng.next_u64(),
            peer_ip: plan.peer.map(|a| a.ip()),
            start,
            deadline: start + plan.timeout,
            sends: local.sends.clone(),
            next_send: 0,
            own_targets: port_index(&local.predicted_ports),
            peer_targets: port_index(&plan.remote().predicted_ports),
            tid_prefix,
            tid_counter: 0,
            ack_tids: Vec::new(),
            peer_nonce: None,
            arrivals: Vec::new(),
            requests_sent: 0,
            dropped: 0,
            state: State::Running,
            outcome: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        if plan.strategy == Strategy::Refused {
            handshake.fail(start, plan.reason.clone());
        }
        handshake
    }

    /// Adds the callee's sync rounds (see [`PunchPlan::sync_rounds`]): the first round's sends
    /// again, at each of `after` from the start. The first round is every send before the first
    /// flow repeats (every send, when none does); its copies take no new ports, they reuse the
    /// flows.
    pub fn with_sync_rounds(mut self, after: &[Duration]) -> Self {
        if after.is_empty() || self.next_send > 0 {
            return self;
        }
        let mut seen = std::collections::HashSet::new();
        let first_round: Vec<Send> = self
            .sends
            .iter()
            .take_while(|s| seen.insert((s.socket, s.to)))
            .copied()
            .collect();
        for &delay in after {
            self.sends.extend(first_round.iter().map(|s| Send {
                at: s.at + delay,
                ..*s
            }));
        }
        // Stable: ties keep the schedule's order before the copies.
        self.sends.sort_by_key(|s| s.at);
        self
    }

    /// Our nonce (for tests and logs).
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// The peer's nonce once connected: the one whose request or echo confirmed the path. The
    /// data exchange addresses its frames with it.
    pub fn confirmed_peer_nonce(&self) -> Option<u64> {
        self.outcome
            .as_ref()
            .filter(|o| o.connected)
            .and(self.peer_nonce)
    }

    /// Packets ignored: not PUNCH, another call, another address, a stray echo.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The result, once connected or failed.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// True when nothing more will be sent or answered.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// A datagram arrived on our socket `socket` from `from`.
    pub fn handle_input(&mut self, now: Instant, socket: usize, from: SocketAddr, bytes: &[u8]) {
        if self.state == State::Done {
            return;
        }
        let message = match Punch::new_checked(bytes).map(|punch| PunchRepr::parse(&punch)) {
            Ok(m) if self.is_from_peer(&m, from) => m,
            _ => {
                self.dropped += 1;
                return;
            }
        };
        self.remember_arrival(now, socket, from, &message);
        if !message.echo_response {
            self.answer(socket, from, &message);
        }
        if message.echo == Some(self.nonce) {
            if message.echo_response && self.ack_tids.contains(&message.tid) {
                self.acknowledged();
            }
            self.confirm(now, socket, from, &message);
        } else if message.echo_response {
            // An echo of some other nonce: a stale or forged answer.
            self.dropped += 1;
        }
    }

    /// Sends what the schedule has due, and gives up at the deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Running if now >= self.deadline => {
                let reason = self.timeout_reason();
                self.fail(now, reason);
            }
            State::Running => self.send_due(now),
            State::Lingering { until, .. } if now >= until => self.state = State::Done,
            State::Lingering {
                until,
                ack: Some(ack),
            } if now >= ack.next => {
                self.send_ack(ack.socket, ack.to);
                let next = now + ROUND_INTERVAL;
                self.state = State::Lingering {
                    until,
                    ack: Some(Ack { next, ..ack }),
                };
            }
            _ => {}
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<PunchEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Running => {
                let next = self.sends.get(self.next_send).map(|s| self.start + s.at);
                Some(next.map_or(self.deadline, |at| at.min(self.deadline)))
            }
            State::Lingering { until, ack } => Some(ack.map_or(until, |a| a.next.min(until))),
            State::Done => None,
        }
    }

    /// This call, from the peer's public IP, and not our own request come back. The IP is the one
    /// the peer's server saw: a NAT that spreads one host over a pool of public addresses
    /// (RFC 4787 REQ-2 asks for "paired" pooling) is not supported.
    fn is_from_peer(&self, message: &PunchRepr, from: SocketAddr) -> bool {
        message.call_id == self.call_id
            && Some(from.ip()) == self.peer_ip
            && message.nonce != self.nonce
    }

    fn next_tid(&mut self) -> TransactionId {
        self.tid_counter = self.tid_counter.wrapping_add(1);
        let mut tid = [0u8; 12];
        tid[..8].copy_from_slice(&self.tid_prefix);
        tid[8..].copy_from_slice(&self.tid_counter.to_be_bytes());
        TransactionId(tid)
    }

    fn send_due(&mut self, now: Instant) {
        while let Some(send) = self.sends.get(self.next_send).copied() {
            if self.start + send.at > now {
                break;
            }
            self.next_send += 1;
            self.requests_sent += 1;
            let request = PunchRepr {
                echo_response: false,
                tid: self.next_tid(),
                call_id: self.call_id,
                nonce: self.nonce,
                echo: self.peer_nonce,
                target: Some(send.to),
                mapped: None,
                attempt: Some(Attempt {
                    index: send.target as u32,
                    sent: self.requests_sent,
                }),
            };
            self.transmit(send.socket, send.to, &request);
        }
    }

    fn transmit(&mut self, socket: usize, to: SocketAddr, message: &PunchRepr) {
        let mut bytes = Vec::new();
        message.emit(&mut bytes);
        self.transmits.push_back(Transmit { socket, to, bytes });
    }

    /// Answers a PUNCH request on the path it came in on.
    fn answer(&mut self, socket: usize, from: SocketAddr, request: &PunchRepr) {
        let echo = PunchRepr {
            echo_response: true,
            tid: request.tid,
            call_id: self.call_id,
            nonce: self.nonce,
            echo: Some(request.nonce),
            target: None,
            mapped: Some(from),
            attempt: request.attempt,
        };
        self.transmit(socket, from, &echo);
    }

    /// Records the first packet of each peer nonce: the inbound direction, once one proves real.
    fn remember_arrival(&mut self, now: Instant, socket: usize, from: SocketAddr, m: &PunchRepr) {
        if self.outcome.is_none() {
            self.peer_nonce = Some(m.nonce);
        }
        let known = self.arrivals.iter().any(|a| a.nonce == m.nonce);
        if known || self.arrivals.len() >= MAX_PEER_NONCES {
            return;
        }
        // A request says where it was aimed; an echo says where our request came from. Either way
        // it is our own public port on this path, which we cannot see ourselves.
        let our_port = if m.echo_response { m.mapped } else { m.target }.map(|a| a.port());
        let offset = match (m.echo_response, m.attempt) {
            (false, Some(attempt)) => Some(attempt.index as usize),
            _ => our_port.and_then(|p| self.peer_targets.get(&p).copied()),
        };
        let record = DirectionRecord {
            socket: Some(socket),
            peer: Some(from),
            port_through: our_port,
            offset,
            packets_sent: m.attempt.filter(|_| !m.echo_response).map(|a| a.sent),
            first_through: Some(now.saturating_duration_since(self.start)),
        };
        if self.arrivals.is_empty() {
            self.events
                .push_back(PunchEvent::PeerHeard { socket, from });
        }
        self.arrivals.push(Arrival {
            nonce: m.nonce,
            record,
        });
    }

    /// Our nonce came back on (`socket`, `from`).
    fn confirm(&mut self, now: Instant, socket: usize, from: SocketAddr, m: &PunchRepr) {
        if self.state != State::Running {
            return;
        }
        self.peer_nonce = Some(m.nonce);
        let offset = match (m.echo_response, m.attempt) {
            (true, Some(attempt)) => Some(attempt.index as usize),
            _ => self.own_targets.get(&from.port()).copied(),
        };
        let outbound = DirectionRecord {
            socket: Some(socket),
            peer: Some(from),
            port_through: Some(from.port()),
            offset,
            packets_sent: Some(self.requests_sent),
            first_through: Some(now.saturating_duration_since(self.start)),
        };
        let inbound = self
            .arrivals
            .iter()
            .find(|a| a.nonce == m.nonce)
            .map(|a| a.record)
            .unwrap_or_default();
        // Confirmed by an echo, the peer may not have seen its own nonce come back yet (and may
        // have stopped sending): a request carrying it confirms the peer. Confirmed by a
        // request, the peer is still sending, and our answer to it is that confirmation.
        let ack = m.echo_response.then(|| {
            self.send_ack(socket, from);
            Ack {
                socket,
                to: from,
                next: now + ROUND_INTERVAL,
            }
        });
        self.outcome = Some(Outcome {
            connected: true,
            reason: None,
            elapsed: now.saturating_duration_since(self.start),
            path: Some((socket, from)),
            outbound,
            inbound,
        });
        self.events
            .push_back(PunchEvent::Connected { socket, peer: from });
        self.state = State::Lingering {
            until: now + LINGER,
            ack,
        };
    }

    /// A PUNCH request on the confirmed path carrying the peer's nonce.
    fn send_ack(&mut self, socket: usize, to: SocketAddr) {
        let tid = self.next_tid();
        self.ack_tids.push(tid);
        let ack = PunchRepr {
            echo_response: false,
            tid,
            call_id: self.call_id,
            nonce: self.nonce,
            echo: self.peer_nonce,
            target: Some(to),
            mapped: None,
            attempt: Some(Attempt {
                index: self.own_targets.get(&to.port()).copied().unwrap_or(0) as u32,
                sent: self.requests_sent,
            }),
        };
        self.transmit(socket, to, &ack);
    }

    /// The peer answered a confirmation: it is confirmed, stop re-sending.
    fn acknowledged(&mut self) {
        if let State::Lingering { until, .. } = self.state {
            self.state = State::Lingering { until, ack: None };
        }
    }

    fn timeout_reason(&self) -> String {
        let seconds = (self.deadline - self.start).as_secs_f64();
        let sent = self.requests_sent;
        if self.arrivals.is_empty() {
            format!("no punch packet got through either way in {seconds} s ({sent} sent)")
        } else {
            format!(
                "punch packets from the peer got through, \
                 but none of our {sent} came back in {seconds} s"
            )
        }
    }

    fn fail(&mut self, now: Instant, reason: String) {
        let inbound = self.arrivals.first().map(|a| a.record).unwrap_or_default();
        self.outcome = Some(Outcome {
            connected: false,
            reason: Some(reason.clone()),
            elapsed: now.saturating_duration_since(self.start),
            path: None,
            outbound: DirectionRecord {
                packets_sent: Some(self.requests_sent),
                ..DirectionRecord::default()
            },
            inbound,
        });
        self.events.push_back(PunchEvent::Failed { reason });
        self.state = State::Done;
    }
}
