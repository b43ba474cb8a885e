-- Cashback that refunds of a month's own payments took back in that month, so the wallet can
-- show the month's cashback net as well as gross (GET /v1/wallet `cashback_net_this_month`).
ALTER TABLE wallets ADD COLUMN cashback_reversed BIGINT NOT NULL DEFAULT 0;

-- The test clock's offset from the real time (WALLET_TEST_CLOCK=1 only). Kept in the database so
-- that a restart, a second server or `handover export` see the same time as the server did:
-- a clock that fell back on restart reset months and counters while status said ok.
CREATE TABLE test_clock (
    id        INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    offset_us BIGINT NOT NULL
);
