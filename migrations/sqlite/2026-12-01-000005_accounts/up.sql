-- Accounts: people who use the console (and, with SMART, sign in to apps), their one-time
-- tokens, console sessions, failed logins for throttling, and the durable mail outbox.
-- Times are milliseconds since the Unix epoch (UTC). Secrets (tokens, session ids) are stored
-- only as SHA-256 hashes.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    password_hash TEXT,
    fhir_reference TEXT,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE account_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    purpose TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    used_ms BIGINT
);
CREATE INDEX account_tokens_by_user ON account_tokens (user_id, purpose);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT REFERENCES users (id),
    csrf TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_ms);

CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    throttle_key TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX login_failures_by_key ON login_failures (throttle_key, at_ms);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT NOT NULL,
    link TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    last_error TEXT,
    created_ms BIGINT NOT NULL,
    sent_ms BIGINT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_ms);
