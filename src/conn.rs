//! One client connection: its stream, what it has sent that is not yet handled, what is
//! waiting to be written, and whether it speaks HTTP or WebSocket. The stream never moves;
//! the WebSocket session borrows it for each read and flush.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;

use crate::http::Parser;
use crate::ws::{Flushed, WsSession};

/// What the connection speaks now.
#[derive(Debug)]
pub enum State {
    /// Requests and responses; the parser holds a request that is partly in.
    Http(Parser),
    /// After `101 Switching Protocols` (which may still be in `out`).
    WebSocket(Box<WsSession>),
}

/// What happens when the connection's deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Keep-alive connection with nothing in flight: close quietly.
    Idle,
    /// A request started but did not arrive in time: 408, then close.
    Request,
    /// Closing: give the peer a moment to read our last response, then close.
    Linger,
    /// WebSocket: send a ping, or close if nothing was heard since the last one.
    Ping,
}

/// A connection in the server's slab.
#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    /// The client's address, formatted once for the log lines that name it.
    pub peer: String,
    /// Bytes received and not yet parsed (HTTP only; tungstenite buffers its own).
    pub inbuf: Vec<u8>,
    /// Raw bytes to send before anything tungstenite queues: HTTP responses, the `101`.
    pub out: Vec<u8>,
    /// How much of `out` is already written.
    pub out_pos: usize,
    pub state: State,
    /// Close once `out` is written (Connection: close, a framing error, the peer's EOF).
    pub close_after_flush: bool,
    /// Our side is shut down; reads are discarded until the peer closes or time runs out.
    pub lingering: bool,
    /// Stopped reading because too much output is waiting; resume when it drains.
    pub read_paused: bool,
    /// The peer has closed its sending side.
    pub peer_eof: bool,
    /// Listed in the server's pending-write list.
    pub pending: bool,
    /// Listed to be read again next turn.
    pub reread: bool,
    /// WebSocket: the client sent something (a pong at least) since the last ping.
    pub heard_from: bool,
    /// Listed in the server's close list; no more work is done for it.
    pub closing: bool,
    pub deadline: Option<(Instant, Deadline)>,
}

impl Conn {
    /// A new HTTP connection that is closed if it sends nothing before `idle_until`.
    pub fn new(stream: TcpStream, peer: SocketAddr, idle_until: Instant) -> Conn {
        Conn {
            stream,
            peer: peer.to_string(),
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            state: State::Http(Parser::default()),
            close_after_flush: false,
            lingering: false,
            read_paused: false,
            peer_eof: false,
            pending: false,
            reread: false,
            heard_from: false,
            closing: false,
            deadline: Some((idle_until, Deadline::Idle)),
        }
    }

    /// Bytes of raw output not yet written.
    pub fn out_backlog(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// True for a WebSocket connection.
    pub fn is_websocket(&self) -> bool {
        matches!(self.state, State::WebSocket(_))
    }

    /// The WebSocket session and the socket it talks through, for one read or write.
    pub fn ws(&mut self) -> Option<(&mut WsSession, Wire<'_>)> {
        let State::WebSocket(ws) = &mut self.state else {
            return None;
        };
        Some((
            ws,
            Wire {
                stream: &mut self.stream,
                out: &mut self.out,
                out_pos: &mut self.out_pos,
            },
        ))
    }

    /// Writes raw output, then whatever the WebSocket session queued. Returns
    /// `Flushed::Blocked` when the socket is full (a writable event will follow), and
    /// `Err` when the connection is broken or the WebSocket session has ended.
    pub fn flush(&mut self) -> io::Result<Flushed> {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if would_block(&e) => return Ok(Flushed::Blocked),
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_pos = 0;
        // A WebSocket only used `out` for its 101; idle thousands should not keep it.
        if self.out.capacity() > 64 * 1024 || self.is_websocket() {
            self.out = Vec::new();
        }
        match self.ws() {
            None => Ok(Flushed::All),
            Some((ws, mut wire)) => ws.flush(&mut wire).map_err(|c| io::Error::other(c.reason)),
        }
    }
}

/// The socket as tungstenite sees it. Raw bytes still waiting in the connection's `out`
/// (the `101 Switching Protocols`) are written before any frame, so a frame tungstenite
/// writes on its own (a pong, a close reply) can never overtake the handshake.
#[derive(Debug)]
pub struct Wire<'a> {
    stream: &'a mut TcpStream,
    out: &'a mut Vec<u8>,
    out_pos: &'a mut usize,
}

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        while *self.out_pos < self.out.len() {
            match self.stream.write(&self.out[*self.out_pos..])? {
                0 => return Ok(0),
                n => *self.out_pos += n,
            }
        }
        self.out.clear();
        *self.out_pos = 0;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// The socket has nothing more for now (edge-triggered: wait for the next event).
pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// A signal interrupted the call; try again.
pub fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}
