//! `cutover`: the opening-day storm. Every citizen logs in at once while merchants keep taking
//! payments; the waiting room must let citizens in first come, first served, and payments must
//! not suffer.

use crate::in_range;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Api, Call, Outcome};
use crate::memory::{MemoryReading, MemorySummary, Sampler};
use crate::setup::{self, Registered, PASSWORD};
use crate::stats::{self, AdmissionOrder, KindTally, LatencySummary, Tally, TicketedAdmission};
use crate::waiting::{self, LoginEnd, LoginJourney, RetryPolicy};
use crate::CommonArgs;

/// Most citizens in one storm.
const CITIZENS_MAX: usize = 100_000;
const MERCHANTS_MAX: usize = 1_000;
const PAYERS_MAX: usize = 1_000;
/// Payments per second, all merchants together.
const PAY_RATE_MAX: f64 = 2_000.0;
/// Balance reads per second per held session.
const READS_PER_S_MAX: f64 = 50.0;
/// Longest quiet phase, hold and deadline.
const PHASE_S_MAX: f64 = 3_600.0;
/// The untimed setup (registrations are argon2-bound: ~40 per second per core) stops here.
const SETUP_TIME_MAX: Duration = Duration::from_secs(4 * 3_600);
/// After the deadline, held sessions are logged out; this bounds that cleanup.
const CLEANUP_TIME_MAX: Duration = Duration::from_secs(40);
/// Requests (logins plus polls) one citizen sends before giving up, besides the deadline.
const LOGIN_REQUESTS_MAX: u32 = 10_000;
/// How often the admin's view of admission (`GET /v1/admin/admission`) is sampled in the storm.
const ADMISSION_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Payments cost at most this much each (they are small purchases).
const PAYMENT_AMOUNT_WON_MAX: u64 = 10_000;
/// What a payer is charged at most; under the default monthly charge limit (2,000,000) and
/// holding limit (3,000,000), and lowered to 95 % of the policy in force when that is lower.
const PAYER_CHARGE_WON_MAX: u64 = 1_900_000;

#[derive(clap::Args, Debug)]
pub struct CutoverArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Login of a city admin (creates merchants, tops up the budget, reads admission).
    #[arg(long)]
    pub admin_login: String,
    /// That admin's password.
    #[arg(long)]
    pub admin_password: String,
    /// Citizens registered in setup who all log in at once when the storm starts.
    #[arg(long)]
    pub citizens: usize,
    /// Merchants created in setup; payments go to them in turn.
    #[arg(long, default_value_t = 4)]
    pub merchants: usize,
    /// Payments per second, all merchants together, through the quiet phase and the storm (0: none).
    #[arg(long)]
    pub pay_rate: f64,
    /// Seconds an admitted citizen holds its session before logging out.
    #[arg(long)]
    pub hold_s: f64,
    /// Balance reads (`GET /v1/wallet`) per second per held session (0: none).
    #[arg(long, default_value_t = 1.0)]
    pub reads_per_s: f64,
    /// Seconds of payments alone before the storm (the baseline latency).
    #[arg(long, default_value_t = 10.0)]
    pub quiet_s: f64,
    /// Seconds after storm start when everything stops (held sessions are then logged out).
    #[arg(long)]
    pub deadline_s: f64,
    /// Citizens who pay, registered, charged and logged in before the storm; their sessions
    /// take citizen slots like any other.
    #[arg(long, default_value_t = 20)]
    pub payers: usize,
    /// Amount of each payment in won (default: what lets every payer last the whole run, at most 10000).
    #[arg(long)]
    pub payment_amount_won: Option<u64>,
    /// Cashback budget top-up in won made in setup (0: none).
    #[arg(long, default_value_t = 100_000_000)]
    pub budget_top_up_won: u64,
    /// Payments in flight at most; a payment due while this many are in flight is skipped and counted.
    #[arg(long, default_value_t = 64)]
    pub payments_in_flight_max: usize,
    /// Longest sleep between a citizen's login attempts, whatever Retry-After says (the server
    /// drops a ticket not polled for 60 s).
    #[arg(long, default_value_t = 5.0)]
    pub retry_after_cap_s: f64,
    /// Random delay of up to this many milliseconds added to every retry sleep.
    #[arg(long, default_value_t = 250)]
    pub retry_jitter_ms: u64,
    /// Between login retries, poll GET /v1/waiting-room/{ticket} and retry only once it is ready.
    #[arg(long)]
    pub poll_waiting_room: bool,
    /// Registrations and setup logins in flight at once.
    #[arg(long, default_value_t = 8)]
    pub setup_concurrency: usize,
}

impl CutoverArgs {
    fn check(&self) -> Result<(), String> {
        in_range("citizens", self.citizens as f64, 1.0, CITIZENS_MAX as f64)?;
        in_range("merchants", self.merchants as f64, 1.0, MERCHANTS_MAX as f64)?;
        in_range("payers", self.payers as f64, 1.0, PAYERS_MAX as f64)?;
        in_range("pay-rate", self.pay_rate, 0.0, PAY_RATE_MAX)?;
        in_range("reads-per-s", self.reads_per_s, 0.0, READS_PER_S_MAX)?;
        in_range("quiet-s", self.quiet_s, 0.0, PHASE_S_MAX)?;
        in_range("hold-s", self.hold_s, 0.0, PHASE_S_MAX)?;
        in_range("deadline-s", self.deadline_s, 1.0, PHASE_S_MAX)?;
        in_range("retry-after-cap-s", self.retry_after_cap_s, 0.1, 55.0)?;
        in_range("retry-jitter-ms", self.retry_jitter_ms as f64, 0.0, 10_000.0)?;
        in_range("payments-in-flight-max", self.payments_in_flight_max as f64, 1.0, 4_096.0)?;
        in_range("setup-concurrency", self.setup_concurrency as f64, 1.0, 256.0)?;
        self.common.check()
    }
}

