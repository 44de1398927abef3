//! What travels on the bus.

use crate::BusError;

/// One record: an optional key (the source primary key; same key, same partition, same order),
/// the value bytes (Avro with Confluent framing on raw and canonical topics), headers, and the
/// producer's timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Partitioning key.
    pub key: Option<Vec<u8>>,
    /// Payload.
    pub value: Vec<u8>,
    /// Named metadata (provenance, trace ids), in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Milliseconds since the Unix epoch, as given by the producer.
    pub timestamp_ms: i64,
}

impl Record {
    /// A record with the current time and no headers.
    #[must_use]
    pub fn new(key: Option<Vec<u8>>, value: Vec<u8>) -> Self {
        Self {
            key,
            value,
            headers: Vec::new(),
            timestamp_ms: now_ms(),
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first header called `name`.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// A record as a consumer receives it, with where it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Topic it was read from.
    pub topic: String,
    /// Partition within the topic.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: u64,
    /// The record.
    pub record: Record,
}

impl Delivered {
    /// Where it was read: `topic:partition:offset`.
    #[must_use]
    pub fn position(&self) -> String {
        format!("{}:{}:{}", self.topic, self.partition, self.offset)
    }

    /// The record's key as text (lossy), empty without one.
    #[must_use]
    pub fn key_text(&self) -> String {
        self.record
            .key
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
            .into_owned()
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Checks a topic name against the rules Kafka applies (1–249 characters of `[A-Za-z0-9._-]`,
/// not `.` or `..`), so a name that works on the embedded log also works on Kafka.
///
/// # Errors
/// [`BusError::InvalidTopic`] naming the topic.
pub fn validate_topic_name(topic: &str) -> Result<(), BusError> {
    let ok = (1..=249).contains(&topic.len())
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(BusError::InvalidTopic(topic.to_owned()))
    }
}
