//! `ledgerbridge bench mapping`: records per second through map + validate on one core, for the
//! customs declaration mapping of the sample systems, beside the limit of merely copying each
//! record (what any transform pays at least) and with the Avro encoding the worker adds.

use std::time::Instant;

use anyhow::{Context, Result};
use ledgerbridge_mappings::{Catalog, Outcome, Pseudonymiser, Source};
use serde_json::{Map, Value as J, json};

/// What to measure.
#[derive(Debug, Clone)]
pub(crate) struct MappingBench {
    pub(crate) records: usize,
}

/// `1250000` as `1,250,000`, as legacy systems write won amounts.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rows(n: usize) -> Vec<Map<String, J>> {
    (0..n)
        .map(|i| {
            let amount = 50_000 + (i * 7919) % 2_000_000;
            let thousands = grouped(amount);
            let mut m = Map::new();
            m.insert("id".into(), json!(i));
            m.insert("declaration_no".into(), json!(format!("D{:011}", i)));
            m.insert("order_no".into(), json!(format!("ORD{:09}", i)));
            m.insert("hbl_no".into(), json!(format!("HBL{:09}", i)));
            m.insert("consignee_nm".into(), json!("김민준"));
            m.insert("customs_id".into(), json!(format!("P{:012}", i % 50_000)));
            m.insert("declared_amt".into(), json!(thousands));
            m.insert(
                "gross_wt_kg".into(),
                json!(format!("{}.{}", 1 + i % 30, i % 10)),
            );
            m.insert("pkg_cnt".into(), json!(1 + i % 4));
            m.insert(
                "declare_ymd".into(),
                json!(format!("202611{:02}", 1 + i % 28)),
            );
            m.insert(
                "clear_status_cd".into(),
                json!(if i % 3 == 0 { "01" } else { "02" }),
            );
            m.insert("updated_at".into(), json!("2026-11-02 09:00:00.000"));
            m
        })
        .collect()
}

fn schema_of(
    m: &ledgerbridge_mappings::Mapping,
) -> Result<std::sync::Arc<ledgerbridge_mappings::CanonicalSchema>> {
    m.schemas()
        .into_iter()
        .next()
        .context("the mapping's schema")
}

/// Runs the benchmark on this thread (one core) and prints the figures.
pub(crate) fn mapping(opts: &MappingBench) -> Result<()> {
    let catalog = Catalog::builtin().context("the shipped schemas")?;
    let (file, text) = ledgerbridge_mappings::SAMPLE_SPECS
        .iter()
        .find(|(f, _)| f.contains("customs_declarations"))
        .context("the customs declaration mapping is shipped")?;
    let mapping =
        ledgerbridge_mappings::load(text, file, &catalog).map_err(|e| anyhow::anyhow!("{e}"))?;
    let p = Pseudonymiser::new(b"bench key");
    let source = Source {
        connector: "sample-mall".into(),
        table: "customs_declarations".into(),
        key: "1".into(),
        position: "rowid=1".into(),
        extracted_at: 0,
    };
    let input = rows(opts.records);

    // The limit: copy every record once.
    let started = Instant::now();
    let mut copied = 0usize;
    for r in &input {
        let c = std::hint::black_box(r.clone());
        copied += c.len();
    }
    let copy_rate = opts.records as f64 / started.elapsed().as_secs_f64();
    std::hint::black_box(copied);

    // Map + validate.
    let started = Instant::now();
    // Events are dropped as they are made, as the worker drops them once published (keeping
    // 300,000 of them would measure the page faults of a growing heap); a sample is kept for the
    // encoding figure.
    let keep = opts.records.min(20_000);
    let mut events = Vec::with_capacity(keep);
    let mut failed = 0usize;
    let mut first_failure = None;
    for r in &input {
        match mapping.apply(r, &source, &p) {
            Outcome::Event(e) if events.len() < keep => events.push(e),
            Outcome::Event(e) => drop(std::hint::black_box(e)),
            other => {
                failed += 1;
                first_failure.get_or_insert(other);
            }
        }
    }
    let elapsed = started.elapsed();
    let rate = opts.records as f64 / elapsed.as_secs_f64();
    anyhow::ensure!(
        failed == 0,
        "{failed} records failed, the benchmark's rows are wrong: {first_failure:?}"
    );

    // Of which: the JSON Schema validation alone, on the events' data.
    let started = Instant::now();
    let mut invalid = 0usize;
    for e in &events {
        invalid += schema_of(&mapping)?.violations(&e.json["data"]).len();
    }
    let validate_rate = events.len() as f64 / started.elapsed().as_secs_f64();
    std::hint::black_box(invalid);

    // The worker also encodes each event as Avro.
    let schema = schema_of(&mapping)?;
    let avro = ledgerbridge_mappings::avro::canonical_schema(&schema.json)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    let mut bytes = 0usize;
    for e in &events {
        bytes += ledgerbridge_mappings::avro::encode(&avro, 1, &e.json)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .len();
    }
    let encode_rate = events.len() as f64 / started.elapsed().as_secs_f64();
    std::hint::black_box(bytes);

    println!(
        "mapping benchmark: {} customs declarations through `{}` (8 fields: won amounts, dates, decimals, a code table, a keyed pseudonym) on one core\n",
        opts.records, mapping.spec.name
    );
    println!("{:<44} {:>14}", "", "records/s");
    println!("{:<44} {:>14.0}", "map + validate (JSON Schema)", rate);
    println!(
        "{:<44} {:>14.0}",
        "  of which validation alone", validate_rate
    );
    println!(
        "{:<44} {:>14.0}",
        "map + validate + Avro encode (the worker)",
        1.0 / (1.0 / rate + 1.0 / encode_rate)
    );
    println!(
        "{:<44} {:>14.0}",
        "limit: copying each record once", copy_rate
    );
    println!(
        "\ntarget (issue 5): ≥ 200,000 records/s per core for map + validate (JSLT publishes ~64,000 docs/s per thread)"
    );
    Ok(())
}
