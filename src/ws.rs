//! One WebSocket session over tungstenite's `WebSocketContext`, driven on the connection's
//! own non-blocking stream. Writes only queue (the server flushes once per loop turn);
//! a session over its byte budget keeps just the latest total of each product until the
//! socket drains (conflation), so a slow client costs bounded memory and still converges.
//! Also the parser for the commands clients send.
//!
//! Totals, the one message sent to thousands of sessions at once, are framed once per update
//! in their category's [`Feed`], and a session takes all it has not taken yet in one copy
//! ([`WsSession::catch_up`]) into its own queue of frames. Everything else (replies, pings, pongs, the closing
//! handshake, and every read) goes through tungstenite, and a total goes through it too
//! while tungstenite holds unsent frames of its own, so frames leave in the order queued.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use serde_json::Value;
use tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, Utf8Bytes};

use crate::feed::Feed;

/// Size of the buffer tungstenite reads client frames into, allocated for every session.
/// Clients send tiny commands (`update-category` is 72 bytes on the wire), so 128 bytes
/// hold one in a single read; a larger message costs more reads, not more memory up front.
const READ_BUFFER_BYTES: usize = 128;
/// Largest frame buffer a session keeps once it is written.
const KEPT_FRAME_BYTES: usize = 4096;

/// What [`WsSession::read`] produced.
#[derive(Debug)]
pub enum Incoming {
    /// A text message from the client.
    Text(Utf8Bytes),
    /// A binary message (not part of the protocol; answered with an error, or echoed).
    Binary(tungstenite::Bytes),
    /// A control frame tungstenite handled itself (ping, pong, the peer's close).
    Control,
    /// Nothing more to read until the socket is readable again.
    Blocked,
}

/// Why the session is over. `code` is the close code to send first, if any.
#[derive(Debug)]
pub struct Closed {
    pub code: Option<u16>,
    pub reason: String,
}

/// Whether a flush emptied the queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Flushed {
    /// Everything queued is on the wire.
    All,
    /// The socket is full; wait for a writable event.
    Blocked,
}

/// `text` as one unmasked text frame: the totals a new subscriber starts with, and the
/// conflated totals sent once its queue drains. (Published totals are framed once for all
/// subscribers, in their category's [`Feed`].)
pub fn text_frame(text: &str) -> Vec<u8> {
    let mut frame = Vec::with_capacity(text.len() + 10);
    append_text_frame(&mut frame, text.as_bytes());
    frame
}

/// The text of a frame made by [`append_text_frame`], for tungstenite to send.
fn frame_text(frame: &[u8]) -> Utf8Bytes {
    let header = match frame[1] {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    String::from_utf8_lossy(&frame[header..])
        .into_owned()
        .into()
}

/// Appends `text` as one unmasked text frame (FIN set) to `out`.
pub fn append_text_frame(out: &mut Vec<u8>, text: &[u8]) {
    let len = text.len();
    out.push(0x81); // FIN, text
    match len {
        0..=125 => out.push(len as u8),
        126..=0xffff => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(text);
}

/// Prepared frames waiting for the socket, and how much of them is written.
#[derive(Debug, Default)]
struct Frames {
    bytes: Vec<u8>,
    written: usize,
}

impl Frames {
    fn backlog(&self) -> usize {
        self.bytes.len() - self.written
    }

    /// The stream as tungstenite gets it: these frames are written before anything it
    /// writes, even when it writes straight away (a close does).
    fn before<'a, S: Write>(&'a mut self, stream: &'a mut S) -> Before<'a, S> {
        Before {
            frames: self,
            stream,
        }
    }
}

struct Before<'a, S> {
    frames: &'a mut Frames,
    stream: &'a mut S,
}

impl<S: Read> Read for Before<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl<S: Write> Write for Before<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let f = &mut *self.frames;
        while f.written < f.bytes.len() {
            match self.stream.write(&f.bytes[f.written..])? {
                0 => return Ok(0),
                n => f.written += n,
            }
        }
        // Written. A buffer that grew past a few rounds of updates is given back; a small one
        // is kept, so that a busy subscriber does not grow a new one every round.
        f.bytes.clear();
        f.written = 0;
        if f.bytes.capacity() > KEPT_FRAME_BYTES {
            f.bytes = Vec::new();
        }
        if buf.is_empty() {
            return Ok(0);
        }
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write(&[])?;
        self.stream.flush()
    }
}

