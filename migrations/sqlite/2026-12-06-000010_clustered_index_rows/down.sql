-- Back to rowid tables with an owner index.

ALTER TABLE search_string RENAME TO search_string_old;
CREATE TABLE search_string (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    value_normalized TEXT NOT NULL,
    value_exact TEXT NOT NULL
);
INSERT INTO search_string (resource_type, resource_id, code, value_normalized, value_exact)
    SELECT resource_type, resource_id, code, value_normalized, value_exact FROM search_string_old ORDER BY resource_type, resource_id, code, ord;
DROP TABLE search_string_old;
CREATE INDEX search_string_lookup ON search_string (resource_type, code, value_normalized, resource_id);
CREATE INDEX search_string_owner ON search_string (resource_type, resource_id, code);

ALTER TABLE search_token RENAME TO search_token_old;
CREATE TABLE search_token (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    system TEXT,
    value TEXT,
    display TEXT
);
INSERT INTO search_token (resource_type, resource_id, code, system, value, display)
    SELECT resource_type, resource_id, code, system, value, display FROM search_token_old ORDER BY resource_type, resource_id, code, ord;
DROP TABLE search_token_old;
CREATE INDEX search_token_lookup ON search_token (resource_type, code, value, system, resource_id);
CREATE INDEX search_token_owner ON search_token (resource_type, resource_id, code);

ALTER TABLE search_date RENAME TO search_date_old;
CREATE TABLE search_date (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL
);
INSERT INTO search_date (resource_type, resource_id, code, start_ms, end_ms)
    SELECT resource_type, resource_id, code, start_ms, end_ms FROM search_date_old ORDER BY resource_type, resource_id, code, ord;
DROP TABLE search_date_old;
CREATE INDEX search_date_lookup ON search_date (resource_type, code, start_ms, end_ms, resource_id);
CREATE INDEX search_date_ends ON search_date (resource_type, code, end_ms, start_ms, resource_id);
CREATE INDEX search_date_owner ON search_date (resource_type, resource_id, code);

ALTER TABLE search_number RENAME TO search_number_old;
CREATE TABLE search_number (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    low DOUBLE NOT NULL,
    high DOUBLE NOT NULL
);
INSERT INTO search_number (resource_type, resource_id, code, low, high)
    SELECT resource_type, resource_id, code, low, high FROM search_number_old ORDER BY resource_type, resource_id, code, ord;
DROP TABLE search_number_old;
CREATE INDEX search_number_lookup ON search_number (resource_type, code, low, high, resource_id);
CREATE INDEX search_number_owner ON search_number (resource_type, resource_id, code);

ALTER TABLE search_quantity RENAME TO search_quantity_old;
CREATE TABLE search_quantity (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    system TEXT,
    unit_code TEXT,
    low DOUBLE NOT NULL,
    high DOUBLE NOT NULL
);
INSERT INTO search_quantity (resource_type, resource_id, code, system, unit_code, low, high)
    SELECT resource_type, resource_id, code, system, unit_code, low, high FROM search_quantity_old ORDER BY resource_type, resource_id, code, ord;
DROP TABLE search_quantity_old;
CREATE INDEX search_quantity_lookup ON search_quantity (resource_type, code, low, high, resource_id);
CREATE INDEX search_quantity_owner ON search_quantity (resource_type, resource_id, code);

ALTER TABLE search_reference RENAME TO search_reference_old;
CREATE TABLE search_reference (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    target_type TEXT,
    target_id TEXT,
    target_url TEXT
);
INSERT INTO search_reference (resource_type, resource_id, code, target_type, target_id, target_url)
    SELECT resource_type, resource_id, code, target_type, target_id, target_url FROM search_reference_old ORDER BY resource_type, resource_id, code, ord;
DROP TABLE search_reference_old;
CREATE INDEX search_reference_lookup ON search_reference (resource_type, code, target_id, target_type, resource_id);
CREATE INDEX search_reference_target ON search_reference (target_type, target_id);
CREATE INDEX search_reference_url ON search_reference (resource_type, code, target_url);
CREATE INDEX search_reference_owner ON search_reference (resource_type, resource_id, code);

ALTER TABLE search_uri RENAME TO search_uri_old;
CREATE TABLE search_uri (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    value TEXT NOT NULL
);
INSERT INTO search_uri (resource_type, resource_id, code, value)
    SELECT resource_type, resource_id, code, value FROM search_uri_old ORDER BY resource_type, resource_id, code, ord;
DROP TABLE search_uri_old;
CREATE INDEX search_uri_lookup ON search_uri (resource_type, code, value, resource_id);
CREATE INDEX search_uri_owner ON search_uri (resource_type, resource_id, code);

ALTER TABLE search_composite RENAME TO search_composite_old;
CREATE TABLE search_composite (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    s1_system TEXT,
    s1_value TEXT,
    s1_low DOUBLE,
    s1_high DOUBLE,
    s2_system TEXT,
    s2_value TEXT,
    s2_low DOUBLE,
    s2_high DOUBLE,
    s3_system TEXT,
    s3_value TEXT,
    s3_low DOUBLE,
    s3_high DOUBLE
);
INSERT INTO search_composite (resource_type, resource_id, code, s1_system, s1_value, s1_low, s1_high, s2_system, s2_value, s2_low, s2_high, s3_system, s3_value, s3_low, s3_high)
    SELECT resource_type, resource_id, code, s1_system, s1_value, s1_low, s1_high, s2_system, s2_value, s2_low, s2_high, s3_system, s3_value, s3_low, s3_high FROM search_composite_old ORDER BY resource_type, resource_id, code, ord;
DROP TABLE search_composite_old;
CREATE INDEX search_composite_lookup ON search_composite (resource_type, code, s1_value);
CREATE INDEX search_composite_owner ON search_composite (resource_type, resource_id, code);
