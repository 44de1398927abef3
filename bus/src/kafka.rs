//! The bus on Kafka (any Kafka-protocol cluster), through rdkafka and its bundled librdkafka.
//!
//! - Publishing uses an idempotent producer (`enable.idempotence`, `acks=all`): a publish returns
//!   when every record is acknowledged by the in-sync replicas, in order per partition, without
//!   duplicates from producer retries.
//! - Consumers never commit on their own (`enable.auto.commit=false`,
//!   `enable.auto.offset.store=false`); [`Consumer::commit`] commits synchronously what the
//!   caller says is durable downstream. A crash before a commit means redelivery, never loss.
//! - Kafka transactions are not used (not every Kafka-protocol broker has them); exactly-once
//!   effects come from idempotent stages downstream.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};

use crate::record::validate_topic_name;
use crate::{Bus, BusError, Consumer, Delivered, Position, Record, Result};

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// Comma-separated `host:port` bootstrap list.
    pub bootstrap_servers: String,
    /// Client id reported to the brokers (the node id).
    pub client_id: String,
    /// Further librdkafka properties (security protocol, SASL credentials already resolved, …).
    pub properties: BTreeMap<String, String>,
    /// Timeout for metadata, admin and commit requests.
    pub timeout: Duration,
    /// Partitions given to topics this node creates.
    pub partitions: i32,
    /// Replication factor of topics this node creates.
    pub replication: i32,
}

impl KafkaSettings {
    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.client_id);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

/// Routes librdkafka's logs and errors to `tracing`, without the noise of expected conditions
/// (the end of a partition reached by a reader, producer-only properties given to a consumer).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Context;

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let expected = log_message.contains("is a producer property and will be ignored")
            || log_message.contains("is a consumer property and will be ignored");
        match level {
            _ if expected => tracing::debug!(facility = fac, "librdkafka: {log_message}"),
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(facility = fac, "librdkafka: {log_message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(facility = fac, "librdkafka: {log_message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(facility = fac, "librdkafka: {log_message}");
            }
            RDKafkaLogLevel::Debug => tracing::debug!(facility = fac, "librdkafka: {log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF) => {
                tracing::trace!("librdkafka: {reason}");
            }
            other => tracing::warn!(error = %other, "librdkafka: {reason}"),
        }
    }
}

impl ConsumerContext for Context {}

type Reader = BaseConsumer<Context>;

fn kafka_err(context: &str) -> impl FnOnce(KafkaError) -> BusError + use<'_> {
    move |e| BusError::Kafka(format!("{context}: {e}"))
}

/// The bus on a Kafka cluster.
#[derive(Clone)]
pub struct KafkaBus {
    settings: Arc<KafkaSettings>,
    producer: FutureProducer<Context>,
    admin: Arc<AdminClient<Context>>,
    /// For metadata and watermark queries.
    meta: Arc<Reader>,
    known_topics: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("bootstrap_servers", &self.settings.bootstrap_servers)
            .finish_non_exhaustive()
    }
}

