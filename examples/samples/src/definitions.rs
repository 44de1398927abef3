//! The anomaly definitions, as executable checks over generated rows.
//!
//! These are the *reference* definitions the labels are made to: [`find`] applied to every row
//! a run wrote returns exactly the labelled anomalies (same kinds, same rows). A detector's
//! precision and recall can be measured against the labels; the tests hold the generator to
//! these definitions, so that a normal row never fits one by accident.
//!
//! | kind | definition (rows in the finding) |
//! |---|---|
//! | `undervaluation` | declaration's `declared_amt` < the order's `item_value_krw` (order, declaration) |
//! | `split_shipment` | ≥3 declarations to one `customs_id`, each < 200,000 KRW, declared within 3 calendar days, together > 200,000 (the declarations) |
//! | `manifest_mismatch` | manifest record's weight, package count or value ≠ the declaration's (declaration, manifest record) |
//! | `duplicate_claim` | ≥2 claims with the same patient, procedure and treatment date (the claims) |
//! | `claim_amount_outlier` | `claim_amt` > 3 × the procedure's `usual_amt` (claim) |
//! | `treatment_outside_policy` | `treat_ymd` outside `[start_ymd, end_ymd]` of the claim's policy (claim, policy) |
//! | `quick_resale` | two consecutive transfers of a parcel < 90 days apart (both transfers) |
//! | `price_outlier` | price per m² < ½ or > 2 × the district's `median_price_m2` (transfer) |
//! | `seller_not_owner` | seller's RRN ≠ the owner on record at the contract date (transfer) |
//! | `mortgaged_transfer` | a mortgage on the parcel registered before the contract date and not released by it (transfer, mortgage) |
//! | `structuring` | ≥3 transfers of 9,000,000–9,999,999 KRW from one customer within 24 h (the transfers) |
//! | `pass_through` | ≥1,000,000 KRW into an account and ≥90% of it out within 10 min (in, out) |
//! | `dormant_reactivation` | a transfer out of an account with no activity for ≥365 days (transfer) |
//! | `velocity_spike` | ≥10 transfers out of one account within 60 min (the transfers) |

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};

use crate::domains::{
    DISTRICTS, DORMANT_DAYS, DUTY_FREE_LIMIT_KRW, OUTLIER_FACTOR, PASS_THROUGH_MINUTES, PROCEDURES,
    REPORT_THRESHOLD_KRW, RESALE_DAYS, SPLIT_WINDOW_DAYS, STRUCTURING_FLOOR_KRW, VELOCITY_COUNT,
    VELOCITY_WINDOW_MINUTES, parse_commas, parse_ymd,
};
use crate::model::{AnomalyKind, MANIFEST_TABLE, Op, Row, RowRef, Value};

/// Rows that fit one anomaly definition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// The kind.
    pub kind: AnomalyKind,
    /// The rows, sorted.
    pub rows: BTreeSet<RowRef>,
}

fn finding(kind: AnomalyKind, rows: impl IntoIterator<Item = (&'static str, String)>) -> Finding {
    Finding {
        kind,
        rows: rows
            .into_iter()
            .map(|(table, key)| RowRef { table, key })
            .collect(),
    }
}

/// Every anomaly in `rows` (all row operations of a run, in the order written).
#[must_use]
pub fn find(rows: &[Row]) -> Vec<Finding> {
    let db = Db::new(rows);
    let mut out = Vec::new();
    healthcare(&db, &mut out);
    customs(&db, &mut out);
    land(&db, &mut out);
    bank(&db, &mut out);
    out.sort();
    out
}

/// Final state of every table: inserts with later updates applied, in insertion order.
struct Db<'a> {
    tables: HashMap<&'static str, Vec<BTreeMap<&'static str, &'a Value>>>,
    inserted: HashMap<&'static str, Vec<&'a Row>>,
}

