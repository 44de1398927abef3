//! Scheduling lanes. The stages upstream of the ledger (the connectors and the mapping worker)
//! run on a runtime of their own whose threads have a lower scheduling priority (a higher nice
//! value) than the anchoring worker's. On a node with fewer cores than busy stages, the stages
//! nearest the ledger then get a core whenever they have work and the upstream stages fill the
//! rest: a backlog drains from the downstream end, and the ledger's serial appends are not left
//! alone at the end with a pile of mapped records (`bench pipeline`: docs/benchmarks.md). Nice
//! values only order the runnable threads; an idle downstream leaves the upstream lane every
//! core, so nothing is slower on a quiet node.

use std::future::Future;

use anyhow::{Context, Result};

/// How many nice steps the upstream lane runs below the node's threads (0 is the default nice
/// value, 19 the lowest).
pub(crate) const UPSTREAM_NICE: i32 = 10;

/// The calling thread's nice value (0 when it cannot be read).
fn current_nice() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(0)
}

/// Sets the calling thread's nice value. A failure (a system without per-thread priorities, a
/// sandbox refusing the call) only loses the ordering, so it is logged, not returned.
fn set_nice(nice: i32) {
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice) {
        tracing::debug!("cannot lower the priority of an upstream thread: {e}");
    }
}

/// A runtime whose threads (two workers, one per core of the smallest supported machine, and its
/// blocking pool) run at a lower priority. `shutdown` gives its blocking work a grace to end;
/// dropping it cancels what still runs on it at once. The node waits for its stages first.
pub(crate) struct Lane {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl Lane {
    /// A lane `by` nice steps below the calling thread.
    ///
    /// # Errors
    /// The runtime's threads cannot be started.
    pub(crate) fn lowered(name: &str, by: i32) -> Result<Self> {
        let nice = current_nice().saturating_add(by).min(19);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .on_thread_start(move || set_nice(nice))
            .enable_all()
            .build()
            .with_context(|| format!("cannot start the {name} runtime"))?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    /// The runtime's handle: `spawn` runs a task on the lane, `enter` makes code that spawns
    /// (the connectors' start) spawn there.
    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Stops the lane: its tasks are cancelled, and blocking work still running on it (a
    /// connector's read, the mapping worker's last delivery) gets up to `grace` to end, as the
    /// node's main runtime gives its own.
    pub(crate) async fn shutdown(mut self, grace: std::time::Duration) {
        if let Some(runtime) = self.runtime.take() {
            // A runtime cannot be shut down with a wait from async code; a blocking thread can.
            if tokio::task::spawn_blocking(move || runtime.shutdown_timeout(grace))
                .await
                .is_err()
            {
                tracing::warn!("the upstream lane's shutdown did not finish");
            }
        }
    }

    /// Runs `work` on the lane.
    pub(crate) fn spawn<F>(&self, work: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle().spawn(work)
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        // Dropping a runtime from async code would block; this does not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_runs_its_tasks_below_the_callers_priority() {
        let before = current_nice();
        let lane = Lane::lowered("lane-test", 3).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (on_lane, blocking) = runtime.block_on(async {
            let on_lane = lane.spawn(async { current_nice() }).await.unwrap();
            let blocking = lane
                .spawn(async { tokio::task::spawn_blocking(current_nice).await.unwrap() })
                .await
                .unwrap();
            (on_lane, blocking)
        });
        let expected = (before + 3).min(19);
        assert_eq!(on_lane, expected, "a worker thread of the lane");
        assert_eq!(blocking, expected, "a blocking thread of the lane");
        assert_eq!(
            current_nice(),
            before,
            "the caller's own priority is untouched"
        );
    }

    #[test]
    fn a_lane_shut_down_gives_its_blocking_work_the_grace_to_end() {
        let lane = Lane::lowered("lane-stop", 0).unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let flag = std::sync::Arc::clone(&done);
        drop(lane.spawn(async move {
            tokio::task::spawn_blocking(move || {
                started_tx.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(300));
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            })
            .await
        }));
        started_rx.recv().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        runtime.block_on(lane.shutdown(std::time::Duration::from_secs(5)));
        assert!(
            done.load(std::sync::atomic::Ordering::SeqCst),
            "the blocking work was abandoned"
        );
    }
}
