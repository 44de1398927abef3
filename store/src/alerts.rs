//! Alerts of the monitoring rules, one row per distinct finding.

use diesel::prelude::*;

use crate::schema::alerts;
use crate::{Result, Store, now_ms, query_err, write_transaction};

/// An alert as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable)]
#[diesel(table_name = alerts)]
pub struct StoredAlert {
    /// Row id.
    pub id: i64,
    /// What makes two alerts the same finding.
    pub dedup_key: String,
    /// The rule that fired.
    pub rule_id: String,
    /// Its version.
    pub rule_version: i32,
    /// `info`, `warning`, `critical`, ….
    pub severity: String,
    /// What the rule grouped by.
    pub alert_key: String,
    /// Why, with the values and thresholds.
    pub explanation: String,
    /// JSON array of the canonical events' ids.
    pub event_ids: String,
    /// Event time of the event that made it fire.
    pub event_at_ms: Option<i64>,
    /// When it was detected.
    pub detected_at_ms: i64,
    /// `open`, `acknowledged`, `resolved`, `false_positive`.
    pub status: String,
    /// Who works on it.
    pub assignee: Option<String>,
    /// The suppression that muted it (stored, not delivered).
    pub suppressed_by: Option<i64>,
    /// Evidence kept with it, JSON (e.g. both signed checkpoints of an equivocation).
    pub evidence: Option<String>,
    /// Its index in the alerts channel of the ledger, once anchored.
    pub ledger_index: Option<i64>,
}

/// A change of an alert's state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable)]
#[diesel(table_name = crate::schema::alert_actions)]
pub struct AlertAction {
    /// Row id.
    pub id: i64,
    /// The alert.
    pub alert_id: i64,
    /// The status it was given.
    pub status: String,
    /// The assignee it was given.
    pub assignee: Option<String>,
    /// Why.
    pub comment: String,
    /// Who (token name).
    pub actor: String,
    /// When.
    pub at_ms: i64,
    /// `status` (a change of status or assignee) or `comment`.
    pub kind: String,
    /// Its index in the alerts channel of the ledger, once anchored.
    pub ledger_index: Option<i64>,
}

/// A suppression: alerts of a rule and/or key raised before it expires are stored muted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable)]
#[diesel(table_name = crate::schema::alert_suppressions)]
pub struct Suppression {
    /// Row id.
    pub id: i64,
    /// Only this rule (`None`: any).
    pub rule_id: Option<String>,
    /// Only this key (`None`: any).
    pub alert_key: Option<String>,
    /// Why.
    pub reason: String,
    /// Who.
    pub created_by: String,
    /// When.
    pub created_at_ms: i64,
    /// Until when.
    pub expires_at_ms: i64,
    /// Who lifted it early.
    pub lifted_by: Option<String>,
    /// When it was lifted.
    pub lifted_at_ms: Option<i64>,
}

impl Suppression {
    /// Whether it mutes an alert of `rule` and `key` raised at `at_ms`.
    #[must_use]
    pub fn mutes(&self, rule: &str, key: &str, at_ms: i64) -> bool {
        self.rule_id.as_deref().is_none_or(|r| r == rule)
            && self.alert_key.as_deref().is_none_or(|k| k == key)
            && at_ms < self.expires_at_ms
            && self.lifted_at_ms.is_none_or(|l| at_ms < l)
    }
}

