//! Event streams (server-sent events): the start of one, and reading what its client
//! still sends (nothing is expected; it is discarded, and its end ends the stream once
//! what is queued is written).

use std::io::Read;

use super::http::READS_PER_TURN;
use super::{Next, Server};
use crate::conn::{Deadline, Proto};
use crate::http::Response;
use crate::outbox::{interrupted, would_block};
use crate::sse::{EventStream, RETRY};
use crate::state::CategoryId;

impl Server {
    /// Queues the stream's head, turns the connection into an event stream subscribed to
    /// `category`, and queues the category's current totals. Anything the client sent
    /// after its request is dropped: the connection is the stream's until it closes.
    pub(super) fn start_events(
        &mut self,
        key: usize,
        category: CategoryId,
        head: &Response,
    ) -> Next {
        let conn = &mut self.conns[key];
        head.write_stream_head(conn.out.tail());
        conn.out.push(RETRY);
        conn.proto = Proto::Events(EventStream::new(self.config.ws_queue_bytes));
        conn.deadline = Some((self.now + self.config.ws_ping_interval, Deadline::Ping));
        if let Some(mean) = self.config.ws_drop_mean {
            self.timers.drop_later(self.now, mean, key, conn.id);
        }
        let name = self.backend.catalog().category_name(category);
        self.log.info(format_args!(
            "{} event stream open #{key} {name}",
            conn.peer
        ));
        self.subscribe(key, Some(category));
        self.read_events(key)
    }

    /// Discards what the client of an event stream sends; its end (or an error) closes it.
    pub(super) fn read_events(&mut self, key: usize) -> Next {
        for _ in 0..READS_PER_TURN {
            let Server { conns, scratch, .. } = self;
            match conns[key].stream.read(scratch) {
                // Done sending (a half-close): what is queued still goes out, then it ends.
                Ok(0) => return self.drain_stream(key),
                Ok(_) => {}
                Err(e) if would_block(&e) => return Next::Flush,
                Err(e) if interrupted(&e) => {}
                Err(_) => return Next::Close,
            }
        }
        Next::Reread
    }
}
