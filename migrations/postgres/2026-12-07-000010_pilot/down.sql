DROP TABLE test_clock;
ALTER TABLE wallets DROP COLUMN cashback_reversed;
