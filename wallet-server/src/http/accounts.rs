//! The city console's accounts (an extension of API.md, "Operations"): merchants and citizens
//! listed and searched, a merchant suspended and reinstated, a citizen's wallet locked and
//! unlocked, and more admins.
//!
//! The suspension and the lock are flags the ledger decides by (`store::directory` says where
//! they live and why); here they are set, audited and shown. A lock also ends the citizen's
//! sessions, in the same transaction, and forgets them from this server's session cache at once
//! (another server over the same database stops trusting them within its recheck interval,
//! `auth::sessions::cache::RECHECK_MS`, as for a logout).

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use wallet_core::Won;

use super::session::{parse_login, parse_password};
use super::strict_json::StrictJson;
use super::{authenticate, parse_body, with_connection, Role, State};
use crate::api::wire::{
    AdminCreated, CitizenListed, CitizenPage, CitizenStatus, ErrorBody, Forbidden, IdempotencyKeyOptional,
    InternalError, InvalidJsonOrKey, MerchantListed, MerchantPage, MerchantStatus, Overloaded, PayloadTooLarge,
    RequestTimeout, Unauthorized,
};
use crate::api::{ApiError, ErrorCode};
use crate::store::directory::{self, CitizenEntry, MerchantEntry, PageOf};
use crate::store::{self, audit, DbConn, StoreResult};

/// Rows per page of a list: default and most (as the history's and the audit log's).
pub const LIST_PAGE_DEFAULT: i64 = 50;
pub const LIST_PAGE_MAX: i64 = 200;
/// The longest search prefix, in characters (a login is at most 64).
const SEARCH_CHARS_MAX: usize = 64;
/// The longest reason for a suspension or a lock, in characters.
const REASON_CHARS_MAX: usize = 200;

/// The query of a list: a search prefix and the paging.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// A prefix of the login (for merchants also of the name), 1 to 64 characters, matched
    /// exactly (case and all); left out for everyone.
    #[param(min_length = 1, max_length = 64, nullable = false)]
    q: Option<String>,
    /// Rows per page, 1 to 200; 50 when left out.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200, default = 50, nullable = false)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page; left out for the first page.
    #[param(nullable = false)]
    cursor: Option<String>,
}

/// A `limit` query parameter: 1 to [`LIST_PAGE_MAX`], [`LIST_PAGE_DEFAULT`] when left out.
pub fn parse_limit(limit: Option<&str>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(LIST_PAGE_DEFAULT),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|limit| (1..=LIST_PAGE_MAX).contains(limit))
            .ok_or_else(|| ApiError::validation(format!("limit must be a whole number from 1 to {LIST_PAGE_MAX}"))),
    }
}

/// A list's search prefix, cursor (a login) and limit, checked.
fn parse_list_query(query: &ListQuery) -> Result<(Option<&str>, Option<&str>, i64), ApiError> {
    if let Some(prefix) = &query.q {
        let length = prefix.chars().count();
        if !(1..=SEARCH_CHARS_MAX).contains(&length) || prefix.chars().any(char::is_control) {
            return Err(ApiError::validation(format!(
                "q must be 1 to {SEARCH_CHARS_MAX} characters without control characters; leave it out to list everyone"
            )));
        }
    }
    // The cursor is the last login of the previous page: anything else was not given here.
    let cursor = match &query.cursor {
        Some(cursor) => Some(
            parse_login(cursor)
                .map_err(|_| ApiError::validation("cursor is not one this server gave; start again without it"))?,
        ),
        None => None,
    };
    Ok((query.q.as_deref(), cursor, parse_limit(query.limit.as_deref())?))
}

/// A suspension's or a lock's reason.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why, for the audit log: 1 to 200 characters without control characters.
    #[schema(min_length = 1, max_length = 200, example = "the citizen reported the phone lost")]
    pub reason: String,
}

/// The body of `PUT /v1/admin/merchants/{id}/suspension` and `PUT /v1/admin/citizens/{login}/lock`:
/// the reason, trimmed.
pub fn parse_reason(body: Value) -> Result<String, ApiError> {
    let body: ReasonBody = parse_body(body)?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > REASON_CHARS_MAX || reason.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "reason must be 1 to {REASON_CHARS_MAX} characters without control characters"
        )));
    }
    Ok(reason.to_owned())
}

