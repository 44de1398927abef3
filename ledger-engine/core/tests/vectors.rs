//! Every known-answer vector of transparency-dev/merkle (`testdata/merkle`), failure cases
//! included.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ledgerbridge_ledger_core::{Hash, verify_consistency, verify_inclusion};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Inclusion {
    leaf_idx: u64,
    tree_size: u64,
    root: Option<String>,
    leaf_hash: Option<String>,
    proof: Option<Vec<String>>,
    want_err: bool,
}

#[derive(Deserialize)]
struct Consistency {
    size1: u64,
    size2: u64,
    root1: Option<String>,
    root2: Option<String>,
    proof: Option<Vec<String>>,
    #[serde(rename = "wantErr")]
    want_err: bool,
}

fn files(dir: &str) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(p).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "json") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/merkle")
        .join(dir);
    let mut out = Vec::new();
    walk(&root, &mut out);
    out.sort();
    out
}

/// Decodes a leaf or proof hash; `None` when it is not exactly 32 bytes (such a case must fail).
fn hash(b64: Option<&String>) -> Option<Hash> {
    let bytes = STANDARD.decode(b64.map_or("", String::as_str)).ok()?;
    bytes.try_into().ok()
}

/// Decodes a root. A few vectors use placeholder values of other lengths where
/// only equality matters; those are mapped to their SHA-256, which keeps equal values equal and
/// can never equal a hash the verifier computes.
fn value(b64: Option<&String>) -> Option<Hash> {
    let bytes = STANDARD.decode(b64.map_or("", String::as_str)).ok()?;
    Some(bytes.try_into().unwrap_or_else(|other: Vec<u8>| {
        let mut tagged = b"not a 32-byte hash:".to_vec();
        tagged.extend_from_slice(&other);
        ledgerbridge_ledger_core::hash::sha256(&tagged)
    }))
}

fn hashes(list: Option<&Vec<String>>) -> Option<Vec<Hash>> {
    list.map_or(Some(Vec::new()), |l| {
        l.iter().map(|h| hash(Some(h))).collect()
    })
}

#[test]
fn inclusion_vectors() {
    let cases = files("inclusion");
    assert!(cases.len() >= 98, "vectors missing: {}", cases.len());
    for path in cases {
        let v: Inclusion = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let result = match (
            hash(v.leaf_hash.as_ref()),
            value(v.root.as_ref()),
            hashes(v.proof.as_ref()),
        ) {
            (Some(leaf), Some(root), Some(proof)) => {
                verify_inclusion(&leaf, v.leaf_idx, v.tree_size, &proof, &root).is_ok()
            }
            _ => false,
        };
        assert_eq!(result, !v.want_err, "{}", path.display());
    }
}

#[test]
fn consistency_vectors() {
    let cases = files("consistency");
    assert!(cases.len() > 50, "vectors missing: {}", cases.len());
    for path in cases {
        let v: Consistency =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let result = match (
            value(v.root1.as_ref()),
            value(v.root2.as_ref()),
            hashes(v.proof.as_ref()),
        ) {
            (Some(r1), Some(r2), Some(proof)) => {
                verify_consistency(v.size1, v.size2, &proof, &r1, &r2).is_ok()
            }
            _ => false,
        };
        assert_eq!(result, !v.want_err, "{}", path.display());
    }
}
