//! The integrity monitor: watches every channel of the ledger the way a transparency-log monitor
//! does, from the store alone (so it works in a process of its own).
//!
//! For each channel, from the size it last verified, it reads the new entries in order and
//! recomputes the tree (a compact range: the roots of the perfect subtrees, kept in the store
//! between runs), then checks every new checkpoint against it:
//! - a missing index among the entries is a **gap**;
//! - a checkpoint whose root is not the root of the entries up to its size, or a tree that
//!   shrank, is an **inconsistent checkpoint** (not an append-only extension of the previous);
//! - a signature by a channel key that does not verify is a **bad signature**, one by a key the
//!   channel does not have is an **unknown signature**;
//! - two different roots signed for one size — ours at two moments, or ours and a peer's — is an
//!   **equivocation**: both signed notes are kept as the alert's evidence;
//! - the anchoring stage's latest extraction-to-anchoring lag above its SLO is a **sequencing
//!   lag** alert.
//!
//! Each finding becomes a critical alert (`integrity.*`), deduplicated like the rules' alerts,
//! anchored and delivered like them.

use std::time::Duration;

use diesel::prelude::*;
use ledgerbridge_ledger_core::checkpoint::Checkpoint;
use ledgerbridge_ledger_core::note::{Note, VerifierKey};
use ledgerbridge_ledger_core::{Hash, leaf_hash, node_hash};
use ledgerbridge_store::schema::{ledger_checkpoints, ledger_entries, ledger_keys};
use ledgerbridge_store::{Store, StoredAlert};
use serde::{Deserialize, Serialize};

/// Entries read per query.
const CHUNK: i64 = 5_000;
/// Where the anchoring worker records its latest lag (`{at_ms, max_ms}`).
pub(crate) const LAG_KEY: &str = "anchor.lag";

/// What the monitor remembers of a channel between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Verified {
    /// Entries verified.
    pub(crate) size: u64,
    /// The compact range at `size`: (height, hash hex) of each perfect subtree, left to right.
    pub(crate) range: Vec<(u32, String)>,
}

fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A compact Merkle range over leaves `0..size` (RFC 6962 tree).
#[derive(Debug, Clone, Default)]
pub(crate) struct Range {
    size: u64,
    stack: Vec<(u32, Hash)>,
}

impl Range {
    fn from_verified(v: &Verified) -> Option<Self> {
        let stack = v
            .range
            .iter()
            .map(|(h, x)| unhex(x).map(|x| (*h, x)))
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            size: v.size,
            stack,
        })
    }

    fn to_verified(&self) -> Verified {
        Verified {
            size: self.size,
            range: self.stack.iter().map(|(h, x)| (*h, hex(x))).collect(),
        }
    }

    pub(crate) fn push(&mut self, leaf: Hash) {
        let mut node = (0u32, leaf);
        while let Some(&(h, left)) = self.stack.last() {
            if h != node.0 {
                break;
            }
            self.stack.pop();
            node = (h + 1, node_hash(&left, &node.1));
        }
        self.stack.push(node);
        self.size += 1;
    }

    /// The root of the tree of `size` leaves (the empty root for none).
    pub(crate) fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return ledgerbridge_ledger_core::empty_root();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// One integrity finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// `gap`, `inconsistent_checkpoint`, `bad_signature`, `unknown_signature`, `equivocation`,
    /// `sequencing_lag`, `reconciliation_mismatch`, `audit_finding`.
    pub(crate) kind: &'static str,
    /// The channel (or connector) concerned.
    pub(crate) subject: String,
    /// What is wrong, with the values.
    pub(crate) explanation: String,
    /// Evidence, JSON.
    pub(crate) evidence: Option<serde_json::Value>,
    /// What makes two findings the same alert (default: the explanation).
    pub(crate) dedup: Option<String>,
}

