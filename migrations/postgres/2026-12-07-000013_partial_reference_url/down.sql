DROP INDEX search_reference_url;
CREATE INDEX search_reference_url ON search_reference (resource_type, code, target_url);
