//! The Avro schema registry of a node: a Confluent-compatible subset, stored in the node's store
//! (SQLite or PostgreSQL through diesel).
//!
//! - A schema gets one id, shared by every subject that registers it; identity is the SHA-256 of
//!   its Avro *parsing canonical form*, so whitespace and attribute order do not matter.
//! - Registering under a subject is idempotent (the same schema returns its existing id) and
//!   checked against the subject's compatibility level (BACKWARD by default): a new version that
//!   readers could not use on old data is refused with the reason.
//! - Error codes are Confluent's ([`RegistryError::code`]), so standard clients understand them.

pub mod framing;

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use diesel::prelude::*;
use ledgerbridge_store::schema::{registry_config, registry_schemas, registry_versions};
use ledgerbridge_store::{AnyConnection, Store, StoreError};

/// Why a registry operation failed; each maps to a Confluent error code.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The schema text is not a valid Avro schema.
    #[error("invalid Avro schema: {0}")]
    InvalidSchema(String),
    /// No such subject.
    #[error("subject `{0}` not found")]
    SubjectNotFound(String),
    /// No such version of the subject.
    #[error("version {version} of subject `{subject}` not found")]
    VersionNotFound {
        /// Subject.
        subject: String,
        /// Version asked for.
        version: String,
    },
    /// No schema with that id.
    #[error("schema {0} not found")]
    SchemaNotFound(i64),
    /// A version that is not a positive number or `latest`.
    #[error("invalid version `{0}`: a positive number or `latest`")]
    InvalidVersion(String),
    /// A compatibility level that does not exist.
    #[error("invalid compatibility level `{0}`")]
    InvalidCompatibility(String),
    /// The schema breaks the subject's compatibility level.
    #[error("schema is incompatible with version {version} of `{subject}` under {level}: {reason}")]
    Incompatible {
        /// Subject.
        subject: String,
        /// The version it conflicts with.
        version: i32,
        /// The level applied.
        level: &'static str,
        /// What breaks.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for RegistryError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Store(StoreError::Query {
            action: "running a registry query",
            source: e,
        })
    }
}

impl RegistryError {
    /// The Confluent error code (`error_code` in responses); its first three digits are the HTTP
    /// status.
    #[must_use]
    pub fn code(&self) -> u32 {
        match self {
            Self::SubjectNotFound(_) => 40401,
            Self::VersionNotFound { .. } => 40402,
            Self::SchemaNotFound(_) => 40403,
            Self::Incompatible { .. } => 409,
            Self::InvalidSchema(_) => 42201,
            Self::InvalidVersion(_) => 42202,
            Self::InvalidCompatibility(_) => 42203,
            Self::Store(_) => 50001,
        }
    }
}

/// Result alias.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// A conflict with a concurrent writer, which trying again resolves.
fn is_write_race(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => true,
        Error::DatabaseError(_, info) => {
            let m = info.message();
            m.contains("database is locked") || m.contains("database table is locked")
        }
        _ => false,
    }
}

/// Compatibility levels (Confluent's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    /// No check.
    None,
    /// The new schema reads data written with the latest version.
    Backward,
    /// … with every version.
    BackwardTransitive,
    /// The latest version reads data written with the new schema.
    Forward,
    /// … every version does.
    ForwardTransitive,
    /// Both directions, latest version.
    Full,
    /// Both directions, every version.
    FullTransitive,
}

impl Compatibility {
    /// Confluent's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Parses Confluent's name.
    ///
    /// # Errors
    /// [`RegistryError::InvalidCompatibility`].
    pub fn parse(name: &str) -> Result<Self> {
        [
            Self::None,
            Self::Backward,
            Self::BackwardTransitive,
            Self::Forward,
            Self::ForwardTransitive,
            Self::Full,
            Self::FullTransitive,
        ]
        .into_iter()
        .find(|c| c.name() == name)
        .ok_or_else(|| RegistryError::InvalidCompatibility(name.to_owned()))
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    /// Whether `new` may follow `old`; the reason when not.
    fn allows(self, old: &Schema, new: &Schema) -> std::result::Result<(), String> {
        let backward = || SchemaCompatibility::can_read(old, new).map_err(|e| e.to_string());
        let forward = || SchemaCompatibility::can_read(new, old).map_err(|e| e.to_string());
        match self {
            Self::None => Ok(()),
            Self::Backward | Self::BackwardTransitive => backward(),
            Self::Forward | Self::ForwardTransitive => forward(),
            Self::Full | Self::FullTransitive => backward().and_then(|()| forward()),
        }
    }
}

/// A registered version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Subject.
    pub subject: String,
    /// Version number, from 1.
    pub version: i32,
    /// Schema id.
    pub id: i64,
    /// Schema text as registered.
    pub schema: String,
}

