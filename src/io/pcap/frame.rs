//! Ethernet frames for the capture file: read the transport addresses of a captured frame (to
//! decide whether it is natlens's), and synthesize a whole Ethernet/IP/UDP frame around a
//! datagram, or an Ethernet/IP/TCP frame around a segment, when no capture is possible.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use pnet_packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols};
use pnet_packet::ipv4::{self, Ipv4Flags, MutableIpv4Packet};
use pnet_packet::ipv6::MutableIpv6Packet;
use pnet_packet::tcp::{self, MutableTcpPacket, TcpFlags, TcpOption};
use pnet_packet::udp::{self, MutableUdpPacket};

/// Bytes of an Ethernet II header.
pub const ETHERNET_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const UDP_LEN: usize = 8;
const TCP_LEN: usize = 20;
/// Locally administered MAC addresses for synthesized frames: this host and "the other end".
const OWN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const FAR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// The transport protocols natlens's sockets speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
}

/// A frame's transport addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub proto: Proto,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

/// The UDP or TCP addresses of an Ethernet frame; `None` for anything else (ARP, ICMP, a
/// non-first IP fragment, IPv6 extension headers).
pub fn flow_of(frame: &[u8]) -> Option<Flow> {
    let mut ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let mut ip = frame.get(ETHERNET_LEN..)?;
    if ethertype == ETHERTYPE_VLAN {
        ethertype = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
        ip = frame.get(ETHERNET_LEN + 4..)?;
    }
    match ethertype {
        ETHERTYPE_IPV4 => ipv4_flow(ip),
        ETHERTYPE_IPV6 => ipv6_flow(ip),
        _ => None,
    }
}

fn ipv4_flow(ip: &[u8]) -> Option<Flow> {
    let header_len = usize::from(ip.first()? & 0x0F) * 4;
    let fragment_offset = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x1FFF;
    if fragment_offset != 0 {
        return None;
    }
    let src = IpAddr::from(<[u8; 4]>::try_from(ip.get(12..16)?).ok()?);
    let dst = IpAddr::from(<[u8; 4]>::try_from(ip.get(16..20)?).ok()?);
    transport_flow(*ip.get(9)?, src, dst, ip.get(header_len..)?)
}

fn ipv6_flow(ip: &[u8]) -> Option<Flow> {
    let src = IpAddr::from(<[u8; 16]>::try_from(ip.get(8..24)?).ok()?);
    let dst = IpAddr::from(<[u8; 16]>::try_from(ip.get(24..40)?).ok()?);
    transport_flow(*ip.get(6)?, src, dst, ip.get(IPV6_LEN..)?)
}

fn transport_flow(protocol: u8, src: IpAddr, dst: IpAddr, transport: &[u8]) -> Option<Flow> {
    let proto = match protocol {
        17 => Proto::Udp,
        6 => Proto::Tcp,
        _ => return None,
    };
    let src_port = u16::from_be_bytes([*transport.first()?, *transport.get(1)?]);
    let dst_port = u16::from_be_bytes([*transport.get(2)?, *transport.get(3)?]);
    Some(Flow {
        proto,
        src: SocketAddr::new(src, src_port),
        dst: SocketAddr::new(dst, dst_port),
    })
}

/// An Ethernet header in front of a bare IP packet (from an interface without a link header,
/// a tun device say), so every packet in the file has the same link type; `None` when `ip` is
/// not IPv4 or IPv6.
pub fn with_ethernet_header(ip: &[u8]) -> Option<Vec<u8>> {
    let ethertype = match ip.first()? >> 4 {
        4 => ETHERTYPE_IPV4,
        6 => ETHERTYPE_IPV6,
        _ => return None,
    };
    let mut frame = Vec::with_capacity(ETHERNET_LEN + ip.len());
    frame.extend_from_slice(&FAR_MAC);
    frame.extend_from_slice(&OWN_MAC);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(ip);
    Some(frame)
}

