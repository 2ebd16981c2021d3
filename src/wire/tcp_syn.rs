//! Crafted TCP SYNs (and recognising the SYN-ACKs and RSTs they draw), IPv4 and IPv6, with
//! pnet_packet doing the header fields and the checksums.
//!
//! A crafted SYN opens a mapping in our own NAT toward one far port, so that the peer's real
//! SYN from that port gets in. It is meant to look like the SYN Linux itself sends (same options
//! in the same order) so a NAT or middlebox that treats odd SYNs differently treats ours as it
//! treats the kernel's.
//!
//! Two levels, as in smoltcp: [`Segment`] is a checked view over received bytes (after
//! [`Segment::new_checked`] nothing panics, whatever the bytes), and [`SegmentRepr`] is the owned
//! form with [`SegmentRepr::parse`] and [`SegmentRepr::emit`]. Checksums are checked on request
//! ([`Segment::checksum_ok`]), not in `new_checked`: a packet captured on the sending host (or
//! over veth and loopback) carries only the pseudo-header sum when the kernel offloads the rest.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv4::{self, Ipv4Flags, Ipv4Packet, MutableIpv4Packet};
use pnet_packet::ipv6::MutableIpv6Packet;
use pnet_packet::tcp::{self, MutableTcpPacket, TcpOption, TcpPacket};

pub use pnet_packet::tcp::TcpFlags;

/// Field offsets and sizes (RFC 791, RFC 8200, RFC 9293).
mod field {
    use std::ops::Range;

    pub const IPV4_HEADER_LEN: usize = 20;
    pub const IPV6_HEADER_LEN: usize = 40;
    pub const TCP_HEADER_LEN: usize = 20;
    /// The data offset is 4 bits of 32-bit words: at most 60 bytes of header.
    pub const TCP_MAX_HEADER_LEN: usize = 60;

    pub const IPV4_TOTAL_LEN: Range<usize> = 2..4;
    pub const IPV4_FRAGMENT: Range<usize> = 6..8;
    pub const IPV4_TTL: usize = 8;
    pub const IPV4_PROTOCOL: usize = 9;
    pub const IPV4_SRC: Range<usize> = 12..16;
    pub const IPV4_DST: Range<usize> = 16..20;

    pub const IPV6_PAYLOAD_LEN: Range<usize> = 4..6;
    pub const IPV6_NEXT_HEADER: usize = 6;
    pub const IPV6_HOP_LIMIT: usize = 7;
    pub const IPV6_SRC: Range<usize> = 8..24;
    pub const IPV6_DST: Range<usize> = 24..40;

    pub const TCP_SRC_PORT: Range<usize> = 0..2;
    pub const TCP_DST_PORT: Range<usize> = 2..4;
    pub const TCP_SEQ: Range<usize> = 4..8;
    pub const TCP_ACK: Range<usize> = 8..12;
    pub const TCP_DATA_OFFSET: usize = 12;
    pub const TCP_FLAGS: usize = 13;
    pub const TCP_WINDOW: Range<usize> = 14..16;
    pub const TCP_CHECKSUM: Range<usize> = 16..18;

    /// The "more fragments" flag and the 13-bit offset.
    pub const IPV4_MF_AND_OFFSET: u16 = 0x3fff;
}

/// IP protocol / next header number of TCP.
const PROTO_TCP: u8 = 6;

/// The window Linux advertises in a SYN on an Ethernet path (tcp_rmem default, before
/// scaling): 64240 = 44 × 1460.
pub const LINUX_SYN_WINDOW: u16 = 64_240;
/// The window shift Linux offers with default buffers.
pub const LINUX_WINDOW_SCALE: u8 = 7;

