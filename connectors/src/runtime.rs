//! Runs connectors: one task each, polling on an interval or a cron schedule, publishing chunks
//! durably before storing their offsets, and answering pause, resume, rewind, status, connection
//! tests and discovery.
//!
//! The contract of a connector task, for every source type:
//! - a chunk is acknowledged (its offset written to the store) only after the bus returned from
//!   publishing it, so `kill -9` at any point loses nothing and repeats at most one chunk;
//! - a row that cannot be encoded goes to the quarantine (store and `<prefix>quarantine` topic)
//!   with its reason, and the rest flows on;
//! - a failing source is retried with a growing delay (1 s to 60 s), its error shown on the
//!   status; an incompatible schema change stops the connector until it is resumed;
//! - pausing or rewinding interrupts the pass at the next chunk boundary.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ledgerbridge_bus::{Bus, Record};
use ledgerbridge_config::connectors::ConnectorConfig;
use ledgerbridge_store::{NewQuarantined, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::avro::{Provenance, RawSchema, key_text};
use crate::registry::{RegisterError, SchemaRegistry};
use crate::{Batch, Sink, SinkError, Source, SourceError, TableInfo, TableSchema, build_source};

/// What connectors need from the node.
#[derive(Debug, Clone)]
pub struct ConnectorContext {
    /// The bus raw records go to.
    pub bus: Arc<dyn Bus>,
    /// The store keeping offsets and the quarantine.
    pub store: Store,
    /// Where schemas are registered.
    pub registry: SchemaRegistry,
    /// Prefix of every topic name.
    pub topic_prefix: String,
}

impl ConnectorContext {
    /// The raw topic of a connector.
    #[must_use]
    pub fn raw_topic(&self, connector: &str) -> String {
        format!("{}raw.{connector}", self.topic_prefix)
    }

    /// The quarantine topic.
    #[must_use]
    pub fn quarantine_topic(&self) -> String {
        format!("{}quarantine", self.topic_prefix)
    }
}

/// Where a rewind takes a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum RewindTo {
    /// Read the stream again from its start (a new snapshot).
    Beginning,
    /// Continue after this cursor: the values of the cursor columns (the incrementing key, or
    /// the timestamp as RFC 3339 and then the key).
    After {
        /// Cursor values.
        #[schema(value_type = Vec<Object>)]
        cursor: Vec<serde_json::Value>,
    },
    /// Continue with rows changed at or after this time (timestamp-mode tables).
    Timestamp {
        /// RFC 3339 time.
        at: chrono::DateTime<chrono::Utc>,
    },
    /// An offset as the status reports it, verbatim.
    Offset {
        /// The stored offset document.
        #[schema(value_type = Object)]
        offset: serde_json::Value,
    },
}

/// Life of a connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Reading the source.
    Running,
    /// Caught up, waiting for the next poll or schedule.
    Idle,
    /// Paused by an operator (or disabled in the configuration).
    Paused,
    /// The last pass failed; retrying.
    Error,
    /// Stopped on an error that needs an operator (incompatible schema change); resume to retry.
    Stopped,
}

/// The last error of a connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LastError {
    /// What failed, naming the table, column or file.
    pub message: String,
    /// When, milliseconds since the epoch.
    pub at_ms: i64,
}

/// What the API shows of a connector.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConnectorStatus {
    /// Name.
    pub name: String,
    /// Type name.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Topic its records go to.
    pub topic: String,
    /// State.
    pub state: State,
    /// Rows published since the node started.
    pub rows_total: u64,
    /// Rows per second over the last ten seconds.
    pub rows_per_sec: f64,
    /// Records quarantined since the node started.
    pub quarantined_total: u64,
    /// How far behind the source the connector may be: time since the start of the last pass
    /// that reached the end of every stream.
    pub lag_ms: Option<i64>,
    /// Start of the last pass that reached the end of every stream.
    pub caught_up_at_ms: Option<i64>,
    /// The last error, kept after recovery until the next one.
    pub last_error: Option<LastError>,
    /// `every <interval>` or the cron expression.
    pub schedule: String,
}

