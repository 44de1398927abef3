//! Rule files (TOML, `monitoring/rules/<domain>.toml`): each `[[rules]]` names one building
//! block with its parameters; a malformed file is rejected with every mistake and its line.
//!
//! ```toml
//! [[rules]]
//! id = "bank.structuring"
//! version = 1
//! severity = "high"
//! event_types = ["bank.transfer"]
//! kind = "structuring"                 # the load generator's label kind it detects (evaluation)
//! explanation = "{count} transfers of 9,000,000–9,999,999 KRW by {key} within {window}"
//! [rules.window]
//! key = ["/data/from_party_id|/data/from_account_id"]
//! time = "/data/transferred_at"
//! length = "24h"
//! where = [{ field = "/data/amount_krw", ge = 9000000 }, { field = "/data/amount_krw", lt = 10000000 }]
//! count_at_least = 3
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use ledgerbridge_config::{ConfigError, ConfigPath, Issue, Segment};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value as J;

use crate::event::{self, Op};

/// The rule files shipped in `monitoring/rules/`.
pub const BUILTIN_RULES: &[(&str, &str)] = &[
    ("bank.toml", include_str!("../rules/bank.toml")),
    ("customs.toml", include_str!("../rules/customs.toml")),
    ("healthcare.toml", include_str!("../rules/healthcare.toml")),
    ("land.toml", include_str!("../rules/land.toml")),
];

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look in the digest.
    Low,
    /// Review within the day.
    Medium,
    /// Review now.
    High,
    /// Review now and notify immediately.
    Critical,
}

/// A duration written as a human string (`"24h"`, `"10m"`, `"89d"`), kept in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span(pub i64);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let dur: Duration = humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("`{s}` is not a duration: {e}")))?;
        i64::try_from(dur.as_millis())
            .map(Span)
            .map_err(|_| serde::de::Error::custom(format!("`{s}` is too long")))
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = u64::try_from(self.0 / 1000).unwrap_or(0);
        write!(
            f,
            "{}",
            humantime::format_duration(Duration::from_secs(secs))
        )
    }
}

/// The right-hand side of a condition: a constant or another field of the same event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Operand {
    /// Another field: `{ field = "/data/policy_end_date" }`.
    Field {
        /// JSON pointer.
        field: String,
    },
    /// A constant.
    Value(J),
}

/// A condition on one event: `{ field = "/data/amount_krw", ge = 9000000 }`; exactly one
/// operator. A missing field makes the condition false.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// JSON pointer of the value tested.
    pub field: String,
    /// Less than.
    #[serde(default)]
    pub lt: Option<Operand>,
    /// Less than or equal.
    #[serde(default)]
    pub le: Option<Operand>,
    /// Greater than.
    #[serde(default)]
    pub gt: Option<Operand>,
    /// Greater than or equal.
    #[serde(default)]
    pub ge: Option<Operand>,
    /// Equal.
    #[serde(default)]
    pub eq: Option<Operand>,
    /// Not equal.
    #[serde(default)]
    pub ne: Option<Operand>,
}

impl Condition {
    fn ops(&self) -> Vec<(Op, &Operand)> {
        [
            (Op::Lt, &self.lt),
            (Op::Le, &self.le),
            (Op::Gt, &self.gt),
            (Op::Ge, &self.ge),
            (Op::Eq, &self.eq),
            (Op::Ne, &self.ne),
        ]
        .into_iter()
        .filter_map(|(op, o)| o.as_ref().map(|o| (op, o)))
        .collect()
    }

    /// Whether the event satisfies the condition.
    #[must_use]
    pub fn holds(&self, ev: &J) -> bool {
        let Some(left) = event::field(ev, &self.field) else {
            return false;
        };
        self.ops().into_iter().all(|(op, rhs)| {
            let right = match rhs {
                Operand::Field { field } => event::field(ev, field),
                Operand::Value(v) => Some(v),
            };
            right
                .and_then(|r| event::compare(left, r))
                .is_some_and(|o| op.holds(o))
        })
    }

