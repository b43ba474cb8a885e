-- pgbench baseline of scripts/bench-payments (PostgreSQL half): the writes of one POS payment,
-- one transaction per payment, as raw-sqlite-payments does them on SQLite: mark the code used;
-- update the wallet, the merchant's receivable and the cashback budget row; four postings (the
-- payment and its cashback, each summing to zero), two history rows, the payment, the day's
-- sales row (upsert) and the idempotency record. Values computed by the script (no reads
-- back), so this is the cost of the durable writes alone. The history is linked as the server
-- links it (seqs given, each item's prev_seq, the wallet's history_head in its update); the
-- payment item's prev_seq would be a read of the wallet's head, so it is NULL here.
-- Variables (pgbench -D): wallets, merchants, codes, at.
\set w random(0, :wallets - 1)
\set m :w % :merchants
\set c random(0, :codes - 1)
SELECT nextval('bench_ids') AS seq \gset
BEGIN;
UPDATE payment_codes SET used = true WHERE code = lpad(:c::text, 20, '0');
UPDATE wallets SET balance = balance - 900, eligible_spent = eligible_spent + 1000,
    cashback_earned = cashback_earned + 100, history_head = 2 * :seq + 1
    WHERE wallet_id = '00000000-0000-4000-8000-' || lpad(:w::text, 12, '0');
UPDATE merchants SET receivable = receivable + 1000
    WHERE merchant_id = '00000000-0000-4000-9000-' || lpad(:m::text, 12, '0');
UPDATE ledger_state SET budget_paid_out = budget_paid_out + 100 WHERE id = 1;
INSERT INTO postings (tx_id, tx_kind, account_kind, account_id, amount, at_ms) VALUES
    ('00000000-0000-7000-a000-' || lpad(:seq::text, 12, '0'), 'payment', 'wallet',
     '00000000-0000-4000-8000-' || lpad(:w::text, 12, '0'), -1000, :at),
    ('00000000-0000-7000-a000-' || lpad(:seq::text, 12, '0'), 'payment', 'merchant',
     '00000000-0000-4000-9000-' || lpad(:m::text, 12, '0'), 1000, :at),
    ('00000000-0000-7000-b000-' || lpad(:seq::text, 12, '0'), 'cashback', 'cashback_budget', NULL, -100, :at),
    ('00000000-0000-7000-b000-' || lpad(:seq::text, 12, '0'), 'cashback', 'wallet',
     '00000000-0000-4000-8000-' || lpad(:w::text, 12, '0'), 100, :at);
INSERT INTO history (item_id, wallet_id, kind, amount, balance_after, at_ms, counterparty, related_id, seq, prev_seq)
VALUES
    ('00000000-0000-7000-a000-' || lpad(:seq::text, 12, '0'), '00000000-0000-4000-8000-' || lpad(:w::text, 12, '0'),
     'payment', -1000, 0, :at, 'Raw shop', '00000000-0000-7000-a000-' || lpad(:seq::text, 12, '0'), 2 * :seq, NULL),
    ('00000000-0000-7000-b000-' || lpad(:seq::text, 12, '0'), '00000000-0000-4000-8000-' || lpad(:w::text, 12, '0'),
     'cashback', 100, 0, :at, 'Raw shop', '00000000-0000-7000-a000-' || lpad(:seq::text, 12, '0'), 2 * :seq + 1,
     2 * :seq);
INSERT INTO payments VALUES ('00000000-0000-7000-a000-' || lpad(:seq::text, 12, '0'),
    '00000000-0000-4000-9000-' || lpad(:m::text, 12, '0'), '00000000-0000-4000-8000-' || lpad(:w::text, 12, '0'),
    1000, 100, 1000, '2026-11', :at, 0, 0, 0);
INSERT INTO daily_sales VALUES ('2026-11-25', '00000000-0000-4000-9000-' || lpad(:m::text, 12, '0'), 1, 1000, 0, 0)
    ON CONFLICT (business_date, merchant_id) DO UPDATE SET
    payments_count = daily_sales.payments_count + 1, payments_amount = daily_sales.payments_amount + 1000;
INSERT INTO idempotency VALUES ('00000000-0000-4000-9000-' || lpad(:m::text, 12, '0'), 'pgbench-pay-' || :seq,
    '00000000-0000-7000-a000-' || lpad(:seq::text, 12, '0'),
    201, '{"payment_id":"00000000-0000-7000-a000-' || lpad(:seq::text, 12, '0')
    || '","amount":"1000","cashback":"100","status":"approved","at":"2026-11-25T12:00:00Z"}', :at);
END;
