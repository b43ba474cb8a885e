//! Merchants' POS terminals and portal: payments, refunds, the day's sales, the merchant's own
//! payments and settlement lines.

use super::strict_json::StrictJson;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use wallet_core::{Amount, BusinessDate, Command, MerchantId, PaymentCode, TxId};

use super::{
    authenticate, authenticate_with, idempotency, new_tx_id, parse_amount, parse_body, submit, with_connection, Role,
    State,
};
use crate::api::wire::{
    ErrorBody, Forbidden, IdempotencyConflict, IdempotencyKey, InternalError, InvalidJsonOrKey, MerchantPayment,
    MerchantPaymentPage, MerchantSettlementLine, MerchantSettlements, Overloaded, PayloadTooLarge, PaymentReceipt,
    RefundReceipt, RequestTimeout, SalesSummary, Unauthorized,
};
use crate::api::{ApiError, ErrorCode};
use crate::store;
use crate::writer::WriteOp;

fn merchant_id(id: &str) -> Result<MerchantId, ApiError> {
    MerchantId::parse(id).map_err(|_| ApiError::internal())
}

/// A payment with a citizen's payment code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PaymentBody {
    /// The code the citizen's app shows (single use, valid 180 seconds).
    payment_code: String,
    /// Whole won as a JSON string, from `"1"` to `"1000000000000"`.
    #[schema(value_type = String, pattern = "^([1-9][0-9]{0,11}|1000000000000)$", example = "15000")]
    amount: Value,
}

/// The body of `POST /v1/payments`: the payment code and the amount. A code that cannot be one is
/// refused as an unknown one is.
pub fn parse_payment(body: Value) -> Result<(PaymentCode, Amount), ApiError> {
    let parsed: PaymentBody = parse_body(body)?;
    let amount = parse_amount(&parsed.amount)?;
    let code = PaymentCode::parse(&parsed.payment_code).map_err(|_| {
        ApiError::new(
            422,
            ErrorCode::PaymentCodeInvalid,
            "the payment code is unknown; ask the customer to show a fresh code",
        )
    })?;
    Ok((code, amount))
}

/// Takes a payment from the wallet of a payment code.
///
/// Debits the wallet by `amount` and credits the merchant. Cashback is credited to the wallet at
/// once: `floor(eligible * cashback_rate)`, `eligible` being `amount` limited to what is left of the
/// citizen's monthly cashback spend cap, and the cashback limited to what is left in the city's
/// cashback budget (an empty budget gives 0 cashback; the payment is still approved).
#[utoipa::path(post, path = "/v1/payments", operation_id = "take_payment", tag = "merchant",
    security(("bearer" = [])),
    params(IdempotencyKey),
    request_body = PaymentBody,
    responses(
        (status = 201, description = "The payment was approved.", body = PaymentReceipt),
        (status = 400, response = inline(InvalidJsonOrKey)),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: the code's wallet or the merchant no longer exists (not \
            expected).", body = ErrorBody),
        (status = 409, response = inline(IdempotencyConflict)),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`invalid_amount`: `amount` is not a string of whole won from 1 to \
            1000000000000; `validation_failed`: an unknown or missing field; `payment_code_invalid`: the code is \
            unknown, expired or used; `insufficient_funds`: the wallet's balance is below `amount`; \
            `merchant_suspended`: the city suspended this merchant; `wallet_locked`: the city locked the code's \
            wallet (also for a code shown before the lock).",
            body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn pay(
    state: State,
    request: HttpRequest,
    body: web::Json<StrictJson>,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, Some(Role::Merchant)).await?;
    let key = idempotency(&request, &body)?;
    let (code, amount) = parse_payment(body.into_inner().0)?;
    let command =
        Command::Pay { id: new_tx_id(), cashback_id: new_tx_id(), merchant: merchant_id(&principal.id)?, code, amount };
    Ok(submit(&state, &principal.id, key, WriteOp::Ledger(command)).await)
}