impl Finding {
    /// The alert it raises: critical, rule `integrity.<kind>`, deduplicated on what it says.
    pub(crate) fn alert(&self, now_ms: i64) -> StoredAlert {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            format!(
                "integrity\0{}\0{}\0{}",
                self.kind,
                self.subject,
                self.dedup.as_deref().unwrap_or(&self.explanation)
            )
            .as_bytes(),
        );
        StoredAlert {
            id: 0,
            dedup_key: hex(digest.as_ref()),
            rule_id: format!("integrity.{}", self.kind),
            rule_version: 1,
            severity: "critical".into(),
            alert_key: self.subject.clone(),
            explanation: self.explanation.clone(),
            event_ids: "[]".into(),
            event_at_ms: None,
            detected_at_ms: now_ms,
            status: "open".into(),
            assignee: None,
            suppressed_by: None,
            evidence: self.evidence.as_ref().map(ToString::to_string),
            ledger_index: None,
        }
    }
}

fn meta_key(channel: &str) -> String {
    format!("integrity.verified.{channel}")
}

/// Checks a signed checkpoint's signatures against the channel's keys.
fn signature_findings(channel: &str, size: u64, note: &str, keys: &[VerifierKey]) -> Vec<Finding> {
    let mut out = Vec::new();
    let parsed = match Note::parse(note) {
        Ok(n) => n,
        Err(e) => {
            out.push(Finding {
                kind: "bad_signature",
                subject: channel.to_owned(),
                explanation: format!(
                    "channel {channel}: the checkpoint of size {size} is not a readable signed note: {e}"
                ),
                evidence: Some(serde_json::json!({ "note": note })),
                dedup: None,
            });
            return out;
        }
    };
    for sig in &parsed.signatures {
        if !keys
            .iter()
            .any(|k| k.name() == sig.name && k.key_id() == sig.key_id)
        {
            out.push(Finding {
                kind: "unknown_signature",
                subject: channel.to_owned(),
                explanation: format!(
                    "channel {channel}: the checkpoint of size {size} carries a signature by {}+{:08x}, a key the channel does not have",
                    sig.name, sig.key_id
                ),
                evidence: Some(serde_json::json!({ "note": note })),
                dedup: None,
            });
        }
    }
    if let Err(e) = parsed.verify(keys) {
        out.push(Finding {
            kind: "bad_signature",
            subject: channel.to_owned(),
            explanation: format!(
                "channel {channel}: the checkpoint of size {size} does not verify: {e}"
            ),
            evidence: Some(serde_json::json!({ "note": note })),
            dedup: None,
        });
    }
    out
}

