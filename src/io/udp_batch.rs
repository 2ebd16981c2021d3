//! Batched UDP receive and send with `recvmmsg(2)` / `sendmmsg(2)`: one system call moves up to
//! [`BATCH`] datagrams, which is where most of a STUN server's CPU time goes otherwise.

use std::io;
use std::mem::{self, MaybeUninit};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams per system call. 32 amortises the syscall well past the point of diminishing
/// returns while keeping the receive arena (32 × 2 KiB) in L1/L2.
pub const BATCH: usize = 32;

/// Receive arena: buffers, iovecs and address storage for one `recvmmsg` call.
pub struct RecvBatch {
    buffers: Vec<u8>,
    slot_size: usize,
    addrs: [libc::sockaddr_storage; BATCH],
    lens: [usize; BATCH],
    count: usize,
}

impl RecvBatch {
    /// `slot_size` is the largest datagram accepted; longer ones arrive truncated and are
    /// rejected by the length check in the STUN parser.
    pub fn new(slot_size: usize) -> Self {
        RecvBatch {
            buffers: vec![0; slot_size * BATCH],
            slot_size,
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
            addrs: unsafe { mem::zeroed() },
            lens: [0; BATCH],
            count: 0,
        }
    }

    /// Receives up to [`BATCH`] datagrams without blocking; returns how many (0 when none).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let mut iovecs: [MaybeUninit<libc::iovec>; BATCH] = [MaybeUninit::uninit(); BATCH];
        let mut headers: [MaybeUninit<libc::mmsghdr>; BATCH] = [MaybeUninit::uninit(); BATCH];
        for i in 0..BATCH {
            let iov = iovecs[i].write(libc::iovec {
                iov_base: self.buffers[i * self.slot_size..].as_mut_ptr().cast(),
                iov_len: self.slot_size,
            });
            // SAFETY: mmsghdr is plain old data; zero then fill the fields recvmmsg reads.
            let mut header: libc::mmsghdr = unsafe { mem::zeroed() };
            header.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen =
                mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
            headers[i].write(header);
        }
        // SAFETY: every header points at live buffers owned by `self` or this stack frame, sized
        // as declared; the kernel writes at most `slot_size` bytes and one address per message.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr().cast(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if received < 0 {
            let error = io::Error::last_os_error();
            self.count = 0;
            return if error.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(error)
            };
        }
        self.count = received as usize;
        for (i, header) in headers.iter().take(self.count).enumerate() {
            // SAFETY: recvmmsg initialised the first `received` headers.
            self.lens[i] = unsafe { header.assume_init_ref() }.msg_len as usize;
        }
        Ok(self.count)
    }

    /// Datagram `i` of the last batch and its sender (`None` for non-IP families).
    pub fn get(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        let start = i * self.slot_size;
        let len = self.lens[i].min(self.slot_size);
        (
            &self.buffers[start..start + len],
            from_storage(&self.addrs[i]),
        )
    }
}

/// Outgoing datagrams collected during one receive batch, sent with one `sendmmsg`.
pub struct SendBatch {
    data: Vec<u8>,
    entries: Vec<(usize, usize, libc::sockaddr_storage, libc::socklen_t)>,
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch {
            data: Vec::with_capacity(BATCH * 256),
            entries: Vec::with_capacity(BATCH),
        }
    }
}

impl SendBatch {
    pub fn push(&mut self, to: SocketAddr, bytes: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        let (storage, len) = to_storage(to);
        self.entries.push((start, bytes.len(), storage, len));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sends everything queued; datagrams the kernel refuses (full buffer, unreachable) are
    /// counted as lost rather than retried, as UDP senders do. Returns how many were sent.
    pub fn flush(&mut self, fd: RawFd) -> usize {
        let mut sent_total = 0;
        let mut first = 0;
        while first < self.entries.len() {
            let end = (first + BATCH).min(self.entries.len());
            let chunk = &mut self.entries[first..end];
            let mut iovecs: Vec<libc::iovec> = chunk
                .iter()
                .map(|(start, len, _, _)| libc::iovec {
                    iov_base: self.data[*start..].as_mut_ptr().cast(),
                    iov_len: *len,
                })
                .collect();
            let mut headers: Vec<libc::mmsghdr> = chunk
                .iter_mut()
                .zip(iovecs.iter_mut())
                .map(|((_, _, storage, len), iov)| {
                    // SAFETY: plain old data, zeroed then filled.
                    let mut header: libc::mmsghdr = unsafe { mem::zeroed() };
                    header.msg_hdr.msg_name = (storage as *mut libc::sockaddr_storage).cast();
                    header.msg_hdr.msg_namelen = *len;
                    header.msg_hdr.msg_iov = iov;
                    header.msg_hdr.msg_iovlen = 1;
                    header
                })
                .collect();
            // SAFETY: headers point into `self.data`, `iovecs` and `self.entries`, all alive.
            let sent = unsafe {
                libc::sendmmsg(
                    fd,
                    headers.as_mut_ptr(),
                    headers.len() as u32,
                    libc::MSG_DONTWAIT,
                )
            };
            // On error or a partial send skip the failed datagram: it is lost, like any UDP
            // datagram a full socket buffer refuses.
            let advanced = if sent <= 0 { 1 } else { sent as usize };
            sent_total += sent.max(0) as usize;
            first += advanced;
        }
        self.data.clear();
        self.entries.clear();
        sent_total
    }
}

/// Converts a kernel socket address to a std one.
pub fn from_storage(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let sin: &libc::sockaddr_in =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let sin6: &libc::sockaddr_in6 =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast() };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Converts a std socket address for the kernel.
pub fn to_storage(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let sock = socket2::SockAddr::from(addr);
    // SAFETY: SockAddr holds a valid sockaddr of `len()` bytes inside a sockaddr_storage.
    let storage = unsafe { *sock.as_ptr().cast::<libc::sockaddr_storage>() };
    (storage, sock.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn batches_round_trip_over_loopback() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let server_addr = server.local_addr().unwrap();
        let mut out = SendBatch::default();
        for i in 0..40u8 {
            out.push(server_addr, &[i; 5]);
        }
        assert_eq!(out.flush(client.as_raw_fd()), 40);
        let mut batch = RecvBatch::new(2048);
        let mut seen = Vec::new();
        for _ in 0..100 {
            let n = batch.recv(server.as_raw_fd()).unwrap();
            for i in 0..n {
                let (bytes, from) = batch.get(i);
                assert_eq!(from, Some(client.local_addr().unwrap()));
                seen.push(bytes[0]);
            }
            if seen.len() == 40 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(seen, (0..40).collect::<Vec<u8>>());
    }
}
