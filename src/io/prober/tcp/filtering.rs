//! The TCP filtering tests (RFC 5382), after the allocation samples: over the filtering
//! control's connection, two Binding requests with CHANGE-REQUEST (change IP and port, change
//! port only) ask the server to send a crafted SYN from those addresses to the connection's
//! public address, and a listener on the connection's local port (SO_REUSEADDR/SO_REUSEPORT,
//! like the hairpin listener) makes this host answer a SYN that gets through with a SYN-ACK.
//! The server's answers say whether it saw that SYN-ACK (NL-SYN-ANSWERED); the core
//! ([`crate::core::fingerprint::tcp_filtering`]) decides what that means.
//!
//! Nothing here opens a flow: the requests go over a connection the plan opened before the
//! samples, and the listener sends nothing unless a SYN reaches it.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpListener;
use mio::Events;

use super::{read_into, TcpShell, LISTEN_BACKLOG, MAX_FRAME};
use crate::core::fingerprint::classify;
use crate::core::fingerprint::observation::{Observation, Socket};
use crate::core::fingerprint::tcp_filtering::{
    reply_wait, syn_wait, SynOutcome, SynTest, TcpFilteringRun, CHANGES,
};
use crate::io::prober::{transaction_ids, wait};
use crate::wire::attr::{self, AttrType, ChangeRequest};
use crate::wire::framing::{next_frame, Frame};
use crate::wire::natlens;
use crate::wire::stun::{Class, Message, MessageType, Method, TransactionId};
use crate::wire::MessageBuilder;

impl TcpShell {
    /// Runs both tests over the filtering control's connection to `server`. `None` when the
    /// plan had no control (no answer, or a server without RFC 5780).
    pub(in crate::io::prober) fn filtering_tests(
        &mut self,
        observations: &[Observation],
        server: SocketAddr,
    ) -> Option<TcpFilteringRun> {
        let control = observations
            .iter()
            .find(|o| o.socket == Socket::Filtering && !o.change.any())?;
        if !control.is_plain_success() {
            let why = "the filtering test's own connection got no answer";
            return Some(TcpFilteringRun::NotRun(why.into()));
        }
        let run = self.run_filtering_tests(control.local, server, observations);
        Some(run.unwrap_or_else(|err| TcpFilteringRun::NotRun(format!("{err}"))))
    }

    fn run_filtering_tests(
        &mut self,
        local: SocketAddr,
        server: SocketAddr,
        observations: &[Observation],
    ) -> io::Result<TcpFilteringRun> {
        let index = self
            .held
            .iter()
            .position(|s| s.local_addr().ok() == Some(local) && s.peer_addr().ok() == Some(server))
            .ok_or_else(|| io::Error::other("the filtering test's own connection closed"))?;
        let listener = self.bind(local, true)?;
        listener.listen(LISTEN_BACKLOG)?;
        self.held_listeners
            .push(TcpListener::from_std(listener.into()));
        let rtt = classify::rtt(observations);
        let tids = transaction_ids(&mut self.rng, CHANGES.len());
        let wait_ms = u32::try_from(syn_wait(rtt).as_millis()).unwrap_or(u32::MAX);
        // One write each (the socket has TCP_NODELAY): a segment per request, as a capture
        // and its dissector expect.
        for (tid, change) in tids.iter().zip(CHANGES) {
            let request = syn_test_request(*tid, change, wait_ms);
            self.held[index].write_all(&request)?;
            crate::io::pcap::tcp_sent(&self.held[index], &request);
        }
        let deadline = Instant::now() + reply_wait(rtt);
        let outcomes = self.await_answers(index, &tids, deadline)?;
        let tests = CHANGES
            .into_iter()
            .zip(outcomes)
            .map(|(change, outcome)| SynTest {
                change,
                outcome: outcome.unwrap_or(SynOutcome::Lost),
            })
            .collect();
        Ok(TcpFilteringRun::Ran(tests))
    }

    /// Reads the answers to `tids` from held connection `index` until both are in, the
    /// connection ends or `deadline` passes.
    fn await_answers(
        &mut self,
        index: usize,
        tids: &[TransactionId],
        deadline: Instant,
    ) -> io::Result<Vec<Option<SynOutcome>>> {
        let mut outcomes: Vec<Option<SynOutcome>> = vec![None; tids.len()];
        let mut buffer = Vec::new();
        let mut events = Events::with_capacity(16);
        loop {
            let ended = read_into(&mut self.held[index], &mut buffer).is_err();
            let mut used = 0;
            while let Frame::Complete(len) = next_frame(&buffer[used..], MAX_FRAME) {
                if let Ok(message) = Message::parse(&buffer[used..used + len]) {
                    if let Some(i) = tids.iter().position(|t| *t == message.transaction_id()) {
                        outcomes[i] = outcome_of(&message);
                    }
                }
                used += len;
            }
            buffer.drain(..used);
            let now = Instant::now();
            if ended || outcomes.iter().all(Option::is_some) || now >= deadline {
                return Ok(outcomes);
            }
            wait(&mut self.poll, &mut events, now, Some(deadline))?;
        }
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
