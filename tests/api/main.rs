//! Black-box tests of the REST contract (`docs/API.md`): each scenario starts the real
//! `wallet-server` binary on a fresh database and talks HTTP to it, once on SQLite and once on
//! PostgreSQL (when `WALLET_TEST_POSTGRES_URL` is set).

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod admin;
mod admission;
mod authz;
mod batching;
mod charge_bonus;
mod charges;
mod clock;
mod contract;
mod crash;
mod crash_load;
mod expiry;
mod fuzz;
mod gifts;
mod handover;
mod handover_archive;
mod handover_v2;
mod hardening;
mod health;
mod history;
mod idempotency;
mod month;
mod operations;
mod oversight;
mod payments;
mod programs;
mod quickstart;
mod refunds;
mod sessions;
mod settlement;
mod throttle;
