//! Server-sent events: `GET /orders/<category>` with `Accept: text/event-stream` streams the
//! category's totals, then every change, as `data: {"id":"A1","total":13}` events, for
//! `curl -N` and the browser's `EventSource`. The stream is the rest of the response: no
//! length, no chunking, it ends when the connection closes.
//!
//! An event stream is a subscriber like a WebSocket session: it takes from its category's
//! feed, keeps the latest total per product past its byte budget ([`Latest`]), and is
//! written in the fan-out's rounds. Its client never speaks again, so what it sends is
//! discarded; a comment line each keep-alive interval keeps proxies from timing it out, and
//! a client that took none of the bytes waiting for it for a whole interval is closed.

use std::io::{self, Write};

use crate::latest::Latest;
use crate::message::total_message;
use crate::outbox::{Flushed, Outbox};

/// Sent first: how long `EventSource` waits before reconnecting after the stream ends.
pub const RETRY: &[u8] = b"retry: 1000\n\n";
/// The keep-alive: a comment line, ignored by `EventSource`.
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// One event stream.
#[derive(Debug)]
pub struct EventStream {
    /// How far into its category's feed it has taken (a feed position).
    pub feed_pos: u64,
    /// Latest totals kept while over budget.
    pub latest: Latest,
    /// Bytes the queue may hold before totals are conflated.
    queue_bytes: usize,
    /// What the queue had written at the last keep-alive.
    sent_then: u64,
}

/// Appends `data: <text>\n\n`: one event (the message is one line of JSON).
pub fn append_event(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// One event.
pub fn event(text: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(text.len() + 8);
    append_event(&mut bytes, text);
    bytes
}

impl EventStream {
    pub fn new(queue_bytes: usize) -> EventStream {
        EventStream {
            feed_pos: 0,
            latest: Latest::default(),
            queue_bytes,
            sent_then: 0,
        }
    }

    /// Whether `bytes` more may be queued as they are: not conflating, and within budget.
    pub fn has_room(&self, out: &Outbox, bytes: usize) -> bool {
        self.latest.is_empty() && out.len() + bytes <= self.queue_bytes
    }

    /// Queues one total, `event` its event; past the byte budget only the latest total of
    /// the product is remembered.
    pub fn push_event(&mut self, out: &mut Outbox, event: &[u8], id: &str, total: u64) {
        if self.has_room(out, event.len()) {
            out.push(event);
        } else {
            self.latest.keep(id, total);
        }
    }

    /// Queues one total, as [`EventStream::push_event`] does.
    pub fn push_total(&mut self, out: &mut Outbox, id: &str, total: u64) {
        self.push_event(out, &event(&total_message(id, total)), id, total);
    }

    /// The keep-alive interval has passed: queues a comment when nothing waits. False
    /// when bytes wait and the socket took none of them since the last keep-alive: the
    /// client is not reading, close the stream. (A client that stops reading is noticed
    /// once the kernel's buffers are full and the queue stops moving.)
    pub fn keep_alive(&mut self, out: &mut Outbox) -> bool {
        if !out.is_empty() && out.sent() == self.sent_then {
            return false;
        }
        self.sent_then = out.sent();
        if out.is_empty() {
            out.push(KEEP_ALIVE);
        }
        true
    }

    /// Writes what is queued; once the queue drains, conflated totals are queued and
    /// written too. `Err` means the socket is broken.
    pub fn flush<S: Write>(&mut self, stream: &mut S, out: &mut Outbox) -> io::Result<Flushed> {
        loop {
            if out.write_to(stream)? == Flushed::Blocked {
                return Ok(Flushed::Blocked);
            }
            let frame = |id: &str, total| event(&total_message(id, total));
            if !self.latest.refill(out, self.queue_bytes, frame) {
                return Ok(Flushed::All);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockStream;

    fn events(bytes: &[u8]) -> Vec<String> {
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: ").map(str::to_string))
            .collect()
    }

    #[test]
    fn totals_are_events_and_a_slow_client_gets_the_latest_of_each() {
        // Room for about three events.
        let mut s = EventStream::new(100);
        let mut out = Outbox::default();
        let mut sock = MockStream::default();
        s.push_total(&mut out, "A1", 13);
        assert_eq!(out.write_to(&mut sock).unwrap(), Flushed::Blocked);
        for total in 14..=1000 {
            s.push_total(&mut out, "A1", total);
            s.push_total(&mut out, "A2", total * 2);
        }
        assert!(out.len() <= 100, "bounded: {}", out.len());
        sock.room = usize::MAX;
        assert_eq!(s.flush(&mut sock, &mut out).unwrap(), Flushed::All);
        let got = events(&sock.written);
        assert_eq!(got[0], r#"{"id":"A1","total":13}"#);
        assert!(got.len() < 10, "conflated: {got:?}");
        let last = |id: &str| got.iter().rev().find(|e| e.contains(id)).unwrap().clone();
        assert_eq!(last("A1"), r#"{"id":"A1","total":1000}"#);
        assert_eq!(last("A2"), r#"{"id":"A2","total":2000}"#);
        assert!(
            String::from_utf8(sock.written)
                .unwrap()
                .starts_with("data: {")
        );
    }

    #[test]
    fn a_client_that_takes_nothing_for_a_whole_interval_is_let_go() {
        let mut s = EventStream::new(1000);
        let mut out = Outbox::default();
        let mut sock = MockStream::default();
        assert!(s.keep_alive(&mut out));
        assert_eq!(out.len(), KEEP_ALIVE.len());
        // Not taken by the next interval: let go.
        assert_eq!(out.write_to(&mut sock).unwrap(), Flushed::Blocked);
        assert!(!s.keep_alive(&mut out));

        // A client that reads slower than totals arrive, its queue never empty, is kept
        // for as long as it takes something each interval.
        let mut s = EventStream::new(100_000);
        let mut out = Outbox::default();
        let mut sock = MockStream::default();
        for round in 0..10 {
            for total in 0..100 {
                s.push_total(&mut out, "A1", round * 100 + total);
            }
            sock.room = 50;
            out.write_to(&mut sock).unwrap();
            assert!(!out.is_empty());
            assert!(s.keep_alive(&mut out), "round {round}");
        }
    }
}
