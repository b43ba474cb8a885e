-- The citizen waiting room, shared by every server on the database: `seq` is the order of the
-- line. Each server keeps a mirror of it in memory for cheap polls and syncs it about twice a second.
CREATE TABLE waiting_tickets (
    seq       BIGSERIAL PRIMARY KEY NOT NULL,
    ticket    TEXT NOT NULL UNIQUE,
    login     TEXT NOT NULL UNIQUE,
    polled_ms BIGINT NOT NULL
);
CREATE INDEX waiting_tickets_by_poll ON waiting_tickets (polled_ms);
