//! The batch-file source: CSV or fixed-width files dropped into a directory.
//!
//! # Contract
//!
//! - **One stream per connector**, named by the directory exactly as configured (`files.dir`).
//!   Every file is read from its first line to its last, in file-name order (then modification
//!   time), `batch_size` records at a time; memory stays flat whatever the file size (lines are
//!   read and decoded one at a time, never the whole file).
//! - **Exactly once per file.** After the batch holding a file's last record has been taken by the
//!   runtime (published and its offset stored), the file is renamed into `done/` beside the files
//!   still waiting (a same-named file already there gets a numeric suffix: `a.csv`, `a.1.csv`),
//!   and then an offset naming no file is stored. The offset stored with every batch names the
//!   file, the last line handed over, and the file's size and modification time:
//!   `{"file": "orders.csv", "line": 5000, "size": 81234, "mtime": 1732780800000000}`
//!   (`"complete": true` on the last batch of a file). A process killed in the middle of a file
//!   resumes after that line; killed between the last batch and the rename, it only moves the
//!   file. A file found changed (size or modification time) since its stored offset is read
//!   again from its first line, with a warning in the log.
//! - **Failed files.** A file that cannot be read at all (an I/O error, a CSV header that does
//!   not match the declared columns, an undecodable header, a quoted field that never closes) is
//!   renamed into `failed/` with a `<name>.reason` text file beside it saying why, and one
//!   quarantine record for the file as a whole; the source goes on with the next file. Records
//!   published before an error in the middle of a file stay published; the reason says up to
//!   which line.
//! - **Bad records.** A line that does not decode in the configured encoding, is shorter than the
//!   fixed-width layout, has the wrong number of CSV fields, or holds a value that does not
//!   convert to its column's type goes to the quarantine with its position (`file:line`), a
//!   reason naming the line, the column and the problem, and the raw line as payload (its text,
//!   or its bytes in hex when they do not decode); the rest of the file flows on. Empty lines are
//!   skipped (they still count in line numbers).
//! - **Re-processing** a file means moving it back from `done/` (or `failed/`) into the
//!   directory: rewinding to the beginning only restarts the file being read, it never re-reads
//!   `done/`.
//!
//! # Files being written
//!
//! Writers should write `name.part` (or `name.tmp`) and rename it to its final name once
//! complete: names ending in `.part`, `.tmp` or `~`, and names starting with `.`, are never
//! taken. As a second guard, a file is only taken once it has not been modified for a second
//! (its modification time is at least a second old, or its size and modification time did not
//! change over a second of observation); subdirectories (`done/`, `failed/`) are never read.
//!
//! # Encodings
//!
//! `files.encoding` is any WHATWG label understood by `encoding_rs` (`utf-8`, `euc-kr`,
//! `windows-949`, `shift_jis`, `gbk`, `big5`, `windows-1252`, …) plus the usual code-page names
//! `cp949`/`ms949`/`uhc` (the WHATWG `EUC-KR` decoder *is* windows-949 / Unified Hangul Code, so
//! both the KS X 1001 syllables and the CP949 extension, e.g. `똠`, decode), `cp932`, `cp936`,
//! `cp950`. Encodings that are not ASCII-compatible (UTF-16, ISO-2022-*) are refused: lines are
//! split on the byte `\n` (a trailing `\r` is dropped) and fixed-width fields on byte positions.
//! A UTF-8 byte-order mark at the start of a file is dropped. Decoding never substitutes
//! replacement characters into records: an undecodable line is quarantined.
//!
//! # Formats
//!
//! - **CSV** (RFC 4180 quoting, the configured one-byte delimiter), parsed on the decoded text
//!   so that multi-byte characters can never be mistaken for a delimiter or a quote. A quoted
//!   field may span lines (legacy exports put line breaks in address and memo fields); such a
//!   record's position is its first line. With `header = true` the first record names the
//!   columns; when `columns` are declared too they give the types, and the header must list the
//!   same names in the same order (else the file fails). Without declared columns every column
//!   is a string. Fields of typed columns are trimmed before conversion; string fields are kept
//!   as they are.
//! - **Fixed-width**: each declared column is the bytes `start .. start + width` (0-based) of the
//!   line **in the file's encoding**: an EUC-KR Hangul syllable takes two bytes. The bytes are
//!   decoded, then trimmed (spaces, NULs). A line shorter than the end of the last field is
//!   quarantined; bytes after it are ignored; a field boundary that cuts a multi-byte character
//!   in two quarantines the line naming the column. `header` does not apply: every line is read
//!   with the one layout, so header and trailer records of another layout (the courier
//!   manifests' `H` and `T` lines) travel as rows too, told apart downstream by their
//!   record-type field; keep the columns they leave blank nullable.
//! - Values: `long`, `double` and `decimal` accept a sign and thousands separators in the integer
//!   part (`-1,234,500.50`); a `decimal` travels as its exact text without separators
//!   (`-1234500.50`). `boolean`: `true`/`false`, `Y`/`N`, `1`/`0` (any case). `date`:
//!   `YYYYMMDD` or `YYYY-MM-DD`. `timestamp`: RFC 3339, or `YYYY-MM-DD HH:MM:SS[.fff]` read as
//!   UTC. An empty field is null when the column is nullable, else the record is quarantined.
//!
//! Every record carries two more columns, `_file` (the file name) and `_line` (its first line),
//! and its source position `file:line`; its key is the configured `key` columns, else
//! (`_file`, `_line`).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use encoding_rs::{DecoderResult, Encoding};
use ledgerbridge_config::connectors::{
    ConnectorConfig, FileColumn, FileColumnType, FileFormat, FilesSource as FilesSpec,
};
use serde::Deserialize;
use serde_json::{Value as J, json};

use crate::runtime::RewindTo;
use crate::{
    Batch, Column, ColumnType, Reject, Sink, Source, SourceError, SourceRow, TableInfo,
    TableSchema, Value,
};

#[cfg(test)]
mod tests;

/// How long a file must stay unmodified before it is taken.
const SETTLE: Duration = Duration::from_secs(1);
/// The longest line accepted; longer ones fail the file (not a text file of this layout).
const MAX_LINE_BYTES: usize = 8 << 20;
/// The most text one CSV record may span (an unclosed quote would otherwise swallow the file).
const MAX_RECORD_BYTES: usize = 8 << 20;
/// Provenance columns appended to every record.
const FILE_COLUMN: &str = "_file";
const LINE_COLUMN: &str = "_line";
const DONE: &str = "done";
const FAILED: &str = "failed";

/// What every file of the directory looks like; shared with the reading threads.
#[derive(Debug)]
struct Layout {
    /// The stream name (the directory as configured).
    stream: String,
    format: FileFormat,
    encoding: &'static Encoding,
    /// The encoding as configured, for messages.
    label: String,
    delimiter: u8,
    header: bool,
    columns: Vec<FileColumn>,
    key: Vec<String>,
    /// Fixed-width: where the record type is, and the types that are records.
    record_type: Option<(usize, Vec<Vec<u8>>)>,
}

impl Layout {
    /// Whether a fixed-width line is a record (not a header or trailer of another type).
    fn is_record(&self, line: &[u8]) -> bool {
        self.record_type.as_ref().is_none_or(|(start, keep)| {
            keep.iter()
                .any(|k| line.get(*start..*start + k.len()) == Some(k.as_slice()))
        })
    }

