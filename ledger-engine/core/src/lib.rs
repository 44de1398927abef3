//! The ledger's math and formats, with no I/O: what an auditor's verifier needs, and what the
//! ledger runtime builds on.
//!
//! - [`hash`]: RFC 6962 §2.1 leaf and node hashing;
//! - [`tree`]: tree hashes, inclusion and consistency proofs (RFC 9162 §2.1.3–2.1.4);
//! - [`note`]: C2SP signed notes and Ed25519 keys (`c2sp.org/signed-note`);
//! - [`checkpoint`]: C2SP checkpoints (`c2sp.org/tlog-checkpoint`);
//! - [`cosignature`]: C2SP Ed25519 cosignatures (`c2sp.org/tlog-cosignature`, type 0x04);
//! - [`proof_file`]: `c2sp.org/tlog-proof@v1` files and their offline verification against a
//!   k-of-n policy;
//! - [`entry`]: the ledger entry's leaf data encoding.

pub mod hash;
pub mod tree;

pub use hash::{Hash, empty_root, leaf_hash, node_hash};
pub use tree::{
    MemoryTree, ProofError, Subtrees, consistency_proof, inclusion_proof, root, verify_consistency,
    verify_inclusion,
};
pub mod checkpoint;
pub mod cosignature;
pub mod entry;
pub mod note;
pub mod proof_file;
