//! `grant-file`: a grant file (`wallet_id,amount`, as `wallet-server programs grant` takes it)
//! sent through the running server's API instead, `POST /v1/admin/programs/{id}/grants` of up to
//! 1,000 lines a request, one request at a time, so the grants go through the server's own
//! writer queue between its other commands (scripts/bench-grants compares the two ways).
//!
//! Each request has its own Idempotency-Key (`lg-<run>-grant-file-<n>`), so with the same
//! `--run` a rerun is answered from the server's records for the requests that were done. A 503
//! is retried after its Retry-After (at most [`ATTEMPTS_MAX`] times); any other refusal stops the
//! run, naming the first line of the request.

use crate::in_range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::client::{Api, Call, Outcome};
use crate::setup;
use crate::stats::Tally;
use crate::CommonArgs;

/// The grants endpoint takes 1 to 1,000 lines a request.
const LINES_PER_REQUEST_MAX: usize = 1_000;
/// Attempts of one request answered 503 or failed in transport.
const ATTEMPTS_MAX: u32 = 10;
/// The whole run stops here.
const RUN_TIME_MAX: Duration = Duration::from_secs(4 * 3_600);
/// Lines of a file at most (the server's own command takes up to 1 GiB of file).
const LINES_MAX: usize = 20_000_000;

#[derive(clap::Args, Debug)]
pub struct GrantFileArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Login of a city admin.
    #[arg(long)]
    pub admin_login: String,
    /// That admin's password.
    #[arg(long)]
    pub admin_password: String,
    /// The allowance program.
    #[arg(long)]
    pub program: String,
    /// The CSV file: header `wallet_id,amount`.
    #[arg(long)]
    pub file: PathBuf,
    /// Lines per request.
    #[arg(long, default_value_t = LINES_PER_REQUEST_MAX)]
    pub lines_per_request: usize,
}

/// Reads the file's lines: (wallet_id, amount) as text, checked only for shape (the server
/// checks the rest).
fn read_lines(path: &std::path::Path) -> Result<Vec<(String, String)>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .map_err(|error| format!("{}: {error}", path.display()))?;
    let header = reader.headers().map_err(|error| format!("{}: line 1: {error}", path.display()))?;
    if header.iter().collect::<Vec<_>>() != ["wallet_id", "amount"] {
        return Err(format!("{}: line 1: the header must be exactly `wallet_id,amount`", path.display()));
    }
    let mut lines = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|error| format!("{}: line {}: {error}", path.display(), index + 2))?;
        if record.len() != 2 {
            return Err(format!("{}: line {}: two fields expected", path.display(), index + 2));
        }
        if lines.len() == LINES_MAX {
            return Err(format!("{}: more than {LINES_MAX} lines", path.display()));
        }
        lines.push((record[0].to_owned(), record[1].to_owned()));
    }
    Ok(lines)
}

pub async fn run(args: GrantFileArgs) -> Result<(), String> {
    args.common.check()?;
    in_range("lines-per-request", args.lines_per_request as f64, 1.0, LINES_PER_REQUEST_MAX as f64)?;
    let base = args.common.loopback_base().await?;
    let run_id = args.common.run_id()?;
    let lines = read_lines(&args.file)?;
    if lines.is_empty() {
        return Err(format!("{}: no lines after the header", args.file.display()));
    }
    let tally = Arc::new(Tally::default());
    let api = Api::new(&base, args.common.client_limits(1), Arc::clone(&tally))?;
    let started = Instant::now();
    let deadline = started + RUN_TIME_MAX;
    let admin = setup::login_direct(&api, "admin_login", &args.admin_login, &args.admin_password, deadline).await?;
    let path = format!("/v1/admin/programs/{}/grants", args.program);
    let request_time_max = Duration::from_secs_f64(args.common.request_timeout_s);
    let mut granted: u64 = 0;
    let mut retries: u64 = 0;
    let chunks = lines.chunks(args.lines_per_request).count();
    let step = (chunks / 10).max(1);
    for (index, chunk) in lines.chunks(args.lines_per_request).enumerate() {
        let body = json!({
            "grants": chunk.iter().map(|(wallet, amount)| json!({"wallet_id": wallet, "amount": amount})).collect::<Vec<_>>()
        });
        let first_line = index * args.lines_per_request + 2;
        let mut attempt = 1;
        loop {
            let call = Call::post("program_grant", path.clone(), Some(&admin), body.clone())
                .idempotency_key(format!("lg-{run_id}-grant-file-{index}"));
            let outcome = api.send(call, (Instant::now() + request_time_max * 2).min(deadline)).await;
            if let Some(answer) = outcome.answer_with(201) {
                granted += answer.body.get("granted").and_then(Value::as_u64).unwrap_or(0);
                break;
            }
            let retry_after = match &outcome {
                Outcome::Answered(answer) if answer.status == 503 => {
                    Duration::from_secs(answer.retry_after_s.unwrap_or(1))
                }
                Outcome::Timeout | Outcome::ConnectionError(_) => Duration::from_secs(1),
                _ => {
                    return Err(format!(
                    "the request from line {first_line} on was refused ({}); {granted} lines were granted before it",
                    outcome.describe()
                ))
                }
            };
            if attempt == ATTEMPTS_MAX || Instant::now() + retry_after >= deadline {
                return Err(format!(
                    "the request from line {first_line} on failed {attempt} times ({}); {granted} lines were granted",
                    outcome.describe()
                ));
            }
            attempt += 1;
            retries += 1;
            tokio::time::sleep(retry_after).await;
        }
        if (index + 1) % step == 0 {
            eprintln!("granted {granted} ({:.1} s)", started.elapsed().as_secs_f64());
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "granted {granted} of {} lines through {path} in {chunks} requests ({retries} retried) in {seconds:.1} s: {:.0} grants/s",
        lines.len(),
        granted as f64 / seconds.max(f64::EPSILON)
    );
    print!("{}", crate::render_requests(&tally.snapshot()));
    Ok(())
}
