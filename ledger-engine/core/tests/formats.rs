//! Signed notes, keys, checkpoints, cosignatures, proof files and entries: known answers from the
//! reference implementations and the specifications, round trips, and every refusal.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

use ledgerbridge_ledger_core::checkpoint::Checkpoint;
use ledgerbridge_ledger_core::cosignature::cosign;
use ledgerbridge_ledger_core::entry::{Entry, EntryError, EntryKind, commitment};
use ledgerbridge_ledger_core::note::{KeyType, Note, NoteError, SignerKey, VerifierKey, key_id};
use ledgerbridge_ledger_core::proof_file::{Policy, ProofFile, VerifyError, verify};
use ledgerbridge_ledger_core::{MemoryTree, inclusion_proof, leaf_hash};
use proptest::prelude::*;

// Known answer from the documentation of golang.org/x/mod/sumdb/note (the reference
// implementation of signed notes). Ed25519 is deterministic, so signing must reproduce it.
const GO_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

// The verifier-key example of the C2SP signed-note specification.
const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

#[test]
fn signing_reproduces_the_reference_note_byte_for_byte() {
    let signer = SignerKey::parse(GO_SKEY).unwrap();
    assert_eq!(signer.verifier().to_vkey(), GO_VKEY);
    assert_eq!(signer.to_skey(), GO_SKEY);
    assert_eq!(signer.verifier().key_id(), 0xc74f_20a3);
    let note = Note::sign(GO_TEXT, &signer).unwrap();
    assert_eq!(note.to_text(), format!("{GO_TEXT}\n{GO_SIG}"));
    let parsed = Note::parse(&note.to_text()).unwrap();
    assert_eq!(parsed, note);
    let v = VerifierKey::parse(GO_VKEY).unwrap();
    assert_eq!(parsed.verify(&[v]).unwrap().len(), 1);
}

#[test]
fn the_specification_example_verifies() {
    let key = VerifierKey::parse(SPEC_VKEY).unwrap();
    assert_eq!(key.name(), "example.com/foo");
    assert_eq!(key.key_id(), 0x530d_903a);
    assert_eq!(
        key.key_id(),
        key_id("example.com/foo", KeyType::Ed25519, key.public_key())
    );
    let note = Note::parse(SPEC_NOTE).unwrap();
    assert_eq!(note.text, "This is an example message.\n");
    note.verify(&[key]).unwrap();
}

#[test]
fn unknown_keys_are_ignored_and_bad_signatures_by_known_keys_rejected() {
    let signer = SignerKey::parse(GO_SKEY).unwrap();
    let other = SignerKey::generate("other.example/log", KeyType::Ed25519).unwrap();
    let mut note = Note::sign(GO_TEXT, &signer).unwrap();
    note.add_signature(&other).unwrap();
    // Trusting only the first: the second signature is ignored.
    let verified = Note::parse(&note.to_text())
        .unwrap()
        .verify(&[signer.verifier().clone()])
        .unwrap();
    assert_eq!(verified.len(), 1);
    // Nothing trusted: refused.
    let stranger = SignerKey::generate("stranger", KeyType::Ed25519).unwrap();
    assert!(matches!(
        note.verify(&[stranger.verifier().clone()]),
        Err(NoteError::NoTrustedSignature(_))
    ));
    // A tampered text: the trusted key's signature fails.
    let tampered = note.to_text().replacen("cryptography", "cryptographY", 1);
    assert!(matches!(
        Note::parse(&tampered)
            .unwrap()
            .verify(&[signer.verifier().clone()]),
        Err(NoteError::BadSignature { .. })
    ));
    // Same name, different key: not the trusted key, so ignored (and nothing else is trusted).
    let impostor = SignerKey::generate("PeterNeumann", KeyType::Ed25519).unwrap();
    assert!(
        Note::sign(GO_TEXT, &impostor)
            .unwrap()
            .verify(&[signer.verifier().clone()])
            .is_err()
    );
}

#[test]
fn malformed_notes_and_keys_are_refused_with_a_reason() {
    let sig = GO_SIG;
    let cases = [
        (String::new(), "newline"),
        (format!("{GO_TEXT}{sig}"), "blank line"),
        (format!("{GO_TEXT}\n"), "no signature"),
        (format!("{GO_TEXT}\n{}", sig.trim_end()), "newline"),
        (format!("{GO_TEXT}\n- PeterNeumann abc\n"), "em dash"),
        (format!("{GO_TEXT}\n\u{2014} PeterNeumann !!!\n"), "base64"),
        (
            format!("{GO_TEXT}\n\u{2014} PeterNeumann AAAA\n"),
            "too short",
        ),
        (
            format!("{GO_TEXT}\n\u{2014} Peter+Neumann AAAAAAAA\n"),
            "key name",
        ),
        (format!("bell\u{7}\n\n{sig}"), "control character"),
    ];
    for (text, why) in cases {
        match Note::parse(&text) {
            Err(NoteError::Malformed(m)) => {
                assert!(m.contains(why), "{text:?}: `{m}` lacks `{why}`")
            }
            other => panic!("{text:?} gave {other:?}"),
        }
    }
    let too_many = format!("{GO_TEXT}\n{}", sig.repeat(101));
    assert!(Note::parse(&too_many).is_err());
    assert_eq!(
        Note::parse(&format!("{GO_TEXT}\n{}", sig.repeat(16)))
            .unwrap()
            .signatures
            .len(),
        16
    );

    for vkey in [
        "",
        "name",
        "name+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+BRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+zzzzzzzz+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq",
    ] {
        assert!(
            matches!(VerifierKey::parse(vkey), Err(NoteError::MalformedKey(_))),
            "{vkey}"
        );
    }
}

