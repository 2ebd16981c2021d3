//! The delaying frame relay: a user-space Ethernet switch that is the internet segment when the
//! kernel has no `sch_netem`.
//!
//! It runs inside the `internet` namespace, holds an `AF_PACKET` socket on each segment port,
//! learns source MACs like a switch, and sends each frame out of its egress port(s) after the
//! delay of the ports it crosses: a router's WAN port adds `--delay` on the way in and again on
//! the way out, so router ↔ server is one delay each way and router ↔ router two, exactly what
//! netem on both ends of each WAN veth would give.
//!
//! Offloads stay on. A veth hands over TCP and UDP packets with the checksum still to be
//! computed (`CHECKSUM_PARTIAL`) and TCP segments up to 64 KiB (GSO); copied as plain bytes
//! they would arrive with bad checksums. With `PACKET_VNET_HDR` each frame comes with the
//! virtio-net header that describes that state, and sending the header back with the frame
//! recreates it on the egress port, so no `ethtool -K` is needed.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

/// `linux/if_packet.h`: frames carry a `struct virtio_net_hdr` in front.
const PACKET_VNET_HDR: libc::c_int = 15;
/// `linux/if_packet.h`: do not hand back frames this socket (or any) transmitted.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// `struct virtio_net_hdr` without the mergeable-buffers field.
pub const VNET_HDR_LEN: usize = 10;
/// Largest frame: a 64 KiB GSO segment plus headers, with room to spare.
const FRAME_BUF: usize = 128 * 1024;
/// Socket receive buffer: frames wait here only until the next poll, but a burst from several
/// ports must not overflow it.
const RCVBUF: libc::c_int = 4 << 20;
/// Longest sleep in poll(2), so a stop request is seen promptly.
const MAX_WAIT: Duration = Duration::from_millis(50);

/// One port of the segment: an interface in the relay's namespace and the one-way delay a
/// frame picks up entering or leaving through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayPort {
    pub iface: String,
    pub delay: Duration,
}

/// An open relay: one socket per port, ready to run.
#[derive(Debug)]
pub struct Relay {
    sockets: Vec<OwnedFd>,
    delays: Vec<Duration>,
}

impl Relay {
    /// Opens a socket on each port (in the calling thread's namespace).
    pub fn open(ports: &[RelayPort]) -> io::Result<Relay> {
        Ok(Relay {
            sockets: ports
                .iter()
                .map(|port| open(&port.iface))
                .collect::<io::Result<_>>()?,
            delays: ports.iter().map(|port| port.delay).collect(),
        })
    }

    /// Relays frames until `stop` is set or a port's interface disappears (the lab being torn
    /// down).
    pub fn run(self, stop: &AtomicBool) -> io::Result<()> {
        match self.relay(stop) {
            Err(err) if is_gone(&err) => Ok(()),
            other => other,
        }
    }

    fn relay(&self, stop: &AtomicBool) -> io::Result<()> {
        let mut switch = Switch::new(self.sockets.len());
        let mut queue = DelayQueue::default();
        let mut buf = vec![0u8; FRAME_BUF];
        while !stop.load(AtomicOrdering::Relaxed) {
            wait(&self.sockets, queue.next_due())?;
            let now = Instant::now();
            for (ingress, socket) in self.sockets.iter().enumerate() {
                while let Some(len) = receive(socket, &mut buf)? {
                    let frame = &buf[..len];
                    for egress in switch.egress(ingress, frame) {
                        let due = now + self.delays[ingress] + self.delays[egress];
                        queue.push(due, egress, frame.to_vec());
                    }
                }
            }
            for (egress, frame) in queue.pop_due(Instant::now()) {
                transmit(&self.sockets[egress], &frame)?;
            }
        }
        Ok(())
    }
}

/// An `AF_PACKET` socket bound to one interface, with virtio-net headers.
fn open(iface: &str) -> io::Result<OwnedFd> {
    let name = CString::new(iface).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: plain libc calls; the descriptor is owned by `fd` from the moment it exists.
    unsafe {
        let index = libc::if_nametoindex(name.as_ptr());
        if index == 0 {
            return Err(io::Error::last_os_error());
        }
        // Protocol 0 until bind: a socket opened for ETH_P_ALL would see every interface's
        // traffic in between.
        let raw = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(raw);
        set_int(&fd, libc::SOL_PACKET, PACKET_VNET_HDR, 1)?;
        set_int(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)?;
        set_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF)?;
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = index as i32;
        let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        if libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            len,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }
}

fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: setsockopt(2) reading one c_int from a live stack variable.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sleeps until a socket is readable or the next queued frame is due.
fn wait(sockets: &[OwnedFd], next_due: Option<Instant>) -> io::Result<()> {
    let mut fds: Vec<libc::pollfd> = sockets
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let wait = next_due
        .map(|due| due.saturating_duration_since(Instant::now()))
        .unwrap_or(MAX_WAIT)
        .min(MAX_WAIT);
    // Round up: waking a millisecond early would just loop; late by under 1 ms is fine.
    let timeout = wait.as_micros().div_ceil(1000) as libc::c_int;
    // SAFETY: poll(2) over a live, correctly sized array.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
    if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One frame (virtio-net header included) if one is waiting; truncated frames are dropped.
fn receive(socket: &OwnedFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        // SAFETY: recv(2) into a live buffer of the given length.
        let n = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                io::ErrorKind::Interrupted => continue,
                _ => Err(err),
            };
        }
        let n = n as usize;
        if n <= buf.len() && n >= VNET_HDR_LEN + ETH_HEADER {
            return Ok(Some(n));
        }
    }
}