/// A new admin's login and password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminBody {
    /// 3 to 64 characters of `[a-z0-9._-]`.
    #[schema(pattern = "^[a-z0-9._-]{3,64}$", example = "park.clerk")]
    pub login: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128, format = Password)]
    pub password: String,
}

/// The body of `POST /v1/admin/admins`: a valid login and password (the rules of citizens').
pub fn parse_admin(body: Value) -> Result<AdminBody, ApiError> {
    let body: AdminBody = parse_body(body)?;
    parse_login(&body.login)?;
    parse_password(&body.password)?;
    Ok(body)
}

fn merchant_listed(entry: MerchantEntry) -> MerchantListed {
    let record = entry.record;
    MerchantListed {
        merchant_id: record.merchant_id,
        login: entry.login,
        name: record.name,
        business_number: record.business_number,
        bank_account: record.bank_account,
        category: record.category,
        annual_revenue: record.annual_revenue.map(|won| won.to_string()),
        status: if entry.suspended_at_ms.is_some() { MerchantStatus::Suspended } else { MerchantStatus::Active },
    }
}

/// The citizens of `entries` as listed: each balance is what the citizen sees, the wallet
/// account plus the allowances live at `now` (the core's rule, `GrantState::is_live`).
fn citizens_listed(
    connection: &mut DbConn,
    entries: Vec<CitizenEntry>,
    now: chrono::DateTime<chrono::Utc>,
) -> StoreResult<Vec<CitizenListed>> {
    let wallet_ids: Vec<String> = entries.iter().map(|entry| entry.wallet_id.clone()).collect();
    let mut allowances: HashMap<String, Won> = HashMap::new();
    for (_, grant) in store::allowances::load_for_wallets(connection, &wallet_ids)? {
        if grant.is_live(now) {
            let held = allowances.entry(grant.wallet.as_str().to_owned()).or_insert(Won::ZERO);
            *held = held.checked_add(grant.outstanding).map_err(|_| store::StoreError::Corrupt("allowances".into()))?;
        }
    }
    entries
        .into_iter()
        .map(|entry| {
            let balance = store::money::db_won(entry.balance)
                .checked_add(allowances.get(&entry.wallet_id).copied().unwrap_or(Won::ZERO))
                .map_err(|_| store::StoreError::Corrupt("wallet balance".into()))?;
            Ok(CitizenListed {
                citizen_id: entry.citizen_id,
                login: entry.login,
                wallet_id: entry.wallet_id,
                balance: balance.to_string(),
                status: if entry.locked_at_ms.is_some() { CitizenStatus::Locked } else { CitizenStatus::Active },
            })
        })
        .collect()
}

/// The next page's cursor: the last login, when the page was full and one more row was read.
fn next_cursor<T>(rows: &mut Vec<T>, limit: i64, login: impl Fn(&T) -> &str) -> Option<String> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    if more {
        rows.last().map(|row| login(row).to_owned())
    } else {
        None
    }
}

/// The merchants, in login order, a page at a time; searched by a prefix of login or name.
#[utoipa::path(get, path = "/v1/admin/merchants", operation_id = "list_merchants", tag = "admin",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of merchants.", body = MerchantPage),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 422, description = "`validation_failed`: `q` is not 1 to 64 characters, `limit` is not a whole \
            number from 1 to 200, `cursor` is not one this server gave, or an unknown query parameter.",
            body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn list_merchants(
    state: State,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let query = query.into_inner();
    let (prefix, cursor, limit) = parse_list_query(&query)?;
    let (prefix, cursor) = (prefix.map(str::to_owned), cursor.map(str::to_owned));
    let mut rows = with_connection(&state, move |connection, _| {
        let page = PageOf { prefix: prefix.as_deref(), after: cursor.as_deref(), limit: limit + 1 };
        directory::merchants_page(connection, &page)
    })
    .await?;
    let next_cursor = next_cursor(&mut rows, limit, |row| &row.login);
    let items = rows.into_iter().map(merchant_listed).collect();
    Ok(HttpResponse::Ok().json(MerchantPage { items, next_cursor }))
}

