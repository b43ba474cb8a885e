//! `payments`: durable POS payments as fast as the server takes them, then balance reads.
//!
//! Setup (untimed): citizens are registered, logged in and charged; merchants are created through
//! an admin; the cashback budget is topped up; then payment codes are pre-issued (codes are
//! valid 180 s, so the issue phase and the run are kept short). The run: `--concurrency` POS
//! clients, each in a closed loop (next payment as soon as the last is answered), pay one code
//! each time with its own `Idempotency-Key`, until `--duration-s` passes or the codes run out.
//! Then, with `--reads-s`, the same number of clients read `GET /v1/wallet` in a closed loop.
//!
//! `--baseline` skips the setup and pays made-up codes with a made-up token: for
//! `minimal-server`, which answers fixed JSON, so the same load measures the HTTP ceiling.
//!
//! `--allowance-won` puts allowances in play: setup also creates an allowance program that
//! admits every merchant, funds it, and grants every citizen `--allowance-grants` allowances of
//! that many won (up to 1,000 wallets a request), so payments are paid from allowance purses
//! first (PROGRAMS.md); the report counts the payments whose `paid_from.allowances` was not 0.

use crate::in_range;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

const CITIZENS_MAX: usize = 10_000;
const MERCHANTS_MAX: usize = 1_000;
const CONCURRENCY_MAX: usize = 4_096;
/// Codes are valid 180 s: issuing plus paying must end well before the first expires.
const PHASE_S_MAX: f64 = 60.0;
const CODES_MAX: usize = 1_000_000;
/// What each citizen is charged: under the default monthly charge limit (2,000,000).
const CHARGE_WON: u64 = 1_900_000;
/// The untimed setup stops here.
const SETUP_TIME_MAX: Duration = Duration::from_secs(600);
/// The token `--baseline` sends (minimal-server only checks that one is there).
const BASELINE_TOKEN: &str = "baseline-token";
/// One allowance at most (the program's budget is their sum over every citizen and grant).
const ALLOWANCE_WON_MAX: u64 = 100_000_000;
const ALLOWANCE_GRANTS_MAX: usize = 100;
/// Wallets in one grants request at most (PROGRAMS.md: 1 to 1,000).
const GRANTS_PER_REQUEST_MAX: usize = 1_000;

#[derive(clap::Args, Debug)]
pub struct PaymentsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Login of a city admin (creates merchants, tops up the cashback budget).
    #[arg(long, required_unless_present = "baseline")]
    pub admin_login: Option<String>,
    /// That admin's password.
    #[arg(long, required_unless_present = "baseline")]
    pub admin_password: Option<String>,
    /// No setup: made-up token and codes, for minimal-server.
    #[arg(long)]
    pub baseline: bool,
    /// Citizens who pay (each charged 1,900,000 won).
    #[arg(long, default_value_t = 100)]
    pub citizens: usize,
    /// Merchants taking payments; POS client i uses merchant i mod this.
    #[arg(long, default_value_t = 8)]
    pub merchants: usize,
    /// POS clients (and readers), each with one request in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds of payments at most (the run ends sooner when the codes run out).
    #[arg(long, default_value_t = 15.0)]
    pub duration_s: f64,
    /// Seconds of pre-issuing codes at most.
    #[arg(long, default_value_t = 20.0)]
    pub issue_s: f64,
    /// Codes to pre-issue at most (also bounded by what the citizens' balances can pay).
    #[arg(long, default_value_t = 100_000)]
    pub codes_max: usize,
    /// Amount of each payment in won.
    #[arg(long, default_value_t = 1_000)]
    pub amount_won: u64,
    /// Cashback budget top-up before the run, so payments earn cashback (0: none).
    #[arg(long, default_value_t = 1_000_000_000)]
    pub budget_top_up_won: u64,
    /// Seconds of balance reads after the payments (0: none).
    #[arg(long, default_value_t = 0.0)]
    pub reads_s: f64,
    /// Setup requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub setup_concurrency: usize,
    /// Won of each allowance granted to every citizen in setup (0: no program, no allowance).
    #[arg(long, default_value_t = 0)]
    pub allowance_won: u64,
    /// Allowances (grants of one program) each citizen gets; spent one after the other.
    #[arg(long, default_value_t = 1)]
    pub allowance_grants: usize,
}

