//! Merkle tree hashes and proofs, RFC 9162 §2.1 (the RFC 6962 tree).
//!
//! Proofs are generated from a [`Subtrees`] source that returns the hash of any *perfect*
//! subtree (2^level leaves starting at a multiple of 2^level); storage keeps those hashes (in
//! tiles), so a proof costs O(log n) reads and never a scan. [`MemoryTree`] is the in-memory
//! source used by tests and small logs.

use crate::hash::{Hash, empty_root, node_hash};

/// Why a proof could not be produced or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not in the tree.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// Requested index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// Consistency needs `0 < size1 <= size2`.
    #[error("no consistency proof from size {size1} to size {size2}: need 0 < size1 <= size2")]
    BadSizes {
        /// Old size.
        size1: u64,
        /// New size.
        size2: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("the proof has {got} hashes, which does not fit these tree sizes")]
    WrongLength {
        /// Hashes in the proof.
        got: usize,
    },
    /// The proof is well-formed but leads to a different root.
    #[error("the proof does not match the root")]
    RootMismatch,
    /// The source of interior hashes failed.
    #[error("reading tree hashes: {0}")]
    Source(String),
}

/// Where interior hashes come from.
pub trait Subtrees {
    /// The hash of the perfect subtree of `2^level` leaves that starts at leaf
    /// `index * 2^level` (level 0: leaf hashes).
    ///
    /// # Errors
    /// When the source cannot provide it (storage failure, not yet written).
    fn subtree(&self, level: u8, index: u64) -> Result<Hash, ProofError>;
}

/// Largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// `MTH(D[start:end])` for `start < end`, where every left piece of the recursion is a perfect,
/// aligned subtree read from `src`.
///
/// # Errors
/// When `src` fails.
pub fn range_hash<S: Subtrees + ?Sized>(src: &S, start: u64, end: u64) -> Result<Hash, ProofError> {
    let n = end - start;
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return src.subtree(n.trailing_zeros() as u8, start / n);
    }
    let k = split(n);
    Ok(node_hash(
        &range_hash(src, start, start + k)?,
        &range_hash(src, start + k, end)?,
    ))
}

/// The root of the tree of `size` leaves (`MTH`, RFC 9162 §2.1.1).
///
/// # Errors
/// When `src` fails.
pub fn root<S: Subtrees + ?Sized>(src: &S, size: u64) -> Result<Hash, ProofError> {
    if size == 0 {
        Ok(empty_root())
    } else {
        range_hash(src, 0, size)
    }
}

/// Inclusion proof (`PATH`, RFC 9162 §2.1.3.1) of leaf `index` in the tree of `size` leaves,
/// from the leaf's sibling up to the root's child.
///
/// # Errors
/// `index >= size`, or `src` failing.
pub fn inclusion_proof<S: Subtrees + ?Sized>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut proof = Vec::new();
    path(src, index, 0, size, &mut proof)?;
    Ok(proof)
}

fn path<S: Subtrees + ?Sized>(
    src: &S,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = end - start;
    if n == 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(src, m, start, start + k, out)?;
        out.push(range_hash(src, start + k, end)?);
    } else {
        path(src, m - k, start + k, end, out)?;
        out.push(range_hash(src, start, start + k)?);
    }
    Ok(())
}

/// Consistency proof (`PROOF`, RFC 9162 §2.1.4.1) between the trees of `size1` and `size2`
/// leaves; empty when the sizes are equal.
///
/// # Errors
/// Unless `0 < size1 <= size2`, or when `src` fails.
pub fn consistency_proof<S: Subtrees + ?Sized>(
    src: &S,
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash>, ProofError> {
    if size1 == 0 || size1 > size2 {
        return Err(ProofError::BadSizes { size1, size2 });
    }
    let mut proof = Vec::new();
    if size1 < size2 {
        subproof(src, size1, 0, size2, true, &mut proof)?;
    }
    Ok(proof)
}

fn subproof<S: Subtrees + ?Sized>(
    src: &S,
    m: u64,
    start: u64,
    end: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = end - start;
    if m == n {
        if !complete {
            out.push(range_hash(src, start, end)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(src, m, start, start + k, complete, out)?;
        out.push(range_hash(src, start + k, end)?);
    } else {
        subproof(src, m - k, start + k, end, false, out)?;
        out.push(range_hash(src, start, start + k)?);
    }
    Ok(())
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
///
/// # Errors
/// [`ProofError::IndexOutOfRange`], [`ProofError::WrongLength`] or [`ProofError::RootMismatch`].
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut f_n = index;
    let mut s_n = size - 1;
    let mut r = *leaf_hash;
    for p in proof {
        if s_n == 0 {
            return Err(ProofError::WrongLength { got: proof.len() });
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength { got: proof.len() });
    }
    if r == *root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2). A proof from size 0 is refused; equal
/// sizes need an empty proof and equal roots.
///
/// # Errors
/// [`ProofError::BadSizes`], [`ProofError::WrongLength`] or [`ProofError::RootMismatch`].
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), ProofError> {
    if size1 == 0 || size1 > size2 {
        return Err(ProofError::BadSizes { size1, size2 });
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength { got: proof.len() });
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    let Some((first, rest)) = proof.split_first() else {
        return Err(ProofError::WrongLength { got: 0 });
    };
    // When size1 is a power of two, the old root is itself the first node of the path.
    let (seed, path): (Hash, &[Hash]) = if size1.is_power_of_two() {
        (*root1, proof)
    } else {
        (*first, rest)
    };
    let mut f_n = size1 - 1;
    let mut s_n = size2 - 1;
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let mut f_r = seed;
    let mut s_r = seed;
    for c in path {
        if s_n == 0 {
            return Err(ProofError::WrongLength { got: proof.len() });
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength { got: proof.len() });
    }
    if f_r == *root1 && s_r == *root2 {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// All levels of a tree in memory: level 0 holds the leaf hashes, level `l` the hashes of the
/// perfect subtrees of `2^l` leaves completed so far. Appending is O(log n).
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// An empty tree.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf hash, completing the perfect subtrees it closes.
    pub fn push(&mut self, leaf_hash: Hash) {
        let mut hash = leaf_hash;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(hash);
            let len = self.levels[level].len();
            if len % 2 == 1 {
                return;
            }
            hash = node_hash(&self.levels[level][len - 2], &self.levels[level][len - 1]);
            level += 1;
        }
    }

    /// Number of leaves.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The current root.
    #[must_use]
    pub fn root(&self) -> Hash {
        root(self, self.size()).unwrap_or_else(|_| empty_root())
    }
}

impl Subtrees for MemoryTree {
    fn subtree(&self, level: u8, index: u64) -> Result<Hash, ProofError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.levels.get(usize::from(level))?.get(i))
            .copied()
            .ok_or_else(|| ProofError::Source(format!("no subtree at level {level} index {index}")))
    }
}
