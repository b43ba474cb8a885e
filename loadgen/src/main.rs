//! `wallet-loadgen`: load against a wallet server on this machine.
//!
//! `cutover` replays the opening-day storm (every citizen logs in at once through the waiting
//! room while merchants keep taking payments) and reports admission order, wait estimates,
//! payment latency and the server's memory; `opening-day` replays a charge bonus program's
//! opening (cohorts of citizens log in at their openings and charge) and checks the bonuses paid
//! against the program's budget; `idle` measures what held sessions cost.
//! Loopback only: see `loopback.rs`. Every loop is bounded in count and in time.
//! `payments` runs POS payments in closed loops as fast as the server answers, then balance
//! reads (the group-commit benchmark, scripts/bench-payments); with `--allowance-won` the
//! citizens hold allowance purses that pay. `pay-during` runs payments at a steady rate before,
//! during and after a command, and compares their latency (scripts/bench-grants); `grant-file`
//! sends a grant file through the server's grants endpoint instead of its file command.
//! `guess` makes a password-guessing run against one login and reports what got checked.
//! `handover-bundle` and `handover-delta` write generated handover bundles to disk (no network),
//! their history applied to a `wallet_core::Book` (`history.rs`).

mod bundle;
mod client;
mod cutover;
mod during;
mod grant_file;
mod guess;
mod history;
mod idle;
mod loopback;
mod memory;
mod opening_day;
mod payments;
mod setup;
mod stats;
mod waiting;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::client::ClientLimits;
use crate::loopback::LoopbackBase;
use crate::memory::MemorySummary;
use crate::stats::KindTally;

/// Worker threads of the runtime: the client must not starve the server it shares the machine with.
const WORKER_THREADS: usize = 2;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IN_FLIGHT_MAX: usize = 20_000;

#[derive(Parser, Debug)]
#[command(name = "wallet-loadgen", version, about = "Load generator for the wallet server (loopback only)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The opening-day storm: all citizens log in at once while payments go on.
    Cutover(cutover::CutoverArgs),
    /// A charge bonus program's opening: each cohort's citizens log in at its opening and charge.
    OpeningDay(opening_day::OpeningDayArgs),
    /// Durable POS payments as fast as the server takes them, then balance reads.
    Payments(payments::PaymentsArgs),
    /// Payments at a steady rate before, during and after a command (a city-wide grant).
    PayDuring(during::DuringArgs),
    /// Send a grant file (`wallet_id,amount`) through the server's grants endpoint, 1,000 lines a request.
    GrantFile(grant_file::GrantFileArgs),
    /// Hold many idle sessions and measure the server's memory per session.
    Idle(idle::IdleArgs),
    /// Guess one citizen's password from one address: what the login throttle lets through.
    Guess(guess::GuessArgs),
    /// Write a generated snapshot handover bundle (city-sized by default).
    HandoverBundle(bundle::SnapshotArgs),
    /// Write delta 1 of a snapshot written by handover-bundle.
    HandoverDelta(bundle::DeltaArgs),
}

/// Flags every subcommand takes.
#[derive(clap::Args, Debug)]
pub struct CommonArgs {
    /// The server's base URL; the host must be 127.0.0.1 (or 127.x.y.z), localhost or [::1].
    #[arg(long)]
    pub url: String,
    /// The server's process id: its VmHWM and VmRSS are read from /proc every 200 ms.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Citizen requests in flight at once (one connection each); more wait for a slot.
    #[arg(long, default_value_t = 2_048)]
    pub in_flight_max: usize,
    /// Timeout of one request, from sending it to the last byte of the answer.
    #[arg(long, default_value_t = 30.0)]
    pub request_timeout_s: f64,
    /// Logins are built from it (`lg-<run>-<i>`); default: the Unix time in hex.
    #[arg(long)]
    pub run: Option<String>,
}

