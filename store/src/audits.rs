//! What the monitoring worker keeps besides alerts: deliveries of alerts by e-mail and webhook,
//! scheduled and requested audit runs with their results, rule versions edited through the API
//! and the signed checkpoints the integrity monitor has seen.

use diesel::prelude::*;

use crate::schema::{audit_runs, checkpoint_observations, notifications, rule_versions};
use crate::{Result, Store, now_ms, query_err, write_transaction};

/// A delivery of an alert.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable)]
#[diesel(table_name = notifications)]
pub struct Notification {
    /// Row id.
    pub id: i64,
    /// The alert.
    pub alert_id: i64,
    /// `email` or `webhook`.
    pub channel: String,
    /// The address or URL.
    pub recipient: String,
    /// `immediate` or `digest`.
    pub mode: String,
    /// `pending`, `sent` or `failed` (gave up after retries).
    pub status: String,
    /// Attempts so far.
    pub attempts: i32,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at_ms: i64,
    /// When it went out.
    pub sent_at_ms: Option<i64>,
}

/// A delivery to queue.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// The alert.
    pub alert_id: i64,
    /// `email` or `webhook`.
    pub channel: String,
    /// The address or URL.
    pub recipient: String,
    /// `immediate` or `digest`.
    pub mode: String,
}

impl Store {
    /// Queues deliveries; one already queued (same alert, channel and recipient) is skipped.
    ///
    /// # Errors
    /// The store failed.
    pub fn queue_notifications(&self, new: &[NewNotification]) -> Result<usize> {
        use notifications::dsl as n;
        let mut conn = self.writer()?;
        let now = now_ms();
        write_transaction(&mut conn, |c| {
            let mut added = 0;
            for x in new {
                let exists = n::notifications
                    .filter(n::alert_id.eq(x.alert_id))
                    .filter(n::channel.eq(&x.channel))
                    .filter(n::recipient.eq(&x.recipient))
                    .count()
                    .get_result::<i64>(c)?
                    > 0;
                if exists {
                    continue;
                }
                diesel::insert_into(n::notifications)
                    .values((
                        n::alert_id.eq(x.alert_id),
                        n::channel.eq(&x.channel),
                        n::recipient.eq(&x.recipient),
                        n::mode.eq(&x.mode),
                        n::status.eq("pending"),
                        n::created_at_ms.eq(now),
                    ))
                    .execute(c)?;
                added += 1;
            }
            Ok(added)
        })
        .map_err(query_err("queueing notifications"))
    }

    /// Pending deliveries of a mode, oldest first.
    ///
    /// # Errors
    /// The store failed.
    pub fn pending_notifications(&self, mode: &str, limit: i64) -> Result<Vec<Notification>> {
        use notifications::dsl as n;
        let mut conn = self.conn()?;
        n::notifications
            .filter(n::status.eq("pending"))
            .filter(n::mode.eq(mode))
            .order(n::id)
            .limit(limit)
            .select(Notification::as_select())
            .load(&mut *conn)
            .map_err(query_err("reading pending notifications"))
    }

    /// Records the outcome of delivering `ids`: sent, or one more failed attempt (given up as
    /// `failed` once `attempts` reaches `give_up_after`).
    ///
    /// # Errors
    /// The store failed.
    pub fn notifications_done(
        &self,
        ids: &[i64],
        outcome: std::result::Result<(), &str>,
        give_up_after: i32,
    ) -> Result<()> {
        use notifications::dsl as n;
        let mut conn = self.writer()?;
        let now = now_ms();
        write_transaction(&mut conn, |c| {
            let rows = n::notifications.filter(n::id.eq_any(ids));
            match outcome {
                Ok(()) => diesel::update(rows)
                    .set((
                        n::status.eq("sent"),
                        n::sent_at_ms.eq(now),
                        n::attempts.eq(n::attempts + 1),
                    ))
                    .execute(c)?,
                Err(e) => {
                    diesel::update(rows)
                        .set((n::last_error.eq(e), n::attempts.eq(n::attempts + 1)))
                        .execute(c)?;
                    diesel::update(
                        n::notifications
                            .filter(n::id.eq_any(ids))
                            .filter(n::attempts.ge(give_up_after)),
                    )
                    .set(n::status.eq("failed"))
                    .execute(c)?
                }
            };
            Ok(())
        })
        .map_err(query_err("recording deliveries"))
    }

    /// Deliveries of an alert, or all, newest first.
    ///
    /// # Errors
    /// The store failed.
    pub fn notifications(&self, alert: Option<i64>, limit: i64) -> Result<Vec<Notification>> {
        use notifications::dsl as n;
        let mut conn = self.conn()?;
        let mut q = n::notifications.into_boxed();
        if let Some(a) = alert {
            q = q.filter(n::alert_id.eq(a));
        }
        q.order(n::id.desc())
            .limit(limit)
            .select(Notification::as_select())
            .load(&mut *conn)
            .map_err(query_err("listing notifications"))
    }
}

