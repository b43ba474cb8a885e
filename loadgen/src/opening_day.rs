//! `opening-day`: the opening of a charge bonus program (issue 17). Citizens registered in setup
//! each have an "app" that logs in at the opening of the citizen's cohort, through the waiting
//! room as cutover's citizens do, then charges the program's monthly charge cap once; merchants
//! take POS payments at a steady rate throughout (cutover's payers and merchants). The program is
//! created and funded in setup with a budget that pays a given fraction of the citizens their
//! full bonus. The report says who got their full bonus in each cohort, whether the bonuses
//! answered add up to exactly what the program's budget paid out, and what the opening did to
//! POS payments and the waiting line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Api, Call, Outcome};
use crate::cutover::{self, AdmissionSeen, PaymentPlan, PaymentRecorder, PaymentsReport};
use crate::memory::{MemorySummary, Sampler};
use crate::setup::{self, Registered, PASSWORD};
use crate::stats::{self, KindTally, LatencySummary, Tally};
use crate::waiting::{self, LoginEnd, RetryPolicy};
use crate::{in_range, CommonArgs};

const CITIZENS_MAX: usize = 100_000;
const PHASE_S_MAX: f64 = 3_600.0;
const SETUP_TIME_MAX: Duration = Duration::from_secs(4 * 3_600);
const CLEANUP_TIME_MAX: Duration = Duration::from_secs(40);
const LOGIN_REQUESTS_MAX: u32 = 10_000;
/// Attempts of one citizen's charge (503s and transport failures are retried with the same key).
const CHARGE_ATTEMPTS_MAX: u32 = 50;
/// Registration attempts when the server answers 503 or the connection fails.
const REGISTER_ATTEMPTS_MAX: u32 = 5;
/// An app starts this long after its cohort's opening by the server's clock (the same machine's
/// clock, read through a different API): never a hair early.
const OPENING_MARGIN: Duration = Duration::from_millis(50);
/// From the end of setup to cohort 0's opening, besides the quiet phase.
const OPENING_LEAD_EXTRA_S: i64 = 3;

#[derive(clap::Args, Debug)]
pub struct OpeningDayArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Login of a city admin (creates merchants and the program, funds it, reads admission).
    #[arg(long)]
    pub admin_login: String,
    #[arg(long)]
    pub admin_password: String,
    /// Citizens registered in setup; each one's app logs in at its cohort's opening and charges.
    #[arg(long)]
    pub citizens: usize,
    /// Cohorts of the program (1: everyone opens at once).
    #[arg(long, default_value_t = 1)]
    pub cohorts: u32,
    /// Seconds between two cohorts' openings.
    #[arg(long, default_value_t = 10)]
    pub cohort_interval_s: u32,
    /// The program's bonus rate, a decimal string (0 < rate <= 1).
    #[arg(long, default_value = "0.10")]
    pub rate: String,
    /// The program's monthly charge cap in won; every citizen charges exactly this.
    #[arg(long, default_value_t = 500_000)]
    pub monthly_charge_cap: u64,
    /// The budget pays this fraction of the citizens their full bonus (floor(cap x rate)).
    #[arg(long, default_value_t = 0.6)]
    pub budget_fraction: f64,
    #[arg(long, default_value_t = 4)]
    pub merchants: usize,
    /// POS payments per second, all merchants together, from the quiet phase to the end.
    #[arg(long, default_value_t = 20.0)]
    pub pay_rate: f64,
    #[arg(long, default_value_t = 20)]
    pub payers: usize,
    #[arg(long)]
    pub payment_amount_won: Option<u64>,
    /// Cashback budget top-up made in setup (payments earn cashback, as in cutover).
    #[arg(long, default_value_t = 100_000_000)]
    pub budget_top_up_won: u64,
    #[arg(long, default_value_t = 64)]
    pub payments_in_flight_max: usize,
    /// Seconds of payments alone before cohort 0 opens (the baseline latency).
    #[arg(long, default_value_t = 15.0)]
    pub quiet_s: f64,
    /// Seconds a citizen's app keeps its session after its charge is answered, then logs out.
    #[arg(long, default_value_t = 20.0)]
    pub hold_s: f64,
    /// Balance reads per second while the session is held (0: none).
    #[arg(long, default_value_t = 1.0)]
    pub reads_per_s: f64,
    /// Seconds after the last cohort's opening when everything stops.
    #[arg(long, default_value_t = 400.0)]
    pub deadline_s: f64,
    /// The app's longest sleep between retries (logins, polls, charges), whatever Retry-After says.
    #[arg(long, default_value_t = 5.0)]
    pub retry_after_cap_s: f64,
    /// Random delay of up to this many milliseconds added to every retry sleep.
    #[arg(long, default_value_t = 250)]
    pub retry_jitter_ms: u64,
    /// Poll GET /v1/waiting-room/{ticket} between login retries (as an app shows the line).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub poll_waiting_room: bool,
    #[arg(long, default_value_t = 8)]
    pub setup_concurrency: usize,
    /// Register citizens until every cohort has `citizens / cohorts` of them, and run exactly
    /// those. A city's hashed cohorts are equal to a tenth of a percent (930,000 citizens);
    /// at a benchmark's few thousand they differ by a few percent, and with equal shares by rule
    /// the full-bonus rate would measure the sample's sizes, not the server's fairness.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub equal_cohorts: bool,
}

/// Registration rounds at most when filling equal cohorts (each registers what the emptiest
/// cohort lacks, times the cohorts, and half again).
const EQUAL_COHORT_ROUNDS_MAX: usize = 8;

impl OpeningDayArgs {
    fn check(&self) -> Result<(), String> {
        in_range("citizens", self.citizens as f64, 1.0, CITIZENS_MAX as f64)?;
        in_range("cohorts", f64::from(self.cohorts), 1.0, 31.0)?;
        in_range("cohort-interval-s", f64::from(self.cohort_interval_s), 0.0, 604_800.0)?;
        in_range("monthly-charge-cap", self.monthly_charge_cap as f64, 1.0, 1e12)?;
        in_range("budget-fraction", self.budget_fraction, 0.0, 1.0)?;
        in_range("merchants", self.merchants as f64, 1.0, 1_000.0)?;
        in_range("pay-rate", self.pay_rate, 0.0, 2_000.0)?;
        in_range("payers", self.payers as f64, 1.0, 1_000.0)?;
        in_range("payments-in-flight-max", self.payments_in_flight_max as f64, 1.0, 4_096.0)?;
        in_range("quiet-s", self.quiet_s, 0.0, PHASE_S_MAX)?;
        in_range("hold-s", self.hold_s, 0.0, PHASE_S_MAX)?;
        in_range("reads-per-s", self.reads_per_s, 0.0, 50.0)?;
        in_range("deadline-s", self.deadline_s, 1.0, PHASE_S_MAX)?;
        in_range("retry-after-cap-s", self.retry_after_cap_s, 0.1, 55.0)?;
        in_range("retry-jitter-ms", self.retry_jitter_ms as f64, 0.0, 10_000.0)?;
        in_range("setup-concurrency", self.setup_concurrency as f64, 1.0, 256.0)?;
        parse_rate(&self.rate).map(|_| ())?;
        self.common.check()
    }
}

