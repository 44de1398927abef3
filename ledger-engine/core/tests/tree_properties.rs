//! Properties of the tree: proofs generated from stored subtrees match the RFC's recursive
//! definition, verify for the right data, and fail for any change.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

use ledgerbridge_ledger_core::{
    Hash, MemoryTree, ProofError, consistency_proof, empty_root, inclusion_proof, leaf_hash,
    node_hash, root, verify_consistency, verify_inclusion,
};
use proptest::prelude::*;

/// `MTH` exactly as RFC 9162 §2.1.1 writes it, over the leaf hashes.
fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = 1 << (63 - ((n as u64) - 1).leading_zeros());
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

fn tree_of(n: u64) -> (MemoryTree, Vec<Hash>) {
    let mut tree = MemoryTree::new();
    let mut leaves = Vec::new();
    for i in 0..n {
        let h = leaf_hash(format!("entry {i}").as_bytes());
        tree.push(h);
        leaves.push(h);
    }
    (tree, leaves)
}

#[test]
fn known_roots() {
    // RFC 6962 §2.1: the empty tree's root is SHA-256 of the empty string.
    assert_eq!(
        empty_root(),
        [
            0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f,
            0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b,
            0x78, 0x52, 0xb8, 0x55
        ]
    );
    let (tree, leaves) = tree_of(1);
    assert_eq!(tree.root(), leaves[0]);
}

#[test]
fn every_proof_of_small_trees_verifies() {
    for n in 1..=70u64 {
        let (tree, leaves) = tree_of(n);
        let r = root(&tree, n).unwrap();
        assert_eq!(r, mth(&leaves), "root of {n}");
        for i in 0..n {
            let proof = inclusion_proof(&tree, i, n).unwrap();
            verify_inclusion(&leaves[i as usize], i, n, &proof, &r).unwrap();
        }
        for m in 1..=n {
            let proof = consistency_proof(&tree, m, n).unwrap();
            verify_consistency(m, n, &proof, &mth(&leaves[..m as usize]), &r).unwrap();
        }
    }
}

#[test]
fn proofs_of_past_sizes_come_from_a_larger_tree() {
    let (tree, leaves) = tree_of(100);
    let r37 = mth(&leaves[..37]);
    let proof = inclusion_proof(&tree, 20, 37).unwrap();
    verify_inclusion(&leaves[20], 20, 37, &proof, &r37).unwrap();
    let proof = consistency_proof(&tree, 13, 37).unwrap();
    verify_consistency(13, 37, &proof, &mth(&leaves[..13]), &r37).unwrap();
}

#[test]
fn bad_requests_are_errors() {
    let (tree, _) = tree_of(5);
    assert_eq!(
        inclusion_proof(&tree, 5, 5).unwrap_err(),
        ProofError::IndexOutOfRange { index: 5, size: 5 }
    );
    assert!(matches!(
        consistency_proof(&tree, 0, 5),
        Err(ProofError::BadSizes { .. })
    ));
    assert!(matches!(
        consistency_proof(&tree, 6, 5),
        Err(ProofError::BadSizes { .. })
    ));
    assert!(matches!(
        inclusion_proof(&tree, 2, 9),
        Err(ProofError::Source(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn inclusion_verifies_iff_the_leaf_and_proof_are_right(n in 1u64..300, pick in any::<u64>(), flip in any::<(usize, u8)>()) {
        let (tree, leaves) = tree_of(n);
        let i = pick % n;
        let r = tree.root();
        let proof = inclusion_proof(&tree, i, n).unwrap();
        prop_assert!(verify_inclusion(&leaves[i as usize], i, n, &proof, &r).is_ok());
        // Another leaf at that index fails.
        prop_assert!(verify_inclusion(&leaf_hash(b"forged"), i, n, &proof, &r).is_err());
        // Any flipped bit in the proof fails.
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let at = flip.0 % bad.len();
            bad[at][usize::from(flip.1) % 32] ^= 1;
            prop_assert!(verify_inclusion(&leaves[i as usize], i, n, &bad, &r).is_err());
            // A truncated or extended proof fails.
            prop_assert!(verify_inclusion(&leaves[i as usize], i, n, &proof[..proof.len() - 1], &r).is_err());
        }
        let mut longer = proof.clone();
        longer.push(r);
        prop_assert!(verify_inclusion(&leaves[i as usize], i, n, &longer, &r).is_err());
    }

    #[test]
    fn consistency_verifies_iff_the_old_tree_is_a_prefix(n in 2u64..300, pick in any::<u64>(), flip in any::<u8>()) {
        let (tree, leaves) = tree_of(n);
        let m = 1 + pick % (n - 1);
        let old = mth(&leaves[..m as usize]);
        let new = tree.root();
        let proof = consistency_proof(&tree, m, n).unwrap();
        prop_assert!(verify_consistency(m, n, &proof, &old, &new).is_ok());
        // A rewritten history (one old leaf changed) is not consistent.
        let mut forged = leaves[..m as usize].to_vec();
        let at = usize::from(flip) % forged.len();
        forged[at][0] ^= 1;
        prop_assert!(verify_consistency(m, n, &proof, &mth(&forged), &new).is_err());
        prop_assert!(verify_consistency(m, n, &proof, &new, &old).is_err() || old == new);
    }
}
