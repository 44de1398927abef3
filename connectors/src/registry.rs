//! Where connectors register the Avro schemas of their streams: the node's own registry (the
//! default, served under `/registry`), or an external Confluent-compatible registry by URL.

use ledgerbridge_registry::{Registry, RegistryError};

/// Why a schema was not registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The subject's compatibility level refuses it: consumers could not read the new records.
    #[error("{0}")]
    Incompatible(String),
    /// The registry failed or could not be reached.
    #[error("schema registry: {0}")]
    Unavailable(String),
}

/// A schema registry.
#[derive(Debug, Clone)]
pub enum SchemaRegistry {
    /// The node's own registry, in its store.
    Local(Registry),
    /// A Confluent-compatible registry at this base URL.
    Remote {
        /// HTTP client.
        client: reqwest::Client,
        /// Base URL, e.g. `http://registry:8081`.
        base: String,
        /// Bearer token sent with registrations.
        token: Option<String>,
    },
}

impl SchemaRegistry {
    /// An external registry.
    #[must_use]
    pub fn remote(base: &str, token: Option<String>) -> Self {
        Self::Remote {
            client: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// Registers `schema` under `subject` (idempotent) and returns its id.
    ///
    /// # Errors
    /// [`RegisterError`].
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegisterError> {
        let id = match self {
            Self::Local(registry) => {
                let registry = registry.clone();
                let (subject, schema) = (subject.to_owned(), schema.to_owned());
                tokio::task::spawn_blocking(move || registry.register(&subject, &schema))
                    .await
                    .map_err(|e| RegisterError::Unavailable(e.to_string()))?
                    .map_err(|e| match e {
                        RegistryError::Incompatible { .. } => {
                            RegisterError::Incompatible(e.to_string())
                        }
                        other => RegisterError::Unavailable(other.to_string()),
                    })?
            }
            Self::Remote {
                client,
                base,
                token,
            } => {
                let url = format!("{base}/subjects/{}/versions", url_segment(subject));
                let mut request = client.post(&url);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let response = request
                    .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                    .json(&serde_json::json!({ "schema": schema }))
                    .send()
                    .await
                    .map_err(|e| RegisterError::Unavailable(format!("{url}: {e}")))?;
                let status = response.status();
                let body: serde_json::Value = response
                    .json()
                    .await
                    .map_err(|e| RegisterError::Unavailable(format!("{url}: {e}")))?;
                if status.as_u16() == 409 {
                    return Err(RegisterError::Incompatible(format!(
                        "schema is incompatible with the latest version of `{subject}`: {}",
                        body["message"]
                            .as_str()
                            .unwrap_or("refused by the registry")
                    )));
                }
                if !status.is_success() {
                    return Err(RegisterError::Unavailable(format!(
                        "{url}: {status}: {}",
                        body["message"].as_str().unwrap_or_default()
                    )));
                }
                body["id"]
                    .as_i64()
                    .ok_or_else(|| RegisterError::Unavailable(format!("{url}: no id in {body}")))?
            }
        };
        u32::try_from(id).map_err(|_| RegisterError::Unavailable(format!("schema id {id}")))
    }
}

fn url_segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