    /// `field op value` for explanations.
    #[must_use]
    pub fn describe(&self) -> String {
        self.ops()
            .into_iter()
            .map(|(op, rhs)| {
                let r = match rhs {
                    Operand::Field { field } => field.clone(),
                    Operand::Value(v) => event::key_text(v),
                };
                format!("{} {} {r}", self.field, op.symbol())
            })
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

/// Keyed sliding window over event time: count, sum and distinct count of the events that pass
/// `where`, per key; fires when every threshold given is reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// JSON pointers whose values form the key.
    pub key: Vec<String>,
    /// JSON pointer of the event time.
    pub time: String,
    /// Window length; events at most this much older than the newest are in the window.
    pub length: Span,
    /// Conditions an event must meet to count.
    #[serde(default, rename = "where")]
    pub filter: Vec<Condition>,
    /// JSON pointer of the value summed.
    #[serde(default)]
    pub value: Option<String>,
    /// JSON pointer of the value counted distinctly.
    #[serde(default)]
    pub distinct: Option<String>,
    /// Fires when at least this many events are in the window.
    #[serde(default)]
    pub count_at_least: Option<usize>,
    /// Fires when the sum is above this.
    #[serde(default)]
    pub sum_above: Option<f64>,
    /// Fires when at least this many distinct values are in the window.
    #[serde(default)]
    pub distinct_at_least: Option<usize>,
    /// Events kept per key at most (the oldest go first).
    #[serde(default = "default_cap")]
    pub max_per_key: usize,
}

/// One event, tested alone: fires when every `where` condition holds and, if `any` is given,
/// at least one of those.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    /// All of these.
    #[serde(default, rename = "where")]
    pub filter: Vec<Condition>,
    /// At least one of these (when not empty).
    #[serde(default)]
    pub any: Vec<Condition>,
}

/// Robust outlier: robust z-score `(x − median) / (1.4826 · MAD)` of a value against the recent
/// values of its group, once the group has `min_samples`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierSpec {
    /// JSON pointers whose values form the group key.
    pub key: Vec<String>,
    /// JSON pointer of the value.
    pub value: String,
    /// Divide the value by this field first (price per m²).
    #[serde(default)]
    pub per: Option<String>,
    /// Conditions an event must meet to be scored.
    #[serde(default, rename = "where")]
    pub filter: Vec<Condition>,
    /// Values of the group needed before scoring.
    #[serde(default = "default_min_samples")]
    pub min_samples: usize,
    /// Fires when the robust z-score is above this (high side).
    #[serde(default)]
    pub z_above: Option<f64>,
    /// Fires when the robust z-score is below minus this (low side).
    #[serde(default)]
    pub z_below: Option<f64>,
    /// Fires when value / median is outside `[low, high]`.
    #[serde(default)]
    pub ratio_outside: Option<[f64; 2]>,
    /// Values kept per group (the most recent ones).
    #[serde(default = "default_reservoir")]
    pub reservoir: usize,
}

/// One side of a sequence or a join: an event type, the key that links it, conditions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Side {
    /// Event type.
    pub event_type: String,
    /// JSON pointers whose values form the key.
    pub key: Vec<String>,
    /// JSON pointer of the event time (sequences).
    #[serde(default)]
    pub time: Option<String>,
    /// Conditions the event must meet.
    #[serde(default, rename = "where")]
    pub filter: Vec<Condition>,
}

/// `left op right × factor`, comparing a field of the first event with one of the second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    /// JSON pointer into the first (left) event.
    pub left: String,
    /// Operator.
    pub op: Op,
    /// JSON pointer into the second (right) event.
    pub right: String,
    /// Factor applied to the right value (numbers only).
    #[serde(default)]
    pub factor: Option<f64>,
}

