//! Mall orders, courier manifests and personal customs declarations of the same parcels.

use std::collections::HashSet;

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use rand::Rng;

use super::{Ctx, Generator, label, ymd};
use crate::model::{AnomalyKind, Batch, Domain, MANIFEST_TABLE, Row, Value};
use crate::names;

/// The duty-free limit for personal imports: 150 USD, taken as 200,000 KRW.
pub const DUTY_FREE_LIMIT_KRW: i64 = 200_000;
/// Split shipments are counted within this many calendar days (declaration dates).
pub const SPLIT_WINDOW_DAYS: i64 = 3;

/// A `[low, high)` range.
type Range = (i64, i64);

/// (item, value range in KRW, weight range in hundredths of kg)
const ITEMS: &[(&str, Range, Range)] = &[
    ("나이키 운동화", (120_000, 260_000), (90, 160)),
    ("비타민 영양제", (30_000, 90_000), (30, 80)),
    ("블루투스 이어폰", (50_000, 320_000), (20, 60)),
    ("노트북 가방", (40_000, 130_000), (70, 150)),
    ("커피 원두 1kg", (25_000, 60_000), (100, 120)),
    ("유아용 카시트", (250_000, 650_000), (800, 1400)),
    ("전동칫솔", (60_000, 190_000), (40, 90)),
    ("캠핑 의자", (40_000, 150_000), (200, 450)),
    ("무선 청소기", (300_000, 900_000), (350, 600)),
];

const MALLS: &[&str] = &["AMZN", "IHRB", "EBAY", "ALIX"];

#[derive(Debug, Clone)]
struct Consignee {
    name: String,
    tel: String,
    addr: String,
    customs_id: String,
    /// Declaration dates of this consignee's declarations under the duty-free limit.
    small: Vec<NaiveDate>,
}

/// One parcel's order, declaration and manifest record.
struct Parcel {
    order_no: String,
    declaration_no: String,
    hbl_no: String,
}

/// What to write for one parcel.
struct Spec {
    item: usize,
    qty: i64,
    value: i64,
    declared: i64,
    weight: i64,
    /// Manifest's (weight, count, value) when it disagrees with the declaration.
    manifest_override: Option<(i64, i64, i64)>,
}

/// The customs generator.
#[derive(Debug)]
pub(crate) struct Customs {
    ctx: Ctx,
    /// Consignees of normal activity; anomaly scenarios use fresh ones.
    consignees: Vec<Consignee>,
    /// Customs ids in use, so that a fresh consignee is never an existing one.
    used_ids: HashSet<String>,
}

impl Customs {
    pub(crate) fn new(ctx: Ctx) -> Self {
        Self {
            ctx,
            consignees: Vec::new(),
            used_ids: HashSet::new(),
        }
    }

    fn fresh_consignee(&mut self) -> Consignee {
        let rng = &mut self.ctx.rng;
        let customs_id = loop {
            let id = format!(
                "P{:012}",
                rng.random_range(100_000_000_000_i64..1_000_000_000_000)
            );
            if self.used_ids.insert(id.clone()) {
                break id;
            }
        };
        Consignee {
            name: names::name(rng),
            tel: names::phone(rng),
            addr: names::address(rng),
            customs_id,
            small: Vec::new(),
        }
    }

    fn spec(&mut self, value_range: Option<(i64, i64)>) -> Spec {
        let item = self.ctx.rng.random_range(0..ITEMS.len());
        let (_, (lo, hi), (wlo, whi)) = ITEMS[item];
        let (lo, hi) = value_range.unwrap_or((lo, hi));
        let qty = if value_range.is_some() {
            1
        } else {
            self.ctx.rng.random_range(1..3)
        };
        let value = self.ctx.amount(lo, hi, 100) * qty;
        let weight = self.ctx.rng.random_range(wlo..whi) * qty + 15;
        Spec {
            item,
            qty,
            value,
            declared: value,
            weight,
            manifest_override: None,
        }
    }

