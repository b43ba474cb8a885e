//! Setting a password with a one-time code from the city (an extension of API.md).
//!
//! Citizens carried over from the previous operator without a password hash cannot log in until
//! they set a password, and a citizen who forgot theirs needs the same: the city's back office,
//! having checked the person (at a counter, or through the city's identity service), issues a
//! reset code with `POST /v1/admin/citizens/{login}/password-reset` and hands it over; the citizen
//! sets a new password with `POST /v1/citizens/password`. A code is 128 random bits, kept only as
//! a hash, valid for [`RESET_CODE_LIFETIME_S`], used once; setting the password ends the
//! citizen's sessions.
//!
//! Anyone logged in changes their own password with the current one (`POST /v1/me/password`);
//! that ends their other sessions, as a reset ends all of them.

use super::strict_json::StrictJson;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::session::{parse_login, parse_password};
use super::{authenticate, parse_body, rfc3339, with_connection, Role, State};
use crate::api::wire::{
    ErrorBody, Forbidden, IdempotencyKeyOptional, InternalError, InvalidJson, Overloaded, PasswordResetIssued,
    PayloadTooLarge, RequestTimeout, Unauthorized,
};
use crate::api::{ApiError, ErrorCode};
use crate::auth::turns::Claim;
use crate::store::{self, audit};

/// How long a reset code stays valid: three days, time to reach the citizen.
pub const RESET_CODE_LIFETIME_S: i64 = 3 * 24 * 3_600;

/// A citizen's new password, with the code the city issued.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    #[schema(example = "kim.minji")]
    pub login: String,
    /// The code of `POST /v1/admin/citizens/{login}/password-reset`.
    pub reset_code: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128, format = Password)]
    pub password: String,
}

/// Issues a one-time code with which the citizen sets a password (replacing any earlier code).
#[utoipa::path(post, path = "/v1/admin/citizens/{login}/password-reset", operation_id = "issue_password_reset_code", tag = "admin",
    security(("bearer" = [])),
    params(IdempotencyKeyOptional, ("login" = String, Path, description = "The citizen's login.")),
    responses(
        (status = 201, description = "The code, to hand to the citizen once their identity is checked.",
            body = PasswordResetIssued),
        (status = 400, description = "`invalid_request`: an Idempotency-Key that is not 1 to 255 visible ASCII \
            characters.", body = ErrorBody),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: no citizen has this login.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn issue(
    state: State,
    request: HttpRequest,
    login: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let admin = authenticate(&state, &request, Some(Role::Admin)).await?;
    let key = super::idempotency_if_sent(&request, &serde_json::Value::Null)?.map(|key| key.key);
    let login = login.into_inner();
    let code = crate::auth::new_payment_code();
    let code_hash = crate::auth::token_hash(&code);
    let expires_at = with_connection(&state, move |connection, state| {
        store::write_transaction(connection, |connection| {
            let Some(principal) = store::principals::find_principal(connection, &login)? else { return Ok(None) };
            if principal.role != "citizen" {
                return Ok(None);
            }
            let now = state.clock.now();
            let expires_at = now + chrono::Duration::seconds(RESET_CODE_LIFETIME_S);
            let expires_at_ms = store::time::millis(expires_at);
            store::password_resets::put_password_reset(connection, &principal.principal_id, &code_hash, expires_at_ms)?;
            // Who the code is for and until when; never the code.
            let entry = audit::Entry {
                at: now,
                actor: audit::Actor::Admin(&admin.id),
                action: audit::Action::PasswordResetIssued,
                detail: json!({"citizen_id": principal.principal_id, "login": login, "expires_at": rfc3339(expires_at)}),
                idempotency_key: key.as_deref(),
            };
            audit::record(connection, entry)?;
            Ok(Some(expires_at))
        })
    })
    .await?
    .ok_or_else(|| ApiError::not_found("no citizen has this login"))?;
    Ok(HttpResponse::Created().json(PasswordResetIssued { reset_code: code, expires_at: rfc3339(expires_at) }))
}

/// The body of `POST /v1/citizens/password`: a password of 8 to 128 characters (else 422), a
/// login of the valid form and a code of at most 64 bytes (else `invalid_credentials`, as for a
/// wrong one).
pub fn parse_new_password(body: Value) -> Result<NewPassword, ApiError> {
    let body: NewPassword = parse_body(body)?;
    parse_password(&body.password)?;
    let wrong =
        || ApiError::new(401, ErrorCode::InvalidCredentials, "the login or reset code is wrong, used or expired");
    parse_login(&body.login).map_err(|_| wrong())?;
    if body.reset_code.len() > 64 {
        return Err(wrong());
    }
    Ok(body)
}

/// Sets a citizen's password with a code the city issued; ends the citizen's sessions.
#[utoipa::path(post, path = "/v1/citizens/password", operation_id = "set_password_with_reset_code", tag = "sessions",
    request_body = NewPassword,
    responses(
        (status = 204, description = "The password is set; log in with it."),
        (status = 400, response = inline(InvalidJson)),
        (status = 401, description = "`invalid_credentials`: the login or code is wrong, used or expired.",
            body = ErrorBody),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`validation_failed`: an unknown or missing field, or a password that is not \
            8 to 128 characters.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn set_password(state: State, body: web::Json<StrictJson>) -> Result<HttpResponse, ApiError> {
    let body = parse_new_password(body.into_inner().0)?;
    let wrong =
        || ApiError::new(401, ErrorCode::InvalidCredentials, "the login or reset code is wrong, used or expired");
    let login = body.login;
    let code_hash = crate::auth::token_hash(&body.reset_code);
    // Hashed before the code is checked, so a wrong code takes as long as a right one.
    let hash = state.passwords.hash(body.password).await?;
    let set = with_connection(&state, move |connection, state| {
        let Some(principal) = store::principals::find_principal(connection, &login)? else { return Ok(false) };
        if principal.role != "citizen" {
            return Ok(false);
        }
        let now_ms = store::time::millis(state.clock.now());
        let set = store::password_resets::redeem_password_reset(
            connection,
            &principal.principal_id,
            &code_hash,
            &hash,
            now_ms,
        )?;
        if set {
            // The reset ended the citizen's sessions in the database; this server stops
            // trusting them from memory too (another server within its recheck interval).
            state.session_cache.forget_principal(&principal.principal_id);
        }
        Ok(set)
    })
    .await?;
    if !set {
        return Err(wrong());
    }
    Ok(HttpResponse::NoContent().finish())
}

/// A password change by the one who knows the current password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    #[schema(format = Password)]
    pub current_password: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128, format = Password)]
    pub new_password: String,
}

