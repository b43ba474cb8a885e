//! Registration, login, logout, and the citizen waiting room (its mirror of the shared line is
//! kept in step by `jobs`).

use super::strict_json::StrictJson;
use std::sync::Mutex;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use wallet_core::Month;

use super::{authenticate, client_address, parse_body, rfc3339, with_connection, Role, State};
use crate::admission::wait_estimate::Prior;
use crate::admission::waiting_room::{Place, Room, Verdict, WaitingRoom, TICKET_POLL_GRACE_MS};
use crate::api::wire::{
    CitizenCreated, ErrorBody, InternalError, InvalidJson, LoginUnavailable, Overloaded, PayloadTooLarge,
    RequestTimeout, SessionCreated, TicketStatus, TooManyAttempts, Unauthorized,
};
use crate::api::{ApiError, ErrorCode};
use crate::auth::throttle::{Attempt, Reason, Refusal, Source, Throttle};
use crate::auth::turns::Claim;
use crate::auth::PoolError;
use crate::store;

/// The longest Retry-After a waiting citizen is given, so apps re-poll (and keep their ticket,
/// which is dropped after 60 s without a poll) even when the estimate is long.
const RETRY_AFTER_MAX_S: u64 = 30;
/// Retry-After is the estimate less up to a quarter of it at random (never under a second): an
/// app comes back by the time it was told, never after it, and a crowd told one estimate does
/// not come back at one instant.
const RETRY_AFTER_JITTER_DIVISOR: u64 = 4;

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
pub struct LoginBody {
    #[schema(example = "kim.minji")]
    pub login: String,
    #[schema(format = Password)]
    pub password: String,
    /// The ticket of an earlier 503 `waiting_room` answer, when retrying from the waiting room.
    pub ticket: Option<String>,
}

/// The body of `POST /v1/sessions`. Its login and password are not checked for form (a wrong
/// one is `invalid_credentials`, whatever its shape), only for length: no login or password
/// this server keeps is longer, and a longer one would be looked up, kept in the throttle's
/// maps and hashed for nothing.
pub fn parse_login_body(body: Value) -> Result<LoginBody, ApiError> {
    let body: LoginBody = parse_body(body)?;
    if body.login.len() > LOGIN_BYTES_MAX {
        return Err(ApiError::validation(format!("login is longer than any login ({LOGIN_BYTES_MAX} characters)")));
    }
    if body.password.chars().count() > PASSWORD_CHARS_MAX {
        return Err(ApiError::validation(format!(
            "password is longer than any password ({PASSWORD_CHARS_MAX} characters)"
        )));
    }
    if body.ticket.as_ref().is_some_and(|ticket| ticket.len() > TICKET_BYTES_MAX) {
        return Err(ApiError::validation("ticket is not one this server gave"));
    }
    Ok(body)
}

/// The longest login (`parse_login`: 3 to 64 characters of `[a-z0-9._-]`, one byte each).
const LOGIN_BYTES_MAX: usize = 64;
/// The longest password (`parse_password`: 8 to 128 characters).
const PASSWORD_CHARS_MAX: usize = 128;
/// Far above a waiting-room ticket's length.
const TICKET_BYTES_MAX: usize = 128;

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

/// The body of `POST /v1/citizens`: a valid login and password.
pub fn parse_registration(body: Value) -> Result<(String, String), ApiError> {
    let credentials: Credentials = parse_body(body)?;
    parse_login(&credentials.login)?;
    parse_password(&credentials.password)?;
    Ok((credentials.login, credentials.password))
}