/// Checks a flag's value against its bounds: the one message every subcommand gives.
fn in_range(name: &str, value: f64, low: f64, high: f64) -> Result<(), String> {
    if value.is_finite() && (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(format!("--{name} {value} is out of range: give {low} to {high}"))
    }
}

impl CommonArgs {
    fn check(&self) -> Result<(), String> {
        in_range("in-flight-max", self.in_flight_max as f64, 1.0, IN_FLIGHT_MAX as f64)?;
        in_range("request-timeout-s", self.request_timeout_s, 0.1, 300.0)
    }

    /// The checked loopback base URL (refuses any other host before a request is made).
    async fn loopback_base(&self) -> Result<LoopbackBase, String> {
        let base = loopback::parse_loopback_base(&self.url)?;
        loopback::ensure_resolves_to_loopback(&base).await?;
        Ok(base)
    }

    fn run_id(&self) -> Result<String, String> {
        let run = self.run.clone().unwrap_or_else(setup::default_run_id);
        setup::check_login_prefix(&run).map_err(|error| format!("--run {error}"))?;
        Ok(run)
    }

    fn client_limits(&self, in_flight_max: usize) -> ClientLimits {
        ClientLimits {
            in_flight_max,
            request_timeout: Duration::from_secs_f64(self.request_timeout_s),
            connect_timeout: CONNECT_TIMEOUT,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Cutover(args) => run_async(cutover::run(args)),
        Command::OpeningDay(args) => run_async(opening_day::run(args)),
        Command::Idle(args) => run_async(idle::run(args)),
        Command::Payments(args) => run_async(payments::run(args)),
        Command::PayDuring(args) => run_async(during::run(args)),
        Command::GrantFile(args) => run_async(grant_file::run(args)),
        Command::Guess(args) => run_async(guess::run(args)),
        // Bundles are written to disk: no runtime, no network.
        Command::HandoverBundle(args) => bundle::run_snapshot(args),
        Command::HandoverDelta(args) => bundle::run_delta(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wallet-loadgen: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a load subcommand on a runtime of [`WORKER_THREADS`].
fn run_async(command: impl std::future::Future<Output = Result<(), String>>) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    let result = runtime.block_on(command);
    // Do not wait for stragglers (a request past its deadline) once the report is out.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Writes a report as pretty JSON.
fn write_json(path: &std::path::Path, report: &impl serde::Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(report).map_err(|error| format!("cannot encode the report: {error}"))?;
    std::fs::write(path, text + "\n").map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// The request table: one line per kind with its answers, then transport failures.
fn render_requests(requests: &BTreeMap<String, KindTally>) -> String {
    let mut out = String::new();
    for (kind, tally) in requests {
        let answers: Vec<String> = tally.answers.iter().map(|(answer, count)| format!("{answer}: {count}")).collect();
        let _ = write!(out, "{kind:<18} {:>7}  {}", tally.answered(), answers.join(", "));
        for (name, count) in [
            ("timeouts", tally.timeouts),
            ("connection errors", tally.connection_errors),
            ("cut at deadline", tally.cut_at_deadline),
        ] {
            if count > 0 {
                let _ = write!(out, "; {name}: {count}");
            }
        }
        out.push('\n');
    }
    out
}

fn render_memory(memory: Option<&MemorySummary>) -> String {
    let Some(memory) = memory else {
        return "server memory    - (give --server-pid)\n".to_owned();
    };
    let kib =
        |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |value| format!("{:.1} MiB", value as f64 / 1024.0));
    format!(
        "server memory    pid {}: VmHWM (peak) {}, VmRSS first {} max {} last {} ({} samples, {} read errors)\n",
        memory.pid,
        kib(memory.vm_hwm_kib_max),
        kib(memory.vm_rss_kib_first),
        kib(memory.vm_rss_kib_max),
        kib(memory.vm_rss_kib_last),
        memory.samples,
        memory.read_errors
    )
}
