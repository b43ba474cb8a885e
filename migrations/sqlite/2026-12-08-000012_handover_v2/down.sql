DROP TABLE citizen_references;
ALTER TABLE wallets DROP COLUMN bonus_quota_used;
