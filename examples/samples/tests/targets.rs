//! The load generator against the real targets: PostgreSQL, MariaDB, SQLite and manifest
//! directories. Each test gets its own database (`lb_samples_<test>_<pid>`), dropped at the end.
//!
//! PostgreSQL: `LEDGERBRIDGE_TEST_PG` (default `postgres://postgres@127.0.0.1:5432`).
//! MariaDB: `LEDGERBRIDGE_TEST_MARIADB` (default `mysql://root@127.0.0.1:3306`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use diesel::{Connection, RunQueryDsl, SqliteConnection};
use ledgerbridge_samples::domains::default_start;
use ledgerbridge_samples::labels::{self, Label};
use ledgerbridge_samples::manifest;
use ledgerbridge_samples::model::{AnomalyKind, Domain};
use ledgerbridge_samples::run::{RunConfig, RunReport, run};
use ledgerbridge_samples::sink::Target;
use mysql_async::prelude::Queryable;

fn pg_base() -> String {
    std::env::var("LEDGERBRIDGE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
        .trim_end_matches('/')
        .to_owned()
}

fn maria_base() -> String {
    std::env::var("LEDGERBRIDGE_TEST_MARIADB")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
        .trim_end_matches('/')
        .to_owned()
}

/// A throw-away database, dropped when the guard goes out of scope (also on a failed test).
struct TempDb {
    kind: Kind,
    name: String,
}

#[derive(Clone, Copy)]
enum Kind {
    Postgres,
    MariaDb,
}

impl TempDb {
    async fn create(kind: Kind, test: &str) -> (Self, String) {
        let name = format!("lb_samples_{test}_{}", std::process::id());
        admin(kind, &format!("DROP DATABASE IF EXISTS {name}")).await;
        let create = match kind {
            Kind::Postgres => format!("CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"),
            Kind::MariaDb => format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"),
        };
        admin(kind, &create).await;
        let url = match kind {
            Kind::Postgres => format!("{}/{name}", pg_base()),
            Kind::MariaDb => format!("{}/{name}", maria_base()),
        };
        (Self { kind, name }, url)
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let (kind, sql) = (self.kind, format!("DROP DATABASE IF EXISTS {}", self.name));
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(admin(kind, &sql));
        })
        .join();
    }
}

async fn admin(kind: Kind, sql: &str) {
    match kind {
        Kind::Postgres => {
            let url = format!("{}/postgres", pg_base());
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {url}: {e}"));
            let task = tokio::spawn(conn);
            client
                .batch_execute(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
                    sql.rsplit(' ').next().unwrap()
                ))
                .await
                .unwrap();
            client.batch_execute(sql).await.unwrap();
            drop(client);
            let _ = task.await;
        }
        Kind::MariaDb => {
            let url = maria_base();
            let mut conn = mysql_async::Conn::from_url(&url)
                .await
                .unwrap_or_else(|e| panic!("MariaDB at {url}: {e}"));
            conn.query_drop(sql).await.unwrap();
            conn.disconnect().await.unwrap();
        }
    }
}

/// Read access to a target database, for the checks.
enum Db {
    Pg(tokio_postgres::Client),
    Maria(mysql_async::Conn),
    Lite(SqliteConnection),
}