/// The whole report, printed as a table and written as JSON with `--json`.
#[derive(Debug, Serialize)]
pub struct CutoverReport {
    pub run_id: String,
    pub url: String,
    pub config: Value,
    pub setup: SetupReport,
    pub storm: StormReport,
    pub payments: PaymentsReport,
    /// Answers per request kind, keyed `"<status>"` or `"<status> <error code>"`.
    pub requests: BTreeMap<String, KindTally>,
    pub transport: TransportReport,
    pub server_memory: Option<MemorySummary>,
    /// The server's memory when the storm started (after setup and the quiet phase).
    pub server_memory_at_storm_start: Option<MemoryReading>,
}

#[derive(Debug, Serialize)]
pub struct SetupReport {
    pub setup_s: f64,
    pub citizens_registered_new: usize,
    pub citizens_registered_existing: usize,
    pub citizens_registration_failed: usize,
    pub payers_logged_in: usize,
    pub payer_charge_won: u64,
    /// `GET /v1/admin/admission` just before the storm.
    pub admission_before_storm: Value,
}

#[derive(Debug, Serialize)]
pub struct StormReport {
    /// Citizens that took part (registered in setup).
    pub citizens: usize,
    pub admitted: usize,
    /// Why the others were not admitted: `deadline`, `requests_exhausted`, or the refusing answer.
    pub not_admitted: BTreeMap<String, usize>,
    /// From storm start to the 201 of the first and of the last admitted citizen.
    pub first_admission_s: Option<f64>,
    pub last_admission_s: Option<f64>,
    /// From storm start until every citizen task ended (logouts included).
    pub storm_s: f64,
    pub admitted_without_ticket: usize,
    /// Citizens that got at least one `waiting_room` answer.
    pub ticketed: usize,
    /// Citizens that got more than one distinct ticket (the server dropped or replaced theirs).
    pub tickets_replaced: usize,
    pub first_position_max: Option<u64>,
    pub admission_order: AdmissionOrder,
    pub wait_estimates: EstimateReport,
    pub login_attempts: u64,
    pub waiting_room_polls: u64,
    pub retry_after_s_max: u64,
    /// Retry sleeps shortened by `--retry-after-cap-s` (the server asked for longer).
    pub retry_sleeps_capped: u64,
    /// Most storm citizens holding a session at once, from the 201 being received until the
    /// logout being sent (a lower bound of what the server held: above capacity proves overshoot).
    pub sessions_held_max_storm: i64,
    /// The same plus the payers' sessions, held throughout.
    pub sessions_held_max_total: i64,
    pub wallet_read_latency: LatencySummary,
    /// Largest `active_sessions` and `waiting` seen by `GET /v1/admin/admission` each second.
    pub server_active_sessions_max: Option<u64>,
    pub server_session_capacity: Option<u64>,
    pub server_waiting_max: Option<u64>,
    pub server_admission_samples: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct EstimateReport {
    /// Ticketed citizens that were admitted (the population).
    pub compared: usize,
    /// `estimated_wait_s` of each one's first `waiting_room` answer.
    pub estimated_wait_s_p50: Option<u64>,
    pub estimated_wait_s_p90: Option<u64>,
    pub estimated_wait_s_max: Option<u64>,
    /// From that first answer to the 201, whole seconds rounded down.
    pub actual_wait_s_p50: Option<u64>,
    pub actual_wait_s_p90: Option<u64>,
    pub actual_wait_s_max: Option<u64>,
    /// `|actual - estimated|` in seconds.
    pub error_s_p50: Option<u64>,
    pub error_s_max: Option<u64>,
    /// Each citizen's estimate divided by its actual wait (at least 1 s), in hundredths:
    /// 100 is exact, above 100 told too long, below told too short.
    pub told_over_waited_pct_p10: Option<u64>,
    pub told_over_waited_pct_p50: Option<u64>,
    pub told_over_waited_pct_p90: Option<u64>,
    /// Share whose estimate was within 2x of the actual wait either way.
    pub within_2x_share: f64,
    /// Share whose actual wait was longer than estimated.
    pub underestimated_share: f64,
    /// The most any citizen waited past its estimate, in seconds (0: nobody did).
    pub late_s_max: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct PaymentsReport {
    pub amount_won: u64,
    pub quiet: PhasePayments,
    pub storm: PhasePayments,
    /// Payments due while `--payments-in-flight-max` were in flight, not sent.
    pub skipped_in_flight_max: u64,
    /// Failed payments by cause (`payment_code <answer>` or `payment <answer>`).
    pub failures: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct PhasePayments {
    /// Payments answered 201.
    pub ok: u64,
    /// Payments whose code or payment request did not end in 201.
    pub failed: u64,
    /// Latency of `POST /v1/payments` alone (every answered one, any status).
    pub latency: LatencySummary,
}

#[derive(Debug, Default, Serialize)]
pub struct TransportReport {
    pub timeouts: u64,
    pub connection_errors: u64,
    pub cut_at_deadline: u64,
}

/// Runs a cutover and prints its report.
pub async fn run(args: CutoverArgs) -> Result<(), String> {
    args.check()?;
    let base = args.common.loopback_base().await?;
    let run_id = args.common.run_id()?;
    let tally = Arc::new(Tally::default());
    let api = Api::new(&base, args.common.client_limits(args.common.in_flight_max), Arc::clone(&tally))?;
    // Payments and the admin's sampling get a client of their own so the storm's queue for
    // in-flight slots does not delay them.
    let payment_api =
        Api::new(&base, args.common.client_limits(args.payments_in_flight_max * 2 + 4), Arc::clone(&tally))?;
    let sampler = args.common.server_pid.map(Sampler::start).transpose()?;

    let setup_started = Instant::now();
    let setup_deadline = setup_started + SETUP_TIME_MAX;
    eprintln!("run {run_id}: setup against {}", base.base);
    let admin = setup::login_direct(&api, "admin_login", &args.admin_login, &args.admin_password, setup_deadline)
        .await
        .map_err(|error| {
            format!("{error}; check that the server is up at {} and --admin-login/--admin-password", base.base)
        })?;
    let policy = api.send(Call::get("policy_read", "/v1/admin/policy", Some(&admin)), setup_deadline).await;
    let payer_charge_won = payer_charge_won(policy.answer_with(200).map(|answer| &answer.body));

    let merchants =
        create_merchants(&api, &admin, &run_id, args.merchants, args.setup_concurrency, setup_deadline).await?;
    let citizen_logins: Vec<String> = (0..args.citizens).map(|index| format!("lg-{run_id}-{index}")).collect();
    let registered =
        register_all(&api, "citizen_register", &citizen_logins, args.setup_concurrency, setup_deadline).await;
    let storm_logins: Vec<String> = citizen_logins
        .iter()
        .zip(&registered)
        .filter(|(_, registered)| !matches!(registered, Registered::Failed(_)))
        .map(|(login, _)| login.clone())
        .collect();
    if storm_logins.is_empty() {
        return Err("no citizen could be registered; see the request table above".to_owned());
    }
    if args.budget_top_up_won > 0 {
        setup::top_up_budget(&api, &admin, &run_id, args.budget_top_up_won, setup_deadline).await;
    }
    let payers = prepare_payers(&api, &run_id, &args, payer_charge_won, setup_deadline).await?;
    let admission_before =
        api.send(Call::get("admission_read", "/v1/admin/admission", Some(&admin)), setup_deadline).await;
    let setup_s = setup_started.elapsed().as_secs_f64();

    let payment_amount_won = match args.payment_amount_won {
        Some(amount) => amount,
        None => payment_amount_won(payer_charge_won, args.pay_rate, args.quiet_s + args.deadline_s, payers.len())?,
    };
    let deadline_duration = Duration::from_secs_f64(args.deadline_s);
    let quiet_duration = Duration::from_secs_f64(args.quiet_s);
    let request_timeout = Duration::from_secs_f64(args.common.request_timeout_s);

    // Quiet phase: payments alone.
    eprintln!("quiet phase: {:.0} s of payments at {}/s", args.quiet_s, args.pay_rate);
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
        run_time_max: quiet_duration + deadline_duration + CLEANUP_TIME_MAX,
    };
    let payer_count = plan.payer_tokens.len();
    let payments = tokio::spawn(generate_payments(plan, Arc::clone(&recorder), payments_stopped));
    tokio::time::sleep(quiet_duration).await;

    // Storm: every citizen at once.
    eprintln!("storm: {} citizens log in at once (deadline {:.0} s)", storm_logins.len(), args.deadline_s);
    recorder.storm.store(true, Ordering::SeqCst);
    let sessions = Arc::new(SessionCounter::default());
    let read_latencies = Arc::new(Mutex::new(Vec::new()));
    let policy = RetryPolicy {
        retry_after_cap: Duration::from_secs_f64(args.retry_after_cap_s),
        jitter_max: Duration::from_millis(args.retry_jitter_ms),
        poll_waiting_room: args.poll_waiting_room,
        requests_max: LOGIN_REQUESTS_MAX,
    };
    let hold = Hold {
        duration: Duration::from_secs_f64(args.hold_s),
        read_interval: (args.reads_per_s > 0.0).then(|| Duration::from_secs_f64(1.0 / args.reads_per_s)),
    };
    let (start, started) = watch::channel(None::<Instant>);
    let mut citizens = JoinSet::new();
    for login in storm_logins.iter().cloned() {
        let api = api.clone();
        let sessions = Arc::clone(&sessions);
        let read_latencies = Arc::clone(&read_latencies);
        let mut started = started.clone();
        citizens.spawn(async move {
            let storm_start = match started.wait_for(Option::is_some).await {
                Ok(start) => start.expect("waited for a start instant"),
                Err(_) => return None,
            };
            let deadline = storm_start + deadline_duration;
            Some(citizen(api, login, policy, hold, deadline, sessions, read_latencies).await)
        });
    }
    let server_memory_at_storm_start = sampler.as_ref().and_then(Sampler::sample_now);
    let storm_start = Instant::now();
    let storm_deadline = storm_start + deadline_duration;
    start.send_replace(Some(storm_start));
    let (admission_stop, admission_stopped) = watch::channel(false);
    let admission =
        tokio::spawn(sample_admission(payment_api.clone(), admin.clone(), admission_stopped, storm_deadline));

    let mut journeys = Vec::with_capacity(storm_logins.len());
    let mut tasks_aborted = 0usize;
    loop {
        match tokio::time::timeout_at(storm_deadline + CLEANUP_TIME_MAX, citizens.join_next()).await {
            Ok(Some(Ok(Some(journey)))) => journeys.push(journey),
            Ok(Some(_)) => tasks_aborted += 1,
            Ok(None) => break,
            Err(_) => {
                tasks_aborted += citizens.len();
                citizens.abort_all();
                break;
            }
        }
    }
    let storm_s = storm_start.elapsed().as_secs_f64();
    let _ = payments_stop.send(true);
    let _ = admission_stop.send(true);
    let admission_seen = admission.await.unwrap_or_default();
    let _ = payments.await;
    let server_memory = match sampler {
        Some(sampler) => Some(sampler.finish().await),
        None => None,
    };
    if tasks_aborted > 0 {
        eprintln!("warning: {tasks_aborted} citizen tasks did not end by the cleanup bound and were aborted");
    }

    let requests = tally.snapshot();
    let transport = TransportReport {
        timeouts: requests.values().map(|kind| kind.timeouts).sum(),
        connection_errors: requests.values().map(|kind| kind.connection_errors).sum(),
        cut_at_deadline: requests.values().map(|kind| kind.cut_at_deadline).sum(),
    };
    let storm = storm_report(
        &journeys,
        storm_start,
        storm_s,
        &sessions,
        payer_count,
        read_latencies.lock().map(|samples| samples.clone()).unwrap_or_default(),
        admission_seen,
        // A client sleeps at most the cap plus its jitter between retries.
        Duration::from_secs_f64(args.retry_after_cap_s) + Duration::from_millis(args.retry_jitter_ms),
    );
    let report = CutoverReport {
        run_id,
        url: base.base.clone(),
        config: json!({
            "citizens": args.citizens, "merchants": args.merchants, "payers": args.payers,
            "pay_rate": args.pay_rate, "hold_s": args.hold_s, "reads_per_s": args.reads_per_s,
            "quiet_s": args.quiet_s, "deadline_s": args.deadline_s,
            "retry_after_cap_s": args.retry_after_cap_s, "retry_jitter_ms": args.retry_jitter_ms,
            "poll_waiting_room": args.poll_waiting_room, "in_flight_max": args.common.in_flight_max,
            "request_timeout_s": args.common.request_timeout_s,
        }),
        setup: SetupReport {
            setup_s,
            citizens_registered_new: registered.iter().filter(|r| **r == Registered::New).count(),
            citizens_registered_existing: registered.iter().filter(|r| **r == Registered::Existing).count(),
            citizens_registration_failed: registered.iter().filter(|r| matches!(r, Registered::Failed(_))).count(),
            payers_logged_in: payer_count,
            payer_charge_won,
            admission_before_storm: admission_before.answer_with(200).map(|a| a.body.clone()).unwrap_or(Value::Null),
        },
        storm,
        payments: recorder.report(payment_amount_won),
        requests,
        transport,
        server_memory,
        server_memory_at_storm_start,
    };
    print!("{}", render(&report));
    if let Some(path) = &args.common.json {
        crate::write_json(path, &report)?;
    }
    Ok(())
}

/// What a payer is charged: [`PAYER_CHARGE_WON_MAX`], lowered to 95 % of the policy's monthly
/// charge limit or holding limit when either is lower.
pub(crate) fn payer_charge_won(policy: Option<&Value>) -> u64 {
    let limit = |name: &str| {
        policy.and_then(|policy| policy.get(name)).and_then(Value::as_str).and_then(|text| text.parse::<u64>().ok())
    };
    [limit("monthly_charge_limit"), limit("holding_limit")]
        .into_iter()
        .flatten()
        .map(|limit| limit / 100 * 95)
        .fold(PAYER_CHARGE_WON_MAX, u64::min)
}

/// The largest payment amount (at most [`PAYMENT_AMOUNT_WON_MAX`]) that lets every payer pay its
/// share of `rate * seconds` payments from its charge alone.
pub(crate) fn payment_amount_won(charge_won: u64, rate_per_s: f64, seconds: f64, payers: usize) -> Result<u64, String> {
    let payments_total = (rate_per_s * seconds).ceil().max(1.0) as u64;
    let payments_per_payer = payments_total.div_ceil(payers.max(1) as u64);
    let amount = (charge_won / payments_per_payer).min(PAYMENT_AMOUNT_WON_MAX);
    if amount == 0 {
        return Err(format!(
            "{payments_per_payer} payments per payer cannot be paid from {charge_won} won each; raise --payers"
        ));
    }
    Ok(amount)
}

/// Creates `count` merchants through the admin (a rerun reuses them) and logs each in.
pub(crate) async fn create_merchants(
    api: &Api,
    admin: &str,
    run_id: &str,
    count: usize,
    concurrency: usize,
    deadline: Instant,
) -> Result<Vec<String>, String> {
    let tokens = setup::for_each_bounded(count, concurrency, Some("merchants"), |index| {
        let (api, admin) = (api.clone(), admin.to_owned());
        let login = format!("lg-{run_id}-m{index}");
        async move {
            let body = json!({
                "login": login, "password": PASSWORD, "name": format!("Loadgen shop {index}"),
                "business_number": format!("000-00-{index:05}"), "bank_account": format!("loadgen-{index}"),
            });
            let created =
                api.send(Call::post("merchant_create", "/v1/admin/merchants", Some(&admin), body), deadline).await;
            let exists = created.answer_with(201).is_some()
                || matches!(&created, Outcome::Answered(answer) if answer.code.as_deref() == Some("login_taken"));
            if !exists {
                return Err(format!("creating merchant {login:?} failed: {}", created.describe()));
            }
            setup::login_direct(&api, "merchant_login", &login, PASSWORD, deadline).await
        }
    })
    .await;
    tokens.into_iter().collect()
}

async fn register_all(
    api: &Api,
    kind: &'static str,
    logins: &[String],
    concurrency: usize,
    deadline: Instant,
) -> Vec<Registered> {
    setup::for_each_bounded(logins.len(), concurrency, Some("registering citizens"), |index| {
        let (api, login) = (api.clone(), logins[index].clone());
        async move { setup::register_citizen(&api, kind, &login, deadline).await }
    })
    .await
}

/// Registers, logs in and charges the payers; returns the tokens of those ready to pay.
async fn prepare_payers(
    api: &Api,
    run_id: &str,
    args: &CutoverArgs,
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
        return Err("no payer is ready, so no payment can be made; see the warnings above".to_owned());
    }
    Ok(ready)
}

/// Storm citizens holding a session now, and the most at once.
#[derive(Default)]
struct SessionCounter {
    held: AtomicI64,
    held_max: AtomicI64,
}

impl SessionCounter {
    fn opened(&self) {
        let held = self.held.fetch_add(1, Ordering::SeqCst) + 1;
        self.held_max.fetch_max(held, Ordering::SeqCst);
    }

