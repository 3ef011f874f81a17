//! One client connection: its socket, its one output queue, where it is in its life
//! ([`Phase`]) and what it speaks ([`Proto`]). The socket never moves: a WebSocket session
//! borrows it, with the queue, for each read and write ([`Conn::ws`]).

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;

use crate::fanout::Feed;
use crate::http::{Parser, Request, Response};
use crate::message::total_message;
use crate::outbox::{Flushed, Outbox};
use crate::routes::Then;
use crate::sse::EventStream;
use crate::state::Product;
use crate::ws::frame::text_frame;
use crate::ws::{Wire, WsSession};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading and writing.
    Open,
    /// No more reading: write what is queued, then linger (`Connection: close`, a framing
    /// error, a WebSocket that broke the protocol).
    Draining,
    /// Our side is shut down; what the peer still sends is discarded until it closes or the
    /// linger deadline passes, so that unread input does not turn our close into a reset
    /// that destroys the last response before the peer reads it.
    Lingering,
    /// Listed to be closed at the end of the turn; nothing more is done for it.
    Closing,
}

/// What the connection speaks.
#[derive(Debug)]
pub enum Proto {
    Http(Http),
    /// After `101 Switching Protocols` (which may still be in the queue).
    WebSocket(Box<WsSession>),
    /// After the head of an event stream: the rest of the response is events.
    Events(EventStream),
}

/// The HTTP side of a connection.
#[derive(Debug, Default)]
pub struct Http {
    /// Holds a request that is partly in.
    pub parser: Parser,
    /// Bytes received and not yet parsed.
    pub inbuf: Vec<u8>,
    /// A request waiting for its change to be applied (or for its `--latency`). No further
    /// request is parsed meanwhile (and at most about two reads' worth is buffered), so a
    /// pipeline cannot grow memory; its response is queued when the result comes, after
    /// every response before it.
    pub held: Option<Held>,
    /// Reading stopped because too much output waits; it resumes once the queue drains.
    pub paused: bool,
    /// The peer has closed its sending side.
    pub peer_eof: bool,
}

/// A request whose answer waits.
#[derive(Debug)]
pub enum Held {
    /// `--latency`: handled once its time comes (the server's timers know when).
    Delayed(Box<Request>),
    /// Its change is with the backend; answered as `then` says when the result comes.
    Applying { req: Box<Request>, then: Then },
}

/// What happens when the connection's deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Nothing in flight (or a draining connection that took too long): close quietly.
    Idle,
    /// A request started but did not arrive in time: 408, then close.
    Request,
    /// Lingering: the peer had its moment to read our last bytes; close.
    Linger,
    /// WebSocket: send a ping, or close if nothing was heard since the last one. Event
    /// stream: send a keep-alive, or close if nothing was taken since the last one.
    Ping,
}

/// A connection in the server's slab.
#[derive(Debug)]
pub struct Conn {
    /// Unique for the life of the process (slab keys are reused): see `state::Ticket`.
    pub id: u64,
    pub stream: TcpStream,
    /// The client's address, formatted once for the log lines that name it.
    pub peer: String,
    /// Everything to send, in order.
    pub out: Outbox,
    pub phase: Phase,
    pub proto: Proto,
    pub deadline: Option<(Instant, Deadline)>,
    /// Listed in the server's HTTP write list (streams are listed by the fan-out).
    pub listed: bool,
    /// Listed to be read again next turn.
    pub reread: bool,
}

impl Conn {
    /// A new HTTP connection that is closed if it sends nothing before `idle_until`.
    pub fn new(id: u64, stream: TcpStream, peer: SocketAddr, idle_until: Instant) -> Conn {
        Conn {
            id,
            stream,
            peer: peer.to_string(),
            out: Outbox::default(),
            phase: Phase::Open,
            proto: Proto::Http(Http::default()),
            deadline: Some((idle_until, Deadline::Idle)),
            listed: false,
            reread: false,
        }
    }

    /// True for a WebSocket connection.
    pub fn is_websocket(&self) -> bool {
        matches!(self.proto, Proto::WebSocket(_))
    }

    /// True for a WebSocket or an event stream: a connection the fan-out writes.
    pub fn is_stream(&self) -> bool {
        !matches!(self.proto, Proto::Http(_))
    }