    /// The encoding as messages name it: `cp949 (EUC-KR)`.
    fn encoding_name(&self) -> String {
        if self.label.eq_ignore_ascii_case(self.encoding.name()) {
            self.encoding.name().to_owned()
        } else {
            format!("{} ({})", self.label, self.encoding.name())
        }
    }

    /// The schema of records with these column names (`None`: the declared columns).
    fn schema(&self, header: Option<&[String]>) -> Result<Arc<TableSchema>, String> {
        let mut columns: Vec<Column> = match header {
            Some(names) if self.columns.is_empty() => names
                .iter()
                .map(|n| Column {
                    name: n.clone(),
                    kind: ColumnType::String,
                    nullable: true,
                    source_type: "csv".to_owned(),
                })
                .collect(),
            _ => self
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    kind: column_type(c.kind),
                    nullable: c.nullable,
                    source_type: source_type(self.format, c),
                })
                .collect(),
        };
        for (i, c) in columns.iter().enumerate() {
            if c.name == FILE_COLUMN || c.name == LINE_COLUMN {
                return Err(format!(
                    "column `{}` clashes with the provenance column of the same name",
                    c.name
                ));
            }
            if columns[..i].iter().any(|o| o.name == c.name) {
                return Err(format!("column `{}` appears twice", c.name));
            }
        }
        let key = if self.key.is_empty() {
            vec![columns.len(), columns.len() + 1]
        } else {
            self.key
                .iter()
                .map(|k| {
                    columns
                        .iter()
                        .position(|c| &c.name == k)
                        .ok_or_else(|| format!("key column `{k}` is not among the columns"))
                })
                .collect::<Result<_, _>>()?
        };
        columns.push(Column {
            name: FILE_COLUMN.to_owned(),
            kind: ColumnType::String,
            nullable: false,
            source_type: "file name".to_owned(),
        });
        columns.push(Column {
            name: LINE_COLUMN.to_owned(),
            kind: ColumnType::Long,
            nullable: false,
            source_type: "line number".to_owned(),
        });
        Ok(Arc::new(TableSchema {
            stream: self.stream.clone(),
            columns,
            key,
        }))
    }
}

fn column_type(kind: FileColumnType) -> ColumnType {
    match kind {
        FileColumnType::String => ColumnType::String,
        FileColumnType::Long => ColumnType::Long,
        FileColumnType::Double => ColumnType::Double,
        FileColumnType::Boolean => ColumnType::Boolean,
        FileColumnType::Decimal => ColumnType::Decimal,
        FileColumnType::Date => ColumnType::Date,
        FileColumnType::Timestamp => ColumnType::Timestamp,
    }
}

fn type_name(kind: FileColumnType) -> &'static str {
    match kind {
        FileColumnType::String => "string",
        FileColumnType::Long => "long",
        FileColumnType::Double => "double",
        FileColumnType::Boolean => "boolean",
        FileColumnType::Decimal => "decimal",
        FileColumnType::Date => "date",
        FileColumnType::Timestamp => "timestamp",
    }
}

fn source_type(format: FileFormat, c: &FileColumn) -> String {
    match (format, c.start, c.width) {
        (FileFormat::FixedWidth, Some(start), Some(width)) => format!(
            "{} bytes {start}..{}",
            type_name(c.kind),
            u64::from(start) + u64::from(width)
        ),
        _ => type_name(c.kind).to_owned(),
    }
}

/// The encoding of a label: the WHATWG labels, plus the code-page names legacy systems use.
fn encoding_for(label: &str) -> Option<&'static Encoding> {
    let label = label.trim();
    Encoding::for_label(label.as_bytes()).or_else(|| match label.to_ascii_lowercase().as_str() {
        "cp949" | "ms949" | "uhc" | "x-windows-949" | "windows949" => Some(encoding_rs::EUC_KR),
        "cp932" => Some(encoding_rs::SHIFT_JIS),
        "cp936" | "ms936" => Some(encoding_rs::GBK),
        "cp950" | "ms950" => Some(encoding_rs::BIG5),
        _ => None,
    })
}

/// The size and modification time (microseconds since the epoch) of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime: i64,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Self {
        let mtime = meta
            .modified()
            .map_or(0, |t| match t.duration_since(UNIX_EPOCH) {
                Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
                Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
            });
        Self {
            size: meta.len(),
            mtime,
        }
    }
}

/// The stored offset of the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOffset {
    /// The file being read; `None` between files.
    #[serde(default)]
    file: Option<String>,
    /// The last line handed to the runtime.
    #[serde(default)]
    line: u64,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    mtime: i64,
    /// Every record of the file was handed over: only the move to `done/` is left.
    #[serde(default)]
    complete: bool,
    /// The file could not be read, for this reason: only the move to `failed/` is left.
    #[serde(default)]
    failed: Option<String>,
}

impl FileOffset {
    fn idle() -> J {
        json!({ "file": null })
    }

    fn from_json(offset: Option<J>) -> Result<Self, String> {
        let Some(offset) = offset else {
            return Ok(Self::default());
        };
        let parsed: Self = serde_json::from_value(offset.clone()).map_err(|e| {
            format!(
                "offset {offset} is not a batch-file offset ({e}); expected {{\"file\": \"name\", \"line\": N, \"size\": bytes, \"mtime\": micros}} or {{\"file\": null}}"
            )
        })?;
        if let Some(name) = &parsed.file
            && (name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']))
        {
            return Err(format!(
                "offset names `{name}`, which is not a file name in the directory"
            ));
        }
        Ok(parsed)
    }

    fn to_json(&self) -> J {
        let mut o = json!({
            "file": self.file,
            "line": self.line,
            "size": self.size,
            "mtime": self.mtime,
        });
        if self.complete {
            o["complete"] = J::Bool(true);
        }
        if let Some(reason) = &self.failed {
            o["failed"] = J::String(reason.clone());
        }
        o
    }
}

/// A file seen in the directory but not yet settled.
#[derive(Debug, Clone, Copy)]
struct Seen {
    stamp: Stamp,
    since: Instant,
}

/// A directory of batch files.
#[derive(Debug)]
pub struct FilesSource {
    connector: String,
    dir: PathBuf,
    pattern: String,
    layout: Arc<Layout>,
    /// How long a file must stay unmodified before it is taken.
    settle: Duration,
    /// Files seen recently modified, waiting to settle.
    seen: HashMap<String, Seen>,
    /// The schema of the last records handed over, for batches that only move the offset.
    last_schema: Option<Arc<TableSchema>>,
}

impl FilesSource {
    /// Builds the source from a `files` connector's configuration, creating the directory and
    /// its `done/` and `failed/` subdirectories when missing.
    ///
    /// # Errors
    /// [`SourceError::Config`] naming every problem: no `files` table, an unknown or
    /// non-ASCII-compatible encoding, a delimiter that is not one ASCII byte, fixed-width columns
    /// without `start`/`width`, key columns that are not declared, or a directory that cannot be
    /// created.
    pub fn new(config: &ConnectorConfig) -> Result<Self, SourceError> {
        let spec = config.files.as_ref().ok_or_else(|| {
            SourceError::Config(
                "a `files` connector needs a `files` table with `dir` and `format`".to_owned(),
            )
        })?;
        let layout = validate(spec)?;
        for dir in [spec.dir.clone(), spec.dir.join(DONE), spec.dir.join(FAILED)] {
            fs::create_dir_all(&dir).map_err(|e| {
                SourceError::Config(format!("files.dir: cannot create {}: {e}", dir.display()))
            })?;
        }
        Ok(Self {
            connector: config.name.clone(),
            dir: spec.dir.clone(),
            pattern: spec.pattern.clone(),
            layout: Arc::new(layout),
            settle: SETTLE,
            seen: HashMap::new(),
            last_schema: None,
        })
    }