/// A run of an audit job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable)]
#[diesel(table_name = audit_runs)]
pub struct AuditRun {
    /// Row id.
    pub id: i64,
    /// The job's name.
    pub job: String,
    /// `schedule` or `manual`.
    pub trigger: String,
    /// Who asked for a manual run.
    pub requested_by: Option<String>,
    /// `requested`, `running`, `passed`, `failed` (found a problem) or `error` (could not run).
    pub status: String,
    /// When it was asked for or became due.
    pub requested_at_ms: i64,
    /// When it started.
    pub started_at_ms: Option<i64>,
    /// When it finished.
    pub finished_at_ms: Option<i64>,
    /// One line on the outcome.
    pub summary: String,
    /// The result, JSON.
    pub details: String,
}

impl Store {
    /// Records a run of `job` asked for (`requested`) or starting now (`running`).
    ///
    /// # Errors
    /// The store failed.
    pub fn add_audit_run(
        &self,
        job: &str,
        trigger: &str,
        requested_by: Option<&str>,
        status: &str,
    ) -> Result<AuditRun> {
        use audit_runs::dsl as r;
        let mut conn = self.writer()?;
        let now = now_ms();
        let started = (status == "running").then_some(now);
        write_transaction(&mut conn, |c| {
            diesel::insert_into(r::audit_runs)
                .values((
                    r::job.eq(job),
                    r::trigger.eq(trigger),
                    r::requested_by.eq(requested_by),
                    r::status.eq(status),
                    r::requested_at_ms.eq(now),
                    r::started_at_ms.eq(started),
                ))
                .execute(c)?;
            r::audit_runs
                .order(r::id.desc())
                .select(AuditRun::as_select())
                .first(c)
        })
        .map_err(query_err("recording an audit run"))
    }

    /// Claims the oldest requested run: marks it running. `None` when nothing is requested.
    ///
    /// # Errors
    /// The store failed.
    pub fn claim_requested_audit(&self) -> Result<Option<AuditRun>> {
        use audit_runs::dsl as r;
        let mut conn = self.writer()?;
        let now = now_ms();
        write_transaction(&mut conn, |c| {
            let Some(mut run) = r::audit_runs
                .filter(r::status.eq("requested"))
                .order(r::id)
                .select(AuditRun::as_select())
                .first(c)
                .optional()?
            else {
                return Ok(None);
            };
            diesel::update(r::audit_runs.filter(r::id.eq(run.id)))
                .set((r::status.eq("running"), r::started_at_ms.eq(now)))
                .execute(c)?;
            run.status = "running".into();
            run.started_at_ms = Some(now);
            Ok(Some(run))
        })
        .map_err(query_err("claiming an audit run"))
    }

    /// Records how a run ended.
    ///
    /// # Errors
    /// The store failed.
    pub fn finish_audit_run(
        &self,
        id: i64,
        status: &str,
        summary: &str,
        details: &str,
    ) -> Result<()> {
        use audit_runs::dsl as r;
        let mut conn = self.writer()?;
        let now = now_ms();
        write_transaction(&mut conn, |c| {
            diesel::update(r::audit_runs.filter(r::id.eq(id)))
                .set((
                    r::status.eq(status),
                    r::finished_at_ms.eq(now),
                    r::summary.eq(summary),
                    r::details.eq(details),
                ))
                .execute(c)
        })
        .map(|_| ())
        .map_err(query_err("finishing an audit run"))
    }

