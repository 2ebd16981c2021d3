//! Federation: links to other natlens servers over TCP. A link introduces itself with
//! PEER-HELLO (the wire name; a link's hello in the code) naming its server; calls for IDs not
//! logged in here are forwarded over every link not already on the call's path.

use std::time::Instant;

use crate::core::events::{Command, Event};
use crate::core::registry::{ConnId, Route};
use crate::core::transaction::Retry;
use crate::wire::natlens::{self, error};
use crate::wire::stun::{Class, Message, MessageType};
use crate::wire::MessageBuilder;

use super::relay::Leg;
use super::request::Request;
use super::{ServerCore, HELLO_TIMEOUT};

impl ServerCore {
    /// Names of the servers with a live link, sorted, each once.
    pub fn link_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.links.values().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// An outbound federation link to a configured server is connected: introduce ourselves.
    pub fn link_connected(&mut self, now: Instant, conn: ConnId) {
        self.now = now;
        let tid = self.fresh_tid();
        let own = self.config.name.clone();
        let ty = MessageType::new(natlens::PEER_HELLO, Class::Request);
        let mut builder = MessageBuilder::new(&mut self.scratch, ty, tid);
        builder.attribute(natlens::SERVER_NAME, own.as_bytes());
        builder.fingerprint();
        let bytes = builder.finish().to_vec();
        let retry = Retry::Stream {
            timeout: HELLO_TIMEOUT,
        };
        self.send_leg(now, bytes, retry, Leg::Hello { conn });
    }

    /// A server dialled us and introduces itself: the connection becomes a link.
    pub(super) fn link_hello(&mut self, req: &mut Request<'_>) -> bool {
        let Route::Tcp { conn } = req.route else {
            return self.refuse(req, error::BAD_REQUEST, "Federation runs over TCP");
        };
        let Some(Ok(name)) = natlens::read_name(req.message, natlens::SERVER_NAME) else {
            return self.refuse(req, error::BAD_REQUEST, "Missing or invalid NL-SERVER-NAME");
        };
        if name == self.config.name {
            self.commands.push_back(Command::Close { conn });
            return self.refuse(req, error::BAD_REQUEST, "Peer has this server's own name");
        }
        self.link_up(conn, name.to_owned());
        let own = self.config.name.clone();
        req.success(|builder| {
            builder.attribute(natlens::SERVER_NAME, own.as_bytes());
        });
        true
    }

    /// The server we dialled answered our hello: a link, unless it has our own name.
    pub(super) fn hello_answered(&mut self, conn: ConnId, message: &Message<'_>) {
        match (
            message.class(),
            natlens::read_name(message, natlens::SERVER_NAME),
        ) {
            (Class::Success, Some(Ok(name))) if name != self.config.name => {
                self.link_up(conn, name.to_owned())
            }
            _ => self.commands.push_back(Command::Close { conn }),
        }
    }

    fn link_up(&mut self, conn: ConnId, name: String) {
        self.events.push_back(Event::LinkUp {
            name: name.clone(),
            conn,
        });
        self.links.insert(conn, name);
        self.home_link_up(conn);
    }

    /// A link's connection closed.
    pub(super) fn link_closed(&mut self, conn: ConnId) {
        self.home_link_closed(conn);
        if let Some(name) = self.links.remove(&conn) {
            self.events.push_back(Event::LinkDown { name, conn });
        }
    }

    /// One link per linked server not already on the call's path and not where it came from,
    /// in server-name order.
    pub(super) fn forward_targets(&self, via: &[String], from_conn: Option<ConnId>) -> Vec<ConnId> {
        let mut by_name: Vec<(&String, ConnId)> = self
            .links
            .iter()
            .filter(|(conn, name)| Some(**conn) != from_conn && !via.contains(name))
            .map(|(conn, name)| (name, *conn))
            .collect();
        by_name.sort();
        by_name.dedup_by(|a, b| a.0 == b.0);
        by_name.into_iter().map(|(_, conn)| conn).collect()
    }
}
