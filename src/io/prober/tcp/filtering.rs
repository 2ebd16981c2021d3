//! The TCP filtering tests (RFC 5382), run inside the plan's step, beside the allocation
//! samples: as soon as the filtering control's connection has shaken hands, its plain Binding
//! request is followed on the same stream by two more with CHANGE-REQUEST (change IP and port,
//! change port only), asking the server to send a crafted SYN from those addresses to the
//! connection's public address. A listener on the connection's local port (SO_REUSEADDR and
//! SO_REUSEPORT, like the hairpin listener), bound before the step's first packet, makes this
//! host answer a SYN that gets through with a SYN-ACK. The server's answers say whether it saw
//! that SYN-ACK (NL-SYN-ANSWERED); the core ([`crate::core::fingerprint::tcp_filtering`])
//! decides what that means.
//!
//! Why not after the samples: the server holds each answer for its SYN wait (a round trip and a
//! margin), so tests run after the step added a request round trip and that wait to every TCP
//! fingerprint. Pipelined behind the control's own request they end about when the samples do.
//!
//! Nothing here opens a flow: the requests go over a connection the plan opens anyway, and the
//! listener sends nothing unless a SYN reaches it. A SYN the NAT lets in arrives on a mapping
//! that exists already, so it takes no port from the samples.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};

use super::{read_into, TcpShell, LISTEN_BACKLOG, MAX_FRAME};
use crate::core::fingerprint::observation::{Observation, Socket};
use crate::core::fingerprint::plan::Probe;
use crate::core::fingerprint::tcp_filtering::{
    reply_wait, syn_wait, SynOutcome, SynTest, TcpFilteringRun, CHANGES,
};
use crate::io::prober::transaction_ids;
use crate::wire::attr::{self, AttrType, ChangeRequest};
use crate::wire::framing::{next_frame, Frame};
use crate::wire::natlens;
use crate::wire::stun::{Class, Message, MessageType, Method, TransactionId};
use crate::wire::MessageBuilder;

/// The SYN tests of one step, from the listener's bind to the server's last answer.
pub(super) struct SynTests {
    /// The filtering control's index in the step.
    pub(super) probe: usize,
    /// The listener on the control's local port: held until the fingerprint ends.
    listener: TcpListener,
    tids: Vec<TransactionId>,
    /// The round trip the discovery probe measured: sizes the server's SYN wait.
    rtt: Option<Duration>,
    /// Set once the requests are written: when to stop waiting for the answers.
    deadline: Option<Instant>,
    outcomes: Vec<Option<SynOutcome>>,
    /// Bytes read from the control connection after its own answer.
    buffer: Vec<u8>,
    /// The connection ended or a write failed: why.
    broken: Option<String>,
}

impl TcpShell {
    /// The SYN tests for a step whose probes include the filtering control, when this
    /// fingerprint runs them (`natlens nat`); binds the listener on the control's port, which
    /// `socket` (the control's, bound and not connected yet) has taken.
    pub(super) fn plan_syn_tests(
        &mut self,
        probes: &[Probe],
        sockets: &[SocketAddr],
    ) -> io::Result<Option<SynTests>> {
        let control = probes
            .iter()
            .position(|p| p.socket == Socket::Filtering && !p.change.any());
        let (true, Some(probe)) = (self.syn_tests && self.syn_run.is_none(), control) else {
            return Ok(None);
        };
        let listener = self.bind(sockets[probe], true)?;
        listener.listen(LISTEN_BACKLOG)?;
        Ok(Some(SynTests {
            probe,
            listener: TcpListener::from_std(listener.into()),
            tids: transaction_ids(&mut self.rng, CHANGES.len()),
            rtt: self.discovery_rtt,
            deadline: None,
            outcomes: vec![None; CHANGES.len()],
            buffer: Vec::new(),
            broken: None,
        }))
    }

    /// Keeps what the step's tests gave (and their listener) for [`TcpShell::filtering_tests`].
    pub(super) fn keep_syn_tests(&mut self, tests: SynTests) {
        let run = tests.run();
        self.held_listeners.push(tests.listener);
        self.syn_run = Some(run);
    }

    /// The tests' outcome, once the fingerprint is over. `None` when the plan had no control
    /// (no answer, or a server without RFC 5780).
    pub(in crate::io::prober) fn filtering_tests(
        &mut self,
        observations: &[Observation],
    ) -> Option<TcpFilteringRun> {
        let control = observations
            .iter()
            .find(|o| o.socket == Socket::Filtering && !o.change.any())?;
        if !control.is_plain_success() {
            let why = "the filtering test's own connection got no answer";
            return Some(TcpFilteringRun::NotRun(why.into()));
        }
        let run = self.syn_run.take();
        Some(run.unwrap_or_else(|| TcpFilteringRun::NotRun("not run".into())))
    }
}

