//! Delivery of alerts beyond the dashboard: e-mail through SMTP (lettre) and a webhook.
//!
//! Deliveries are queued in the store (`notifications`), one per alert, channel and recipient,
//! so a crash between queueing and sending loses nothing and a restart sends nothing twice
//! that was recorded as sent. Critical alerts are mailed at once; the others wait for the
//! recipient's digest (the `digest` audit). Webhooks are posted at once, signed with
//! HMAC-SHA256 when a secret is configured. Every mail carries the latest signed checkpoint of
//! the alerts channel and of the channels the alert's rule watches, so a reader can check later
//! that what they were told was in the ledger.

use std::time::Duration;

use ledgerbridge_config::monitoring::{EmailConfig, Recipient, Severity, WebhookConfig};
use ledgerbridge_store::{NewNotification, Notification, Store, StoredAlert};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Attempts before a delivery is given up as `failed`.
pub(crate) const GIVE_UP_AFTER: i32 = 10;

fn severity(s: &str) -> Severity {
    match s {
        "critical" => Severity::Critical,
        "high" => Severity::High,
        "medium" => Severity::Medium,
        _ => Severity::Low,
    }
}

fn wants(r: &Recipient, a: &StoredAlert) -> bool {
    severity(&a.severity) >= r.min_severity
        && (r.rules.is_empty() || r.rules.iter().any(|p| a.rule_id.starts_with(p.as_str())))
}

/// The deliveries an alert calls for (none when it is suppressed).
pub(crate) fn plan(
    email: Option<&EmailConfig>,
    webhook: Option<&WebhookConfig>,
    a: &StoredAlert,
) -> Vec<NewNotification> {
    if a.suppressed_by.is_some() {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Some(e) = email {
        let mode = if a.severity == "critical" {
            "immediate"
        } else {
            "digest"
        };
        for r in e.recipients.iter().filter(|r| wants(r, a)) {
            out.push(NewNotification {
                alert_id: a.id,
                channel: "email".into(),
                recipient: r.address.clone(),
                mode: mode.into(),
            });
        }
    }
    if let Some(w) = webhook
        && severity(&a.severity) >= w.min_severity
    {
        out.push(NewNotification {
            alert_id: a.id,
            channel: "webhook".into(),
            recipient: w.url.clone(),
            mode: "immediate".into(),
        });
    }
    out
}

/// A mailer for the configured relay.
pub(crate) fn mailer(e: &EmailConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let url =
        url::Url::parse(&e.smtp_url).map_err(|x| format!("monitoring.email.smtp_url: {x}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| "monitoring.email.smtp_url has no host".to_owned())?;
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(url.port().unwrap_or(25))
        .timeout(Some(Duration::from_secs(20)));
    if let Some(user) = &e.username {
        let password = e
            .password
            .as_ref()
            .map(|p| {
                p.resolve()
                    .map_err(|x| format!("monitoring.email.password: {x}"))
            })
            .transpose()?
            .unwrap_or_default();
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    Ok(builder.build())
}

/// The text of one alert in a mail.
pub(crate) fn describe(a: &StoredAlert, api: Option<&str>) -> String {
    let events: Vec<String> = serde_json::from_str(&a.event_ids).unwrap_or_default();
    let mut s = format!(
        "[{}] {} (rule {} v{}) on {}\n  {}\n  detected at {} (alert #{}, status {})\n",
        a.severity.to_uppercase(),
        a.rule_id,
        a.rule_id,
        a.rule_version,
        a.alert_key,
        a.explanation,
        chrono::DateTime::from_timestamp_millis(a.detected_at_ms)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
        a.id,
        a.status,
    );
    for e in &events {
        match api {
            Some(base) => s.push_str(&format!("  event {e}: {base}/api/v1/provenance/{e}\n")),
            None => s.push_str(&format!("  event {e}\n")),
        }
    }
    if let Some(i) = a.ledger_index {
        s.push_str(&format!("  anchored in the alerts channel at index {i}\n"));
    }
    s
}

/// Sends one mail.
pub(crate) async fn send_mail(
    mailer: &AsyncSmtpTransport<Tokio1Executor>,
    from: &str,
    to: &str,
    subject: &str,
    body: String,
) -> Result<(), String> {
    let message = Message::builder()
        .from(from.parse().map_err(|e| format!("sender `{from}`: {e}"))?)
        .to(to.parse().map_err(|e| format!("recipient `{to}`: {e}"))?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| format!("building the mail: {e}"))?;
    mailer
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP: {e}"))
}

/// Posts one alert to the webhook; the body is the alert as JSON.
pub(crate) async fn post_webhook(
    client: &reqwest::Client,
    w: &WebhookConfig,
    a: &StoredAlert,
) -> Result<(), String> {
    let body = serde_json::to_vec(a).map_err(|e| e.to_string())?;
    let mut request = client
        .post(&w.url)
        .timeout(Duration::from_secs(10))
        .header("Content-Type", "application/json")
        .header("X-Ledgerbridge-Alert", a.id.to_string());
    if let Some(secret) = &w.secret {
        let key = secret
            .resolve()
            .map_err(|e| format!("monitoring.webhook.secret: {e}"))?;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
        let tag = ring::hmac::sign(&key, &body);
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        request = request.header("X-Ledgerbridge-Signature", format!("sha256={hex}"));
    }
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST {}: {e}", w.url))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("POST {}: HTTP {}", w.url, response.status()))
    }
}

/// Groups pending deliveries by recipient, keeping their alert ids in order.
pub(crate) fn by_recipient(pending: &[Notification]) -> Vec<(String, Vec<&Notification>)> {
    let mut out: Vec<(String, Vec<&Notification>)> = Vec::new();
    for n in pending {
        match out.iter_mut().find(|(r, _)| *r == n.recipient) {
            Some((_, list)) => list.push(n),
            None => out.push((n.recipient.clone(), vec![n])),
        }
    }
    out
}

/// Whether a failed delivery is due for another attempt: back-off doubling from 5 s, capped at
/// ten minutes.
pub(crate) fn due(n: &Notification, now_ms: i64, last_try_ms: Option<i64>) -> bool {
    let Some(last) = last_try_ms else {
        return true;
    };
    let wait = 5_000i64
        .saturating_mul(1 << n.attempts.clamp(0, 7))
        .min(600_000);
    now_ms - last >= wait
}

/// Loads the alerts named by deliveries.
pub(crate) fn alerts_of(store: &Store, ids: &[i64]) -> Result<Vec<StoredAlert>, String> {
    let mut out = Vec::new();
    for id in ids {
        if let Some((a, _)) = store.alert(*id).map_err(|e| e.to_string())? {
            out.push(a);
        }
    }
    Ok(out)
}
