//! The OpenAPI 3 document of the REST API (`docs/API.md`), served at `GET /openapi.json`.
//!
//! The document is generated with utoipa from the `#[utoipa::path(...)]` attribute on each handler
//! (method, path, parameters, request body, every answer), the request types the handlers parse
//! (which derive `ToSchema`/`IntoParams`), and the wire types of `api::wire`. The document is
//! built once per process and served as is.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::wire::*;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Regional-currency wallet API",
        version = "1",
        description = "The REST contract of `docs/API.md` for merchant POS vendors, the citizen app and the \
            city's back office. JSON in and out, UTF-8; unknown request fields are rejected with 422, and a key \
            given twice in one object (at any depth) with 400 `invalid_request`. Ids are strings of 1 to 64 \
            characters: this server mints UUIDs, but accounts carried over from a previous operator keep its ids \
            (`W-42`). Money is a \
            JSON string of whole won (`\"15000\"`); output amounts that can be negative carry a leading `-`. \
            Times are RFC 3339 in UTC; a business date is `YYYY-MM-DD` and a month `YYYY-MM`, both in Korea \
            Standard Time. Every error is `{\"error\":{\"code\",\"message\"}}`. Any endpoint but `/healthz` may \
            answer 503 `overloaded` with `Retry-After` when the server sheds load; it then changed nothing. \
            Request bodies over 64 KiB get 413 `payload_too_large`. Money-moving POSTs require an \
            `Idempotency-Key`: the same principal, key and body get the original answer again; the same key \
            with another body gets 409 `idempotency_conflict`. Data of another citizen or merchant is never \
            visible: it is answered 404 `not_found`, not 403. \
            Extensions of `docs/API.md`: `POST /v1/sessions` may answer 429 `too_many_attempts` with \
            `Retry-After` after repeated failed logins for the login or from the client's address (refused before \
            any password check); a request whose body does not arrive within the server's body timeout (10 s by \
            default) gets 408 `request_timeout`; an `Idempotency-Key`'s answer is kept for a retention period \
            (24 hours by default), after which the key is treated as new. Every response carries \
            `Cache-Control: no-store`, `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, \
            `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'` and `Referrer-Policy: no-referrer`, \
            and `X-Request-Id`: the client's own if it sent a valid one (1 to 128 characters of \
            `A-Z a-z 0-9 . _ : -`), else one the server made; the server's log line for the request has the same id, \
            so quote it when reporting a problem.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        super::healthz,
        super::metrics::scrape,
        openapi_json,
        super::session::register,
        super::session::login,
        super::session::poll,
        super::session::logout,
        super::citizen::wallet,
        super::citizen::charge,
        super::citizen::gift,
        super::citizen::payment_code,
        super::citizen::transactions,
        super::merchant::pay,
        super::merchant::refund,
        super::merchant::sales,
        super::merchant::settlements,
        super::merchant::payments,
        super::admin::create_merchant,
        super::admin::patch_merchant,
        super::accounts::list_merchants,
        super::accounts::get_merchant,
        super::accounts::suspend_merchant,
        super::accounts::reinstate_merchant,
        super::accounts::list_citizens,
        super::accounts::get_citizen,
        super::accounts::lock_citizen,
        super::accounts::unlock_citizen,
        super::accounts::create_admin,
        super::admin::get_policy,
        super::admin::put_policy,
        super::admin::top_up,
        super::admin::budget,
        super::admin::close_day,
        super::admin::list_settlements,
        super::admin::settlement,
        super::admin::trial_balance,
        super::admin::admission,
        super::admin::test_clock,
        super::password::issue,
        super::password::set_password,
        super::password::change_own_password,
        super::status::status,
        super::audit::audit_log,
        super::programs::create_program,
        super::programs::list_programs,
        super::programs::get_program,
        super::programs::top_up_program,
        super::programs::grant,
    ),
    components(
        schemas(
            ErrorBody, ErrorDetail, crate::api::ErrorCode, WaitingRoomError, WaitingRoomTicket, SessionUnavailable, Health,
            CitizenCreated, SessionCreated, Role, TicketStatus, WalletView, Currency, ChargeReceipt, GiftReceipt,
            PaymentCodeIssued, HistoryPage, HistoryItem, PaymentReceipt, PaymentStatus, RefundReceipt,
            SalesSummary, MerchantCreated, Policy, Budget, DayClosed, SettlementsClosed, SettlementClosed, SettlementReport, SettlementLine,
            TrialBalance, AccountBalance, Admission, RequestLimiter, LimiterClass, ClockNow, PasswordResetIssued, Status, StatusKind,
            StatusReason, StatusReasonCode, TestClockStatus, Database, BooksStatus, TodayStatus, SessionsStatus, WriterStatus,
            LastSettlement, HandoverStatus, LastImport, LastExport, BundleKind, AuditPage, AuditRow, AuditVia,
            AuditAction, Purses, AllowancePurse, PaidFrom, ProgramKind, ProgramBudget, Program, ProgramList,
            ProgramToppedUp, Granted, GrantRowCode, GrantRowProblem, GrantsRefused, Merchant, WalletChargeBonus,
            AllowanceBudget, ChargeBonusBudget, CohortBudget, MerchantStatus, MerchantListed, MerchantPage,
            CitizenStatus, CitizenListed, CitizenPage, AdminCreated, MerchantSettlementLine, MerchantSettlements,
            MerchantPayment, MerchantPaymentPage,
        ),
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "operations", description = "Health, metrics and this document; no authentication."),
        (name = "sessions", description = "Registration, login, logout and the citizen waiting room."),
        (name = "citizen", description = "The citizen app: wallet, charges, gifts, payment codes, history."),
        (name = "merchant", description = "Merchants' POS terminals: payments, refunds, the day's sales."),
        (name = "admin", description = "The city's back office: merchants, policy, cashback budget, \
            settlement, oversight, test clock."),
        (name = "programs", description = "The city's allowance programs: budgets and grants into wallets' \
            allowance purses."),
    )
)]
pub struct ApiDoc;

/// The security scheme every authenticated endpoint names: the token of `POST /v1/sessions`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <token>` with the token of `POST /v1/sessions`. Three roles: \
                         citizen, merchant, admin; another role's token gets 403 `forbidden`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as JSON text, built once.
static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_json().expect("the OpenAPI document serialises to JSON"));

/// Builds the served document now, at start, rather than on the first request for it.
pub fn build_document() {
    LazyLock::force(&DOCUMENT);
}

/// The OpenAPI 3 document of this API.
#[utoipa::path(get, path = "/openapi.json", operation_id = "get_openapi_document", tag = "operations",
    responses(
        (status = 200, description = "This document.", body = Object, content_type = "application/json"),
        (status = 503, response = inline(Overloaded))
    )
)]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(DOCUMENT.as_str())
}
