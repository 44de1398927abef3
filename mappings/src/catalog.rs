//! The canonical schemas: JSON Schema draft 2020-12 files `<event_type>.v<N>.json`, each with
//! its `x-ledgerbridge` description (event type, version, business key, ledger channel, data
//! subject). Validators are compiled once, when a schema is added, and shared.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value as J;

/// Why a schema was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A schema file could not be read.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The schema is not usable.
    #[error("schema {name}: {reason}")]
    Invalid {
        /// Which schema (file name or event type).
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// A canonical schema with its compiled validator.
#[derive(Debug)]
pub struct CanonicalSchema {
    /// Event type, e.g. `customs.declaration`.
    pub event_type: String,
    /// Version.
    pub version: u32,
    /// Business key fields (the event id is derived from them).
    pub key: Vec<String>,
    /// Ledger channel its events are anchored in.
    pub channel: String,
    /// The field holding the data subject's pseudonym, if any.
    pub subject: Option<String>,
    /// Properties of `data`.
    pub properties: BTreeSet<String>,
    /// Required properties of `data`.
    pub required: BTreeSet<String>,
    /// The schema document.
    pub json: J,
    validator: jsonschema::Validator,
}

/// One validation error: where in the event (a JSON pointer) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Violation {
    /// JSON pointer into the event, e.g. `/data/declared_value_krw`.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

impl CanonicalSchema {
    /// Reads and compiles a schema document.
    ///
    /// # Errors
    /// Not a 2020-12 object schema, or a missing or inconsistent `x-ledgerbridge` description.
    pub fn new(json: J) -> Result<Self, CatalogError> {
        let name = json
            .pointer("/x-ledgerbridge/event_type")
            .and_then(J::as_str)
            .unwrap_or("(no x-ledgerbridge.event_type)")
            .to_owned();
        let invalid = |reason: String| CatalogError::Invalid {
            name: name.clone(),
            reason,
        };
        let meta = json
            .get("x-ledgerbridge")
            .and_then(J::as_object)
            .ok_or_else(|| invalid("no `x-ledgerbridge` object".into()))?;
        let version = meta
            .get("version")
            .and_then(J::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| invalid("`x-ledgerbridge.version` must be a whole number ≥ 1".into()))?;
        let strings = |key: &str| -> Vec<String> {
            meta.get(key)
                .and_then(J::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let key = strings("key");
        if key.is_empty() {
            return Err(invalid(
                "`x-ledgerbridge.key` must list the business key fields".into(),
            ));
        }
        let channel = meta
            .get("channel")
            .and_then(J::as_str)
            .ok_or_else(|| invalid("`x-ledgerbridge.channel` is missing".into()))?
            .to_owned();
        let subject = meta.get("subject").and_then(J::as_str).map(str::to_owned);
        let properties: BTreeSet<String> = json
            .get("properties")
            .and_then(J::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let required: BTreeSet<String> = json
            .get("required")
            .and_then(J::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for k in key.iter().chain(&subject) {
            if !required.contains(k) {
                return Err(invalid(format!(
                    "`{k}` (business key or subject) must be a required property"
                )));
            }
        }
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&json)
            .map_err(|e| invalid(format!("not a valid JSON Schema 2020-12: {e}")))?;
        Ok(Self {
            event_type: name,
            version,
            key,
            channel,
            subject,
            properties,
            required,
            json,
            validator,
        })
    }

    /// Every way `data` breaks the schema (empty when valid), pointers prefixed with `/data`.
    #[must_use]
    pub fn violations(&self, data: &J) -> Vec<Violation> {
        if self.validator.is_valid(data) {
            return Vec::new();
        }
        self.validator
            .iter_errors(data)
            .map(|e| Violation {
                pointer: format!("/data{}", e.instance_path()),
                message: e.to_string(),
            })
            .collect()
    }
}

/// Every canonical schema known to a node, by event type and version.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    schemas: BTreeMap<String, BTreeMap<u32, Arc<CanonicalSchema>>>,
}

impl Catalog {
    /// The schemas shipped with ledgerbridge (`mappings/schemas/`).
    ///
    /// # Errors
    /// A shipped schema does not compile (a bug caught by the tests).
    pub fn builtin() -> Result<Self, CatalogError> {
        let mut c = Self::default();
        for (file, text) in crate::BUILTIN_SCHEMAS {
            let json: J = serde_json::from_str(text).map_err(|e| CatalogError::Invalid {
                name: (*file).to_owned(),
                reason: e.to_string(),
            })?;
            c.add(json)?;
        }
        Ok(c)
    }

    /// Reads every `*.json` schema of a directory.
    ///
    /// # Errors
    /// A file that cannot be read or is not a usable schema.
    pub fn from_dir(dir: &Path) -> Result<Self, CatalogError> {
        let io = |path: &Path, e: std::io::Error| CatalogError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        let mut c = Self::default();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
            let json: J = serde_json::from_str(&text).map_err(|e| CatalogError::Invalid {
                name: path.display().to_string(),
                reason: e.to_string(),
            })?;
            c.add(json)?;
        }
        Ok(c)
    }

    /// Adds a schema; returns it.
    ///
    /// # Errors
    /// Not usable, or a different schema already has that event type and version.
    pub fn add(&mut self, json: J) -> Result<Arc<CanonicalSchema>, CatalogError> {
        let schema = Arc::new(CanonicalSchema::new(json)?);
        let versions = self.schemas.entry(schema.event_type.clone()).or_default();
        if let Some(existing) = versions.get(&schema.version) {
            if existing.json == schema.json {
                return Ok(Arc::clone(existing));
            }
            return Err(CatalogError::Invalid {
                name: schema.event_type.clone(),
                reason: format!(
                    "version {} exists with different content: give the change a new version",
                    schema.version
                ),
            });
        }
        versions.insert(schema.version, Arc::clone(&schema));
        Ok(schema)
    }

    /// A schema by event type and version (`None`: the latest).
    #[must_use]
    pub fn get(&self, event_type: &str, version: Option<u32>) -> Option<Arc<CanonicalSchema>> {
        let versions = self.schemas.get(event_type)?;
        match version {
            Some(v) => versions.get(&v).cloned(),
            None => versions.values().next_back().cloned(),
        }
    }

    /// Every schema, by event type then version.
    pub fn all(&self) -> impl Iterator<Item = &Arc<CanonicalSchema>> {
        self.schemas.values().flat_map(BTreeMap::values)
    }

    /// Known event types.
    #[must_use]
    pub fn event_types(&self) -> Vec<String> {
        self.schemas.keys().cloned().collect()
    }
}
