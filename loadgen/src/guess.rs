//! `guess`: a password-guessing run against one citizen's login, as an attacker on one address
//! would make it, to measure what the server's login throttle lets through.
//!
//! Setup (untimed): the target citizen is registered (or found registered). The run:
//! `--concurrency` guessers, each in a closed loop, send wrong passwords for the target from this
//! machine's address until `--duration-s` passes, ignoring Retry-After (a guesser would). A 401
//! means the server checked a password: one guess made; a 429 means it refused before checking.
//! Meanwhile the login's owner logs in with the right password every `--owner-every-s` from
//! another loopback address (`--owner-address`, one that has not been failing), and logs out
//! again. After the run, the owner logs in from the guessers' address, waiting out each
//! Retry-After, to measure how long the guessing kept the owner out there.

use crate::in_range;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Api, Call, Outcome};
use crate::setup::{self, Registered};
use crate::stats::{self, KindTally, LatencySummary, Tally};
use crate::CommonArgs;

const CONCURRENCY_MAX: usize = 256;
const DURATION_S_MAX: f64 = 3_600.0;
/// How long the owner keeps trying from the guessers' address after the run.
const OWNER_AFTER_WAIT_MAX: Duration = Duration::from_secs(300);
/// The untimed setup stops here.
const SETUP_TIME_MAX: Duration = Duration::from_secs(60);

#[derive(clap::Args, Debug)]
pub struct GuessArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Guessers, each with one login attempt in flight.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds of guessing.
    #[arg(long, default_value_t = 120.0)]
    pub duration_s: f64,
    /// The owner logs in with the right password this often during the run (0: never).
    #[arg(long, default_value_t = 10.0)]
    pub owner_every_s: f64,
    /// The loopback address the owner's logins come from (the guessers use the default one,
    /// 127.0.0.1); it must differ from the guessers' for the server to tell them apart.
    #[arg(long, default_value = "127.0.0.2")]
    pub owner_address: IpAddr,
}

impl GuessArgs {
    fn check(&self) -> Result<(), String> {
        self.common.check()?;
        in_range("concurrency", self.concurrency as f64, 1.0, CONCURRENCY_MAX as f64)?;
        in_range("duration-s", self.duration_s, 1.0, DURATION_S_MAX)?;
        in_range("owner-every-s", self.owner_every_s, 0.0, DURATION_S_MAX)?;
        if !self.owner_address.is_loopback() {
            return Err(format!("--owner-address {} is not a loopback address", self.owner_address));
        }
        Ok(())
    }
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct GuessReport {
    pub run: String,
    pub login: String,
    pub concurrency: usize,
    pub duration_s: f64,
    /// Guesses whose password the server checked (401), in all and per minute of the run.
    pub guesses_checked: u64,
    pub guesses_checked_per_minute: f64,
    /// Guesses checked in each minute of the run, from its start.
    pub guesses_checked_by_minute: Vec<u64>,
    /// Attempts refused 429 `too_many_attempts` before any password check.
    pub attempts_refused: u64,
    /// Latency of checked guesses and of refusals.
    pub checked_latency: LatencySummary,
    pub refused_latency: LatencySummary,
    /// The owner's logins from another address during the run: tried, and let in.
    pub owner_logins_tried: u64,
    pub owner_logins_admitted: u64,
    /// After the run, from the guessers' address: seconds until the owner was let in (`None`:
    /// not within five minutes).
    pub owner_after_wait_s: Option<f64>,
    /// Every answer by kind (`guess`, `owner_login`, `owner_after`, ...).
    pub requests: BTreeMap<String, KindTally>,
}

#[derive(Default)]
struct Samples {
    /// (since the run's start, latency) of each checked guess, in microseconds.
    checked: Vec<(u64, u64)>,
    refused_us: Vec<u64>,
}

/// Runs the guessing and prints its report.
pub async fn run(args: GuessArgs) -> Result<(), String> {
    args.check()?;
    let base = args.common.loopback_base().await?;
    let run_id = args.common.run_id()?;
    let login = format!("lg-{run_id}-target");
    let tally = Arc::new(Tally::default());
    let limits = args.common.client_limits(args.concurrency + 1);
    let api = Api::new(&base, limits, Arc::clone(&tally))?;
    let owner_api = Api::new_from(&base, limits, Arc::clone(&tally), Some(args.owner_address))?;

    let setup_deadline = Instant::now() + SETUP_TIME_MAX;
    if let Registered::Failed(error) = setup::register_citizen(&api, "register", &login, setup_deadline).await {
        return Err(format!("cannot register the target {login}: {error}"));
    }
    eprintln!(
        "run {run_id}: {} guessers at {login} for {:.0} s against {}",
        args.concurrency, args.duration_s, base.base
    );

    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration_s);
    let samples = Arc::new(Mutex::new(Samples::default()));
    let mut guessers = JoinSet::new();
    for guesser in 0..args.concurrency {
        let (api, login, samples) = (api.clone(), login.clone(), Arc::clone(&samples));
        guessers.spawn(async move {
            for attempt in 0u64.. {
                if Instant::now() >= deadline {
                    break;
                }
                let body = json!({"login": login, "password": format!("guess-{guesser}-{attempt}")});
                let outcome = api.send(Call::post("guess", "/v1/sessions", None, body), deadline).await;
                let Outcome::Answered(answer) = outcome else { continue };
                let latency_us = answer.elapsed.as_micros() as u64;
                let mut samples = samples.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                match answer.status {
                    401 => samples.checked.push((started.elapsed().as_micros() as u64, latency_us)),
                    429 => samples.refused_us.push(latency_us),
                    _ => {}
                }
            }
        });
    }
    let (mut owner_tried, mut owner_admitted) = (0u64, 0u64);
    if args.owner_every_s > 0.0 {
        let mut next = started + Duration::from_secs_f64(args.owner_every_s / 2.0);
        while next < deadline {
            tokio::time::sleep_until(next).await;
            owner_tried += 1;
            if owner_login(&owner_api, "owner_login", &login, deadline).await.is_some() {
                owner_admitted += 1;
            }
            next += Duration::from_secs_f64(args.owner_every_s);
        }
    }
    while guessers.join_next().await.is_some() {}
    let elapsed = started.elapsed();

