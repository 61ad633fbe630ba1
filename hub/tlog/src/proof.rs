//! Inclusion and consistency proofs (RFC 6962 §2.1.1–2.1.2; verification per RFC 9162 §2.1.3.2 and
//! §2.1.4.2).
//!
//! Generation reads O(log n) stored hashes through a [`HashReader`] with the same algorithms as Go's
//! `tlog.ProveRecord` / `tlog.ProveTree`, so proofs are byte-identical to the reference. Verification
//! walks the bits of the indexes and never rebuilds a tree. Proof hashes are ordered from the leaf's
//! (or the old tree's) side up to the root's child.

use crate::hash::{Hash, empty_root, node_hash, root_from_leaf_hashes, split_point};
use crate::stored::{
    HashReader, StoredHashIndex, maxpow2, read_checked, subtree_hash, subtree_index,
};
use crate::{Error, Result};

/// Audit path of one record in a tree (RFC 6962 `PATH(m, D[n])`), leaf sibling first.
pub type InclusionProof = Vec<Hash>;
/// Consistency proof between two tree sizes (RFC 6962 `PROOF(m, D[n])`).
pub type ConsistencyProof = Vec<Hash>;

/// Proves that record `n` is in the tree of size `t` (Go: `tlog.ProveRecord`).
pub fn prove_record<R: HashReader + ?Sized>(t: u64, n: u64, reader: &R) -> Result<InclusionProof> {
    if n >= t {
        return Err(Error::InvalidInput(format!(
            "record index {n} is not below tree size {t}"
        )));
    }
    let mut indexes = Vec::new();
    leaf_proof_index(0, t, n, &mut indexes);
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = read_checked(reader, &indexes)?;
    let mut rest: &[Hash] = &hashes;
    let mut proof = Vec::with_capacity(indexes.len());
    leaf_proof(0, t, n, &mut rest, &mut proof)?;
    Ok(proof)
}

/// The stored-hash indexes [`prove_record`] reads (for prefetching from an async store).
pub fn prove_record_indexes(t: u64, n: u64) -> Result<Vec<StoredHashIndex>> {
    if n >= t {
        return Err(Error::InvalidInput(format!(
            "record index {n} is not below tree size {t}"
        )));
    }
    let mut indexes = Vec::new();
    leaf_proof_index(0, t, n, &mut indexes);
    Ok(indexes)
}

/// The stored-hash indexes [`prove_tree`] reads (for prefetching from an async store).
pub fn prove_tree_indexes(t: u64, n: u64) -> Result<Vec<StoredHashIndex>> {
    if n > t {
        return Err(Error::InvalidInput(format!(
            "old tree size {n} is above new tree size {t}"
        )));
    }
    let mut indexes = Vec::new();
    if n > 0 && n < t {
        tree_proof_index(0, t, n, &mut indexes);
    }
    Ok(indexes)
}

fn leaf_proof_index(lo: u64, hi: u64, n: u64, need: &mut Vec<StoredHashIndex>) {
    if lo + 1 == hi {
        return;
    }
    let (k, _) = maxpow2(hi - lo);
    if n < lo + k {
        leaf_proof_index(lo, lo + k, n, need);
        subtree_index(lo + k, hi, need);
    } else {
        subtree_index(lo, lo + k, need);
        leaf_proof_index(lo + k, hi, n, need);
    }
}

fn leaf_proof(lo: u64, hi: u64, n: u64, hashes: &mut &[Hash], out: &mut Vec<Hash>) -> Result<()> {
    if lo + 1 == hi {
        return Ok(());
    }
    let (k, _) = maxpow2(hi - lo);
    let th = if n < lo + k {
        leaf_proof(lo, lo + k, n, hashes, out)?;
        subtree_hash(lo + k, hi, hashes)?
    } else {
        let th = subtree_hash(lo, lo + k, hashes)?;
        leaf_proof(lo + k, hi, n, hashes, out)?;
        th
    };
    out.push(th);
    Ok(())
}