/// Registers a citizen and opens the citizen's wallet.
#[utoipa::path(post, path = "/v1/citizens", operation_id = "register_citizen", tag = "sessions",
    request_body = Credentials,
    responses(
        (status = 201, description = "The citizen and the wallet were created.", body = CitizenCreated),
        (status = 400, response = inline(InvalidJson)),
        (status = 409, description = "`login_taken`: another account has this login.", body = ErrorBody),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`validation_failed`: an unknown or missing field, a login that is not 3 to 64 \
            characters of `[a-z0-9._-]`, or a password that is not 8 to 128 characters.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn register(state: State, body: web::Json<StrictJson>) -> Result<HttpResponse, ApiError> {
    let (login, password) = parse_registration(body.into_inner().0)?;
    let hash = state.passwords.hash(password).await?;
    let citizen_id = uuid::Uuid::new_v4().to_string();
    let wallet_id = uuid::Uuid::new_v4().to_string();
    let (citizen, wallet) = (citizen_id.clone(), wallet_id.clone());
    let created = with_connection(&state, move |connection, state| {
        let now = state.clock.now();
        store::write_transaction(connection, |connection| {
            if !store::principals::insert_principal(
                connection,
                &citizen,
                &login,
                "citizen",
                &hash,
                store::time::millis(now),
            )? {
                return Ok(false);
            }
            store::wallets::put_wallet(connection, &wallet, &citizen, &Month::of(now).to_string(), 0, 0)?;
            Ok(true)
        })
    })
    .await?;
    if !created {
        return Err(ApiError::new(409, ErrorCode::LoginTaken, "this login is taken; choose another"));
    }
    Ok(HttpResponse::Created().json(CitizenCreated { citizen_id, wallet_id }))
}

/// Logs in a citizen, merchant or admin and opens a session.
///
/// The server holds at most a configured number of concurrent citizen sessions. When all are
/// taken, a citizen login is answered 503 `waiting_room` with a ticket, before any password work;
/// retry with the same credentials plus `"ticket"`. Tickets are served first in, first out; one
/// not polled for 60 seconds is dropped. Merchant and admin logins never wait.
#[utoipa::path(post, path = "/v1/sessions", operation_id = "log_in", tag = "sessions",
    request_body = LoginBody,
    responses(
        (status = 201, description = "The session was opened.", body = SessionCreated),
        (status = 400, response = inline(InvalidJson)),
        (status = 401, description = "`invalid_credentials`: the login or password is wrong. \
            `password_reset_required`: the account was carried over from the previous operator without a password; \
            ask the city for a reset code and set one with `POST /v1/citizens/password`.", body = ErrorBody),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 403, description = "`wallet_locked`: the city locked this citizen's wallet (said only to one \
            who knows the password).", body = ErrorBody),
        (status = 422, description = "`validation_failed`: an unknown or missing field.", body = ErrorBody),
        (status = 429, response = inline(TooManyAttempts)),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(LoginUnavailable))
    )
)]
pub(super) async fn login(
    state: State,
    request: HttpRequest,
    body: web::Json<StrictJson>,
) -> Result<HttpResponse, ApiError> {
    let body = parse_login_body(body.into_inner().0)?;
    // Throttled attempts are refused before anything else: no database read, no password work.
    let throttled = ThrottledAttempt::begin(&state, &request, &body.login)?;
    let login = body.login.clone();
    // A citizen's cohort opening of the charge bonus program shown now, for a waiting answer.
    let (principal, bonus_opens_at) = with_connection(&state, move |connection, state| {
        let principal = store::principals::find_principal(connection, &login)?;
        let opens_at = match &principal {
            Some(principal) if principal.role == "citizen" => {
                cohort_opening(connection, &principal.principal_id, state.clock.now())?
            }
            _ => None,
        };
        Ok((principal, opens_at))
    })
    .await?;
    let is_citizen = principal.as_ref().is_some_and(|principal| principal.role == "citizen");
    let mut admitted_ticket = None;
    // The session slot of a citizen let in: given back on every way out but a session made.
    let mut slot = None;
    // Merchants' and admins' passwords are checked before any citizen's.
    let mut claim = if is_citizen { Claim::Citizen } else { Claim::Staff };
    // Citizens wait for a free slot before any password work is done; merchants and admins never
    // wait. (With WALLET_ADMISSION=off there is no waiting room and no session capacity.)
    if is_citizen && state.config.admission {
        let now_ms = store::time::millis(state.clock.now());
        let room = room_now(&state, now_ms).await?;
        let verdict = lock_room_at(&state, room)?.arrive(&body.login, body.ticket.as_deref(), room, now_ms);
        match verdict {
            Verdict::Admit(ticket) => {
                slot = Some(state.sessions_active.admit());
                if let Some((ticket, line_seq)) = ticket {
                    // Checked in line order, whoever of those let in asked first.
                    claim = Claim::Line(line_seq);
                    admitted_ticket = Some(ticket);
                }
            }
            Verdict::Wait(place) => return Err(waiting(&place, bonus_opens_at)),
            Verdict::Join => return Err(waiting(&join_line(&state, &body.login).await?, bonus_opens_at)),
            Verdict::Full => return Err(ApiError::overloaded("the waiting room is full; try again in a minute")),
        }
    }
    let stored = principal.as_ref().map(|principal| principal.password_hash.clone());
    if principal.as_ref().is_some_and(|principal| principal.password_hash.is_empty()) {
        // Carried over from the previous operator without a password hash.
        // Its own code, so an app can send the citizen to the reset flow instead of "wrong password".
        return Err(ApiError::new(
            401,
            ErrorCode::PasswordResetRequired,
            "this account has no password here yet: it was carried over from the previous operator without one; \
             ask the city for a reset code, then set a password with POST /v1/citizens/password \
             {\"login\", \"reset_code\", \"password\"}",
        ));
    }
    let checked = match state.passwords.verify(body.password, stored, claim).await {
        Ok(checked) => checked,
        Err(PoolError::Busy) => {
            // The queue for the password threads filled up since the check above (only a login
            // without a ticket can be refused): into the line, the slot given back first.
            drop(slot);
            return Err(waiting(&rejoin_line(&state, &body.login, admitted_ticket).await?, bonus_opens_at));
        }
        Err(PoolError::Failed(error)) => return Err(error),
    };
    if !checked.matches {
        throttled.failed(&state);
        return Err(ApiError::new(401, ErrorCode::InvalidCredentials, "login or password is wrong"));
    }
    throttled.succeeded();
    let principal = principal.ok_or_else(ApiError::internal)?;
    if let Some(upgrade) = checked.upgrade {
        // A carried-over (or older-cost) hash is replaced by argon2id at this server's cost.
        let id = principal.principal_id.clone();
        with_connection(&state, move |connection, state| {
            let now_ms = store::time::millis(state.clock.now());
            store::principals::set_password_hash(connection, &id, &upgrade, now_ms)
        })
        .await?;
    }
    let (token, token_hash) = crate::auth::new_token();
    let role = principal.role.clone();
    // The ticket leaves the line in the same transaction as its session is made.
    let removed_ticket = admitted_ticket.clone();
    let created = with_connection(&state, move |connection, state| {
        let now = state.clock.now();
        let expires_at = now + chrono::Duration::from_std(state.config.session_lifetime).unwrap_or_default();
        let (now_ms, expires_at_ms) = (store::time::millis(now), store::time::millis(expires_at));
        let created = if principal.role == "citizen" && state.config.admission {
            store::sessions::insert_citizen_session_within(
                connection,
                &token_hash,
                &principal.principal_id,
                now_ms,
                expires_at_ms,
                state.config.sessions_capacity,
                removed_ticket.as_deref(),
            )?
        } else {
            store::sessions::insert_session(
                connection,
                &token_hash,
                &principal.principal_id,
                &principal.role,
                now_ms,
                expires_at_ms,
            )?;
            true
        };
        // A locked citizen gets no session. Checked after the session is made, so that a lock
        // committing meanwhile either is seen here or ends the session itself
        // (`store::directory::citizen_locked`).
        if created
            && principal.role == "citizen"
            && store::directory::citizen_locked(connection, &principal.principal_id)?
        {
            store::sessions::delete_session(connection, &token_hash)?;
            return Ok(Err(()));
        }
        Ok(Ok(created.then_some(expires_at)))
    })
    .await?;
    let Ok(created) = created else {
        drop(slot);
        if let Some(ticket) = admitted_ticket {
            lock_room(&state)?.settle(&ticket);
        }
        return Err(ApiError::new(
            403,
            ErrorCode::WalletLocked,
            "this wallet is locked by the city; the citizen must ask the city to unlock it",
        ));
    };
    let Some(expires_at) = created else {
        // Another server took the last slot meanwhile: back in line, keeping any place held.
        drop(slot);
        return Err(waiting(&rejoin_line(&state, &body.login, admitted_ticket).await?, bonus_opens_at));
    };
    if let Some(slot) = slot {
        slot.keep();
    }
    if let Some(ticket) = admitted_ticket {
        lock_room(&state)?.settle(&ticket);
    }
    let role = Role::parse(&role).ok_or_else(ApiError::internal)?;
    Ok(HttpResponse::Created().json(SessionCreated { token, role: role.into(), expires_at: rfc3339(expires_at) }))
}

