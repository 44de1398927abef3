//! The log's signing keys: one file per channel in the keys directory (owner-only), holding the
//! active `PRIVATE+KEY+…` lines; their vkeys are published in `ledger_keys`. Several keys may be
//! active at once, so a key rotates without a flag day: add the new key, let checkpoints carry
//! both signatures while verifiers learn it, then retire the old one. Retired vkeys stay
//! published, so old checkpoints stay verifiable.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ledgerbridge_ledger_core::note::{KeyType, SignerKey};

use crate::{LedgerError, Result};

fn keys_err(what: &str, path: &Path, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Keys(format!("{what} {}: {e}", path.display()))
}

pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| keys_err("cannot create", dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| keys_err("cannot restrict", dir, e))?;
    }
    Ok(())
}

pub(crate) fn path(dir: &Path, channel: &str) -> PathBuf {
    dir.join(format!("{channel}.log.skeys"))
}

/// The active signer keys of a channel.
pub(crate) fn load(dir: &Path, channel: &str) -> Result<Vec<SignerKey>> {
    let path = path(dir, channel);
    let text = std::fs::read_to_string(&path).map_err(|e| keys_err("cannot read", &path, e))?;
    let keys = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(SignerKey::parse)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| keys_err("malformed key in", &path, e))?;
    if keys.is_empty() {
        return Err(keys_err(
            "no active key in",
            &path,
            "add one with key rotation",
        ));
    }
    Ok(keys)
}

/// Writes the active keys (atomically, owner-only).
pub(crate) fn store(dir: &Path, channel: &str, keys: &[SignerKey]) -> Result<()> {
    let path = path(dir, channel);
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let write = || -> std::io::Result<()> {
        let mut f = options.open(&tmp)?;
        for k in keys {
            writeln!(f, "{}", k.to_skey())?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| keys_err("cannot write", &path, e))
}

/// The channel's keys, creating the first one (named after the origin) when there is none.
pub(crate) fn load_or_create(dir: &Path, channel: &str, origin: &str) -> Result<Vec<SignerKey>> {
    if path(dir, channel).exists() {
        return load(dir, channel);
    }
    let key = SignerKey::generate(origin, KeyType::Ed25519)?;
    store(dir, channel, std::slice::from_ref(&key))?;
    Ok(vec![key])
}