/// Why bytes are not a TCP segment we can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the headers say (or than any header at all).
    Truncated,
    /// The IP version nibble is neither 4 nor 6.
    Version(u8),
    /// An IPv4 header length under 20 bytes, or a total length shorter than the header.
    IpHeaderLength,
    /// The IP payload is not TCP (for IPv6: an extension header comes first, which a SYN
    /// of ours never has).
    NotTcp(u8),
    /// An IPv4 fragment: only a whole segment can be read.
    Fragment,
    /// A TCP data offset under 5 words or past the end of the segment.
    TcpHeaderLength,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Truncated => f.write_str("truncated packet"),
            ParseError::Version(v) => write!(f, "IP version {v}"),
            ParseError::IpHeaderLength => f.write_str("bad IPv4 header or total length"),
            ParseError::NotTcp(p) => write!(f, "IP protocol {p} is not TCP"),
            ParseError::Fragment => f.write_str("IPv4 fragment"),
            ParseError::TcpHeaderLength => f.write_str("bad TCP data offset"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Why a [`SegmentRepr`] cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitError {
    /// Source and destination are of different IP families.
    MixedFamilies,
    /// The buffer is shorter than [`SegmentRepr::buffer_len`].
    BufferTooSmall,
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::MixedFamilies => f.write_str("source and destination differ in IP family"),
            EmitError::BufferTooSmall => f.write_str("buffer too small for the segment"),
        }
    }
}

impl std::error::Error for EmitError {}

/// What a segment is, for the punch: our SYN, the answer to one, or a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// SYN without ACK: an opening (ours, or the peer's simultaneous one).
    Syn,
    /// SYN and ACK: the answer to a SYN, which the kernel resets when no socket owns the
    /// 4-tuple.
    SynAck,
    /// RST, with or without ACK.
    Rst,
    /// Anything else (data, a bare ACK, FIN).
    Other,
}

impl SegmentKind {
    /// Classifies TCP flag bits; RST wins over SYN, as a receiver treats it.
    pub fn of(flags: u8) -> SegmentKind {
        if flags & TcpFlags::RST != 0 {
            SegmentKind::Rst
        } else if flags & TcpFlags::SYN != 0 && flags & TcpFlags::ACK != 0 {
            SegmentKind::SynAck
        } else if flags & TcpFlags::SYN != 0 {
            SegmentKind::Syn
        } else {
            SegmentKind::Other
        }
    }
}

/// The TCP options a SYN carries, as far as natlens cares. Unknown options are skipped when
/// reading and never written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SynOptions {
    /// Maximum segment size (kind 2).
    pub mss: Option<u16>,
    /// SACK permitted (kind 4).
    pub sack_permitted: bool,
    /// Window scale shift (kind 3).
    pub window_scale: Option<u8>,
    /// Timestamps (kind 8): TSval, TSecr.
    pub timestamps: Option<(u32, u32)>,
}

impl SynOptions {
    /// What Linux puts in a SYN: MSS, SACK permitted, timestamps (TSecr 0), window scale 7.
    pub fn linux(mss: u16, tsval: u32) -> SynOptions {
        SynOptions {
            mss: Some(mss),
            sack_permitted: true,
            window_scale: Some(LINUX_WINDOW_SCALE),
            timestamps: Some((tsval, 0)),
        }
    }

    /// The options as pnet writes them, in Linux's order and padding (tcp_options_write):
    /// MSS; SACK-permitted folded into the two bytes before the timestamps (or NOP NOP before
    /// timestamps without it, or NOP NOP before it without timestamps); NOP before window
    /// scale. Every option then starts where Linux's would, and the length is a multiple of 4.
    fn to_pnet(self) -> Vec<TcpOption> {
        let mut out = Vec::new();
        if let Some(mss) = self.mss {
            out.push(TcpOption::mss(mss));
        }
        match (self.sack_permitted, self.timestamps) {
            (true, Some((tsval, tsecr))) => {
                out.push(TcpOption::sack_perm());
                out.push(TcpOption::timestamp(tsval, tsecr));
            }
            (false, Some((tsval, tsecr))) => {
                out.extend([TcpOption::nop(), TcpOption::nop()]);
                out.push(TcpOption::timestamp(tsval, tsecr));
            }
            (true, None) => {
                out.extend([TcpOption::nop(), TcpOption::nop()]);
                out.push(TcpOption::sack_perm());
            }
            (false, None) => {}
        }
        if let Some(shift) = self.window_scale {
            out.extend([TcpOption::nop(), TcpOption::wscale(shift)]);
        }
        out
    }

