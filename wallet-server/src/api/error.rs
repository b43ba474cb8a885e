//! The API's error answer and the one mapping from core rejections to API.md's codes. No actix
//! here: `http` turns an [`ApiError`] into a response.

use wallet_core::Rejection;

/// Every `code` an error answer can carry: the document lists exactly these (an enum), so a
/// client generated from it knows each one, and the server cannot send a code it does not list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidAmount,
    ValidationFailed,
    InvalidCredentials,
    PasswordResetRequired,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    LoginTaken,
    IdempotencyConflict,
    InsufficientFunds,
    LimitExceeded,
    PaymentCodeInvalid,
    RefundExceedsPayment,
    DateNotClosed,
    BudgetExhausted,
    RequestTimeout,
    PayloadTooLarge,
    TooManyAttempts,
    Overloaded,
    WaitingRoom,
    InternalError,
    WalletLocked,
    MerchantSuspended,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidAmount => "invalid_amount",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::PasswordResetRequired => "password_reset_required",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::LoginTaken => "login_taken",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::InsufficientFunds => "insufficient_funds",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::PaymentCodeInvalid => "payment_code_invalid",
            ErrorCode::RefundExceedsPayment => "refund_exceeds_payment",
            ErrorCode::DateNotClosed => "date_not_closed",
            ErrorCode::BudgetExhausted => "budget_exhausted",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::WaitingRoom => "waiting_room",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::WalletLocked => "wallet_locked",
            ErrorCode::MerchantSuspended => "merchant_suspended",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A non-2xx answer: `{"error":{"code","message"}}` (plus extra top-level fields where API.md
/// has them, such as the waiting room's ticket).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_s: Option<u64>,
    pub extra: Option<(&'static str, serde_json::Value)>,
}

impl ApiError {
    pub fn new(status: u16, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), retry_after_s: None, extra: None }
    }

    pub fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, ErrorCode::InvalidRequest, message)
    }

    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new(422, ErrorCode::ValidationFailed, message)
    }

    pub fn invalid_amount(message: impl Into<String>) -> ApiError {
        ApiError::new(422, ErrorCode::InvalidAmount, message)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            401,
            ErrorCode::Unauthorized,
            "missing, unknown or expired session token; log in again with POST /v1/sessions",
        )
    }

    pub fn forbidden(role: &str) -> ApiError {
        ApiError::new(403, ErrorCode::Forbidden, format!("this endpoint is not for the {role} role"))
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, ErrorCode::NotFound, message)
    }

    pub fn overloaded(message: impl Into<String>) -> ApiError {
        ApiError { retry_after_s: Some(1), ..ApiError::new(503, ErrorCode::Overloaded, message) }
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            500,
            ErrorCode::InternalError,
            "the server could not complete the request; nothing was changed, try again",
        )
    }

    /// The JSON body of this error.
    pub fn body(&self) -> serde_json::Value {
        let detail = super::wire::ErrorDetail { code: self.code, message: self.message.clone() };
        let mut body = super::wire::to_json(&super::wire::ErrorBody { error: detail });
        if let Some((name, value)) = &self.extra {
            body[*name] = value.clone();
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> ApiError {
        match error {
            crate::store::StoreError::Pool(_) => {
                ApiError::overloaded("no database connection is free; try again shortly")
            }
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::internal()
            }
        }
    }
}

/// The API answer for each way the ledger refuses a command.
pub fn rejection(rejection: &Rejection) -> ApiError {
    let message = rejection.to_string();
    match rejection {
        Rejection::InsufficientFunds { .. } => ApiError::new(422, ErrorCode::InsufficientFunds, message),
        Rejection::LimitExceeded(_) => ApiError::new(422, ErrorCode::LimitExceeded, message),
        Rejection::PaymentCodeInvalid(_) => ApiError::new(422, ErrorCode::PaymentCodeInvalid, message),
        Rejection::RefundExceedsPayment { .. } => ApiError::new(422, ErrorCode::RefundExceedsPayment, message),
        Rejection::UnknownWallet(_) | Rejection::UnknownMerchant(_) | Rejection::UnknownPayment(_) => {
            ApiError::not_found(message)
        }
        Rejection::WalletLocked(_) => ApiError::new(422, ErrorCode::WalletLocked, message),
        Rejection::MerchantSuspended(_) => ApiError::new(422, ErrorCode::MerchantSuspended, message),
        Rejection::GiftToSelf | Rejection::InvalidPolicy(_) => ApiError::validation(message),
        Rejection::DateNotClosable { .. } => ApiError::new(422, ErrorCode::DateNotClosed, message),
        Rejection::InvalidAmount(_) | Rejection::Overflow => ApiError::invalid_amount(message),
        Rejection::UnknownProgram(_) | Rejection::UnknownGrant(_) => ApiError::not_found(message),
        Rejection::ProgramOver(_) | Rejection::GrantNotExpired(_) => ApiError::validation(message),
        Rejection::GrantsRefused { rows } => grants_refused(rows, message),
    }
}

/// A refused grant command: `validation_failed` when a line names an unknown or repeated
/// wallet or a grant id granted already, else `budget_exhausted`; `rows` names every line at fault (PROGRAMS.md).
fn grants_refused(rows: &[(usize, wallet_core::GrantProblem)], message: String) -> ApiError {
    use wallet_core::GrantProblem;
    let code = if rows.iter().all(|(_, problem)| *problem == GrantProblem::BudgetExhausted) {
        ErrorCode::BudgetExhausted
    } else {
        ErrorCode::ValidationFailed
    };
    let rows: Vec<super::wire::GrantRowProblem> = rows
        .iter()
        .map(|(index, problem)| super::wire::GrantRowProblem {
            index: *index as u64,
            code: match problem {
                GrantProblem::UnknownWallet => super::wire::GrantRowCode::UnknownWallet,
                GrantProblem::DuplicateWallet => super::wire::GrantRowCode::DuplicateWallet,
                GrantProblem::BudgetExhausted => super::wire::GrantRowCode::BudgetExhausted,
                GrantProblem::GrantExists => super::wire::GrantRowCode::GrantExists,
            },
        })
        .collect();
    let mut error = ApiError::new(422, code, message);
    error.extra = Some(("rows", super::wire::to_json(&rows)));
    error
}
