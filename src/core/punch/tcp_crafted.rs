//! Crafted SYNs: their schedule (the plan's rate, each not before the flow it is meant to
//! meet, resent in rounds with backoff when delivering) and which answer to them is adopted.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::wire::tcp_syn::SegmentKind;

use super::tcp::{SeenSegment, SynRecord, SynTransmit, TcpSpec};

/// TTL of full-TTL SYNs (a birthday's spray, a delivering end's): they must cross the far NAT.
pub const SPRAY_TTL: u8 = 64;

/// Pause before the first resend round of a delivering spray; each later one doubles it. A
/// lost SYN (or SYN-ACK) on the one 4-tuple where the two fan-outs meet otherwise ends the punch
/// with "no TCP connection" (10% loss per WAN link loses 19% of them). A resent SYN is the
/// same segment (ISN, TSval): a retransmission on a 4-tuple both NATs already hold, so it
/// takes no new port on either.
pub const RESEND_FIRST: Duration = Duration::from_millis(500);

/// When resend round `round` (1 = the first resend) may start, counted from the end of the
/// round before: [`RESEND_FIRST`], doubled each round (exponential backoff, capped at 8 s).
pub fn resend_pause(round: u32) -> Duration {
    RESEND_FIRST.saturating_mul(1 << round.saturating_sub(1).min(4))
}

/// When the first round goes and whether more follow.
#[derive(Debug, Clone)]
pub(super) struct Round {
    start: Instant,
    /// SYN `i` of the first round not before `start + not_before[i]` either.
    not_before: Vec<Duration>,
    resend: bool,
}

impl Round {
    /// One round from `start`.
    pub(super) fn once(start: Instant, not_before: Vec<Duration>) -> Round {
        Round {
            start,
            not_before,
            resend: false,
        }
    }

    /// A first round from `start`, then the same SYNs again with backoff until the end.
    pub(super) fn resent(start: Instant, not_before: Vec<Duration>) -> Round {
        Round {
            resend: true,
            ..Round::once(start, not_before)
        }
    }
}

/// The crafted SYNs of a punch.
#[derive(Debug)]
pub(super) struct CraftedSyns {
    peer_ip: IpAddr,
    ttl: u8,
    interval: Duration,
    /// Every SYN, in the order sent; its ISN and TSval drawn up front.
    syns: Vec<SynRecord>,
    round: Round,
    /// Which round is going (0: the first) and when it started.
    number: u32,
    round_start: Instant,
    /// Next SYN of the round.
    next: usize,
    /// When the previous SYN went (a round's SYNs leave in order).
    last_sent: Instant,
    sent: u32,
    /// SYNs of the first round sent: their 4-tuples may be adopted.
    filed: usize,
    /// The kernel's own 4-tuple: its socket answers for itself.
    excluded: Option<SocketAddr>,
    /// A due SYN not yet taken by `poll_transmit`.
    pending: std::collections::VecDeque<SynTransmit>,
}

impl CraftedSyns {
    /// SYNs with `ttl` to `ports` of `peer_ip`, at the spec's rate, per `round`.
    pub(super) fn new(
        spec: &TcpSpec,
        peer_ip: IpAddr,
        ports: &[u16],
        ttl: u8,
        round: Round,
        rng: &mut dyn RngCore,
    ) -> CraftedSyns {
        let syns = ports
            .iter()
            .map(|&port| SynRecord {
                port,
                isn: rng.next_u32(),
                tsval: rng.next_u32() & !1,
            })
            .collect();
        CraftedSyns {
            peer_ip,
            ttl,
            interval: spec.interval(),
            syns,
            number: 0,
            round_start: round.start,
            last_sent: round.start,
            round,
            next: 0,
            sent: 0,
            filed: 0,
            excluded: None,
            pending: Default::default(),
        }
    }

    /// SYNs sent by other means toward `kernel`'s IP: only their answers are adopted (never
    /// on `kernel`'s own 4-tuple).
    pub(super) fn already_sent(
        kernel: SocketAddr,
        syns: &[SynRecord],
        now: Instant,
    ) -> CraftedSyns {
        let mut crafted = CraftedSyns {
            peer_ip: kernel.ip(),
            ttl: 0,
            interval: Duration::ZERO,
            syns: syns.to_vec(),
            round: Round::once(now, Vec::new()),
            number: 0,
            round_start: now,
            next: syns.len(),
            last_sent: now,
            sent: 0,
            filed: syns.len(),
            excluded: Some(kernel),
            pending: Default::default(),
        };
        crafted.round.resend = false;
        crafted
    }

    /// Never adopts on `kernel`'s 4-tuple.
    pub(super) fn excluding(mut self, kernel: SocketAddr) -> CraftedSyns {
        self.excluded = Some(kernel);
        self
    }

    pub(super) fn sent(&self) -> u32 {
        self.sent
    }

    pub(super) fn first_round_out(&self) -> bool {
        self.number > 0 || self.next >= self.syns.len()
    }

    fn finished(&self) -> bool {
        self.first_round_out() && !self.round.resend
    }

    /// When the next SYN is due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        if self.finished() || self.syns.is_empty() {
            return None;
        }
        let due = self.round_start + self.interval.saturating_mul(self.next as u32);
        let due = match self.round.not_before.get(self.next) {
            Some(&at) if self.number == 0 => due.max(self.round.start + at),
            _ => due,
        };
        Some(due.max(self.last_sent))
    }

    /// Queues every SYN due by `now`, in order.
    pub(super) fn advance(&mut self, now: Instant) {
        while let Some(due) = self.next_due() {
            if due > now {
                return;
            }
            let syn = self.syns[self.next];
            self.pending.push_back(SynTransmit {
                to: SocketAddr::new(self.peer_ip, syn.port),
                ttl: self.ttl,
                syn,
            });
            self.sent += 1;
            self.last_sent = now;
            self.next += 1;
            self.filed = self.filed.max(self.next);
            if self.next >= self.syns.len() && self.round.resend {
                self.number += 1;
                self.next = 0;
                self.round_start = now + resend_pause(self.number);
                self.last_sent = self.round_start;
            }
        }
    }

    pub(super) fn poll_transmit(&mut self) -> Option<SynTransmit> {
        self.pending.pop_front()
    }

    /// The crafted SYN whose 4-tuple `segment` asks to adopt: the peer's SYN on it, or the
    /// peer's SYN-ACK to it (acking our ISN). Only SYNs already sent count.
    pub(super) fn adoptable(&self, segment: &SeenSegment) -> Option<SynRecord> {
        if self.excluded == Some(segment.src) {
            return None;
        }
        let syn = self.syns[..self.filed]
            .iter()
            .rev()
            .find(|syn| syn.port == segment.src.port())?;
        match segment.kind {
            SegmentKind::Syn => Some(*syn),
            SegmentKind::SynAck if segment.ack == syn.isn.wrapping_add(1) => Some(*syn),
            _ => None,
        }
    }
}
