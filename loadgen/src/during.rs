//! `pay-during`: payments at a steady rate before, during and after a command that shares the
//! server's database (a city-wide grant, `wallet-server programs grant`), and what the command
//! did to their latency (scripts/bench-grants).
//!
//! Setup (untimed): merchants are created through an admin, payers registered, logged in and
//! charged, the cashback budget topped up. Then payments start at `--pay-rate` per second (open
//! loop, as in `cutover`: a slow answer does not delay the next payment; a payment is a payment
//! code fetched by payer `seq mod payers`, then `POST /v1/payments` by merchant `seq mod
//! merchants`). After `--quiet-s` seconds the command given after `--` is started; payments go
//! on until it exits (killed after `--command-max-s`), then for `--after-s` more. A payment
//! belongs to the phase it started in: quiet, during, after. The report gives each phase's
//! payments and the latency of `POST /v1/payments` alone (from sending to the last byte of the
//! answer), the command's wall time and exit status, and a timeline in windows of
//! `--window-s` seconds. The command's own output is inherited (redirect it in the caller).

use crate::in_range;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Api, Call, Outcome};
use crate::memory::{MemorySummary, Sampler};
use crate::setup::{self, Registered};
use crate::stats::{self, KindTally, LatencySummary, Tally};
use crate::CommonArgs;

const MERCHANTS_MAX: usize = 1_000;
const PAYERS_MAX: usize = 1_000;
/// Payments per second, all merchants together.
const PAY_RATE_MAX: f64 = 2_000.0;
/// Longest quiet phase, after phase and command.
const PHASE_S_MAX: f64 = 4.0 * 3_600.0;
/// What a payer is charged: under the default monthly charge limit (2,000,000).
const PAYER_CHARGE_WON: u64 = 1_900_000;
/// Payments cost at most this much each (small purchases).
const PAYMENT_AMOUNT_WON_MAX: u64 = 10_000;
const SETUP_TIME_MAX: Duration = Duration::from_secs(600);
/// How often the command is checked for having exited.
const COMMAND_POLL: Duration = Duration::from_millis(20);
const PHASES: [&str; 3] = ["quiet", "during", "after"];

#[derive(clap::Args, Debug)]
pub struct DuringArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Login of a city admin (creates merchants, tops up the cashback budget).
    #[arg(long)]
    pub admin_login: String,
    /// That admin's password.
    #[arg(long)]
    pub admin_password: String,
    /// Citizens who pay (registered, logged in and charged 1,900,000 won in setup).
    #[arg(long, default_value_t = 100)]
    pub payers: usize,
    /// Merchants taking payments.
    #[arg(long, default_value_t = 8)]
    pub merchants: usize,
    /// Payments started per second, all merchants together (open loop).
    #[arg(long, default_value_t = 200.0)]
    pub pay_rate: f64,
    /// Payments in flight at most; a payment due while this many are in flight is skipped and counted.
    #[arg(long, default_value_t = 256)]
    pub payments_in_flight_max: usize,
    /// Seconds of payments before the command starts (the quiet baseline).
    #[arg(long, default_value_t = 30.0)]
    pub quiet_s: f64,
    /// Seconds of payments after the command exits.
    #[arg(long, default_value_t = 10.0)]
    pub after_s: f64,
    /// The command is killed if it runs longer than this.
    #[arg(long, default_value_t = 3_600.0)]
    pub command_max_s: f64,
    /// Width of the timeline's windows in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub window_s: f64,
    /// Amount of each payment (default: what lets every payer last quiet + command max + after).
    #[arg(long)]
    pub payment_amount_won: Option<u64>,
    /// Cashback budget top-up in won made in setup (0: none), so payments earn cashback.
    #[arg(long, default_value_t = 1_000_000_000)]
    pub budget_top_up_won: u64,
    /// Setup requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub setup_concurrency: usize,
    /// The command to run during the payments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

