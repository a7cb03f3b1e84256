-- Planner statistics across the columns of the index tables. The columns are strongly
-- correlated (a code decides which values and systems occur), and PostgreSQL multiplies the
-- selectivities of separate columns: `pathway = red` was estimated at 13 rows of 167 and the
-- echo code at 5 of 500, so searches joined from the wrong end. Multi-column most-common-value
-- lists and functional dependencies, gathered by ANALYZE, correct these estimates.
CREATE STATISTICS search_token_values (mcv, dependencies) ON resource_type, code, value, system FROM search_token;
CREATE STATISTICS search_string_values (mcv, dependencies) ON resource_type, code, value_normalized FROM search_string;
CREATE STATISTICS search_reference_targets (mcv, dependencies) ON resource_type, code, target_type FROM search_reference;
CREATE STATISTICS search_date_codes (mcv, dependencies) ON resource_type, code FROM search_date;
CREATE STATISTICS search_number_codes (mcv, dependencies) ON resource_type, code FROM search_number;
CREATE STATISTICS search_quantity_codes (mcv, dependencies) ON resource_type, code, system, unit_code FROM search_quantity;
CREATE STATISTICS search_uri_values (mcv, dependencies) ON resource_type, code, value FROM search_uri;
CREATE STATISTICS search_composite_codes (mcv, dependencies) ON resource_type, code FROM search_composite;
