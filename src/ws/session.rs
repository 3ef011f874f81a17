//! One WebSocket session over tungstenite's `WebSocketContext`. Reads come from the
//! connection's non-blocking socket; every write goes into the connection's one output
//! queue ([`Outbox`]) through [`Wire`], whose `Write` appends, so tungstenite never holds
//! a frame of its own and the order of everything sent is the order it was queued.
//!
//! Totals, the one message sent to thousands of sessions at once, do not go through
//! tungstenite: they are framed once in their category's feed and queued as bytes
//! ([`WsSession::push_total`], or written straight from the feed by `Feed::hand_to` when
//! nothing is queued). Past its byte budget a session keeps only the latest total of each
//! product (conflation) and queues those once its queue drains, so a slow client costs
//! bounded memory and still converges.

use std::io::{self, Read, Write};

use tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, Utf8Bytes};

use crate::latest::Latest;
use crate::message::total_message;
use crate::outbox::{Flushed, Outbox, write_some};
use crate::ws::frame::{close_frame, text_frame};

/// Size of the buffer tungstenite reads client frames into, allocated for every session.
/// Clients send tiny commands (`update-category` is 72 bytes on the wire), so 128 bytes
/// hold one in a single read; a larger message costs more reads, not more memory up front.
const READ_BUFFER_BYTES: usize = 128;

/// The socket as a session sees it: reads come from `stream`, writes are appended to `out`
/// (and go out when the server flushes the connection).
#[derive(Debug)]
pub struct Wire<'a, S> {
    pub stream: &'a mut S,
    pub out: &'a mut Outbox,
}

impl<S: Write> Wire<'_, S> {
    /// Writes `bytes` to the socket now, as much as it takes, and returns how much that was.
    /// Only for an empty queue: anything queued must go first.
    pub fn write_direct(&mut self, bytes: &[u8]) -> usize {
        debug_assert!(
            self.out.is_empty(),
            "a direct write would overtake the queue"
        );
        write_some(self.stream, bytes)
    }
}

impl<S: Read> Read for Wire<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl<S> Write for Wire<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

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
    /// Not read: the queue is over budget (the client is not reading what we send). Reading
    /// resumes once the queue is written, so replies and pongs cannot grow it without end.
    Full,
}

/// Why the session is over. `code` is the close code to send first, if any.
#[derive(Debug)]
pub struct Closed {
    pub code: Option<u16>,
    pub reason: String,
}

/// A server-side WebSocket session.
#[derive(Debug)]
pub struct WsSession {
    ctx: tungstenite::protocol::WebSocketContext,
    /// Bytes the connection's queue may hold before totals are conflated.
    queue_bytes: usize,
    /// Latest total per product id, kept instead of frames while over the byte budget.
    pub latest: Latest,
    /// How far into its category's feed the session has taken (a feed position).
    pub feed_pos: u64,
    /// An `/echo` session: messages are sent back instead of read as commands.
    pub echo: bool,
    /// The client sent something (a pong at least) since the last ping.
    pub heard_from: bool,
    /// Reading stopped at [`Incoming::Full`]; resume once the queue is written.
    pub read_paused: bool,
}

impl WsSession {
    /// A session that starts with `leftover` (bytes the client sent after its handshake).
    /// `max_message_bytes` bounds what the client may send; `queue_bytes` what may wait
    /// for the client to read.
    pub fn new(leftover: Vec<u8>, max_message_bytes: usize, queue_bytes: usize) -> WsSession {
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            // Every frame goes straight into the connection's queue, which has the budget.
            .write_buffer_size(0)
            .max_message_size(Some(max_message_bytes))
            .max_frame_size(Some(max_message_bytes));
        let ctx = tungstenite::protocol::WebSocketContext::from_partially_read(
            leftover,
            Role::Server,
            Some(config),
        );
        WsSession {
            ctx,
            queue_bytes: queue_bytes.max(2),
            latest: Latest::default(),
            feed_pos: 0,
            echo: false,
            heard_from: true,
            read_paused: false,
        }
    }