impl Store {
    /// Stores new alerts; a finding already stored (same dedup key) is skipped. Returns how many
    /// were new.
    ///
    /// # Errors
    /// The store failed.
    pub fn insert_alerts(&self, new: &[StoredAlert]) -> Result<usize> {
        use alerts::dsl;
        let mut conn = self.writer()?;
        write_transaction(&mut conn, |c| {
            let now = now_ms();
            let active: Vec<Suppression> = {
                use crate::schema::alert_suppressions::dsl as s;
                s::alert_suppressions
                    .filter(s::expires_at_ms.gt(now))
                    .filter(s::lifted_at_ms.is_null())
                    .select(Suppression::as_select())
                    .load(c)?
            };
            let mut added = 0;
            for a in new {
                let exists = dsl::alerts
                    .filter(dsl::dedup_key.eq(&a.dedup_key))
                    .count()
                    .get_result::<i64>(c)?
                    > 0;
                if exists {
                    continue;
                }
                diesel::insert_into(dsl::alerts)
                    .values((
                        dsl::dedup_key.eq(&a.dedup_key),
                        dsl::rule_id.eq(&a.rule_id),
                        dsl::rule_version.eq(a.rule_version),
                        dsl::severity.eq(&a.severity),
                        dsl::alert_key.eq(&a.alert_key),
                        dsl::explanation.eq(&a.explanation),
                        dsl::event_ids.eq(&a.event_ids),
                        dsl::event_at_ms.eq(a.event_at_ms),
                        dsl::detected_at_ms.eq(a.detected_at_ms),
                        dsl::status.eq(&a.status),
                        dsl::suppressed_by.eq(active
                            .iter()
                            .find(|s| s.mutes(&a.rule_id, &a.alert_key, now))
                            .map(|s| s.id)),
                        dsl::evidence.eq(&a.evidence),
                    ))
                    .execute(c)?;
                added += 1;
            }
            Ok(added)
        })
        .map_err(query_err("storing alerts"))
    }

    /// Alerts, newest first, optionally of one rule, before id `before`.
    ///
    /// # Errors
    /// The store failed.
    pub fn alerts(
        &self,
        rule: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<StoredAlert>> {
        use alerts::dsl;
        let mut conn = self.conn()?;
        let mut q = dsl::alerts.into_boxed();
        if let Some(r) = rule {
            q = q.filter(dsl::rule_id.eq(r.to_owned()));
        }
        if let Some(b) = before {
            q = q.filter(dsl::id.lt(b));
        }
        q.order(dsl::id.desc())
            .limit(limit)
            .select(StoredAlert::as_select())
            .load(&mut *conn)
            .map_err(query_err("listing alerts"))
    }
}

impl Store {
    /// How many alerts each (rule, severity) has.
    ///
    /// # Errors
    /// The store failed.
    pub fn alert_counts(&self) -> Result<Vec<(String, String, i64)>> {
        use alerts::dsl;
        let mut conn = self.conn()?;
        dsl::alerts
            .group_by((dsl::rule_id, dsl::severity))
            .select((dsl::rule_id, dsl::severity, diesel::dsl::count_star()))
            .load(&mut *conn)
            .map_err(query_err("counting alerts"))
    }
}

impl Store {
    /// One alert and every change of its state, oldest first.
    ///
    /// # Errors
    /// The store failed.
    pub fn alert(&self, id: i64) -> Result<Option<(StoredAlert, Vec<AlertAction>)>> {
        use crate::schema::alert_actions::dsl as a;
        use alerts::dsl;
        let mut conn = self.conn()?;
        let Some(alert) = dsl::alerts
            .filter(dsl::id.eq(id))
            .select(StoredAlert::as_select())
            .first(&mut *conn)
            .optional()
            .map_err(query_err("reading an alert"))?
        else {
            return Ok(None);
        };
        let actions = a::alert_actions
            .filter(a::alert_id.eq(id))
            .order(a::id)
            .select(AlertAction::as_select())
            .load(&mut *conn)
            .map_err(query_err("reading alert actions"))?;
        Ok(Some((alert, actions)))
    }

    /// Changes an alert's status (and assignee when given), recording who did it and why, in one
    /// transaction. Returns false for an unknown alert. A change to what the alert already has,
    /// without a comment, is accepted and records nothing (a repeated click, a retried request).
    ///
    /// # Errors
    /// The store failed.
    pub fn set_alert_status(
        &self,
        id: i64,
        status: &str,
        assignee: Option<&str>,
        comment: &str,
        actor: &str,
    ) -> Result<bool> {
        self.alert_action(id, Some((status, assignee)), comment, actor)
    }