/// A server-side WebSocket session.
#[derive(Debug)]
pub struct WsSession {
    ctx: tungstenite::protocol::WebSocketContext,
    /// Prepared frames queued, written before anything tungstenite holds (always newer).
    frames: Frames,
    /// Tungstenite may hold frames not yet written: totals queue behind them, through it.
    ctx_queued: bool,
    queue_bytes: usize,
    /// Latest total per product id, kept instead of frames while over the byte budget.
    conflated: BTreeMap<String, u64>,
    /// How far into its category's feed the session has taken.
    feed_pos: u64,
    /// An `/echo` session: messages are sent back instead of read as commands.
    pub echo: bool,
}

impl WsSession {
    /// A session that starts with `leftover` (bytes the client sent after its handshake).
    /// `max_message_bytes` bounds what the client may send; `queue_bytes` what may wait
    /// for the client to read.
    pub fn new(leftover: Vec<u8>, max_message_bytes: usize, queue_bytes: usize) -> WsSession {
        let queue_bytes = queue_bytes.max(2);
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            // Buffer up to the budget: frames go out only when the server flushes.
            .write_buffer_size(queue_bytes - 1)
            .max_write_buffer_size(queue_bytes)
            .max_message_size(Some(max_message_bytes))
            .max_frame_size(Some(max_message_bytes));
        let ctx = tungstenite::protocol::WebSocketContext::from_partially_read(
            leftover,
            Role::Server,
            Some(config),
        );
        WsSession {
            ctx,
            frames: Frames::default(),
            ctx_queued: false,
            queue_bytes,
            conflated: BTreeMap::new(),
            feed_pos: 0,
            echo: false,
        }
    }

    /// True while the session is over budget and only keeps latest totals.
    pub fn is_conflating(&self) -> bool {
        !self.conflated.is_empty()
    }

    /// Starts taking from `feed` at its end: what was published before is not for us.
    pub fn follow(&mut self, feed: &Feed) {
        self.feed_pos = feed.end();
    }

    /// Takes the totals published to `feed` since the session last took from it. With
    /// nothing queued ahead of them, they are written straight from the feed, and only what
    /// the socket does not take is copied into the session's queue; within the budget in one
    /// copy, else one by one, conflating past the budget. Behind frames of tungstenite's,
    /// they queue behind those, one by one.
    pub fn catch_up<S: Read + Write>(&mut self, stream: &mut S, feed: &Feed) {
        self.take(stream, feed, true);
    }

    /// As [`WsSession::catch_up`], but only queues: nothing is written now.
    pub fn catch_up_queued<S: Read + Write>(&mut self, stream: &mut S, feed: &Feed) {
        self.take(stream, feed, false);
    }

    fn take<S: Read + Write>(&mut self, stream: &mut S, feed: &Feed, write_now: bool) {
        let mut from = std::mem::replace(&mut self.feed_pos, feed.end());
        if from == feed.end() {
            return;
        }
        if write_now && self.ctx_queued && self.ctx.flush(&mut self.frames.before(stream)).is_ok() {
            // What tungstenite held (a pong, say) is written: the totals can go straight
            // from the feed. (A failed flush is found again by the next one.)
            self.ctx_queued = false;
        }
        let direct = !self.is_conflating() && !self.ctx_queued && self.ctx.can_write();
        if write_now && direct && self.frames.backlog() == 0 {
            from += write_some(stream, feed.since(from)) as u64;
            if from == feed.end() {
                return;
            }
            // A frame cut short is finished from the queue, whatever the budget.
            let boundary = feed.next_frame(from);
            self.frames
                .bytes
                .extend_from_slice(feed.between(from, boundary));
            from = boundary;
        }
        let bytes = feed.since(from);
        if direct && self.frames.backlog() + bytes.len() <= self.queue_bytes {
            self.frames.bytes.extend_from_slice(bytes);
            return;
        }
        for (frame, t) in feed.totals_since(from) {
            self.push_total(stream, frame, &t.id, t.total);
        }
    }