/// Records a signed checkpoint seen from `source` and reports an equivocation when another root
/// was seen for the same size.
fn observe(
    store: &Store,
    channel: &str,
    source: &str,
    size: u64,
    root: &Hash,
    note: &str,
) -> Result<Option<Finding>, String> {
    let seen = store
        .observe_checkpoint(
            channel,
            source,
            i64::try_from(size).unwrap_or(i64::MAX),
            &hex(root),
            note,
        )
        .map_err(|e| e.to_string())?;
    if seen.len() < 2 {
        return Ok(None);
    }
    let statements: Vec<serde_json::Value> = seen
        .iter()
        .map(|o| serde_json::json!({ "source": o.source, "root": o.root_hex, "note": o.note, "observed_at_ms": o.observed_at_ms }))
        .collect();
    Ok(Some(Finding {
        kind: "equivocation",
        subject: channel.to_owned(),
        explanation: format!(
            "channel {channel}: {} different roots signed for tree size {size} ({})",
            seen.len(),
            seen.iter()
                .map(|o| format!(
                    "{} from {}",
                    &o.root_hex[..16.min(o.root_hex.len())],
                    o.source
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        evidence: Some(serde_json::json!({ "signed_statements": statements })),
        dedup: None,
    }))
}

/// Verifies what is new in `channel` since the last run. Returns the findings; the verified size
/// only moves forward over entries and checkpoints that were found intact.
pub(crate) fn check_channel(store: &Store, channel: &str) -> Result<Vec<Finding>, String> {
    let err = |e: &dyn std::fmt::Display| format!("integrity check of {channel}: {e}");
    let mut findings = Vec::new();
    let saved: Verified = store
        .meta(&meta_key(channel))
        .map_err(|e| err(&e))?
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut range = Range::from_verified(&saved).unwrap_or_default();
    let mut conn = store.conn().map_err(|e| err(&e))?;
    let keys: Vec<VerifierKey> = ledger_keys::table
        .filter(ledger_keys::channel.eq(channel))
        .select(ledger_keys::vkey)
        .load::<String>(&mut *conn)
        .map_err(|e| err(&e))?
        .iter()
        .filter_map(|v| VerifierKey::parse(v).ok())
        .collect();
    let checkpoints: Vec<(i64, Vec<u8>, String)> = ledger_checkpoints::table
        .filter(ledger_checkpoints::channel.eq(channel))
        .filter(ledger_checkpoints::tree_size.gt(i64::try_from(range.size).unwrap_or(i64::MAX)))
        .order(ledger_checkpoints::tree_size)
        .select((
            ledger_checkpoints::tree_size,
            ledger_checkpoints::root,
            ledger_checkpoints::note,
        ))
        .load(&mut *conn)
        .map_err(|e| err(&e))?;
    let latest: Option<i64> = ledger_checkpoints::table
        .filter(ledger_checkpoints::channel.eq(channel))
        .select(diesel::dsl::max(ledger_checkpoints::tree_size))
        .first(&mut *conn)
        .map_err(|e| err(&e))?;
    if let Some(latest) = latest
        && u64::try_from(latest).unwrap_or(0) < saved.size
    {
        findings.push(Finding {
            kind: "inconsistent_checkpoint",
            subject: channel.to_owned(),
            explanation: format!(
                "channel {channel}: the latest checkpoint is for size {latest}, but size {} was verified before: the log shrank",
                saved.size
            ),
            evidence: None,
            dedup: None,
        });
        return Ok(findings);
    }
    // The checkpoint at the size verified last time is looked at again: a root signed anew
    // for that size is an equivocation even when nothing was appended since.
    if saved.size > 0 {
        let again: Option<(Vec<u8>, String)> = ledger_checkpoints::table
            .filter(ledger_checkpoints::channel.eq(channel))
            .filter(ledger_checkpoints::tree_size.eq(i64::try_from(saved.size).unwrap_or(i64::MAX)))
            .select((ledger_checkpoints::root, ledger_checkpoints::note))
            .first(&mut *conn)
            .optional()
            .map_err(|e| err(&e))?;
        if let Some((root, note)) = again
            && let Ok(root) = <Hash>::try_from(root.as_slice())
        {
            findings.extend(signature_findings(channel, saved.size, &note, &keys));
            if let Some(f) = observe(store, channel, "local", saved.size, &root, &note)? {
                findings.push(f);
            }
        }
    }
    let mut verified = range.clone();
    'checkpoints: for (size, root, note) in checkpoints {
        let size = u64::try_from(size).unwrap_or(0);
        // Leaves up to this checkpoint.
        while range.size < size {
            let from = i64::try_from(range.size).unwrap_or(i64::MAX);
            let to = i64::try_from(size).unwrap_or(i64::MAX);
            let rows: Vec<(i64, Vec<u8>)> = ledger_entries::table
                .filter(ledger_entries::channel.eq(channel))
                .filter(ledger_entries::idx.ge(from))
                .filter(ledger_entries::idx.lt(to))
                .order(ledger_entries::idx)
                .limit(CHUNK)
                .select((ledger_entries::idx, ledger_entries::leaf_data))
                .load(&mut *conn)
                .map_err(|e| err(&e))?;
            let expected = range.size;
            match rows.first() {
                None => {
                    findings.push(Finding {
                        kind: "gap",
                        subject: channel.to_owned(),
                        explanation: format!(
                            "channel {channel}: entries {expected} to {} are missing, though the checkpoint of size {size} covers them",
                            size - 1
                        ),
                        evidence: None,
                        dedup: None,
                    });
                    break 'checkpoints;
                }
                Some(_) => {
                    for (idx, leaf) in rows {
                        let idx = u64::try_from(idx).unwrap_or(0);
                        if idx != range.size {
                            findings.push(Finding {
                                kind: "gap",
                                subject: channel.to_owned(),
                                explanation: format!(
                                    "channel {channel}: entry {} is missing (the next stored is {idx}), though the checkpoint of size {size} covers it",
                                    range.size
                                ),
                                evidence: None,
                                dedup: None,
                            });
                            break 'checkpoints;
                        }
                        range.push(leaf_hash(&leaf));
                    }
                }
            }
        }
        let Some(root) = <Hash>::try_from(root.as_slice()).ok() else {
            findings.push(Finding {
                kind: "inconsistent_checkpoint",
                subject: channel.to_owned(),
                explanation: format!(
                    "channel {channel}: the checkpoint of size {size} has no 32-byte root"
                ),
                evidence: None,
                dedup: None,
            });
            break;
        };
        findings.extend(signature_findings(channel, size, &note, &keys));
        let signed_root = Note::parse(&note)
            .ok()
            .and_then(|n| Checkpoint::parse(&n.text).ok());
        if let Some(cp) = &signed_root
            && (cp.size != size || cp.root != root)
        {
            findings.push(Finding {
                kind: "inconsistent_checkpoint",
                subject: channel.to_owned(),
                explanation: format!(
                    "channel {channel}: the stored checkpoint says size {size} root {}, its signed note says size {} root {}",
                    hex(&root),
                    cp.size,
                    hex(&cp.root)
                ),
                evidence: Some(serde_json::json!({ "note": note })),
                dedup: None,
            });
        }
        if let Some(f) = observe(store, channel, "local", size, &root, &note)? {
            findings.push(f);
        }
        let computed = range.root();
        if computed != root {
            findings.push(Finding {
                kind: "inconsistent_checkpoint",
                subject: channel.to_owned(),
                explanation: format!(
                    "channel {channel}: the checkpoint of size {size} signs root {}, but the entries 0..{size} hash to {}: it is not an append-only extension of size {}",
                    hex(&root),
                    hex(&computed),
                    verified.size
                ),
                evidence: Some(serde_json::json!({ "note": note, "computed_root": hex(&computed) })),
                dedup: None,
            });
            break;
        }
        if findings.is_empty() {
            verified = range.clone();
        } else {
            break;
        }
    }
    if verified.size != saved.size {
        let text = serde_json::to_string(&verified.to_verified()).map_err(|e| err(&e))?;
        store
            .set_meta(&meta_key(channel), &text)
            .map_err(|e| err(&e))?;
    }
    Ok(findings)
}

/// Fetches a peer's latest checkpoint of `channel` and compares it with what we saw.
pub(crate) async fn check_peer(
    store: &Store,
    client: &reqwest::Client,
    peer: &str,
    channel: &str,
) -> Result<Vec<Finding>, String> {
    let url = format!(
        "{}/api/v1/ledger/{channel}/checkpoint",
        peer.trim_end_matches('/')
    );
    let response = client
        .get(&url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("reading {url}: {e}"))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(Vec::new());
    }
    if !response.status().is_success() {
        return Err(format!("reading {url}: HTTP {}", response.status()));
    }
    let note = response
        .text()
        .await
        .map_err(|e| format!("reading {url}: {e}"))?;
    let mut findings = Vec::new();
    let Some(cp) = Note::parse(&note)
        .ok()
        .and_then(|n| Checkpoint::parse(&n.text).ok())
    else {
        return Err(format!("{url} did not return a signed checkpoint"));
    };
    let keys: Vec<VerifierKey> = {
        let mut conn = store.conn().map_err(|e| e.to_string())?;
        ledger_keys::table
            .filter(ledger_keys::channel.eq(channel))
            .select(ledger_keys::vkey)
            .load::<String>(&mut *conn)
            .map_err(|e| e.to_string())?
            .iter()
            .filter_map(|v| VerifierKey::parse(v).ok())
            .collect()
    };
    findings.extend(signature_findings(channel, cp.size, &note, &keys));
    let source = format!("peer {peer}");
    if let Some(f) = observe(store, channel, &source, cp.size, &cp.root, &note)? {
        findings.push(f);
    }
    Ok(findings)
}

/// The anchoring stage's lag, as it last recorded it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Lag {
    /// When it was recorded.
    pub(crate) at_ms: i64,
    /// The longest extraction-to-anchoring time of the events anchored since the last record.
    pub(crate) max_ms: i64,
}

