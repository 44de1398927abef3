//! C2SP signed notes (`c2sp.org/signed-note`) and their Ed25519 keys.
//!
//! A note is text ending in a newline, a blank line, then signature lines
//! `— <key name> base64(key ID || signature)`. Keys are written as *vkeys*
//! (`<name>+<key ID as 8 hex digits>+base64(type || public key)`) for verifiers and as
//! `PRIVATE+KEY+<name>+<key ID>+base64(type || seed)` for signers. Two signature types are
//! supported: `0x01` (Ed25519 over the note text, signed-note §Ed25519) and `0x04` (timestamped
//! Ed25519 cosignatures, `c2sp.org/tlog-cosignature`).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

use crate::hash::sha256;

/// Notes with more signatures than this are refused (the spec asks for at least 16).
pub const MAX_SIGNATURES: usize = 100;

/// Why a note, key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The text breaks the signed-note format; the message says where.
    #[error("malformed note: {0}")]
    Malformed(String),
    /// A key string breaks the vkey/skey format.
    #[error("malformed key: {0}")]
    MalformedKey(String),
    /// A signature by a trusted key did not verify.
    #[error("bad signature by {name} (key ID {key_id:08x})")]
    BadSignature {
        /// Key name.
        name: String,
        /// Key ID.
        key_id: u32,
    },
    /// No signature on the note is by a trusted key.
    #[error("no signature by a trusted key (signed by: {0})")]
    NoTrustedSignature(String),
}

/// A signature type byte of signed-note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// `0x01`: Ed25519 over the note text; what a log signs its checkpoints with.
    Ed25519,
    /// `0x04`: timestamped Ed25519 cosignature (`cosignature/v1`), what cosigners sign with.
    Cosignature,
}

impl KeyType {
    /// The type byte.
    #[must_use]
    pub fn byte(self) -> u8 {
        match self {
            Self::Ed25519 => 0x01,
            Self::Cosignature => 0x04,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0x01 => Some(Self::Ed25519),
            0x04 => Some(Self::Cosignature),
            _ => None,
        }
    }
}

/// `SHA-256(name || 0x0A || type || public key)[:4]` as a big-endian integer (signed-note §Signatures).
#[must_use]
pub fn key_id(name: &str, kind: KeyType, public: &[u8; 32]) -> u32 {
    let mut data = Vec::with_capacity(name.len() + 34);
    data.extend_from_slice(name.as_bytes());
    data.push(b'\n');
    data.push(kind.byte());
    data.extend_from_slice(public);
    let h = sha256(&data);
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

/// Key names are non-empty and contain no Unicode space and no `+`.
fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// A public key a verifier trusts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerifierKey {
    name: String,
    kind: KeyType,
    public: [u8; 32],
    key_id: u32,
}

impl VerifierKey {
    /// A verifier key from its parts; the key ID is computed.
    ///
    /// # Errors
    /// An invalid key name.
    pub fn new(name: &str, kind: KeyType, public: [u8; 32]) -> Result<Self, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::MalformedKey(format!(
                "key name `{name}` must be non-empty, without spaces or `+`"
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            kind,
            key_id: key_id(name, kind, &public),
            public,
        })
    }

    /// Parses a vkey `<name>+<8 hex digits>+base64(type || public key)`.
    ///
    /// # Errors
    /// Wrong shape, unknown type, wrong key length, or a key ID that does not match.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let bad = |why: &str| NoteError::MalformedKey(format!("vkey `{vkey}`: {why}"));
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected <name>+<key ID>+<base64 key>"));
        };
        let id = parse_key_id(id_hex).ok_or_else(|| bad("the key ID must be 8 hex digits"))?;
        let raw = STANDARD
            .decode(key_b64)
            .map_err(|_| bad("the key is not base64"))?;
        let (kind, public) = split_typed_key(&raw).ok_or_else(|| {
            bad("expected a type byte 0x01 (Ed25519) or 0x04 (cosignature) and 32 key bytes")
        })?;
        let key = Self::new(name, kind, public)?;
        if key.key_id != id {
            return Err(bad("the key ID does not match the name and key"));
        }
        Ok(key)
    }

    /// The vkey string.
    #[must_use]
    pub fn to_vkey(&self) -> String {
        let mut raw = vec![self.kind.byte()];
        raw.extend_from_slice(&self.public);
        format!("{}+{:08x}+{}", self.name, self.key_id, STANDARD.encode(raw))
    }

    /// Key name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key ID.
    #[must_use]
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Signature type.
    #[must_use]
    pub fn kind(&self) -> KeyType {
        self.kind
    }

    /// The raw Ed25519 public key.
    #[must_use]
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public
    }

    pub(crate) fn verify_raw(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

fn parse_key_id(hex: &str) -> Option<u32> {
    (hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(hex, 16).ok())
        .flatten()
}

fn split_typed_key(raw: &[u8]) -> Option<(KeyType, [u8; 32])> {
    let (&type_byte, key) = raw.split_first()?;
    Some((KeyType::from_byte(type_byte)?, key.try_into().ok()?))
}

/// A private signing key.
pub struct SignerKey {
    verifier: VerifierKey,
    seed: [u8; 32],
    pair: Ed25519KeyPair,
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerKey")
            .field("verifier", &self.verifier.to_vkey())
            .finish_non_exhaustive()
    }
}

