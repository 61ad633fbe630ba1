//! Stored hashes: the storage layout of Go's `golang.org/x/mod/sumdb/tlog`, so a log can persist its
//! Merkle tree as a flat, append-only sequence of hashes (e.g. one SQL row per hash) and produce any
//! proof with O(log n) reads.
//!
//! The stored hash at (`level`, `n`) is the root of the perfect subtree covering leaves
//! `[n·2^level, (n+1)·2^level)`. Hashes are stored in the order they become computable while records
//! are appended: appending record `n` stores its leaf hash and then every subtree it completes, so
//! after `n` records exactly [`stored_hash_count`]`(n)` hashes exist, and the positions never change.
//! [`StoredHashIndex`] maps (`level`, `n`) to that position.
//!
//! Invariants: a [`HashReader`] returns hashes in the order requested and exactly as many as requested
//! (checked here); [`stored_hashes_for_record`] reads only hashes that already exist.

use crate::hash::{Hash, empty_root, leaf_hash, node_hash};
use crate::{Error, Result};

/// Position of a stored hash in the append-only hash sequence (Go: `StoredHashIndex`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoredHashIndex(pub u64);

impl StoredHashIndex {
    /// Index of the hash at (`level`, `n`): the subtree of `2^level` leaves starting at `n·2^level`.
    pub fn new(level: u32, n: u64) -> StoredHashIndex {
        stored_hash_index(level, n)
    }

    /// The inverse of [`StoredHashIndex::new`]: `(level, n)`.
    pub fn split(self) -> (u32, u64) {
        split_stored_hash_index(self.0)
    }
}

/// Index of the stored hash at (`level`, `n`) (Go: `tlog.StoredHashIndex`).
pub fn stored_hash_index(level: u32, n: u64) -> StoredHashIndex {
    // Work out the index of the last leaf hash of the subtree, i.e. (0, (n+1)·2^level − 1)…
    let mut n = n;
    for _ in 0..level {
        n = 2 * n + 1;
    }
    // …whose index is the number of stored hashes before leaf n plus n: Σ n>>i over i.
    let mut i = 0u64;
    let mut m = n;
    while m > 0 {
        i += m;
        m >>= 1;
    }
    // The subtree hash is stored `level` positions after that leaf hash.
    StoredHashIndex(i + u64::from(level))
}

/// Inverse of [`stored_hash_index`] (Go: `tlog.SplitStoredHashIndex`).
pub fn split_stored_hash_index(index: u64) -> (u32, u64) {
    // Find the leaf n whose hash is stored at or just before `index`.
    let mut n = index / 2;
    let mut index_n = stored_hash_index(0, n).0;
    debug_assert!(index_n <= index);
    loop {
        // Each new record n adds 1 + trailing_zeros(n+1) hashes.
        let x = index_n + 1 + u64::from((n + 1).trailing_zeros());
        if x > index {
            break;
        }
        n += 1;
        index_n = x;
    }
    let level = (index - index_n) as u32;
    (level, n >> level)
}

/// Number of stored hashes after `n` records have been appended (Go: `tlog.StoredHashCount`).
pub fn stored_hash_count(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let mut count = stored_hash_index(0, n - 1).0 + 1;
    let mut i = n - 1;
    while i & 1 != 0 {
        count += 1;
        i >>= 1;
    }
    count
}

/// Read access to stored hashes (Go: `tlog.HashReader`).
///
/// Implementations return the hashes at the given indexes, in the same order. A SQL-backed reader can
/// answer with one `SELECT … WHERE idx IN (…)` query; proofs need O(log n) indexes.
pub trait HashReader {
    /// Returns `indexes.len()` hashes, in order, or an error.
    fn read_hashes(&self, indexes: &[StoredHashIndex]) -> Result<Vec<Hash>>;
}

impl<R: HashReader + ?Sized> HashReader for &R {
    fn read_hashes(&self, indexes: &[StoredHashIndex]) -> Result<Vec<Hash>> {
        (**self).read_hashes(indexes)
    }
}

/// Calls the reader and checks that it returned exactly one hash per index.
pub(crate) fn read_checked<R: HashReader + ?Sized>(
    reader: &R,
    indexes: &[StoredHashIndex],
) -> Result<Vec<Hash>> {
    let hashes = reader.read_hashes(indexes)?;
    if hashes.len() != indexes.len() {
        return Err(Error::Reader(format!(
            "asked for {} hashes, got {}",
            indexes.len(),
            hashes.len()
        )));
    }
    Ok(hashes)
}

