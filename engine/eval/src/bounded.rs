//! A map with a fixed capacity that evicts the least recently used entry and counts evictions.

use std::collections::{BTreeMap, HashMap};

/// Per-entity state with an upper bound on the number of entities kept.
#[derive(Debug)]
pub struct BoundedMap<V> {
    entries: HashMap<String, (V, u64)>,
    by_age: BTreeMap<u64, String>,
    tick: u64,
    capacity: usize,
    evicted: u64,
}

impl<V> BoundedMap<V> {
    /// An empty map that keeps at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        BoundedMap {
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
            tick: 0,
            capacity: capacity.max(1),
            evicted: 0,
        }
    }

    /// The entry for `key`, created with `init` when absent; marks it most recently used.
    pub fn get_or_insert_with(&mut self, key: &str, init: impl FnOnce() -> V) -> &mut V {
        self.tick += 1;
        let tick = self.tick;
        if !self.entries.contains_key(key) && self.entries.len() >= self.capacity {
            self.evict_oldest();
        }
        let entry = self
            .entries
            .entry(key.to_string())
            .or_insert_with(|| (init(), tick));
        self.by_age.remove(&entry.1);
        entry.1 = tick;
        self.by_age.insert(tick, key.to_string());
        &mut entry.0
    }

    /// The entry for `key` without changing its age.
    pub fn peek(&self, key: &str) -> Option<&V> {
        self.entries.get(key).map(|(value, _)| value)
    }

    /// How many entries were dropped to stay within capacity.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Number of entries kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn evict_oldest(&mut self) {
        if let Some((_, key)) = self.by_age.pop_first() {
            self.entries.remove(&key);
            self.evicted += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_and_counts() {
        let mut map = BoundedMap::new(2);
        *map.get_or_insert_with("a", || 0) += 1;
        *map.get_or_insert_with("b", || 0) += 1;
        *map.get_or_insert_with("a", || 0) += 1; // a is now newer than b
        *map.get_or_insert_with("c", || 0) += 1; // evicts b
        assert_eq!(map.len(), 2);
        assert_eq!(map.peek("a"), Some(&2));
        assert_eq!(map.peek("b"), None);
        assert_eq!(map.peek("c"), Some(&1));
        assert_eq!(map.evicted(), 1);
    }
}
