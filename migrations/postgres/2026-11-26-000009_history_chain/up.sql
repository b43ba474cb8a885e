-- A wallet's history as a chain instead of an index on (wallet_id, seq). Why: every payment
-- appended to its citizen's own leaf of that index, a page of its own in each commit: nearly half
-- the pages a batch of payments wrote to the log. Now an item keeps the seq of the wallet's item
-- before it, and the wallet the seq of its newest item; its wallet row is written by the same
-- commit anyway. A page of history follows the chain from the newest item, one lookup by seq
-- per item (store/reads.rs).
ALTER TABLE history ADD COLUMN prev_seq BIGINT;
ALTER TABLE wallets ADD COLUMN history_head BIGINT;
UPDATE history SET prev_seq =
    (SELECT MAX(older.seq) FROM history AS older WHERE older.wallet_id = history.wallet_id AND older.seq < history.seq);
UPDATE wallets SET history_head = (SELECT MAX(seq) FROM history WHERE history.wallet_id = wallets.wallet_id);
DROP INDEX history_by_wallet;
