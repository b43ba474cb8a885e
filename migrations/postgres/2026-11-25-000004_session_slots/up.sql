-- Citizen session slots in use, kept by every insert and delete of a citizen session and made
-- exact again by each server's sweep: taking a slot is one conditional UPDATE for every server
-- on the database, instead of counting 100,000 sessions on every login.
CREATE TABLE session_slots (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    used BIGINT NOT NULL CHECK (used >= 0)
);
INSERT INTO session_slots (id, used) SELECT 1, COUNT(*) FROM sessions WHERE role = 'citizen';
