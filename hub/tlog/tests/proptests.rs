//! Property tests on random trees: every inclusion and consistency proof generated from stored hashes
//! verifies, equals the recursive RFC 6962 definition, and stops verifying when any byte is changed;
//! signed checkpoints, receipts, bundles and tile paths round-trip and reject tampering.

use std::sync::OnceLock;

use proptest::prelude::*;
use tlog::checkpoint::{Checkpoint, WitnessPolicy, open_checkpoint};
use tlog::hash::{leaf_hash, root_from_leaf_hashes};
use tlog::note::Signer;
use tlog::proof::{
    check_record, check_tree, consistency_proof_from_leaves, inclusion_proof_from_leaves,
    prove_record, prove_tree,
};
use tlog::stored::tree_hash;
use tlog::tile::{TilePath, encode_bundle, parse_bundle, parse_tile_path, tile_at_size};
use tlog::{Hash, MemoryHashStore, Receipt};

const MAX: u64 = 3000;

/// One store of MAX random-ish entries shared by all cases (trees of any size ≤ MAX are prefixes).
fn fixture() -> &'static (MemoryHashStore, Vec<Hash>) {
    static F: OnceLock<(MemoryHashStore, Vec<Hash>)> = OnceLock::new();
    F.get_or_init(|| {
        let mut s = MemoryHashStore::new();
        let mut leaves = Vec::new();
        for i in 0..MAX {
            let e = format!("entry {i} {}", i * 7919 % 104_729).into_bytes();
            s.append(&e);
            leaves.push(leaf_hash(&e));
        }
        (s, leaves)
    })
}

