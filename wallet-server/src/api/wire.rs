//! The wire types of the API: the bodies it answers with, its error bodies, and the parameters
//! every money request shares, each deriving `ToSchema` so that `/openapi.json` describes them.

use serde::Serialize;
use utoipa::{IntoParams, ToResponse, ToSchema};

/// The JSON of a wire type: what every answer's body is built from.
pub fn to_json<T: Serialize>(body: &T) -> serde_json::Value {
    serde_json::to_value(body).expect("a wire type is plain data and serialises")
}

impl From<&wallet_core::BudgetState> for Budget {
    fn from(budget: &wallet_core::BudgetState) -> Budget {
        Budget {
            funded: budget.funded.to_string(),
            paid_out: budget.paid_out.to_string(),
            reversed: budget.reversed.to_string(),
            remaining: budget.remaining().to_string(),
        }
    }
}

impl From<&wallet_core::Policy> for Policy {
    fn from(policy: &wallet_core::Policy) -> Policy {
        Policy {
            cashback_rate: policy.cashback_rate.to_string(),
            cashback_monthly_spend_cap: policy.cashback_monthly_spend_cap.to_string(),
            monthly_charge_limit: policy.monthly_charge_limit.to_string(),
            holding_limit: policy.holding_limit.to_string(),
            merchant_fee_rate: policy.merchant_fee_rate.to_string(),
        }
    }
}

impl WalletView {
    /// What `GET /v1/wallet` shows of the core's view of a wallet; `program_name` names each
    /// allowance's program.
    pub fn new(
        wallet_id: String,
        view: &wallet_core::WalletView,
        program_name: impl Fn(&wallet_core::ProgramId) -> String,
    ) -> WalletView {
        let allowances = view
            .allowances
            .iter()
            .map(|allowance| AllowancePurse {
                grant_id: allowance.grant_id.to_string(),
                program_id: allowance.program_id.to_string(),
                program_name: program_name(&allowance.program_id),
                amount: allowance.amount.to_string(),
                expires_at: super::rfc3339(allowance.expires_at),
            })
            .collect();
        WalletView {
            wallet_id,
            balance: view.balance.to_string(),
            purses: Purses { own: view.own.to_string(), bonus: view.bonus.to_string(), allowances },
            currency: Currency::KRW,
            month: view.month.to_string(),
            charged_this_month: view.charged_this_month.to_string(),
            charge_limit_remaining: view.charge_limit_remaining.to_string(),
            cashback_earned_this_month: view.cashback_earned_this_month.to_string(),
            cashback_net_this_month: view.cashback_net_this_month.to_string(),
            cashback_eligible_spend_remaining: view.cashback_eligible_spend_remaining.to_string(),
            charge_bonus: None,
        }
    }

    /// The wallet with the charge bonus program it shows.
    pub fn with_charge_bonus(
        mut self,
        program: &wallet_core::ProgramId,
        view: &wallet_core::charge_bonus::ChargeBonusView,
    ) -> WalletView {
        self.charge_bonus = Some(WalletChargeBonus {
            program_id: program.to_string(),
            opens_at: super::rfc3339(view.opens_at),
            closes_at: super::rfc3339(view.closes_at),
            quota_remaining: view.quota_remaining.to_string(),
        });
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters

/// The `Idempotency-Key` header of a money-moving request.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // a parameter of the document only: `http::idempotency` reads the header
pub struct IdempotencyKey {
    /// 1 to 255 visible ASCII characters, chosen by the client per operation. The same principal
    /// sending the same key with the same body gets the original answer again and nothing moves
    /// twice; the same key with another body gets 409 `idempotency_conflict`.
    #[param(rename = "Idempotency-Key", min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$")]
    idempotency_key: String,
}

/// The optional `Idempotency-Key` of an admin action: with one, a retry with the same key and
/// body gets the first answer back (where the action goes through the writer) and the audit
/// log records the key.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // a parameter of the document only: `http::idempotency_if_sent` reads the header
pub struct IdempotencyKeyOptional {
    /// 1 to 255 visible ASCII characters.
    #[param(rename = "Idempotency-Key", min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$")]
    idempotency_key: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Every error answer: a non-2xx status with this body. Only the waiting room's 503 adds a field
/// (see `WaitingRoomError`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"error": {"code": "not_found", "message": "no such wallet"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A code for programs, one of the enum (every code the server sends); each answer's
    /// description says which codes it can carry.
    pub code: crate::api::ErrorCode,
    /// Text for a person.
    pub message: String,
}

/// The 503 of a citizen login while all citizen session slots are taken: the error plus a place
/// in line. Retry with the same credentials plus `"ticket"`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "waiting_room", "message": "all citizen sessions are taken; you are in line"},
    "waiting_room": {"ticket": "8f3a0c2e9b1d4f67", "position": 1234, "estimated_wait_s": 95}}))]
pub struct WaitingRoomError {
    /// `code` is `waiting_room`.
    pub error: ErrorDetail,
    pub waiting_room: WaitingRoomTicket,
}

/// A place in the citizen waiting room.
#[derive(Serialize, ToSchema)]
pub struct WaitingRoomTicket {
    /// Opaque; send it as `"ticket"` with the login, or poll `GET /v1/waiting-room/{ticket}`.
    /// Dropped when not polled for 60 seconds.
    pub ticket: String,
    /// Place in line, 1 is next.
    #[schema(minimum = 1)]
    pub position: u64,
    /// Estimated seconds until a slot is free.
    pub estimated_wait_s: u64,
    /// When this citizen's cohort of the charge bonus program opens (docs/API.md Part 2), while
    /// one is shown: there is nothing to gain by racing it. Left out otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = DateTime)]
    pub charge_bonus_opens_at: Option<String>,
}

