//! API bearer tokens. A token is 32 random bytes shown once as `lbt_<base64url>`; the store keeps
//! only its SHA-256, so a copy of the database does not give access.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::prelude::*;
use ring::rand::{SecureRandom, SystemRandom};

use crate::schema::api_tokens::dsl;
use crate::{Result, Store, StoreError, now_ms, query_err};

const PREFIX: &str = "lbt_";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, including configuration and token management.
    Admin,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        (s == "admin").then_some(Self::Admin)
    }
}

/// A token known to the store (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Row id.
    pub id: i64,
    /// Human name given at creation, e.g. `admin (created by demo)`.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Creation time, milliseconds since the epoch.
    pub created_at_ms: i64,
}

/// SHA-256 of a token, hex-encoded, as stored.
#[must_use]
pub fn hash_token(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Creates a token and returns it in clear, together with its record. The clear token is not
    /// kept anywhere by the store.
    ///
    /// # Errors
    /// The random source or the insert fails.
    pub fn create_token(&self, name: &str, role: Role) -> Result<(String, TokenInfo)> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| StoreError::Pool("the system random source failed".into()))?;
        let token = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        let created_at_ms = now_ms();
        let mut conn = self.conn()?;
        let id = diesel::insert_into(dsl::api_tokens)
            .values((
                dsl::name.eq(name),
                dsl::role.eq(role.as_str()),
                dsl::token_sha256.eq(hash_token(&token)),
                dsl::created_at_ms.eq(created_at_ms),
            ))
            .returning(dsl::id)
            .get_result::<i64>(&mut *conn)
            .map_err(query_err("creating a token"))?;
        let info = TokenInfo {
            id,
            name: name.to_owned(),
            role,
            created_at_ms,
        };
        Ok((token, info))
    }

    /// The token's record when `token` is a valid, unrevoked token.
    ///
    /// # Errors
    /// The query fails (an unknown token is `Ok(None)`).
    pub fn verify_token(&self, token: &str) -> Result<Option<TokenInfo>> {
        if !token.starts_with(PREFIX) {
            return Ok(None);
        }
        let mut conn = self.conn()?;
        let row = dsl::api_tokens
            .filter(dsl::token_sha256.eq(hash_token(token)))
            .filter(dsl::revoked_at_ms.is_null())
            .select((dsl::id, dsl::name, dsl::role, dsl::created_at_ms))
            .first::<(i64, String, String, i64)>(&mut *conn)
            .optional()
            .map_err(query_err("checking a token"))?;
        Ok(row.and_then(|(id, name, role, created_at_ms)| {
            Role::parse(&role).map(|role| TokenInfo {
                id,
                name,
                role,
                created_at_ms,
            })
        }))
    }

    /// Revokes a token by id; `false` when there was no such active token.
    ///
    /// # Errors
    /// The update fails.
    pub fn revoke_token(&self, id: i64) -> Result<bool> {
        let mut conn = self.conn()?;
        let n = diesel::update(
            dsl::api_tokens
                .filter(dsl::id.eq(id))
                .filter(dsl::revoked_at_ms.is_null()),
        )
        .set(dsl::revoked_at_ms.eq(now_ms()))
        .execute(&mut *conn)
        .map_err(query_err("revoking a token"))?;
        Ok(n > 0)
    }
}
