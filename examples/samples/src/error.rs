//! The library's error type.

use std::path::PathBuf;

/// What went wrong while generating or writing sample data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `--target` that is neither a PostgreSQL/MariaDB URL, `sqlite:PATH` nor a directory.
    #[error("invalid target {target:?}: {reason}")]
    Target {
        /// The target as given.
        target: String,
        /// Why it was refused.
        reason: String,
    },
    /// No target given can hold one of the systems a selected domain needs.
    #[error("domain {domain}: no target holds the {system}; {hint}")]
    Routing {
        /// The domain.
        domain: &'static str,
        /// The system without a target.
        system: &'static str,
        /// Which target to add.
        hint: &'static str,
    },
    /// A database statement or connection failed.
    #[error("{target}: {what}: {source}")]
    Backend {
        /// The target (URL without password, or path).
        target: String,
        /// What was being done, with the statement's beginning where there is one.
        what: String,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A manifest record could not be encoded or decoded with the declared layout.
    #[error("courier manifest: {0}")]
    Manifest(String),
    /// Generated rows did not have the shape the writer expects (a bug in a generator).
    #[error("row shape: {0}")]
    Shape(String),
}

impl Error {
    pub(crate) fn backend(
        target: &str,
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Backend {
            target: target.to_owned(),
            what: what.into(),
            source: Box::new(source),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
