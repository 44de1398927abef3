//! Ledger entries and their *leaf data*: the exact bytes whose RFC 6962 leaf hash goes in the
//! tree. An entry commits to a canonical event without exposing it.
//!
//! Encoding, version 1 (all integers big-endian, every string UTF-8 with a u16 length prefix):
//!
//! ```text
//! "LBE1"                 4 bytes, magic and version
//! kind                   u8: 1 = event, 2 = erasure
//! event_id               string   (deterministic id of the canonical event; for an erasure,
//!                                  the id of the erasure record)
//! event_type             string   (e.g. `claim`; `ledger.erasure` for erasures)
//! channel                string   (e.g. `claims`)
//! connector              string   (provenance: the source connector, or `api` for pushes)
//! source_position        string   (provenance: LSN, binlog position, file:line, …)
//! mapping_version        string   (provenance: `<mapping>@<version>`)
//! commitment             32 bytes SHA-256("ledgerbridge/commitment/v1\0" ‖ salt ‖ payload)
//! accepted_at_ms         i64      milliseconds since the Unix epoch
//! ```
//!
//! The payload and its 32-byte salt are stored beside the log (encrypted per data subject);
//! destroying them leaves the commitment, so every proof still verifies after an erasure.

use crate::hash::Hash;

const MAGIC: &[u8; 4] = b"LBE1";
/// Longest string field, in bytes.
pub const MAX_FIELD_BYTES: usize = 1024;

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A canonical event was anchored.
    Event,
    /// A data subject's payloads were erased; the commitment is over the erasure record.
    Erasure,
}

/// A ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Event or erasure.
    pub kind: EntryKind,
    /// Deterministic event id (idempotency key).
    pub event_id: String,
    /// Canonical event type.
    pub event_type: String,
    /// Ledger channel.
    pub channel: String,
    /// Source connector.
    pub connector: String,
    /// Position in the source.
    pub source_position: String,
    /// Mapping name and version.
    pub mapping_version: String,
    /// Salted commitment of the payload.
    pub commitment: Hash,
    /// When the ledger accepted it.
    pub accepted_at_ms: i64,
}

/// Why leaf data or an entry was refused; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// A field is empty where a value is required, or too long.
    #[error("field `{field}`: {reason}")]
    Field {
        /// Field name.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The bytes are not leaf data of a known version.
    #[error("leaf data: {0}")]
    Malformed(String),
}

/// `SHA-256("ledgerbridge/commitment/v1\0" ‖ salt ‖ payload)`.
#[must_use]
pub fn commitment(salt: &[u8; 32], payload: &[u8]) -> Hash {
    // Hashed in parts rather than copied into one buffer first.
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"ledgerbridge/commitment/v1\0");
    ctx.update(salt);
    ctx.update(payload);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

impl Entry {
    fn fields(&self) -> [(&'static str, &str, bool); 6] {
        [
            ("event_id", &self.event_id, true),
            ("event_type", &self.event_type, true),
            ("channel", &self.channel, true),
            ("connector", &self.connector, true),
            ("source_position", &self.source_position, false),
            ("mapping_version", &self.mapping_version, false),
        ]
    }

    /// Checks every field; all problems are reported, first one first.
    ///
    /// # Errors
    /// The list of [`EntryError::Field`] problems.
    pub fn validate(&self) -> Result<(), Vec<EntryError>> {
        let mut errors = Vec::new();
        for (field, value, required) in self.fields() {
            if required && value.is_empty() {
                errors.push(EntryError::Field {
                    field,
                    reason: "is required".into(),
                });
            } else if value.len() > MAX_FIELD_BYTES {
                errors.push(EntryError::Field {
                    field,
                    reason: format!(
                        "is {} bytes, at most {MAX_FIELD_BYTES} allowed",
                        value.len()
                    ),
                });
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The leaf data (version 1).
    ///
    /// # Errors
    /// The first invalid field.
    pub fn leaf_data(&self) -> Result<Vec<u8>, EntryError> {
        if let Err(mut errors) = self.validate() {
            return Err(errors.remove(0));
        }
        let mut out =
            Vec::with_capacity(64 + self.fields().iter().map(|f| f.1.len() + 2).sum::<usize>());
        out.extend_from_slice(MAGIC);
        out.push(match self.kind {
            EntryKind::Event => 1,
            EntryKind::Erasure => 2,
        });
        for (_, value, _) in self.fields() {
            // Lengths were checked against MAX_FIELD_BYTES, far below u16::MAX.
            out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out.extend_from_slice(&self.commitment);
        out.extend_from_slice(&self.accepted_at_ms.to_be_bytes());
        Ok(out)
    }

    /// Decodes leaf data.
    ///
    /// # Errors
    /// [`EntryError::Malformed`] saying what is wrong.
    pub fn from_leaf_data(data: &[u8]) -> Result<Self, EntryError> {
        let bad = |why: &str| EntryError::Malformed(why.to_owned());
        let rest = data
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("does not start with LBE1"))?;
        let (&kind, mut rest) = rest
            .split_first()
            .ok_or_else(|| bad("truncated before the kind"))?;
        let kind = match kind {
            1 => EntryKind::Event,
            2 => EntryKind::Erasure,
            other => return Err(bad(&format!("unknown kind {other}"))),
        };
        let mut strings = Vec::with_capacity(6);
        for name in [
            "event_id",
            "event_type",
            "channel",
            "connector",
            "source_position",
            "mapping_version",
        ] {
            let (len, tail) = rest
                .split_first_chunk::<2>()
                .ok_or_else(|| bad(&format!("truncated before {name}")))?;
            let len = usize::from(u16::from_be_bytes(*len));
            if tail.len() < len {
                return Err(bad(&format!("{name} runs past the end")));
            }
            let (value, tail) = tail.split_at(len);
            strings.push(
                String::from_utf8(value.to_vec())
                    .map_err(|_| bad(&format!("{name} is not UTF-8")))?,
            );
            rest = tail;
        }
        let (commitment, rest) = rest
            .split_first_chunk::<32>()
            .ok_or_else(|| bad("truncated before the commitment"))?;
        let (time, rest) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| bad("truncated before the acceptance time"))?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes"));
        }
        let mut s = strings.into_iter();
        let mut next = || s.next().unwrap_or_default();
        let entry = Self {
            kind,
            event_id: next(),
            event_type: next(),
            channel: next(),
            connector: next(),
            source_position: next(),
            mapping_version: next(),
            commitment: *commitment,
            accepted_at_ms: i64::from_be_bytes(*time),
        };
        entry.validate().map_err(|mut e| e.remove(0))?;
        Ok(entry)
    }
}
