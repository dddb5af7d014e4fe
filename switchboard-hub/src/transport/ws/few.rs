//! A map for the handful of entries one connection keeps (its subscriptions and their
//! presence): a vector searched in order. Next to a `HashMap` it holds one allocation of
//! just the entries instead of a table sized for growth, and half the bytes in the
//! connection's task, which every idle connection pays; a linear search over a few channel
//! names (at most `limits.max_subscriptions`, 100 by default) costs no more than hashing one.

/// Entries in insertion order; a removal keeps the order of the others.
pub(crate) struct Few<K, V> {
    entries: Vec<(K, V)>,
}

/// Entries up to which the vector grows one at a time (most connections hold one or two);
/// beyond, it doubles as usual.
const EXACT_UP_TO: usize = 4;

impl<K: PartialEq, V> Few<K, V> {
    /// An empty map; allocates nothing.
    pub(crate) const fn new() -> Self {
        Few {
            entries: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn position(&self, key: &K) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k == key)
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.position(key).is_some()
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = self.position(key)?;
        Some(&mut self.entries[i].1)
    }

    /// Inserts `value` under `key`; the value it replaces, if any.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let Some(old) = self.get_mut(&key) {
            return Some(std::mem::replace(old, value));
        }
        if self.entries.len() < EXACT_UP_TO {
            self.entries.reserve_exact(1);
        }
        self.entries.push((key, value));
        None
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.position(key)?;
        Some(self.entries.remove(i).1)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// Takes every entry out, in order.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (K, V)> + '_ {
        self.entries.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::Few;

    #[test]
    fn behaves_as_a_map_in_insertion_order() {
        let mut m = Few::new();
        assert_eq!(m.insert("a", 1), None);
        assert_eq!(m.insert("b", 2), None);
        assert_eq!(m.insert("c", 3), None);
        assert_eq!(m.insert("a", 10), Some(1));
        assert_eq!(m.len(), 3);
        assert!(m.contains_key(&"b"));
        assert_eq!(m.remove(&"b"), Some(2));
        assert_eq!(m.remove(&"b"), None);
        assert!(!m.contains_key(&"b"));
        *m.get_mut(&"c").unwrap() += 1;
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), ["a", "c"]);
        for (_, v) in m.iter_mut() {
            *v *= 2;
        }
        assert_eq!(m.drain().collect::<Vec<_>>(), [("a", 20), ("c", 8)]);
        assert_eq!(m.len(), 0);
    }

    #[test]
    fn grows_one_entry_at_a_time_while_small_then_doubles() {
        let mut m = Few::new();
        for i in 0..4 {
            m.insert(i, ());
            assert_eq!(m.entries.capacity(), i + 1);
        }
        for i in 4..100 {
            m.insert(i, ());
        }
        assert_eq!(m.len(), 100);
        assert!(m.entries.capacity() < 200);
    }
}