#[derive(Debug)]
struct Shared {
    status: Mutex<ConnectorStatus>,
    rate: Mutex<VecDeque<(Instant, u64)>>,
    interrupt: AtomicBool,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut ConnectorStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    fn snapshot(&self) -> ConnectorStatus {
        let mut status = self
            .status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        if let Ok(mut rate) = self.rate.lock() {
            let now = Instant::now();
            while rate
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
            {
                rate.pop_front();
            }
            let rows: u64 = rate.iter().map(|(_, n)| n).sum();
            #[allow(clippy::cast_precision_loss)]
            {
                status.rows_per_sec = rows as f64 / RATE_WINDOW.as_secs_f64();
            }
        }
        status.lag_ms = status.caught_up_at_ms.map(|t| now_ms() - t);
        status
    }

    fn error(&self, state: State, message: String) {
        tracing::warn!(connector = %self.snapshot().name, "{message}");
        self.update(|s| {
            s.state = state;
            s.last_error = Some(LastError {
                message,
                at_ms: now_ms(),
            });
        });
    }
}

const RATE_WINDOW: Duration = Duration::from_secs(10);

enum Command {
    Pause,
    Resume,
    RunNow,
    Rewind {
        stream: Option<String>,
        to: RewindTo,
        reply: oneshot::Sender<Result<Vec<String>, String>>,
    },
    Stop,
}

struct Entry {
    config: ConnectorConfig,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Every connector of a node.
pub struct Connectors {
    ctx: ConnectorContext,
    entries: BTreeMap<String, Entry>,
}

impl std::fmt::Debug for Connectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connectors")
            .field("names", &self.entries.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No connector of that name.
    #[error("no connector named `{0}`")]
    Unknown(String),
    /// The request does not fit the connector.
    #[error("{0}")]
    Invalid(String),
    /// The source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
}

impl Connectors {
    /// Starts a task per connector (disabled ones start paused). Must run inside a Tokio runtime.
    #[must_use]
    pub fn start(ctx: ConnectorContext, configs: &[ConnectorConfig]) -> Self {
        let entries = configs
            .iter()
            .map(|config| {
                let shared = Arc::new(Shared {
                    status: Mutex::new(ConnectorStatus {
                        name: config.name.clone(),
                        kind: config.kind.name(),
                        topic: ctx.raw_topic(&config.name),
                        state: if config.enabled {
                            State::Running
                        } else {
                            State::Paused
                        },
                        rows_total: 0,
                        rows_per_sec: 0.0,
                        quarantined_total: 0,
                        lag_ms: None,
                        caught_up_at_ms: None,
                        last_error: None,
                        schedule: config
                            .schedule
                            .clone()
                            .unwrap_or_else(|| format!("every {}", config.poll_interval)),
                    }),
                    rate: Mutex::new(VecDeque::new()),
                    interrupt: AtomicBool::new(false),
                });
                let (tx, rx) = mpsc::unbounded_channel();
                let task = tokio::spawn(run(ctx.clone(), config.clone(), Arc::clone(&shared), rx));
                (
                    config.name.clone(),
                    Entry {
                        config: config.clone(),
                        shared,
                        commands: tx,
                        task: Mutex::new(Some(task)),
                    },
                )
            })
            .collect();
        Self { ctx, entries }
    }

    /// The status of every connector, by name.
    #[must_use]
    pub fn statuses(&self) -> Vec<ConnectorStatus> {
        self.entries.values().map(|e| e.shared.snapshot()).collect()
    }

    /// The status of one connector.
    ///
    /// # Errors
    /// Unknown name.
    pub fn status(&self, name: &str) -> Result<ConnectorStatus, ControlError> {
        Ok(self.entry(name)?.shared.snapshot())
    }

    /// The configuration of one connector (secrets stay references).
    ///
    /// # Errors
    /// Unknown name.
    pub fn config(&self, name: &str) -> Result<&ConnectorConfig, ControlError> {
        Ok(&self.entry(name)?.config)
    }

    fn entry(&self, name: &str) -> Result<&Entry, ControlError> {
        self.entries
            .get(name)
            .ok_or_else(|| ControlError::Unknown(name.to_owned()))
    }

    fn send(&self, name: &str, command: Command) -> Result<(), ControlError> {
        let entry = self.entry(name)?;
        if matches!(
            command,
            Command::Pause | Command::Rewind { .. } | Command::Stop
        ) {
            entry.shared.interrupt.store(true, Ordering::SeqCst);
        }
        entry
            .commands
            .send(command)
            .map_err(|_| ControlError::Invalid(format!("connector `{name}` has stopped")))
    }

    /// Pauses a connector at the next chunk boundary.
    ///
    /// # Errors
    /// Unknown name.
    pub fn pause(&self, name: &str) -> Result<(), ControlError> {
        self.send(name, Command::Pause)
    }

