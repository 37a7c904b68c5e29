//! A sorted vector as a small map or set: a cluster has two nodes (a handful at most), and a
//! B-tree node for two entries costs 100-250 bytes where this costs what the entries take.
//! Grows one entry at a time (exact capacity): the arbiter holds one per cluster, thousands.

/// Map from `K` to `V`, ordered by key.
#[derive(Debug, Clone)]
pub(super) struct VecMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap(Vec::new())
    }
}

impl<K: Ord + Copy, V> VecMap<K, V> {
    pub(super) fn get(&self, k: &K) -> Option<&V> {
        self.0.binary_search_by(|e| e.0.cmp(k)).ok().map(|i| &self.0[i].1)
    }
    pub(super) fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.0.binary_search_by(|e| e.0.cmp(k)).ok().map(|i| &mut self.0[i].1)
    }
    /// Insert or replace; true when the key was new.
    pub(super) fn insert(&mut self, k: K, v: V) -> bool {
        match self.0.binary_search_by(|e| e.0.cmp(&k)) {
            Ok(i) => {
                self.0[i].1 = v;
                false
            }
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, (k, v));
                true
            }
        }
    }
    pub(super) fn remove(&mut self, k: &K) -> Option<V> {
        let i = self.0.binary_search_by(|e| e.0.cmp(k)).ok()?;
        Some(self.0.remove(i).1)
    }
    pub(super) fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.0.iter().map(|e| &e.0)
    }
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Set of `K`, ordered.
#[derive(Debug, Clone)]
pub(super) struct VecSet<K>(VecMap<K, ()>);

impl<K> Default for VecSet<K> {
    fn default() -> Self {
        VecSet(VecMap::default())
    }
}

impl<K: Ord + Copy> VecSet<K> {
    /// true when `k` was not in the set.
    pub(super) fn insert(&mut self, k: K) -> bool {
        self.0.insert(k, ())
    }
    pub(super) fn remove(&mut self, k: &K) -> bool {
        self.0.remove(k).is_some()
    }
    pub(super) fn iter(&self) -> impl Iterator<Item = &K> + '_ {
        self.0.keys()
    }
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_and_set_keep_order_and_replace() {
        let mut m = VecMap::default();
        assert!(m.insert(3u32, "c") && m.insert(1, "a") && !m.insert(3, "C"));
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(m.get(&3), Some(&"C"));
        *m.get_mut(&1).unwrap() = "A";
        assert_eq!(m.remove(&1), Some("A"));
        assert_eq!(m.get(&1), None);
        let mut s = VecSet::default();
        assert!(s.insert(5u64) && s.insert(2) && !s.insert(5));
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), vec![2, 5]);
        assert!(s.remove(&2) && !s.remove(&2) && !s.is_empty());
    }
}