/// A 503 of `POST /v1/sessions`: a place in the waiting room, or `overloaded`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum SessionUnavailable {
    WaitingRoom(WaitingRoomError),
    Overloaded(ErrorBody),
}

/// `invalid_request`: the body is not JSON, or its `Content-Type` is not `application/json`.
#[derive(ToResponse)]
#[allow(dead_code)] // an answer of the document only: `ApiError` builds its body
pub struct InvalidJson(ErrorBody);

/// `invalid_request`: the body is not JSON (or its `Content-Type` is not `application/json`), or
/// the `Idempotency-Key` header is missing or not 1 to 255 visible ASCII characters.
#[derive(ToResponse)]
#[allow(dead_code)] // an answer of the document only: `ApiError` builds its body
pub struct InvalidJsonOrKey(ErrorBody);

/// `unauthorized`: the `Authorization: Bearer` token is missing, unknown or expired; log in again.
#[derive(ToResponse)]
#[allow(dead_code)] // an answer of the document only: `ApiError` builds its body
pub struct Unauthorized(ErrorBody);

/// `forbidden`: the token is of another role than this endpoint serves.
#[derive(ToResponse)]
#[allow(dead_code)] // an answer of the document only: `ApiError` builds its body
pub struct Forbidden(ErrorBody);

/// `idempotency_conflict`: this `Idempotency-Key` was already used by this principal with a
/// different request; nothing moved. Use a new key for a new request.
#[derive(ToResponse)]
#[allow(dead_code)] // an answer of the document only: `ApiError` builds its body
pub struct IdempotencyConflict(ErrorBody);

/// `payload_too_large`: the request body is over 64 KiB.
#[derive(ToResponse)]
#[allow(dead_code)] // an answer of the document only: `ApiError` builds its body
pub struct PayloadTooLarge(ErrorBody);

/// `internal_error`: the server could not complete the request; try again. Nothing was changed,
/// except when the database failed while a money request was being committed: then it may have
/// been done, and a retry with the same `Idempotency-Key` gets its answer (it is done once).
#[derive(ToResponse)]
#[allow(dead_code)] // an answer of the document only: `ApiError` builds its body
pub struct InternalError(ErrorBody);

/// `overloaded`: the server sheds load (no free database connection or worker); it answered
/// at once and changed nothing. Retry after `Retry-After` seconds.
#[derive(ToResponse)]
#[response(headers(("Retry-After" = u64, description = "Whole seconds to wait before retrying.")))]
#[allow(dead_code)] // an answer of the document only: `ApiError` builds its body
pub struct Overloaded(ErrorBody);

/// `too_many_attempts` (an extension of API.md): too many failed logins for this login or from
/// this address; refused before any password check. Retry after `Retry-After` seconds (at most
/// 60 for a login by default); the login's owner, from an address that has not been failing,
/// is let through sooner.
#[derive(ToResponse)]
#[response(headers(("Retry-After" = u64, description = "Whole seconds to wait before retrying.")))]
#[allow(dead_code)] // an answer of the document only: `ApiError` builds its body
pub struct TooManyAttempts(ErrorBody);

/// `request_timeout` (an extension of API.md): the request body did not arrive in full within the
/// server's body timeout (10 s by default); nothing was done. Send it again, whole.
#[derive(ToResponse)]
#[allow(dead_code)] // an answer of the document only: `ApiError` builds its body
pub struct RequestTimeout(ErrorBody);

/// `waiting_room`: all citizen session slots are taken; the body holds a ticket and a place in
/// line (checked before any password work). Or `overloaded`: the waiting room or the server is
/// full; nothing changed. Retry after `Retry-After` seconds.
#[derive(ToResponse)]
#[response(headers(("Retry-After" = u64, description = "Whole seconds to wait before retrying.")))]
#[allow(dead_code)] // an answer of the document only: `ApiError` builds its body
pub struct LoginUnavailable(SessionUnavailable);

// ---------------------------------------------------------------------------------------------
// Success bodies: operations and sessions

/// The server is up.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: String,
}

/// A registered citizen and the citizen's new wallet.
#[derive(Serialize, ToSchema)]
pub struct CitizenCreated {
    #[schema(min_length = 1, max_length = 64)]
    pub citizen_id: String,
    #[schema(min_length = 1, max_length = 64)]
    pub wallet_id: String,
}

/// A session role.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Citizen,
    Merchant,
    Admin,
}

/// A new session.
#[derive(Serialize, ToSchema)]
pub struct SessionCreated {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub role: Role,
    /// When the session ends at the latest; it ends earlier when idle past the idle timeout.
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// A ticket's place in the citizen waiting room. Polling keeps the ticket alive.
#[derive(Serialize, ToSchema)]
pub struct TicketStatus {
    /// Place in line, 1 is next.
    #[schema(minimum = 1)]
    pub position: u64,
    /// Estimated seconds until a slot is free.
    pub estimated_wait_s: u64,
    /// True when a login with this ticket would be admitted now.
    pub ready: bool,
}

// ---------------------------------------------------------------------------------------------
// Success bodies: citizen

/// The wallet's only currency.
#[derive(Serialize, ToSchema)]
pub enum Currency {
    #[allow(clippy::upper_case_acronyms)]
    KRW,
}

/// The caller's wallet and this month's counters (KST month).
#[derive(Serialize, ToSchema)]
pub struct WalletView {
    #[schema(min_length = 1, max_length = 64)]
    pub wallet_id: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "15000")]
    pub balance: String,
    pub currency: Currency,
    /// `YYYY-MM` in KST.
    #[schema(pattern = "^[0-9]{4}-[0-9]{2}$", example = "2025-03")]
    pub month: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "15000")]
    pub charged_this_month: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "485000")]
    pub charge_limit_remaining: String,
    /// Gross: every cashback credited this month, not reduced by refunds' reversals.
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "1500")]
    pub cashback_earned_this_month: String,
    /// Net: `cashback_earned_this_month` less the cashback that refunds of this month's payments
    /// took back (an extension of API.md). A refund of an earlier month's payment reverses that
    /// month's cashback and does not change this figure.
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "1200")]
    pub cashback_net_this_month: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "300000")]
    pub cashback_eligible_spend_remaining: String,
    pub purses: Purses,
    /// The charge bonus program from its creation until it closes (docs/API.md Part 2); null
    /// otherwise.
    #[schema(required = true)]
    pub charge_bonus: Option<WalletChargeBonus>,
}