/// A refund of part or all of a payment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefundBody {
    /// Whole won as a JSON string, from `"1"` to `"1000000000000"`; at most what is left to refund.
    #[schema(value_type = String, pattern = "^([1-9][0-9]{0,11}|1000000000000)$", example = "5000")]
    amount: Value,
}

/// The path's payment id and the body of `POST /v1/payments/{payment_id}/refunds`. A payment id
/// that cannot be one is 404, as an unknown one is.
pub fn parse_refund(payment_id: &str, body: Value) -> Result<(TxId, Amount), ApiError> {
    let parsed: RefundBody = parse_body(body)?;
    let amount = parse_amount(&parsed.amount)?;
    let payment = TxId::parse(payment_id).map_err(|_| ApiError::not_found("no such payment of this merchant"))?;
    Ok((payment, amount))
}

/// Refunds part or all of one of the merchant's payments.
///
/// A refund of `R` of a payment `P` that earned cashback `C` reverses `floor(C * R / P)`, and the
/// refund that completes the full refund reverses all cashback not yet reversed. The wallet
/// receives `R` minus the reversed cashback. The sum of refunds never passes `P`.
#[utoipa::path(post, path = "/v1/payments/{payment_id}/refunds", operation_id = "refund_payment", tag = "merchant",
    security(("bearer" = [])),
    params(
        ("payment_id" = String, Path, min_length = 1, max_length = 64, description = "The `payment_id` of the payment: this server's or, for a payment carried over, the previous operator's id (1 to 64 characters)."),
        IdempotencyKey
    ),
    request_body = RefundBody,
    responses(
        (status = 201, description = "The refund was made.", body = RefundReceipt),
        (status = 400, response = inline(InvalidJsonOrKey)),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: no payment of this merchant has this id (also for another \
            merchant's payment).", body = ErrorBody),
        (status = 409, response = inline(IdempotencyConflict)),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`invalid_amount`: `amount` is not a string of whole won from 1 to \
            1000000000000; `validation_failed`: an unknown or missing field; `refund_exceeds_payment`: `amount` is \
            more than is left to refund; `insufficient_funds`: the wallet cannot cover the cashback the refund \
            reverses (a rare corner of the rounding rule).", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn refund(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<StrictJson>,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, Some(Role::Merchant)).await?;
    let key = idempotency(&request, &body)?;
    let (payment, amount) = parse_refund(&path, body.into_inner().0)?;
    let command = Command::Refund {
        id: new_tx_id(),
        reversal_id: new_tx_id(),
        merchant: merchant_id(&principal.id)?,
        payment,
        amount,
    };
    Ok(submit(&state, &principal.id, key, WriteOp::Ledger(command)).await)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct SalesQuery {
    /// The business date, `YYYY-MM-DD` in KST; today when left out.
    #[param(format = Date, nullable = false, example = "2025-03-14")]
    date: Option<String>,
}

/// The merchant's sales of one business date.
#[utoipa::path(get, path = "/v1/merchant/sales", operation_id = "get_merchant_sales", tag = "merchant",
    security(("bearer" = [])),
    params(SalesQuery),
    responses(
        (status = 200, description = "The day's sales.", body = SalesSummary),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 422, description = "`validation_failed`: `date` is not a `YYYY-MM-DD` date, or an unknown query \
            parameter.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn sales(
    state: State,
    request: HttpRequest,
    query: web::Query<SalesQuery>,
) -> Result<HttpResponse, ApiError> {
    let date = match &query.date {
        Some(text) => match BusinessDate::parse(text) {
            Ok(date) => date,
            Err(error) => {
                // A caller without a session learns that first, as on every endpoint.
                authenticate(&state, &request, Some(Role::Merchant)).await?;
                return Err(ApiError::validation(error.to_string()));
            }
        },
        None => BusinessDate::of(state.clock.now()),
    };
    let date_text = date.to_string();
    // One trip: the session and the day's row.
    let (_, row) = authenticate_with(&state, &request, Some(Role::Merchant), move |connection, _, principal| {
        store::daily_sales::merchant_sales(connection, &principal.id, &date_text)
    })
    .await?;
    let sales = row.unwrap_or_default();
    Ok(HttpResponse::Ok().json(SalesSummary {
        business_date: date.to_string(),
        payments_count: u64::try_from(sales.payments_count).map_err(|_| ApiError::internal())?,
        payments_amount: sales.payments_amount.to_string(),
        refunds_count: u64::try_from(sales.refunds_count).map_err(|_| ApiError::internal())?,
        refunds_amount: sales.refunds_amount.to_string(),
        net: (sales.payments_amount - sales.refunds_amount).to_string(),
    }))
}

/// Most days one settlement listing covers: a year and a day (as the city's listing).
const SETTLEMENT_DAYS_MAX: i64 = 366;
/// The header line of the merchant's settlement CSV: the JSON items' fields, in their order.
const SETTLEMENT_CSV_HEADER: &str = "business_date,payments_amount,refunds_amount,fee,carried_in,net_payable";

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct SettlementsQuery {
    /// The first business date, `YYYY-MM-DD` in KST.
    #[param(format = Date, example = "2025-03-01")]
    from: String,
    /// The last business date, `YYYY-MM-DD` in KST; at most 366 days from `from`, both counted.
    #[param(format = Date, example = "2025-03-31")]
    to: String,
}

/// The `from` and `to` of a settlement listing: dates, in order, at most [`SETTLEMENT_DAYS_MAX`]
/// days both counted.
fn parse_range(query: &SettlementsQuery) -> Result<(BusinessDate, BusinessDate), ApiError> {
    let from = BusinessDate::parse(&query.from).map_err(|error| ApiError::validation(format!("from: {error}")))?;
    let to = BusinessDate::parse(&query.to).map_err(|error| ApiError::validation(format!("to: {error}")))?;
    let days = (to.naive() - from.naive()).num_days() + 1;
    if !(1..=SETTLEMENT_DAYS_MAX).contains(&days) {
        return Err(ApiError::validation(format!(
            "to must be from `from` to {} days after it ({SETTLEMENT_DAYS_MAX} days at most); ask for a longer span in \
             parts",
            SETTLEMENT_DAYS_MAX - 1
        )));
    }
    Ok((from, to))
}

/// Whether the request's `Accept` asks for CSV (as the city's settlement file decides).
fn wants_csv(request: &HttpRequest) -> bool {
    request
        .headers()
        .get("Accept")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv"))
}

/// The merchant's own settlement: its line of each date closed from `from` through `to` (a date
/// without activity or carry has none), oldest first, with fee, carried-in and net payable.
///
/// With `Accept: text/csv`, the same rows as CSV under the header line
/// `business_date,payments_amount,refunds_amount,fee,carried_in,net_payable`.
#[utoipa::path(get, path = "/v1/merchant/settlements", operation_id = "list_merchant_settlements", tag = "merchant",
    security(("bearer" = [])),
    params(SettlementsQuery),
    responses(
        (status = 200, description = "The merchant's settlement lines: JSON, or CSV when `Accept` names \
            `text/csv`.",
            content(
                (MerchantSettlements = "application/json"),
                (String = "text/csv")
            )
        ),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 422, description = "`validation_failed`: `from` or `to` missing or not a `YYYY-MM-DD` date, `to` \
            before `from`, a range over 366 days, or an unknown query parameter.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn settlements(
    state: State,
    request: HttpRequest,
    query: web::Query<SettlementsQuery>,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, Some(Role::Merchant)).await?;
    let (from, to) = parse_range(&query)?;
    let (from_text, to_text) = (from.to_string(), to.to_string());
    let rows = with_connection(&state, move |connection, _| {
        store::settlements::merchant_lines(connection, &principal.id, &from_text, &to_text)
    })
    .await?;
    let items: Vec<MerchantSettlementLine> = rows
        .into_iter()
        .map(|row| MerchantSettlementLine {
            business_date: row.business_date,
            payments_amount: row.payments_amount.to_string(),
            refunds_amount: row.refunds_amount.to_string(),
            fee: row.fee.to_string(),
            carried_in: row.carried_in.to_string(),
            net_payable: row.net_payable.to_string(),
        })
        .collect();
    if !wants_csv(&request) {
        return Ok(HttpResponse::Ok().json(MerchantSettlements { items }));
    }
    // Every field is a date or a whole number: nothing to quote.
    let mut csv = String::with_capacity(64 * (items.len() + 1));
    csv.push_str(SETTLEMENT_CSV_HEADER);
    csv.push('\n');
    for item in &items {
        let fields = [
            &item.business_date,
            &item.payments_amount,
            &item.refunds_amount,
            &item.fee,
            &item.carried_in,
            &item.net_payable,
        ];
        csv.push_str(&fields.map(String::as_str).join(","));
        csv.push('\n');
    }
    Ok(HttpResponse::Ok().content_type("text/csv; charset=utf-8").body(csv))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct PaymentsQuery {
    /// The business date, `YYYY-MM-DD` in KST; today when left out.
    #[param(format = Date, nullable = false, example = "2025-03-14")]
    date: Option<String>,
    /// Rows per page, 1 to 200; 50 when left out.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200, default = 50, nullable = false)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page; left out for the newest payments.
    #[param(nullable = false)]
    cursor: Option<String>,
}

/// A payments cursor: `{at_ms}:{payment_id}` of the previous page's last row.
fn parse_payments_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    let invalid = || ApiError::validation("cursor is not one this server gave; start again without it");
    let (at_ms, payment_id) = cursor.split_once(':').ok_or_else(invalid)?;
    let at_ms = at_ms.parse::<i64>().map_err(|_| invalid())?;
    TxId::parse(payment_id).map_err(|_| invalid())?;
    Ok((at_ms, payment_id.to_owned()))
}

/// The merchant's own payments of one business date, newest first, a page at a time: what the
/// portal's refund screen picks from.
#[utoipa::path(get, path = "/v1/merchant/payments", operation_id = "list_merchant_payments", tag = "merchant",
    security(("bearer" = [])),
    params(PaymentsQuery),
    responses(
        (status = 200, description = "A page of the day's payments.", body = MerchantPaymentPage),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 422, description = "`validation_failed`: `date` is not a `YYYY-MM-DD` date, `limit` is not a whole \
            number from 1 to 200, `cursor` is not one this server gave, or an unknown query parameter.",
            body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn payments(
    state: State,
    request: HttpRequest,
    query: web::Query<PaymentsQuery>,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, Some(Role::Merchant)).await?;
    let date = match &query.date {
        Some(text) => BusinessDate::parse(text).map_err(|error| ApiError::validation(format!("date: {error}")))?,
        None => BusinessDate::of(state.clock.now()),
    };
    let limit = super::accounts::parse_limit(query.limit.as_deref())?;
    let before = query.cursor.as_deref().map(parse_payments_cursor).transpose()?;
    let (start, end) = date.start().zip(date.end()).ok_or_else(|| ApiError::validation("date: out of range"))?;
    let span = (store::time::millis(start), store::time::millis(end));
    let mut rows = with_connection(&state, move |connection, _| {
        let before = before.as_ref().map(|(at_ms, id)| (*at_ms, id.as_str()));
        store::payments::merchant_payments(connection, &principal.id, span, before, limit + 1)
    })
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|row| format!("{}:{}", row.at_ms, row.payment_id)) } else { None };
    let items = rows
        .into_iter()
        .map(|row| {
            Ok(MerchantPayment {
                payment_id: row.payment_id,
                amount: row.amount.to_string(),
                refunded: row.refunded.to_string(),
                cashback: row.cashback.to_string(),
                at: super::rfc3339(store::time::instant(row.at_ms)?),
            })
        })
        .collect::<Result<Vec<_>, store::StoreError>>()?;
    Ok(HttpResponse::Ok().json(MerchantPaymentPage { items, next_cursor }))
}
