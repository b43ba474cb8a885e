//! The city's back office: merchants, policy, cashback budget, settlement, oversight, test clock.

use super::strict_json::StrictJson;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use wallet_core::{Amount, BusinessDate, Command, Policy, Rate, Won};

use super::session::{parse_login, parse_password};
use super::{authenticate, idempotency, new_tx_id, parse_amount, parse_body, submit, with_connection, Role, State};
use crate::api::wire::{
    AccountBalance, Admission, Budget, ClockNow, DayClosed, ErrorBody, Forbidden, IdempotencyConflict, IdempotencyKey,
    IdempotencyKeyOptional, InternalError, InvalidJson, InvalidJsonOrKey, LimiterClass, Merchant as MerchantView,
    MerchantCreated, Overloaded, PayloadTooLarge, Policy as PolicyView, RequestLimiter, RequestTimeout,
    SettlementClosed, SettlementReport, SettlementsClosed, TrialBalance, Unauthorized,
};
use crate::api::{ApiError, ErrorCode};
use crate::store::{self, audit};
use crate::writer::WriteOp;

/// Longest free-text merchant field (name, business number, bank account, category).
const MERCHANT_FIELD_LEN_MAX: usize = 200;

/// A new merchant and its login. Text fields are trimmed and must be 1 to 200 characters
/// without control characters.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MerchantBody {
    /// 3 to 64 characters of `[a-z0-9._-]`.
    #[schema(pattern = "^[a-z0-9._-]{3,64}$", example = "bakery.jung")]
    login: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128, format = Password)]
    password: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    name: String,
    /// The business registration number (사업자등록번호): ten digits, as `123-45-67890` or
    /// `1234567890`; kept as sent.
    #[schema(pattern = "^([0-9]{3}-[0-9]{2}-[0-9]{5}|[0-9]{10})$", example = "123-45-67890")]
    business_number: String,
    /// Where settlements are paid.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    bank_account: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    category: Option<String>,
    /// Whole won as a string: what allowance programs with a revenue ceiling decide by.
    #[schema(value_type = Option<String>, example = "250000000")]
    annual_revenue: Option<Value>,
}

fn text_field<'a>(name: &str, value: &'a str) -> Result<&'a str, ApiError> {
    let trimmed = value.trim();
    // Characters, as documented (a Hangul syllable is 3 bytes of UTF-8).
    let too_long = trimmed.chars().count() > MERCHANT_FIELD_LEN_MAX;
    if trimmed.is_empty() || too_long || trimmed.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "{name} must be 1 to {MERCHANT_FIELD_LEN_MAX} characters without control characters"
        )));
    }
    Ok(trimmed)
}

/// A business registration number: ten digits, written `123-45-67890` or `1234567890`. It goes
/// on the settlement file finance pays from, so nothing else is taken (no formula, no text).
fn parse_business_number(value: &str) -> Result<&str, ApiError> {
    let bytes = value.as_bytes();
    let dashed = bytes.len() == 12
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            3 | 6 => *byte == b'-',
            _ => byte.is_ascii_digit(),
        });
    let plain = bytes.len() == 10 && bytes.iter().all(u8::is_ascii_digit);
    if dashed || plain {
        Ok(value)
    } else {
        Err(ApiError::validation(
            "business_number must be the ten digits of the business registration number, as \"123-45-67890\" or \
             \"1234567890\"",
        ))
    }
}

/// A merchant to register, parsed and checked: the login valid, the password 8 to 128
/// characters, the text fields trimmed.
pub struct NewMerchant {
    pub login: String,
    pub password: String,
    pub name: String,
    pub business_number: String,
    pub bank_account: String,
    pub category: Option<String>,
    pub annual_revenue: Option<Won>,
}

/// The body of `POST /v1/admin/merchants`.
pub fn parse_merchant(body: Value) -> Result<NewMerchant, ApiError> {
    let body: MerchantBody = parse_body(body)?;
    let login = parse_login(&body.login)?.to_owned();
    parse_password(&body.password)?;
    let name = text_field("name", &body.name)?.to_owned();
    let business_number = parse_business_number(&body.business_number)?.to_owned();
    let bank_account = text_field("bank_account", &body.bank_account)?.to_owned();
    let category =
        body.category.as_deref().map(|category| text_field("category", category)).transpose()?.map(str::to_owned);
    let annual_revenue = match &body.annual_revenue {
        Some(value) => super::programs::parse_revenue(value)?,
        None => None,
    };
    Ok(NewMerchant { login, password: body.password, name, business_number, bank_account, category, annual_revenue })
}

