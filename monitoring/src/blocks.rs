//! The building blocks' state and evaluation: pure functions of (rule, state, event), no I/O.
//! Every state is serialisable (it survives a restart) and bounded: windows evict by event
//! time and keep at most a cap per key, outlier groups keep a bounded reservoir of recent
//! values, joins and sequences forget what is older than their horizon.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as J};

use crate::event;
use crate::rules::{
    Comparison, Condition, DedicatedSpec, JoinSpec, OutlierSpec, SequenceSpec, Side, ThresholdSpec,
    WindowSpec,
};

/// What a block found: the key, the events involved, the values for the explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The key (joined with `/` when several fields).
    pub key: String,
    /// Start of the window the finding belongs to (event time, ms), for deduplication.
    pub window: i64,
    /// What makes it a separate alert within the key and window (the event id of a
    /// per-event finding); empty when the key and window say it all.
    pub instance: String,
    /// Ids of the events involved.
    pub events: Vec<String>,
    /// Placeholder values.
    pub values: Vec<(&'static str, String)>,
}

fn key_of(ev: &J, pointers: &[String]) -> Option<String> {
    let mut parts = Vec::with_capacity(pointers.len());
    for p in pointers {
        parts.push(event::key_text(event::field(ev, p)?));
    }
    Some(parts.join("/"))
}

fn all(cs: &[Condition], ev: &J) -> bool {
    cs.iter().all(|c| c.holds(ev))
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        #[allow(clippy::cast_possible_truncation)]
        let i = x as i64;
        let s = i.abs().to_string();
        let mut out = String::new();
        for (n, c) in s.chars().enumerate() {
            if n > 0 && (s.len() - n).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if i < 0 { format!("-{out}") } else { out }
    } else {
        format!("{x:.2}")
    }
}

fn time_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// One event held in a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// Event time (ms).
    pub t: i64,
    /// Event id.
    pub id: String,
    /// Summed value.
    pub v: f64,
    /// Distinct value.
    pub d: Option<String>,
}

/// Window state: per key, the events in the window, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowState {
    /// Events per key.
    pub keys: HashMap<String, VecDeque<Held>>,
    /// Newest event time seen.
    pub newest: i64,
    /// Events since the last sweep of idle keys.
    pub since_sweep: u64,
}

const SWEEP_EVERY: u64 = 4096;