    /// Queues one total: `frame` is `text` framed. Never writes to the socket; past the
    /// byte budget it remembers only the latest total of the product.
    pub fn push_total<S: Read + Write>(
        &mut self,
        stream: &mut S,
        frame: &[u8],
        id: &str,
        total: u64,
    ) {
        if self.is_conflating() || !self.enqueue(stream, frame) {
            self.conflated.insert(id.to_string(), total);
        }
    }

    /// Queues a total's frame; false when the budget is full.
    fn enqueue<S: Read + Write>(&mut self, stream: &mut S, frame: &[u8]) -> bool {
        if self.ctx_queued || !self.ctx.can_write() {
            // Behind a reply, a ping or a close: keep the order (after a close, it is dropped).
            return self.queue(stream, Message::Text(frame_text(frame)));
        }
        if self.frames.backlog() + frame.len() > self.queue_bytes {
            return false;
        }
        self.frames.bytes.extend_from_slice(frame);
        true
    }

    /// Queues a text message that is not a total (an error reply). Dropped when the client
    /// is over budget: it is not reading, and the message carries no state.
    pub fn push_text<S: Read + Write>(&mut self, stream: &mut S, text: String) {
        self.queue(stream, Message::Text(text.into()));
    }

    /// Queues a ping; the client's pong (or any message) shows it is still there.
    pub fn ping<S: Read + Write>(&mut self, stream: &mut S) {
        self.queue(stream, Message::Ping(Default::default()));
    }

    /// Forgets conflated totals (the subscription moved to another category).
    pub fn clear_conflated(&mut self) {
        self.conflated.clear();
    }

    /// Queues any message (the echo endpoint's replies); false when the budget is full.
    pub fn push_message<S: Read + Write>(&mut self, stream: &mut S, msg: Message) -> bool {
        self.queue(stream, msg)
    }

    /// Buffers one message; false when the budget is full.
    fn queue<S: Read + Write>(&mut self, stream: &mut S, msg: Message) -> bool {
        self.ctx_queued = true;
        match self.ctx.write(&mut self.frames.before(stream), msg) {
            Ok(()) => true,
            Err(WsError::WriteBufferFull(_)) => false,
            // The frame is buffered; the opportunistic write just found the socket full,
            // or failed: the next flush reports a broken socket.
            Err(_) => true,
        }
    }

