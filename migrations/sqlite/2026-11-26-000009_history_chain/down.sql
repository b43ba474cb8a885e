CREATE INDEX history_by_wallet ON history (wallet_id, seq);
ALTER TABLE wallets DROP COLUMN history_head;
ALTER TABLE history DROP COLUMN prev_seq;
