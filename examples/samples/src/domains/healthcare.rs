//! Hospital HIS: patients, policies, visits, treatments, invoices, claims.

use chrono::{NaiveDate, TimeDelta};
use rand::Rng;

use super::{Ctx, Generator, label, ymd};
use crate::model::{AnomalyKind, Batch, Domain, Row, Value};
use crate::names::{self, Person};

/// Hospitals seeded by the schema: (code, name).
pub const HOSPITALS: &[(&str, &str)] = &[
    ("11100011", "한빛대학교병원"),
    ("11100027", "새솔종합병원"),
    ("31200035", "푸른내과의원"),
    ("31200041", "바른정형외과의원"),
    ("21100059", "하늘안과의원"),
];

/// The fee schedule seeded by the schema: (procedure code, name, usual fee in KRW).
pub const PROCEDURES: &[(&str, &str, i64)] = &[
    ("AA157", "초진 진찰료", 18_000),
    ("AA257", "재진 진찰료", 13_000),
    ("B1010", "일반혈액검사(CBC)", 9_000),
    ("HA101", "흉부 단순 X선 촬영", 25_000),
    ("HE101", "상복부 초음파", 120_000),
    ("HF101", "뇌 MRI", 450_000),
    ("KK051", "위 내시경", 80_000),
    ("MM101", "도수치료", 100_000),
    ("S5121", "백내장 수술", 1_200_000),
    ("N0711", "관절경 수술", 1_800_000),
];

/// A claim above this multiple of the usual fee is a `claim_amount_outlier`; normal fees stay
/// within 0.8–1.3×.
pub const OUTLIER_FACTOR: i64 = 3;

#[derive(Debug, Clone)]
struct Policy {
    no: String,
    start: NaiveDate,
    end: NaiveDate,
}

impl Policy {
    fn covers(&self, d: NaiveDate) -> bool {
        self.start <= d && d <= self.end
    }
}

#[derive(Debug, Clone)]
struct Patient {
    no: String,
    hospital: usize,
    policy: Option<Policy>,
    last_visit: Option<NaiveDate>,
}

/// The healthcare generator.
#[derive(Debug)]
pub(crate) struct Healthcare {
    ctx: Ctx,
    /// Patients of normal activity; anomaly scenarios register their own.
    patients: Vec<Patient>,
}

struct Treatment {
    no: String,
    proc_cd: &'static str,
    amount: i64,
}

impl Healthcare {
    pub(crate) fn new(ctx: Ctx) -> Self {
        Self {
            ctx,
            patients: Vec::new(),
        }
    }

    /// Register a patient; `policy` is `(start, end)` of an insurance policy, if any.
    fn new_patient(&mut self, out: &mut Batch, policy: Option<(NaiveDate, NaiveDate)>) -> Patient {
        let ctx = &mut self.ctx;
        let today = ctx.today();
        let no = format!("P{:08}", ctx.next("patients"));
        let hospital = ctx.rng.random_range(0..HOSPITALS.len());
        let p: Person = names::person(&mut ctx.rng, today);
        out.rows.push(Row::insert(
            "patients",
            vec![
                ("patient_no", no.clone().into()),
                ("hospital_cd", HOSPITALS[hospital].0.into()),
                ("patient_nm", p.name.into()),
                ("rrn", p.rrn.into()),
                ("birth_ymd", ymd(p.birth).into()),
                ("sex_cd", p.sex_cd.into()),
                ("phone_no", p.phone.into()),
                ("addr", p.addr.into()),
                ("reg_ymd", ymd(today).into()),
            ],
        ));
        let policy = policy.map(|(start, end)| {
            let pno = format!("IP{:010}", ctx.next("insurance_policies"));
            let insurer = ctx.rng.random_range(1..6);
            out.rows.push(Row::insert(
                "insurance_policies",
                vec![
                    ("policy_no", pno.clone().into()),
                    ("patient_no", no.clone().into()),
                    ("insurer_cd", format!("{insurer:02}").into()),
                    ("product_nm", "무배당 실손의료비보험".into()),
                    ("start_ymd", ymd(start).into()),
                    ("end_ymd", ymd(end).into()),
                    ("status_cd", if end < today { "02" } else { "01" }.into()),
                ],
            ));
            Policy {
                no: pno,
                start,
                end,
            }
        });
        Patient {
            no,
            hospital,
            policy,
            last_visit: None,
        }
    }

    /// A policy in force today (started up to ~2.5 years ago, running 1–3 years from then).
    fn policy_covering_today(&mut self) -> (NaiveDate, NaiveDate) {
        let today = self.ctx.today();
        let start = today - TimeDelta::days(self.ctx.rng.random_range(0..900));
        let min_len = (today - start).num_days() + 30;
        let len = self
            .ctx
            .rng
            .random_range(min_len.max(365)..min_len.max(365) + 730);
        (start, start + TimeDelta::days(len))
    }

