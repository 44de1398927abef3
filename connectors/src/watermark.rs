//! Watermarks for polling tables without missing rows that commit late.
//!
//! A polling connector reads rows whose cursor (an incrementing key, or a timestamp and the key)
//! is above the highest cursor it has emitted, `hi`. A transaction that drew its key or timestamp
//! earlier but commits after a pass has moved `hi` past it would be skipped forever: the known gap
//! of Kafka Connect's JDBC source. Each source closes it with what its database offers:
//!
//! - PostgreSQL: every pass runs in one REPEATABLE READ snapshot and remembers it; the next pass
//!   also reads rows at or below `hi` whose inserting transaction (`xmin`) was not visible in the
//!   previous snapshot — exactly the rows that committed in between, whatever their cursor.
//! - MariaDB/MySQL: chunks are read with a locking read under READ COMMITTED, which waits for any
//!   transaction still holding a row it meets in the range, instead of skipping it.
//!
//! To keep the PostgreSQL re-check cheap it only looks at cursors above a lower bound: `hi` as it
//! was `late_commit_window` before the snapshot ([`TableOffset::bound`]). A transaction that holds
//! a key or timestamp for longer than that window before committing is the one case left
//! uncovered; the window is configurable per connector.

use serde::{Deserialize, Serialize};
use serde_json::Value as J;

/// A cursor: the values of the cursor columns of a row, in order.
pub type Cursor = Vec<J>;

/// The stored offset of one table stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableOffset {
    /// The highest cursor emitted; `None` before the first row.
    #[serde(default)]
    pub hi: Option<Cursor>,
    /// The database snapshot of the last complete pass (PostgreSQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    /// `hi` at the start of recent passes, oldest first, to bound the late-commit re-check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<Mark>,
    /// Set by a rewind to a time: before any row is emitted, start with rows whose timestamp is
    /// at or after this (microseconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_micros: Option<i64>,
}

/// A PostgreSQL snapshot (`pg_current_snapshot()`): transactions below `xmin` are finished,
/// those from `xmax` on had not started, those in `xip` were running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Oldest transaction still running.
    pub xmin: u64,
    /// First transaction id not yet assigned.
    pub xmax: u64,
    /// Transactions running between the two.
    pub xip: Vec<u64>,
    /// Source clock when it was taken, milliseconds since the epoch.
    #[serde(default)]
    pub at_ms: i64,
}

impl Snapshot {
    /// Parses the text form `xmin:xmax:xip,xip,…`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let xip = match parts.next()? {
            "" => Vec::new(),
            list => list
                .split(',')
                .map(str::parse)
                .collect::<Result<Vec<u64>, _>>()
                .ok()?,
        };
        Some(Self {
            xmin,
            xmax,
            xip,
            at_ms: 0,
        })
    }
}

/// Where `hi` stood when a pass started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// Source clock at the pass's snapshot, milliseconds since the epoch.
    pub at_ms: i64,
    /// `hi` then.
    pub hi: Option<Cursor>,
}

/// At most this many marks are kept (a pass per 100 ms over a one-minute window fits).
const MAX_MARKS: usize = 1024;

impl TableOffset {
    /// The lower bound of the late-commit re-check for a snapshot taken at `now_ms`: `hi` as it
    /// stood `window_ms` earlier. `None` means from the start of the table.
    #[must_use]
    pub fn bound(&self, now_ms: i64, window_ms: i64) -> Option<Cursor> {
        self.marks
            .iter()
            .rev()
            .find(|m| m.at_ms <= now_ms - window_ms)
            .and_then(|m| m.hi.clone())
    }

