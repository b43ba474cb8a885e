//! The operator handover bundle of `docs/HANDOVER.md` (versions 1 and 2): the format itself,
//! apart from any database.
//!
//! - [`bundle`]: reading and verifying a bundle directory of either version — manifest,
//!   checksums, row counts, every row's syntax into wallet-core's types, duplicates, cross
//!   references, control totals — with refusals that name file, line and reason;
//! - [`archive`]: bundles packed as `.tar` / `.tar.gz` / `.tgz`, unpacked strictly and bounded,
//!   and exports packed atomically;
//! - [`write`]: the CSV files hashed and counted as they are written, the policy and the
//!   manifest;
//! - [`output`]: the commands' messages, which a closed pipe does not turn into a crash.
//!
//! `wallet-server` applies and exports bundles with its database through these; `wallet-loadgen`
//! writes generated bundles with them, and the fuzz targets read bundles through them. This
//! crate touches no database and moves no money: it depends on wallet-core only for the domain
//! types rows parse into (`Won`, ids, `Month`, `HistoryKind`, `Policy`, `AllowanceRules`,
//! `ProgramBudget`).

pub mod archive;
pub mod bundle;
pub mod output;
pub mod write;
