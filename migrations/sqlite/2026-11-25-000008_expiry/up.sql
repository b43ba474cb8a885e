-- The periodic sweep deletes idempotency records past their retention, oldest first, in
-- bounded batches: a range on creation time. (Payment codes have payment_codes_by_expiry.)
CREATE INDEX idempotency_by_creation ON idempotency (created_at_ms);