    /// Records that a pass started at `at_ms` with the current `hi`, and forgets marks no bound
    /// can need any more (keeping the newest one older than the window).
    pub fn mark(&mut self, at_ms: i64, window_ms: i64) {
        self.marks.push(Mark {
            at_ms,
            hi: self.hi.clone(),
        });
        let horizon = at_ms - window_ms;
        let older = self.marks.iter().filter(|m| m.at_ms <= horizon).count();
        if older > 1 {
            self.marks.drain(..older - 1);
        }
        if self.marks.len() > MAX_MARKS {
            // Thin out evenly; bounds only become lower (more re-checking), never unsafe.
            let mut keep = false;
            self.marks.retain(|_| {
                keep = !keep;
                keep
            });
        }
    }

    /// Serialises the offset for the store.
    #[must_use]
    pub fn to_json(&self) -> J {
        serde_json::to_value(self).unwrap_or(J::Null)
    }

    /// Reads a stored offset.
    ///
    /// # Errors
    /// The stored document is not a table offset.
    pub fn from_json(value: Option<J>) -> Result<Self, String> {
        match value {
            None => Ok(Self::default()),
            Some(v) => serde_json::from_value(v).map_err(|e| format!("stored offset: {e}")),
        }
    }
}

/// The offset of a table stream rewound to `to`.
///
/// # Errors
/// A time given for a table without a timestamp column, or an offset document that is not a
/// table offset.
pub fn rewind(
    spec: &ledgerbridge_config::connectors::TableSpec,
    to: &crate::RewindTo,
) -> Result<Option<J>, crate::SourceError> {
    use crate::{RewindTo, SourceError};
    let offset = match to {
        RewindTo::Beginning => return Ok(None),
        RewindTo::Offset { offset } => {
            TableOffset::from_json(Some(offset.clone())).map_err(SourceError::Config)?;
            return Ok(Some(offset.clone()));
        }
        RewindTo::After { cursor } => TableOffset {
            hi: Some(cursor.clone()),
            ..TableOffset::default()
        },
        RewindTo::Timestamp { at } => {
            if spec.timestamp_column.is_none() {
                return Err(SourceError::Config(format!(
                    "table `{}` has no timestamp_column: rewind it to a key instead",
                    spec.name
                )));
            }
            TableOffset {
                from_micros: Some(at.timestamp_micros()),
                ..TableOffset::default()
            }
        }
    };
    Ok(Some(offset.to_json()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn snapshots_parse() {
        assert_eq!(
            Snapshot::parse("10:20:12,15"),
            Some(Snapshot {
                xmin: 10,
                xmax: 20,
                xip: vec![12, 15],
                at_ms: 0
            })
        );
        assert_eq!(
            Snapshot::parse("7:7:"),
            Some(Snapshot {
                xmin: 7,
                xmax: 7,
                xip: vec![],
                at_ms: 0
            })
        );
        assert_eq!(Snapshot::parse("7:x:"), None);
    }

    #[test]
    fn bound_is_hi_as_it_stood_a_window_ago() {
        let mut o = TableOffset::default();
        o.mark(1_000, 5_000); // hi None
        o.hi = Some(vec![json!(10)]);
        o.mark(3_000, 5_000);
        o.hi = Some(vec![json!(20)]);
        o.mark(7_000, 5_000);
        o.hi = Some(vec![json!(30)]);
        assert_eq!(
            o.bound(5_000, 5_000),
            None,
            "only the first mark is old enough"
        );
        assert_eq!(o.bound(8_000, 5_000), Some(vec![json!(10)]));
        assert_eq!(o.bound(12_500, 5_000), Some(vec![json!(20)]));
        o.mark(20_000, 5_000);
        assert_eq!(
            o.marks.len(),
            2,
            "marks older than the window are forgotten but one"
        );
        assert_eq!(o.bound(20_000, 5_000), Some(vec![json!(20)]));
    }

    #[test]
    fn marks_stay_bounded() {
        let mut o = TableOffset::default();
        for i in 0..5_000 {
            o.hi = Some(vec![json!(i)]);
            o.mark(i, 1_000_000);
        }
        assert!(o.marks.len() <= MAX_MARKS);
        assert_eq!(o.bound(4_999, 1_000_000), None);
    }
}