/// A decimal rate as `numerator / 10^scale`.
fn parse_rate(text: &str) -> Result<(u64, u32), String> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let valid = !whole.is_empty()
        && whole.bytes().all(|byte| byte.is_ascii_digit())
        && fraction.bytes().all(|byte| byte.is_ascii_digit())
        && fraction.len() <= 9;
    let parsed = valid.then(|| format!("{whole}{fraction}").parse::<u64>().ok()).flatten();
    match parsed {
        Some(numerator) if numerator > 0 && numerator <= 10u64.pow(fraction.len() as u32) => {
            Ok((numerator, fraction.len() as u32))
        }
        _ => Err(format!("--rate {text:?} must be a decimal above 0 and at most 1")),
    }
}

/// floor(cap x rate): the full bonus of a charge of the whole cap.
fn full_bonus(cap: u64, rate: (u64, u32)) -> u64 {
    (u128::from(cap) * u128::from(rate.0) / 10u128.pow(rate.1)) as u64
}

/// Whole won of a JSON string (or number) field.
fn won(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::String(text) => text.parse().ok(),
        Value::Number(number) => number.as_u64(),
        _ => None,
    }
}

/// The wall clock (chrono is built without its clock here).
fn now_utc() -> DateTime<Utc> {
    DateTime::<Utc>::from(std::time::SystemTime::now())
}

fn instant_of(text: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text?).ok().map(|at| at.with_timezone(&Utc))
}

#[derive(Debug, Serialize)]
pub struct OpeningDayReport {
    pub run_id: String,
    pub url: String,
    pub config: Value,
    pub setup: SetupReport,
    pub program: ProgramReport,
    pub opening: OpeningReport,
    pub cohorts: Vec<CohortReport>,
    pub bonus_total: BonusTotals,
    pub payments: PaymentsReport,
    pub requests: BTreeMap<String, KindTally>,
    pub errors: ErrorReport,
    pub server_memory: Option<MemorySummary>,
}

#[derive(Debug, Serialize)]
pub struct SetupReport {
    pub setup_s: f64,
    pub citizens_registered: usize,
    pub citizens_registration_failed: usize,
    pub payers_logged_in: usize,
    pub payer_charge_won: u64,
}

#[derive(Debug, Serialize)]
pub struct ProgramReport {
    pub program_id: String,
    pub opens_at: String,
    pub closes_at: String,
    pub cohorts: u32,
    pub cohort_interval_s: u32,
    pub rate: String,
    pub monthly_charge_cap: u64,
    pub full_bonus: u64,
    /// Citizens the budget can pay their full bonus: round(fraction x citizens).
    pub budget_citizens: u64,
    pub budget_funded: u64,
    /// The program's budget as `GET /v1/admin/programs/{id}` showed it after the run.
    pub budget_after: Value,
}

#[derive(Debug, Serialize)]
pub struct OpeningReport {
    pub citizens: usize,
    pub logged_in: usize,
    pub not_logged_in: BTreeMap<String, usize>,
    pub charged: usize,
    pub charge_failed: BTreeMap<String, usize>,
    /// From the first cohort's opening to the last citizen's charge answer.
    pub last_charge_s: Option<f64>,
    /// From a citizen's cohort opening (its app's first login attempt) to its 201.
    pub login_wait_s_p50: Option<f64>,
    pub login_wait_s_p99: Option<f64>,
    pub login_wait_s_max: Option<f64>,
    pub login_attempts: u64,
    pub waiting_room_polls: u64,
    pub retry_after_s_max: u64,
    pub charge_attempts: u64,
    /// `GET /v1/admin/admission` each second from the first opening.
    pub server_active_sessions_max: Option<u64>,
    pub server_session_capacity: Option<u64>,
    pub server_waiting_max: Option<u64>,
    pub server_admission_samples: u64,
    /// Citizens' sessions held at once, client side (payers' sessions not counted).
    pub sessions_held_max_client: i64,
    /// `GET /v1/wallet` after login: the cohort opening the server shows against the one
    /// computed here from the wallet id (SHA-256, PROGRAMS.md).
    pub wallet_opens_at_matches: usize,
    pub wallet_opens_at_mismatches: usize,
    pub wallet_without_charge_bonus: usize,
    /// The waiting room's `charge_bonus_opens_at` (citizens who got at least one such answer).
    pub waiting_answers_with_opens_at: usize,
    pub waiting_opens_at_mismatches: usize,
    /// Apps that were admitted before their cohort opened by the server's word and waited.
    pub charges_delayed_to_opening: usize,
    pub wallet_read_latency: LatencySummary,
}

