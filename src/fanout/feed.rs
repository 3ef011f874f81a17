//! A category's feed: the totals published to it, each framed once and kept back to back
//! for all of its subscribers to take from. Publishing appends one frame and touches no
//! subscriber. Each session remembers how far into its category's feed it has taken and
//! takes the rest when the server next touches it (its flush, at the latest): one copy of
//! many frames, instead of one append per update per subscriber.
//!
//! Positions count bytes from the feed's start of life and only grow, so a session's
//! position stays valid while the front of the feed is dropped. The front is dropped once per
//! round of flushes (see [`Feed::new_round`]), so a feed holds what was published in the
//! last two rounds, however many subscribers there are and however slow they are: a slow
//! one takes its frames into its own bounded queue like anyone else. The server also hands
//! a feed out to all of its subscribers at once when it outgrows one subscriber's queue
//! budget, so a flood of orders within one round cannot grow it either.

use std::collections::VecDeque;
use std::io::{Read, Write};

use crate::outbox::Outbox;
use crate::sse::{EventStream, append_event};
use crate::ws::frame::append_text_frame;
use crate::ws::{Wire, WsSession};

/// The totals of one category that some subscriber may not have taken yet.
#[derive(Debug, Default)]
pub struct Feed {
    /// The frames, oldest first.
    bytes: Vec<u8>,
    /// The same totals as events (`data: ...`), for event streams, in the same order.
    events: Vec<u8>,
    /// One per frame in `bytes`, in the same order.
    totals: VecDeque<Total>,
    /// The position of `bytes[0]`.
    start: u64,
    /// The position of `events[0]`, counted in events' bytes.
    events_start: u64,
    /// The end of the feed when the current round started.
    round_from: u64,
}

/// One published total: where its frame (and its event) is in the feed, and what it says.
#[derive(Debug)]
pub struct Total {
    at: u64,
    len: usize,
    event_at: u64,
    event_len: usize,
    pub id: String,
    pub total: u64,
}

impl Feed {
    /// Appends a total. `text` is its message, `{"id":..,"total":..}`.
    pub fn push(&mut self, text: &str, id: String, total: u64) {
        let at = self.end();
        append_text_frame(&mut self.bytes, text.as_bytes());
        let event_at = self.events_start + self.events.len() as u64;
        append_event(&mut self.events, text);
        self.totals.push_back(Total {
            at,
            len: (self.end() - at) as usize,
            event_at,
            event_len: (self.events_start + self.events.len() as u64 - event_at) as usize,
            id,
            total,
        });
    }

    /// The position just past the newest frame: where a new subscriber starts.
    pub fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    /// Starts `session` at the end of the feed: what was published before is not for it.
    pub fn follow(&self, session: &mut WsSession) {
        session.feed_pos = self.end();
    }

    /// Gives `session` the totals published since it last took. With `write_now` and
    /// nothing queued ahead of them, they are written straight from the feed, and only what
    /// the socket does not take is copied into the queue (a frame cut short is finished from
    /// the queue, whatever the budget). Within the budget they are copied in one piece;
    /// past it, one by one, conflating. Never writes when `write_now` is false.
    pub fn hand_to<S: Read + Write>(
        &self,
        session: &mut WsSession,
        wire: &mut Wire<S>,
        write_now: bool,
    ) {
        let mut from = std::mem::replace(&mut session.feed_pos, self.end());
        if from == self.end() {
            return;
        }
        let frames = session.takes_frames();
        if write_now && frames && wire.out.is_empty() {
            from += wire.write_direct(self.since(from)) as u64;
            if from == self.end() {
                return;
            }
            let boundary = self.next_frame(from);
            wire.out.push(self.between(from, boundary));
            from = boundary;
        }
        let bytes = self.since(from);
        if frames && session.has_room(wire, bytes.len()) {
            wire.out.push(bytes);
            return;
        }
        for (frame, t) in self.totals_since(from) {
            session.push_total(wire, frame, &t.id, t.total);
        }
    }

    /// Starts an event stream at the end of the feed.
    pub fn follow_events(&self, events: &mut EventStream) {
        events.feed_pos = self.end();
    }

    /// Gives an event stream the totals published since it last took, as events: in one
    /// piece within its budget, one by one (conflating) past it.
    pub fn hand_events_to(&self, events: &mut EventStream, out: &mut Outbox) {
        let from = std::mem::replace(&mut events.feed_pos, self.end());
        let first = self.totals.partition_point(|t| t.at < from);
        let Some(oldest) = self.totals.get(first) else {
            return;
        };
        let all = &self.events[(oldest.event_at - self.events_start) as usize..];
        if events.has_room(out, all.len()) {
            out.push(all);
            return;
        }
        for t in self.totals.range(first..) {
            let at = (t.event_at - self.events_start) as usize;
            events.push_event(out, &self.events[at..at + t.event_len], &t.id, t.total);
        }
    }