impl SynTests {
    /// Writes both requests behind the control's own (one write each: the socket has
    /// TCP_NODELAY, so a segment per request, as a capture and its dissector expect).
    pub(super) fn send(&mut self, stream: &mut TcpStream) {
        let wait_ms = u32::try_from(syn_wait(self.rtt).as_millis()).unwrap_or(u32::MAX);
        for (tid, change) in self.tids.iter().zip(CHANGES) {
            let request = syn_test_request(*tid, change, wait_ms);
            if let Err(err) = stream.write_all(&request) {
                self.broken = Some(format!("sending the test: {err}"));
                return;
            }
            crate::io::pcap::tcp_sent(stream, &request);
        }
        self.deadline = Some(Instant::now() + reply_wait(self.rtt));
    }

    /// Bytes that came with the control's own answer, after it.
    pub(super) fn absorb(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        self.parse();
    }

    /// Readiness on the control connection after its own answer.
    pub(super) fn read(&mut self, stream: &mut TcpStream) {
        if let Err(err) = read_into(stream, &mut self.buffer) {
            self.broken
                .get_or_insert_with(|| format!("the connection ended: {err}"));
        }
        self.parse();
    }

    fn parse(&mut self) {
        let mut used = 0;
        while let Frame::Complete(len) = next_frame(&self.buffer[used..], MAX_FRAME) {
            if let Ok(message) = Message::parse(&self.buffer[used..used + len]) {
                if let Some(i) = self
                    .tids
                    .iter()
                    .position(|t| *t == message.transaction_id())
                {
                    self.outcomes[i] = outcome_of(&message);
                }
            }
            used += len;
        }
        self.buffer.drain(..used);
    }

    /// True when nothing more is to be waited for: every answer is in, the connection broke,
    /// the deadline passed, or the requests were never sent (then the control's own probe
    /// keeps the step going until it is settled).
    pub(super) fn settled(&self, now: Instant) -> bool {
        let Some(deadline) = self.deadline else {
            return true;
        };
        self.broken.is_some() || self.outcomes.iter().all(Option::is_some) || now >= deadline
    }

    /// When the step must wake for these tests, while they are not settled.
    pub(super) fn wake(&self, now: Instant) -> Option<Instant> {
        self.deadline.filter(|_| !self.settled(now))
    }

    fn run(&self) -> TcpFilteringRun {
        if self.deadline.is_none() {
            let why = self.broken.clone();
            return TcpFilteringRun::NotRun(why.unwrap_or_else(|| "not sent".into()));
        }
        let tests = CHANGES
            .into_iter()
            .zip(&self.outcomes)
            .map(|(change, outcome)| SynTest {
                change,
                outcome: outcome.clone().unwrap_or(SynOutcome::Lost),
            })
            .collect();
        TcpFilteringRun::Ran(tests)
    }
}

/// A Binding request asking for the SYN test: CHANGE-REQUEST, NL-SYN-WAIT and FINGERPRINT.
fn syn_test_request(tid: TransactionId, change: ChangeRequest, wait_ms: u32) -> Vec<u8> {
    let mut buf = Vec::with_capacity(48);
    let ty = MessageType::new(Method::BINDING, Class::Request);
    let mut builder = MessageBuilder::new(&mut buf, ty, tid);
    builder.attribute(AttrType::CHANGE_REQUEST, &change.encode());
    builder.u32(natlens::SYN_WAIT, wait_ms);
    builder.fingerprint();
    buf
}

/// What the server's answer to one test says; `None` for a message that is no answer.
fn outcome_of(message: &Message<'_>) -> Option<SynOutcome> {
    if message.method() != Method::BINDING {
        return None;
    }
    match message.class() {
        Class::Success => Some(match message.get(natlens::SYN_ANSWERED) {
            Some(a) => match attr::decode_u32(a.value) {
                Ok(0) => SynOutcome::Unanswered,
                Ok(_) => SynOutcome::Answered,
                Err(_) => refused(0, "a malformed NL-SYN-ANSWERED"),
            },
            None => refused(
                0,
                "an answer without NL-SYN-ANSWERED (not a natlens server?)",
            ),
        }),
        Class::Error => {
            let error = message.get(AttrType::ERROR_CODE)?;
            let (code, reason) = attr::decode_error_code(error.value).ok()?;
            Some(refused(code, reason))
        }
        Class::Request | Class::Indication => None,
    }
}

fn refused(code: u16, reason: &str) -> SynOutcome {
    SynOutcome::Refused {
        code,
        reason: reason.to_owned(),
    }
}