#[derive(Debug, Serialize)]
pub struct CohortReport {
    pub cohort: u32,
    pub opens_at: Option<String>,
    pub citizens: usize,
    pub charged: usize,
    /// bonus == floor(cap x rate).
    pub full_bonus: usize,
    pub partial_bonus: usize,
    pub zero_bonus: usize,
    /// full_bonus / citizens.
    pub full_bonus_rate: f64,
    /// floor(share / full bonus): citizens the share can pay in full.
    pub share_full_bonuses: u64,
    /// full_bonus / min(citizens, share_full_bonuses): how much of what the share could do it did.
    pub share_fill: f64,
    pub share: Option<u64>,
    pub paid_out: Option<u64>,
    pub remaining: Option<u64>,
    /// Sum of the `bonus` fields of this cohort's charge answers.
    pub bonus_answered: u64,
    pub login_wait_s_max: Option<f64>,
    pub login_wait_s_p50: Option<f64>,
    /// Of the full bonuses, the latest one's charge answer, from the cohort's opening.
    pub last_full_bonus_s: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct BonusTotals {
    /// Sum of every `bonus` field of the charge answers.
    pub answered: u64,
    /// The program's `budget.paid_out` after the run.
    pub paid_out: Option<u64>,
    pub funded: Option<u64>,
    /// answered == paid_out, and each cohort's answers == its paid_out.
    pub exact: bool,
    pub cohorts_exact: bool,
    /// Citizens that got the full bonus, against the citizens the budget could pay.
    pub full_bonus_citizens: usize,
    pub budget_citizens: u64,
}

#[derive(Debug, Serialize)]
pub struct ErrorReport {
    /// Answers that are neither 2xx nor 503 `waiting_room`/`overloaded`, plus timeouts and
    /// connection errors: must be 0.
    pub other_than_orderly_503: u64,
    pub by_kind: BTreeMap<String, u64>,
    pub orderly_503: u64,
    pub timeouts: u64,
    pub connection_errors: u64,
    pub cut_at_deadline: u64,
}

/// One citizen, as setup made it.
#[derive(Clone)]
struct Citizen {
    index: usize,
    login: String,
    cohort: u32,
    opens_at: DateTime<Utc>,
}

/// What one citizen's app went through.
#[derive(Debug, Clone, Default)]
struct AppResult {
    cohort: u32,
    not_logged_in: Option<String>,
    login_wait: Option<Duration>,
    login_attempts: u32,
    polls: u32,
    retry_after_s_max: u64,
    charge_attempts: u32,
    charge_failed: Option<String>,
    bonus: Option<u64>,
    /// From the cohort's opening to the charge's 201.
    charged_after: Option<Duration>,
    /// From the first cohort's opening to the charge's 201.
    charged_since_first: Option<Duration>,
    wallet_opens_at: Option<DateTime<Utc>>,
    wallet_without_charge_bonus: bool,
    waiting_opens_at: Option<DateTime<Utc>>,
    delayed_to_opening: bool,
}

/// Runs an opening day and prints its report.
pub async fn run(args: OpeningDayArgs) -> Result<(), String> {
    args.check()?;
    let rate = parse_rate(&args.rate)?;
    let full = full_bonus(args.monthly_charge_cap, rate);
    if full == 0 {
        return Err("the full bonus floor(cap x rate) is 0: raise --monthly-charge-cap or --rate".to_owned());
    }
    let base = args.common.loopback_base().await?;
    let run_id = args.common.run_id()?;
    let tally = Arc::new(Tally::default());
    let api = Api::new(&base, args.common.client_limits(args.common.in_flight_max), Arc::clone(&tally))?;
    let payment_api =
        Api::new(&base, args.common.client_limits(args.payments_in_flight_max * 2 + 4), Arc::clone(&tally))?;
    let sampler = args.common.server_pid.map(Sampler::start).transpose()?;

    let setup_started = Instant::now();
    let setup_deadline = setup_started + SETUP_TIME_MAX;
    eprintln!("run {run_id}: setup against {}", base.base);
    let admin = setup::login_direct(&api, "admin_login", &args.admin_login, &args.admin_password, setup_deadline)
        .await
        .map_err(|error| format!("{error}; check that the server is up and --admin-login/--admin-password"))?;
    let policy = api.send(Call::get("policy_read", "/v1/admin/policy", Some(&admin)), setup_deadline).await;
    let policy = policy.answer_with(200).map(|answer| answer.body.clone());
    if let Some(limit) = policy.as_ref().and_then(|policy| won(policy.get("monthly_charge_limit"))) {
        if args.monthly_charge_cap > limit {
            return Err(format!(
                "--monthly-charge-cap {} is above the policy's monthly charge limit {limit}",
                args.monthly_charge_cap
            ));
        }
    }
    let payer_charge_won = cutover::payer_charge_won(policy.as_ref());
    let merchants =
        cutover::create_merchants(&api, &admin, &run_id, args.merchants, args.setup_concurrency, setup_deadline)
            .await?;

    // Citizens: registered, their wallet ids kept (the cohort is computed from them).
    let cohorts_only = wallet_core::ChargeBonusRules {
        rate: wallet_core::Rate::ZERO,
        monthly_charge_cap: wallet_core::Won::ZERO,
        opens_at: now_utc(),
        closes_at: now_utc(),
        cohorts: args.cohorts,
        cohort_interval_s: 0,
    };
    let cohort_target = args.citizens / args.cohorts as usize;
    let mut logins: Vec<String> = Vec::new();
    let mut registered: Vec<Result<String, String>> = Vec::new();
    let mut wanted = args.citizens;
    for _ in 0..EQUAL_COHORT_ROUNDS_MAX {
        let first = logins.len();
        logins.extend((first..first + wanted).map(|index| format!("lg-{run_id}-{index}")));
        let round = setup::for_each_bounded(wanted, args.setup_concurrency, Some("registering citizens"), |offset| {
            let (api, login) = (api.clone(), logins[first + offset].clone());
            async move { register_with_wallet(&api, &login, setup_deadline).await }
        })
        .await;
        registered.extend(round);
        if !args.equal_cohorts {
            break;
        }
        let counts = cohort_counts(&registered, &cohorts_only);
        let lacking = counts.iter().map(|count| cohort_target.saturating_sub(*count)).max().unwrap_or(0);
        if lacking == 0 {
            break;
        }
        wanted = lacking * args.cohorts as usize * 3 / 2 + 1;
    }
    let registration_failed = registered.iter().filter(|result| result.is_err()).count();
    for error in registered.iter().filter_map(|result| result.as_ref().err()).take(5) {
        eprintln!("warning: {error}");
    }
    if args.budget_top_up_won > 0 {
        setup::top_up_budget(&api, &admin, &run_id, args.budget_top_up_won, setup_deadline).await;
    }
    let payers = prepare_payers(&api, &run_id, &args, payer_charge_won, setup_deadline).await?;

    // Who runs: everyone registered, or with equal cohorts the first `cohort_target` of each.
    let mut taken = vec![0usize; args.cohorts as usize];
    let mut running = Vec::new();
    for (index, result) in registered.iter().enumerate() {
        let Ok(wallet_id) = result else { continue };
        let wallet = wallet_core::WalletId::parse(wallet_id)
            .map_err(|error| format!("the server's wallet id {wallet_id:?} does not parse: {error:?}"))?;
        let cohort = cohorts_only.cohort_of(&wallet);
        if args.equal_cohorts {
            if taken[cohort as usize] == cohort_target {
                continue;
            }
            taken[cohort as usize] += 1;
        }
        running.push((index, cohort));
    }
    if args.equal_cohorts && taken.iter().any(|count| *count < cohort_target) {
        return Err(format!(
            "{} registrations filled the cohorts only to {taken:?} of {cohort_target}; lower --citizens",
            registered.len()
        ));
    }

    // The program, created and funded last, opening after the quiet phase.
    let budget_citizens = (args.budget_fraction * running.len() as f64).round() as u64;
    let budget_funded = budget_citizens * full;
    let lead_s = args.quiet_s.ceil() as i64 + OPENING_LEAD_EXTRA_S;
    let opens_at = DateTime::from_timestamp(now_utc().timestamp() + lead_s + 1, 0).expect("now is in range");
    let last_opens =
        opens_at + chrono::Duration::seconds(i64::from(args.cohorts - 1) * i64::from(args.cohort_interval_s));
    let closes_at = last_opens + chrono::Duration::days(1);
    let rfc = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let body = json!({
        "kind": "charge_bonus", "name": format!("opening day {run_id}"), "rate": args.rate,
        "monthly_charge_cap": args.monthly_charge_cap.to_string(), "opens_at": rfc(opens_at),
        "closes_at": rfc(closes_at), "cohorts": args.cohorts, "cohort_interval_s": args.cohort_interval_s,
    });
    let created = api
        .send(
            Call::post("program_create", "/v1/admin/programs", Some(&admin), body.clone())
                .idempotency_key(format!("lg-{run_id}-program")),
            setup_deadline,
        )
        .await;
    let Some(program_id) = created
        .answer_with(201)
        .and_then(|answer| answer.body.get("program_id").and_then(Value::as_str))
        .map(str::to_owned)
    else {
        return Err(format!("POST /v1/admin/programs {body} answered {}", created.describe()));
    };
    if budget_funded > 0 {
        let top_up = api
            .send(
                Call::post(
                    "program_top_up",
                    format!("/v1/admin/programs/{program_id}/budget-top-ups"),
                    Some(&admin),
                    json!({"amount": budget_funded.to_string()}),
                )
                .idempotency_key(format!("lg-{run_id}-program-top-up")),
                setup_deadline,
            )
            .await;
        if top_up.answer_with(201).is_none() {
            return Err(format!(
                "POST /v1/admin/programs/{program_id}/budget-top-ups {{\"amount\":\"{budget_funded}\"}} answered {}",
                top_up.describe()
            ));
        }
    }
    let rules = wallet_core::ChargeBonusRules {
        rate: wallet_core::Rate::ZERO,
        monthly_charge_cap: wallet_core::Won::ZERO,
        opens_at,
        closes_at,
        cohorts: args.cohorts,
        cohort_interval_s: args.cohort_interval_s,
    };
    let citizens: Vec<Citizen> = running
        .into_iter()
        .map(|(index, cohort)| Citizen {
            index,
            login: logins[index].clone(),
            cohort,
            opens_at: rules.cohort_opens_at(cohort),
        })
        .collect();
    if citizens.is_empty() {
        return Err("no citizen could be registered".to_owned());
    }
    let setup_s = setup_started.elapsed().as_secs_f64();

    // Wall clock to the runtime's clock, once.
    let to_instant = |at: DateTime<Utc>| {
        let ahead = (at - now_utc()).to_std().unwrap_or(Duration::ZERO);
        Instant::now() + ahead
    };
    let first_opening = to_instant(opens_at);
    let deadline = to_instant(last_opens) + Duration::from_secs_f64(args.deadline_s);
    let quiet_until = first_opening;
    let request_timeout = Duration::from_secs_f64(args.common.request_timeout_s);
    let run_s =
        quiet_until.saturating_duration_since(Instant::now()).as_secs_f64() + (deadline - first_opening).as_secs_f64();
    let payment_amount_won = match args.payment_amount_won {
        Some(amount) => amount,
        None => cutover::payment_amount_won(payer_charge_won, args.pay_rate, run_s, payers.len())?,
    };

    eprintln!(
        "quiet phase: {:.0} s of payments at {}/s; cohort 0 opens at {} ({} cohorts, {} s apart)",
        quiet_until.saturating_duration_since(Instant::now()).as_secs_f64(),
        args.pay_rate,
        rfc(opens_at),
        args.cohorts,
        args.cohort_interval_s
    );
    let recorder = Arc::new(PaymentRecorder::default());
    let (payments_stop, payments_stopped) = watch::channel(false);
    let plan = PaymentPlan {
        api: payment_api.clone(),
        payer_tokens: Arc::new(payers),
        merchant_tokens: Arc::new(merchants),
        amount_won: payment_amount_won,
        rate_per_s: args.pay_rate,
        in_flight_max: args.payments_in_flight_max,
        run_id: run_id.clone(),
        request_timeout,
        run_time_max: Duration::from_secs_f64(run_s) + CLEANUP_TIME_MAX,
    };
    let payer_count = plan.payer_tokens.len();
    let payments = tokio::spawn(cutover::generate_payments(plan, Arc::clone(&recorder), payments_stopped));

    // The apps, each waiting for its cohort's opening.
    let policy = RetryPolicy {
        retry_after_cap: Duration::from_secs_f64(args.retry_after_cap_s),
        jitter_max: Duration::from_millis(args.retry_jitter_ms),
        poll_waiting_room: args.poll_waiting_room,
        requests_max: LOGIN_REQUESTS_MAX,
    };
    let app = Arc::new(AppPlan {
        api: api.clone(),
        run_id: run_id.clone(),
        policy,
        cap: args.monthly_charge_cap,
        hold: Duration::from_secs_f64(args.hold_s),
        read_interval: (args.reads_per_s > 0.0).then(|| Duration::from_secs_f64(1.0 / args.reads_per_s)),
        deadline,
        first_opening,
        sessions: SessionCounter::default(),
        read_latencies_us: Mutex::new(Vec::new()),
    });
    let mut apps = JoinSet::new();
    for citizen in citizens.iter().cloned() {
        let start = to_instant(citizen.opens_at) + OPENING_MARGIN;
        let app = Arc::clone(&app);
        apps.spawn(async move {
            tokio::time::sleep_until(start).await;
            run_app(&app, &citizen, start).await
        });
    }
    tokio::time::sleep_until(first_opening).await;
    recorder.storm.store(true, Ordering::SeqCst);
    eprintln!(
        "opening: {} citizens in {} cohorts (deadline {:.0} s after the last opening)",
        citizens.len(),
        args.cohorts,
        args.deadline_s
    );
    let (admission_stop, admission_stopped) = watch::channel(false);
    let admission =
        tokio::spawn(cutover::sample_admission(payment_api.clone(), admin.clone(), admission_stopped, deadline));

    let mut results = Vec::with_capacity(citizens.len());
    let mut aborted = 0usize;
    loop {
        match tokio::time::timeout_at(deadline + CLEANUP_TIME_MAX, apps.join_next()).await {
            Ok(Some(Ok(result))) => results.push(result),
            Ok(Some(Err(_))) => aborted += 1,
            Ok(None) => break,
            Err(_) => {
                aborted += apps.len();
                apps.abort_all();
                break;
            }
        }
    }
    let _ = payments_stop.send(true);
    let _ = admission_stop.send(true);
    let admission_seen = admission.await.unwrap_or_default();
    let _ = payments.await;
    if aborted > 0 {
        eprintln!("warning: {aborted} app tasks did not end by the cleanup bound and were aborted");
    }
    let program = api
        .send(
            Call::get("program_read", format!("/v1/admin/programs/{program_id}"), Some(&admin)),
            Instant::now() + request_timeout,
        )
        .await;
    let budget_after = program.answer_with(200).and_then(|answer| answer.body.get("budget").cloned());
    if budget_after.is_none() {
        eprintln!("warning: GET /v1/admin/programs/{program_id} answered {}", program.describe());
    }
    let server_memory = match sampler {
        Some(sampler) => Some(sampler.finish().await),
        None => None,
    };

    let requests = tally.snapshot();
    let errors = error_report(&requests);
    let read_latencies = app.read_latencies_us.lock().map(|samples| samples.clone()).unwrap_or_default();
    let opening = opening_report(&results, &citizens, &admission_seen, &app.sessions, read_latencies);
    let budget_value = budget_after.clone().unwrap_or(Value::Null);
    let cohorts = cohort_reports(&results, args.cohorts, full, &budget_value);
    let answered: u64 = results.iter().filter_map(|result| result.bonus).sum();
    let paid_out = won(budget_value.get("paid_out"));
    let bonus_total = BonusTotals {
        answered,
        paid_out,
        funded: won(budget_value.get("funded")),
        exact: paid_out == Some(answered),
        cohorts_exact: cohorts.iter().all(|cohort| cohort.paid_out == Some(cohort.bonus_answered)),
        full_bonus_citizens: cohorts.iter().map(|cohort| cohort.full_bonus).sum(),
        budget_citizens,
    };
    let report = OpeningDayReport {
        run_id,
        url: base.base.clone(),
        config: json!({
            "citizens": args.citizens, "cohorts": args.cohorts, "cohort_interval_s": args.cohort_interval_s,
            "rate": args.rate, "monthly_charge_cap": args.monthly_charge_cap, "budget_fraction": args.budget_fraction,
            "merchants": args.merchants, "payers": args.payers, "pay_rate": args.pay_rate, "quiet_s": args.quiet_s,
            "hold_s": args.hold_s, "reads_per_s": args.reads_per_s, "deadline_s": args.deadline_s,
            "retry_after_cap_s": args.retry_after_cap_s, "retry_jitter_ms": args.retry_jitter_ms,
            "poll_waiting_room": args.poll_waiting_room, "equal_cohorts": args.equal_cohorts,
            "registrations": registered.len(), "in_flight_max": args.common.in_flight_max,
            "request_timeout_s": args.common.request_timeout_s,
        }),
        setup: SetupReport {
            setup_s,
            citizens_registered: citizens.len(),
            citizens_registration_failed: registration_failed,
            payers_logged_in: payer_count,
            payer_charge_won,
        },
        program: ProgramReport {
            program_id,
            opens_at: rfc(opens_at),
            closes_at: rfc(closes_at),
            cohorts: args.cohorts,
            cohort_interval_s: args.cohort_interval_s,
            rate: args.rate.clone(),
            monthly_charge_cap: args.monthly_charge_cap,
            full_bonus: full,
            budget_citizens,
            budget_funded,
            budget_after: budget_value,
        },
        opening,
        cohorts,
        bonus_total,
        payments: recorder.report(payment_amount_won),
        requests,
        errors,
        server_memory,
    };
    print!("{}", render(&report));
    if let Some(path) = &args.common.json {
        crate::write_json(path, &report)?;
    }
    Ok(())
}

/// Registers a citizen and returns its wallet id (`POST /v1/citizens` answers it), retrying 503s
/// and connection failures a few times.
/// Registered citizens per cohort.
fn cohort_counts(registered: &[Result<String, String>], rules: &wallet_core::ChargeBonusRules) -> Vec<usize> {
    let mut counts = vec![0; rules.cohorts as usize];
    for wallet in registered.iter().filter_map(|result| result.as_ref().ok()) {
        if let Ok(wallet) = wallet_core::WalletId::parse(wallet) {
            counts[rules.cohort_of(&wallet) as usize] += 1;
        }
    }
    counts
}

async fn register_with_wallet(api: &Api, login: &str, deadline: Instant) -> Result<String, String> {
    let mut last = String::new();
    for _ in 0..REGISTER_ATTEMPTS_MAX {
        let body = json!({"login": login, "password": PASSWORD});
        let outcome = api.send(Call::post("citizen_register", "/v1/citizens", None, body), deadline).await;
        let sleep = match &outcome {
            Outcome::Answered(answer) if answer.status == 201 => {
                return answer
                    .body
                    .get("wallet_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{login}: 201 without a wallet_id: {}", answer.body));
            }
            Outcome::Answered(answer) if answer.status == 503 => {
                Duration::from_secs(answer.retry_after_s.unwrap_or(1)).min(Duration::from_secs(5))
            }
            Outcome::Timeout | Outcome::ConnectionError(_) => Duration::from_secs(1),
            _ => return Err(format!("{login}: registration answered {}", outcome.describe())),
        };
        last = outcome.describe();
        if Instant::now() + sleep >= deadline {
            break;
        }
        tokio::time::sleep(sleep).await;
    }
    Err(format!("{login}: registration failed: {last}"))
}