/// The registry.
#[derive(Debug, Clone)]
pub struct Registry {
    store: Store,
}

fn parse(text: &str) -> Result<Schema> {
    Schema::parse_str(text).map_err(|e| RegistryError::InvalidSchema(e.to_string()))
}

fn fingerprint(schema: &Schema) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, schema.canonical_form().as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `latest` or a positive number.
///
/// # Errors
/// [`RegistryError::InvalidVersion`].
pub fn parse_version(text: &str) -> Result<Option<i32>> {
    if text == "latest" || text == "-1" {
        return Ok(None);
    }
    text.parse::<i32>()
        .ok()
        .filter(|v| *v > 0)
        .map(Some)
        .ok_or_else(|| RegistryError::InvalidVersion(text.to_owned()))
}

impl Registry {
    /// The registry in `store`.
    #[must_use]
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Registers `schema` under `subject`; returns its id. Idempotent.
    ///
    /// # Errors
    /// Invalid schema, incompatible with the subject's versions, or a store failure.
    pub fn register(&self, subject: &str, schema_text: &str) -> Result<i64> {
        let schema = parse(schema_text)?;
        let fp = fingerprint(&schema);
        let level = self.compatibility(Some(subject))?;
        // Two writers may race: on SQLite a transaction that read before writing cannot wait for
        // the other writer (the upgrade fails at once with "database is locked"), and on
        // PostgreSQL both may pick the same next version. Trying again sees the winner's version.
        let mut attempt = 0;
        loop {
            match self.register_once(subject, schema_text, &schema, &fp, level) {
                Err(RegistryError::Store(StoreError::Query { source, .. }))
                    if attempt < 50 && is_write_race(&source) =>
                {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10 * attempt));
                }
                other => return other,
            }
        }
    }

    fn register_once(
        &self,
        subject: &str,
        schema_text: &str,
        schema: &Schema,
        fp: &str,
        level: Compatibility,
    ) -> Result<i64> {
        let mut pooled = self.store.writer()?;
        let conn: &mut AnyConnection = &mut pooled;
        ledgerbridge_store::write_transaction::<_, RegistryError, _>(conn, |c| {
            let versions: Vec<(i32, i64, String, String)> = registry_versions::table
                .inner_join(
                    registry_schemas::table
                        .on(registry_schemas::id.eq(registry_versions::schema_id)),
                )
                .filter(registry_versions::subject.eq(subject))
                .order(registry_versions::version)
                .select((
                    registry_versions::version,
                    registry_schemas::id,
                    registry_schemas::fingerprint,
                    registry_schemas::schema_text,
                ))
                .load(c)?;
            if let Some((_, id, _, _)) = versions.iter().find(|v| v.2 == *fp) {
                return Ok(*id);
            }
            let to_check: Vec<&(i32, i64, String, String)> = if level.transitive() {
                versions.iter().collect()
            } else {
                versions.last().into_iter().collect()
            };
            for (version, _, _, text) in to_check {
                let old = parse(text)?;
                level
                    .allows(&old, schema)
                    .map_err(|reason| RegistryError::Incompatible {
                        subject: subject.to_owned(),
                        version: *version,
                        level: level.name(),
                        reason,
                    })?;
            }
            let existing = registry_schemas::table
                .filter(registry_schemas::fingerprint.eq(fp))
                .select(registry_schemas::id)
                .first::<i64>(c)
                .optional()?;
            let id = match existing {
                Some(id) => id,
                None => diesel::insert_into(registry_schemas::table)
                    .values((
                        registry_schemas::fingerprint.eq(fp),
                        registry_schemas::schema_text.eq(schema_text),
                        registry_schemas::created_at_ms.eq(now_ms()),
                    ))
                    .returning(registry_schemas::id)
                    .get_result::<i64>(c)?,
            };
            let next = versions.last().map_or(1, |v| v.0 + 1);
            diesel::insert_into(registry_versions::table)
                .values((
                    registry_versions::subject.eq(subject),
                    registry_versions::version.eq(next),
                    registry_versions::schema_id.eq(id),
                    registry_versions::created_at_ms.eq(now_ms()),
                ))
                .execute(c)?;
            Ok(id)
        })
    }

    /// The schema with `id`.
    ///
    /// # Errors
    /// [`RegistryError::SchemaNotFound`] or a store failure.
    pub fn schema(&self, id: i64) -> Result<String> {
        let mut conn = self.store.conn()?;
        registry_schemas::table
            .filter(registry_schemas::id.eq(id))
            .select(registry_schemas::schema_text)
            .first::<String>(&mut *conn)
            .optional()?
            .ok_or(RegistryError::SchemaNotFound(id))
    }

    /// Every subject, sorted.
    ///
    /// # Errors
    /// A store failure.
    pub fn subjects(&self) -> Result<Vec<String>> {
        let mut conn = self.store.conn()?;
        Ok(registry_versions::table
            .select(registry_versions::subject)
            .distinct()
            .order(registry_versions::subject)
            .load(&mut *conn)?)
    }

    /// The version numbers of a subject.
    ///
    /// # Errors
    /// [`RegistryError::SubjectNotFound`] or a store failure.
    pub fn versions(&self, subject: &str) -> Result<Vec<i32>> {
        let mut conn = self.store.conn()?;
        let v: Vec<i32> = registry_versions::table
            .filter(registry_versions::subject.eq(subject))
            .order(registry_versions::version)
            .select(registry_versions::version)
            .load(&mut *conn)?;
        if v.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        Ok(v)
    }

    /// A version of a subject (`None`: the latest).
    ///
    /// # Errors
    /// Unknown subject or version, or a store failure.
    pub fn version(&self, subject: &str, version: Option<i32>) -> Result<Version> {
        let versions = self.versions(subject)?;
        let wanted = match version {
            None => versions.last().copied().unwrap_or(1),
            Some(v) if versions.contains(&v) => v,
            Some(v) => {
                return Err(RegistryError::VersionNotFound {
                    subject: subject.to_owned(),
                    version: v.to_string(),
                });
            }
        };
        let mut conn = self.store.conn()?;
        let (id, schema) = registry_versions::table
            .inner_join(
                registry_schemas::table.on(registry_schemas::id.eq(registry_versions::schema_id)),
            )
            .filter(registry_versions::subject.eq(subject))
            .filter(registry_versions::version.eq(wanted))
            .select((registry_schemas::id, registry_schemas::schema_text))
            .first::<(i64, String)>(&mut *conn)?;
        Ok(Version {
            subject: subject.to_owned(),
            version: wanted,
            id,
            schema,
        })
    }

    /// Whether `schema_text` could be registered after `version` of `subject` under its level;
    /// the reasons when not.
    ///
    /// # Errors
    /// Invalid schema, unknown subject or version, or a store failure.
    pub fn check(
        &self,
        subject: &str,
        version: Option<i32>,
        schema_text: &str,
    ) -> Result<Vec<String>> {
        let schema = parse(schema_text)?;
        let old = self.version(subject, version)?;
        let level = self.compatibility(Some(subject))?;
        Ok(level
            .allows(&parse(&old.schema)?, &schema)
            .err()
            .into_iter()
            .collect())
    }

    /// The compatibility level of a subject (`None`: the global one); BACKWARD unless set.
    ///
    /// # Errors
    /// A store failure, or a stored level that is not valid.
    pub fn compatibility(&self, subject: Option<&str>) -> Result<Compatibility> {
        let mut conn = self.store.conn()?;
        for key in [subject.unwrap_or(""), ""] {
            let level = registry_config::table
                .filter(registry_config::subject.eq(key))
                .select(registry_config::compatibility)
                .first::<String>(&mut *conn)
                .optional()?;
            if let Some(level) = level {
                return Compatibility::parse(&level);
            }
        }
        Ok(Compatibility::Backward)
    }

    /// Sets the compatibility level of a subject (`None`: the global one).
    ///
    /// # Errors
    /// A store failure.
    pub fn set_compatibility(&self, subject: Option<&str>, level: Compatibility) -> Result<()> {
        let key = subject.unwrap_or("");
        let mut pooled = self.store.writer()?;
        let conn: &mut AnyConnection = &mut pooled;
        ledgerbridge_store::write_transaction::<_, RegistryError, _>(conn, |c| {
            diesel::delete(registry_config::table.filter(registry_config::subject.eq(key)))
                .execute(c)?;
            diesel::insert_into(registry_config::table)
                .values((
                    registry_config::subject.eq(key),
                    registry_config::compatibility.eq(level.name()),
                ))
                .execute(c)?;
            Ok(())
        })
    }
}