#[derive(diesel::QueryableByName)]
struct N {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

impl Db {
    async fn open(target: &str) -> Self {
        if target.starts_with("postgres") {
            let (client, conn) = tokio_postgres::connect(target, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            Self::Pg(client)
        } else if target.starts_with("mysql") {
            Self::Maria(mysql_async::Conn::from_url(target).await.unwrap())
        } else {
            let path = target.strip_prefix("sqlite:").unwrap();
            Self::Lite(SqliteConnection::establish(path).unwrap())
        }
    }

    /// A query returning one integer, named `n`.
    async fn count(&mut self, sql: &str) -> i64 {
        match self {
            Self::Pg(c) => {
                let sql = format!("SELECT ({sql})::bigint");
                c.query_one(&sql, &[])
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .get(0)
            }
            Self::Maria(c) => c
                .query_first::<i64, _>(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .unwrap(),
            Self::Lite(c) => {
                let sql = format!("SELECT ({sql}) AS n");
                diesel::sql_query(&sql)
                    .get_result::<N>(c)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .n
            }
        }
    }
}

fn config(
    domains: &[Domain],
    targets: &[String],
    count: u64,
    seed: u64,
    labels: &Path,
) -> RunConfig {
    RunConfig {
        domains: domains.to_vec(),
        targets: targets.iter().map(|t| Target::parse(t).unwrap()).collect(),
        rate: None,
        count: Some(count),
        duration: None,
        seed,
        anomaly_rate: 0.1,
        labels: Some(labels.to_owned()),
        create_schema: true,
        batch_size: 150,
        start: default_start(),
    }
}

/// Business references that must resolve, per domain: (what, query counting orphans).
const ORPHANS: &[(Domain, &str, &str)] = &[
    (
        Domain::Healthcare,
        "policy without patient",
        "SELECT COUNT(*) FROM insurance_policies x LEFT JOIN patients p ON p.patient_no = x.patient_no WHERE p.id IS NULL",
    ),
    (
        Domain::Healthcare,
        "visit without patient",
        "SELECT COUNT(*) FROM visits x LEFT JOIN patients p ON p.patient_no = x.patient_no WHERE p.id IS NULL",
    ),
    (
        Domain::Healthcare,
        "visit at unknown hospital",
        "SELECT COUNT(*) FROM visits x LEFT JOIN hospitals h ON h.hospital_cd = x.hospital_cd WHERE h.id IS NULL",
    ),
    (
        Domain::Healthcare,
        "treatment without visit",
        "SELECT COUNT(*) FROM treatments x LEFT JOIN visits v ON v.visit_no = x.visit_no AND v.patient_no = x.patient_no WHERE v.id IS NULL",
    ),
    (
        Domain::Healthcare,
        "treatment with unknown procedure",
        "SELECT COUNT(*) FROM treatments x LEFT JOIN procedure_codes p ON p.proc_cd = x.proc_cd WHERE p.id IS NULL",
    ),
    (
        Domain::Healthcare,
        "invoice without visit",
        "SELECT COUNT(*) FROM invoices x LEFT JOIN visits v ON v.visit_no = x.visit_no WHERE v.id IS NULL",
    ),
    (
        Domain::Healthcare,
        "claim without its treatment",
        "SELECT COUNT(*) FROM claims x LEFT JOIN treatments t ON t.treatment_no = x.treatment_no AND t.proc_cd = x.proc_cd AND t.treat_ymd = x.treat_ymd AND t.patient_no = x.patient_no WHERE t.id IS NULL",
    ),
    (
        Domain::Healthcare,
        "claim on another patient's policy",
        "SELECT COUNT(*) FROM claims x LEFT JOIN insurance_policies p ON p.policy_no = x.policy_no AND p.patient_no = x.patient_no WHERE p.id IS NULL",
    ),
    (
        Domain::Customs,
        "declaration without order",
        "SELECT COUNT(*) FROM customs_declarations x LEFT JOIN mall_orders o ON o.order_no = x.order_no AND o.customs_id = x.customs_id AND o.consignee_nm = x.consignee_nm WHERE o.id IS NULL",
    ),
    (
        Domain::Customs,
        "order without declaration",
        "SELECT COUNT(*) FROM mall_orders x LEFT JOIN customs_declarations d ON d.order_no = x.order_no WHERE d.id IS NULL",
    ),
    (
        Domain::Land,
        "parcel in unknown district",
        "SELECT COUNT(*) FROM parcels x LEFT JOIN districts d ON d.district_cd = x.district_cd WHERE d.id IS NULL",
    ),
    (
        Domain::Land,
        "title without parcel",
        "SELECT COUNT(*) FROM titles x LEFT JOIN parcels p ON p.pnu = x.pnu WHERE p.id IS NULL",
    ),
    (
        Domain::Land,
        "transfer without parcel",
        "SELECT COUNT(*) FROM title_transfers x LEFT JOIN parcels p ON p.pnu = x.pnu WHERE p.id IS NULL",
    ),
    (
        Domain::Land,
        "transfer whose buyer did not get the title",
        "SELECT COUNT(*) FROM title_transfers x LEFT JOIN titles t ON t.pnu = x.pnu AND t.owner_rrn = x.buyer_rrn AND t.acquired_ymd = x.contract_ymd WHERE t.id IS NULL",
    ),
    (
        Domain::Land,
        "parcel without exactly one current title",
        "SELECT COUNT(*) FROM parcels p WHERE (SELECT COUNT(*) FROM titles t WHERE t.pnu = p.pnu AND t.title_status_cd = '01') <> 1",
    ),
    (
        Domain::Land,
        "mortgage without parcel",
        "SELECT COUNT(*) FROM mortgages x LEFT JOIN parcels p ON p.pnu = x.pnu WHERE p.id IS NULL",
    ),
    (
        Domain::Bank,
        "transfer from unknown account",
        "SELECT COUNT(*) FROM transfers x LEFT JOIN accounts a ON a.account_no = x.from_account_no WHERE a.id IS NULL",
    ),
    (
        Domain::Bank,
        "transfer to unknown account",
        "SELECT COUNT(*) FROM transfers x LEFT JOIN accounts a ON a.account_no = x.to_account_no WHERE a.id IS NULL",
    ),
    (
        Domain::Bank,
        "remittance from unknown account",
        "SELECT COUNT(*) FROM remittances x LEFT JOIN accounts a ON a.account_no = x.account_no WHERE a.id IS NULL",
    ),
];

/// The checks every target gets: row counts as reported, business references resolve, every
/// label points at existing rows of the right kind of table, manifests decode and match.
async fn check(
    db: &mut Db,
    domains: &[Domain],
    report: &RunReport,
    labels_file: &Path,
    manifest_dir: Option<&Path>,
) {
    for (table, n) in &report.inserted {
        if table == "courier_manifest" {
            continue;
        }
        let got = db.count(&format!("SELECT COUNT(*) FROM {table}")).await;
        assert_eq!(got, i64::try_from(*n).unwrap(), "rows in {table}");
    }
    for (domain, what, sql) in ORPHANS {
        if domains.contains(domain) {
            assert_eq!(db.count(sql).await, 0, "{what}");
        }
    }
    let labels = labels::read(labels_file).unwrap();
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for l in &labels {
        *by_kind.entry(l.kind.clone()).or_default() += 1;
    }
    assert_eq!(by_kind, report.labels, "labels file vs report");
    for domain in domains {
        for kind in AnomalyKind::of(*domain) {
            assert!(by_kind.contains_key(kind.as_str()), "no {kind} label");
        }
    }
    let manifests = manifest_dir.map(read_manifests).unwrap_or_default();
    for l in &labels {
        check_label(db, l, &manifests).await;
    }
    if let Some(dir) = manifest_dir {
        let details: usize = manifests.values().map(Vec::len).sum();
        assert_eq!(
            details as u64,
            report
                .inserted
                .get("courier_manifest")
                .copied()
                .unwrap_or(0),
            "manifest records in {}",
            dir.display()
        );
        for records in manifests.values() {
            for r in records {
                let sql = format!(
                    "SELECT COUNT(*) FROM customs_declarations d JOIN mall_orders o ON o.order_no = d.order_no \
                     WHERE d.hbl_no = '{}' AND d.order_no = '{}' AND d.consignee_nm = '{}' AND o.consignee_addr = '{}' AND d.customs_id = '{}'",
                    r["hbl_no"],
                    r["order_no"],
                    r["consignee_nm"],
                    r["consignee_addr"],
                    r["customs_id"]
                );
                assert_eq!(db.count(&sql).await, 1, "manifest record {r:?}");
            }
        }
        let decls = db.count("SELECT COUNT(*) FROM customs_declarations").await;
        assert_eq!(
            decls,
            i64::try_from(details).unwrap(),
            "one manifest record per declaration"
        );
    }
}

async fn check_label(
    db: &mut Db,
    l: &Label,
    manifests: &HashMap<String, Vec<BTreeMap<&'static str, String>>>,
) {
    let kind = AnomalyKind::ALL
        .into_iter()
        .find(|k| k.as_str() == l.kind)
        .unwrap_or_else(|| panic!("unknown kind {}", l.kind));
    assert_eq!(kind.domain().as_str(), l.domain);
    assert!(!l.rows.is_empty() && !l.business_keys.is_empty(), "{l:?}");
    chrono::DateTime::parse_from_rfc3339(&l.at).unwrap();
    for r in &l.rows {
        if let Some(file) = r.table.strip_prefix("courier_manifest/") {
            let records = manifests
                .get(file)
                .unwrap_or_else(|| panic!("no manifest {file}"));
            let idx = usize::try_from(r.pk - 2).unwrap();
            let rec = records
                .get(idx)
                .unwrap_or_else(|| panic!("{file} has no line {}", r.pk));
            assert!(l.business_keys.contains(&rec["hbl_no"]), "{l:?} vs {rec:?}");
            continue;
        }
        let expected: &[&str] = match kind {
            AnomalyKind::Undervaluation => &["mall_orders", "customs_declarations"],
            AnomalyKind::SplitShipment | AnomalyKind::ManifestMismatch => &["customs_declarations"],
            AnomalyKind::DuplicateClaim | AnomalyKind::ClaimAmountOutlier => &["claims"],
            AnomalyKind::TreatmentOutsidePolicy => &["claims", "insurance_policies"],
            AnomalyKind::MortgagedTransfer => &["title_transfers", "mortgages"],
            AnomalyKind::QuickResale | AnomalyKind::PriceOutlier | AnomalyKind::SellerNotOwner => {
                &["title_transfers"]
            }
            _ => &["transfers"],
        };
        assert!(expected.contains(&r.table.as_str()), "{l:?}");
        let n = db
            .count(&format!(
                "SELECT COUNT(*) FROM {} WHERE id = {}",
                r.table, r.pk
            ))
            .await;
        assert_eq!(n, 1, "{} id {} of label {l:?}", r.table, r.pk);
    }
}

/// Every manifest file, decoded with the declared layout: file name → detail records.
fn read_manifests(dir: &Path) -> HashMap<String, Vec<BTreeMap<&'static str, String>>> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("MF") && name.ends_with(".txt"),
            "stray file {name}"
        );
        let bytes = std::fs::read(&path).unwrap();
        // every line is exactly one record plus CR LF
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            assert_eq!(line.len(), manifest::RECORD_LEN + 2, "{name}");
            assert!(manifest::strict_euc_kr(line), "{name}");
        }
        let file = manifest::decode_file(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(file.header["carrier_cd"], manifest::CARRIER);
        for d in &file.details {
            assert_eq!(d["rec_type"], "D");
            assert!(
                d["consignee_nm"]
                    .chars()
                    .all(|c| ('가'..='힣').contains(&c)),
                "{d:?}"
            );
            assert!(
                d["arrival_ymd"].len() == 8 && d["hbl_no"].starts_with("HB"),
                "{d:?}"
            );
            assert!(d["gross_wt"].parse::<i64>().unwrap() > 0, "{d:?}");
        }
        out.insert(name, file.details);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_customs_and_land_with_manifest_files() {
    let (_db, url) = TempDb::create(Kind::Postgres, "pg").await;
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    let labels = dir.path().join("labels.jsonl");
    let domains = [Domain::Customs, Domain::Land];
    let targets = [url.clone(), manifests.display().to_string()];
    let report = run(
        &config(&domains, &targets, 4_000, 7, &labels),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert!(
        report.rows() >= 4_000 && report.manifest_files > 1,
        "{report:?}"
    );
    let mut db = Db::open(&url).await;
    check(&mut db, &domains, &report, &labels, Some(&manifests)).await;
    for t in [
        "mall_orders",
        "customs_declarations",
        "parcels",
        "titles",
        "title_transfers",
        "mortgages",
    ] {
        let sql = format!(
            "SELECT COUNT(*) FROM pg_indexes WHERE tablename = '{t}' AND indexdef LIKE '%(updated_at)%'"
        );
        assert_eq!(db.count(&sql).await, 1, "index on {t}.updated_at");
    }
    // A second run into the same database: the schema applies again, keys continue.
    let labels2 = dir.path().join("labels2.jsonl");
    let second = run(
        &config(&domains, &targets, 1_000, 8, &labels2),
        std::future::pending(),
    )
    .await
    .unwrap();
    let mut total = report.clone();
    for (t, n) in second.inserted {
        *total.inserted.entry(t).or_default() += n;
    }
    total.labels = second.labels;
    check(&mut db, &domains, &total, &labels2, Some(&manifests)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_healthcare_and_bank() {
    let (_db, url) = TempDb::create(Kind::MariaDb, "maria").await;
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels.jsonl");
    let domains = [Domain::Healthcare, Domain::Bank];
    let report = run(
        &config(&domains, std::slice::from_ref(&url), 5_000, 7, &labels),
        std::future::pending(),
    )
    .await
    .unwrap();
    let mut db = Db::open(&url).await;
    check(&mut db, &domains, &report, &labels, None).await;
    let korean = db
        .count("SELECT COUNT(*) FROM patients WHERE patient_nm REGEXP '^[가-힣]{3}$'")
        .await;
    assert_eq!(
        korean,
        db.count("SELECT COUNT(*) FROM patients").await,
        "Korean names survive"
    );
    let idx = db
        .count("SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() AND column_name = 'updated_at'")
        .await;
    assert_eq!(
        idx, 11,
        "an updated_at index on every HIS and banking table"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_all_four_domains() {
    let dir = tempfile::tempdir().unwrap();
    let target = format!("sqlite:{}", dir.path().join("legacy.db").display());
    let manifests = dir.path().join("manifests");
    let labels = dir.path().join("labels.jsonl");
    let targets = [target.clone(), manifests.display().to_string()];
    let report = run(
        &config(&Domain::ALL, &targets, 8_000, 3, &labels),
        std::future::pending(),
    )
    .await
    .unwrap();
    let mut db = Db::open(&target).await;
    check(&mut db, &Domain::ALL, &report, &labels, Some(&manifests)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_labels_and_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..2 {
        let target = format!("sqlite:{}", dir.path().join(format!("{i}.db")).display());
        let labels = dir.path().join(format!("{i}.jsonl"));
        let m = dir.path().join(format!("m{i}"));
        let targets = [target, m.display().to_string()];
        run(
            &config(&Domain::ALL, &targets, 2_000, 99, &labels),
            std::future::pending(),
        )
        .await
        .unwrap();
        files.push((
            std::fs::read(&labels).unwrap(),
            std::fs::read(m.join("MF000001.txt")).unwrap(),
        ));
    }
    assert!(!files[0].0.is_empty());
    assert_eq!(files[0], files[1]);
}

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ledgerbridge-loadgen"))
}

#[test]
fn cli_writes_at_a_rate_and_refuses_a_target_that_cannot_hold_the_system() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let labels: PathBuf = dir.path().join("labels.jsonl");
    let out = loadgen()
        .args([
            "--domain", "bank", "--rate", "2000", "--count", "600", "--seed", "4",
        ])
        .args(["--anomaly-rate", "0.2", "--create-schema"])
        .arg("--target")
        .arg(format!("sqlite:{}", db.display()))
        .arg("--labels")
        .arg(&labels)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("transfers"), "{stdout}");
    assert!(!labels::read(&labels).unwrap().is_empty());

    let out = loadgen()
        .args([
            "--domain",
            "healthcare",
            "--count",
            "10",
            "--target",
            "postgres://postgres@127.0.0.1:1/x",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("hospital HIS") && stderr.contains("mysql://"),
        "{stderr}"
    );

    let out = loadgen()
        .args(["--domain", "customs", "--count", "10", "--target"])
        .arg(format!("sqlite:{}", db.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("directory target"), "{stderr}");
}
