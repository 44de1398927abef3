//! The ledger runtime, one body per behaviour, on SQLite and on a real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

use diesel::prelude::*;
use ledgerbridge_ledger::{Ledger, LedgerError, NewEntry};
use ledgerbridge_ledger_core::checkpoint::Checkpoint;
use ledgerbridge_ledger_core::note::{Note, VerifierKey};
use ledgerbridge_ledger_core::proof_file::{Policy, ProofFile, verify};
use ledgerbridge_ledger_core::verify_consistency;
use ledgerbridge_store::testing::TestStore;

fn event(i: usize) -> NewEntry {
    NewEntry {
        event_id: format!("claim:h1:{i:06}"),
        event_type: "claim".into(),
        connector: "his".into(),
        source_position: format!("binlog.000001:{}", 100 + i),
        mapping_version: "his-claims@1".into(),
        subject: Some(format!("patient-{}", i % 7)),
        payload: format!("{{\"claim\":{i},\"amount\":{}}}", 1000 + i).into_bytes(),
    }
}

struct Node {
    ledger: Ledger,
    keys: tempfile::TempDir,
}

fn node(ts: &TestStore) -> Node {
    let keys = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(
        ts.store.clone(),
        keys.path().join("keys"),
        "ledgerbridge.test/node-a",
    )
    .unwrap();
    ledger.ensure_channel("claims").unwrap();
    Node { ledger, keys }
}

fn policy(ledger: &Ledger) -> Policy {
    Policy::from_vkeys(&ledger.vkeys("claims").unwrap().join("\n"), None).unwrap()
}