/// A charge bonus program as this wallet sees it.
#[derive(Serialize, ToSchema)]
pub struct WalletChargeBonus {
    #[schema(min_length = 1, max_length = 64)]
    pub program_id: String,
    /// When this wallet's cohort may start to earn the bonus.
    #[schema(format = DateTime)]
    pub opens_at: String,
    #[schema(format = DateTime)]
    pub closes_at: String,
    /// Charged won that may still earn the bonus this month.
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "500000")]
    pub quota_remaining: String,
}

/// Where the wallet's money is (docs/API.md, Part 2): `balance` is their sum.
#[derive(Serialize, ToSchema)]
pub struct Purses {
    /// Charges, gifts received, refunds of what `own` paid: the only purse that may be gifted.
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "61000")]
    pub own: String,
    /// Cashback (city money): may not be gifted.
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "4000")]
    pub bonus: String,
    /// The live allowances, earliest expiry first (the order they are spent in).
    pub allowances: Vec<AllowancePurse>,
}

/// One grant of an allowance program, spendable at the merchants its program admits.
#[derive(Serialize, ToSchema)]
pub struct AllowancePurse {
    #[schema(min_length = 1, max_length = 64)]
    pub grant_id: String,
    #[schema(min_length = 1, max_length = 64)]
    pub program_id: String,
    pub program_name: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "100000")]
    pub amount: String,
    /// 24:00 KST of the grant's last day.
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// A charge from the citizen's linked bank account.
#[derive(Serialize, ToSchema)]
pub struct ChargeReceipt {
    #[schema(min_length = 1, max_length = 64)]
    pub charge_id: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "15000")]
    pub amount: String,
    /// The wallet's balance after the charge (and its bonus).
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "15000")]
    pub balance: String,
    /// The charge bonus it earned, credited to the bonus purse ("0" without a running charge
    /// bonus program, before the wallet's cohort opens, or with its share used up).
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "1500")]
    pub bonus: String,
}

/// A gift sent to another wallet.
#[derive(Serialize, ToSchema)]
pub struct GiftReceipt {
    #[schema(min_length = 1, max_length = 64)]
    pub gift_id: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "5000")]
    pub amount: String,
    /// The sender's balance after the gift.
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "10000")]
    pub balance: String,
}

/// A single-use payment code, valid 180 seconds, shown to the merchant as a QR or barcode.
#[derive(Serialize, ToSchema)]
pub struct PaymentCodeIssued {
    pub code: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// One page of the wallet's history, newest first.
#[derive(Serialize, ToSchema)]
pub struct HistoryPage {
    pub items: Vec<HistoryItem>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// One history item.
#[derive(Serialize, ToSchema)]
pub struct HistoryItem {
    pub id: String,
    /// `charge`, `payment`, `cashback`, `refund`, `cashback_reversal`, `gift_in`, `gift_out`,
    /// `migrated_opening_balance`, and more where the project adds operations.
    #[schema(example = "payment")]
    pub kind: String,
    /// Signed: positive credits the wallet.
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "-15000")]
    pub amount: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "0")]
    pub balance_after: String,
    #[schema(format = DateTime)]
    pub at: String,
    /// The other side (a merchant or a wallet), where there is one; left out otherwise.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterparty: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Success bodies: merchant

/// A payment's state; always `approved` in an answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Approved,
}

/// An approved payment and the cashback it credited to the citizen's wallet.
#[derive(Serialize, ToSchema)]
pub struct PaymentReceipt {
    #[schema(min_length = 1, max_length = 64)]
    pub payment_id: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "15000")]
    pub amount: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "1500")]
    pub cashback: String,
    pub status: PaymentStatus,
    #[schema(format = DateTime)]
    pub at: String,
    pub paid_from: PaidFrom,
}

/// Which purses paid a payment; the three sum to its amount.
#[derive(Serialize, ToSchema)]
pub struct PaidFrom {
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "10000")]
    pub allowances: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "1500")]
    pub bonus: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "3500")]
    pub own: String,
}

/// A refund and the part of the payment's cashback it reversed.
#[derive(Serialize, ToSchema)]
pub struct RefundReceipt {
    #[schema(min_length = 1, max_length = 64)]
    pub refund_id: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "5000")]
    pub amount: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "500")]
    pub cashback_reversed: String,
}

/// The merchant's sales of one business date.
#[derive(Serialize, ToSchema)]
pub struct SalesSummary {
    #[schema(format = Date, example = "2025-03-14")]
    pub business_date: String,
    pub payments_count: u64,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "15000")]
    pub payments_amount: String,
    pub refunds_count: u64,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "5000")]
    pub refunds_amount: String,
    /// `payments_amount - refunds_amount`.
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "10000")]
    pub net: String,
}

// ---------------------------------------------------------------------------------------------
// Success bodies: admin