/// Cutover's payers: registered, logged in through the waiting room and charged before the
/// program exists, so they hold their sessions (and slots) throughout and earn no bonus.
async fn prepare_payers(
    api: &Api,
    run_id: &str,
    args: &OpeningDayArgs,
    charge_won: u64,
    deadline: Instant,
) -> Result<Vec<String>, String> {
    let policy = RetryPolicy {
        retry_after_cap: Duration::from_secs(5),
        jitter_max: Duration::from_millis(100),
        poll_waiting_room: false,
        requests_max: 100,
    };
    let tokens = setup::for_each_bounded(args.payers, args.setup_concurrency, Some("payers"), |index| {
        let api = api.clone();
        let login = format!("lg-{run_id}-p{index}");
        let charge_key = format!("lg-{run_id}-charge-{index}");
        async move {
            if let Registered::Failed(error) = setup::register_citizen(&api, "payer_register", &login, deadline).await {
                return Err(format!("payer {login}: registration failed: {error}"));
            }
            let journey =
                waiting::login_through_waiting_room(&api, "payer_login", &login, PASSWORD, policy, deadline).await;
            let LoginEnd::Admitted { token, .. } = journey.end else {
                return Err(format!("payer {login}: login failed: {:?}", journey.end));
            };
            setup::charge(&api, &token, &format!("payer {login}"), charge_won, charge_key, deadline).await?;
            Ok(token)
        }
    })
    .await;
    let ready = setup::ready_tokens(tokens);
    if ready.is_empty() && args.pay_rate > 0.0 {
        return Err("no payer is ready, so no payment can be made".to_owned());
    }
    Ok(ready)
}