fn flip(hs: &[Hash], which: usize, byte: usize, bit: u8) -> Vec<Hash> {
    let mut v = hs.to_vec();
    let i = which % v.len();
    v[i].0[byte % 32] ^= 1 << (bit % 8);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn inclusion_proofs_verify_and_tampering_fails(
        size in 1..=MAX, idx_seed in any::<u64>(), which in any::<usize>(), byte in 0usize..32, bit in 0u8..8
    ) {
        let (s, leaves) = fixture();
        let index = idx_seed % size;
        let root = tree_hash(size, s).unwrap();
        prop_assert_eq!(root, root_from_leaf_hashes(&leaves[..size as usize]));
        let proof = prove_record(size, index, s).unwrap();
        prop_assert_eq!(&proof, &inclusion_proof_from_leaves(&leaves[..size as usize], index as usize).unwrap());
        prop_assert!(check_record(&proof, size, root, index, leaves[index as usize]).is_ok());
        if !proof.is_empty() {
            prop_assert!(check_record(&flip(&proof, which, byte, bit), size, root, index, leaves[index as usize]).is_err());
            let mut shorter = proof.clone();
            shorter.pop();
            prop_assert!(check_record(&shorter, size, root, index, leaves[index as usize]).is_err());
        }
        let mut longer = proof.clone();
        longer.push(root);
        prop_assert!(check_record(&longer, size, root, index, leaves[index as usize]).is_err());
        let mut bad_leaf = leaves[index as usize];
        bad_leaf.0[byte] ^= 1 << bit;
        prop_assert!(check_record(&proof, size, root, index, bad_leaf).is_err());
        let mut bad_root = root;
        bad_root.0[byte] ^= 1 << bit;
        prop_assert!(check_record(&proof, size, bad_root, index, leaves[index as usize]).is_err());
        if size > 1 {
            let other = (index + 1 + idx_seed % (size - 1)) % size;
            prop_assert!(check_record(&proof, size, root, other, leaves[index as usize]).is_err());
        }
    }

    #[test]
    fn consistency_proofs_verify_and_tampering_fails(
        new in 1..=MAX, old_seed in any::<u64>(), which in any::<usize>(), byte in 0usize..32, bit in 0u8..8
    ) {
        let (s, leaves) = fixture();
        let old = old_seed % (new + 1);
        let (new_root, old_root) = (tree_hash(new, s).unwrap(), tree_hash(old, s).unwrap());
        let proof = prove_tree(new, old, s).unwrap();
        prop_assert_eq!(&proof, &consistency_proof_from_leaves(&leaves[..new as usize], old as usize).unwrap());
        prop_assert!(check_tree(&proof, new, new_root, old, old_root).is_ok());
        if !proof.is_empty() {
            prop_assert!(check_tree(&flip(&proof, which, byte, bit), new, new_root, old, old_root).is_err());
        }
        let mut bad = old_root;
        bad.0[byte] ^= 1 << bit;
        prop_assert!(check_tree(&proof, new, new_root, old, bad).is_err());
        // From size 0 the (empty) proof says nothing about the new root; from any other size it does.
        let mut bad = new_root;
        bad.0[byte] ^= 1 << bit;
        prop_assert_eq!(check_tree(&proof, new, bad, old, old_root).is_err(), old > 0);
        if old > 0 && old < new {
            prop_assert!(check_tree(&proof, new, new_root, old - 1, tree_hash(old - 1, s).unwrap()).is_err()
                || proof == prove_tree(new, old - 1, s).unwrap());
        }
    }

    #[test]
    fn signed_checkpoints_and_receipts_reject_any_byte_change(
        size in 1..=MAX, idx_seed in any::<u64>(), pos_seed in any::<usize>(), bit in 0u8..8
    ) {
        let (s, _) = fixture();
        let origin = "jishijiu.jining/access-log";
        let signer = Signer::from_seed(origin, [42; 32]).unwrap();
        let vk = signer.verifier_key();
        let none = WitnessPolicy::default();
        let cp = Checkpoint::new(origin, size, tree_hash(size, s).unwrap()).unwrap();
        let signed = cp.sign(&signer).unwrap();
        prop_assert_eq!(&open_checkpoint(signed.as_bytes(), origin, &vk, &none).unwrap().checkpoint, &cp);
        let mut bytes = signed.clone().into_bytes();
        let pos = pos_seed % bytes.len();
        bytes[pos] ^= 1 << bit;
        prop_assert!(open_checkpoint(&bytes, origin, &vk, &none).is_err(), "byte {} bit {}", pos, bit);

        let index = idx_seed % size;
        let e = format!("entry {index} {}", index * 7919 % 104_729).into_bytes();
        let r = Receipt { extra: None, index, proof: prove_record(size, index, s).unwrap(), checkpoint: signed };
        let text = r.to_text();
        prop_assert!(Receipt::parse(&text).unwrap().verify(&e, origin, &vk, &none).is_ok());
        let mut bytes = text.into_bytes();
        let pos = pos_seed % bytes.len();
        bytes[pos] ^= 1 << bit;
        let tampered_ok = std::str::from_utf8(&bytes).ok()
            .and_then(|t| Receipt::parse(t).ok())
            .is_some_and(|r| r.verify(&e, origin, &vk, &none).is_ok());
        prop_assert!(!tampered_ok, "tampered receipt accepted (byte {} bit {})", pos, bit);
    }

    #[test]
    fn bundles_round_trip(entries in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..=256)) {
        let b = encode_bundle(&entries).unwrap();
        let parsed = parse_bundle(&b).unwrap();
        prop_assert_eq!(parsed, entries.iter().map(|e| e.as_slice()).collect::<Vec<_>>());
    }

    #[test]
    fn tile_paths_round_trip(level in 0u8..64, n in 0u64..u64::MAX / 256, size in 1u64..u64::MAX) {
        if let Some(t) = tile_at_size(level % 8, n % 1_000_000_000, size) {
            prop_assert_eq!(parse_tile_path(&t.path()).unwrap(), TilePath::Hashes(t));
        }
        let t = tlog::Tile { level, n, width: 256 };
        prop_assert_eq!(parse_tile_path(&t.path()).unwrap(), TilePath::Hashes(t));
        prop_assert_eq!(parse_tile_path(&t.entries_path()).unwrap(), TilePath::Entries(tlog::Tile { level: 0, ..t }));
    }
}

proptest! {
    /// Parsers of untrusted input return errors, never panic.
    #[test]
    fn parsers_never_panic(s in "\\PC{0,200}", bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let vk = Signer::from_seed("o", [1; 32]).unwrap().verifier_key();
        for input in [s.clone(), format!("o\n{s}\n\n\u{2014} o {s}\n"), format!("c2sp.org/tlog-proof@v1\nindex 1\n{s}\n\n{s}")] {
            let _ = tlog::note::open_note(input.as_bytes(), std::slice::from_ref(&vk));
            let _ = Checkpoint::parse(&input);
            let _ = Receipt::parse(&input);
            let _ = parse_tile_path(&input);
            let _ = tlog::VerifierKey::parse(&input);
            let _ = Signer::from_skey_text(&input);
            let _ = open_checkpoint(input.as_bytes(), "o", &vk, &WitnessPolicy::default());
        }
        let _ = parse_bundle(&bytes);
        let _ = tlog::note::open_note(&bytes, std::slice::from_ref(&vk));
        if let Ok(TilePath::Hashes(t) | TilePath::Entries(t)) = parse_tile_path(&format!("tile/0/{s}")) {
            let _ = tile_at_size(t.level, t.n, u64::MAX);
            let _ = t.first_entry();
        }
    }
}
