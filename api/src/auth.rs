//! Authorisation as a typed extractor: a handler that takes [`Admin`] only runs for a request
//! carrying a valid admin bearer token.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use ledgerbridge_store::{Role, TokenInfo};

use crate::AppState;
use crate::error::{ApiError, ErrorCode};

/// The caller, proven to hold an admin token.
#[derive(Debug, Clone)]
pub struct Admin(pub TokenInfo);

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "missing `Authorization: Bearer <token>` header",
            )
        })?;
    let text = header.to_str().unwrap_or_default();
    match text.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim().to_owned())
        }
        _ => Err(ApiError::new(
            ErrorCode::Unauthorized,
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let token = token?;
            let state = state
                .ok_or_else(|| ApiError::new(ErrorCode::Internal, "application state missing"))?;
            let store = state.store.clone();
            let info = web::block(move || store.verify_token(&token))
                .await
                .map_err(|e| ApiError::unavailable("store", &e))?
                .map_err(|e| ApiError::unavailable("store", &e))?
                .ok_or_else(|| {
                    ApiError::new(ErrorCode::Unauthorized, "unknown or revoked token")
                })?;
            match info.role {
                Role::Admin => Ok(Self(info)),
            }
        })
    }
}