    /// Writes everything queued. After the queue drains, conflated totals are queued and
    /// written too. `Err` means the session is over and the connection must close.
    pub fn flush<S: Read + Write>(&mut self, stream: &mut S) -> Result<Flushed, Closed> {
        loop {
            let flushed = if self.ctx_queued {
                self.ctx.flush(&mut self.frames.before(stream))
            } else {
                // tungstenite holds nothing: only our frames to write.
                self.frames.before(stream).flush().map_err(WsError::Io)
            };
            match flushed {
                Ok(()) => self.ctx_queued = false,
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Flushed::Blocked);
                }
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(closed(e)),
            }
            if self.conflated.is_empty() {
                return Ok(Flushed::All);
            }
            // Drained: send the latest totals, as many as fit; the rest wait for the next pass.
            let mut queued = 0;
            while let Some((id, total)) = self.conflated.pop_first() {
                let frame = text_frame(&crate::routes::total_message(&id, total));
                if !self.enqueue(stream, &frame) {
                    self.conflated.insert(id, total);
                    break;
                }
                queued += 1;
            }
            if queued == 0 {
                // Not even one frame fits an empty queue (a budget below one update): stop
                // rather than spin. Config refuses such budgets; this is the last guard.
                return Ok(Flushed::All);
            }
        }
    }

    /// Reads the next message. Pings are answered (queued) by tungstenite.
    pub fn read<S: Read + Write>(&mut self, stream: &mut S) -> Result<Incoming, Closed> {
        // Reading may queue a pong or a close reply.
        self.ctx_queued = true;
        loop {
            return match self.ctx.read(&mut self.frames.before(stream)) {
                Ok(Message::Text(t)) => Ok(Incoming::Text(t)),
                Ok(Message::Binary(b)) => Ok(Incoming::Binary(b)),
                Ok(_) => Ok(Incoming::Control),
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    Ok(Incoming::Blocked)
                }
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(closed(e)),
            };
        }
    }

    /// Ends a session tungstenite has given up on (the client broke the protocol), telling
    /// the client why with `code` if everything queued before can be written now: the close
    /// frame never lands inside a frame cut short. Otherwise the connection just closes.
    pub fn fail<S: Read + Write>(&mut self, stream: &mut S, code: u16, reason: &str) {
        if self.ctx.flush(&mut self.frames.before(stream)).is_ok() {
            write_some(stream, &close_frame(code, reason));
        }
    }

    /// Starts the closing handshake with `code` (e.g. 1001 on shutdown) and tries to send it.
    pub fn close<S: Read + Write>(&mut self, stream: &mut S, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        };
        self.ctx_queued = true;
        let _ = self.ctx.close(&mut self.frames.before(stream), Some(frame));
    }
}

/// Writes as much of `bytes` as the socket takes now. An error is left for the next flush
/// to find.
fn write_some<S: Write>(stream: &mut S, bytes: &[u8]) -> usize {
    let mut written = 0;
    while written < bytes.len() {
        match stream.write(&bytes[written..]) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    written
}

/// Maps a tungstenite error to how the session ends. Protocol violations get the close code
/// RFC 6455 asks for; tungstenite itself would only drop the TCP connection.
fn closed(e: WsError) -> Closed {
    let code = match &e {
        WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Io(_) => None,
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => Some(1009),
        WsError::Capacity(_) => Some(1009),
        WsError::Utf8(_) => Some(1007),
        WsError::Protocol(_) => Some(1002),
        _ => Some(1011),
    };
    Closed {
        code,
        reason: e.to_string(),
    }
}

/// The raw bytes of an unmasked close frame with `code` and a reason cut to fit 123 bytes.
/// Sent directly when tungstenite has already given the session up.
fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut frame = vec![0x88, (2 + cut) as u8];
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(&reason.as_bytes()[..cut]);
    frame
}

/// A command a client may send.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// `{"cmd":"update-category","payload":{"category":"confectionery"}}`
    UpdateCategory(String),
}

