//! WebSocket connections: the upgrade, reading messages and commands, moving a
//! subscription, and how the fan-out reaches a session.

use tungstenite::Message;

use super::{Next, Server};
use crate::conn::{Deadline, Phase, Proto};
use crate::message::{Command, error_message, parse_command};
use crate::routes::Channel;
use crate::ws::{Incoming, WsSession};

/// Most messages of one WebSocket handled per loop turn, so that a client that never stops
/// sending cannot starve the others.
const MESSAGES_PER_TURN: usize = 64;

impl Server {
    /// Queues `101 Switching Protocols`, turns the connection into a WebSocket on `channel`
    /// (for `/orders`, subscribed with the category's current totals queued) and reads what
    /// the client sent after its handshake (`leftover`, the start of its first frames).
    pub(super) fn start_websocket(
        &mut self,
        key: usize,
        channel: Channel,
        accept_key: &str,
        leftover: Vec<u8>,
    ) -> Next {
        let conn = &mut self.conns[key];
        conn.out.push(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept_key}\r\n\r\n"
            )
            .as_bytes(),
        );
        let mut session = WsSession::new(
            leftover,
            self.config.max_ws_message_bytes,
            self.config.ws_queue_bytes,
        );
        session.echo = channel == Channel::Echo;
        conn.proto = Proto::WebSocket(Box::new(session));
        // Liveness: a ping each interval; a client silent for a whole interval is closed.
        conn.deadline = Some((self.now + self.config.ws_ping_interval, Deadline::Ping));
        if let Some(mean) = self.config.ws_drop_mean {
            self.timers.drop_later(self.now, mean, key, conn.id);
        }
        let catalog = self.backend.catalog();
        let name = match channel {
            Channel::Echo => "echo",
            Channel::Orders(Some(cat)) => catalog.category_name(cat),
            Channel::Orders(None) => "(unknown category)",
        };
        self.log
            .info(format_args!("{} websocket open #{key} {name}", conn.peer));
        if let Channel::Orders(category) = channel {
            self.subscribe(key, category);
        }
        self.read_ws(key)
    }

    /// Reads WebSocket messages (at most `MESSAGES_PER_TURN` per turn), answering commands.
    /// A protocol violation is answered with its close code, and the connection drains.
    pub(super) fn read_ws(&mut self, key: usize) -> Next {
        for _ in 0..MESSAGES_PER_TURN {
            if self.conns[key].phase != Phase::Open {
                return Next::Flush;
            }
            // Whatever this message makes us send goes after every total published before.
            self.take_feed(key);
            let conn = &mut self.conns[key];
            let Some((session, mut wire)) = conn.ws() else {
                return Next::Idle;
            };
            let incoming = match session.read(&mut wire) {
                Ok(incoming) => incoming,
                Err(closed) => {
                    if let Some(code) = closed.code {
                        // tungstenite gives up without telling the peer why: tell it.
                        session.fail(&mut wire, code, &closed.reason);
                        self.log.info(format_args!(
                            "{} websocket #{key} close {code}: {}",
                            conn.peer, closed.reason
                        ));
                    } else {
                        self.log.debug(format_args!(
                            "{} websocket #{key} ended: {}",
                            conn.peer, closed.reason
                        ));
                    }
                    return self.drain_stream(key);
                }
            };
            if !matches!(incoming, Incoming::Blocked | Incoming::Full) {
                session.heard_from = true;
            }
            match incoming {
                // Full: the flush that writes the queue out lists it to be read again.
                Incoming::Blocked | Incoming::Full => return Next::Flush,
                Incoming::Control => {}
                Incoming::Text(text) if session.echo => {
                    if !session.push_message(&mut wire, Message::Text(text)) {
                        // The echo client is not reading; its queue is full.
                        session.close(&mut wire, 1008, "echo queue full");
                    }
                }
                Incoming::Binary(bytes) if session.echo => {
                    if !session.push_message(&mut wire, Message::Binary(bytes)) {
                        session.close(&mut wire, 1008, "echo queue full");
                    }
                }
                Incoming::Text(text) => self.on_ws_text(key, text.as_str()),
                Incoming::Binary(_) => {
                    let msg = "binary messages are not supported; send JSON text";
                    session.push_text(&mut wire, error_message(msg));
                }
            }
        }
        Next::Reread
    }

    /// Handles one text message from a subscriber.
    fn on_ws_text(&mut self, key: usize, text: &str) {
        let catalog = self.backend.catalog();
        let command = parse_command(text).and_then(|Command::UpdateCategory(name)| {
            // An unknown category is answered, and the subscription stays where it was.
            match catalog.category(&name) {
                Some(cat) => Ok((name, cat)),
                None => {
                    let known: Vec<&str> = catalog.category_names().collect();
                    Err(format!(
                        "unknown category {name:?} (categories: {})",
                        known.join(", ")
                    ))
                }
            }
        });
        match command {
            Ok((name, category)) => {
                self.log
                    .debug(format_args!("websocket #{key} update-category {name}"));
                self.subscribe(key, Some(category));
            }
            Err(msg) => {
                let conn = &mut self.conns[key];
                let shown: String = text.chars().take(200).collect();
                self.log.warn(format_args!(
                    "{} websocket #{key} message {shown:?}: {msg}",
                    conn.peer
                ));
                if let Some((session, mut wire)) = conn.ws() {
                    session.push_text(&mut wire, error_message(&msg));
                }
            }
        }
    }

    /// Starts the closing handshake of `key` with `code`, after every total already
    /// published to it.
    pub(super) fn close_ws(&mut self, key: usize, code: u16, reason: &str) {
        self.take_feed(key);
        if let Some((session, mut wire)) = self.conns[key].ws() {
            session.close(&mut wire, code, reason);
        }
    }
}
