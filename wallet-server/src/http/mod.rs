//! The REST API of `shared/API.md`: routes, shared state, and the helpers every handler uses to
//! parse input into core types at the edge.

mod admin;
mod citizen;
mod merchant;
mod openapi;
mod password;
mod session;

pub use session::keep_line_in_sync;

/// The parsers of every request body, one per endpoint that takes one: the first thing each
/// handler does with its body, and what `fuzz/`'s `request_bodies` target feeds. Each turns a
/// JSON value into domain types or an [`ApiError`] of status 4xx.
pub mod requests {
    pub use super::admin::{
        parse_close_day, parse_merchant, parse_policy, parse_test_clock, parse_top_up, NewMerchant,
    };
    pub use super::citizen::{parse_charge, parse_gift};
    pub use super::merchant::{parse_payment, parse_refund};
    pub use super::password::{parse_new_password, NewPassword};
    pub use super::session::{parse_login_body, parse_registration, LoginBody};
    pub use super::BODY_BYTES_MAX;
}

use std::sync::Arc;

use actix_web::error::JsonPayloadError;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use wallet_core::{Amount, BudgetState};

use crate::auth::PasswordPool;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::ApiError;
use crate::store::{self, DbConn, DbPool};
use crate::writer::{Answer, Idempotency, WriteOp, Writer};

/// Request bodies larger than this are refused with 413 (API.md).
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Longest Idempotency-Key accepted (API.md: 1 to 255 visible ASCII characters).
const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;

pub struct AppState {
    pub config: Config,
    pub pool: DbPool,
    pub writer: Writer,
    pub clock: Arc<Clock>,
    pub passwords: PasswordPool,
    /// One waiting room for the whole server (not one per worker).
    pub waiting_room: std::sync::Mutex<crate::admission::waiting_room::WaitingRoom>,
    pub sessions_active: SessionCount,
    pub gate: Arc<crate::admission::gate::Gate>,
}

pub type State = web::Data<AppState>;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .app_data(web::JsonConfig::default().limit(BODY_BYTES_MAX).error_handler(|error, _| json_error(&error).into()))
        .app_data(web::PathConfig::default().error_handler(|error, _| ApiError::not_found(error.to_string()).into()))
        .app_data(web::QueryConfig::default().error_handler(|error, _| ApiError::validation(error.to_string()).into()))
        .route("/healthz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics))
        .configure(openapi::routes)
        .configure(session::routes)
        .configure(citizen::routes)
        .configure(merchant::routes)
        .configure(admin::routes)
        .configure(password::routes)
        .default_service(web::to(no_route));
}

/// What matched no route: 405 with `Allow` for a documented path asked with another method
/// (RFC 9110: the resource exists), else 404.
async fn no_route(request: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    let Some(allowed) = openapi::methods_of(request.path()) else {
        return ApiError::not_found("no such endpoint; see /openapi.json for the API").error_response();
    };
    let message = format!("{} {} is not an endpoint; this path takes {allowed}", request.method(), request.path());
    let mut response = ApiError::new(405, "method_not_allowed", message).error_response();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(allowed) {
        response.headers_mut().insert(actix_web::http::header::ALLOW, value);
    }
    response
}

/// Liveness: answers at once; never queued or shed.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The server is up.", body = openapi::Health,
        example = json!({"status": "ok"})))
)]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Prometheus metrics in the text exposition format.
///
/// Sessions in use and allowed, and the cashback budget left. Bind it to an internal address in
/// production.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4.", body = String,
            content_type = "text/plain; version=0.0.4"),
        (status = 500, response = inline(openapi::InternalError)),
        (status = 503, response = inline(openapi::Overloaded))
    )
)]
async fn metrics(state: State) -> Result<HttpResponse, ApiError> {
    let (budget, active) = with_connection(&state, |connection, _| {
        let (_, budget, _) = store::ledger::load_state(connection, false)?;
        let active = store::auth::citizen_slots_used(connection)?;
        Ok((budget, active))
    })
    .await?;
    let mut text = String::new();
    let now_ms = store::ledger::millis(state.clock.now());
    series(&mut text, "wallet_sessions_active", "gauge", "Citizen sessions holding a slot.", &[("", active as f64)]);
    series(
        &mut text,
        "wallet_sessions_capacity",
        "gauge",
        "Citizen sessions allowed at once.",
        &[("", state.config.sessions_capacity as f64)],
    );
    if let Ok(room) = state.waiting_room.lock() {
        let waiting = room.waiting();
        series(
            &mut text,
            "wallet_waiting_room_tickets",
            "gauge",
            "Citizens waiting for a session slot.",
            &[("", waiting as f64)],
        );
        series(
            &mut text,
            "wallet_waiting_room_estimated_wait_seconds",
            "gauge",
            "Estimated wait of the last one in line.",
            &[("", room.estimated_wait_s(waiting, now_ms) as f64)],
        );
        series(
            &mut text,
            "wallet_citizen_logins_admitted_total",
            "counter",
            "Citizen logins let in.",
            &[("", room.admitted_total as f64)],
        );
        series(
            &mut text,
            "wallet_citizen_logins_queued_total",
            "counter",
            "Citizen logins answered with a place in line.",
            &[("", room.shed_total as f64)],
        );
    }
    series(
        &mut text,
        "wallet_cashback_budget_remaining_won",
        "gauge",
        "Unspent cashback budget.",
        &[("", budget.remaining().to_i64().unwrap_or(i64::MAX) as f64)],
    );
    let stats = state.gate.stats();
    series(
        &mut text,
        "wallet_request_limit",
        "gauge",
        "Adaptive limit on requests in flight.",
        &[("", stats.limit as f64)],
    );
    series(&mut text, "wallet_requests_in_flight", "gauge", "Requests being served.", &[("", stats.in_flight as f64)]);
    let by_class = |values: [u64; 5]| -> Vec<(String, f64)> {
        crate::admission::limiter::Class::ALL
            .iter()
            .map(|class| (format!("class=\"{}\"", class.as_str()), values[*class as usize] as f64))
            .collect()
    };
    series_owned(
        &mut text,
        "wallet_requests_admitted_total",
        "counter",
        "Requests let in, by priority class.",
        by_class(stats.admitted_by_class),
    );
    series_owned(
        &mut text,
        "wallet_requests_shed_total",
        "counter",
        "Requests refused 503 overloaded, by priority class.",
        by_class(stats.shed_by_class),
    );
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(text))
}

