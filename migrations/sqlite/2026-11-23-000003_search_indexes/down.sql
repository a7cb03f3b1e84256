DROP TABLE search_composite;
DROP INDEX search_reference_url;
