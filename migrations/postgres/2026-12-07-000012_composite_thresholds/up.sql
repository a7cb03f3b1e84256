-- A composite's lookup index also orders its rows by the second component's upper bound, and
-- covers the first component's system, the second's lower bound and the owner:
-- `code-value-quantity=http://loinc.org|8480-6$gt120` (which a search by `code` and
-- `value-quantity` is now rewritten to) finds the Observations of a code above a threshold as
-- one range of the index, instead of every Observation of the code. It replaces the index on
-- `(resource_type, code, s1_value)`, a prefix of the new one, so a write updates as many
-- indexes as before.
DROP INDEX search_composite_lookup;
CREATE INDEX search_composite_lookup ON search_composite (resource_type, code, s1_value, s2_high, s1_system, s2_low, resource_id);
