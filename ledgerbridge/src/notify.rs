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

/// The PEM certificates of `monitoring.tls_ca_file`, if set.
pub(crate) fn extra_ca(file: Option<&std::path::Path>) -> Result<Option<Vec<u8>>, String> {
    file.map(|f| {
        std::fs::read(f).map_err(|e| format!("monitoring.tls_ca_file {}: {e}", f.display()))
    })
    .transpose()
}

/// The HTTP client of the webhook and the peers: the system's roots and the extra CAs.
pub(crate) fn http_client(ca: Option<&[u8]>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder();
    if let Some(pem) = ca {
        for cert in reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("monitoring.tls_ca_file: {e}"))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| format!("the HTTP client for the webhook and peers: {e}"))
}

/// A mailer for the configured relay: plain, STARTTLS (required or opportunistic) or TLS from
/// the first byte, as `smtp_url` says; certificates checked against the system's roots and the
/// extra CAs.
pub(crate) fn mailer(
    e: &EmailConfig,
    ca: Option<&[u8]>,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    let url =
        url::Url::parse(&e.smtp_url).map_err(|x| format!("monitoring.email.smtp_url: {x}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| "monitoring.email.smtp_url has no host".to_owned())?;
    let params = || -> Result<TlsParameters, String> {
        let mut b = TlsParameters::builder(host.to_owned());
        if let Some(pem) = ca {
            use rustls_pki_types::pem::PemObject as _;
            for der in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
                let der = der.map_err(|x| format!("monitoring.tls_ca_file: {x}"))?;
                b = b.add_root_certificate(
                    Certificate::from_der(der.to_vec())
                        .map_err(|x| format!("monitoring.tls_ca_file: {x}"))?,
                );
            }
        }
        b.build_rustls()
            .map_err(|x| format!("monitoring.email.smtp_url: TLS for {host}: {x}"))
    };
    let mode = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let (port, tls) = match (url.scheme(), mode.as_deref()) {
        ("smtp", None) => (25, Tls::None),
        ("smtp", Some("required")) => (587, Tls::Required(params()?)),
        ("smtp", Some("opportunistic")) => (587, Tls::Opportunistic(params()?)),
        ("smtps", None) => (465, Tls::Wrapper(params()?)),
        _ => {
            return Err(format!(
                "monitoring.email.smtp_url `{}`: use smtp://host:587?tls=required, smtps://host, \
                 smtp://host?tls=opportunistic or smtp://host:25",
                e.smtp_url
            ));
        }
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(url.port().unwrap_or(port))
        .tls(tls)
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
