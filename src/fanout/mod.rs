//! Fan-out: who is subscribed to what ([`subscribers`]), each category's totals framed once
//! ([`feed`]), and the rounds in which subscribers (WebSockets and event streams) with
//! something to send are written.
//!
//! [`Fanout::publish`] is the only way a total gets in. It appends one frame to the
//! category's feed and touches no subscriber; a round of writes is then due, in which every
//! subscriber of a category published to is listed once, and takes everything it has not
//! taken when its turn comes ([`Feed::hand_to`]). The server writes at most a slice of the
//! list per loop turn ([`Fanout::next_to_write`]), so a POST is answered between slices.
//!
//! Memory: a feed drops what was published before the previous round started (everyone has
//! taken it by then, see [`Feed::new_round`]), and a feed that outgrows one subscriber's
//! queue budget within a round is handed out to all of its subscribers at once, so neither
//! slow readers nor a flood of orders can grow it.

pub mod feed;
pub mod subscribers;

use std::collections::VecDeque;

pub use feed::Feed;
pub use subscribers::Subscribers;

use crate::message::total_message;
use crate::state::{CategoryId, Update};

/// The subscribers' sessions as the fan-out reaches them (the server's connections).
pub trait Sessions {
    /// Queues for the session of `key` what `feed` holds that it has not taken, without
    /// writing to its socket (a hand-out happens while updates are published, before the
    /// write pass).
    fn hand_out(&mut self, key: usize, feed: &Feed);
}

/// Subscriptions, feeds and the list of streams to write.
#[derive(Debug)]
pub struct Fanout {
    subs: Subscribers,
    feeds: Vec<Feed>,
    /// Streams to write, in the order they got something to send.
    queue: VecDeque<usize>,
    /// For each slab key, whether it is listed in `queue`.
    listed: Vec<bool>,
    /// After this many more keys leave the queue, a new round starts. `None` while nothing
    /// was published since the last round started.
    round_due_in: Option<usize>,
    /// A feed that holds more than this (one subscriber's queue budget) is handed out.
    budget: usize,
    /// Totals published, counted once per subscriber of their category.
    deliveries: u64,
}

impl Fanout {
    /// A fan-out for `categories` categories, whose subscribers may each queue `budget`
    /// bytes.
    pub fn new(categories: usize, budget: usize) -> Fanout {
        Fanout {
            subs: Subscribers::new(categories),
            feeds: std::iter::repeat_with(Feed::default)
                .take(categories)
                .collect(),
            queue: VecDeque::new(),
            listed: Vec::new(),
            round_due_in: None,
            budget,
            deliveries: 0,
        }
    }

    /// Publishes a new total to its category's subscribers. Nothing is kept when nobody
    /// listens. When the feed outgrows the budget it is handed out through `sessions`.
    pub fn publish(&mut self, update: Update, sessions: &mut impl Sessions) {
        let cat = update.category;
        if self.subs.of(cat).is_empty() {
            return;
        }
        self.deliveries += self.subs.of(cat).len() as u64;
        let text = total_message(&update.id, update.total);
        let feed = &mut self.feeds[cat];
        feed.push(&text, update.id, update.total);
        if feed.held_bytes() > self.budget {
            self.hand_out(cat, sessions);
        }
        if self.round_due_in.is_none() {
            // After the streams already listed: each of them takes this total too.
            self.round_due_in = Some(self.queue.len());
        }
    }

    /// Every subscriber of `cat` takes the feed now, into its own queue (conflating past
    /// its budget, as it would have when written), and the feed is emptied.
    fn hand_out(&mut self, cat: CategoryId, sessions: &mut impl Sessions) {
        let feed = &self.feeds[cat];
        for &key in self.subs.of(cat) {
            sessions.hand_out(key, feed);
            list(&mut self.queue, &mut self.listed, key);
        }
        self.feeds[cat].clear();
    }

    /// Subscribes `key` to `cat` (or to nothing), replacing its subscription. The caller
    /// starts its session at the end of the category's feed ([`Feed::follow`]).
    pub fn subscribe(&mut self, key: usize, cat: Option<CategoryId>) {
        self.subs.subscribe(key, cat);
    }

    /// Ends `key`'s subscription: it takes no more totals.
    pub fn unsubscribe(&mut self, key: usize) {
        self.subs.unsubscribe(key);
    }

    /// Forgets `key` everywhere (its connection closed; the slab key will be reused).
    pub fn remove(&mut self, key: usize) {
        self.subs.unsubscribe(key);
        if let Some(listed) = self.listed.get_mut(key) {
            *listed = false;
        }
    }

    /// Totals published so far, counted once per subscriber of their category.
    pub fn deliveries(&self) -> u64 {
        self.deliveries
    }

    /// The feed of a category.
    pub fn feed(&self, cat: CategoryId) -> &Feed {
        &self.feeds[cat]
    }

    /// The feed `key` is subscribed to.
    pub fn feed_of(&self, key: usize) -> Option<&Feed> {
        self.subs.category_of(key).map(|cat| &self.feeds[cat])
    }

    /// Lists the stream `key` to be written (once, however often it is listed).
    pub fn list(&mut self, key: usize) {
        list(&mut self.queue, &mut self.listed, key);
    }

    /// The next stream to write, oldest listed first. When a round is due it starts
    /// first: every subscriber of a category published to since the last one is listed.
    pub fn next_to_write(&mut self) -> Option<usize> {
        loop {
            if self.round_due_in == Some(0) {
                self.start_round();
            }
            let key = self.queue.pop_front()?;
            if let Some(n) = &mut self.round_due_in {
                *n -= 1;
            }
            // A key removed while listed (and perhaps reused) is skipped.
            if std::mem::take(&mut self.listed[key]) {
                return Some(key);
            }
        }
    }

