-- Every admin action, written in the same transaction as the action itself, so that an action
-- without its row cannot exist (docs/ARCHITECTURE.md). Rows are only ever added.
CREATE TABLE audit_log (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    -- The server's clock when the action was taken (the command line's: the real time).
    at_ms           BIGINT NOT NULL,
    -- 'api': an admin's request; 'cli': a wallet-server command run on the server's machine.
    via             TEXT NOT NULL CHECK (via IN ('api', 'cli')),
    -- The admin who acted, and their login then; NULL for the command line.
    principal_id    TEXT,
    login           TEXT,
    action          TEXT NOT NULL,
    -- A small JSON object: what was done, never a password, token or reset code.
    detail          TEXT NOT NULL,
    -- The request's Idempotency-Key, where the action honours one.
    idempotency_key TEXT
);