/// The hashes to store when appending record number `n` (0-based) with contents `data`, given the
/// hashes stored for records `0..n` (Go: `tlog.StoredHashes`). The result starts with the record's
/// leaf hash and is to be stored at indexes `stored_hash_count(n)..stored_hash_count(n+1)`.
pub fn stored_hashes_for_record<R: HashReader + ?Sized>(
    n: u64,
    data: &[u8],
    reader: &R,
) -> Result<Vec<Hash>> {
    stored_hashes_for_record_hash(n, leaf_hash(data), reader)
}

/// Like [`stored_hashes_for_record`], starting from the record's leaf hash
/// (Go: `tlog.StoredHashesForRecordHash`).
pub fn stored_hashes_for_record_hash<R: HashReader + ?Sized>(
    n: u64,
    leaf: Hash,
    reader: &R,
) -> Result<Vec<Hash>> {
    // Record n completes one subtree per trailing one bit of n, whose left siblings are stored.
    let m = (n + 1).trailing_zeros() as usize;
    let mut indexes = vec![StoredHashIndex(0); m];
    for i in 0..m {
        // The left sibling at level i of the new subtree: (i, (n >> i) - 1).
        indexes[m - 1 - i] = stored_hash_index(i as u32, (n >> i) - 1);
    }
    let old = read_checked(reader, &indexes)?;
    let mut hashes = Vec::with_capacity(m + 1);
    let mut h = leaf;
    hashes.push(h);
    for i in 0..m {
        h = node_hash(&old[m - 1 - i], &h);
        hashes.push(h);
    }
    Ok(hashes)
}

/// The stored-hash indexes [`stored_hashes_for_record_hash`] reads when appending record `n`.
///
/// With an async store (sqlx), fetch these first, then call the function with a
/// [`PrefetchedHashes`] reader.
pub fn append_read_indexes(n: u64) -> Vec<StoredHashIndex> {
    let m = (n + 1).trailing_zeros();
    (0..m)
        .rev()
        .map(|i| stored_hash_index(i, (n >> i) - 1))
        .collect()
}