impl KafkaBus {
    /// Creates the clients and checks the cluster answers within the timeout.
    ///
    /// # Errors
    /// A property librdkafka rejects, or no broker reachable.
    pub async fn connect(settings: KafkaSettings) -> Result<Self> {
        let base = settings.client_config();
        let mut producer = base.clone();
        producer
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "120000");
        // The configured properties win over these defaults too (a broker without idempotent
        // producers, say).
        for (k, v) in &settings.properties {
            producer.set(k, v);
        }
        let producer: FutureProducer<Context> = producer
            .create_with_context(Context)
            .map_err(kafka_err("creating the producer"))?;
        let admin: AdminClient<Context> = base
            .create_with_context(Context)
            .map_err(kafka_err("creating the admin client"))?;
        let meta: Reader = base
            .clone()
            .set("group.id", format!("{}-metadata", settings.client_id))
            .set("enable.auto.commit", "false")
            .create_with_context(Context)
            .map_err(kafka_err("creating the metadata client"))?;
        let bus = Self {
            settings: Arc::new(settings),
            producer,
            admin: Arc::new(admin),
            meta: Arc::new(meta),
            known_topics: Arc::new(Mutex::new(HashSet::new())),
        };
        bus.health().await?;
        Ok(bus)
    }

    async fn ensure_topic(&self, topic: &str) -> Result<()> {
        if self.known_topics.lock().is_ok_and(|t| t.contains(topic)) {
            return Ok(());
        }
        let new = NewTopic::new(
            topic,
            self.settings.partitions,
            TopicReplication::Fixed(self.settings.replication),
        );
        let options = AdminOptions::new().operation_timeout(Some(self.settings.timeout));
        let results = self
            .admin
            .create_topics([&new], &options)
            .await
            .map_err(kafka_err("creating a topic"))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(BusError::Kafka(format!("creating topic {name}: {code}")));
                }
            }
        }
        if let Ok(mut known) = self.known_topics.lock() {
            known.insert(topic.to_owned());
        }
        Ok(())
    }

    /// A consumer for reads outside any group: assigned explicitly, never commits, reports the
    /// end of a partition.
    fn reader(&self) -> Result<Reader> {
        self.settings
            .client_config()
            .set("group.id", format!("{}-reader", self.settings.client_id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .create_with_context(Context)
            .map_err(kafka_err("creating a reader"))
    }

    fn consumer(&self, group: &str) -> Result<Reader> {
        self.settings
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .create_with_context(Context)
            .map_err(kafka_err("creating a consumer"))
    }
}

fn assign(consumer: &Reader, topic: &str, partition: i32, offset: Offset) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, offset)
        .map_err(kafka_err("assigning a partition"))?;
    consumer
        .assign(&tpl)
        .map_err(kafka_err("assigning a partition"))
}

fn to_delivered(m: &rdkafka::message::BorrowedMessage<'_>) -> Delivered {
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|Header { key, value }| {
                    (
                        key.to_owned(),
                        value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Delivered {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: u64::try_from(m.offset()).unwrap_or(0),
        record: Record {
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers,
            timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
        },
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BusError::Kafka(format!("client task failed: {e}")))?
}

#[async_trait]
impl Bus for KafkaBus {
    fn backend(&self) -> &'static str {
        "kafka"
    }

    async fn publish(&self, topic: &str, records: Vec<Record>) -> Result<Vec<Position>> {
        validate_topic_name(topic)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_topic(topic).await?;
        let mut pending = Vec::with_capacity(records.len());
        for r in &records {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (name, value) in &r.headers {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(value.as_slice()),
                });
            }
            let mut fr = FutureRecord::to(topic)
                .payload(r.value.as_slice())
                .headers(headers)
                .timestamp(r.timestamp_ms);
            if let Some(k) = &r.key {
                fr = fr.key(k.as_slice());
            }
            let delivery = loop {
                match self.producer.send_result(fr) {
                    Ok(d) => break d,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // Backpressure: wait for the queue to drain instead of buffering more.
                        fr = back;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((e, _)) => return Err(kafka_err("queueing a record")(e)),
                }
            };
            pending.push(delivery);
        }
        let mut positions = Vec::with_capacity(pending.len());
        for d in pending {
            let delivered = d
                .await
                .map_err(|_| BusError::Kafka("the producer was closed before delivery".into()))?
                .map_err(|(e, _)| kafka_err("delivering a record")(e))?;
            positions.push(Position {
                partition: delivered.partition,
                offset: u64::try_from(delivered.offset).unwrap_or(0),
            });
        }
        Ok(positions)
    }

    async fn subscribe(&self, group: &str, topics: &[String]) -> Result<Box<dyn Consumer>> {
        validate_topic_name(group)?;
        for t in topics {
            validate_topic_name(t)?;
            self.ensure_topic(t).await?;
        }
        let consumer = self.consumer(group)?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(kafka_err("subscribing"))?;
        Ok(Box::new(KafkaConsumer {
            consumer: Arc::new(consumer),
        }))
    }

    async fn read(
        &self,
        topic: &str,
        partition: i32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Delivered>> {
        validate_topic_name(topic)?;
        if max == 0 || self.end_offset(topic, partition).await? <= from {
            return Ok(Vec::new());
        }
        let consumer = self.reader()?;
        let timeout = self.settings.timeout;
        let topic = topic.to_owned();
        blocking(move || {
            let start = i64::try_from(from).unwrap_or(i64::MAX);
            assign(&consumer, &topic, partition, Offset::Offset(start))?;
            let deadline = std::time::Instant::now() + timeout;
            let mut out = Vec::new();
            // Stop at the end of the partition as the broker's fetch responses report it.
            while out.len() < max && std::time::Instant::now() < deadline {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => out.push(to_delivered(&m)),
                    Some(Err(KafkaError::PartitionEOF(_))) => break,
                    Some(Err(e)) => return Err(kafka_err("reading")(e)),
                    None => {}
                }
            }
            Ok(out)
        })
        .await
    }

    async fn end_offset(&self, topic: &str, partition: i32) -> Result<u64> {
        validate_topic_name(topic)?;
        let meta = Arc::clone(&self.meta);
        let reader = self.reader()?;
        let timeout = self.settings.timeout;
        let topic = topic.to_owned();
        blocking(move || {
            let listed = match meta.fetch_watermarks(&topic, partition, timeout) {
                Ok((_, high)) => high,
                Err(KafkaError::MetadataFetch(
                    RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownPartition,
                )) => return Ok(0),
                Err(e) => return Err(kafka_err("reading the end offset")(e)),
            };
            if listed <= 0 {
                return Ok(0);
            }
            // Read from the last listed record to the end: some Kafka-protocol brokers (tansu
            // 0.6) answer ListOffsets with the base offset of the last batch plus one rather
            // than the end of that batch; the records fetched tell the truth on all of them.
            assign(&reader, &topic, partition, Offset::Offset(listed - 1))?;
            let deadline = std::time::Instant::now() + timeout;
            let mut high = listed;
            while std::time::Instant::now() < deadline {
                match reader.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => high = high.max(m.offset() + 1),
                    Some(Err(KafkaError::PartitionEOF(_))) => break,
                    Some(Err(e)) => return Err(kafka_err("reading the end offset")(e)),
                    None => {}
                }
            }
            Ok(u64::try_from(high).unwrap_or(0))
        })
        .await
    }

    async fn health(&self) -> Result<String> {
        let producer = self.producer.clone();
        let timeout = self.settings.timeout;
        let servers = self.settings.bootstrap_servers.clone();
        blocking(move || {
            let metadata = producer
                .client()
                .fetch_metadata(None, timeout)
                .map_err(kafka_err("reaching the brokers"))?;
            Ok(format!(
                "kafka {servers} ({} brokers)",
                metadata.brokers().len()
            ))
        })
        .await
    }
}

