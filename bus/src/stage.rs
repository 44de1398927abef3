//! The loop of a consuming stage (the mapping and anchoring workers): each batch has a CPU-bound
//! half (decode, map or route: no I/O) and a durable half (publish, append, quarantine). While
//! batch n's durable half runs on a spawned task, batch n+1's CPU half runs in place (the stage
//! keeps looking for batch n+1 until it comes or batch n's durable half ends, so records that
//! arrive late are not held behind it); durable halves stay serial and in order, batch n's
//! offsets are committed only once its durable half returned, and any failure drops everything
//! read after the last commit and reads it again (at least once: the stages downstream are
//! idempotent or keyed).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::{Bus, Consumer, Delivered, commit_batch};

/// A consuming stage: its consumer group and topics, and how many records a batch holds at most
/// (two batches are in memory at once: one mapped or decoded, one being made durable).
#[derive(Debug, Clone)]
pub struct Stage {
    /// For log messages: `mapping worker`, `anchoring worker`.
    pub name: &'static str,
    /// Consumer group.
    pub group: String,
    /// Topics read.
    pub topics: Vec<String>,
    /// Most records per batch.
    pub batch: usize,
    /// How long a poll waits for records when nothing is in flight.
    pub idle_wait: Duration,
}

/// A durable half in flight and the records whose offsets it commits once it succeeds.
type InFlight = (tokio::task::JoinHandle<Result<(), String>>, Vec<Delivered>);

/// Waits for the durable half in flight; commits its offsets when it succeeded.
async fn settle(consumer: &mut dyn Consumer, pending: &mut Option<InFlight>) -> Result<(), String> {
    let Some((task, batch)) = pending.take() else {
        return Ok(());
    };
    task.await.map_err(|e| e.to_string())??;
    commit_batch(consumer, &batch).await;
    Ok(())
}

/// Whether a durable half is in flight and not finished yet.
fn running(pending: Option<&InFlight>) -> bool {
    pending.is_some_and(|(task, _)| !task.is_finished())
}

/// Runs CPU-bound work from an async task: on a multi-threaded runtime the thread hands its other
/// tasks to another thread meanwhile (`block_in_place`; a blocking-pool task measured slower for
/// the anchoring worker: 20,500 against 26,000 rows/s); on a current-thread runtime, where that
/// is not allowed, it simply runs.
pub fn cpu_bound<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl Stage {
    /// Runs until `stop` turns true: `cpu` turns each batch into work for `durable`, whose future
    /// is spawned. A failure of either (or of the subscription) is logged, and after a back-off
    /// of 1 s per consecutive failure (at most 30 s) the group is joined again from its
    /// committed offsets.
    ///
    /// # Errors
    /// The bus refused the subscription.
    pub async fn run<T, Cpu, Durable, Fut>(
        &self,
        bus: &Arc<dyn Bus>,
        mut stop: tokio::sync::watch::Receiver<bool>,
        mut cpu: Cpu,
        mut durable: Durable,
    ) -> Result<(), String>
    where
        Cpu: FnMut(&[Delivered]) -> Result<T, String>,
        Durable: FnMut(T) -> Fut,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let name = self.name;
        let subscribe = || async {
            bus.subscribe(&self.group, &self.topics)
                .await
                .map_err(|e| format!("subscribing {} to {:?}: {e}", self.group, self.topics))
        };
        let mut consumer = subscribe().await?;
        let mut failures = 0u32;
        let mut pending: Option<InFlight> = None;
        while !*stop.borrow() {
            // With a durable half in flight, only take what is already there.
            let wait = if pending.is_some() {
                Duration::from_millis(10)
            } else {
                self.idle_wait
            };
            let batch = tokio::select! {
                r = consumer.poll(self.batch, wait) => r,
                _ = stop.changed() => break,
            };
            let outcome = match batch {
                // While the durable half runs, keep looking for the next batch, so that its CPU
                // half overlaps the durable one even when records arrive after the first look.
                Ok(batch) if batch.is_empty() && running(pending.as_ref()) => Ok(()),
                Ok(batch) if batch.is_empty() => settle(&mut *consumer, &mut pending).await,
                Ok(batch) => {
                    let started = std::time::Instant::now();
                    let work = cpu_bound(|| cpu(&batch));
                    tracing::debug!(
                        stage = name,
                        records = batch.len(),
                        cpu_ms = started.elapsed().as_millis(),
                        "a batch through the CPU half"
                    );
                    // The previous durable half settles before this batch's starts.
                    match settle(&mut *consumer, &mut pending).await.and(work) {
                        Ok(work) => {
                            pending = Some((tokio::spawn(durable(work)), batch));
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                Err(e) => {
                    tracing::warn!("{name}: reading {:?}: {e}", self.topics);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    settle(&mut *consumer, &mut pending).await
                }
            };
            match outcome {
                Ok(()) => failures = 0,
                Err(e) => {
                    // Nothing is in flight here: `settle` took it (and it finished).
                    failures += 1;
                    tracing::error!("{name}: {e}; retrying");
                    tokio::time::sleep(Duration::from_secs(u64::from(failures.min(30)))).await;
                    consumer = subscribe().await?;
                }
            }
        }
        if let Err(e) = settle(&mut *consumer, &mut pending).await {
            tracing::warn!("{name}: the last batch is read again at the next start: {e}");
        }
        Ok(())
    }
}