impl<'a> Db<'a> {
    fn new(rows: &'a [Row]) -> Self {
        let mut tables: HashMap<&'static str, Vec<BTreeMap<&'static str, &'a Value>>> =
            HashMap::new();
        let mut index: HashMap<(&'static str, &'a str), usize> = HashMap::new();
        let mut inserted: HashMap<&'static str, Vec<&'a Row>> = HashMap::new();
        for row in rows {
            let list = tables.entry(row.table).or_default();
            match &row.op {
                Op::Insert => {
                    inserted.entry(row.table).or_default().push(row);
                    index.insert((row.table, row.key()), list.len());
                    list.push(row.cols.iter().map(|(c, v)| (*c, v)).collect());
                }
                Op::Update { key } => {
                    if let Some(r) = index
                        .get(&(row.table, key.as_str()))
                        .and_then(|i| list.get_mut(*i))
                    {
                        for (c, v) in &row.cols {
                            r.insert(c, v);
                        }
                    }
                }
            }
        }
        Self { tables, inserted }
    }

    /// Rows of `name` as first inserted, before any update.
    fn inserted(&self, name: &str) -> &[&'a Row] {
        self.inserted.get(name).map_or(&[], Vec::as_slice)
    }

    fn table(&self, name: &str) -> &[BTreeMap<&'static str, &'a Value>] {
        self.tables.get(name).map_or(&[], Vec::as_slice)
    }
}

type Rec<'a> = BTreeMap<&'static str, &'a Value>;

/// Items with their time, sorted by it.
type Dated<T> = Vec<(NaiveDateTime, T)>;

fn text<'a>(r: &Rec<'a>, col: &str) -> &'a str {
    r.get(col).and_then(|v| v.as_text()).unwrap_or("")
}

fn int(r: &Rec<'_>, col: &str) -> i64 {
    r.get(col).and_then(|v| v.as_int()).unwrap_or(0)
}

fn date(r: &Rec<'_>, col: &str) -> Option<NaiveDate> {
    parse_ymd(text(r, col))
}

fn ts(r: &Rec<'_>, col: &str) -> NaiveDateTime {
    r.get(col).and_then(|v| v.as_ts()).unwrap_or_default()
}

/// Split `items` (sorted by time) into groups that start at an item and take every later item
/// within `window` of it.
fn windows<T: Clone>(items: &[(NaiveDateTime, T)], window: TimeDelta) -> Vec<Vec<T>> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let start = items[i].0;
        let mut j = i;
        while j < items.len() && items[j].0 - start <= window {
            j += 1;
        }
        groups.push(items[i..j].iter().map(|(_, t)| t.clone()).collect());
        i = j;
    }
    groups
}

fn healthcare(db: &Db<'_>, out: &mut Vec<Finding>) {
    let claims = db.table("claims");
    let mut same: BTreeMap<(&str, &str, &str), Vec<String>> = BTreeMap::new();
    for c in claims {
        same.entry((
            text(c, "patient_no"),
            text(c, "proc_cd"),
            text(c, "treat_ymd"),
        ))
        .or_default()
        .push(text(c, "claim_no").to_owned());
    }
    for group in same.into_values().filter(|g| g.len() >= 2) {
        out.push(finding(
            AnomalyKind::DuplicateClaim,
            group.into_iter().map(|k| ("claims", k)),
        ));
    }
    for c in claims {
        let usual = PROCEDURES
            .iter()
            .find(|p| p.0 == text(c, "proc_cd"))
            .map_or(i64::MAX / 4, |p| p.2);
        if int(c, "claim_amt") > OUTLIER_FACTOR * usual {
            out.push(finding(
                AnomalyKind::ClaimAmountOutlier,
                [("claims", text(c, "claim_no").to_owned())],
            ));
        }
    }
    let policies: HashMap<&str, &Rec<'_>> = db
        .table("insurance_policies")
        .iter()
        .map(|p| (text(p, "policy_no"), p))
        .collect();
    for c in claims {
        let Some(p) = policies.get(text(c, "policy_no")) else {
            continue;
        };
        let (d, start, end) = (
            date(c, "treat_ymd"),
            date(p, "start_ymd"),
            date(p, "end_ymd"),
        );
        if d < start || d > end {
            out.push(finding(
                AnomalyKind::TreatmentOutsidePolicy,
                [
                    ("claims", text(c, "claim_no").to_owned()),
                    ("insurance_policies", text(p, "policy_no").to_owned()),
                ],
            ));
        }
    }
}

