//! TCP connections: accepting, reading frames into the core, writing its answers, closing.
//!
//! A connection's buffers stay empty `Vec`s (no heap) unless a frame is half-received or the
//! other end is slow to read.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Token};

use crate::core::registry::ConnId;
use crate::core::stats::Drop;
use crate::core::Transport;
use crate::wire::framing::{next_frame, Frame};
use crate::wire::DecodeError;

use super::{Reporter, Server, CONN_BASE};

pub(super) struct Conn {
    stream: TcpStream,
    id: ConnId,
    local: SocketAddr,
    remote: SocketAddr,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    /// Last complete message, or when the connection opened.
    last_active: Instant,
    /// When the half-received frame in `inbuf` began.
    partial_since: Instant,
    /// Index into the configured links when this is our outbound federation link.
    dial: Option<usize>,
    connecting: bool,
}

impl Server {
    /// Closes connections idle past `--tcp-idle`: a frame begun and never finished, or a
    /// connection that holds neither a session nor a link and has been silent.
    pub(super) fn close_idle(&mut self, now: Instant, reporter: &mut dyn Reporter) {
        let idle = self.options.tcp_idle;
        let mut doomed = Vec::new();
        for (slot, conn) in self.conns.iter().enumerate() {
            let Some(conn) = conn else { continue };
            let stalled_frame =
                !conn.inbuf.is_empty() && now.duration_since(conn.partial_since) > idle;
            let idle_unheld = !self.core.holds_conn(conn.id)
                && conn.dial.is_none()
                && now.duration_since(conn.last_active) > idle;
            if stalled_frame || idle_unheld {
                doomed.push(slot);
            }
        }
        for slot in doomed {
            self.close(now, slot, Some(Drop::IdleConnection), reporter);
        }
    }

