//! Reading fields of a canonical event (see `mappings/README.md`): JSON pointers, event times,
//! numbers and comparisons.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate};
use serde_json::Value as J;

/// The value at `pointer` (RFC 6901) in `event`. A pointer may list alternatives separated by
/// `|` (`/data/from_party_id|/data/from_account_id`): the first one present and not null.
#[must_use]
pub fn field<'a>(event: &'a J, pointer: &str) -> Option<&'a J> {
    pointer
        .split('|')
        .find_map(|p| event.pointer(p).filter(|v| !v.is_null()))
}

/// The event's id (`/event_id`), or empty.
#[must_use]
pub fn event_id(event: &J) -> &str {
    event.get("event_id").and_then(J::as_str).unwrap_or("")
}

/// The event's type (`/event_type`), or empty.
#[must_use]
pub fn event_type(event: &J) -> &str {
    event.get("event_type").and_then(J::as_str).unwrap_or("")
}

/// Milliseconds since the Unix epoch of a time value: an RFC 3339 date-time, an ISO date
/// (midnight UTC), or a whole number of milliseconds.
#[must_use]
pub fn time_ms(v: &J) -> Option<i64> {
    match v {
        J::Number(n) => n.as_i64(),
        J::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .ok()
            .or_else(|| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(|d| {
                    d.and_time(chrono::NaiveTime::MIN)
                        .and_utc()
                        .timestamp_millis()
                })
            }),
        _ => None,
    }
}

/// A number, from a JSON number or a numeric string (exact decimals such as `"1.25"`).
#[must_use]
pub fn number(v: &J) -> Option<f64> {
    match v {
        J::Number(n) => n.as_f64(),
        J::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A value as key text: strings as they are, anything else as JSON.
#[must_use]
pub fn key_text(v: &J) -> String {
    match v {
        J::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Compares two values: numerically when both are numbers (or numeric strings), as times when
/// both are dates or date-times, as text otherwise. `None` when one is missing or they are of
/// incomparable kinds.
#[must_use]
pub fn compare(a: &J, b: &J) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return x.partial_cmp(&y);
    }
    if let (Some(x), Some(y)) = (time_ms(a), time_ms(b)) {
        return Some(x.cmp(&y));
    }
    match (a, b) {
        (J::String(x), J::String(y)) => Some(x.cmp(y)),
        (J::Bool(x), J::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Compare operators of rule conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
}

impl Op {
    /// Whether `ordering` (of left against right) satisfies the operator.
    #[must_use]
    pub fn holds(self, ordering: Ordering) -> bool {
        match self {
            Self::Lt => ordering == Ordering::Less,
            Self::Le => ordering != Ordering::Greater,
            Self::Gt => ordering == Ordering::Greater,
            Self::Ge => ordering != Ordering::Less,
            Self::Eq => ordering == Ordering::Equal,
            Self::Ne => ordering != Ordering::Equal,
        }
    }

    /// The operator as written in explanations.
    #[must_use]
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Lt => "<",
            Self::Le => "≤",
            Self::Gt => ">",
            Self::Ge => "≥",
            Self::Eq => "=",
            Self::Ne => "≠",
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pointers_with_alternatives_times_and_comparisons() {
        let e = json!({"data": {"a": null, "b": "x", "d": "2024-01-02", "t": "2024-01-02T00:00:01Z", "w": "1.50"}});
        assert_eq!(field(&e, "/data/a|/data/b"), Some(&json!("x")));
        assert_eq!(field(&e, "/data/zz"), None);
        assert_eq!(
            time_ms(&json!("2024-01-02")).map(|t| t + 1000),
            time_ms(&json!("2024-01-02T00:00:01Z"))
        );
        assert_eq!(
            compare(&json!("1.5"), &json!("1.50")),
            Some(Ordering::Equal)
        );
        assert_eq!(compare(&json!(2), &json!("10")), Some(Ordering::Less));
        assert_eq!(
            compare(&json!("2023-12-31"), &json!("2024-01-02T00:00:00Z")),
            Some(Ordering::Less)
        );
        assert!(Op::Ne.holds(Ordering::Less) && !Op::Ne.holds(Ordering::Equal));
    }
}