    /// An order placed at `ordered` is declared (and arrives) one or two days later.
    fn declare_date(&mut self, ordered: NaiveDateTime) -> NaiveDate {
        ordered.date() + TimeDelta::days(self.ctx.rng.random_range(1..3))
    }

    /// Order at `ordered`, declaration on `declare`, manifest record on arrival.
    fn parcel(
        &mut self,
        out: &mut Batch,
        c: &Consignee,
        s: &Spec,
        ordered: NaiveDateTime,
        declare: NaiveDate,
    ) -> Parcel {
        let ctx = &mut self.ctx;
        let order_no = format!(
            "MO{}{:08}",
            ordered.format("%Y%m%d"),
            ctx.next("mall_orders")
        );
        let seq = ctx.next("customs_declarations");
        let declaration_no = format!("43521-{}-{:07}M", ordered.format("%y"), seq);
        let hbl_no = format!("HB{seq:010}");
        let item = ITEMS[s.item].0;
        let buyer = format!("u{:07}", ctx.rng.random_range(0..10_000_000));
        out.rows.push(Row::insert(
            "mall_orders",
            vec![
                ("order_no", order_no.clone().into()),
                (
                    "mall_cd",
                    MALLS[ctx.rng.random_range(0..MALLS.len())].into(),
                ),
                ("buyer_id", buyer.into()),
                ("consignee_nm", c.name.clone().into()),
                ("consignee_tel", c.tel.clone().into()),
                ("consignee_addr", c.addr.clone().into()),
                ("customs_id", c.customs_id.clone().into()),
                ("item_nm", item.into()),
                ("item_qty", Value::Int(s.qty)),
                ("item_value_krw", Value::Int(s.value)),
                ("order_status_cd", "02".into()),
                ("created_at", ordered.into()),
            ],
        ));
        let pkg_cnt = 1;
        out.rows.push(Row::insert(
            "customs_declarations",
            vec![
                ("declaration_no", declaration_no.clone().into()),
                ("order_no", order_no.clone().into()),
                ("hbl_no", hbl_no.clone().into()),
                ("consignee_nm", c.name.clone().into()),
                ("customs_id", c.customs_id.clone().into()),
                ("declared_amt", super::commas(s.declared).into()),
                ("gross_wt_kg", Value::Hundredths(s.weight)),
                ("pkg_cnt", Value::Int(pkg_cnt)),
                ("declare_ymd", ymd(declare).into()),
                ("clear_status_cd", "02".into()),
            ],
        ));
        let (wt, cnt, val) = s
            .manifest_override
            .unwrap_or((s.weight, pkg_cnt, s.declared));
        out.rows.push(Row::insert(
            MANIFEST_TABLE,
            vec![
                ("hbl_no", hbl_no.clone().into()),
                ("order_no", order_no.clone().into()),
                ("arrival_ymd", ymd(declare).into()),
                ("consignee_nm", c.name.clone().into()),
                ("consignee_tel", c.tel.clone().into()),
                ("consignee_addr", c.addr.clone().into()),
                ("item_nm", item.into()),
                ("pkg_cnt", Value::Int(cnt)),
                ("gross_wt", Value::Hundredths(wt)),
                ("value_krw", Value::Int(val)),
                ("customs_id", c.customs_id.clone().into()),
            ],
        ));
        Parcel {
            order_no,
            declaration_no,
            hbl_no,
        }
    }