/// The already-stored hash indexes [`append_batch`] reads when appending `count` records to a log of
/// `start` records (sorted, deduplicated): prefetch these from an async store.
pub fn append_batch_read_indexes(start: u64, count: u64) -> Vec<StoredHashIndex> {
    let base = stored_hash_count(start);
    let mut out: Vec<StoredHashIndex> = (start..start + count)
        .flat_map(append_read_indexes)
        .filter(|i| i.0 < base)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The hashes to store when appending a batch of records (given by leaf hash) to a log of `start`
/// records: the concatenation of [`stored_hashes_for_record_hash`] for each, to be stored at
/// indexes `stored_hash_count(start)..stored_hash_count(start + leaves.len())`. Reads only hashes
/// that already exist ([`append_batch_read_indexes`]); hashes created inside the batch come from
/// the batch itself. This is the group-commit building block.
pub fn append_batch<R: HashReader + ?Sized>(
    start: u64,
    leaves: &[Hash],
    reader: &R,
) -> Result<Vec<Hash>> {
    let base = stored_hash_count(start);
    let old_idx = append_batch_read_indexes(start, leaves.len() as u64);
    let old = PrefetchedHashes::new(&old_idx, &read_checked(reader, &old_idx)?)?;
    let mut new: Vec<Hash> = Vec::with_capacity(leaves.len() * 2 + 64);
    for (k, leaf) in leaves.iter().enumerate() {
        let n = start + k as u64;
        let mut h = *leaf;
        new.push(h);
        for i in 0..(n + 1).trailing_zeros() {
            let idx = stored_hash_index(i, (n >> i) - 1);
            let left = if idx.0 < base {
                old.read_hashes(&[idx])?[0]
            } else {
                new[(idx.0 - base) as usize]
            };
            h = node_hash(&left, &h);
            new.push(h);
        }
    }
    Ok(new)
}

/// The stored-hash indexes [`tree_hash`] reads for size `n`.
pub fn tree_hash_indexes(n: u64) -> Vec<StoredHashIndex> {
    let mut need = Vec::new();
    subtree_index(0, n, &mut need);
    need
}

/// A [`HashReader`] over hashes fetched beforehand (e.g. by an async SQL query for the indexes
/// returned by [`append_read_indexes`], [`tree_hash_indexes`],
/// [`crate::proof::prove_record_indexes`] or [`crate::proof::prove_tree_indexes`]).
#[derive(Debug, Clone, Default)]
pub struct PrefetchedHashes(pub std::collections::HashMap<StoredHashIndex, Hash>);

impl PrefetchedHashes {
    /// From parallel lists of indexes and hashes.
    pub fn new(indexes: &[StoredHashIndex], hashes: &[Hash]) -> Result<Self> {
        if indexes.len() != hashes.len() {
            return Err(Error::Reader(format!(
                "{} indexes but {} hashes",
                indexes.len(),
                hashes.len()
            )));
        }
        Ok(PrefetchedHashes(
            indexes
                .iter()
                .copied()
                .zip(hashes.iter().copied())
                .collect(),
        ))
    }
}

impl HashReader for PrefetchedHashes {
    fn read_hashes(&self, indexes: &[StoredHashIndex]) -> Result<Vec<Hash>> {
        indexes
            .iter()
            .map(|i| {
                self.0
                    .get(i)
                    .copied()
                    .ok_or_else(|| Error::Reader(format!("hash {} was not prefetched", i.0)))
            })
            .collect()
    }
}

/// `(k, l)`: the largest power of two `k = 2^l` strictly below `n` (`n ≥ 2`) (Go: `maxpow2`).
pub(crate) fn maxpow2(n: u64) -> (u64, u32) {
    debug_assert!(n >= 2);
    let l = 63 - (n - 1).leading_zeros();
    (1u64 << l, l)
}

/// Appends to `need` the stored-hash indexes of the perfect subtrees covering `[lo, hi)`, largest
/// first (Go: `subTreeIndex`). `lo` must be aligned to the first subtree.
pub(crate) fn subtree_index(mut lo: u64, hi: u64, need: &mut Vec<StoredHashIndex>) {
    while lo < hi {
        let (k, level) = maxpow2(hi - lo + 1);
        debug_assert_eq!(lo & (k - 1), 0, "bad subtree range");
        need.push(stored_hash_index(level, lo >> level));
        lo += k;
    }
}

/// Consumes the hashes listed by [`subtree_index`] for `[lo, hi)` from the front of `hashes` and
/// returns the range's root (Go: `subTreeHash`).
pub(crate) fn subtree_hash(mut lo: u64, hi: u64, hashes: &mut &[Hash]) -> Result<Hash> {
    let mut num = 0usize;
    while lo < hi {
        let (k, _) = maxpow2(hi - lo + 1);
        lo += k;
        num += 1;
    }
    if num == 0 || hashes.len() < num {
        return Err(Error::Reader("not enough hashes for subtree".into()));
    }
    let mut h = hashes[num - 1];
    for i in (0..num - 1).rev() {
        h = node_hash(&hashes[i], &h);
    }
    *hashes = &hashes[num..];
    Ok(h)
}

/// The root of the tree of size `n` from stored hashes, with O(log n) reads (Go: `tlog.TreeHash`,
/// except that size 0 gives the RFC 6962 empty root `SHA-256("")` rather than all zeros).
pub fn tree_hash<R: HashReader + ?Sized>(n: u64, reader: &R) -> Result<Hash> {
    if n == 0 {
        return Ok(empty_root());
    }
    let mut indexes = Vec::new();
    subtree_index(0, n, &mut indexes);
    let hashes = read_checked(reader, &indexes)?;
    let mut rest: &[Hash] = &hashes;
    subtree_hash(0, n, &mut rest)
}

/// An in-memory stored-hash store: the reference [`HashReader`], also used by tests and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct MemoryHashStore {
    hashes: Vec<Hash>,
    size: u64,
}

impl MemoryHashStore {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty log with room for `records` records.
    pub fn with_capacity(records: u64) -> Self {
        MemoryHashStore {
            hashes: Vec::with_capacity(stored_hash_count(records) as usize),
            size: 0,
        }
    }

    /// Number of records appended.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// All stored hashes, in stored-hash-index order.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends one record; returns its index.
    pub fn append(&mut self, data: &[u8]) -> u64 {
        self.append_leaf_hash(leaf_hash(data))
    }

    /// Appends one record given its leaf hash; returns its index.
    pub fn append_leaf_hash(&mut self, leaf: Hash) -> u64 {
        let n = self.size;
        // Same computation as `stored_hashes_for_record_hash`, without allocating.
        let mut h = leaf;
        self.hashes.push(h);
        for i in 0..(n + 1).trailing_zeros() {
            let left = self.hashes[stored_hash_index(i, (n >> i) - 1).0 as usize];
            h = node_hash(&left, &h);
            self.hashes.push(h);
        }
        self.size += 1;
        n
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        // Reading from self cannot fail.
        tree_hash(self.size, self).unwrap_or_else(|_| empty_root())
    }
}

