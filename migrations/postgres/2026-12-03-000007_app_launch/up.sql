-- An app's launch URL, for EHR launch from the console.
ALTER TABLE oauth_clients ADD COLUMN launch_url TEXT;