/// Parses a client message. The error is what the client is told in `{"error":..}`.
pub fn parse_command(text: &str) -> Result<Command, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("message is not valid JSON: {e}"))?;
    let cmd = value.get("cmd").and_then(Value::as_str).ok_or_else(|| {
        "message must be {\"cmd\":\"update-category\",\"payload\":{\"category\":\"...\"}}"
            .to_string()
    })?;
    match cmd {
        "update-category" => value
            .pointer("/payload/category")
            .and_then(Value::as_str)
            .map(|c| Command::UpdateCategory(c.to_string()))
            .ok_or_else(|| "update-category needs payload.category (a string)".to_string()),
        other => Err(format!(
            "unknown command {other:?}; the only command is \"update-category\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A stream whose writes accept up to `room` bytes and then return WouldBlock, like a
    /// full socket; reads come from `input` and then WouldBlock.
    #[derive(Default)]
    struct MockStream {
        input: VecDeque<u8>,
        written: Vec<u8>,
        room: usize,
    }

    impl Read for MockStream {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.input.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.input.len());
            for b in buf.iter_mut().take(n) {
                *b = self.input.pop_front().unwrap();
            }
            Ok(n)
        }
    }

    impl Write for MockStream {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The text payloads of the unmasked server frames in `bytes` (small frames only).
    fn texts(bytes: &[u8]) -> Vec<String> {
        let (mut out, mut i) = (Vec::new(), 0);
        while i + 2 <= bytes.len() {
            let len = (bytes[i + 1] & 0x7f) as usize;
            assert!(len < 126, "test frames are small");
            out.push(String::from_utf8(bytes[i + 2..i + 2 + len].to_vec()).unwrap());
            i += 2 + len;
        }
        out
    }

    fn push(s: &mut WsSession, stream: &mut MockStream, id: &str, total: u64) {
        let frame = text_frame(&crate::routes::total_message(id, total));
        s.push_total(stream, &frame, id, total);
    }

    #[test]
    fn writes_wait_for_flush_and_survive_would_block() {
        let mut s = WsSession::new(Vec::new(), 1024, 4096);
        let mut stream = MockStream::default();
        push(&mut s, &mut stream, "A1", 13);
        push(&mut s, &mut stream, "A1", 14);
        assert!(stream.written.is_empty(), "queueing must not write");
        assert_eq!(s.flush(&mut stream).unwrap(), Flushed::Blocked);
        stream.room = 5;
        assert_eq!(s.flush(&mut stream).unwrap(), Flushed::Blocked);
        stream.room = usize::MAX;
        assert_eq!(s.flush(&mut stream).unwrap(), Flushed::All);
        assert_eq!(
            texts(&stream.written),
            [r#"{"id":"A1","total":13}"#, r#"{"id":"A1","total":14}"#]
        );
    }

    #[test]
    fn over_budget_keeps_the_latest_total_per_product_and_converges() {
        // Room for three 24-byte frames.
        let mut s = WsSession::new(Vec::new(), 1024, 80);
        let mut stream = MockStream::default();
        for total in 1..=1000 {
            push(&mut s, &mut stream, "A1", total);
            push(&mut s, &mut stream, "A2", total + 5000);
        }
        assert!(s.is_conflating());
        stream.room = usize::MAX;
        assert_eq!(s.flush(&mut stream).unwrap(), Flushed::All);
        assert!(!s.is_conflating());
        let got = texts(&stream.written);
        assert!(got.len() <= 5, "bounded: {got:?}");
        let last = |id: &str| got.iter().rev().find(|t| t.contains(id)).unwrap().clone();
        assert_eq!(last("A1"), r#"{"id":"A1","total":1000}"#);
        assert_eq!(last("A2"), r#"{"id":"A2","total":6000}"#);
    }

    /// Frames in `bytes` as (opcode, payload) (small frames only).
    fn frames(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let (mut out, mut i) = (Vec::new(), 0);
        while i + 2 <= bytes.len() {
            let len = (bytes[i + 1] & 0x7f) as usize;
            out.push((bytes[i] & 0x0f, bytes[i + 2..i + 2 + len].to_vec()));
            i += 2 + len;
        }
        out
    }

    #[test]
    fn prepared_totals_keep_their_order_with_replies_and_the_close() {
        let mut s = WsSession::new(Vec::new(), 1024, 4096);
        let mut stream = MockStream::default();
        push(&mut s, &mut stream, "A1", 1);
        // A reply while the socket is full stays in tungstenite; later totals queue behind it.
        s.push_text(&mut stream, "reply".into());
        push(&mut s, &mut stream, "A1", 2);
        // The close writes straight away, after everything queued before it.
        stream.room = usize::MAX;
        s.close(&mut stream, 1001, "bye");
        push(&mut s, &mut stream, "A1", 3);
        let _ = s.flush(&mut stream);
        let got = frames(&stream.written);
        let text = |t: &str| (1, t.as_bytes().to_vec());
        assert_eq!(
            got[..3],
            [
                text(r#"{"id":"A1","total":1}"#),
                text("reply"),
                text(r#"{"id":"A1","total":2}"#)
            ]
        );
        assert_eq!(got[3].0, 8, "then the close: {got:?}");
        assert_eq!(got.len(), 4, "nothing after the close: {got:?}");
    }

    fn publish(feed: &mut Feed, id: &str, total: u64) {
        feed.push(&crate::routes::total_message(id, total), id.into(), total);
    }

    #[test]
    fn a_session_takes_from_its_feed_what_it_has_not_taken_yet() {
        let mut feed = Feed::default();
        publish(&mut feed, "A1", 1);
        let mut s = WsSession::new(Vec::new(), 1024, 4096);
        let mut stream = MockStream::default();
        s.follow(&feed);
        publish(&mut feed, "A1", 2);
        publish(&mut feed, "A2", 3);
        // The socket is full: both are queued, and taking again takes nothing twice.
        s.catch_up(&mut stream, &feed);
        s.catch_up(&mut stream, &feed);
        assert!(stream.written.is_empty());
        // Behind a reply that is still in tungstenite: one by one, in order.
        s.push_text(&mut stream, "reply".into());
        publish(&mut feed, "A1", 4);
        s.catch_up(&mut stream, &feed);
        stream.room = usize::MAX;
        assert_eq!(s.flush(&mut stream).unwrap(), Flushed::All);
        publish(&mut feed, "A2", 5);
        s.catch_up(&mut stream, &feed);
        assert_eq!(s.flush(&mut stream).unwrap(), Flushed::All);
        assert_eq!(
            texts(&stream.written),
            [
                r#"{"id":"A1","total":2}"#,
                r#"{"id":"A2","total":3}"#,
                "reply",
                r#"{"id":"A1","total":4}"#,
                r#"{"id":"A2","total":5}"#,
            ],
            "nothing from before it followed, nothing twice"
        );
    }

    #[test]
    fn a_session_over_budget_takes_only_the_latest_totals_from_its_feed() {
        let mut feed = Feed::default();
        let mut s = WsSession::new(Vec::new(), 1024, 80);
        let mut stream = MockStream::default();
        s.follow(&feed);
        for total in 1..=100 {
            publish(&mut feed, "A1", total);
            publish(&mut feed, "A2", total + 5000);
        }
        s.catch_up(&mut stream, &feed);
        assert!(s.is_conflating());
        stream.room = usize::MAX;
        assert_eq!(s.flush(&mut stream).unwrap(), Flushed::All);
        let got = texts(&stream.written);
        assert!(got.len() <= 5, "bounded: {got:?}");
        assert_eq!(
            got[got.len() - 2..],
            [r#"{"id":"A1","total":100}"#, r#"{"id":"A2","total":5100}"#]
        );
    }

    #[test]
    fn a_frame_the_socket_takes_only_part_of_is_finished_from_the_queue() {
        let mut feed = Feed::default();
        // Room for one frame.
        let mut s = WsSession::new(Vec::new(), 1024, 30);
        let mut stream = MockStream {
            room: 5,
            ..Default::default()
        };
        s.follow(&feed);
        for total in 1..=50 {
            publish(&mut feed, "A1", total);
        }
        s.catch_up(&mut stream, &feed);
        assert_eq!(stream.written.len(), 5, "written straight from the feed");
        stream.room = usize::MAX;
        assert_eq!(s.flush(&mut stream).unwrap(), Flushed::All);
        // The first frame whole, then (conflated) the latest.
        assert_eq!(
            texts(&stream.written),
            [r#"{"id":"A1","total":1}"#, r#"{"id":"A1","total":50}"#]
        );
    }

    #[test]
    fn a_failing_session_never_sends_its_close_inside_a_frame() {
        // The socket takes 5 bytes of the first total, then nothing: no close at all.
        let mut s = WsSession::new(Vec::new(), 1024, 4096);
        let mut stream = MockStream {
            room: 5,
            ..Default::default()
        };
        push(&mut s, &mut stream, "A1", 1);
        push(&mut s, &mut stream, "A1", 2);
        assert_eq!(s.flush(&mut stream).unwrap(), Flushed::Blocked);
        s.fail(&mut stream, 1002, "bad");
        assert_eq!(stream.written.len(), 5);
        // With room, the queue is finished first, then the close.
        let mut s = WsSession::new(Vec::new(), 1024, 4096);
        let mut stream = MockStream {
            room: 5,
            ..Default::default()
        };
        push(&mut s, &mut stream, "A1", 1);
        assert_eq!(s.flush(&mut stream).unwrap(), Flushed::Blocked);
        stream.room = usize::MAX;
        s.fail(&mut stream, 1002, "bad");
        let got = frames(&stream.written);
        assert_eq!(got[0], (1, br#"{"id":"A1","total":1}"#.to_vec()));
        assert_eq!(got[1].0, 8, "then the close: {got:?}");
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn text_frames_have_the_right_length_header() {
        for len in [0, 125, 126, 65535, 65536] {
            let text = "x".repeat(len);
            let frame = text_frame(&text);
            let head = match len {
                0..=125 => vec![0x81, len as u8],
                126..=65535 => [vec![0x81, 126], (len as u16).to_be_bytes().to_vec()].concat(),
                _ => [vec![0x81, 127], (len as u64).to_be_bytes().to_vec()].concat(),
            };
            assert_eq!(frame[..head.len()], head[..], "{len}");
            assert_eq!(frame.len(), head.len() + len);
            assert_eq!(frame_text(&frame).as_str(), text, "{len}");
        }
    }

    #[test]
    fn reads_masked_text_then_blocks() {
        // "hi" masked with key 1,2,3,4.
        let frame = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
        let mut s = WsSession::new(frame[..3].to_vec(), 1024, 4096);
        let mut stream = MockStream {
            input: frame[3..].iter().copied().collect(),
            ..Default::default()
        };
        assert!(matches!(s.read(&mut stream), Ok(Incoming::Text(t)) if t.as_str() == "hi"));
        assert!(matches!(s.read(&mut stream), Ok(Incoming::Blocked)));
    }

    #[test]
    fn oversized_and_unmasked_frames_get_their_close_codes() {
        let mut big = WsSession::new(vec![0x81, 0xfe, 0x10, 0x00, 0, 0, 0, 0], 1024, 4096);
        assert_eq!(
            big.read(&mut MockStream::default()).unwrap_err().code,
            Some(1009)
        );
        // A masked (key 0) text frame holding 0xff, which is never UTF-8.
        let mut bad_utf8 = WsSession::new(vec![0x81, 0x81, 0, 0, 0, 0, 0xff], 1024, 4096);
        assert_eq!(
            bad_utf8.read(&mut MockStream::default()).unwrap_err().code,
            Some(1007)
        );
        let mut unmasked = WsSession::new(vec![0x81, 0x02, b'h', b'i'], 1024, 4096);
        assert_eq!(
            unmasked.read(&mut MockStream::default()).unwrap_err().code,
            Some(1002)
        );
    }

    #[test]
    fn commands() {
        assert_eq!(
            parse_command(r#"{"cmd":"update-category","payload":{"category":"confectionery"}}"#),
            Ok(Command::UpdateCategory("confectionery".into()))
        );
        for bad in [
            "nope",
            "{}",
            r#"{"cmd":"dance"}"#,
            r#"{"cmd":"update-category"}"#,
            r#"{"cmd":"update-category","payload":{"category":5}}"#,
        ] {
            assert!(parse_command(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn close_frames_fit_the_control_frame_limit() {
        let f = close_frame(1009, &"x".repeat(500));
        assert_eq!(f.len(), 2 + 2 + 123);
        assert_eq!(&f[..4], &[0x88, 125, 0x03, 0xf1]);
    }
}
