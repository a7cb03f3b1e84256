-- Index rows clustered by their owner. Each index table was a rowid table with an owner index
-- `(resource_type, resource_id, code)` beside its lookup index, so every row took three B-tree
-- inserts (the table, the lookup, the owner) and every delete three more. Now each table is
-- WITHOUT ROWID with the primary key `(resource_type, resource_id, code, ord)`: the table is
-- the owner index, a row takes two inserts, and a probe of one resource's rows (an `EXISTS`
-- test, a sort key, an `_include`) reads the values from the row it finds instead of visiting
-- the table again. `ord` only tells a resource's rows apart: the writer numbers them from 0 in
-- each write (every row of a resource is deleted before it is written again), and the rows
-- copied here keep their old rowid. The lookup indexes carry the primary key, so they still
-- cover `resource_id`. References by URL are rare: their index holds only those rows.

ALTER TABLE search_string RENAME TO search_string_old;
CREATE TABLE search_string (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    ord INTEGER NOT NULL,
    value_normalized TEXT NOT NULL,
    value_exact TEXT NOT NULL,
    PRIMARY KEY (resource_type, resource_id, code, ord)
) WITHOUT ROWID;
INSERT INTO search_string (resource_type, resource_id, code, ord, value_normalized, value_exact)
    SELECT resource_type, resource_id, code, rowid, value_normalized, value_exact FROM search_string_old ORDER BY resource_type, resource_id, code, rowid;
DROP TABLE search_string_old;
CREATE INDEX search_string_lookup ON search_string (resource_type, code, value_normalized, resource_id);

ALTER TABLE search_token RENAME TO search_token_old;
CREATE TABLE search_token (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    ord INTEGER NOT NULL,
    system TEXT,
    value TEXT,
    display TEXT,
    PRIMARY KEY (resource_type, resource_id, code, ord)
) WITHOUT ROWID;
INSERT INTO search_token (resource_type, resource_id, code, ord, system, value, display)
    SELECT resource_type, resource_id, code, rowid, system, value, display FROM search_token_old ORDER BY resource_type, resource_id, code, rowid;
DROP TABLE search_token_old;
CREATE INDEX search_token_lookup ON search_token (resource_type, code, value, system, resource_id);

ALTER TABLE search_date RENAME TO search_date_old;
CREATE TABLE search_date (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    ord INTEGER NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL,
    PRIMARY KEY (resource_type, resource_id, code, ord)
) WITHOUT ROWID;
INSERT INTO search_date (resource_type, resource_id, code, ord, start_ms, end_ms)
    SELECT resource_type, resource_id, code, rowid, start_ms, end_ms FROM search_date_old ORDER BY resource_type, resource_id, code, rowid;
DROP TABLE search_date_old;
CREATE INDEX search_date_lookup ON search_date (resource_type, code, start_ms, end_ms, resource_id);
CREATE INDEX search_date_ends ON search_date (resource_type, code, end_ms, start_ms, resource_id);

ALTER TABLE search_number RENAME TO search_number_old;
CREATE TABLE search_number (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    ord INTEGER NOT NULL,
    low DOUBLE NOT NULL,
    high DOUBLE NOT NULL,
    PRIMARY KEY (resource_type, resource_id, code, ord)
) WITHOUT ROWID;
INSERT INTO search_number (resource_type, resource_id, code, ord, low, high)
    SELECT resource_type, resource_id, code, rowid, low, high FROM search_number_old ORDER BY resource_type, resource_id, code, rowid;
DROP TABLE search_number_old;
CREATE INDEX search_number_lookup ON search_number (resource_type, code, low, high, resource_id);

ALTER TABLE search_quantity RENAME TO search_quantity_old;
CREATE TABLE search_quantity (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    ord INTEGER NOT NULL,
    system TEXT,
    unit_code TEXT,
    low DOUBLE NOT NULL,
    high DOUBLE NOT NULL,
    PRIMARY KEY (resource_type, resource_id, code, ord)
) WITHOUT ROWID;
INSERT INTO search_quantity (resource_type, resource_id, code, ord, system, unit_code, low, high)
    SELECT resource_type, resource_id, code, rowid, system, unit_code, low, high FROM search_quantity_old ORDER BY resource_type, resource_id, code, rowid;
DROP TABLE search_quantity_old;
CREATE INDEX search_quantity_lookup ON search_quantity (resource_type, code, low, high, resource_id);

ALTER TABLE search_reference RENAME TO search_reference_old;
CREATE TABLE search_reference (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    ord INTEGER NOT NULL,
    target_type TEXT,
    target_id TEXT,
    target_url TEXT,
    PRIMARY KEY (resource_type, resource_id, code, ord)
) WITHOUT ROWID;
INSERT INTO search_reference (resource_type, resource_id, code, ord, target_type, target_id, target_url)
    SELECT resource_type, resource_id, code, rowid, target_type, target_id, target_url FROM search_reference_old ORDER BY resource_type, resource_id, code, rowid;
DROP TABLE search_reference_old;
CREATE INDEX search_reference_lookup ON search_reference (resource_type, code, target_id, target_type, resource_id);
CREATE INDEX search_reference_target ON search_reference (target_type, target_id);
CREATE INDEX search_reference_url ON search_reference (resource_type, code, target_url) WHERE target_url IS NOT NULL;

ALTER TABLE search_uri RENAME TO search_uri_old;
CREATE TABLE search_uri (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    ord INTEGER NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (resource_type, resource_id, code, ord)
) WITHOUT ROWID;
INSERT INTO search_uri (resource_type, resource_id, code, ord, value)
    SELECT resource_type, resource_id, code, rowid, value FROM search_uri_old ORDER BY resource_type, resource_id, code, rowid;
DROP TABLE search_uri_old;
CREATE INDEX search_uri_lookup ON search_uri (resource_type, code, value, resource_id);

ALTER TABLE search_composite RENAME TO search_composite_old;
CREATE TABLE search_composite (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    code TEXT NOT NULL,
    ord INTEGER NOT NULL,
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
    s3_high DOUBLE,
    PRIMARY KEY (resource_type, resource_id, code, ord)
) WITHOUT ROWID;
INSERT INTO search_composite (resource_type, resource_id, code, ord, s1_system, s1_value, s1_low, s1_high, s2_system, s2_value, s2_low, s2_high, s3_system, s3_value, s3_low, s3_high)
    SELECT resource_type, resource_id, code, rowid, s1_system, s1_value, s1_low, s1_high, s2_system, s2_value, s2_low, s2_high, s3_system, s3_value, s3_low, s3_high FROM search_composite_old ORDER BY resource_type, resource_id, code, rowid;
DROP TABLE search_composite_old;
CREATE INDEX search_composite_lookup ON search_composite (resource_type, code, s1_value);