    /// The HTTP side, unless the connection became a stream.
    pub fn http(&mut self) -> Option<&mut Http> {
        match &mut self.proto {
            Proto::Http(http) => Some(http),
            _ => None,
        }
    }

    /// Takes what `feed` holds that this subscriber has not taken. With `write_now`, a
    /// WebSocket with nothing queued writes it straight from the feed; otherwise it is
    /// queued, and whatever is queued next goes after it.
    pub fn take_from(&mut self, feed: &Feed, write_now: bool) {
        match &mut self.proto {
            Proto::Http(_) => {}
            Proto::WebSocket(session) => {
                let mut wire = Wire {
                    stream: &mut self.stream,
                    out: &mut self.out,
                };
                feed.hand_to(session, &mut wire, write_now);
            }
            Proto::Events(events) => feed.hand_events_to(events, &mut self.out),
        }
    }

    /// The WebSocket session and the socket it talks through, for one read or write.
    pub fn ws(&mut self) -> Option<(&mut WsSession, Wire<'_, TcpStream>)> {
        let Proto::WebSocket(session) = &mut self.proto else {
            return None;
        };
        let wire = Wire {
            stream: &mut self.stream,
            out: &mut self.out,
        };
        Some((session, wire))
    }

    /// Starts this subscriber at the end of `feed` and queues the current totals of
    /// `products` (its category's).
    pub fn follow(&mut self, feed: &Feed, products: &[Product]) {
        match &mut self.proto {
            Proto::Http(_) => {}
            Proto::WebSocket(session) => {
                feed.follow(session);
                let mut wire = Wire {
                    stream: &mut self.stream,
                    out: &mut self.out,
                };
                for p in products {
                    let frame = text_frame(&total_message(&p.id, p.total));
                    session.push_total(&mut wire, &frame, &p.id, p.total);
                }
            }
            Proto::Events(events) => {
                feed.follow_events(events);
                for p in products {
                    events.push_total(&mut self.out, &p.id, p.total);
                }
            }
        }
    }

    /// Forgets the latest totals a subscriber over budget kept (its subscription moves).
    pub fn forget_latest(&mut self) {
        match &mut self.proto {
            Proto::Http(_) => {}
            Proto::WebSocket(session) => session.clear_conflated(),
            Proto::Events(events) => events.latest.clear(),
        }
    }

    /// Queues a response. Without keep-alive the connection drains: nothing more is read,
    /// and it closes once the response is written.
    pub fn respond(&mut self, response: &Response, head_only: bool, keep_alive: bool) {
        response.write_to(self.out.tail(), head_only, keep_alive);
        if !keep_alive {
            self.phase = Phase::Draining;
        }
    }

    /// Writes what is queued (for a WebSocket, conflated totals once the queue drains).
    /// `Err` when the connection is broken.
    pub fn flush(&mut self) -> io::Result<Flushed> {
        match &mut self.proto {
            Proto::Http(_) => self.out.write_to(&mut self.stream),
            Proto::Events(events) => {
                let flushed = events.flush(&mut self.stream, &mut self.out)?;
                self.out.release();
                Ok(flushed)
            }
            Proto::WebSocket(session) => {
                let mut wire = Wire {
                    stream: &mut self.stream,
                    out: &mut self.out,
                };
                let flushed = session.flush(&mut wire)?;
                // Totals usually go straight from the feed to the socket, so a WebSocket's
                // queue is rarely used again once written: thousands of idle subscribers
                // should not each keep a buffer.
                self.out.release();
                Ok(flushed)
            }
        }
    }

    /// Totals this stream skipped, keeping only the latest of each product (see `latest`).
    pub fn conflated(&self) -> u64 {
        match &self.proto {
            Proto::Http(_) => 0,
            Proto::WebSocket(session) => session.latest.conflated,
            Proto::Events(events) => events.latest.conflated,
        }
    }

    /// True while a request waits for its `--latency`.
    pub fn is_delayed(&self) -> bool {
        matches!(&self.proto, Proto::Http(http) if matches!(http.held, Some(Held::Delayed(_))))
    }

    /// True while a request waits (for the backend, or for its `--latency`).
    pub fn is_held(&self) -> bool {
        matches!(&self.proto, Proto::Http(http) if http.held.is_some())
    }
}
