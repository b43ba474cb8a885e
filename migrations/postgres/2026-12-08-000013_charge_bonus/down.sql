DROP TABLE program_cohorts;
DROP INDEX programs_by_window;
ALTER TABLE programs DROP COLUMN closes_at_ms;
ALTER TABLE programs DROP COLUMN opens_at_ms;
