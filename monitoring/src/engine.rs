//! The monitor: every rule's block fed with the canonical events of its types, alerts as
//! values, deduplicated per (rule, key, window), state that can be saved and restored.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value as J;

use crate::blocks::{
    DedicatedState, Finding, JoinState, OutlierState, SequenceState, WindowState, threshold,
};
use crate::event;
use crate::rules::{Block, Rule, Severity, render};

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
/// and the alerts already raised (for deduplication).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Per rule id.
    pub rules: HashMap<String, SavedRule>,
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
        Self { rules, by_type }
    }

    /// The rules.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|r| &r.rule)
    }

    /// Feeds one canonical event (the envelope of `mappings/README.md`); `now` is the
    /// processing time recorded in the alerts.
    pub fn process(&mut self, ev: &J, now: i64) -> Vec<Alert> {
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
        }
    }

    /// Restores saved state. A rule whose version changed since starts afresh (its state was
    /// computed under other parameters); returns the ids of those rules.
    pub fn restore(&mut self, snap: Snapshot) -> Vec<String> {
        let mut fresh = Vec::new();
        let mut saved = snap.rules;
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
