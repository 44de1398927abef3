//! The ledgerbridge configuration: one TOML file per node.
//!
//! - [`model`]: the structure, every field documented, with its default;
//! - [`load_file`] / [`load_str`]: parse and validate, reporting every error with its path and
//!   line ([`ConfigError`]), plus warnings;
//! - [`Secret`]: secrets are references (`${ENV_VAR}`, `file:PATH`), never values.

pub mod connectors;
mod duration;
mod load;
pub mod model;
pub mod monitoring;
mod secret;

pub use duration::HumanDuration;
pub use load::{
    ConfigError, ConfigPath, Issue, Loaded, Position, Segment, Spans, json_schema, load_file,
    load_str, toml_document,
};
pub use model::Config;
pub use secret::{Secret, SecretError, SecretSource};

/// The demo configuration shipped in `examples/config/demo.toml`; `ledgerbridge demo` uses it
/// when no `--config` is given.
pub const DEMO_CONFIG: &str = include_str!("../../examples/config/demo.toml");

/// The annotated production example shipped in `examples/config/production.toml`.
pub const PRODUCTION_EXAMPLE: &str = include_str!("../../examples/config/production.toml");

#[cfg(test)]
mod tests;
