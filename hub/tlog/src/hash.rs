//! RFC 6962 / RFC 9162 §2.1 Merkle tree hashing with SHA-256.
//!
//! - leaf hash `SHA-256(0x00 || entry)`, interior node `SHA-256(0x01 || left || right)`;
//! - `MTH(D[0:n])` splits at the largest power of two strictly below `n`, with no padding and no
//!   duplicated odd nodes;
//! - the empty tree's root is `SHA-256("")` (what tlog-witness requires for size-0 checkpoints).
//!
//! [`TreeHasher`] computes a root in O(log n) memory by streaming leaf hashes or aligned subtree
//! hashes (a "compact range"); it is what an offline verifier uses to recompute a whole log.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::digest::{SHA256, digest};

use crate::{Error, Result};

/// Size of a SHA-256 hash in bytes.
pub const HASH_SIZE: usize = 32;

/// A SHA-256 Merkle tree hash (leaf, interior node or root).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; HASH_SIZE]);

impl Hash {
    /// Standard base64 (RFC 4648 §4, padded), as used in checkpoints and proofs.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// Parses standard padded base64 of exactly 32 bytes. `field` names the input in errors.
    pub fn from_base64(field: &'static str, s: &str) -> Result<Hash> {
        let bytes = B64
            .decode(s)
            .map_err(|_| Error::malformed(field, "not standard padded base64"))?;
        Hash::from_slice(field, &bytes)
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(field: &'static str, s: &str) -> Result<Hash> {
        let bytes = hex::decode(s).map_err(|_| Error::malformed(field, "not hex"))?;
        Hash::from_slice(field, &bytes)
    }

    /// Copies exactly 32 bytes.
    pub fn from_slice(field: &'static str, bytes: &[u8]) -> Result<Hash> {
        let arr: [u8; HASH_SIZE] = bytes.try_into().map_err(|_| {
            Error::malformed(
                field,
                format!("hash must be {HASH_SIZE} bytes, got {}", bytes.len()),
            )
        })?;
        Ok(Hash(arr))
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl std::fmt::Display for Hash {
    /// Base64, the form used in checkpoints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_base64())
    }
}

fn sha256(data: &[u8]) -> Hash {
    let d = digest(&SHA256, data);
    let mut out = [0u8; HASH_SIZE];
    out.copy_from_slice(d.as_ref());
    Hash(out)
}

/// `SHA-256(0x00 || entry)`: the hash of one log entry (Go: `tlog.RecordHash`).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut ctx = ring::digest::Context::new(&SHA256);
    ctx.update(&[0x00]);
    ctx.update(entry);
    let mut out = [0u8; HASH_SIZE];
    out.copy_from_slice(ctx.finish().as_ref());
    Hash(out)
}

/// `SHA-256(0x01 || left || right)`: an interior node (Go: `tlog.NodeHash`).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 1 + 2 * HASH_SIZE];
    buf[0] = 0x01;
    buf[1..1 + HASH_SIZE].copy_from_slice(&left.0);
    buf[1 + HASH_SIZE..].copy_from_slice(&right.0);
    sha256(&buf)
}

/// `SHA-256("")`: the root of the empty tree
/// (`47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=`).
pub fn empty_root() -> Hash {
    sha256(b"")
}

/// Largest power of two strictly below `n` (`n ≥ 2`): the RFC 6962 split point.
pub(crate) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// `MTH` over a slice of leaf hashes, by the recursive definition of RFC 6962 §2.1.
/// The root of any range `D[lo:hi]` is `root_from_leaf_hashes(&leaves[lo..hi])`.
pub fn root_from_leaf_hashes(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(
                &root_from_leaf_hashes(&leaves[..k]),
                &root_from_leaf_hashes(&leaves[k..]),
            )
        }
    }
}

/// Streaming RFC 6962 root computation in O(log n) memory (a compact range starting at 0).
///
/// Push leaf hashes (or perfect subtree hashes, see [`TreeHasher::push_subtree`]) left to right;
/// [`TreeHasher::root`] gives the root of everything pushed so far.
#[derive(Debug, Clone, Default)]
pub struct TreeHasher {
    /// Perfect subtrees left to right, strictly decreasing heights: (height, hash).
    stack: Vec<(u32, Hash)>,
    size: u64,
}

