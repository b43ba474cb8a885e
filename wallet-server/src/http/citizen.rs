//! The citizen app: wallet, charges, gifts, payment codes, history.

use super::strict_json::StrictJson;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use wallet_core::{Amount, Command, PaymentCode, WalletId};

use super::{
    authenticate_point_read, authenticate_with, idempotency, new_tx_id, parse_amount, parse_body, rfc3339, submit,
    Role, State,
};
use crate::api::wire::{
    ChargeReceipt, ErrorBody, Forbidden, GiftReceipt, HistoryItem, HistoryPage, IdempotencyConflict, IdempotencyKey,
    InternalError, InvalidJsonOrKey, Overloaded, PayloadTooLarge, PaymentCodeIssued, RequestTimeout, Unauthorized,
    WalletView,
};
use crate::api::ApiError;
use crate::store;
use crate::writer::WriteOp;

/// History page size: default and most (API.md).
const HISTORY_PAGE_DEFAULT: i64 = 50;
const HISTORY_PAGE_MAX: i64 = 200;

fn wallet_id(stored: Option<String>) -> Result<WalletId, ApiError> {
    let wallet = stored.ok_or_else(|| ApiError::not_found("this citizen has no wallet"))?;
    WalletId::parse(&wallet).map_err(|_| ApiError::internal())
}

/// The caller's wallet id: authenticates as a citizen.
async fn citizen_wallet(state: &State, request: &HttpRequest) -> Result<(String, WalletId), ApiError> {
    let (principal, wallet) =
        authenticate_point_read(state, request, Some(Role::Citizen), |connection, _, principal| {
            store::wallets::wallet_of(connection, &principal.id)
        })
        .await?;
    Ok((principal.id, wallet_id(wallet)?))
}

/// The caller's wallet: balance and this month's counters.
#[utoipa::path(get, path = "/v1/wallet", operation_id = "get_wallet", tag = "citizen",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The wallet.", body = WalletView),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: the citizen has no wallet (not expected).", body = ErrorBody),
        (status = 422, description = "`wallet_locked`: the city locked the wallet.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn wallet(state: State, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    // One statement: the citizen's wallet joined with the city row, read on this worker when the
    // session is cached (else in one trip to the blocking pool with the session check).
    // The allowance purses are a second statement: a wallet the city never granted reads none.
    let (_, (wallet, view, names, bonus)) =
        authenticate_point_read(&state, &request, Some(Role::Citizen), |connection, state, principal| {
            let Some((wallet, wallet_state, policy)) = store::wallets::citizen_wallet_view(connection, &principal.id)?
            else {
                return Ok((None, None, Vec::new(), None));
            };
            let now = state.clock.now();
            let grants = store::allowances::of_wallet_with_names(connection, &wallet)?;
            let view = wallet_state.view(now, &policy, grants.iter().map(|(id, grant, _)| (id, grant)));
            let names = grants.into_iter().map(|(_, grant, name)| (grant.program, name)).collect::<Vec<_>>();
            let quota_used = wallet_state.counters_in(wallet_core::Month::of(now)).bonus_quota_used;
            let bonus = match (store::charge_bonuses::shown_at(connection, now)?, WalletId::parse(&wallet)) {
                (Some(program), Ok(id)) => Some((program.id, program.state.rules.view_for(&id, quota_used))),
                _ => None,
            };
            Ok((Some(wallet), Some(view), names, bonus))
        })
        .await?;
    let wallet_id = wallet_id(wallet)?;
    let view = view.ok_or_else(|| ApiError::not_found("no such wallet"))?.map_err(|_| ApiError::internal())?;
    let program_name = |program: &wallet_core::ProgramId| {
        names.iter().find(|(id, _)| id == program).map(|(_, name)| name.clone()).unwrap_or_default()
    };
    let mut shown = WalletView::new(wallet_id.to_string(), &view, program_name);
    if let Some((program, bonus)) = bonus {
        shown = shown.with_charge_bonus(&program, &bonus.map_err(|_| ApiError::internal())?);
    }
    Ok(HttpResponse::Ok().json(shown))
}

