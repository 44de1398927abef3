//! The labels file: one JSON object per injected anomaly, one per line.
//!
//! ```json
//! {"domain":"bank","kind":"structuring","business_keys":["CU00000042","110-006-000042"],
//!  "rows":[{"table":"transfers","pk":311},{"table":"transfers","pk":319}],
//!  "at":"2024-01-03T14:05:00+09:00"}
//! ```
//!
//! `rows` point at primary keys in the target database; for courier manifests `table` is
//! `courier_manifest/<file name>` and `pk` the line number in that file (the header is line 1).
//! `at` is the anomaly's time on the simulated business clock (KST).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::FixedOffset;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::model::{PendingLabel, RowRef};

/// One labelled anomaly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// `healthcare`, `customs`, `land` or `bank`.
    pub domain: String,
    /// The anomaly kind's stable name (see [`crate::model::AnomalyKind`]).
    pub kind: String,
    /// Business keys a person would search for.
    pub business_keys: Vec<String>,
    /// The rows that make the anomaly.
    pub rows: Vec<LabelRow>,
    /// RFC 3339 time of the anomaly on the business clock.
    pub at: String,
}

/// A row in the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelRow {
    /// Table name, or `courier_manifest/<file>`.
    pub table: String,
    /// Primary key, or line number in a manifest file.
    pub pk: i64,
}

/// Where each written row ended up: business key → (table as labels name it, primary key).
pub type Written = HashMap<RowRef, (String, i64)>;

/// Turn a generator's label into a file label, with primary keys from `written`.
///
/// # Errors
/// A label row that was not written (a generator bug).
pub fn resolve(p: &PendingLabel, written: &Written) -> Result<Label, Error> {
    let rows = p
        .rows
        .iter()
        .map(|r| {
            written
                .get(r)
                .map(|(table, pk)| LabelRow {
                    table: table.clone(),
                    pk: *pk,
                })
                .ok_or_else(|| {
                    Error::Shape(format!(
                        "label {} refers to {} {:?}, which was not written with it",
                        p.kind, r.table, r.key
                    ))
                })
        })
        .collect::<Result<_, _>>()?;
    let kst = FixedOffset::east_opt(9 * 3600)
        .ok_or_else(|| Error::Shape("the KST offset is out of range".into()))?;
    Ok(Label {
        domain: p.kind.domain().as_str().to_owned(),
        kind: p.kind.as_str().to_owned(),
        business_keys: p.business_keys.clone(),
        rows,
        at: p
            .at
            .and_local_timezone(kst)
            .single()
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
    })
}

/// Appends labels to a JSON Lines file.
#[derive(Debug)]
pub struct LabelWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl LabelWriter {
    /// Create (or truncate) the file.
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create(path: &Path) -> Result<Self, Error> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(Self {
            path: path.to_owned(),
            out: BufWriter::new(file),
        })
    }

    /// Append labels and flush them to the OS (called after the rows are committed).
    ///
    /// # Errors
    /// A write fails.
    pub fn append(&mut self, labels: &[Label]) -> Result<(), Error> {
        for l in labels {
            serde_json::to_writer(&mut self.out, l).map_err(|e| Error::io(&self.path, e.into()))?;
            self.out
                .write_all(b"\n")
                .map_err(|e| Error::io(&self.path, e))?;
        }
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// Read a labels file.
///
/// # Errors
/// The file cannot be read or a line is not a label.
pub fn read(path: &Path) -> Result<Vec<Label>, Error> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        let label = serde_json::from_str(&line).map_err(|e| {
            Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("line {}: {e}", i + 1),
                ),
            )
        })?;
        out.push(label);
    }
    Ok(out)
}
