//! The HTTP client: one wrapper that sends a request, bounds it, and tallies how it ended.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::loopback::LoopbackBase;
use crate::stats::{Ending, Tally};

/// Explicit client limits (STYLE.md: pass options at the call site, not library defaults).
#[derive(Debug, Clone, Copy)]
pub struct ClientLimits {
    /// Requests in flight at once through this client; more wait for a slot before sending.
    pub in_flight_max: usize,
    /// Whole-request timeout, from send to the last byte of the answer.
    pub request_timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
}

/// Idle pooled connections are dropped after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// A server answer, with its body parsed as JSON where it is JSON.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// `error.code` of an error body.
    pub code: Option<String>,
    /// The `Retry-After` header in whole seconds.
    pub retry_after_s: Option<u64>,
    pub body: Value,
    /// From sending the request to the last byte of the answer (not counting the wait for an
    /// in-flight slot).
    pub elapsed: Duration,
}

/// How a request ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Answered(Answer),
    Timeout,
    ConnectionError(String),
    CutAtDeadline,
}

impl Outcome {
    /// The answer when its status is `status`.
    pub fn answer_with(&self, status: u16) -> Option<&Answer> {
        match self {
            Outcome::Answered(answer) if answer.status == status => Some(answer),
            _ => None,
        }
    }

    /// A short description for error messages.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Answered(answer) => match &answer.code {
                Some(code) => format!("{} {code}: {}", answer.status, answer.body),
                None => format!("{}: {}", answer.status, answer.body),
            },
            Outcome::Timeout => "timed out".to_owned(),
            Outcome::ConnectionError(error) => format!("connection error: {error}"),
            Outcome::CutAtDeadline => "cut at the deadline".to_owned(),
        }
    }
}

/// One request to send.
pub struct Call<'a> {
    pub kind: &'static str,
    pub method: Method,
    pub path: String,
    pub token: Option<&'a str>,
    pub idempotency_key: Option<String>,
    pub body: Option<Value>,
}

impl<'a> Call<'a> {
    pub fn get(kind: &'static str, path: impl Into<String>, token: Option<&'a str>) -> Call<'a> {
        Call { kind, method: Method::GET, path: path.into(), token, idempotency_key: None, body: None }
    }

    pub fn post(kind: &'static str, path: impl Into<String>, token: Option<&'a str>, body: Value) -> Call<'a> {
        Call { kind, method: Method::POST, path: path.into(), token, idempotency_key: None, body: Some(body) }
    }

    /// A POST without a body (`POST /v1/wallet/payment-codes`).
    pub fn post_empty(kind: &'static str, path: impl Into<String>, token: Option<&'a str>) -> Call<'a> {
        Call { kind, method: Method::POST, path: path.into(), token, idempotency_key: None, body: None }
    }

    pub fn delete(kind: &'static str, path: impl Into<String>, token: Option<&'a str>) -> Call<'a> {
        Call { kind, method: Method::DELETE, path: path.into(), token, idempotency_key: None, body: None }
    }

    pub fn idempotency_key(mut self, key: String) -> Call<'a> {
        self.idempotency_key = Some(key);
        self
    }
}

/// The wallet server's API at a loopback base URL.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    tally: Arc<Tally>,
    in_flight: Arc<Semaphore>,
}

impl Api {
    pub fn new(base: &LoopbackBase, limits: ClientLimits, tally: Arc<Tally>) -> Result<Api, String> {
        Api::new_from(base, limits, tally, None)
    }

    /// [`Api::new`] whose connections come from `local_address` (another loopback address, to
    /// be a client the server tells apart), or from the system's choice with `None`.
    pub fn new_from(
        base: &LoopbackBase,
        limits: ClientLimits,
        tally: Arc<Tally>,
        local_address: Option<std::net::IpAddr>,
    ) -> Result<Api, String> {
        assert!(limits.in_flight_max > 0, "a client needs at least one request slot");
        let client = reqwest::Client::builder()
            .local_address(local_address)
            // Never leave loopback: no proxy from the environment, no redirect to elsewhere.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(limits.request_timeout)
            .connect_timeout(limits.connect_timeout)
            .pool_max_idle_per_host(limits.in_flight_max)
            // Below the server's keep-alive (actix closes idle connections after 5 s by default):
            // a request sent on a connection the server is closing at that moment fails with a
            // connection error, and says nothing about the server.
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        Ok(Api { client, base: base.base.clone(), tally, in_flight: Arc::new(Semaphore::new(limits.in_flight_max)) })
    }

    /// Sends `call`, gives up when `deadline` passes first, and tallies the ending.
    pub async fn send(&self, call: Call<'_>, deadline: Instant) -> Outcome {
        let kind = call.kind;
        let outcome = match tokio::time::timeout_at(deadline, self.send_unbounded(call)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::CutAtDeadline,
        };
        let ending = match &outcome {
            Outcome::Answered(answer) => Ending::Answered { status: answer.status, code: answer.code.as_deref() },
            Outcome::Timeout => Ending::Timeout,
            Outcome::ConnectionError(_) => Ending::ConnectionError,
            Outcome::CutAtDeadline => Ending::CutAtDeadline,
        };
        self.tally.record(kind, ending);
        outcome
    }

    async fn send_unbounded(&self, call: Call<'_>) -> Outcome {
        let _permit = self.in_flight.acquire().await.expect("the in-flight semaphore is never closed");
        let started = Instant::now();
        let mut request = self.client.request(call.method, format!("{}{}", self.base, call.path));
        if let Some(token) = call.token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = call.idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return transport_failure(&error),
        };
        let status = response.status().as_u16();
        let retry_after_s = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.trim().parse::<u64>().ok());
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => return transport_failure(&error),
        };
        let elapsed = started.elapsed();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let code = body.pointer("/error/code").and_then(Value::as_str).map(str::to_owned);
        Outcome::Answered(Answer { status, code, retry_after_s, body, elapsed })
    }
}

/// Connection errors described on stderr at most (the rest are only counted).
const CONNECTION_ERRORS_LOGGED_MAX: usize = 5;
static CONNECTION_ERRORS_LOGGED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn transport_failure(error: &reqwest::Error) -> Outcome {
    if error.is_timeout() {
        return Outcome::Timeout;
    }
    // reqwest's own message is terse ("error sending request"); the cause is in the chain.
    let mut described = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        described.push_str(": ");
        described.push_str(&cause.to_string());
        source = cause.source();
    }
    if CONNECTION_ERRORS_LOGGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < CONNECTION_ERRORS_LOGGED_MAX {
        eprintln!("connection error: {described}");
    }
    Outcome::ConnectionError(described)
}
