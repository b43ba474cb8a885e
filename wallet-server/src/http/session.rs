//! Registration, login, logout, and the citizen waiting room.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use wallet_core::Month;

use super::openapi::{
    CitizenCreated, ErrorBody, InternalError, InvalidJson, LoginUnavailable, Overloaded, PayloadTooLarge,
    SessionCreated, TicketStatus, Unauthorized,
};
use super::{authenticate, parse_body, rfc3339, with_connection, State};
use crate::error::ApiError;
use crate::store;

/// A ticket not polled for this long is dropped (API.md).
/// (On the server's clock, so the test clock moves it too.)
const TICKET_POLL_GRACE_MS: i64 = 60_000;
/// Most tickets held at once; past it a login is answered `overloaded`.
const WAITING_ROOM_LEN_MAX: usize = 1_000_000;
/// Seconds of wait assumed per place in line until issue 4 measures the real admission rate.
pub const WAIT_PER_POSITION_S: u64 = 2;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/v1/citizens", web::post().to(register))
        .route("/v1/sessions", web::post().to(login))
        .route("/v1/sessions/current", web::delete().to(logout))
        .route("/v1/waiting-room/{ticket}", web::get().to(poll));
}

/// A new citizen's login and password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Credentials {
    /// 3 to 64 characters of `[a-z0-9._-]`.
    #[schema(pattern = "^[a-z0-9._-]{3,64}$", example = "kim.minji")]
    login: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128, format = Password)]
    password: String,
}

/// A login of any role; a citizen retrying from the waiting room adds its ticket.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    #[schema(example = "kim.minji")]
    login: String,
    #[schema(format = Password)]
    password: String,
    /// The ticket of an earlier 503 `waiting_room` answer, when retrying from the waiting room.
    ticket: Option<String>,
}

/// A login: 3 to 64 characters of `[a-z0-9._-]`.
pub fn parse_login(login: &str) -> Result<&str, ApiError> {
    let valid = (3..=64).contains(&login.len())
        && login.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"._-".contains(&byte));
    if valid {
        Ok(login)
    } else {
        Err(ApiError::validation("login must be 3 to 64 characters of a-z, 0-9, '.', '_' and '-'"))
    }
}

/// A password: 8 to 128 characters.
pub fn parse_password(password: &str) -> Result<&str, ApiError> {
    if (8..=128).contains(&password.chars().count()) {
        Ok(password)
    } else {
        Err(ApiError::validation("password must be 8 to 128 characters"))
    }
}