fn customs(db: &Db<'_>, out: &mut Vec<Finding>) {
    let orders: HashMap<&str, i64> = db
        .table("mall_orders")
        .iter()
        .map(|o| (text(o, "order_no"), int(o, "item_value_krw")))
        .collect();
    let manifests: HashMap<&str, &Rec<'_>> = db
        .table(MANIFEST_TABLE)
        .iter()
        .map(|m| (text(m, "hbl_no"), m))
        .collect();
    let mut small: BTreeMap<&str, Dated<(String, i64)>> = BTreeMap::new();
    for d in db.table("customs_declarations") {
        let declared = parse_commas(text(d, "declared_amt")).unwrap_or(0);
        let decl_no = text(d, "declaration_no").to_owned();
        if let Some(value) = orders.get(text(d, "order_no"))
            && declared < *value
        {
            out.push(finding(
                AnomalyKind::Undervaluation,
                [
                    ("mall_orders", text(d, "order_no").to_owned()),
                    ("customs_declarations", decl_no.clone()),
                ],
            ));
        }
        if declared < DUTY_FREE_LIMIT_KRW
            && let Some(day) = date(d, "declare_ymd")
        {
            small.entry(text(d, "customs_id")).or_default().push((
                day.and_time(chrono::NaiveTime::MIN),
                (decl_no.clone(), declared),
            ));
        }
        if let Some(m) = manifests.get(text(d, "hbl_no"))
            && (int(m, "gross_wt") != int(d, "gross_wt_kg")
                || int(m, "pkg_cnt") != int(d, "pkg_cnt")
                || int(m, "value_krw") != declared)
        {
            out.push(finding(
                AnomalyKind::ManifestMismatch,
                [
                    ("customs_declarations", decl_no),
                    (MANIFEST_TABLE, text(m, "hbl_no").to_owned()),
                ],
            ));
        }
    }
    for mut items in small.into_values() {
        items.sort();
        for group in windows(&items, TimeDelta::days(SPLIT_WINDOW_DAYS - 1)) {
            let sum: i64 = group.iter().map(|(_, v)| v).sum();
            if group.len() >= 3 && sum > DUTY_FREE_LIMIT_KRW {
                out.push(finding(
                    AnomalyKind::SplitShipment,
                    group.into_iter().map(|(k, _)| ("customs_declarations", k)),
                ));
            }
        }
    }
}

