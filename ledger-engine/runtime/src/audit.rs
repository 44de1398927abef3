//! Full audit of a channel: recompute every leaf hash and tile, every checkpoint root, verify
//! every checkpoint signature (retired keys included) and the chain of blocks, and report the
//! first inconsistency with where it is. Memory stays bounded: entries stream in chunks and only
//! the right edge of the tree is kept.

use std::collections::HashMap;

use diesel::prelude::*;
use ledgerbridge_ledger_core::checkpoint::Checkpoint;
use ledgerbridge_ledger_core::entry::Entry;
use ledgerbridge_ledger_core::note::{Note, VerifierKey};
use ledgerbridge_ledger_core::{Hash, leaf_hash, root};
use ledgerbridge_store::AnyConnection;
use ledgerbridge_store::schema::{
    ledger_blocks, ledger_checkpoints, ledger_entries, ledger_keys, ledger_tiles,
};

use crate::channel::{b64, block_hash_of};
use crate::tiles::{self, Edge, TileSource, WIDTH};
use crate::{Ledger, LedgerError, Result};

const STREAM_CHUNK: i64 = 10_000;

/// The first inconsistency found, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFinding {
    /// Which table or object: `entry 12`, `tile 0/3`, `checkpoint 200`, `block 7`.
    pub location: String,
    /// What is wrong.
    pub problem: String,
}

/// What an audit checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditReport {
    /// Entries whose leaf hash was recomputed.
    pub entries: u64,
    /// Tiles compared.
    pub tiles: u64,
    /// Checkpoints whose root and signatures were verified.
    pub checkpoints: u64,
    /// Blocks whose chain was verified.
    pub blocks: u64,
    /// The first inconsistency; `None` when the channel is intact.
    pub finding: Option<AuditFinding>,
}

fn finding(location: impl Into<String>, problem: impl Into<String>) -> Option<AuditFinding> {
    Some(AuditFinding {
        location: location.into(),
        problem: problem.into(),
    })
}

impl Ledger {
    /// Audits `channel`; `progress(done, total)` is called after every chunk of entries.
    ///
    /// # Errors
    /// Store failures (an inconsistency is a finding in the report, not an error).
    pub fn audit(&self, channel: &str, progress: impl FnMut(u64, u64)) -> Result<AuditReport> {
        self.state(channel)?;
        let mut pooled = self.store.conn()?;
        let pooled: &mut AnyConnection = &mut pooled;
        // One consistent snapshot for the whole audit: a node appending meanwhile (the scheduled
        // audit runs beside the anchoring worker) must not make later blocks or checkpoints look
        // inconsistent with the entries read earlier.
        pooled.transaction::<_, LedgerError, _>(|conn| {
            if matches!(conn, AnyConnection::Postgresql(_)) {
                diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(conn)?;
            }
            self.audit_in(conn, channel, progress)
        })
    }

