//! Conflation: what a subscriber over its byte budget keeps instead of messages, the latest
//! total of each product. Totals are state, not events: a client that cannot keep up loses
//! the steps in between, never the end result. WebSocket sessions and event streams both
//! keep one, each framing the totals its own way when its queue has room again.

use std::collections::BTreeMap;

use crate::outbox::Outbox;

/// The latest total per product id, while over budget.
#[derive(Debug, Default)]
pub struct Latest {
    totals: BTreeMap<String, u64>,
    /// Totals kept here rather than queued, over the life of the subscriber.
    pub conflated: u64,
}

impl Latest {
    /// True while nothing is kept: totals may be queued as they come.
    pub fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }

    /// Keeps `total` as the product's latest, replacing any kept before.
    pub fn keep(&mut self, id: &str, total: u64) {
        self.conflated += 1;
        match self.totals.get_mut(id) {
            Some(kept) => *kept = total,
            None => {
                self.totals.insert(id.to_string(), total);
            }
        }
    }

    /// Forgets what is kept (the subscription moved, or the subscriber is closing).
    pub fn clear(&mut self) {
        self.totals.clear();
    }

    /// Queues kept totals, in id order, framed by `frame`, while `out` stays within
    /// `budget` bytes. False when none was queued.
    pub fn refill(
        &mut self,
        out: &mut Outbox,
        budget: usize,
        frame: impl Fn(&str, u64) -> Vec<u8>,
    ) -> bool {
        let mut queued = false;
        while let Some((id, total)) = self.totals.pop_first() {
            let bytes = frame(&id, total);
            if out.len() + bytes.len() > budget {
                self.totals.insert(id, total);
                // Not even one fits an empty queue (a budget below one update): stop rather
                // than spin. Config refuses such budgets; this is the last guard.
                break;
            }
            out.push(&bytes);
            queued = true;
        }
        queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_per_product_and_refills_within_the_budget() {
        let mut latest = Latest::default();
        for total in 1..=100 {
            latest.keep("A2", total);
            latest.keep("A1", total + 1000);
        }
        assert_eq!(latest.conflated, 200);
        let frame = |id: &str, total: u64| format!("{id}={total};").into_bytes();
        let mut out = Outbox::default();
        // Room for one of the two.
        assert!(latest.refill(&mut out, 10, frame));
        assert!(!latest.is_empty());
        let mut sock = Vec::new();
        out.write_to(&mut sock).unwrap();
        assert!(latest.refill(&mut out, 10, frame));
        assert!(latest.is_empty());
        out.write_to(&mut sock).unwrap();
        assert_eq!(sock, b"A1=1100;A2=100;");
        assert!(!latest.refill(&mut out, 10, frame), "nothing left");
    }
}