/// Sends one frame. A full transmit queue drops it, as a congested switch would.
fn transmit(socket: &OwnedFd, frame: &[u8]) -> io::Result<()> {
    // SAFETY: send(2) from a live buffer of the given length.
    let n = unsafe {
        libc::send(
            socket.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n >= 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN | libc::ENOBUFS | libc::EMSGSIZE | libc::EINVAL) => Ok(()),
        _ => Err(err),
    }
}

/// ENETDOWN and friends: a port's interface went away, so the lab is being torn down.
fn is_gone(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ENETDOWN | libc::ENXIO | libc::ENODEV)
    )
}

const ETH_HEADER: usize = 14;

/// MAC learning and the egress decision, without sockets.
#[derive(Debug)]
pub struct Switch {
    ports: usize,
    table: HashMap<[u8; 6], usize>,
}

impl Switch {
    pub fn new(ports: usize) -> Switch {
        Switch {
            ports,
            table: HashMap::new(),
        }
    }

    /// The ports a frame (virtio-net header first) entering on `ingress` leaves by: the learnt
    /// port of its destination, or every other port for broadcast, multicast and unknown ones.
    pub fn egress(&mut self, ingress: usize, frame: &[u8]) -> Vec<usize> {
        let Some(eth) = frame.get(VNET_HDR_LEN..VNET_HDR_LEN + ETH_HEADER) else {
            return Vec::new();
        };
        let dst: [u8; 6] = eth[0..6].try_into().expect("6 bytes");
        let src: [u8; 6] = eth[6..12].try_into().expect("6 bytes");
        if src[0] & 1 == 0 {
            self.table.insert(src, ingress);
        }
        match self.table.get(&dst) {
            Some(&port) if dst[0] & 1 == 0 => {
                if port == ingress {
                    Vec::new()
                } else {
                    vec![port]
                }
            }
            _ => (0..self.ports).filter(|port| *port != ingress).collect(),
        }
    }
}

/// Frames waiting for their time, earliest first, in arrival order among equals.
#[derive(Debug, Default)]
pub struct DelayQueue {
    heap: BinaryHeap<Pending>,
    next_seq: u64,
}

#[derive(Debug)]
struct Pending {
    due: Instant,
    seq: u64,
    egress: usize,
    frame: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    /// Reversed, so the max-heap pops the earliest frame.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

impl DelayQueue {
    pub fn push(&mut self, due: Instant, egress: usize, frame: Vec<u8>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Pending {
            due,
            seq,
            egress,
            frame,
        });
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|pending| pending.due)
    }

    /// Every frame due at `now`, in order.
    pub fn pop_due(&mut self, now: Instant) -> Vec<(usize, Vec<u8>)> {
        let mut due = Vec::new();
        while self.heap.peek().is_some_and(|pending| pending.due <= now) {
            let pending = self.heap.pop().expect("peeked");
            due.push((pending.egress, pending.frame));
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut bytes = vec![0u8; VNET_HDR_LEN];
        bytes.extend_from_slice(&dst);
        bytes.extend_from_slice(&src);
        bytes.extend_from_slice(&[0x08, 0x00, 0x45]);
        bytes
    }

    const M1: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const M2: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const BROADCAST: [u8; 6] = [0xff; 6];

    #[test]
    fn unknown_and_broadcast_flood_known_unicast_goes_to_its_port() {
        let mut switch = Switch::new(3);
        assert_eq!(switch.egress(0, &frame(BROADCAST, M1)), [1, 2]);
        assert_eq!(switch.egress(2, &frame(M1, M2)), [0]);
        assert_eq!(switch.egress(0, &frame(M2, M1)), [2]);
        assert_eq!(switch.egress(1, &frame([2, 9, 9, 9, 9, 9], M1)), [0, 2]);
        // M1 moved to port 1: learnt again.
        assert_eq!(switch.egress(2, &frame(M1, M2)), [1]);
    }

    #[test]
    fn ipv6_frames_switch_like_any_other() {
        // The switch reads MACs only: an IPv6 frame goes where an IPv4 one would, and IPv6
        // multicast (33:33:…, neighbour solicitations) floods like broadcast.
        let v6 = |dst: [u8; 6], src: [u8; 6]| {
            let mut bytes = frame(dst, src);
            bytes[VNET_HDR_LEN + 12..VNET_HDR_LEN + 15].copy_from_slice(&[0x86, 0xdd, 0x60]);
            bytes
        };
        let mut switch = Switch::new(3);
        let solicited_node = [0x33, 0x33, 0xff, 0, 0, 0x10];
        assert_eq!(switch.egress(0, &v6(solicited_node, M1)), [1, 2]);
        assert_eq!(switch.egress(2, &v6(M1, M2)), [0]);
        assert_eq!(switch.egress(0, &v6(M2, M1)), [2]);
    }

    #[test]
    fn frames_for_the_ingress_port_are_not_echoed() {
        let mut switch = Switch::new(2);
        switch.egress(0, &frame(BROADCAST, M1));
        assert!(switch.egress(0, &frame(M1, M2)).is_empty());
    }

    #[test]
    fn runt_frames_go_nowhere() {
        let mut switch = Switch::new(2);
        assert!(switch.egress(0, &[0u8; 12]).is_empty());
    }

    #[test]
    fn queue_releases_frames_by_due_time_then_arrival() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut queue = DelayQueue::default();
        queue.push(start + ms(20), 1, vec![1]);
        queue.push(start + ms(10), 2, vec![2]);
        queue.push(start + ms(20), 3, vec![3]);
        assert_eq!(queue.next_due(), Some(start + ms(10)));
        assert!(queue.pop_due(start + ms(5)).is_empty());
        assert_eq!(queue.pop_due(start + ms(10)), [(2, vec![2])]);
        assert_eq!(queue.pop_due(start + ms(30)), [(1, vec![1]), (3, vec![3])]);
        assert_eq!(queue.next_due(), None);
    }
}