    fn closed(&self) {
        let held = self.held.fetch_sub(1, Ordering::SeqCst);
        assert!(held > 0, "a session was closed that was never opened");
    }
}

#[derive(Debug, Clone, Copy)]
struct Hold {
    duration: Duration,
    read_interval: Option<Duration>,
}

/// One storm citizen: log in through the waiting room, hold the session reading the balance,
/// log out.
async fn citizen(
    api: Api,
    login: String,
    policy: RetryPolicy,
    hold: Hold,
    deadline: Instant,
    sessions: Arc<SessionCounter>,
    read_latencies: Arc<Mutex<Vec<u64>>>,
) -> LoginJourney {
    let journey = waiting::login_through_waiting_room(&api, "storm_login", &login, PASSWORD, policy, deadline).await;
    let LoginEnd::Admitted { token, at } = &journey.end else {
        return journey;
    };
    sessions.opened();
    let hold_end = (*at + hold.duration).min(deadline);
    if let Some(interval) = hold.read_interval {
        let mut next_read = Instant::now();
        while next_read < hold_end {
            tokio::time::sleep_until(next_read).await;
            let outcome = api.send(Call::get("wallet_read", "/v1/wallet", Some(token)), deadline).await;
            if let Outcome::Answered(answer) = outcome {
                if let Ok(mut samples) = read_latencies.lock() {
                    samples.push(answer.elapsed.as_micros() as u64);
                }
            }
            // Fall behind rather than burst when a read was slow.
            next_read = (next_read + interval).max(Instant::now());
        }
    }
    tokio::time::sleep_until(hold_end).await;
    // Logging out frees the slot for the next in line; it is sent even at the deadline.
    // Counted closed as the logout is sent: the held interval then lies inside the server's, so
    // the client's maximum never exceeds what the server really held.
    sessions.closed();
    let cleanup_deadline = Instant::now().max(deadline) + CLEANUP_TIME_MAX / 2;
    api.send(Call::delete("logout", "/v1/sessions/current", Some(token)), cleanup_deadline).await;
    journey
}

/// What the admin saw of admission during the storm.
#[derive(Debug, Default)]
pub(crate) struct AdmissionSeen {
    pub(crate) samples: u64,
    pub(crate) active_sessions_max: Option<u64>,
    pub(crate) session_capacity: Option<u64>,
    pub(crate) waiting_max: Option<u64>,
}

pub(crate) async fn sample_admission(
    api: Api,
    admin: String,
    mut stopped: watch::Receiver<bool>,
    deadline: Instant,
) -> AdmissionSeen {
    let mut seen = AdmissionSeen::default();
    let mut interval = tokio::time::interval(ADMISSION_SAMPLE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while Instant::now() < deadline {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stopped.changed() => break,
        }
        let outcome = api.send(Call::get("admission_read", "/v1/admin/admission", Some(&admin)), deadline).await;
        if let Some(answer) = outcome.answer_with(200) {
            let field = |name: &str| answer.body.get(name).and_then(Value::as_u64);
            seen.samples += 1;
            seen.active_sessions_max = seen.active_sessions_max.max(field("active_sessions"));
            seen.waiting_max = seen.waiting_max.max(field("waiting"));
            seen.session_capacity = field("session_capacity").or(seen.session_capacity);
        }
    }
    seen
}

pub(crate) struct PaymentPlan {
    pub(crate) api: Api,
    pub(crate) payer_tokens: Arc<Vec<String>>,
    pub(crate) merchant_tokens: Arc<Vec<String>>,
    pub(crate) amount_won: u64,
    pub(crate) rate_per_s: f64,
    pub(crate) in_flight_max: usize,
    pub(crate) run_id: String,
    pub(crate) request_timeout: Duration,
    /// The generator stops by itself after this long, whatever happens to the storm.
    pub(crate) run_time_max: Duration,
}

#[derive(Default)]
pub(crate) struct PaymentRecorder {
    /// Set when the storm starts; a payment belongs to the phase it started in.
    pub(crate) storm: AtomicBool,
    latencies_quiet_us: Mutex<Vec<u64>>,
    latencies_storm_us: Mutex<Vec<u64>>,
    ok: [AtomicU64; 2],
    failed: [AtomicU64; 2],
    skipped_in_flight_max: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
}

impl PaymentRecorder {
    fn fail(&self, phase: usize, cause: String) {
        self.failed[phase].fetch_add(1, Ordering::SeqCst);
        if let Ok(mut failures) = self.failures.lock() {
            *failures.entry(cause).or_default() += 1;
        }
    }