    /// Adds a comment to an alert's history. Returns false for an unknown alert.
    ///
    /// # Errors
    /// The store failed.
    pub fn comment_alert(&self, id: i64, comment: &str, actor: &str) -> Result<bool> {
        self.alert_action(id, None, comment, actor)
    }

    fn alert_action(
        &self,
        id: i64,
        change: Option<(&str, Option<&str>)>,
        comment: &str,
        actor: &str,
    ) -> Result<bool> {
        use crate::schema::alert_actions::dsl as a;
        use alerts::dsl;
        let mut conn = self.writer()?;
        let now = now_ms();
        write_transaction(&mut conn, |c| {
            if let Some((status, assignee)) = change
                && comment.trim().is_empty()
            {
                let now_has = dsl::alerts
                    .filter(dsl::id.eq(id))
                    .select((dsl::status, dsl::assignee))
                    .first::<(String, Option<String>)>(c)
                    .optional()?;
                let Some((current, current_assignee)) = now_has else {
                    return Ok(false);
                };
                let same_assignee = assignee.is_none_or(|who| {
                    Some(who).filter(|w| !w.trim().is_empty()) == current_assignee.as_deref()
                });
                if current == status && same_assignee {
                    return Ok(true);
                }
            }
            let changed = match change {
                Some((status, Some(who))) => diesel::update(dsl::alerts.filter(dsl::id.eq(id)))
                    // An empty assignee clears it.
                    .set((
                        dsl::status.eq(status),
                        dsl::assignee.eq(Some(who).filter(|w| !w.trim().is_empty())),
                    ))
                    .execute(c)?,
                Some((status, None)) => diesel::update(dsl::alerts.filter(dsl::id.eq(id)))
                    .set(dsl::status.eq(status))
                    .execute(c)?,
                None => dsl::alerts
                    .filter(dsl::id.eq(id))
                    .count()
                    .get_result::<i64>(c)?
                    .try_into()
                    .unwrap_or(0),
            };
            if changed == 0 {
                return Ok(false);
            }
            // A comment keeps the status the alert has.
            let (status, assignee, kind) = match change {
                Some((status, assignee)) => (status.to_owned(), assignee, "status"),
                None => (
                    dsl::alerts
                        .filter(dsl::id.eq(id))
                        .select(dsl::status)
                        .first::<String>(c)?,
                    None,
                    "comment",
                ),
            };
            diesel::insert_into(a::alert_actions)
                .values((
                    a::alert_id.eq(id),
                    a::status.eq(&status),
                    a::kind.eq(kind),
                    a::assignee.eq(assignee),
                    a::comment.eq(comment),
                    a::actor.eq(actor),
                    a::at_ms.eq(now),
                ))
                .execute(c)?;
            Ok(true)
        })
        .map_err(query_err("changing an alert's status"))
    }
}

impl Store {
    /// Adds a suppression.
    ///
    /// # Errors
    /// The store failed.
    pub fn add_suppression(
        &self,
        rule_id: Option<&str>,
        alert_key: Option<&str>,
        reason: &str,
        actor: &str,
        expires_at_ms: i64,
    ) -> Result<Suppression> {
        use crate::schema::alert_suppressions::dsl as s;
        let mut conn = self.writer()?;
        let now = now_ms();
        write_transaction(&mut conn, |c| {
            diesel::insert_into(s::alert_suppressions)
                .values((
                    s::rule_id.eq(rule_id),
                    s::alert_key.eq(alert_key),
                    s::reason.eq(reason),
                    s::created_by.eq(actor),
                    s::created_at_ms.eq(now),
                    s::expires_at_ms.eq(expires_at_ms),
                ))
                .execute(c)?;
            s::alert_suppressions
                .order(s::id.desc())
                .select(Suppression::as_select())
                .first(c)
        })
        .map_err(query_err("adding a suppression"))
    }

