-- Charge bonus programs (docs/API.md, Part 2).

-- A charge bonus program's window, beside its definition: the writer finds the one running at an
-- instant (at most one runs at any instant) with every batch that charges.
ALTER TABLE programs ADD COLUMN opens_at_ms BIGINT;
ALTER TABLE programs ADD COLUMN closes_at_ms BIGINT;
CREATE INDEX programs_by_window ON programs (closes_at_ms) WHERE kind = 'charge_bonus';

-- Each cohort's share of a charge bonus program's budget, and what it paid out. The program's
-- own funded/granted/spent/returned columns stay 0 for this kind: its budget is these rows.
CREATE TABLE program_cohorts (
    program_id TEXT NOT NULL REFERENCES programs (program_id),
    cohort     INTEGER NOT NULL CHECK (cohort >= 0),
    share      BIGINT NOT NULL CHECK (share >= 0),
    paid_out   BIGINT NOT NULL CHECK (paid_out >= 0 AND paid_out <= share),
    PRIMARY KEY (program_id, cohort)
);
