DROP TABLE outbox;
DROP TABLE login_failures;
DROP TABLE sessions;
DROP TABLE account_tokens;
DROP TABLE users;
