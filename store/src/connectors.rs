//! Connector state in the store: the offset of each stream (a source table, a directory of batch
//! files), and the quarantine of records that could not go on.
//!
//! Durability promise: an offset is written by the connector runtime only after the records before
//! it were acknowledged by the bus as durable, and this method returns after its transaction
//! committed; a process killed at any moment resumes from the last offset written and redelivers
//! at most the records of one batch.

use diesel::prelude::*;

use crate::schema::{connector_offsets, mapping_versions, quarantine, quarantine_actions};
use crate::{Result, Store, now_ms, query_err, write_transaction};

/// A quarantined record: what came in, where from, and why it could not go on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable)]
#[diesel(table_name = quarantine)]
pub struct QuarantinedRecord {
    /// Row id.
    pub id: i64,
    /// The stage that refused it: `connector` (here) or `mapping`.
    pub stage: String,
    /// The connector (or mapping) name.
    pub source: String,
    /// The table or directory it came from.
    pub stream: String,
    /// Where in the source: a primary key, `file:line`, a log position.
    pub position: String,
    /// Why, naming the field or line.
    pub reason: String,
    /// The record as it was read (JSON, or the raw line).
    pub payload: String,
    /// `open`, `redriven` or `discarded`.
    pub status: String,
    /// When it was quarantined, milliseconds since the epoch.
    pub created_at_ms: i64,
    /// Every error (JSON array of `{pointer, message}`; `[]` when only the reason is known).
    pub errors: String,
    /// The mapping and version that refused it (`name@version`), for the mapping stage.
    pub mapping: String,
}

/// A record to quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewQuarantined {
    /// The stage that refused it.
    pub stage: &'static str,
    /// Connector or mapping name.
    pub source: String,
    /// Table or directory.
    pub stream: String,
    /// Where in the source.
    pub position: String,
    /// Why.
    pub reason: String,
    /// The record as read.
    pub payload: String,
    /// Every error, a JSON array (`[]` when the reason says it all).
    pub errors: String,
    /// `name@version` of the mapping that refused it (mapping stage).
    pub mapping: String,
}

/// An action taken on a quarantined record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable)]
pub struct QuarantineAction {
    /// Row id.
    pub id: i64,
    /// The record.
    pub quarantine_id: i64,
    /// `dry-run`, `redrive` or `discard`.
    pub action: String,
    /// Who (token name).
    pub actor: String,
    /// What came of it (JSON).
    pub detail: String,
    /// When, milliseconds since the epoch.
    pub at_ms: i64,
}

/// A deployed version of a mapping file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable)]
pub struct MappingVersion {
    /// Mapping name.
    pub name: String,
    /// Version.
    pub version: i32,
    /// The file's text.
    pub spec: String,
    /// Who deployed it.
    pub deployed_by: String,
    /// When.
    pub deployed_at_ms: i64,
    /// Whether it is the version the worker applies.
    pub active: bool,
}

impl Store {
    /// The stored offset of `connector`'s `stream` (a JSON document only the connector reads).
    ///
    /// # Errors
    /// The query fails.
    pub fn connector_offset(&self, connector: &str, stream: &str) -> Result<Option<String>> {
        use connector_offsets::dsl;
        let mut conn = self.conn()?;
        dsl::connector_offsets
            .filter(dsl::connector.eq(connector).and(dsl::stream.eq(stream)))
            .select(dsl::offset_json)
            .first::<String>(&mut *conn)
            .optional()
            .map_err(query_err("reading a connector offset"))
    }

    /// Every stored offset of `connector`, by stream.
    ///
    /// # Errors
    /// The query fails.
    pub fn connector_offsets(&self, connector: &str) -> Result<Vec<(String, String)>> {
        use connector_offsets::dsl;
        let mut conn = self.conn()?;
        dsl::connector_offsets
            .filter(dsl::connector.eq(connector))
            .order(dsl::stream)
            .select((dsl::stream, dsl::offset_json))
            .load(&mut *conn)
            .map_err(query_err("reading connector offsets"))
    }

    /// Replaces the offset of `connector`'s `stream`, or removes it (`None`: start over).
    ///
    /// # Errors
    /// The query fails.
    pub fn set_connector_offset(
        &self,
        connector: &str,
        stream: &str,
        offset: Option<&str>,
    ) -> Result<()> {
        use connector_offsets::dsl;
        let mut conn = self.writer()?;
        let now = now_ms();
        write_transaction(&mut conn, |c| {
            let row = dsl::connector_offsets
                .filter(dsl::connector.eq(connector).and(dsl::stream.eq(stream)));
            let Some(offset) = offset else {
                diesel::delete(row).execute(c)?;
                return Ok(());
            };
            let updated = diesel::update(row)
                .set((dsl::offset_json.eq(offset), dsl::updated_at_ms.eq(now)))
                .execute(c)?;
            if updated == 0 {
                diesel::insert_into(dsl::connector_offsets)
                    .values((
                        dsl::connector.eq(connector),
                        dsl::stream.eq(stream),
                        dsl::offset_json.eq(offset),
                        dsl::updated_at_ms.eq(now),
                    ))
                    .execute(c)?;
            }
            Ok(())
        })
        .map_err(query_err("writing a connector offset"))
    }

