DROP INDEX search_reference_lookup;
CREATE INDEX search_reference_lookup ON search_reference (resource_type, code, target_type, target_id);
DROP INDEX search_quantity_lookup;
CREATE INDEX search_quantity_lookup ON search_quantity (resource_type, code, unit_code, low, high);
DROP INDEX search_date_ends;