impl SignerKey {
    /// A key from a 32-byte Ed25519 seed.
    ///
    /// # Errors
    /// An invalid key name or seed.
    pub fn from_seed(name: &str, kind: KeyType, seed: [u8; 32]) -> Result<Self, NoteError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| NoteError::MalformedKey("invalid Ed25519 seed".into()))?;
        let public: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| NoteError::MalformedKey("unexpected public key length".into()))?;
        Ok(Self {
            verifier: VerifierKey::new(name, kind, public)?,
            seed,
            pair,
        })
    }

    /// A new random key.
    ///
    /// # Errors
    /// An invalid key name, or the system random source failing.
    pub fn generate(name: &str, kind: KeyType) -> Result<Self, NoteError> {
        use ring::rand::SecureRandom as _;
        let mut seed = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| NoteError::MalformedKey("the system random source failed".into()))?;
        Self::from_seed(name, kind, seed)
    }

    /// Parses `PRIVATE+KEY+<name>+<key ID>+base64(type || seed)`.
    ///
    /// # Errors
    /// Wrong shape or a key ID that does not match.
    pub fn parse(skey: &str) -> Result<Self, NoteError> {
        let bad = |why: &str| NoteError::MalformedKey(format!("signer key: {why}"));
        let rest = skey
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("expected PRIVATE+KEY+<name>+<key ID>+<base64 seed>"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(seed_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected PRIVATE+KEY+<name>+<key ID>+<base64 seed>"));
        };
        let id = parse_key_id(id_hex).ok_or_else(|| bad("the key ID must be 8 hex digits"))?;
        let raw = STANDARD
            .decode(seed_b64)
            .map_err(|_| bad("the seed is not base64"))?;
        let (kind, seed) =
            split_typed_key(&raw).ok_or_else(|| bad("expected a type byte and a 32-byte seed"))?;
        let key = Self::from_seed(name, kind, seed)?;
        if key.verifier.key_id != id {
            return Err(bad("the key ID does not match the name and key"));
        }
        Ok(key)
    }

    /// The `PRIVATE+KEY+…` string. Keep it secret.
    #[must_use]
    pub fn to_skey(&self) -> String {
        let mut raw = vec![self.verifier.kind.byte()];
        raw.extend_from_slice(&self.seed);
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.verifier.name,
            self.verifier.key_id,
            STANDARD.encode(raw)
        )
    }

    /// The matching verifier key.
    #[must_use]
    pub fn verifier(&self) -> &VerifierKey {
        &self.verifier
    }

    pub(crate) fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key ID.
    pub key_id: u32,
    /// Signature bytes after the key ID.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The line as written in the note, without the final newline.
    #[must_use]
    pub fn line(&self) -> String {
        let mut raw = self.key_id.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.signature);
        format!("\u{2014} {} {}", self.name, STANDARD.encode(raw))
    }
}

/// A signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, ending in a newline.
    pub text: String,
    /// Signatures, in order.
    pub signatures: Vec<NoteSignature>,
}

/// A signature that verified against a trusted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The key.
    pub key: VerifierKey,
    /// For cosignatures, the time (seconds since the epoch) the cosigner signed at.
    pub timestamp: Option<u64>,
}

impl Note {
    /// Signs `text` (which must end in a newline) with an Ed25519 (`0x01`) key.
    ///
    /// # Errors
    /// The text is not valid note text, or the key is not an Ed25519 note key.
    pub fn sign(text: &str, key: &SignerKey) -> Result<Self, NoteError> {
        check_text(text)?;
        if key.verifier.kind != KeyType::Ed25519 {
            return Err(NoteError::MalformedKey(
                "a cosignature key (0x04) cannot sign a note directly".into(),
            ));
        }
        Ok(Self {
            text: text.to_owned(),
            signatures: vec![NoteSignature {
                name: key.verifier.name.clone(),
                key_id: key.verifier.key_id,
                signature: key.sign_raw(text.as_bytes()).to_vec(),
            }],
        })
    }