    pub(crate) fn report(&self, amount_won: u64) -> PaymentsReport {
        let latencies = |samples: &Mutex<Vec<u64>>| {
            stats::summarise_latency(samples.lock().map(|samples| samples.clone()).unwrap_or_default())
        };
        let phase = |index: usize, samples: &Mutex<Vec<u64>>| PhasePayments {
            ok: self.ok[index].load(Ordering::SeqCst),
            failed: self.failed[index].load(Ordering::SeqCst),
            latency: latencies(samples),
        };
        PaymentsReport {
            amount_won,
            quiet: phase(0, &self.latencies_quiet_us),
            storm: phase(1, &self.latencies_storm_us),
            skipped_in_flight_max: self.skipped_in_flight_max.load(Ordering::SeqCst),
            failures: self.failures.lock().map(|failures| failures.clone()).unwrap_or_default(),
        }
    }
}

/// Starts payments at a fixed rate (open loop: a slow answer does not delay the next payment)
/// until stopped, the run's time bound passes, or the payment count bound is reached.
pub(crate) async fn generate_payments(
    plan: PaymentPlan,
    recorder: Arc<PaymentRecorder>,
    mut stopped: watch::Receiver<bool>,
) {
    if plan.rate_per_s <= 0.0 || plan.payer_tokens.is_empty() || plan.merchant_tokens.is_empty() {
        return;
    }
    let stop_at = Instant::now() + plan.run_time_max;
    let payments_max = (plan.rate_per_s * plan.run_time_max.as_secs_f64()).ceil() as u64;
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / plan.rate_per_s));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let plan = Arc::new(plan);
    let mut in_flight = JoinSet::new();
    let mut sequence: u64 = 0;
    while sequence < payments_max && Instant::now() < stop_at {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stopped.changed() => break,
        }
        while in_flight.try_join_next().is_some() {}
        if in_flight.len() >= plan.in_flight_max {
            recorder.skipped_in_flight_max.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        in_flight.spawn(pay(Arc::clone(&plan), Arc::clone(&recorder), sequence));
        sequence += 1;
    }
    let drain_until = Instant::now() + plan.request_timeout * 2 + Duration::from_secs(1);
    while let Ok(Some(_)) = tokio::time::timeout_at(drain_until, in_flight.join_next()).await {}
    in_flight.abort_all();
}