impl PaymentsArgs {
    fn check(&self) -> Result<(), String> {
        self.common.check()?;
        in_range("citizens", self.citizens as f64, 1.0, CITIZENS_MAX as f64)?;
        in_range("merchants", self.merchants as f64, 1.0, MERCHANTS_MAX as f64)?;
        in_range("concurrency", self.concurrency as f64, 1.0, CONCURRENCY_MAX as f64)?;
        in_range("duration-s", self.duration_s, 0.1, PHASE_S_MAX)?;
        in_range("issue-s", self.issue_s, 0.1, PHASE_S_MAX)?;
        in_range("reads-s", self.reads_s, 0.0, PHASE_S_MAX)?;
        in_range("codes-max", self.codes_max as f64, 1.0, CODES_MAX as f64)?;
        in_range("amount-won", self.amount_won as f64, 1.0, CHARGE_WON as f64)?;
        in_range("setup-concurrency", self.setup_concurrency as f64, 1.0, 1_024.0)?;
        in_range("allowance-won", self.allowance_won as f64, 0.0, ALLOWANCE_WON_MAX as f64)?;
        in_range("allowance-grants", self.allowance_grants as f64, 1.0, ALLOWANCE_GRANTS_MAX as f64)?;
        if self.baseline && self.allowance_won > 0 {
            return Err("--allowance-won needs a wallet server: it does not go with --baseline".to_owned());
        }
        Ok(())
    }
}

