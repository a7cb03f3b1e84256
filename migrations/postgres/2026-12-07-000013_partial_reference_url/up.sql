-- The index of references by absolute URL holds only the references that have one (a
-- reference to another server), as it already does on SQLite. Local references, nearly all of
-- them, have no URL, and each still cost a write an entry in this index: 4.27 million entries
-- for 9 URLs on the benchmark's million resources. A search by URL (`target_url = $1`) implies
-- `target_url IS NOT NULL`, so PostgreSQL still reads it through this index.
DROP INDEX search_reference_url;
CREATE INDEX search_reference_url ON search_reference (resource_type, code, target_url) WHERE target_url IS NOT NULL;