/// The body of `POST /v1/me/password`: a new password of 8 to 128 characters (else 422), and a
/// current one no longer than any password (a longer one is wrong, without hashing it).
pub fn parse_password_change(body: Value) -> Result<PasswordChange, ApiError> {
    let body: PasswordChange = parse_body(body)?;
    parse_password(&body.new_password).map_err(|_| ApiError::validation("new_password must be 8 to 128 characters"))?;
    Ok(body)
}

/// The longest password (`session::parse_password`).
const PASSWORD_CHARS_MAX: usize = 128;

/// Changes the caller's own password (any role); ends the caller's other sessions.
///
/// The current password is checked as a login checks it (the same password threads, a merchant's
/// or admin's ahead of citizens'). An admin's change is audited.
#[utoipa::path(post, path = "/v1/me/password", operation_id = "change_own_password", tag = "sessions",
    security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "The password is changed; this session stays, the caller's others ended."),
        (status = 400, response = inline(InvalidJson)),
        (status = 401, description = "`unauthorized`: no live session. `invalid_credentials`: `current_password` \
            is wrong.", body = ErrorBody),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`validation_failed`: an unknown or missing field, or a `new_password` that is \
            not 8 to 128 characters.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn change_own_password(
    state: State,
    request: HttpRequest,
    body: web::Json<StrictJson>,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, None).await?;
    let change = parse_password_change(body.into_inner().0)?;
    let wrong = || ApiError::new(401, ErrorCode::InvalidCredentials, "current_password is wrong; nothing was changed");
    if change.current_password.chars().count() > PASSWORD_CHARS_MAX {
        return Err(wrong());
    }
    let id = principal.id.clone();
    let stored = with_connection(&state, move |connection, _| store::principals::password_hash_of(connection, &id))
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let claim = if principal.role == Role::Citizen { Claim::Citizen } else { Claim::Staff };
    if !state.passwords.verify(change.current_password, Some(stored), claim).await?.matches {
        return Err(wrong());
    }
    let hash = state.passwords.hash(change.new_password).await?;
    let (id, keep) = (principal.id.clone(), principal.token_hash.clone());
    let is_admin = principal.role == Role::Admin;
    with_connection(&state, move |connection, state| {
        let now = state.clock.now();
        store::write_transaction(connection, |connection| {
            store::principals::set_password_hash(connection, &id, &hash, store::time::millis(now))?;
            store::sessions::end_sessions_of(connection, &id, Some(&keep))?;
            if is_admin {
                let entry = audit::Entry {
                    at: now,
                    actor: audit::Actor::Admin(&id),
                    action: audit::Action::PasswordChanged,
                    detail: json!({"admin_id": id}),
                    idempotency_key: None,
                };
                audit::record(connection, entry)?;
            }
            Ok(())
        })
    })
    .await?;
    // The other sessions this server may have cached; this one is read again once, still live.
    state.session_cache.forget_principal(&principal.id);
    Ok(HttpResponse::NoContent().finish())
}