    pub(super) fn accept(&mut self, now: Instant, index: usize, reporter: &mut dyn Reporter) {
        loop {
            let (stream, remote) = match self.listeners[index].0.accept() {
                Ok(accepted) => accepted,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error)
                    if error.raw_os_error() == Some(libc::EMFILE)
                        || error.raw_os_error() == Some(libc::ENFILE) =>
                {
                    self.warn_fd_limit(now, reporter);
                    return;
                }
                Err(error) => {
                    reporter.warn(&format!(
                        "accepting on tcp {}: {error}",
                        self.listeners[index].1
                    ));
                    return;
                }
            };
            if self.open_conns >= self.options.max_connections {
                self.core_drop(Drop::ConnectionLimit, Some(remote), reporter);
                continue;
            }
            let _ = stream.set_nodelay(true);
            let local = self.listeners[index].1;
            self.add_conn(now, stream, local, remote, None, false);
        }
    }

    fn warn_fd_limit(&mut self, now: Instant, reporter: &mut dyn Reporter) {
        if self
            .fd_warned_at
            .is_none_or(|at| now.duration_since(at) > Duration::from_secs(10))
        {
            self.fd_warned_at = Some(now);
            reporter.warn("out of file descriptors: not accepting TCP connections (raise `ulimit -n` or lower --max-connections)");
        }
    }

    pub(super) fn core_drop(
        &mut self,
        reason: Drop,
        from: Option<SocketAddr>,
        reporter: &mut dyn Reporter,
    ) {
        // Shell-level drops are counted in the core so that one counter set tells all.
        self.core.count_drop(reason, Transport::Tcp, from);
        self.drain_events(reporter);
    }

    pub(super) fn add_conn(
        &mut self,
        now: Instant,
        mut stream: TcpStream,
        local: SocketAddr,
        remote: SocketAddr,
        dial: Option<usize>,
        connecting: bool,
    ) -> Option<ConnId> {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.generations.push(0);
            self.conns.len() - 1
        });
        let interest = Interest::READABLE | Interest::WRITABLE;
        if self
            .poll
            .registry()
            .register(&mut stream, Token(CONN_BASE + slot), interest)
            .is_err()
        {
            self.free.push(slot);
            return None;
        }
        let id = (u64::from(self.generations[slot]) << 32) | slot as u64;
        self.conns[slot] = Some(Conn {
            stream,
            id,
            local,
            remote,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            last_active: now,
            partial_since: now,
            dial,
            connecting,
        });
        self.open_conns += 1;
        Some(id)
    }

    pub(super) fn slot_of(&self, id: ConnId) -> Option<usize> {
        let slot = (id & 0xFFFF_FFFF) as usize;
        let generation = (id >> 32) as u32;
        (self.generations.get(slot) == Some(&generation) && self.conns[slot].is_some())
            .then_some(slot)
    }

    pub(super) fn conn_writable(&mut self, now: Instant, slot: usize, reporter: &mut dyn Reporter) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if conn.connecting {
            match conn.stream.take_error() {
                Ok(None) if conn.stream.peer_addr().is_ok() => {
                    conn.connecting = false;
                    conn.local = conn.stream.local_addr().unwrap_or(conn.local);
                    let id = conn.id;
                    self.core.link_connected(now, id);
                    self.drain_core(now, reporter);
                }
                Ok(None) => {}
                _ => self.close(now, slot, None, reporter),
            }
            return;
        }
        if let Err(reason) = flush(conn) {
            self.close(now, slot, reason, reporter);
        }
    }

    pub(super) fn conn_readable(&mut self, now: Instant, slot: usize, reporter: &mut dyn Reporter) {
        let mut buf = std::mem::take(&mut self.read_buf);
        while let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
            if conn.connecting {
                break;
            }
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    self.close(now, slot, None, reporter);
                    break;
                }
                Ok(n) => {
                    if let Err(reason) = self.consume(now, slot, &buf[..n], reporter) {
                        self.close(now, slot, reason, reporter);
                        break;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close(now, slot, None, reporter);
                    break;
                }
            }
        }
        self.read_buf = buf;
    }

    /// Splits received bytes into frames and hands each to the core. Unfinished frames wait in
    /// the connection's own buffer, which only then allocates.
    fn consume(
        &mut self,
        now: Instant,
        slot: usize,
        data: &[u8],
        reporter: &mut dyn Reporter,
    ) -> Result<(), Option<Drop>> {
        let conn = self.conns[slot].as_mut().expect("live connection");
        let mut pending = std::mem::take(&mut conn.inbuf);
        let owned = !pending.is_empty();
        if owned {
            pending.extend_from_slice(data);
        }
        let (id, local, remote) = (conn.id, conn.local, conn.remote);
        let mut offset = 0;
        let result = loop {
            let buffer = if owned {
                &pending[offset..]
            } else {
                &data[offset..]
            };
            match next_frame(buffer, self.options.max_message) {
                Frame::Complete(len) => {
                    let answered = self.core.handle_tcp(
                        now,
                        id,
                        local,
                        remote,
                        &buffer[..len],
                        &mut self.reply,
                    );
                    offset += len;
                    if let Some(conn) = self.conns[slot].as_mut() {
                        conn.last_active = now;
                        if answered {
                            queue_write(conn, &self.reply, self.options.max_tcp_backlog)?;
                        }
                    }
                    self.drain_core(now, reporter);
                    if self.conns[slot].is_none() {
                        return Ok(());
                    }
                }
                Frame::Partial => break Ok(()),
                Frame::TooLarge(_) => break Err(Some(Drop::OversizedFrame)),
                Frame::NotStun => break Err(Some(Drop::Malformed(DecodeError::NotStun))),
            }
        };
        let conn = self.conns[slot].as_mut().expect("live connection");
        let rest = if owned {
            &pending[offset..]
        } else {
            &data[offset..]
        };
        if !rest.is_empty() {
            if conn.inbuf.is_empty() && (!owned || offset > 0) {
                conn.partial_since = now;
            }
            conn.inbuf = rest.to_vec();
        }
        result
    }

    pub(super) fn close(
        &mut self,
        now: Instant,
        slot: usize,
        reason: Option<Drop>,
        reporter: &mut dyn Reporter,
    ) {
        let Some(mut conn) = self.conns[slot].take() else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.generations[slot] = self.generations[slot].wrapping_add(1);
        self.free.push(slot);
        self.open_conns -= 1;
        if let Some(reason) = reason {
            self.core
                .count_drop(reason, Transport::Tcp, Some(conn.remote));
        }
        if let Some(dial) = conn.dial {
            self.link_lost(now, dial, conn.connecting, reporter);
        }
        self.core.tcp_closed(conn.id);
        self.drain_core(now, reporter);
    }
}

/// Appends to a connection's output, writing straight away when nothing is queued.
pub(super) fn queue_write(
    conn: &mut Conn,
    bytes: &[u8],
    max_backlog: usize,
) -> Result<(), Option<Drop>> {
    if conn.outbuf.is_empty() && !conn.connecting {
        match conn.stream.write(bytes) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(n) => conn.outbuf.extend_from_slice(&bytes[n..]),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                conn.outbuf.extend_from_slice(bytes)
            }
            Err(_) => return Err(None),
        }
    } else {
        conn.outbuf.extend_from_slice(bytes);
    }
    if conn.outbuf.len() > max_backlog {
        return Err(Some(Drop::SlowReader));
    }
    Ok(())
}

/// Writes queued output; frees the buffer once empty.
fn flush(conn: &mut Conn) -> Result<(), Option<Drop>> {
    while !conn.outbuf.is_empty() {
        match conn.stream.write(&conn.outbuf) {
            Ok(0) => return Err(None),
            Ok(n) => {
                conn.outbuf.drain(..n);
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(None),
        }
    }
    conn.outbuf = Vec::new();
    Ok(())
}
