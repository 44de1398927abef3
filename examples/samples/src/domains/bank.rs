//! Core banking: accounts, transfers between them, overseas remittances.

use std::collections::VecDeque;

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use rand::Rng;

use super::{Ctx, Generator, label, ymd};
use crate::model::{AnomalyKind, Batch, Domain, Row, Value};
use crate::names;

/// The cash/transfer reporting threshold.
pub const REPORT_THRESHOLD_KRW: i64 = 10_000_000;
/// "Just below the threshold": structuring transfers are in `[STRUCTURING_FLOOR_KRW,
/// REPORT_THRESHOLD_KRW)`; normal amounts avoid `[NORMAL_GAP_FLOOR_KRW, REPORT_THRESHOLD_KRW)`.
pub const STRUCTURING_FLOOR_KRW: i64 = 9_000_000;
/// Normal transfers and remittances never fall in `[8,000,000, 10,000,000)`.
pub const NORMAL_GAP_FLOOR_KRW: i64 = 8_000_000;
/// Pass-through: out within this many minutes of the money coming in.
pub const PASS_THROUGH_MINUTES: i64 = 10;
/// Dormant: no activity for this many days.
pub const DORMANT_DAYS: i64 = 365;
/// Velocity spike: this many outgoing transfers within [`VELOCITY_WINDOW_MINUTES`].
pub const VELOCITY_COUNT: usize = 10;
/// The velocity window.
pub const VELOCITY_WINDOW_MINUTES: i64 = 60;

const COUNTRIES: &[(&str, &str, i64)] = &[
    // (country, currency, KRW per 100 units)
    ("US", "USD", 133_000),
    ("CN", "CNY", 18_400),
    ("VN", "VND", 5),
    ("PH", "PHP", 2_350),
    ("JP", "JPY", 900),
];
const MEMOS: &[&str] = &[
    "월세",
    "생활비",
    "용돈",
    "물품대금",
    "회비",
    "적금이체",
    "급여",
];

#[derive(Debug, Clone)]
struct Account {
    no: String,
    customer: String,
    last_activity: NaiveDateTime,
    last_in: Option<NaiveDateTime>,
    recent_out: VecDeque<NaiveDateTime>,
}

/// The bank generator.
#[derive(Debug)]
pub(crate) struct Bank {
    ctx: Ctx,
    /// Accounts of normal activity; anomaly scenarios open their own.
    accounts: Vec<Account>,
}

impl Bank {
    pub(crate) fn new(ctx: Ctx) -> Self {
        Self {
            ctx,
            accounts: Vec::new(),
        }
    }

    /// Open an account for a new customer. `last_txn` is the last activity on record;
    /// `dormant_since` marks it dormant.
    fn open(
        &mut self,
        out: &mut Batch,
        opened: NaiveDate,
        last_txn: NaiveDate,
        dormant_since: Option<NaiveDate>,
    ) -> Account {
        let ctx = &mut self.ctx;
        let n = ctx.next("accounts");
        let no = format!(
            "{:03}-{:03}-{:06}",
            110 + n % 7,
            (n / 7) % 1000,
            n % 1_000_000
        );
        let customer_no = format!("CU{:08}", n);
        let p = names::person(&mut ctx.rng, ctx.now.date());
        out.rows.push(Row::insert(
            "accounts",
            vec![
                ("account_no", no.clone().into()),
                ("customer_no", customer_no.clone().into()),
                ("customer_nm", p.name.into()),
                ("rrn", p.rrn.into()),
                (
                    "branch_cd",
                    format!("{:04}", ctx.rng.random_range(1..400)).into(),
                ),
                (
                    "product_cd",
                    ["101", "102", "201"][ctx.rng.random_range(0..3)].into(),
                ),
                ("open_ymd", ymd(opened).into()),
                ("last_txn_ymd", ymd(last_txn).into()),
                ("dormant_ymd", dormant_since.map(ymd).into()),
                (
                    "acct_status_cd",
                    if dormant_since.is_some() { "02" } else { "01" }.into(),
                ),
            ],
        ));
        Account {
            no,
            customer: customer_no,
            last_activity: last_txn.and_hms_opt(12, 0, 0).unwrap_or_default(),
            last_in: None,
            recent_out: VecDeque::new(),
        }
    }

    /// An active account opened 1–10 years ago, last used within the last month.
    fn open_active(&mut self, out: &mut Batch) -> Account {
        let today = self.ctx.today();
        let opened = today - TimeDelta::days(self.ctx.rng.random_range(365..3650));
        let last = today - TimeDelta::days(self.ctx.rng.random_range(0..30));
        self.open(out, opened, last, None)
    }

