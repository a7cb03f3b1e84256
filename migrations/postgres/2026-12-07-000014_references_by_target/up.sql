-- References are looked up by their target first, then by the parameter (the SQLite migration
-- of the same name says why): the entries of one resource's references to one target, under
-- several parameters, sit in one page of the index instead of several far apart.
DROP INDEX search_reference_lookup;
CREATE INDEX search_reference_lookup ON search_reference (resource_type, target_id, code, target_type) INCLUDE (resource_id);
