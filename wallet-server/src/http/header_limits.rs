//! Length caps on request headers, before any work: actix-http bounds the whole head (128 KiB,
//! 96 fields) but no single value, so one 100 KiB `Authorization` was read, split and hashed
//! by every handler that authenticates. A value over its cap is refused with 431 and the app's
//! JSON error, before admission, authentication or the handler.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::Error;

use crate::api::{ApiError, ErrorCode};

/// `Authorization: Bearer <token>`: a token is 43 characters; anything near this is not one.
pub const AUTHORIZATION_BYTES_MAX: usize = 1_024;
/// Any other header value: far above what a browser, an app or a proxy sends.
pub const HEADER_VALUE_BYTES_MAX: usize = 8 * 1_024;

/// Middleware: 431 `invalid_request` for a header value over its cap, naming the header.
pub async fn cap_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if let Some(name) = oversized(&request) {
        return Err(ApiError::new(
            431,
            ErrorCode::InvalidRequest,
            format!("the {name} header is longer than this server takes; send it shorter"),
        )
        .into());
    }
    next.call(request).await
}

/// The first header whose value is over its cap.
fn oversized(request: &ServiceRequest) -> Option<String> {
    request.headers().iter().find_map(|(name, value)| {
        let cap = if name == AUTHORIZATION { AUTHORIZATION_BYTES_MAX } else { HEADER_VALUE_BYTES_MAX };
        (value.len() > cap).then(|| name.as_str().to_owned())
    })
}
