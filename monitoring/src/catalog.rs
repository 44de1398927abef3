//! The rules in force: the shipped ones, overlaid with the versions edited through the API
//! (kept in the store, every version), and the replay of one rule over past events (dry-run).

use serde_json::Value as J;

use crate::engine::{Alert, Monitor};
use crate::rules::{Lookup, Rule, parse_set};
use ledgerbridge_config::ConfigError;

/// A version of a rule edited through the API, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    /// The rule.
    pub rule_id: String,
    /// Its version (assigned by the store).
    pub version: u32,
    /// The rule as TOML: one `[[rules]]` table.
    pub body: String,
    /// Whether it runs.
    pub enabled: bool,
}

/// Parses one rule posted through the API: exactly one `[[rules]]` table whose id is `id`. Its
/// `version` is replaced by `version` (the store numbers the versions).
///
/// # Errors
/// Every problem of the text, with its path and line, or a text that holds no rule, several, or
/// another id.
pub fn parse_one(text: &str, id: &str, version: u32) -> Result<Rule, ConfigError> {
    let set = parse_set(text, id)?;
    let mut rules = set.rules;
    let problem = match rules.len() {
        _ if !set.lookups.is_empty() => Some(
            "lookups are reference data shared by every rule: they live in the rule files, \
             not in one rule's text"
                .to_owned(),
        ),
        1 if rules[0].id == id => None,
        1 => Some(format!(
            "the rule's id is `{}`, but it is posted as `{id}`",
            rules[0].id
        )),
        n => Some(format!("{n} rules given; post exactly one [[rules]] table")),
    };
    if let Some(message) = problem {
        return Err(ConfigError {
            source_name: id.to_owned(),
            issues: vec![ledgerbridge_config::Issue {
                path: ledgerbridge_config::ConfigPath::default().key("rules"),
                position: None,
                message,
            }],
        });
    }
    let mut rule = rules.remove(0);
    rule.version = version;
    Ok(rule)
}

/// Where a rule in force comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Shipped with ledgerbridge (`monitoring/rules/*.toml`).
    Builtin,
    /// Edited or added through the API.
    Api,
}

/// The rules in force and the rules disabled through the API.
#[derive(Debug, Clone)]
pub struct InForce {
    /// The rules that run, with their origin.
    pub rules: Vec<(Rule, Origin)>,
    /// Ids of the rules whose newest version is disabled.
    pub disabled: Vec<String>,
}

/// The rules in force: each shipped rule replaced by its newest edited version, a rule whose
/// newest version is disabled left out, and rules added through the API.
///
/// # Errors
/// A stored version that no longer parses (named with its version).
pub fn effective(builtin: Vec<Rule>, edited: &[Edited]) -> Result<InForce, String> {
    let mut newest: Vec<&Edited> = Vec::new();
    for e in edited {
        match newest.iter_mut().find(|n| n.rule_id == e.rule_id) {
            Some(n) if n.version < e.version => *n = e,
            Some(_) => {}
            None => newest.push(e),
        }
    }
    let mut out = Vec::new();
    let mut disabled = Vec::new();
    for rule in builtin {
        if !newest.iter().any(|e| e.rule_id == rule.id) {
            out.push((rule, Origin::Builtin));
        }
    }
    for e in newest {
        if !e.enabled {
            disabled.push(e.rule_id.clone());
            continue;
        }
        let rule = parse_one(&e.body, &e.rule_id, e.version)
            .map_err(|err| format!("rule {} version {}: {err}", e.rule_id, e.version))?;
        out.push((rule, Origin::Api));
    }
    Ok(InForce {
        rules: out,
        disabled,
    })
}

/// What a dry-run found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DryRun {
    /// Events replayed.
    pub events: usize,
    /// Events of the rule's types among them.
    pub matching_events: usize,
    /// The alerts it would have raised, in order.
    pub alerts: Vec<Alert>,
}