    /// Runs of a job, or of all, newest first, before id `before`.
    ///
    /// # Errors
    /// The store failed.
    pub fn audit_runs(
        &self,
        job: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRun>> {
        use audit_runs::dsl as r;
        let mut conn = self.conn()?;
        let mut q = r::audit_runs.into_boxed();
        if let Some(j) = job {
            q = q.filter(r::job.eq(j.to_owned()));
        }
        if let Some(b) = before {
            q = q.filter(r::id.lt(b));
        }
        q.order(r::id.desc())
            .limit(limit)
            .select(AuditRun::as_select())
            .load(&mut *conn)
            .map_err(query_err("listing audit runs"))
    }

    /// One run.
    ///
    /// # Errors
    /// The store failed.
    pub fn audit_run(&self, id: i64) -> Result<Option<AuditRun>> {
        use audit_runs::dsl as r;
        let mut conn = self.conn()?;
        r::audit_runs
            .filter(r::id.eq(id))
            .select(AuditRun::as_select())
            .first(&mut *conn)
            .optional()
            .map_err(query_err("reading an audit run"))
    }

    /// Runs left `running` by a process that died: marked `error`, so the history is true.
    ///
    /// # Errors
    /// The store failed.
    pub fn abandon_running_audits(&self) -> Result<usize> {
        use audit_runs::dsl as r;
        let mut conn = self.writer()?;
        let now = now_ms();
        write_transaction(&mut conn, |c| {
            diesel::update(r::audit_runs.filter(r::status.eq("running")))
                .set((
                    r::status.eq("error"),
                    r::finished_at_ms.eq(now),
                    r::summary.eq("the process running it stopped before it finished"),
                ))
                .execute(c)
        })
        .map_err(query_err("closing abandoned audit runs"))
    }
}

/// A version of a rule edited through the API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable)]
#[diesel(table_name = rule_versions)]
pub struct RuleVersion {
    /// Row id.
    pub id: i64,
    /// The rule.
    pub rule_id: String,
    /// Its version.
    pub version: i32,
    /// The rule as TOML.
    pub body: String,
    /// Whether it runs.
    pub enabled: bool,
    /// Why it changed.
    pub comment: String,
    /// Who changed it.
    pub created_by: String,
    /// When.
    pub created_at_ms: i64,
}

impl Store {
    /// Stores a new version of a rule, numbered one above the highest stored and at least
    /// `min_version`. Returns it.
    ///
    /// # Errors
    /// The store failed.
    pub fn add_rule_version(
        &self,
        rule_id: &str,
        min_version: i32,
        body: &str,
        enabled: bool,
        comment: &str,
        actor: &str,
    ) -> Result<RuleVersion> {
        use rule_versions::dsl as v;
        let mut conn = self.writer()?;
        let now = now_ms();
        write_transaction(&mut conn, |c| {
            let highest: Option<i32> = v::rule_versions
                .filter(v::rule_id.eq(rule_id))
                .select(diesel::dsl::max(v::version))
                .first(c)?;
            let version = highest.map_or(min_version, |h| (h + 1).max(min_version));
            diesel::insert_into(v::rule_versions)
                .values((
                    v::rule_id.eq(rule_id),
                    v::version.eq(version),
                    v::body.eq(body),
                    v::enabled.eq(enabled),
                    v::comment.eq(comment),
                    v::created_by.eq(actor),
                    v::created_at_ms.eq(now),
                ))
                .execute(c)?;
            v::rule_versions
                .filter(v::rule_id.eq(rule_id))
                .filter(v::version.eq(version))
                .select(RuleVersion::as_select())
                .first(c)
        })
        .map_err(query_err("storing a rule version"))
    }

    /// Every stored version of a rule, or of all rules, oldest first.
    ///
    /// # Errors
    /// The store failed.
    pub fn rule_versions(&self, rule_id: Option<&str>) -> Result<Vec<RuleVersion>> {
        use rule_versions::dsl as v;
        let mut conn = self.conn()?;
        let mut q = v::rule_versions.into_boxed();
        if let Some(r) = rule_id {
            q = q.filter(v::rule_id.eq(r.to_owned()));
        }
        q.order((v::rule_id, v::version))
            .select(RuleVersion::as_select())
            .load(&mut *conn)
            .map_err(query_err("listing rule versions"))
    }

    /// The highest id of the stored rule versions (0 when none): changes when a rule is edited.
    ///
    /// # Errors
    /// The store failed.
    pub fn rule_versions_mark(&self) -> Result<i64> {
        use rule_versions::dsl as v;
        let mut conn = self.conn()?;
        v::rule_versions
            .select(diesel::dsl::max(v::id))
            .first::<Option<i64>>(&mut *conn)
            .map(|m| m.unwrap_or(0))
            .map_err(query_err("reading rule versions"))
    }
}

/// A signed checkpoint seen by the integrity monitor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable)]
#[diesel(table_name = checkpoint_observations)]
pub struct CheckpointObservation {
    /// Row id.
    pub id: i64,
    /// The channel.
    pub channel: String,
    /// Where it was seen (`local` or a peer's URL).
    pub source: String,
    /// Its tree size.
    pub tree_size: i64,
    /// Its root, hex.
    pub root_hex: String,
    /// The signed note.
    pub note: String,
    /// When it was first seen.
    pub observed_at_ms: i64,
}

impl Store {
    /// Records a checkpoint seen (once per channel, size and root) and returns every
    /// observation of that channel and size, so a caller sees a second root at once.
    ///
    /// # Errors
    /// The store failed.
    pub fn observe_checkpoint(
        &self,
        channel: &str,
        source: &str,
        tree_size: i64,
        root_hex: &str,
        note: &str,
    ) -> Result<Vec<CheckpointObservation>> {
        use checkpoint_observations::dsl as o;
        let mut conn = self.writer()?;
        let now = now_ms();
        write_transaction(&mut conn, |c| {
            let seen = o::checkpoint_observations
                .filter(o::channel.eq(channel))
                .filter(o::tree_size.eq(tree_size))
                .filter(o::root_hex.eq(root_hex))
                .count()
                .get_result::<i64>(c)?
                > 0;
            if !seen {
                diesel::insert_into(o::checkpoint_observations)
                    .values((
                        o::channel.eq(channel),
                        o::source.eq(source),
                        o::tree_size.eq(tree_size),
                        o::root_hex.eq(root_hex),
                        o::note.eq(note),
                        o::observed_at_ms.eq(now),
                    ))
                    .execute(c)?;
            }
            o::checkpoint_observations
                .filter(o::channel.eq(channel))
                .filter(o::tree_size.eq(tree_size))
                .order(o::id)
                .select(CheckpointObservation::as_select())
                .load(c)
        })
        .map_err(query_err("recording a checkpoint seen"))
    }
}