impl DuringArgs {
    fn check(&self) -> Result<(), String> {
        self.common.check()?;
        in_range("payers", self.payers as f64, 1.0, PAYERS_MAX as f64)?;
        in_range("merchants", self.merchants as f64, 1.0, MERCHANTS_MAX as f64)?;
        in_range("pay-rate", self.pay_rate, 0.1, PAY_RATE_MAX)?;
        in_range("payments-in-flight-max", self.payments_in_flight_max as f64, 1.0, 4_096.0)?;
        in_range("quiet-s", self.quiet_s, 0.0, PHASE_S_MAX)?;
        in_range("after-s", self.after_s, 0.0, PHASE_S_MAX)?;
        in_range("command-max-s", self.command_max_s, 1.0, PHASE_S_MAX)?;
        in_range("window-s", self.window_s, 0.1, 3_600.0)?;
        in_range("setup-concurrency", self.setup_concurrency as f64, 1.0, 256.0)?;
        if let Some(amount) = self.payment_amount_won {
            in_range("payment-amount-won", amount as f64, 1.0, PAYMENT_AMOUNT_WON_MAX as f64)?;
        }
        Ok(())
    }
}

/// One phase's payments.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// Seconds from the phase's start to its end (payments started in it may end later).
    pub seconds: f64,
    /// Payments started in the phase (a payment code requested).
    pub started: u64,
    /// Answered 201.
    pub ok: u64,
    /// Ended any other way, the code request included (causes in `failures`).
    pub failed: u64,
    /// `ok / seconds`.
    pub ok_per_s: f64,
    /// `POST /v1/payments` alone, every answered one.
    pub latency: LatencySummary,
}

/// One window of the timeline, by the payments' start times.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// Seconds from the start of payments to the window's start.
    pub from_s: f64,
    /// The phase of the window's first payment.
    pub phase: &'static str,
    pub latency: LatencySummary,
    /// Where the machine's CPU went in the window (Linux `/proc`), when it could be read.
    pub cpu: Option<CpuWindow>,
}

/// CPU time over one window, in cores (CPU seconds per second). `other` is what neither the
/// server nor this load generator used: the command during its phase, and anything else on the
/// machine (a noisy neighbour shows here in the quiet phase); `steal` is time the hypervisor
/// gave to other machines.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct CpuWindow {
    pub busy: f64,
    pub server: Option<f64>,
    pub loadgen: f64,
    pub other: f64,
    pub steal: f64,
}

/// Clock ticks of `/proc` (USER_HZ; 100 on every Linux this runs on).
const TICKS_PER_S: f64 = 100.0;

/// One reading of the CPU counters, in clock ticks.
#[derive(Debug, Clone, Copy)]
struct CpuReading {
    at_s: f64,
    busy: u64,
    steal: u64,
    server: Option<u64>,
    loadgen: u64,
}

/// `(busy, steal)` ticks of all CPUs from `/proc/stat`'s first line (busy: all but idle, iowait
/// and steal).
fn machine_ticks(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line.split_whitespace().filter_map(|field| field.parse().ok()).collect();
    let [user, nice, system, _idle, _iowait, irq, softirq, steal, ..] = fields[..] else { return None };
    Some((user + nice + system + irq + softirq, steal))
}

/// utime + stime of a process from its `/proc/PID/stat` text (fields 14 and 15; the command
/// name in parentheses may hold spaces, so count from its closing parenthesis).
fn process_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn read_cpu(at_s: f64, server_pid: Option<u32>) -> Option<CpuReading> {
    let (busy, steal) = machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let loadgen = process_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let server = server_pid
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .and_then(|text| process_ticks(&text));
    Some(CpuReading { at_s, busy, steal, server, loadgen })
}