/// Registers a merchant with its login.
#[utoipa::path(post, path = "/v1/admin/merchants", operation_id = "create_merchant", tag = "admin",
    security(("bearer" = [])),
    params(IdempotencyKeyOptional),
    request_body = MerchantBody,
    responses(
        (status = 201, description = "The merchant was created.", body = MerchantCreated),
        (status = 400, response = inline(InvalidJsonOrKey)),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 409, description = "`login_taken`: another account has this login.", body = ErrorBody),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`validation_failed`: an unknown or missing field, a login that is not 3 to 64 \
            characters of `[a-z0-9._-]`, a password that is not 8 to 128 characters, a `business_number` that is not ten digits \
            (`123-45-67890` or `1234567890`), or a text field that is empty, over 200 characters or holds control \
            characters.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn create_merchant(
    state: State,
    request: HttpRequest,
    body: web::Json<StrictJson>,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, Some(Role::Admin)).await?;
    let key = super::idempotency_if_sent(&request, &body)?.map(|key| key.key);
    let NewMerchant { login, password, name, business_number, bank_account, category, annual_revenue } =
        parse_merchant(body.into_inner().0)?;
    let annual_revenue = annual_revenue.map(store::money::won_to_db).transpose()?;
    let hash = state.passwords.hash(password).await?;
    let merchant_id = uuid::Uuid::new_v4().to_string();
    let id = merchant_id.clone();
    let created = with_connection(&state, move |connection, state| {
        let now = state.clock.now();
        store::write_transaction(connection, |connection| {
            if !store::principals::insert_principal(
                connection,
                &id,
                &login,
                "merchant",
                &hash,
                store::time::millis(now),
            )? {
                return Ok(false);
            }
            let merchant = store::merchants::MerchantDetails {
                merchant_id: &id,
                name: &name,
                business_number: &business_number,
                bank_account: &bank_account,
                category: category.as_deref(),
                annual_revenue,
            };
            store::merchants::put_merchant(connection, &merchant)?;
            let entry = audit::Entry {
                at: now,
                actor: audit::Actor::Admin(&principal.id),
                action: audit::Action::MerchantCreated,
                detail: json!({"merchant_id": id, "login": login, "name": name, "business_number": business_number,
                               "bank_account": bank_account, "category": category,
                               "annual_revenue": annual_revenue.map(|won| won.to_string())}),
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
    Ok(HttpResponse::Created().json(MerchantCreated { merchant_id }))
}

/// What `PATCH /v1/admin/merchants/{id}` may change; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MerchantPatchBody {
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    bank_account: Option<String>,
    /// A category, or null to clear it.
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "present")]
    category: Option<Value>,
    /// Whole won as a string, or null when unknown.
    #[schema(value_type = Option<String>, example = "250000000")]
    #[serde(default, deserialize_with = "present")]
    annual_revenue: Option<Value>,
}

/// A field that is present, even as null, is `Some` (absent stays `None` through `default`).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// The body of `PATCH /v1/admin/merchants/{id}`.
pub fn parse_merchant_patch(body: Value) -> Result<store::merchants::MerchantPatch, ApiError> {
    let body: MerchantPatchBody = parse_body(body)?;
    let optional_text = |name: &str, value: Option<Value>| -> Result<Option<Option<String>>, ApiError> {
        match value {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(text)) => Ok(Some(Some(text_field(name, &text)?.to_owned()))),
            Some(_) => Err(ApiError::validation(format!("{name} must be a string or null"))),
        }
    };
    let annual_revenue = match body.annual_revenue {
        None => None,
        Some(value) => Some(super::programs::parse_revenue(&value)?.map(store::money::won_to_db).transpose()?),
    };
    let patch = store::merchants::MerchantPatch {
        name: body.name.as_deref().map(|name| text_field("name", name)).transpose()?.map(str::to_owned),
        bank_account: body
            .bank_account
            .as_deref()
            .map(|account| text_field("bank_account", account))
            .transpose()?
            .map(str::to_owned),
        category: optional_text("category", body.category)?,
        annual_revenue,
    };
    Ok(patch)
}

