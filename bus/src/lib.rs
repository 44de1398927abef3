//! The event backbone every stage talks to.
//!
//! Connectors publish raw records, mapping workers consume them and publish canonical events, the
//! anchoring worker and the monitors consume those. They all see the same [`Bus`] trait, with two
//! implementations: the [`EmbeddedLog`] of the single-process default, and Kafka (production).
//!
//! The contract, for both:
//! - [`Bus::publish`] returns only when the records are durable (fsync'd on the embedded log,
//!   acknowledged by the in-sync replicas on Kafka) and gives each its offset;
//! - order is kept per topic partition, and records with the same key go to the same partition;
//! - a [`Consumer`] in a group resumes after the last offset its group committed; offsets are
//!   committed by the caller only once its own downstream write is durable, so a crash means
//!   redelivery (at-least-once), never loss. Stages make redelivery harmless by being idempotent.

mod embedded;
mod kafka;
mod record;
mod stage;

use std::time::Duration;

use async_trait::async_trait;

pub use embedded::{EmbeddedLog, EmbeddedLogOptions};
pub use kafka::{KafkaBus, KafkaSettings};
pub use record::{Delivered, Record, validate_topic_name};
pub use stage::{Stage, cpu_bound};

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// A topic name that neither Kafka nor the embedded log accepts.
    #[error(
        "invalid topic name `{0}`: use 1 to 249 characters from A-Z a-z 0-9 . _ - (and not `.` or `..`)"
    )]
    InvalidTopic(String),
    /// A file operation of the embedded log failed (disk full, permissions, …).
    #[error("embedded log: {action} `{path}`: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The embedded log found data it cannot trust and refuses to guess.
    #[error("embedded log: {0}")]
    Corrupt(String),
    /// Another process holds the embedded log.
    #[error(
        "embedded log `{0}` is in use by another process (one ledgerbridge process per data directory)"
    )]
    Locked(String),
    /// A record too large for the log.
    #[error("record of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The broker or client reported an error.
    #[error("kafka: {0}")]
    Kafka(String),
}

/// Result alias for bus operations.
pub type Result<T, E = BusError> = std::result::Result<T, E>;

/// Where a published record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Partition within the topic (always 0 on the embedded log).
    pub partition: i32,
    /// Offset within the partition.
    pub offset: u64,
}

/// The event backbone, see the crate documentation for the contract.
#[async_trait]
pub trait Bus: Send + Sync + std::fmt::Debug {
    /// `embedded` or `kafka`.
    fn backend(&self) -> &'static str;

    /// Appends `records` to `topic` (created on first use) and returns their positions once they
    /// are durable. Records keep their order.
    ///
    /// # Errors
    /// Invalid topic name, a record too large, or the storage/broker failing; on error none of the
    /// records of this call should be considered published.
    async fn publish(&self, topic: &str, records: Vec<Record>) -> Result<Vec<Position>>;

    /// Joins consumer group `group` reading `topics`, from the group's committed offsets (from the
    /// beginning for a new group).
    ///
    /// # Errors
    /// Invalid topic names, or the storage/broker failing.
    async fn subscribe(&self, group: &str, topics: &[String]) -> Result<Box<dyn Consumer>>;

    /// Reads up to `max` records of `topic`'s `partition` from offset `from`, outside any consumer
    /// group (for the API, provenance look-ups and audits).
    ///
    /// # Errors
    /// Invalid topic name, or the storage/broker failing.
    async fn read(
        &self,
        topic: &str,
        partition: i32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Delivered>>;

    /// The offset the next record of `topic`'s `partition` will get (0 for an unknown topic).
    ///
    /// # Errors
    /// Storage or broker failure.
    async fn end_offset(&self, topic: &str, partition: i32) -> Result<u64>;

    /// Checks the backbone can serve; `Ok` carries a one-line description for the health report.
    ///
    /// # Errors
    /// What makes it unavailable.
    async fn health(&self) -> Result<String>;
}

/// Commits, for each topic and partition of `batch`, the offset after its last record: what a
/// stage calls once everything it did with the batch is durable. Failures are logged and left
/// for the next batch's commit (redelivery, never loss).
pub async fn commit_batch(consumer: &mut dyn Consumer, batch: &[Delivered]) {
    let mut next: std::collections::BTreeMap<(&str, i32), u64> = std::collections::BTreeMap::new();
    for d in batch {
        let n = next.entry((d.topic.as_str(), d.partition)).or_default();
        *n = (*n).max(d.offset + 1);
    }
    for ((topic, partition), offset) in next {
        if let Err(e) = consumer.commit(topic, partition, offset).await {
            tracing::warn!("committing {topic}/{partition}@{offset}: {e}");
        }
    }
}

/// A member of a consumer group.
#[async_trait]
pub trait Consumer: Send + std::fmt::Debug {
    /// Up to `max` records after the current position; waits up to `wait` when none are there
    /// (returns an empty batch then).
    ///
    /// # Errors
    /// Storage or broker failure.
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivered>>;

    /// Records that everything before `next_offset` in `topic`/`partition` is processed and
    /// durable downstream. A restarted group resumes there.
    ///
    /// # Errors
    /// Storage or broker failure; the caller retries or stops, it never skips.
    async fn commit(&mut self, topic: &str, partition: i32, next_offset: u64) -> Result<()>;
}