/// The CPU of the window `[from_s, from_s + window_s)`, from the readings taken at its ends.
fn cpu_window(readings: &[CpuReading], from_s: f64, window_s: f64) -> Option<CpuWindow> {
    let near = |at: f64| readings.iter().find(|reading| (reading.at_s - at).abs() < window_s / 4.0);
    let (start, end) = (near(from_s)?, near(from_s + window_s)?);
    let seconds = end.at_s - start.at_s;
    if seconds <= 0.0 {
        return None;
    }
    let cores = |ticks: u64| ticks as f64 / TICKS_PER_S / seconds;
    let busy = cores(end.busy.saturating_sub(start.busy));
    let server = match (start.server, end.server) {
        (Some(start), Some(end)) => Some(cores(end.saturating_sub(start))),
        _ => None,
    };
    let loadgen = cores(end.loadgen.saturating_sub(start.loadgen));
    let other = (busy - server.unwrap_or(0.0) - loadgen).max(0.0);
    Some(CpuWindow { busy, server, loadgen, other, steal: cores(end.steal.saturating_sub(start.steal)) })
}

/// How the command ended.
#[derive(Debug, Clone, Serialize)]
pub struct CommandReport {
    pub argv: Vec<String>,
    /// Exit code; `None` when it was killed or ended by a signal.
    pub exit_code: Option<i32>,
    pub killed_after_max: bool,
    /// From spawning it to seeing it exit (within [`COMMAND_POLL`]).
    pub wall_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DuringReport {
    pub run: String,
    pub pay_rate: f64,
    pub payers: usize,
    pub merchants: usize,
    pub amount_won: u64,
    pub setup_s: f64,
    pub quiet: PhaseReport,
    pub during: PhaseReport,
    pub after: PhaseReport,
    /// `during.latency.p99_ms / quiet.latency.p99_ms`.
    pub p99_ratio: Option<f64>,
    pub skipped_in_flight_max: u64,
    pub failures: BTreeMap<String, u64>,
    pub command: CommandReport,
    pub timeline: Vec<Window>,
    pub server_memory: Option<MemorySummary>,
    /// Answers by request kind, setup included.
    pub requests: BTreeMap<String, KindTally>,
}

/// One answered payment: its phase, when it started (µs from the start of payments), its latency.
#[derive(Clone, Copy)]
struct Sample {
    phase: usize,
    started_us: u64,
    latency_us: u64,
}

#[derive(Default)]
struct Recorder {
    phase: AtomicUsize,
    samples: Mutex<Vec<Sample>>,
    started: [AtomicU64; 3],
    ok: [AtomicU64; 3],
    failed: [AtomicU64; 3],
    skipped_in_flight_max: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
}

impl Recorder {
    fn fail(&self, phase: usize, cause: String) {
        self.failed[phase].fetch_add(1, Ordering::SeqCst);
        if let Ok(mut failures) = self.failures.lock() {
            *failures.entry(cause).or_default() += 1;
        }
    }
}

struct Plan {
    api: Api,
    payers: Vec<String>,
    merchants: Vec<String>,
    amount_won: u64,
    rate_per_s: f64,
    in_flight_max: usize,
    run_id: String,
    request_timeout: Duration,
    /// The start of payments: the timeline's zero.
    zero: Instant,
    /// The generator stops by itself after this long, whatever happens to the command.
    run_time_max: Duration,
}

/// Runs the payments and the command, and prints the report.
pub async fn run(args: DuringArgs) -> Result<(), String> {
    args.check()?;
    let base = args.common.loopback_base().await?;
    let run_id = args.common.run_id()?;
    let tally = Arc::new(Tally::default());
    let setup_api = Api::new(&base, args.common.client_limits(args.setup_concurrency), Arc::clone(&tally))?;
    let payment_api =
        Api::new(&base, args.common.client_limits(args.payments_in_flight_max * 2 + 4), Arc::clone(&tally))?;
    let sampler = args.common.server_pid.map(Sampler::start).transpose()?;

    let setup_started = Instant::now();
    let deadline = setup_started + SETUP_TIME_MAX;
    eprintln!("run {run_id}: setup against {}", base.base);
    let admin = setup::login_direct(&setup_api, "admin_login", &args.admin_login, &args.admin_password, deadline)
        .await
        .map_err(|error| format!("{error}; check --admin-login/--admin-password"))?;
    let merchants =
        crate::cutover::create_merchants(&setup_api, &admin, &run_id, args.merchants, args.setup_concurrency, deadline)
            .await?;
    if args.budget_top_up_won > 0 {
        setup::top_up_budget(&setup_api, &admin, &run_id, args.budget_top_up_won, deadline).await;
    }
    let payers = setup::for_each_bounded(args.payers, args.setup_concurrency, Some("payers"), |index| {
        let api = setup_api.clone();
        let login = format!("lg-{run_id}-p{index}");
        let charge_key = format!("lg-{run_id}-charge-{index}");
        async move {
            if let Registered::Failed(error) = setup::register_citizen(&api, "payer_register", &login, deadline).await {
                return Err(format!("payer {login}: registration failed: {error}"));
            }
            let token = setup::login_direct(&api, "payer_login", &login, setup::PASSWORD, deadline).await?;
            setup::charge(&api, &token, &format!("payer {login}"), PAYER_CHARGE_WON, charge_key, deadline).await?;
            Ok(token)
        }
    })
    .await;
    let payers = setup::ready_tokens(payers);
    if payers.is_empty() {
        return Err("no payer is ready; see the warnings above".to_owned());
    }
    let setup_s = setup_started.elapsed().as_secs_f64();

    let run_time_max = Duration::from_secs_f64(args.quiet_s + args.command_max_s + args.after_s + 30.0);
    let amount_won = match args.payment_amount_won {
        Some(amount) => amount,
        None => {
            let payments = (args.pay_rate * run_time_max.as_secs_f64()).ceil() as u64;
            let per_payer = payments.div_ceil(payers.len() as u64).max(1);
            match (PAYER_CHARGE_WON / per_payer).min(PAYMENT_AMOUNT_WON_MAX) {
                0 => return Err(format!("{per_payer} payments per payer cannot be paid from a charge; add --payers")),
                amount => amount,
            }
        }
    };

    let recorder = Arc::new(Recorder::default());
    let (stop, stopped) = watch::channel(false);
    let zero = Instant::now();
    let plan = Plan {
        api: payment_api,
        payers,
        merchants,
        amount_won,
        rate_per_s: args.pay_rate,
        in_flight_max: args.payments_in_flight_max,
        run_id: run_id.clone(),
        request_timeout: Duration::from_secs_f64(args.common.request_timeout_s),
        zero,
        run_time_max,
    };
    eprintln!("quiet: {:.0} s of payments at {}/s, {amount_won} won each", args.quiet_s, args.pay_rate);
    let generator = tokio::spawn(generate(plan, Arc::clone(&recorder), stopped.clone()));
    let cpu = tokio::spawn(sample_cpu(zero, args.window_s, args.common.server_pid, stopped));
    tokio::time::sleep(Duration::from_secs_f64(args.quiet_s)).await;

    let quiet_s = zero.elapsed().as_secs_f64();
    recorder.phase.store(1, Ordering::SeqCst);
    eprintln!("during: {}", args.command.join(" "));
    let command = run_command(&args.command, Duration::from_secs_f64(args.command_max_s)).await?;
    let during_s = zero.elapsed().as_secs_f64() - quiet_s;
    recorder.phase.store(2, Ordering::SeqCst);
    eprintln!(
        "command ended after {:.1} s (exit {:?}); {:.0} s of payments after it",
        command.wall_s, command.exit_code, args.after_s
    );
    tokio::time::sleep(Duration::from_secs_f64(args.after_s)).await;
    let after_s = zero.elapsed().as_secs_f64() - quiet_s - during_s;
    let _ = stop.send(true);
    let _ = generator.await;
    let cpu = cpu.await.unwrap_or_default();

    let samples = recorder.samples.lock().map(|samples| samples.clone()).unwrap_or_default();
    let phase = |index: usize, seconds: f64| {
        let ok = recorder.ok[index].load(Ordering::SeqCst);
        PhaseReport {
            seconds,
            started: recorder.started[index].load(Ordering::SeqCst),
            ok,
            failed: recorder.failed[index].load(Ordering::SeqCst),
            ok_per_s: ok as f64 / seconds.max(f64::EPSILON),
            latency: stats::summarise_latency(
                samples.iter().filter(|sample| sample.phase == index).map(|sample| sample.latency_us).collect(),
            ),
        }
    };
    let (quiet, during, after) = (phase(0, quiet_s), phase(1, during_s), phase(2, after_s));
    let p99_ratio = match (quiet.latency.p99_ms, during.latency.p99_ms) {
        (Some(quiet), Some(during)) if quiet > 0.0 => Some(during / quiet),
        _ => None,
    };
    let server_memory = match sampler {
        Some(sampler) => Some(sampler.finish().await),
        None => None,
    };
    let report = DuringReport {
        run: run_id,
        pay_rate: args.pay_rate,
        payers: args.payers,
        merchants: args.merchants,
        amount_won,
        setup_s,
        quiet,
        during,
        after,
        p99_ratio,
        skipped_in_flight_max: recorder.skipped_in_flight_max.load(Ordering::SeqCst),
        failures: recorder.failures.lock().map(|failures| failures.clone()).unwrap_or_default(),
        command,
        timeline: timeline(&samples, &cpu, args.window_s),
        server_memory,
        requests: tally.snapshot(),
    };
    print!("{}", render(&report));
    if let Some(path) = &args.common.json {
        crate::write_json(path, &report)?;
    }
    Ok(())
}

/// Spawns `argv`, waits for it at most `max`, then kills it.
async fn run_command(argv: &[String], max: Duration) -> Result<CommandReport, String> {
    let (program, rest) = argv.split_first().ok_or("no command given after --")?;
    let started = Instant::now();
    let mut child = std::process::Command::new(program)
        .args(rest)
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|error| format!("cannot start {program}: {error}"))?;
    let mut killed_after_max = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(error) => return Err(format!("cannot wait for {program}: {error}")),
        }
        if started.elapsed() >= max {
            eprintln!("{program} still runs after {:.0} s; killing it", max.as_secs_f64());
            killed_after_max = true;
            let _ = child.kill();
            break child.wait().ok();
        }
        tokio::time::sleep(COMMAND_POLL).await;
    };
    Ok(CommandReport {
        argv: argv.to_vec(),
        exit_code: status.and_then(|status| status.code()),
        killed_after_max,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

/// Starts payments at a fixed rate until stopped, the time bound passes, or the count bound.
async fn generate(plan: Plan, recorder: Arc<Recorder>, mut stopped: watch::Receiver<bool>) {
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
async fn pay(plan: Arc<Plan>, recorder: Arc<Recorder>, sequence: u64) {
    let phase = recorder.phase.load(Ordering::SeqCst);
    recorder.started[phase].fetch_add(1, Ordering::SeqCst);
    let deadline = Instant::now() + plan.request_timeout * 2 + Duration::from_secs(1);
    let payer = &plan.payers[(sequence % plan.payers.len() as u64) as usize];
    let merchant = &plan.merchants[(sequence % plan.merchants.len() as u64) as usize];
    let issued =
        plan.api.send(Call::post_empty("payment_code", "/v1/wallet/payment-codes", Some(payer)), deadline).await;
    let Some(code) = issued.answer_with(201).and_then(|answer| answer.body.get("code")).and_then(Value::as_str) else {
        recorder.fail(phase, format!("payment_code {}", short(&issued)));
        return;
    };
    let body = json!({"payment_code": code, "amount": plan.amount_won.to_string()});
    let call = Call::post("payment", "/v1/payments", Some(merchant), body)
        .idempotency_key(format!("lg-{}-pay-{sequence}", plan.run_id));
    let started_us = plan.zero.elapsed().as_micros() as u64;
    let paid = plan.api.send(call, deadline).await;
    if let Outcome::Answered(answer) = &paid {
        if let Ok(mut samples) = recorder.samples.lock() {
            samples.push(Sample { phase, started_us, latency_us: answer.elapsed.as_micros() as u64 });
        }
    }
    if paid.answer_with(201).is_some() {
        recorder.ok[phase].fetch_add(1, Ordering::SeqCst);
    } else {
        recorder.fail(phase, format!("payment {}", short(&paid)));
    }
}

/// `"<status> <code>"` (and for a 5xx the start of its message: the server answers 503
/// `overloaded` for several reasons), or the transport failure.
fn short(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Answered(answer) => {
            let mut cause = match &answer.code {
                Some(code) => format!("{} {code}", answer.status),
                None => answer.status.to_string(),
            };
            if answer.status >= 500 {
                if let Some(message) = answer.body.pointer("/error/message").and_then(Value::as_str) {
                    cause.push_str(": ");
                    cause.extend(message.chars().take(60));
                }
            }
            cause
        }
        Outcome::Timeout => "timeout".to_owned(),
        Outcome::ConnectionError(_) => "connection_error".to_owned(),
        Outcome::CutAtDeadline => "cut_at_deadline".to_owned(),
    }
}

/// Reads the CPU counters at every window boundary from `zero` until stopped (one reading
/// after the stop too, for the last window).
async fn sample_cpu(
    zero: Instant,
    window_s: f64,
    server_pid: Option<u32>,
    mut stopped: watch::Receiver<bool>,
) -> Vec<CpuReading> {
    let mut readings = Vec::new();
    let mut interval = tokio::time::interval_at(zero, Duration::from_secs_f64(window_s));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Bounded like everything else: a day of windows at most.
    for _ in 0..(86_400.0 / window_s).ceil() as u64 {
        let stop = tokio::select! {
            _ = interval.tick() => false,
            _ = stopped.changed() => true,
        };
        if let Some(reading) = read_cpu(zero.elapsed().as_secs_f64(), server_pid) {
            readings.push(reading);
        }
        if stop || *stopped.borrow() {
            // The window the stop fell in ends at its boundary: wait for it, so it is whole.
            interval.tick().await;
            if let Some(reading) = read_cpu(zero.elapsed().as_secs_f64(), server_pid) {
                readings.push(reading);
            }
            break;
        }
    }
    readings
}

/// The samples in windows of `window_s` by start time, with the CPU of each window.
fn timeline(samples: &[Sample], cpu: &[CpuReading], window_s: f64) -> Vec<Window> {
    let window_us = (window_s * 1e6) as u64;
    let mut windows: BTreeMap<u64, (usize, Vec<u64>)> = BTreeMap::new();
    for sample in samples {
        let entry = windows.entry(sample.started_us / window_us).or_insert((sample.phase, Vec::new()));
        entry.0 = entry.0.min(sample.phase);
        entry.1.push(sample.latency_us);
    }
    windows
        .into_iter()
        .map(|(index, (phase, latencies))| Window {
            from_s: index as f64 * window_s,
            phase: PHASES[phase],
            latency: stats::summarise_latency(latencies),
            cpu: cpu_window(cpu, index as f64 * window_s, window_s),
        })
        .collect()
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.1}"))
}

fn phase_line(name: &str, phase: &PhaseReport) -> String {
    format!(
        "{name:<7} {:>7.1} s: started {} ok {} failed {} ({:.1}/s); POST /v1/payments ms p50 {} p99 {} max {}\n",
        phase.seconds,
        phase.started,
        phase.ok,
        phase.failed,
        phase.ok_per_s,
        ms(phase.latency.p50_ms),
        ms(phase.latency.p99_ms),
        ms(phase.latency.max_ms)
    )
}

/// The text report.
pub fn render(report: &DuringReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run {}: {}/s payments, {} payers, {} merchants, {} won each; setup {:.1} s",
        report.run, report.pay_rate, report.payers, report.merchants, report.amount_won, report.setup_s
    );
    out.push_str(&phase_line("quiet", &report.quiet));
    out.push_str(&phase_line("during", &report.during));
    out.push_str(&phase_line("after", &report.after));
    let _ = writeln!(
        out,
        "p99 during / quiet: {}; skipped (in flight at max): {}; failures: {:?}",
        report.p99_ratio.map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}")),
        report.skipped_in_flight_max,
        report.failures
    );
    let _ = writeln!(
        out,
        "command: exit {:?}{} after {:.1} s: {}",
        report.command.exit_code,
        if report.command.killed_after_max { " (killed at its time bound)" } else { "" },
        report.command.wall_s,
        report.command.argv.join(" ")
    );
    out.push_str("timeline (by start time; latency ms; CPU in cores: busy = server + loadgen + other, steal)\n");
    for window in &report.timeline {
        let cpu = window.cpu.map_or_else(String::new, |cpu| {
            format!(
                "  cpu {:.2} = {} + {:.2} + {:.2}, steal {:.2}",
                cpu.busy,
                cpu.server.map_or_else(|| "-".to_owned(), |server| format!("{server:.2}")),
                cpu.loadgen,
                cpu.other,
                cpu.steal
            )
        });
        let _ = writeln!(
            out,
            "  {:>7.0} s {:<6} n {:>6}  p50 {:>6}  p99 {:>7}  max {:>7}{cpu}",
            window.from_s,
            window.phase,
            window.latency.count,
            ms(window.latency.p50_ms),
            ms(window.latency.p99_ms),
            ms(window.latency.max_ms)
        );
    }
    out.push_str(&crate::render_memory(report.server_memory.as_ref()));
    out.push_str(&crate::render_requests(&report.requests));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_groups_by_start_time_and_names_the_first_phase() {
        let sample = |phase, started_ms: u64, latency_ms: u64| Sample {
            phase,
            started_us: started_ms * 1000,
            latency_us: latency_ms * 1000,
        };
        let samples = [sample(0, 100, 2), sample(0, 900, 4), sample(1, 1_500, 8), sample(0, 1_200, 1)];
        let windows = timeline(&samples, &[], 1.0);
        assert_eq!(windows.len(), 2);
        assert_eq!((windows[0].from_s, windows[0].phase, windows[0].latency.count), (0.0, "quiet", 2));
        assert_eq!((windows[1].from_s, windows[1].phase, windows[1].latency.count), (1.0, "quiet", 2));
        assert_eq!(windows[1].latency.max_ms, Some(8.0));
        assert_eq!(windows[0].cpu, None);
    }

    #[test]
    fn cpu_counters_are_read_from_proc_texts() {
        let stat = "cpu  100 5 50 1000 20 3 2 7 0 0\ncpu0 50 2 25 500 10 1 1 3 0 0\n";
        assert_eq!(machine_ticks(stat), Some((160, 7)));
        let process = "4242 (wallet server) S 1 4242 4242 0 -1 4194304 1 0 0 0 250 40 0 0 20 0 9 0 1 2 3";
        assert_eq!(process_ticks(process), Some(290));
        let reading = |at_s, busy, server| CpuReading { at_s, busy, steal: 0, server: Some(server), loadgen: 10 };
        let window = cpu_window(&[reading(0.0, 0, 0), reading(10.0, 1_500, 600)], 0.0, 10.0).unwrap();
        assert_eq!((window.busy, window.server, window.loadgen, window.other), (1.5, Some(0.6), 0.0, 0.9));
    }
}