    /// Bytes the options take on the wire (always a multiple of 4).
    pub fn encoded_len(self) -> usize {
        let mss = if self.mss.is_some() { 4 } else { 0 };
        let sack_ts = match (self.sack_permitted, self.timestamps.is_some()) {
            (_, true) => 12,
            (true, false) => 4,
            (false, false) => 0,
        };
        let wscale = if self.window_scale.is_some() { 4 } else { 0 };
        mss + sack_ts + wscale
    }

    /// Reads options leniently: unknown kinds are skipped; a malformed length ends the walk
    /// with what was read so far (a receiver must not fail a segment over its options, and a
    /// bad length leaves nothing after it to trust).
    pub fn parse(mut raw: &[u8]) -> SynOptions {
        let mut options = SynOptions::default();
        while let Some((&kind, rest)) = raw.split_first() {
            match kind {
                0 => break,
                1 => {
                    raw = rest;
                    continue;
                }
                _ => {}
            }
            let Some(&len) = rest.first() else { break };
            let len = usize::from(len);
            if len < 2 || len > raw.len() {
                break;
            }
            options.read_one(kind, &raw[2..len]);
            raw = &raw[len..];
        }
        options
    }

    fn read_one(&mut self, kind: u8, value: &[u8]) {
        match (kind, value.len()) {
            (2, 2) => self.mss = Some(u16::from_be_bytes([value[0], value[1]])),
            (3, 1) => self.window_scale = Some(value[0]),
            (4, 0) => self.sack_permitted = true,
            (8, 8) => {
                let tsval = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
                let tsecr = u32::from_be_bytes([value[4], value[5], value[6], value[7]]);
                self.timestamps = Some((tsval, tsecr));
            }
            _ => {}
        }
    }
}

/// A checked view of an IPv4 or IPv6 packet carrying a TCP segment.
///
/// `new_checked` proves every header length fits the buffer, so the getters index freely.
#[derive(Debug, Clone)]
pub struct Segment<T: AsRef<[u8]>> {
    buffer: T,
    /// IP header length: where TCP starts.
    ip_header_len: usize,
    /// IP total length: where the packet ends (Ethernet padding may follow).
    total_len: usize,
}

impl<T: AsRef<[u8]>> Segment<T> {
    /// Checks the IP and TCP header lengths against the buffer. Cheapest checks first; no
    /// checksum is verified here.
    pub fn new_checked(buffer: T) -> Result<Segment<T>, ParseError> {
        let bytes = buffer.as_ref();
        let first = *bytes.first().ok_or(ParseError::Truncated)?;
        let (ip_header_len, total_len) = match first >> 4 {
            4 => check_ipv4(bytes)?,
            6 => check_ipv6(bytes)?,
            version => return Err(ParseError::Version(version)),
        };
        let tcp = &bytes[ip_header_len..total_len];
        if tcp.len() < field::TCP_HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let header_len = usize::from(tcp[field::TCP_DATA_OFFSET] >> 4) * 4;
        if header_len < field::TCP_HEADER_LEN || header_len > tcp.len() {
            return Err(ParseError::TcpHeaderLength);
        }
        Ok(Segment {
            buffer,
            ip_header_len,
            total_len,
        })
    }

