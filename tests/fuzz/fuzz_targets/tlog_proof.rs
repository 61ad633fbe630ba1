//! Proofs an auditor checks against a signed checkpoint: inclusion and consistency proofs
//! (`tlog::proof::{check_record, check_tree}`) with arbitrary sizes, indexes and hashes, and
//! `.tlog-proof` receipts (`Receipt::parse`, `Receipt::verify_leaf_hash`). Never panics; a proof
//! that checks is one the prover would have produced for a tree whose leaves are the given ones
//! (checked against `tlog`'s own prover on small trees); a parsed receipt prints back to its text.
#![no_main]

use arbitrary::Arbitrary;
use jishijiu_fuzz::{LOG_ORIGIN, log_signer};
use libfuzzer_sys::fuzz_target;
use tlog::checkpoint::WitnessPolicy;
use tlog::hash::{Hash, leaf_hash, root_from_leaf_hashes};
use tlog::proof::{
    check_record, check_tree, consistency_proof_from_leaves, inclusion_proof_from_leaves,
};
use tlog::{Checkpoint, Receipt};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// Arbitrary sizes, indexes and hashes: must be refused or accepted without panicking.
    size: u64,
    index: u64,
    old_size: u64,
    root: [u8; 32],
    old_root: [u8; 32],
    leaf: [u8; 32],
    proof: Vec<[u8; 32]>,
    /// A small real tree (at most 64 leaves) to check honest proofs against.
    leaves: Vec<u8>,
    m: u8,
    /// Receipt text.
    receipt: &'a str,
}

fn hashes(v: &[[u8; 32]]) -> Vec<Hash> {
    v.iter().map(|h| Hash(*h)).collect()
}

fuzz_target!(|input: Input<'_>| {
    let proof = hashes(&input.proof);
    let _ = check_record(
        &proof,
        input.size,
        Hash(input.root),
        input.index,
        Hash(input.leaf),
    );
    let _ = check_tree(
        &proof,
        input.size,
        Hash(input.root),
        input.old_size,
        Hash(input.old_root),
    );

    // Honest proofs over a small tree verify; a changed leaf does not.
    let leaves: Vec<Hash> = input
        .leaves
        .iter()
        .take(64)
        .enumerate()
        .map(|(i, b)| leaf_hash(&[*b, i as u8]))
        .collect();
    if !leaves.is_empty() {
        let n = leaves.len();
        let m = usize::from(input.m) % n;
        let root = root_from_leaf_hashes(&leaves);
        let p = inclusion_proof_from_leaves(&leaves, m).expect("m < n");
        check_record(&p, n as u64, root, m as u64, leaves[m]).expect("an honest inclusion proof");
        assert!(check_record(&p, n as u64, root, m as u64, leaf_hash(b"other")).is_err());
        let old = m + 1;
        let c = consistency_proof_from_leaves(&leaves, old).expect("old <= n");
        let old_root = root_from_leaf_hashes(&leaves[..old]);
        check_tree(&c, n as u64, root, old as u64, old_root).expect("an honest consistency proof");
    }

    // Receipts: as given, and with their checkpoint re-signed by the log key.
    let log_key = log_signer().verifier_key();
    let policy = WitnessPolicy::default();
    if let Ok(r) = Receipt::parse(input.receipt) {
        assert_eq!(Receipt::parse(&r.to_text()).as_ref(), Ok(&r));
        let _ = r.verify_leaf_hash(Hash(input.leaf), LOG_ORIGIN, &log_key, &policy);
        let text = match r.checkpoint.find("\n\n") {
            Some(i) => &r.checkpoint[..=i],
            None => &r.checkpoint[..],
        };
        if let Ok(c) = Checkpoint::parse(text)
            && let Ok(signed) =
                Checkpoint::new(LOG_ORIGIN, c.size, c.root).and_then(|c| c.sign(log_signer()))
        {
            let resigned = Receipt {
                checkpoint: signed,
                ..r
            };
            if resigned
                .verify_leaf_hash(Hash(input.leaf), LOG_ORIGIN, &log_key, &policy)
                .is_ok()
            {
                check_record(
                    &resigned.proof,
                    c.size,
                    c.root,
                    resigned.index,
                    Hash(input.leaf),
                )
                .expect("a verified receipt's proof checks");
            }
        }
    }
});