fn land(db: &Db<'_>, out: &mut Vec<Finding>) {
    let parcels: HashMap<&str, (i64, i64)> = db
        .table("parcels")
        .iter()
        .map(|p| {
            let median = DISTRICTS
                .iter()
                .find(|d| d.0 == text(p, "district_cd"))
                .map_or(0, |d| d.2);
            (text(p, "pnu"), (median, int(p, "area_m2")))
        })
        .collect();
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for t in db.table("titles") {
        if text(t, "cause_cd") != "01" {
            owner.entry(text(t, "pnu")).or_insert(text(t, "owner_rrn"));
        }
    }
    let mut mortgages: HashMap<&str, Vec<&Rec<'_>>> = HashMap::new();
    for m in db.table("mortgages") {
        mortgages.entry(text(m, "pnu")).or_default().push(m);
    }
    let mut by_parcel: BTreeMap<&str, Vec<(NaiveDate, NaiveDateTime, usize)>> = BTreeMap::new();
    let transfers = db.table("title_transfers");
    for (i, t) in transfers.iter().enumerate() {
        if let Some(d) = date(t, "contract_ymd") {
            by_parcel
                .entry(text(t, "pnu"))
                .or_default()
                .push((d, ts(t, "registered_at"), i));
        }
    }
    for (pnu, mut list) in by_parcel {
        list.sort();
        let mut prev: Option<(NaiveDate, &str)> = None;
        for (d, _, i) in list {
            let t = &transfers[i];
            let receipt = text(t, "receipt_no");
            if let Some((pd, pr)) = prev
                && (d - pd).num_days() < RESALE_DAYS
            {
                out.push(finding(
                    AnomalyKind::QuickResale,
                    [
                        ("title_transfers", pr.to_owned()),
                        ("title_transfers", receipt.to_owned()),
                    ],
                ));
            }
            prev = Some((d, receipt));
            if let Some((median, area)) = parcels.get(pnu)
                && *area > 0
                && *median > 0
            {
                let price = parse_commas(text(t, "price_amt")).unwrap_or(0);
                // Compare price/area with median, scaled to avoid floats: area is in 1/100 m².
                let per_m2 = i128::from(price) * 100 / i128::from(*area);
                let median = i128::from(*median);
                if per_m2 * 2 < median || per_m2 > median * 2 {
                    out.push(finding(
                        AnomalyKind::PriceOutlier,
                        [("title_transfers", receipt.to_owned())],
                    ));
                }
            }
            if owner.get(pnu).is_some_and(|o| *o != text(t, "seller_rrn")) {
                out.push(finding(
                    AnomalyKind::SellerNotOwner,
                    [("title_transfers", receipt.to_owned())],
                ));
            }
            owner.insert(pnu, text(t, "buyer_rrn"));
            for m in mortgages.get(pnu).map_or(&[][..], Vec::as_slice) {
                let registered = date(m, "registered_ymd");
                let released = date(m, "released_ymd");
                if registered.is_some_and(|r| r < d) && released.is_none_or(|r| r > d) {
                    out.push(finding(
                        AnomalyKind::MortgagedTransfer,
                        [
                            ("title_transfers", receipt.to_owned()),
                            ("mortgages", text(m, "mortgage_no").to_owned()),
                        ],
                    ));
                }
            }
        }
    }
}

