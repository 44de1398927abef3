//! Table definitions, written once for both backends (matching both migration sets).

diesel::table! {
    node_meta (key) {
        key -> Text,
        value -> Text,
        updated_at_ms -> BigInt,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        name -> Text,
        role -> Text,
        token_sha256 -> Text,
        created_at_ms -> BigInt,
        revoked_at_ms -> Nullable<BigInt>,
    }
}
