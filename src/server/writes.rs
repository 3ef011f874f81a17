//! The write pass before each poll, and the end of a connection's life: draining,
//! lingering, and reading what a lingering peer still sends.

use std::io::Read;
use std::time::Duration;

use super::http::READS_PER_TURN;
use super::{Next, Server};
use crate::conn::{Deadline, Phase, Proto};
use crate::outbox::{Flushed, interrupted, would_block};

/// Most streams (WebSockets, event streams) written per loop turn. A broadcast to more
/// subscribers goes out over several turns, round-robin, and the loop polls in between: requests are answered and new
/// updates queued while it is under way, so a subscriber waits at most one round for an
/// update, not the rest of the current round and then its place in the next.
pub const WS_WRITES_PER_TURN: usize = 128;
/// How long a closing connection may take to read our last bytes.
pub const LINGER: Duration = Duration::from_secs(2);

impl Server {
    /// Writes every listed HTTP connection, then up to [`WS_WRITES_PER_TURN`] streams in
    /// the fan-out's order. Responses go first: a client waiting on its answer (the POST
    /// that caused this turn's updates) gets it before the fan-out writes, and its next
    /// request can arrive while they go out, to be batched with others into the next writes.
    pub(super) fn write_pending(&mut self) {
        let mut listed = std::mem::take(&mut self.to_write);
        for &key in &listed {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.listed = false;
                let next = self.flush(key);
                self.act(key, next);
            }
        }
        // Keep the allocation, with anything listed while writing.
        listed.clear();
        listed.append(&mut self.to_write);
        self.to_write = listed;
        for _ in 0..WS_WRITES_PER_TURN {
            let Some(key) = self.fanout.next_to_write() else {
                break;
            };
            let next = self.flush(key);
            self.act(key, next);
        }
    }

    /// Writes what the connection has queued; a stream first takes what its feed holds
    /// for it (straight to the socket when nothing is queued ahead). Returns `Linger` once a
    /// draining connection is written out, `Reread` when reading was paused (HTTP or
    /// WebSocket) for output that is now written, `Close` when the socket is broken.
    fn flush(&mut self, key: usize) -> Next {
        let Some(conn) = self.conns.get_mut(key) else {
            return Next::Idle;
        };
        if matches!(conn.phase, Phase::Lingering | Phase::Closing) {
            return Next::Idle;
        }
        if let Some(feed) = self.fanout.feed_of(key) {
            conn.take_from(feed, true);
        }
        match conn.flush() {
            Ok(Flushed::Blocked) => Next::Idle,
            Ok(Flushed::All) if conn.phase == Phase::Draining && !conn.is_held() => Next::Linger,
            Ok(Flushed::All) => match &mut conn.proto {
                Proto::Http(http) if http.paused => {
                    http.paused = false;
                    Next::Reread
                }
                Proto::WebSocket(session) if session.read_paused => {
                    session.read_paused = false;
                    Next::Reread
                }
                _ => Next::Idle,
            },
            Err(e) => {
                self.log.debug(format_args!("{} closed: {e}", conn.peer));
                Next::Close
            }
        }
    }

    /// Half-closes the connection after its last bytes and waits briefly for the peer to
    /// close. A lingering connection receives no more updates.
    pub(super) fn linger(&mut self, key: usize) -> Next {
        self.fanout.unsubscribe(key);
        let conn = &mut self.conns[key];
        if conn.stream.shutdown(std::net::Shutdown::Write).is_err() {
            return Next::Close;
        }
        conn.phase = Phase::Lingering;
        conn.deadline = Some((self.now + LINGER, Deadline::Linger));
        if let Proto::Http(http) = &mut conn.proto {
            http.inbuf = Vec::new();
        }
        // The peer may have closed already, with no event to come: look now.
        self.read_lingering(key)
    }

    /// Discards what a lingering connection still sends, until it closes its side.
    pub(super) fn read_lingering(&mut self, key: usize) -> Next {
        for _ in 0..READS_PER_TURN {
            let Server { conns, scratch, .. } = self;
            match conns[key].stream.read(scratch) {
                Ok(0) => return Next::Close,
                Ok(_) => {}
                Err(e) if would_block(&e) => return Next::Idle,
                Err(e) if interrupted(&e) => {}
                Err(_) => return Next::Close,
            }
        }
        Next::Reread
    }
}