    /// True while the session is over budget and only keeps latest totals.
    pub fn is_conflating(&self) -> bool {
        !self.latest.is_empty()
    }

    /// True when totals may be queued as frames: not conflating, and not closing (after a
    /// close frame nothing more may be sent).
    pub fn takes_frames(&self) -> bool {
        !self.is_conflating() && self.ctx.can_write()
    }

    /// Whether `bytes` more fit the queue budget.
    pub fn has_room<S>(&self, wire: &Wire<S>, bytes: usize) -> bool {
        wire.out.len() + bytes <= self.queue_bytes
    }

    /// Queues one total: `frame` is its message framed. Past the byte budget only the
    /// latest total of the product is remembered; after a close, nothing is.
    pub fn push_total<S>(&mut self, wire: &mut Wire<S>, frame: &[u8], id: &str, total: u64) {
        if !self.ctx.can_write() {
            return;
        }
        if self.is_conflating() || !self.has_room(wire, frame.len()) {
            self.latest.keep(id, total);
        } else {
            wire.out.push(frame);
        }
    }

    /// Queues a text message that is not a total (an error reply). Dropped when the client
    /// is over budget: it is not reading, and the message carries no state.
    pub fn push_text<S: Read>(&mut self, wire: &mut Wire<S>, text: String) {
        if self.has_room(wire, text.len()) {
            let _ = self.ctx.write(wire, Message::Text(text.into()));
        }
    }

    /// Queues any message (the echo endpoint's replies); false when the budget is full.
    pub fn push_message<S: Read>(&mut self, wire: &mut Wire<S>, msg: Message) -> bool {
        if !self.has_room(wire, msg.len()) {
            return false;
        }
        let _ = self.ctx.write(wire, msg);
        true
    }

    /// Queues a ping; the client's pong (or any message) shows it is still there.
    pub fn ping<S: Read>(&mut self, wire: &mut Wire<S>) {
        let _ = self.ctx.write(wire, Message::Ping(Default::default()));
    }

    /// Forgets conflated totals (the subscription moved to another category).
    pub fn clear_conflated(&mut self) {
        self.latest.clear();
    }

    /// Writes everything queued; once the queue drains, conflated totals are queued and
    /// written too. `Err` means the socket is broken and the connection must close.
    pub fn flush<S: Read + Write>(&mut self, wire: &mut Wire<S>) -> io::Result<Flushed> {
        loop {
            if wire.out.write_to(wire.stream)? == Flushed::Blocked {
                return Ok(Flushed::Blocked);
            }
            if !self.refill(wire) {
                return Ok(Flushed::All);
            }
        }
    }

    /// Queues as many conflated totals as fit the budget; false when none was queued.
    fn refill<S>(&mut self, wire: &mut Wire<S>) -> bool {
        if !self.ctx.can_write() {
            self.latest.clear();
            return false;
        }
        let frame = |id: &str, total| text_frame(&total_message(id, total));
        self.latest.refill(wire.out, self.queue_bytes, frame)
    }

