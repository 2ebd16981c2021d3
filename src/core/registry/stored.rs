//! The compact form a session is stored in: its ID inline when short, its route and observed
//! address in 8 bytes for the common case (UDP over IPv4), its times as nanoseconds since the
//! registry's epoch. A million sessions are a million of these, so every byte counts.

use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::{Route, Session};

/// Bytes of ID kept inline; longer IDs go to the heap (a rarer, bigger form).
const INLINE_ID: usize = 22;

/// A session's ID: inline up to [`INLINE_ID`] bytes, so that the usual short ID costs no
/// allocation of its own.
#[derive(Debug, Clone)]
pub(super) enum StoredId {
    Inline { len: u8, bytes: [u8; INLINE_ID] },
    Heap(Box<str>),
}

impl StoredId {
    pub(super) fn new(id: &str) -> StoredId {
        if id.len() <= INLINE_ID {
            let mut bytes = [0; INLINE_ID];
            bytes[..id.len()].copy_from_slice(id.as_bytes());
            StoredId::Inline {
                len: id.len() as u8,
                bytes,
            }
        } else {
            StoredId::Heap(id.into())
        }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            StoredId::Inline { len, bytes } => &bytes[..usize::from(*len)],
            StoredId::Heap(id) => id.as_bytes(),
        }
    }

    pub(super) fn to_owned_string(&self) -> String {
        // Built from a &str, so valid UTF-8.
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }
}

/// Where a session is: its route and the address the server sees it at.
#[derive(Debug, Clone)]
pub(super) enum Place {
    /// UDP over IPv4 with the observed address the route's remote (what every UDP login is):
    /// the server's socket as an index into [`Locals`], the client's address inline.
    UdpV4 { local: u16, ip: [u8; 4], port: u16 },
    /// Anything else: TCP, IPv6, or more server addresses than an index holds.
    Other(Box<(Route, SocketAddr)>),
}

impl Place {
    pub(super) fn new(route: Route, observed: SocketAddr, locals: &mut Locals) -> Place {
        if let Route::Udp {
            local,
            remote: SocketAddr::V4(remote),
        } = route
        {
            if observed == SocketAddr::V4(remote) {
                if let Some(local) = locals.index(local) {
                    return Place::UdpV4 {
                        local,
                        ip: remote.ip().octets(),
                        port: remote.port(),
                    };
                }
            }
        }
        Place::Other(Box::new((route, observed)))
    }

    pub(super) fn route(&self, locals: &Locals) -> Route {
        match self {
            Place::UdpV4 { local, ip, port } => Route::Udp {
                local: locals.get(*local),
                remote: SocketAddr::V4(SocketAddrV4::new((*ip).into(), *port)),
            },
            Place::Other(boxed) => boxed.0,
        }
    }

    pub(super) fn observed(&self) -> SocketAddr {
        match self {
            Place::UdpV4 { ip, port, .. } => SocketAddr::V4(SocketAddrV4::new((*ip).into(), *port)),
            Place::Other(boxed) => boxed.1,
        }
    }

    pub(super) fn is_udp(&self) -> bool {
        match self {
            Place::UdpV4 { .. } => true,
            Place::Other(boxed) => matches!(boxed.0, Route::Udp { .. }),
        }
    }
}

/// The server's own UDP addresses, interned: a server has a handful, its sessions a million.
#[derive(Debug, Default)]
pub(super) struct Locals(Vec<SocketAddr>);

impl Locals {
    /// The index of `local`, added if new; `None` once an index cannot hold more.
    fn index(&mut self, local: SocketAddr) -> Option<u16> {
        if let Some(found) = self.0.iter().position(|&known| known == local) {
            return Some(found as u16);
        }
        let next = u16::try_from(self.0.len()).ok()?;
        self.0.push(local);
        Some(next)
    }

    fn get(&self, index: u16) -> SocketAddr {
        self.0[usize::from(index)]
    }
}

/// Times as nanoseconds since the registry's first login: 8 bytes instead of an `Instant`'s 16.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Clock {
    epoch: Option<Instant>,
}

impl Clock {
    pub(super) fn nanos(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        now.saturating_duration_since(epoch).as_nanos() as u64
    }

    pub(super) fn instant(&self, nanos: u64) -> Instant {
        let epoch = self.epoch.expect("a stored time implies an epoch");
        epoch + Duration::from_nanos(nanos)
    }
}

/// One stored session (64 bytes).
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) id: StoredId,
    pub(super) place: Place,
    pub(super) logged_in_at: u64,
    pub(super) last_seen: u64,
    /// Tells this session from an earlier one in the same slot, for the expiry wheel's lazily
    /// deleted entries.
    pub(super) generation: u32,
}

impl Stored {
    pub(super) fn session(&self, locals: &Locals, clock: &Clock) -> Session {
        Session {
            id: self.id.to_owned_string(),
            route: self.place.route(locals),
            observed: self.place.observed(),
            logged_in_at: clock.instant(self.logged_in_at),
            last_seen: clock.instant(self.last_seen),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_session_is_small() {
        assert_eq!(std::mem::size_of::<StoredId>(), 24);
        assert_eq!(std::mem::size_of::<Place>(), 16);
        assert!(std::mem::size_of::<Option<Stored>>() <= 64);
    }

    #[test]
    fn places_give_back_what_they_were_given() {
        let mut locals = Locals::default();
        let local: SocketAddr = "192.0.2.1:3478".parse().unwrap();
        let v4: SocketAddr = "198.51.100.9:40000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::9]:40000".parse().unwrap();
        let cases = [
            (Route::Udp { local, remote: v4 }, v4, true),
            (Route::Udp { local, remote: v4 }, v6, false),
            (Route::Udp { local, remote: v6 }, v6, false),
            (Route::Tcp { conn: 7 }, v4, false),
        ];
        for (route, observed, inline) in cases {
            let place = Place::new(route, observed, &mut locals);
            assert_eq!(matches!(place, Place::UdpV4 { .. }), inline);
            assert_eq!(place.route(&locals), route);
            assert_eq!(place.observed(), observed);
            assert_eq!(place.is_udp(), matches!(route, Route::Udp { .. }));
        }
        let long = "x".repeat(INLINE_ID + 1);
        for id in ["", "alice", &long] {
            assert_eq!(StoredId::new(id).to_owned_string(), id);
        }
    }
}