/// How long a count of active citizen sessions is used before it is taken again.
const SESSION_COUNT_REFRESH_MS: i64 = 250;

/// Citizen sessions holding a slot: read from the database (shared by every server on it) at
/// most every [`SESSION_COUNT_REFRESH_MS`], plus the logins let in and the logouts seen here
/// since. It decides who may try; the slot itself is taken atomically with the session.
#[derive(Default)]
pub struct SessionCount {
    /// (counted in the database, when, change seen here since).
    inner: std::sync::Mutex<(i64, i64, i64)>,
}

impl SessionCount {
    pub async fn current(&self, state: &State, now_ms: i64) -> Result<i64, ApiError> {
        {
            let inner = self.inner.lock().map_err(|_| ApiError::internal())?;
            if inner.1 > 0 && now_ms - inner.1 < SESSION_COUNT_REFRESH_MS && now_ms >= inner.1 {
                return Ok(inner.0 + inner.2);
            }
        }
        let counted = with_connection(state, move |connection, _| store::auth::citizen_slots_used(connection)).await?;
        let mut inner = self.inner.lock().map_err(|_| ApiError::internal())?;
        *inner = (counted, now_ms, 0);
        Ok(counted)
    }

    pub fn note_admitted(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.2 += 1;
        }
    }

    pub fn note_released(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.2 -= 1;
        }
    }
}

/// A fresh id for a transaction or history item this server mints: a UUIDv7, so ids minted
/// later sort later and each batch's rows land at the right-hand edge of the id indexes (a
/// random v4 id dirties a random index page per row, and every dirty page is written to the WAL
/// at each commit). Ids are not secrets: every read checks who asks.
pub fn new_tx_id() -> wallet_core::TxId {
    wallet_core::TxId::parse(&uuid::Uuid::now_v7().to_string()).expect("a UUID is a valid id")
}

/// Appends one Prometheus series with its help and type lines; a label set "" means none.
fn series(out: &mut String, name: &str, kind: &str, help: &str, values: &[(&str, f64)]) {
    series_owned(out, name, kind, help, values.iter().map(|(labels, value)| (labels.to_string(), *value)).collect());
}

fn series_owned(out: &mut String, name: &str, kind: &str, help: &str, values: Vec<(String, f64)>) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in values {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// RFC 3339 in UTC with a `Z`, as API.md writes times.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn budget_body(budget: &BudgetState) -> Value {
    json!({"funded": budget.funded, "paid_out": budget.paid_out, "reversed": budget.reversed,
           "remaining": budget.remaining()})
}

/// Maps a JSON body failure: too large 413, not JSON 400, wrong shape 422.
fn json_error(error: &JsonPayloadError) -> ApiError {
    match error {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::new(413, "payload_too_large", format!("the request body is over {BODY_BYTES_MAX} bytes"))
        }
        JsonPayloadError::ContentType => {
            ApiError::invalid_request("the body must be JSON with Content-Type: application/json")
        }
        other => ApiError::invalid_request(format!("the body is not valid JSON: {other}")),
    }
}

/// Turns a JSON value into a request type; unknown or missing fields are 422, and so is any body
/// but an object (serde's derived structs would take an array of the fields' values in order).
pub fn parse_body<T: DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    if !body.is_object() {
        return Err(ApiError::validation("the request body must be a JSON object with the documented fields"));
    }
    serde_json::from_value(body)
        .map_err(|error| ApiError::validation(format!("the request body does not fit: {error}")))
}

