//! `idle`: what holding sessions costs the server. Logs many sessions in, sends nothing on them,
//! and compares the server's resident memory before and after.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::client::{Api, Call, Outcome};
use crate::memory::{self, MemoryReading, MemorySummary, Sampler};
use crate::setup::{self, Registered, PASSWORD};
use crate::stats::{KindTally, Tally};
use crate::CommonArgs;

const SESSIONS_MAX: usize = 200_000;
/// Registration plus logins stop here (both are argon2-bound on the server).
const SETUP_TIME_MAX: Duration = Duration::from_secs(4 * 3_600);
/// Bounds the logouts at the end.
const LOGOUT_TIME_MAX: Duration = Duration::from_secs(600);

#[derive(clap::Args, Debug)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Sessions to open and hold (spread over the citizens in turn).
    #[arg(long)]
    pub sessions: usize,
    /// Citizens to register or reuse (default: as many as sessions).
    #[arg(long)]
    pub citizens: Option<usize>,
    /// Logins are `<prefix>-<i>`; citizens that exist already (409 login_taken) are reused.
    /// Default: `lg-<run id>`.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Seconds the sessions are held, idle, after the last login and before the "after" reading.
    #[arg(long, default_value_t = 5.0)]
    pub hold_s: f64,
    /// Leave the sessions open at the end instead of logging them out.
    #[arg(long)]
    pub keep_sessions: bool,
    /// Registrations and logins in flight at once.
    #[arg(long, default_value_t = 8)]
    pub setup_concurrency: usize,
}

#[derive(Debug, Serialize)]
pub struct IdleReport {
    pub url: String,
    pub prefix: String,
    pub citizens_registered_new: usize,
    pub citizens_registered_existing: usize,
    pub citizens_registration_failed: usize,
    pub sessions_requested: usize,
    pub sessions_held: usize,
    /// Logins that did not open a session, by answer; after the first `waiting_room` answer the
    /// remaining logins are not sent (`not_sent`), since capacity is reached.
    pub sessions_refused: BTreeMap<String, usize>,
    pub login_s: f64,
    /// Server memory just before the first login (after registration) and after the hold.
    pub before: Option<MemoryReading>,
    pub after: Option<MemoryReading>,
    /// `(after.vm_rss - before.vm_rss) / sessions_held`, in bytes (may be negative).
    pub rss_per_session_bytes: Option<f64>,
    /// Server memory after the sessions were logged out (absent with --keep-sessions).
    pub after_logout: Option<MemoryReading>,
    /// `(after.vm_rss - after_logout.vm_rss) / sessions_held`, in bytes: what ending the sessions
    /// gave back. Unlike `rss_per_session_bytes` it leaves out memory the logins' password
    /// checks left in the allocator.
    pub rss_released_per_session_bytes: Option<f64>,
    pub logouts_ok: usize,
    pub server_memory: Option<MemorySummary>,
    pub requests: BTreeMap<String, KindTally>,
}

