-- Lookups measured on a million resources: a reference is found by id whether or not its type
-- is given; a quantity by value whether or not its unit is; a date range also by its end (for
-- gt, ge and eb).
DROP INDEX search_reference_lookup;
CREATE INDEX search_reference_lookup ON search_reference (resource_type, code, target_id, target_type);
DROP INDEX search_quantity_lookup;
CREATE INDEX search_quantity_lookup ON search_quantity (resource_type, code, low);
CREATE INDEX search_date_ends ON search_date (resource_type, code, end_ms);
