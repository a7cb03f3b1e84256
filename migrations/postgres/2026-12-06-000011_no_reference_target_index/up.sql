-- References are found by (resource_type, code, target_id): every query names the parameter,
-- and a _revinclude of * probes each reference parameter in turn. An index by target alone
-- only cost every write a random insert per reference.
DROP INDEX search_reference_target;
