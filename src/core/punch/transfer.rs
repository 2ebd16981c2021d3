//! The data exchange after a punch, sans-IO: each end sends one byte stream (a file, stdin, or
//! nothing) to the other over the confirmed path and receives the other's, netcat-style, in
//! DATA frames ([`crate::wire::data`]).
//!
//! Reliable enough for files of a few megabytes and nothing more: chunks of up to
//! [`MAX_PAYLOAD`] bytes numbered from 0, at most [`WINDOW`] of them unacknowledged, each
//! retransmitted when a chunk sent after it is acknowledged [`REORDER_THRESHOLD`] sequence
//! numbers further on (as RACK does, so a single loss costs one round trip) or when its own timer
//! runs out (RFC 6298 estimator, doubling back-off when a retransmission is lost too); the
//! receiver acknowledges cumulatively with a map of the whole window after the gap, once per
//! batch of datagrams, and puts out-of-order chunks back in order. An end with nothing else to
//! send acknowledges every [`KEEPALIVE`], so a paused stream (someone typing) is not taken for a
//! vanished peer. The stream ends with FIN, which
//! takes the next sequence number, so "FIN acknowledged" means "everything arrived". No
//! congestion control beyond the window: the shell's rate cap (`--rate`) paces every packet.
//!
//! Both ends always run it, an empty stream being just a FIN: a frame from the peer is the proof
//! that the peer is connected too, so each end stops answering the handshake as soon as it hears
//! one. An end whose stream is acknowledged and which has the peer's whole stream sends CLOSE
//! and lingers, answering retransmissions, until the peer's CLOSE (or [`CLOSE_LINGER`]); an end
//! that receives CLOSE knows both streams arrived, answers with its own CLOSE and stops. If the
//! peer still goes silent, its idle timer ends the run, which counts as complete when only our
//! FIN went unacknowledged (all our data did arrive).
//!
//! Run loop as for the handshake: after every `handle_input` or `handle_timeout`, drain
//! `poll_transmit` and `poll_delivered`, then sleep until `poll_timeout`.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::wire::data::{Body, Frame, FrameRepr, MAX_PAYLOAD};

/// Sequence numbers in flight at most (from the oldest unacknowledged chunk): 64 × 1200 bytes =
/// 77 KB, about a 6 Mbit/s stream over a 100 ms path, a burst no home router's queue chokes on,
/// and exactly what one acknowledgement's map covers.
pub const WINDOW: usize = 64;

/// A chunk counts as lost, without waiting for its timer, once a chunk sent after it and this
/// many sequence numbers further on is acknowledged: three, as TCP's duplicate-ACK threshold, so
/// that mild reordering does not trigger retransmissions.
pub const REORDER_THRESHOLD: u32 = 3;

/// How far past the next expected chunk an out-of-order chunk is still kept: four windows,
/// so a sender that retransmits after a long gap is not refused, and memory stays bounded.
pub const RECEIVE_AHEAD: u32 = 4 * WINDOW as u32;

/// Retransmission timeout before any round trip is measured: the handshake's round interval,
/// a little over a typical Internet round trip.
pub const INITIAL_RTO: Duration = crate::core::punch::plan::ROUND_INTERVAL;

/// Smallest retransmission timeout: well above scheduling jitter on a busy host, so a LAN or
/// loopback path does not retransmit every chunk.
pub const MIN_RTO: Duration = Duration::from_millis(50);

/// Largest retransmission timeout after back-off: a few losses in a row still retry within a
/// couple of seconds.
pub const MAX_RTO: Duration = Duration::from_secs(2);

/// How long the peer may stay silent while the exchange is unfinished: five maximal
/// retransmission timeouts, so a loss burst alone does not end it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often an end that has sent nothing else sends an acknowledgement while the exchange runs:
/// a stream may pause (someone typing into stdin), and the peer must still hear from us well
/// within [`IDLE_TIMEOUT`]; it also keeps both NATs' bindings for the path fresh.
pub const KEEPALIVE: Duration = Duration::from_secs(2);

