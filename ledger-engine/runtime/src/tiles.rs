//! Interior hashes stored as C2SP tlog-tiles: tile `(level L, index N)` holds up to 256 hashes of
//! the perfect subtrees of `2^(8L)` leaves numbered `N*256 ..= N*256+255` (level 0: leaf hashes).
//! Any perfect subtree is one tile read plus at most 255 hash operations, so a proof costs
//! O(log n) reads.

use std::cell::RefCell;
use std::collections::HashMap;

use ledgerbridge_ledger_core::{Hash, ProofError, Subtrees, node_hash};

/// Hashes per full tile.
pub(crate) const WIDTH: usize = 256;
/// Tree levels per tile level.
pub(crate) const HEIGHT: u8 = 8;

/// Hash of the perfect subtree over `hashes` (a power-of-two count).
pub(crate) fn reduce(hashes: &[Hash]) -> Hash {
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        level = level.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
    }
    level.first().copied().unwrap_or_default()
}

pub(crate) fn encode(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flatten().copied().collect()
}

pub(crate) fn decode(bytes: &[u8]) -> Option<Vec<Hash>> {
    if !bytes.len().is_multiple_of(32) || bytes.len() > WIDTH * 32 {
        return None;
    }
    Some(
        bytes
            .chunks(32)
            .map(|c| c.try_into().unwrap_or_default())
            .collect(),
    )
}

/// The right edge of a tree: the partial (last, incomplete) tile of every tile level, and the
/// tiles a batch of appends wrote.
#[derive(Debug, Clone, Default)]
pub(crate) struct Edge {
    pub(crate) size: u64,
    /// `partial[L]`: hashes of the incomplete tile of level L (fewer than 256).
    pub(crate) partial: Vec<Vec<Hash>>,
}

impl Edge {
    /// Appends a leaf hash; every tile that changed is reported to `written` (full tiles once,
    /// when they complete).
    pub(crate) fn push(&mut self, leaf: Hash, written: &mut HashMap<(u8, u64), Vec<Hash>>) {
        let mut hash = leaf;
        let mut level: u8 = 0;
        loop {
            if self.partial.len() <= usize::from(level) {
                self.partial.push(Vec::new());
            }
            let count_before = self.node_count(level);
            let tile_index = count_before / WIDTH as u64;
            let tile = &mut self.partial[usize::from(level)];
            tile.push(hash);
            if tile.len() < WIDTH {
                written.insert((level, tile_index), tile.clone());
                break;
            }
            written.insert((level, tile_index), std::mem::take(tile));
            hash = reduce(&written[&(level, tile_index)]);
            level += 1;
        }
        self.size += 1;
    }

    /// Nodes complete at tree level `8 * level` before the leaf being pushed is counted.
    fn node_count(&self, level: u8) -> u64 {
        self.size >> (u32::from(level) * u32::from(HEIGHT))
    }

    /// Tile levels that hold at least one node.
    pub(crate) fn levels(size: u64) -> impl Iterator<Item = (u8, u64)> {
        (0u8..8)
            .map(move |l| (l, size >> (u32::from(l) * u32::from(HEIGHT))))
            .take_while(|(_, count)| *count > 0)
    }
}

/// Reads tiles through a closure (the database), with the edge and a memo in front.
pub(crate) struct TileSource<'a, F: FnMut(u8, u64) -> Result<Option<Vec<Hash>>, String>> {
    pub(crate) edge: &'a Edge,
    pub(crate) fetch: RefCell<F>,
    pub(crate) memo: RefCell<HashMap<(u8, u64), Vec<Hash>>>,
}

impl<'a, F: FnMut(u8, u64) -> Result<Option<Vec<Hash>>, String>> TileSource<'a, F> {
    pub(crate) fn new(edge: &'a Edge, fetch: F) -> Self {
        Self {
            edge,
            fetch: RefCell::new(fetch),
            memo: RefCell::new(HashMap::new()),
        }
    }

    fn tile(&self, level: u8, index: u64) -> Result<Vec<Hash>, ProofError> {
        let count = self.edge.size >> (u32::from(level) * u32::from(HEIGHT));
        if index == count / WIDTH as u64
            && let Some(partial) = self.edge.partial.get(usize::from(level))
        {
            return Ok(partial.clone());
        }
        if let Some(t) = self.memo.borrow().get(&(level, index)) {
            return Ok(t.clone());
        }
        let fetched = (self.fetch.borrow_mut())(level, index)
            .map_err(ProofError::Source)?
            .ok_or_else(|| ProofError::Source(format!("tile {level}/{index} is missing")))?;
        self.memo
            .borrow_mut()
            .insert((level, index), fetched.clone());
        Ok(fetched)
    }
}

impl<F: FnMut(u8, u64) -> Result<Option<Vec<Hash>>, String>> Subtrees for TileSource<'_, F> {
    fn subtree(&self, level: u8, index: u64) -> Result<Hash, ProofError> {
        let tile_level = level / HEIGHT;
        let within = level % HEIGHT;
        let first = index << within;
        let span = 1usize << within;
        let tile = self.tile(tile_level, first / WIDTH as u64)?;
        let offset = usize::try_from(first % WIDTH as u64).unwrap_or(usize::MAX);
        let hashes = tile
            .get(offset..offset.saturating_add(span))
            .ok_or_else(|| {
                ProofError::Source(format!(
                    "subtree {level}/{index} is not complete in tile {tile_level}"
                ))
            })?;
        Ok(reduce(hashes))
    }
}

#[cfg(test)]
mod tests {
    use ledgerbridge_ledger_core::{
        MemoryTree, consistency_proof, inclusion_proof, leaf_hash, root,
    };

    use super::*;

    #[test]
    fn tiles_serve_the_same_hashes_as_a_full_tree() {
        let mut edge = Edge::default();
        let mut stored: HashMap<(u8, u64), Vec<Hash>> = HashMap::new();
        let mut tree = MemoryTree::new();
        for n in 1..=70_000u64 {
            let h = leaf_hash(&n.to_be_bytes());
            tree.push(h);
            edge.push(h, &mut stored);
            if [1, 2, 255, 256, 257, 65_535, 65_536, 65_537, 70_000].contains(&n) {
                let src = TileSource::new(&edge, |l, i| Ok(stored.get(&(l, i)).cloned()));
                assert_eq!(root(&src, n).unwrap(), tree.root(), "root at {n}");
                for i in [0, n / 2, n - 1] {
                    assert_eq!(
                        inclusion_proof(&src, i, n).unwrap(),
                        inclusion_proof(&tree, i, n).unwrap()
                    );
                }
                if n > 1 {
                    assert_eq!(
                        consistency_proof(&src, n / 3 + 1, n).unwrap(),
                        consistency_proof(&tree, n / 3 + 1, n).unwrap()
                    );
                }
            }
        }
        // Level 2 tile exists once 65,536 leaves are in.
        assert!(stored.contains_key(&(2, 0)));
        assert_eq!(stored[&(0, 0)].len(), 256);
    }
}