/// A password-reset code for a citizen.
#[derive(Serialize, ToSchema)]
pub struct PasswordResetIssued {
    /// 32 hex characters; give it to the citizen, who sets a password with it at
    /// `POST /v1/citizens/password`.
    #[schema(example = "9f86d081884c7d659a2feaa0c55ad015")]
    pub reset_code: String,
    /// Valid until then (three days), and for one use.
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// A new merchant.
#[derive(Serialize, ToSchema)]
pub struct MerchantCreated {
    #[schema(min_length = 1, max_length = 64)]
    pub merchant_id: String,
}

/// The policy in force. Rates are decimal strings from `"0"` to `"1"`; limits are strings of
/// whole won.
#[derive(Serialize, ToSchema)]
pub struct Policy {
    #[schema(pattern = "^(0(\\.[0-9]{1,9})?|1(\\.0{1,9})?)$", example = "0.1")]
    pub cashback_rate: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "300000")]
    pub cashback_monthly_spend_cap: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "500000")]
    pub monthly_charge_limit: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "2000000")]
    pub holding_limit: String,
    #[schema(pattern = "^(0(\\.[0-9]{1,9})?|1(\\.0{1,9})?)$", example = "0.005")]
    pub merchant_fee_rate: String,
}

/// The city's cashback budget: `remaining = funded - paid_out + reversed`.
#[derive(Serialize, ToSchema)]
pub struct Budget {
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "1000000")]
    pub funded: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "1500")]
    pub paid_out: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "500")]
    pub reversed: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "999000")]
    pub remaining: String,
}

/// A closed business date.
#[derive(Serialize, ToSchema)]
pub struct DayClosed {
    #[schema(format = Date, example = "2025-03-14")]
    pub business_date: String,
    /// How many merchants had activity that day (one settlement line each).
    pub merchants: u64,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "9925")]
    pub total_net_payable: String,
}

/// The business dates closed in a range.
#[derive(Serialize, ToSchema)]
pub struct SettlementsClosed {
    #[schema(format = Date, example = "2025-03-01")]
    pub from: String,
    #[schema(format = Date, example = "2025-03-31")]
    pub to: String,
    /// Oldest first; a date with no activity is never closed and not listed.
    pub items: Vec<SettlementClosed>,
}

/// A closed business date and its totals.
#[derive(Serialize, ToSchema)]
pub struct SettlementClosed {
    #[schema(format = Date, example = "2025-03-14")]
    pub business_date: String,
    /// Merchants with a settlement line that day.
    pub merchants: u64,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "9925")]
    pub total_net_payable: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "75")]
    pub total_fee: String,
    #[schema(format = DateTime)]
    pub closed_at: String,
}

/// The settlement of a closed business date.
#[derive(Serialize, ToSchema)]
pub struct SettlementReport {
    #[schema(format = Date, example = "2025-03-14")]
    pub business_date: String,
    /// One line per merchant with any activity that day.
    pub merchants: Vec<SettlementLine>,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "9925")]
    pub total_net_payable: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "75")]
    pub total_fee: String,
}

/// One merchant's settlement line. `fee = floor(payments_amount * merchant_fee_rate)`,
/// `net_payable = payments_amount - refunds_amount - fee + carried_in`; a negative
/// `net_payable` is not paid out and is carried into the merchant's next close with activity.
#[derive(Serialize, ToSchema)]
pub struct SettlementLine {
    #[schema(min_length = 1, max_length = 64)]
    pub merchant_id: String,
    pub merchant_name: String,
    pub business_number: String,
    pub bank_account: String,
    pub payments_count: u64,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "15000")]
    pub payments_amount: String,
    pub refunds_count: u64,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "5000")]
    pub refunds_amount: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "75")]
    pub fee: String,
    /// The merchant's negative `net_payable` of its previous close, else `0`.
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "0")]
    pub carried_in: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "9925")]
    pub net_payable: String,
}

/// The ledger's trial balance: every account kind's balance; the total is always `"0"`.
#[derive(Serialize, ToSchema)]
pub struct TrialBalance {
    pub accounts: Vec<AccountBalance>,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "0")]
    pub total: String,
}

/// The summed balance of one kind of account.
#[derive(Serialize, ToSchema)]
pub struct AccountBalance {
    /// `citizen_wallet`, `merchant_receivable`, `cashback_budget`, `bank_clearing`,
    /// `settlement_payouts`, `fee_income`, `handover_opening`, `citizen_allowance`,
    /// `program_budget`.
    #[schema(example = "citizen_wallet")]
    pub kind: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "15000")]
    pub balance: String,
}

/// Citizen session admission now.
#[derive(Serialize, ToSchema)]
pub struct Admission {
    /// Citizen sessions holding a slot.
    pub active_sessions: u64,
    /// Citizen sessions allowed at once.
    pub session_capacity: u64,
    /// Tickets in the waiting room.
    pub waiting: u64,
    /// Citizen logins let through to the password check since the server started.
    pub admitted_total: u64,
    /// Citizen logins answered with a place in line instead.
    pub shed_total: u64,
    /// Tickets given out since the server started.
    pub tickets_total: u64,
    /// Tickets dropped for not being polled within 60 seconds.
    pub dropped_total: u64,
    /// Citizen logins let in per second lately (0 before any).
    pub admission_rate_per_s: f64,
    /// Estimated seconds until the last ticket in line is let in.
    pub estimated_wait_s: u64,
    /// True while every password thread is busy and its queue is full.
    pub password_pool_saturated: bool,
    pub request_limiter: RequestLimiter,
}

