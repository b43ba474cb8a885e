DROP TABLE payment_allowances;
DROP TABLE allowances;
DROP TABLE programs;
ALTER TABLE payments DROP COLUMN bonus_restored;
ALTER TABLE payments DROP COLUMN own_restored;
ALTER TABLE payments DROP COLUMN bonus_paid;
ALTER TABLE merchants DROP COLUMN annual_revenue;
ALTER TABLE wallets DROP COLUMN bonus;
