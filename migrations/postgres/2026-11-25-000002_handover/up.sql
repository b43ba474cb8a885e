-- Handover bundles applied (docs/HANDOVER.md): the sequence order, and the manifest's hash so
-- that applying the same bundle again changes nothing and a different one under the same
-- sequence is refused.
CREATE TABLE handover_bundles (
    sequence                   BIGINT PRIMARY KEY NOT NULL,
    kind                       TEXT NOT NULL,
    operator                   TEXT NOT NULL,
    as_of                      TEXT NOT NULL,
    manifest_sha256            TEXT NOT NULL,
    citizens                   BIGINT NOT NULL,
    merchants                  BIGINT NOT NULL,
    transactions               BIGINT NOT NULL,
    citizen_balance_sum        BIGINT NOT NULL,
    merchant_receivable_sum    BIGINT NOT NULL,
    cashback_budget_remaining  BIGINT NOT NULL,
    applied_at_ms              BIGINT NOT NULL
);

-- Imported transactions keep their ids: a delta's rows are matched to those already present.
CREATE INDEX history_by_item ON history (item_id);