/// The adaptive request limiter (`docs/ADMISSION.md`): its limit, what is in flight, and each
/// priority class's share.
#[derive(Serialize, ToSchema)]
pub struct RequestLimiter {
    /// False with `WALLET_ADMISSION=off`.
    pub enabled: bool,
    /// Requests let in at once at most, now.
    pub limit: u64,
    pub in_flight: u64,
    /// Recent request latency, in milliseconds.
    pub latency_recent_ms: f64,
    /// The latency the limit is measured against, in milliseconds.
    pub latency_baseline_ms: f64,
    /// Each priority class by name (`pos`, `citizen_money`, `logins`, `admin`, `reads`).
    pub classes: std::collections::BTreeMap<String, LimiterClass>,
}

/// One priority class of the request limiter.
#[derive(Serialize, ToSchema)]
pub struct LimiterClass {
    /// Requests of this class let in at once at most, now.
    pub limit: u64,
    pub in_flight: u64,
    pub waiting: u64,
    pub admitted_total: u64,
    pub shed_total: u64,
}

/// The server's clock after the move.
#[derive(Serialize, ToSchema)]
pub struct ClockNow {
    #[schema(format = DateTime)]
    pub now: String,
}

// ---------------------------------------------------------------------------------------------
// Success bodies: oversight (extensions of API.md)

/// `ok`, or `degraded` when `reasons` lists anything.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusKind {
    Ok,
    Degraded,
}

/// Why the status is degraded.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusReasonCode {
    /// The last trial balance did not total zero.
    BooksUnbalanced,
    /// No trial balance was taken for 90 seconds.
    BooksUnchecked,
    /// The writer's last batch failed; nothing of it was committed.
    WriterFailing,
    /// The cashback budget was funded and is used up.
    CashbackBudgetExhausted,
    /// A past business date with payments or refunds is still open at 06:00 KST of the next day:
    /// its merchants are not paid until it is closed.
    SettlementOverdue,
}

/// Where the test clock stands. Its offset is kept in the database, so a restart keeps it.
#[derive(Serialize, ToSchema)]
pub struct TestClockStatus {
    /// The test clock's time (the same as the status's `now`).
    #[schema(format = DateTime)]
    pub now: String,
    /// How far it is ahead of the real time, in seconds.
    pub ahead_of_real_time_s: i64,
}

/// One reason for a degraded status.
#[derive(Serialize, ToSchema)]
pub struct StatusReason {
    pub code: StatusReasonCode,
    /// Text for a person: what is wrong and what to do.
    pub message: String,
}

/// The database backend.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Database {
    Sqlite,
    Postgres,
}

/// The system at a glance.
#[derive(Serialize, ToSchema)]
pub struct Status {
    pub status: StatusKind,
    /// Empty when `status` is `ok`.
    pub reasons: Vec<StatusReason>,
    /// The server's version.
    #[schema(example = "0.1.0")]
    pub version: String,
    /// Seconds since this server started.
    pub uptime_s: u64,
    /// The server's clock.
    #[schema(format = DateTime)]
    pub now: String,
    /// The test clock (`WALLET_TEST_CLOCK=1`, never in production), null with the real clock.
    #[schema(required = true)]
    pub test_clock: Option<TestClockStatus>,
    pub database: Database,
    pub books: BooksStatus,
    pub cashback_budget: Budget,
    pub today: TodayStatus,
    pub sessions: SessionsStatus,
    pub writer: WriterStatus,
    /// The last business date closed; null before the first close.
    #[schema(required = true)]
    pub last_settlement: Option<LastSettlement>,
    pub handover: HandoverStatus,
}

/// The last trial balance this server took (every 30 seconds, in the background); all null until
/// the first one.
#[derive(Serialize, ToSchema)]
pub struct BooksStatus {
    /// True when the trial balance totalled zero.
    #[schema(required = true)]
    pub balanced: Option<bool>,
    #[schema(required = true, pattern = "^(0|-?[1-9][0-9]*)$", example = "0")]
    pub trial_balance_total: Option<String>,
    /// When it was taken, on the server's clock.
    #[schema(required = true, format = DateTime)]
    pub checked_at: Option<String>,
}

/// All merchants' sales so far of today's business date (KST).
#[derive(Serialize, ToSchema)]
pub struct TodayStatus {
    #[schema(format = Date, example = "2025-03-14")]
    pub business_date: String,
    pub payments_count: u64,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "1500000")]
    pub payments_amount: String,
    pub refunds_count: u64,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "15000")]
    pub refunds_amount: String,
}

/// Citizen sessions and the waiting room.
#[derive(Serialize, ToSchema)]
pub struct SessionsStatus {
    /// Citizen sessions holding a slot (every server on the database).
    pub active: u64,
    /// Citizen sessions allowed at once.
    pub capacity: u64,
    /// Tickets in the waiting room.
    pub waiting: u64,
    /// Citizen logins let through to the password check since this server started.
    pub admitted_total: u64,
    /// Citizen logins answered with a place in line instead.
    pub shed_total: u64,
}

/// This server's writer: every batch since it started, and the last 128 committed ones.
#[derive(Serialize, ToSchema)]
pub struct WriterStatus {
    /// Batches committed.
    pub batches_total: u64,
    /// Requests in the batches committed.
    pub commands_total: u64,
    /// Batches of which nothing was committed.
    pub batches_failed_total: u64,
    /// Committed batches the `recent_` figures cover (at most 128).
    pub recent_batches: u64,
    pub recent_commands_mean: f64,
    pub recent_commands_max: u64,
    /// From opening a batch's transaction to its commit, in milliseconds.
    pub recent_commit_ms_mean: f64,
    pub recent_commit_ms_max: f64,
    /// When the last batch, committed or failed, ended; null before the first.
    #[schema(required = true, format = DateTime)]
    pub last_batch_at: Option<String>,
    /// When a batch last failed; null if none has.
    #[schema(required = true, format = DateTime)]
    pub last_failure_at: Option<String>,
}

