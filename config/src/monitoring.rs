//! Monitoring: where alerts are anchored, how they are delivered (e-mail, webhook), the
//! integrity monitor's settings and the scheduled audits.
//!
//! These are the file format's types; the node's monitoring worker runs them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;
use crate::secret::Secret;

/// The monitoring worker's settings (the rules themselves ship with ledgerbridge and are edited
/// through the API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitoringConfig {
    /// Ledger channel where every alert and every change of its state is anchored.
    #[serde(default = "default_alert_channel")]
    pub channel: String,
    /// How often the integrity monitor checks every channel of the ledger (gaps, consistency
    /// of successive checkpoints, signatures, equivocation, sequencing lag).
    #[serde(default = "default_integrity_interval")]
    pub integrity_interval: HumanDuration,
    /// Service level of the sequencing lag: an event waiting longer than this between its
    /// extraction from the source and its anchoring raises a critical integrity alert.
    #[serde(default = "default_lag_slo")]
    pub sequencing_lag_slo: HumanDuration,
    /// API base URLs of peer nodes (e.g. `https://node-b.example.org`) whose signed checkpoints
    /// are compared with ours: two roots signed for one size is an equivocation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// Alerts by e-mail through SMTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailConfig>,
    /// Alerts posted as JSON to a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,
    /// Scheduled audits. Default: the ledger re-verified at 02:00, every connector reconciled
    /// hourly, the e-mail digest at 07:00 (UTC).
    #[serde(default = "default_audits")]
    pub audits: Vec<AuditConfig>,
    /// A PEM file of CA certificates trusted besides the system's (an internal CA), for the
    /// SMTP relay, the webhook and the peers over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<std::path::PathBuf>,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            channel: default_alert_channel(),
            integrity_interval: default_integrity_interval(),
            sequencing_lag_slo: default_lag_slo(),
            peers: Vec::new(),
            email: None,
            webhook: None,
            audits: default_audits(),
            tls_ca_file: None,
        }
    }
}

fn default_alert_channel() -> String {
    "alerts".into()
}

fn default_integrity_interval() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(10))
}

fn default_lag_slo() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(60))
}

fn default_audits() -> Vec<AuditConfig> {
    [
        ("ledger-verify", AuditJob::VerifyLedger, "0 0 2 * * *"),
        ("reconcile", AuditJob::Reconcile, "0 0 * * * *"),
        ("digest", AuditJob::Digest, "0 0 7 * * *"),
    ]
    .into_iter()
    .map(|(name, job, schedule)| AuditConfig {
        name: name.into(),
        job,
        schedule: schedule.into(),
    })
    .collect()
}

/// Severity of an alert, lowest first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
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

/// E-mail delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP relay: `smtp://mail.example.org:587?tls=required` (STARTTLS, refused if the
    /// relay does not offer it), `smtps://mail.example.org` (TLS from the first byte, port 465),
    /// `smtp://relay.local:25?tls=opportunistic` (STARTTLS when offered) or
    /// `smtp://relay.local:25` (plain, for a relay on the same host). Certificates are checked
    /// against the system's roots and `monitoring.tls_ca_file`.
    pub smtp_url: String,
    /// SMTP user, when the relay wants one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Its password, as a secret reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// The sender, e.g. `ledgerbridge <alerts@example.org>`.
    pub from: String,
    /// Who gets what. Critical alerts are mailed at once; the others wait for the recipient's
    /// daily digest (the `digest` audit).
    pub recipients: Vec<Recipient>,
}

/// One recipient of alert e-mail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    /// The address, e.g. `analyst@example.org`.
    pub address: String,
    /// Alerts below this severity are not mailed to them.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// Only rules whose id starts with one of these (e.g. `customs.`); empty: every rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
}

fn default_min_severity() -> Severity {
    Severity::Medium
}

/// Webhook delivery: each alert POSTed as JSON, signed with HMAC-SHA256 in the header
/// `X-Ledgerbridge-Signature: sha256=<hex>` when a secret is set; retried with back-off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST (`https://…`, or `http://…` on a trusted network).
    pub url: String,
    /// Key of the signature, as a secret reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// Alerts below this severity are not posted.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
}

/// A scheduled audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Its name in the run history and the API (`POST /api/v1/audits/{name}/run`).
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"))]
    pub name: String,
    /// What it does: `verify_ledger` (every channel re-verified from its entries: leaf hashes,
    /// tree, checkpoints and signatures), `reconcile` (every connector's sources against the
    /// ledger) or `digest` (the pending e-mail digests sent).
    pub job: AuditJob,
    /// When, as a cron expression with seconds (`sec min hour day month weekday`), UTC.
    pub schedule: String,
}

/// What an audit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditJob {
    /// Re-verify every channel of the ledger.
    VerifyLedger,
    /// Reconcile every connector's sources with the ledger.
    Reconcile,
    /// Send the pending e-mail digests.
    Digest,
}
