//! Land registry: parcels, titles (owners on record), transfers, mortgages.

use chrono::{NaiveDate, TimeDelta};
use rand::Rng;

use super::{Ctx, Generator, label, ymd};
use crate::model::{AnomalyKind, Batch, Domain, Row, Value};
use crate::names::{self, Person};

/// Districts seeded by the schema: (code, name, median price per m² in KRW).
pub const DISTRICTS: &[(&str, &str, i64)] = &[
    ("11680", "서울특별시 강남구", 25_000_000),
    ("11650", "서울특별시 서초구", 22_000_000),
    ("11710", "서울특별시 송파구", 18_000_000),
    ("11440", "서울특별시 마포구", 14_000_000),
    ("11110", "서울특별시 종로구", 16_000_000),
    ("41135", "경기도 성남시 분당구", 9_000_000),
    ("26350", "부산광역시 해운대구", 6_000_000),
    ("43113", "충청북도 청주시 흥덕구", 1_200_000),
];

/// A resale sooner than this after the previous transfer is a `quick_resale`; normal parcels
/// are only sold after 120 days. (Price per m² outside `[median / 2, median × 2]` is a
/// `price_outlier`; normal prices stay within ±20% of the median.)
pub const RESALE_DAYS: i64 = 90;

const BANKS: &[&str] = &["국민은행", "신한은행", "우리은행", "하나은행", "농협은행"];
const ROADS: &[&str] = &["중앙로", "역삼동", "신사동", "대치동", "잠실동", "서교동"];

#[derive(Debug, Clone)]
struct Parcel {
    pnu: String,
    district: usize,
    /// Area in hundredths of m².
    area: i64,
    owner: Person,
    title_no: String,
    acquired: NaiveDate,
    /// Active mortgage number.
    mortgage: Option<String>,
}

/// The land generator.
#[derive(Debug)]
pub(crate) struct Land {
    ctx: Ctx,
    /// Parcels of normal activity; anomaly scenarios register their own.
    parcels: Vec<Parcel>,
}

impl Land {
    pub(crate) fn new(ctx: Ctx) -> Self {
        Self {
            ctx,
            parcels: Vec::new(),
        }
    }

    /// Register a parcel with an owner who has held it for 1–20 years.
    fn new_parcel(&mut self, out: &mut Batch) -> Parcel {
        let ctx = &mut self.ctx;
        let today = ctx.today();
        let district = ctx.rng.random_range(0..DISTRICTS.len());
        let (code, dname, _) = DISTRICTS[district];
        let n = ctx.next("parcels");
        let pnu = format!("{code}10100{}{n:08}", 1);
        let area = ctx.rng.random_range(6_000..60_000);
        let road = ROADS[ctx.rng.random_range(0..ROADS.len())];
        out.rows.push(Row::insert(
            "parcels",
            vec![
                ("pnu", pnu.clone().into()),
                ("district_cd", code.into()),
                (
                    "addr",
                    format!("{dname} {road} {}-{}", n % 900 + 1, n % 37).into(),
                ),
                ("land_cat_cd", "08".into()),
                ("area_m2", Value::Hundredths(area)),
            ],
        ));
        let owner = names::person(&mut ctx.rng, today);
        let acquired = today - TimeDelta::days(ctx.rng.random_range(365..7300));
        let cause = if ctx.rng.random_bool(0.3) { "02" } else { "03" };
        let title_no = self.title(out, &pnu, &owner, acquired, cause);
        Parcel {
            pnu,
            district,
            area,
            owner,
            title_no,
            acquired,
            mortgage: None,
        }
    }

    fn title(
        &mut self,
        out: &mut Batch,
        pnu: &str,
        owner: &Person,
        acquired: NaiveDate,
        cause: &str,
    ) -> String {
        let no = format!("TT{:010}", self.ctx.next("titles"));
        out.rows.push(Row::insert(
            "titles",
            vec![
                ("title_no", no.clone().into()),
                ("pnu", pnu.into()),
                ("owner_nm", owner.name.clone().into()),
                ("owner_rrn", owner.rrn.clone().into()),
                ("acquired_ymd", ymd(acquired).into()),
                ("cause_cd", cause.into()),
                ("title_status_cd", "01".into()),
            ],
        ));
        no
    }