    /// Resumes a paused or stopped connector now.
    ///
    /// # Errors
    /// Unknown name.
    pub fn resume(&self, name: &str) -> Result<(), ControlError> {
        self.send(name, Command::Resume)
    }

    /// Starts a pass now instead of at the next poll.
    ///
    /// # Errors
    /// Unknown name.
    pub fn run_now(&self, name: &str) -> Result<(), ControlError> {
        self.send(name, Command::RunNow)
    }

    /// Moves one stream (or every stream) of a connector to `to`, without deleting the
    /// connector; it keeps its state (a paused connector stays paused). Returns the streams moved.
    ///
    /// # Errors
    /// Unknown name, unknown stream, or a target the source cannot express.
    pub async fn rewind(
        &self,
        name: &str,
        stream: Option<String>,
        to: RewindTo,
    ) -> Result<Vec<String>, ControlError> {
        let (reply, answer) = oneshot::channel();
        self.send(name, Command::Rewind { stream, to, reply })?;
        answer
            .await
            .map_err(|_| ControlError::Invalid(format!("connector `{name}` has stopped")))?
            .map_err(ControlError::Invalid)
    }

    /// Connects to the source with a fresh connection and describes it.
    ///
    /// # Errors
    /// Unknown name, or the source's error (unreachable, credentials).
    pub async fn test(&self, name: &str) -> Result<String, ControlError> {
        let mut source = build_source(&self.entry(name)?.config)?;
        Ok(source.check().await?)
    }

    /// Tables, columns, types and primary keys of the source.
    ///
    /// # Errors
    /// Unknown name, or the source's error.
    pub async fn discover(&self, name: &str) -> Result<Vec<TableInfo>, ControlError> {
        let mut source = build_source(&self.entry(name)?.config)?;
        Ok(source.discover().await?)
    }

    /// The primary keys of every row of one of the connector's streams, read now with a fresh
    /// connection (reconciliation).
    ///
    /// # Errors
    /// Unknown name or stream, or the source's error.
    pub async fn keys(&self, name: &str, stream: &str) -> Result<Vec<String>, ControlError> {
        let mut source = build_source(&self.entry(name)?.config)?;
        if !source.streams().iter().any(|s| s == stream) {
            return Err(ControlError::Invalid(format!(
                "connector `{name}` has no stream `{stream}`"
            )));
        }
        Ok(source.keys(stream).await?)
    }

