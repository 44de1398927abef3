//! The monitor: every rule's block fed with the canonical events of its types, alerts as
//! values, deduplicated per (rule, key, window), state that can be saved and restored.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value as J;

use crate::blocks::{
    DedicatedState, Finding, JoinState, OutlierState, SequenceState, WindowState, threshold,
};
use crate::event;
use crate::rules::{Block, Lookup, Rule, Severity, render};

/// An alert: why, about what, with which events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The rule that fired.
    pub rule_id: String,
    /// Its version.
    pub rule_version: u32,
    /// Severity.
    pub severity: Severity,
    /// The key the rule groups by (pseudonyms, parcel ids, order numbers …).
    pub key: String,
    /// The explanation, with the values and thresholds.
    pub explanation: String,
    /// Ids of the canonical events involved.
    pub event_ids: Vec<String>,
    /// Event time of the event that made it fire (ms since the epoch).
    pub event_time: Option<i64>,
    /// When it was detected (processing time, ms since the epoch, as given to the monitor).
    pub detected_at: i64,
}

/// The state of one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RuleState {
    /// A stateless rule.
    None,
    /// Window.
    Window(WindowState),
    /// Outlier.
    Outlier(OutlierState),
    /// Sequence.
    Sequence(SequenceState),
    /// Join.
    Join(JoinState),
    /// Dedicated.
    Dedicated(DedicatedState),
}

impl RuleState {
    fn for_block(b: &Block) -> Self {
        match b {
            Block::Threshold(_) => Self::None,
            Block::Window(_) => Self::Window(WindowState::default()),
            Block::Outlier(_) => Self::Outlier(OutlierState::default()),
            Block::Sequence(_) => Self::Sequence(SequenceState::default()),
            Block::Join(_) => Self::Join(JoinState::default()),
            Block::Dedicated(_) => Self::Dedicated(DedicatedState::default()),
        }
    }
}

/// Everything a monitor remembers, to survive a restart: per rule (id and version) its state
/// and the alerts already raised (for deduplication), and the lookups' tables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Per rule id.
    pub rules: HashMap<String, SavedRule>,
    /// Per lookup id.
    #[serde(default)]
    pub lookups: HashMap<String, LookupTable>,
}

/// A lookup's rows: per key, the fields its joins read (by their pointer in the table's event).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LookupTable {
    rows: HashMap<String, std::collections::BTreeMap<String, J>>,
    order: std::collections::VecDeque<String>,
}

impl LookupTable {
    /// Keys held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it holds no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[derive(Debug)]
struct RunningLookup {
    spec: Lookup,
    /// The table's event fields the joins read.
    wanted: Vec<String>,
    table: LookupTable,
}

impl RunningLookup {
    fn fill(&mut self, ev: &J) {
        if !self.spec.filter.iter().all(|c| c.holds(ev)) {
            return;
        }
        let Some(key) = event::field(ev, &self.spec.key).map(event::key_text) else {
            return;
        };
        let row = self
            .wanted
            .iter()
            .filter_map(|p| event::field(ev, p).map(|v| (p.clone(), v.clone())))
            .collect();
        if self.table.rows.insert(key.clone(), row).is_none() {
            self.table.order.push_back(key);
            while self.table.order.len() > self.spec.max_keys {
                if let Some(old) = self.table.order.pop_front() {
                    self.table.rows.remove(&old);
                }
            }
        }
    }
}

/// Sets `pointer` (whose parent object exists) in `ev` to `value` unless it holds a value.
fn set_missing(ev: &mut J, pointer: &str, value: &J) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let name = last.replace("~1", "/").replace("~0", "~");
    if let Some(J::Object(m)) = ev.pointer_mut(parent)
        && m.get(&name).is_none_or(J::is_null)
    {
        m.insert(name, value.clone());
    }
}

/// One rule's saved state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedRule {
    /// The rule version the state was computed under.
    pub version: u32,
    /// The block's state.
    pub state: RuleState,
    /// The (key, window) pairs already raised, oldest first.
    pub raised: Vec<(String, i64)>,
}

#[derive(Debug)]
struct Running {
    rule: Rule,
    state: RuleState,
    raised: HashSet<(String, i64)>,
    raised_order: std::collections::VecDeque<(String, i64)>,
}

/// How many raised (key, window) pairs a rule remembers for deduplication.
const RAISED_CAP: usize = 100_000;

/// The detectors of a set of rules.
#[derive(Debug)]
pub struct Monitor {
    rules: Vec<Running>,
    by_type: HashMap<String, Vec<usize>>,
    lookups: Vec<RunningLookup>,
}