    fn mortgage(&mut self, out: &mut Batch, p: &Parcel, registered: NaiveDate) -> String {
        let ctx = &mut self.ctx;
        let no = format!("MG{:010}", ctx.next("mortgages"));
        let value = self.price(p, 0.8, 1.2);
        let ctx = &mut self.ctx;
        let max_claim = ctx.scaled(value, 0.3, 0.7, 1_000_000);
        out.rows.push(Row::insert(
            "mortgages",
            vec![
                ("mortgage_no", no.clone().into()),
                ("pnu", p.pnu.clone().into()),
                (
                    "mortgagee_nm",
                    BANKS[ctx.rng.random_range(0..BANKS.len())].into(),
                ),
                ("debtor_rrn", p.owner.rrn.clone().into()),
                ("max_claim_amt", Value::Int(max_claim)),
                ("registered_ymd", ymd(registered).into()),
                ("released_ymd", Value::Null),
                ("mortgage_status_cd", "01".into()),
            ],
        ));
        no
    }

    fn release(out: &mut Batch, mortgage_no: &str, on: NaiveDate) {
        out.rows.push(Row::update(
            "mortgages",
            mortgage_no,
            vec![
                ("released_ymd", ymd(on).into()),
                ("mortgage_status_cd", "02".into()),
            ],
        ));
    }

    /// A price for the parcel: area × district median × factor in `[lo, hi)`, in 10,000 KRW.
    fn price(&mut self, p: &Parcel, lo: f64, hi: f64) -> i64 {
        let per_m2 = DISTRICTS[p.district].2;
        // area is in hundredths of m²
        self.ctx.scaled(per_m2 * p.area / 100, lo, hi, 10_000)
    }

    /// Record a transfer from `seller` to a new buyer on `on`; the parcel's title moves to
    /// the buyer. Returns the receipt number.
    fn transfer(
        &mut self,
        out: &mut Batch,
        p: &mut Parcel,
        seller: &Person,
        price: i64,
        on: NaiveDate,
    ) -> String {
        let buyer = names::person(&mut self.ctx.rng, on);
        let receipt = format!(
            "{}-{:08}",
            on.format("%Y"),
            self.ctx.next("title_transfers")
        );
        let registered_at = on.and_hms_opt(10, 0, 0).unwrap_or_default()
            + TimeDelta::minutes(self.ctx.rng.random_range(0..420));
        out.rows.push(Row::insert(
            "title_transfers",
            vec![
                ("receipt_no", receipt.clone().into()),
                ("pnu", p.pnu.clone().into()),
                ("seller_nm", seller.name.clone().into()),
                ("seller_rrn", seller.rrn.clone().into()),
                ("buyer_nm", buyer.name.clone().into()),
                ("buyer_rrn", buyer.rrn.clone().into()),
                ("price_amt", super::commas(price).into()),
                ("contract_ymd", ymd(on).into()),
                ("registered_at", registered_at.into()),
            ],
        ));
        out.rows.push(Row::update(
            "titles",
            &p.title_no,
            vec![("title_status_cd", "02".into())],
        ));
        p.title_no = self.title(out, &p.pnu, &buyer, on, "01");
        p.owner = buyer;
        p.acquired = on;
        receipt
    }