/// "A then B within T", linked by key: fires on B when an A with the same key came at most
/// `within` earlier and every comparison (A against B) holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceSpec {
    /// The first event.
    pub first: Side,
    /// The event that follows.
    pub then: Side,
    /// Longest time from first to then.
    pub within: Span,
    /// Conditions linking the two (all must hold).
    #[serde(default)]
    pub compare: Vec<Comparison>,
    /// First events kept per key at most.
    #[serde(default = "default_cap")]
    pub max_per_key: usize,
}

/// Two event types joined on a key: fires when both are present and any comparison holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinSpec {
    /// The left event.
    pub left: Side,
    /// The right event.
    pub right: Side,
    /// Fires when any of these holds.
    pub any: Vec<Comparison>,
    /// How long one side waits for the other (event time, from the newest event seen).
    pub ttl: Span,
}

/// A detector that the building blocks cannot express, by name, with its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum DedicatedSpec {
    /// A seller who is not the owner on record: the owner is the last buyer seen for the
    /// parcel, or the event's owner-on-record field before any.
    ChainOfTitle {
        /// Parcel id pointer.
        parcel: String,
        /// Seller pointer.
        seller: String,
        /// Buyer pointer.
        buyer: String,
        /// Owner on record pointer (optional in the event).
        owner_on_record: String,
    },
    /// A transfer of a parcel under a mortgage registered before the contract date and not
    /// released by it.
    Encumbrance {
        /// Mortgage event type.
        mortgage_type: String,
        /// Transfer event type.
        transfer_type: String,
        /// Parcel id pointer (both types).
        parcel: String,
        /// Mortgage number pointer.
        mortgage_no: String,
        /// Registration date pointer.
        registered: String,
        /// Release date pointer (absent while active).
        released: String,
        /// Contract date pointer of the transfer.
        contract: String,
    },
    /// Money out of an account idle for `idle` (learned from the stream, or from the event's
    /// last-activity / dormant-since fields).
    Dormant {
        /// Account the money leaves.
        account: String,
        /// Other accounts whose activity counts (the receiving account).
        #[serde(default)]
        touches: Vec<String>,
        /// Event time pointer.
        time: String,
        /// Idle time that makes an account dormant.
        idle: Span,
        /// Last activity pointer (optional in the event).
        #[serde(default)]
        last_activity: Option<String>,
        /// Dormant-since pointer (optional in the event).
        #[serde(default)]
        dormant_since: Option<String>,
    },
}

/// One rule as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Stable id, `<domain>.<name>`.
    pub id: String,
    /// A new version for every change; alerts record it.
    pub version: u32,
    /// Severity of its alerts.
    pub severity: Severity,
    /// The event types it reads.
    pub event_types: Vec<String>,
    /// The load generator's label kind it detects, for evaluation.
    #[serde(default)]
    pub kind: Option<String>,
    /// Explanation template: `{placeholder}`s of the block are filled in.
    pub explanation: String,
    /// Keyed sliding window.
    #[serde(default)]
    pub window: Option<WindowSpec>,
    /// Single-event threshold.
    #[serde(default)]
    pub threshold: Option<ThresholdSpec>,
    /// Robust outlier.
    #[serde(default)]
    pub outlier: Option<OutlierSpec>,
    /// A then B within T.
    #[serde(default)]
    pub sequence: Option<SequenceSpec>,
    /// Two event types joined on a key.
    #[serde(default)]
    pub join: Option<JoinSpec>,
    /// A dedicated detector.
    #[serde(default)]
    pub detector: Option<DedicatedSpec>,
}

/// The block of a rule, once checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// Sliding window.
    Window(WindowSpec),
    /// Threshold.
    Threshold(ThresholdSpec),
    /// Robust outlier.
    Outlier(OutlierSpec),
    /// Sequence.
    Sequence(SequenceSpec),
    /// Join.
    Join(JoinSpec),
    /// Dedicated detector.
    Dedicated(DedicatedSpec),
}

