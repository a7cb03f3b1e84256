-- Whether a version brought its resource into existence (a create, or the first write after a
-- delete), so history can answer 201 for it.
ALTER TABLE resource_versions ADD COLUMN created BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE resource_versions SET created = TRUE WHERE version_id = 1 OR method = 'POST';