    /// True when nothing is listed and no round is due: the loop may sleep.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.round_due_in.is_none()
    }

    fn start_round(&mut self) {
        self.round_due_in = None;
        for (cat, feed) in self.feeds.iter_mut().enumerate() {
            if feed.new_round() {
                for &key in self.subs.of(cat) {
                    list(&mut self.queue, &mut self.listed, key);
                }
            }
        }
    }
}

fn list(queue: &mut VecDeque<usize>, listed: &mut Vec<bool>, key: usize) {
    if listed.len() <= key {
        listed.resize(key + 1, false);
    }
    if !listed[key] {
        listed[key] = true;
        queue.push_back(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Subscribers that record every total they take, from where they left off.
    #[derive(Default)]
    struct Recorders {
        pos: HashMap<usize, u64>,
        got: HashMap<usize, Vec<u64>>,
        handed_out: usize,
    }

    impl Recorders {
        fn take(&mut self, key: usize, feed: &Feed) {
            let pos = self.pos.get_mut(&key).expect("subscribed");
            let got = self.got.entry(key).or_default();
            got.extend(feed.totals_since(*pos).map(|(_, t)| t.total));
            *pos = feed.end();
        }
    }

    impl Sessions for Recorders {
        fn hand_out(&mut self, key: usize, feed: &Feed) {
            self.handed_out += 1;
            self.take(key, feed);
        }
    }

    fn subscribe(f: &mut Fanout, r: &mut Recorders, key: usize, cat: CategoryId) {
        f.subscribe(key, Some(cat));
        r.pos.insert(key, f.feed(cat).end());
        r.got.remove(&key);
    }

    fn update(category: CategoryId, total: u64) -> Update {
        Update {
            category,
            id: "A1".into(),
            total,
        }
    }

    /// Writes at most `n` listed WebSockets, as one loop turn does.
    fn write_some(f: &mut Fanout, r: &mut Recorders, n: usize) {
        for _ in 0..n {
            let Some(key) = f.next_to_write() else { return };
            if let Some(feed) = f.feed_of(key) {
                r.take(key, feed);
            }
        }
    }

    #[test]
    fn every_subscriber_takes_every_total_in_order_and_old_frames_are_dropped() {
        let mut f = Fanout::new(2, 1 << 20);
        let mut r = Recorders::default();
        for key in 0..10 {
            subscribe(&mut f, &mut r, key, 0);
        }
        subscribe(&mut f, &mut r, 10, 1);
        // Publishes interleaved with slices of 3 writes, as the loop does them.
        let mut largest = 0;
        for total in 1..=200 {
            f.publish(update(0, total), &mut r);
            write_some(&mut f, &mut r, 3);
            largest = largest.max(f.feed(0).held_bytes());
        }
        while !f.is_idle() {
            write_some(&mut f, &mut r, 3);
        }
        let all: Vec<u64> = (1..=200).collect();
        for key in 0..10 {
            assert_eq!(r.got[&key], all, "subscriber {key}");
        }
        assert!(r.got.get(&10).is_none_or(Vec::is_empty), "other category");
        // A round lists 10 subscribers, written 3 per turn: 4 turns, so a feed holds the
        // totals of about two rounds, not all 200.
        // 200 totals are 200 * 71 bytes with their index; a feed holds about two rounds.
        assert!(largest < 1000, "feed held {largest} bytes");
        assert_eq!(r.handed_out, 0);
    }

    #[test]
    fn a_feed_that_outgrows_the_budget_is_handed_out_in_order() {
        // A budget of about four frames; a burst of 100 totals with no writes in between.
        let mut f = Fanout::new(1, 100);
        let mut r = Recorders::default();
        for key in 0..3 {
            subscribe(&mut f, &mut r, key, 0);
        }
        for total in 1..=100 {
            f.publish(update(0, total), &mut r);
            assert!(f.feed(0).held_bytes() <= 100 + 80, "bounded");
        }
        assert!(r.handed_out >= 3 * 20, "{} hand-outs", r.handed_out);
        while !f.is_idle() {
            write_some(&mut f, &mut r, 2);
        }
        let all: Vec<u64> = (1..=100).collect();
        for key in 0..3 {
            assert_eq!(r.got[&key], all, "subscriber {key}");
        }
    }

    #[test]
    fn nobody_listening_keeps_nothing_and_a_removed_key_gets_nothing() {
        let mut f = Fanout::new(1, 1 << 20);
        let mut r = Recorders::default();
        f.publish(update(0, 1), &mut r);
        assert_eq!(f.feed(0).held_bytes(), 0);
        assert!(f.is_idle());

        subscribe(&mut f, &mut r, 0, 0);
        subscribe(&mut f, &mut r, 1, 0);
        f.list(1);
        f.publish(update(0, 2), &mut r);
        // Key 1 closes while listed; its slab key is reused by a connection that is not
        // subscribed: it is neither written nor handed anything.
        f.remove(1);
        let mut written = Vec::new();
        while let Some(key) = f.next_to_write() {
            written.push(key);
            if let Some(feed) = f.feed_of(key) {
                r.take(key, feed);
            }
        }
        assert_eq!(written, [0]);
        assert_eq!(r.got[&0], [2]);
        assert_eq!(f.feed_of(1).map(Feed::end), None);
    }
}
