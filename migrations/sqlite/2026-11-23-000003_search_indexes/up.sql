-- Search: composite parameters get their own table; index owners are found with the code (for
-- sort keys); references are also looked up by URL.
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
CREATE INDEX search_composite_lookup ON search_composite (resource_type, code, s1_value);
CREATE INDEX search_composite_owner ON search_composite (resource_type, resource_id, code);

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