impl Monitor {
    /// A monitor with fresh state.
    #[must_use]
    pub fn new(rules: Vec<Rule>) -> Self {
        let mut by_type: HashMap<String, Vec<usize>> = HashMap::new();
        let rules: Vec<Running> = rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| {
                for t in &rule.event_types {
                    by_type.entry(t.clone()).or_default().push(i);
                }
                Running {
                    state: RuleState::for_block(&rule.block),
                    rule,
                    raised: HashSet::new(),
                    raised_order: std::collections::VecDeque::new(),
                }
            })
            .collect();
        Self {
            rules,
            by_type,
            lookups: Vec::new(),
        }
    }

    /// The monitor with `lookups` joined into the events before the rules see them.
    #[must_use]
    pub fn with_lookups(mut self, lookups: Vec<Lookup>) -> Self {
        self.lookups = lookups
            .into_iter()
            .map(|spec| {
                let mut wanted: Vec<String> = spec
                    .join
                    .iter()
                    .flat_map(|j| j.set.values().cloned())
                    .collect();
                wanted.sort();
                wanted.dedup();
                RunningLookup {
                    spec,
                    wanted,
                    table: LookupTable::default(),
                }
            })
            .collect();
        self
    }

    /// Whether events of `event_type` fill a lookup (reference data, best fed before the
    /// events it is joined into).
    #[must_use]
    pub fn fills_lookup(&self, event_type: &str) -> bool {
        self.lookups
            .iter()
            .any(|l| l.spec.event_types.iter().any(|t| t == event_type))
    }

    /// Keys held per lookup id.
    pub fn lookup_sizes(&self) -> impl Iterator<Item = (&str, usize)> {
        self.lookups
            .iter()
            .map(|l| (l.spec.id.as_str(), l.table.len()))
    }

    /// Fills the lookups fed by `ev` and returns `ev` with the lookups joined into it, when any
    /// is.
    fn lookup(&mut self, ev: &J) -> Option<J> {
        let et = event::event_type(ev);
        for l in &mut self.lookups {
            if l.spec.event_types.iter().any(|t| t == et) {
                l.fill(ev);
            }
        }
        let mut joined: Option<J> = None;
        for l in &self.lookups {
            for j in l
                .spec
                .join
                .iter()
                .filter(|j| j.event_types.iter().any(|t| t == et))
            {
                let Some(row) = event::field(ev, &j.key)
                    .map(event::key_text)
                    .and_then(|k| l.table.rows.get(&k))
                else {
                    continue;
                };
                let out = joined.get_or_insert_with(|| ev.clone());
                for (to, from) in &j.set {
                    if let Some(v) = row.get(from) {
                        set_missing(out, to, v);
                    }
                }
            }
        }
        joined
    }

    /// The rules.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|r| &r.rule)
    }

    /// Feeds one canonical event (the envelope of `mappings/README.md`); `now` is the
    /// processing time recorded in the alerts.
    pub fn process(&mut self, ev: &J, now: i64) -> Vec<Alert> {
        let joined = if self.lookups.is_empty() {
            None
        } else {
            self.lookup(ev)
        };
        let ev = joined.as_ref().unwrap_or(ev);
        let mut alerts = Vec::new();
        let Some(idx) = self.by_type.get(event::event_type(ev)) else {
            return alerts;
        };
        for &i in idx {
            let Some(r) = self.rules.get_mut(i) else {
                continue;
            };
            let findings: Vec<Finding> = match (&r.rule.block, &mut r.state) {
                (Block::Window(s), RuleState::Window(st)) => {
                    st.on_event(s, ev).into_iter().collect()
                }
                (Block::Threshold(s), _) => threshold(s, ev).into_iter().collect(),
                (Block::Outlier(s), RuleState::Outlier(st)) => {
                    st.on_event(s, ev).into_iter().collect()
                }
                (Block::Sequence(s), RuleState::Sequence(st)) => st.on_event(s, ev),
                (Block::Join(s), RuleState::Join(st)) => st.on_event(s, ev).into_iter().collect(),
                (Block::Dedicated(s), RuleState::Dedicated(st)) => st.on_event(s, ev),
                _ => Vec::new(),
            };
            for f in findings {
                // A window finding is raised once per window: the window starting at the
                // first event it holds; threshold/join/dedicated ones once per key.
                let dedup = if f.instance.is_empty() {
                    (f.key.clone(), f.window)
                } else {
                    (format!("{}#{}", f.key, f.instance), f.window)
                };
                if !r.raised.insert(dedup.clone()) {
                    continue;
                }
                if let Block::Window(w) = &r.rule.block {
                    // Later findings for the key within the same window are the same alert.
                    let span = w.length.0;
                    let same = r.raised_order.iter().rev().take(64).any(|(k, start)| {
                        *k == f.key && f.window > *start && f.window <= start + span
                    });
                    if same {
                        r.raised.remove(&dedup);
                        continue;
                    }
                }
                r.raised_order.push_back(dedup);
                while r.raised_order.len() > RAISED_CAP {
                    if let Some(old) = r.raised_order.pop_front() {
                        r.raised.remove(&old);
                    }
                }
                let mut values = f.values.clone();
                if !values.iter().any(|(k, _)| *k == "key") {
                    values.push(("key", f.key.clone()));
                }
                alerts.push(Alert {
                    rule_id: r.rule.id.clone(),
                    rule_version: r.rule.version,
                    severity: r.rule.severity,
                    key: f.key,
                    explanation: render(&r.rule.explanation, &values),
                    event_ids: f.events,
                    event_time: event_time(ev),
                    detected_at: now,
                });
            }
        }
        alerts
    }

    /// The state to save.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            rules: self
                .rules
                .iter()
                .map(|r| {
                    (
                        r.rule.id.clone(),
                        SavedRule {
                            version: r.rule.version,
                            state: r.state.clone(),
                            raised: r.raised_order.iter().cloned().collect(),
                        },
                    )
                })
                .collect(),
            lookups: self
                .lookups
                .iter()
                .map(|l| (l.spec.id.clone(), l.table.clone()))
                .collect(),
        }
    }

    /// Restores saved state. A rule whose version changed since starts afresh (its state was
    /// computed under other parameters); returns the ids of those rules.
    pub fn restore(&mut self, snap: Snapshot) -> Vec<String> {
        let mut fresh = Vec::new();
        let mut saved = snap.rules;
        let mut tables = snap.lookups;
        for l in &mut self.lookups {
            if let Some(t) = tables.remove(&l.spec.id) {
                l.table = t;
            }
        }
        for r in &mut self.rules {
            match saved.remove(&r.rule.id) {
                Some(s)
                    if s.version == r.rule.version
                        && std::mem::discriminant(&s.state) == std::mem::discriminant(&r.state) =>
                {
                    r.state = s.state;
                    r.raised = s.raised.iter().cloned().collect();
                    r.raised_order = s.raised.into();
                }
                _ => fresh.push(r.rule.id.clone()),
            }
        }
        fresh
    }
}

