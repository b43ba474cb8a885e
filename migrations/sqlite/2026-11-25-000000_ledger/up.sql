-- The ledger schema (sqlite). Ids are TEXT and money BIGINT whole won on both backends,
-- so one set of diesel queries serves both (see docs/ARCHITECTURE.md).

-- Principals: everyone who logs in. Logins are unique across roles, so one login form serves all.
CREATE TABLE principals (
    principal_id  TEXT PRIMARY KEY NOT NULL,
    login         TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('citizen', 'merchant', 'admin')),
    -- A PHC string; empty when a carried-over citizen must set a password again.
    password_hash TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- One wallet per citizen. Money is whole won in BIGINT on both backends.
CREATE TABLE wallets (
    wallet_id       TEXT PRIMARY KEY NOT NULL,
    citizen_id      TEXT NOT NULL UNIQUE REFERENCES principals (principal_id),
    balance         BIGINT NOT NULL CHECK (balance >= 0),
    month           TEXT NOT NULL,
    charged         BIGINT NOT NULL,
    eligible_spent  BIGINT NOT NULL,
    cashback_earned BIGINT NOT NULL
);

CREATE TABLE merchants (
    merchant_id      TEXT PRIMARY KEY NOT NULL REFERENCES principals (principal_id),
    name             TEXT NOT NULL,
    business_number  TEXT NOT NULL,
    bank_account     TEXT NOT NULL,
    category         TEXT,
    receivable       BIGINT NOT NULL,
    carried_negative BIGINT NOT NULL CHECK (carried_negative <= 0)
);

-- The one row of city-wide state: policy, cashback budget, and the balances of the system
-- accounts. The writer updates it once per batch.
CREATE TABLE ledger_state (
    id                         INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    cashback_rate              TEXT NOT NULL,
    cashback_monthly_spend_cap BIGINT NOT NULL,
    monthly_charge_limit       BIGINT NOT NULL,
    holding_limit              BIGINT NOT NULL,
    merchant_fee_rate          TEXT NOT NULL,
    budget_funded              BIGINT NOT NULL,
    budget_paid_out            BIGINT NOT NULL,
    budget_reversed            BIGINT NOT NULL,
    bank_clearing              BIGINT NOT NULL,
    settlement_payouts         BIGINT NOT NULL,
    fee_income                 BIGINT NOT NULL,
    handover_opening           BIGINT NOT NULL
);
INSERT INTO ledger_state VALUES (1, '0.1', 500000, 2000000, 3000000, '0', 0, 0, 0, 0, 0, 0, 0);

CREATE TABLE payment_codes (
    code          TEXT PRIMARY KEY NOT NULL,
    wallet_id     TEXT NOT NULL REFERENCES wallets (wallet_id),
    expires_at_ms BIGINT NOT NULL,
    used          BOOLEAN NOT NULL
);
CREATE INDEX payment_codes_by_expiry ON payment_codes (expires_at_ms);

CREATE TABLE payments (
    payment_id        TEXT PRIMARY KEY NOT NULL,
    merchant_id       TEXT NOT NULL REFERENCES merchants (merchant_id),
    wallet_id         TEXT NOT NULL REFERENCES wallets (wallet_id),
    amount            BIGINT NOT NULL CHECK (amount > 0),
    cashback          BIGINT NOT NULL,
    eligible          BIGINT NOT NULL,
    month             TEXT NOT NULL,
    at_ms             BIGINT NOT NULL,
    refunded          BIGINT NOT NULL CHECK (refunded <= amount),
    cashback_reversed BIGINT NOT NULL CHECK (cashback_reversed <= cashback),
    eligible_returned BIGINT NOT NULL
);

CREATE TABLE daily_sales (
    business_date   TEXT NOT NULL,
    merchant_id     TEXT NOT NULL REFERENCES merchants (merchant_id),
    payments_count  BIGINT NOT NULL,
    payments_amount BIGINT NOT NULL,
    refunds_count   BIGINT NOT NULL,
    refunds_amount  BIGINT NOT NULL,
    PRIMARY KEY (business_date, merchant_id)
);

CREATE TABLE settlements (
    business_date     TEXT PRIMARY KEY NOT NULL,
    tx_id             TEXT NOT NULL,
    total_net_payable BIGINT NOT NULL,
    total_fee         BIGINT NOT NULL,
    closed_at_ms      BIGINT NOT NULL
);

CREATE TABLE settlement_lines (
    business_date   TEXT NOT NULL REFERENCES settlements (business_date),
    merchant_id     TEXT NOT NULL REFERENCES merchants (merchant_id),
    payments_count  BIGINT NOT NULL,
    payments_amount BIGINT NOT NULL,
    refunds_count   BIGINT NOT NULL,
    refunds_amount  BIGINT NOT NULL,
    fee             BIGINT NOT NULL,
    carried_in      BIGINT NOT NULL,
    net_payable     BIGINT NOT NULL,
    PRIMARY KEY (business_date, merchant_id)
);

CREATE TABLE sessions (
    token_hash    TEXT PRIMARY KEY NOT NULL,
    principal_id  TEXT NOT NULL REFERENCES principals (principal_id),
    role          TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    last_seen_ms  BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX sessions_by_role ON sessions (role, last_seen_ms);

-- The stored answer of every money-moving request, written in the same transaction as its effect.
CREATE TABLE idempotency (
    principal_id  TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        INTEGER NOT NULL,
    body          TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (principal_id, idem_key)
);

-- The journal: every posting of every transaction, in commit order.
CREATE TABLE postings (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    tx_id        TEXT NOT NULL,
    tx_kind      TEXT NOT NULL,
    account_kind TEXT NOT NULL,
    account_id   TEXT,
    amount       BIGINT NOT NULL,
    at_ms        BIGINT NOT NULL
);
CREATE INDEX postings_by_tx ON postings (tx_id);

-- What citizens see: wallet history, newest first by seq.
CREATE TABLE history (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    item_id       TEXT NOT NULL,
    wallet_id     TEXT NOT NULL REFERENCES wallets (wallet_id),
    kind          TEXT NOT NULL,
    amount        BIGINT NOT NULL,
    balance_after BIGINT NOT NULL,
    at_ms         BIGINT NOT NULL,
    counterparty  TEXT
);
CREATE INDEX history_by_wallet ON history (wallet_id, seq);
