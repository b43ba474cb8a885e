//! Merchants' POS terminals: payments, refunds, the day's sales.

use super::strict_json::StrictJson;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use wallet_core::{Amount, BusinessDate, Command, MerchantId, PaymentCode, TxId};

use super::{authenticate, authenticate_with, idempotency, new_tx_id, parse_amount, parse_body, submit, Role, State};
use crate::api::wire::{
    ErrorBody, Forbidden, IdempotencyConflict, IdempotencyKey, InternalError, InvalidJsonOrKey, Overloaded,
    PayloadTooLarge, PaymentReceipt, RefundReceipt, RequestTimeout, SalesSummary, Unauthorized,
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
            unknown, expired or used; `insufficient_funds`: the wallet's balance is below `amount`.",
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