/// A charge from the citizen's linked bank account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ChargeBody {
    /// Whole won as a JSON string, from `"1"` to `"1000000000000"`.
    #[schema(value_type = String, pattern = "^([1-9][0-9]{0,11}|1000000000000)$", example = "15000")]
    amount: Value,
}

/// The body of `POST /v1/wallet/charges`: the amount.
pub fn parse_charge(body: Value) -> Result<Amount, ApiError> {
    let parsed: ChargeBody = parse_body(body)?;
    parse_amount(&parsed.amount)
}

/// Charges the wallet from the citizen's linked bank account.
///
/// Refused with `limit_exceeded` when the month's charges would pass `monthly_charge_limit` or the
/// balance would pass `holding_limit`.
#[utoipa::path(post, path = "/v1/wallet/charges", operation_id = "charge_wallet", tag = "citizen",
    security(("bearer" = [])),
    params(IdempotencyKey),
    request_body = ChargeBody,
    responses(
        (status = 201, description = "The wallet was charged.", body = ChargeReceipt),
        (status = 400, response = inline(InvalidJsonOrKey)),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: the citizen has no wallet (not expected).", body = ErrorBody),
        (status = 409, response = inline(IdempotencyConflict)),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`invalid_amount`: `amount` is not a string of whole won from 1 to \
            1000000000000; `validation_failed`: an unknown or missing field; `limit_exceeded`: the monthly charge \
            limit or the holding limit would be passed; `wallet_locked`: the city locked the wallet.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn charge(
    state: State,
    request: HttpRequest,
    body: web::Json<StrictJson>,
) -> Result<HttpResponse, ApiError> {
    let (principal, wallet) = citizen_wallet(&state, &request).await?;
    let key = idempotency(&request, &body)?;
    let amount = parse_charge(body.into_inner().0)?;
    let command = Command::Charge { id: new_tx_id(), bonus_id: new_tx_id(), wallet, amount };
    Ok(submit(&state, &principal, key, WriteOp::Ledger(command)).await)
}

/// A gift to another wallet.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct GiftBody {
    /// The receiving wallet; not the sender's own.
    #[schema(min_length = 1, max_length = 64)]
    to_wallet_id: String,
    /// Whole won as a JSON string, from `"1"` to `"1000000000000"`.
    #[schema(value_type = String, pattern = "^([1-9][0-9]{0,11}|1000000000000)$", example = "5000")]
    amount: Value,
}

/// The body of `POST /v1/wallet/gifts`: the receiving wallet and the amount. A receiver that
/// cannot be a wallet id is 404, as an unknown one is.
pub fn parse_gift(body: Value) -> Result<(WalletId, Amount), ApiError> {
    let parsed: GiftBody = parse_body(body)?;
    let amount = parse_amount(&parsed.amount)?;
    let to = WalletId::parse(&parsed.to_wallet_id).map_err(|_| ApiError::not_found("no such wallet"))?;
    Ok((to, amount))
}

/// Gives money from the caller's wallet to another wallet; the receiver's holding limit applies.
#[utoipa::path(post, path = "/v1/wallet/gifts", operation_id = "send_gift", tag = "citizen",
    security(("bearer" = [])),
    params(IdempotencyKey),
    request_body = GiftBody,
    responses(
        (status = 201, description = "The gift was made.", body = GiftReceipt),
        (status = 400, response = inline(InvalidJsonOrKey)),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: no wallet has `to_wallet_id` (or the caller has none).",
            body = ErrorBody),
        (status = 409, response = inline(IdempotencyConflict)),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`invalid_amount`: `amount` is not a string of whole won from 1 to \
            1000000000000; `validation_failed`: an unknown or missing field, or a gift to the sender's own wallet; \
            `insufficient_funds`: the balance is below `amount`; `limit_exceeded`: the receiver's holding limit \
            would be passed; `wallet_locked`: the city locked the sender's wallet (a gift to a locked one \
            arrives).", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn gift(
    state: State,
    request: HttpRequest,
    body: web::Json<StrictJson>,
) -> Result<HttpResponse, ApiError> {
    let (principal, wallet) = citizen_wallet(&state, &request).await?;
    let key = idempotency(&request, &body)?;
    let (to, amount) = parse_gift(body.into_inner().0)?;
    let command = Command::Gift { id: new_tx_id(), gift_in_id: new_tx_id(), from: wallet, to, amount };
    Ok(submit(&state, &principal, key, WriteOp::Ledger(command)).await)
}