/// What one closed-loop phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// Requests answered with the success status (201 for payments, 200 for reads).
    pub ok: u64,
    /// Requests that ended any other way (see `requests` for how).
    pub failed: u64,
    /// From the start of the phase until its last request ended.
    pub elapsed_s: f64,
    /// `ok / elapsed_s`.
    pub ok_per_s: f64,
    /// Latency of every answered request, any status.
    pub latency: LatencySummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct PaymentsReport {
    pub run: String,
    pub baseline: bool,
    pub concurrency: usize,
    pub citizens: usize,
    pub merchants: usize,
    pub amount_won: u64,
    pub setup_s: f64,
    pub codes_issued: usize,
    pub codes_issue_s: f64,
    pub payments: PhaseReport,
    pub reads: Option<PhaseReport>,
    /// With `--allowance-won`: each citizen's allowances, and the payments answered 201 whose
    /// `paid_from.allowances` was more than 0.
    pub allowances: Option<AllowancesReport>,
    /// Answers by request kind, setup included.
    pub requests: std::collections::BTreeMap<String, KindTally>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AllowancesReport {
    pub program_id: String,
    pub grants_per_citizen: usize,
    pub won_each: u64,
    pub payments_paid_from_allowances: u64,
}

/// Runs the payments load and prints its report.
pub async fn run(args: PaymentsArgs) -> Result<(), String> {
    args.check()?;
    let base = args.common.loopback_base().await?;
    let run_id = args.common.run_id()?;
    let tally = Arc::new(Tally::default());
    let setup_api = Api::new(&base, args.common.client_limits(args.setup_concurrency), Arc::clone(&tally))?;
    let api = Api::new(&base, args.common.client_limits(args.concurrency), Arc::clone(&tally))?;
    let request_time_max = Duration::from_secs_f64(args.common.request_timeout_s);

    let setup_started = Instant::now();
    let setup_deadline = setup_started + SETUP_TIME_MAX;
    let (citizen_tokens, merchant_tokens, program_id) = if args.baseline {
        (vec![BASELINE_TOKEN.to_owned()], vec![BASELINE_TOKEN.to_owned()], None)
    } else {
        eprintln!("run {run_id}: setup against {}", base.base);
        prepare(&setup_api, &args, &run_id, setup_deadline).await?
    };
    let setup_s = setup_started.elapsed().as_secs_f64();

    // Every citizen can pay this many times from its charge and allowances (cashback only adds).
    let allowances_won = if program_id.is_some() { args.allowance_won * args.allowance_grants as u64 } else { 0 };
    let payments_per_citizen = usize::try_from((CHARGE_WON + allowances_won) / args.amount_won).unwrap_or(usize::MAX);
    let codes_wanted = if args.baseline {
        args.codes_max
    } else {
        args.codes_max.min(citizen_tokens.len().saturating_mul(payments_per_citizen))
    };
    let issue_started = Instant::now();
    let codes: Vec<String> = if args.baseline {
        (0..codes_wanted).map(|index| format!("BASELINE{index:012}")).collect()
    } else {
        eprintln!("issuing up to {codes_wanted} payment codes for at most {:.0} s", args.issue_s);
        let issue_until = issue_started + Duration::from_secs_f64(args.issue_s);
        issue_codes(&api, &citizen_tokens, codes_wanted, args.concurrency, issue_until, request_time_max).await
    };
    let codes_issue_s = issue_started.elapsed().as_secs_f64();
    if codes.is_empty() {
        return Err("no payment code was issued; see the request table".to_owned());
    }

    eprintln!(
        "paying {} codes at most, {} POS clients, for at most {:.0} s",
        codes.len(),
        args.concurrency,
        args.duration_s
    );
    let codes_issued = codes.len();
    let merchant_tokens = Arc::new(merchant_tokens);
    let codes = Arc::new(codes);
    let next_code = Arc::new(AtomicUsize::new(0));
    let amount = args.amount_won.to_string();
    let run_key = run_id.clone();
    let paid_from_allowances = Arc::new(AtomicU64::new(0));
    let paid_from_allowances_counter = Arc::clone(&paid_from_allowances);
    let payments = closed_loop(
        args.concurrency,
        args.duration_s,
        201,
        move |client| {
            let index = next_code.fetch_add(1, Ordering::Relaxed);
            let code = codes.get(index)?.clone();
            let merchant = merchant_tokens[client % merchant_tokens.len()].clone();
            let body = json!({"payment_code": code, "amount": amount});
            let key = format!("lg-{run_key}-pay-{index}");
            let paid_from_allowances = Arc::clone(&paid_from_allowances_counter);
            Some((merchant, move |api: Api, token: String| async move {
                let deadline = Instant::now() + request_time_max * 2;
                let call = Call::post("payment", "/v1/payments", Some(&token), body).idempotency_key(key);
                let outcome = api.send(call, deadline).await;
                let from_allowances = outcome
                    .answer_with(201)
                    .and_then(|answer| answer.body.pointer("/paid_from/allowances"))
                    .and_then(Value::as_str)
                    .is_some_and(|won| won != "0");
                if from_allowances {
                    paid_from_allowances.fetch_add(1, Ordering::Relaxed);
                }
                outcome
            }))
        },
        &api,
    )
    .await;

    let reads = if args.reads_s > 0.0 {
        eprintln!("reading balances: {} clients for {:.0} s", args.concurrency, args.reads_s);
        let citizen_tokens = Arc::new(citizen_tokens.clone());
        Some(
            closed_loop(
                args.concurrency,
                args.reads_s,
                200,
                move |client| {
                    let token = citizen_tokens[client % citizen_tokens.len()].clone();
                    Some((token, move |api: Api, token: String| async move {
                        let deadline = Instant::now() + request_time_max * 2;
                        api.send(Call::get("wallet_read", "/v1/wallet", Some(&token)), deadline).await
                    }))
                },
                &api,
            )
            .await,
        )
    } else {
        None
    };

    let report = PaymentsReport {
        run: run_id,
        baseline: args.baseline,
        concurrency: args.concurrency,
        citizens: citizen_tokens.len(),
        merchants: args.merchants,
        amount_won: args.amount_won,
        setup_s,
        codes_issued,
        codes_issue_s,
        payments,
        reads,
        allowances: program_id.map(|program_id| AllowancesReport {
            program_id,
            grants_per_citizen: args.allowance_grants,
            won_each: args.allowance_won,
            payments_paid_from_allowances: paid_from_allowances.load(Ordering::Relaxed),
        }),
        requests: tally.snapshot(),
    };
    print!("{}", render(&report));
    if let Some(path) = &args.common.json {
        crate::write_json(path, &report)?;
    }
    Ok(())
}

/// Registers, logs in and charges the citizens, creates the merchants, tops up the budget;
/// with `--allowance-won`, grants every citizen its allowances. Returns the citizens' and the
/// merchants' tokens, and the allowance program's id.
async fn prepare(
    api: &Api,
    args: &PaymentsArgs,
    run_id: &str,
    deadline: Instant,
) -> Result<(Vec<String>, Vec<String>, Option<String>), String> {
    let admin_login = args.admin_login.as_deref().ok_or("--admin-login is required without --baseline")?;
    let admin_password = args.admin_password.as_deref().ok_or("--admin-password is required without --baseline")?;
    let admin = setup::login_direct(api, "admin_login", admin_login, admin_password, deadline)
        .await
        .map_err(|error| format!("{error}; check --admin-login/--admin-password"))?;
    let merchants =
        crate::cutover::create_merchants(api, &admin, run_id, args.merchants, args.setup_concurrency, deadline).await?;
    if args.budget_top_up_won > 0 {
        setup::top_up_budget(api, &admin, run_id, args.budget_top_up_won, deadline).await;
    }
    let tokens = setup::for_each_bounded(args.citizens, args.setup_concurrency, Some("citizens"), |index| {
        let api = api.clone();
        let login = format!("lg-{run_id}-c{index}");
        let charge_key = format!("lg-{run_id}-charge-{index}");
        async move {
            if let Registered::Failed(error) = setup::register_citizen(&api, "citizen_register", &login, deadline).await
            {
                return Err(format!("citizen {login}: registration failed: {error}"));
            }
            // Logins go straight in: the benchmark starts the server with a large session capacity.
            let token = setup::login_direct(&api, "citizen_login", &login, setup::PASSWORD, deadline).await?;
            setup::charge(&api, &token, &format!("citizen {login}"), CHARGE_WON, charge_key, deadline).await?;
            Ok(token)
        }
    })
    .await;
    let ready = setup::ready_tokens(tokens);
    if ready.is_empty() {
        return Err("no citizen is ready to pay; see the warnings above".to_owned());
    }
    let program_id = if args.allowance_won > 0 {
        Some(grant_allowances(api, &admin, args, run_id, &ready, deadline).await?)
    } else {
        None
    };
    Ok((ready, merchants, program_id))
}

/// Creates an allowance program that admits every merchant, funds it with exactly what the
/// grants need, and grants each citizen `--allowance-grants` allowances of `--allowance-won`.
/// Returns the program's id.
async fn grant_allowances(
    api: &Api,
    admin: &str,
    args: &PaymentsArgs,
    run_id: &str,
    citizen_tokens: &[String],
    deadline: Instant,
) -> Result<String, String> {
    let wallets = setup::for_each_bounded(citizen_tokens.len(), args.setup_concurrency, None, |index| {
        let (api, token) = (api.clone(), citizen_tokens[index].clone());
        async move {
            let read = api.send(Call::get("wallet_read", "/v1/wallet", Some(&token)), deadline).await;
            read.answer_with(200)
                .and_then(|answer| answer.body.get("wallet_id"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("reading a citizen's wallet id failed: {}", read.describe()))
        }
    })
    .await
    .into_iter()
    .collect::<Result<Vec<String>, String>>()?;

    let body = json!({"kind": "allowance", "name": format!("loadgen allowance {run_id}"), "valid_days": 90});
    let created = api.send(Call::post("program_create", "/v1/admin/programs", Some(admin), body), deadline).await;
    let program_id = created
        .answer_with(201)
        .and_then(|answer| answer.body.get("program_id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("creating the allowance program failed: {}", created.describe()))?;
    let total = args
        .allowance_won
        .checked_mul(args.allowance_grants as u64)
        .and_then(|won| won.checked_mul(wallets.len() as u64))
        .ok_or("the allowances' total overflows")?;
    let call = Call::post(
        "program_top_up",
        format!("/v1/admin/programs/{program_id}/budget-top-ups"),
        Some(admin),
        json!({"amount": total.to_string()}),
    )
    .idempotency_key(format!("lg-{run_id}-program-budget"));
    let topped_up = api.send(call, deadline).await;
    if topped_up.answer_with(201).is_none() {
        return Err(format!("funding the allowance program failed: {}", topped_up.describe()));
    }
    let amount = args.allowance_won.to_string();
    for round in 0..args.allowance_grants {
        for (chunk_index, chunk) in wallets.chunks(GRANTS_PER_REQUEST_MAX).enumerate() {
            let lines: Vec<Value> = chunk.iter().map(|wallet| json!({"wallet_id": wallet, "amount": amount})).collect();
            let call = Call::post(
                "program_grant",
                format!("/v1/admin/programs/{program_id}/grants"),
                Some(admin),
                json!({"grants": lines}),
            )
            .idempotency_key(format!("lg-{run_id}-grant-{round}-{chunk_index}"));
            let granted = api.send(call, deadline).await;
            if granted.answer_with(201).is_none() {
                return Err(format!("granting allowances failed: {}", granted.describe()));
            }
        }
    }
    eprintln!(
        "allowances: program {program_id}, {} citizens x {} grants of {} won",
        wallets.len(),
        args.allowance_grants,
        args.allowance_won
    );
    Ok(program_id)
}

/// Issues up to `count` codes, spread over the citizens in turn, with `concurrency` requests in
/// flight, until `until`. Codes are returned in issue order.
async fn issue_codes(
    api: &Api,
    citizen_tokens: &[String],
    count: usize,
    concurrency: usize,
    until: Instant,
    request_time_max: Duration,
) -> Vec<String> {
    let codes = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let next = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(citizen_tokens.to_vec());
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (api, codes, next, tokens) = (api.clone(), Arc::clone(&codes), Arc::clone(&next), Arc::clone(&tokens));
        tasks.spawn(async move {
            while Instant::now() < until {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    break;
                }
                let token = &tokens[index % tokens.len()];
                let deadline = (Instant::now() + request_time_max * 2).min(until + request_time_max);
                let outcome =
                    api.send(Call::post_empty("payment_code", "/v1/wallet/payment-codes", Some(token)), deadline).await;
                if let Some(code) = outcome.answer_with(201).and_then(|answer| answer.body.get("code")) {
                    if let (Some(code), Ok(mut codes)) = (code.as_str(), codes.lock()) {
                        codes.push(code.to_owned());
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let mut codes = codes.lock().map(|codes| codes.clone()).unwrap_or_default();
    codes.truncate(count);
    codes
}

/// Runs `clients` closed loops for `duration_s`: each asks `next(client)` for its next request
/// (a token and a sender), sends it, and starts the next as soon as it is answered; a loop ends
/// when `next` gives `None` or the time is up. Counts `ok_status` answers as successes.
async fn closed_loop<Sender, Fut>(
    clients: usize,
    duration_s: f64,
    ok_status: u16,
    next: impl Fn(usize) -> Option<(String, Sender)> + Send + Sync + 'static,
    api: &Api,
) -> PhaseReport
where
    Sender: FnOnce(Api, String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let next = Arc::new(next);
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let latencies_us = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(duration_s);
    let mut tasks = JoinSet::new();
    for client in 0..clients {
        let (api, next, ok, failed, latencies_us) =
            (api.clone(), Arc::clone(&next), Arc::clone(&ok), Arc::clone(&failed), Arc::clone(&latencies_us));
        tasks.spawn(async move {
            let mut mine = Vec::new();
            while Instant::now() < until {
                let Some((token, send)) = next(client) else { break };
                let outcome = send(api.clone(), token).await;
                if let Outcome::Answered(answer) = &outcome {
                    mine.push(answer.elapsed.as_micros() as u64);
                }
                if outcome.answer_with(ok_status).is_some() {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Ok(mut latencies_us) = latencies_us.lock() {
                latencies_us.extend(mine);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed_s = started.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    let samples = latencies_us.lock().map(|samples| samples.clone()).unwrap_or_default();
    PhaseReport {
        ok,
        failed: failed.load(Ordering::Relaxed),
        elapsed_s,
        ok_per_s: ok as f64 / elapsed_s.max(f64::EPSILON),
        latency: stats::summarise_latency(samples),
    }
}

fn phase_line(name: &str, phase: &PhaseReport) -> String {
    let ms = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |value| format!("{value:.1}"));
    format!(
        "{name:<9} ok {} failed {} in {:.1} s: {:.1}/s; latency ms p50 {} p99 {} max {}\n",
        phase.ok,
        phase.failed,
        phase.elapsed_s,
        phase.ok_per_s,
        ms(phase.latency.p50_ms),
        ms(phase.latency.p99_ms),
        ms(phase.latency.max_ms)
    )
}

/// The text report.
pub fn render(report: &PaymentsReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run {}{}: {} POS clients, {} citizens, {} merchants, {} won each; setup {:.1} s; {} codes issued in {:.1} s",
        report.run,
        if report.baseline { " (baseline)" } else { "" },
        report.concurrency,
        report.citizens,
        report.merchants,
        report.amount_won,
        report.setup_s,
        report.codes_issued,
        report.codes_issue_s
    );
    out.push_str(&phase_line("payments", &report.payments));
    if let Some(reads) = &report.reads {
        out.push_str(&phase_line("reads", reads));
    }
    if let Some(allowances) = &report.allowances {
        let _ = writeln!(
            out,
            "allowances: program {}, {} grants of {} won a citizen; payments paid from allowances: {} of {}",
            allowances.program_id,
            allowances.grants_per_citizen,
            allowances.won_each,
            allowances.payments_paid_from_allowances,
            report.payments.ok
        );
    }
    out.push_str(&crate::render_requests(&report.requests));
    out
}
