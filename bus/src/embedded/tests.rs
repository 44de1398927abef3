use std::time::Duration;

use super::*;

fn rec(i: u64) -> Record {
    Record {
        key: Some(format!("k{i}").into_bytes()),
        value: format!("value-{i}").into_bytes(),
        headers: vec![("source".into(), b"test".to_vec())],
        timestamp_ms: 1_700_000_000_000 + i as i64,
    }
}

fn small_segments() -> EmbeddedLogOptions {
    EmbeddedLogOptions {
        segment_bytes: 200,
        fsync: true,
    }
}

async fn read_all(log: &EmbeddedLog, group: &str, topic: &str) -> Vec<Delivered> {
    let mut c = log.subscribe(group, &[topic.to_owned()]).await.unwrap();
    let mut all = Vec::new();
    loop {
        let batch = c.poll(7, Duration::from_millis(50)).await.unwrap();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

#[tokio::test]
async fn records_come_back_in_order_with_offsets_across_segments_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EmbeddedLog::open(dir.path(), small_segments()).unwrap();
        let first = log
            .publish("raw.his", (0..10).map(rec).collect())
            .await
            .unwrap();
        assert_eq!(
            first.iter().map(|p| p.offset).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        for i in 10..25 {
            let p = log.publish("raw.his", vec![rec(i)]).await.unwrap();
            assert_eq!(p[0].offset, i);
        }
        let segments = fs::read_dir(dir.path().join("topics/raw.his"))
            .unwrap()
            .count();
        assert!(segments > 3, "expected several segments, got {segments}");
    }
    let log = EmbeddedLog::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.end_offset("raw.his", 0).await.unwrap(), 25);
    let got = read_all(&log, "g", "raw.his").await;
    assert_eq!(got.len(), 25);
    for (i, d) in got.iter().enumerate() {
        assert_eq!(d.offset, i as u64);
        assert_eq!(d.record, rec(i as u64));
    }
    let middle = log.read("raw.his", 0, 11, 3).await.unwrap();
    assert_eq!(
        middle.iter().map(|d| d.offset).collect::<Vec<_>>(),
        vec![11, 12, 13]
    );
    assert!(log.read("raw.his", 0, 25, 3).await.unwrap().is_empty());
    assert!(log.read("unknown", 0, 0, 3).await.unwrap().is_empty());
    let next = log.publish("raw.his", vec![rec(25)]).await.unwrap();
    assert_eq!(next[0].offset, 25);
}

#[tokio::test]
async fn a_group_resumes_after_its_committed_offset_even_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EmbeddedLog::open(dir.path(), EmbeddedLogOptions::default()).unwrap();
        log.publish("t", (0..5).map(rec).collect()).await.unwrap();
        let mut c = log.subscribe("workers", &["t".to_owned()]).await.unwrap();
        let batch = c.poll(3, Duration::from_millis(10)).await.unwrap();
        assert_eq!(batch.len(), 3);
        c.commit("t", 0, 3).await.unwrap();
    }
    let log = EmbeddedLog::open(dir.path(), EmbeddedLogOptions::default()).unwrap();
    let rest = read_all(&log, "workers", "t").await;
    assert_eq!(
        rest.iter().map(|d| d.offset).collect::<Vec<_>>(),
        vec![3, 4]
    );
    // Another group starts from the beginning.
    assert_eq!(read_all(&log, "auditors", "t").await.len(), 5);
}

#[tokio::test]
async fn a_torn_final_append_is_cut_and_earlier_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EmbeddedLog::open(dir.path(), EmbeddedLogOptions::default()).unwrap();
        log.publish("t", (0..4).map(rec).collect()).await.unwrap();
    }
    let seg = dir.path().join("topics/t").join(segment_file_name(0));
    let full = fs::metadata(&seg).unwrap().len();
    // Simulate a crash half-way through writing a fifth frame.
    let mut extra = Vec::new();
    encode_frame(&mut extra, 4, &rec(4)).unwrap();
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&extra[..extra.len() / 2]).unwrap();
    drop(f);

    let log = EmbeddedLog::open(dir.path(), EmbeddedLogOptions::default()).unwrap();
    assert_eq!(fs::metadata(&seg).unwrap().len(), full);
    assert_eq!(log.end_offset("t", 0).await.unwrap(), 4);
    assert_eq!(log.publish("t", vec![rec(4)]).await.unwrap()[0].offset, 4);
    assert_eq!(read_all(&log, "g", "t").await.len(), 5);
}

#[tokio::test]
async fn damage_before_the_tail_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EmbeddedLog::open(dir.path(), small_segments()).unwrap();
        for i in 0..20 {
            log.publish("t", vec![rec(i)]).await.unwrap();
        }
    }
    let seg = dir.path().join("topics/t").join(segment_file_name(0));
    let mut bytes = fs::read(&seg).unwrap();
    bytes[20] ^= 0xFF;
    fs::write(&seg, bytes).unwrap();
    let err = EmbeddedLog::open(dir.path(), small_segments()).unwrap_err();
    assert!(matches!(err, BusError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("damaged frame at byte 0"), "{err}");
}

#[tokio::test]
async fn a_second_process_cannot_open_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let _log = EmbeddedLog::open(dir.path(), EmbeddedLogOptions::default()).unwrap();
    let err = EmbeddedLog::open(dir.path(), EmbeddedLogOptions::default()).unwrap_err();
    assert!(matches!(err, BusError::Locked(_)), "{err}");
}

#[tokio::test]
async fn a_waiting_consumer_wakes_when_records_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), EmbeddedLogOptions::default()).unwrap();
    let mut c = log.subscribe("g", &["t".to_owned()]).await.unwrap();
    let producer = log.clone();
    let handle = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        producer.publish("t", vec![rec(0)]).await.unwrap();
    });
    let batch = c.poll(10, Duration::from_secs(10)).await.unwrap();
    assert_eq!(batch.len(), 1);
    handle.await.unwrap();
}

#[tokio::test]
async fn bad_names_and_oversized_records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), EmbeddedLogOptions::default()).unwrap();
    for bad in ["", "..", "a/b", "ä", &"x".repeat(250)] {
        assert!(matches!(
            log.publish(bad, vec![rec(0)]).await,
            Err(BusError::InvalidTopic(_))
        ));
    }
    let huge = Record::new(None, vec![0; MAX_RECORD_BYTES + 1]);
    assert!(matches!(
        log.publish("t", vec![huge]).await,
        Err(BusError::TooLarge { .. })
    ));
    assert_eq!(log.end_offset("t", 0).await.unwrap(), 0);
}

#[tokio::test]
async fn concurrent_publishers_get_distinct_gapless_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(
        dir.path(),
        EmbeddedLogOptions {
            segment_bytes: 4096,
            fsync: false,
        },
    )
    .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut offsets = Vec::new();
                for i in 0..25 {
                    let p = log.publish("t", vec![rec(t * 100 + i)]).await.unwrap();
                    offsets.push(p[0].offset);
                }
                offsets
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (0..200).collect::<Vec<u64>>());
    assert_eq!(read_all(&log, "g", "t").await.len(), 200);
}