/// Registers a citizen and opens the citizen's wallet.
#[utoipa::path(post, path = "/v1/citizens", tag = "sessions",
    request_body = Credentials,
    responses(
        (status = 201, description = "The citizen and the wallet were created.", body = CitizenCreated),
        (status = 400, response = inline(InvalidJson)),
        (status = 409, description = "`login_taken`: another account has this login.", body = ErrorBody),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`validation_failed`: an unknown or missing field, a login that is not 3 to 64 \
            characters of `[a-z0-9._-]`, or a password that is not 8 to 128 characters.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
async fn register(state: State, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let credentials: Credentials = parse_body(body.into_inner())?;
    let login = parse_login(&credentials.login)?.to_owned();
    parse_password(&credentials.password)?;
    let hash = state.passwords.hash(credentials.password).await?;
    let citizen_id = uuid::Uuid::new_v4().to_string();
    let wallet_id = uuid::Uuid::new_v4().to_string();
    let (citizen, wallet) = (citizen_id.clone(), wallet_id.clone());
    let created = with_connection(&state, move |connection, state| {
        let now = state.clock.now();
        store::write_transaction(connection, |connection| {
            if !store::auth::insert_principal(
                connection,
                &citizen,
                &login,
                "citizen",
                &hash,
                store::ledger::millis(now),
            )? {
                return Ok(false);
            }
            store::auth::insert_wallet(connection, &wallet, &citizen, &Month::of(now).to_string())?;
            Ok(true)
        })
    })
    .await?;
    if !created {
        return Err(ApiError::new(409, "login_taken", "this login is taken; choose another"));
    }
    Ok(HttpResponse::Created().json(json!({"citizen_id": citizen_id, "wallet_id": wallet_id})))
}

/// Logs in a citizen, merchant or admin and opens a session.
///
/// The server holds at most a configured number of concurrent citizen sessions. When all are
/// taken, a citizen login is answered 503 `waiting_room` with a ticket, before any password work;
/// retry with the same credentials plus `"ticket"`. Tickets are served first in, first out; one
/// not polled for 60 seconds is dropped. Merchant and admin logins never wait.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions",
    request_body = LoginBody,
    responses(
        (status = 201, description = "The session was opened.", body = SessionCreated),
        (status = 400, response = inline(InvalidJson)),
        (status = 401, description = "`invalid_credentials`: the login or password is wrong, or the account must \
            set a new password.", body = ErrorBody),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`validation_failed`: an unknown or missing field.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(LoginUnavailable))
    )
)]
async fn login(state: State, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let room = &state.waiting_room;
    let body: LoginBody = parse_body(body.into_inner())?;
    let login = body.login.clone();
    let (principal, active) = with_connection(&state, move |connection, state| {
        let principal = store::auth::find_principal(connection, &login)?;
        let now_ms = store::ledger::millis(state.clock.now());
        let idle_ms = state.config.session_idle.as_millis() as i64;
        let active = match &principal {
            Some(principal) if principal.role == "citizen" => {
                store::auth::count_active_citizen_sessions(connection, now_ms, idle_ms)?
            }
            _ => 0,
        };
        Ok((principal, active))
    })
    .await?;
    // Citizens wait for a free slot before any password work is done; merchants and admins never wait.
    if principal.as_ref().is_some_and(|principal| principal.role == "citizen") {
        let free = (state.config.sessions_capacity - active).max(0) as usize;
        room.admit(body.ticket.as_deref(), free, store::ledger::millis(state.clock.now()))?;
    }
    let stored = principal.as_ref().map(|principal| principal.password_hash.clone());
    if !state.passwords.verify(body.password, stored).await? {
        return Err(ApiError::new(401, "invalid_credentials", "login or password is wrong"));
    }
    let principal = principal.ok_or_else(ApiError::internal)?;
    if principal.password_hash.is_empty() {
        return Err(ApiError::new(401, "invalid_credentials", "this account must set a new password"));
    }
    let (token, token_hash) = crate::auth::new_token();
    let role = principal.role.clone();
    let expires_at = with_connection(&state, move |connection, state| {
        let now = state.clock.now();
        let expires_at = now + chrono::Duration::from_std(state.config.session_lifetime).unwrap_or_default();
        store::auth::insert_session(
            connection,
            &token_hash,
            &principal.principal_id,
            &principal.role,
            store::ledger::millis(now),
            store::ledger::millis(expires_at),
        )?;
        Ok(expires_at)
    })
    .await?;
    Ok(HttpResponse::Created().json(json!({"token": token, "role": role, "expires_at": rfc3339(expires_at)})))
}

/// Ends the caller's session; a citizen's session slot is free at once.
#[utoipa::path(delete, path = "/v1/sessions/current", tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The session was ended."),
        (status = 401, response = inline(Unauthorized)),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
async fn logout(state: State, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, None).await?;
    with_connection(&state, move |connection, _| store::auth::delete_session(connection, &principal.token_hash))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A waiting-room ticket's place in line; polling keeps the ticket alive.