    /// Reads the next message. Pings are answered by tungstenite (the pong is queued).
    /// Nothing is read while the queue is over budget ([`Incoming::Full`]).
    pub fn read<S: Read>(&mut self, wire: &mut Wire<S>) -> Result<Incoming, Closed> {
        if wire.out.len() > self.queue_bytes {
            self.read_paused = true;
            return Ok(Incoming::Full);
        }
        loop {
            return match self.ctx.read(wire) {
                Ok(Message::Text(t)) => Ok(Incoming::Text(t)),
                Ok(Message::Binary(b)) => Ok(Incoming::Binary(b)),
                Ok(_) => {
                    // A ping's pong waits in tungstenite until the next read or write:
                    // move it to the queue now. (Writing into the queue cannot fail.)
                    let _ = self.ctx.flush(wire);
                    Ok(Incoming::Control)
                }
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    Ok(Incoming::Blocked)
                }
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(closed(e)),
            };
        }
    }

    /// Ends a session tungstenite has given up on (the client broke the protocol): queues
    /// a close frame with `code` after everything queued before it, so it never lands
    /// inside a frame cut short. The connection should close once its queue is written.
    pub fn fail<S>(&mut self, wire: &mut Wire<S>, code: u16, reason: &str) {
        self.latest.clear();
        wire.out.push(&close_frame(code, reason));
    }

    /// Starts the closing handshake with `code` (e.g. 1001 on shutdown): the close frame is
    /// queued after everything queued before it, and nothing is queued after it.
    pub fn close<S: Read>(&mut self, wire: &mut Wire<S>, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        };
        self.latest.clear();
        let _ = self.ctx.close(wire, Some(frame));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::testing::{MockStream, Pipe, frames, push, texts};

    #[test]
    fn writes_wait_for_flush_and_survive_would_block() {
        let mut s = WsSession::new(Vec::new(), 1024, 4096);
        let mut p = Pipe::default();
        push(&mut s, &mut p.wire(), "A1", 13);
        push(&mut s, &mut p.wire(), "A1", 14);
        assert!(p.stream.written.is_empty(), "queueing must not write");
        assert_eq!(s.flush(&mut p.wire()).unwrap(), Flushed::Blocked);
        p.stream.room = 5;
        assert_eq!(s.flush(&mut p.wire()).unwrap(), Flushed::Blocked);
        p.stream.room = usize::MAX;
        assert_eq!(s.flush(&mut p.wire()).unwrap(), Flushed::All);
        assert_eq!(
            texts(&p.stream.written),
            [r#"{"id":"A1","total":13}"#, r#"{"id":"A1","total":14}"#]
        );
    }

    #[test]
    fn over_budget_keeps_the_latest_total_per_product_and_converges() {
        // Room for three 24-byte frames.
        let mut s = WsSession::new(Vec::new(), 1024, 80);
        let mut p = Pipe::default();
        for total in 1..=1000 {
            push(&mut s, &mut p.wire(), "A1", total);
            push(&mut s, &mut p.wire(), "A2", total + 5000);
        }
        assert!(s.is_conflating());
        p.stream.room = usize::MAX;
        assert_eq!(s.flush(&mut p.wire()).unwrap(), Flushed::All);
        assert!(!s.is_conflating());
        let got = texts(&p.stream.written);
        assert!(got.len() <= 5, "bounded: {got:?}");
        let last = |id: &str| got.iter().rev().find(|t| t.contains(id)).unwrap().clone();
        assert_eq!(last("A1"), r#"{"id":"A1","total":1000}"#);
        assert_eq!(last("A2"), r#"{"id":"A2","total":6000}"#);
    }

    #[test]
    fn prepared_totals_keep_their_order_with_replies_and_the_close() {
        let mut s = WsSession::new(Vec::new(), 1024, 4096);
        let mut p = Pipe::default();
        push(&mut s, &mut p.wire(), "A1", 1);
        // A reply while the socket is full; later totals queue behind it.
        s.push_text(&mut p.wire(), "reply".into());
        push(&mut s, &mut p.wire(), "A1", 2);
        // The close goes after everything queued before it, and nothing follows it.
        p.stream.room = usize::MAX;
        s.close(&mut p.wire(), 1001, "bye");
        push(&mut s, &mut p.wire(), "A1", 3);
        let _ = s.flush(&mut p.wire());
        let got = frames(&p.stream.written);
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

    #[test]
    fn a_failing_session_never_sends_its_close_inside_a_frame() {
        // The socket takes 5 bytes of the first total, then nothing: no close yet.
        let mut s = WsSession::new(Vec::new(), 1024, 4096);
        let mut p = Pipe::with_room(5);
        push(&mut s, &mut p.wire(), "A1", 1);
        push(&mut s, &mut p.wire(), "A1", 2);
        assert_eq!(s.flush(&mut p.wire()).unwrap(), Flushed::Blocked);
        s.fail(&mut p.wire(), 1002, "bad");
        assert_eq!(p.stream.written.len(), 5);
        // With room, the queue is finished first, then the close.
        let mut s = WsSession::new(Vec::new(), 1024, 4096);
        let mut p = Pipe::with_room(5);
        push(&mut s, &mut p.wire(), "A1", 1);
        assert_eq!(s.flush(&mut p.wire()).unwrap(), Flushed::Blocked);
        p.stream.room = usize::MAX;
        s.fail(&mut p.wire(), 1002, "bad");
        assert_eq!(s.flush(&mut p.wire()).unwrap(), Flushed::All);
        let got = frames(&p.stream.written);
        assert_eq!(got[0], (1, br#"{"id":"A1","total":1}"#.to_vec()));
        assert_eq!(got[1].0, 8, "then the close: {got:?}");
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn a_ping_is_answered_in_order_with_what_was_queued() {
        // A masked (key 0) ping with no payload.
        let mut s = WsSession::new(vec![0x89, 0x80, 0, 0, 0, 0], 1024, 4096);
        let mut p = Pipe::default();
        push(&mut s, &mut p.wire(), "A1", 1);
        assert!(matches!(s.read(&mut p.wire()), Ok(Incoming::Control)));
        push(&mut s, &mut p.wire(), "A1", 2);
        p.stream.room = usize::MAX;
        assert_eq!(s.flush(&mut p.wire()).unwrap(), Flushed::All);
        let got = frames(&p.stream.written);
        let ops: Vec<u8> = got.iter().map(|(op, _)| *op).collect();
        assert_eq!(ops, [1, 10, 1], "total, pong, total: {got:?}");
    }

    #[test]
    fn reads_masked_text_then_blocks() {
        // "hi" masked with key 1,2,3,4.
        let frame = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
        let mut s = WsSession::new(frame[..3].to_vec(), 1024, 4096);
        let mut p = Pipe {
            stream: MockStream {
                input: frame[3..].iter().copied().collect(),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(matches!(s.read(&mut p.wire()), Ok(Incoming::Text(t)) if t.as_str() == "hi"));
        assert!(matches!(s.read(&mut p.wire()), Ok(Incoming::Blocked)));
    }

    #[test]
    fn oversized_and_unmasked_frames_get_their_close_codes() {
        let code = |s: &mut WsSession| s.read(&mut Pipe::default().wire()).unwrap_err().code;
        let mut big = WsSession::new(vec![0x81, 0xfe, 0x10, 0x00, 0, 0, 0, 0], 1024, 4096);
        assert_eq!(code(&mut big), Some(1009));
        // A masked (key 0) text frame holding 0xff, which is never UTF-8.
        let mut bad_utf8 = WsSession::new(vec![0x81, 0x81, 0, 0, 0, 0, 0xff], 1024, 4096);
        assert_eq!(code(&mut bad_utf8), Some(1007));
        let mut unmasked = WsSession::new(vec![0x81, 0x02, b'h', b'i'], 1024, 4096);
        assert_eq!(code(&mut unmasked), Some(1002));
    }

    #[test]
    fn a_client_that_pings_without_reading_is_read_no_further_than_the_budget() {
        // 1,000 masked (key 0) pings with 100-byte payloads; the socket takes nothing.
        let ping: Vec<u8> = [vec![0x89, 0x80 | 100, 0, 0, 0, 0], vec![b'p'; 100]].concat();
        let mut p = Pipe::default();
        p.stream.input = ping.repeat(1000).into_iter().collect();
        let mut s = WsSession::new(Vec::new(), 1024, 1024);
        let mut reads = 0;
        loop {
            match s.read(&mut p.wire()) {
                Ok(Incoming::Control) => reads += 1,
                Ok(Incoming::Full) => break,
                other => panic!("{other:?} after {reads} pings"),
            }
        }
        assert!(s.read_paused);
        // The pongs queued stop just past the budget, and the rest stays unread.
        assert!(p.out.len() <= 1024 + 102, "{} bytes queued", p.out.len());
        assert!(reads < 12, "{reads} pings read");
        assert!(p.stream.input.len() > 900 * ping.len());
        // Written, the queue has room again and reading goes on.
        p.stream.room = usize::MAX;
        assert_eq!(s.flush(&mut p.wire()).unwrap(), Flushed::All);
        assert!(matches!(s.read(&mut p.wire()), Ok(Incoming::Control)));
    }
}