/// Proves that the tree of size `n` is a prefix of the tree of size `t` (Go: `tlog.ProveTree`).
/// `n == 0` and `n == t` give the empty proof.
pub fn prove_tree<R: HashReader + ?Sized>(t: u64, n: u64, reader: &R) -> Result<ConsistencyProof> {
    if n > t {
        return Err(Error::InvalidInput(format!(
            "old tree size {n} is above new tree size {t}"
        )));
    }
    if n == 0 || n == t {
        return Ok(Vec::new());
    }
    let mut indexes = Vec::new();
    tree_proof_index(0, t, n, &mut indexes);
    let hashes = read_checked(reader, &indexes)?;
    let mut rest: &[Hash] = &hashes;
    let mut proof = Vec::with_capacity(indexes.len());
    tree_proof(0, t, n, &mut rest, &mut proof)?;
    Ok(proof)
}

fn tree_proof_index(lo: u64, hi: u64, n: u64, need: &mut Vec<StoredHashIndex>) {
    if n == hi {
        if lo != 0 {
            subtree_index(lo, hi, need);
        }
        return;
    }
    let (k, _) = maxpow2(hi - lo);
    if n <= lo + k {
        tree_proof_index(lo, lo + k, n, need);
        subtree_index(lo + k, hi, need);
    } else {
        subtree_index(lo, lo + k, need);
        tree_proof_index(lo + k, hi, n, need);
    }
}

fn tree_proof(lo: u64, hi: u64, n: u64, hashes: &mut &[Hash], out: &mut Vec<Hash>) -> Result<()> {
    if n == hi {
        if lo != 0 {
            out.push(subtree_hash(lo, hi, hashes)?);
        }
        return Ok(());
    }
    let (k, _) = maxpow2(hi - lo);
    let th = if n <= lo + k {
        tree_proof(lo, lo + k, n, hashes, out)?;
        subtree_hash(lo + k, hi, hashes)?
    } else {
        let th = subtree_hash(lo, lo + k, hashes)?;
        tree_proof(lo + k, hi, n, hashes, out)?;
        th
    };
    out.push(th);
    Ok(())
}

/// Verifies that `leaf` (a leaf hash) is record `index` of the tree of size `tree_size` with root
/// `root` (RFC 9162 §2.1.3.2; Go: `tlog.CheckRecord(proof, t, th, n, h)`).
pub fn check_record(
    proof: &[Hash],
    tree_size: u64,
    root: Hash,
    index: u64,
    leaf: Hash,
) -> Result<()> {
    if index >= tree_size {
        return Err(Error::ProofFailed(format!(
            "index {index} is not below tree size {tree_size}"
        )));
    }
    let (mut fnode, mut snode) = (index, tree_size - 1);
    let mut r = leaf;
    for p in proof {
        if snode == 0 {
            return Err(Error::ProofFailed("inclusion proof is too long".into()));
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(Error::ProofFailed("inclusion proof is too short".into()));
    }
    if r != root {
        return Err(Error::ProofFailed(
            "inclusion proof does not lead to the root".into(),
        ));
    }
    Ok(())
}

/// Verifies that the tree of size `old_size` with root `old_root` is a prefix of the tree of size
/// `new_size` with root `new_root` (RFC 9162 §2.1.4.2; Go: `tlog.CheckTree(proof, t, th, n, h)`).
/// From size 0 the proof must be empty and `old_root` must be the empty root; equal sizes need an
/// empty proof and equal roots.
pub fn check_tree(
    proof: &[Hash],
    new_size: u64,
    new_root: Hash,
    old_size: u64,
    old_root: Hash,
) -> Result<()> {
    if old_size > new_size {
        return Err(Error::ProofFailed(format!(
            "old size {old_size} is above new size {new_size}"
        )));
    }
    if old_size == 0 {
        if !proof.is_empty() {
            return Err(Error::ProofFailed(
                "consistency proof from size 0 must be empty".into(),
            ));
        }
        if old_root != empty_root() {
            return Err(Error::ProofFailed(
                "root of size 0 must be the empty root".into(),
            ));
        }
        return Ok(());
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(Error::ProofFailed(
                "consistency proof between equal sizes must be empty".into(),
            ));
        }
        if old_root != new_root {
            return Err(Error::ProofFailed(
                "equal sizes with different roots".into(),
            ));
        }
        return Ok(());
    }
    if proof.is_empty() {
        return Err(Error::ProofFailed("consistency proof is empty".into()));
    }
    // If old_size is a power of two, the old root itself starts the path.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(old_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return Err(Error::ProofFailed("consistency proof is too long".into()));
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(Error::ProofFailed("consistency proof is too short".into()));
    }
    if fr != old_root {
        return Err(Error::ProofFailed(
            "consistency proof does not lead to the old root".into(),
        ));
    }
    if sr != new_root {
        return Err(Error::ProofFailed(
            "consistency proof does not lead to the new root".into(),
        ));
    }
    Ok(())
}

