-- Versioned resource store: an append-only version table and a current-version table.
-- Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE resource_versions (
    seq BIGSERIAL PRIMARY KEY,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    version_id BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    method TEXT NOT NULL,
    deleted BOOLEAN NOT NULL,
    content BYTEA NOT NULL,
    UNIQUE (resource_type, resource_id, version_id)
);
CREATE INDEX resource_versions_by_type ON resource_versions (resource_type, seq);
CREATE INDEX resource_versions_by_time ON resource_versions (last_updated);

CREATE TABLE resources (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    version_id BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL,
    PRIMARY KEY (resource_type, resource_id)
);
CREATE INDEX resources_by_updated ON resources (resource_type, last_updated);

-- Search index tables, one per search parameter type; rows are written with each version.
CREATE TABLE search_string (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    value_normalized TEXT NOT NULL,
    value_exact TEXT NOT NULL
);
CREATE INDEX search_string_lookup ON search_string (resource_type, code, value_normalized);
CREATE INDEX search_string_owner ON search_string (resource_type, resource_id);

CREATE TABLE search_token (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    system TEXT,
    value TEXT,
    display TEXT
);
CREATE INDEX search_token_lookup ON search_token (resource_type, code, value, system);
CREATE INDEX search_token_owner ON search_token (resource_type, resource_id);

CREATE TABLE search_date (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL
);
CREATE INDEX search_date_lookup ON search_date (resource_type, code, start_ms, end_ms);
CREATE INDEX search_date_owner ON search_date (resource_type, resource_id);

CREATE TABLE search_number (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    low DOUBLE PRECISION NOT NULL,
    high DOUBLE PRECISION NOT NULL
);
CREATE INDEX search_number_lookup ON search_number (resource_type, code, low, high);
CREATE INDEX search_number_owner ON search_number (resource_type, resource_id);

CREATE TABLE search_quantity (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    system TEXT,
    unit_code TEXT,
    low DOUBLE PRECISION NOT NULL,
    high DOUBLE PRECISION NOT NULL
);
CREATE INDEX search_quantity_lookup ON search_quantity (resource_type, code, unit_code, low, high);
CREATE INDEX search_quantity_owner ON search_quantity (resource_type, resource_id);

CREATE TABLE search_reference (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    target_type TEXT,
    target_id TEXT,
    target_url TEXT
);
CREATE INDEX search_reference_lookup ON search_reference (resource_type, code, target_type, target_id);
CREATE INDEX search_reference_target ON search_reference (target_type, target_id);
CREATE INDEX search_reference_owner ON search_reference (resource_type, resource_id);

CREATE TABLE search_uri (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX search_uri_lookup ON search_uri (resource_type, code, value);
CREATE INDEX search_uri_owner ON search_uri (resource_type, resource_id);
