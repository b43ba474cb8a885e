-- One-time codes the city issues to let a citizen set a password: for accounts carried over
-- from the previous operator without a hash, and for forgotten passwords. Only a hash of the
-- code is kept; a new code replaces the earlier one.
CREATE TABLE password_resets (
    principal_id  TEXT PRIMARY KEY NOT NULL REFERENCES principals (principal_id),
    code_hash     TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