#[derive(Default)]
struct SessionCounter {
    held: AtomicI64,
    held_max: AtomicI64,
}

struct AppPlan {
    api: Api,
    run_id: String,
    policy: RetryPolicy,
    cap: u64,
    hold: Duration,
    read_interval: Option<Duration>,
    deadline: Instant,
    first_opening: Instant,
    sessions: SessionCounter,
    read_latencies_us: Mutex<Vec<u64>>,
}

/// One citizen's app at its cohort's opening: log in through the waiting room, look at the
/// wallet, charge the cap (retrying 503s as an app does, with the same key), hold the session
/// reading the balance, log out.
async fn run_app(app: &AppPlan, citizen: &Citizen, started: Instant) -> AppResult {
    let mut result = AppResult { cohort: citizen.cohort, ..AppResult::default() };
    let journey = waiting::login_through_waiting_room(
        &app.api,
        "citizen_login",
        &citizen.login,
        PASSWORD,
        app.policy,
        app.deadline,
    )
    .await;
    result.login_attempts = journey.login_attempts;
    result.polls = journey.polls;
    result.retry_after_s_max = journey.retry_after_s_max;
    result.waiting_opens_at = journey.charge_bonus_opens_at.as_deref().and_then(|text| instant_of(Some(text)));
    let token = match &journey.end {
        LoginEnd::Admitted { token, at } => {
            result.login_wait = Some(at.duration_since(started));
            token.clone()
        }
        LoginEnd::Refused(answer) => {
            result.not_logged_in = Some(format!("refused {answer}"));
            return result;
        }
        LoginEnd::Deadline => {
            result.not_logged_in = Some("deadline".to_owned());
            return result;
        }
        LoginEnd::RequestsExhausted => {
            result.not_logged_in = Some("requests_exhausted".to_owned());
            return result;
        }
    };
    let held = app.sessions.held.fetch_add(1, Ordering::SeqCst) + 1;
    app.sessions.held_max.fetch_max(held, Ordering::SeqCst);

    // The app opens on the wallet: it shows the program and this citizen's opening.
    let wallet = app.api.send(Call::get("wallet_open", "/v1/wallet", Some(&token)), app.deadline).await;
    if let Some(answer) = wallet.answer_with(200) {
        match answer.body.get("charge_bonus").filter(|bonus| !bonus.is_null()) {
            Some(bonus) => result.wallet_opens_at = instant_of(bonus.get("opens_at").and_then(Value::as_str)),
            None => result.wallet_without_charge_bonus = true,
        }
    }
    if let Some(opens) = result.wallet_opens_at {
        if let Ok(ahead) = (opens - now_utc()).to_std() {
            // Not open yet by the server's word: the app waits for the opening.
            result.delayed_to_opening = true;
            tokio::time::sleep(ahead + OPENING_MARGIN).await;
        }
    }

    let key = format!("lg-{}-bonus-{}", app.run_id, citizen.index);
    let body = json!({"amount": app.cap.to_string()});
    while result.charge_attempts < CHARGE_ATTEMPTS_MAX {
        result.charge_attempts += 1;
        let call =
            Call::post("bonus_charge", "/v1/wallet/charges", Some(&token), body.clone()).idempotency_key(key.clone());
        let outcome = app.api.send(call, app.deadline).await;
        let retry_after_s = match &outcome {
            Outcome::Answered(answer) if answer.status == 201 => {
                match won(answer.body.get("bonus")) {
                    Some(bonus) => {
                        result.bonus = Some(bonus);
                        result.charged_after = Some(started.elapsed());
                        result.charged_since_first = Some(app.first_opening.elapsed());
                    }
                    None => result.charge_failed = Some(format!("201 without a bonus: {}", answer.body)),
                }
                break;
            }
            Outcome::Answered(answer) if answer.status == 503 => answer.retry_after_s,
            Outcome::Timeout | Outcome::ConnectionError(_) => None,
            Outcome::CutAtDeadline => {
                result.charge_failed = Some("deadline".to_owned());
                break;
            }
            Outcome::Answered(answer) => {
                result.charge_failed = Some(match &answer.code {
                    Some(code) => format!("{} {code}", answer.status),
                    None => answer.status.to_string(),
                });
                break;
            }
        };
        let jitter_ms = app.policy.jitter_max.as_millis() as u64;
        let jitter = Duration::from_millis(if jitter_ms == 0 { 0 } else { fastrand::u64(0..=jitter_ms) });
        let (delay, _) = waiting::retry_delay(retry_after_s, app.policy.retry_after_cap, jitter);
        if Instant::now() + delay >= app.deadline {
            result.charge_failed = Some("deadline".to_owned());
            break;
        }
        tokio::time::sleep(delay).await;
    }
    if result.bonus.is_none() && result.charge_failed.is_none() {
        result.charge_failed = Some("attempts_exhausted".to_owned());
    }

    let hold_end = (Instant::now() + app.hold).min(app.deadline);
    if let Some(interval) = app.read_interval {
        let mut next_read = Instant::now() + interval;
        while next_read < hold_end {
            tokio::time::sleep_until(next_read).await;
            let outcome = app.api.send(Call::get("wallet_read", "/v1/wallet", Some(&token)), app.deadline).await;
            if let Outcome::Answered(answer) = outcome {
                if let Ok(mut samples) = app.read_latencies_us.lock() {
                    samples.push(answer.elapsed.as_micros() as u64);
                }
            }
            next_read = (next_read + interval).max(Instant::now());
        }
    }
    tokio::time::sleep_until(hold_end).await;
    app.sessions.held.fetch_sub(1, Ordering::SeqCst);
    let cleanup_deadline = Instant::now().max(app.deadline) + CLEANUP_TIME_MAX / 2;
    app.api.send(Call::delete("logout", "/v1/sessions/current", Some(&token)), cleanup_deadline).await;
    result
}