/// A login attempt the throttle let through. It must end as [`ThrottledAttempt::failed`] or
/// [`ThrottledAttempt::succeeded`] once the password is checked; dropped before that (a refusal
/// before the check, or the client gone), its charge is given back, so only failures count.
struct ThrottledAttempt<'a> {
    throttle: Option<&'a Mutex<Throttle>>,
    attempt: Option<Attempt>,
}

impl<'a> ThrottledAttempt<'a> {
    /// Asks the throttle (when on) for `login` from the request's client address; 429
    /// `too_many_attempts` with `Retry-After` when it says wait.
    fn begin(state: &'a State, request: &HttpRequest, login: &str) -> Result<ThrottledAttempt<'a>, ApiError> {
        let Some(throttle) = state.throttle.as_ref() else {
            return Ok(ThrottledAttempt { throttle: None, attempt: None });
        };
        let source = client_address(request, &state.config.trusted_proxies).map(Source::of);
        let now_ms = store::time::millis(state.clock.now());
        // A login that cannot exist gets no record of its own (only the address counts it).
        let begun = lock_throttle(throttle)?.begin(parse_login(login).ok(), source, now_ms);
        match begun {
            Ok(attempt) => Ok(ThrottledAttempt { throttle: Some(throttle), attempt: Some(attempt) }),
            Err(refusal) => Err(too_many_attempts(refusal)),
        }
    }

    fn failed(mut self, state: &State) {
        if let (Some(throttle), Some(attempt)) = (self.throttle, self.attempt.take()) {
            let now_ms = store::time::millis(state.clock.now());
            if let Ok(mut throttle) = throttle.lock() {
                throttle.failed(attempt, now_ms);
            }
        }
    }

    fn succeeded(mut self) {
        if let (Some(throttle), Some(attempt)) = (self.throttle, self.attempt.take()) {
            if let Ok(mut throttle) = throttle.lock() {
                throttle.succeeded(attempt);
            }
        }
    }
}

impl Drop for ThrottledAttempt<'_> {
    fn drop(&mut self) {
        if let (Some(throttle), Some(attempt)) = (self.throttle, self.attempt.take()) {
            if let Ok(mut throttle) = throttle.lock() {
                throttle.abandoned(attempt);
            }
        }
    }
}

