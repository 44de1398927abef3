//! What the monitoring role does besides running the rules, once a second:
//! 1. anchors every new alert and every change of an alert's state in the alerts channel of the
//!    ledger (an outbox: the store says what is not anchored yet; event ids are deterministic,
//!    so a crash between appending and recording the index appends nothing twice);
//! 2. queues the deliveries of anchored alerts (e-mail, webhook) and sends those due now;
//! 3. every `integrity_interval`, runs the integrity monitor over every channel and the peers;
//! 4. runs the scheduled audits when their cron expression comes due, and the runs asked for
//!    through the API, recording each run and its result.
//!
//! One process runs this (the one with the `monitor` role): the alerts channel has one writer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ledgerbridge_config::monitoring::{AuditConfig, AuditJob, MonitoringConfig};
use ledgerbridge_ledger::{Ledger, NewEntry};
use ledgerbridge_store::{AuditRun, Store, StoredAlert};

use crate::integrity::{self, Finding};
use crate::notify;

const NOTIFY_CURSOR: &str = "notify.cursor";

/// What the oversight loop needs.
#[derive(Clone)]
pub(crate) struct OversightContext {
    pub(crate) store: Store,
    pub(crate) ledger: Ledger,
    pub(crate) config: MonitoringConfig,
    pub(crate) connectors: Arc<ledgerbridge_connectors::Connectors>,
    pub(crate) mappings: Arc<ledgerbridge_mappings::Mappings>,
    /// The API's base URL, for links in mails.
    pub(crate) api_url: Option<String>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())?
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The ledger entry of an alert (`alert.raised`).
fn alert_entry(a: &StoredAlert) -> NewEntry {
    let mut body = a.clone();
    body.ledger_index = None;
    NewEntry {
        event_id: format!("alert-{}", a.dedup_key),
        event_type: "alert.raised".into(),
        connector: "monitor".into(),
        source_position: format!("alert {}", a.id),
        mapping_version: format!("{}@{}", a.rule_id, a.rule_version),
        subject: None,
        payload: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

/// Anchors what of the alerts' history is not in the ledger yet. Returns how many entries.
pub(crate) fn anchor_alerts(
    store: &Store,
    ledger: &Ledger,
    channel: &str,
) -> Result<usize, String> {
    let pending = store.unanchored_alerts(500).map_err(|e| e.to_string())?;
    if pending.alerts.is_empty() && pending.actions.is_empty() {
        return Ok(0);
    }
    let mut entries: Vec<NewEntry> = pending.alerts.iter().map(alert_entry).collect();
    // An action's alert may be anchored in this same batch (it comes first) or before.
    for x in &pending.actions {
        let mut body = x.clone();
        body.ledger_index = None;
        entries.push(NewEntry {
            event_id: format!("alert-action-{}-{}", x.alert_id, x.id),
            event_type: if x.kind == "comment" {
                "alert.commented".into()
            } else {
                "alert.status_changed".into()
            },
            connector: "api".into(),
            source_position: format!("alert {} action {}", x.alert_id, x.id),
            mapping_version: format!("alert-lifecycle@{}", x.actor),
            subject: None,
            payload: serde_json::to_vec(&body).unwrap_or_default(),
        });
    }
    let (appended, _) = ledger
        .append(channel, &entries)
        .map_err(|e| format!("anchoring alerts in {channel}: {e}"))?;
    let to_i64 = |i: u64| i64::try_from(i).unwrap_or(i64::MAX);
    let alerts: Vec<(i64, i64)> = pending
        .alerts
        .iter()
        .zip(&appended)
        .map(|(a, x)| (a.id, to_i64(x.index)))
        .collect();
    let actions: Vec<(i64, i64)> = pending
        .actions
        .iter()
        .zip(appended.iter().skip(pending.alerts.len()))
        .map(|(a, x)| (a.id, to_i64(x.index)))
        .collect();
    store
        .set_alerts_anchored(&alerts, &actions)
        .map_err(|e| e.to_string())?;
    Ok(entries.len())
}

/// The footer of every mail: the latest signed checkpoint of the alerts channel and of the
/// domain channel of each rule involved (the rule id's prefix names the domain).
fn checkpoints(ledger: &Ledger, alerts_channel: &str, rules: &[&str]) -> String {
    let mut channels = vec![alerts_channel.to_owned()];
    let known = ledger.channels().unwrap_or_default();
    for r in rules {
        let domain = r.split('.').next().unwrap_or_default();
        let channel = match domain {
            "healthcare" => "claims",
            other => other,
        };
        if known.iter().any(|c| c == channel) && !channels.iter().any(|c| c == channel) {
            channels.push(channel.to_owned());
        }
    }
    let mut out = String::from(
        "\n-- \nLatest signed checkpoints (verify with `ledgerbridge verify` or any C2SP signed-note verifier):\n",
    );
    for c in channels {
        match ledger.checkpoint(&c) {
            Ok(Some(cp)) => out.push_str(&format!("\nchannel {c}:\n{}", cp.note)),
            Ok(None) => out.push_str(&format!("\nchannel {c}: no checkpoint yet\n")),
            Err(e) => out.push_str(&format!("\nchannel {c}: unavailable ({e})\n")),
        }
    }
    out
}

/// The loop's memory between ticks.
struct Oversight {
    ctx: OversightContext,
    mailer: Option<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>>,
    http: reqwest::Client,
    tried: HashMap<i64, i64>,
    next_integrity: Instant,
    /// The last lag record the integrity monitor judged.
    lag_seen_ms: i64,
    audits: Vec<(AuditConfig, cron::Schedule, DateTime<Utc>)>,
}

impl Oversight {
    fn new(ctx: OversightContext) -> Result<Self, String> {
        let ca = notify::extra_ca(ctx.config.tls_ca_file.as_deref())?;
        let mailer = ctx
            .config
            .email
            .as_ref()
            .map(|e| notify::mailer(e, ca.as_deref()))
            .transpose()?;
        let http = notify::http_client(ca.as_deref())?;
        let now = Utc::now();
        let audits = ctx
            .config
            .audits
            .iter()
            .map(|a| {
                let schedule: cron::Schedule = a
                    .schedule
                    .parse()
                    .map_err(|e| format!("monitoring.audits {}: {e}", a.name))?;
                let next = schedule.after(&now).next().unwrap_or(now);
                Ok((a.clone(), schedule, next))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            ctx,
            mailer,
            http,
            tried: HashMap::new(),
            next_integrity: Instant::now(),
            lag_seen_ms: 0,
            audits,
        })
    }

    async fn anchor(&self) -> Result<usize, String> {
        let (store, ledger) = (self.ctx.store.clone(), self.ctx.ledger.clone());
        let channel = self.ctx.config.channel.clone();
        blocking(move || anchor_alerts(&store, &ledger, &channel)).await
    }

    /// Queues deliveries for anchored alerts past the cursor, in order.
    async fn queue(&self) -> Result<(), String> {
        if self.ctx.config.email.is_none() && self.ctx.config.webhook.is_none() {
            return Ok(());
        }
        let store = self.ctx.store.clone();
        let (email, webhook) = (
            self.ctx.config.email.clone(),
            self.ctx.config.webhook.clone(),
        );
        blocking(move || {
            let cursor: i64 = store
                .meta(NOTIFY_CURSOR)
                .map_err(|e| e.to_string())?
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let alerts = store.alerts_after(cursor, 500).map_err(|e| e.to_string())?;
            let mut last = cursor;
            let mut plans = Vec::new();
            for a in alerts.iter().take_while(|a| a.ledger_index.is_some()) {
                plans.extend(notify::plan(email.as_ref(), webhook.as_ref(), a));
                last = a.id;
            }
            if last != cursor {
                store
                    .queue_notifications(&plans)
                    .map_err(|e| e.to_string())?;
                store
                    .set_meta(NOTIFY_CURSOR, &last.to_string())
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .await
    }

    /// Sends the immediate deliveries that are due.
    async fn deliver(&mut self) -> Result<(), String> {
        let store = self.ctx.store.clone();
        let pending = blocking(move || {
            store
                .pending_notifications("immediate", 200)
                .map_err(|e| e.to_string())
        })
        .await?;
        let now = now_ms();
        // Only pending deliveries need their last attempt remembered.
        self.tried
            .retain(|id, _| pending.iter().any(|n| n.id == *id));
        for n in pending {
            if !notify::due(&n, now, self.tried.get(&n.id).copied()) {
                continue;
            }
            self.tried.insert(n.id, now);
            let store = self.ctx.store.clone();
            let id = n.alert_id;
            let Some(alert) = blocking(move || notify::alerts_of(&store, &[id]))
                .await?
                .into_iter()
                .next()
            else {
                continue;
            };
            let outcome = match n.channel.as_str() {
                "email" => self.mail(&n.recipient, std::slice::from_ref(&alert)).await,
                "webhook" => match &self.ctx.config.webhook {
                    Some(w) => notify::post_webhook(&self.http, w, &alert).await,
                    None => Err("no webhook is configured any more".into()),
                },
                other => Err(format!("unknown delivery channel {other}")),
            };
            if let Err(e) = &outcome {
                tracing::warn!(alert = alert.id, channel = %n.channel, recipient = %n.recipient, "delivering an alert failed (attempt {}): {e}", n.attempts + 1);
            }
            let store = self.ctx.store.clone();
            blocking(move || {
                store
                    .notifications_done(
                        &[n.id],
                        outcome.as_ref().map(|_| ()).map_err(String::as_str),
                        notify::GIVE_UP_AFTER,
                    )
                    .map_err(|e| e.to_string())
            })
            .await?;
        }
        Ok(())
    }

    /// Mails `alerts` to `to`: one alert at once, or a digest.
    async fn mail(&self, to: &str, alerts: &[StoredAlert]) -> Result<(), String> {
        let (Some(mailer), Some(email)) = (&self.mailer, &self.ctx.config.email) else {
            return Err("no SMTP relay is configured any more".into());
        };
        let subject = match alerts {
            [a] => format!(
                "[ledgerbridge] {} alert: {} on {}",
                a.severity.to_uppercase(),
                a.rule_id,
                a.alert_key
            ),
            many => format!("[ledgerbridge] digest: {} alerts", many.len()),
        };
        let mut body = String::new();
        if alerts.len() > 1 {
            body.push_str(&format!(
                "{} alerts since your last digest, oldest first.\n\n",
                alerts.len()
            ));
        }
        for a in alerts {
            body.push_str(&notify::describe(a, self.ctx.api_url.as_deref()));
            body.push('\n');
        }
        let rules: Vec<&str> = alerts.iter().map(|a| a.rule_id.as_str()).collect();
        let ledger = self.ctx.ledger.clone();
        let channel = self.ctx.config.channel.clone();
        let rules: Vec<String> = rules.into_iter().map(str::to_owned).collect();
        let footer = blocking(move || {
            let r: Vec<&str> = rules.iter().map(String::as_str).collect();
            Ok(checkpoints(&ledger, &channel, &r))
        })
        .await?;
        body.push_str(&footer);
        notify::send_mail(mailer, &email.from, to, &subject, body).await
    }

    async fn integrity(&mut self) -> Result<(), String> {
        if Instant::now() < self.next_integrity {
            return Ok(());
        }
        self.next_integrity = Instant::now() + self.ctx.config.integrity_interval.get();
        let (store, ledger) = (self.ctx.store.clone(), self.ctx.ledger.clone());
        let slo = self.ctx.config.sequencing_lag_slo.get();
        let mut seen = self.lag_seen_ms;
        let (channels, mut findings, seen) = blocking(move || {
            let channels = ledger.channels().map_err(|e| e.to_string())?;
            let mut findings = Vec::new();
            for c in &channels {
                findings.extend(integrity::check_channel(&store, c)?);
            }
            findings.extend(integrity::check_lag(&store, slo, &mut seen)?);
            Ok((channels, findings, seen))
        })
        .await?;
        self.lag_seen_ms = seen;
        for peer in &self.ctx.config.peers {
            for c in &channels {
                match integrity::check_peer(&self.ctx.store, &self.http, peer, c).await {
                    Ok(f) => findings.extend(f),
                    Err(e) => tracing::warn!(peer = %peer, channel = %c, "integrity: {e}"),
                }
            }
        }
        self.raise(findings).await
    }

    async fn raise(&self, findings: Vec<Finding>) -> Result<(), String> {
        if findings.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        for f in &findings {
            tracing::error!(kind = f.kind, subject = %f.subject, "integrity: {}", f.explanation);
        }
        let alerts: Vec<StoredAlert> = findings.iter().map(|f| f.alert(now)).collect();
        let store = self.ctx.store.clone();
        blocking(move || store.insert_alerts(&alerts).map_err(|e| e.to_string())).await?;
        Ok(())
    }

    /// Runs the audits that came due and those asked for through the API.
    async fn audits(&mut self) -> Result<(), String> {
        let now = Utc::now();
        let due: Vec<AuditConfig> = self
            .audits
            .iter_mut()
            .filter(|(_, _, next)| *next <= now)
            .map(|(a, schedule, next)| {
                *next = schedule.after(&now).next().unwrap_or(now);
                a.clone()
            })
            .collect();
        for a in due {
            let store = self.ctx.store.clone();
            let name = a.name.clone();
            let run = blocking(move || {
                store
                    .add_audit_run(&name, "schedule", None, "running")
                    .map_err(|e| e.to_string())
            })
            .await?;
            self.run_audit(&a, run).await?;
        }
        loop {
            let store = self.ctx.store.clone();
            let Some(run) =
                blocking(move || store.claim_requested_audit().map_err(|e| e.to_string())).await?
            else {
                return Ok(());
            };
            let Some(a) = self
                .ctx
                .config
                .audits
                .iter()
                .find(|a| a.name == run.job)
                .cloned()
            else {
                let store = self.ctx.store.clone();
                blocking(move || {
                    store
                        .finish_audit_run(run.id, "error", "no such audit is configured", "{}")
                        .map_err(|e| e.to_string())
                })
                .await?;
                continue;
            };
            self.run_audit(&a, run).await?;
        }
    }

    async fn run_audit(&mut self, a: &AuditConfig, run: AuditRun) -> Result<(), String> {
        tracing::info!(audit = %a.name, run = run.id, trigger = %run.trigger, "audit starting");
        let outcome = match a.job {
            AuditJob::VerifyLedger => self.verify_ledger().await,
            AuditJob::Reconcile => self.reconcile().await,
            AuditJob::Digest => self.digest().await,
        };
        let (status, summary, details, findings) = match outcome {
            Ok((summary, details, findings)) => (
                if findings.is_empty() {
                    "passed"
                } else {
                    "failed"
                },
                summary,
                details,
                findings,
            ),
            Err(e) => ("error", e, serde_json::json!({}), Vec::new()),
        };
        tracing::info!(audit = %a.name, run = run.id, status, "audit finished: {summary}");
        let store = self.ctx.store.clone();
        let details = details.to_string();
        let summary2 = summary.clone();
        blocking(move || {
            store
                .finish_audit_run(run.id, status, &summary2, &details)
                .map_err(|e| e.to_string())
        })
        .await?;
        self.raise(findings).await
    }

    async fn verify_ledger(&self) -> Result<(String, serde_json::Value, Vec<Finding>), String> {
        let ledger = self.ctx.ledger.clone();
        blocking(move || {
            let mut details = serde_json::Map::new();
            let mut findings = Vec::new();
            let mut entries = 0;
            let channels = ledger.channels().map_err(|e| e.to_string())?;
            for c in &channels {
                let report = ledger.audit(c, |_, _| {}).map_err(|e| e.to_string())?;
                entries += report.entries;
                if let Some(f) = &report.finding {
                    findings.push(Finding {
                        kind: "audit_finding",
                        subject: c.clone(),
                        explanation: format!(
                            "ledger re-verification of channel {c}: {} at {}",
                            f.problem, f.location
                        ),
                        evidence: None,
                        dedup: None,
                    });
                }
                details.insert(
                    c.clone(),
                    serde_json::json!({
                        "entries": report.entries,
                        "tiles": report.tiles,
                        "checkpoints": report.checkpoints,
                        "blocks": report.blocks,
                        "finding": report.finding.as_ref().map(|f| format!("{}: {}", f.location, f.problem)),
                    }),
                );
            }
            let summary = if findings.is_empty() {
                format!("{} channels intact, {entries} entries re-verified", channels.len())
            } else {
                format!("{} of {} channels have a problem", findings.len(), channels.len())
            };
            Ok((summary, serde_json::Value::Object(details), findings))
        })
        .await
    }

    async fn reconcile(&self) -> Result<(String, serde_json::Value, Vec<Finding>), String> {
        let mut details = serde_json::Map::new();
        let mut findings = Vec::new();
        let names: Vec<String> = self
            .ctx
            .connectors
            .statuses()
            .into_iter()
            .map(|s| s.name)
            .collect();
        for name in &names {
            match ledgerbridge_api::reconciliation::reconcile(
                &self.ctx.connectors,
                &self.ctx.mappings,
                &self.ctx.ledger,
                &self.ctx.store,
                name,
            )
            .await
            {
                Ok(report) => {
                    if !report.complete() {
                        findings.push(Finding {
                            kind: "reconciliation_mismatch",
                            subject: name.clone(),
                            explanation: format!(
                                "reconciliation of connector {name}: {}",
                                report.problems().join("; ")
                            ),
                            evidence: serde_json::to_value(&report).ok(),
                            dedup: None,
                        });
                    }
                    details.insert(
                        name.clone(),
                        serde_json::to_value(&report).unwrap_or_default(),
                    );
                }
                Err(e) => {
                    details.insert(name.clone(), serde_json::json!({ "error": e.message }));
                }
            }
        }
        let errors = details
            .values()
            .filter(|v| v.get("error").is_some())
            .count();
        let summary = format!(
            "{} connectors reconciled: {} complete, {} with differences, {errors} could not be read",
            names.len(),
            names.len() - findings.len() - errors,
            findings.len()
        );
        if errors > 0 && findings.is_empty() {
            return Err(summary);
        }
        Ok((summary, serde_json::Value::Object(details), findings))
    }

    /// Sends every recipient the digest of their pending alerts.
    async fn digest(&self) -> Result<(String, serde_json::Value, Vec<Finding>), String> {
        let store = self.ctx.store.clone();
        let pending = blocking(move || {
            store
                .pending_notifications("digest", 10_000)
                .map_err(|e| e.to_string())
        })
        .await?;
        let mut details = serde_json::Map::new();
        let mut failed = 0;
        for (recipient, list) in notify::by_recipient(&pending) {
            let ids: Vec<i64> = list.iter().map(|n| n.id).collect();
            let alert_ids: Vec<i64> = list.iter().map(|n| n.alert_id).collect();
            let store = self.ctx.store.clone();
            let alerts = blocking(move || notify::alerts_of(&store, &alert_ids)).await?;
            let outcome = self.mail(&recipient, &alerts).await;
            details.insert(
                recipient.clone(),
                serde_json::json!({ "alerts": alerts.len(), "sent": outcome.is_ok(), "error": outcome.as_ref().err() }),
            );
            if outcome.is_err() {
                failed += 1;
            }
            let store = self.ctx.store.clone();
            blocking(move || {
                store
                    .notifications_done(
                        &ids,
                        outcome.as_ref().map(|_| ()).map_err(String::as_str),
                        notify::GIVE_UP_AFTER,
                    )
                    .map_err(|e| e.to_string())
            })
            .await?;
        }
        let summary = format!(
            "{} digests for {} alerts, {failed} failed",
            details.len(),
            pending.len()
        );
        if failed > 0 {
            return Err(summary);
        }
        Ok((summary, serde_json::Value::Object(details), Vec::new()))
    }
}

/// Runs until `stop` turns true.
pub(crate) async fn run(
    ctx: OversightContext,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    {
        let (ledger, store, channel) = (
            ctx.ledger.clone(),
            ctx.store.clone(),
            ctx.config.channel.clone(),
        );
        blocking(move || {
            ledger
                .ensure_channel(&channel)
                .map_err(|e| format!("the alerts channel {channel}: {e}"))?;
            let abandoned = store.abandon_running_audits().map_err(|e| e.to_string())?;
            if abandoned > 0 {
                tracing::warn!(
                    abandoned,
                    "audit runs left running by a stopped process marked as errors"
                );
            }
            Ok(())
        })
        .await?;
    }
    let mut o = Oversight::new(ctx)?;
    tracing::info!(
        channel = %o.ctx.config.channel,
        audits = o.audits.len(),
        email = o.ctx.config.email.is_some(),
        webhook = o.ctx.config.webhook.is_some(),
        "alert anchoring, delivery, integrity monitor and audits running"
    );
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        for (what, result) in [
            ("anchoring alerts", o.anchor().await.map(|_| ())),
            ("queueing deliveries", o.queue().await),
            ("delivering alerts", o.deliver().await),
            ("integrity monitor", o.integrity().await),
            ("audits", o.audits().await),
        ] {
            if let Err(e) = result {
                tracing::warn!("{what}: {e}");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
    }
}
