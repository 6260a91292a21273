//! A bounded least-recently-used map from shape (UTF-8 bytes) to plan, evicting like the reference's
//! `OrderedDict` (`move_to_end` on a hit, `popitem(last=False)` once over the size).

use std::collections::HashMap;

use foldhash::fast::RandomState;

const NONE: usize = usize::MAX;

struct Slot<V> {
    key: Box<[u8]>,
    value: V,
    older: usize,
    newer: usize,
}

pub struct LruMap<V> {
    index: HashMap<Box<[u8]>, usize, RandomState>,
    slots: Vec<Slot<V>>,
    free: Vec<usize>,
    oldest: usize,
    newest: usize,
    capacity: usize,
}

impl<V> LruMap<V> {
    pub fn new(capacity: usize) -> Self {
        LruMap {
            index: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            oldest: NONE,
            newest: NONE,
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.index.contains_key(key)
    }

    /// The value of `key`, now the most recently used.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let slot = *self.index.get(key)?;
        self.unlink(slot);
        self.link_newest(slot);
        Some(&mut self.slots[slot].value)
    }

    /// Adds `key` (not present) as the most recently used, then evicts the least recently
    /// used entries beyond the capacity.
    pub fn insert_new(&mut self, key: &[u8], value: V) {
        debug_assert!(!self.contains(key));
        let slot = Slot { key: key.into(), value, older: NONE, newer: NONE };
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index] = slot;
                index
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.index.insert(key.into(), index);
        self.link_newest(index);
        while self.index.len() > self.capacity {
            let oldest = self.oldest;
            self.unlink(oldest);
            self.index.remove(&self.slots[oldest].key);
            self.free.push(oldest);
        }
    }

    pub fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.free.clear();
        self.oldest = NONE;
        self.newest = NONE;
    }

    fn unlink(&mut self, slot: usize) {
        let (older, newer) = (self.slots[slot].older, self.slots[slot].newer);
        match older {
            NONE => self.oldest = newer,
            _ => self.slots[older].newer = newer,
        }
        match newer {
            NONE => self.newest = older,
            _ => self.slots[newer].older = older,
        }
    }

    fn link_newest(&mut self, slot: usize) {
        self.slots[slot].older = self.newest;
        self.slots[slot].newer = NONE;
        match self.newest {
            NONE => self.oldest = slot,
            newest => self.slots[newest].newer = slot,
        }
        self.newest = slot;
    }
}

#[cfg(test)]
mod tests {
    use super::LruMap;

    #[test]
    fn evicts_the_least_recently_used() {
        let mut map = LruMap::new(2);
        map.insert_new(b"a", 1);
        map.insert_new(b"b", 2);
        assert_eq!(map.get_mut(b"a"), Some(&mut 1));
        map.insert_new(b"c", 3); // evicts b
        assert!(map.contains(b"a") && !map.contains(b"b") && map.contains(b"c"));
        map.insert_new(b"d", 4); // evicts a
        assert!(!map.contains(b"a") && map.contains(b"c") && map.contains(b"d"));
        assert_eq!(map.len(), 2);
    }
}
