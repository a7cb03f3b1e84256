DROP TABLE oauth_revocations;
DROP TABLE oauth_assertions;
DROP TABLE oauth_launches;
DROP TABLE oauth_refresh_tokens;
DROP TABLE oauth_codes;
DROP TABLE oauth_clients;
DROP TABLE signing_keys;