#[utoipa::path(get, path = "/v1/waiting-room/{ticket}", tag = "sessions",
    params(("ticket" = String, Path, description = "The ticket of a 503 `waiting_room` answer.")),
    responses(
        (status = 200, description = "The ticket's place in line.", body = TicketStatus),
        (status = 404, description = "`not_found`: the ticket is unknown or has expired (not polled for 60 \
            seconds, or already admitted).", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
async fn poll(state: State, ticket: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let room = &state.waiting_room;
    let active = with_connection(&state, |connection, state| {
        let now_ms = store::ledger::millis(state.clock.now());
        store::auth::count_active_citizen_sessions(connection, now_ms, state.config.session_idle.as_millis() as i64)
    })
    .await?;
    let free = (state.config.sessions_capacity - active).max(0) as usize;
    let position = room
        .poll(&ticket, store::ledger::millis(state.clock.now()))
        .ok_or_else(|| ApiError::not_found("no such ticket; it may have expired"))?;
    Ok(HttpResponse::Ok().json(json!({
        "position": position,
        "estimated_wait_s": position as u64 * WAIT_PER_POSITION_S,
        "ready": position <= free,
    })))
}

/// First in, first out tickets for citizens waiting for a session slot. In memory, per server;
/// issue 4 makes it shared through the database and measures the admission rate.
#[derive(Default)]
pub struct WaitingRoom {
    /// Tickets in order, with when each was last polled (ms on the server's clock).
    queue: Mutex<VecDeque<(String, i64)>>,
    /// Citizen logins let through to the password check.
    pub admitted_total: AtomicU64,
    /// Citizen logins answered with a place in line instead.
    pub shed_total: AtomicU64,
}

impl WaitingRoom {
    /// Tickets in line now.
    pub fn waiting(&self) -> usize {
        self.queue.lock().map(|queue| queue.len()).unwrap_or(0)
    }

    fn admit(&self, ticket: Option<&str>, free: usize, now_ms: i64) -> Result<(), ApiError> {
        let admitted = self.admit_or_queue(ticket, free, now_ms);
        let counter = if admitted.is_ok() { &self.admitted_total } else { &self.shed_total };
        counter.fetch_add(1, Ordering::Relaxed);
        admitted
    }

    /// Lets a login through when a slot is free for it, else answers 503 with its place in line.
    fn admit_or_queue(&self, ticket: Option<&str>, free: usize, now: i64) -> Result<(), ApiError> {
        let mut queue = self.queue.lock().map_err(|_| ApiError::internal())?;
        queue.retain(|(_, polled)| now - *polled < TICKET_POLL_GRACE_MS);
        let position = ticket.and_then(|ticket| queue.iter().position(|(held, _)| held == ticket));
        match position {
            Some(index) if index < free => {
                queue.remove(index);
                return Ok(());
            }
            Some(index) => {
                queue[index].1 = now;
                return Err(waiting(&queue[index].0, index + 1));
            }
            None if queue.is_empty() && free > 0 => return Ok(()),
            None => {}
        }
        if queue.len() >= WAITING_ROOM_LEN_MAX {
            return Err(ApiError::overloaded("the waiting room is full; try again in a minute"));
        }
        let ticket = crate::auth::new_payment_code();
        queue.push_back((ticket.clone(), now));
        Err(waiting(&ticket, queue.len()))
    }

    fn poll(&self, ticket: &str, now: i64) -> Option<usize> {
        let mut queue = self.queue.lock().ok()?;
        queue.retain(|(_, polled)| now - *polled < TICKET_POLL_GRACE_MS);
        let index = queue.iter().position(|(held, _)| held == ticket)?;
        queue[index].1 = now;
        Some(index + 1)
    }
}

fn waiting(ticket: &str, position: usize) -> ApiError {
    let wait_s = position as u64 * WAIT_PER_POSITION_S;
    ApiError {
        retry_after_s: Some(wait_s.clamp(1, 60)),
        extra: Some(("waiting_room", json!({"ticket": ticket, "position": position, "estimated_wait_s": wait_s}))),
        ..ApiError::new(
            503,
            "waiting_room",
            "all citizen sessions are taken; you are in line: retry with the same credentials and this ticket",
        )
    }
}