/// The last business date closed.
#[derive(Serialize, ToSchema)]
pub struct LastSettlement {
    #[schema(format = Date, example = "2025-03-14")]
    pub business_date: String,
    #[schema(format = DateTime)]
    pub closed_at: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "9925")]
    pub total_net_payable: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "75")]
    pub total_fee: String,
}

/// A handover bundle's kind.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BundleKind {
    Snapshot,
    Delta,
}

/// The last handover bundles applied here and exported from here.
#[derive(Serialize, ToSchema)]
pub struct HandoverStatus {
    /// Null when no bundle was applied.
    #[schema(required = true)]
    pub last_import: Option<LastImport>,
    /// Null when no bundle was exported.
    #[schema(required = true)]
    pub last_export: Option<LastExport>,
}

/// The last bundle applied (`wallet-server handover import`).
#[derive(Serialize, ToSchema)]
pub struct LastImport {
    pub sequence: u64,
    pub kind: BundleKind,
    /// The outgoing operator named in the manifest.
    pub operator: String,
    /// The manifest's `as_of`.
    #[schema(format = DateTime)]
    pub as_of: String,
    #[schema(format = DateTime)]
    pub applied_at: String,
}

/// The last bundle exported (`wallet-server handover export`).
#[derive(Serialize, ToSchema)]
pub struct LastExport {
    pub sequence: u64,
    pub kind: BundleKind,
    /// When its consistent read began.
    #[schema(format = DateTime)]
    pub exported_at: String,
}

/// One page of the audit log, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditRow>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Where an action came from.
#[derive(Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditVia {
    /// An admin's request.
    Api,
    /// A `wallet-server` command on the server's machine (`admin create`, `handover`).
    Cli,
}

/// What was done.
#[derive(Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    AdminCreated,
    MerchantCreated,
    PolicyChanged,
    CashbackBudgetToppedUp,
    SettlementClosed,
    PasswordResetIssued,
    TestClockMoved,
    HandoverImported,
    HandoverExported,
    ProgramCreated,
    ProgramBudgetToppedUp,
    AllowancesGranted,
    MerchantChanged,
    MerchantSuspended,
    MerchantReinstated,
    WalletLocked,
    WalletUnlocked,
    PasswordChanged,
}

/// One admin action, written in the same transaction as the action.
#[derive(Serialize, ToSchema)]
pub struct AuditRow {
    /// Increases with every row.
    #[schema(pattern = "^[1-9][0-9]*$", example = "42")]
    pub id: String,
    /// The server's clock when the action was taken (the real time for the command line).
    #[schema(format = DateTime)]
    pub at: String,
    pub via: AuditVia,
    /// The admin who acted; null for the command line.
    #[schema(required = true)]
    pub principal_id: Option<String>,
    /// That admin's login; null for the command line.
    #[schema(required = true)]
    pub login: Option<String>,
    pub action: AuditAction,
    /// What was done: ids, figures and names (never a password, token or reset code). Command-line
    /// rows name the operating-system user as `os_user` where the environment tells it.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// The request's Idempotency-Key, where the action honours one (budget top-ups); else null.
    #[schema(required = true)]
    pub idempotency_key: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Programs and merchants' details (docs/API.md, Part 2)

/// What kind of program.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProgramKind {
    Allowance,
    ChargeBonus,
}

/// An allowance program's budget: `remaining = funded - granted + returned`,
/// `granted = spent + returned + outstanding`.
#[derive(Serialize, ToSchema)]
pub struct AllowanceBudget {
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "100000000")]
    pub funded: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "60000000")]
    pub granted: String,
    /// Paid to merchants from its allowances, net of refunds.
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "20000000")]
    pub spent: String,
    /// Come back by expiry, or by refunds after a grant expired.
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "1000000")]
    pub returned: String,
    /// Still in citizens' allowance purses.
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "39000000")]
    pub outstanding: String,
    /// What can still be granted.
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "41000000")]
    pub remaining: String,
}

/// A charge bonus program's budget: `remaining = funded - paid_out`, split into its cohorts'
/// shares (each top-up: `floor(X / cohorts)` to each, the remainder to cohort 0).
#[derive(Serialize, ToSchema)]
pub struct ChargeBonusBudget {
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "100000000")]
    pub funded: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "20000000")]
    pub paid_out: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "80000000")]
    pub remaining: String,
    pub cohorts: Vec<CohortBudget>,
}

/// One cohort's share of a charge bonus budget, and when it opens.
#[derive(Serialize, ToSchema)]
pub struct CohortBudget {
    pub cohort: u32,
    #[schema(format = DateTime)]
    pub opens_at: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "20000000")]
    pub share: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "4000000")]
    pub paid_out: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "16000000")]
    pub remaining: String,
}

/// A program's budget, of its kind.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum ProgramBudget {
    Allowance(AllowanceBudget),
    ChargeBonus(ChargeBonusBudget),
}

impl From<&wallet_core::ProgramBudget> for ProgramBudget {
    fn from(budget: &wallet_core::ProgramBudget) -> ProgramBudget {
        ProgramBudget::Allowance(AllowanceBudget {
            funded: budget.funded.to_string(),
            granted: budget.granted.to_string(),
            spent: budget.spent.to_string(),
            returned: budget.returned.to_string(),
            outstanding: budget.outstanding().to_string(),
            remaining: budget.remaining().to_string(),
        })
    }
}

