//! One deterministic generator per domain.
//!
//! Each generator owns a `ChaCha8` RNG seeded from `--seed` and the domain, and a simulated
//! business clock starting at `--start` (KST). Every [`Generator::step`] advances the clock and
//! emits either normal activity or, with probability `anomaly_rate`, one anomaly scenario (a
//! kind chosen uniformly among the domain's) together with its [`PendingLabel`]. Scenario rows
//! are emitted in one step, so a label's rows are always written in the same transaction.
//!
//! Normal activity is constrained so that it never fits an anomaly definition (see
//! [`crate::definitions`]); anomaly scenarios use their own fresh parties, parcels or
//! consignees, so that they do not change what normal rows look like either.

mod bank;
mod customs;
mod healthcare;
mod land;

pub use bank::{
    DORMANT_DAYS, NORMAL_GAP_FLOOR_KRW, PASS_THROUGH_MINUTES, REPORT_THRESHOLD_KRW,
    STRUCTURING_FLOOR_KRW, VELOCITY_COUNT, VELOCITY_WINDOW_MINUTES,
};
pub use customs::{DUTY_FREE_LIMIT_KRW, SPLIT_WINDOW_DAYS};
pub use healthcare::{HOSPITALS, OUTLIER_FACTOR, PROCEDURES};
pub use land::{DISTRICTS, RESALE_DAYS};

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::{AnomalyKind, Batch, Domain, PendingLabel, RowRef};

/// A domain's generator.
pub trait Generator: Send + std::fmt::Debug {
    /// The domain.
    fn domain(&self) -> Domain;
    /// Emit the next event (normal activity or one anomaly scenario) into `out`.
    fn step(&mut self, out: &mut Batch);
}

/// How to start a generator.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// The seed; the same seed (and offsets) gives the same rows and labels.
    pub seed: u64,
    /// Fraction of steps that inject an anomaly, in `[0, 1]`.
    pub anomaly_rate: f64,
    /// Start of the simulated business clock (KST).
    pub start: NaiveDateTime,
    /// Per table, the number business keys start after (the table's current `MAX(id)`), so
    /// that a second run into the same database does not collide with the first.
    pub offsets: HashMap<String, i64>,
}

impl GenConfig {
    /// A config with no offsets (an empty database).
    #[must_use]
    pub fn new(seed: u64, anomaly_rate: f64, start: NaiveDateTime) -> Self {
        Self {
            seed,
            anomaly_rate,
            start,
            offsets: HashMap::new(),
        }
    }
}

/// The default start of the simulated clock: 2024-01-02 09:00 KST.
#[must_use]
pub fn default_start() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 1, 2)
        .and_then(|d| d.and_hms_opt(9, 0, 0))
        .unwrap_or_default()
}

/// The generator for `domain`.
#[must_use]
pub fn generator(domain: Domain, cfg: &GenConfig) -> Box<dyn Generator> {
    let ctx = Ctx::new(domain, cfg);
    match domain {
        Domain::Healthcare => Box::new(healthcare::Healthcare::new(ctx)),
        Domain::Customs => Box::new(customs::Customs::new(ctx)),
        Domain::Land => Box::new(land::Land::new(ctx)),
        Domain::Bank => Box::new(bank::Bank::new(ctx)),
    }
}

/// What every generator shares: RNG, clock, key counters, the anomaly dice.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) rng: ChaCha8Rng,
    pub(crate) now: NaiveDateTime,
    counters: HashMap<&'static str, i64>,
    anomaly_rate: f64,
    kinds: Vec<AnomalyKind>,
}

impl Ctx {
    fn new(domain: Domain, cfg: &GenConfig) -> Self {
        let salt = match domain {
            Domain::Healthcare => 0x4845_414c,
            Domain::Customs => 0x4355_5354,
            Domain::Land => 0x4c41_4e44,
            Domain::Bank => 0x4241_4e4b,
        };
        let counters = domain
            .tables()
            .map(|t| (t.name, cfg.offsets.get(t.name).copied().unwrap_or(0)))
            .collect();
        Self {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ (salt << 20)),
            now: cfg.start,
            counters,
            anomaly_rate: cfg.anomaly_rate.clamp(0.0, 1.0),
            kinds: AnomalyKind::of(domain),
        }
    }

    /// The next number for a business key of `table`.
    pub(crate) fn next(&mut self, table: &'static str) -> i64 {
        let n = self.counters.entry(table).or_insert(0);
        *n += 1;
        *n
    }

    /// Advance the clock by an exponentially distributed time with the given mean.
    pub(crate) fn advance(&mut self, mean_secs: f64) {
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        let secs = (-u.ln() * mean_secs).clamp(1.0, mean_secs * 20.0);
        // The cast is exact enough: secs is at most 20 × a mean of minutes.
        #[allow(clippy::cast_possible_truncation)]
        let secs = secs as i64;
        self.now += TimeDelta::seconds(secs);
    }

    pub(crate) fn today(&self) -> NaiveDate {
        self.now.date()
    }

    /// Whether this step injects an anomaly, and which.
    pub(crate) fn anomaly(&mut self) -> Option<AnomalyKind> {
        if self.anomaly_rate > 0.0 && self.rng.random_bool(self.anomaly_rate) {
            let i = self.rng.random_range(0..self.kinds.len());
            self.kinds.get(i).copied()
        } else {
            None
        }
    }

    /// A uniform integer in `[lo, hi)`, rounded down to a multiple of `unit`.
    pub(crate) fn amount(&mut self, lo: i64, hi: i64, unit: i64) -> i64 {
        let v = self.rng.random_range(lo..hi);
        (v / unit).max(1) * unit
    }

    /// `base × factor` with factor uniform in `[lo, hi)`, rounded to `unit`.
    pub(crate) fn scaled(&mut self, base: i64, lo: f64, hi: f64, unit: i64) -> i64 {
        let f: f64 = self.rng.random_range(lo..hi);
        // Amounts stay far below 2^52, where f64 is exact for integers.
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        let v = (base as f64 * f / unit as f64).round() as i64;
        v.max(1) * unit
    }
}

pub(crate) fn label(
    kind: AnomalyKind,
    business_keys: Vec<String>,
    rows: Vec<(&'static str, String)>,
    at: NaiveDateTime,
) -> PendingLabel {
    PendingLabel {
        kind,
        business_keys,
        rows: rows
            .into_iter()
            .map(|(table, key)| RowRef { table, key })
            .collect(),
        at,
    }
}

/// `YYYYMMDD`.
#[must_use]
pub fn ymd(d: NaiveDate) -> String {
    d.format("%Y%m%d").to_string()
}

/// Parse `YYYYMMDD`.
#[must_use]
pub fn parse_ymd(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y%m%d").ok()
}

/// An amount with thousands separators, as legacy screens print them: `1,250,000`.
#[must_use]
pub fn commas(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Parse an amount with thousands separators.
#[must_use]
pub fn parse_commas(s: &str) -> Option<i64> {
    s.replace(',', "").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_round_trip() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1_250_000_000, "1,250,000,000"),
            (-12345, "-12,345"),
        ] {
            assert_eq!(commas(n), s);
            assert_eq!(parse_commas(s), Some(n));
        }
    }
}