impl WindowState {
    /// Feeds one event.
    pub fn on_event(&mut self, spec: &WindowSpec, ev: &J) -> Option<Finding> {
        if !all(&spec.filter, ev) {
            return None;
        }
        let t = event::time_ms(event::field(ev, &spec.time)?)?;
        let key = key_of(ev, &spec.key)?;
        self.newest = self.newest.max(t);
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            let horizon = self.newest - spec.length.0;
            self.keys
                .retain(|_, q| q.back().is_some_and(|h| h.t >= horizon));
        }
        let held = Held {
            t,
            id: event::event_id(ev).to_owned(),
            v: spec
                .value
                .as_ref()
                .and_then(|p| event::field(ev, p))
                .and_then(event::number)
                .unwrap_or(0.0),
            d: spec
                .distinct
                .as_ref()
                .and_then(|p| event::field(ev, p))
                .map(event::key_text),
        };
        let q = self.keys.entry(key.clone()).or_default();
        let pos = q.partition_point(|h| h.t <= t);
        q.insert(pos, held);
        let newest = q.back().map_or(t, |h| h.t);
        while q.front().is_some_and(|h| h.t < newest - spec.length.0) || q.len() > spec.max_per_key
        {
            q.pop_front();
        }
        if t < newest - spec.length.0 {
            return None;
        }
        let count = q.len();
        let sum: f64 = q.iter().map(|h| h.v).sum();
        let mut distinct: Vec<&str> = q.iter().filter_map(|h| h.d.as_deref()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let fires = spec.count_at_least.is_none_or(|n| count >= n)
            && spec.sum_above.is_none_or(|s| sum > s)
            && spec.distinct_at_least.is_none_or(|n| distinct.len() >= n);
        if !fires {
            return None;
        }
        let first = q.front().map_or(t, |h| h.t);
        Some(Finding {
            instance: String::new(),
            key,
            window: first,
            events: q.iter().map(|h| h.id.clone()).collect(),
            values: vec![
                ("count", count.to_string()),
                ("sum", fmt_num(sum)),
                ("distinct", distinct.len().to_string()),
                ("window", spec.length.to_string()),
                (
                    "filter",
                    spec.filter
                        .iter()
                        .map(Condition::describe)
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                ("first", time_text(first)),
                ("last", time_text(newest)),
            ],
        })
    }
}

/// Evaluates a threshold rule on one event (stateless).
#[must_use]
pub fn threshold(spec: &ThresholdSpec, ev: &J) -> Option<Finding> {
    if !all(&spec.filter, ev) {
        return None;
    }
    let hit: Vec<&Condition> = spec.any.iter().filter(|c| c.holds(ev)).collect();
    if !spec.any.is_empty() && hit.is_empty() {
        return None;
    }
    let shown: Vec<&Condition> = spec.filter.iter().chain(hit.iter().copied()).collect();
    let values = shown
        .iter()
        .flat_map(|c| {
            let mut v = vec![c.field.clone()];
            for o in [&c.lt, &c.le, &c.gt, &c.ge, &c.eq, &c.ne]
                .into_iter()
                .flatten()
            {
                if let crate::rules::Operand::Field { field } = o {
                    v.push(field.clone());
                }
            }
            v
        })
        .map(|p| {
            let v = event::field(ev, &p).map_or_else(|| "—".into(), event::key_text);
            format!("{p} = {v}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    Some(Finding {
        instance: String::new(),
        key: event::event_id(ev).to_owned(),
        window: 0,
        events: vec![event::event_id(ev).to_owned()],
        values: vec![
            ("key", event::event_id(ev).to_owned()),
            (
                "conditions",
                shown
                    .iter()
                    .map(|c| c.describe())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("values", values),
        ],
    })
}

/// Outlier state: per group, the most recent values (a ring of at most `reservoir`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutlierState {
    /// Recent values per group.
    pub groups: HashMap<String, VecDeque<f64>>,
}

/// Median of a sorted slice.
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Median and MAD of `values`.
#[must_use]
pub fn median_mad(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    let m = median(&v);
    let mut dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
    dev.sort_by(f64::total_cmp);
    (m, median(&dev))
}

impl OutlierState {
    /// Feeds one event: scores it against its group, then (unless it fired) adds it.
    pub fn on_event(&mut self, spec: &OutlierSpec, ev: &J) -> Option<Finding> {
        if !all(&spec.filter, ev) {
            return None;
        }
        let key = key_of(ev, &spec.key)?;
        let mut x = event::number(event::field(ev, &spec.value)?)?;
        if let Some(per) = &spec.per {
            let d = event::number(event::field(ev, per)?)?;
            if d <= 0.0 {
                return None;
            }
            x /= d;
        }
        let group = self.groups.entry(key.clone()).or_default();
        let mut finding = None;
        if group.len() >= spec.min_samples {
            let (m, mad) = median_mad(group.iter().copied());
            let scale = 1.4826 * mad;
            let z = if scale > 0.0 {
                (x - m) / scale
            } else if (x - m).abs() > f64::EPSILON {
                f64::INFINITY.copysign(x - m)
            } else {
                0.0
            };
            let ratio = if m == 0.0 { f64::NAN } else { x / m };
            let fires = spec.z_above.is_some_and(|a| z > a)
                || spec.z_below.is_some_and(|b| z < -b)
                || spec
                    .ratio_outside
                    .is_some_and(|[lo, hi]| !ratio.is_nan() && (ratio < lo || ratio > hi));
            if fires {
                finding = Some(Finding {
                    instance: event::event_id(ev).to_owned(),
                    key: key.clone(),
                    window: 0,
                    events: vec![event::event_id(ev).to_owned()],
                    values: vec![
                        ("key", key.clone()),
                        ("value", fmt_num(x)),
                        ("median", fmt_num(m)),
                        ("mad", fmt_num(mad)),
                        ("z", format!("{z:.1}")),
                        ("ratio", format!("{ratio:.2}")),
                        ("samples", group.len().to_string()),
                    ],
                });
            }
        }
        if finding.is_none() {
            group.push_back(x);
            while group.len() > spec.reservoir {
                group.pop_front();
            }
        }
        finding
    }
}

fn compare_values(c: &Comparison, left: &J, right: &J) -> Option<bool> {
    let l = event::field(left, &c.left)?;
    let r = event::field(right, &c.right)?;
    let ord = match c.factor {
        Some(f) => event::number(l)?.partial_cmp(&(event::number(r)? * f))?,
        None => event::compare(l, r)?,
    };
    Some(c.op.holds(ord))
}

/// `c` on the two events, each side named by its event type (`customs.declaration
/// /data/gross_weight_kg = 12 ≠ customs.shipment /data/gross_weight_kg = 15`): the same field of
/// two events would otherwise read the same.
fn describe(c: &Comparison, left: &J, right: &J) -> String {
    let show = |ev: &J, p: &str| event::field(ev, p).map_or_else(|| "—".into(), event::key_text);
    let factor = c.factor.map_or(String::new(), |f| format!(" × {f}"));
    format!(
        "{} {} = {} {} {} {} = {}{factor}",
        event::event_type(left),
        c.left,
        show(left, &c.left),
        c.op.symbol(),
        event::event_type(right),
        c.right,
        show(right, &c.right),
    )
}

/// Keeps only the fields a rule reads, to bound what is held.
fn project(ev: &J, pointers: &[&str]) -> J {
    let mut m = Map::new();
    m.insert("event_id".into(), J::String(event::event_id(ev).to_owned()));
    m.insert(
        "event_type".into(),
        J::String(event::event_type(ev).to_owned()),
    );
    let mut root = J::Object(m);
    for p in pointers {
        for alt in p.split('|') {
            if let Some(v) = ev.pointer(alt) {
                set_pointer(&mut root, alt, v.clone());
            }
        }
    }
    root
}

fn set_pointer(root: &mut J, pointer: &str, value: J) {
    let mut cur = root;
    let parts: Vec<&str> = pointer.split('/').skip(1).collect();
    for (i, part) in parts.iter().enumerate() {
        let Some(obj) = cur.as_object_mut() else {
            return;
        };
        if i + 1 == parts.len() {
            obj.insert((*part).to_owned(), value);
            return;
        }
        cur = obj
            .entry((*part).to_owned())
            .or_insert_with(|| J::Object(Map::new()));
    }
}

fn side_matches(side: &Side, ev: &J) -> bool {
    event::event_type(ev) == side.event_type && all(&side.filter, ev)
}

/// A first event held by a sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// Event time (ms).
    pub t: i64,
    /// The fields the rule reads.
    pub ev: J,
}

/// Sequence state: per key, the first events still within reach.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SequenceState {
    /// First events per key.
    pub keys: HashMap<String, VecDeque<Pending>>,
    /// Newest event time seen.
    pub newest: i64,
    /// Events since the last sweep.
    pub since_sweep: u64,
}

