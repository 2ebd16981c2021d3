//! The sequence numbers of the TCP streams a synthesized capture records: per stream (keyed by
//! its 4-tuple as natlens's socket sees it) the next sequence number each way, so every
//! segment continues the one before and acknowledges exactly what the file already holds.
//!
//! Why this is enough for Wireshark's TCP analysis to stay silent: the segments are recorded
//! when natlens writes or reads the bytes, in that order, under one lock with the file. So a
//! received segment acknowledges only what natlens had written (and the file holds) by then, a
//! sent one what natlens had read, and each direction's bytes are contiguous: no "previous
//! segment not captured", no "ACKed unseen segment", no retransmission.
//!
//! Pure arithmetic: no socket, no clock. The ISNs come in from the caller.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;

use pnet_packet::tcp::TcpFlags::{ACK, FIN, PSH, RST, SYN};

use super::frame::TcpHeader;

/// Which way a segment goes, seen from natlens's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// natlens sent it: from the local address to the remote one.
    Out,
    /// natlens received it.
    In,
}

/// Who sent the first SYN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opener {
    /// natlens's socket connected (or its simultaneous open completed).
    Local,
    /// A listener of natlens's accepted the connection.
    Remote,
}

/// How natlens ends its side of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A FIN: `shutdown(Write)`, or a close that the kernel ends gracefully.
    Fin,
    /// A RST: a close with SO_LINGER 0, or with unread bytes in the receive queue.
    Reset,
}

/// One segment to write: its direction, header and the range of the caller's bytes it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub way: Way,
    pub header: TcpHeader,
    pub payload: Range<usize>,
}

/// A stream's local and remote transport addresses.
pub type Key = (SocketAddr, SocketAddr);

/// The sequence state of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stream {
    /// The sequence number of natlens's next byte (snd.nxt).
    local_next: u32,
    /// The sequence number of the remote end's next byte (rcv.nxt).
    remote_next: u32,
    local_fin: bool,
    remote_fin: bool,
}

impl Stream {
    fn segment(&self, way: Way, flags: u8, payload: Range<usize>) -> Segment {
        let (seq, ack) = match way {
            Way::Out => (self.local_next, self.remote_next),
            Way::In => (self.remote_next, self.local_next),
        };
        Segment {
            way,
            header: TcpHeader {
                seq,
                ack: if flags & ACK != 0 { ack } else { 0 },
                flags,
            },
            payload,
        }
    }

    /// Moves `way`'s next sequence number past `len` bytes (a SYN or FIN counts one).
    fn advance(&mut self, way: Way, len: usize) {
        // Sequence space is modulo 2^32: a stream longer than 4 GiB wraps, as on the wire.
        let len = len as u32;
        match way {
            Way::Out => self.local_next = self.local_next.wrapping_add(len),
            Way::In => self.remote_next = self.remote_next.wrapping_add(len),
        }
    }
}

/// Every stream being recorded.
#[derive(Debug, Default)]
pub struct Streams {
    streams: HashMap<Key, Stream>,
}

impl Streams {
    #[cfg(test)]
    pub fn is_open(&self, key: &Key) -> bool {
        self.streams.contains_key(key)
    }

    /// A stream opened: the three-way handshake from `opener`, the ISNs being each side's
    /// (`local_isn` natlens's). A stream of the same 4-tuple still recorded (a redial of a
    /// fixed port) is forgotten: this is a new connection.
    pub fn open(
        &mut self,
        key: Key,
        opener: Opener,
        local_isn: u32,
        remote_isn: u32,
    ) -> [Segment; 3] {
        let mut stream = Stream {
            local_next: local_isn,
            remote_next: remote_isn,
            local_fin: false,
            remote_fin: false,
        };
        let (first, second) = match opener {
            Opener::Local => (Way::Out, Way::In),
            Opener::Remote => (Way::In, Way::Out),
        };
        let syn = stream.segment(first, SYN, 0..0);
        stream.advance(first, 1);
        let syn_ack = stream.segment(second, SYN | ACK, 0..0);
        stream.advance(second, 1);
        let ack = stream.segment(first, ACK, 0..0);
        self.streams.insert(key, stream);
        [syn, syn_ack, ack]
    }