fn seconds_p(samples: &[Duration], quantile: f64) -> Option<f64> {
    let mut micros: Vec<u64> = samples.iter().map(|wait| wait.as_micros() as u64).collect();
    micros.sort_unstable();
    stats::percentile(&micros, quantile).map(|us| us as f64 / 1e6)
}

fn opening_report(
    results: &[AppResult],
    citizens: &[Citizen],
    admission: &AdmissionSeen,
    sessions: &SessionCounter,
    read_latencies_us: Vec<u64>,
) -> OpeningReport {
    let mut not_logged_in = BTreeMap::new();
    let mut charge_failed = BTreeMap::new();
    for result in results {
        if let Some(reason) = &result.not_logged_in {
            *not_logged_in.entry(reason.clone()).or_default() += 1;
        }
        if let Some(reason) = &result.charge_failed {
            *charge_failed.entry(reason.clone()).or_default() += 1;
        }
    }
    let waits: Vec<Duration> = results.iter().filter_map(|result| result.login_wait).collect();
    // Results come back in completion order; match each to its predicted opening by cohort.
    let predicted: BTreeMap<u32, DateTime<Utc>> =
        citizens.iter().map(|citizen| (citizen.cohort, citizen.opens_at)).collect();
    let matches = |seen: Option<DateTime<Utc>>, cohort: u32| seen.map(|seen| predicted.get(&cohort) == Some(&seen));
    OpeningReport {
        citizens: results.len(),
        logged_in: waits.len(),
        not_logged_in,
        charged: results.iter().filter(|result| result.bonus.is_some()).count(),
        charge_failed,
        last_charge_s: results.iter().filter_map(|result| result.charged_since_first).max().map(|at| at.as_secs_f64()),
        login_wait_s_p50: seconds_p(&waits, 0.5),
        login_wait_s_p99: seconds_p(&waits, 0.99),
        login_wait_s_max: seconds_p(&waits, 1.0),
        login_attempts: results.iter().map(|result| u64::from(result.login_attempts)).sum(),
        waiting_room_polls: results.iter().map(|result| u64::from(result.polls)).sum(),
        retry_after_s_max: results.iter().map(|result| result.retry_after_s_max).max().unwrap_or(0),
        charge_attempts: results.iter().map(|result| u64::from(result.charge_attempts)).sum(),
        server_active_sessions_max: admission.active_sessions_max,
        server_session_capacity: admission.session_capacity,
        server_waiting_max: admission.waiting_max,
        server_admission_samples: admission.samples,
        sessions_held_max_client: sessions.held_max.load(Ordering::SeqCst),
        wallet_opens_at_matches: results.iter().filter(|r| matches(r.wallet_opens_at, r.cohort) == Some(true)).count(),
        wallet_opens_at_mismatches: results
            .iter()
            .filter(|r| matches(r.wallet_opens_at, r.cohort) == Some(false))
            .count(),
        wallet_without_charge_bonus: results.iter().filter(|result| result.wallet_without_charge_bonus).count(),
        waiting_answers_with_opens_at: results.iter().filter(|result| result.waiting_opens_at.is_some()).count(),
        waiting_opens_at_mismatches: results
            .iter()
            .filter(|r| matches(r.waiting_opens_at, r.cohort) == Some(false))
            .count(),
        charges_delayed_to_opening: results.iter().filter(|result| result.delayed_to_opening).count(),
        wallet_read_latency: stats::summarise_latency(read_latencies_us),
    }
}