impl SequenceState {
    /// Feeds one event: checks it as a `then`, then holds it as a `first`.
    pub fn on_event(&mut self, spec: &SequenceSpec, ev: &J) -> Vec<Finding> {
        let mut out = Vec::new();
        let time_of = |side: &Side| {
            side.time
                .as_ref()
                .and_then(|p| event::field(ev, p))
                .and_then(event::time_ms)
        };
        if side_matches(&spec.then, ev)
            && let (Some(t), Some(key)) = (time_of(&spec.then), key_of(ev, &spec.then.key))
            && let Some(q) = self.keys.get(&key)
        {
            for p in q {
                let gap = t - p.t;
                if gap < 0 || gap > spec.within.0 || event::event_id(&p.ev) == event::event_id(ev) {
                    continue;
                }
                if spec
                    .compare
                    .iter()
                    .all(|c| compare_values(c, &p.ev, ev) == Some(true))
                {
                    out.push(Finding {
                        instance: String::new(),
                        key: key.clone(),
                        window: p.t,
                        events: vec![
                            event::event_id(&p.ev).to_owned(),
                            event::event_id(ev).to_owned(),
                        ],
                        values: vec![
                            ("key", key.clone()),
                            ("first", time_text(p.t)),
                            ("then", time_text(t)),
                            ("gap", crate::rules::Span(gap).to_string()),
                            ("within", spec.within.to_string()),
                            (
                                "compare",
                                spec.compare
                                    .iter()
                                    .map(|c| describe(c, &p.ev, ev))
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            ),
                            ("values", String::new()),
                        ],
                    });
                    break;
                }
            }
        }
        if side_matches(&spec.first, ev)
            && let (Some(t), Some(key)) = (time_of(&spec.first), key_of(ev, &spec.first.key))
        {
            self.newest = self.newest.max(t);
            let pointers: Vec<&str> = spec.compare.iter().map(|c| c.left.as_str()).collect();
            let q = self.keys.entry(key).or_default();
            q.push_back(Pending {
                t,
                ev: project(ev, &pointers),
            });
            let horizon = self.newest - spec.within.0;
            while q.front().is_some_and(|p| p.t < horizon) || q.len() > spec.max_per_key {
                q.pop_front();
            }
            self.since_sweep += 1;
            if self.since_sweep >= SWEEP_EVERY {
                self.since_sweep = 0;
                self.keys
                    .retain(|_, q| q.back().is_some_and(|p| p.t >= horizon));
            }
        }
        out
    }
}

