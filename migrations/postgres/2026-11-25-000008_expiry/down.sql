DROP INDEX idempotency_by_creation;
