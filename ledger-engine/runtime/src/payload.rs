//! Payloads beside the log (in the entry's row, outside the leaf data), encrypted per data
//! subject with AES-256-GCM (ring). The plaintext is
//! the 32-byte commitment salt followed by the canonical payload; the associated data binds it to
//! its channel and event id. Erasing a subject deletes its key and its ciphertexts: the
//! commitments in the log stay, so every proof still verifies, and nothing can be decrypted.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

/// Bytes of an AES-GCM nonce.
pub(crate) use ring::aead::NONCE_LEN;
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::{LedgerError, Result};

/// Fills `buf` from the system's random source.
pub(crate) fn fill(buf: &mut [u8]) -> Result<()> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| LedgerError::Crypto("the system random source failed".into()))
}

/// Random bytes an entry needs: its commitment salt and its payload nonce.
pub(crate) const ENTROPY_PER_ENTRY: usize = 32 + NONCE_LEN;

fn key(bytes: &[u8]) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| LedgerError::Crypto("a subject key is not 32 bytes".into()))
}

fn aad(channel: &str, event_id: &str) -> Vec<u8> {
    format!("ledgerbridge/payload/v1\0{channel}\0{event_id}").into_bytes()
}

/// Encrypts `data` in place; returns the ciphertext with its tag.
pub(crate) fn seal(
    key_bytes: &[u8],
    channel: &str,
    event_id: &str,
    nonce: [u8; NONCE_LEN],
    mut data: Vec<u8>,
) -> Result<Vec<u8>> {
    key(key_bytes)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(channel, event_id)),
            &mut data,
        )
        .map_err(|_| LedgerError::Crypto("encryption failed".into()))?;
    Ok(data)
}

/// Decrypts what [`seal`] produced.
pub(crate) fn open(
    key_bytes: &[u8],
    channel: &str,
    event_id: &str,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>> {
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| LedgerError::Crypto("stored nonce has the wrong length".into()))?;
    let mut data = ciphertext.to_vec();
    let plain = key(key_bytes)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(channel, event_id)),
            &mut data,
        )
        .map_err(|_| {
            LedgerError::Crypto(format!(
                "payload of {event_id} does not decrypt (tampered or wrong key)"
            ))
        })?;
    Ok(plain.to_vec())
}

use diesel::prelude::*;
use ledgerbridge_ledger_core::entry::EntryKind;
use ledgerbridge_store::AnyConnection;
use ledgerbridge_store::schema::{ledger_entries, ledger_erasures, ledger_subject_keys};

use crate::Ledger;
use crate::channel::{Appended, NewEntry, now_ms};

impl Ledger {
    /// Erases a data subject: in every channel holding its payloads, clears them and appends an
    /// erasure entry in the same transaction; then destroys the subject's key and records the
    /// erasure. Entries, commitments and proofs are untouched, so every proof still verifies.
    /// Running it again completes an erasure that was interrupted.
    ///
    /// # Errors
    /// Store failure.
    pub fn erase_subject(&self, subject: &str, reason: &str) -> Result<Vec<(String, Appended)>> {
        let channels: Vec<String> = {
            let mut conn = self.store.conn()?;
            ledger_entries::table
                .filter(ledger_entries::subject_key.eq(ledgerbridge_store::lookup_key(subject)))
                .filter(ledger_entries::subject.eq(subject))
                .filter(ledger_entries::ciphertext.is_not_null())
                .select(ledger_entries::channel)
                .distinct()
                .load::<String>(&mut *conn)?
        };
        let mut appended = Vec::new();
        let mut removed_total = 0i64;
        for channel in channels {
            let at = now_ms();
            let removed = std::cell::Cell::new(0usize);
            let record = NewEntry {
                event_id: format!("erasure:{subject}:{at}"),
                event_type: "ledger.erasure".into(),
                connector: "ledger".into(),
                source_position: String::new(),
                mapping_version: String::new(),
                subject: None,
                payload: format!(
                    "{{\"subject\":{subject:?},\"reason\":{reason:?},\"erased_at_ms\":{at}}}"
                )
                .into_bytes(),
            };
            let (mut result, _) = self.append_one(
                &channel,
                record,
                EntryKind::Erasure,
                |c: &mut AnyConnection| {
                    let n = diesel::update(
                        ledger_entries::table
                            .filter(ledger_entries::channel.eq(&channel))
                            .filter(
                                ledger_entries::subject_key
                                    .eq(ledgerbridge_store::lookup_key(subject)),
                            )
                            .filter(ledger_entries::subject.eq(subject))
                            .filter(ledger_entries::ciphertext.is_not_null()),
                    )
                    .set((
                        ledger_entries::nonce.eq(None::<Vec<u8>>),
                        ledger_entries::ciphertext.eq(None::<Vec<u8>>),
                    ))
                    .execute(c)?;
                    removed.set(n);
                    Ok(())
                },
            )?;
            removed_total += i64::try_from(removed.get()).unwrap_or(i64::MAX);
            if let Some(a) = result.pop() {
                appended.push((channel, a));
            }
        }
        let mut pooled = self.store.writer()?;
        let conn: &mut AnyConnection = &mut pooled;
        ledgerbridge_store::write_transaction::<_, LedgerError, _>(conn, |c| {
            diesel::delete(
                ledger_subject_keys::table.filter(ledger_subject_keys::subject.eq(subject)),
            )
            .execute(c)?;
            // Every process's known subject keys are stale from here (`SubjectKeys`).
            crate::channel::count_erasure(c)?;
            let before = ledger_erasures::table
                .filter(ledger_erasures::subject.eq(subject))
                .select(ledger_erasures::payloads_removed)
                .first::<i64>(c)
                .optional()?
                .unwrap_or(0);
            diesel::delete(ledger_erasures::table.filter(ledger_erasures::subject.eq(subject)))
                .execute(c)?;
            diesel::insert_into(ledger_erasures::table)
                .values((
                    ledger_erasures::subject.eq(subject),
                    ledger_erasures::erased_at_ms.eq(now_ms()),
                    ledger_erasures::payloads_removed.eq(before + removed_total),
                    ledger_erasures::reason.eq(reason),
                ))
                .execute(c)?;
            Ok(())
        })?;
        Ok(appended)
    }
}