/// Join state: per key, the latest left and right events, with their arrival time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JoinState {
    /// Left events by key.
    pub left: HashMap<String, Pending>,
    /// Right events by key.
    pub right: HashMap<String, Pending>,
    /// Newest event time seen (of any time field found in the sides' `time`, else an event
    /// counter).
    pub newest: i64,
    /// Events since the last sweep.
    pub since_sweep: u64,
}

impl JoinState {
    /// Feeds one event.
    pub fn on_event(&mut self, spec: &JoinSpec, ev: &J) -> Option<Finding> {
        let is_left = side_matches(&spec.left, ev);
        let is_right = side_matches(&spec.right, ev);
        if !is_left && !is_right {
            return None;
        }
        let side = if is_left { &spec.left } else { &spec.right };
        let key = key_of(ev, &side.key)?;
        let t = side
            .time
            .as_ref()
            .and_then(|p| event::field(ev, p))
            .and_then(event::time_ms)
            .unwrap_or(self.newest);
        self.newest = self.newest.max(t);
        let pointers: Vec<&str> = spec
            .any
            .iter()
            .map(|c| {
                if is_left {
                    c.left.as_str()
                } else {
                    c.right.as_str()
                }
            })
            .collect();
        let held = Pending {
            t,
            ev: project(ev, &pointers),
        };
        let other = if is_left { &self.right } else { &self.left };
        let finding = other.get(&key).and_then(|o| {
            let (l, r) = if is_left {
                (&held.ev, &o.ev)
            } else {
                (&o.ev, &held.ev)
            };
            let hits: Vec<&Comparison> = spec
                .any
                .iter()
                .filter(|c| compare_values(c, l, r) == Some(true))
                .collect();
            (!hits.is_empty()).then(|| Finding {
                instance: String::new(),
                key: key.clone(),
                window: 0,
                events: vec![event::event_id(l).to_owned(), event::event_id(r).to_owned()],
                values: vec![
                    ("key", key.clone()),
                    ("left", spec.left.event_type.clone()),
                    ("right", spec.right.event_type.clone()),
                    (
                        "compare",
                        hits.iter()
                            .map(|c| describe(c, l, r))
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                    ("values", String::new()),
                ],
            })
        });
        if is_left {
            self.left.insert(key, held);
        } else {
            self.right.insert(key, held);
        }
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            let horizon = self.newest - spec.ttl.0;
            self.left.retain(|_, p| p.t >= horizon);
            self.right.retain(|_, p| p.t >= horizon);
        }
        finding
    }
}

/// A mortgage known to the encumbrance detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lien {
    /// Event id of the latest event about it.
    pub id: String,
    /// Registration date (ms).
    pub registered: i64,
    /// Release date (ms), once released.
    pub released: Option<i64>,
}

/// State of the dedicated detectors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DedicatedState {
    /// Chain of title: owner per parcel (the last buyer).
    pub owners: HashMap<String, String>,
    /// Encumbrance: mortgages per parcel, by mortgage number.
    pub liens: HashMap<String, HashMap<String, Lien>>,
    /// Dormancy: last activity per account (ms).
    pub last_seen: HashMap<String, i64>,
}

fn text(ev: &J, p: &str) -> Option<String> {
    event::field(ev, p).map(event::key_text)
}

fn ms(ev: &J, p: &str) -> Option<i64> {
    event::field(ev, p).and_then(event::time_ms)
}