/// One payment: the payer fetches a code, a merchant charges it.
async fn pay(plan: Arc<PaymentPlan>, recorder: Arc<PaymentRecorder>, sequence: u64) {
    let phase = usize::from(recorder.storm.load(Ordering::SeqCst));
    let deadline = Instant::now() + plan.request_timeout * 2 + Duration::from_secs(1);
    let payer = &plan.payer_tokens[(sequence % plan.payer_tokens.len() as u64) as usize];
    let merchant = &plan.merchant_tokens[(sequence % plan.merchant_tokens.len() as u64) as usize];
    let issued =
        plan.api.send(Call::post_empty("payment_code", "/v1/wallet/payment-codes", Some(payer)), deadline).await;
    let Some(code) = issued.answer_with(201).and_then(|answer| answer.body.get("code")).and_then(Value::as_str) else {
        recorder.fail(phase, format!("payment_code {}", short(&issued)));
        return;
    };
    let body = json!({"payment_code": code, "amount": plan.amount_won.to_string()});
    let call = Call::post("payment", "/v1/payments", Some(merchant), body)
        .idempotency_key(format!("lg-{}-pay-{sequence}", plan.run_id));
    let paid = plan.api.send(call, deadline).await;
    if let Outcome::Answered(answer) = &paid {
        let samples = if phase == 0 { &recorder.latencies_quiet_us } else { &recorder.latencies_storm_us };
        if let Ok(mut samples) = samples.lock() {
            samples.push(answer.elapsed.as_micros() as u64);
        }
    }
    if paid.answer_with(201).is_some() {
        recorder.ok[phase].fetch_add(1, Ordering::SeqCst);
    } else {
        recorder.fail(phase, format!("payment {}", short(&paid)));
    }
}

