-- One login throttle for all the servers of a database (issue 21, item 3). Each server appends
-- the failed logins it saw, about twice a second, and charges the other servers' to its own
-- throttle (`auth/throttle.rs`, `jobs/throttle.rs`). A login and an address are kept only as the
-- throttle's keys, salted 64-bit digests, never as typed; a row is deleted a minute after it.
-- `seq` is the order the rows were committed in (writers take turns, `store::login_failures`):
-- a server reads on from the last one it read.
CREATE TABLE login_failures (
    seq         BIGSERIAL PRIMARY KEY NOT NULL,
    server_id   BIGINT NOT NULL,
    login_key   BIGINT,
    address_key BIGINT,
    failed_ms   BIGINT NOT NULL
);
CREATE INDEX login_failures_by_time ON login_failures (failed_ms);

-- The salt of the throttle's keys: one for the database, so every server keys a login alike.
-- Made by the first server that starts with the throttle on.
CREATE TABLE throttle_salt (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    salt TEXT NOT NULL
);
