ALTER TABLE oauth_clients DROP COLUMN launch_url;