fn merchant_view(record: store::merchants::MerchantRecord) -> MerchantView {
    MerchantView {
        merchant_id: record.merchant_id,
        name: record.name,
        business_number: record.business_number,
        bank_account: record.bank_account,
        category: record.category,
        annual_revenue: record.annual_revenue.map(|won| won.to_string()),
    }
}

/// Changes a merchant's name, bank account, category or annual revenue. Payments after this
/// answer decide programs' eligibility by the new category and revenue; settlement is unchanged.
#[utoipa::path(patch, path = "/v1/admin/merchants/{merchant_id}", operation_id = "patch_merchant", tag = "admin",
    security(("bearer" = [])),
    params(IdempotencyKeyOptional, ("merchant_id" = String, Path, description = "The merchant's id.")),
    request_body = MerchantPatchBody,
    responses(
        (status = 200, description = "The merchant after the change.", body = MerchantView),
        (status = 400, response = inline(InvalidJsonOrKey)),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: no such merchant.", body = ErrorBody),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`validation_failed`, naming the field: an unknown field, a text field that is             empty, over 200 characters or holds control characters, an `annual_revenue` that is not whole won.",
            body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn patch_merchant(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<StrictJson>,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, Some(Role::Admin)).await?;
    let key = super::idempotency_if_sent(&request, &body)?.map(|key| key.key);
    let patch = parse_merchant_patch(body.into_inner().0)?;
    let merchant_id = path.into_inner();
    let changed = with_connection(&state, move |connection, state| {
        let now = state.clock.now();
        store::write_transaction(connection, |connection| {
            let Some((before, after)) = store::merchants::patch(connection, &merchant_id, &patch)? else {
                return Ok(None);
            };
            let entry = audit::Entry {
                at: now,
                actor: audit::Actor::Admin(&principal.id),
                action: audit::Action::MerchantChanged,
                detail: json!({"merchant_id": merchant_id,
                               "before": crate::api::wire::to_json(&merchant_view(before)),
                               "after": crate::api::wire::to_json(&merchant_view(after.clone()))}),
                idempotency_key: key.as_deref(),
            };
            audit::record(connection, entry)?;
            Ok(Some(after))
        })
    })
    .await?;
    let after = changed.ok_or_else(|| ApiError::not_found("no such merchant"))?;
    Ok(HttpResponse::Ok().json(merchant_view(after)))
}

/// The policy in force.
#[utoipa::path(get, path = "/v1/admin/policy", operation_id = "get_policy", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The policy in force.", body = PolicyView),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn get_policy(state: State, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let (policy, _, _) =
        with_connection(&state, |connection, _| store::ledger_state::load_state(connection, false)).await?;
    Ok(HttpResponse::Ok().json(PolicyView::from(&policy)))
}

/// A whole new policy: every field is required.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    /// Cashback per won of eligible spend: a decimal string from `"0"` to `"1"`, at most 9
    /// fraction digits.
    #[schema(value_type = String, pattern = "^(0(\\.[0-9]{1,9})?|1(\\.0{1,9})?)$", example = "0.1")]
    cashback_rate: Value,
    /// Spend per citizen per KST month that earns cashback: whole won from `"0"` to `"1000000000000"`.
    #[schema(value_type = String, pattern = "^(0|[1-9][0-9]{0,11}|1000000000000)$", example = "300000")]
    cashback_monthly_spend_cap: Value,
    /// Total a citizen may charge per KST month: whole won from `"0"` to `"1000000000000"`.
    #[schema(value_type = String, pattern = "^(0|[1-9][0-9]{0,11}|1000000000000)$", example = "500000")]
    monthly_charge_limit: Value,
    /// Most a wallet may hold after a charge or a received gift: whole won from `"0"` to
    /// `"1000000000000"`.
    #[schema(value_type = String, pattern = "^(0|[1-9][0-9]{0,11}|1000000000000)$", example = "2000000")]
    holding_limit: Value,
    /// Share of a merchant's daily payments kept as a fee at settlement: a decimal string from
    /// `"0"` to `"1"`, at most 9 fraction digits.
    #[schema(value_type = String, pattern = "^(0(\\.[0-9]{1,9})?|1(\\.0{1,9})?)$", example = "0.005")]
    merchant_fee_rate: Value,
}

