//! The yardstick: what one thread can do with no real work, so that mock-srv's figures can
//! be read as a ratio measured in the same run on the same machine.
//!
//! One `mio::Poll`, connections in a `Slab`, requests framed by `httparse`. Every request
//! gets a fixed `{"ok":true}`. A request with `Upgrade: websocket` gets a 101 and the current
//! frame; every `POST` builds one frame, `{"id":"A1","total":<posts so far>}`, and appends it
//! to one log of frames shared by all WebSockets. Each WebSocket remembers how far into the
//! log it has written, and is written from the log itself: nothing is copied per subscriber
//! unless its socket is full. Responses are written straight away; the WebSockets are
//! written in rounds, as mock-srv's are: each POST's subscribers are listed at the start of
//! the next round, and at most [`WS_FLUSHES_PER_TURN`] are written per turn, so both
//! schedule the same work the same way. Nothing is looked up, validated, logged or
//! serialised beyond that.
//!
//! `yardstick [--port N]` prints `yardstick listening on http://ADDR` on its first line.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use tungstenite::handshake::derive_accept_key;

const LISTENER: Token = Token(usize::MAX);
const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// The same as mock-srv's: most WebSockets written per turn before polling again.
const WS_FLUSHES_PER_TURN: usize = 128;

struct Conn {
    stream: TcpStream,
    inbuf: Vec<u8>,
    /// Bytes not yet written, before anything from the log.
    out: Vec<u8>,
    /// Position in `Yardstick::subscribers` once this is a WebSocket.
    subscriber: Option<usize>,
    /// How far into the log this WebSocket has written or copied to `out`.
    pos: u64,
    /// Listed in `Yardstick::dirty`.
    listed: bool,
}

struct Yardstick {
    conns: Slab<Conn>,
    subscribers: Vec<usize>,
    /// Keys to write, oldest first.
    dirty: VecDeque<usize>,
    /// After this many more keys are written, a round starts (`None`: no POST since).
    round_due_in: Option<usize>,
    posts: u64,
    /// The current frame: an unmasked text frame of `{"id":"A1","total":<posts>}`.
    frame: Vec<u8>,
    /// Frames published and not yet written by every WebSocket; `log[0]` is at `log_start`.
    log: Vec<u8>,
    log_start: u64,
    /// The log's end when the current round started.
    round_from: u64,
    scratch: Vec<u8>,
}

fn main() -> io::Result<()> {
    let mut port = 0u16;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--port", Some(value)) => port = value.parse().map_err(io::Error::other)?,
            _ => return Err(io::Error::other("usage: yardstick [--port N]")),
        }
    }
    if let Some(limit) = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum {
        let _ = rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(limit),
                maximum: Some(limit),
            },
        );
    }
    let mut listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    println!("yardstick listening on http://{}", listener.local_addr()?);
    io::stdout().flush()?;

    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut y = Yardstick {
        conns: Slab::new(),
        subscribers: Vec::new(),
        dirty: VecDeque::new(),
        round_due_in: None,
        posts: 0,
        frame: Vec::new(),
        log: Vec::new(),
        log_start: 0,
        round_from: 0,
        scratch: vec![0; READ_CHUNK_BYTES],
    };
    y.build_frame();
    loop {
        let busy = !y.dirty.is_empty() || y.round_due_in.is_some();
        let timeout = busy.then_some(Duration::ZERO);
        match poll.poll(&mut events, timeout) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => r?,
        }
        for event in &events {
            if event.token() == LISTENER {
                y.accept(&listener, &poll);
                continue;
            }
            let key = event.token().0;
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                y.read(key);
            }
            if event.is_writable() && y.conns.contains(key) {
                y.flush(key);
            }
        }
        for _ in 0..WS_FLUSHES_PER_TURN {
            if y.round_due_in == Some(0) {
                y.start_round();
            }
            let Some(key) = y.dirty.pop_front() else {
                break;
            };
            if let Some(n) = &mut y.round_due_in {
                *n -= 1;
            }
            if let Some(conn) = y.conns.get_mut(key) {
                conn.listed = false;
                y.flush(key);
            }
        }
    }
}

