//! Who is subscribed to what, indexed both ways: category -> subscribers for fan-out, and
//! subscriber -> (category, position) so that `unsubscribe` is O(1) and a closed
//! connection disappears from everywhere at once. Subscribers are slab keys.

use crate::state::CategoryId;

/// The subscription index.
#[derive(Debug, Default)]
pub struct Subscribers {
    /// For each category, the slab keys subscribed to it (unordered).
    by_category: Vec<Vec<usize>>,
    /// For each slab key, its category and its position in that category's list.
    by_key: Vec<Option<(CategoryId, usize)>>,
}

impl Subscribers {
    /// An index for `categories` categories.
    pub fn new(categories: usize) -> Subscribers {
        Subscribers {
            by_category: vec![Vec::new(); categories],
            by_key: Vec::new(),
        }
    }

    /// Subscribes `key` to `cat`, or to nothing when `cat` is `None`, replacing any
    /// earlier subscription of `key`.
    pub fn subscribe(&mut self, key: usize, cat: Option<CategoryId>) {
        self.unsubscribe(key);
        let Some(cat) = cat else { return };
        if self.by_key.len() <= key {
            self.by_key.resize(key + 1, None);
        }
        let list = &mut self.by_category[cat];
        self.by_key[key] = Some((cat, list.len()));
        list.push(key);
    }

    /// Removes `key` from every index. Must be called when a connection closes: its slab
    /// key will be reused, and a stale entry would push updates to a stranger.
    pub fn unsubscribe(&mut self, key: usize) {
        let Some((cat, pos)) = self.by_key.get_mut(key).and_then(Option::take) else {
            return;
        };
        let list = &mut self.by_category[cat];
        list.swap_remove(pos);
        if let Some(&moved) = list.get(pos) {
            self.by_key[moved] = Some((cat, pos));
        }
    }

    /// The category `key` is subscribed to.
    pub fn category_of(&self, key: usize) -> Option<CategoryId> {
        self.by_key.get(key).copied().flatten().map(|(cat, _)| cat)
    }

    /// The keys subscribed to `cat`.
    pub fn of(&self, cat: CategoryId) -> &[usize] {
        &self.by_category[cat]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(s: &Subscribers, cat: CategoryId) -> Vec<usize> {
        let mut v = s.of(cat).to_vec();
        v.sort();
        v
    }

    #[test]
    fn subscribe_move_and_unsubscribe_keep_both_indexes_in_step() {
        let mut s = Subscribers::new(2);
        for key in 0..5 {
            s.subscribe(key, Some(0));
        }
        s.subscribe(1, Some(1));
        s.unsubscribe(0);
        s.unsubscribe(0);
        assert_eq!(sorted(&s, 0), [2, 3, 4]);
        assert_eq!(sorted(&s, 1), [1]);
        assert_eq!(s.category_of(1), Some(1));
        assert_eq!(s.category_of(0), None);
        s.subscribe(3, None);
        assert_eq!(sorted(&s, 0), [2, 4]);
        for key in [2, 4] {
            s.unsubscribe(key);
        }
        assert!(s.of(0).is_empty());
        // A reused key starts with no subscription.
        assert_eq!(s.category_of(2), None);
    }
}