    fn audit_in(
        &self,
        conn: &mut AnyConnection,
        channel: &str,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<AuditReport> {
        let mut report = AuditReport::default();
        let vkeys: Vec<VerifierKey> = ledger_keys::table
            .filter(ledger_keys::channel.eq(channel))
            .select(ledger_keys::vkey)
            .load::<String>(&mut *conn)?
            .iter()
            .filter_map(|v| VerifierKey::parse(v).ok())
            .collect();
        let checkpoints = ledger_checkpoints::table
            .filter(ledger_checkpoints::channel.eq(channel))
            .order(ledger_checkpoints::tree_size)
            .select((
                ledger_checkpoints::tree_size,
                ledger_checkpoints::root,
                ledger_checkpoints::note,
            ))
            .load::<(i64, Vec<u8>, String)>(&mut *conn)?;
        let total = ledger_entries::table
            .filter(ledger_entries::channel.eq(channel))
            .count()
            .get_result::<i64>(&mut *conn)?;
        let total = u64::try_from(total).unwrap_or(0);
        let mut roots: HashMap<u64, Hash> = HashMap::new();
        let mut wanted: Vec<u64> = checkpoints
            .iter()
            .map(|c| u64::try_from(c.0).unwrap_or(0))
            .collect();
        wanted.sort_unstable();
        let mut next_wanted = 0;
        let mut edge = Edge::default();
        let mut last: i64 = -1;
        loop {
            let rows = ledger_entries::table
                .filter(ledger_entries::channel.eq(channel))
                .filter(ledger_entries::idx.gt(last))
                .order(ledger_entries::idx)
                .limit(STREAM_CHUNK)
                .select((ledger_entries::idx, ledger_entries::leaf_data))
                .load::<(i64, Vec<u8>)>(&mut *conn)?;
            if rows.is_empty() {
                break;
            }
            let mut written = HashMap::new();
            for (idx, data) in rows {
                if idx != last + 1 {
                    report.finding = finding(
                        format!("entry {}", last + 1),
                        format!("missing: the next entry is {idx} (gap)"),
                    );
                    return Ok(report);
                }
                last = idx;
                let computed = leaf_hash(&data);
                match Entry::from_leaf_data(&data) {
                    Ok(e) if e.channel == channel => {}
                    Ok(e) => {
                        report.finding = finding(
                            format!("entry {idx}"),
                            format!("belongs to channel {}", e.channel),
                        );
                        return Ok(report);
                    }
                    Err(e) => {
                        report.finding = finding(
                            format!("entry {idx}"),
                            format!("leaf data does not decode: {e}"),
                        );
                        return Ok(report);
                    }
                }
                edge.push(computed, &mut written);
                report.entries += 1;
                while next_wanted < wanted.len() && wanted[next_wanted] == edge.size {
                    let src = TileSource::new(&edge, |l, i| {
                        Err(format!("tile {l}/{i} is not on the edge"))
                    });
                    roots.insert(edge.size, root(&src, edge.size)?);
                    next_wanted += 1;
                }
            }
            // Full tiles are final: compare them now; partial ones once the stream ends.
            let (full, _partial): (Vec<_>, Vec<_>) =
                written.into_iter().partition(|(_, h)| h.len() == WIDTH);
            for ((level, index), hashes) in full {
                if let Some(f) = compare_tile(conn, channel, level, index, &hashes)? {
                    report.finding = Some(f);
                    return Ok(report);
                }
                report.tiles += 1;
            }
            progress(report.entries, total);
        }
        for (level, count) in Edge::levels(edge.size) {
            let partial = &edge.partial[usize::from(level)];
            if !partial.is_empty() {
                if let Some(f) = compare_tile(conn, channel, level, count / WIDTH as u64, partial)?
                {
                    report.finding = Some(f);
                    return Ok(report);
                }
                report.tiles += 1;
            }
        }
        for (size, stored_root, note) in &checkpoints {
            let size = u64::try_from(*size).unwrap_or(0);
            let location = format!("checkpoint {size}");
            let Some(computed) = roots.get(&size) else {
                report.finding = finding(
                    location,
                    format!("covers {size} entries but only {} exist", edge.size),
                );
                return Ok(report);
            };
            if stored_root.as_slice() != computed.as_slice() {
                report.finding = finding(
                    location,
                    format!(
                        "root {} differs from the recomputed {}",
                        b64_or(stored_root),
                        b64(computed)
                    ),
                );
                return Ok(report);
            }
            let parsed = Note::parse(note).map_err(LedgerError::from).and_then(|n| {
                let cp = Checkpoint::parse(&n.text)?;
                Ok((n, cp))
            });
            let (n, cp) = match parsed {
                Ok(p) => p,
                Err(e) => {
                    report.finding = finding(location, format!("signed note is malformed: {e}"));
                    return Ok(report);
                }
            };
            if cp.size != size || &cp.root != computed {
                report.finding = finding(location, "the signed note states another size or root");
                return Ok(report);
            }
            if let Err(e) = n.verify(&vkeys) {
                report.finding = finding(location, format!("signature: {e}"));
                return Ok(report);
            }
            report.checkpoints += 1;
        }
        let blocks = ledger_blocks::table
            .filter(ledger_blocks::channel.eq(channel))
            .order(ledger_blocks::height)
            .select((
                ledger_blocks::height,
                ledger_blocks::prev_hash,
                ledger_blocks::first_index,
                ledger_blocks::tree_size,
                ledger_blocks::root,
                ledger_blocks::created_at_ms,
                ledger_blocks::block_hash,
            ))
            .load::<(i64, Vec<u8>, i64, i64, Vec<u8>, i64, Vec<u8>)>(&mut *conn)?;
        let mut prev_hash = [0u8; 32];
        let mut prev_size = 0i64;
        for (i, (height, prev, first, size, block_root, time, hash)) in
            blocks.into_iter().enumerate()
        {
            let location = format!("block {height}");
            let expected_height = i64::try_from(i).unwrap_or(i64::MAX);
            let problem = if height != expected_height {
                Some(format!(
                    "expected height {expected_height} (gap in the chain)"
                ))
            } else if prev.as_slice() != prev_hash.as_slice() {
                Some("does not link to the previous block".to_owned())
            } else if first != prev_size {
                Some(format!(
                    "starts at entry {first}, the previous block ended at {prev_size}"
                ))
            } else if roots
                .get(&u64::try_from(size).unwrap_or(0))
                .is_none_or(|r| r.as_slice() != block_root.as_slice())
            {
                Some("its root is not the checkpointed root of its size".to_owned())
            } else {
                let root: Hash = block_root.as_slice().try_into().unwrap_or_default();
                let computed = block_hash_of(
                    channel,
                    height,
                    &prev_hash,
                    u64::try_from(first).unwrap_or(0),
                    u64::try_from(size).unwrap_or(0),
                    &root,
                    time,
                );
                (computed.as_slice() != hash.as_slice())
                    .then(|| "its hash does not match its contents".to_owned())
            };
            if let Some(p) = problem {
                report.finding = finding(location, p);
                return Ok(report);
            }
            prev_hash = hash.as_slice().try_into().unwrap_or_default();
            prev_size = size;
            report.blocks += 1;
        }
        if u64::try_from(prev_size).unwrap_or(0) != edge.size {
            report.finding = finding(
                "blocks",
                format!(
                    "the last block covers {prev_size} entries, the log holds {}",
                    edge.size
                ),
            );
        }
        Ok(report)
    }
}

fn b64_or(bytes: &[u8]) -> String {
    bytes
        .try_into()
        .map_or_else(|_| format!("<{} bytes>", bytes.len()), |h: Hash| b64(&h))
}

fn compare_tile(
    conn: &mut ledgerbridge_store::AnyConnection,
    channel: &str,
    level: u8,
    index: u64,
    hashes: &[Hash],
) -> Result<Option<AuditFinding>> {
    let stored = ledger_tiles::table
        .filter(ledger_tiles::channel.eq(channel))
        .filter(ledger_tiles::level.eq(i32::from(level)))
        .filter(ledger_tiles::idx.eq(i64::try_from(index).unwrap_or(i64::MAX)))
        .select(ledger_tiles::hashes)
        .first::<Vec<u8>>(conn)
        .optional()?;
    let Some(bytes) = stored else {
        return Ok(finding(format!("tile {level}/{index}"), "missing"));
    };
    if bytes == tiles::encode(hashes) {
        return Ok(None);
    }
    if level == 0
        && let Some(stored) = tiles::decode(&bytes)
        && let Some(pos) = hashes.iter().zip(&stored).position(|(a, b)| a != b)
    {
        let entry = index * WIDTH as u64 + pos as u64;
        return Ok(finding(
            format!("entry {entry}"),
            format!(
                "its leaf data no longer hashes to the leaf hash in tile 0/{index}: the row or the tile was altered"
            ),
        ));
    }
    Ok(finding(
        format!("tile {level}/{index}"),
        "stored hashes differ from the recomputed ones (proofs would be wrong)",
    ))
}
