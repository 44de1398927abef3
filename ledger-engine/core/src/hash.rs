//! RFC 6962 §2.1 hashing: SHA-256 with domain-separating prefixes.

/// A SHA-256 digest: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Prefix of a leaf before hashing (RFC 6962 §2.1).
pub const LEAF_PREFIX: u8 = 0x00;
/// Prefix of two child hashes before hashing (RFC 6962 §2.1).
pub const NODE_PREFIX: u8 = 0x01;

/// SHA-256 of `data`.
#[must_use]
pub fn sha256(data: &[u8]) -> Hash {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// `MTH({})`: the root of the empty tree, SHA-256 of the empty string (RFC 6962 §2.1).
#[must_use]
pub fn empty_root() -> Hash {
    sha256(&[])
}

/// Leaf hash: `SHA-256(0x00 || leaf data)`.
#[must_use]
pub fn leaf_hash(leaf_data: &[u8]) -> Hash {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&[LEAF_PREFIX]);
    ctx.update(leaf_data);
    finish(ctx)
}

/// Interior node hash: `SHA-256(0x01 || left || right)`.
#[must_use]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&[NODE_PREFIX]);
    ctx.update(left);
    ctx.update(right);
    finish(ctx)
}

fn finish(ctx: ring::digest::Context) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}