    /// Normal activity: declared value equals the order value, the manifest agrees with the
    /// declaration, and no consignee gets a third parcel under the limit within the window.
    fn normal(&mut self, out: &mut Batch) {
        let s = self.spec(None);
        let now = self.ctx.now;
        let declare = self.declare_date(now);
        let mut i = None;
        if !self.consignees.is_empty() && !self.ctx.rng.random_bool(0.3) {
            let j = self.ctx.rng.random_range(0..self.consignees.len());
            let near = self.consignees[j]
                .small
                .iter()
                .filter(|d| (**d - declare).num_days().abs() < SPLIT_WINDOW_DAYS)
                .count();
            // A third parcel under the limit within the window would look like a split
            // shipment: then the parcel goes to a new customer instead.
            if s.declared >= DUTY_FREE_LIMIT_KRW || near < 2 {
                i = Some(j);
            }
        }
        let i = match i {
            Some(i) => i,
            None => {
                let c = self.fresh_consignee();
                self.consignees.push(c);
                self.consignees.len() - 1
            }
        };
        let c = self.consignees[i].clone();
        self.parcel(out, &c, &s, now, declare);
        if s.declared < DUTY_FREE_LIMIT_KRW {
            self.consignees[i].small.push(declare);
        }
    }

    fn undervaluation(&mut self, out: &mut Batch) {
        let c = self.fresh_consignee();
        let mut s = self.spec(None);
        s.value = s.value.max(300_000);
        s.declared = self.ctx.scaled(s.value, 0.2, 0.6, 100);
        let now = self.ctx.now;
        let declare = self.declare_date(now);
        let p = self.parcel(out, &c, &s, now, declare);
        out.labels.push(label(
            AnomalyKind::Undervaluation,
            vec![p.order_no.clone(), p.declaration_no.clone()],
            vec![
                ("mall_orders", p.order_no),
                ("customs_declarations", p.declaration_no),
            ],
            self.ctx.now,
        ));
    }

    fn split_shipment(&mut self, out: &mut Batch) {
        let c = self.fresh_consignee();
        let n = self.ctx.rng.random_range(3..6);
        let mut keys = vec![c.customs_id.clone()];
        let mut rows = Vec::new();
        for _ in 0..n {
            let s = self.spec(Some((110_000, DUTY_FREE_LIMIT_KRW)));
            // All ordered within the last 12 hours, so declared within three calendar days.
            let at = self.ctx.now - TimeDelta::minutes(self.ctx.rng.random_range(0..720));
            let declare = self.declare_date(at);
            let p = self.parcel(out, &c, &s, at, declare);
            keys.push(p.order_no);
            rows.push(("customs_declarations", p.declaration_no));
        }
        out.labels
            .push(label(AnomalyKind::SplitShipment, keys, rows, self.ctx.now));
    }

    fn manifest_mismatch(&mut self, out: &mut Batch) {
        let c = self.fresh_consignee();
        let mut s = self.spec(None);
        s.manifest_override = Some(match self.ctx.rng.random_range(0..3) {
            0 => (self.ctx.scaled(s.weight, 1.5, 3.0, 1), 1, s.declared),
            1 => (s.weight, 1 + self.ctx.rng.random_range(1..4), s.declared),
            _ => (s.weight, 1, self.ctx.scaled(s.declared, 1.3, 2.0, 100)),
        });
        let now = self.ctx.now;
        let declare = self.declare_date(now);
        let p = self.parcel(out, &c, &s, now, declare);
        out.labels.push(label(
            AnomalyKind::ManifestMismatch,
            vec![p.hbl_no.clone(), p.declaration_no.clone()],
            vec![
                ("customs_declarations", p.declaration_no),
                (MANIFEST_TABLE, p.hbl_no),
            ],
            self.ctx.now,
        ));
    }
}

impl Generator for Customs {
    fn domain(&self) -> Domain {
        Domain::Customs
    }

    fn step(&mut self, out: &mut Batch) {
        self.ctx.advance(180.0);
        match self.ctx.anomaly() {
            Some(AnomalyKind::Undervaluation) => self.undervaluation(out),
            Some(AnomalyKind::SplitShipment) => self.split_shipment(out),
            Some(AnomalyKind::ManifestMismatch) => self.manifest_mismatch(out),
            _ => self.normal(out),
        }
    }
}
