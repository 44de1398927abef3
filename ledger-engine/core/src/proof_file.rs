//! Offline proof files, `c2sp.org/tlog-proof@v1`, and their verification against a policy of
//! trusted keys.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64>            (optional)
//! index <leaf index>
//! <base64 inclusion proof hash, leaf's sibling first>   (zero or more lines)
//!
//! <the checkpoint, a signed note, verbatim>
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::checkpoint::Checkpoint;
use crate::hash::{Hash, leaf_hash};
use crate::note::{KeyType, Note, NoteError, VerifierKey};
use crate::tree::{ProofError, verify_inclusion};

/// First line of every proof file.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A parsed proof file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofFile {
    /// Opaque, unauthenticated extra data.
    pub extra: Option<Vec<u8>>,
    /// Leaf index.
    pub index: u64,
    /// Inclusion proof.
    pub proof: Vec<Hash>,
    /// The signed checkpoint.
    pub checkpoint: Note,
}

/// Why a proof file is not accepted. Each variant is a verdict an auditor can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The file, its checkpoint or the trusted keys are not in the expected format.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The checkpoint carries no signature by a trusted log key.
    #[error("unknown key: the checkpoint is not signed by any trusted log key (signed by {0})")]
    UnknownKey(String),
    /// A signature by a trusted key does not verify.
    #[error("bad signature by {0}")]
    BadSignature(String),
    /// Fewer cosigners than the policy needs signed the checkpoint.
    #[error("too few cosignatures: {got} of the {need} required ({policy})")]
    TooFewCosignatures {
        /// Valid cosignatures by distinct trusted cosigners.
        got: usize,
        /// Needed by the policy.
        need: usize,
        /// The policy as written.
        policy: String,
    },
    /// The checkpoint's origin is not the expected log.
    #[error("the checkpoint is from log `{got}`, expected `{expected}`")]
    WrongOrigin {
        /// Origin in the checkpoint.
        got: String,
        /// Origin expected.
        expected: String,
    },
    /// The inclusion proof does not lead from the leaf to the checkpoint's root.
    #[error("proof does not match root: {0}")]
    ProofMismatch(ProofError),
}

impl From<NoteError> for VerifyError {
    fn from(e: NoteError) -> Self {
        match e {
            NoteError::BadSignature { name, key_id } => {
                Self::BadSignature(format!("{name}+{key_id:08x}"))
            }
            NoteError::NoTrustedSignature(by) => Self::UnknownKey(by),
            NoteError::Malformed(m) | NoteError::MalformedKey(m) => Self::Malformed(m),
        }
    }
}

impl ProofFile {
    /// Parses a proof file.
    ///
    /// # Errors
    /// [`VerifyError::Malformed`] naming the line.
    pub fn parse(input: &str) -> Result<Self, VerifyError> {
        let bad = |why: String| VerifyError::Malformed(format!("proof file: {why}"));
        let (head, note_text) = input
            .split_once("\n\n")
            .ok_or_else(|| bad("no blank line before the checkpoint".into()))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(bad(format!("the first line must be `{HEADER}`")));
        }
        let mut line = lines.next().ok_or_else(|| bad("no index line".into()))?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            extra = Some(
                STANDARD
                    .decode(b64)
                    .map_err(|_| bad("the extra data is not base64".into()))?,
            );
            line = lines.next().ok_or_else(|| bad("no index line".into()))?;
        }
        let index_text = line
            .strip_prefix("index ")
            .ok_or_else(|| bad("expected `index <n>`".into()))?;
        let canonical = !index_text.is_empty()
            && index_text.bytes().all(|b| b.is_ascii_digit())
            && (index_text == "0" || !index_text.starts_with('0'));
        if !canonical {
            return Err(bad(
                "the index must be a decimal number without leading zeros".into(),
            ));
        }
        let index = index_text
            .parse::<u64>()
            .map_err(|_| bad("the index is too large".into()))?;
        let mut proof = Vec::new();
        for (n, l) in lines.enumerate() {
            let h: Hash = STANDARD
                .decode(l)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad(format!("proof line {} is not a base64 SHA-256 hash", n + 1)))?;
            proof.push(h);
            if proof.len() > 64 {
                return Err(bad("more than 64 proof hashes".into()));
            }
        }
        let checkpoint = Note::parse(note_text)?;
        Ok(Self {
            extra,
            index,
            proof,
            checkpoint,
        })
    }

    /// The file's text.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut out = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", STANDARD.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.proof {
            out.push_str(&STANDARD.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint.to_text());
        out
    }
}