    /// `len` bytes natlens wrote (`Out`) or read (`In`), cut into segments of at most `mss`
    /// bytes. Nothing for a stream not open (its opening was not recorded) or already closed
    /// that way.
    pub fn data(&mut self, key: &Key, way: Way, len: usize, mss: usize) -> Vec<Segment> {
        let Some(stream) = self.streams.get_mut(key) else {
            return Vec::new();
        };
        let closed = match way {
            Way::Out => stream.local_fin,
            Way::In => stream.remote_fin,
        };
        if closed {
            return Vec::new();
        }
        let mut segments = Vec::with_capacity(len.div_ceil(mss.max(1)));
        let mut start = 0;
        while start < len {
            let end = len.min(start + mss.max(1));
            segments.push(stream.segment(way, PSH | ACK, start..end));
            stream.advance(way, end - start);
            start = end;
        }
        segments
    }

    /// The remote end's FIN, when natlens read the end of the stream, and natlens's
    /// acknowledgement of it. The stream is forgotten once both FINs are recorded.
    pub fn remote_fin(&mut self, key: &Key) -> Vec<Segment> {
        let Some(stream) = self.streams.get_mut(key) else {
            return Vec::new();
        };
        if stream.remote_fin {
            return Vec::new();
        }
        let fin = stream.segment(Way::In, FIN | ACK, 0..0);
        stream.advance(Way::In, 1);
        stream.remote_fin = true;
        let ack = stream.segment(Way::Out, ACK, 0..0);
        if stream.local_fin {
            self.streams.remove(key);
        }
        vec![fin, ack]
    }

    /// natlens ends its side: a RST (the stream is forgotten), or its FIN and the remote
    /// end's acknowledgement of it. `remote_done`: the remote end's FIN is waiting to be read
    /// (nothing else is), so it answers with its own FIN, which natlens acknowledges.
    pub fn local_end(&mut self, key: &Key, ending: Ending, remote_done: bool) -> Vec<Segment> {
        let Some(stream) = self.streams.get_mut(key) else {
            return Vec::new();
        };
        if ending == Ending::Reset {
            let rst = stream.segment(Way::Out, RST | ACK, 0..0);
            self.streams.remove(key);
            return vec![rst];
        }
        // The remote FIN natlens has not recorded yet, but that waits in the receive queue.
        let remote_fin_waiting = remote_done && !stream.remote_fin;
        let mut segments = Vec::new();
        if !stream.local_fin {
            segments.push(stream.segment(Way::Out, FIN | ACK, 0..0));
            stream.advance(Way::Out, 1);
            stream.local_fin = true;
            if !remote_fin_waiting {
                segments.push(stream.segment(Way::In, ACK, 0..0));
            }
        }
        if remote_fin_waiting {
            segments.extend(self.remote_fin(key));
        } else if stream.remote_fin {
            self.streams.remove(key);
        }
        segments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        (
            "192.0.2.1:40000".parse().unwrap(),
            "198.51.100.2:3478".parse().unwrap(),
        )
    }

    fn headers(segments: &[Segment]) -> Vec<(Way, u32, u32, u8)> {
        segments
            .iter()
            .map(|s| (s.way, s.header.seq, s.header.ack, s.header.flags))
            .collect()
    }

    #[test]
    fn a_connect_is_syn_syn_ack_ack_each_side_from_its_isn() {
        let mut streams = Streams::default();
        let handshake = streams.open(key(), Opener::Local, 1000, 5000);
        assert_eq!(
            headers(&handshake),
            [
                (Way::Out, 1000, 0, SYN),
                (Way::In, 5000, 1001, SYN | ACK),
                (Way::Out, 1001, 5001, ACK),
            ]
        );
        let accepted = streams.open(key(), Opener::Remote, 1000, 5000);
        assert_eq!(
            headers(&accepted),
            [
                (Way::In, 5000, 0, SYN),
                (Way::Out, 1000, 5001, SYN | ACK),
                (Way::In, 5001, 1001, ACK),
            ]
        );
    }

    #[test]
    fn data_continues_each_direction_and_acknowledges_what_came_before() {
        let mut streams = Streams::default();
        streams.open(key(), Opener::Local, 1000, 5000);
        let request = streams.data(&key(), Way::Out, 20, 1460);
        let answer = streams.data(&key(), Way::In, 60, 1460);
        let next = streams.data(&key(), Way::Out, 8, 1460);
        assert_eq!(
            headers(&[request, answer, next].concat()),
            [
                (Way::Out, 1001, 5001, PSH | ACK),
                (Way::In, 5001, 1021, PSH | ACK),
                (Way::Out, 1021, 5061, PSH | ACK),
            ]
        );
    }