impl Block {
    /// The placeholders its explanations can use.
    #[must_use]
    pub fn placeholders(&self) -> &'static [&'static str] {
        match self {
            Self::Window(_) => &[
                "key", "count", "sum", "distinct", "window", "filter", "first", "last",
            ],
            Self::Threshold(_) => &["key", "conditions", "values"],
            Self::Outlier(_) => &["key", "value", "median", "mad", "z", "ratio", "samples"],
            Self::Sequence(_) => &["key", "first", "then", "gap", "within", "compare", "values"],
            Self::Join(_) => &["key", "left", "right", "compare", "values"],
            Self::Dedicated(_) => &["key", "values", "detail"],
        }
    }
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Id.
    pub id: String,
    /// Version.
    pub version: u32,
    /// Severity.
    pub severity: Severity,
    /// Event types read.
    pub event_types: Vec<String>,
    /// Label kind, for evaluation.
    pub kind: Option<String>,
    /// Explanation template.
    pub explanation: String,
    /// What it computes.
    pub block: Block,
}

fn default_cap() -> usize {
    10_000
}

fn default_min_samples() -> usize {
    20
}

fn default_reservoir() -> usize {
    256
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rules: Vec<J>,
    #[serde(default)]
    lookups: Vec<J>,
}

/// A reference table kept from one stream and joined into the events of others (a stream–table
/// join, as Kafka Streams joins a stream with a table): the accounts' holders and dormancy dates
/// joined into transfers, the policies' periods into claims, the parcels' districts and the
/// owners on record into title transfers.
///
/// ```toml
/// [[lookups]]
/// id = "bank.accounts"
/// event_types = ["bank.account"]          # the events that fill the table, newest row wins
/// key = "/data/account_id"
/// [[lookups.join]]
/// event_types = ["bank.transfer"]         # the events it is joined into
/// key = "/data/from_account_id"
/// set = { "/data/from_dormant_since" = "/data/dormant_since" }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// Id, unique among the lookups.
    pub id: String,
    /// Event types whose events fill the table.
    pub event_types: Vec<String>,
    /// JSON pointer of the table's key in those events.
    pub key: String,
    /// Only events meeting these conditions fill the table.
    #[serde(default, rename = "where")]
    pub filter: Vec<Condition>,
    /// Where the table is joined.
    pub join: Vec<LookupJoin>,
    /// Keys kept at most (the first added go first).
    #[serde(default = "default_lookup_cap")]
    pub max_keys: usize,
}

/// Where a lookup's rows are joined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupJoin {
    /// Event types joined.
    pub event_types: Vec<String>,
    /// JSON pointer, in the joined event, of the table's key.
    pub key: String,
    /// Field set in the joined event (a JSON pointer whose parent object exists) ← field of the
    /// table's event. A value the joined event already carries is kept.
    pub set: std::collections::BTreeMap<String, String>,
}

fn default_lookup_cap() -> usize {
    1_000_000
}

/// The rules and lookups of rule files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    /// The rules.
    pub rules: Vec<Rule>,
    /// The lookups.
    pub lookups: Vec<Lookup>,
}

fn check_lookup(l: &Lookup, p: &ConfigPath, issues: &mut Vec<Issue>) {
    if l.id.is_empty() {
        issues.push(issue(&p.key("id"), "give the lookup an id"));
    }
    if l.event_types.is_empty() {
        issues.push(issue(&p.key("event_types"), "give at least one event type"));
    }
    check_pointer(&l.key, &p.key("key"), issues);
    check_conditions(&l.filter, &p.key("where"), issues);
    if l.join.is_empty() {
        issues.push(issue(&p.key("join"), "give at least one [[lookups.join]]"));
    }
    if l.max_keys == 0 {
        issues.push(issue(&p.key("max_keys"), "keep at least one key"));
    }
    for (i, j) in l.join.iter().enumerate() {
        let jp = p.key("join").child(Segment::Index(i));
        if j.event_types.is_empty() {
            issues.push(issue(
                &jp.key("event_types"),
                "give at least one event type",
            ));
        }
        if let Some(t) = j.event_types.iter().find(|t| l.event_types.contains(t)) {
            issues.push(issue(
                &jp.key("event_types"),
                format!("`{t}` fills the table; a lookup is joined into other event types"),
            ));
        }
        check_pointer(&j.key, &jp.key("key"), issues);
        if j.set.is_empty() {
            issues.push(issue(&jp.key("set"), "give at least one field to set"));
        }
        for (to, from) in &j.set {
            let sp = jp.key("set").key(to);
            if to.contains('|') || !to.starts_with('/') || to.matches('/').count() < 2 {
                issues.push(issue(
                    &sp,
                    format!("`{to}` is not a field to set (e.g. \"/data/from_party_id\")"),
                ));
            }
            check_pointer(from, &sp, issues);
        }
    }
}