    /// Quarantines records; returns their ids.
    ///
    /// # Errors
    /// The insert fails (the caller must not move on: nothing is dropped silently).
    pub fn quarantine(&self, records: &[NewQuarantined]) -> Result<Vec<i64>> {
        use quarantine::dsl;
        let mut conn = self.writer()?;
        let now = now_ms();
        write_transaction(&mut conn, |c| {
            records
                .iter()
                .map(|r| {
                    diesel::insert_into(dsl::quarantine)
                        .values((
                            dsl::stage.eq(r.stage),
                            dsl::source.eq(&r.source),
                            dsl::stream.eq(&r.stream),
                            dsl::position.eq(&r.position),
                            dsl::reason.eq(&r.reason),
                            dsl::payload.eq(&r.payload),
                            dsl::status.eq("open"),
                            dsl::created_at_ms.eq(now),
                            dsl::errors.eq(&r.errors),
                            dsl::mapping.eq(&r.mapping),
                        ))
                        .returning(dsl::id)
                        .get_result::<i64>(c)
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(query_err("quarantining records"))
    }

    /// Quarantined records of a stage, optionally of one source, newest first, after id `before`.
    ///
    /// # Errors
    /// The query fails.
    pub fn quarantined(
        &self,
        stage: &str,
        source: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<QuarantinedRecord>> {
        use quarantine::dsl;
        let mut conn = self.conn()?;
        let mut query = dsl::quarantine.filter(dsl::stage.eq(stage)).into_boxed();
        if let Some(source) = source {
            query = query.filter(dsl::source.eq(source.to_owned()));
        }
        if let Some(before) = before {
            query = query.filter(dsl::id.lt(before));
        }
        query
            .order(dsl::id.desc())
            .limit(limit)
            .select(QuarantinedRecord::as_select())
            .load::<QuarantinedRecord>(&mut *conn)
            .map_err(query_err("listing quarantined records"))
    }

    /// How many records of a stage (and source) are quarantined and still open.
    ///
    /// # Errors
    /// The query fails.
    pub fn quarantine_open_count(&self, stage: &str, source: Option<&str>) -> Result<i64> {
        use quarantine::dsl;
        let mut conn = self.conn()?;
        let mut query = dsl::quarantine
            .filter(dsl::stage.eq(stage).and(dsl::status.eq("open")))
            .into_boxed();
        if let Some(source) = source {
            query = query.filter(dsl::source.eq(source.to_owned()));
        }
        query
            .count()
            .get_result(&mut *conn)
            .map_err(query_err("counting quarantined records"))
    }
}

impl Store {
    /// One quarantined record.
    ///
    /// # Errors
    /// The query fails.
    pub fn quarantined_record(&self, id: i64) -> Result<Option<QuarantinedRecord>> {
        use quarantine::dsl;
        let mut conn = self.conn()?;
        dsl::quarantine
            .filter(dsl::id.eq(id))
            .select(QuarantinedRecord::as_select())
            .first::<QuarantinedRecord>(&mut *conn)
            .optional()
            .map_err(query_err("reading a quarantined record"))
    }

    /// Records an action on a quarantined record and, when `status` is given, changes its status
    /// in the same transaction (only from `open`: a record is redriven or discarded once).
    /// Returns false when the record is not open any more.
    ///
    /// # Errors
    /// The query fails.
    pub fn quarantine_act(
        &self,
        id: i64,
        action: &str,
        actor: &str,
        detail: &str,
        status: Option<&str>,
    ) -> Result<bool> {
        use quarantine::dsl;
        use quarantine_actions::dsl as a;
        let mut conn = self.writer()?;
        let now = now_ms();
        write_transaction(&mut conn, |c| {
            if let Some(status) = status {
                let changed = diesel::update(
                    dsl::quarantine.filter(dsl::id.eq(id).and(dsl::status.eq("open"))),
                )
                .set(dsl::status.eq(status))
                .execute(c)?;
                if changed == 0 {
                    return Ok(false);
                }
            }
            diesel::insert_into(a::quarantine_actions)
                .values((
                    a::quarantine_id.eq(id),
                    a::action.eq(action),
                    a::actor.eq(actor),
                    a::detail.eq(detail),
                    a::at_ms.eq(now),
                ))
                .execute(c)?;
            Ok(true)
        })
        .map_err(query_err("recording a quarantine action"))
    }

    /// The actions taken on a quarantined record, oldest first.
    ///
    /// # Errors
    /// The query fails.
    pub fn quarantine_actions(&self, id: i64) -> Result<Vec<QuarantineAction>> {
        use quarantine_actions::dsl as a;
        let mut conn = self.conn()?;
        a::quarantine_actions
            .filter(a::quarantine_id.eq(id))
            .order(a::id)
            .select((
                a::id,
                a::quarantine_id,
                a::action,
                a::actor,
                a::detail,
                a::at_ms,
            ))
            .load(&mut *conn)
            .map_err(query_err("reading quarantine actions"))
    }

    /// Stores a deployed mapping version and makes it the active one of its name.
    ///
    /// # Errors
    /// The version exists already with another text, or the query fails.
    pub fn deploy_mapping(&self, name: &str, version: i32, spec: &str, by: &str) -> Result<()> {
        use mapping_versions::dsl;
        let mut conn = self.writer()?;
        let now = now_ms();
        write_transaction(&mut conn, |c| {
            let existing = dsl::mapping_versions
                .filter(dsl::name.eq(name).and(dsl::version.eq(version)))
                .select(dsl::spec)
                .first::<String>(c)
                .optional()?;
            diesel::update(dsl::mapping_versions.filter(dsl::name.eq(name)))
                .set(dsl::active.eq(false))
                .execute(c)?;
            match existing {
                Some(text) if text != spec => Err(diesel::result::Error::RollbackTransaction),
                Some(_) => diesel::update(
                    dsl::mapping_versions.filter(dsl::name.eq(name).and(dsl::version.eq(version))),
                )
                .set(dsl::active.eq(true))
                .execute(c)
                .map(|_| ()),
                None => diesel::insert_into(dsl::mapping_versions)
                    .values((
                        dsl::name.eq(name),
                        dsl::version.eq(version),
                        dsl::spec.eq(spec),
                        dsl::deployed_by.eq(by),
                        dsl::deployed_at_ms.eq(now),
                        dsl::active.eq(true),
                    ))
                    .execute(c)
                    .map(|_| ()),
            }
        })
        .map_err(|e| match e {
            diesel::result::Error::RollbackTransaction => crate::StoreError::Conflict(format!(
                "mapping `{name}` version {version} was deployed with other content: give the change a new version"
            )),
            other => query_err("deploying a mapping")(other),
        })
    }

    /// Deployed mapping versions: every version of `name`, or the active version of every
    /// mapping.
    ///
    /// # Errors
    /// The query fails.
    pub fn mapping_versions(&self, name: Option<&str>) -> Result<Vec<MappingVersion>> {
        use mapping_versions::dsl;
        let mut conn = self.conn()?;
        let query = dsl::mapping_versions.into_boxed();
        let query = match name {
            Some(n) => query.filter(dsl::name.eq(n.to_owned())),
            None => query.filter(dsl::active.eq(true)),
        };
        query
            .order((dsl::name, dsl::version))
            .select((
                dsl::name,
                dsl::version,
                dsl::spec,
                dsl::deployed_by,
                dsl::deployed_at_ms,
                dsl::active,
            ))
            .load(&mut *conn)
            .map_err(query_err("reading mapping versions"))
    }
}

impl Store {
    /// Stores a canonical schema version (idempotent for the same text).
    ///
    /// # Errors
    /// The version exists with other content, or the query fails.
    pub fn add_canonical_schema(
        &self,
        event_type: &str,
        version: i32,
        schema_json: &str,
        by: &str,
    ) -> Result<()> {
        use crate::schema::canonical_schemas::dsl;
        let mut conn = self.writer()?;
        let now = now_ms();
        write_transaction(&mut conn, |c| {
            let existing = dsl::canonical_schemas
                .filter(dsl::event_type.eq(event_type).and(dsl::version.eq(version)))
                .select(dsl::schema_json)
                .first::<String>(c)
                .optional()?;
            match existing {
                Some(text) if text == schema_json => Ok(()),
                Some(_) => Err(diesel::result::Error::RollbackTransaction),
                None => diesel::insert_into(dsl::canonical_schemas)
                    .values((
                        dsl::event_type.eq(event_type),
                        dsl::version.eq(version),
                        dsl::schema_json.eq(schema_json),
                        dsl::deployed_by.eq(by),
                        dsl::deployed_at_ms.eq(now),
                    ))
                    .execute(c)
                    .map(|_| ()),
            }
        })
        .map_err(|e| match e {
            diesel::result::Error::RollbackTransaction => crate::StoreError::Conflict(format!(
                "{event_type} version {version} exists with other content: give the change a new version"
            )),
            other => query_err("storing a canonical schema")(other),
        })
    }

    /// Every stored canonical schema, as JSON text, by event type and version.
    ///
    /// # Errors
    /// The query fails.
    pub fn canonical_schemas(&self) -> Result<Vec<String>> {
        use crate::schema::canonical_schemas::dsl;
        let mut conn = self.conn()?;
        dsl::canonical_schemas
            .order((dsl::event_type, dsl::version))
            .select(dsl::schema_json)
            .load(&mut *conn)
            .map_err(query_err("reading canonical schemas"))
    }
}
