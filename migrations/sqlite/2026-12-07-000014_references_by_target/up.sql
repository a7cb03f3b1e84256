-- References are looked up by their target first, then by the parameter. Every lookup names
-- both (a search by reference, a chain, `_revinclude`, `_has`), so it reads the same entries
-- either way. But a resource usually points at one target under several parameters (an
-- Observation's `subject` and `patient`, an AuditEvent's `entity` and `patient`), and targets
-- are scattered: keyed by parameter first, those entries fell in as many far-apart pages of
-- the index, each written whole at the commit and again at the checkpoint. Keyed by target
-- first they sit side by side, in one page. For an AuditEvent, written for every read of a
-- patient's data, that is one scattered page instead of two.
DROP INDEX search_reference_lookup;
CREATE INDEX search_reference_lookup ON search_reference (resource_type, target_id, code, target_type, resource_id);
