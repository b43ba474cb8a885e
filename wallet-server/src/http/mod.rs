//! The REST API of `docs/API.md`: routes, and the helpers every handler uses to parse input into
//! core types at the edge and to ask `auth` who the caller is. The state the handlers share is
//! `crate::state`'s, handed to them as actix data.

mod accounts;
mod admin;
mod audit;
pub mod body_deadline;
mod citizen;
mod console;
pub mod header_limits;
mod merchant;
mod metrics;
mod openapi;
mod password;
mod programs;
pub mod request_id;
mod routes;
mod session;
mod status;
pub mod strict_json;

pub use metrics::{CountRequests, RequestMetrics};
pub use routes::{admission_of, request_metrics};
pub use session::line_prior;

/// The parsers of every request body, one per endpoint that takes one: the first thing each
/// handler does with its body, and what `fuzz/`'s `request_bodies` target feeds. Each turns a
/// JSON value into domain types or an [`ApiError`] of status 4xx.
pub mod requests {
    pub use super::accounts::{parse_admin, parse_reason, AdminBody, ReasonBody};
    pub use super::admin::{
        parse_close_day, parse_merchant, parse_merchant_patch, parse_policy, parse_test_clock, parse_top_up,
        NewMerchant,
    };
    pub use super::citizen::{parse_charge, parse_gift};
    pub use super::merchant::{parse_payment, parse_refund};
    pub use super::password::{parse_new_password, parse_password_change, NewPassword, PasswordChange};
    pub use super::programs::{parse_grants, parse_program, parse_program_top_up, NewProgram};
    pub use super::session::{parse_login_body, parse_registration, LoginBody};
    pub use super::BODY_BYTES_MAX;
}

use actix_web::error::JsonPayloadError;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde_json::Value;
use wallet_core::Amount;

use crate::api::{ApiError, ErrorCode};
use crate::auth::sessions;
pub use crate::auth::sessions::{Principal, Role};
pub use crate::state::{with_connection, AppState};
use crate::store::{self, DbConn};
use crate::writer::{Answer, Idempotency, WriteOp};

/// Request bodies larger than this are refused with 413 (API.md).
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Longest Idempotency-Key accepted (API.md: 1 to 255 visible ASCII characters).
const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;

pub type State = web::Data<AppState>;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .app_data(json_config(BODY_BYTES_MAX))
        .app_data(web::PathConfig::default().error_handler(|error, _| ApiError::not_found(error.to_string()).into()))
        .app_data(web::QueryConfig::default().error_handler(|error, _| ApiError::validation(error.to_string()).into()))
        .configure(routes::register)
        .configure(console::register)
        .default_service(web::to(no_route));
    openapi::build_document();
}

/// What matched no route: 405 with `Allow` for a path of the route table asked with another
/// method (RFC 9110: the resource exists), else 404.
async fn no_route(request: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    let Some(allowed) = routes::methods_allowed(request.path()) else {
        return ApiError::not_found("no such endpoint; see /openapi.json for the API").error_response();
    };
    let message = format!("{} {} is not an endpoint; this path takes {allowed}", request.method(), request.path());
    let mut response = ApiError::new(405, ErrorCode::MethodNotAllowed, message).error_response();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allowed) {
        response.headers_mut().insert(actix_web::http::header::ALLOW, value);
    }
    response
}

/// Headers every response carries. The API serves JSON to apps and POS terminals, never pages:
/// nothing may be sniffed as another type, framed, cached or sent on as a referrer. HSTS is
/// left to the TLS terminator in front, which knows whether the host is served only over HTTPS.
pub fn security_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cache-Control", "no-store"))
}

/// Liveness: answers at once; never queued or shed.
#[utoipa::path(get, path = "/healthz", operation_id = "get_health", tag = "operations",
    responses((status = 200, description = "The server is up.", body = crate::api::wire::Health,
        example = json!({"status": "ok"})))
)]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(crate::api::wire::Health { status: "ok".to_owned() })
}

/// The client's address: the peer's, or, when the peer is one of `trusted_proxies`, the last
/// address in its `X-Forwarded-For` (the one the proxy saw; entries before it are only what the
/// client claimed). `None` when the peer is unknown.
pub fn client_address(request: &HttpRequest, trusted_proxies: &[std::net::IpAddr]) -> Option<std::net::IpAddr> {
    let peer = request.peer_addr()?.ip();
    if !trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    let forwarded = request
        .headers()
        .get_all("X-Forwarded-For")
        .last()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok());
    Some(forwarded.unwrap_or(peer))
}

pub use crate::api::new_tx_id;

pub use crate::api::rfc3339;

/// How JSON bodies of at most `limit` bytes are read (one operation takes more than the rest:
/// `routes::Route::body_bytes_max`).
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default().limit(limit).error_handler(move |error, _| json_error(&error, limit).into())
}