/// The event's business time: the first date or date-time field of `data` that parses.
fn event_time(ev: &J) -> Option<i64> {
    ev.get("data")?
        .as_object()?
        .values()
        .filter(|v| {
            v.as_str()
                .is_some_and(|s| s.len() >= 10 && s.as_bytes().get(4) == Some(&b'-'))
        })
        .find_map(event::time_ms)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::rules::parse;

    fn transfer(id: &str, from: &str, amount: i64, at: &str) -> J {
        json!({"event_id": id, "event_type": "bank.transfer",
               "data": {"from_account_id": from, "to_account_id": "x", "amount_krw": amount, "transferred_at": at}})
    }

    fn structuring() -> Vec<Rule> {
        crate::rules::builtin()
            .unwrap()
            .into_iter()
            .filter(|r| r.id == "bank.structuring")
            .collect()
    }

    #[test]
    fn a_window_fires_once_per_window_and_evicts() {
        let mut m = Monitor::new(structuring());
        assert!(
            m.process(&transfer("a", "p", 9_500_000, "2024-01-01T00:00:00Z"), 1)
                .is_empty()
        );
        assert!(
            m.process(&transfer("b", "p", 9_100_000, "2024-01-01T10:00:00Z"), 2)
                .is_empty()
        );
        // Outside the band: not counted.
        assert!(
            m.process(&transfer("n", "p", 10_000_000, "2024-01-01T11:00:00Z"), 3)
                .is_empty()
        );
        let a = m.process(&transfer("c", "p", 9_900_000, "2024-01-01T23:00:00Z"), 4);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].event_ids, ["a", "b", "c"]);
        assert_eq!(a[0].rule_version, 1);
        assert!(
            a[0].explanation.contains("3 transfers"),
            "{}",
            a[0].explanation
        );
        assert!(
            a[0].explanation.contains("28,500,000"),
            "{}",
            a[0].explanation
        );
        // A fourth in the same window is the same alert.
        assert!(
            m.process(&transfer("d", "p", 9_900_000, "2024-01-01T23:30:00Z"), 5)
                .is_empty()
        );
        // Two days later the window has moved on: two more are not enough.
        assert!(
            m.process(&transfer("e", "p", 9_900_000, "2024-01-03T23:30:00Z"), 6)
                .is_empty()
        );
        assert!(
            m.process(&transfer("f", "p", 9_900_000, "2024-01-04T00:30:00Z"), 7)
                .is_empty()
        );
        let a = m.process(&transfer("g", "p", 9_900_000, "2024-01-04T01:30:00Z"), 8);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].event_ids, ["e", "f", "g"]);
    }

    #[test]
    fn state_survives_a_restart_through_a_snapshot() {
        let mut m = Monitor::new(structuring());
        m.process(&transfer("a", "p", 9_500_000, "2024-01-01T00:00:00Z"), 1);
        m.process(&transfer("b", "p", 9_500_000, "2024-01-01T01:00:00Z"), 1);
        let saved = serde_json::to_string(&m.snapshot()).unwrap();
        let mut fresh = Monitor::new(structuring());
        let restored: Snapshot = serde_json::from_str(&saved).unwrap();
        assert!(fresh.restore(restored).is_empty());
        assert_eq!(
            fresh
                .process(&transfer("c", "p", 9_500_000, "2024-01-01T02:00:00Z"), 1)
                .len(),
            1
        );
        // Without the snapshot the third transfer alone does not fire.
        let mut cold = Monitor::new(structuring());
        assert!(
            cold.process(&transfer("c", "p", 9_500_000, "2024-01-01T02:00:00Z"), 1)
                .is_empty()
        );
        // A changed rule version starts afresh.
        let mut bumped = structuring();
        bumped[0].version = 2;
        let mut m2 = Monitor::new(bumped);
        let restored: Snapshot = serde_json::from_str(&saved).unwrap();
        assert_eq!(m2.restore(restored), ["bank.structuring"]);
    }

    #[test]
    fn robust_outlier_needs_its_minimum_sample_and_ignores_normal_spread() {
        let rules = parse(
            r#"
[[rules]]
id = "t.outlier"
version = 1
severity = "low"
event_types = ["t"]
explanation = "{value} vs {median} (z {z})"
[rules.outlier]
key = ["/data/k"]
value = "/data/v"
min_samples = 5
z_above = 6.0
"#,
            "t.toml",
        )
        .unwrap();
        let mut m = Monitor::new(rules);
        let ev = |i: usize, v: f64| json!({"event_id": format!("e{i}"), "event_type": "t", "data": {"k": "g", "v": v}});
        // Before the minimum sample, even a huge value is not scored.
        assert!(m.process(&ev(0, 1000.0), 0).is_empty());
        for (i, v) in [100.0, 110.0, 95.0, 105.0, 120.0, 90.0]
            .into_iter()
            .enumerate()
        {
            assert!(m.process(&ev(i + 1, v), 0).is_empty(), "{v}");
        }
        assert!(m.process(&ev(10, 130.0), 0).is_empty());
        let a = m.process(&ev(11, 400.0), 0);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].event_ids, ["e11"]);
        // Each outlier event is its own alert.
        assert_eq!(m.process(&ev(12, 500.0), 0).len(), 1);
    }

    #[test]
    fn a_join_fires_whichever_side_comes_first() {
        let rules: Vec<Rule> = crate::rules::builtin()
            .unwrap()
            .into_iter()
            .filter(|r| r.id == "customs.undervaluation")
            .collect();
        let order = |no: &str, v: i64| json!({"event_id": format!("o{no}"), "event_type": "customs.order", "data": {"order_no": no, "item_value_krw": v, "ordered_at": "2024-01-01T00:00:00Z"}});
        let decl = |no: &str, v: i64| json!({"event_id": format!("d{no}"), "event_type": "customs.declaration", "data": {"order_no": no, "declared_value_krw": v, "declared_on": "2024-01-02"}});
        let mut m = Monitor::new(rules);
        assert!(m.process(&order("1", 100_000), 0).is_empty());
        assert!(m.process(&decl("1", 100_000), 0).is_empty());
        assert!(m.process(&decl("2", 50_000), 0).is_empty());
        let a = m.process(&order("2", 100_000), 0);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].event_ids, ["o2", "d2"]);
        assert_eq!(a[0].key, "2");
        // Each side of the comparison names its event type (the held declaration's too).
        assert!(
            a[0].explanation.contains(
                "customs.order /data/item_value_krw = 100000 > customs.declaration /data/declared_value_krw = 50000"
            ),
            "{}",
            a[0].explanation
        );
    }

    const LOOKUP_RULES: &str = r#"