/// RFC 6962 `PATH(m, D[n])` computed recursively from all leaf hashes: an independent second
/// implementation for tests and small in-memory trees.
pub fn inclusion_proof_from_leaves(leaves: &[Hash], m: usize) -> Result<InclusionProof> {
    if m >= leaves.len() {
        return Err(Error::InvalidInput(format!(
            "record index {m} is not below tree size {}",
            leaves.len()
        )));
    }
    fn path(d: &[Hash], m: usize, out: &mut Vec<Hash>) {
        if d.len() <= 1 {
            return;
        }
        let k = split_point(d.len() as u64) as usize;
        if m < k {
            path(&d[..k], m, out);
            out.push(root_from_leaf_hashes(&d[k..]));
        } else {
            path(&d[k..], m - k, out);
            out.push(root_from_leaf_hashes(&d[..k]));
        }
    }
    let mut out = Vec::new();
    path(leaves, m, &mut out);
    Ok(out)
}

/// RFC 6962 `PROOF(m, D[n])` computed recursively from all leaf hashes (`n = leaves.len()`).
pub fn consistency_proof_from_leaves(leaves: &[Hash], m: usize) -> Result<ConsistencyProof> {
    if m > leaves.len() {
        return Err(Error::InvalidInput(format!(
            "old tree size {m} is above new tree size {}",
            leaves.len()
        )));
    }
    fn subproof(d: &[Hash], m: usize, b: bool, out: &mut Vec<Hash>) {
        let n = d.len();
        if m == n {
            if !b {
                out.push(root_from_leaf_hashes(d));
            }
            return;
        }
        let k = split_point(n as u64) as usize;
        if m <= k {
            subproof(&d[..k], m, b, out);
            out.push(root_from_leaf_hashes(&d[k..]));
        } else {
            subproof(&d[k..], m - k, false, out);
            out.push(root_from_leaf_hashes(&d[..k]));
        }
    }
    let mut out = Vec::new();
    if m > 0 && m < leaves.len() {
        subproof(leaves, m, true, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::stored::MemoryHashStore;

    fn setup(n: u64) -> (MemoryHashStore, Vec<Hash>) {
        let mut store = MemoryHashStore::new();
        let mut leaves = Vec::new();
        for i in 0..n {
            let d = format!("access-record-{i}");
            store.append(d.as_bytes());
            leaves.push(leaf_hash(d.as_bytes()));
        }
        (store, leaves)
    }

    fn b64s(v: &[Hash]) -> Vec<String> {
        v.iter().map(|h| h.to_base64()).collect()
    }

    #[test]
    fn anchors_vectors_inclusion_and_consistency() {
        let (store, leaves) = setup(13);
        let root13 = store.root();
        let root7 = crate::stored::tree_hash(7, &store).unwrap();
        let incl = prove_record(13, 5, &store).unwrap();
        assert_eq!(
            b64s(&incl),
            [
                "bvsQYS/aspSHKInnCpgitx6ZbwsiAIvGSdwW33uyHaU=",
                "A6HNnQC0VQ1SZuexyaQ5s6kxtuWquE7ZqtoY23IUJZ4=",
                "n84he/sJ5sjFJXwxfkvE6I0MpuZcOqDSVDLTTFpipJo=",
                "9huZKkjoVV2O02Znv3IUj0z6tpdbf7iuJX7L0uTMdxc=",
            ]
        );
        check_record(&incl, 13, root13, 5, leaves[5]).unwrap();
        // Negative: index 4 instead of 5.
        assert!(check_record(&incl, 13, root13, 4, leaves[5]).is_err());
        assert!(check_record(&incl, 13, root13, 4, leaves[4]).is_err());

        let cons = prove_tree(13, 7, &store).unwrap();
        assert_eq!(
            b64s(&cons),
            [
                "NcLxYseMdCzPfXP0fJScyjHSfuqQmuZb4jJsFCAlQ+A=",
                "PspBYhvndb0SABGWwCKu0kG8SSpYvR0bfdpt/at/q3M=",
                "ZmL+BAGeYoSNksbdwQhK28EuUkHlLNBHFhYyf+pYYng=",
                "n84he/sJ5sjFJXwxfkvE6I0MpuZcOqDSVDLTTFpipJo=",
                "9huZKkjoVV2O02Znv3IUj0z6tpdbf7iuJX7L0uTMdxc=",
            ]
        );
        check_tree(&cons, 13, root13, 7, root7).unwrap();
        // Negative: wrong old root.
        let wrong_old = crate::stored::tree_hash(6, &store).unwrap();
        assert!(check_tree(&cons, 13, root13, 7, wrong_old).is_err());
    }

    #[test]
    fn stored_and_recursive_proofs_agree_for_all_small_trees() {
        let (store, leaves) = setup(70);
        for t in 1..=70u64 {
            let root = crate::stored::tree_hash(t, &store).unwrap();
            for n in 0..t {
                let p = prove_record(t, n, &store).unwrap();
                assert_eq!(
                    p,
                    inclusion_proof_from_leaves(&leaves[..t as usize], n as usize).unwrap()
                );
                check_record(&p, t, root, n, leaves[n as usize]).unwrap();
            }
            for n in 0..=t {
                let p = prove_tree(t, n, &store).unwrap();
                assert_eq!(
                    p,
                    consistency_proof_from_leaves(&leaves[..t as usize], n as usize).unwrap()
                );
                let old = crate::stored::tree_hash(n, &store).unwrap();
                check_tree(&p, t, root, n, old).unwrap();
            }
        }
    }

    #[test]
    fn prefetched_proofs_equal_direct_ones() {
        use crate::stored::{HashReader as _, PrefetchedHashes};
        let (store, _) = setup(50);
        for t in 1..=50u64 {
            for n in 0..t {
                let idx = prove_record_indexes(t, n).unwrap();
                let pre = PrefetchedHashes::new(&idx, &store.read_hashes(&idx).unwrap()).unwrap();
                assert_eq!(
                    prove_record(t, n, &pre).unwrap(),
                    prove_record(t, n, &store).unwrap()
                );
                let idx = prove_tree_indexes(t, n).unwrap();
                let pre = PrefetchedHashes::new(&idx, &store.read_hashes(&idx).unwrap()).unwrap();
                assert_eq!(
                    prove_tree(t, n, &pre).unwrap(),
                    prove_tree(t, n, &store).unwrap()
                );
            }
        }
        assert!(prove_record_indexes(3, 3).is_err());
        assert!(prove_tree_indexes(3, 4).is_err());
    }

    #[test]
    fn edge_cases_are_errors_not_panics() {
        let (store, leaves) = setup(4);
        let root = store.root();
        assert!(prove_record(4, 4, &store).is_err());
        assert!(prove_record(0, 0, &store).is_err());
        assert!(prove_tree(3, 4, &store).is_err());
        assert!(check_record(&[], 0, root, 0, leaves[0]).is_err());
        assert!(check_record(&[], 1, leaves[0], 0, leaves[0]).is_ok());
        assert!(check_tree(&[], 4, root, 0, empty_root()).is_ok());
        assert!(check_tree(&[root], 4, root, 0, empty_root()).is_err());
        assert!(check_tree(&[], 4, root, 4, root).is_ok());
        assert!(check_tree(&[], 4, root, 4, leaves[0]).is_err());
        assert!(check_tree(&[], 4, root, 2, root).is_err());
        assert!(check_tree(&[], 2, root, 4, root).is_err());
    }
}
