-- Covering lookups: each lookup index also holds the owner's resource_id, so a search reads the
-- ids of its matches from the index alone instead of visiting the table row of every match (on
-- a million resources, `Patient?name=` spent half its time on those visits).
DROP INDEX search_string_lookup;
CREATE INDEX search_string_lookup ON search_string (resource_type, code, value_normalized, resource_id);
DROP INDEX search_token_lookup;
CREATE INDEX search_token_lookup ON search_token (resource_type, code, value, system, resource_id);
DROP INDEX search_date_lookup;
CREATE INDEX search_date_lookup ON search_date (resource_type, code, start_ms, end_ms, resource_id);
DROP INDEX search_date_ends;
CREATE INDEX search_date_ends ON search_date (resource_type, code, end_ms, start_ms, resource_id);
DROP INDEX search_number_lookup;
CREATE INDEX search_number_lookup ON search_number (resource_type, code, low, high, resource_id);
DROP INDEX search_quantity_lookup;
CREATE INDEX search_quantity_lookup ON search_quantity (resource_type, code, low, high, resource_id);
DROP INDEX search_reference_lookup;
CREATE INDEX search_reference_lookup ON search_reference (resource_type, code, target_id, target_type, resource_id);
DROP INDEX search_uri_lookup;
CREATE INDEX search_uri_lookup ON search_uri (resource_type, code, value, resource_id);