    /// Suppressions, newest first; only those in force at `now_ms` when `active`.
    ///
    /// # Errors
    /// The store failed.
    pub fn suppressions(&self, active: bool) -> Result<Vec<Suppression>> {
        use crate::schema::alert_suppressions::dsl as s;
        let mut conn = self.conn()?;
        let mut q = s::alert_suppressions.into_boxed();
        if active {
            q = q
                .filter(s::expires_at_ms.gt(now_ms()))
                .filter(s::lifted_at_ms.is_null());
        }
        q.order(s::id.desc())
            .limit(1000)
            .select(Suppression::as_select())
            .load(&mut *conn)
            .map_err(query_err("listing suppressions"))
    }

    /// Lifts a suppression before its expiry. Returns false when it is unknown or already
    /// lifted.
    ///
    /// # Errors
    /// The store failed.
    pub fn lift_suppression(&self, id: i64, actor: &str) -> Result<bool> {
        use crate::schema::alert_suppressions::dsl as s;
        let mut conn = self.writer()?;
        let now = now_ms();
        write_transaction(&mut conn, |c| {
            diesel::update(
                s::alert_suppressions
                    .filter(s::id.eq(id))
                    .filter(s::lifted_at_ms.is_null()),
            )
            .set((s::lifted_by.eq(actor), s::lifted_at_ms.eq(now)))
            .execute(c)
        })
        .map(|n| n > 0)
        .map_err(query_err("lifting a suppression"))
    }
}

/// What of the alerts' history is not in the ledger yet.
#[derive(Debug, Clone, Default)]
pub struct Unanchored {
    /// Alerts, oldest first.
    pub alerts: Vec<StoredAlert>,
    /// History entries, oldest first.
    pub actions: Vec<AlertAction>,
}

impl Store {
    /// Up to `limit` alerts and history entries each that have no ledger index yet.
    ///
    /// # Errors
    /// The store failed.
    pub fn unanchored_alerts(&self, limit: i64) -> Result<Unanchored> {
        use crate::schema::alert_actions::dsl as a;
        use alerts::dsl;
        let mut conn = self.conn()?;
        let alerts = dsl::alerts
            .filter(dsl::ledger_index.is_null())
            .order(dsl::id)
            .limit(limit)
            .select(StoredAlert::as_select())
            .load(&mut *conn)
            .map_err(query_err("reading unanchored alerts"))?;
        let actions = a::alert_actions
            .filter(a::ledger_index.is_null())
            .order(a::id)
            .limit(limit)
            .select(AlertAction::as_select())
            .load(&mut *conn)
            .map_err(query_err("reading unanchored alert actions"))?;
        Ok(Unanchored { alerts, actions })
    }

    /// Records where alerts (`(id, index)`) and history entries were anchored.
    ///
    /// # Errors
    /// The store failed.
    pub fn set_alerts_anchored(&self, alerts: &[(i64, i64)], actions: &[(i64, i64)]) -> Result<()> {
        use crate::schema::alert_actions::dsl as a;
        use alerts::dsl;
        let mut conn = self.writer()?;
        write_transaction(&mut conn, |c| {
            for (id, index) in alerts {
                diesel::update(dsl::alerts.filter(dsl::id.eq(id)))
                    .set(dsl::ledger_index.eq(index))
                    .execute(c)?;
            }
            for (id, index) in actions {
                diesel::update(a::alert_actions.filter(a::id.eq(id)))
                    .set(a::ledger_index.eq(index))
                    .execute(c)?;
            }
            Ok(())
        })
        .map_err(query_err("recording anchored alerts"))
    }

    /// Alerts with an id above `after`, oldest first (for delivery).
    ///
    /// # Errors
    /// The store failed.
    pub fn alerts_after(&self, after: i64, limit: i64) -> Result<Vec<StoredAlert>> {
        use alerts::dsl;
        let mut conn = self.conn()?;
        dsl::alerts
            .filter(dsl::id.gt(after))
            .order(dsl::id)
            .limit(limit)
            .select(StoredAlert::as_select())
            .load(&mut *conn)
            .map_err(query_err("reading new alerts"))
    }
}
