//! The one error envelope of the API: `{"error": {"code": "...", "message": "..."}}`, with one
//! table from code to HTTP status ([`ErrorCode::status`]). Codes are stable; clients match on them.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// Stable error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed (bad query parameter, bad JSON); the message names the field.
    BadRequest,
    /// No valid bearer token was given.
    Unauthorized,
    /// The token is valid but may not do this.
    Forbidden,
    /// No such resource or route.
    NotFound,
    /// The request conflicts with what exists (a version reused with other content, a change
    /// that would break consumers, a record already handled); the message says what.
    Conflict,
    /// The submitted document (mapping file, schema) has mistakes, listed in the message one per
    /// line with their places.
    Invalid,
    /// A component the request needs (store, bus) is unavailable; retry later.
    Unavailable,
    /// A fault on our side; the message says what, the log says more.
    Internal,
}

impl ErrorCode {
    /// The HTTP status for this code.
    #[must_use]
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation naming the field or resource.
    pub message: String,
}

/// An error returned by a handler.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Its code.
    pub code: ErrorCode,
    /// Its message.
    pub message: String,
}

impl ApiError {
    /// An error with a code and message.
    #[must_use]
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A component is down; logged with its cause.
    #[must_use]
    pub fn unavailable(what: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(component = what, error = %cause, "request failed: component unavailable");
        Self::new(
            ErrorCode::Unavailable,
            format!("{what} unavailable: {cause}"),
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if self.code == ErrorCode::Unauthorized {
            response.insert_header(("WWW-Authenticate", "Bearer realm=\"ledgerbridge\""));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
            },
        })
    }
}

/// Runs a blocking store call off the async workers; a store failure is `unavailable`.
///
/// # Errors
/// `internal` if the blocking task died, `unavailable` if the store failed.
pub(crate) async fn store_call<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ledgerbridge_store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    actix_web::web::block(f)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
        .map_err(|e| ApiError::unavailable("the store", &e))
}

/// A page size between 1 and 1000.
///
/// # Errors
/// `bad_request` naming `limit`.
pub(crate) fn check_limit(limit: i64) -> Result<(), ApiError> {
    if (1..=1000).contains(&limit) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::BadRequest,
            "limit: between 1 and 1000",
        ))
    }
}