impl DedicatedState {
    /// Feeds one event.
    pub fn on_event(&mut self, spec: &DedicatedSpec, ev: &J) -> Vec<Finding> {
        let id = event::event_id(ev).to_owned();
        match spec {
            DedicatedSpec::ChainOfTitle {
                parcel,
                seller,
                buyer,
                owner_on_record,
            } => {
                let (Some(p), Some(s), Some(b)) =
                    (text(ev, parcel), text(ev, seller), text(ev, buyer))
                else {
                    return vec![];
                };
                let owner = self
                    .owners
                    .get(&p)
                    .cloned()
                    .or_else(|| text(ev, owner_on_record));
                self.owners.insert(p.clone(), b);
                match owner {
                    Some(o) if o != s => vec![Finding {
                        instance: id.clone(),
                        key: p.clone(),
                        window: 0,
                        events: vec![id],
                        values: vec![
                            ("key", p),
                            ("values", format!("seller {s}, owner on record {o}")),
                            ("detail", String::new()),
                        ],
                    }],
                    _ => vec![],
                }
            }
            DedicatedSpec::Encumbrance {
                mortgage_type,
                transfer_type,
                parcel,
                mortgage_no,
                registered,
                released,
                contract,
            } => {
                let Some(p) = text(ev, parcel) else {
                    return vec![];
                };
                let et = event::event_type(ev);
                if et == mortgage_type {
                    let (Some(no), Some(reg)) = (text(ev, mortgage_no), ms(ev, registered)) else {
                        return vec![];
                    };
                    let rel = ms(ev, released);
                    let liens = self.liens.entry(p).or_default();
                    let lien = liens.entry(no).or_insert(Lien {
                        id: id.clone(),
                        registered: reg,
                        released: None,
                    });
                    lien.id = id;
                    lien.registered = reg;
                    lien.released = rel.or(lien.released);
                    vec![]
                } else if et == transfer_type {
                    let Some(c) = ms(ev, contract) else {
                        return vec![];
                    };
                    let Some(liens) = self.liens.get(&p) else {
                        return vec![];
                    };
                    let mut out = Vec::new();
                    for (no, l) in liens {
                        if l.registered < c && l.released.is_none_or(|r| r > c) {
                            out.push(Finding {
        instance: id.clone(),
                                key: format!("{p}/{no}"),
                                window: c,
                                events: vec![id.clone(), l.id.clone()],
                                values: vec![
                                    ("key", p.clone()),
                                    (
                                        "values",
                                        format!(
                                            "mortgage {no} registered {}, {} at the contract date {}",
                                            time_text(l.registered),
                                            l.released.map_or("not released".into(), |r| {
                                                format!("released only {}", time_text(r))
                                            }),
                                            time_text(c)
                                        ),
                                    ),
                                    ("detail", String::new()),
                                ],
                            });
                        }
                    }
                    out
                } else {
                    vec![]
                }
            }
            DedicatedSpec::Dormant {
                account,
                touches,
                time,
                idle,
                last_activity,
                dormant_since,
            } => {
                let (Some(a), Some(t)) = (text(ev, account), ms(ev, time)) else {
                    return vec![];
                };
                let learned = self.last_seen.get(&a).copied();
                let given = last_activity.as_ref().and_then(|p| ms(ev, p));
                let since = dormant_since.as_ref().and_then(|p| ms(ev, p));
                let last = learned.max(given);
                let idle_for = last.map(|l| t - l);
                let dormant_flag = since.is_some_and(|s| s <= t && learned.is_none_or(|l| l < s));
                let fires = idle_for.is_some_and(|d| d >= idle.0) || dormant_flag;
                for p in touches {
                    if let Some(o) = text(ev, p) {
                        let e = self.last_seen.entry(o).or_insert(t);
                        *e = (*e).max(t);
                    }
                }
                let e = self.last_seen.entry(a.clone()).or_insert(t);
                *e = (*e).max(t);
                if !fires {
                    return vec![];
                }
                let detail = match (last, since) {
                    (Some(l), _) if t - l >= idle.0 => format!(
                        "last activity {} ({} before), idle limit {idle}",
                        time_text(l),
                        crate::rules::Span(t - l)
                    ),
                    (_, Some(s)) => format!("dormant since {}", time_text(s)),
                    _ => String::new(),
                };
                vec![Finding {
                    instance: id.clone(),
                    key: a.clone(),
                    window: last.unwrap_or(0),
                    events: vec![id],
                    values: vec![("key", a), ("values", detail.clone()), ("detail", detail)],
                }]
            }
        }
    }
}
