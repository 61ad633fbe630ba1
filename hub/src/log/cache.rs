//! 哈希缓存: an in-memory copy of stored hashes, so that proofs and receipts of recent entries do not
//! query the database.
//!
//! Stored hashes are written in index order and never change once committed, so a copy is either
//! right or absent. The cache holds:
//! - a contiguous window of the newest stored hashes (filled by the writer after each commit, and
//!   trimmed to [`WINDOW`] hashes): every hash a proof of a recent entry needs on its right side
//!   and in its low levels;
//! - every hash at level [`UPPER_LEVEL`] or above that the writer committed or a reader fetched
//!   (about one per 128 entries): the large left siblings of any proof.
//!
//! Anything else is read from the database (and not kept, unless it is an upper-level hash). Only
//! hashes that are durable go in: the writer adds a batch's hashes after its transaction committed.

use std::collections::{HashMap, VecDeque};

use tlog::stored::split_stored_hash_index;
use tlog::{Hash, HashReader, StoredHashIndex};

/// Most hashes in the window (2 MiB of hashes; about the last 32,000 entries).
pub const WINDOW: usize = 1 << 16;
/// Hashes at this level or above are kept for good once seen.
pub const UPPER_LEVEL: u32 = 8;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct HashCache {
    /// Stored index of `window[0]`.
    start: u64,
    window: VecDeque<Hash>,
    upper: HashMap<u64, Hash>,
}

impl HashCache {
    /// The hash at stored index `id`, if cached.
    pub fn get(&self, id: u64) -> Option<Hash> {
        id.checked_sub(self.start)
            .and_then(|k| self.window.get(k as usize))
            .or_else(|| self.upper.get(&id))
            .copied()
    }

    /// Adds hashes just committed at stored indexes `base..base + hashes.len()`. If they do not
    /// continue the window (another sequencer appended meanwhile), the window restarts at `base`.
    pub fn extend(&mut self, base: u64, hashes: impl IntoIterator<Item = Hash>) {
        if base != self.start + self.window.len() as u64 {
            self.window.clear();
            self.start = base;
        }
        for h in hashes {
            let id = self.start + self.window.len() as u64;
            self.window.push_back(h);
            self.keep_upper(id, h);
        }
        let extra = self.window.len().saturating_sub(WINDOW);
        if extra > 0 {
            self.window.drain(..extra);
            self.start += extra as u64;
        }
    }

    /// Remembers hashes read from the database (only upper-level ones are kept).
    pub fn remember(&mut self, hashes: &HashMap<u64, Hash>) {
        for (id, h) in hashes {
            self.keep_upper(*id, *h);
        }
    }

    fn keep_upper(&mut self, id: u64, h: Hash) {
        if split_stored_hash_index(id).0 >= UPPER_LEVEL {
            self.upper.insert(id, h);
        }
    }

    /// Number of hashes held (window + upper), for tests.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.window.len() + self.upper.len()
    }
}

/// A [`HashReader`] over the cache that fails on the first miss.
pub struct CacheReader<'a>(pub &'a HashCache);

impl HashReader for CacheReader<'_> {
    fn read_hashes(&self, indexes: &[StoredHashIndex]) -> tlog::Result<Vec<Hash>> {
        indexes
            .iter()
            .map(|i| {
                self.0
                    .get(i.0)
                    .ok_or_else(|| tlog::Error::Reader(format!("stored hash {} not cached", i.0)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tlog::MemoryHashStore;

    fn h(i: u64) -> Hash {
        tlog::hash::leaf_hash(&i.to_be_bytes())
    }

    #[test]
    fn window_is_contiguous_and_trimmed() {
        let mut c = HashCache::default();
        c.extend(0, (0..10).map(h));
        assert_eq!(c.get(0), Some(h(0)));
        assert_eq!(c.get(9), Some(h(9)));
        assert_eq!(c.get(10), None);
        c.extend(10, (10..(WINDOW as u64 + 20)).map(h));
        assert_eq!(c.get(19), None, "trimmed");
        assert_eq!(c.get(20), Some(h(20)));
        assert_eq!(c.get(WINDOW as u64 + 19), Some(h(WINDOW as u64 + 19)));
        // A gap (another sequencer appended) restarts the window.
        c.extend(WINDOW as u64 + 100, [h(1)]);
        assert_eq!(c.get(WINDOW as u64 + 100), Some(h(1)));
        assert_eq!(c.get(WINDOW as u64 + 19), None);
    }

    #[test]
    fn upper_levels_outlive_the_window() {
        // A real tree: the stored hashes of 2 × WINDOW records.
        let mut m = MemoryHashStore::new();
        let mut c = HashCache::default();
        for i in 0..(WINDOW as u64) {
            let before = m.hashes().len() as u64;
            m.append(&i.to_be_bytes());
            c.extend(before, m.hashes()[before as usize..].iter().copied());
        }
        let all = m.hashes();
        let mut upper = 0;
        for (id, want) in all.iter().enumerate() {
            let (level, _) = split_stored_hash_index(id as u64);
            match c.get(id as u64) {
                Some(got) => assert_eq!(got, *want, "stored hash {id}"),
                None => assert!(level < UPPER_LEVEL && (id as u64) < c.start),
            }
            if level >= UPPER_LEVEL {
                upper += 1;
            }
        }
        assert_eq!(c.len(), WINDOW + upper);
        // Proofs of recent records come from the cache alone and match the full store.
        let size = m.size();
        for n in [size - 1, size - 2, size - 300, size - 5000] {
            let want = tlog::proof::prove_record(size, n, &m).unwrap();
            let got = tlog::proof::prove_record(size, n, &CacheReader(&c)).unwrap();
            assert_eq!(got, want, "record {n}");
        }
    }
}