    /// The frames from `pos` on, back to back.
    pub fn since(&self, pos: u64) -> &[u8] {
        &self.bytes[self.offset(pos)..]
    }

    /// The bytes from `from` to `to`.
    pub fn between(&self, from: u64, to: u64) -> &[u8] {
        &self.bytes[self.offset(from)..self.offset(to)]
    }

    /// Where the first frame that starts at `pos` or later starts (the end if none does).
    pub fn next_frame(&self, pos: u64) -> u64 {
        let i = self.totals.partition_point(|t| t.at < pos);
        self.totals.get(i).map_or(self.end(), |t| t.at)
    }

    /// The totals from `pos` on, each with its frame.
    pub fn totals_since(&self, pos: u64) -> impl Iterator<Item = (&[u8], &Total)> {
        let first = self.totals.partition_point(|t| t.at < pos);
        self.totals.range(first..).map(|t| {
            let from = self.offset(t.at);
            (&self.bytes[from..from + t.len], t)
        })
    }

    /// Starts a round of flushes, in which every subscriber is flushed at least once, so
    /// takes everything published before the round starts. Everything published before the
    /// previous round started has therefore been taken by everyone, and is dropped. True
    /// when something was published since the previous round started: then every subscriber
    /// must be flushed in this one.
    pub fn new_round(&mut self) -> bool {
        let taken = self.offset(self.round_from);
        self.bytes.drain(..taken);
        self.start = self.round_from;
        let first = self.totals.partition_point(|t| t.at < self.start);
        self.totals.drain(..first);
        let events_end = self.events_start + self.events.len() as u64;
        let events_from = self.totals.front().map_or(events_end, |t| t.event_at);
        self.events
            .drain(..(events_from - self.events_start) as usize);
        self.events_start = events_from;
        let fresh = self.end() > self.round_from;
        self.round_from = self.end();
        fresh
    }

    /// Bytes held: the frames and their index (ids are a few bytes more each).
    pub fn held_bytes(&self) -> usize {
        self.bytes.len() + self.events.len() + self.totals.len() * std::mem::size_of::<Total>()
    }

    /// The position of the oldest frame held.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Drops everything, once every subscriber has taken it all.
    pub fn clear(&mut self) {
        self.start = self.end();
        self.round_from = self.start;
        self.bytes.clear();
        self.events_start += self.events.len() as u64;
        self.events.clear();
        self.totals.clear();
    }

