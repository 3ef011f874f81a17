//! What WebSockets and event streams share: subscribing to a category, taking from its
//! feed, and ending (drained within the linger time, then closed).

use slab::Slab;

use super::writes::LINGER;
use super::{Next, Server};
use crate::conn::{Conn, Deadline, Phase, Proto};
use crate::fanout::{Feed, Sessions};
use crate::state::CategoryId;

impl Sessions for Slab<Conn> {
    fn hand_out(&mut self, key: usize, feed: &Feed) {
        if let Some(conn) = self.get_mut(key) {
            conn.take_from(feed, false);
        }
    }
}

impl Server {
    /// Moves `key`'s subscription to `category` (or to nothing) and queues that category's
    /// current totals. Totals published to its old category before the move are queued
    /// first (unless the subscriber is conflating: the latest totals kept for the old
    /// category are dropped).
    pub(super) fn subscribe(&mut self, key: usize, category: Option<CategoryId>) {
        self.take_feed(key);
        self.fanout.subscribe(key, category);
        let conn = &mut self.conns[key];
        conn.forget_latest();
        if let Some(cat) = category {
            conn.follow(self.fanout.feed(cat), self.backend.catalog().products(cat));
        }
    }

    /// Queues for the subscriber `key` what its category's feed holds that it has not
    /// taken yet, without writing to the socket: whatever is queued next goes after them.
    pub(super) fn take_feed(&mut self, key: usize) {
        if let Some(feed) = self.fanout.feed_of(key) {
            self.conns[key].take_from(feed, false);
        }
    }

    /// Ends a stream after every total already published to it: a WebSocket with the
    /// close `code` (the handshake then finishes it), an event stream by closing once
    /// its queue is written (`EventSource` reconnects).
    pub(super) fn end_stream(&mut self, key: usize, code: u16, reason: &str) -> Next {
        match self.conns[key].proto {
            Proto::Http(_) => Next::Idle,
            Proto::WebSocket(_) => {
                self.close_ws(key, code, reason);
                Next::Flush
            }
            Proto::Events(_) => {
                self.take_feed(key);
                self.drain_stream(key)
            }
        }
    }

    /// A stream that is over (closed by either side, or failed): it takes no more totals,
    /// writes what it has queued (for a WebSocket, a close frame last) within the linger
    /// time, and closes.
    pub(super) fn drain_stream(&mut self, key: usize) -> Next {
        self.fanout.unsubscribe(key);
        let conn = &mut self.conns[key];
        if conn.out.is_empty() {
            return Next::Close;
        }
        conn.phase = Phase::Draining;
        conn.deadline = Some((self.now + LINGER, Deadline::Idle));
        Next::Flush
    }
}
