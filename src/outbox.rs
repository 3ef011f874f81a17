//! A connection's one output queue: every byte the server sends on a socket (HTTP
//! responses, the `101`, WebSocket frames from tungstenite and from the feeds) is appended
//! here in order, and written from here. A partial write keeps `(bytes, offset)` rather than
//! copying the rest. A WebSocket whose queue is empty may be written straight from its
//! category's feed, skipping the copy (see `fanout::Feed::hand_to`).

use std::io::{self, Write};

/// Capacity kept after the queue drains. A busy connection reuses it; a larger one (a big
/// response, a burst to a slow subscriber) is given back.
const KEPT_BYTES: usize = 4096;

/// Whether a write emptied the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything queued is on the wire.
    All,
    /// The socket is full; a writable event will follow.
    Blocked,
}

/// Bytes waiting for the socket, oldest first.
#[derive(Debug, Default)]
pub struct Outbox {
    bytes: Vec<u8>,
    written: usize,
    /// Bytes written over the life of the queue.
    sent: u64,
}

impl Outbox {
    /// Bytes queued and not yet written.
    pub fn len(&self) -> usize {
        self.bytes.len() - self.written
    }

    /// Bytes written to the socket so far, over the life of the queue (direct writes that
    /// skip the queue are not counted).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// True when nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `bytes` after everything queued before.
    pub fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// The end of the queue, for serialisers that append (`Response::write_to`).
    pub fn tail(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Writes as much as the socket takes. `Ok(Flushed::Blocked)` when it is full; `Err`
    /// when the connection is broken. `WouldBlock` and `Interrupted` never leave here.
    pub fn write_to<S: Write>(&mut self, stream: &mut S) -> io::Result<Flushed> {
        while self.written < self.bytes.len() {
            match stream.write(&self.bytes[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    self.sent += n as u64;
                }
                Err(e) if would_block(&e) => return Ok(Flushed::Blocked),
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        self.bytes.clear();
        self.written = 0;
        if self.bytes.capacity() > KEPT_BYTES {
            self.bytes = Vec::new();
        }
        Ok(Flushed::All)
    }

    /// Gives back the buffer of an empty queue whatever its size (an idle connection).
    pub fn release(&mut self) {
        if self.is_empty() {
            self.bytes = Vec::new();
            self.written = 0;
        }
    }
}

/// Writes as much of `bytes` as `stream` takes now, for a caller that queues the rest.
/// Returns how much was written; an error is left for the next write to find.
pub fn write_some<S: Write>(stream: &mut S, bytes: &[u8]) -> usize {
    let mut written = 0;
    while written < bytes.len() {
        match stream.write(&bytes[written..]) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if interrupted(&e) => {}
            Err(_) => break,
        }
    }
    written
}

/// The socket has nothing more for now (edge-triggered: wait for the next event).
pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// A signal interrupted the call; try again.
pub fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockStream;

    #[test]
    fn a_partial_write_resumes_where_it_stopped_and_keeps_the_order() {
        let mut out = Outbox::default();
        let mut sock = MockStream {
            room: 3,
            ..Default::default()
        };
        out.push(b"hello ");
        assert_eq!(out.write_to(&mut sock).unwrap(), Flushed::Blocked);
        out.push(b"world");
        assert_eq!(out.len(), 8);
        sock.room = usize::MAX;
        assert_eq!(out.write_to(&mut sock).unwrap(), Flushed::All);
        assert_eq!(sock.written, b"hello world");
        assert!(out.is_empty());
        // A big burst is given back once written.
        out.push(&vec![0; 3 * KEPT_BYTES]);
        out.write_to(&mut sock).unwrap();
        assert_eq!(out.bytes.capacity(), 0);
    }
}
