-- The payment a cashback, refund or cashback reversal belongs to (exported as related_tx_id).
ALTER TABLE history ADD COLUMN related_id TEXT;
