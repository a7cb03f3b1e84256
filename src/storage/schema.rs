//! Diesel table definitions, shared by SQLite and PostgreSQL (portable column types only).
// @generated-style: kept in step with migrations/{sqlite,postgres} by hand.

diesel::table! {
    /// Every version of every resource, append-only.
    resource_versions (seq) {
        /// Global write order (history paging cursor).
        seq -> BigInt,
        /// The resource type.
        resource_type -> Text,
        /// The logical id.
        resource_id -> Text,
        /// 1, 2, 3… per resource.
        version_id -> BigInt,
        /// When the version was written, ms since the epoch.
        last_updated -> BigInt,
        /// POST, PUT or DELETE.
        method -> Text,
        /// True for a delete tombstone.
        deleted -> Bool,
        /// The resource as served (canonical JSON); empty for a tombstone.
        content -> Binary,
        /// True when this version brought the resource into existence.
        created -> Bool,
    }
}

diesel::table! {
    /// The current version of each resource.
    resources (resource_type, resource_id) {
        /// The resource type.
        resource_type -> Text,
        /// The logical id.
        resource_id -> Text,
        /// The current version.
        version_id -> BigInt,
        /// When the current version was written.
        last_updated -> BigInt,
        /// True when the current version is a tombstone.
        deleted -> Bool,
    }
}

diesel::allow_tables_to_appear_in_same_query!(resource_versions, resources);

// The search index tables have no primary key on PostgreSQL. On SQLite they are `WITHOUT
// ROWID` tables keyed by `(resource_type, resource_id, code, ord)`, where `ord` (SQLite only,
// written as SQL text by `index.rs`) tells a resource's rows apart. The keys named here only
// satisfy diesel's `table!`, which is used to delete a resource's rows.

diesel::table! {
    /// String parameter values, normalized (lower case, no accents) and exact.
    search_string (resource_type, resource_id, code, value_normalized) {
        resource_type -> Text,
        resource_id -> Text,
        code -> Text,
        value_normalized -> Text,
        value_exact -> Text,
    }
}

diesel::table! {
    /// Token parameter values.
    search_token (resource_type, resource_id, code) {
        resource_type -> Text,
        resource_id -> Text,
        code -> Text,
        system -> Nullable<Text>,
        value -> Nullable<Text>,
        display -> Nullable<Text>,
    }
}

diesel::table! {
    /// Date parameter values as half-open ranges of epoch milliseconds.
    search_date (resource_type, resource_id, code, start_ms) {
        resource_type -> Text,
        resource_id -> Text,
        code -> Text,
        start_ms -> BigInt,
        end_ms -> BigInt,
    }
}

diesel::table! {
    /// Number parameter values.
    search_number (resource_type, resource_id, code, low) {
        resource_type -> Text,
        resource_id -> Text,
        code -> Text,
        low -> Double,
        high -> Double,
    }
}

diesel::table! {
    /// Quantity parameter values.
    search_quantity (resource_type, resource_id, code, low) {
        resource_type -> Text,
        resource_id -> Text,
        code -> Text,
        system -> Nullable<Text>,
        unit_code -> Nullable<Text>,
        low -> Double,
        high -> Double,
    }
}

diesel::table! {
    /// Reference parameter values: a local target or a URL.
    search_reference (resource_type, resource_id, code) {
        resource_type -> Text,
        resource_id -> Text,
        code -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        target_url -> Nullable<Text>,
    }
}

diesel::table! {
    /// Uri parameter values.
    search_uri (resource_type, resource_id, code, value) {
        resource_type -> Text,
        resource_id -> Text,
        code -> Text,
        value -> Text,
    }
}

diesel::table! {
    /// Composite parameter values, one slot per component.
    search_composite (resource_type, resource_id, code) {
        resource_type -> Text,
        resource_id -> Text,
        code -> Text,
        s1_system -> Nullable<Text>,
        s1_value -> Nullable<Text>,
        s1_low -> Nullable<Double>,
        s1_high -> Nullable<Double>,
        s2_system -> Nullable<Text>,
        s2_value -> Nullable<Text>,
        s2_low -> Nullable<Double>,
        s2_high -> Nullable<Double>,
        s3_system -> Nullable<Text>,
        s3_value -> Nullable<Text>,
        s3_low -> Nullable<Double>,
        s3_high -> Nullable<Double>,
    }
}