/// A sequencing lag above the SLO, if the anchoring stage recorded one after `seen_ms` (which
/// moves to the record's time, so each record is judged once).
pub(crate) fn check_lag(
    store: &Store,
    slo: Duration,
    seen_ms: &mut i64,
) -> Result<Option<Finding>, String> {
    let Some(text) = store.meta(LAG_KEY).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let Ok(lag) = serde_json::from_str::<Lag>(&text) else {
        return Ok(None);
    };
    if lag.at_ms <= *seen_ms {
        return Ok(None);
    }
    *seen_ms = lag.at_ms;
    let slo_ms = i64::try_from(slo.as_millis()).unwrap_or(i64::MAX);
    Ok((lag.max_ms > slo_ms).then(|| Finding {
        kind: "sequencing_lag",
        subject: "anchoring".into(),
        explanation: format!(
            "events waited up to {} ms between extraction and anchoring (recorded at {}), above the SLO of {slo_ms} ms",
            lag.max_ms, lag.at_ms
        ),
        evidence: Some(serde_json::json!({ "max_ms": lag.max_ms, "at_ms": lag.at_ms, "slo_ms": slo_ms })),
        dedup: Some(format!("lag in hour {}", lag.at_ms / 3_600_000)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compact range gives the RFC 6962 root for every size, against a direct computation.
    #[test]
    fn the_compact_range_root_is_the_rfc6962_root() {
        fn direct(leaves: &[Hash]) -> Hash {
            match leaves.len() {
                0 => ledgerbridge_ledger_core::empty_root(),
                1 => leaves[0],
                n => {
                    let k = n.next_power_of_two() / 2;
                    let k = if k == n { n / 2 } else { k };
                    node_hash(&direct(&leaves[..k]), &direct(&leaves[k..]))
                }
            }
        }
        let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut range = Range::default();
        assert_eq!(range.root(), direct(&[]));
        for (i, l) in leaves.iter().enumerate() {
            range.push(*l);
            assert_eq!(range.root(), direct(&leaves[..=i]), "size {}", i + 1);
            // Saved and restored, it goes on the same.
            let again = Range::from_verified(&range.to_verified()).unwrap();
            assert_eq!(again.root(), range.root());
        }
    }

    use ledgerbridge_ledger::{Ledger, NewEntry};
    use ledgerbridge_ledger_core::note::{KeyType, SignerKey};

    fn setup() -> (tempfile::TempDir, Store, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("store.db")).unwrap();
        let ledger = Ledger::open(
            store.clone(),
            dir.path().join("keys"),
            "ledgerbridge.test/integrity",
        )
        .unwrap();
        ledger.ensure_channel("claims").unwrap();
        (dir, store, ledger)
    }

    fn append(ledger: &Ledger, from: usize, n: usize) {
        let batch: Vec<NewEntry> = (from..from + n)
            .map(|i| NewEntry {
                event_id: format!("ev-{i}"),
                event_type: "claim".into(),
                connector: "test".into(),
                source_position: format!("claims key={i}"),
                mapping_version: "m@1".into(),
                subject: None,
                payload: b"{}".to_vec(),
            })
            .collect();
        ledger.append("claims", &batch).unwrap();
    }

    fn kinds(f: &[Finding]) -> Vec<&'static str> {
        f.iter().map(|f| f.kind).collect()
    }

    fn exec(store: &Store, sql: &str) {
        let mut c = store.conn().unwrap();
        diesel::sql_query(sql).execute(&mut *c).unwrap();
    }

    #[test]
    fn an_intact_ledger_verifies_incrementally_and_stays_quiet() {
        let (_dir, store, ledger) = setup();
        assert!(check_channel(&store, "claims").unwrap().is_empty());
        for round in 0..4 {
            append(&ledger, round * 7, 7);
            append(&ledger, round * 7 + 7, 0);
            assert_eq!(
                check_channel(&store, "claims").unwrap(),
                vec![],
                "round {round}"
            );
        }
        let saved: Verified =
            serde_json::from_str(&store.meta(&meta_key("claims")).unwrap().unwrap()).unwrap();
        assert_eq!(saved.size, 28);
        // Redelivered events add nothing, and nothing is found.
        append(&ledger, 0, 28);
        assert!(check_channel(&store, "claims").unwrap().is_empty());
    }

    #[test]
    fn a_missing_entry_is_a_gap_and_verification_stops_before_it() {
        let (_dir, store, ledger) = setup();
        append(&ledger, 0, 5);
        assert!(check_channel(&store, "claims").unwrap().is_empty());
        append(&ledger, 5, 5);
        exec(
            &store,
            "DELETE FROM ledger_entries WHERE channel = 'claims' AND idx = 7",
        );
        let found = check_channel(&store, "claims").unwrap();
        assert_eq!(kinds(&found), vec!["gap"], "{found:?}");
        assert!(
            found[0].explanation.contains("entry 7 is missing"),
            "{found:?}"
        );
        // Still reported next time: the verified size did not move past the gap.
        assert_eq!(
            kinds(&check_channel(&store, "claims").unwrap()),
            vec!["gap"]
        );
    }

    #[test]
    fn a_changed_entry_makes_the_next_checkpoint_inconsistent() {
        let (_dir, store, ledger) = setup();
        append(&ledger, 0, 4);
        assert!(check_channel(&store, "claims").unwrap().is_empty());
        append(&ledger, 4, 4);
        // The leaf data of entry 5 rewritten in the store (hex of "tampered").
        exec(
            &store,
            "UPDATE ledger_entries SET leaf_data = X'74616d7065726564' WHERE channel = 'claims' AND idx = 5",
        );
        let found = check_channel(&store, "claims").unwrap();
        assert_eq!(kinds(&found), vec!["inconsistent_checkpoint"], "{found:?}");
        assert!(found[0].explanation.contains("size 8"), "{found:?}");
        assert!(
            found[0]
                .explanation
                .contains("append-only extension of size 4"),
            "{found:?}"
        );
    }

    #[test]
    fn a_log_that_shrank_is_inconsistent() {
        let (_dir, store, ledger) = setup();
        append(&ledger, 0, 6);
        assert!(check_channel(&store, "claims").unwrap().is_empty());
        exec(
            &store,
            "DELETE FROM ledger_checkpoints WHERE channel = 'claims'",
        );
        append(&ledger, 0, 0);
        exec(
            &store,
            "INSERT INTO ledger_checkpoints (channel, tree_size, root, note, created_at_ms) VALUES ('claims', 3, X'00', 'x', 0)",
        );
        let found = check_channel(&store, "claims").unwrap();
        assert_eq!(kinds(&found), vec!["inconsistent_checkpoint"], "{found:?}");
        assert!(found[0].explanation.contains("shrank"), "{found:?}");
    }

    /// A checkpoint for an already verified size re-signed with another root (by the real key):
    /// an equivocation, both signed notes kept. A signature by a stranger's key is unknown; a
    /// signature by the channel's key over other text is bad.
    #[test]
    fn equivocation_and_bad_or_unknown_signatures_are_caught_with_evidence() {
        let (dir, store, ledger) = setup();
        append(&ledger, 0, 3);
        assert!(check_channel(&store, "claims").unwrap().is_empty());
        let cp = ledger.checkpoint("claims").unwrap().unwrap();
        let keys = std::fs::read_to_string(dir.path().join("keys/claims.log.skeys")).unwrap();
        let key = SignerKey::parse(keys.lines().next().unwrap()).unwrap();
        let original = Note::parse(&cp.note).unwrap();
        let mut other = Checkpoint::parse(&original.text).unwrap();
        other.root = [7u8; 32];
        let forged = Note::sign(&other.to_text(), &key).unwrap().to_text();
        let sql = |note: &str, root: &str| {
            format!(
                "UPDATE ledger_checkpoints SET note = '{note}', root = X'{root}' WHERE channel = 'claims' AND tree_size = 3"
            )
        };
        exec(&store, &sql(&forged, &"07".repeat(32)));
        let found = check_channel(&store, "claims").unwrap();
        assert_eq!(kinds(&found), vec!["equivocation"], "{found:?}");
        let evidence = found[0].evidence.as_ref().unwrap().to_string();
        assert!(evidence.contains(&hex(&cp.root)) && evidence.contains(&hex(&[7u8; 32])));
        assert!(evidence.contains("signed_statements"), "{evidence}");
        // A stranger's signature added to the original note.
        let stranger =
            SignerKey::generate(original.text.lines().next().unwrap(), KeyType::Ed25519).unwrap();
        let mut with_stranger = original.clone();
        with_stranger.add_signature(&stranger).unwrap();
        exec(&store, &sql(&with_stranger.to_text(), &hex(&cp.root)));
        let found = check_channel(&store, "claims").unwrap();
        assert!(kinds(&found).contains(&"unknown_signature"), "{found:?}");
        // The channel key's signature over other text, pasted under the original text.
        let mut bad = original.clone();
        bad.signatures = Note::parse(&forged).unwrap().signatures;
        exec(&store, &sql(&bad.to_text(), &hex(&cp.root)));
        let found = check_channel(&store, "claims").unwrap();
        assert!(kinds(&found).contains(&"bad_signature"), "{found:?}");
    }

    #[test]
    fn a_lag_above_the_slo_is_an_alert_once_an_hour() {
        let (_dir, store, _ledger) = setup();
        let mut seen = 0;
        assert!(
            check_lag(&store, Duration::from_secs(2), &mut seen)
                .unwrap()
                .is_none()
        );
        let lag = Lag {
            at_ms: 7_100_000,
            max_ms: 1_500,
        };
        store
            .set_meta(LAG_KEY, &serde_json::to_string(&lag).unwrap())
            .unwrap();
        assert!(
            check_lag(&store, Duration::from_secs(2), &mut seen)
                .unwrap()
                .is_none()
        );
        let lag = Lag {
            at_ms: 7_200_000,
            max_ms: 2_500,
        };
        store
            .set_meta(LAG_KEY, &serde_json::to_string(&lag).unwrap())
            .unwrap();
        let f = check_lag(&store, Duration::from_secs(2), &mut seen)
            .unwrap()
            .unwrap();
        assert_eq!(f.kind, "sequencing_lag");
        // The same record is judged once.
        assert!(
            check_lag(&store, Duration::from_secs(2), &mut seen)
                .unwrap()
                .is_none()
        );
        let later = Lag {
            at_ms: 7_300_000,
            max_ms: 3_000,
        };
        store
            .set_meta(LAG_KEY, &serde_json::to_string(&later).unwrap())
            .unwrap();
        let g = check_lag(&store, Duration::from_secs(2), &mut seen)
            .unwrap()
            .unwrap();
        assert_eq!(
            f.alert(1).dedup_key,
            g.alert(2).dedup_key,
            "same hour, same alert"
        );
    }
}
