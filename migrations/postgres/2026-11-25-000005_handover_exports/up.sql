-- Bundles exported from this system, for the handover away from it: a delta (`handover export
-- --since N`) holds what changed after bundle N, found by these marks.
CREATE TABLE handover_exports (
    sequence        BIGINT PRIMARY KEY NOT NULL,
    kind            TEXT NOT NULL,
    -- The last history row the bundle holds.
    history_seq     BIGINT NOT NULL,
    -- When its consistent read began.
    exported_at_ms  BIGINT NOT NULL,
    manifest_sha256 TEXT NOT NULL
);

-- When a principal's login or password hash last changed (0: not since it was created), so a
-- delta export carries password changes.
ALTER TABLE principals ADD COLUMN changed_at_ms BIGINT NOT NULL DEFAULT 0;
