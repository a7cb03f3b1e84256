DROP INDEX search_composite_lookup;
CREATE INDEX search_composite_lookup ON search_composite (resource_type, code, s1_value);