/// Maps a JSON body failure: too large 413, not JSON 400, wrong shape 422.
fn json_error(error: &JsonPayloadError, limit: usize) -> ApiError {
    match error {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::new(413, ErrorCode::PayloadTooLarge, format!("the request body is over {limit} bytes"))
        }
        JsonPayloadError::Payload(payload) if body_deadline::is_deadline_error(payload) => ApiError::new(
            408,
            ErrorCode::RequestTimeout,
            "the request body did not arrive in full in time; nothing was done, send the request again",
        ),
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

/// The Idempotency-Key of an admin action that may carry one: `None` without the header.
pub fn idempotency_if_sent(request: &HttpRequest, body: &Value) -> Result<Option<Idempotency>, ApiError> {
    if request.headers().contains_key("Idempotency-Key") {
        idempotency(request, body).map(Some)
    } else {
        Ok(None)
    }
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

/// Authenticates the bearer token and checks the role: 401 without a live session, 403 for
/// another role. A session is kept alive by use; `last_seen` is written at most once a minute.
/// A session checked in the last second is taken from the [`sessions::SessionCache`] without a
/// database trip.
pub async fn authenticate(state: &State, request: &HttpRequest, role: Option<Role>) -> Result<Principal, ApiError> {
    let token_hash = bearer_token_hash(request)?;
    if let Some(principal) = cached_principal(state, &token_hash, role) {
        return principal;
    }
    authenticate_hash_with(state, token_hash, role, |_, _, _| Ok(())).await.map(|(principal, ())| principal)
}

/// [`authenticate`], then `work` for the authenticated caller on a pooled connection, in one
/// trip to the blocking pool (the session check, when it is not cached, on the same connection):
/// a read costs one hop off the async workers, not two or three. `work` runs only when the
/// caller has the role.
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
    authenticate_hash_with(state, bearer_token_hash(request)?, role, work).await
}

/// [`authenticate_with`] for a token hash already taken from the request.
async fn authenticate_hash_with<T, F>(
    state: &State,
    token_hash: String,
    role: Option<Role>,
    work: F,
) -> Result<(Principal, T), ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn, &AppState, &Principal) -> Result<T, store::StoreError> + Send + 'static,
{
    if let Some(principal) = cached_principal(state, &token_hash, role) {
        let principal = principal?;
        return with_connection(state, move |connection, state| {
            let value = work(connection, state, &principal)?;
            Ok((principal, value))
        })
        .await;
    }
    with_connection(state, move |connection, state| {
        let now_ms = store::time::millis(state.clock.now());
        let checked =
            sessions::check_stored(connection, &state.session_cache, token_hash, role, now_ms, idle_ms(state))?;
        let principal = match checked {
            Ok(principal) => principal,
            Err(refused) => return Ok(Err(refused)),
        };
        let value = work(connection, state, &principal)?;
        Ok(Ok((principal, value)))
    })
    .await?
}

/// [`authenticate_with`] for a read of one row by key (`work` must be no more): on SQLite, when
/// the session is in the cache, it runs right here on the HTTP worker's own read connection
/// (`store::thread_reader`), without the two thread hand-offs of the blocking pool, which cost
/// about as much as such a read. Otherwise as [`authenticate_with`].
pub async fn authenticate_point_read<T, F>(
    state: &State,
    request: &HttpRequest,
    role: Option<Role>,
    work: F,
) -> Result<(Principal, T), ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn, &AppState, &Principal) -> Result<T, store::StoreError> + Send + 'static,
{
    let token_hash = bearer_token_hash(request)?;
    if matches!(state.config.database, store::DatabaseUrl::Sqlite(_)) {
        if let Some(principal) = cached_principal(state, &token_hash, role) {
            let principal = principal?;
            let read = store::thread_reader::read_here(&state.config.database, |connection| {
                work(connection, state, &principal)
            });
            let value = read.expect("a SQLite database").map_err(ApiError::from)?;
            return Ok((principal, value));
        }
    }
    authenticate_hash_with(state, token_hash, role, work).await
}

/// The SHA-256 of the request's bearer token (the form sessions are stored in); 401 without one.
/// The scheme's name is matched in any case (RFC 9110 §11.1: `bearer` is `Bearer`).
fn bearer_token_hash(request: &HttpRequest) -> Result<String, ApiError> {
    let token = request
        .headers()
        .get("Authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty() && token.len() <= 128)
        .ok_or_else(ApiError::unauthorized)?;
    Ok(crate::auth::token_hash(token))
}

/// The caller from the session cache, with the role checked; `None` when the database must say.
fn cached_principal(state: &State, token_hash: &str, role: Option<Role>) -> Option<Result<Principal, ApiError>> {
    let now_ms = store::time::millis(state.clock.now());
    sessions::cached(&state.session_cache, token_hash, role, now_ms, idle_ms(state))
}

/// The idle timeout of a session, in the milliseconds the session rules take.
fn idle_ms(state: &AppState) -> i64 {
    state.config.session_idle.as_millis() as i64
}

// The API's error as an actix answer: the one place an `ApiError` becomes a response.
impl actix_web::ResponseError for ApiError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::from_u16(self.status).unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after_s {
            response.insert_header(("Retry-After", seconds.to_string()));
        }
        response.json(self.body())
    }
}
