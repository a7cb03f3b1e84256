-- Search: composite parameters get their own table; index owners are found with the code (for
-- sort keys); references are also looked up by URL. Text that search compares or sorts uses
-- the "C" collation (code-point order), as SQLite does, so that prefix ranges can use the
-- indexes and both backends sort alike.
CREATE TABLE search_composite (
    resource_type TEXT COLLATE "C" NOT NULL,
    resource_id TEXT COLLATE "C" NOT NULL,
    code TEXT COLLATE "C" NOT NULL,
    s1_system TEXT COLLATE "C",
    s1_value TEXT COLLATE "C",
    s1_low DOUBLE PRECISION,
    s1_high DOUBLE PRECISION,
    s2_system TEXT COLLATE "C",
    s2_value TEXT COLLATE "C",
    s2_low DOUBLE PRECISION,
    s2_high DOUBLE PRECISION,
    s3_system TEXT COLLATE "C",
    s3_value TEXT COLLATE "C",
    s3_low DOUBLE PRECISION,
    s3_high DOUBLE PRECISION
);
CREATE INDEX search_composite_lookup ON search_composite (resource_type, code, s1_value);
CREATE INDEX search_composite_owner ON search_composite (resource_type, resource_id, code);

ALTER TABLE resource_versions ALTER COLUMN resource_type TYPE TEXT COLLATE "C";
ALTER TABLE resource_versions ALTER COLUMN resource_id TYPE TEXT COLLATE "C";
ALTER TABLE resources ALTER COLUMN resource_type TYPE TEXT COLLATE "C";
ALTER TABLE resources ALTER COLUMN resource_id TYPE TEXT COLLATE "C";

ALTER TABLE search_string ALTER COLUMN resource_type TYPE TEXT COLLATE "C";
ALTER TABLE search_string ALTER COLUMN resource_id TYPE TEXT COLLATE "C";
ALTER TABLE search_string ALTER COLUMN code TYPE TEXT COLLATE "C";
ALTER TABLE search_string ALTER COLUMN value_normalized TYPE TEXT COLLATE "C";
ALTER TABLE search_string ALTER COLUMN value_exact TYPE TEXT COLLATE "C";
ALTER TABLE search_token ALTER COLUMN resource_type TYPE TEXT COLLATE "C";
ALTER TABLE search_token ALTER COLUMN resource_id TYPE TEXT COLLATE "C";
ALTER TABLE search_token ALTER COLUMN code TYPE TEXT COLLATE "C";
ALTER TABLE search_token ALTER COLUMN system TYPE TEXT COLLATE "C";
ALTER TABLE search_token ALTER COLUMN value TYPE TEXT COLLATE "C";
ALTER TABLE search_token ALTER COLUMN display TYPE TEXT COLLATE "C";
ALTER TABLE search_date ALTER COLUMN resource_type TYPE TEXT COLLATE "C";
ALTER TABLE search_date ALTER COLUMN resource_id TYPE TEXT COLLATE "C";
ALTER TABLE search_date ALTER COLUMN code TYPE TEXT COLLATE "C";
ALTER TABLE search_number ALTER COLUMN resource_type TYPE TEXT COLLATE "C";
ALTER TABLE search_number ALTER COLUMN resource_id TYPE TEXT COLLATE "C";
ALTER TABLE search_number ALTER COLUMN code TYPE TEXT COLLATE "C";
ALTER TABLE search_quantity ALTER COLUMN resource_type TYPE TEXT COLLATE "C";
ALTER TABLE search_quantity ALTER COLUMN resource_id TYPE TEXT COLLATE "C";
ALTER TABLE search_quantity ALTER COLUMN code TYPE TEXT COLLATE "C";
ALTER TABLE search_quantity ALTER COLUMN system TYPE TEXT COLLATE "C";
ALTER TABLE search_quantity ALTER COLUMN unit_code TYPE TEXT COLLATE "C";
ALTER TABLE search_reference ALTER COLUMN resource_type TYPE TEXT COLLATE "C";
ALTER TABLE search_reference ALTER COLUMN resource_id TYPE TEXT COLLATE "C";
ALTER TABLE search_reference ALTER COLUMN code TYPE TEXT COLLATE "C";
ALTER TABLE search_reference ALTER COLUMN target_type TYPE TEXT COLLATE "C";
ALTER TABLE search_reference ALTER COLUMN target_id TYPE TEXT COLLATE "C";
ALTER TABLE search_reference ALTER COLUMN target_url TYPE TEXT COLLATE "C";
ALTER TABLE search_uri ALTER COLUMN resource_type TYPE TEXT COLLATE "C";
ALTER TABLE search_uri ALTER COLUMN resource_id TYPE TEXT COLLATE "C";
ALTER TABLE search_uri ALTER COLUMN code TYPE TEXT COLLATE "C";
ALTER TABLE search_uri ALTER COLUMN value TYPE TEXT COLLATE "C";

DROP INDEX search_string_owner;
CREATE INDEX search_string_owner ON search_string (resource_type, resource_id, code);
DROP INDEX search_token_owner;
CREATE INDEX search_token_owner ON search_token (resource_type, resource_id, code);
DROP INDEX search_date_owner;
CREATE INDEX search_date_owner ON search_date (resource_type, resource_id, code);
DROP INDEX search_number_owner;
CREATE INDEX search_number_owner ON search_number (resource_type, resource_id, code);
DROP INDEX search_quantity_owner;
CREATE INDEX search_quantity_owner ON search_quantity (resource_type, resource_id, code);
DROP INDEX search_reference_owner;
CREATE INDEX search_reference_owner ON search_reference (resource_type, resource_id, code);
DROP INDEX search_uri_owner;
CREATE INDEX search_uri_owner ON search_uri (resource_type, resource_id, code);
CREATE INDEX search_reference_url ON search_reference (resource_type, code, target_url);