    #[test]
    fn a_long_write_is_cut_at_the_mss() {
        let mut streams = Streams::default();
        streams.open(key(), Opener::Local, 1000, 5000);
        let segments = streams.data(&key(), Way::Out, 3000, 1460);
        let cuts: Vec<(u32, Range<usize>)> = segments
            .iter()
            .map(|s| (s.header.seq, s.payload.clone()))
            .collect();
        assert_eq!(
            cuts,
            [(1001, 0..1460), (2461, 1460..2920), (3921, 2920..3000)]
        );
        assert!(streams.data(&key(), Way::In, 0, 1460).is_empty());
    }

    #[test]
    fn sequence_numbers_wrap_around_2_to_the_32() {
        let mut streams = Streams::default();
        let handshake = streams.open(key(), Opener::Local, u32::MAX, u32::MAX - 1);
        assert_eq!(handshake[2].header.seq, 0);
        assert_eq!(handshake[2].header.ack, u32::MAX);
        streams.data(&key(), Way::In, 10, 1460);
        let out = streams.data(&key(), Way::Out, 5, 1460);
        assert_eq!((out[0].header.seq, out[0].header.ack), (0, 9));
        let back = streams.data(&key(), Way::In, 1, 1460);
        assert_eq!((back[0].header.seq, back[0].header.ack), (9, 5));
    }

    #[test]
    fn a_fin_each_way_closes_and_forgets_the_stream() {
        let mut streams = Streams::default();
        streams.open(key(), Opener::Local, 1000, 5000);
        streams.data(&key(), Way::Out, 10, 1460);
        let ours = streams.local_end(&key(), Ending::Fin, false);
        assert_eq!(
            headers(&ours),
            [
                (Way::Out, 1011, 5001, FIN | ACK),
                (Way::In, 5001, 1012, ACK)
            ]
        );
        // Nothing more goes out after our FIN; the peer may still send.
        assert!(streams.data(&key(), Way::Out, 4, 1460).is_empty());
        let theirs = streams.data(&key(), Way::In, 4, 1460);
        assert_eq!(headers(&theirs), [(Way::In, 5001, 1012, PSH | ACK)]);
        let end = streams.remote_fin(&key());
        assert_eq!(
            headers(&end),
            [
                (Way::In, 5005, 1012, FIN | ACK),
                (Way::Out, 1012, 5006, ACK)
            ]
        );
        assert!(!streams.is_open(&key()));
        assert!(streams.remote_fin(&key()).is_empty());
    }

    #[test]
    fn a_fin_already_waiting_is_answered_in_the_same_close() {
        let mut streams = Streams::default();
        streams.open(key(), Opener::Remote, 1000, 5000);
        let close = streams.local_end(&key(), Ending::Fin, true);
        assert_eq!(
            headers(&close),
            [
                (Way::Out, 1001, 5001, FIN | ACK),
                (Way::In, 5001, 1002, FIN | ACK),
                (Way::Out, 1002, 5002, ACK),
            ]
        );
        assert!(!streams.is_open(&key()));
    }

    #[test]
    fn a_close_after_the_peer_finished_forgets_the_stream() {
        let mut streams = Streams::default();
        streams.open(key(), Opener::Local, 1000, 5000);
        streams.remote_fin(&key());
        let close = streams.local_end(&key(), Ending::Fin, false);
        assert_eq!(
            headers(&close),
            [
                (Way::Out, 1001, 5002, FIN | ACK),
                (Way::In, 5002, 1002, ACK)
            ]
        );
        assert!(!streams.is_open(&key()));
    }

    #[test]
    fn a_close_after_reading_the_end_forgets_the_stream_though_the_fin_still_reads() {
        let mut streams = Streams::default();
        streams.open(key(), Opener::Local, 1000, 5000);
        streams.remote_fin(&key());
        // A read of the end again (peek) must not add a second remote FIN.
        let close = streams.local_end(&key(), Ending::Fin, true);
        assert_eq!(
            headers(&close),
            [
                (Way::Out, 1001, 5002, FIN | ACK),
                (Way::In, 5002, 1002, ACK)
            ]
        );
        assert!(!streams.is_open(&key()));
    }

    #[test]
    fn a_reset_ends_the_stream_at_once() {
        let mut streams = Streams::default();
        streams.open(key(), Opener::Local, 1000, 5000);
        streams.data(&key(), Way::In, 7, 1460);
        let reset = streams.local_end(&key(), Ending::Reset, false);
        assert_eq!(headers(&reset), [(Way::Out, 1001, 5008, RST | ACK)]);
        assert!(!streams.is_open(&key()));
        assert!(streams.local_end(&key(), Ending::Fin, false).is_empty());
        assert!(streams.data(&key(), Way::Out, 3, 1460).is_empty());
    }
}