fn bank(db: &Db<'_>, out: &mut Vec<Finding>) {
    // The account rows as first inserted: `last_txn_ymd` before this run's transfers.
    let mut customer: HashMap<&str, &str> = HashMap::new();
    let mut last: HashMap<&str, NaiveDateTime> = HashMap::new();
    for a in db.inserted("accounts") {
        customer.insert(a.key(), a.text("customer_no"));
        if let Some(d) = parse_ymd(a.text("last_txn_ymd")) {
            last.insert(a.key(), d.and_time(chrono::NaiveTime::MIN));
        }
    }
    let transfers = db.table("transfers");
    let mut order: Vec<(NaiveDateTime, usize)> = transfers
        .iter()
        .enumerate()
        .map(|(i, t)| (ts(t, "txn_at"), i))
        .collect();
    order.sort();
    let mut band: BTreeMap<&str, Vec<(NaiveDateTime, String)>> = BTreeMap::new();
    let mut outs: BTreeMap<&str, Vec<(NaiveDateTime, String)>> = BTreeMap::new();
    let mut ins: HashMap<&str, Vec<(NaiveDateTime, i64, &str)>> = HashMap::new();
    for &(at, i) in &order {
        let t = &transfers[i];
        let (from, to, amount, r) = (
            text(t, "from_account_no"),
            text(t, "to_account_no"),
            int(t, "amount_krw"),
            text(t, "txn_ref"),
        );
        if (STRUCTURING_FLOOR_KRW..REPORT_THRESHOLD_KRW).contains(&amount) {
            band.entry(customer.get(from).copied().unwrap_or(from))
                .or_default()
                .push((at, r.to_owned()));
        }
        outs.entry(from).or_default().push((at, r.to_owned()));
        if let Some(prev) = ins.get(from).and_then(|l| {
            l.iter().find(|(t_in, a_in, _)| {
                at >= *t_in
                    && at - *t_in <= TimeDelta::minutes(PASS_THROUGH_MINUTES)
                    && *a_in >= 1_000_000
                    && amount * 10 >= a_in * 9
            })
        }) {
            out.push(finding(
                AnomalyKind::PassThrough,
                [
                    ("transfers", prev.2.to_owned()),
                    ("transfers", r.to_owned()),
                ],
            ));
        }
        ins.entry(to).or_default().push((at, amount, r));
        if last
            .get(from)
            .is_some_and(|s| (at.date() - s.date()).num_days() >= DORMANT_DAYS)
        {
            out.push(finding(
                AnomalyKind::DormantReactivation,
                [("transfers", r.to_owned())],
            ));
        }
        last.insert(from, at);
        last.insert(to, at);
    }
    for items in band.into_values() {
        for group in windows(&items, TimeDelta::hours(24)) {
            if group.len() >= 3 {
                out.push(finding(
                    AnomalyKind::Structuring,
                    group.into_iter().map(|k| ("transfers", k)),
                ));
            }
        }
    }
    for items in outs.into_values() {
        for group in windows(&items, TimeDelta::minutes(VELOCITY_WINDOW_MINUTES)) {
            if group.len() >= VELOCITY_COUNT {
                out.push(finding(
                    AnomalyKind::VelocitySpike,
                    group.into_iter().map(|k| ("transfers", k)),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domains::{GenConfig, default_start, generator};
    use crate::model::{Batch, Domain, PendingLabel};

    fn generate(domain: Domain, seed: u64, rate: f64, steps: usize) -> Batch {
        let mut g = generator(domain, &GenConfig::new(seed, rate, default_start()));
        let mut batch = Batch::default();
        for _ in 0..steps {
            g.step(&mut batch);
        }
        batch
    }

    fn by_kind_labels(labels: &[PendingLabel]) -> BTreeMap<AnomalyKind, Vec<BTreeSet<RowRef>>> {
        let mut m: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for l in labels {
            m.entry(l.kind)
                .or_default()
                .push(l.rows.iter().cloned().collect());
        }
        m.values_mut().for_each(|v| v.sort());
        m
    }

    fn by_kind_findings(found: &[Finding]) -> BTreeMap<AnomalyKind, Vec<BTreeSet<RowRef>>> {
        let mut m: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for f in found {
            m.entry(f.kind).or_default().push(f.rows.clone());
        }
        m.values_mut().for_each(|v| v.sort());
        m
    }

    /// The core property: the definitions find exactly the labelled anomalies — every label
    /// fits its definition (recall) and no unlabelled row fits any (precision).
    #[test]
    fn labels_are_exactly_what_the_definitions_find() {
        for domain in Domain::ALL {
            for seed in [1, 2, 42] {
                let batch = generate(domain, seed, 0.08, 6_000);
                let labels = by_kind_labels(&batch.labels);
                let found = by_kind_findings(&find(&batch.rows));
                for kind in AnomalyKind::of(domain) {
                    let l = labels.get(&kind).cloned().unwrap_or_default();
                    assert!(!l.is_empty(), "{domain} seed {seed}: no {kind} injected");
                    let f = found.get(&kind).cloned().unwrap_or_default();
                    let missed: Vec<_> = l.iter().filter(|x| !f.contains(x)).collect();
                    let extra: Vec<_> = f.iter().filter(|x| !l.contains(x)).collect();
                    assert!(
                        missed.is_empty() && extra.is_empty(),
                        "{domain} seed {seed} {kind}: labelled but not found {missed:?}; \
                         found but not labelled {extra:?}"
                    );
                }
                assert_eq!(
                    labels.keys().collect::<Vec<_>>(),
                    found.keys().collect::<Vec<_>>(),
                    "{domain} seed {seed}"
                );
            }
        }
    }

    #[test]
    fn normal_activity_alone_fits_no_definition() {
        for domain in Domain::ALL {
            let batch = generate(domain, 7, 0.0, 20_000);
            assert!(batch.labels.is_empty());
            let found = find(&batch.rows);
            assert!(found.is_empty(), "{domain}: {:?}", found.first());
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_rows_and_labels() {
        for domain in Domain::ALL {
            let a = generate(domain, 5, 0.1, 500);
            assert_eq!(a, generate(domain, 5, 0.1, 500), "{domain}");
            assert_ne!(a.rows, generate(domain, 6, 0.1, 500).rows, "{domain}");
        }
    }

    #[test]
    fn anomaly_rate_is_respected_roughly() {
        let batch = generate(Domain::Bank, 3, 0.05, 10_000);
        let n = batch.labels.len();
        assert!(
            (350..=650).contains(&n),
            "{n} labels for 10,000 steps at 5%"
        );
    }

    /// Spelled out for structuring, independently of `find`: every label has ≥3 transfers,
    /// each below 10,000,000 KRW, within 24 h, from accounts of one customer; and outside the
    /// labels, no transfer is in the 8,000,000–9,999,999 band at all.
    #[test]
    fn structuring_labels_hold_and_normal_amounts_avoid_the_band() {
        let batch = generate(Domain::Bank, 11, 0.05, 20_000);
        let transfers: HashMap<&str, &Row> = batch
            .rows
            .iter()
            .filter(|r| r.table == "transfers" && r.op == Op::Insert)
            .map(|r| (r.key(), r))
            .collect();
        let customer: HashMap<&str, &str> = batch
            .rows
            .iter()
            .filter(|r| r.table == "accounts" && r.op == Op::Insert)
            .map(|r| (r.key(), r.text("customer_no")))
            .collect();
        let mut labelled = BTreeSet::new();
        let mut structuring = 0;
        for l in &batch.labels {
            labelled.extend(l.rows.iter().map(|r| r.key.as_str()));
            if l.kind != AnomalyKind::Structuring {
                continue;
            }
            structuring += 1;
            assert!(l.rows.len() >= 3);
            let rows: Vec<&Row> = l.rows.iter().map(|r| transfers[r.key.as_str()]).collect();
            let parties: BTreeSet<&str> = rows
                .iter()
                .map(|r| customer[r.text("from_account_no")])
                .collect();
            assert_eq!(parties.len(), 1);
            assert!(
                rows.iter()
                    .all(|r| r.int("amount_krw") < REPORT_THRESHOLD_KRW)
            );
            let times: Vec<NaiveDateTime> = rows
                .iter()
                .filter_map(|r| r.get("txn_at")?.as_ts())
                .collect();
            let span = *times.iter().max().unwrap() - *times.iter().min().unwrap();
            assert!(span <= TimeDelta::hours(24), "{span}");
        }
        assert!(structuring > 0);
        for (key, r) in &transfers {
            if !labelled.contains(key) {
                let a = r.int("amount_krw");
                assert!(
                    !(crate::domains::NORMAL_GAP_FLOOR_KRW..REPORT_THRESHOLD_KRW).contains(&a),
                    "normal transfer {key} of {a}"
                );
            }
        }
    }

    /// The checks can fail: tampering with one normal row makes the definition fire.
    #[test]
    fn tampered_normal_rows_are_found() {
        let mut batch = generate(Domain::Customs, 2, 0.0, 200);
        assert!(find(&batch.rows).is_empty());
        let decl = batch
            .rows
            .iter_mut()
            .find(|r| r.table == "customs_declarations")
            .unwrap();
        let declared = crate::domains::parse_commas(decl.text("declared_amt")).unwrap();
        for (c, v) in &mut decl.cols {
            if *c == "declared_amt" {
                *v = Value::Text(crate::domains::commas(declared - 100));
            }
        }
        let kinds: BTreeSet<AnomalyKind> = find(&batch.rows).iter().map(|f| f.kind).collect();
        assert!(kinds.contains(&AnomalyKind::Undervaluation), "{kinds:?}");
        assert!(kinds.contains(&AnomalyKind::ManifestMismatch), "{kinds:?}");

        let mut batch = generate(Domain::Land, 2, 0.0, 300);
        let t = batch
            .rows
            .iter_mut()
            .find(|r| r.table == "title_transfers")
            .unwrap();
        for (c, v) in &mut t.cols {
            if *c == "seller_rrn" {
                *v = Value::Text("000101-3000000".into());
            }
        }
        let kinds: BTreeSet<AnomalyKind> = find(&batch.rows).iter().map(|f| f.kind).collect();
        assert_eq!(kinds, BTreeSet::from([AnomalyKind::SellerNotOwner]));
    }
}
