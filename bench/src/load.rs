//! The load side: one thread, one `mio::Poll`, any number of HTTP clients and WebSocket
//! subscribers in a `Slab`.
//!
//! It is built to cost less per request and per delivery than the server it measures:
//! every socket is read into one shared 64 KiB buffer, and a connection keeps bytes of its
//! own only while a response or frame is split across reads (no 128 KiB zero-filled read
//! buffer per WebSocket, as tungstenite's default would be). A read shorter than the buffer
//! means the socket is drained, so a readable event costs one `read`, not two.
//!
//! Server frames are parsed by hand: unmasked text frames of `{"id":..,"total":..}` (totals
//! of `A1` are tracked, other products' are ignored), pings are answered, anything else is
//! an error. Each subscriber's first `A1` total is its baseline; every later one must be
//! larger, and one that skips totals is counted as conflated.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use slab::Slab;

const READ_CHUNK_BYTES: usize = 64 * 1024;
/// WebSocket handshakes in flight at once, well inside the listener's backlog.
const CONNECTS_IN_FLIGHT: usize = 256;
/// Subscribers per loopback source address (127.<run>.x.y), on ports from
/// `FIRST_SOURCE_PORT` up.
const SUBSCRIBERS_PER_SOURCE: usize = 40_000;
const FIRST_SOURCE_PORT: u16 = 20_000;
/// How long a connect or handshake phase may make no progress before it fails.
const STALL: Duration = Duration::from_secs(20);
const MAX_ERRORS_KEPT: usize = 8;

/// What the load reports to the scenario driving it.
pub trait Sink {
    /// A complete `200` response on HTTP client `key`. Returns whether to send the client's
    /// request again straight away.
    fn response(&mut self, key: usize, now: Instant) -> bool;
    /// Subscriber `key` received the total `post` orders after its baseline, having missed
    /// `skipped` totals in between (conflation).
    fn delivery(&mut self, key: usize, post: u64, skipped: u64, now: Instant);
}

/// A sink for phases that expect no traffic but handshakes.
pub struct Quiet;

impl Sink for Quiet {
    fn response(&mut self, _: usize, _: Instant) -> bool {
        false
    }
    fn delivery(&mut self, _: usize, _: u64, _: u64, _: Instant) {}
}

enum Role {
    Http { request: Vec<u8> },
    Subscriber(Subscriber),
}

#[derive(Default)]
struct Subscriber {
    upgraded: bool,
    /// The first `A1` total received.
    baseline: Option<u64>,
    last: u64,
}

struct Conn {
    stream: TcpStream,
    role: Role,
    connected: bool,
    /// Input not consumed yet: a response or frame split across reads.
    partial: Vec<u8>,
    /// Output the socket did not take yet.
    pending: Vec<u8>,
}

pub struct Load {
    poll: Poll,
    events: Events,
    /// The current turn's events as (key, readable, writable), kept for its allocation.
    ready: Vec<(usize, bool, bool)>,
    conns: Slab<Conn>,
    scratch: Vec<u8>,
    server: SocketAddr,
    host: String,
    /// Third octet of the loopback source addresses subscribers bind to, so that each
    /// run uses addresses of its own.
    source_net: u8,
    subscribers_opened: usize,
    /// Subscribers that have their baseline.
    subscribers_ready: usize,
    pub error_count: u64,
    pub errors: Vec<String>,
    /// Reads that brought subscribers at least one frame, and the frames they brought:
    /// their ratio is how many updates the server sent per write.
    pub frame_reads: u64,
    pub frames: u64,
}

impl Load {
    pub fn new(server: SocketAddr, source_net: u8) -> io::Result<Load> {
        Ok(Load {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            ready: Vec::new(),
            conns: Slab::new(),
            scratch: vec![0; READ_CHUNK_BYTES],
            server,
            host: server.to_string(),
            source_net,
            subscribers_opened: 0,
            subscribers_ready: 0,
            error_count: 0,
            errors: Vec::new(),
            frame_reads: 0,
            frames: 0,
        })
    }