    /// Normal activity: a new parcel, a sale by the owner on record after at least 120 days at
    /// a price near the district median with any mortgage released first, or a mortgage
    /// registered or released.
    fn normal(&mut self, out: &mut Batch) {
        let today = self.ctx.today();
        let roll: f64 = self.ctx.rng.random();
        if self.parcels.len() < 20 || roll < 0.2 {
            let p = self.new_parcel(out);
            self.parcels.push(p);
            return;
        }
        let i = self.ctx.rng.random_range(0..self.parcels.len());
        let mut p = self.parcels[i].clone();
        if roll < 0.65 {
            if (today - p.acquired).num_days() < 120 {
                let q = self.new_parcel(out);
                self.parcels.push(q);
                return;
            }
            if let Some(m) = p.mortgage.take() {
                Self::release(out, &m, today);
            }
            let price = self.price(&p, 0.8, 1.2);
            let seller = p.owner.clone();
            self.transfer(out, &mut p, &seller, price, today);
            if self.ctx.rng.random_bool(0.3) {
                p.mortgage = Some(self.mortgage(out, &p, today));
            }
        } else if let Some(m) = p.mortgage.take() {
            Self::release(out, &m, today);
        } else {
            p.mortgage = Some(self.mortgage(out, &p, today));
        }
        self.parcels[i] = p;
    }

    fn quick_resale(&mut self, out: &mut Batch) {
        let today = self.ctx.today();
        let mut p = self.new_parcel(out);
        let first = today - TimeDelta::days(self.ctx.rng.random_range(15..RESALE_DAYS - 5));
        let seller = p.owner.clone();
        let price = self.price(&p, 0.8, 1.2);
        let t1 = self.transfer(out, &mut p, &seller, price, first);
        let seller = p.owner.clone();
        let price = self.price(&p, 0.9, 1.2);
        let t2 = self.transfer(out, &mut p, &seller, price, today);
        out.labels.push(label(
            AnomalyKind::QuickResale,
            vec![p.pnu.clone(), t1.clone(), t2.clone()],
            vec![("title_transfers", t1), ("title_transfers", t2)],
            self.ctx.now,
        ));
    }

    fn price_outlier(&mut self, out: &mut Batch) {
        let today = self.ctx.today();
        let mut p = self.new_parcel(out);
        let price = if self.ctx.rng.random_bool(0.5) {
            self.price(&p, 0.15, 0.4)
        } else {
            self.price(&p, 2.6, 4.0)
        };
        let seller = p.owner.clone();
        let t = self.transfer(out, &mut p, &seller, price, today);
        out.labels.push(label(
            AnomalyKind::PriceOutlier,
            vec![p.pnu.clone(), t.clone()],
            vec![("title_transfers", t)],
            self.ctx.now,
        ));
    }

    fn seller_not_owner(&mut self, out: &mut Batch) {
        let today = self.ctx.today();
        let mut p = self.new_parcel(out);
        let impostor = names::person(&mut self.ctx.rng, today);
        let price = self.price(&p, 0.8, 1.2);
        let t = self.transfer(out, &mut p, &impostor, price, today);
        out.labels.push(label(
            AnomalyKind::SellerNotOwner,
            vec![p.pnu.clone(), t.clone()],
            vec![("title_transfers", t)],
            self.ctx.now,
        ));
    }

    fn mortgaged_transfer(&mut self, out: &mut Batch) {
        let today = self.ctx.today();
        let mut p = self.new_parcel(out);
        let registered = today - TimeDelta::days(self.ctx.rng.random_range(30..1000));
        let m = self.mortgage(out, &p, registered.max(p.acquired));
        let seller = p.owner.clone();
        let price = self.price(&p, 0.8, 1.2);
        let t = self.transfer(out, &mut p, &seller, price, today);
        out.labels.push(label(
            AnomalyKind::MortgagedTransfer,
            vec![p.pnu.clone(), t.clone(), m.clone()],
            vec![("title_transfers", t), ("mortgages", m)],
            self.ctx.now,
        ));
    }
}

impl Generator for Land {
    fn domain(&self) -> Domain {
        Domain::Land
    }

    fn step(&mut self, out: &mut Batch) {
        self.ctx.advance(1800.0);
        match self.ctx.anomaly() {
            Some(AnomalyKind::QuickResale) => self.quick_resale(out),
            Some(AnomalyKind::PriceOutlier) => self.price_outlier(out),
            Some(AnomalyKind::SellerNotOwner) => self.seller_not_owner(out),
            Some(AnomalyKind::MortgagedTransfer) => self.mortgaged_transfer(out),
            _ => self.normal(out),
        }
    }
}
