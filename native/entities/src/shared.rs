//! Values made once per distinct found entity, for callers that build an immutable object
//! per entity (the Python `Entity`, a frozen dataclass): equal entities then share one.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::{Found, LabelId};

/// The values made for one entity text, by (label, start, end).
type ValuesOfText<V> = Vec<((LabelId, usize, usize), V)>;

/// (label, start, end) -> value, per entity text; cleared when it holds `capacity` values.
pub struct SharedValues<V> {
    by_text: HashMap<Box<str>, ValuesOfText<V>, RandomState>,
    len: usize,
    capacity: usize,
}

impl<V> SharedValues<V> {
    pub fn new(capacity: usize) -> Self {
        SharedValues { by_text: HashMap::default(), len: 0, capacity }
    }

    /// The value of entity `found` whose text is `text`, made by `make` if not held.
    pub fn get_or_make<E>(&mut self, found: &Found, text: &str, make: impl FnOnce() -> Result<V, E>) -> Result<&V, E> {
        let key = (found.label, found.start, found.end);
        if self.len >= self.capacity {
            self.by_text.clear();
            self.len = 0;
        }
        if !self.by_text.contains_key(text) {
            self.by_text.insert(text.into(), Vec::new());
        }
        let Some(values) = self.by_text.get_mut(text) else { unreachable!("inserted above") };
        let index = match values.iter().position(|(known, _)| *known == key) {
            Some(index) => index,
            None => {
                values.push((key, make()?));
                self.len += 1;
                values.len() - 1
            }
        };
        Ok(&values[index].1)
    }

    pub fn clear(&mut self) {
        self.by_text.clear();
        self.len = 0;
    }
}
