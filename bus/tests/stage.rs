//! The consuming stage's loop (`ledgerbridge_bus::Stage`) on the embedded log: how its CPU half
//! overlaps its durable half, and what it commits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledgerbridge_bus::{Bus, EmbeddedLog, EmbeddedLogOptions, Record, Stage};

fn records(from: usize, n: usize) -> Vec<Record> {
    (from..from + n)
        .map(|i| Record::new(Some(format!("k{i}").into_bytes()), vec![1, 2, 3]))
        .collect()
}

/// Records that arrive while a batch's durable half runs, after the stage first found nothing,
/// go through their CPU half at once, not once the durable half is done: a slow append must
/// not leave the decoding of the next batch waiting behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_arriving_during_a_durable_half_go_through_their_cpu_half_before_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let bus: Arc<dyn Bus> =
        Arc::new(EmbeddedLog::open(dir.path(), EmbeddedLogOptions::default()).unwrap());
    bus.publish("stage.in", records(0, 5)).await.unwrap();

    let stage = Stage {
        name: "test stage",
        group: "stage-test".into(),
        topics: vec!["stage.in".into()],
        batch: 100,
        idle_wait: Duration::from_millis(50),
    };
    // Each CPU half reports its batch's size; the first durable half waits for `release`.
    let (cpu_tx, mut cpu_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let release = Arc::new(tokio::sync::Notify::new());
    let durable_done = Arc::new(Mutex::new(Vec::<usize>::new()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let running = {
        let (bus, release, durable_done) = (
            Arc::clone(&bus),
            Arc::clone(&release),
            Arc::clone(&durable_done),
        );
        tokio::spawn(async move {
            let mut first = true;
            stage
                .run(
                    &bus,
                    stop_rx,
                    |batch| {
                        cpu_tx.send(batch.len()).unwrap();
                        Ok(batch.len())
                    },
                    |n| {
                        let wait = std::mem::take(&mut first).then(|| Arc::clone(&release));
                        let durable_done = Arc::clone(&durable_done);
                        async move {
                            if let Some(release) = wait {
                                release.notified().await;
                            }
                            durable_done.lock().unwrap().push(n);
                            Ok(())
                        }
                    },
                )
                .await
        })
    };

    let first = tokio::time::timeout(Duration::from_secs(10), cpu_rx.recv()).await;
    assert_eq!(
        first.unwrap(),
        Some(5),
        "the first batch holds what was published"
    );
    // Let the stage look, find nothing more, and go on waiting while the first append is held.
    tokio::time::sleep(Duration::from_millis(300)).await;
    bus.publish("stage.in", records(5, 3)).await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), cpu_rx.recv()).await;
    assert_eq!(
        second.expect("the second batch waited for the first one's durable half"),
        Some(3)
    );
    assert!(
        durable_done.lock().unwrap().is_empty(),
        "the first durable half was still held"
    );

    release.notify_one();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while durable_done.lock().unwrap().len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        *durable_done.lock().unwrap(),
        vec![5, 3],
        "durable halves in order"
    );
    stop_tx.send(true).unwrap();
    running.await.unwrap().unwrap();

    // Both batches were committed: the group has nothing left to read.
    let mut again = bus
        .subscribe("stage-test", &["stage.in".to_owned()])
        .await
        .unwrap();
    let left = again.poll(100, Duration::from_millis(300)).await.unwrap();
    assert!(left.is_empty(), "{} records read again", left.len());
}