#[test]
fn checkpoints_round_trip_and_refuse_malformed_bodies() {
    let cp = Checkpoint {
        origin: "ledgerbridge.example/hospital-a/claims".into(),
        size: 20_852_163,
        root: leaf_hash(b"root"),
        extensions: vec![],
    };
    assert_eq!(Checkpoint::parse(&cp.to_text()).unwrap(), cp);
    // The example of the C2SP tlog-checkpoint specification.
    let spec = Checkpoint::parse(
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
    )
    .unwrap();
    assert_eq!(spec.size, 20_852_163);
    for bad in [
        "",
        "\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "o\n05\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "o\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",
        "o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",
        "o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n",
        "o\n99999999999999999999999\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
    ] {
        assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
    }
}

struct Log {
    tree: MemoryTree,
    leaves: Vec<Vec<u8>>,
    log_key: SignerKey,
    cosigners: Vec<SignerKey>,
}

fn log_with(n: u64, cosigners: usize) -> Log {
    let mut tree = MemoryTree::new();
    let mut leaves = Vec::new();
    for i in 0..n {
        let data = format!("leaf {i}").into_bytes();
        tree.push(leaf_hash(&data));
        leaves.push(data);
    }
    Log {
        tree,
        leaves,
        log_key: SignerKey::generate("ledgerbridge.example/test/claims", KeyType::Ed25519).unwrap(),
        cosigners: (0..cosigners)
            .map(|i| SignerKey::generate(&format!("org{i}.example"), KeyType::Cosignature).unwrap())
            .collect(),
    }
}

impl Log {
    fn proof_file(&self, index: u64, cosign_with: usize) -> ProofFile {
        let cp = Checkpoint {
            origin: "ledgerbridge.example/test/claims".into(),
            size: self.tree.size(),
            root: self.tree.root(),
            extensions: vec![],
        };
        let mut note = Note::sign(&cp.to_text(), &self.log_key).unwrap();
        for c in self.cosigners.iter().take(cosign_with) {
            cosign(&mut note, c, 1_795_000_000).unwrap();
        }
        ProofFile {
            extra: None,
            index,
            proof: inclusion_proof(&self.tree, index, self.tree.size()).unwrap(),
            checkpoint: note,
        }
    }

    fn trust(&self) -> String {
        let mut s = format!("# log\n{}\n", self.log_key.verifier().to_vkey());
        for c in &self.cosigners {
            s.push_str(&c.verifier().to_vkey());
            s.push('\n');
        }
        s
    }
}

#[test]
fn a_cosigned_proof_file_verifies_offline_and_each_failure_has_its_reason() {
    let log = log_with(37, 3);
    let file = log.proof_file(20, 2);
    let text = file.to_text();
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nindex 20\n"));
    let parsed = ProofFile::parse(&text).unwrap();
    assert_eq!(parsed, file);

    let policy = Policy::from_vkeys(&log.trust(), Some("2-of-3")).unwrap();
    let verdict = verify(&parsed, &log.leaves[20], &policy).unwrap();
    assert_eq!(verdict.index, 20);
    assert_eq!(verdict.checkpoint.size, 37);
    assert_eq!(verdict.cosigners.len(), 2);
    assert_eq!(verdict.cosigners[0].1, 1_795_000_000);

    // Too few cosignatures for 3-of-3 (and for the default, all cosigners).
    let all = Policy::from_vkeys(&log.trust(), None).unwrap();
    assert!(matches!(
        verify(&parsed, &log.leaves[20], &all),
        Err(VerifyError::TooFewCosignatures {
            got: 2,
            need: 3,
            ..
        })
    ));
    // Other leaf data: the proof does not match the root.
    assert!(matches!(
        verify(&parsed, b"forged", &policy),
        Err(VerifyError::ProofMismatch(_))
    ));
    // Another log's keys: unknown key.
    let other = log_with(1, 0);
    let foreign = Policy::from_vkeys(&other.trust(), None).unwrap();
    assert!(matches!(
        verify(&parsed, &log.leaves[20], &foreign),
        Err(VerifyError::UnknownKey(_))
    ));
    // A tampered checkpoint (bigger size): bad signature.
    let tampered = text.replacen("\n37\n", "\n38\n", 1);
    assert!(matches!(
        verify(
            &ProofFile::parse(&tampered).unwrap(),
            &log.leaves[20],
            &policy
        ),
        Err(VerifyError::BadSignature(_))
    ));
    // A tampered cosignature timestamp: that cosigner's signature fails.
    let mut cosigned = file.clone();
    cosigned.checkpoint.signatures[1].signature[7] ^= 1;
    assert!(matches!(
        verify(&cosigned, &log.leaves[20], &policy),
        Err(VerifyError::BadSignature(name)) if name.starts_with("org0.example")
    ));
    // A pinned origin that differs.
    let mut pinned = policy.clone();
    pinned.origin = Some("ledgerbridge.example/test/customs".into());
    assert!(matches!(
        verify(&parsed, &log.leaves[20], &pinned),
        Err(VerifyError::WrongOrigin { .. })
    ));
}