/// `"<status> <code>"` or the transport failure, for failure causes.
fn short(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Answered(answer) => match &answer.code {
            Some(code) => format!("{} {code}", answer.status),
            None => answer.status.to_string(),
        },
        Outcome::Timeout => "timeout".to_owned(),
        Outcome::ConnectionError(_) => "connection_error".to_owned(),
        Outcome::CutAtDeadline => "cut_at_deadline".to_owned(),
    }
}

#[allow(clippy::too_many_arguments)]
fn storm_report(
    journeys: &[LoginJourney],
    storm_start: Instant,
    storm_s: f64,
    sessions: &SessionCounter,
    payers: usize,
    read_latencies_us: Vec<u64>,
    admission: AdmissionSeen,
    retry_slack: Duration,
) -> StormReport {
    let mut not_admitted = BTreeMap::new();
    let mut admitted_at = Vec::new();
    let mut ticketed_admissions = Vec::new();
    let (mut estimated, mut actual, mut error) = (Vec::new(), Vec::new(), Vec::new());
    let (mut told_over_waited_pct, mut within_2x, mut late_s_max) = (Vec::new(), 0usize, 0u64);
    let mut underestimated = 0usize;
    for journey in journeys {
        match &journey.end {
            LoginEnd::Admitted { at, .. } => {
                let since_start = at.duration_since(storm_start);
                admitted_at.push(since_start);
                if let Some(first) = journey.first_ticket {
                    ticketed_admissions
                        .push(TicketedAdmission { position_first: first.position, admitted_at: since_start });
                    let waited_s = at.duration_since(first.at).as_secs();
                    estimated.push(first.estimated_wait_s);
                    actual.push(waited_s);
                    error.push(waited_s.abs_diff(first.estimated_wait_s));
                    underestimated += usize::from(waited_s > first.estimated_wait_s);
                    late_s_max = late_s_max.max(waited_s.saturating_sub(first.estimated_wait_s));
                    let waited = at.duration_since(first.at).as_secs_f64().max(1.0);
                    let ratio = first.estimated_wait_s as f64 / waited;
                    told_over_waited_pct.push((ratio * 100.0).round() as u64);
                    within_2x += usize::from((0.5..=2.0).contains(&ratio));
                }
            }
            LoginEnd::Refused(answer) => *not_admitted.entry(format!("refused {answer}")).or_default() += 1,
            LoginEnd::Deadline => *not_admitted.entry("deadline".to_owned()).or_default() += 1,
            LoginEnd::RequestsExhausted => *not_admitted.entry("requests_exhausted".to_owned()).or_default() += 1,
        }
    }
    let compared = estimated.len();
    let p90 = |mut samples: Vec<u64>| {
        samples.sort_unstable();
        stats::percentile(&samples, 0.9)
    };
    let (estimated_wait_s_p90, actual_wait_s_p90) = (p90(estimated.clone()), p90(actual.clone()));
    let (estimated_wait_s_p50, estimated_wait_s_max) = stats::median_and_max(estimated);
    let (actual_wait_s_p50, actual_wait_s_max) = stats::median_and_max(actual);
    told_over_waited_pct.sort_unstable();
    let ratio_at = |quantile| stats::percentile(&told_over_waited_pct, quantile);
    let (error_s_p50, error_s_max) = stats::median_and_max(error);
    let storm_max = sessions.held_max.load(Ordering::SeqCst);
    StormReport {
        citizens: journeys.len(),
        admitted: admitted_at.len(),
        not_admitted,
        first_admission_s: admitted_at.iter().min().map(Duration::as_secs_f64),
        last_admission_s: admitted_at.iter().max().map(Duration::as_secs_f64),
        storm_s,
        admitted_without_ticket: journeys
            .iter()
            .filter(|journey| journey.first_ticket.is_none() && matches!(journey.end, LoginEnd::Admitted { .. }))
            .count(),
        ticketed: journeys.iter().filter(|journey| journey.first_ticket.is_some()).count(),
        tickets_replaced: journeys.iter().filter(|journey| journey.tickets_distinct > 1).count(),
        first_position_max: journeys.iter().filter_map(|journey| journey.first_ticket.map(|t| t.position)).max(),
        admission_order: stats::admission_order(&ticketed_admissions, retry_slack),
        wait_estimates: EstimateReport {
            compared,
            estimated_wait_s_p50,
            estimated_wait_s_p90,
            estimated_wait_s_max,
            actual_wait_s_p50,
            actual_wait_s_p90,
            actual_wait_s_max,
            error_s_p50,
            error_s_max,
            told_over_waited_pct_p10: ratio_at(0.1),
            told_over_waited_pct_p50: ratio_at(0.5),
            told_over_waited_pct_p90: ratio_at(0.9),
            within_2x_share: if compared == 0 { 0.0 } else { within_2x as f64 / compared as f64 },
            underestimated_share: if compared == 0 { 0.0 } else { underestimated as f64 / compared as f64 },
            late_s_max,
        },
        login_attempts: journeys.iter().map(|journey| u64::from(journey.login_attempts)).sum(),
        waiting_room_polls: journeys.iter().map(|journey| u64::from(journey.polls)).sum(),
        retry_after_s_max: journeys.iter().map(|journey| journey.retry_after_s_max).max().unwrap_or(0),
        retry_sleeps_capped: journeys.iter().map(|journey| u64::from(journey.sleeps_capped)).sum(),
        sessions_held_max_storm: storm_max,
        sessions_held_max_total: storm_max + payers as i64,
        wallet_read_latency: stats::summarise_latency(read_latencies_us),
        server_active_sessions_max: admission.active_sessions_max,
        server_session_capacity: admission.session_capacity,
        server_waiting_max: admission.waiting_max,
        server_admission_samples: admission.samples,
    }
}