impl HashReader for MemoryHashStore {
    fn read_hashes(&self, indexes: &[StoredHashIndex]) -> Result<Vec<Hash>> {
        indexes
            .iter()
            .map(|i| {
                self.hashes
                    .get(i.0 as usize)
                    .copied()
                    .ok_or_else(|| Error::Reader(format!("no stored hash at index {}", i.0)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::root_from_leaf_hashes;

    #[test]
    fn index_layout_matches_go() {
        // Values from Go's tlog_test.go TestStoredHashIndex layout: leaves at 0,1,3,4,7,8,10,11,15…
        let check = |level: u32, n: u64, expected: u64| {
            assert_eq!(stored_hash_index(level, n).0, expected, "({level},{n})");
            assert_eq!(
                split_stored_hash_index(expected),
                (level, n),
                "split {expected}"
            );
        };
        check(0, 0, 0);
        check(0, 1, 1);
        check(1, 0, 2);
        check(0, 2, 3);
        check(0, 3, 4);
        check(1, 1, 5);
        check(2, 0, 6);
        check(0, 4, 7);
        check(0, 8, 15);
        check(3, 0, 14);
    }

    #[test]
    fn prefetched_reads_give_the_same_results() {
        let mut store = MemoryHashStore::new();
        for i in 0..100u64 {
            let idx = append_read_indexes(i);
            let pre = PrefetchedHashes::new(&idx, &store.read_hashes(&idx).unwrap()).unwrap();
            let expected = stored_hashes_for_record(i, b"e", &store).unwrap();
            assert_eq!(stored_hashes_for_record(i, b"e", &pre).unwrap(), expected);
            store.append(b"e");
            let idx = tree_hash_indexes(i + 1);
            let pre = PrefetchedHashes::new(&idx, &store.read_hashes(&idx).unwrap()).unwrap();
            assert_eq!(tree_hash(i + 1, &pre).unwrap(), store.root());
        }
        assert!(tree_hash(5, &PrefetchedHashes::default()).is_err());
    }

    #[test]
    fn batches_store_the_same_hashes_as_single_appends() {
        let mut single = MemoryHashStore::new();
        let mut batched: Vec<Hash> = Vec::new();
        let mut size = 0u64;
        // Batches of varied sizes, crossing many power-of-two boundaries.
        for (b, len) in [1u64, 2, 5, 1, 8, 31, 64, 3, 100, 0, 17]
            .into_iter()
            .enumerate()
        {
            let leaves: Vec<Hash> = (0..len)
                .map(|k| leaf_hash(format!("b{b}-{k}").as_bytes()))
                .collect();
            leaves.iter().for_each(|l| {
                single.append_leaf_hash(*l);
            });
            let reader = PrefetchedHashes::new(
                &append_batch_read_indexes(size, len),
                &append_batch_read_indexes(size, len)
                    .iter()
                    .map(|i| batched[i.0 as usize])
                    .collect::<Vec<_>>(),
            )
            .unwrap();
            batched.extend(append_batch(size, &leaves, &reader).unwrap());
            size += len;
            assert_eq!(&batched[..], single.hashes(), "after batch {b}");
        }
    }

    #[test]
    fn split_inverts_index_for_many_positions() {
        for idx in 0..5000u64 {
            let (l, n) = split_stored_hash_index(idx);
            assert_eq!(stored_hash_index(l, n).0, idx);
        }
    }

    #[test]
    fn store_matches_recursive_roots_and_counts() {
        let mut store = MemoryHashStore::new();
        let mut leaves = Vec::new();
        assert_eq!(store.root(), empty_root());
        for i in 0..200u64 {
            let data = format!("access-record-{i}");
            // The generic path (through a HashReader) agrees with the store's fast path.
            let via_reader = stored_hashes_for_record(i, data.as_bytes(), &store).unwrap();
            store.append(data.as_bytes());
            let start = stored_hash_count(i) as usize;
            assert_eq!(&store.hashes()[start..], &via_reader[..]);
            assert_eq!(store.hashes().len() as u64, stored_hash_count(i + 1));
            leaves.push(leaf_hash(data.as_bytes()));
            assert_eq!(store.root(), root_from_leaf_hashes(&leaves));
        }
    }

    struct Short;
    impl HashReader for Short {
        fn read_hashes(&self, _: &[StoredHashIndex]) -> Result<Vec<Hash>> {
            Ok(vec![])
        }
    }

    #[test]
    fn reader_returning_too_few_hashes_is_an_error() {
        assert!(matches!(tree_hash(5, &Short), Err(Error::Reader(_))));
        assert!(stored_hashes_for_record(3, b"x", &Short).is_err());
    }
}
