DROP TABLE audit_log;
DROP TABLE refresh_tokens;
DROP TABLE users;