/// Which keys an auditor trusts and how many cosignatures they require.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Keys the log signs checkpoints with (type `0x01`); one valid signature by any of them is
    /// required (several allow rotation).
    pub log_keys: Vec<VerifierKey>,
    /// Cosigners (type `0x04`), typically one per member organisation.
    pub cosigners: Vec<VerifierKey>,
    /// How many distinct cosigners must have cosigned.
    pub threshold: usize,
    /// The log's origin, when the auditor wants to pin it.
    pub origin: Option<String>,
}

impl Policy {
    /// Builds a policy from vkeys (one per line; blank lines and `#` comments ignored): type
    /// `0x01` keys are log keys, type `0x04` keys are cosigners. `k_of_n` (e.g. `2-of-3`) sets
    /// the threshold and must name the number of cosigner keys given; without it every cosigner
    /// is required.
    ///
    /// # Errors
    /// A malformed key or policy.
    pub fn from_vkeys(text: &str, k_of_n: Option<&str>) -> Result<Self, VerifyError> {
        let mut log_keys = Vec::new();
        let mut cosigners = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = VerifierKey::parse(line)
                .map_err(|e| VerifyError::Malformed(format!("trusted keys line {}: {e}", n + 1)))?;
            match key.kind() {
                KeyType::Ed25519 => log_keys.push(key),
                KeyType::Cosignature => cosigners.push(key),
            }
        }
        if log_keys.is_empty() {
            return Err(VerifyError::Malformed(
                "the trusted keys hold no log key (type 0x01 vkey)".into(),
            ));
        }
        let threshold = match k_of_n {
            None => cosigners.len(),
            Some(p) => {
                let (k, n) = p
                    .split_once("-of-")
                    .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
                    .ok_or_else(|| {
                        VerifyError::Malformed(format!("policy `{p}` is not `<k>-of-<n>`"))
                    })?;
                if n != cosigners.len() || k > n {
                    return Err(VerifyError::Malformed(format!(
                        "policy `{p}` does not fit the {} cosigner keys given",
                        cosigners.len()
                    )));
                }
                k
            }
        };
        Ok(Self {
            log_keys,
            cosigners,
            threshold,
            origin: None,
        })
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-of-{} cosigners",
            self.threshold,
            self.cosigners.len()
        )
    }
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The checkpoint the entry is included in.
    pub checkpoint: Checkpoint,
    /// Leaf index.
    pub index: u64,
    /// Names of the log keys whose signatures verified.
    pub log_signers: Vec<String>,
    /// Names and timestamps of the cosigners whose cosignatures verified.
    pub cosigners: Vec<(String, u64)>,
}

/// Verifies a proof file offline: the checkpoint's signatures against the policy, then the
/// inclusion of `leaf_data` at the file's index under the checkpoint's root.
///
/// # Errors
/// The [`VerifyError`] that says why the proof is not accepted.
pub fn verify(file: &ProofFile, leaf_data: &[u8], policy: &Policy) -> Result<Verdict, VerifyError> {
    let checkpoint = Checkpoint::parse(&file.checkpoint.text)?;
    if let Some(expected) = &policy.origin
        && &checkpoint.origin != expected
    {
        return Err(VerifyError::WrongOrigin {
            got: checkpoint.origin,
            expected: expected.clone(),
        });
    }
    let mut trusted = policy.log_keys.clone();
    trusted.extend(policy.cosigners.iter().cloned());
    let verified = file.checkpoint.verify(&trusted)?;
    let log_signers: Vec<String> = verified
        .iter()
        .filter(|v| v.key.kind() == KeyType::Ed25519)
        .map(|v| v.key.name().to_owned())
        .collect();
    if log_signers.is_empty() {
        let by: Vec<String> = file
            .checkpoint
            .signatures
            .iter()
            .map(|s| s.name.clone())
            .collect();
        return Err(VerifyError::UnknownKey(by.join(", ")));
    }
    let mut cosigners: Vec<(String, u64)> = Vec::new();
    for v in &verified {
        if let (KeyType::Cosignature, Some(ts)) = (v.key.kind(), v.timestamp)
            && !cosigners.iter().any(|(n, _)| n == v.key.name())
        {
            cosigners.push((v.key.name().to_owned(), ts));
        }
    }
    if cosigners.len() < policy.threshold {
        return Err(VerifyError::TooFewCosignatures {
            got: cosigners.len(),
            need: policy.threshold,
            policy: policy.to_string(),
        });
    }
    verify_inclusion(
        &leaf_hash(leaf_data),
        file.index,
        checkpoint.size,
        &file.proof,
        &checkpoint.root,
    )
    .map_err(VerifyError::ProofMismatch)?;
    Ok(Verdict {
        checkpoint,
        index: file.index,
        log_signers,
        cosigners,
    })
}