impl TreeHasher {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves covered so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        // Height 0 is always aligned, so this cannot fail.
        let _ = self.push_subtree(leaf, 0);
    }

    /// Appends the hash of a perfect subtree of `2^height` leaves. The subtree must start at a
    /// multiple of its size (the current size must be a multiple of `2^height`).
    pub fn push_subtree(&mut self, hash: Hash, height: u32) -> Result<()> {
        if height >= 64 || !self.size.is_multiple_of(1u64 << height) {
            return Err(Error::InvalidInput(format!(
                "subtree of height {height} is not aligned at size {}",
                self.size
            )));
        }
        let (mut h, mut level) = (hash, height);
        while let Some(&(top_level, top)) = self.stack.last() {
            if top_level != level {
                break;
            }
            self.stack.pop();
            h = node_hash(&top, &h);
            level += 1;
        }
        self.stack.push((level, h));
        self.size += 1u64 << height;
        Ok(())
    }

    /// The RFC 6962 root of the leaves pushed so far (`empty_root()` when none).
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut r)) = iter.next() else {
            return empty_root();
        };
        for (_, h) in iter {
            r = node_hash(h, &r);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("access-record-{i}").as_bytes()))
            .collect()
    }

    #[test]
    fn empty_root_matches_spec() {
        assert_eq!(
            empty_root().to_base64(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(TreeHasher::new().root(), empty_root());
    }

    #[test]
    fn vectors_from_anchors() {
        let l = leaves(13);
        assert_eq!(
            l[5].to_hex(),
            "97c11ea7b687e595de46d2bc0628767ac581bf681f2bd8bce70bb4cc1938fc4b"
        );
        let check = |n: usize, expected: &str| {
            assert_eq!(
                root_from_leaf_hashes(&l[..n]).to_base64(),
                expected,
                "root({n})"
            );
            let mut th = TreeHasher::new();
            l[..n].iter().for_each(|h| th.push(*h));
            assert_eq!(th.root().to_base64(), expected, "TreeHasher root({n})");
        };
        check(7, "stFZB3CUZm3uihoSPu0L31Uzow5/IyhIVFArngW1uWU=");
        check(13, "r6qbgJBQY6iwhSmrUKXVmbTuI/27UmOUJJaIcMXwN0g=");
    }

    #[test]
    fn tree_hasher_matches_recursive_definition_and_subtrees() {
        let l = leaves(300);
        let mut th = TreeHasher::new();
        for (i, h) in l.iter().enumerate() {
            th.push(*h);
            assert_eq!(th.root(), root_from_leaf_hashes(&l[..=i]), "size {}", i + 1);
        }
        // 256 leaves as one subtree, then 44 leaves as a subtree of 32, 8, 4.
        let mut th = TreeHasher::new();
        th.push_subtree(root_from_leaf_hashes(&l[..256]), 8)
            .unwrap();
        th.push_subtree(root_from_leaf_hashes(&l[256..288]), 5)
            .unwrap();
        th.push_subtree(root_from_leaf_hashes(&l[288..296]), 3)
            .unwrap();
        th.push_subtree(root_from_leaf_hashes(&l[296..300]), 2)
            .unwrap();
        assert_eq!(th.root(), root_from_leaf_hashes(&l));
        assert!(th.push_subtree(l[0], 3).is_err(), "misaligned subtree");
    }

    #[test]
    fn hash_text_forms_round_trip_and_reject_bad_lengths() {
        let h = leaf_hash(b"x");
        assert_eq!(Hash::from_base64("h", &h.to_base64()).unwrap(), h);
        assert_eq!(Hash::from_hex("h", &h.to_hex()).unwrap(), h);
        assert!(Hash::from_base64("h", "AAAA").is_err());
        assert!(Hash::from_hex("h", "zz").is_err());
    }
}
