-- Purses and city programs (docs/API.md, Part 2).

-- The bonus purse: cashback lands here, and it may not be gifted. `balance` stays own + bonus.
ALTER TABLE wallets ADD COLUMN bonus BIGINT NOT NULL DEFAULT 0;

-- What allowance programs decide eligibility by, with the category merchants already had.
ALTER TABLE merchants ADD COLUMN annual_revenue BIGINT;

-- Which purses paid a payment and what its refunds restored to each (allowances below).
ALTER TABLE payments ADD COLUMN bonus_paid BIGINT NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN own_restored BIGINT NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN bonus_restored BIGINT NOT NULL DEFAULT 0;

-- A program: its definition as created (JSON) and its budget, an account of the ledger.
CREATE TABLE programs (
    program_id    TEXT PRIMARY KEY NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('allowance', 'charge_bonus')),
    name          TEXT NOT NULL,
    definition    TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    funded        BIGINT NOT NULL,
    granted       BIGINT NOT NULL,
    spent         BIGINT NOT NULL,
    returned      BIGINT NOT NULL,
    CHECK (funded - granted + returned >= 0),
    CHECK (granted - spent - returned >= 0)
);

-- One grant: an allowance purse of one wallet, an account of the ledger.
CREATE TABLE allowances (
    grant_id      TEXT PRIMARY KEY NOT NULL,
    program_id    TEXT NOT NULL REFERENCES programs (program_id),
    wallet_id     TEXT NOT NULL REFERENCES wallets (wallet_id),
    amount        BIGINT NOT NULL CHECK (amount > 0),
    outstanding   BIGINT NOT NULL CHECK (outstanding >= 0),
    granted_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX allowances_by_wallet ON allowances (wallet_id);
-- The sweep's work list: grants with money left, by expiry.
CREATE INDEX allowances_to_sweep ON allowances (expires_at_ms) WHERE outstanding > 0;

-- What each allowance paid of a payment, in spending order, and what refunds restored of it.
CREATE TABLE payment_allowances (
    payment_id TEXT NOT NULL REFERENCES payments (payment_id),
    grant_id   TEXT NOT NULL REFERENCES allowances (grant_id),
    position   INTEGER NOT NULL,
    paid       BIGINT NOT NULL CHECK (paid > 0),
    restored   BIGINT NOT NULL CHECK (restored >= 0 AND restored <= paid),
    PRIMARY KEY (payment_id, grant_id)
);
