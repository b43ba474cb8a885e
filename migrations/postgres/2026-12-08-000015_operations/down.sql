DROP INDEX payments_by_merchant;
ALTER TABLE merchants DROP COLUMN suspended_at_ms;
ALTER TABLE wallets DROP COLUMN locked_at_ms;
