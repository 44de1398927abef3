//! Criterion benchmarks of the pure ledger core: hashing, proof generation from stored subtrees,
//! proof verification and checkpoint signature checks. Run with
//! `cargo bench -p ledgerbridge-ledger-core`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // benchmark harness

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ledgerbridge_ledger_core::checkpoint::Checkpoint;
use ledgerbridge_ledger_core::note::{KeyType, Note, SignerKey};
use ledgerbridge_ledger_core::{
    MemoryTree, inclusion_proof, leaf_hash, node_hash, verify_inclusion,
};

fn hashing(c: &mut Criterion) {
    let leaf = vec![0x42u8; 300];
    c.bench_function("leaf_hash 300 bytes", |b| {
        b.iter(|| leaf_hash(black_box(&leaf)))
    });
    let (l, r) = (leaf_hash(b"l"), leaf_hash(b"r"));
    c.bench_function("node_hash", |b| {
        b.iter(|| node_hash(black_box(&l), black_box(&r)))
    });
}

fn proofs(c: &mut Criterion) {
    let mut tree = MemoryTree::new();
    let n = 1_000_000u64;
    for i in 0..n {
        tree.push(leaf_hash(&i.to_be_bytes()));
    }
    let root = tree.root();
    let mut i = 0u64;
    c.bench_function("inclusion_proof at 1M leaves", |b| {
        b.iter(|| {
            i = (i + 7_919) % n;
            inclusion_proof(&tree, black_box(i), n).unwrap()
        });
    });
    let proof = inclusion_proof(&tree, 123_456, n).unwrap();
    let leaf = leaf_hash(&123_456u64.to_be_bytes());
    c.bench_function("verify_inclusion at 1M leaves", |b| {
        b.iter(|| {
            verify_inclusion(black_box(&leaf), 123_456, n, black_box(&proof), &root).unwrap()
        });
    });
}

fn notes(c: &mut Criterion) {
    let key = SignerKey::generate("bench.example/log", KeyType::Ed25519).unwrap();
    let text = Checkpoint {
        origin: "bench.example/log".into(),
        size: 1_000_000,
        root: leaf_hash(b"root"),
        extensions: vec![],
    }
    .to_text();
    c.bench_function("sign checkpoint", |b| {
        b.iter(|| Note::sign(black_box(&text), &key).unwrap())
    });
    let note = Note::sign(&text, &key).unwrap().to_text();
    let trusted = [key.verifier().clone()];
    c.bench_function("parse and verify checkpoint", |b| {
        b.iter(|| {
            Note::parse(black_box(&note))
                .unwrap()
                .verify(&trusted)
                .unwrap()
        });
    });
}

criterion_group!(benches, hashing, proofs, notes);
criterion_main!(benches);
