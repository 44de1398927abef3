//! Evaluation on a generated scenario: the load generator writes all four domains with
//! labelled anomalies into SQLite and manifest files; the rows are mapped with the sample
//! mappings and fed to the shipped rules; every rule is scored against the labels.

use ledgerbridge_monitoring::eval;
use ledgerbridge_monitoring::rules;

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn shipped_rules_against_a_generated_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = eval::generate(dir.path(), 7, 60_000, 0.03).await.unwrap();
    let labels = eval::read_labels(&scenario.labels).unwrap();
    let events = eval::load_events(&scenario, b"eval-test-pseudonym-key").unwrap();
    assert!(
        events.failures.is_empty(),
        "{:?}",
        &events.failures[..events.failures.len().min(5)]
    );
    let rules = rules::builtin_set().unwrap();
    let report = eval::evaluate(&rules, &events.events, &labels);
    println!("{report}");
    for r in &report.rules {
        for x in &r.false_examples {
            println!("  false positive {}: {x}", r.rule);
        }
    }
    let b = eval::bench(&rules, &events.events, 10_000.0, 2.0);
    println!("{b}");
    for r in &report.rules {
        assert!(
            r.labels > 0,
            "{}: no {} labels in the scenario",
            r.rule,
            r.kind
        );
        assert!(r.recall() >= 0.95, "{}: recall {:.3}", r.rule, r.recall());
        assert!(
            r.precision() >= 0.90,
            "{}: precision {:.3}",
            r.rule,
            r.precision()
        );
    }
}