    fn check_stream(&self, stream: &str) -> Result<(), SourceError> {
        if stream == self.layout.stream {
            Ok(())
        } else {
            Err(SourceError::Config(format!(
                "connector `{}` has one stream, `{}`, not `{stream}`",
                self.connector, self.layout.stream
            )))
        }
    }

    /// The schema for batches that carry no rows of a file (offsets, whole-file rejects).
    fn current_schema(&self) -> Result<Arc<TableSchema>, SourceError> {
        match &self.last_schema {
            Some(s) => Ok(Arc::clone(s)),
            None => self.layout.schema(None).map_err(SourceError::Config),
        }
    }

    async fn emit_offset(&self, offset: J, sink: &mut dyn Sink) -> Result<(), SourceError> {
        sink.emit(Batch {
            schema: self.current_schema()?,
            rows: Vec::new(),
            rejects: Vec::new(),
            offset,
        })
        .await?;
        Ok(())
    }

    /// The files waiting in the directory, in the order they are read, after the settle rule.
    async fn waiting(&mut self) -> Result<Vec<Waiting>, SourceError> {
        let dir = self.dir.clone();
        let pattern = self.pattern.clone();
        let listed = blocking(move || list(&dir, &pattern))
            .await?
            .map_err(|e| SourceError::Read(format!("listing {}: {e}", self.dir.display())))?;
        let now = SystemTime::now();
        let now_micros = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        let settle_micros = i64::try_from(self.settle.as_micros()).unwrap_or(i64::MAX);
        let mut ready = Vec::with_capacity(listed.len());
        let mut seen = HashMap::new();
        for file in listed {
            let key = file.display.clone();
            let old_enough = now_micros.saturating_sub(file.stamp.mtime) >= settle_micros;
            let steady = self
                .seen
                .get(&key)
                .is_some_and(|s| s.stamp == file.stamp && s.since.elapsed() >= self.settle);
            if old_enough || steady {
                ready.push(file);
            } else {
                let since = match self.seen.get(&key) {
                    Some(s) if s.stamp == file.stamp => s.since,
                    _ => Instant::now(),
                };
                tracing::debug!(connector = %self.connector, file = %key, "waiting for the file to settle");
                seen.insert(
                    key,
                    Seen {
                        stamp: file.stamp,
                        since,
                    },
                );
            }
        }
        self.seen = seen;
        Ok(ready)
    }

    /// Reads one file from after line `skip` to its end, then moves it to `done/`.
    async fn read_file(
        &mut self,
        file: &Waiting,
        skip: u64,
        batch_size: usize,
        sink: &mut dyn Sink,
    ) -> Result<(), SourceError> {
        let Some(name) = file.name.clone() else {
            let reason =
                "its name is not valid UTF-8: rename it (offsets and positions name files as text)"
                    .to_owned();
            return self.fail(file, reason, true, sink).await;
        };
        let path = self.dir.join(&name);
        let layout = Arc::clone(&self.layout);
        let reader_name = name.clone();
        let opened = blocking(move || FileReader::open(&path, reader_name, layout, skip)).await?;
        let mut reader = match opened {
            Ok(r) => r,
            Err(reason) => return self.fail(file, reason, true, sink).await,
        };
        if skip > 0 {
            tracing::info!(connector = %self.connector, file = %name, line = skip, "resuming the file after the last line handed over");
        } else {
            tracing::info!(connector = %self.connector, file = %name, "reading");
        }
        let (mut rows_total, mut rejects_total) = (0usize, 0usize);
        loop {
            let (back, chunk) = blocking(move || {
                let chunk = reader.next_chunk(batch_size.max(1));
                (reader, chunk)
            })
            .await?;
            reader = back;
            self.last_schema = Some(Arc::clone(&reader.schema));
            let complete = matches!(chunk.end, End::Eof);
            rows_total += chunk.rows.len();
            rejects_total += chunk.rejects.len();
            if !chunk.rows.is_empty() || !chunk.rejects.is_empty() || complete {
                let offset = FileOffset {
                    file: Some(name.clone()),
                    line: chunk.last_line,
                    size: file.stamp.size,
                    mtime: file.stamp.mtime,
                    complete,
                    failed: None,
                };
                sink.emit(Batch {
                    schema: Arc::clone(&reader.schema),
                    rows: chunk.rows,
                    rejects: chunk.rejects,
                    offset: offset.to_json(),
                })
                .await?;
            }
            match chunk.end {
                End::More => {}
                End::Eof => break,
                End::Failed(reason) => {
                    let reason = if chunk.last_line > 0 {
                        format!(
                            "{reason} (records up to line {} were published)",
                            chunk.last_line
                        )
                    } else {
                        reason
                    };
                    return self.fail(file, reason, true, sink).await;
                }
            }
        }
        tracing::info!(connector = %self.connector, file = %name, rows = rows_total, quarantined = rejects_total, "file read to its end");
        self.finish(file, sink).await
    }

    /// Moves a completely read file to `done/`, then stores an offset naming no file.
    async fn finish(&mut self, file: &Waiting, sink: &mut dyn Sink) -> Result<(), SourceError> {
        let dir = self.dir.clone();
        let os_name = file.os_name.clone();
        let moved = blocking(move || move_into(&dir, &os_name, DONE, None)).await?;
        let to = moved.map_err(|e| {
            SourceError::Read(format!(
                "moving {} to {DONE}/: {e}",
                self.dir.join(&file.os_name).display()
            ))
        })?;
        tracing::info!(connector = %self.connector, file = %file.display, to = %to.display(), "file done");
        self.emit_offset(FileOffset::idle(), sink).await
    }