/// How long an end that completed first keeps answering while it waits for the peer's CLOSE:
/// longer than the largest retransmission timeout, so that the peer's FIN or chunks, sent again
/// because our last acknowledgement was lost, are answered at least once more. Only a lost CLOSE
/// makes an end wait this long.
pub const CLOSE_LINGER: Duration = Duration::from_secs(3);

/// A chunk sent and not yet acknowledged.
#[derive(Debug, Clone)]
struct Sent {
    frame: Body,
    payload_len: usize,
    sent_at: Instant,
    retransmitted: bool,
    /// Waiting in `resend`.
    queued: bool,
}

/// Where the exchange stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Running,
    /// Both streams complete; answering duplicates until `until`.
    Closing {
        until: Instant,
    },
    Done,
    Failed {
        reason: String,
    },
}

/// Counters for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferStats {
    /// Payload bytes of ours the peer acknowledged.
    pub bytes_sent: u64,
    /// Payload bytes of the peer's delivered in order.
    pub bytes_received: u64,
    pub frames_sent: u64,
    pub retransmissions: u64,
    /// Frames from the peer's address that were not for us or broken.
    pub dropped: u64,
}

/// One end's exchange.
#[derive(Debug)]
pub struct Transfer {
    own_nonce: u64,
    peer_nonce: u64,
    // Sending.
    pending: VecDeque<Vec<u8>>,
    input_done: bool,
    next_seq: u32,
    fin_seq: Option<u32>,
    in_flight: BTreeMap<u32, Sent>,
    resend: VecDeque<u32>,
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    // Receiving.
    expected: u32,
    out_of_order: BTreeMap<u32, Vec<u8>>,
    peer_fin: Option<u32>,
    ack_due: bool,
    /// Our CLOSE is owed once.
    close_due: bool,
    delivered: VecDeque<Vec<u8>>,
    heard: bool,
    last_heard: Instant,
    last_sent: Instant,
    state: State,
    stats: TransferStats,
}

impl Transfer {
    /// Starts the exchange at `now` between our nonce and the peer's, as the handshake
    /// confirmed them.
    pub fn new(own_nonce: u64, peer_nonce: u64, now: Instant) -> Self {
        Transfer {
            own_nonce,
            peer_nonce,
            pending: VecDeque::new(),
            input_done: false,
            next_seq: 0,
            fin_seq: None,
            in_flight: BTreeMap::new(),
            resend: VecDeque::new(),
            srtt: None,
            rttvar: Duration::ZERO,
            rto: INITIAL_RTO,
            expected: 0,
            out_of_order: BTreeMap::new(),
            peer_fin: None,
            ack_due: false,
            close_due: false,
            delivered: VecDeque::new(),
            heard: false,
            last_heard: now,
            last_sent: now,
            state: State::Running,
            stats: TransferStats::default(),
        }
    }

    /// True while more input is welcome: the stream is open and at most a window is queued.
    pub fn wants_input(&self) -> bool {
        !self.input_done && self.pending.len() < WINDOW
    }