[[lookups]]
id = "accounts"
event_types = ["bank.account"]
key = "/data/account_id"
where = [{ field = "/data/status", ne = "closed" }]
max_keys = 2
[[lookups.join]]
event_types = ["bank.transfer"]
key = "/data/from_account_id"
set = { "/data/from_party_id" = "/data/party_id", "/data/from_dormant_since" = "/data/dormant_since" }

[[rules]]
id = "bank.party-structuring"
version = 1
severity = "high"
event_types = ["bank.transfer"]
explanation = "{key}: {count}"
[rules.window]
key = ["/data/from_party_id"]
time = "/data/transferred_at"
length = "24h"
count_at_least = 2
"#;

    fn account(id: &str, party: &str, status: &str) -> J {
        json!({"event_id": format!("acct-{id}-{status}"), "event_type": "bank.account",
               "data": {"account_id": id, "party_id": party, "status": status, "dormant_since": "2020-01-01"}})
    }

    fn lookup_monitor() -> Monitor {
        let set = crate::rules::parse_set(LOOKUP_RULES, "t").unwrap();
        Monitor::new(set.rules).with_lookups(set.lookups)
    }

    #[test]
    fn a_lookup_joins_reference_rows_into_later_events() {
        let mut m = lookup_monitor();
        assert!(m.fills_lookup("bank.account"));
        assert!(!m.fills_lookup("bank.transfer"));
        // Two accounts of one party: transfers from either count for the party.
        assert!(m.process(&account("a1", "party-1", "active"), 1).is_empty());
        assert!(m.process(&account("a2", "party-1", "active"), 1).is_empty());
        assert!(
            m.process(&transfer("t1", "a1", 5, "2024-01-01T00:00:00Z"), 2)
                .is_empty()
        );
        let a = m.process(&transfer("t2", "a2", 5, "2024-01-01T01:00:00Z"), 3);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].key, "party-1");
        assert_eq!(a[0].event_ids, ["t1", "t2"]);
        // The reference event itself is no alert's event, and a transfer from an account the
        // table does not hold has no party: the window ignores it.
        assert!(
            m.process(&transfer("t3", "unknown", 5, "2024-01-01T02:00:00Z"), 4)
                .is_empty()
        );
    }

    #[test]
    fn a_value_the_event_carries_is_kept_and_filtered_rows_are_not_kept() {
        let mut m = lookup_monitor();
        m.process(&account("a1", "party-1", "active"), 1);
        // A closed account's row does not replace the table's (filtered out).
        m.process(&account("a1", "party-9", "closed"), 1);
        let mut own = transfer("t1", "a1", 5, "2024-01-01T00:00:00Z");
        own["data"]["from_party_id"] = json!("own-party");
        let joined = m.lookup(&own).unwrap();
        assert_eq!(joined["data"]["from_party_id"], "own-party");
        assert_eq!(joined["data"]["from_dormant_since"], "2020-01-01");
        let joined = m
            .lookup(&transfer("t2", "a1", 5, "2024-01-01T00:00:00Z"))
            .unwrap();
        assert_eq!(joined["data"]["from_party_id"], "party-1");
        // A transfer from an account not in the table is left as it is.
        assert!(
            m.lookup(&transfer("t3", "zz", 5, "2024-01-01T00:00:00Z"))
                .is_none()
        );
    }

    #[test]
    fn lookup_tables_are_bounded_and_survive_a_restart() {
        let mut m = lookup_monitor();
        for (i, id) in ["a1", "a2", "a3"].iter().enumerate() {
            m.process(&account(id, &format!("party-{i}"), "active"), 1);
        }
        // max_keys = 2: the first key added went first.
        assert_eq!(m.lookup_sizes().collect::<Vec<_>>(), [("accounts", 2)]);
        assert!(
            m.lookup(&transfer("t", "a1", 5, "2024-01-01T00:00:00Z"))
                .is_none()
        );
        let saved: Snapshot =
            serde_json::from_str(&serde_json::to_string(&m.snapshot()).unwrap()).unwrap();
        let mut back = lookup_monitor();
        back.restore(saved);
        let joined = back
            .lookup(&transfer("t", "a3", 5, "2024-01-01T00:00:00Z"))
            .unwrap();
        assert_eq!(joined["data"]["from_party_id"], "party-2");
        // A state saved before lookups existed still loads.
        let old: Snapshot = serde_json::from_str(r#"{"rules":{}}"#).unwrap();
        assert!(old.lookups.is_empty());
    }
}