    /// The stored offsets of a connector, by stream.
    ///
    /// # Errors
    /// Unknown name, or the store failing.
    pub async fn offsets(
        &self,
        name: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, ControlError> {
        self.entry(name)?;
        let store = self.ctx.store.clone();
        let name = name.to_owned();
        let rows = tokio::task::spawn_blocking(move || store.connector_offsets(&name))
            .await
            .map_err(|e| ControlError::Invalid(e.to_string()))?
            .map_err(|e| ControlError::Invalid(e.to_string()))?;
        Ok(rows
            .into_iter()
            .map(|(stream, text)| {
                let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
                (stream, value)
            })
            .collect())
    }

    /// Stops every connector at its next chunk boundary and waits for them.
    pub async fn shutdown(&self) {
        let mut tasks = Vec::new();
        for (name, entry) in &self.entries {
            let task = entry.task.lock().ok().and_then(|mut t| t.take());
            if self.send(name, Command::Stop).is_err()
                && let Some(task) = &task
            {
                task.abort();
            }
            tasks.extend(task);
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

async fn run(
    ctx: ConnectorContext,
    config: ConnectorConfig,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let name = config.name.clone();
    let mut source = match build_source(&config) {
        Ok(s) => s,
        Err(e) => {
            shared.error(State::Stopped, e.to_string());
            // Keep answering commands so the API can report it; nothing can run.
            while let Some(c) = commands.recv().await {
                match c {
                    Command::Stop => return,
                    Command::Rewind { reply, .. } => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                    _ => {}
                }
            }
            return;
        }
    };
    let schedule = config
        .schedule
        .as_deref()
        .and_then(|s| cron::Schedule::from_str(s).ok());
    let mut paused = !config.enabled;
    let mut due = Instant::now();
    let mut failures: u32 = 0;
    let mut schemas = SchemaCache::default();
    loop {
        // Wait for the next pass, answering commands meanwhile.
        let command = if paused {
            commands.recv().await
        } else {
            let wait = due.saturating_duration_since(Instant::now());
            match tokio::time::timeout(wait, commands.recv()).await {
                Ok(c) => c,
                Err(_) => Some(Command::RunNow),
            }
        };
        let Some(command) = command else { return };
        shared.interrupt.store(false, Ordering::SeqCst);
        match command {
            Command::Stop => return,
            Command::Pause => {
                paused = true;
                shared.update(|s| s.state = State::Paused);
                tracing::info!(connector = %name, "paused");
                continue;
            }
            Command::Resume => {
                paused = false;
                failures = 0;
                tracing::info!(connector = %name, "resumed");
            }
            Command::Rewind { stream, to, reply } => {
                let result = match rewind_offsets(&name, &*source, stream, &to) {
                    Ok(offsets) => store_offsets(&ctx, &name, offsets).await,
                    Err(e) => Err(e),
                };
                if let Ok(streams) = &result {
                    tracing::info!(connector = %name, ?streams, ?to, "rewound");
                }
                let _ = reply.send(result);
                if paused {
                    continue;
                }
            }
            Command::RunNow => {
                if paused {
                    continue;
                }
            }
        }
        shared.update(|s| s.state = State::Running);
        let started_ms = now_ms();
        let outcome = pass_all(&ctx, &config, &shared, &mut *source, &mut schemas).await;
        match outcome {
            Ok(()) => {
                failures = 0;
                shared.update(|s| {
                    s.state = State::Idle;
                    s.caught_up_at_ms = Some(started_ms);
                });
            }
            Err(SourceError::Sink(SinkError::Interrupted)) => {}
            Err(SourceError::Sink(SinkError::Incompatible(message))) => {
                paused = true;
                shared.error(State::Stopped, message);
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                shared.error(State::Error, e.to_string());
            }
        }
        due = Instant::now() + next_wait(&config, schedule.as_ref(), failures);
    }
}

fn next_wait(
    config: &ConnectorConfig,
    schedule: Option<&cron::Schedule>,
    failures: u32,
) -> Duration {
    if failures > 0 {
        return Duration::from_secs(1u64 << failures.min(7).saturating_sub(1))
            .min(Duration::from_secs(60));
    }
    match schedule.and_then(|s| s.upcoming(chrono::Utc).next()) {
        Some(at) => (at - chrono::Utc::now()).to_std().unwrap_or_default(),
        None => config.poll_interval.get(),
    }
}

async fn pass_all(
    ctx: &ConnectorContext,
    config: &ConnectorConfig,
    shared: &Arc<Shared>,
    source: &mut dyn Source,
    schemas: &mut SchemaCache,
) -> Result<(), SourceError> {
    for stream in source.streams() {
        let offset = load_offset(&ctx.store, &config.name, &stream)
            .await
            .map_err(|e| SourceError::Sink(SinkError::Failed(e)))?;
        let mut sink = RuntimeSink {
            ctx,
            connector: &config.name,
            stream: &stream,
            topic: ctx.raw_topic(&config.name),
            shared,
            schemas,
            offsets: OffsetWriter::start(&ctx.store, &config.name, &stream),
        };
        let batch_size = usize::try_from(config.batch_size).unwrap_or(5000);
        let passed = source.pass(&stream, offset, batch_size, &mut sink).await;
        // Whatever ended the pass, the offset of the last chunk published is stored before the
        // next pass reads it back.
        let stored = sink.offsets.finish().await;
        passed?;
        stored.map_err(|e| SourceError::Sink(SinkError::Failed(e)))?;
    }
    Ok(())
}

/// Stores a stream's offsets beside the pass instead of between its chunks. The store's writer
/// is shared with the ledger, whose appends hold it for up to a few hundred milliseconds: a
/// connector that waited for its offset after every chunk read at that pace (a 100,000-row backlog
/// came out at about 22,000 rows/s while the ledger was busy). Offsets only move forward, so a
/// newer one replaces one not yet written, and at most one write is in flight. A chunk's offset
/// is stored after its records are published, as before; a crash in between re-reads the chunks
/// since the stored offset, whose records the stages downstream take again idempotently.
struct OffsetWriter {
    newest: Option<tokio::sync::watch::Sender<Option<String>>>,
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl OffsetWriter {
    fn start(store: &Store, connector: &str, stream: &str) -> Self {
        let (newest, mut changed) = tokio::sync::watch::channel(None::<String>);
        let (store, connector, stream) = (store.clone(), connector.to_owned(), stream.to_owned());
        let task = tokio::spawn(async move {
            // Returns when the sender is gone and its last value was written.
            while changed.changed().await.is_ok() {
                let Some(offset) = changed.borrow_and_update().clone() else {
                    continue;
                };
                let (store, c, s) = (store.clone(), connector.clone(), stream.clone());
                tokio::task::spawn_blocking(move || {
                    store.set_connector_offset(&c, &s, Some(&offset))
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("storing the offset: {e}"))?;
            }
            Ok(())
        });
        Self {
            newest: Some(newest),
            task: Some(task),
        }
    }

    /// Hands over the offset of a chunk whose records are published; answers with the error of
    /// an earlier write that failed.
    async fn store(&mut self, offset: String) -> Result<(), String> {
        if self
            .task
            .as_ref()
            .is_none_or(tokio::task::JoinHandle::is_finished)
        {
            // The task only ends early on a failed write.
            self.finish().await?;
            return Err("the offset writer stopped".into());
        }
        if let Some(newest) = &self.newest {
            newest.send_replace(Some(offset));
        }
        Ok(())
    }

    /// Waits until the newest offset handed over is stored.
    async fn finish(&mut self) -> Result<(), String> {
        self.newest.take();
        match self.task.take() {
            Some(task) => task.await.map_err(|e| e.to_string())?,
            None => Ok(()),
        }
    }
}

async fn load_offset(
    store: &Store,
    connector: &str,
    stream: &str,
) -> Result<Option<serde_json::Value>, String> {
    let store = store.clone();
    let (c, s) = (connector.to_owned(), stream.to_owned());
    let text = tokio::task::spawn_blocking(move || store.connector_offset(&c, &s))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("reading the offset of `{stream}`: {e}"))?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| format!("stored offset of `{stream}`: {e}")))
        .transpose()
}

fn rewind_offsets(
    name: &str,
    source: &dyn Source,
    stream: Option<String>,
    to: &RewindTo,
) -> Result<Vec<(String, Option<String>)>, String> {
    let streams = source.streams();
    let chosen = match stream {
        Some(s) if streams.contains(&s) => vec![s],
        Some(s) => {
            return Err(format!(
                "connector `{name}` has no stream `{s}` (it has: {})",
                streams.join(", ")
            ));
        }
        None => streams,
    };
    chosen
        .into_iter()
        .map(|s| {
            let offset = source.rewind_offset(&s, to).map_err(|e| e.to_string())?;
            Ok((s, offset.map(|o| o.to_string())))
        })
        .collect()
}

async fn store_offsets(
    ctx: &ConnectorContext,
    name: &str,
    offsets: Vec<(String, Option<String>)>,
) -> Result<Vec<String>, String> {
    let store = ctx.store.clone();
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
        for (s, o) in &offsets {
            store
                .set_connector_offset(&name, s, o.as_deref())
                .map_err(|e| e.to_string())?;
        }
        Ok(offsets.into_iter().map(|(s, _)| s).collect())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Registered schemas by stream shape.
#[derive(Default)]
struct SchemaCache {
    by_shape: HashMap<Arc<TableSchema>, (Arc<RawSchema>, u32)>,
}

struct RuntimeSink<'a> {
    ctx: &'a ConnectorContext,
    connector: &'a str,
    stream: &'a str,
    topic: String,
    shared: &'a Arc<Shared>,
    schemas: &'a mut SchemaCache,
    offsets: OffsetWriter,
}

impl RuntimeSink<'_> {
    async fn schema(
        &mut self,
        table: &Arc<TableSchema>,
    ) -> Result<(Arc<RawSchema>, u32), SinkError> {
        if let Some(found) = self.schemas.by_shape.get(table) {
            return Ok(found.clone());
        }
        let raw = RawSchema::derive(self.connector, table).map_err(SinkError::Failed)?;
        let subject = format!("{}-{}", self.topic, raw.full_name);
        let id = self
            .ctx
            .registry
            .register(&subject, &raw.text)
            .await
            .map_err(|e| match e {
                RegisterError::Incompatible(m) => SinkError::Incompatible(format!(
                    "table `{}` changed in a way consumers cannot read ({m}); the connector stopped without writing: restore the column or register a compatible schema, then resume",
                    table.stream
                )),
                RegisterError::Unavailable(m) => SinkError::Failed(m),
            })?;
        tracing::info!(connector = %self.connector, stream = %table.stream, subject, id, "schema registered");
        let found = (Arc::new(raw), id);
        self.schemas
            .by_shape
            .insert(Arc::clone(table), found.clone());
        Ok(found)
    }
}

#[async_trait]
impl Sink for RuntimeSink<'_> {
    async fn emit(&mut self, batch: Batch) -> Result<(), SinkError> {
        if self.shared.interrupt.load(Ordering::SeqCst) {
            return Err(SinkError::Interrupted);
        }
        let extracted_at_ms = now_ms();
        let began = Instant::now();
        let mut records = Vec::with_capacity(batch.rows.len());
        let mut rejects = batch.rejects;
        // Offset-only batches (a pass's end, a file moved) register nothing.
        if !batch.rows.is_empty() {
            let (raw, id) = self.schema(&batch.schema).await?;
            for row in &batch.rows {
                let key = key_text(&batch.schema, row);
                let provenance = Provenance {
                    connector: self.connector,
                    table: &batch.schema.stream,
                    key: &key,
                    extracted_at_ms,
                };
                let mut value = Vec::with_capacity(64);
                match raw.encode(id, &provenance, row, &mut value) {
                    Ok(()) => records.push(Record {
                        key: Some(key.into_bytes()),
                        value,
                        headers: Vec::new(),
                        timestamp_ms: extracted_at_ms,
                    }),
                    Err(e) => rejects.push(crate::Reject {
                        position: row.position.clone(),
                        reason: format!("cannot encode the row as Avro: {e}"),
                        payload: serde_json::Value::Array(
                            row.values.iter().map(crate::Value::to_json).collect(),
                        )
                        .to_string(),
                    }),
                }
            }
        }
        let published = records.len() as u64;
        let encoded = began.elapsed();
        if !records.is_empty() {
            self.ctx
                .bus
                .publish(&self.topic, records)
                .await
                .map_err(|e| SinkError::Failed(format!("publishing to {}: {e}", self.topic)))?;
        }
        let quarantined = rejects.len() as u64;
        if let Some(first) = rejects.first() {
            // Shown on the status (the state stays): a source with bad records needs a look.
            let message = format!(
                "{quarantined} record(s) of `{}` quarantined; first at {}: {}",
                self.stream, first.position, first.reason
            );
            self.quarantine(rejects).await?;
            self.shared.update(|s| {
                s.last_error = Some(LastError {
                    message,
                    at_ms: now_ms(),
                });
            });
        }
        let durable = began.elapsed();
        self.offsets
            .store(batch.offset.to_string())
            .await
            .map_err(SinkError::Failed)?;
        tracing::debug!(
            connector = self.connector,
            stream = self.stream,
            rows = published,
            encode_ms = encoded.as_millis(),
            publish_ms = durable.saturating_sub(encoded).as_millis(),
            "emitted a chunk"
        );
        self.shared.update(|s| {
            s.rows_total += published;
            s.quarantined_total += quarantined;
        });
        if let Ok(mut rate) = self.shared.rate.lock() {
            rate.push_back((Instant::now(), published));
        }
        Ok(())
    }
}

impl RuntimeSink<'_> {
    async fn quarantine(&self, rejects: Vec<crate::Reject>) -> Result<(), SinkError> {
        for r in &rejects {
            tracing::warn!(connector = %self.connector, stream = %self.stream, position = %r.position, "quarantined: {}", r.reason);
        }
        let rows: Vec<NewQuarantined> = rejects
            .into_iter()
            .map(|r| NewQuarantined {
                stage: "connector",
                source: self.connector.to_owned(),
                stream: self.stream.to_owned(),
                position: r.position,
                reason: r.reason,
                payload: r.payload,
                errors: "[]".to_owned(),
                mapping: String::new(),
            })
            .collect();
        let records = rows
            .iter()
            .map(|q| {
                let body = serde_json::json!({
                    "stage": q.stage, "source": q.source, "stream": q.stream,
                    "position": q.position, "reason": q.reason, "payload": q.payload,
                });
                Record::new(
                    Some(q.source.clone().into_bytes()),
                    body.to_string().into_bytes(),
                )
                .with_header("type", "quarantine")
            })
            .collect();
        let topic = self.ctx.quarantine_topic();
        self.ctx
            .bus
            .publish(&topic, records)
            .await
            .map_err(|e| SinkError::Failed(format!("publishing to {topic}: {e}")))?;
        let store = self.ctx.store.clone();
        tokio::task::spawn_blocking(move || store.quarantine(&rows))
            .await
            .map_err(|e| SinkError::Failed(e.to_string()))?
            .map_err(|e| SinkError::Failed(format!("quarantining: {e}")))?;
        Ok(())
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
