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
}

impl Store {
    /// Stores new alerts; a finding already stored (same dedup key) is skipped. Returns how many
    /// were new.
    ///
    /// # Errors
    /// The store failed.
    pub fn insert_alerts(&self, new: &[StoredAlert]) -> Result<usize> {
        use alerts::dsl;
        let mut conn = self.conn()?;
        write_transaction(&mut conn, |c| {
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
    /// transaction. Returns false for an unknown alert.
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
        use crate::schema::alert_actions::dsl as a;
        use alerts::dsl;
        let mut conn = self.conn()?;
        let now = now_ms();
        write_transaction(&mut conn, |c| {
            let changed = match assignee {
                Some(who) => diesel::update(dsl::alerts.filter(dsl::id.eq(id)))
                    .set((dsl::status.eq(status), dsl::assignee.eq(Some(who))))
                    .execute(c)?,
                None => diesel::update(dsl::alerts.filter(dsl::id.eq(id)))
                    .set(dsl::status.eq(status))
                    .execute(c)?,
            };
            if changed == 0 {
                return Ok(false);
            }
            diesel::insert_into(a::alert_actions)
                .values((
                    a::alert_id.eq(id),
                    a::status.eq(status),
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