fn append_is_idempotent_and_every_entry_is_provable(ts: &TestStore) {
    let n = node(ts);
    let l = &n.ledger;
    let (first, cp) = l
        .append("claims", &(0..300).map(event).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(
        first.iter().map(|a| a.index).collect::<Vec<_>>(),
        (0..300).collect::<Vec<u64>>()
    );
    let cp = cp.unwrap();
    assert_eq!(cp.size, 300);
    // Same ids again (and a duplicate inside the batch): nothing added, same indexes, no checkpoint.
    let again: Vec<NewEntry> = [event(5), event(299), event(5)].into();
    let (dups, none) = l.append("claims", &again).unwrap();
    assert!(none.is_none());
    assert_eq!(
        dups.iter()
            .map(|a| (a.index, a.existing))
            .collect::<Vec<_>>(),
        [(5, true), (299, true), (5, true)]
    );
    // Mixed batch: one old, two new (one twice).
    let (mixed, cp2) = l
        .append("claims", &[event(1), event(300), event(301), event(300)])
        .unwrap();
    assert_eq!(
        mixed
            .iter()
            .map(|a| (a.index, a.existing))
            .collect::<Vec<_>>(),
        [(1, true), (300, false), (301, false), (300, true)]
    );
    assert_eq!(cp2.unwrap().size, 302);
    assert_eq!(l.size("claims").unwrap(), 302);

    let policy = policy(l);
    for i in [0u64, 1, 150, 255, 256, 301] {
        let text = l.proof_file("claims", i).unwrap();
        let entry = l.entry("claims", i).unwrap();
        let verdict = verify(&ProofFile::parse(&text).unwrap(), &entry.leaf_data, &policy).unwrap();
        assert_eq!(verdict.checkpoint.size, 302);
        assert_eq!(entry.entry.event_id, format!("claim:h1:{i:06}"));
        assert_eq!(entry.entry.channel, "claims");
    }
    assert!(matches!(
        l.entry("claims", 302),
        Err(LedgerError::NoEntry { .. })
    ));
    assert!(l.proof_file("claims", 302).is_err());
    assert_eq!(l.index_of("claims", "claim:h1:000042").unwrap(), Some(42));
    assert_eq!(
        l.payload("claims", "claim:h1:000042").unwrap().unwrap(),
        event(42).payload
    );

    let (r1, r2, proof) = l.consistency("claims", 300, 302).unwrap();
    assert_eq!(r1, cp.root);
    verify_consistency(300, 302, &proof, &r1, &r2).unwrap();
    assert!(l.consistency("claims", 0, 5).is_err());
    assert!(l.consistency("claims", 5, 303).is_err());
}

fn state_survives_a_restart(ts: &TestStore) {
    let keys;
    {
        let n = node(ts);
        n.ledger
            .append("claims", &(0..700).map(event).collect::<Vec<_>>())
            .unwrap();
        keys = n.keys;
    }
    let l = Ledger::open(
        ts.store.clone(),
        keys.path().join("keys"),
        "ledgerbridge.test/node-a",
    )
    .unwrap();
    assert_eq!(l.size("claims").unwrap(), 700);
    let (more, cp) = l
        .append("claims", &(695..710).map(event).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(more.iter().filter(|a| !a.existing).count(), 10);
    assert_eq!(cp.unwrap().size, 710);
    let report = l.audit("claims", |_, _| {}).unwrap();
    assert_eq!(report.finding, None, "{report:?}");
    assert_eq!(report.entries, 710);
    assert_eq!(report.checkpoints, 2);
    assert_eq!(report.blocks, 2);
}

fn checkpoints_are_signed_notes_and_keys_rotate(ts: &TestStore) {
    let n = node(ts);
    let l = &n.ledger;
    l.append("claims", &[event(0)]).unwrap();
    let old_vkeys = l.vkeys("claims").unwrap();
    assert_eq!(old_vkeys.len(), 1);
    let old = VerifierKey::parse(&old_vkeys[0]).unwrap();
    assert_eq!(old.name(), "ledgerbridge.test/node-a/claims");
    let new_vkey = l.add_log_key("claims").unwrap();
    let (_, cp) = l.append("claims", &[event(1)]).unwrap();
    let note = Note::parse(&cp.unwrap().note).unwrap();
    assert_eq!(
        note.signatures.len(),
        2,
        "old and new keys both sign during rotation"
    );
    l.retire_log_key("claims", &old_vkeys[0]).unwrap();
    let (_, cp) = l.append("claims", &[event(2)]).unwrap();
    let note = Note::parse(&cp.unwrap().note).unwrap();
    assert_eq!(note.signatures.len(), 1);
    note.verify(&[VerifierKey::parse(&new_vkey).unwrap()])
        .unwrap();
    assert!(note.verify(&[old]).is_err());
    // A member organisation's cosigner key is imported and published after the log keys.
    let org = ledgerbridge_ledger_core::note::SignerKey::generate(
        "insurer.example",
        ledgerbridge_ledger_core::note::KeyType::Cosignature,
    )
    .unwrap();
    l.import_cosigner("claims", &org.verifier().to_vkey())
        .unwrap();
    assert_eq!(
        l.vkeys("claims").unwrap().last().unwrap(),
        &org.verifier().to_vkey()
    );
    assert!(matches!(
        l.import_cosigner("claims", &new_vkey),
        Err(LedgerError::Keys(_))
    ));
    assert!(l.import_cosigner("claims", "not a vkey").is_err());
    assert!(
        l.retire_log_key("claims", &new_vkey).is_err(),
        "the last key cannot be retired"
    );
    // The retired key stays published (two log keys and the cosigner): the first checkpoint
    // still verifies, and so does the audit.
    assert_eq!(l.vkeys("claims").unwrap().len(), 3);
    let cp = Checkpoint::parse(
        &Note::parse(&l.checkpoint("claims").unwrap().unwrap().note)
            .unwrap()
            .text,
    )
    .unwrap();
    assert_eq!(cp.size, 3);
    assert_eq!(l.audit("claims", |_, _| {}).unwrap().finding, None);
}

fn erasure_removes_payloads_and_keeps_every_proof(ts: &TestStore) {
    let n = node(ts);
    let l = &n.ledger;
    l.append("claims", &(0..20).map(event).collect::<Vec<_>>())
        .unwrap();
    let erased = l
        .erase_subject("patient-3", "data subject request 2026-114")
        .unwrap();
    assert_eq!(erased.len(), 1);
    assert_eq!(erased[0].1.index, 20);
    for i in [3usize, 10, 17] {
        assert_eq!(
            l.payload("claims", &event(i).event_id).unwrap(),
            None,
            "payload {i} erased"
        );
    }
    assert!(l.payload("claims", &event(4).event_id).unwrap().is_some());
    let policy = policy(l);
    for i in 0..21u64 {
        let entry = l.entry("claims", i).unwrap();
        verify(
            &ProofFile::parse(&l.proof_file("claims", i).unwrap()).unwrap(),
            &entry.leaf_data,
            &policy,
        )
        .unwrap();
    }
    // A range read gives the same payloads as the look-ups, erased ones as None.
    let range = l.payloads("claims", 2, 5).unwrap();
    assert_eq!(
        range.iter().map(|p| p.index).collect::<Vec<_>>(),
        vec![2, 3, 4, 5, 6]
    );
    for p in &range {
        assert_eq!(
            p.event_id,
            event(usize::try_from(p.index).unwrap()).event_id
        );
        assert_eq!(
            p.payload,
            l.payload("claims", &p.event_id).unwrap(),
            "payload {}",
            p.index
        );
    }
    assert_eq!(range[1].payload, None, "entry 3 (patient-3) erased");
    assert_eq!(
        range[0].payload.as_deref(),
        Some(event(2).payload.as_slice()),
        "entry 2 decrypted"
    );
    let tail = l.payloads("claims", 18, 100).unwrap();
    assert_eq!(
        tail.iter().map(|p| p.index).collect::<Vec<_>>(),
        vec![18, 19, 20],
        "the range stops at the channel's end, erasure entry included"
    );
    assert!(l.payloads("claims", 21, 10).unwrap().is_empty());
    let erasure = l.entry("claims", 20).unwrap();
    assert_eq!(erasure.entry.event_type, "ledger.erasure");
    assert!(
        String::from_utf8(
            l.payload("claims", &erasure.entry.event_id)
                .unwrap()
                .unwrap()
        )
        .unwrap()
        .contains("patient-3")
    );
    assert_eq!(l.audit("claims", |_, _| {}).unwrap().finding, None);
}

fn invalid_input_is_refused_naming_the_field(ts: &TestStore) {
    let n = node(ts);
    let l = &n.ledger;
    let mut bad = event(1);
    bad.event_type = String::new();
    let err = l.append("claims", &[event(0), bad]).unwrap_err();
    assert_eq!(err.to_string(), "entry 1: field `event_type`: is required");
    assert_eq!(
        l.size("claims").unwrap(),
        0,
        "nothing of a refused batch is visible"
    );
    assert!(matches!(
        l.append("nope", &[event(0)]),
        Err(LedgerError::UnknownChannel(_))
    ));
    assert!(matches!(
        l.ensure_channel("Bad Name"),
        Err(LedgerError::InvalidChannel(_))
    ));
}

fn audit_finds_tampering_where_it_is(ts: &TestStore) {
    use ledgerbridge_store::schema::ledger_entries;
    let n = node(ts);
    let l = &n.ledger;
    l.append("claims", &(0..600).map(event).collect::<Vec<_>>())
        .unwrap();
    l.append("claims", &(600..610).map(event).collect::<Vec<_>>())
        .unwrap();
    let mut progress = Vec::new();
    assert_eq!(
        l.audit("claims", |d, t| progress.push((d, t)))
            .unwrap()
            .finding,
        None
    );
    assert_eq!(progress.last(), Some(&(610, 610)));

    let mut conn = ts.store.conn().unwrap();
    // A rewritten row (an operator edits an entry behind the ledger's back): it no longer hashes
    // to the leaf hash in its tile, and the audit names it.
    let original: Vec<u8> = ledger_entries::table
        .filter(ledger_entries::idx.eq(42))
        .select(ledger_entries::leaf_data)
        .first(&mut *conn)
        .unwrap();
    let mut forged = original.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    diesel::update(ledger_entries::table.filter(ledger_entries::idx.eq(42)))
        .set(ledger_entries::leaf_data.eq(&forged))
        .execute(&mut *conn)
        .unwrap();
    let f = l.audit("claims", |_, _| {}).unwrap().finding.unwrap();
    assert_eq!(f.location, "entry 42", "{f:?}");
    assert!(f.problem.contains("altered"), "{f:?}");
    // A forged entry in the second (partial) tile is caught as well.
    diesel::update(ledger_entries::table.filter(ledger_entries::idx.eq(42)))
        .set(ledger_entries::leaf_data.eq(&original))
        .execute(&mut *conn)
        .unwrap();
    let late: Vec<u8> = ledger_entries::table
        .filter(ledger_entries::idx.eq(605))
        .select(ledger_entries::leaf_data)
        .first(&mut *conn)
        .unwrap();
    let mut forged = late.clone();
    let at = forged.len() - 1;
    forged[at] ^= 1;
    diesel::update(ledger_entries::table.filter(ledger_entries::idx.eq(605)))
        .set(ledger_entries::leaf_data.eq(&forged))
        .execute(&mut *conn)
        .unwrap();
    assert_eq!(
        l.audit("claims", |_, _| {})
            .unwrap()
            .finding
            .unwrap()
            .location,
        "entry 605"
    );
    diesel::update(ledger_entries::table.filter(ledger_entries::idx.eq(605)))
        .set(ledger_entries::leaf_data.eq(&late))
        .execute(&mut *conn)
        .unwrap();
    assert_eq!(l.audit("claims", |_, _| {}).unwrap().finding, None);

    // A deleted row: a gap.
    diesel::delete(ledger_entries::table.filter(ledger_entries::idx.eq(7)))
        .execute(&mut *conn)
        .unwrap();
    let f = l.audit("claims", |_, _| {}).unwrap().finding.unwrap();
    assert_eq!(f.location, "entry 7");
    assert!(f.problem.contains("gap"));
}

fn audit_catches_a_forged_checkpoint_signature_and_a_tampered_tile(ts: &TestStore) {
    use ledgerbridge_store::schema::{ledger_checkpoints, ledger_tiles};
    let n = node(ts);
    let l = &n.ledger;
    l.append("claims", &(0..300).map(event).collect::<Vec<_>>())
        .unwrap();
    let mut conn = ts.store.conn().unwrap();
    let note: String = ledger_checkpoints::table
        .select(ledger_checkpoints::note)
        .first(&mut *conn)
        .unwrap();
    let mut parsed = Note::parse(&note).unwrap();
    parsed.signatures[0].signature[0] ^= 1;
    diesel::update(ledger_checkpoints::table)
        .set(ledger_checkpoints::note.eq(parsed.to_text()))
        .execute(&mut *conn)
        .unwrap();
    let f = l.audit("claims", |_, _| {}).unwrap().finding.unwrap();
    assert_eq!(f.location, "checkpoint 300");
    assert!(f.problem.contains("bad signature"), "{f:?}");
    diesel::update(ledger_checkpoints::table)
        .set(ledger_checkpoints::note.eq(&note))
        .execute(&mut *conn)
        .unwrap();

    let tile: Vec<u8> = ledger_tiles::table
        .filter(ledger_tiles::level.eq(0))
        .filter(ledger_tiles::idx.eq(1))
        .select(ledger_tiles::hashes)
        .first(&mut *conn)
        .unwrap();
    let mut bad = tile.clone();
    bad[0] ^= 1;
    diesel::update(
        ledger_tiles::table
            .filter(ledger_tiles::level.eq(0))
            .filter(ledger_tiles::idx.eq(1)),
    )
    .set(ledger_tiles::hashes.eq(&bad))
    .execute(&mut *conn)
    .unwrap();
    let f = l.audit("claims", |_, _| {}).unwrap().finding.unwrap();
    assert_eq!(
        f.location, "entry 256",
        "level-0 tiles hold the leaf hashes: {f:?}"
    );
    diesel::update(
        ledger_tiles::table
            .filter(ledger_tiles::level.eq(0))
            .filter(ledger_tiles::idx.eq(1)),
    )
    .set(ledger_tiles::hashes.eq(&tile))
    .execute(&mut *conn)
    .unwrap();
    // An interior tile (level 1: one hash per 256 leaves) altered: the tile itself is named.
    let interior: Vec<u8> = ledger_tiles::table
        .filter(ledger_tiles::level.eq(1))
        .select(ledger_tiles::hashes)
        .first(&mut *conn)
        .unwrap();
    let mut bad = interior.clone();
    bad[31] ^= 1;
    diesel::update(ledger_tiles::table.filter(ledger_tiles::level.eq(1)))
        .set(ledger_tiles::hashes.eq(&bad))
        .execute(&mut *conn)
        .unwrap();
    let f = l.audit("claims", |_, _| {}).unwrap().finding.unwrap();
    assert_eq!(f.location, "tile 1/0", "{f:?}");
}

fn concurrent_submissions_are_sequenced_without_loss(ts: &TestStore) {
    let n = node(ts);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let ledger = n.ledger.clone();
            std::thread::spawn(move || {
                let mut indexes = Vec::new();
                for i in 0..40 {
                    let mut e = event(t * 1000 + i);
                    if i == 7 {
                        e.event_type.clear(); // one bad event per thread: refused alone
                        assert!(matches!(
                            ledger.submit("claims", e),
                            Err(LedgerError::Entry { .. })
                        ));
                        continue;
                    }
                    indexes.push(ledger.submit("claims", e).unwrap().index);
                }
                indexes
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..8 * 39).collect::<Vec<u64>>());
    assert_eq!(n.ledger.size("claims").unwrap(), 8 * 39);
    // Submitting again returns the same index.
    assert!(n.ledger.submit("claims", event(3000)).unwrap().existing);
    assert_eq!(n.ledger.audit("claims", |_, _| {}).unwrap().finding, None);
}

/// A second process of `node`'s node: the same store and signing keys.
fn second_process(ts: &TestStore, node: &Node) -> Ledger {
    Ledger::open(
        ts.store.clone(),
        node.keys.path().join("keys"),
        "ledgerbridge.test/node-a",
    )
    .unwrap()
}

/// Two ledgers on one store stand for two processes (an API process erasing, an anchoring
/// process appending): the appender knows the subject's key from its first append, and must
/// notice the erasure another process made rather than encrypt under the destroyed key.
fn an_erasure_by_another_process_is_seen_by_the_next_append(ts: &TestStore) {
    let appender = node(ts);
    let eraser = second_process(ts, &appender);
    let first = [event(0), event(7)]; // both patient-0
    appender.ledger.append("claims", &first).unwrap();
    // Known now; a second append for the same subject reads it from memory.
    appender.ledger.append("claims", &[event(14)]).unwrap();
    eraser.erase_subject("patient-0", "request 2026-7").unwrap();
    for e in [event(0), event(7), event(14)] {
        assert_eq!(
            appender.ledger.payload("claims", &e.event_id).unwrap(),
            None
        );
    }
    // A new event of the subject after the erasure: a new key, so its payload reads back.
    appender.ledger.append("claims", &[event(21)]).unwrap();
    assert_eq!(
        appender
            .ledger
            .payload("claims", &event(21).event_id)
            .unwrap(),
        Some(event(21).payload)
    );
    // And again from memory, still readable; a second erasure is seen the same way.
    appender.ledger.append("claims", &[event(28)]).unwrap();
    assert_eq!(
        eraser.payload("claims", &event(28).event_id).unwrap(),
        Some(event(28).payload)
    );
    eraser.erase_subject("patient-0", "request 2026-8").unwrap();
    appender.ledger.append("claims", &[event(35)]).unwrap();
    assert_eq!(
        appender
            .ledger
            .payload("claims", &event(35).event_id)
            .unwrap(),
        Some(event(35).payload)
    );
    assert_eq!(eraser.payload("claims", &event(28).event_id).unwrap(), None);
    assert_eq!(
        appender.ledger.audit("claims", |_, _| {}).unwrap().finding,
        None
    );
}

/// The anchoring worker prepares batch n+1 while batch n is appended: a batch prepared before
/// an erasure is prepared again when it is appended (its payloads must read back under the
/// subject's new key), and two batches prepared before either was appended, bringing the same new
/// subject, end up under the one key the first append stored.
fn batches_prepared_ahead_of_their_append_stay_readable(ts: &TestStore) {
    let appender = node(ts);
    let eraser = second_process(ts, &appender);
    // patient-0 (events 0, 7, 14, ...) and patient-1 (1, 8, ...) are new to the store.
    let a = appender
        .ledger
        .prepare("claims", vec![event(0), event(1)])
        .unwrap();
    let b = appender
        .ledger
        .prepare("claims", vec![event(7), event(8), event(2)])
        .unwrap();
    assert_eq!((a.channel(), a.len(), b.len()), ("claims", 2, 3));
    appender.ledger.append_prepared(a).unwrap();
    appender.ledger.append_prepared(b).unwrap();
    for i in [0, 1, 7, 8, 2] {
        assert_eq!(
            eraser.payload("claims", &event(i).event_id).unwrap(),
            Some(event(i).payload),
            "event {i}"
        );
    }
    // Prepared under the old key of patient-0, appended after its erasure.
    let c = appender
        .ledger
        .prepare("claims", vec![event(14), event(15)])
        .unwrap();
    eraser.erase_subject("patient-0", "request 2026-9").unwrap();
    appender.ledger.append_prepared(c).unwrap();
    for i in [14, 15, 8] {
        assert_eq!(
            eraser.payload("claims", &event(i).event_id).unwrap(),
            Some(event(i).payload),
            "event {i}"
        );
    }
    for i in [0, 7] {
        assert_eq!(eraser.payload("claims", &event(i).event_id).unwrap(), None);
    }
    // A prepared batch appended twice adds nothing the second time.
    let again = appender
        .ledger
        .prepare("claims", vec![event(14), event(21)])
        .unwrap();
    let (appended, _) = appender.ledger.append_prepared(again).unwrap();
    assert!(appended[0].existing && !appended[1].existing);
    assert_eq!(
        appender.ledger.audit("claims", |_, _| {}).unwrap().finding,
        None
    );
}

ledgerbridge_store::on_both_backends!(
    "ledger":
    append_is_idempotent_and_every_entry_is_provable,
    state_survives_a_restart,
    checkpoints_are_signed_notes_and_keys_rotate,
    erasure_removes_payloads_and_keeps_every_proof,
    invalid_input_is_refused_naming_the_field,
    audit_finds_tampering_where_it_is,
    audit_catches_a_forged_checkpoint_signature_and_a_tampered_tile,
    concurrent_submissions_are_sequenced_without_loss,
    an_erasure_by_another_process_is_seen_by_the_next_append,
    batches_prepared_ahead_of_their_append_stay_readable,
);