    fn bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.total_len]
    }

    fn is_ipv4(&self) -> bool {
        self.bytes()[0] >> 4 == 4
    }

    /// The TCP header and payload.
    pub fn tcp_bytes(&self) -> &[u8] {
        &self.bytes()[self.ip_header_len..]
    }

    fn tcp_u16(&self, range: std::ops::Range<usize>) -> u16 {
        let b = &self.tcp_bytes()[range];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn tcp_u32(&self, range: std::ops::Range<usize>) -> u32 {
        let b = &self.tcp_bytes()[range];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The source IP address.
    pub fn src_ip(&self) -> IpAddr {
        let b = self.bytes();
        if self.is_ipv4() {
            IpAddr::V4(ipv4_at(&b[field::IPV4_SRC]))
        } else {
            IpAddr::V6(ipv6_at(&b[field::IPV6_SRC]))
        }
    }

    /// The destination IP address.
    pub fn dst_ip(&self) -> IpAddr {
        let b = self.bytes();
        if self.is_ipv4() {
            IpAddr::V4(ipv4_at(&b[field::IPV4_DST]))
        } else {
            IpAddr::V6(ipv6_at(&b[field::IPV6_DST]))
        }
    }

    /// Source address and port.
    pub fn src(&self) -> SocketAddr {
        SocketAddr::new(self.src_ip(), self.tcp_u16(field::TCP_SRC_PORT))
    }

    /// Destination address and port.
    pub fn dst(&self) -> SocketAddr {
        SocketAddr::new(self.dst_ip(), self.tcp_u16(field::TCP_DST_PORT))
    }

    /// IPv4 TTL or IPv6 hop limit, as received.
    pub fn hop_limit(&self) -> u8 {
        let index = if self.is_ipv4() {
            field::IPV4_TTL
        } else {
            field::IPV6_HOP_LIMIT
        };
        self.bytes()[index]
    }

    pub fn seq(&self) -> u32 {
        self.tcp_u32(field::TCP_SEQ)
    }

    pub fn ack(&self) -> u32 {
        self.tcp_u32(field::TCP_ACK)
    }

    /// The flag bits ([`TcpFlags`]).
    pub fn flags(&self) -> u8 {
        self.tcp_bytes()[field::TCP_FLAGS]
    }

    pub fn window(&self) -> u16 {
        self.tcp_u16(field::TCP_WINDOW)
    }

    /// The checksum field as received.
    pub fn checksum(&self) -> u16 {
        self.tcp_u16(field::TCP_CHECKSUM)
    }

    /// SYN, SYN-ACK, RST or other.
    pub fn kind(&self) -> SegmentKind {
        SegmentKind::of(self.flags())
    }

    /// The raw option bytes.
    pub fn options_bytes(&self) -> &[u8] {
        let tcp = self.tcp_bytes();
        let header_len = usize::from(tcp[field::TCP_DATA_OFFSET] >> 4) * 4;
        &tcp[field::TCP_HEADER_LEN..header_len]
    }

    /// The options natlens knows, read leniently.
    pub fn options(&self) -> SynOptions {
        SynOptions::parse(self.options_bytes())
    }

    /// Bytes of TCP payload (a SYN of ours has none; a RST may carry a diagnostic).
    pub fn payload_len(&self) -> usize {
        self.tcp_bytes().len() - self.options_bytes().len() - field::TCP_HEADER_LEN
    }

    /// The checksum the TCP header should carry, over the RFC 9293 pseudo-header.
    pub fn expected_checksum(&self) -> u16 {
        // Length >= 20 was checked, which is all `TcpPacket::new` asks.
        let packet = TcpPacket::new(self.tcp_bytes()).expect("checked length");
        match (self.src_ip(), self.dst_ip()) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                tcp::ipv4_checksum(&packet, &src.octets().into(), &dst.octets().into())
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                tcp::ipv6_checksum(&packet, &src.octets().into(), &dst.octets().into())
            }
            _ => unreachable!("one IP header has one family"),
        }
    }

    /// True when the TCP checksum is right.
    pub fn checksum_ok(&self) -> bool {
        self.checksum() == self.expected_checksum()
    }

    /// True when the IPv4 header checksum is right (IPv6 has none: always true).
    pub fn ip_checksum_ok(&self) -> bool {
        if !self.is_ipv4() {
            return true;
        }
        let header = &self.bytes()[..self.ip_header_len];
        let packet = Ipv4Packet::new(header).expect("checked length");
        packet.get_checksum() == ipv4::checksum(&packet)
    }
}