impl Yardstick {
    fn accept(&mut self, listener: &TcpListener, poll: &Poll) {
        loop {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let entry = self.conns.vacant_entry();
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if poll
                        .registry()
                        .register(&mut stream, Token(entry.key()), interest)
                        .is_ok()
                    {
                        entry.insert(Conn {
                            stream,
                            inbuf: Vec::new(),
                            out: Vec::new(),
                            subscriber: None,
                            pos: 0,
                            listed: false,
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // Out of descriptors or a reset before accept: try again on the next event.
                Err(_) => return,
            }
        }
    }

    fn read(&mut self, key: usize) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => return self.close(key),
                Ok(n) => {
                    if conn.subscriber.is_none() {
                        conn.inbuf.extend_from_slice(&self.scratch[..n]);
                        if !self.handle_requests(key) {
                            return self.close(key);
                        }
                        self.flush(key);
                    }
                    // Client frames to a WebSocket are read and dropped.
                    if n < self.scratch.len() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(key),
            }
        }
    }

    /// Answers every complete request in the input. False when the input is not HTTP.
    fn handle_requests(&mut self, key: usize) -> bool {
        let mut consumed = 0;
        loop {
            let conn = &mut self.conns[key];
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let head = match req.parse(&conn.inbuf[consumed..]) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => break,
                Err(_) => return false,
            };
            let header = |name: &str| {
                req.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| h.value)
            };
            let body: usize = header("content-length")
                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                .unwrap_or(0);
            if conn.inbuf.len() - consumed < head + body {
                break;
            }
            consumed += head + body;
            let upgrade = header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case(b"websocket"));
            if let (true, Some(ws_key)) = (upgrade, header("sec-websocket-key")) {
                let accept = derive_accept_key(ws_key);
                conn.out.extend_from_slice(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                      Connection: Upgrade\r\nSec-WebSocket-Accept: ",
                );
                conn.out.extend_from_slice(accept.as_bytes());
                conn.out.extend_from_slice(b"\r\n\r\n");
                self.build_frame();
                let conn = &mut self.conns[key];
                conn.out.extend_from_slice(&self.frame);
                conn.inbuf = Vec::new();
                conn.pos = self.log_start + self.log.len() as u64;
                conn.subscriber = Some(self.subscribers.len());
                self.subscribers.push(key);
                return true;
            }
            conn.out.extend_from_slice(OK);
            if req.method == Some("POST") {
                self.publish();
            }
        }
        self.conns[key].inbuf.drain(..consumed);
        true
    }

    /// Counts the POST and, if anyone listens, logs its frame (mock-srv also frames an
    /// update only when its category has subscribers).
    fn publish(&mut self) {
        self.posts += 1;
        if self.subscribers.is_empty() {
            return;
        }
        self.build_frame();
        self.log.extend_from_slice(&self.frame);
        if self.round_due_in.is_none() {
            self.round_due_in = Some(self.dirty.len());
        }
    }

    /// Everyone has written what was logged before the previous round started: drop it,
    /// and list every subscriber if anything was logged since.
    fn start_round(&mut self) {
        self.round_due_in = None;
        self.log
            .drain(..(self.round_from - self.log_start) as usize);
        self.log_start = self.round_from;
        let end = self.log_start + self.log.len() as u64;
        if end == self.round_from {
            return;
        }
        self.round_from = end;
        for &key in &self.subscribers {
            let conn = &mut self.conns[key];
            if !conn.listed {
                conn.listed = true;
                self.dirty.push_back(key);
            }
        }
    }

    fn build_frame(&mut self) {
        self.frame.clear();
        self.frame.extend_from_slice(&[0x81, 0]);
        write!(self.frame, "{{\"id\":\"A1\",\"total\":{}}}", self.posts).expect("Vec write");
        self.frame[1] = (self.frame.len() - 2) as u8;
    }

    /// Writes `out`, then (a WebSocket) the log from where it left off; what the socket does
    /// not take is copied to `out`.
    fn flush(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let mut written = 0;
        while written < conn.out.len() {
            match conn.stream.write(&conn.out[written..]) {
                Ok(0) => return self.close(key),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(key),
            }
        }
        conn.out.drain(..written);
        if conn.subscriber.is_none() {
            return;
        }
        let mut from = (conn.pos - self.log_start) as usize;
        conn.pos = self.log_start + self.log.len() as u64;
        while conn.out.is_empty() && from < self.log.len() {
            match conn.stream.write(&self.log[from..]) {
                Ok(0) => return self.close(key),
                Ok(n) => from += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(key),
            }
        }
        conn.out.extend_from_slice(&self.log[from..]);
    }

    fn close(&mut self, key: usize) {
        let conn = self.conns.remove(key);
        if let Some(index) = conn.subscriber {
            self.subscribers.swap_remove(index);
            if let Some(&moved) = self.subscribers.get(index) {
                self.conns[moved].subscriber = Some(index);
            }
        }
    }
}