/// Reads a rule file.
///
/// # Errors
/// Every problem of the file, each with its path and line: TOML syntax, unknown or missing
/// keys, a rule with no block or several, a pointer that is not a JSON pointer, a bad duration,
/// a threshold missing, a placeholder the block does not fill, a duplicate id.
pub fn parse(text: &str, source_name: &str) -> Result<Vec<Rule>, ConfigError> {
    parse_set(text, source_name).map(|set| set.rules)
}

/// Reads a rule file with its lookups.
///
/// # Errors
/// As [`parse`], and a lookup's mistakes.
pub fn parse_set(text: &str, source_name: &str) -> Result<RuleSet, ConfigError> {
    let (doc, spans) = ledgerbridge_config::toml_document(text, source_name)?;
    let mut issues = Vec::new();
    let root = ConfigPath::default();
    let rules_path = root.key("rules");
    let file: Option<File> = match serde_json::from_value(doc) {
        Ok(f) => Some(f),
        Err(e) => {
            issues.push(issue(
                &root,
                format!("{e}; a rule file holds [[rules]] and [[lookups]] tables"),
            ));
            None
        }
    };
    let (raw_rules, raw_lookups) = file.map(|f| (f.rules, f.lookups)).unwrap_or_default();
    let mut lookups = Vec::new();
    let mut lookup_ids = BTreeSet::new();
    for (i, raw) in raw_lookups.into_iter().enumerate() {
        let p = root.key("lookups").child(Segment::Index(i));
        match serde_json::from_value::<Lookup>(raw) {
            Err(e) => issues.push(issue(&p, e.to_string())),
            Ok(l) => {
                if !lookup_ids.insert(l.id.clone()) {
                    issues.push(issue(
                        &p.key("id"),
                        format!("duplicate lookup id `{}`", l.id),
                    ));
                }
                check_lookup(&l, &p, &mut issues);
                lookups.push(l);
            }
        }
    }
    let mut out = Vec::new();
    let mut ids = BTreeSet::new();
    for (i, raw) in raw_rules.into_iter().enumerate() {
        let p = rules_path.child(Segment::Index(i));
        match serde_json::from_value::<RuleSpec>(raw) {
            Err(e) => issues.push(issue(&p, e.to_string())),
            Ok(spec) => {
                if !ids.insert(spec.id.clone()) {
                    issues.push(issue(
                        &p.key("id"),
                        format!("duplicate rule id `{}`", spec.id),
                    ));
                }
                if let Some(rule) = check(spec, &p, &mut issues) {
                    out.push(rule);
                }
            }
        }
    }
    if issues.is_empty() {
        return Ok(RuleSet {
            rules: out,
            lookups,
        });
    }
    for i in &mut issues {
        i.position = spans.position(text, &i.path);
    }
    issues.sort_by_key(|i| i.position.map_or((usize::MAX, 0), |p| (p.line, p.column)));
    Err(ConfigError {
        source_name: source_name.to_owned(),
        issues,
    })
}

/// The rules shipped with the crate (`monitoring/rules/*.toml`).
///
/// # Errors
/// A shipped file that does not parse (a bug, caught by the tests).
pub fn builtin() -> Result<Vec<Rule>, ConfigError> {
    builtin_set().map(|set| set.rules)
}

