-- The operations of the city console (issue 19, docs/API.md "Operations").

-- When the city locked a citizen's wallet (NULL: not locked). A column of `wallets` because the
-- ledger decides by it: the writer reads it with the balance, in the same locked read, so a
-- payment, charge, gift or code issued in a batch that commits after the lock is refused, and
-- one committed before it stands. One nullable BIGINT, NULL for nearly every wallet, keeps the
-- row every payment rewrites as narrow as it was; the reason is in the audit log.
ALTER TABLE wallets ADD COLUMN locked_at_ms BIGINT;

-- When the city suspended a merchant (NULL: active), read by the writer with the merchant's
-- balances for the same reason. The reason is in the audit log.
ALTER TABLE merchants ADD COLUMN suspended_at_ms BIGINT;

-- A merchant's payments of one business date, newest first (GET /v1/merchant/payments): without
-- it that page reads every payment ever made. One more index entry a payment; a busy merchant's
-- entries are adjacent, so a batch writes few pages of it.
CREATE INDEX payments_by_merchant ON payments (merchant_id, at_ms);