fn optional<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

fn latency_line(summary: &LatencySummary) -> String {
    let ms = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |value| format!("{value:.1}"));
    format!("n={} p50={} p99={} max={} ms", summary.count, ms(summary.p50_ms), ms(summary.p99_ms), ms(summary.max_ms))
}

/// The human-readable report.
pub fn render(report: &CutoverReport) -> String {
    let mut out = String::new();
    let storm = &report.storm;
    let payments = &report.payments;
    let _ = writeln!(out, "== wallet-loadgen cutover, run {} against {}", report.run_id, report.url);
    let _ = writeln!(
        out,
        "setup            {:.1} s; citizens new {} existing {} failed {}; payers {} charged {} won each",
        report.setup.setup_s,
        report.setup.citizens_registered_new,
        report.setup.citizens_registered_existing,
        report.setup.citizens_registration_failed,
        report.setup.payers_logged_in,
        report.setup.payer_charge_won
    );
    let _ = writeln!(out, "admission before {}", report.setup.admission_before_storm);
    let _ = writeln!(out, "-- storm");
    let _ = writeln!(out, "admitted         {} of {} citizens", storm.admitted, storm.citizens);
    for (reason, count) in &storm.not_admitted {
        let _ = writeln!(out, "  not admitted   {count} ({reason})");
    }
    let seconds = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |value| format!("{value:.2} s"));
    let _ = writeln!(
        out,
        "first / last in  {} / {} after storm start; all citizen tasks ended at {:.2} s",
        seconds(storm.first_admission_s),
        seconds(storm.last_admission_s),
        storm.storm_s
    );
    let _ = writeln!(
        out,
        "tickets          {} citizens ticketed, {} admitted without one, {} had their ticket replaced, max first position {}",
        storm.ticketed,
        storm.admitted_without_ticket,
        storm.tickets_replaced,
        optional(storm.first_position_max)
    );
    let order = &storm.admission_order;
    let _ = writeln!(
        out,
        "admission order  {} of {} ticketed-and-admitted out of order ({:.1} %), max rank displacement {}, \
         max overtake gap {} positions",
        order.out_of_order,
        order.compared,
        order.out_of_order_share * 100.0,
        order.rank_displacement_max,
        order.overtake_position_gap_max
    );
    let _ = writeln!(
        out,
        "                 {} ({:.1} %) overtaken by more than one retry sleep ({:.1} s)",
        order.out_of_order_beyond_slack,
        order.out_of_order_beyond_slack_share * 100.0,
        order.slack_s
    );
    let estimate = &storm.wait_estimates;
    let _ = writeln!(
        out,
        "wait estimates   estimated p50 {} max {} s; actual p50 {} max {} s; |error| p50 {} max {} s; underestimated {:.1} %",
        optional(estimate.estimated_wait_s_p50),
        optional(estimate.estimated_wait_s_max),
        optional(estimate.actual_wait_s_p50),
        optional(estimate.actual_wait_s_max),
        optional(estimate.error_s_p50),
        optional(estimate.error_s_max),
        estimate.underestimated_share * 100.0
    );
    let _ = writeln!(
        out,
        "                 p90 estimated {} actual {} s; told / waited p10 {} p50 {} p90 {} %; within 2x {:.1} %; \
         latest past the estimate {} s",
        optional(estimate.estimated_wait_s_p90),
        optional(estimate.actual_wait_s_p90),
        optional(estimate.told_over_waited_pct_p10),
        optional(estimate.told_over_waited_pct_p50),
        optional(estimate.told_over_waited_pct_p90),
        estimate.within_2x_share * 100.0,
        estimate.late_s_max
    );
    let _ = writeln!(
        out,
        "retries          {} login attempts, {} polls, max Retry-After {} s, {} sleeps capped",
        storm.login_attempts, storm.waiting_room_polls, storm.retry_after_s_max, storm.retry_sleeps_capped
    );
    let _ = writeln!(
        out,
        "sessions held    max {} storm + payers = {} (client side); server active max {} of capacity {}, waiting max {} ({} samples)",
        storm.sessions_held_max_storm,
        storm.sessions_held_max_total,
        optional(storm.server_active_sessions_max),
        optional(storm.server_session_capacity),
        optional(storm.server_waiting_max),
        storm.server_admission_samples
    );
    let _ = writeln!(out, "wallet reads     {}", latency_line(&storm.wallet_read_latency));
    let _ = writeln!(out, "-- payments ({} won each)", payments.amount_won);
    for (name, phase) in [("quiet", &payments.quiet), ("storm", &payments.storm)] {
        let _ = writeln!(
            out,
            "{name:<16} ok {} failed {}; latency {}",
            phase.ok,
            phase.failed,
            latency_line(&phase.latency)
        );
    }
    let _ = writeln!(out, "skipped          {} (in-flight bound)", payments.skipped_in_flight_max);
    for (cause, count) in &payments.failures {
        let _ = writeln!(out, "  failed         {count} ({cause})");
    }
    let _ = writeln!(out, "-- requests (answers by status and code; transport failures apart)");
    out.push_str(&crate::render_requests(&report.requests));
    let _ = writeln!(
        out,
        "transport        timeouts {} connection errors {} cut at deadline {}",
        report.transport.timeouts, report.transport.connection_errors, report.transport.cut_at_deadline
    );
    if let Some(reading) = report.server_memory_at_storm_start {
        let _ = writeln!(
            out,
            "at storm start   VmRSS {:.1} MiB, VmHWM {:.1} MiB",
            reading.vm_rss_kib as f64 / 1024.0,
            reading.vm_hwm_kib as f64 / 1024.0
        );
    }
    out.push_str(&crate::render_memory(report.server_memory.as_ref()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payer_charge_respects_the_policy() {
        assert_eq!(payer_charge_won(None), PAYER_CHARGE_WON_MAX);
        let policy = json!({"monthly_charge_limit": "2000000", "holding_limit": "3000000"});
        assert_eq!(payer_charge_won(Some(&policy)), 1_900_000);
        let tight = json!({"monthly_charge_limit": "500000", "holding_limit": "3000000"});
        assert_eq!(payer_charge_won(Some(&tight)), 475_000);
    }

    #[test]
    fn payment_amount_lets_payers_last() {
        // 20/s for 130 s over 20 payers: 130 payments each from 1.9 M won.
        assert_eq!(payment_amount_won(1_900_000, 20.0, 130.0, 20), Ok(10_000));
        assert_eq!(payment_amount_won(1_900_000, 500.0, 3_600.0, 20), Ok(21));
        assert!(payment_amount_won(10, 100.0, 100.0, 1).is_err());
    }
}