fn cohort_reports(results: &[AppResult], cohorts: u32, full: u64, budget: &Value) -> Vec<CohortReport> {
    let shares = budget.get("cohorts").and_then(Value::as_array).cloned().unwrap_or_default();
    (0..cohorts)
        .map(|cohort| {
            let members: Vec<&AppResult> = results.iter().filter(|result| result.cohort == cohort).collect();
            let bonuses: Vec<u64> = members.iter().filter_map(|result| result.bonus).collect();
            let share_entry =
                shares.iter().find(|entry| entry.get("cohort").and_then(Value::as_u64) == Some(u64::from(cohort)));
            let share = share_entry.and_then(|entry| won(entry.get("share")));
            let full_count = bonuses.iter().filter(|&&bonus| bonus == full).count();
            let share_full_bonuses = share.map_or(0, |share| share / full);
            let possible = (members.len() as u64).min(share_full_bonuses);
            let waits: Vec<Duration> = members.iter().filter_map(|result| result.login_wait).collect();
            CohortReport {
                cohort,
                opens_at: share_entry
                    .and_then(|entry| entry.get("opens_at"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                citizens: members.len(),
                charged: bonuses.len(),
                full_bonus: full_count,
                partial_bonus: bonuses.iter().filter(|&&bonus| bonus > 0 && bonus < full).count(),
                zero_bonus: bonuses.iter().filter(|&&bonus| bonus == 0).count(),
                full_bonus_rate: if members.is_empty() { 0.0 } else { full_count as f64 / members.len() as f64 },
                share_full_bonuses,
                share_fill: if possible == 0 { 1.0 } else { full_count as f64 / possible as f64 },
                share,
                paid_out: share_entry.and_then(|entry| won(entry.get("paid_out"))),
                remaining: share_entry.and_then(|entry| won(entry.get("remaining"))),
                bonus_answered: bonuses.iter().sum(),
                login_wait_s_max: seconds_p(&waits, 1.0),
                login_wait_s_p50: seconds_p(&waits, 0.5),
                last_full_bonus_s: members
                    .iter()
                    .filter(|result| result.bonus == Some(full))
                    .filter_map(|result| result.charged_after)
                    .max()
                    .map(|at| at.as_secs_f64()),
            }
        })
        .collect()
}

fn error_report(requests: &BTreeMap<String, KindTally>) -> ErrorReport {
    let mut by_kind = BTreeMap::new();
    let (mut orderly, mut timeouts, mut connection_errors, mut cut) = (0, 0, 0, 0);
    for (kind, tally) in requests {
        let mut bad = tally.timeouts + tally.connection_errors;
        for (answer, count) in &tally.answers {
            if answer.starts_with('2') {
                continue;
            }
            if answer == "503 waiting_room" || answer == "503 overloaded" {
                orderly += count;
            } else {
                bad += count;
            }
        }
        timeouts += tally.timeouts;
        connection_errors += tally.connection_errors;
        cut += tally.cut_at_deadline;
        if bad > 0 {
            by_kind.insert(kind.clone(), bad);
        }
    }
    ErrorReport {
        other_than_orderly_503: by_kind.values().sum(),
        by_kind,
        orderly_503: orderly,
        timeouts,
        connection_errors,
        cut_at_deadline: cut,
    }
}

fn latency_line(summary: &LatencySummary) -> String {
    let ms = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |value| format!("{value:.1}"));
    format!("n={} p50={} p99={} max={} ms", summary.count, ms(summary.p50_ms), ms(summary.p99_ms), ms(summary.max_ms))
}

fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

fn secs(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.1} s"))
}

