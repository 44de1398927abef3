//! Sample legacy systems of the four reference domains (DESIGN §2) and a load generator that
//! keeps writing realistic rows into them, with labelled anomalies.
//!
//! - [`model`]: rows, tables, the domains and the systems that hold them, anomaly kinds.
//! - [`domains`]: one deterministic generator per domain (seeded `ChaCha8` RNG, simulated
//!   business clock), which emits normal activity and, at the anomaly rate, an anomaly scenario
//!   with its label.
//! - [`definitions`]: the anomaly definitions as executable checks over generated rows; the
//!   tests use them to prove that every label fits its definition and no unlabelled row does.
//! - [`manifest`]: the courier manifest's fixed-width EUC-KR layout, encoder and decoder.
//! - [`sink`]: writing rows to PostgreSQL, MariaDB, SQLite or a manifest directory.
//! - [`run`]: the paced load-generation loop behind the `ledgerbridge-loadgen` binary.

pub mod definitions;
pub mod domains;
pub mod error;
pub mod labels;
pub mod manifest;
pub mod model;
mod names;
pub mod pacing;
pub mod run;
pub mod schema;
pub mod sink;

pub use error::Error;
