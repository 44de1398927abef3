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

diesel::table! {
    ledger_channels (name) {
        name -> Text,
        origin -> Text,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    ledger_entries (channel, idx) {
        channel -> Text,
        idx -> BigInt,
        event_id -> Text,
        event_key -> BigInt,
        leaf_data -> Binary,
        subject -> Text,
        subject_key -> BigInt,
        nonce -> Nullable<Binary>,
        ciphertext -> Nullable<Binary>,
    }
}

diesel::table! {
    ledger_tiles (channel, level, idx) {
        channel -> Text,
        level -> Integer,
        idx -> BigInt,
        hashes -> Binary,
    }
}

diesel::table! {
    ledger_blocks (channel, height) {
        channel -> Text,
        height -> BigInt,
        prev_hash -> Binary,
        first_index -> BigInt,
        tree_size -> BigInt,
        root -> Binary,
        created_at_ms -> BigInt,
        block_hash -> Binary,
    }
}

diesel::table! {
    ledger_checkpoints (channel, tree_size) {
        channel -> Text,
        tree_size -> BigInt,
        root -> Binary,
        note -> Text,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    ledger_keys (channel, vkey) {
        channel -> Text,
        vkey -> Text,
        role -> Text,
        active -> Bool,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    ledger_subject_keys (subject) {
        subject -> Text,
        key_bytes -> Binary,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    ledger_erasures (subject) {
        subject -> Text,
        erased_at_ms -> BigInt,
        payloads_removed -> BigInt,
        reason -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(ledger_entries, ledger_subject_keys);

diesel::table! {
    registry_schemas (id) {
        id -> BigInt,
        fingerprint -> Text,
        schema_text -> Text,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    registry_versions (subject, version) {
        subject -> Text,
        version -> Integer,
        schema_id -> BigInt,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    registry_config (subject) {
        subject -> Text,
        compatibility -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(registry_schemas, registry_versions);

diesel::table! {
    connector_offsets (connector, stream) {
        connector -> Text,
        stream -> Text,
        offset_json -> Text,
        updated_at_ms -> BigInt,
    }
}

diesel::table! {
    quarantine (id) {
        id -> BigInt,
        stage -> Text,
        source -> Text,
        stream -> Text,
        position -> Text,
        reason -> Text,
        payload -> Text,
        status -> Text,
        created_at_ms -> BigInt,
        errors -> Text,
        mapping -> Text,
    }
}

diesel::table! {
    quarantine_actions (id) {
        id -> BigInt,
        quarantine_id -> BigInt,
        action -> Text,
        actor -> Text,
        detail -> Text,
        at_ms -> BigInt,
    }
}

diesel::table! {
    mapping_versions (name, version) {
        name -> Text,
        version -> Integer,
        spec -> Text,
        deployed_by -> Text,
        deployed_at_ms -> BigInt,
        active -> Bool,
    }
}

diesel::table! {
    canonical_schemas (event_type, version) {
        event_type -> Text,
        version -> Integer,
        schema_json -> Text,
        deployed_by -> Text,
        deployed_at_ms -> BigInt,
    }
}

diesel::table! {
    alerts (id) {
        id -> BigInt,
        dedup_key -> Text,
        rule_id -> Text,
        rule_version -> Integer,
        severity -> Text,
        alert_key -> Text,
        explanation -> Text,
        event_ids -> Text,
        event_at_ms -> Nullable<BigInt>,
        detected_at_ms -> BigInt,
        status -> Text,
        assignee -> Nullable<Text>,
        suppressed_by -> Nullable<BigInt>,
        evidence -> Nullable<Text>,
        ledger_index -> Nullable<BigInt>,
    }
}

diesel::table! {
    alert_actions (id) {
        id -> BigInt,
        alert_id -> BigInt,
        status -> Text,
        assignee -> Nullable<Text>,
        comment -> Text,
        actor -> Text,
        at_ms -> BigInt,
        kind -> Text,
        ledger_index -> Nullable<BigInt>,
    }
}

diesel::table! {
    alert_suppressions (id) {
        id -> BigInt,
        rule_id -> Nullable<Text>,
        alert_key -> Nullable<Text>,
        reason -> Text,
        created_by -> Text,
        created_at_ms -> BigInt,
        expires_at_ms -> BigInt,
        lifted_by -> Nullable<Text>,
        lifted_at_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    notifications (id) {
        id -> BigInt,
        alert_id -> BigInt,
        channel -> Text,
        recipient -> Text,
        mode -> Text,
        status -> Text,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        created_at_ms -> BigInt,
        sent_at_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    audit_runs (id) {
        id -> BigInt,
        job -> Text,
        trigger -> Text,
        requested_by -> Nullable<Text>,
        status -> Text,
        requested_at_ms -> BigInt,
        started_at_ms -> Nullable<BigInt>,
        finished_at_ms -> Nullable<BigInt>,
        summary -> Text,
        details -> Text,
    }
}

diesel::table! {
    rule_versions (id) {
        id -> BigInt,
        rule_id -> Text,
        version -> Integer,
        body -> Text,
        enabled -> Bool,
        comment -> Text,
        created_by -> Text,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    checkpoint_observations (id) {
        id -> BigInt,
        channel -> Text,
        source -> Text,
        tree_size -> BigInt,
        root_hex -> Text,
        note -> Text,
        observed_at_ms -> BigInt,
    }
}
