//! Monitoring (issue 7): detectors on the canonical event stream.
//!
//! - [`event`]: reading canonical events (JSON pointers, times, comparisons);
//! - [`rules`]: rule files (TOML), checked with every mistake and its line;
//! - [`blocks`]: the building blocks (keyed sliding windows, thresholds, robust outliers,
//!   sequences, joins) and the dedicated detectors, with serialisable, bounded state;
//! - [`catalog`]: the rules in force (shipped, overlaid with versions edited through the API)
//!   and the dry-run of a rule over past events;
//! - [`engine`]: the [`Monitor`] that feeds events to the rules and returns [`Alert`]s;
//! - [`eval`]: precision, recall and latency against the load generator's labels, and the
//!   throughput benchmark.

pub mod blocks;
pub mod catalog;
pub mod engine;
pub mod eval;
pub mod event;
pub mod rules;

pub use engine::{Alert, Monitor, Snapshot};
pub use rules::{Rule, Severity};