/// The text of a shipped rule: its `[[rules]]` table from `monitoring/rules/*.toml`, with the
/// comments inside it, as a rule file of one rule (what `PUT /api/v1/rules/{id}` takes).
#[must_use]
pub fn builtin_text(id: &str) -> Option<String> {
    BUILTIN_RULES.iter().find_map(|(_, text)| {
        let doc: toml_edit::DocumentMut = text.parse().ok()?;
        let table = doc
            .get("rules")?
            .as_array_of_tables()?
            .iter()
            .find(|t| t.get("id").and_then(|v| v.as_str()) == Some(id))?
            .clone();
        // The comments before the table belong to the file (its header) or to the table before.
        let mut table = table;
        table.decor_mut().clear();
        let mut one = toml_edit::ArrayOfTables::new();
        one.push(table);
        let mut out = toml_edit::DocumentMut::new();
        out.insert("rules", toml_edit::Item::ArrayOfTables(one));
        Some(out.to_string().trim_start().to_owned())
    })
}

/// The rules and lookups shipped with the crate.
///
/// # Errors
/// A shipped file that does not parse (a bug, caught by the tests).
pub fn builtin_set() -> Result<RuleSet, ConfigError> {
    let mut all = RuleSet::default();
    for (name, text) in BUILTIN_RULES {
        let set = parse_set(text, name)?;
        all.rules.extend(set.rules);
        all.lookups.extend(set.lookups);
    }
    Ok(all)
}

fn issue(path: &ConfigPath, message: impl Into<String>) -> Issue {
    Issue {
        path: path.clone(),
        position: None,
        message: message.into(),
    }
}

fn check_pointer(p: &str, path: &ConfigPath, issues: &mut Vec<Issue>) {
    if p.split('|').any(|alt| !alt.starts_with('/')) {
        issues.push(issue(
            path,
            format!("`{p}` is not a JSON pointer into the event (e.g. \"/data/amount_krw\")"),
        ));
    }
}

fn check_conditions(cs: &[Condition], path: &ConfigPath, issues: &mut Vec<Issue>) {
    for (i, c) in cs.iter().enumerate() {
        let p = path.child(Segment::Index(i));
        check_pointer(&c.field, &p.key("field"), issues);
        if c.ops().is_empty() {
            issues.push(issue(&p, "give an operator: lt, le, gt, ge, eq or ne"));
        }
        for (_, o) in c.ops() {
            if let Operand::Field { field } = o {
                check_pointer(field, &p, issues);
            }
        }
    }
}

fn check_side(s: &Side, path: &ConfigPath, event_types: &[String], issues: &mut Vec<Issue>) {
    if !event_types.contains(&s.event_type) {
        issues.push(issue(
            &path.key("event_type"),
            format!("`{}` is not in the rule's event_types", s.event_type),
        ));
    }
    for k in &s.key {
        check_pointer(k, &path.key("key"), issues);
    }
    if s.key.is_empty() {
        issues.push(issue(&path.key("key"), "give at least one key pointer"));
    }
    if let Some(t) = &s.time {
        check_pointer(t, &path.key("time"), issues);
    }
    check_conditions(&s.filter, &path.key("where"), issues);
}