    /// A normal amount: mostly small, never in `[8,000,000, 10,000,000)`.
    fn normal_amount(&mut self) -> i64 {
        let roll: f64 = self.ctx.rng.random();
        if roll < 0.6 {
            self.ctx.amount(10_000, 500_000, 1_000)
        } else if roll < 0.92 {
            self.ctx.amount(500_000, 5_000_000, 1_000)
        } else if roll < 0.98 {
            self.ctx.amount(5_000_000, NORMAL_GAP_FLOOR_KRW, 10_000)
        } else {
            self.ctx.amount(REPORT_THRESHOLD_KRW, 50_000_000, 100_000)
        }
    }

    fn transfer(
        &mut self,
        out: &mut Batch,
        from: &str,
        to: &str,
        amount: i64,
        at: NaiveDateTime,
    ) -> String {
        let ctx = &mut self.ctx;
        let txn_ref = format!("{}{:010}", at.format("%Y%m%d"), ctx.next("transfers"));
        out.rows.push(Row::insert(
            "transfers",
            vec![
                ("txn_ref", txn_ref.clone().into()),
                ("from_account_no", from.into()),
                ("to_account_no", to.into()),
                ("amount_krw", Value::Int(amount)),
                ("txn_at", at.into()),
                (
                    "channel_cd",
                    format!("{:02}", ctx.rng.random_range(1..5)).into(),
                ),
                ("memo", MEMOS[ctx.rng.random_range(0..MEMOS.len())].into()),
            ],
        ));
        txn_ref
    }

    fn touch(out: &mut Batch, a: &mut Account, at: NaiveDateTime) {
        if a.last_activity.date() < at.date() {
            out.rows.push(Row::update(
                "accounts",
                &a.no,
                vec![("last_txn_ymd", ymd(at.date()).into())],
            ));
        }
        a.last_activity = a.last_activity.max(at);
    }

    /// Whether the account may send money now without fitting an anomaly: nothing came in
    /// during the last hour, fewer than three transfers out in the last hour, and used within
    /// the last 300 days.
    fn may_send(a: &mut Account, now: NaiveDateTime) -> bool {
        let hour_ago = now - TimeDelta::minutes(VELOCITY_WINDOW_MINUTES);
        while a.recent_out.front().is_some_and(|t| *t < hour_ago) {
            a.recent_out.pop_front();
        }
        a.last_in.is_none_or(|t| t < hour_ago)
            && a.recent_out.len() < 3
            && (now - a.last_activity).num_days() < 300
    }

    fn normal(&mut self, out: &mut Batch) {
        let now = self.ctx.now;
        if self.accounts.len() < 30 || self.ctx.rng.random_bool(0.03) {
            let a = self.open_active(out);
            self.accounts.push(a);
            return;
        }
        let mut from = None;
        for _ in 0..8 {
            let i = self.ctx.rng.random_range(0..self.accounts.len());
            if Self::may_send(&mut self.accounts[i], now) {
                from = Some(i);
                break;
            }
        }
        let Some(f) = from else {
            let a = self.open_active(out);
            self.accounts.push(a);
            return;
        };
        if self.ctx.rng.random_bool(0.08) {
            self.remittance(out, f);
            return;
        }
        let mut t = self.ctx.rng.random_range(0..self.accounts.len() - 1);
        if t >= f {
            t += 1;
        }
        let amount = self.normal_amount();
        let (from_no, to_no) = (self.accounts[f].no.clone(), self.accounts[t].no.clone());
        self.transfer(out, &from_no, &to_no, amount, now);
        let a = &mut self.accounts[f];
        a.recent_out.push_back(now);
        Self::touch(out, a, now);
        let b = &mut self.accounts[t];
        b.last_in = Some(now);
        Self::touch(out, b, now);
    }

    fn remittance(&mut self, out: &mut Batch, f: usize) {
        let ctx = &mut self.ctx;
        let (country, currency, krw_per_100) = COUNTRIES[ctx.rng.random_range(0..COUNTRIES.len())];
        let krw = ctx.amount(100_000, 5_000_000, 1_000);
        let fx_hundredths = krw * 100 * 100 / krw_per_100;
        let no = format!("RM{:010}", ctx.next("remittances"));
        out.rows.push(Row::insert(
            "remittances",
            vec![
                ("remit_no", no.into()),
                ("account_no", self.accounts[f].no.clone().into()),
                ("beneficiary_nm", "NGUYEN VAN AN".into()),
                ("beneficiary_country_cd", country.into()),
                ("currency_cd", currency.into()),
                (
                    "fx_amt",
                    format!(
                        "{}.{:02}",
                        super::commas(fx_hundredths / 100),
                        fx_hundredths % 100
                    )
                    .into(),
                ),
                ("krw_amt", super::commas(krw).into()),
                ("remit_ymd", ymd(ctx.today()).into()),
                ("status_cd", "02".into()),
            ],
        ));
    }