    /// Queues bytes of our stream, cut into chunks.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.input_done {
            return;
        }
        self.pending
            .extend(bytes.chunks(MAX_PAYLOAD).map(<[u8]>::to_vec));
    }

    /// Our stream has ended: a FIN follows the last chunk.
    pub fn finish(&mut self) {
        self.input_done = true;
    }

    /// A datagram from the peer's address. Returns false when it was no frame for us.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> bool {
        let frame = match Frame::new_checked(bytes).and_then(|frame| FrameRepr::parse(&frame)) {
            Ok(repr) if repr.nonce == self.own_nonce => repr.body,
            _ => {
                self.stats.dropped += 1;
                return false;
            }
        };
        if matches!(self.state, State::Done | State::Failed { .. }) {
            return true;
        }
        self.heard = true;
        self.last_heard = now;
        match frame {
            Body::Data { seq, payload } => self.receive_data(seq, payload),
            Body::Fin { seq } => self.receive_fin(seq),
            Body::Ack { next, received } => self.receive_ack(now, next, received),
            Body::Close => self.receive_close(),
        }
        self.check_complete(now);
        true
    }

    /// Marks chunks whose timer ran out for retransmission, ends the linger, or gives up on a
    /// silent peer.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Closing { until } if now >= until => self.state = State::Done,
            State::Running => {
                if now >= self.last_heard + IDLE_TIMEOUT {
                    self.give_up();
                    return;
                }
                if now >= self.last_sent + KEEPALIVE {
                    self.ack_due = true;
                }
                self.expire(now);
            }
            _ => {}
        }
    }

    /// The next frame to send: an acknowledgement first, then retransmissions, then new chunks
    /// while the window allows, then FIN.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        let bytes = self.next_transmit(now)?;
        self.last_sent = now;
        Some(bytes)
    }

    fn next_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.close_due {
            self.close_due = false;
            return Some(self.emit(Body::Close));
        }
        if matches!(self.state, State::Done | State::Failed { .. }) {
            return None;
        }
        if self.ack_due {
            self.ack_due = false;
            let ack = self.ack();
            return Some(self.emit(ack));
        }
        if self.state != State::Running {
            return None;
        }
        while let Some(seq) = self.resend.pop_front() {
            let Some(sent) = self.in_flight.get_mut(&seq) else {
                continue;
            };
            sent.sent_at = now;
            sent.queued = false;
            sent.retransmitted = true;
            let frame = sent.frame.clone();
            self.stats.retransmissions += 1;
            return Some(self.emit(frame));
        }
        // The window spans sequence numbers, not chunks: everything in flight stays inside the
        // receiver's acknowledgement map, so no chunk that arrived is ever sent again.
        let oldest = self
            .in_flight
            .keys()
            .next()
            .copied()
            .unwrap_or(self.next_seq);
        if self.next_seq - oldest >= WINDOW as u32 {
            return None;
        }
        let (frame, payload_len) = if let Some(payload) = self.pending.pop_front() {
            let len = payload.len();
            let seq = self.next_seq;
            (Body::Data { seq, payload }, len)
        } else if self.input_done && self.fin_seq.is_none() {
            self.fin_seq = Some(self.next_seq);
            (Body::Fin { seq: self.next_seq }, 0)
        } else {
            return None;
        };
        self.in_flight.insert(
            self.next_seq,
            Sent {
                frame: frame.clone(),
                payload_len,
                sent_at: now,
                retransmitted: false,
                queued: false,
            },
        );
        self.next_seq += 1;
        Some(self.emit(frame))
    }

    /// The next piece of the peer's stream, in order.
    pub fn poll_delivered(&mut self) -> Option<Vec<u8>> {
        self.delivered.pop_front()
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Running => {
                let timer = self
                    .in_flight
                    .values()
                    .filter(|s| !s.queued)
                    .map(|s| s.sent_at + self.rto)
                    .min();
                let idle = (self.last_heard + IDLE_TIMEOUT).min(self.last_sent + KEEPALIVE);
                Some(timer.map_or(idle, |t| t.min(idle)))
            }
            State::Closing { until } => Some(until),
            _ => None,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Nothing more to send or answer.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done | State::Failed { .. })
    }

    /// Both streams arrived whole (lingering or done).
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Closing { .. } | State::Done)
    }

    /// Our CLOSE still has to go out (the exchange may already be over).
    pub fn owes_close(&self) -> bool {
        self.close_due
    }

    /// A valid frame came from the peer: it is connected too.
    pub fn heard_from_peer(&self) -> bool {
        self.heard
    }

    pub fn stats(&self) -> TransferStats {
        self.stats
    }

    /// The bytes of a frame to the peer (addressed with the peer's nonce).
    fn emit(&mut self, body: Body) -> Vec<u8> {
        self.stats.frames_sent += 1;
        let repr = FrameRepr {
            nonce: self.peer_nonce,
            body,
        };
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut Frame::new_unchecked(&mut bytes[..]));
        bytes
    }

    fn ack(&self) -> Body {
        let received = (0..64u32)
            .filter(|i| {
                self.out_of_order
                    .contains_key(&self.expected.wrapping_add(1 + i))
            })
            .fold(0u64, |map, i| map | (1 << i));
        Body::Ack {
            next: self.expected,
            received,
        }
    }

    fn receive_data(&mut self, seq: u32, payload: Vec<u8>) {
        self.ack_due = true;
        let beyond_fin = self.peer_fin.is_some_and(|fin| seq >= fin);
        if seq < self.expected || seq - self.expected >= RECEIVE_AHEAD || beyond_fin {
            return;
        }
        self.out_of_order.entry(seq).or_insert(payload);
        self.deliver();
    }

    fn receive_fin(&mut self, seq: u32) {
        self.ack_due = true;
        let last_chunk = self.out_of_order.keys().next_back().copied();
        let consistent = seq >= self.expected && last_chunk.is_none_or(|last| last < seq);
        if self.peer_fin.is_none() && consistent {
            self.peer_fin = Some(seq);
            self.deliver();
        }
    }

    /// Hands on every chunk now in order, and consumes the FIN when its turn comes.
    fn deliver(&mut self) {
        while let Some(payload) = self.out_of_order.remove(&self.expected) {
            self.stats.bytes_received += payload.len() as u64;
            self.delivered.push_back(payload);
            self.expected += 1;
        }
        if self.peer_fin == Some(self.expected) {
            self.expected += 1;
        }
    }

    fn receive_ack(&mut self, now: Instant, next: u32, received: u64) {
        if next > self.next_seq {
            self.stats.dropped += 1;
            return;
        }
        let mut acked: Vec<u32> = self.in_flight.range(..next).map(|(&s, _)| s).collect();
        acked.extend(
            (0..64u32)
                .filter(|i| received & (1 << i) != 0)
                .map(|i| next.wrapping_add(1 + i))
                .filter(|s| self.in_flight.contains_key(s)),
        );
        let mut sample = None;
        // The latest-sent chunk acknowledged: (when, sequence number).
        let mut newest: Option<(Instant, u32)> = None;
        for seq in acked {
            let Some(sent) = self.in_flight.remove(&seq) else {
                continue;
            };
            self.stats.bytes_sent += sent.payload_len as u64;
            // Karn: a retransmitted chunk's acknowledgement says nothing about the round trip.
            if !sent.retransmitted {
                sample = Some(now.saturating_duration_since(sent.sent_at));
            }
            if newest.is_none_or(|(at, _)| sent.sent_at > at) {
                newest = Some((sent.sent_at, seq));
            }
        }
        self.resend.retain(|s| self.in_flight.contains_key(s));
        if let Some(rtt) = sample {
            self.measure(rtt);
        }
        if let Some((at, seq)) = newest {
            self.detect_losses(at, seq);
        }
    }

    /// Queues the chunks sent before `newest_at` and at least [`REORDER_THRESHOLD`] before
    /// `newest_seq`, which was acknowledged: they were lost.
    fn detect_losses(&mut self, newest_at: Instant, newest_seq: u32) {
        let lost: Vec<u32> = self
            .in_flight
            .range(..newest_seq.saturating_sub(REORDER_THRESHOLD - 1))
            .filter(|(_, s)| !s.queued && s.sent_at < newest_at)
            .map(|(&seq, _)| seq)
            .collect();
        for seq in lost {
            if let Some(sent) = self.in_flight.get_mut(&seq) {
                sent.queued = true;
                self.resend.push_back(seq);
            }
        }
    }

    /// RFC 6298 §2: SRTT, RTTVAR and RTO from one sample (this also ends any back-off).
    fn measure(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
        let srtt = self.srtt.expect("set above");
        self.rto = (srtt + 4 * self.rttvar).clamp(MIN_RTO, MAX_RTO);
    }

    /// Queues every chunk whose timer ran out. The timeout backs off (doubles) only when a
    /// retransmission was lost as well: a first loss is already retransmitted, and backing off
    /// for each of several chunks of one window would stall the stream for seconds.
    fn expire(&mut self, now: Instant) {
        let due: Vec<u32> = self
            .in_flight
            .iter()
            .filter(|(_, s)| !s.queued && s.sent_at + self.rto <= now)
            .map(|(&seq, _)| seq)
            .collect();
        let mut again = false;
        for seq in due {
            if let Some(sent) = self.in_flight.get_mut(&seq) {
                again |= sent.retransmitted;
                sent.queued = true;
                self.resend.push_back(seq);
            }
        }
        if again {
            self.rto = (self.rto * 2).min(MAX_RTO);
        }
    }

    fn send_complete(&self) -> bool {
        self.fin_seq.is_some() && self.in_flight.is_empty() && self.pending.is_empty()
    }

    fn receive_complete(&self) -> bool {
        self.peer_fin.is_some_and(|fin| self.expected > fin)
    }

    fn check_complete(&mut self, now: Instant) {
        if self.state == State::Running && self.send_complete() && self.receive_complete() {
            self.close_due = true;
            self.state = State::Closing {
                until: now + CLOSE_LINGER,
            };
        }
    }

    /// The peer has our whole stream and its own is acknowledged: if that fits what we know
    /// (our stream ended, we hold the peer's whole stream), everything of ours in flight
    /// arrived; we answer with CLOSE, unless we sent ours already, and stop.
    fn receive_close(&mut self) {
        let consistent = self.fin_seq.is_some() && self.pending.is_empty();
        if !consistent || !self.receive_complete() {
            self.stats.dropped += 1;
            return;
        }
        let in_flight = std::mem::take(&mut self.in_flight);
        self.stats.bytes_sent += in_flight
            .values()
            .map(|s| s.payload_len as u64)
            .sum::<u64>();
        self.resend.clear();
        if self.state == State::Running {
            self.close_due = true;
        }
        self.state = State::Done;
    }

    /// The peer went silent. If everything of ours but the FIN was acknowledged and its whole
    /// stream arrived, it has most likely finished and left after its linger: complete.
    fn give_up(&mut self) {
        let only_fin_unacked = self.fin_seq.is_some()
            && self.pending.is_empty()
            && self.in_flight.keys().all(|&s| Some(s) == self.fin_seq);
        self.state = if only_fin_unacked && self.receive_complete() {
            State::Done
        } else {
            State::Failed {
                reason: format!(
                    "the peer went silent for {} s during the data exchange",
                    IDLE_TIMEOUT.as_secs()
                ),
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    const A: u64 = 0xA;
    const B: u64 = 0xB;

    /// The bytes of a frame for the end whose nonce is `nonce`.
    fn frame_bytes(nonce: u64, body: &Body) -> Vec<u8> {
        let repr = FrameRepr {
            nonce,
            body: body.clone(),
        };
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut Frame::new_unchecked(&mut bytes[..]));
        bytes
    }

    /// Two ends on a virtual clock, with a one-way delay and loss each way.
    struct Pair {
        ends: [Transfer; 2],
        inputs: [Vec<u8>; 2],
        fed: [usize; 2],
        outputs: [Vec<u8>; 2],
        wire: Vec<(Instant, usize, Vec<u8>)>,
        rng: SmallRng,
        loss: f64,
        one_way: Duration,
        now: Instant,
    }

    impl Pair {
        fn new(a: Vec<u8>, b: Vec<u8>, loss: f64, seed: u64) -> Pair {
            let now = Instant::now();
            Pair {
                ends: [Transfer::new(A, B, now), Transfer::new(B, A, now)],
                inputs: [a, b],
                fed: [0, 0],
                outputs: [Vec::new(), Vec::new()],
                wire: Vec::new(),
                rng: SmallRng::seed_from_u64(seed),
                loss,
                one_way: Duration::from_millis(20),
                now,
            }
        }

        fn pump(&mut self) {
            for side in 0..2 {
                while self.ends[side].wants_input() && self.fed[side] < self.inputs[side].len() {
                    let end = (self.fed[side] + 5000).min(self.inputs[side].len());
                    let chunk = self.inputs[side][self.fed[side]..end].to_vec();
                    self.ends[side].push(&chunk);
                    self.fed[side] = end;
                }
                if self.fed[side] == self.inputs[side].len() {
                    self.ends[side].finish();
                }
                while let Some(bytes) = self.ends[side].poll_transmit(self.now) {
                    if !self.rng.gen_bool(self.loss) {
                        self.wire.push((self.now + self.one_way, 1 - side, bytes));
                    }
                }
                while let Some(piece) = self.ends[side].poll_delivered() {
                    self.outputs[side].extend_from_slice(&piece);
                }
            }
        }

        /// Runs until both ends are finished or `limit` has passed; returns the time taken.
        fn run(&mut self, limit: Duration) -> Duration {
            let start = self.now;
            loop {
                self.pump();
                if self.ends.iter().all(Transfer::is_finished) || self.now - start > limit {
                    return self.now - start;
                }
                let packet = self.wire.iter().map(|(at, _, _)| *at).min();
                let timer = self.ends.iter().filter_map(Transfer::poll_timeout).min();
                let next = [packet, timer].into_iter().flatten().min().expect("a wake");
                self.now = self.now.max(next);
                let (due, later): (Vec<_>, Vec<_>) =
                    self.wire.drain(..).partition(|(at, _, _)| *at <= self.now);
                self.wire = later;
                for (_, side, bytes) in due {
                    self.ends[side].handle_input(self.now, &bytes);
                }
                for end in &mut self.ends {
                    end.handle_timeout(self.now);
                }
            }
        }
    }

    fn bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = SmallRng::seed_from_u64(seed);
        (0..len).map(|_| rng.gen()).collect()
    }

    #[test]
    fn both_streams_arrive_whole_and_in_order() {
        let (a, b) = (bytes(300_000, 1), bytes(5_000, 2));
        let mut pair = Pair::new(a.clone(), b.clone(), 0.0, 1);
        let took = pair.run(Duration::from_secs(30));
        assert_eq!(pair.outputs[1], a);
        assert_eq!(pair.outputs[0], b);
        assert!(pair.ends.iter().all(|e| *e.state() == State::Done));
        assert_eq!(pair.ends[0].stats().bytes_sent, 300_000);
        assert_eq!(pair.ends[0].stats().retransmissions, 0);
        // 250 chunks, 64 a round trip of 40 ms: about 4 round trips, then the linger.
        assert!(took < Duration::from_secs(1), "{took:?}");
    }

    #[test]
    fn megabytes_with_loss_on_a_short_path_take_about_a_second() {
        // A lab-like path (0.1 ms each way) with 5% loss: single losses are found by later
        // acknowledgements, not by timers, and nothing that arrived is sent again.
        let (a, b) = (bytes(3_000_000, 1), bytes(1_000_000, 2));
        let mut pair = Pair::new(a.clone(), b.clone(), 0.05, 1);
        pair.one_way = Duration::from_micros(100);
        let took = pair.run(Duration::from_secs(60));
        assert_eq!(pair.outputs[1], a);
        assert_eq!(pair.outputs[0], b);
        assert!(took < Duration::from_secs(2), "{took:?}");
        let retransmitted = pair.ends[0].stats().retransmissions;
        // 2500 chunks at 5% loss: about 125 lost, and some of their retransmissions.
        assert!(retransmitted < 400, "{retransmitted}");
    }

    #[test]
    fn timeouts_fit_together() {
        assert!(MIN_RTO < INITIAL_RTO && INITIAL_RTO < MAX_RTO);
        // A retransmitted FIN or chunk arrives while the end that completed first still lingers.
        assert!(CLOSE_LINGER > MAX_RTO);
        // Several lost retransmissions in a row at the largest timeout do not end the exchange.
        assert!(IDLE_TIMEOUT >= MAX_RTO * 5);
        // The receiver keeps whatever the sender may have in flight.
        assert!(RECEIVE_AHEAD >= WINDOW as u32);
        // One acknowledgement's map covers the window.
        assert_eq!(WINDOW, 64);
        // Two keepalives may be lost before the peer's idle timer fires.
        assert!(KEEPALIVE * 3 < IDLE_TIMEOUT);
    }

    #[test]
    fn empty_streams_end_with_two_fins() {
        let mut pair = Pair::new(Vec::new(), Vec::new(), 0.0, 1);
        pair.run(Duration::from_secs(5));
        assert!(pair.ends.iter().all(|e| *e.state() == State::Done));
        assert!(pair.ends.iter().all(Transfer::heard_from_peer));
        assert!(pair.outputs.iter().all(Vec::is_empty));
    }

    #[test]
    fn twenty_percent_loss_each_way_still_delivers_everything() {
        for seed in 0..20 {
            let (a, b) = (bytes(100_000, seed), bytes(30_000, seed + 100));
            let mut pair = Pair::new(a.clone(), b.clone(), 0.2, seed);
            pair.run(Duration::from_secs(60));
            assert_eq!(pair.outputs[1], a, "seed {seed}");
            assert_eq!(pair.outputs[0], b, "seed {seed}");
            for end in &pair.ends {
                assert!(end.is_complete(), "seed {seed}: {:?}", end.state());
                assert!(end.stats().retransmissions > 0, "seed {seed}");
            }
        }
    }

    #[test]
    fn a_silent_peer_fails_in_bounded_time() {
        let now = Instant::now();
        let mut end = Transfer::new(A, B, now);
        end.push(b"hello");
        end.finish();
        let mut t = now;
        while !end.is_finished() {
            while end.poll_transmit(t).is_some() {}
            t = end.poll_timeout().expect("a timer");
            end.handle_timeout(t);
        }
        assert!(
            matches!(end.state(), State::Failed { .. }),
            "{:?}",
            end.state()
        );
        assert_eq!(t - now, IDLE_TIMEOUT);
    }

    #[test]
    fn a_paused_stream_keeps_the_exchange_alive() {
        // b's stream stays open and silent for 30 s, then ends: a's idle timer never fires,
        // because b acknowledges every KEEPALIVE even with nothing to send.
        let now = Instant::now();
        let (mut a, mut b) = (Transfer::new(A, B, now), Transfer::new(B, A, now));
        a.push(b"ping");
        a.finish();
        let mut t = now;
        while t < now + Duration::from_secs(30) {
            while let Some(bytes) = a.poll_transmit(t) {
                b.handle_input(t, &bytes);
            }
            while let Some(bytes) = b.poll_transmit(t) {
                a.handle_input(t, &bytes);
            }
            t = [a.poll_timeout(), b.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .unwrap();
            a.handle_timeout(t);
            b.handle_timeout(t);
        }
        assert_eq!(*a.state(), State::Running);
        assert_eq!(b.poll_delivered().as_deref(), Some(&b"ping"[..]));
        b.finish();
        for _ in 0..3 {
            while let Some(bytes) = b.poll_transmit(t) {
                a.handle_input(t, &bytes);
            }
            while let Some(bytes) = a.poll_transmit(t) {
                b.handle_input(t, &bytes);
            }
        }
        assert!(
            a.is_complete() && b.is_complete(),
            "{:?} {:?}",
            a.state(),
            b.state()
        );
    }

    #[test]
    fn frames_for_another_nonce_or_broken_are_dropped() {
        let now = Instant::now();
        let mut end = Transfer::new(A, B, now);
        let stray = Body::Data {
            seq: 0,
            payload: b"x".to_vec(),
        };
        assert!(!end.handle_input(now, &frame_bytes(B, &stray)));
        assert!(!end.handle_input(now, b"\x00\x01 not data"));
        assert!(end.poll_transmit(now).is_none());
        assert!(!end.heard_from_peer());
        assert_eq!(end.stats().dropped, 2);
        assert!(end.handle_input(now, &frame_bytes(A, &stray)));
        assert_eq!(end.poll_delivered().as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn out_of_order_chunks_are_acknowledged_in_the_map() {
        let now = Instant::now();
        let mut end = Transfer::new(A, B, now);
        for seq in [2, 4] {
            let frame = Body::Data {
                seq,
                payload: vec![seq as u8],
            };
            end.handle_input(now, &frame_bytes(A, &frame));
        }
        let ack = end.poll_transmit(now).unwrap();
        assert!(
            end.poll_transmit(now).is_none(),
            "one acknowledgement per batch"
        );
        // Next expected 0; 2 and 4 are bits 1 and 3.
        assert_eq!(
            FrameRepr::parse(&Frame::new_checked(&ack[..]).unwrap()),
            Ok(FrameRepr {
                nonce: B,
                body: Body::Ack {
                    next: 0,
                    received: 0b1010
                }
            })
        );
        assert!(end.poll_delivered().is_none());
    }
}
