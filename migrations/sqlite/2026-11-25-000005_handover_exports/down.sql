ALTER TABLE principals DROP COLUMN changed_at_ms;
DROP TABLE handover_exports;
