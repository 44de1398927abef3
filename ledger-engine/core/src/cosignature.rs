//! Ed25519 cosignatures, `c2sp.org/tlog-cosignature` (signature type `0x04`).
//!
//! A cosigner states that, at `timestamp`, the checkpoint is the largest consistent tree head it
//! has seen for the log. The signed message is `cosignature/v1\n`, `time <timestamp>\n`, then the
//! checkpoint's note text; the signature bytes are the timestamp (u64, big-endian) followed by the
//! 64-byte Ed25519 signature.

use crate::note::{KeyType, Note, NoteError, NoteSignature, SignerKey, VerifierKey, check_text};

/// The message a cosigner signs for `note_text` at `timestamp`.
#[must_use]
pub fn message(note_text: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{note_text}").into_bytes()
}

/// Cosigns `note` at `timestamp` (seconds since the epoch), appending the signature line.
///
/// # Errors
/// The key is not a cosignature (`0x04`) key, the timestamp exceeds 2^63-1, or the note text is
/// not valid.
pub fn cosign(note: &mut Note, key: &SignerKey, timestamp: u64) -> Result<(), NoteError> {
    if key.verifier().kind() != KeyType::Cosignature {
        return Err(NoteError::MalformedKey(
            "cosigning needs a cosignature (0x04) key".into(),
        ));
    }
    if timestamp > i64::MAX as u64 {
        return Err(NoteError::Malformed(
            "cosignature timestamp above 2^63-1".into(),
        ));
    }
    check_text(&note.text)?;
    let mut signature = timestamp.to_be_bytes().to_vec();
    signature.extend_from_slice(&key.sign_raw(&message(&note.text, timestamp)));
    note.signatures.push(NoteSignature {
        name: key.verifier().name().to_owned(),
        key_id: key.verifier().key_id(),
        signature,
    });
    Ok(())
}

/// Verifies a cosignature's bytes (timestamp ‖ signature) over `note_text`; the timestamp when
/// it verifies.
pub(crate) fn verify(key: &VerifierKey, note_text: &str, signature: &[u8]) -> Option<u64> {
    if signature.len() != 72 {
        return None;
    }
    let (ts, sig) = signature.split_at(8);
    let timestamp = u64::from_be_bytes(ts.try_into().ok()?);
    if timestamp > i64::MAX as u64 {
        return None;
    }
    key.verify_raw(&message(note_text, timestamp), sig)
        .then_some(timestamp)
}
