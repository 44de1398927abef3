//! Mappings: legacy rows to canonical events (see `README.md` in this folder).
//!
//! - [`spec`]: mapping files (TOML), every mistake with its line;
//! - [`catalog`]: the canonical JSON Schemas and their compiled validators;
//! - [`engine`]: a mapping compiled against its schema and applied to raw records;
//! - [`coerce`]: conversions of legacy values;
//! - [`avro`]: the Avro form of canonical events on the bus; [`compat`]: schema evolution.

pub mod avro;
pub mod catalog;
pub mod coerce;
pub mod compat;
pub mod engine;
pub mod spec;

#[cfg(test)]
mod tests;

pub use catalog::{CanonicalSchema, Catalog, CatalogError, Violation};
pub use engine::{CanonicalEvent, Mapping, Outcome, Pseudonymiser, Source, load};

/// The canonical schemas shipped in `mappings/schemas/`, compiled into the binary.
pub const BUILTIN_SCHEMAS: &[(&str, &str)] = &[];