/// One merchant, with its login and status.
#[utoipa::path(get, path = "/v1/admin/merchants/{merchant_id}", operation_id = "get_merchant", tag = "admin",
    security(("bearer" = [])),
    params(("merchant_id" = String, Path, description = "The merchant's id.")),
    responses(
        (status = 200, description = "The merchant.", body = MerchantListed),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: no such merchant.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn get_merchant(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let merchant_id = path.into_inner();
    let entry = with_connection(&state, move |connection, _| directory::merchant(connection, &merchant_id))
        .await?
        .ok_or_else(|| ApiError::not_found("no such merchant"))?;
    Ok(HttpResponse::Ok().json(merchant_listed(entry)))
}

/// Suspends (`Some(reason)`) or reinstates (`None`) a merchant, auditing a change; the merchant
/// after, or `None` for an unknown one.
async fn set_suspension(
    state: &State,
    admin_id: String,
    merchant_id: String,
    reason: Option<String>,
    key: Option<String>,
) -> Result<Option<MerchantEntry>, ApiError> {
    Ok(with_connection(state, move |connection, state| {
        let now = state.clock.now();
        store::write_transaction(connection, |connection| {
            let at_ms = reason.as_ref().map(|_| store::time::millis(now));
            if directory::set_suspended(connection, &merchant_id, at_ms)? {
                let (action, detail) = match &reason {
                    Some(reason) => {
                        (audit::Action::MerchantSuspended, json!({"merchant_id": merchant_id, "reason": reason}))
                    }
                    None => (audit::Action::MerchantReinstated, json!({"merchant_id": merchant_id})),
                };
                let entry = audit::Entry {
                    at: now,
                    actor: audit::Actor::Admin(&admin_id),
                    action,
                    detail,
                    idempotency_key: key.as_deref(),
                };
                audit::record(connection, entry)?;
            }
            directory::merchant(connection, &merchant_id)
        })
    })
    .await?)
}

/// Suspends a merchant: from this answer on its payments are refused with 422
/// `merchant_suspended`; its refunds, sales and settlement go on (a citizen must still get money
/// back; the city still pays out what was sold). A suspended merchant stays so (200, unchanged).
#[utoipa::path(put, path = "/v1/admin/merchants/{merchant_id}/suspension", operation_id = "suspend_merchant",
    tag = "admin",
    security(("bearer" = [])),
    params(IdempotencyKeyOptional, ("merchant_id" = String, Path, description = "The merchant's id.")),
    request_body = ReasonBody,
    responses(
        (status = 200, description = "The merchant, suspended.", body = MerchantListed),
        (status = 400, response = inline(InvalidJsonOrKey)),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: no such merchant.", body = ErrorBody),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`validation_failed`: an unknown or missing field, or a `reason` that is not 1 \
            to 200 characters without control characters.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn suspend_merchant(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<StrictJson>,
) -> Result<HttpResponse, ApiError> {
    let admin = authenticate(&state, &request, Some(Role::Admin)).await?;
    let key = super::idempotency_if_sent(&request, &body)?.map(|key| key.key);
    let reason = parse_reason(body.into_inner().0)?;
    let entry = set_suspension(&state, admin.id, path.into_inner(), Some(reason), key)
        .await?
        .ok_or_else(|| ApiError::not_found("no such merchant"))?;
    Ok(HttpResponse::Ok().json(merchant_listed(entry)))
}

/// Reinstates a suspended merchant: it takes payments again. An active merchant stays so.
#[utoipa::path(delete, path = "/v1/admin/merchants/{merchant_id}/suspension", operation_id = "reinstate_merchant",
    tag = "admin",
    security(("bearer" = [])),
    params(IdempotencyKeyOptional, ("merchant_id" = String, Path, description = "The merchant's id.")),
    responses(
        (status = 200, description = "The merchant, active.", body = MerchantListed),
        (status = 400, description = "`invalid_request`: an Idempotency-Key that is not 1 to 255 visible ASCII \
            characters.", body = ErrorBody),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: no such merchant.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn reinstate_merchant(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let admin = authenticate(&state, &request, Some(Role::Admin)).await?;
    let key = super::idempotency_if_sent(&request, &Value::Null)?.map(|key| key.key);
    let entry = set_suspension(&state, admin.id, path.into_inner(), None, key)
        .await?
        .ok_or_else(|| ApiError::not_found("no such merchant"))?;
    Ok(HttpResponse::Ok().json(merchant_listed(entry)))
}

/// The citizens, in login order, a page at a time; searched by a prefix of the login.
#[utoipa::path(get, path = "/v1/admin/citizens", operation_id = "list_citizens", tag = "admin",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of citizens.", body = CitizenPage),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 422, description = "`validation_failed`: `q` is not 1 to 64 characters, `limit` is not a whole \
            number from 1 to 200, `cursor` is not one this server gave, or an unknown query parameter.",
            body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn list_citizens(
    state: State,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let query = query.into_inner();
    let (prefix, cursor, limit) = parse_list_query(&query)?;
    let (prefix, cursor) = (prefix.map(str::to_owned), cursor.map(str::to_owned));
    let page = with_connection(&state, move |connection, state| {
        let page = PageOf { prefix: prefix.as_deref(), after: cursor.as_deref(), limit: limit + 1 };
        let mut rows = directory::citizens_page(connection, &page)?;
        let next_cursor = next_cursor(&mut rows, limit, |row| &row.login);
        Ok(CitizenPage { items: citizens_listed(connection, rows, state.clock.now())?, next_cursor })
    })
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// One citizen by login, with the wallet's balance and status.
#[utoipa::path(get, path = "/v1/admin/citizens/{login}", operation_id = "get_citizen", tag = "admin",
    security(("bearer" = [])),
    params(("login" = String, Path, description = "The citizen's login.")),
    responses(
        (status = 200, description = "The citizen.", body = CitizenListed),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: no citizen has this login.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn get_citizen(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let login = path.into_inner();
    let citizen = with_connection(&state, move |connection, state| {
        let Some(entry) = directory::citizen(connection, &login)? else { return Ok(None) };
        Ok(citizens_listed(connection, vec![entry], state.clock.now())?.pop())
    })
    .await?
    .ok_or_else(|| ApiError::not_found("no citizen has this login"))?;
    Ok(HttpResponse::Ok().json(citizen))
}

/// Locks (`Some(reason)`) or unlocks (`None`) a citizen's wallet, auditing a change; a lock ends
/// the citizen's sessions in the same transaction. The citizen after, or `None` for an unknown
/// login.
async fn set_lock(
    state: &State,
    admin_id: String,
    login: String,
    reason: Option<String>,
    key: Option<String>,
) -> Result<Option<CitizenListed>, ApiError> {
    let (citizen_id, listed) = with_connection(state, move |connection, state| {
        let now = state.clock.now();
        let entry = store::write_transaction(connection, |connection| {
            let Some(entry) = directory::citizen(connection, &login)? else { return Ok(None) };
            let at_ms = reason.as_ref().map(|_| store::time::millis(now));
            if directory::set_locked(connection, &entry.wallet_id, at_ms)? {
                if reason.is_some() {
                    store::sessions::end_sessions_of(connection, &entry.citizen_id, None)?;
                }
                let detail = json!({"citizen_id": entry.citizen_id, "login": entry.login, "wallet_id": entry.wallet_id,
                                    "reason": reason});
                let action = if reason.is_some() { audit::Action::WalletLocked } else { audit::Action::WalletUnlocked };
                let record = audit::Entry {
                    at: now,
                    actor: audit::Actor::Admin(&admin_id),
                    action,
                    detail,
                    idempotency_key: key.as_deref(),
                };
                audit::record(connection, record)?;
            }
            directory::citizen(connection, &login)
        })?;
        let Some(entry) = entry else { return Ok((None, None)) };
        let citizen_id = entry.citizen_id.clone();
        Ok((Some(citizen_id), citizens_listed(connection, vec![entry], now)?.pop()))
    })
    .await?;
    if let Some(citizen_id) = citizen_id {
        // After the commit: a request that read a session just before it may have cached it.
        state.session_cache.forget_principal(&citizen_id);
    }
    Ok(listed)
}

/// Locks a citizen's wallet (a lost phone, suspected fraud): the citizen's sessions end at once
/// (their next request 401); logging in answers 403 `wallet_locked`; charges, gifts, payment
/// codes and payments with its codes, even one shown before the lock, answer 422
/// `wallet_locked`. Its balance is kept and gifts, refunds and grants to it still arrive. A
/// locked wallet stays so (200, unchanged).
#[utoipa::path(put, path = "/v1/admin/citizens/{login}/lock", operation_id = "lock_citizen", tag = "admin",
    security(("bearer" = [])),
    params(IdempotencyKeyOptional, ("login" = String, Path, description = "The citizen's login.")),
    request_body = ReasonBody,
    responses(
        (status = 200, description = "The citizen, locked.", body = CitizenListed),
        (status = 400, response = inline(InvalidJsonOrKey)),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: no citizen has this login.", body = ErrorBody),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`validation_failed`: an unknown or missing field, or a `reason` that is not 1 \
            to 200 characters without control characters.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn lock_citizen(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<StrictJson>,
) -> Result<HttpResponse, ApiError> {
    let admin = authenticate(&state, &request, Some(Role::Admin)).await?;
    let key = super::idempotency_if_sent(&request, &body)?.map(|key| key.key);
    let reason = parse_reason(body.into_inner().0)?;
    let citizen = set_lock(&state, admin.id, path.into_inner(), Some(reason), key)
        .await?
        .ok_or_else(|| ApiError::not_found("no citizen has this login"))?;
    Ok(HttpResponse::Ok().json(citizen))
}

/// Unlocks a citizen's wallet: the citizen logs in and pays again. An unlocked one stays so.
#[utoipa::path(delete, path = "/v1/admin/citizens/{login}/lock", operation_id = "unlock_citizen", tag = "admin",
    security(("bearer" = [])),
    params(IdempotencyKeyOptional, ("login" = String, Path, description = "The citizen's login.")),
    responses(
        (status = 200, description = "The citizen, active.", body = CitizenListed),
        (status = 400, description = "`invalid_request`: an Idempotency-Key that is not 1 to 255 visible ASCII \
            characters.", body = ErrorBody),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: no citizen has this login.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn unlock_citizen(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let admin = authenticate(&state, &request, Some(Role::Admin)).await?;
    let key = super::idempotency_if_sent(&request, &Value::Null)?.map(|key| key.key);
    let citizen = set_lock(&state, admin.id, path.into_inner(), None, key)
        .await?
        .ok_or_else(|| ApiError::not_found("no citizen has this login"))?;
    Ok(HttpResponse::Ok().json(citizen))
}

/// Creates another admin, who logs in with this login and password.
#[utoipa::path(post, path = "/v1/admin/admins", operation_id = "create_admin", tag = "admin",
    security(("bearer" = [])),
    params(IdempotencyKeyOptional),
    request_body = AdminBody,
    responses(
        (status = 201, description = "The admin was created.", body = AdminCreated),
        (status = 400, response = inline(InvalidJsonOrKey)),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 409, description = "`login_taken`: another account has this login.", body = ErrorBody),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`validation_failed`: an unknown or missing field, a login that is not 3 to 64 \
            characters of `[a-z0-9._-]`, or a password that is not 8 to 128 characters.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn create_admin(
    state: State,
    request: HttpRequest,
    body: web::Json<StrictJson>,
) -> Result<HttpResponse, ApiError> {
    let admin = authenticate(&state, &request, Some(Role::Admin)).await?;
    let key = super::idempotency_if_sent(&request, &body)?.map(|key| key.key);
    let AdminBody { login, password } = parse_admin(body.into_inner().0)?;
    let hash = state.passwords.hash(password).await?;
    let admin_id = uuid::Uuid::new_v4().to_string();
    let (id, created_login) = (admin_id.clone(), login.clone());
    let created = with_connection(&state, move |connection, state| {
        let now = state.clock.now();
        store::write_transaction(connection, |connection| {
            if !store::principals::insert_principal(connection, &id, &login, "admin", &hash, store::time::millis(now))?
            {
                return Ok(false);
            }
            let entry = audit::Entry {
                at: now,
                actor: audit::Actor::Admin(&admin.id),
                action: audit::Action::AdminCreated,
                detail: json!({"admin_id": id, "login": login}),
                idempotency_key: key.as_deref(),
            };
            audit::record(connection, entry)?;
            Ok(true)
        })
    })
    .await?;
    if !created {
        return Err(ApiError::new(409, ErrorCode::LoginTaken, "this login is taken; choose another"));
    }
    Ok(HttpResponse::Created().json(AdminCreated { admin_id, login: created_login }))
}