/// The human-readable report.
pub fn render(report: &OpeningDayReport) -> String {
    let mut out = String::new();
    let program = &report.program;
    let opening = &report.opening;
    let _ = writeln!(out, "== wallet-loadgen opening-day, run {} against {}", report.run_id, report.url);
    let _ = writeln!(
        out,
        "setup            {:.1} s; citizens {} (failed {}); payers {}",
        report.setup.setup_s,
        report.setup.citizens_registered,
        report.setup.citizens_registration_failed,
        report.setup.payers_logged_in
    );
    let _ = writeln!(
        out,
        "program          {}: {} cohorts {} s apart from {}; rate {} cap {} (full bonus {}); budget {} = {} full bonuses",
        program.program_id,
        program.cohorts,
        program.cohort_interval_s,
        program.opens_at,
        program.rate,
        program.monthly_charge_cap,
        program.full_bonus,
        program.budget_funded,
        program.budget_citizens
    );
    let _ = writeln!(out, "-- opening");
    let _ = writeln!(
        out,
        "logged in        {} of {}; charged {}; last charge {} after the first opening",
        opening.logged_in,
        opening.citizens,
        opening.charged,
        secs(opening.last_charge_s)
    );
    for (reason, count) in &opening.not_logged_in {
        let _ = writeln!(out, "  not logged in  {count} ({reason})");
    }
    for (reason, count) in &opening.charge_failed {
        let _ = writeln!(out, "  charge failed  {count} ({reason})");
    }
    let _ = writeln!(
        out,
        "wait to log in   p50 {} p99 {} max {} (from the cohort's opening)",
        secs(opening.login_wait_s_p50),
        secs(opening.login_wait_s_p99),
        secs(opening.login_wait_s_max)
    );
    let _ = writeln!(
        out,
        "retries          {} login attempts, {} polls, {} charge attempts, max Retry-After {} s",
        opening.login_attempts, opening.waiting_room_polls, opening.charge_attempts, opening.retry_after_s_max
    );
    let _ = writeln!(
        out,
        "server           active sessions max {} of {}, waiting max {} ({} samples); client-held citizen sessions max {}",
        opt(opening.server_active_sessions_max),
        opt(opening.server_session_capacity),
        opt(opening.server_waiting_max),
        opening.server_admission_samples,
        opening.sessions_held_max_client
    );
    let _ = writeln!(
        out,
        "cohort check     wallet opens_at matches {} mismatches {} absent {}; waiting room charge_bonus_opens_at seen by {} (mismatches {}); waited for opening {}",
        opening.wallet_opens_at_matches,
        opening.wallet_opens_at_mismatches,
        opening.wallet_without_charge_bonus,
        opening.waiting_answers_with_opens_at,
        opening.waiting_opens_at_mismatches,
        opening.charges_delayed_to_opening
    );
    let _ = writeln!(out, "wallet reads     {}", latency_line(&opening.wallet_read_latency));
    let _ = writeln!(out, "-- cohorts");
    let _ = writeln!(
        out,
        "cohort citizens charged full partial zero full-rate share-fill share paid_out bonus-answered wait-max last-full"
    );
    for cohort in &report.cohorts {
        let _ = writeln!(
            out,
            "{:>6} {:>8} {:>7} {:>4} {:>7} {:>4} {:>8.1}% {:>9.1}% {} {} {} {} {}",
            cohort.cohort,
            cohort.citizens,
            cohort.charged,
            cohort.full_bonus,
            cohort.partial_bonus,
            cohort.zero_bonus,
            cohort.full_bonus_rate * 100.0,
            cohort.share_fill * 100.0,
            opt(cohort.share),
            opt(cohort.paid_out),
            cohort.bonus_answered,
            secs(cohort.login_wait_s_max),
            secs(cohort.last_full_bonus_s)
        );
    }
    let totals = &report.bonus_total;
    let _ = writeln!(
        out,
        "bonus total      answered {} vs budget paid_out {} (funded {}): {}; per cohort {}; full bonuses {} of {} the budget pays",
        totals.answered,
        opt(totals.paid_out),
        opt(totals.funded),
        if totals.exact { "EXACT" } else { "MISMATCH" },
        if totals.cohorts_exact { "exact" } else { "MISMATCH" },
        totals.full_bonus_citizens,
        totals.budget_citizens
    );
    let payments = &report.payments;
    let _ = writeln!(out, "-- POS payments ({} won each)", payments.amount_won);
    for (name, phase) in [("quiet", &payments.quiet), ("opening", &payments.storm)] {
        let _ = writeln!(
            out,
            "{name:<16} ok {} failed {}; latency {}",
            phase.ok,
            phase.failed,
            latency_line(&phase.latency)
        );
    }
    let ratio = match (payments.quiet.latency.p99_ms, payments.storm.latency.p99_ms) {
        (Some(quiet), Some(opening)) if quiet > 0.0 => format!("{:.2}x", opening / quiet),
        _ => "-".to_owned(),
    };
    let _ = writeln!(out, "p99 opening/quiet {ratio}; skipped {} (in-flight bound)", payments.skipped_in_flight_max);
    for (cause, count) in &payments.failures {
        let _ = writeln!(out, "  failed         {count} ({cause})");
    }
    let _ = writeln!(out, "-- requests (answers by status and code; transport failures apart)");
    out.push_str(&crate::render_requests(&report.requests));
    let errors = &report.errors;
    let _ = writeln!(
        out,
        "errors other than orderly 503s: {} {:?} (orderly 503s {}, timeouts {}, connection errors {}, cut at deadline {})",
        errors.other_than_orderly_503,
        errors.by_kind,
        errors.orderly_503,
        errors.timeouts,
        errors.connection_errors,
        errors.cut_at_deadline
    );
    out.push_str(&crate::render_memory(report.server_memory.as_ref()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_full_bonus() {
        assert_eq!(parse_rate("0.10"), Ok((10, 2)));
        assert_eq!(parse_rate("1"), Ok((1, 0)));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("1.5").is_err());
        assert!(parse_rate("-0.1").is_err());
        assert_eq!(full_bonus(500_000, (10, 2)), 50_000);
        assert_eq!(full_bonus(333, (125, 3)), 41);
    }
}