fn rate_field(name: &str, value: &Value) -> Result<Rate, ApiError> {
    let text =
        value.as_str().ok_or_else(|| ApiError::validation(format!("{name} must be a decimal string like \"0.1\"")))?;
    Rate::parse(text).map_err(|error| ApiError::validation(format!("{name}: {error}")))
}

fn limit_field(name: &str, value: &Value) -> Result<Won, ApiError> {
    let text = value.as_str().ok_or_else(|| ApiError::validation(format!("{name} must be a string of whole won")))?;
    let won = Won::parse_signed(text).map_err(|error| ApiError::validation(format!("{name}: {error}")))?;
    if won.is_negative() || won > Won::from_i64(wallet_core::Amount::MAX_WON) {
        return Err(ApiError::validation(format!("{name} must be from 0 to {} won", wallet_core::Amount::MAX_WON)));
    }
    Ok(won)
}

/// The body of `PUT /v1/admin/policy`: a whole policy (the ledger validates it further).
pub fn parse_policy(body: Value) -> Result<Policy, ApiError> {
    let body: PolicyBody = parse_body(body)?;
    Ok(Policy {
        cashback_rate: rate_field("cashback_rate", &body.cashback_rate)?,
        cashback_monthly_spend_cap: limit_field("cashback_monthly_spend_cap", &body.cashback_monthly_spend_cap)?,
        monthly_charge_limit: limit_field("monthly_charge_limit", &body.monthly_charge_limit)?,
        holding_limit: limit_field("holding_limit", &body.holding_limit)?,
        merchant_fee_rate: rate_field("merchant_fee_rate", &body.merchant_fee_rate)?,
    })
}

/// Replaces the policy; it applies from the next operation on.
#[utoipa::path(put, path = "/v1/admin/policy", operation_id = "set_policy", tag = "admin",
    security(("bearer" = [])),
    params(IdempotencyKeyOptional),
    request_body = PolicyBody,
    responses(
        (status = 200, description = "The policy now in force.", body = PolicyView),
        (status = 400, response = inline(InvalidJsonOrKey)),
        (status = 409, response = inline(IdempotencyConflict)),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`validation_failed`: an unknown or missing field, a rate that is not a decimal \
            string from 0 to 1, a limit that is not a string of whole won from 0 to 1000000000000, or a policy the \
            ledger refuses.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn put_policy(
    state: State,
    request: HttpRequest,
    body: web::Json<StrictJson>,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, Some(Role::Admin)).await?;
    let key = super::idempotency_if_sent(&request, &body)?;
    let policy = parse_policy(body.into_inner().0)?;
    let answer = state.writer.submit(principal.id, key, WriteOp::Ledger(Command::SetPolicy { policy })).await;
    Ok(super::respond(answer))
}

/// Money added to the city's cashback budget.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TopUpBody {
    /// Whole won as a JSON string, from `"1"` to `"1000000000000"`.
    #[schema(value_type = String, pattern = "^([1-9][0-9]{0,11}|1000000000000)$", example = "1000000")]
    amount: Value,
}

/// The body of `POST /v1/admin/cashback-budget/top-ups`: the amount.
pub fn parse_top_up(body: Value) -> Result<Amount, ApiError> {
    let parsed: TopUpBody = parse_body(body)?;
    parse_amount(&parsed.amount)
}

/// Tops up the city's cashback budget.
#[utoipa::path(post, path = "/v1/admin/cashback-budget/top-ups", operation_id = "top_up_cashback_budget", tag = "admin",
    security(("bearer" = [])),
    params(IdempotencyKey),
    request_body = TopUpBody,
    responses(
        (status = 201, description = "The budget after the top-up.", body = Budget),
        (status = 400, response = inline(InvalidJsonOrKey)),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 409, response = inline(IdempotencyConflict)),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`invalid_amount`: `amount` is not a string of whole won from 1 to \
            1000000000000, or the budget would overflow; `validation_failed`: an unknown or missing field.",
            body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn top_up(
    state: State,
    request: HttpRequest,
    body: web::Json<StrictJson>,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, Some(Role::Admin)).await?;
    let key = idempotency(&request, &body)?;
    let amount = parse_top_up(body.into_inner().0)?;
    let command = Command::TopUpBudget { id: new_tx_id(), amount };
    Ok(submit(&state, &principal.id, key, WriteOp::Ledger(command)).await)
}

