//! `wallet-server` as a library: the modules of the server, used by the command line
//! (`main.rs`) and by the fuzz targets in `fuzz/`, which call the real parsers of request
//! bodies (the handover bundle's readers are the `handover-format` crate's).

pub mod admission;
pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod demo;
pub mod export;
mod grant_client;
pub mod grant_file;
pub mod handover;
pub mod http;
pub mod jobs;
pub mod log_limits;
pub mod metrics;
pub mod state;
pub mod store;
pub mod writer;

/// The module boundaries, checked as a test (`dependencies.rs`).
#[cfg(test)]
mod dependencies;