#[test]
fn policies_and_proof_files_refuse_malformed_input() {
    let log = log_with(5, 2);
    for bad in ["1-of-3", "3-of-2", "two-of-2", "2of2"] {
        assert!(
            Policy::from_vkeys(&log.trust(), Some(bad)).is_err(),
            "{bad}"
        );
    }
    assert!(Policy::from_vkeys("", None).is_err());
    let good = log.proof_file(1, 1).to_text();
    let cases = [
        good.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1),
        good.replacen("index 1", "index 01", 1),
        good.replacen("index 1", "index x", 1),
        good.replacen("index 1", "idx 1", 1),
        good.replacen("index 1\n", "index 1\nnot base64!\n", 1),
        good.replacen("\n\n", "\n", 1),
        "c2sp.org/tlog-proof@v1\n".to_owned(),
    ];
    for text in cases {
        assert!(
            matches!(ProofFile::parse(&text), Err(VerifyError::Malformed(_))),
            "{text:?}"
        );
    }
    let with_extra = good.replacen("index 1", "extra aGVsbG8=\nindex 1", 1);
    assert_eq!(
        ProofFile::parse(&with_extra).unwrap().extra.as_deref(),
        Some(&b"hello"[..])
    );
}

fn entry() -> Entry {
    Entry {
        kind: EntryKind::Event,
        event_id: "claim:hospital-a:000123".into(),
        event_type: "claim".into(),
        channel: "claims".into(),
        connector: "his-mariadb".into(),
        source_position: "mysql-bin.000003:4521".into(),
        mapping_version: "his-claims@3".into(),
        commitment: commitment(&[7; 32], br#"{"amount":120000}"#),
        accepted_at_ms: 1_795_000_000_123,
    }
}

#[test]
fn leaf_data_is_stable_and_round_trips() {
    let e = entry();
    let data = e.leaf_data().unwrap();
    assert_eq!(&data[..5], b"LBE1\x01");
    assert_eq!(Entry::from_leaf_data(&data).unwrap(), e);
    // Pinned: a change to the encoding breaks every existing proof, so it must be deliberate.
    assert_eq!(
        leaf_hash(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        "7cbb2b8997605348a7d081cacb90bab505e69d8237a4ae89182b41334cca8de3"
    );
}

#[test]
fn entries_name_the_bad_field() {
    let mut e = entry();
    e.event_id.clear();
    e.channel = "x".repeat(2000);
    let errors = e.validate().unwrap_err();
    assert_eq!(errors.len(), 2);
    assert!(matches!(
        &errors[0],
        EntryError::Field {
            field: "event_id",
            ..
        }
    ));
    assert!(matches!(
        &errors[1],
        EntryError::Field {
            field: "channel",
            ..
        }
    ));
    assert!(e.leaf_data().is_err());
    let data = entry().leaf_data().unwrap();
    for cut in [0, 4, 5, 10, data.len() - 1] {
        assert!(Entry::from_leaf_data(&data[..cut]).is_err(), "cut at {cut}");
    }
    let mut trailing = data.clone();
    trailing.push(0);
    assert!(Entry::from_leaf_data(&trailing).is_err());
}

proptest! {
    #[test]
    fn parsers_never_panic_on_arbitrary_input(s in "\\PC*", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Note::parse(&s);
        let _ = Checkpoint::parse(&s);
        let _ = ProofFile::parse(&s);
        let _ = VerifierKey::parse(&s);
        let _ = SignerKey::parse(&s);
        let _ = Entry::from_leaf_data(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = Note::parse(&text);
        let _ = ProofFile::parse(&text);
    }

    #[test]
    fn any_flipped_bit_in_a_proof_file_is_caught(flip in any::<usize>(), bit in 0u8..8) {
        let log = log_with(9, 1);
        let text = log.proof_file(4, 1).to_text();
        let mut bytes = text.into_bytes();
        let at = flip % bytes.len();
        bytes[at] ^= 1 << bit;
        let policy = Policy::from_vkeys(&log.trust(), None).unwrap();
        if let Ok(file) = ProofFile::parse(&String::from_utf8_lossy(&bytes)) {
            prop_assert!(verify(&file, &log.leaves[4], &policy).is_err());
        }
    }
}