    /// Adds a signature with another Ed25519 key (key rotation: old and new keys side by side).
    ///
    /// # Errors
    /// The key is not an Ed25519 note key.
    pub fn add_signature(&mut self, key: &SignerKey) -> Result<(), NoteError> {
        if key.verifier.kind != KeyType::Ed25519 {
            return Err(NoteError::MalformedKey(
                "expected an Ed25519 (0x01) key".into(),
            ));
        }
        self.signatures.push(NoteSignature {
            name: key.verifier.name.clone(),
            key_id: key.verifier.key_id,
            signature: key.sign_raw(self.text.as_bytes()).to_vec(),
        });
        Ok(())
    }

    /// Parses a signed note.
    ///
    /// # Errors
    /// [`NoteError::Malformed`] saying what is wrong.
    pub fn parse(input: &str) -> Result<Self, NoteError> {
        let bad = |why: String| NoteError::Malformed(why);
        if let Some(c) = input.chars().find(|c| c.is_control() && *c != '\n') {
            return Err(bad(format!(
                "contains the control character U+{:04X}",
                u32::from(c)
            )));
        }
        if !input.ends_with('\n') {
            return Err(bad("does not end with a newline".into()));
        }
        let split = input
            .rfind("\n\n")
            .ok_or_else(|| bad("no blank line between the text and the signatures".into()))?;
        let text = &input[..=split];
        let sig_block = &input[split + 2..];
        if sig_block.is_empty() {
            return Err(bad("no signature lines".into()));
        }
        let mut signatures = Vec::new();
        for (n, line) in sig_block.lines().enumerate() {
            if signatures.len() == MAX_SIGNATURES {
                return Err(bad(format!("more than {MAX_SIGNATURES} signatures")));
            }
            let rest = line.strip_prefix("\u{2014} ").ok_or_else(|| {
                bad(format!(
                    "signature line {} does not start with an em dash and a space",
                    n + 1
                ))
            })?;
            let (name, b64) = rest.split_once(' ').ok_or_else(|| {
                bad(format!(
                    "signature line {} has no space between name and signature",
                    n + 1
                ))
            })?;
            if !valid_key_name(name) {
                return Err(bad(format!(
                    "signature line {}: invalid key name `{name}`",
                    n + 1
                )));
            }
            let raw = STANDARD.decode(b64).map_err(|_| {
                bad(format!(
                    "signature line {}: the signature is not base64",
                    n + 1
                ))
            })?;
            if raw.len() < 5 {
                return Err(bad(format!(
                    "signature line {}: signature too short",
                    n + 1
                )));
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                key_id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
                signature: raw[4..].to_vec(),
            });
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The note as text: text, blank line, signature lines.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut out = self.text.clone();
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.line());
            out.push('\n');
        }
        out
    }

    /// Verifies the signatures by the `trusted` keys: a signature whose name and key ID match no
    /// trusted key is ignored, one that matches must verify (signed-note §Signatures). Returns the
    /// verified signatures.
    ///
    /// # Errors
    /// [`NoteError::BadSignature`] when a trusted key's signature fails,
    /// [`NoteError::NoTrustedSignature`] when none is by a trusted key.
    pub fn verify(&self, trusted: &[VerifierKey]) -> Result<Vec<Verified>, NoteError> {
        let mut verified = Vec::new();
        for sig in &self.signatures {
            let Some(key) = trusted
                .iter()
                .find(|k| k.name == sig.name && k.key_id == sig.key_id)
            else {
                continue;
            };
            let timestamp = match key.kind {
                KeyType::Ed25519 => key
                    .verify_raw(self.text.as_bytes(), &sig.signature)
                    .then_some(None),
                KeyType::Cosignature => {
                    crate::cosignature::verify(key, &self.text, &sig.signature).map(Some)
                }
            };
            match timestamp {
                Some(timestamp) => verified.push(Verified {
                    key: key.clone(),
                    timestamp,
                }),
                None => {
                    return Err(NoteError::BadSignature {
                        name: sig.name.clone(),
                        key_id: sig.key_id,
                    });
                }
            }
        }
        if verified.is_empty() {
            let names: Vec<String> = self
                .signatures
                .iter()
                .map(|s| format!("{}+{:08x}", s.name, s.key_id))
                .collect();
            return Err(NoteError::NoTrustedSignature(names.join(", ")));
        }
        Ok(verified)
    }
}

/// Note text must end in a newline, have no blank line at the end, and no control characters.
pub(crate) fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') || text.ends_with("\n\n") || text == "\n" {
        return Err(NoteError::Malformed(
            "note text must end in exactly one newline".into(),
        ));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed(
            "note text contains a control character".into(),
        ));
    }
    Ok(())
}