fn lock_throttle(throttle: &Mutex<Throttle>) -> Result<std::sync::MutexGuard<'_, Throttle>, ApiError> {
    throttle.lock().map_err(|_| ApiError::internal())
}

fn too_many_attempts(refusal: Refusal) -> ApiError {
    let seconds = refusal.retry_after_s;
    let message = match refusal.reason {
        Reason::Login => format!(
            "too many failed logins for this login; try again in {seconds} s (no password was checked this time)"
        ),
        Reason::Address => format!(
            "too many failed logins from your network address; try again in {seconds} s (no password was checked \
             this time)"
        ),
    };
    ApiError { retry_after_s: Some(seconds), ..ApiError::new(429, ErrorCode::TooManyAttempts, message) }
}

/// Ends the caller's session; a citizen's session slot is free at once.
#[utoipa::path(delete, path = "/v1/sessions/current", operation_id = "log_out", tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The session was ended."),
        (status = 401, response = inline(Unauthorized)),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn logout(state: State, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, None).await?;
    // Forgotten before and after the delete: a request of the same token that read the session
    // just before the delete may still cache it, for at most `auth::sessions::cache::RECHECK_MS`.
    state.session_cache.forget(&principal.token_hash);
    let token_hash = principal.token_hash.clone();
    with_connection(&state, move |connection, _| store::sessions::delete_session(connection, &token_hash)).await?;
    state.session_cache.forget(&principal.token_hash);
    if principal.role == Role::Citizen {
        state.sessions_active.note_released();
    }
    Ok(HttpResponse::NoContent().finish())
}

