-- SMART on FHIR: the server's signing keys, registered client apps, and the single-use or
-- short-lived things the authorization server hands out. Codes, refresh tokens and launch
-- values are stored only as SHA-256 hashes. Times are milliseconds since the Unix epoch.

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_der TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    retired_ms BIGINT
);

CREATE TABLE oauth_clients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    secret_hash TEXT,
    jwks TEXT,
    jwks_url TEXT,
    redirect_uris TEXT NOT NULL,
    scope TEXT NOT NULL,
    status TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE oauth_codes (
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    grant_json TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    used_ms BIGINT
);

CREATE TABLE oauth_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    grant_json TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    used_ms BIGINT
);
CREATE INDEX oauth_refresh_tokens_by_grant ON oauth_refresh_tokens (grant_id);

CREATE TABLE oauth_launches (
    launch_hash TEXT PRIMARY KEY,
    context_json TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);

CREATE TABLE oauth_assertions (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);

CREATE TABLE oauth_revocations (
    jti TEXT PRIMARY KEY,
    revoked_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX oauth_revocations_by_time ON oauth_revocations (revoked_ms);
