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
pub mod service;
pub mod spec;
pub mod worker;

#[cfg(test)]
mod tests;

pub use catalog::{CanonicalSchema, Catalog, CatalogError, Violation};
pub use engine::{CanonicalEvent, Mapping, Outcome, Pseudonymiser, Source, event_id_for, load};
pub use service::{DryRun, MappingError, Mappings, Which};

/// The canonical schemas shipped in `mappings/schemas/`, compiled into the binary.
pub const BUILTIN_SCHEMAS: &[(&str, &str)] = &[
    (
        "bank.account.v1.json",
        include_str!("../schemas/bank.account.v1.json"),
    ),
    (
        "bank.remittance.v1.json",
        include_str!("../schemas/bank.remittance.v1.json"),
    ),
    (
        "bank.transfer.v1.json",
        include_str!("../schemas/bank.transfer.v1.json"),
    ),
    (
        "customs.declaration.v1.json",
        include_str!("../schemas/customs.declaration.v1.json"),
    ),
    (
        "customs.order.v1.json",
        include_str!("../schemas/customs.order.v1.json"),
    ),
    (
        "customs.shipment.v1.json",
        include_str!("../schemas/customs.shipment.v1.json"),
    ),
    (
        "healthcare.claim.v1.json",
        include_str!("../schemas/healthcare.claim.v1.json"),
    ),
    (
        "healthcare.policy.v1.json",
        include_str!("../schemas/healthcare.policy.v1.json"),
    ),
    (
        "land.mortgage.v1.json",
        include_str!("../schemas/land.mortgage.v1.json"),
    ),
    (
        "land.parcel.v1.json",
        include_str!("../schemas/land.parcel.v1.json"),
    ),
    (
        "land.title-transfer.v1.json",
        include_str!("../schemas/land.title-transfer.v1.json"),
    ),
    (
        "land.title.v1.json",
        include_str!("../schemas/land.title.v1.json"),
    ),
];

/// The mapping files of the sample legacy systems (`mappings/specs/`), which the demo runs.
pub const SAMPLE_SPECS: &[(&str, &str)] = &[
    (
        "sample-bank.accounts.toml",
        include_str!("../specs/sample-bank.accounts.toml"),
    ),
    (
        "sample-bank.remittances.toml",
        include_str!("../specs/sample-bank.remittances.toml"),
    ),
    (
        "sample-bank.transfers.toml",
        include_str!("../specs/sample-bank.transfers.toml"),
    ),
    (
        "sample-his.claims.toml",
        include_str!("../specs/sample-his.claims.toml"),
    ),
    (
        "sample-his.insurance_policies.toml",
        include_str!("../specs/sample-his.insurance_policies.toml"),
    ),
    (
        "sample-land.mortgages.toml",
        include_str!("../specs/sample-land.mortgages.toml"),
    ),
    (
        "sample-land.parcels.toml",
        include_str!("../specs/sample-land.parcels.toml"),
    ),
    (
        "sample-land.title_transfers.toml",
        include_str!("../specs/sample-land.title_transfers.toml"),
    ),
    (
        "sample-land.titles.toml",
        include_str!("../specs/sample-land.titles.toml"),
    ),
    (
        "sample-mall.customs_declarations.toml",
        include_str!("../specs/sample-mall.customs_declarations.toml"),
    ),
    (
        "sample-mall.mall_orders.toml",
        include_str!("../specs/sample-mall.mall_orders.toml"),
    ),
    (
        "sample-manifests.courier_manifest.toml",
        include_str!("../specs/sample-manifests.courier_manifest.toml"),
    ),
];