/// A whole Ethernet/IP/UDP frame carrying `payload` from `src` to `dst`, with valid lengths
/// and checksums. An IPv4-mapped IPv6 address on either side is written as IPv4 (the packet
/// on the wire is IPv4). `None` when the datagram cannot be one IP packet (too long) or the
/// families differ.
pub fn synthesize_udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Option<Vec<u8>> {
    let ends = Ends::of(src.ip(), dst.ip())?;
    let udp_len = UDP_LEN + payload.len();
    let mut frame = ends.frame(IpNextHeaderProtocols::Udp, udp_len)?;
    let mut udp = MutableUdpPacket::new(&mut frame[ETHERNET_LEN + ends.header_len()..])?;
    udp.set_source(src.port());
    udp.set_destination(dst.port());
    udp.set_length(u16::try_from(udp_len).ok()?);
    udp.set_payload(payload);
    let checksum = match ends {
        Ends::V4(s, d) => udp::ipv4_checksum(&udp.to_immutable(), &s, &d),
        Ends::V6(s, d) => udp::ipv6_checksum(&udp.to_immutable(), &s, &d),
    };
    udp.set_checksum(checksum);
    Some(frame)
}

/// The header fields of a synthesized TCP segment that change from one segment to the next
/// (the window is constant, and a SYN carries [`SYN_OPTIONS_LEN`] bytes of options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpHeader {
    pub seq: u32,
    /// Meaningful when `flags` has ACK; 0 otherwise.
    pub ack: u32,
    /// [`TcpFlags`] bits.
    pub flags: u8,
}

/// Bytes of options on a synthesized SYN or SYN-ACK: MSS (4), NOP (1), window scale (3).
const SYN_OPTIONS_LEN: usize = 8;
/// The window every synthesized segment advertises, and its scale (announced in the SYNs):
/// 8 MiB, so that no run's data fills it and Wireshark never flags a full window.
const WINDOW: u16 = 0xFFFF;
const WINDOW_SCALE: u8 = 7;

/// The largest payload of a synthesized segment toward `ip` (an Ethernet MTU of 1500 less the
/// IP and TCP headers); it is also the MSS the synthesized SYNs announce.
pub fn tcp_mss(ip: IpAddr) -> usize {
    match canonical(ip) {
        IpAddr::V4(_) => 1500 - IPV4_LEN - TCP_LEN,
        IpAddr::V6(_) => 1500 - IPV6_LEN - TCP_LEN,
    }
}