    fn offset(&self, pos: u64) -> usize {
        debug_assert!(
            pos >= self.start,
            "position {pos} was dropped (start {})",
            self.start
        );
        (pos.max(self.start) - self.start) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::total_message;
    use crate::outbox::Flushed;
    use crate::ws::testing::{Pipe, texts};

    fn push(feed: &mut Feed, total: u64) {
        feed.push(
            &format!(r#"{{"id":"A1","total":{total}}}"#),
            "A1".into(),
            total,
        );
    }

    fn totals(feed: &Feed, pos: u64) -> Vec<u64> {
        feed.totals_since(pos).map(|(_, t)| t.total).collect()
    }

    #[test]
    fn frames_are_back_to_back_and_positions_survive_the_rounds() {
        let mut feed = Feed::default();
        assert!(!feed.new_round(), "nothing published");
        push(&mut feed, 1);
        let after_one = feed.end();
        push(&mut feed, 2);
        // The bytes are exactly the frames, each whole and in order.
        let frames: Vec<&[u8]> = feed.totals_since(0).map(|(f, _)| f).collect();
        assert_eq!(feed.since(0), frames.concat());
        assert_eq!(frames[0], b"\x81\x15{\"id\":\"A1\",\"total\":1}");
        assert_eq!(totals(&feed, after_one), [2]);

        // Round 1 starts: nothing is dropped yet, since nobody has been flushed.
        assert!(feed.new_round());
        assert_eq!(totals(&feed, 0), [1, 2]);
        push(&mut feed, 3);
        // Round 2: everyone has taken 1 and 2, so they go; 3 stays for this round.
        assert!(feed.new_round());
        assert_eq!(totals(&feed, feed.start()), [3]);
        assert_eq!(feed.since(feed.end()), b"");
        // Round 3 with nothing new: the feed empties and asks for no flushes.
        assert!(!feed.new_round());
        assert_eq!(feed.held_bytes(), 0);
        push(&mut feed, 4);
        let end = feed.end();
        assert_eq!(totals(&feed, feed.start()), [4]);
        // Cleared: new subscribers and caught-up ones alike start at the end.
        feed.clear();
        assert_eq!((feed.held_bytes(), feed.end()), (0, end));
        assert_eq!(totals(&feed, end), [] as [u64; 0]);
        assert!(!feed.new_round(), "nothing since the clear");
        push(&mut feed, 5);
        assert_eq!(totals(&feed, end), [5]);
    }

    fn publish(feed: &mut Feed, id: &str, total: u64) {
        feed.push(&total_message(id, total), id.into(), total);
    }

    #[test]
    fn a_session_takes_from_its_feed_what_it_has_not_taken_yet() {
        let mut feed = Feed::default();
        publish(&mut feed, "A1", 1);
        let mut s = WsSession::new(Vec::new(), 1024, 4096);
        let mut p = Pipe::default();
        feed.follow(&mut s);
        publish(&mut feed, "A1", 2);
        publish(&mut feed, "A2", 3);
        // The socket is full: both are queued, and taking again takes nothing twice.
        feed.hand_to(&mut s, &mut p.wire(), true);
        feed.hand_to(&mut s, &mut p.wire(), true);
        assert!(p.stream.written.is_empty());
        // Behind a reply still queued: in order.
        s.push_text(&mut p.wire(), "reply".into());
        publish(&mut feed, "A1", 4);
        feed.hand_to(&mut s, &mut p.wire(), true);
        p.stream.room = usize::MAX;
        assert_eq!(s.flush(&mut p.wire()).unwrap(), Flushed::All);
        publish(&mut feed, "A2", 5);
        feed.hand_to(&mut s, &mut p.wire(), true);
        assert_eq!(s.flush(&mut p.wire()).unwrap(), Flushed::All);
        assert_eq!(
            texts(&p.stream.written),
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
        let mut p = Pipe::default();
        feed.follow(&mut s);
        for total in 1..=100 {
            publish(&mut feed, "A1", total);
            publish(&mut feed, "A2", total + 5000);
        }
        feed.hand_to(&mut s, &mut p.wire(), true);
        assert!(s.is_conflating());
        p.stream.room = usize::MAX;
        assert_eq!(s.flush(&mut p.wire()).unwrap(), Flushed::All);
        let got = texts(&p.stream.written);
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
        let mut p = Pipe::with_room(5);
        feed.follow(&mut s);
        for total in 1..=50 {
            publish(&mut feed, "A1", total);
        }
        feed.hand_to(&mut s, &mut p.wire(), true);
        assert_eq!(p.stream.written.len(), 5, "written straight from the feed");
        p.stream.room = usize::MAX;
        assert_eq!(s.flush(&mut p.wire()).unwrap(), Flushed::All);
        // The first frame whole, then (conflated) the latest.
        assert_eq!(
            texts(&p.stream.written),
            [r#"{"id":"A1","total":1}"#, r#"{"id":"A1","total":50}"#]
        );
    }

    #[test]
    fn handing_out_without_writing_only_queues() {
        let mut feed = Feed::default();
        let mut s = WsSession::new(Vec::new(), 1024, 4096);
        let mut p = Pipe::default();
        p.stream.room = usize::MAX;
        feed.follow(&mut s);
        publish(&mut feed, "A1", 1);
        feed.hand_to(&mut s, &mut p.wire(), false);
        assert!(p.stream.written.is_empty());
        assert_eq!(s.flush(&mut p.wire()).unwrap(), Flushed::All);
        assert_eq!(texts(&p.stream.written), [r#"{"id":"A1","total":1}"#]);
    }

    #[test]
    fn event_streams_take_the_same_totals_as_events_across_rounds() {
        let mut feed = Feed::default();
        let mut events = EventStream::new(1 << 20);
        feed.follow_events(&mut events);
        let mut out = Outbox::default();
        let mut sock = crate::testing::MockStream {
            room: usize::MAX,
            ..Default::default()
        };
        for round in 0..3u64 {
            push(&mut feed, 10 * round + 1);
            push(&mut feed, 10 * round + 2);
            feed.hand_events_to(&mut events, &mut out);
            out.write_to(&mut sock).unwrap();
            // Everyone has taken it: the next rounds drop it, frames and events alike.
            feed.new_round();
            feed.new_round();
            assert_eq!(feed.held_bytes(), 0);
        }
        let text = String::from_utf8(sock.written).unwrap();
        let want: String = [1, 2, 11, 12, 21, 22]
            .iter()
            .map(|t| format!("data: {{\"id\":\"A1\",\"total\":{t}}}\n\n"))
            .collect();
        assert_eq!(text, want);
        // Past its budget a stream keeps the latest, from the same bytes.
        let mut small = EventStream::new(40);
        feed.follow_events(&mut small);
        for t in 100..110 {
            push(&mut feed, t);
        }
        let mut out = Outbox::default();
        feed.hand_events_to(&mut small, &mut out);
        assert!(out.len() <= 40);
        assert!(!small.latest.is_empty());
    }
}
