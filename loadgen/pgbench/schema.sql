-- pgbench baseline of scripts/bench-payments (PostgreSQL half): the tables and indexes of
-- migrations/postgres that a POS payment touches, with the same columns and constraints, seeded
-- with :wallets wallets, one merchant per 10 wallets and :codes unused payment codes.
-- Run with psql -v wallets=N -v codes=N.
CREATE TABLE wallets (
    wallet_id TEXT PRIMARY KEY NOT NULL, citizen_id TEXT NOT NULL UNIQUE,
    balance BIGINT NOT NULL CHECK (balance >= 0), month TEXT NOT NULL, charged BIGINT NOT NULL,
    eligible_spent BIGINT NOT NULL, cashback_earned BIGINT NOT NULL, history_head BIGINT);
CREATE TABLE merchants (
    merchant_id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, business_number TEXT NOT NULL,
    bank_account TEXT NOT NULL, category TEXT, receivable BIGINT NOT NULL,
    carried_negative BIGINT NOT NULL CHECK (carried_negative <= 0));
CREATE TABLE ledger_state (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1), cashback_rate TEXT NOT NULL,
    cashback_monthly_spend_cap BIGINT NOT NULL, monthly_charge_limit BIGINT NOT NULL,
    holding_limit BIGINT NOT NULL, merchant_fee_rate TEXT NOT NULL, budget_funded BIGINT NOT NULL,
    budget_paid_out BIGINT NOT NULL, budget_reversed BIGINT NOT NULL, bank_clearing BIGINT NOT NULL,
    settlement_payouts BIGINT NOT NULL, fee_income BIGINT NOT NULL, handover_opening BIGINT NOT NULL);
CREATE TABLE payment_codes (
    code TEXT PRIMARY KEY NOT NULL, wallet_id TEXT NOT NULL REFERENCES wallets (wallet_id),
    expires_at_ms BIGINT NOT NULL, used BOOLEAN NOT NULL);
CREATE INDEX payment_codes_by_expiry ON payment_codes (expires_at_ms);
CREATE TABLE payments (
    payment_id TEXT PRIMARY KEY NOT NULL, merchant_id TEXT NOT NULL REFERENCES merchants (merchant_id),
    wallet_id TEXT NOT NULL REFERENCES wallets (wallet_id),
    amount BIGINT NOT NULL CHECK (amount > 0), cashback BIGINT NOT NULL, eligible BIGINT NOT NULL,
    month TEXT NOT NULL, at_ms BIGINT NOT NULL, refunded BIGINT NOT NULL CHECK (refunded <= amount),
    cashback_reversed BIGINT NOT NULL CHECK (cashback_reversed <= cashback), eligible_returned BIGINT NOT NULL);
CREATE TABLE daily_sales (
    business_date TEXT NOT NULL, merchant_id TEXT NOT NULL REFERENCES merchants (merchant_id),
    payments_count BIGINT NOT NULL, payments_amount BIGINT NOT NULL, refunds_count BIGINT NOT NULL,
    refunds_amount BIGINT NOT NULL, PRIMARY KEY (business_date, merchant_id));
CREATE TABLE idempotency (
    principal_id TEXT NOT NULL, idem_key TEXT NOT NULL, request_hash TEXT NOT NULL, status INTEGER NOT NULL,
    body TEXT NOT NULL, created_at_ms BIGINT NOT NULL, PRIMARY KEY (principal_id, idem_key));
CREATE TABLE postings (
    seq BIGSERIAL PRIMARY KEY NOT NULL, tx_id TEXT NOT NULL, tx_kind TEXT NOT NULL,
    account_kind TEXT NOT NULL, account_id TEXT, amount BIGINT NOT NULL, at_ms BIGINT NOT NULL);
CREATE INDEX postings_by_tx ON postings (tx_id);
CREATE TABLE history (
    seq BIGSERIAL PRIMARY KEY NOT NULL, item_id TEXT NOT NULL, wallet_id TEXT NOT NULL REFERENCES wallets (wallet_id),
    kind TEXT NOT NULL, amount BIGINT NOT NULL, balance_after BIGINT NOT NULL, at_ms BIGINT NOT NULL,
    counterparty TEXT, related_id TEXT, prev_seq BIGINT);
-- Ids of the script's payments: increasing, as wallet-server's UUIDv7 ids are.
CREATE SEQUENCE bench_ids;

INSERT INTO ledger_state VALUES (1, '0.1', 500000, 2000000, 3000000, '0', 1000000000000, 0, 0, 0, 0, 0, 0);
INSERT INTO wallets
    SELECT '00000000-0000-4000-8000-' || lpad(n::text, 12, '0'), 'citizen-' || n, 1000000000000, '2026-11',
           1000000000000, 0, 0
    FROM generate_series(0, :wallets - 1) AS n;
INSERT INTO merchants
    SELECT '00000000-0000-4000-9000-' || lpad(n::text, 12, '0'), 'Raw shop', '000-00-00000', 'raw-bank', NULL, 0, 0
    FROM generate_series(0, (:wallets + 9) / 10 - 1) AS n;
INSERT INTO payment_codes
    SELECT lpad(n::text, 20, '0'), '00000000-0000-4000-8000-' || lpad((n % :wallets)::text, 12, '0'),
           4102444800000, false
    FROM generate_series(0, :codes - 1) AS n;
VACUUM ANALYZE;