/// A whole Ethernet/IP/TCP frame carrying `payload` from `src` to `dst` with `header`'s
/// sequence numbers and flags, valid lengths and checksums. A SYN announces an MSS and a
/// window scale, as a kernel's does, so Wireshark scales the windows. `None` when the segment
/// cannot be one IP packet or the families differ.
pub fn synthesize_tcp(
    src: SocketAddr,
    dst: SocketAddr,
    header: TcpHeader,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let ends = Ends::of(src.ip(), dst.ip())?;
    let syn = header.flags & TcpFlags::SYN != 0;
    let options_len = if syn { SYN_OPTIONS_LEN } else { 0 };
    let tcp_len = TCP_LEN + options_len + payload.len();
    let mut frame = ends.frame(IpNextHeaderProtocols::Tcp, tcp_len)?;
    let mut tcp = MutableTcpPacket::new(&mut frame[ETHERNET_LEN + ends.header_len()..])?;
    tcp.set_source(src.port());
    tcp.set_destination(dst.port());
    tcp.set_sequence(header.seq);
    tcp.set_acknowledgement(header.ack);
    tcp.set_data_offset(((TCP_LEN + options_len) / 4) as u8);
    tcp.set_flags(header.flags);
    tcp.set_window(WINDOW);
    if syn {
        let mss = u16::try_from(tcp_mss(dst.ip())).ok()?;
        tcp.set_options(&[
            TcpOption::mss(mss),
            TcpOption::nop(),
            TcpOption::wscale(WINDOW_SCALE),
        ]);
    }
    tcp.set_payload(payload);
    let checksum = match ends {
        Ends::V4(s, d) => tcp::ipv4_checksum(&tcp.to_immutable(), &s, &d),
        Ends::V6(s, d) => tcp::ipv6_checksum(&tcp.to_immutable(), &s, &d),
    };
    tcp.set_checksum(checksum);
    Some(frame)
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The two IP addresses of a synthesized packet, of one family.
#[derive(Debug, Clone, Copy)]
enum Ends {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

impl Ends {
    /// `None` when the families differ (IPv4-mapped addresses count as IPv4).
    fn of(src: IpAddr, dst: IpAddr) -> Option<Ends> {
        match (canonical(src), canonical(dst)) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some(Ends::V4(s, d)),
            (IpAddr::V6(s), IpAddr::V6(d)) => Some(Ends::V6(s, d)),
            _ => None,
        }
    }

    fn header_len(self) -> usize {
        match self {
            Ends::V4(..) => IPV4_LEN,
            Ends::V6(..) => IPV6_LEN,
        }
    }

    /// A frame with its Ethernet and IP headers filled for `transport_len` bytes of
    /// `protocol`, the transport bytes zeroed; `None` when it cannot be one IP packet.
    fn frame(self, protocol: IpNextHeaderProtocol, transport_len: usize) -> Option<Vec<u8>> {
        match self {
            Ends::V4(src, dst) => {
                let total = u16::try_from(IPV4_LEN + transport_len).ok()?;
                let mut frame = ethernet(ETHERTYPE_IPV4, usize::from(total));
                let mut ip = MutableIpv4Packet::new(&mut frame[ETHERNET_LEN..])?;
                ip.set_version(4);
                ip.set_header_length(5);
                ip.set_total_length(total);
                ip.set_flags(Ipv4Flags::DontFragment);
                ip.set_ttl(64);
                ip.set_next_level_protocol(protocol);
                ip.set_source(src);
                ip.set_destination(dst);
                ip.set_checksum(ipv4::checksum(&ip.to_immutable()));
                Some(frame)
            }
            Ends::V6(src, dst) => {
                let payload_len = u16::try_from(transport_len).ok()?;
                let mut frame = ethernet(ETHERTYPE_IPV6, IPV6_LEN + transport_len);
                let mut ip = MutableIpv6Packet::new(&mut frame[ETHERNET_LEN..])?;
                ip.set_version(6);
                ip.set_payload_length(payload_len);
                ip.set_next_header(protocol);
                ip.set_hop_limit(64);
                ip.set_source(src);
                ip.set_destination(dst);
                Some(frame)
            }
        }
    }
}

/// A zeroed frame of `ip_len` bytes after an Ethernet header with `ethertype`.
fn ethernet(ethertype: u16, ip_len: usize) -> Vec<u8> {
    let mut frame = vec![0u8; ETHERNET_LEN + ip_len];
    frame[..6].copy_from_slice(&FAR_MAC);
    frame[6..12].copy_from_slice(&OWN_MAC);
    frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnet_packet::Packet;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_synthesized_frame_reads_back_as_its_flow() {
        for (src, dst) in [
            ("192.0.2.1:4000", "198.51.100.2:3478"),
            ("[2001:db8::1]:4000", "[2001:db8::2]:3478"),
        ] {
            let frame = synthesize_udp(addr(src), addr(dst), b"hello").unwrap();
            let flow = flow_of(&frame).unwrap();
            assert_eq!(
                (flow.proto, flow.src, flow.dst),
                (Proto::Udp, addr(src), addr(dst))
            );
            assert!(frame.ends_with(b"hello"));
        }
    }

    #[test]
    fn synthesized_checksums_verify() {
        let frame =
            synthesize_udp(addr("192.0.2.1:4000"), addr("198.51.100.2:3478"), b"abc").unwrap();
        let ip = pnet_packet::ipv4::Ipv4Packet::new(&frame[ETHERNET_LEN..]).unwrap();
        assert_eq!(ip.get_checksum(), ipv4::checksum(&ip));
        let udp = pnet_packet::udp::UdpPacket::new(&frame[ETHERNET_LEN + IPV4_LEN..]).unwrap();
        let expected = udp::ipv4_checksum(
            &udp,
            &"192.0.2.1".parse().unwrap(),
            &"198.51.100.2".parse().unwrap(),
        );
        assert_eq!(udp.get_checksum(), expected);
        assert_ne!(expected, 0);
    }

    #[test]
    fn a_mapped_address_is_written_as_ipv4() {
        let frame =
            synthesize_udp(addr("[::ffff:192.0.2.1]:1"), addr("198.51.100.2:2"), b"").unwrap();
        assert_eq!(flow_of(&frame).unwrap().src, addr("192.0.2.1:1"));
    }

    #[test]
    fn a_bare_ip_packet_gets_an_ethernet_header() {
        let frame =
            synthesize_udp(addr("192.0.2.1:4000"), addr("198.51.100.2:3478"), b"x").unwrap();
        let again = with_ethernet_header(&frame[ETHERNET_LEN..]).unwrap();
        assert_eq!(flow_of(&again), flow_of(&frame));
        assert_eq!(with_ethernet_header(&[0x10, 0]), None);
    }

    #[test]
    fn a_synthesized_tcp_segment_reads_back_with_valid_checksums_on_both_families() {
        let header = TcpHeader {
            seq: 0xFFFF_FFF0,
            ack: 7,
            flags: TcpFlags::PSH | TcpFlags::ACK,
        };
        for (src, dst) in [
            ("192.0.2.1:4000", "198.51.100.2:3478"),
            ("[2001:db8::1]:4000", "[2001:db8::2]:3478"),
        ] {
            let (src, dst) = (addr(src), addr(dst));
            let frame = synthesize_tcp(src, dst, header, b"stun").unwrap();
            let flow = flow_of(&frame).unwrap();
            assert_eq!((flow.proto, flow.src, flow.dst), (Proto::Tcp, src, dst));
            let ip_len = match src {
                SocketAddr::V4(_) => IPV4_LEN,
                SocketAddr::V6(_) => IPV6_LEN,
            };
            let tcp = pnet_packet::tcp::TcpPacket::new(&frame[ETHERNET_LEN + ip_len..]).unwrap();
            let expected = match (src.ip(), dst.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => tcp::ipv4_checksum(&tcp, &s, &d),
                (IpAddr::V6(s), IpAddr::V6(d)) => tcp::ipv6_checksum(&tcp, &s, &d),
                _ => unreachable!(),
            };
            assert_eq!(tcp.get_checksum(), expected);
            assert_eq!(
                (
                    tcp.get_sequence(),
                    tcp.get_acknowledgement(),
                    tcp.get_flags()
                ),
                (header.seq, header.ack, header.flags)
            );
            assert_eq!(tcp.get_data_offset(), 5);
            assert_eq!(tcp.payload(), b"stun");
        }
    }

    #[test]
    fn a_synthesized_syn_announces_its_mss_and_window_scale() {
        let header = TcpHeader {
            seq: 1,
            ack: 0,
            flags: TcpFlags::SYN,
        };
        let frame =
            synthesize_tcp(addr("192.0.2.1:4000"), addr("198.51.100.2:80"), header, b"").unwrap();
        let tcp = pnet_packet::tcp::TcpPacket::new(&frame[ETHERNET_LEN + IPV4_LEN..]).unwrap();
        assert_eq!(
            usize::from(tcp.get_data_offset()) * 4,
            TCP_LEN + SYN_OPTIONS_LEN
        );
        let options = &frame[ETHERNET_LEN + IPV4_LEN + TCP_LEN..];
        assert_eq!(options, [2, 4, 0x05, 0xB4, 1, 3, 3, WINDOW_SCALE]);
        assert_eq!(tcp_mss("2001:db8::1".parse().unwrap()), 1440);
    }

    #[test]
    fn frames_that_are_not_udp_or_tcp_have_no_flow() {
        assert_eq!(flow_of(&[0u8; 10]), None);
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(flow_of(&arp), None);
    }
}