    /// A visit with its treatments and invoice; `procs` with the fee factor range.
    fn visit(
        &mut self,
        out: &mut Batch,
        patient: &Patient,
        hospital: usize,
        procs: &[&'static str],
        factor: (f64, f64),
    ) -> (String, Vec<Treatment>) {
        let ctx = &mut self.ctx;
        let today = ctx.today();
        let visit_no = format!("V{:010}", ctx.next("visits"));
        out.rows.push(Row::insert(
            "visits",
            vec![
                ("visit_no", visit_no.clone().into()),
                ("patient_no", patient.no.clone().into()),
                ("hospital_cd", HOSPITALS[hospital].0.into()),
                (
                    "dept_cd",
                    format!("{:02}", ctx.rng.random_range(1..7)).into(),
                ),
                ("visit_ymd", ymd(today).into()),
                (
                    "visit_type_cd",
                    if ctx.rng.random_bool(0.85) {
                        "01"
                    } else {
                        "02"
                    }
                    .into(),
                ),
            ],
        ));
        let mut treatments = Vec::new();
        for proc_cd in procs {
            let usual = PROCEDURES
                .iter()
                .find(|p| p.0 == *proc_cd)
                .map_or(10_000, |p| p.2);
            let amount = ctx.scaled(usual, factor.0, factor.1, 10);
            let no = format!("T{:011}", ctx.next("treatments"));
            out.rows.push(Row::insert(
                "treatments",
                vec![
                    ("treatment_no", no.clone().into()),
                    ("visit_no", visit_no.clone().into()),
                    ("patient_no", patient.no.clone().into()),
                    ("proc_cd", (*proc_cd).into()),
                    ("treat_ymd", ymd(today).into()),
                    ("qty", Value::Int(1)),
                    ("amount", super::commas(amount).into()),
                ],
            ));
            treatments.push(Treatment {
                no,
                proc_cd,
                amount,
            });
        }
        let total: i64 = treatments.iter().map(|t| t.amount).sum();
        let invoice_no = format!("R{:010}", ctx.next("invoices"));
        out.rows.push(Row::insert(
            "invoices",
            vec![
                ("invoice_no", invoice_no.into()),
                ("visit_no", visit_no.clone().into()),
                ("patient_no", patient.no.clone().into()),
                ("total_amt", super::commas(total).into()),
                ("issue_ymd", ymd(today).into()),
                (
                    "pay_status_cd",
                    if ctx.rng.random_bool(0.95) {
                        "01"
                    } else {
                        "02"
                    }
                    .into(),
                ),
            ],
        ));
        (visit_no, treatments)
    }

    fn claim(
        &mut self,
        out: &mut Batch,
        patient: &Patient,
        policy: &Policy,
        hospital: usize,
        visit_no: &str,
        t: &Treatment,
    ) -> String {
        let ctx = &mut self.ctx;
        let no = format!("C{:010}", ctx.next("claims"));
        let claimed_at = ctx.now + TimeDelta::minutes(ctx.rng.random_range(30..4320));
        out.rows.push(Row::insert(
            "claims",
            vec![
                ("claim_no", no.clone().into()),
                ("treatment_no", t.no.clone().into()),
                ("visit_no", visit_no.into()),
                ("patient_no", patient.no.clone().into()),
                ("policy_no", policy.no.clone().into()),
                ("hospital_cd", HOSPITALS[hospital].0.into()),
                ("proc_cd", t.proc_cd.into()),
                ("treat_ymd", ymd(ctx.today()).into()),
                ("claim_amt", Value::Int(t.amount)),
                ("claim_status_cd", "01".into()),
                ("claimed_at", claimed_at.into()),
            ],
        ));
        no
    }

    fn distinct_procs(&mut self, n: usize) -> Vec<&'static str> {
        let mut all: Vec<&'static str> = PROCEDURES.iter().map(|p| p.0).collect();
        let mut picked = Vec::new();
        for _ in 0..n.min(all.len()) {
            let i = self.ctx.rng.random_range(0..all.len());
            picked.push(all.swap_remove(i));
        }
        picked
    }

    /// Normal activity: a patient visits; claims are filed only for treatments inside a policy
    /// in force, never twice for one patient, procedure and day, with usual fees.
    fn normal(&mut self, out: &mut Batch) {
        let today = self.ctx.today();
        let mut chosen = None;
        if !self.patients.is_empty() && !self.ctx.rng.random_bool(0.25) {
            for _ in 0..5 {
                let i = self.ctx.rng.random_range(0..self.patients.len());
                if self.patients[i].last_visit.is_none_or(|d| d < today) {
                    chosen = Some(i);
                    break;
                }
            }
        }
        let i = if let Some(i) = chosen {
            i
        } else {
            let policy = if self.ctx.rng.random_bool(0.85) {
                Some(self.policy_covering_today())
            } else {
                None
            };
            let p = self.new_patient(out, policy);
            self.patients.push(p);
            self.patients.len() - 1
        };
        self.patients[i].last_visit = Some(today);
        let patient = self.patients[i].clone();
        let hospital = if self.ctx.rng.random_bool(0.7) {
            patient.hospital
        } else {
            self.ctx.rng.random_range(0..HOSPITALS.len())
        };
        let n = self.ctx.rng.random_range(1..4);
        let procs = self.distinct_procs(n);
        let (visit_no, treatments) = self.visit(out, &patient, hospital, &procs, (0.8, 1.3));
        if let Some(policy) = patient.policy.as_ref().filter(|p| p.covers(today))
            && self.ctx.rng.random_bool(0.7)
        {
            for t in &treatments {
                self.claim(out, &patient, policy, hospital, &visit_no, t);
            }
        }
    }