    /// Quarantines a file as a whole (when `announce`: not already done before a restart), moves
    /// it to `failed/` with its reason file, then stores an offset naming no file.
    async fn fail(
        &mut self,
        file: &Waiting,
        reason: String,
        announce: bool,
        sink: &mut dyn Sink,
    ) -> Result<(), SourceError> {
        tracing::warn!(connector = %self.connector, file = %file.display, "file failed: {reason}");
        if announce {
            let reject = Reject {
                position: file.display.clone(),
                reason: format!(
                    "file {}: {reason}; moved to {FAILED}/ with a .reason file",
                    file.display
                ),
                payload: json!({
                    "file": file.display,
                    "size": file.stamp.size,
                    "mtime": file.stamp.mtime,
                })
                .to_string(),
            };
            // The offset keeps the reason so that a restart before the move only moves it.
            let offset = match &file.name {
                Some(name) => FileOffset {
                    file: Some(name.clone()),
                    line: 0,
                    size: file.stamp.size,
                    mtime: file.stamp.mtime,
                    complete: false,
                    failed: Some(reason.clone()),
                }
                .to_json(),
                None => FileOffset::idle(),
            };
            sink.emit(Batch {
                schema: self.current_schema()?,
                rows: Vec::new(),
                rejects: vec![reject],
                offset,
            })
            .await?;
        }
        let text = format!(
            "ledgerbridge connector `{}` could not read {} ({} bytes) from {}:\n{reason}\n\nAfter fixing it, move the file back into {} to read it again.\n",
            self.connector,
            file.display,
            file.stamp.size,
            self.dir.display(),
            self.dir.display()
        );
        let dir = self.dir.clone();
        let os_name = file.os_name.clone();
        let moved = blocking(move || move_into(&dir, &os_name, FAILED, Some(&text))).await?;
        moved.map_err(|e| {
            SourceError::Read(format!(
                "moving {} to {FAILED}/: {e}",
                self.dir.join(&file.os_name).display()
            ))
        })?;
        self.emit_offset(FileOffset::idle(), sink).await
    }