    /// The HTTP/1.1 request for `method path` with an optional JSON body.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Vec<u8> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(body) = body {
            req.push_str("Content-Type: application/json\r\n");
            req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        } else {
            req.push_str("\r\n");
        }
        req.into_bytes()
    }

    /// Connects an HTTP client (blocking until connected) that sends `request` each time it
    /// is told to. Returns its key.
    pub fn open_http(&mut self, request: Vec<u8>) -> io::Result<usize> {
        let stream = std::net::TcpStream::connect(self.server)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        self.insert(TcpStream::from_std(stream), Role::Http { request }, true)
    }

    /// Sends HTTP client `key`'s request.
    pub fn send(&mut self, key: usize) {
        let Some(Conn {
            role: Role::Http { request },
            ..
        }) = self.conns.get_mut(key)
        else {
            return;
        };
        // Taken out and put back rather than cloned: no allocation per request.
        let request = std::mem::take(request);
        self.write(key, &request);
        if let Some(Conn {
            role: Role::Http { request: slot },
            ..
        }) = self.conns.get_mut(key)
        {
            *slot = request;
        }
    }

    /// Opens `count` more subscribers of `path`, at most [`CONNECTS_IN_FLIGHT`] handshakes at
    /// a time, and returns once every subscriber opened so far has its baseline total.
    pub fn open_subscribers(&mut self, path: &str, count: usize) -> io::Result<()> {
        let upgrade = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            self.host
        )
        .into_bytes();
        let target = self.subscribers_opened + count;
        let mut progress = Instant::now();
        let mut ready = self.subscribers_ready;
        while self.subscribers_ready < target {
            while self.subscribers_opened < target
                && self.subscribers_opened - self.subscribers_ready < CONNECTS_IN_FLIGHT
            {
                self.connect_subscriber(upgrade.clone())?;
            }
            self.turn(Some(Duration::from_millis(100)), &mut Quiet)?;
            if self.subscribers_ready > ready {
                ready = self.subscribers_ready;
                progress = Instant::now();
            } else if progress.elapsed() > STALL || self.error_count > 0 {
                return Err(io::Error::other(format!(
                    "{} of {target} subscribers open; {}",
                    self.subscribers_ready,
                    self.errors.join("; ")
                )));
            }
        }
        Ok(())
    }

    /// Points what is opened from now on (subscribers, HTTP clients) at another server,
    /// for a load spread over several processes.
    pub fn aim(&mut self, server: SocketAddr) {
        self.server = server;
        self.host = server.to_string();
    }

    /// Subscribers opened, whether or not they are ready yet.
    pub fn subscribers(&self) -> usize {
        self.subscribers_opened
    }

    fn connect_subscriber(&mut self, upgrade: Vec<u8>) -> io::Result<()> {
        // An explicit source port: letting bind pick one searches every port bound on the
        // address, which grows slow with tens of thousands of them.
        let i = self.subscribers_opened;
        let n = i / SUBSCRIBERS_PER_SOURCE;
        let ip = [127, self.source_net, (n / 250) as u8, 2 + (n % 250) as u8];
        let port = FIRST_SOURCE_PORT + (i % SUBSCRIBERS_PER_SOURCE) as u16;
        let fd = rustix::net::socket_with(
            AddressFamily::INET,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?;
        rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
        rustix::net::sockopt::set_tcp_nodelay(&fd, true)?;
        if rustix::net::bind(&fd, &SocketAddrV4::new(ip.into(), port)).is_err() {
            rustix::net::bind(&fd, &SocketAddrV4::new(ip.into(), 0))?;
        }
        match rustix::net::connect(&fd, &self.server) {
            Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
            Err(e) => return Err(e.into()),
        }
        let stream = TcpStream::from_std(std::net::TcpStream::from(fd));
        let key = self.insert(stream, Role::Subscriber(Subscriber::default()), false)?;
        self.conns[key].pending = upgrade;
        self.subscribers_opened += 1;
        Ok(())
    }

    fn insert(&mut self, mut stream: TcpStream, role: Role, connected: bool) -> io::Result<usize> {
        let entry = self.conns.vacant_entry();
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.poll
            .registry()
            .register(&mut stream, Token(entry.key()), interest)?;
        let key = entry.key();
        entry.insert(Conn {
            stream,
            role,
            connected,
            partial: Vec::new(),
            pending: Vec::new(),
        });
        Ok(key)
    }

    /// Polls once (for at most `timeout`) and handles what is ready.
    pub fn turn(&mut self, timeout: Option<Duration>, sink: &mut impl Sink) -> io::Result<()> {
        match self.poll.poll(&mut self.events, timeout) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            r => r?,
        }
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().map(|e| {
            let readable = e.is_readable() || e.is_read_closed() || e.is_error();
            (e.token().0, readable, e.is_writable())
        }));
        for &(key, readable, writable) in &ready {
            if writable && self.conns.contains(key) {
                let conn = &mut self.conns[key];
                conn.connected = true;
                let pending = std::mem::take(&mut conn.pending);
                self.write(key, &pending);
            }
            if readable && self.conns.contains(key) {
                self.read(key, sink);
            }
        }
        self.ready = ready;
        Ok(())
    }

    fn write(&mut self, key: usize, bytes: &[u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !conn.connected || !conn.pending.is_empty() {
            conn.pending.extend_from_slice(bytes);
            return;
        }
        let mut written = 0;
        while written < bytes.len() {
            match conn.stream.write(&bytes[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(key, format!("write: {e}")),
            }
        }
        conn.pending.extend_from_slice(&bytes[written..]);
    }

    fn read(&mut self, key: usize, sink: &mut impl Sink) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let n = match conn.stream.read(&mut self.scratch) {
                Ok(0) => return self.fail(key, "the server closed the connection".into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.fail(key, format!("read: {e}")),
            };
            let now = Instant::now();
            let mut input = std::mem::take(&mut conn.partial);
            let scratch = std::mem::take(&mut self.scratch);
            let result = if input.is_empty() {
                let result = self.consume(key, &scratch[..n], now, sink);
                if let Ok(used) = result {
                    input.extend_from_slice(&scratch[used..n]);
                }
                result
            } else {
                input.extend_from_slice(&scratch[..n]);
                let result = self.consume(key, &input, now, sink);
                if let Ok(used) = result {
                    input.drain(..used);
                }
                result
            };
            self.scratch = scratch;
            if let Err(e) = result {
                return self.fail(key, e);
            }
            match self.conns.get_mut(key) {
                Some(conn) => conn.partial = input,
                None => return,
            }
            if n < READ_CHUNK_BYTES {
                return;
            }
        }
    }

    /// Handles every complete response or frame in `input`; returns the bytes used.
    fn consume(
        &mut self,
        key: usize,
        input: &[u8],
        now: Instant,
        sink: &mut impl Sink,
    ) -> Result<usize, String> {
        let mut used = 0;
        let upgraded = match &self.conns[key].role {
            Role::Http { .. } => {
                while let Some(n) = response(&input[used..], 200)? {
                    used += n;
                    if sink.response(key, now) {
                        self.send(key);
                    }
                }
                return Ok(used);
            }
            Role::Subscriber(sub) => sub.upgraded,
        };
        if !upgraded {
            match response(input, 101)? {
                Some(n) => used = n,
                None => return Ok(0),
            }
            if let Some(Conn {
                role: Role::Subscriber(sub),
                ..
            }) = self.conns.get_mut(key)
            {
                sub.upgraded = true;
            }
        }
        let frames = self.frames;
        while let Some((opcode, payload, n)) = frame(&input[used..])? {
            used += n;
            self.frames += 1;
            match opcode {
                0x1 => {
                    let (id, total) = total_message(payload)?;
                    if id == b"A1" {
                        self.total(key, total, now, sink)?;
                    }
                }
                0x9 => {
                    let mut pong = vec![0x8a, 0x80 | payload.len() as u8, 0, 0, 0, 0];
                    pong.extend_from_slice(payload);
                    self.write(key, &pong);
                }
                0x8 => return Err(format!("close frame {payload:?}")),
                _ => return Err(format!("unexpected opcode {opcode}")),
            }
        }
        if self.frames > frames {
            self.frame_reads += 1;
        }
        Ok(used)
    }

    fn total(
        &mut self,
        key: usize,
        total: u64,
        now: Instant,
        sink: &mut impl Sink,
    ) -> Result<(), String> {
        let Some(Conn {
            role: Role::Subscriber(sub),
            ..
        }) = self.conns.get_mut(key)
        else {
            return Ok(());
        };
        let Some(baseline) = sub.baseline else {
            sub.baseline = Some(total);
            sub.last = total;
            self.subscribers_ready += 1;
            return Ok(());
        };
        if total <= sub.last {
            return Err(format!("total {total} after {}", sub.last));
        }
        let skipped = total - sub.last - 1;
        sub.last = total;
        sink.delivery(key, total - baseline, skipped, now);
        Ok(())
    }

    fn fail(&mut self, key: usize, why: String) {
        self.error_count += 1;
        if self.errors.len() < MAX_ERRORS_KEPT {
            self.errors.push(why);
        }
        let mut conn = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut conn.stream);
    }
}