impl ProgramBudget {
    pub fn charge_bonus(
        rules: &wallet_core::ChargeBonusRules,
        budget: &wallet_core::ChargeBonusBudget,
    ) -> ProgramBudget {
        let cohorts = budget
            .cohorts
            .iter()
            .enumerate()
            .map(|(cohort, share)| CohortBudget {
                cohort: cohort as u32,
                opens_at: super::rfc3339(rules.cohort_opens_at(cohort as u32)),
                share: share.share.to_string(),
                paid_out: share.paid_out.to_string(),
                remaining: share.remaining().to_string(),
            })
            .collect();
        ProgramBudget::ChargeBonus(ChargeBonusBudget {
            funded: budget.funded().to_string(),
            paid_out: budget.paid_out().to_string(),
            remaining: budget.remaining().to_string(),
            cohorts,
        })
    }
}

/// A program as created, with its budget.
#[derive(Serialize, ToSchema)]
pub struct Program {
    #[schema(min_length = 1, max_length = 64)]
    pub program_id: String,
    pub kind: ProgramKind,
    pub name: String,
    /// Days a grant may be spent after the day it was made (to 24:00 KST); or `expires_on`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 1, maximum = 3650)]
    pub valid_days: Option<u32>,
    /// The last day (KST) every grant may be spent; or `valid_days`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = Date, example = "2027-12-31")]
    pub expires_on: Option<String>,
    /// Only merchants of these categories; empty: every category.
    pub merchant_categories: Vec<String>,
    pub excluded_merchant_categories: Vec<String>,
    /// Merchants above it, or of unknown revenue, are not admitted; null: no ceiling.
    #[schema(required = true, pattern = "^(0|-?[1-9][0-9]*)$", example = "3000000000")]
    pub merchant_annual_revenue_max: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Charge bonus programs only (the allowance fields above are then empty and null): the
    /// bonus rate, a decimal from above 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "0.1")]
    pub rate: Option<String>,
    /// Charged won per citizen and KST month that earn the bonus.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, pattern = "^(0|-?[1-9][0-9]*)$", example = "500000")]
    pub monthly_charge_cap: Option<String>,
    /// When cohort 0 opens; cohort c opens `c × cohort_interval_s` later.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = DateTime)]
    pub opens_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = DateTime)]
    pub closes_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 1, maximum = 31)]
    pub cohorts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 0, maximum = 604800)]
    pub cohort_interval_s: Option<u32>,
    pub budget: ProgramBudget,
}

impl Program {
    /// A charge bonus program as shown.
    pub fn charge_bonus(
        id: &wallet_core::ProgramId,
        name: &str,
        state: &wallet_core::ChargeBonusState,
        created_at: chrono::DateTime<chrono::Utc>,
    ) -> Program {
        let rules = &state.rules;
        Program {
            program_id: id.to_string(),
            kind: ProgramKind::ChargeBonus,
            name: name.to_owned(),
            valid_days: None,
            expires_on: None,
            merchant_categories: Vec::new(),
            excluded_merchant_categories: Vec::new(),
            merchant_annual_revenue_max: None,
            created_at: super::rfc3339(created_at),
            rate: Some(rules.rate.to_string()),
            monthly_charge_cap: Some(rules.monthly_charge_cap.to_string()),
            opens_at: Some(super::rfc3339(rules.opens_at)),
            closes_at: Some(super::rfc3339(rules.closes_at)),
            cohorts: Some(rules.cohorts),
            cohort_interval_s: Some(rules.cohort_interval_s),
            budget: ProgramBudget::charge_bonus(rules, &state.budget),
        }
    }

    pub fn new(
        id: &wallet_core::ProgramId,
        name: &str,
        rules: &wallet_core::AllowanceRules,
        created_at: chrono::DateTime<chrono::Utc>,
        budget: &wallet_core::ProgramBudget,
    ) -> Program {
        let (valid_days, expires_on) = match rules.validity {
            wallet_core::Validity::Days(days) => (Some(days), None),
            wallet_core::Validity::Until(date) => (None, Some(date.to_string())),
        };
        Program {
            program_id: id.to_string(),
            kind: ProgramKind::Allowance,
            name: name.to_owned(),
            valid_days,
            expires_on,
            merchant_categories: rules.merchant_categories.clone(),
            excluded_merchant_categories: rules.excluded_merchant_categories.clone(),
            merchant_annual_revenue_max: rules.merchant_annual_revenue_max.map(|max| max.to_string()),
            created_at: super::rfc3339(created_at),
            rate: None,
            monthly_charge_cap: None,
            opens_at: None,
            closes_at: None,
            cohorts: None,
            cohort_interval_s: None,
            budget: ProgramBudget::from(budget),
        }
    }
}

/// Every program, oldest first.
#[derive(Serialize, ToSchema)]
pub struct ProgramList {
    pub items: Vec<Program>,
}

/// A program's budget after a top-up.
#[derive(Serialize, ToSchema)]
pub struct ProgramToppedUp {
    pub budget: ProgramBudget,
}

/// Grants made, all of one request.
#[derive(Serialize, ToSchema)]
pub struct Granted {
    /// How many wallets were granted.
    pub granted: u64,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "300000")]
    pub amount_total: String,
    pub budget: ProgramBudget,
}

/// Why one line of a refused grants request was refused.
#[derive(Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum GrantRowCode {
    UnknownWallet,
    /// The wallet is on an earlier line of the same request.
    DuplicateWallet,
    /// From this line on, the running total passes what the budget has left.
    BudgetExhausted,
    /// The line's `grant_id` was granted already (a retried line that had landed).
    GrantExists,
}