pub async fn run(args: IdleArgs) -> Result<(), String> {
    if !(1..=SESSIONS_MAX).contains(&args.sessions) {
        return Err(format!("--sessions {} is out of range: give 1 to {SESSIONS_MAX}", args.sessions));
    }
    let citizens = args.citizens.unwrap_or(args.sessions);
    if !(1..=args.sessions).contains(&citizens) {
        return Err(format!("--citizens {citizens} is out of range: give 1 to --sessions ({})", args.sessions));
    }
    if !(args.hold_s.is_finite() && (0.0..=3_600.0).contains(&args.hold_s)) {
        return Err(format!("--hold-s {} is out of range: give 0 to 3600", args.hold_s));
    }
    if !(1..=256).contains(&args.setup_concurrency) {
        return Err(format!("--setup-concurrency {} is out of range: give 1 to 256", args.setup_concurrency));
    }
    args.common.check()?;
    let base = args.common.loopback_base().await?;
    let prefix = match &args.prefix {
        Some(prefix) => prefix.clone(),
        None => format!("lg-{}", args.common.run_id()?),
    };
    setup::check_login_prefix(&prefix)?;
    let tally = Arc::new(Tally::default());
    let api = Api::new(&base, args.common.client_limits(args.common.in_flight_max), Arc::clone(&tally))?;
    let sampler = args.common.server_pid.map(Sampler::start).transpose()?;
    let deadline = Instant::now() + SETUP_TIME_MAX;

    let logins: Arc<Vec<String>> = Arc::new((0..citizens).map(|index| format!("{prefix}-{index}")).collect());
    let registered = setup::for_each_bounded(citizens, args.setup_concurrency, Some("registering citizens"), |index| {
        let (api, logins) = (api.clone(), Arc::clone(&logins));
        async move { setup::register_citizen(&api, "citizen_register", &logins[index], deadline).await }
    })
    .await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = read_now(sampler.as_ref(), args.common.server_pid);
    let full = Arc::new(AtomicBool::new(false));
    let login_started = Instant::now();
    let sessions = setup::for_each_bounded(args.sessions, args.setup_concurrency, Some("logging in"), |index| {
        let (api, logins, full) = (api.clone(), Arc::clone(&logins), Arc::clone(&full));
        async move {
            if full.load(Ordering::SeqCst) {
                return Err("not_sent".to_owned());
            }
            let login = &logins[index % logins.len()];
            let body = json!({"login": login, "password": PASSWORD});
            let outcome = api.send(Call::post("idle_login", "/v1/sessions", None, body), deadline).await;
            match &outcome {
                Outcome::Answered(answer) if answer.status == 201 => answer
                    .body
                    .get("token")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or("201 without a token".to_owned()),
                Outcome::Answered(answer) => {
                    if answer.code.as_deref() == Some("waiting_room") {
                        full.store(true, Ordering::SeqCst);
                    }
                    Err(format!("{} {}", answer.status, answer.code.as_deref().unwrap_or("-")))
                }
                Outcome::Timeout => Err("timeout".to_owned()),
                Outcome::ConnectionError(_) => Err("connection_error".to_owned()),
                Outcome::CutAtDeadline => Err("cut_at_deadline".to_owned()),
            }
        }
    })
    .await;
    let login_s = login_started.elapsed().as_secs_f64();
    let tokens: Vec<String> = sessions.iter().filter_map(|session| session.as_ref().ok().cloned()).collect();
    let mut sessions_refused = BTreeMap::new();
    for error in sessions.iter().filter_map(|session| session.as_ref().err()) {
        *sessions_refused.entry(error.clone()).or_default() += 1;
    }
    if full.load(Ordering::SeqCst) {
        eprintln!("warning: the server's session capacity was reached; raise WALLET_MAX_SESSIONS to hold more");
    }

    eprintln!("holding {} sessions idle for {:.0} s", tokens.len(), args.hold_s);
    tokio::time::sleep(Duration::from_secs_f64(args.hold_s)).await;
    let after = read_now(sampler.as_ref(), args.common.server_pid);
    let rss_per_session_bytes = match (before, after) {
        (Some(before), Some(after)) if !tokens.is_empty() => {
            Some((after.vm_rss_kib as f64 - before.vm_rss_kib as f64) * 1024.0 / tokens.len() as f64)
        }
        _ => None,
    };

    let mut logouts_ok = 0;
    let mut after_logout = None;
    if !args.keep_sessions && !tokens.is_empty() {
        let tokens = Arc::new(tokens.clone());
        let logout_deadline = Instant::now() + LOGOUT_TIME_MAX;
        let logged_out = setup::for_each_bounded(tokens.len(), args.setup_concurrency, Some("logging out"), |index| {
            let (api, tokens) = (api.clone(), Arc::clone(&tokens));
            async move {
                let call = Call::delete("logout", "/v1/sessions/current", Some(&tokens[index]));
                api.send(call, logout_deadline).await.answer_with(204).is_some()
            }
        })
        .await;
        logouts_ok = logged_out.iter().filter(|ok| **ok).count();
        tokio::time::sleep(Duration::from_secs(1)).await;
        after_logout = read_now(sampler.as_ref(), args.common.server_pid);
    }
    let rss_released_per_session_bytes = match (after, after_logout) {
        (Some(after), Some(after_logout)) if logouts_ok > 0 => {
            Some((after.vm_rss_kib as f64 - after_logout.vm_rss_kib as f64) * 1024.0 / logouts_ok as f64)
        }
        _ => None,
    };
    let server_memory = match sampler {
        Some(sampler) => Some(sampler.finish().await),
        None => None,
    };
    let report = IdleReport {
        url: base.base.clone(),
        prefix,
        citizens_registered_new: registered.iter().filter(|r| **r == Registered::New).count(),
        citizens_registered_existing: registered.iter().filter(|r| **r == Registered::Existing).count(),
        citizens_registration_failed: registered.iter().filter(|r| matches!(r, Registered::Failed(_))).count(),
        sessions_requested: args.sessions,
        sessions_held: tokens.len(),
        sessions_refused,
        login_s,
        before,
        after,
        rss_per_session_bytes,
        after_logout,
        rss_released_per_session_bytes,
        logouts_ok,
        server_memory,
        requests: tally.snapshot(),
    };
    print!("{}", render(&report));
    if let Some(path) = &args.common.json {
        crate::write_json(path, &report)?;
    }
    Ok(())
}

fn read_now(sampler: Option<&Sampler>, pid: Option<u32>) -> Option<MemoryReading> {
    match sampler {
        Some(sampler) => sampler.sample_now(),
        None => pid.and_then(|pid| memory::read(pid).ok()),
    }
}

pub fn render(report: &IdleReport) -> String {
    let mut out = String::new();
    let reading = |reading: Option<MemoryReading>| {
        reading.map_or_else(
            || "-".to_owned(),
            |reading| format!("VmRSS {} KiB, VmHWM {} KiB", reading.vm_rss_kib, reading.vm_hwm_kib),
        )
    };
    let _ = writeln!(out, "== wallet-loadgen idle against {} (logins {}-<i>)", report.url, report.prefix);
    let _ = writeln!(
        out,
        "citizens         new {} existing {} failed {}",
        report.citizens_registered_new, report.citizens_registered_existing, report.citizens_registration_failed
    );
    let _ = writeln!(
        out,
        "sessions         held {} of {} requested; logins took {:.1} s",
        report.sessions_held, report.sessions_requested, report.login_s
    );
    for (answer, count) in &report.sessions_refused {
        let _ = writeln!(out, "  not opened     {count} ({answer})");
    }
    let _ = writeln!(out, "server before    {}", reading(report.before));
    let _ = writeln!(out, "server after     {}", reading(report.after));
    let bytes = |value: Option<f64>| {
        value.map_or_else(|| "-".to_owned(), |bytes| format!("{bytes:.0} bytes ({:.2} KiB)", bytes / 1024.0))
    };
    let _ =
        writeln!(out, "RSS per session  {} (after - before, over sessions held)", bytes(report.rss_per_session_bytes));
    let _ = writeln!(out, "after logout     {} ({} logged out)", reading(report.after_logout), report.logouts_ok);
    let _ = writeln!(
        out,
        "released/session {} (after - after logout, over sessions logged out)",
        bytes(report.rss_released_per_session_bytes)
    );
    let _ = writeln!(out, "-- requests");
    out.push_str(&crate::render_requests(&report.requests));
    out.push_str(&crate::render_memory(report.server_memory.as_ref()));
    out
}
