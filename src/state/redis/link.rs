//! One RESP connection to Redis as bytes: commands encoded into an output queue, replies
//! decoded from an input buffer, both by `redis-protocol`. It does no I/O of its own beyond
//! `read` and `write` on the stream it is handed, so the tests feed it replies split at
//! every byte, as the WebSocket tests do over a mock stream.

use std::io::{self, Read, Write};

use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode_borrowed;
use redis_protocol::resp2::types::{BorrowedFrame, OwnedFrame};

use crate::outbox::{Flushed, Outbox, interrupted, would_block};

/// A reply (or, on a subscription, a pushed message).
pub type Reply = OwnedFrame;

/// The largest reply taken: a category's snapshot is far smaller. Past it the link is
/// broken off rather than buffering without end.
const MAX_REPLY_BYTES: usize = 64 << 20;
/// Bytes read per `read` call.
const READ_CHUNK: usize = 16 * 1024;

/// The bytes of one connection to Redis.
#[derive(Debug, Default)]
pub struct Link {
    out: Outbox,
    inbuf: Vec<u8>,
    /// Where the next reply starts in `inbuf`.
    taken: usize,
}

impl Link {
    /// Queues a command: an array of bulk strings.
    pub fn command(&mut self, args: &[&[u8]]) {
        let parts: Vec<BorrowedFrame> = args.iter().map(|a| BorrowedFrame::BulkString(a)).collect();
        let frame = BorrowedFrame::Array(&parts);
        let buf = self.out.tail();
        let start = buf.len();
        buf.resize(start + frame.encode_len(false), 0);
        let written = encode_borrowed(&mut buf[start..], &frame, false)
            .expect("the buffer was sized by encode_len");
        buf.truncate(start + written);
    }

    /// Writes what is queued, as much as the socket takes.
    pub fn flush<S: Write>(&mut self, stream: &mut S) -> io::Result<Flushed> {
        self.out.write_to(stream)
    }

    /// Takes bytes read elsewhere (a blocking socket at start-up).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.inbuf.extend_from_slice(bytes);
    }

    /// Reads what the socket has until it would block. `Ok(false)`: Redis closed the
    /// connection (the replies already read can still be taken).
    pub fn fill<S: Read>(&mut self, stream: &mut S) -> io::Result<bool> {
        loop {
            if self.inbuf.len() - self.taken > MAX_REPLY_BYTES {
                return Err(io::Error::other("a reply larger than 64 MiB"));
            }
            if self.taken > 0 && self.taken == self.inbuf.len() {
                self.inbuf.clear();
                self.taken = 0;
            }
            let start = self.inbuf.len();
            self.inbuf.resize(start + READ_CHUNK, 0);
            let read = stream.read(&mut self.inbuf[start..]);
            self.inbuf.truncate(start + *read.as_ref().unwrap_or(&0));
            match read {
                Ok(0) => return Ok(false),
                Ok(_) => {}
                Err(e) if would_block(&e) => return Ok(true),
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next complete reply read, if there is one. `Err`: Redis sent something that is
    /// not RESP, and the connection must be dropped.
    pub fn next_reply(&mut self) -> io::Result<Option<Reply>> {
        match decode(&self.inbuf[self.taken..]) {
            Ok(Some((frame, used))) => {
                self.taken += used;
                Ok(Some(frame))
            }
            Ok(None) => {
                // Keep the partial reply at the front for the next read.
                self.inbuf.drain(..self.taken);
                self.taken = 0;
                Ok(None)
            }
            Err(e) => Err(io::Error::other(format!("not RESP: {e:?}"))),
        }
    }

    /// Forgets everything queued and read (the connection is gone).
    pub fn reset(&mut self) {
        *self = Link::default();
    }
}

/// The bytes of a bulk or simple string reply.
pub fn bytes(reply: &Reply) -> Option<&[u8]> {
    match reply {
        OwnedFrame::BulkString(b) | OwnedFrame::SimpleString(b) => Some(b),
        _ => None,
    }
}

/// A reply as text (a bulk or simple string that is UTF-8).
pub fn text(reply: &Reply) -> Option<&str> {
    bytes(reply).and_then(|b| std::str::from_utf8(b).ok())
}

/// A reply as an integer (an integer reply, or a string of digits).
pub fn integer(reply: &Reply) -> Option<i64> {
    match reply {
        OwnedFrame::Integer(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockStream;

    #[test]
    fn commands_are_resp_arrays_of_bulk_strings() {
        let mut link = Link::default();
        link.command(&[b"SET", b"k", b"v 1"]);
        link.command(&[b"PING"]);
        let mut sock = MockStream {
            room: usize::MAX,
            ..Default::default()
        };
        assert_eq!(link.flush(&mut sock).unwrap(), Flushed::All);
        assert_eq!(
            sock.written,
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv 1\r\n*1\r\n$4\r\nPING\r\n"
        );
    }

    /// Every reply shape, delivered in pieces cut at every byte: each comes out whole,
    /// once, in order.
    #[test]
    fn replies_split_at_every_byte_come_out_whole_and_in_order() {
        let wire: &[u8] =
            b"+OK\r\n:42\r\n$5\r\nhello\r\n$-1\r\n-ERR no\r\n*2\r\n$7\r\nmessage\r\n*1\r\n:7\r\n";
        let expected = vec![
            OwnedFrame::SimpleString(b"OK".to_vec()),
            OwnedFrame::Integer(42),
            OwnedFrame::BulkString(b"hello".to_vec()),
            OwnedFrame::Null,
            OwnedFrame::Error("ERR no".into()),
            OwnedFrame::Array(vec![
                OwnedFrame::BulkString(b"message".to_vec()),
                OwnedFrame::Array(vec![OwnedFrame::Integer(7)]),
            ]),
        ];
        for cut in 1..wire.len() {
            let mut link = Link::default();
            let mut sock = MockStream::default();
            let mut got = Vec::new();
            for piece in [&wire[..cut], &wire[cut..]] {
                sock.input.extend(piece);
                assert!(link.fill(&mut sock).unwrap());
                while let Some(reply) = link.next_reply().unwrap() {
                    got.push(reply);
                }
            }
            assert_eq!(got, expected, "cut at {cut}");
        }
        // One byte at a time.
        let mut link = Link::default();
        let mut sock = MockStream::default();
        let mut got = Vec::new();
        for &b in wire {
            sock.input.push_back(b);
            link.fill(&mut sock).unwrap();
            while let Some(reply) = link.next_reply().unwrap() {
                got.push(reply);
            }
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn garbage_is_an_error_and_the_end_of_the_stream_is_said() {
        let mut link = Link::default();
        let mut sock = MockStream::default();
        sock.input.extend(b"?what\r\n");
        link.fill(&mut sock).unwrap();
        assert!(link.next_reply().is_err());
        assert_eq!(integer(&OwnedFrame::BulkString(b"12".to_vec())), Some(12));
        assert_eq!(text(&OwnedFrame::Integer(1)), None);
    }
}