/// Issues a single-use payment code, valid 180 seconds, to show the merchant as a QR or barcode.
///
/// A wallet may hold many unexpired codes at once, each independent.
#[utoipa::path(post, path = "/v1/wallet/payment-codes", operation_id = "create_payment_code", tag = "citizen",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "A new payment code.", body = PaymentCodeIssued),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: the citizen has no wallet (not expected).", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn payment_code(state: State, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (principal, wallet) = citizen_wallet(&state, &request).await?;
    let code = PaymentCode::parse(&crate::auth::new_payment_code()).expect("hex is a valid code");
    let answer = state.writer.submit(principal, None, WriteOp::Ledger(Command::IssueCode { code, wallet })).await;
    Ok(super::respond(answer))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct HistoryQuery {
    /// Items per page, 1 to 200; 50 when left out.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200, default = 50, nullable = false)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page; left out for the newest items.
    #[param(nullable = false)]
    cursor: Option<String>,
}

/// The wallet's history, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/wallet/transactions", operation_id = "list_wallet_transactions", tag = "citizen",
    security(("bearer" = [])),
    params(HistoryQuery),
    responses(
        (status = 200, description = "A page of history items.", body = HistoryPage),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: the citizen has no wallet (not expected).", body = ErrorBody),
        (status = 422, description = "`validation_failed`: `limit` is not a whole number from 1 to 200, `cursor` is \
            not one this server gave, or an unknown query parameter.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn transactions(
    state: State,
    request: HttpRequest,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = match &query.limit {
        None => Ok(HISTORY_PAGE_DEFAULT),
        Some(text) => canonical_number(text)
            .filter(|limit| (1..=HISTORY_PAGE_MAX).contains(limit))
            .ok_or_else(|| ApiError::validation(format!("limit must be a whole number from 1 to {HISTORY_PAGE_MAX}"))),
    };
    let before = match &query.cursor {
        None => Ok(None),
        Some(text) => canonical_number(text)
            .filter(|cursor| *cursor > 0)
            .map(Some)
            .ok_or_else(|| ApiError::validation("cursor is not one this server gave; start again without it")),
    };
    let (limit, before) = match (limit, before) {
        (Ok(limit), Ok(before)) => (limit, before),
        (Err(error), _) | (_, Err(error)) => {
            // A caller without a session learns that first, as on every endpoint.
            citizen_wallet(&state, &request).await?;
            return Err(error);
        }
    };
    // One trip: the session, the citizen's wallet id and the page.
    let (_, (wallet, rows)) =
        authenticate_with(&state, &request, Some(Role::Citizen), move |connection, _, principal| {
            let Some(wallet) = store::wallets::wallet_of(connection, &principal.id)? else {
                return Ok((None, Vec::new()));
            };
            let rows = store::history::history_page(connection, &wallet, before, limit + 1)?;
            Ok((Some(wallet), rows))
        })
        .await?;
    wallet_id(wallet)?;
    let more = rows.len() as i64 > limit;
    let page = &rows[..rows.len().min(limit as usize)];
    let items = page
        .iter()
        .map(|row| HistoryItem {
            id: row.item_id.clone(),
            kind: row.kind.clone(),
            amount: row.amount.to_string(),
            balance_after: row.balance_after.to_string(),
            at: store::time::instant(row.at_ms).map(rfc3339).unwrap_or_default(),
            counterparty: row.counterparty.clone(),
        })
        .collect();
    let next_cursor = if more { page.last().map(|row| row.seq.to_string()) } else { None };
    Ok(HttpResponse::Ok().json(HistoryPage { items, next_cursor }))
}

/// A whole number written as this server writes one: digits only, no sign, no leading zero
/// (`+5`, `05` and ` 5` are not the cursor `5` it gave, and would be taken as it by `parse`).
fn canonical_number(text: &str) -> Option<i64> {
    let canonical = !text.is_empty()
        && text.len() <= 19
        && text.bytes().all(|byte| byte.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}
