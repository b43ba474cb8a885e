-- Handover bundle version 2 (docs/HANDOVER.md): what a citizen row carries beyond version 1.

-- The charge bonus quota a citizen used in the wallet's `month`, a month counter like `charged`
-- and `eligible_spent` beside it: a column of `wallets` because the charge bonus reads and writes
-- it under the wallet's lock, in the row every charge writes anyway. A write that moves the
-- wallet into a later month starts it again at 0 (store::wallets::save).
ALTER TABLE wallets ADD COLUMN bonus_quota_used BIGINT NOT NULL DEFAULT 0;

-- The references the identity-verification and open-banking providers issued for a citizen,
-- carried over so that nobody has to verify or link a bank account again. A small table of their
-- own rather than columns of `wallets`: they are written by a handover and read by an export (and
-- one day by admins), never by the ledger, so the wallet row that every payment rewrites stays as
-- narrow as it was, and no query behind a citizen's answer selects them by accident. A citizen
-- without any has no row.
CREATE TABLE citizen_references (
    citizen_id              TEXT PRIMARY KEY NOT NULL REFERENCES principals (principal_id),
    identity_verified_at_ms BIGINT,
    identity_ref            TEXT,
    bank_link_ref           TEXT,
    bank_account_masked     TEXT
);