/// A member of a Kafka consumer group.
struct KafkaConsumer {
    consumer: Arc<Reader>,
}

impl std::fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConsumer").finish_non_exhaustive()
    }
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivered>> {
        let consumer = Arc::clone(&self.consumer);
        blocking(move || {
            let mut out = Vec::new();
            let deadline = std::time::Instant::now() + wait;
            // Wait (in short slices, so group rebalances are served) for the first record, then
            // take what is already fetched without waiting.
            while out.is_empty() {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match consumer.poll(left.min(Duration::from_millis(100))) {
                    Some(Ok(m)) => out.push(to_delivered(&m)),
                    Some(Err(e)) => return Err(kafka_err("polling")(e)),
                    None if left.is_zero() => return Ok(out),
                    None => {}
                }
            }
            while out.len() < max {
                match consumer.poll(Duration::ZERO) {
                    Some(Ok(m)) => out.push(to_delivered(&m)),
                    Some(Err(e)) => return Err(kafka_err("polling")(e)),
                    None => break,
                }
            }
            Ok(out)
        })
        .await
    }

    async fn commit(&mut self, topic: &str, partition: i32, next_offset: u64) -> Result<()> {
        validate_topic_name(topic)?;
        let consumer = Arc::clone(&self.consumer);
        let topic = topic.to_owned();
        blocking(move || {
            let mut tpl = TopicPartitionList::new();
            let offset = i64::try_from(next_offset).unwrap_or(i64::MAX);
            tpl.add_partition_offset(&topic, partition, Offset::Offset(offset))
                .map_err(kafka_err("committing"))?;
            consumer
                .commit(&tpl, CommitMode::Sync)
                .map_err(kafka_err("committing"))
        })
        .await
    }
}