fn check(spec: RuleSpec, p: &ConfigPath, issues: &mut Vec<Issue>) -> Option<Rule> {
    let before = issues.len();
    let id_ok = !spec.id.is_empty()
        && spec
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._".contains(c));
    if !id_ok {
        issues.push(issue(
            &p.key("id"),
            "rule ids use a-z, 0-9, '.', '-' and '_'",
        ));
    }
    if spec.version == 0 {
        issues.push(issue(&p.key("version"), "versions start at 1"));
    }
    if spec.event_types.is_empty() {
        issues.push(issue(&p.key("event_types"), "give at least one event type"));
    }
    let mut blocks = Vec::new();
    if let Some(w) = spec.window {
        let bp = p.key("window");
        for k in &w.key {
            check_pointer(k, &bp.key("key"), issues);
        }
        check_pointer(&w.time, &bp.key("time"), issues);
        check_conditions(&w.filter, &bp.key("where"), issues);
        if w.count_at_least.is_none() && w.sum_above.is_none() && w.distinct_at_least.is_none() {
            issues.push(issue(
                &bp,
                "give a threshold: count_at_least, sum_above or distinct_at_least",
            ));
        }
        if w.sum_above.is_some() && w.value.is_none() {
            issues.push(issue(&bp.key("sum_above"), "sum_above needs `value`"));
        }
        if w.distinct_at_least.is_some() && w.distinct.is_none() {
            issues.push(issue(
                &bp.key("distinct_at_least"),
                "distinct_at_least needs `distinct`",
            ));
        }
        if w.length.0 <= 0 {
            issues.push(issue(
                &bp.key("length"),
                "the window must be longer than zero",
            ));
        }
        blocks.push(Block::Window(w));
    }
    if let Some(t) = spec.threshold {
        let bp = p.key("threshold");
        check_conditions(&t.filter, &bp.key("where"), issues);
        check_conditions(&t.any, &bp.key("any"), issues);
        if t.filter.is_empty() && t.any.is_empty() {
            issues.push(issue(&bp, "give conditions in `where` or `any`"));
        }
        blocks.push(Block::Threshold(t));
    }
    if let Some(o) = spec.outlier {
        let bp = p.key("outlier");
        for k in &o.key {
            check_pointer(k, &bp.key("key"), issues);
        }
        check_pointer(&o.value, &bp.key("value"), issues);
        if let Some(per) = &o.per {
            check_pointer(per, &bp.key("per"), issues);
        }
        check_conditions(&o.filter, &bp.key("where"), issues);
        if o.z_above.is_none() && o.z_below.is_none() && o.ratio_outside.is_none() {
            issues.push(issue(&bp, "give z_above, z_below or ratio_outside"));
        }
        if o.min_samples < 3 || o.reservoir < o.min_samples {
            issues.push(issue(
                &bp.key("min_samples"),
                "min_samples must be at least 3 and at most `reservoir`",
            ));
        }
        blocks.push(Block::Outlier(o));
    }
    if let Some(s) = spec.sequence {
        let bp = p.key("sequence");
        check_side(&s.first, &bp.key("first"), &spec.event_types, issues);
        check_side(&s.then, &bp.key("then"), &spec.event_types, issues);
        for (side, path) in [(&s.first, "first"), (&s.then, "then")] {
            if side.time.is_none() {
                issues.push(issue(
                    &bp.key(path).key("time"),
                    "a sequence needs the event time",
                ));
            }
        }
        blocks.push(Block::Sequence(s));
    }
    if let Some(j) = spec.join {
        let bp = p.key("join");
        check_side(&j.left, &bp.key("left"), &spec.event_types, issues);
        check_side(&j.right, &bp.key("right"), &spec.event_types, issues);
        if j.any.is_empty() {
            issues.push(issue(&bp.key("any"), "give at least one comparison"));
        }
        blocks.push(Block::Join(j));
    }
    if let Some(d) = spec.detector {
        blocks.push(Block::Dedicated(d));
    }
    let block = match blocks.len() {
        1 => blocks.pop(),
        0 => {
            issues.push(issue(
                p,
                "give one block: window, threshold, outlier, sequence, join or detector",
            ));
            None
        }
        _ => {
            issues.push(issue(p, "give only one block per rule"));
            None
        }
    }?;
    let allowed = block.placeholders();
    for name in placeholders(&spec.explanation) {
        if !allowed.contains(&name.as_str()) {
            issues.push(issue(
                &p.key("explanation"),
                format!(
                    "`{{{name}}}` is not filled by this block; use {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    (issues.len() == before).then_some(Rule {
        id: spec.id,
        version: spec.version,
        severity: spec.severity,
        event_types: spec.event_types,
        kind: spec.kind,
        explanation: spec.explanation,
        block,
    })
}

/// The `{name}` placeholders of a template.
#[must_use]
pub fn placeholders(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                out.push(after[..end].to_owned());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

/// Fills a template's placeholders from `values`.
#[must_use]
pub fn render(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (k, v) in values {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rules_parse_and_cover_every_label_kind() {
        let rules = builtin().unwrap();
        let kinds: BTreeSet<&str> = rules.iter().filter_map(|r| r.kind.as_deref()).collect();
        assert_eq!(kinds.len(), 14, "{kinds:?}");
        assert_eq!(rules.len(), 14);
    }

    #[test]
    fn a_malformed_file_reports_every_error_with_its_line() {
        let text = r#"
[[rules]]
id = "Bad Id"
version = 0
severity = "high"
event_types = ["bank.transfer"]
explanation = "{nope}"
[rules.window]
key = ["data/x"]
time = "/data/t"
length = "forever"

[[rules]]
id = "b"
version = 1
severity = "urgent"
event_types = ["bank.transfer"]
explanation = "x"
[rules.threshold]
where = [{ field = "/data/a" }]

[[rules]]
id = "c"
version = 1
severity = "low"
event_types = ["bank.transfer"]
explanation = "x"
[rules.window]
key = ["/data/x"]
time = "/data/t"
length = "1h"
"#;
        let err = parse(text, "bad.toml").unwrap_err();
        let shown = err.to_string();
        // rule 0: a bad duration stops serde at that rule; rule 1: bad severity; rule 2: no threshold.
        assert_eq!(err.issues.len(), 3, "{shown}");
        assert!(shown.contains("forever"), "{shown}");
        assert!(shown.contains("urgent"), "{shown}");
        assert!(shown.contains("give a threshold"), "{shown}");
        assert!(err.issues.iter().all(|i| i.position.is_some()), "{shown}");
        assert_eq!(err.issues[2].position.map(|p| p.line), Some(28), "{shown}");

        let text = r#"
[[rules]]
id = "Bad Id"
version = 0
severity = "high"
event_types = ["bank.transfer"]
explanation = "{nope}"
[rules.window]
key = ["data/x"]
time = "/data/t"
length = "1h"
count_at_least = 2
"#;
        let err = parse(text, "bad.toml").unwrap_err();
        let shown = err.to_string();
        assert_eq!(err.issues.len(), 4, "{shown}");
        for needle in ["rule ids", "versions start", "not a JSON pointer", "{nope}"] {
            assert!(shown.contains(needle), "{needle}: {shown}");
        }
        assert!(parse("rules = 3", "x.toml").is_err());
        assert!(parse("[[rules]\n", "x.toml").is_err());
    }

    #[test]
    fn lookups_are_checked_with_their_lines() {
        let text = r#"[[lookups]]
id = "x"
event_types = ["bank.account"]
key = "data/account_id"
[[lookups.join]]
event_types = ["bank.account"]
key = "/data/from_account_id"
set = { "from_party_id" = "/data/party_id" }

[[lookups]]
id = "x"
event_types = ["bank.account"]
key = "/data/account_id"
join = []
"#;
        let e = parse_set(text, "bad.toml").unwrap_err().to_string();
        for expected in [
            "`data/account_id` is not a JSON pointer",
            "`bank.account` fills the table",
            "`from_party_id` is not a field to set",
            "duplicate lookup id `x`",
            "give at least one [[lookups.join]]",
        ] {
            assert!(e.contains(expected), "{expected}: {e}");
        }
        assert!(e.contains("line 4"), "{e}");
        let shipped = builtin_set().unwrap();
        let ids: Vec<&str> = shipped.lookups.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "bank.accounts",
                "healthcare.policies",
                "land.parcels",
                "land.owners-on-record"
            ]
        );
    }

    #[test]
    fn a_shipped_rule_text_parses_back_to_the_same_rule() {
        for rule in builtin().unwrap() {
            let text = builtin_text(&rule.id).unwrap();
            assert!(text.starts_with("[[rules]]"), "{text}");
            let back = parse(&text, &rule.id).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(back, vec![rule]);
        }
        assert_eq!(builtin_text("no.such-rule"), None);
    }
}
