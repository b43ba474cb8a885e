//! Untimed setup shared by the subcommands: bounded-concurrency loops, registration, logins.

use std::future::Future;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Api, Call, Outcome};

/// The password of every account this tool creates (8 to 128 characters, API.md).
pub const PASSWORD: &str = "loadgen-password-1";
/// Attempts per registration when the server answers 503 or the connection fails.
const REGISTER_ATTEMPTS_MAX: u32 = 5;
/// Longest sleep between two registration attempts.
const REGISTER_RETRY_SLEEP_MAX: Duration = Duration::from_secs(5);

/// Runs `make(0..count)` with at most `concurrency` futures in flight and returns the results in
/// index order. Prints a progress line to stderr at every tenth of the way when `label` is given.
pub async fn for_each_bounded<R, Fut>(
    count: usize,
    concurrency: usize,
    label: Option<&str>,
    mut make: impl FnMut(usize) -> Fut,
) -> Vec<R>
where
    R: Send + 'static,
    Fut: Future<Output = R> + Send + 'static,
{
    assert!(concurrency > 0, "concurrency must be at least 1");
    let mut results: Vec<Option<R>> = (0..count).map(|_| None).collect();
    let mut set = JoinSet::new();
    let mut next = 0;
    let mut done = 0;
    let started = Instant::now();
    let step = (count / 10).max(1);
    while next < count || !set.is_empty() {
        while next < count && set.len() < concurrency {
            let future = make(next);
            let index = next;
            set.spawn(async move { (index, future.await) });
            next += 1;
        }
        match set.join_next().await {
            Some(Ok((index, result))) => {
                results[index] = Some(result);
                done += 1;
                if let Some(label) = label {
                    if done % step == 0 || done == count {
                        eprintln!("{label}: {done}/{count} ({:.1} s)", started.elapsed().as_secs_f64());
                    }
                }
            }
            Some(Err(error)) => panic!("a setup task failed: {error}"),
            None => break,
        }
    }
    results.into_iter().map(|result| result.expect("every index was run once")).collect()
}

/// How a registration ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    New,
    /// 409 `login_taken`: the account exists already (a rerun with the same run id or prefix).
    Existing,
    Failed(String),
}

/// Registers a citizen (`POST /v1/citizens`), retrying 503s and connection failures a few times.
pub async fn register_citizen(api: &Api, kind: &'static str, login: &str, deadline: Instant) -> Registered {
    let mut last = String::new();
    for _ in 0..REGISTER_ATTEMPTS_MAX {
        let body = json!({"login": login, "password": PASSWORD});
        let outcome = api.send(Call::post(kind, "/v1/citizens", None, body), deadline).await;
        let sleep = match &outcome {
            Outcome::Answered(answer) if answer.status == 201 => return Registered::New,
            Outcome::Answered(answer) if answer.code.as_deref() == Some("login_taken") => return Registered::Existing,
            Outcome::Answered(answer) if answer.status == 503 => {
                Duration::from_secs(answer.retry_after_s.unwrap_or(1)).min(REGISTER_RETRY_SLEEP_MAX)
            }
            Outcome::Timeout | Outcome::ConnectionError(_) => Duration::from_secs(1),
            _ => return Registered::Failed(outcome.describe()),
        };
        last = outcome.describe();
        if Instant::now() + sleep >= deadline {
            break;
        }
        tokio::time::sleep(sleep).await;
    }
    Registered::Failed(last)
}

/// Logs in an account that never waits (admin, merchant) and returns its token.
pub async fn login_direct(
    api: &Api,
    kind: &'static str,
    login: &str,
    password: &str,
    deadline: Instant,
) -> Result<String, String> {
    let body = json!({"login": login, "password": password});
    let outcome = api.send(Call::post(kind, "/v1/sessions", None, body), deadline).await;
    outcome
        .answer_with(201)
        .and_then(|answer| answer.body.get("token").and_then(Value::as_str))
        .map(str::to_owned)
        .ok_or_else(|| format!("login of {login:?} failed: {}", outcome.describe()))
}

/// Tops up the cashback budget by `won` (an admin's `token`); a failure is only warned about,
/// since payments go on without cashback.
pub async fn top_up_budget(api: &Api, admin: &str, run_id: &str, won: u64, deadline: Instant) {
    let body = json!({"amount": won.to_string()});
    let call = Call::post("budget_top_up", "/v1/admin/cashback-budget/top-ups", Some(admin), body)
        .idempotency_key(format!("lg-{run_id}-budget"));
    let outcome = api.send(call, deadline).await;
    if outcome.answer_with(201).is_none() {
        eprintln!("warning: the cashback budget top-up failed: {}", outcome.describe());
    }
}

/// Charges `won` to the wallet of `token` (the citizen `who`) under the Idempotency-Key `key`.
pub async fn charge(api: &Api, token: &str, who: &str, won: u64, key: String, deadline: Instant) -> Result<(), String> {
    let body = json!({"amount": won.to_string()});
    let call = Call::post("charge", "/v1/wallet/charges", Some(token), body).idempotency_key(key);
    let charged = api.send(call, deadline).await;
    match charged.answer_with(201) {
        Some(_) => Ok(()),
        None => Err(format!("{who}: charge of {won} failed: {}", charged.describe())),
    }
}

/// The tokens of the accounts that got ready; each one that did not is warned about.
pub fn ready_tokens(prepared: Vec<Result<String, String>>) -> Vec<String> {
    let mut ready = Vec::new();
    for token in prepared {
        match token {
            Ok(token) => ready.push(token),
            Err(error) => eprintln!("warning: {error}"),
        }
    }
    ready
}

/// A run id for logins: lowercase hex of the Unix time in seconds, so reruns don't collide.
pub fn default_run_id() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    format!("{seconds:x}")
}

/// Checks a run id or prefix so that every login built from it fits `[a-z0-9._-]{3,64}`.
pub fn check_login_prefix(prefix: &str) -> Result<(), String> {
    let valid = (1..=40).contains(&prefix.len())
        && prefix.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"._-".contains(&byte));
    if valid {
        Ok(())
    } else {
        Err(format!("{prefix:?} must be 1 to 40 characters of a-z, 0-9, '.', '_' and '-'"))
    }
}