    // The owner, from the guessers' address, once the guessing stops.
    let after_started = Instant::now();
    let after_deadline = after_started + OWNER_AFTER_WAIT_MAX;
    let mut owner_after_wait_s = None;
    while Instant::now() < after_deadline {
        let body = json!({"login": login, "password": setup::PASSWORD});
        let outcome = api.send(Call::post("owner_after", "/v1/sessions", None, body), after_deadline).await;
        match &outcome {
            Outcome::Answered(answer) if answer.status == 201 => {
                owner_after_wait_s = Some(after_started.elapsed().as_secs_f64());
                logout(&api, &answer.body, after_deadline).await;
                break;
            }
            Outcome::Answered(answer) if answer.status == 429 || answer.status == 503 => {
                let wait = Duration::from_secs(answer.retry_after_s.unwrap_or(1).max(1));
                tokio::time::sleep(wait.min(after_deadline.saturating_duration_since(Instant::now()))).await;
            }
            other => return Err(format!("the owner's login after the run failed: {}", other.describe())),
        }
    }

    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    // Whole minutes of the run, a run stopping a moment past its last minute included in it.
    let minutes = ((elapsed.as_secs_f64() - 0.5) / 60.0).ceil().max(1.0) as usize;
    let mut by_minute = vec![0u64; minutes];
    for (at_us, _) in &samples.checked {
        by_minute[((*at_us / 60_000_000) as usize).min(minutes - 1)] += 1;
    }
    let checked = samples.checked.len() as u64;
    let report = GuessReport {
        run: run_id,
        login,
        concurrency: args.concurrency,
        duration_s: elapsed.as_secs_f64(),
        guesses_checked: checked,
        guesses_checked_per_minute: checked as f64 * 60.0 / elapsed.as_secs_f64().max(f64::EPSILON),
        guesses_checked_by_minute: by_minute,
        attempts_refused: samples.refused_us.len() as u64,
        checked_latency: stats::summarise_latency(samples.checked.iter().map(|(_, latency)| *latency).collect()),
        refused_latency: stats::summarise_latency(samples.refused_us),
        owner_logins_tried: owner_tried,
        owner_logins_admitted: owner_admitted,
        owner_after_wait_s,
        requests: tally.snapshot(),
    };
    print!("{}", render(&report));
    if let Some(path) = &args.common.json {
        crate::write_json(path, &report)?;
    }
    Ok(())
}

/// The owner logs in with the right password and out again; the token when let in.
async fn owner_login(api: &Api, kind: &'static str, login: &str, deadline: Instant) -> Option<String> {
    let body = json!({"login": login, "password": setup::PASSWORD});
    let outcome = api.send(Call::post(kind, "/v1/sessions", None, body), deadline).await;
    let answer = outcome.answer_with(201)?;
    let token = answer.body.get("token").and_then(Value::as_str)?.to_owned();
    logout(api, &answer.body, deadline).await;
    Some(token)
}

async fn logout(api: &Api, session: &Value, deadline: Instant) {
    if let Some(token) = session.get("token").and_then(Value::as_str) {
        let _ = api.send(Call::delete("logout", "/v1/sessions/current", Some(token)), deadline).await;
    }
}

/// The text report.
pub fn render(report: &GuessReport) -> String {
    let ms = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |value| format!("{value:.1} ms"));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run {}: {} guessers at {} for {:.1} s",
        report.run, report.concurrency, report.login, report.duration_s
    );
    let _ = writeln!(
        out,
        "guesses checked  {} ({:.1} per minute); by minute: {:?}; latency p50 {} p99 {}",
        report.guesses_checked,
        report.guesses_checked_per_minute,
        report.guesses_checked_by_minute,
        ms(report.checked_latency.p50_ms),
        ms(report.checked_latency.p99_ms)
    );
    let _ = writeln!(
        out,
        "refused (429)    {}; latency p50 {} p99 {}",
        report.attempts_refused,
        ms(report.refused_latency.p50_ms),
        ms(report.refused_latency.p99_ms)
    );
    let _ = writeln!(
        out,
        "owner meanwhile  {} of {} logins let in (from another address)",
        report.owner_logins_admitted, report.owner_logins_tried
    );
    let _ = writeln!(
        out,
        "owner after      {} (from the guessers' address, waiting out Retry-After)",
        report
            .owner_after_wait_s
            .map_or_else(|| "not let in within 300 s".to_owned(), |s| format!("let in after {s:.1} s"))
    );
    out.push_str(&crate::render_requests(&report.requests));
    out
}