/// (header length, total length) of an IPv4 packet carrying whole TCP.
fn check_ipv4(bytes: &[u8]) -> Result<(usize, usize), ParseError> {
    if bytes.len() < field::IPV4_HEADER_LEN {
        return Err(ParseError::Truncated);
    }
    let header_len = usize::from(bytes[0] & 0x0f) * 4;
    let total = &bytes[field::IPV4_TOTAL_LEN];
    let total_len = usize::from(u16::from_be_bytes([total[0], total[1]]));
    if header_len < field::IPV4_HEADER_LEN || total_len < header_len {
        return Err(ParseError::IpHeaderLength);
    }
    if total_len > bytes.len() {
        return Err(ParseError::Truncated);
    }
    if bytes[field::IPV4_PROTOCOL] != PROTO_TCP {
        return Err(ParseError::NotTcp(bytes[field::IPV4_PROTOCOL]));
    }
    let fragment = &bytes[field::IPV4_FRAGMENT];
    if u16::from_be_bytes([fragment[0], fragment[1]]) & field::IPV4_MF_AND_OFFSET != 0 {
        return Err(ParseError::Fragment);
    }
    Ok((header_len, total_len))
}

/// (header length, total length) of an IPv6 packet whose next header is TCP.
fn check_ipv6(bytes: &[u8]) -> Result<(usize, usize), ParseError> {
    if bytes.len() < field::IPV6_HEADER_LEN {
        return Err(ParseError::Truncated);
    }
    let payload = &bytes[field::IPV6_PAYLOAD_LEN];
    let total_len =
        field::IPV6_HEADER_LEN + usize::from(u16::from_be_bytes([payload[0], payload[1]]));
    if total_len > bytes.len() {
        return Err(ParseError::Truncated);
    }
    if bytes[field::IPV6_NEXT_HEADER] != PROTO_TCP {
        return Err(ParseError::NotTcp(bytes[field::IPV6_NEXT_HEADER]));
    }
    Ok((field::IPV6_HEADER_LEN, total_len))
}

fn ipv4_at(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn ipv6_at(b: &[u8]) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(b);
    Ipv6Addr::from(octets)
}

/// An IP packet with a TCP header and no payload, in owned form.
///
/// IPv6 flow information and scope ids are not carried (a crafted SYN has flow label 0);
/// the IPv4 identification is written as 0 with Don't Fragment set (RFC 6864: the ID of an
/// atomic datagram means nothing; the kernel fills one in on a raw socket anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRepr {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// IPv4 TTL or IPv6 hop limit: low to open our own NAT without reaching the far one.
    pub hop_limit: u8,
    pub seq: u32,
    pub ack: u32,
    /// [`TcpFlags`] bits.
    pub flags: u8,
    pub window: u16,
    pub options: SynOptions,
}

impl SegmentRepr {
    /// A SYN from `src` to `dst` as Linux would send it, with initial sequence number `isn`.
    pub fn syn(src: SocketAddr, dst: SocketAddr, hop_limit: u8, isn: u32, tsval: u32) -> Self {
        SegmentRepr {
            src,
            dst,
            hop_limit,
            seq: isn,
            ack: 0,
            flags: TcpFlags::SYN,
            window: LINUX_SYN_WINDOW,
            options: SynOptions::linux(default_mss(dst.ip()), tsval),
        }
    }

    /// Reads a checked segment (payload, IPv4 identification and flow label are dropped).
    pub fn parse<T: AsRef<[u8]>>(segment: &Segment<T>) -> SegmentRepr {
        SegmentRepr {
            src: plain(segment.src()),
            dst: plain(segment.dst()),
            hop_limit: segment.hop_limit(),
            seq: segment.seq(),
            ack: segment.ack(),
            flags: segment.flags(),
            window: segment.window(),
            options: segment.options(),
        }
    }

    /// The segment kind its flags make.
    pub fn kind(&self) -> SegmentKind {
        SegmentKind::of(self.flags)
    }