/// The city's cashback budget.
#[utoipa::path(get, path = "/v1/admin/cashback-budget", operation_id = "get_cashback_budget", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The budget.", body = Budget),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn budget(state: State, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let (_, budget, _) =
        with_connection(&state, |connection, _| store::ledger_state::load_state(connection, false)).await?;
    Ok(HttpResponse::Ok().json(Budget::from(&budget)))
}

/// The business date to close.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    /// `YYYY-MM-DD` in KST; a date before today.
    #[schema(format = Date, example = "2025-03-14")]
    business_date: String,
}

/// The body of `POST /v1/admin/settlements`: the business date.
pub fn parse_close_day(body: Value) -> Result<BusinessDate, ApiError> {
    let body: CloseBody = parse_body(body)?;
    BusinessDate::parse(&body.business_date).map_err(|error| ApiError::validation(error.to_string()))
}

/// Closes a business date and settles every merchant with activity that day.
///
/// Closing is idempotent: a date already closed is answered 200 with the same settlement.
#[utoipa::path(post, path = "/v1/admin/settlements", operation_id = "close_business_day", tag = "admin",
    security(("bearer" = [])),
    params(IdempotencyKeyOptional),
    request_body = CloseBody,
    responses(
        (status = 201, description = "The date was closed now.", body = DayClosed),
        (status = 200, description = "The date was already closed; the settlement as closed then.", body = DayClosed),
        (status = 400, response = inline(InvalidJsonOrKey)),
        (status = 409, response = inline(IdempotencyConflict)),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: a merchant with activity that day no longer exists (not \
            expected).", body = ErrorBody),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`validation_failed`: an unknown or missing field, or `business_date` is not a \
            `YYYY-MM-DD` date; `date_not_closed`: the date is today or in the future.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn close_day(
    state: State,
    request: HttpRequest,
    body: web::Json<StrictJson>,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, Some(Role::Admin)).await?;
    let key = super::idempotency_if_sent(&request, &body)?;
    let date = parse_close_day(body.into_inner().0)?;
    let command = Command::CloseDay { id: new_tx_id(), date };
    let answer = state.writer.submit(principal.id, key, WriteOp::Ledger(command)).await;
    Ok(super::respond(answer))
}

/// The settlement of a closed business date, as JSON or as the settlement CSV file.
///
/// JSON by default; with `Accept: text/csv` the settlement file: UTF-8, comma-separated, RFC 4180
/// quoting, first line exactly
/// `business_date,merchant_id,merchant_name,business_number,bank_account,payments_count,payments_amount,refunds_count,refunds_amount,fee,net_payable`,
/// then one line per merchant with any activity that day.
#[utoipa::path(get, path = "/v1/admin/settlements/{business_date}", operation_id = "get_settlement", tag = "admin",
    security(("bearer" = [])),
    params(("business_date" = String, Path, format = Date, description = "`YYYY-MM-DD` in KST.")),
    responses(
        (status = 200, description = "The settlement: JSON, or the CSV file when `Accept` names `text/csv`.",
            content(
                (SettlementReport = "application/json"),
                (String = "text/csv")
            )
        ),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: the date has not been closed, or is not a `YYYY-MM-DD` date.",
            body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn settlement(
    state: State,
    request: HttpRequest,
    date: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let date = BusinessDate::parse(&date).map_err(|error| ApiError::not_found(error.to_string()))?.to_string();
    let date_text = date.clone();
    let totals =
        with_connection(&state, move |connection, _| store::settlements::settlement_totals(connection, &date_text))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("business date {date} has not been closed")))?;
    let wants_csv = request
        .headers()
        .get("Accept")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv"));
    let (format, content_type) = if wants_csv {
        (crate::export::Format::Csv, "text/csv; charset=utf-8")
    } else {
        (crate::export::Format::Json, "application/json")
    };
    let rows = crate::export::settlement(state.pool.clone(), date, totals, format);
    Ok(HttpResponse::Ok().content_type(content_type).streaming(rows))
}

/// Most days one listing of closed dates covers: a year and a day, so a year's closes (and no
/// more) fit one answer.
const SETTLEMENTS_LISTED_DAYS_MAX: i64 = 366;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct SettlementsQuery {
    /// The first business date, `YYYY-MM-DD` in KST.
    #[param(format = Date, example = "2025-03-01")]
    from: String,
    /// The last business date, `YYYY-MM-DD` in KST; at most 366 days after `from`.
    #[param(format = Date, example = "2025-03-31")]
    to: String,
}

