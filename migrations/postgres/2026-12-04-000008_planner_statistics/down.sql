DROP STATISTICS search_token_values, search_string_values, search_reference_targets,
    search_date_codes, search_number_codes, search_quantity_codes, search_uri_values,
    search_composite_codes;