/// A waiting-room ticket's place in line; polling keeps the ticket alive.
#[utoipa::path(get, path = "/v1/waiting-room/{ticket}", operation_id = "get_waiting_room_ticket", tag = "sessions",
    params(("ticket" = String, Path, description = "The ticket of a 503 `waiting_room` answer.")),
    responses(
        (status = 200, description = "The ticket's place in line.", body = TicketStatus),
        (status = 404, description = "`not_found`: the ticket is unknown or has expired (not polled for 60 \
            seconds, or already admitted).", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn poll(state: State, ticket: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let now_ms = store::time::millis(state.clock.now());
    let room = room_now(&state, now_ms).await?;
    let mut place = lock_room_at(&state, room)?.poll(&ticket, now_ms);
    if place.is_none() {
        // Another server may have issued it since this one last read the shared line.
        let wanted = ticket.to_string();
        let row =
            with_connection(&state, move |connection, _| store::waiting::find_ticket(connection, &wanted)).await?;
        if let Some(row) = row.filter(|row| now_ms - row.polled_ms < TICKET_POLL_GRACE_MS) {
            place = Some(lock_room(&state)?.join(&row.ticket, &row.login, row.seq, now_ms));
        }
    }
    let place = place
        .ok_or_else(|| ApiError::not_found("no such ticket; it may have been dropped after 60 s without a poll"))?;
    Ok(HttpResponse::Ok().json(TicketStatus {
        position: place.position as u64,
        estimated_wait_s: place.estimated_wait_s,
        ready: place.position <= room.slots.min(room.checks),
    }))
}

/// Gives `login` its ticket in the shared line (the one it holds, or a new one at the end) and
/// its place in this server's mirror.
async fn join_line(state: &State, login: &str) -> Result<Place, ApiError> {
    let (login_owned, fresh) = (login.to_owned(), crate::auth::new_payment_code());
    let now_ms = store::time::millis(state.clock.now());
    let row = with_connection(state, move |connection, _| {
        store::waiting::take_ticket(connection, &login_owned, &fresh, now_ms)
    })
    .await?;
    Ok(lock_room(state)?.join(&row.ticket, &row.login, row.seq, now_ms))
}

/// A login let in from the line that could not get its session after all goes back in line;
/// its ticket, still in the shared line, keeps its place there (the mirror catches up at the
/// next sync).
async fn rejoin_line(state: &State, login: &str, ticket: Option<String>) -> Result<Place, ApiError> {
    let place = join_line(state, login).await?;
    if let Some(ticket) = ticket {
        lock_room(state)?.settle(&ticket);
    }
    Ok(place)
}

/// What the waiting room may let in now: free session slots, and room in the queue for the
/// password threads.
async fn room_now(state: &State, now_ms: i64) -> Result<Room, ApiError> {
    let count_stored = || with_connection(state, |connection, _| store::sessions::citizen_slots_used(connection));
    let active = state.sessions_active.current(now_ms, count_stored).await?;
    let slots = usize::try_from(state.config.sessions_capacity - active).unwrap_or(0);
    Ok(Room { slots, checks: state.passwords.room_for_line() })
}

fn lock_room(state: &State) -> Result<std::sync::MutexGuard<'_, WaitingRoom>, ApiError> {
    state.waiting_room.lock().map_err(|_| ApiError::internal())
}

/// The waiting room, told first what the server knows of the line's pace now (`room`'s free
/// slots, the password threads' measured rate), so the waits it answers start from that.
fn lock_room_at(state: &State, room: Room) -> Result<std::sync::MutexGuard<'_, WaitingRoom>, ApiError> {
    let mut locked = lock_room(state)?;
    locked.set_prior(line_prior(&state.config, &state.passwords, room.slots));
    Ok(locked)
}

/// What bounds the line's pace before it is measured: password checks a second, the session
/// slots and how many are free, and how long a citizen is expected to hold one.
pub fn line_prior(config: &crate::config::Config, passwords: &crate::auth::PasswordPool, slots_free: usize) -> Prior {
    let capacity = usize::try_from(config.sessions_capacity).unwrap_or(usize::MAX).max(1);
    let hold_s = config.session_hold_expected.as_secs_f64().max(1.0);
    Prior::new(passwords.checks_per_s(), capacity, slots_free, hold_s)
}

/// The waiting room's answer: the place in line, the citizen's cohort opening of a charge bonus
/// program (so nobody need race its opening), and a Retry-After within the estimate, spread by
/// jitter, so that a crowd told the same estimate does not come back at the same instant.
fn waiting(place: &Place, bonus_opens_at: Option<chrono::DateTime<chrono::Utc>>) -> ApiError {
    let base = place.estimated_wait_s.clamp(1, RETRY_AFTER_MAX_S);
    let spread = (base / RETRY_AFTER_JITTER_DIVISOR).max(1);
    let retry_after = base.saturating_sub(rand::Rng::random_range(&mut rand::rng(), 0..=spread)).max(1);
    ApiError {
        retry_after_s: Some(retry_after),
        extra: Some((
            "waiting_room",
            crate::api::wire::to_json(&crate::api::wire::WaitingRoomTicket {
                ticket: place.ticket.clone(),
                position: place.position as u64,
                estimated_wait_s: place.estimated_wait_s,
                charge_bonus_opens_at: bonus_opens_at.map(crate::api::rfc3339),
            }),
        )),
        ..ApiError::new(
            503,
            ErrorCode::WaitingRoom,
            "all citizen sessions are taken; you are in line: retry with the same credentials and this ticket",
        )
    }
}

/// When the citizen's cohort of the charge bonus program shown at `now` opens, if one is shown.
fn cohort_opening(
    connection: &mut store::DbConn,
    citizen_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, store::StoreError> {
    let Some(program) = store::charge_bonuses::shown_at(connection, now)? else {
        return Ok(None);
    };
    let Some(wallet) = store::wallets::wallet_of(connection, citizen_id)? else {
        return Ok(None);
    };
    let Ok(wallet) = wallet_core::WalletId::parse(&wallet) else {
        return Ok(None);
    };
    let rules = &program.state.rules;
    Ok(Some(rules.cohort_opens_at(rules.cohort_of(&wallet))))
}