/// Parses one HTTP response with status `expected` from the start of `input`: its length
/// with the body, or `None` while incomplete.
fn response(input: &[u8], expected: u16) -> Result<Option<usize>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut res = httparse::Response::new(&mut headers);
    let head = match res.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad response: {e}")),
    };
    if res.code != Some(expected) {
        let text = String::from_utf8_lossy(&input[..input.len().min(300)]);
        return Err(format!("expected {expected}, got {text:?}"));
    }
    let body: usize = res
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
        .unwrap_or(0);
    Ok((input.len() >= head + body).then_some(head + body))
}

/// One server frame: its opcode, its payload, and its length on the wire.
type Frame<'a> = (u8, &'a [u8], usize);

/// Parses one unmasked, unfragmented server frame.
fn frame(input: &[u8]) -> Result<Option<Frame<'_>>, String> {
    let [b0, b1, ..] = *input else {
        return Ok(None);
    };
    if b0 & 0xf0 != 0x80 || b1 & 0x80 != 0 {
        return Err(format!("unexpected frame header {b0:#04x} {b1:#04x}"));
    }
    let (len, head) = match b1 & 0x7f {
        126 if input.len() >= 4 => (u16::from_be_bytes([input[2], input[3]]) as usize, 4),
        127 if input.len() >= 10 => (
            u64::from_be_bytes(input[2..10].try_into().expect("8 bytes")) as usize,
            10,
        ),
        126 | 127 => return Ok(None),
        n => (n as usize, 2),
    };
    if input.len() < head + len {
        return Ok(None);
    }
    Ok(Some((b0 & 0x0f, &input[head..head + len], head + len)))
}