    fn ip_header_len(&self) -> usize {
        match self.src {
            SocketAddr::V4(_) => field::IPV4_HEADER_LEN,
            SocketAddr::V6(_) => field::IPV6_HEADER_LEN,
        }
    }

    fn tcp_len(&self) -> usize {
        // Options beyond 40 bytes cannot be expressed; SynOptions tops out at 20.
        (field::TCP_HEADER_LEN + self.options.encoded_len()).min(field::TCP_MAX_HEADER_LEN)
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        self.ip_header_len() + self.tcp_len()
    }

    /// Writes the IP and TCP headers with correct checksums; returns the length written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let len = self.buffer_len();
        let buf = buf.get_mut(..len).ok_or(EmitError::BufferTooSmall)?;
        buf.fill(0);
        let ip_len = self.ip_header_len();
        let (ip, tcp) = buf.split_at_mut(ip_len);
        self.emit_tcp(tcp);
        let tcp_packet = TcpPacket::new(tcp).expect("sized above");
        let checksum = match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                self.emit_ipv4(ip, src, dst);
                tcp::ipv4_checksum(&tcp_packet, &src.octets().into(), &dst.octets().into())
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                self.emit_ipv6(ip, src, dst);
                tcp::ipv6_checksum(&tcp_packet, &src.octets().into(), &dst.octets().into())
            }
            _ => return Err(EmitError::MixedFamilies),
        };
        tcp[field::TCP_CHECKSUM].copy_from_slice(&checksum.to_be_bytes());
        Ok(len)
    }

    /// The segment as a fresh vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EmitError> {
        let mut buf = vec![0; self.buffer_len()];
        self.emit(&mut buf)?;
        Ok(buf)
    }

    fn emit_tcp(&self, buf: &mut [u8]) {
        let mut tcp = MutableTcpPacket::new(buf).expect("sized by buffer_len");
        tcp.set_source(self.src.port());
        tcp.set_destination(self.dst.port());
        tcp.set_sequence(self.seq);
        tcp.set_acknowledgement(self.ack);
        tcp.set_data_offset((self.tcp_len() / 4) as u8);
        tcp.set_flags(self.flags);
        tcp.set_window(self.window);
        tcp.set_options(&self.options.to_pnet());
    }

    fn emit_ipv4(&self, buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
        let mut ip = MutableIpv4Packet::new(buf).expect("20 bytes");
        ip.set_version(4);
        ip.set_header_length(5);
        ip.set_total_length(self.buffer_len() as u16);
        ip.set_flags(Ipv4Flags::DontFragment);
        ip.set_ttl(self.hop_limit);
        ip.set_next_level_protocol(IpNextHeaderProtocols::Tcp);
        ip.set_source(src.octets().into());
        ip.set_destination(dst.octets().into());
        let checksum = ipv4::checksum(&ip.to_immutable());
        ip.set_checksum(checksum);
    }

    fn emit_ipv6(&self, buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
        let mut ip = MutableIpv6Packet::new(buf).expect("40 bytes");
        ip.set_version(6);
        ip.set_payload_length(self.tcp_len() as u16);
        ip.set_next_header(IpNextHeaderProtocols::Tcp);
        ip.set_hop_limit(self.hop_limit);
        ip.set_source(src.octets().into());
        ip.set_destination(dst.octets().into());
    }
}

/// The MSS Linux offers on an Ethernet path: 1500 minus the IP and TCP headers.
pub fn default_mss(ip: IpAddr) -> u16 {
    match ip {
        IpAddr::V4(_) => 1460,
        IpAddr::V6(_) => 1440,
    }
}

/// An address without IPv6 flow information or scope, as the wire carries it.
fn plain(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) => SocketAddr::V4(SocketAddrV4::new(*v4.ip(), v4.port())),
        SocketAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), 0, 0)),
    }
}

#[cfg(test)]
#[path = "tcp_syn_tests.rs"]
mod tests;
