//! Mappings: legacy rows to canonical events (see `README.md` in this folder).

pub mod avro;
pub mod compat;
