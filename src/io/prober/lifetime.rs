//! The IO shell of the mapping-lifetime probe ([`crate::core::fingerprint::lifetime`]): one
//! UDP socket per slot, every one toward the server's primary address, one mio poll over all of
//! them. It sends what the core yields and feeds it every answer; it decides nothing.
//!
//! A transaction ID is 8 random bytes drawn once per run, then the core's 4-byte tag: an
//! answer whose first 8 bytes differ is not ours and is dropped.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use rand::RngCore;

use crate::core::fingerprint::lifetime::{
    LifetimeFacts, LifetimeProbe, Send, Slot, Status, Transmit,
};
use crate::io::source::Source;
use crate::wire::attr::{self, AttrType};
use crate::wire::stun::{Class, Message, MessageType, Method, TransactionId};
use crate::wire::MessageBuilder;

/// Largest datagram read: a Binding answer is about 100 bytes.
const MAX_DATAGRAM: usize = 2048;
/// The progress callback runs at least this often while nothing happens.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Beyond the longest interval, the run gives up after this much more (a core that never
/// finishes would be a bug; the user should not wait for it forever).
const OVERRUN: Duration = Duration::from_secs(30);

/// What the measurement found, or why it could not be made.
#[derive(Debug, Clone)]
pub struct Measured {
    pub facts: LifetimeFacts,
    pub failure: Option<String>,
    /// Answers dropped: not ours, from elsewhere than the server, or on the wrong socket.
    pub ignored: u32,
}

/// Measures how long an idle UDP mapping toward `server` lives, trying idle intervals up to
/// `max`; `progress` sees where it stands every [`PROGRESS_EVERY`] at least.
pub fn measure(
    server: SocketAddr,
    max: Duration,
    source: &Source,
    rng: &mut dyn RngCore,
    progress: &mut dyn FnMut(Status),
) -> anyhow::Result<Measured> {
    let start = Instant::now();
    let mut probe = LifetimeProbe::new(server, max, start);
    let mut shell = Shell::open(&probe.slots(), server, source, rng)?;
    let give_up = start + max + OVERRUN;
    let mut events = Events::with_capacity(64);
    loop {
        let now = Instant::now();
        probe.handle_timeout(now);
        while let Some(transmit) = probe.poll_transmit() {
            shell.send(transmit);
        }
        let status = probe.status();
        progress(status);
        if status.finished {
            break;
        }
        if now > give_up {
            anyhow::bail!("the lifetime measurement did not finish within {max:?} and 30 s");
        }
        crate::io::poll::wait_until(
            &mut shell.poll,
            &mut events,
            now,
            probe.poll_timeout(),
            Some(PROGRESS_EVERY),
        )?;
        for event in events.iter() {
            shell.drain(event.token().0, &mut probe);
        }
    }
    Ok(Measured {
        facts: probe.facts(),
        failure: probe.failure().map(str::to_owned),
        ignored: probe.ignored,
    })
}

/// The probe's sockets, indexed by mio token.
struct Shell {
    poll: Poll,
    sockets: Vec<(Slot, UdpSocket)>,
    server: SocketAddr,
    /// The random first 8 bytes of every transaction ID of this run.
    prefix: [u8; 8],
}

impl Shell {
    fn open(
        slots: &[Slot],
        server: SocketAddr,
        source: &Source,
        rng: &mut dyn RngCore,
    ) -> anyhow::Result<Self> {
        let poll = Poll::new()?;
        let mut sockets = Vec::with_capacity(slots.len());
        for (token, &slot) in slots.iter().enumerate() {
            // --bind's port, if any, goes to no socket: there are dozens.
            let raw = source.port_free().udp_socket(server)?;
            let std: std::net::UdpSocket = raw.into();
            std.set_nonblocking(true)?;
            crate::io::pcap::watch_udp(&std);
            let mut socket = UdpSocket::from_std(std);
            poll.registry()
                .register(&mut socket, Token(token), Interest::READABLE)?;
            sockets.push((slot, socket));
        }
        let mut prefix = [0; 8];
        rng.fill_bytes(&mut prefix);
        Ok(Shell {
            poll,
            sockets,
            server,
            prefix,
        })
    }

    fn tid(&self, tag: u32) -> TransactionId {
        let mut id = [0; 12];
        id[..8].copy_from_slice(&self.prefix);
        id[8..].copy_from_slice(&tag.to_be_bytes());
        TransactionId(id)
    }

    /// Sends one datagram; a failed send is a lost packet, which the core allows for.
    fn send(&self, transmit: Transmit) {
        let Transmit {
            from,
            tag,
            send,
            ttl,
        } = transmit;
        let Some((_, socket)) = self.sockets.iter().find(|(slot, _)| *slot == from) else {
            return;
        };
        if let Some(ttl) = ttl {
            // Only TTL-limited refresh sockets get a TTL, and they send nothing else after.
            let raw = socket2::SockRef::from(socket);
            let set = if self.server.is_ipv6() {
                raw.set_unicast_hops_v6(ttl.into())
            } else {
                raw.set_ttl(ttl.into())
            };
            if set.is_err() {
                return;
            }
        }
        let class = match send {
            Send::Indication => Class::Indication,
            Send::Bind | Send::Check { .. } => Class::Request,
        };
        let mut buf = Vec::with_capacity(48);
        let ty = MessageType::new(Method::BINDING, class);
        let mut builder = MessageBuilder::new(&mut buf, ty, self.tid(tag));
        if let Send::Check { port } = send {
            builder.attribute(AttrType::RESPONSE_PORT, &attr::encode_response_port(port));
        }
        builder.fingerprint();
        let _ = socket.send_to(&buf, self.server);
    }

    /// Reads every datagram waiting on socket `token` into the probe.
    fn drain(&self, token: usize, probe: &mut LifetimeProbe) {
        let Some((slot, socket)) = self.sockets.get(token) else {
            return;
        };
        let mut buf = [0u8; MAX_DATAGRAM];
        loop {
            match socket.recv_from(&mut buf) {
                Ok((len, from)) => self.handle(*slot, &buf[..len], from, probe),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                // An ICMP error or the like: nothing to read from it, keep going.
                Err(_) => continue,
            }
        }
    }

    fn handle(&self, slot: Slot, bytes: &[u8], from: SocketAddr, probe: &mut LifetimeProbe) {
        let Ok(message) = Message::parse(bytes) else {
            probe.ignored += 1;
            return;
        };
        let tid = message.transaction_id();
        if message.method() != Method::BINDING || tid.0[..8] != self.prefix {
            probe.ignored += 1;
            return;
        }
        let tag = u32::from_be_bytes(tid.0[8..].try_into().expect("4 bytes"));
        let now = Instant::now();
        match message.class() {
            Class::Success => {
                let public = message
                    .get(AttrType::XOR_MAPPED_ADDRESS)
                    .and_then(|a| attr::decode_xor_address(a.value, &tid).ok());
                match public {
                    Some(public) => probe.handle_answer(slot, tag, public, from, now),
                    None => probe.ignored += 1,
                }
            }
            Class::Error => {
                let code = message
                    .get(AttrType::ERROR_CODE)
                    .and_then(|a| attr::decode_error_code(a.value).ok());
                match code {
                    Some((code, _)) if from == self.server => probe.handle_error(tag, code),
                    _ => probe.ignored += 1,
                }
            }
            _ => probe.ignored += 1,
        }
    }
}
