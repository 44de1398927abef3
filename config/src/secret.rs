//! Secrets are written in the configuration as references, never as values.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reference to a secret: `${ENV_VAR}` or `file:/path/to/file`.
///
/// The configuration holds only the reference. The value is read when the component that needs it
/// starts ([`Secret::resolve`]) and is never serialised, logged or printed: `Debug`, `Display` and
/// `Serialize` all show the reference.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

/// Why a secret reference could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The text is neither `${NAME}` nor `file:PATH`.
    #[error(
        "`{0}` is not a secret reference: write `${{ENV_VAR}}` or `file:/path/to/file`, never the secret itself"
    )]
    NotAReference(String),
    /// The environment variable named by the reference is not set.
    #[error("environment variable `{0}` is not set")]
    MissingEnv(String),
    /// The file named by the reference could not be read.
    #[error("cannot read secret file `{path}`: {reason}")]
    File {
        /// Path from the reference.
        path: String,
        /// The I/O error, as text.
        reason: String,
    },
}

/// Where a reference points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource<'a> {
    /// An environment variable.
    Env(&'a str),
    /// A file whose whole content (without the trailing newline) is the secret.
    File(&'a str),
}

impl Secret {
    /// Wraps a reference; use [`Secret::source`] to check it.
    #[must_use]
    pub fn new(reference: impl Into<String>) -> Self {
        Self(reference.into())
    }

    /// The reference as written in the configuration.
    #[must_use]
    pub fn reference(&self) -> &str {
        &self.0
    }

    /// Parses the reference.
    ///
    /// # Errors
    /// [`SecretError::NotAReference`] when the text is not `${NAME}` or `file:PATH`.
    pub fn source(&self) -> Result<SecretSource<'_>, SecretError> {
        parse_reference(&self.0)
    }

    /// Reads the secret value.
    ///
    /// # Errors
    /// When the reference is malformed, the variable is unset or the file unreadable.
    pub fn resolve(&self) -> Result<String, SecretError> {
        match self.source()? {
            SecretSource::Env(name) => {
                std::env::var(name).map_err(|_| SecretError::MissingEnv(name.to_owned()))
            }
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|e| SecretError::File {
                    path: path.to_owned(),
                    reason: e.to_string(),
                }),
        }
    }
}

/// Parses `${NAME}` (NAME: letters, digits, underscore, not starting with a digit) or
/// `file:PATH` (PATH not empty).
pub(crate) fn parse_reference(text: &str) -> Result<SecretSource<'_>, SecretError> {
    if let Some(name) = text.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            return Ok(SecretSource::Env(name));
        }
    } else if let Some(path) = text.strip_prefix("file:")
        && !path.is_empty()
    {
        return Ok(SecretSource::File(path));
    }
    // Never echo what might be the secret itself.
    Err(SecretError::NotAReference(redact(text)))
}

fn redact(text: &str) -> String {
    if text.starts_with("${") || text.starts_with("file:") {
        text.to_owned()
    } else {
        format!("<{} characters>", text.chars().count())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", redact(&self.0))
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "secret-ref",
            "description": "A reference to a secret, `${ENV_VAR}` or `file:/path/to/file`; never the secret itself.",
            "examples": ["${LEDGERBRIDGE_PG_PASSWORD}", "file:/run/secrets/pg-password"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_reference_resolves_and_never_prints_the_value() {
        // SAFETY-free: tests in this module use a variable name no other test touches.
        let name = "LEDGERBRIDGE_TEST_SECRET_ENV_REF";
        let secret = Secret::new(format!("${{{name}}}"));
        assert_eq!(secret.source(), Ok(SecretSource::Env(name)));
        assert_eq!(secret.resolve(), Err(SecretError::MissingEnv(name.into())));
        assert_eq!(format!("{secret:?}"), format!("Secret(${{{name}}})"));
    }

    #[test]
    fn file_reference_trims_the_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let secret = Secret::new(format!("file:{}", path.display()));
        assert_eq!(secret.resolve().unwrap(), "s3cret");
        assert!(!format!("{secret} {secret:?}").contains("s3cret"));
    }

    #[test]
    fn a_literal_secret_is_refused_without_being_echoed() {
        let err = Secret::new("hunter2").source().unwrap_err();
        assert_eq!(err, SecretError::NotAReference("<7 characters>".into()));
        assert!(!err.to_string().contains("hunter2"));
        for bad in ["${}", "${1ABC}", "${A-B}", "file:", "$HOME"] {
            assert!(parse_reference(bad).is_err(), "{bad} accepted");
        }
    }
}