    /// Picks up the file named by the stored offset: resume it, or finish its move.
    async fn resume(
        &mut self,
        offset: &FileOffset,
        batch_size: usize,
        sink: &mut dyn Sink,
    ) -> Result<(), SourceError> {
        let Some(name) = &offset.file else {
            return Ok(());
        };
        let path = self.dir.join(name);
        let meta = blocking(move || fs::metadata(path)).await?;
        let stamp = match meta {
            Ok(m) if m.is_file() => Stamp::of(&m),
            Ok(_) | Err(_) => {
                if !offset.complete && offset.failed.is_none() {
                    tracing::warn!(connector = %self.connector, file = %name, line = offset.line,
                        "the file being read has left the directory; the lines after the last one handed over were not read");
                }
                return Ok(());
            }
        };
        if stamp.size != offset.size || stamp.mtime != offset.mtime {
            tracing::warn!(connector = %self.connector, file = %name, line = offset.line,
                size = stamp.size, stored_size = offset.size,
                "the file changed since it was partly read; reading it again from its first line");
            return Ok(());
        }
        let file = Waiting {
            os_name: OsString::from(name),
            name: Some(name.clone()),
            display: name.clone(),
            stamp,
        };
        if let Some(reason) = &offset.failed {
            self.fail(&file, reason.clone(), false, sink).await
        } else if offset.complete {
            self.finish(&file, sink).await
        } else {
            self.read_file(&file, offset.line, batch_size, sink).await
        }
    }
}

/// Checks the `files` table and turns it into a layout, naming every problem.
fn validate(spec: &FilesSpec) -> Result<Layout, SourceError> {
    let mut problems = Vec::new();
    let encoding = match encoding_for(&spec.encoding) {
        Some(e) if e.is_ascii_compatible() => Some(e),
        Some(e) => {
            problems.push(format!(
                "files.encoding: `{}` ({}) is not ASCII-compatible; lines are split on the byte \\n, so convert the files (e.g. to UTF-8)",
                spec.encoding,
                e.name()
            ));
            None
        }
        None => {
            problems.push(format!(
                "files.encoding: `{}` is not a known encoding label (e.g. utf-8, euc-kr, cp949, shift_jis, windows-1252)",
                spec.encoding
            ));
            None
        }
    };
    let delimiter = match spec.delimiter.as_bytes() {
        [b] if b.is_ascii() && !matches!(b, b'"' | b'\n' | b'\r') => *b,
        _ => {
            problems.push(format!(
                "files.delimiter: `{}` must be one ASCII character other than a quote or a line break",
                spec.delimiter.escape_default()
            ));
            b','
        }
    };
    match spec.format {
        FileFormat::FixedWidth => {
            if spec.columns.is_empty() {
                problems.push("files.columns: a fixed-width layout needs its columns".to_owned());
            }
            for (i, c) in spec.columns.iter().enumerate() {
                if c.start.is_none() || c.width.is_none_or(|w| w == 0) {
                    problems.push(format!(
                        "files.columns[{i}]: fixed-width column `{}` needs `start` and a non-zero `width`",
                        c.name
                    ));
                }
            }
        }
        FileFormat::Csv => {
            if spec.record_type.is_some() {
                problems.push(
                    "files.record_type: only for fixed-width files (a CSV file has one kind of record)"
                        .to_owned(),
                );
            }
            if !spec.header && spec.columns.is_empty() {
                problems.push(
                    "files.columns: a CSV file without a header line (`header = false`) needs its columns"
                        .to_owned(),
                );
            }
            for (i, c) in spec.columns.iter().enumerate() {
                if c.start.is_some() || c.width.is_some() {
                    problems.push(format!(
                        "files.columns[{i}]: `start` and `width` are for fixed-width files; CSV columns are in file order"
                    ));
                }
            }
        }
    }
    for (i, c) in spec.columns.iter().enumerate() {
        if c.name == FILE_COLUMN || c.name == LINE_COLUMN {
            problems.push(format!(
                "files.columns[{i}]: `{}` is reserved for the record's provenance",
                c.name
            ));
        }
        if spec.columns[..i].iter().any(|o| o.name == c.name) {
            problems.push(format!(
                "files.columns[{i}]: `{}` is declared twice",
                c.name
            ));
        }
    }
    if !spec.columns.is_empty() {
        for k in &spec.key {
            if !spec.columns.iter().any(|c| &c.name == k) {
                problems.push(format!(
                    "files.key: `{k}` is not one of the declared columns ({})",
                    spec.columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    match encoding {
        Some(encoding) if problems.is_empty() => Ok(Layout {
            stream: spec.dir.to_string_lossy().into_owned(),
            format: spec.format,
            encoding,
            label: spec.encoding.trim().to_owned(),
            delimiter,
            header: spec.header,
            columns: spec.columns.clone(),
            key: spec.key.clone(),
            record_type: spec.record_type.as_ref().map(|r| {
                (
                    usize::try_from(r.start).unwrap_or(usize::MAX),
                    r.keep
                        .iter()
                        .map(|k| encoding.encode(k).0.into_owned())
                        .collect(),
                )
            }),
        }),
        _ => Err(SourceError::Config(problems.join("; "))),
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SourceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SourceError::Read(format!("file task failed: {e}")))
}

/// A file in the directory that matches the pattern.
#[derive(Debug, Clone)]
struct Waiting {
    os_name: OsString,
    /// The name, when it is valid UTF-8.
    name: Option<String>,
    /// The name for messages.
    display: String,
    stamp: Stamp,
}

/// Whether a name is a writer's temporary or hidden file, never taken.
fn is_temporary(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || name.ends_with('~')
        || lower.ends_with(".part")
        || lower.ends_with(".tmp")
}

/// `*` any run of characters, `?` one character, anything else itself.
fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// The regular files of `dir` matching `pattern`, not temporary, in name then mtime order.
fn list(dir: &Path, pattern: &str) -> io::Result<Vec<Waiting>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let os_name = entry.file_name();
        let display = os_name.to_string_lossy().into_owned();
        if is_temporary(&display) || !wildcard(pattern, &display) {
            continue;
        }
        // Follows symbolic links; a file removed meanwhile is simply not listed.
        let Ok(meta) = fs::metadata(entry.path()) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        out.push(Waiting {
            name: os_name.to_str().map(str::to_owned),
            os_name,
            display,
            stamp: Stamp::of(&meta),
        });
    }
    out.sort_by(|a, b| {
        a.os_name
            .cmp(&b.os_name)
            .then(a.stamp.mtime.cmp(&b.stamp.mtime))
    });
    Ok(out)
}

/// A name in `dir` free for `name` (and its `.reason` file when `reason`): `name`, else
/// `stem.1.ext`, `stem.2.ext`, …
fn free_name(dir: &Path, name: &OsStr, reason: bool) -> PathBuf {
    let free = |candidate: &OsStr| {
        let mut r = candidate.to_os_string();
        r.push(".reason");
        !dir.join(candidate).exists() && (!reason || !dir.join(r).exists())
    };
    if free(name) {
        return dir.join(name);
    }
    let as_path = Path::new(name);
    let stem = as_path.file_stem().unwrap_or(name);
    let ext = as_path.extension();
    let mut n: u64 = 1;
    loop {
        let mut candidate = stem.to_os_string();
        candidate.push(format!(".{n}"));
        if let Some(ext) = ext {
            candidate.push(".");
            candidate.push(ext);
        }
        if free(&candidate) {
            return dir.join(candidate);
        }
        n += 1;
    }
}

/// Renames `dir/name` into `dir/sub/`, writing `reason` beside it first when given, and makes
/// the rename durable. Returns where the file went.
fn move_into(dir: &Path, name: &OsStr, sub: &str, reason: Option<&str>) -> io::Result<PathBuf> {
    let target_dir = dir.join(sub);
    fs::create_dir_all(&target_dir)?;
    let to = free_name(&target_dir, name, reason.is_some());
    if let Some(text) = reason {
        let mut reason_path = to.clone().into_os_string();
        reason_path.push(".reason");
        let mut f = File::create(&reason_path)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(dir.join(name), &to)?;
    sync_dir(&target_dir)?;
    sync_dir(dir)?;
    Ok(to)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Decodes `bytes` without substituting anything; the error is the byte offset of the first
/// undecodable sequence.
fn decode_strict(encoding: &'static Encoding, bytes: &[u8]) -> Result<String, usize> {
    if Encoding::ascii_valid_up_to(bytes) == bytes.len() || encoding == encoding_rs::UTF_8 {
        return std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| e.valid_up_to());
    }
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(
        decoder
            .max_utf8_buffer_length_without_replacement(bytes.len())
            .unwrap_or(bytes.len().saturating_mul(3)),
    );
    let mut read_total = 0;
    loop {
        let (result, read) =
            decoder.decode_to_string_without_replacement(&bytes[read_total..], &mut out, true);
        read_total += read;
        match result {
            DecoderResult::InputEmpty => return Ok(out),
            DecoderResult::Malformed(bad, after) => {
                return Err(read_total.saturating_sub(usize::from(bad) + usize::from(after)));
            }
            DecoderResult::OutputFull => out.reserve(bytes.len().max(16)),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Why a line does not decode, for a reject reason.
fn undecodable(layout: &Layout, bytes: &[u8], at: usize) -> String {
    let shown: Vec<String> = bytes
        .iter()
        .skip(at)
        .take(2)
        .map(|b| format!("0x{b:02X}"))
        .collect();
    format!(
        "bytes not valid {} at byte {at} ({})",
        layout.encoding_name(),
        shown.join(" ")
    )
}

/// Appended to the reason of a record quarantined with its bytes in hex.
const HEX_PAYLOAD: &str = "; the payload is the line's bytes in hex";

/// Physical lines of a file, without their `\n` or `\r\n`.
#[derive(Debug)]
struct Lines {
    input: BufReader<File>,
    /// The number of the last line read (1-based).
    line: u64,
    strip_bom: bool,
}

impl Lines {
    fn next(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<u64>> {
        buf.clear();
        let limit = u64::try_from(MAX_LINE_BYTES).unwrap_or(u64::MAX) + 1;
        let n = (&mut self.input).take(limit).read_until(b'\n', buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        } else if buf.len() > MAX_LINE_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "line {} is longer than {MAX_LINE_BYTES} bytes: not a text file of this layout",
                    self.line
                ),
            ));
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        if self.line == 1 && self.strip_bom && buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
            buf.drain(..3);
        }
        Ok(Some(self.line))
    }
}

/// A line handed to the CSV parser, kept until the record it belongs to is complete.
#[derive(Debug)]
struct FedLine {
    no: u64,
    /// The decoded text (lossy when `bad`).
    text: String,
    /// The raw bytes and the offset of the first undecodable byte, when it does not decode.
    bad: Option<(Vec<u8>, usize)>,
}

/// Decoded lines as a byte stream for the `csv` parser, one `\n` after each, remembering each
/// line until its record is taken.
#[derive(Debug)]
struct Feed {
    lines: Lines,
    encoding: &'static Encoding,
    raw: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    pending: VecDeque<FedLine>,
    pending_bytes: usize,
}

impl Read for Feed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.out.len() {
            let Some(no) = self.lines.next(&mut self.raw)? else {
                return Ok(0);
            };
            if self.pending_bytes > MAX_RECORD_BYTES {
                let first = self.pending.front().map_or(no, |l| l.no);
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the record starting at line {first} runs past line {no} and {MAX_RECORD_BYTES} bytes: a quoted field is probably never closed"
                    ),
                ));
            }
            let line = match decode_strict(self.encoding, &self.raw) {
                Ok(text) => FedLine {
                    no,
                    text,
                    bad: None,
                },
                Err(at) => FedLine {
                    no,
                    text: self
                        .encoding
                        .decode_without_bom_handling(&self.raw)
                        .0
                        .into_owned(),
                    bad: Some((self.raw.clone(), at)),
                },
            };
            self.out.clear();
            self.out.extend_from_slice(line.text.as_bytes());
            self.out.push(b'\n');
            self.pos = 0;
            self.pending_bytes += line.text.len();
            self.pending.push_back(line);
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// One CSV record with the lines it spans.
struct CsvRecord {
    first: u64,
    last: u64,
    fields: Vec<String>,
    lines: Vec<FedLine>,
}

#[derive(Debug)]
enum Parser {
    Fixed {
        lines: Lines,
        buf: Vec<u8>,
    },
    Csv {
        reader: Box<csv::Reader<Feed>>,
        record: csv::StringRecord,
    },
}

/// One record read: a row or a reject, with the last line it spans.
#[derive(Debug)]
enum Item {
    Row(SourceRow),
    Reject(Reject),
}

/// How a chunk ended.
#[derive(Debug)]
enum End {
    /// More records follow.
    More,
    /// The file ended after this chunk.
    Eof,
    /// The file cannot be read further, for this reason.
    Failed(String),
}

/// Records read from a file, at most a batch.
#[derive(Debug)]
struct Chunk {
    rows: Vec<SourceRow>,
    rejects: Vec<Reject>,
    /// The last line the chunk covers.
    last_line: u64,
    end: End,
}

/// Reads one file, record by record, in a blocking thread.
#[derive(Debug)]
struct FileReader {
    name: String,
    layout: Arc<Layout>,
    schema: Arc<TableSchema>,
    parser: Parser,
    /// Records ending at or before this line were handed over before: read, not converted.
    skip: u64,
    /// The last line covered by the records read.
    last_line: u64,
    /// A record read ahead to know whether the file ends.
    ahead: Option<(u64, Item)>,
}

impl FileReader {
    /// Opens a file; for CSV with a header, reads and checks it. The error is why the whole file
    /// cannot be read.
    fn open(path: &Path, name: String, layout: Arc<Layout>, skip: u64) -> Result<Self, String> {
        let file = File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
        let lines = Lines {
            input: BufReader::with_capacity(64 * 1024, file),
            line: 0,
            strip_bom: layout.encoding == encoding_rs::UTF_8,
        };
        let (parser, schema, last_line) = match layout.format {
            FileFormat::FixedWidth => (
                Parser::Fixed {
                    lines,
                    buf: Vec::new(),
                },
                layout.schema(None)?,
                0,
            ),
            FileFormat::Csv => {
                let feed = Feed {
                    lines,
                    encoding: layout.encoding,
                    raw: Vec::new(),
                    out: Vec::new(),
                    pos: 0,
                    pending: VecDeque::new(),
                    pending_bytes: 0,
                };
                let reader = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .delimiter(layout.delimiter)
                    .terminator(csv::Terminator::Any(b'\n'))
                    .from_reader(feed);
                let mut parser = Parser::Csv {
                    reader: Box::new(reader),
                    record: csv::StringRecord::new(),
                };
                let (schema, last) = if layout.header {
                    match next_csv(&mut parser)? {
                        Some(header) => (check_header(&layout, &header)?, header.last),
                        None => (layout.schema(None)?, 0),
                    }
                } else {
                    (layout.schema(None)?, 0)
                };
                (parser, schema, last)
            }
        };
        Ok(Self {
            name,
            layout,
            schema,
            parser,
            skip,
            last_line,
            ahead: None,
        })
    }

    /// Up to `max` records (rows and rejects), and whether the file goes on.
    fn next_chunk(&mut self, max: usize) -> Chunk {
        let mut chunk = Chunk {
            rows: Vec::new(),
            rejects: Vec::new(),
            last_line: self.last_line,
            end: End::More,
        };
        let mut count = 0;
        loop {
            let next = match self.ahead.take() {
                Some(item) => Ok(Some(item)),
                None => self.next_item(),
            };
            let (last, item) = match next {
                Ok(Some(x)) => x,
                Ok(None) => {
                    chunk.last_line = chunk.last_line.max(self.last_line);
                    chunk.end = End::Eof;
                    return chunk;
                }
                Err(reason) => {
                    chunk.end = End::Failed(reason);
                    return chunk;
                }
            };
            if count == max {
                self.ahead = Some((last, item));
                return chunk;
            }
            count += 1;
            chunk.last_line = last;
            match item {
                Item::Row(r) => chunk.rows.push(r),
                Item::Reject(r) => chunk.rejects.push(r),
            }
        }
    }

    /// The next record after the skipped ones, with its last line; `None` at the end.
    fn next_item(&mut self) -> Result<Option<(u64, Item)>, String> {
        loop {
            let read = match &mut self.parser {
                Parser::Fixed { lines, buf } => loop {
                    match lines.next(buf) {
                        Ok(Some(_)) if buf.is_empty() => {}
                        Ok(Some(no)) => break Some((no, no)),
                        Ok(None) => break None,
                        Err(e) => return Err(format!("reading line {}: {e}", lines.line + 1)),
                    }
                },
                Parser::Csv { .. } => match next_csv(&mut self.parser)? {
                    Some(record) => {
                        let (first, last) = (record.first, record.last);
                        if last > self.skip {
                            let item = self.csv_item(record);
                            self.last_line = last;
                            return Ok(Some((last, item)));
                        }
                        Some((first, last))
                    }
                    None => None,
                },
            };
            let Some((first, last)) = read else {
                if let Parser::Fixed { lines, .. } = &self.parser {
                    self.last_line = self.last_line.max(lines.line);
                }
                return Ok(None);
            };
            self.last_line = last;
            if last <= self.skip {
                continue;
            }
            if let Parser::Fixed { buf, .. } = &mut self.parser {
                if !self.layout.is_record(buf) {
                    continue;
                }
                let bytes = std::mem::take(buf);
                let item = self.fixed_item(first, &bytes);
                if let Parser::Fixed { buf, .. } = &mut self.parser {
                    *buf = bytes;
                }
                return Ok(Some((last, item)));
            }
        }
    }

    fn position(&self, line: u64) -> String {
        format!("{}:{line}", self.name)
    }

    fn row(&self, mut values: Vec<Value>, first: u64) -> Item {
        values.push(Value::String(self.name.clone()));
        values.push(Value::Long(i64::try_from(first).unwrap_or(i64::MAX)));
        Item::Row(SourceRow {
            values,
            position: self.position(first),
        })
    }

    fn reject(&self, first: u64, reason: String, payload: String) -> Item {
        Item::Reject(Reject {
            position: self.position(first),
            reason,
            payload,
        })
    }

    /// A fixed-width line to a row, or a reject naming the problem.
    fn fixed_item(&self, no: u64, bytes: &[u8]) -> Item {
        let layout = &self.layout;
        let text = match decode_strict(layout.encoding, bytes) {
            Ok(t) => t,
            Err(at) => {
                return self.reject(
                    no,
                    format!("line {no}: {}{HEX_PAYLOAD}", undecodable(layout, bytes, at)),
                    hex(bytes),
                );
            }
        };
        let spans: Vec<(usize, usize)> = layout
            .columns
            .iter()
            .map(|c| {
                let start = c
                    .start
                    .map_or(0, |s| usize::try_from(s).unwrap_or(usize::MAX));
                let width = c
                    .width
                    .map_or(0, |w| usize::try_from(w).unwrap_or(usize::MAX));
                (start, start.saturating_add(width))
            })
            .collect();
        if let Some((i, (_, end))) = spans
            .iter()
            .enumerate()
            .filter(|(_, (_, end))| *end > bytes.len())
            .max_by_key(|(_, (_, end))| *end)
        {
            return self.reject(
                no,
                format!(
                    "line {no}: {} bytes, shorter than the layout (column `{}` ends at byte {end})",
                    bytes.len(),
                    layout.columns[i].name
                ),
                text,
            );
        }
        let pieces = if Encoding::ascii_valid_up_to(bytes) == bytes.len() {
            // ASCII: any cut is clean.
            spans
                .iter()
                .map(|(s, e)| String::from_utf8_lossy(&bytes[*s..*e]).into_owned())
                .collect()
        } else {
            match cut(layout.encoding, bytes, &spans) {
                Ok(p) => p,
                Err(at) => {
                    let names: Vec<String> = layout
                        .columns
                        .iter()
                        .zip(&spans)
                        .filter(|(_, (s, e))| *s == at || *e == at)
                        .map(|(c, _)| format!("`{}`", c.name))
                        .collect();
                    return self.reject(
                        no,
                        format!(
                            "line {no}, column {}: the layout cuts a multi-byte {} character at byte {at}",
                            names.join(", "),
                            layout.encoding_name()
                        ),
                        text,
                    );
                }
            }
        };
        let mut values = Vec::with_capacity(spans.len() + 2);
        let mut problems = Vec::new();
        for (i, c) in layout.columns.iter().enumerate() {
            let field = pieces[i].trim_matches(|ch: char| ch.is_whitespace() || ch == '\0');
            match convert(Some(c), field) {
                Ok(v) => values.push(v),
                Err(problem) => problems.push(format!("column `{}`: {problem}", c.name)),
            }
        }
        if problems.is_empty() {
            self.row(values, no)
        } else {
            self.reject(no, format!("line {no}, {}", problems.join("; ")), text)
        }
    }

    /// A CSV record to a row, or a reject naming the problem.
    fn csv_item(&self, record: CsvRecord) -> Item {
        let CsvRecord {
            first,
            last,
            fields,
            lines,
        } = record;
        let at = if first == last {
            format!("line {first}")
        } else {
            format!("lines {first}-{last}")
        };
        if let Some(line) = lines.iter().find(|l| l.bad.is_some()) {
            let (bytes, offset) = line
                .bad
                .as_ref()
                .map_or((&[][..], 0), |(b, o)| (&b[..], *o));
            let raw: Vec<u8> = lines
                .iter()
                .map(|l| {
                    l.bad
                        .as_ref()
                        .map_or_else(|| l.text.as_bytes().to_vec(), |(b, _)| b.clone())
                })
                .collect::<Vec<_>>()
                .join(&b'\n');
            let detail = undecodable(&self.layout, bytes, offset);
            let reason = if first == last {
                format!("{at}: {detail}{HEX_PAYLOAD}")
            } else {
                format!(
                    "{at}: line {}: {detail}; the payload is the record's bytes in hex",
                    line.no
                )
            };
            return self.reject(first, reason, hex(&raw));
        }
        let text = || {
            lines
                .iter()
                .map(|l| l.text.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let expected = self.schema.columns.len() - 2;
        if fields.len() != expected {
            let names: Vec<&str> = self.schema.columns[..expected]
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            return self.reject(
                first,
                format!(
                    "{at}: {} fields, expected {expected} ({})",
                    fields.len(),
                    names.join(", ")
                ),
                text(),
            );
        }
        let mut values = Vec::with_capacity(expected + 2);
        let mut problems = Vec::new();
        for (i, field) in fields.iter().enumerate() {
            let spec = self.layout.columns.get(i);
            let value = match spec {
                Some(c) if c.kind != FileColumnType::String => convert(spec, field.trim()),
                _ => convert(spec, field),
            };
            match value {
                Ok(v) => values.push(v),
                Err(problem) => problems.push(format!(
                    "column `{}`: {problem}",
                    self.schema.columns[i].name
                )),
            }
        }
        if problems.is_empty() {
            self.row(values, first)
        } else {
            self.reject(first, format!("{at}, {}", problems.join("; ")), text())
        }
    }
}

/// Cuts `bytes` at every span boundary and decodes each span, checking that no boundary falls
/// inside a character; the error is the offending byte offset.
fn cut(
    encoding: &'static Encoding,
    bytes: &[u8],
    spans: &[(usize, usize)],
) -> Result<Vec<String>, usize> {
    let mut points = BTreeSet::new();
    points.insert(0);
    points.insert(bytes.len());
    for (s, e) in spans {
        points.insert(*s);
        points.insert(*e);
    }
    let points: Vec<usize> = points.into_iter().collect();
    let mut segments = Vec::with_capacity(points.len());
    for pair in points.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        match decode_strict(encoding, &bytes[a..b]) {
            Ok(t) => segments.push((a, b, t)),
            Err(_) => {
                // The cut at `b` is inside a character when the line up to it does not decode.
                return Err(if decode_strict(encoding, &bytes[..b]).is_err() {
                    b
                } else {
                    a
                });
            }
        }
    }
    Ok(spans
        .iter()
        .map(|(s, e)| {
            segments
                .iter()
                .filter(|(a, b, _)| a >= s && b <= e)
                .map(|(_, _, t)| t.as_str())
                .collect()
        })
        .collect())
}

/// The next CSV record with its lines; blank lines before it are dropped.
fn next_csv(parser: &mut Parser) -> Result<Option<CsvRecord>, String> {
    let Parser::Csv { reader, record } = parser else {
        return Ok(None);
    };
    let more = reader.read_record(record).map_err(|e| match e.kind() {
        csv::ErrorKind::Io(io) => format!("reading it: {io}"),
        _ => format!("parsing it as CSV: {e}"),
    })?;
    if !more {
        return Ok(None);
    }
    let start = record.position().map_or(1, csv::Position::line);
    // Every line is fed with its `\n`, which the parser has consumed with the record.
    let last = reader.position().line().saturating_sub(1).max(start);
    let feed = reader.get_mut();
    let mut lines = Vec::new();
    while feed.pending.front().is_some_and(|l| l.no <= last) {
        if let Some(l) = feed.pending.pop_front() {
            feed.pending_bytes = feed.pending_bytes.saturating_sub(l.text.len());
            if !(lines.is_empty() && l.text.is_empty()) {
                lines.push(l);
            }
        }
    }
    let first = lines.first().map_or(start, |l| l.no);
    Ok(Some(CsvRecord {
        first,
        last,
        fields: record.iter().map(str::to_owned).collect(),
        lines,
    }))
}

/// Checks a header record against the layout and gives the file's schema.
fn check_header(layout: &Layout, header: &CsvRecord) -> Result<Arc<TableSchema>, String> {
    if let Some(line) = header.lines.iter().find(|l| l.bad.is_some()) {
        let (bytes, at) = line
            .bad
            .as_ref()
            .map_or((&[][..], 0), |(b, o)| (&b[..], *o));
        return Err(format!(
            "the header (line {}) does not decode: {}",
            line.no,
            undecodable(layout, bytes, at)
        ));
    }
    let names: Vec<String> = header.fields.iter().map(|f| f.trim().to_owned()).collect();
    if !layout.columns.is_empty() {
        let declared: Vec<&str> = layout.columns.iter().map(|c| c.name.as_str()).collect();
        if names
            .iter()
            .map(String::as_str)
            .ne(declared.iter().copied())
        {
            return Err(format!(
                "the header (line {}) names the columns {} but the configuration declares {}",
                header.first,
                names.join(", "),
                declared.join(", ")
            ));
        }
    }
    layout
        .schema(Some(&names))
        .map_err(|e| format!("the header (line {}): {e}", header.first))
}

/// A field's text to its column's value (`None`: an undeclared CSV column, a string).
fn convert(column: Option<&FileColumn>, text: &str) -> Result<Value, String> {
    let (kind, nullable) = column.map_or((FileColumnType::String, true), |c| (c.kind, c.nullable));
    if text.is_empty() {
        return if nullable {
            Ok(Value::Null)
        } else {
            Err("empty, but the column is not nullable".to_owned())
        };
    }
    let bad = |what: &str| format!("`{text}` is not {what}");
    match kind {
        FileColumnType::String => Ok(Value::String(text.to_owned())),
        FileColumnType::Long => {
            let n = number(text).ok_or_else(|| bad("an integer"))?;
            if n.contains('.') {
                return Err(bad("an integer"));
            }
            n.parse::<i64>()
                .map(Value::Long)
                .map_err(|_| format!("`{text}` is out of the range of a 64-bit integer"))
        }
        FileColumnType::Double => {
            let parsed = match number(text) {
                Some(n) => n.parse::<f64>().ok(),
                None => text.parse::<f64>().ok(),
            };
            parsed
                .filter(|f| f.is_finite())
                .map(Value::Double)
                .ok_or_else(|| bad("a finite number"))
        }
        FileColumnType::Decimal => number(text)
            .map(Value::String)
            .ok_or_else(|| bad("a decimal number")),
        FileColumnType::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" | "y" | "1" => Ok(Value::Boolean(true)),
            "false" | "n" | "0" => Ok(Value::Boolean(false)),
            _ => Err(bad("a boolean (true/false, Y/N, 1/0)")),
        },
        FileColumnType::Date => {
            let b = text.as_bytes();
            let digits_at = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
            let format = match b.len() {
                8 if digits_at(0..8) => Some("%Y%m%d"),
                10 if digits_at(0..4)
                    && b[4] == b'-'
                    && digits_at(5..7)
                    && b[7] == b'-'
                    && digits_at(8..10) =>
                {
                    Some("%Y-%m-%d")
                }
                _ => None,
            };
            let date = format
                .and_then(|f| NaiveDate::parse_from_str(text, f).ok())
                .ok_or_else(|| bad("a date (YYYYMMDD or YYYY-MM-DD)"))?;
            let days = date.signed_duration_since(NaiveDate::default()).num_days();
            i32::try_from(days)
                .map(Value::Date)
                .map_err(|_| bad("a representable date"))
        }
        FileColumnType::Timestamp => {
            let micros = match DateTime::parse_from_rfc3339(text) {
                Ok(t) => Some(t.timestamp_micros()),
                Err(_) => NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                    .ok()
                    .map(|t| t.and_utc().timestamp_micros()),
            };
            micros
                .map(Value::Timestamp)
                .ok_or_else(|| bad("a timestamp (RFC 3339 or YYYY-MM-DD HH:MM:SS)"))
        }
    }
}

/// A number with an optional sign, optional thousands separators in its integer part and an
/// optional fraction, as exact text without separators (`-1,234.50` → `-1234.50`).
fn number(text: &str) -> Option<String> {
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = match rest.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (rest, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let int_ok = if int.contains(',') {
        let mut groups = int.split(',');
        let head = groups.next().unwrap_or_default();
        (1..=3).contains(&head.len()) && digits(head) && groups.all(|g| g.len() == 3 && digits(g))
    } else {
        digits(int)
    };
    let frac = frac.unwrap_or_default();
    if !int_ok || !digits(frac) || (int.is_empty() && frac.is_empty()) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    if negative {
        out.push('-');
    }
    if int.is_empty() {
        out.push('0');
    } else {
        out.extend(int.chars().filter(|c| *c != ','));
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

/// The header of the first waiting file, for discovery of a CSV layout without declared columns.
fn peek_header(dir: &Path, pattern: &str, layout: &Arc<Layout>) -> Option<Arc<TableSchema>> {
    let first = list(dir, pattern).ok()?.into_iter().next()?;
    let name = first.name?;
    FileReader::open(&dir.join(&name), name, Arc::clone(layout), 0)
        .ok()
        .map(|r| r.schema)
}

/// Counts matching files waiting, and entries of `done/` and `failed/` (without reason files).
fn census(dir: &Path, pattern: &str) -> io::Result<(usize, usize, usize)> {
    let meta = fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    let waiting = list(dir, pattern)?.len();
    let count = |sub: &str| -> io::Result<usize> {
        let mut n = 0;
        for entry in fs::read_dir(dir.join(sub))? {
            let name = entry?.file_name();
            if !name.to_string_lossy().ends_with(".reason") {
                n += 1;
            }
        }
        Ok(n)
    };
    let (done, failed) = (count(DONE)?, count(FAILED)?);
    // Writable: the files must be moved out of it.
    let probe = dir.join(format!(".ledgerbridge-check-{}", std::process::id()));
    File::create(&probe)?;
    fs::remove_file(&probe)?;
    Ok((waiting, done, failed))
}

#[async_trait]
impl Source for FilesSource {
    async fn check(&mut self) -> Result<String, SourceError> {
        let dir = self.dir.clone();
        let pattern = self.pattern.clone();
        let (waiting, done, failed) =
            blocking(move || census(&dir, &pattern))
                .await?
                .map_err(|e| {
                    SourceError::Unreachable(format!("directory {}: {e}", self.dir.display()))
                })?;
        let format = match self.layout.format {
            FileFormat::Csv => "CSV",
            FileFormat::FixedWidth => "fixed-width",
        };
        Ok(format!(
            "directory {}: {waiting} files waiting, {done} done, {failed} failed ({format} files matching `{}`, {})",
            self.dir.display(),
            self.pattern,
            self.layout.encoding_name()
        ))
    }

    async fn discover(&mut self) -> Result<Vec<TableInfo>, SourceError> {
        let schema = if self.layout.format == FileFormat::Csv && self.layout.columns.is_empty() {
            let (dir, pattern, layout) = (
                self.dir.clone(),
                self.pattern.clone(),
                Arc::clone(&self.layout),
            );
            match blocking(move || peek_header(&dir, &pattern, &layout)).await? {
                Some(s) => s,
                None => self.current_schema()?,
            }
        } else {
            self.layout.schema(None).map_err(SourceError::Config)?
        };
        Ok(vec![TableInfo {
            name: self.layout.stream.clone(),
            primary_key: schema
                .key
                .iter()
                .map(|i| schema.columns[*i].name.clone())
                .collect(),
            columns: schema.columns.clone(),
        }])
    }

    fn streams(&self) -> Vec<String> {
        vec![self.layout.stream.clone()]
    }

    async fn pass(
        &mut self,
        stream: &str,
        offset: Option<J>,
        batch_size: usize,
        sink: &mut dyn Sink,
    ) -> Result<(), SourceError> {
        self.check_stream(stream)?;
        let offset = FileOffset::from_json(offset).map_err(SourceError::Config)?;
        self.resume(&offset, batch_size, sink).await?;
        for file in self.waiting().await? {
            self.read_file(&file, 0, batch_size, sink).await?;
        }
        Ok(())
    }

    async fn keys(&mut self, _stream: &str) -> Result<Vec<String>, SourceError> {
        Err(SourceError::Config(
            "batch files are reconciled by their done/ and failed/ directories, not by a key listing"
                .into(),
        ))
    }

    fn rewind_offset(&self, stream: &str, to: &RewindTo) -> Result<Option<J>, SourceError> {
        self.check_stream(stream)?;
        match to {
            RewindTo::Beginning => Ok(None),
            RewindTo::Offset { offset } => {
                FileOffset::from_json(Some(offset.clone())).map_err(SourceError::Config)?;
                Ok(Some(offset.clone()))
            }
            RewindTo::After { .. } | RewindTo::Timestamp { .. } => {
                Err(SourceError::Config(format!(
                    "batch files are not rewound to a key or a time: move the files to read again from {}/{DONE}/ (or {FAILED}/) back into {}; rewinding to the beginning restarts the file being read",
                    self.dir.display(),
                    self.dir.display()
                )))
            }
        }
    }
}