/// The business dates closed from `from` through `to`, oldest first, with their totals (an
/// extension of API.md): what finance reconciles payouts against, and where a date missing from
/// the list shows a close that was forgotten.
#[utoipa::path(get, path = "/v1/admin/settlements", operation_id = "list_settlements", tag = "admin",
    security(("bearer" = [])),
    params(SettlementsQuery),
    responses(
        (status = 200, description = "The closed dates in the range.", body = SettlementsClosed),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 422, description = "`validation_failed`: `from` or `to` missing or not a `YYYY-MM-DD` date, `to` \
            before `from`, a range over 366 days, or an unknown query parameter.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn list_settlements(
    state: State,
    request: HttpRequest,
    query: web::Query<SettlementsQuery>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let from = BusinessDate::parse(&query.from).map_err(|error| ApiError::validation(format!("from: {error}")))?;
    let to = BusinessDate::parse(&query.to).map_err(|error| ApiError::validation(format!("to: {error}")))?;
    let days = (to.naive() - from.naive()).num_days();
    if !(0..SETTLEMENTS_LISTED_DAYS_MAX).contains(&days) {
        return Err(ApiError::validation(format!(
            "to must be from `from` up to {} days after it; ask for a longer span in parts",
            SETTLEMENTS_LISTED_DAYS_MAX - 1
        )));
    }
    let (from_text, to_text) = (from.to_string(), to.to_string());
    let closed = with_connection(&state, move |connection, _| {
        store::settlements::closed_dates(connection, &from_text, &to_text)
    })
    .await?;
    let mut items = Vec::with_capacity(closed.len());
    for date in closed {
        items.push(SettlementClosed {
            business_date: date.closed.business_date,
            merchants: u64::try_from(date.merchants).map_err(|_| ApiError::internal())?,
            total_net_payable: date.closed.total_net_payable.to_string(),
            total_fee: date.closed.total_fee.to_string(),
            closed_at: super::rfc3339(store::time::instant(date.closed.closed_at_ms)?),
        });
    }
    Ok(HttpResponse::Ok().json(SettlementsClosed { from: from.to_string(), to: to.to_string(), items }))
}

/// The ledger's trial balance; its total is always zero.
#[utoipa::path(get, path = "/v1/admin/ledger/trial-balance", operation_id = "get_trial_balance", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every account kind's balance and the total.", body = TrialBalance),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn trial_balance(state: State, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let (accounts, total) = with_connection(&state, |connection, _| {
        // One snapshot: the sums and the city row are read in one transaction.
        store::write_transaction(connection, |connection| {
            let balances = store::balances::account_balances(connection)?;
            let trial_balance = wallet_core::TrialBalance::sum(balances)
                .map_err(|_| store::StoreError::Corrupt("trial balance overflows".into()))?;
            Ok((balances, trial_balance.total()))
        })
    })
    .await?;
    let accounts = accounts
        .iter()
        .map(|(kind, balance)| AccountBalance { kind: kind.as_str().to_owned(), balance: balance.to_string() })
        .collect();
    Ok(HttpResponse::Ok().json(TrialBalance { accounts, total: total.to_string() }))
}

/// Citizen session admission: sessions in use, capacity and the waiting room.
#[utoipa::path(get, path = "/v1/admin/admission", operation_id = "get_admission", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Admission now.", body = Admission),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn admission(state: State, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let now_ms = store::time::millis(state.clock.now());
    // Read now, not the cached figure logins use: every server's sessions (idle ones until the
    // next sweep, within 5 s).
    let active = with_connection(&state, move |connection, _| store::sessions::citizen_slots_used(connection)).await?;
    let room = state.waiting_room.lock().map_err(|_| ApiError::internal())?;
    let waiting = room.waiting();
    Ok(HttpResponse::Ok().json(Admission {
        active_sessions: u64::try_from(active).map_err(|_| ApiError::internal())?,
        session_capacity: u64::try_from(state.config.sessions_capacity).map_err(|_| ApiError::internal())?,
        waiting: waiting as u64,
        admitted_total: room.admitted_total,
        shed_total: room.shed_total,
        tickets_total: room.tickets_total,
        dropped_total: room.dropped_total,
        admission_rate_per_s: room.admission_rate_per_s(now_ms).unwrap_or(0.0),
        estimated_wait_s: room.estimated_wait_s(waiting, now_ms),
        password_pool_saturated: state.passwords.is_saturated(),
        request_limiter: request_limiter(&state),
    }))
}