diesel::table! {
    /// People who use the console and sign in to SMART apps.
    users (id) {
        id -> Text,
        email -> Text,
        /// The email in lower case: unique.
        email_key -> Text,
        display_name -> Text,
        role -> Text,
        status -> Text,
        /// argon2id PHC string; none until an invited person chooses a password.
        password_hash -> Nullable<Text>,
        /// `Practitioner/…` or `Patient/…`.
        fhir_reference -> Nullable<Text>,
        created_ms -> BigInt,
        updated_ms -> BigInt,
    }
}

diesel::table! {
    /// Single-use email verification, invitation and password-reset tokens (hashed).
    account_tokens (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        purpose -> Text,
        created_ms -> BigInt,
        expires_ms -> BigInt,
        used_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Console sessions (the id hashed); anonymous until login.
    sessions (id_hash) {
        id_hash -> Text,
        user_id -> Nullable<Text>,
        csrf -> Text,
        created_ms -> BigInt,
        last_seen_ms -> BigInt,
        expires_ms -> BigInt,
    }
}

diesel::table! {
    /// Failed logins, by account and by address, for throttling.
    login_failures (id) {
        id -> BigInt,
        throttle_key -> Text,
        at_ms -> BigInt,
    }
}

diesel::table! {
    /// Mail waiting to be sent, sent, or given up on.
    outbox (id) {
        id -> BigInt,
        recipient -> Text,
        subject -> Text,
        text_body -> Text,
        html_body -> Text,
        link -> Nullable<Text>,
        status -> Text,
        attempts -> Integer,
        next_attempt_ms -> BigInt,
        last_error -> Nullable<Text>,
        created_ms -> BigInt,
        sent_ms -> Nullable<BigInt>,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(sessions, users);

diesel::table! {
    /// The server's JWT signing keys (PKCS#8, base64) and their public JWKs.
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        private_der -> Text,
        public_jwk -> Text,
        created_ms -> BigInt,
        retired_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Registered SMART client apps.
    oauth_clients (id) {
        id -> Text,
        name -> Text,
        kind -> Text,
        secret_hash -> Nullable<Text>,
        jwks -> Nullable<Text>,
        jwks_url -> Nullable<Text>,
        redirect_uris -> Text,
        scope -> Text,
        status -> Text,
        created_ms -> BigInt,
        launch_url -> Nullable<Text>,
    }
}

diesel::table! {
    /// Authorization codes (hashed), single use.
    oauth_codes (code_hash) {
        code_hash -> Text,
        client_id -> Text,
        redirect_uri -> Text,
        code_challenge -> Text,
        grant_json -> Text,
        created_ms -> BigInt,
        expires_ms -> BigInt,
        used_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Refresh tokens (hashed), rotated on use; one grant is a chain of them.
    oauth_refresh_tokens (token_hash) {
        token_hash -> Text,
        grant_id -> Text,
        client_id -> Text,
        grant_json -> Text,
        created_ms -> BigInt,
        expires_ms -> BigInt,
        used_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// EHR launch values (hashed) and the context they bind.
    oauth_launches (launch_hash) {
        launch_hash -> Text,
        context_json -> Text,
        created_ms -> BigInt,
        expires_ms -> BigInt,
    }
}

diesel::table! {
    /// The `jti` of every client assertion seen, until it expires (replay protection).
    oauth_assertions (client_id, jti) {
        client_id -> Text,
        jti -> Text,
        expires_ms -> BigInt,
    }
}

diesel::table! {
    /// Revoked access tokens, by `jti`, until they would have expired.
    oauth_revocations (jti) {
        jti -> Text,
        revoked_ms -> BigInt,
        expires_ms -> BigInt,
    }
}