/// Replays `events` (oldest first) through `rule` alone, with `lookups` joined, from an empty
/// state.
pub fn dry_run(
    rule: Rule,
    lookups: Vec<Lookup>,
    events: impl IntoIterator<Item = J>,
    now_ms: i64,
) -> DryRun {
    let types = rule.event_types.clone();
    let mut monitor = Monitor::new(vec![rule]).with_lookups(lookups);
    let mut out = DryRun {
        events: 0,
        matching_events: 0,
        alerts: Vec::new(),
    };
    for ev in events {
        out.events += 1;
        if ev
            .get("event_type")
            .and_then(J::as_str)
            .is_some_and(|t| types.iter().any(|x| x == t))
        {
            out.matching_events += 1;
        }
        out.alerts.extend(monitor.process(&ev, now_ms));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::builtin;

    const EDIT: &str = r#"
[[rules]]
id = "bank.structuring"
version = 1
severity = "critical"
event_types = ["bank.transfer"]
explanation = "party {key}: {count} transfers just under the threshold within {window}"
[rules.window]
key = ["/data/sender_id"]
time = "/data/executed_at"
length = "24h"
where = [{ field = "/data/amount_krw", ge = 9000000 }, { field = "/data/amount_krw", lt = 10000000 }]
count_at_least = 2
"#;

    #[test]
    fn one_rule_is_checked_and_numbered_by_the_store() {
        let rule = parse_one(EDIT, "bank.structuring", 7).unwrap();
        assert_eq!(rule.version, 7);
        let other = parse_one(EDIT, "bank.other", 2).unwrap_err().to_string();
        assert!(other.contains("posted as `bank.other`"), "{other}");
        let two = format!("{EDIT}\n{}", EDIT.replace("bank.structuring", "bank.x"));
        assert!(
            parse_one(&two, "bank.structuring", 2)
                .unwrap_err()
                .to_string()
                .contains("2 rules")
        );
        let bad = EDIT.replace("count_at_least = 2", "count_at_least = \"two\"");
        let e = parse_one(&bad, "bank.structuring", 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("count_at_least") || e.contains("line"), "{e}");
    }

    #[test]
    fn the_newest_edit_replaces_the_shipped_rule_and_disabling_removes_it() {
        let shipped = builtin().unwrap();
        let n = shipped.len();
        let edit = |version, enabled| Edited {
            rule_id: "bank.structuring".into(),
            version,
            body: EDIT.into(),
            enabled,
        };
        let InForce { rules, disabled } = effective(shipped.clone(), &[edit(2, true)]).unwrap();
        assert_eq!(rules.len(), n);
        assert!(disabled.is_empty());
        let r = rules
            .iter()
            .find(|(r, _)| r.id == "bank.structuring")
            .unwrap();
        assert_eq!((r.0.version, r.1), (2, Origin::Api));
        assert_eq!(format!("{:?}", r.0.severity), "Critical");
        let InForce { rules, disabled } =
            effective(shipped.clone(), &[edit(3, false), edit(2, true)]).unwrap();
        assert_eq!(rules.len(), n - 1);
        assert_eq!(disabled, vec!["bank.structuring".to_owned()]);
        let added = Edited {
            rule_id: "bank.big".into(),
            version: 1,
            body: EDIT.replace("bank.structuring", "bank.big"),
            enabled: true,
        };
        assert_eq!(effective(shipped, &[added]).unwrap().rules.len(), n + 1);
    }

    #[test]
    fn a_dry_run_replays_events_through_the_rule_alone() {
        let rule = parse_one(EDIT, "bank.structuring", 2).unwrap();
        let transfer = |id: u32, amount: i64, hour: u32| {
            serde_json::json!({
                "event_id": format!("t{id}"),
                "event_type": "bank.transfer",
                "data": {"sender_id": "p1", "amount_krw": amount, "executed_at": format!("2026-03-01T{hour:02}:00:00Z")}
            })
        };
        let events = vec![
            transfer(1, 9_500_000, 1),
            transfer(2, 5_000, 2),
            transfer(3, 9_900_000, 3),
            serde_json::json!({"event_id": "c1", "event_type": "healthcare.claim", "data": {}}),
        ];
        let run = dry_run(rule, Vec::new(), events, 0);
        assert_eq!((run.events, run.matching_events), (4, 3));
        assert_eq!(run.alerts.len(), 1, "{:?}", run.alerts);
        assert_eq!(run.alerts[0].rule_version, 2);
        assert!(
            run.alerts[0].event_ids.contains(&"t3".to_owned()),
            "{:?}",
            run.alerts
        );
    }
}