    fn duplicate_claim(&mut self, out: &mut Batch) {
        let span = self.policy_covering_today();
        let patient = self.new_patient(out, Some(span));
        let Some(policy) = patient.policy.clone() else {
            return;
        };
        let procs = self.distinct_procs(1);
        let (visit_no, treatments) =
            self.visit(out, &patient, patient.hospital, &procs, (0.8, 1.3));
        let mut claims = Vec::new();
        for t in &treatments {
            claims.push(self.claim(out, &patient, &policy, patient.hospital, &visit_no, t));
        }
        if self.ctx.rng.random_bool(0.5) {
            // The same treatment claimed again by the same hospital.
            for t in &treatments {
                claims.push(self.claim(out, &patient, &policy, patient.hospital, &visit_no, t));
            }
        } else {
            // The same procedure on the same day, claimed by another hospital.
            let other = (patient.hospital + self.ctx.rng.random_range(1..HOSPITALS.len()))
                % HOSPITALS.len();
            let (visit2, treatments2) = self.visit(out, &patient, other, &procs, (0.8, 1.3));
            for t in &treatments2 {
                claims.push(self.claim(out, &patient, &policy, other, &visit2, t));
            }
        }
        let keys = vec![
            patient.no.clone(),
            procs.first().copied().unwrap_or_default().to_owned(),
            ymd(self.ctx.today()),
        ];
        let rows = claims.into_iter().map(|c| ("claims", c)).collect();
        out.labels
            .push(label(AnomalyKind::DuplicateClaim, keys, rows, self.ctx.now));
    }

    fn amount_outlier(&mut self, out: &mut Batch) {
        let span = self.policy_covering_today();
        let patient = self.new_patient(out, Some(span));
        let Some(policy) = patient.policy.clone() else {
            return;
        };
        let procs = self.distinct_procs(1);
        let (visit_no, treatments) =
            self.visit(out, &patient, patient.hospital, &procs, (4.0, 9.0));
        for t in &treatments {
            let claim = self.claim(out, &patient, &policy, patient.hospital, &visit_no, t);
            out.labels.push(label(
                AnomalyKind::ClaimAmountOutlier,
                vec![claim.clone(), t.proc_cd.to_owned()],
                vec![("claims", claim)],
                self.ctx.now,
            ));
        }
    }

    fn outside_policy(&mut self, out: &mut Batch) {
        let today = self.ctx.today();
        let span = if self.ctx.rng.random_bool(0.8) {
            // Expired 10 days to 13 months ago.
            let end = today - TimeDelta::days(self.ctx.rng.random_range(10..400));
            (
                end - TimeDelta::days(self.ctx.rng.random_range(365..1100)),
                end,
            )
        } else {
            // Not yet started.
            let start = today + TimeDelta::days(self.ctx.rng.random_range(5..90));
            (start, start + TimeDelta::days(365))
        };
        let patient = self.new_patient(out, Some(span));
        let Some(policy) = patient.policy.clone() else {
            return;
        };
        let procs = self.distinct_procs(1);
        let (visit_no, treatments) =
            self.visit(out, &patient, patient.hospital, &procs, (0.8, 1.3));
        for t in &treatments {
            let claim = self.claim(out, &patient, &policy, patient.hospital, &visit_no, t);
            out.labels.push(label(
                AnomalyKind::TreatmentOutsidePolicy,
                vec![claim.clone(), policy.no.clone()],
                vec![("claims", claim), ("insurance_policies", policy.no.clone())],
                self.ctx.now,
            ));
        }
    }
}

impl Generator for Healthcare {
    fn domain(&self) -> Domain {
        Domain::Healthcare
    }

    fn step(&mut self, out: &mut Batch) {
        self.ctx.advance(600.0);
        match self.ctx.anomaly() {
            Some(AnomalyKind::DuplicateClaim) => self.duplicate_claim(out),
            Some(AnomalyKind::ClaimAmountOutlier) => self.amount_outlier(out),
            Some(AnomalyKind::TreatmentOutsidePolicy) => self.outside_policy(out),
            _ => self.normal(out),
        }
    }
}