/// The adaptive request limiter's state, per priority class.
fn request_limiter(state: &super::AppState) -> RequestLimiter {
    use crate::admission::limiter::Class;
    let stats = state.gate.stats();
    let classes = Class::ALL
        .iter()
        .map(|class| {
            let index = *class as usize;
            let class_stats = LimiterClass {
                limit: stats.class_limit(*class) as u64,
                in_flight: stats.in_flight_by_class[index] as u64,
                waiting: stats.waiting_by_class[index] as u64,
                admitted_total: stats.admitted_by_class[index],
                shed_total: stats.shed_by_class[index],
            };
            (class.as_str().to_owned(), class_stats)
        })
        .collect();
    RequestLimiter {
        enabled: state.gate.is_enabled(),
        limit: stats.limit as u64,
        in_flight: stats.in_flight as u64,
        latency_recent_ms: stats.rtt_short_ms,
        latency_baseline_ms: stats.rtt_long_ms,
        classes,
    }
}

/// Where to move the test clock.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    /// RFC 3339; not before the server's clock.
    #[schema(format = DateTime, example = "2025-03-15T00:00:00Z")]
    now: String,
}

/// The body of `PUT /v1/admin/test-clock`: the instant to move to.
pub fn parse_test_clock(body: Value) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    let body: ClockBody = parse_body(body)?;
    let target = chrono::DateTime::parse_from_rfc3339(&body.now).map_err(|error| {
        ApiError::validation(format!(
            "now must be an RFC 3339 date and time with its offset, such as \"2030-01-10T09:00:00+09:00\" or \
             \"2030-01-10T00:00:00Z\" (a date alone is not enough): {error}"
        ))
    })?;
    Ok(target.with_timezone(&chrono::Utc))
}

/// Moves the server's test clock forward (only with `WALLET_TEST_CLOCK=1`).
///
/// Business dates, months, code expiry and session timeouts follow it. Without
/// `WALLET_TEST_CLOCK=1` at start the endpoint does not exist (404).
#[utoipa::path(put, path = "/v1/admin/test-clock", operation_id = "move_test_clock", tag = "admin",
    security(("bearer" = [])),
    request_body = ClockBody,
    responses(
        (status = 200, description = "The clock was moved.", body = ClockNow),
        (status = 400, response = inline(InvalidJson)),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: the server was not started with `WALLET_TEST_CLOCK=1`.",
            body = ErrorBody),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`validation_failed`: an unknown or missing field, `now` is not RFC 3339, or \
            `now` is before the server's clock.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn test_clock(
    state: State,
    request: HttpRequest,
    body: web::Json<StrictJson>,
) -> Result<HttpResponse, ApiError> {
    if !state.clock.is_test_clock() {
        return Err(ApiError::not_found("no such endpoint; see /openapi.json for the API"));
    }
    let principal = authenticate(&state, &request, Some(Role::Admin)).await?;
    let target = parse_test_clock(body.into_inner().0)?;
    let backward =
        |now| ApiError::validation(format!("the clock only moves forward; it is already {}", super::rfc3339(now)));
    // The audit row commits first and the clock moves after, so no move goes unrecorded. The
    // clock only moves forward (`fetch_max`): should it pass `target` in between, it stays there.
    let moved = with_connection(&state, move |connection, state| {
        let from = state.clock.now();
        if target < from {
            return Ok(Err(from));
        }
        store::write_transaction(connection, |connection| {
            // Kept with the audit row, so a restart finds the clock where it was moved to.
            let offset_us = (target - chrono::Utc::now()).num_microseconds().unwrap_or(i64::MAX);
            store::test_clock::keep_offset_us(connection, offset_us)?;
            let entry = audit::Entry {
                at: from,
                actor: audit::Actor::Admin(&principal.id),
                action: audit::Action::TestClockMoved,
                detail: json!({"from": super::rfc3339(from), "to": super::rfc3339(target)}),
                idempotency_key: None,
            };
            audit::record(connection, entry)
        })?;
        Ok(Ok(()))
    })
    .await?;
    moved.map_err(backward)?;
    let _ = state.clock.move_to(target);
    Ok(HttpResponse::Ok().json(ClockNow { now: super::rfc3339(state.clock.now()) }))
}