/// An amount from a request field: a JSON string of a whole number of won, else 422 invalid_amount.
pub fn parse_amount(value: &Value) -> Result<Amount, ApiError> {
    match value {
        Value::String(text) => Amount::parse(text).map_err(|error| ApiError::invalid_amount(error.to_string())),
        Value::Number(_) => Err(ApiError::invalid_amount(
            "amount must be a JSON string of whole won, e.g. \"15000\", not a JSON number",
        )),
        _ => Err(ApiError::invalid_amount("amount must be a JSON string of whole won, e.g. \"15000\"")),
    }
}

/// The Idempotency-Key of a money-moving request, with a hash of what the request asks.
pub fn idempotency(request: &HttpRequest, body: &Value) -> Result<Idempotency, ApiError> {
    let key = request
        .headers()
        .get("Idempotency-Key")
        .ok_or_else(|| ApiError::invalid_request("the Idempotency-Key header is required for this request"))?;
    let key = key.to_str().ok().filter(|key| {
        !key.is_empty() && key.len() <= IDEMPOTENCY_KEY_LEN_MAX && key.bytes().all(|byte| byte.is_ascii_graphic())
    });
    let key = key.ok_or_else(|| {
        ApiError::invalid_request("the Idempotency-Key must be 1 to 255 visible ASCII characters (no spaces)")
    })?;
    let body = body.to_string();
    let request_hash =
        crate::auth::request_hash(&[request.method().as_str().as_bytes(), request.path().as_bytes(), body.as_bytes()]);
    Ok(Idempotency { key: key.to_owned(), request_hash })
}

/// Sends a money request to the writer and answers with what it committed.
pub async fn submit(state: &State, principal: &str, idempotency: Idempotency, op: WriteOp) -> HttpResponse {
    let answer = state.writer.submit(principal.to_owned(), Some(idempotency), op).await;
    respond(answer)
}

pub fn respond(answer: Answer) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(answer.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    if answer.status == 503 {
        response.insert_header(("Retry-After", "1"));
    }
    response.json(answer.body)
}

/// Runs blocking database work on a pooled connection, off the async workers.
pub async fn with_connection<T, F>(state: &State, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn, &AppState) -> Result<T, store::StoreError> + Send + 'static,
{
    let state = state.clone();
    web::block(move || {
        let mut connection = state.pool.get()?;
        work(&mut connection, &state)
    })
    .await?
    .map_err(ApiError::from)
}

/// Which role a session has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Citizen,
    Merchant,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Citizen => "citizen",
            Role::Merchant => "merchant",
            Role::Admin => "admin",
        }
    }

    fn parse(text: &str) -> Option<Role> {
        match text {
            "citizen" => Some(Role::Citizen),
            "merchant" => Some(Role::Merchant),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The authenticated caller.
pub struct Principal {
    pub id: String,
    pub role: Role,
    pub token_hash: String,
}

/// Authenticates the bearer token and checks the role: 401 without a live session, 403 for
/// another role. A session is kept alive by use; `last_seen` is written at most once a minute.
pub async fn authenticate(state: &State, request: &HttpRequest, role: Option<Role>) -> Result<Principal, ApiError> {
    authenticate_with(state, request, role, |_, _, _| Ok(())).await.map(|(principal, ())| principal)
}

/// [`authenticate`], then `work` for the authenticated caller on the same pooled connection, in
/// the same trip to the blocking pool: a read costs one hop off the async workers, not two or
/// three. `work` runs only when the caller has the role.
pub async fn authenticate_with<T, F>(
    state: &State,
    request: &HttpRequest,
    role: Option<Role>,
    work: F,
) -> Result<(Principal, T), ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn, &AppState, &Principal) -> Result<T, store::StoreError> + Send + 'static,
{
    let token = request
        .headers()
        .get("Authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty() && token.len() <= 128)
        .ok_or_else(ApiError::unauthorized)?;
    let token_hash = crate::auth::token_hash(token);
    with_connection(state, move |connection, state| {
        let Some(session) = store::auth::find_session(connection, &token_hash)? else {
            return Ok(Err(ApiError::unauthorized()));
        };
        let now_ms = store::ledger::millis(state.clock.now());
        let idle_ms = state.config.session_idle.as_millis() as i64;
        if session.expires_at_ms <= now_ms || session.last_seen_ms + idle_ms <= now_ms {
            store::auth::delete_session(connection, &token_hash)?;
            return Ok(Err(ApiError::unauthorized()));
        }
        if now_ms - session.last_seen_ms > 60_000 {
            store::auth::touch_session(connection, &token_hash, now_ms)?;
        }
        let Some(session_role) = Role::parse(&session.role) else { return Ok(Err(ApiError::internal())) };
        if let Some(required) = role {
            if required != session_role {
                return Ok(Err(ApiError::forbidden(session_role.as_str())));
            }
        }
        let principal = Principal { id: session.principal_id, role: session_role, token_hash };
        let value = work(connection, state, &principal)?;
        Ok(Ok((principal, value)))
    })
    .await?
}