/// One line of a refused grants request, by its index (from 0) in `grants`.
#[derive(Serialize, ToSchema)]
pub struct GrantRowProblem {
    pub index: u64,
    pub code: GrantRowCode,
}

/// A refused grants request: nothing was granted.
#[derive(Serialize, ToSchema, ToResponse)]
#[response(description = "Nothing was granted. `validation_failed`: a line names an unknown or repeated wallet \
    or a `grant_id` granted already (`rows` names each), or the body does not fit (an unknown or missing field, not 1 to 1000 lines; no `rows`); \
    `invalid_amount`: a line's amount is not whole won from 1 to 1000000000000; `budget_exhausted`: the lines \
    total more than the budget has left (`rows` names the lines from the first that passes it).")]
pub struct GrantsRefused {
    pub error: ErrorDetail,
    /// The lines at fault, where the refusal is about lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub rows: Option<Vec<GrantRowProblem>>,
}

/// A merchant's details as the city keeps them.
#[derive(Serialize, ToSchema)]
pub struct Merchant {
    #[schema(min_length = 1, max_length = 64)]
    pub merchant_id: String,
    pub name: String,
    #[schema(example = "123-45-67890")]
    pub business_number: String,
    pub bank_account: String,
    #[schema(required = true)]
    pub category: Option<String>,
    /// Whole won; null when unknown.
    #[schema(required = true, pattern = "^(0|-?[1-9][0-9]*)$", example = "250000000")]
    pub annual_revenue: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Operations of the city console and the merchant portal (docs/API.md, "Operations")

/// Whether a merchant takes payments.
#[derive(Serialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MerchantStatus {
    Active,
    /// The city suspended it: payments answer 422 `merchant_suspended`; refunds and settlement
    /// go on.
    Suspended,
}

/// A merchant in the city's list.
#[derive(Serialize, ToSchema)]
pub struct MerchantListed {
    #[schema(min_length = 1, max_length = 64)]
    pub merchant_id: String,
    #[schema(example = "bakery.jung")]
    pub login: String,
    pub name: String,
    #[schema(example = "123-45-67890")]
    pub business_number: String,
    pub bank_account: String,
    #[schema(required = true)]
    pub category: Option<String>,
    /// Whole won; null when unknown.
    #[schema(required = true, pattern = "^(0|-?[1-9][0-9]*)$", example = "250000000")]
    pub annual_revenue: Option<String>,
    pub status: MerchantStatus,
}

/// One page of merchants, in login order.
#[derive(Serialize, ToSchema)]
pub struct MerchantPage {
    pub items: Vec<MerchantListed>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Whether a citizen's wallet is usable.
#[derive(Serialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CitizenStatus {
    Active,
    /// The city locked it: no session, no login (403 `wallet_locked`), no charge, gift, code or
    /// payment (422 `wallet_locked`); it keeps its balance and still receives.
    Locked,
}

/// A citizen in the city's list.
#[derive(Serialize, ToSchema)]
pub struct CitizenListed {
    #[schema(min_length = 1, max_length = 64)]
    pub citizen_id: String,
    #[schema(example = "kim.minji")]
    pub login: String,
    #[schema(min_length = 1, max_length = 64)]
    pub wallet_id: String,
    /// What the citizen sees as the balance: own and bonus purses and live allowances.
    #[schema(pattern = "^(0|[1-9][0-9]*)$", example = "52000")]
    pub balance: String,
    pub status: CitizenStatus,
}

/// One page of citizens, in login order.
#[derive(Serialize, ToSchema)]
pub struct CitizenPage {
    pub items: Vec<CitizenListed>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A new admin.
#[derive(Serialize, ToSchema)]
pub struct AdminCreated {
    #[schema(min_length = 1, max_length = 64)]
    pub admin_id: String,
    pub login: String,
}

/// One closed business date of the merchant's settlement.
#[derive(Serialize, ToSchema)]
pub struct MerchantSettlementLine {
    #[schema(format = Date, example = "2025-03-14")]
    pub business_date: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$", example = "150000")]
    pub payments_amount: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$", example = "5000")]
    pub refunds_amount: String,
    /// `floor(payments_amount × merchant_fee_rate)`.
    #[schema(pattern = "^(0|[1-9][0-9]*)$", example = "0")]
    pub fee: String,
    /// The negative `net_payable` of the merchant's previous close, or 0.
    #[schema(pattern = "^(0|-[1-9][0-9]*)$", example = "0")]
    pub carried_in: String,
    /// `payments_amount - refunds_amount - fee + carried_in`: paid out when positive, carried
    /// into the next close when negative.
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$", example = "145000")]
    pub net_payable: String,
}

/// The merchant's settlement lines of the closed dates in a range, oldest first.
#[derive(Serialize, ToSchema)]
pub struct MerchantSettlements {
    pub items: Vec<MerchantSettlementLine>,
}

/// One of the merchant's payments.
#[derive(Serialize, ToSchema)]
pub struct MerchantPayment {
    #[schema(min_length = 1, max_length = 64)]
    pub payment_id: String,
    #[schema(pattern = "^[1-9][0-9]*$", example = "15000")]
    pub amount: String,
    /// What refunds have given back so far.
    #[schema(pattern = "^(0|[1-9][0-9]*)$", example = "0")]
    pub refunded: String,
    /// The cashback the payment earned the citizen.
    #[schema(pattern = "^(0|[1-9][0-9]*)$", example = "1500")]
    pub cashback: String,
    #[schema(format = DateTime)]
    pub at: String,
}

/// One page of the merchant's payments of a business date, newest first.
#[derive(Serialize, ToSchema)]
pub struct MerchantPaymentPage {
    pub items: Vec<MerchantPayment>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}
