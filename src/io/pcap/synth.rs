//! The capture natlens writes when it cannot capture (no CAP_NET_RAW): what its sockets sent
//! and received, in frames with made-up headers, each marked by a packet comment.
//!
//! UDP: one frame per datagram. TCP: per stream a three-way handshake when it opens, one
//! segment per write or read (cut at the MSS), and the FINs or the RST natlens knows of, with
//! the sequence numbers of [`Streams`]. Frames are written under the same lock as the sequence
//! state changes, so the file's order is the streams' order (the TCP punch's data exchange
//! writes and reads on two threads).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::file::PcapFile;
use super::frame::{self, TcpHeader};
use super::streams::{Ending, Key, Opener, Segment, Streams, Way};
use super::SYNTHESIZED_COMMENT;

pub struct Synthesizer {
    /// `None` after a write failed (said once).
    file: Option<PcapFile>,
    streams: Streams,
    /// Keys the ISNs, drawn afresh each run, as a kernel's secret is per boot: an ISN says
    /// nothing about another stream's.
    isn_key: RandomState,
}

impl Synthesizer {
    pub fn new(file: PcapFile) -> Synthesizer {
        Synthesizer {
            file: Some(file),
            streams: Streams::default(),
            isn_key: RandomState::new(),
        }
    }

    /// One datagram from `src` to `dst`.
    pub fn udp(&mut self, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        if let Some(frame) = frame::synthesize_udp(src, dst, payload) {
            self.write(&frame);
        }
    }

    /// The handshake of a stream that opened (natlens's socket at `key.0`).
    pub fn tcp_open(&mut self, key: Key, opener: Opener) {
        let (local_isn, remote_isn) = (self.isn(&key, Way::Out), self.isn(&key, Way::In));
        let handshake = self.streams.open(key, opener, local_isn, remote_isn);
        self.write_segments(&key, &handshake, &[]);
    }

    /// `bytes` natlens wrote (`Out`) or read (`In`) on a stream; a read of nothing is the
    /// remote end's FIN.
    pub fn tcp_data(&mut self, key: Key, way: Way, bytes: &[u8]) {
        let segments = match (way, bytes.is_empty()) {
            (Way::In, true) => self.streams.remote_fin(&key),
            _ => {
                let mss = frame::tcp_mss(key.1.ip());
                self.streams.data(&key, way, bytes.len(), mss)
            }
        };
        self.write_segments(&key, &segments, bytes);
    }

    /// natlens ends its side of a stream (see [`Streams::local_end`]).
    pub fn tcp_end(&mut self, key: Key, ending: Ending, remote_done: bool) {
        let segments = self.streams.local_end(&key, ending, remote_done);
        self.write_segments(&key, &segments, &[]);
    }

    fn write_segments(&mut self, key: &Key, segments: &[Segment], bytes: &[u8]) {
        let (local, remote) = *key;
        for segment in segments {
            let (src, dst) = match segment.way {
                Way::Out => (local, remote),
                Way::In => (remote, local),
            };
            let payload = &bytes[segment.payload.clone()];
            let header: TcpHeader = segment.header;
            if let Some(frame) = frame::synthesize_tcp(src, dst, header, payload) {
                self.write(&frame);
            }
        }
    }

    /// A plausible ISN for one side of a stream: a keyed hash of the 4-tuple and the time, as
    /// RFC 6528 has kernels pick them.
    fn isn(&self, key: &Key, way: Way) -> u32 {
        self.isn_key.hash_one((key, way == Way::Out, now())) as u32
    }

    fn write(&mut self, frame: &[u8]) {
        let Some(pcap) = self.file.as_mut() else {
            return;
        };
        let written = pcap.interface(0, "natlens").and_then(|interface| {
            pcap.packet(
                interface,
                now(),
                frame,
                frame.len(),
                Some(SYNTHESIZED_COMMENT),
            )
        });
        if let Err(err) = written {
            eprintln!("natlens: --pcap: writing the capture file: {err}; recording stops");
            self.file = None;
        }
    }
}

fn now() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