    fn structuring(&mut self, out: &mut Batch) {
        let now = self.ctx.now;
        let src = self.open_active(out);
        let n = self.ctx.rng.random_range(3..6);
        let mut offsets: Vec<i64> = (0..n)
            .map(|_| self.ctx.rng.random_range(0..23 * 60))
            .collect();
        offsets.sort_unstable();
        let mut rows = Vec::new();
        for off in offsets {
            let dst = self.open_active(out);
            let amount = self
                .ctx
                .amount(STRUCTURING_FLOOR_KRW, REPORT_THRESHOLD_KRW, 10_000);
            let at = now - TimeDelta::minutes(23 * 60 - off);
            rows.push((
                "transfers",
                self.transfer(out, &src.no, &dst.no, amount, at),
            ));
        }
        out.labels.push(label(
            AnomalyKind::Structuring,
            vec![src.customer.clone(), src.no.clone()],
            rows,
            now,
        ));
    }

    fn pass_through(&mut self, out: &mut Batch) {
        let now = self.ctx.now;
        let src = self.open_active(out);
        let mule = self.open_active(out);
        let dst = self.open_active(out);
        let amount = if self.ctx.rng.random_bool(0.5) {
            self.ctx.amount(2_000_000, 7_000_000, 10_000)
        } else {
            self.ctx.amount(11_000_000, 40_000_000, 10_000)
        };
        let t_in = now - TimeDelta::minutes(self.ctx.rng.random_range(10..30));
        let t_out = t_in + TimeDelta::minutes(self.ctx.rng.random_range(1..PASS_THROUGH_MINUTES));
        let out_amount = self.ctx.scaled(amount, 0.92, 0.995, 1_000);
        let r_in = self.transfer(out, &src.no, &mule.no, amount, t_in);
        let r_out = self.transfer(out, &mule.no, &dst.no, out_amount, t_out);
        out.labels.push(label(
            AnomalyKind::PassThrough,
            vec![mule.no.clone()],
            vec![("transfers", r_in), ("transfers", r_out)],
            t_out,
        ));
    }

    fn dormant(&mut self, out: &mut Batch) {
        let now = self.ctx.now;
        let today = now.date();
        let opened = today - TimeDelta::days(self.ctx.rng.random_range(6 * 365..12 * 365));
        let last = today - TimeDelta::days(self.ctx.rng.random_range(2 * 365..5 * 365));
        let mut acct = self.open(
            out,
            opened,
            last,
            Some(last + TimeDelta::days(DORMANT_DAYS)),
        );
        let dst = self.open_active(out);
        let amount = self.ctx.amount(1_000_000, NORMAL_GAP_FLOOR_KRW, 10_000);
        let r = self.transfer(out, &acct.no, &dst.no, amount, now);
        Self::touch(out, &mut acct, now);
        out.rows.push(Row::update(
            "accounts",
            &acct.no,
            vec![("acct_status_cd", "01".into())],
        ));
        out.labels.push(label(
            AnomalyKind::DormantReactivation,
            vec![acct.no.clone()],
            vec![("transfers", r)],
            now,
        ));
    }

    fn velocity(&mut self, out: &mut Batch) {
        let now = self.ctx.now;
        let today = now.date();
        let opened = today - TimeDelta::days(self.ctx.rng.random_range(365..3650));
        let src = self.open(out, opened, today - TimeDelta::days(40), None);
        let dsts: Vec<Account> = (0..3).map(|_| self.open_active(out)).collect();
        // Ordinary history in the weeks before.
        for d in [25, 14, 6] {
            let at = now - TimeDelta::days(d) - TimeDelta::hours(3);
            let amount = self.ctx.amount(30_000, 300_000, 1_000);
            self.transfer(out, &src.no, &dsts[0].no, amount, at);
        }
        let n = self
            .ctx
            .rng
            .random_range(VELOCITY_COUNT..VELOCITY_COUNT + 6);
        let mut offsets: Vec<i64> = (0..n)
            .map(|_| self.ctx.rng.random_range(0..50 * 60))
            .collect();
        offsets.sort_unstable();
        let mut rows = Vec::new();
        for off in offsets {
            let at = now - TimeDelta::seconds(50 * 60 - off);
            let amount = self.ctx.amount(50_000, 2_000_000, 1_000);
            let dst = &dsts[self.ctx.rng.random_range(0..dsts.len())].no;
            rows.push(("transfers", self.transfer(out, &src.no, dst, amount, at)));
        }
        out.labels.push(label(
            AnomalyKind::VelocitySpike,
            vec![src.no.clone()],
            rows,
            now,
        ));
    }
}

impl Generator for Bank {
    fn domain(&self) -> Domain {
        Domain::Bank
    }

    fn step(&mut self, out: &mut Batch) {
        self.ctx.advance(90.0);
        match self.ctx.anomaly() {
            Some(AnomalyKind::Structuring) => self.structuring(out),
            Some(AnomalyKind::PassThrough) => self.pass_through(out),
            Some(AnomalyKind::DormantReactivation) => self.dormant(out),
            Some(AnomalyKind::VelocitySpike) => self.velocity(out),
            _ => self.normal(out),
        }
    }
}