/// Reads `{"id":"<id>","total":<n>}`.
fn total_message(payload: &[u8]) -> Result<(&[u8], u64), String> {
    let bad = || format!("unexpected message {:?}", String::from_utf8_lossy(payload));
    let rest = payload.strip_prefix(b"{\"id\":\"").ok_or_else(bad)?;
    let quote = rest.iter().position(|&b| b == b'"').ok_or_else(bad)?;
    let (id, rest) = rest.split_at(quote);
    let digits = rest
        .strip_prefix(b"\",\"total\":")
        .and_then(|r| r.strip_suffix(b"}"))
        .ok_or_else(bad)?;
    let total = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or_else(bad)?;
    Ok((id, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_messages() {
        let mut input = vec![0x81, 22];
        input.extend_from_slice(b"{\"id\":\"A1\",\"total\":13}");
        input.push(0x89);
        assert_eq!(frame(&input[..5]), Ok(None));
        let (op, payload, n) = frame(&input).unwrap().unwrap();
        assert_eq!((op, n), (1, 24));
        assert_eq!(total_message(payload), Ok((&b"A1"[..], 13)));
        assert_eq!(frame(&input[n..]), Ok(None));
        assert!(total_message(b"{\"id\":\"A1\",\"total\":-1}").is_err());
        assert!(
            frame(&[0x81, 0x85]).is_err(),
            "a masked server frame is refused"
        );
    }

    #[test]
    fn responses() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";
        assert_eq!(response(ok, 200), Ok(Some(ok.len())));
        assert_eq!(response(&ok[..ok.len() - 1], 200), Ok(None));
        assert!(response(ok, 101).is_err());
    }
}
