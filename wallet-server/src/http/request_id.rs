//! `X-Request-Id`: every answer carries one, and the request's log line carries the same, so a
//! helpdesk given the id from a citizen's screen or a POS receipt finds the request in the log.
//!
//! A valid id sent by the client (or a proxy in front) is kept, so one id follows a request
//! through every hop; otherwise the server makes one. Valid: 1 to [`REQUEST_ID_LEN_MAX`]
//! characters of `A-Z a-z 0-9 . _ : -` — nothing that could forge a log field or a header.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};

/// The header, in both directions.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest incoming id kept (a UUID is 36; W3C trace ids are 32).
pub const REQUEST_ID_LEN_MAX: usize = 128;

/// The id of the request being served, in the request's extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The client's id if it is valid, else a new UUID.
fn request_id_of(request: &ServiceRequest) -> String {
    request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_valid(id))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

fn is_valid(id: &str) -> bool {
    (1..=REQUEST_ID_LEN_MAX).contains(&id.len())
        && id.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"._:-".contains(&byte))
}

/// Middleware: gives the request its id and the answer its `X-Request-Id`, on every answer
/// produced inside it (admission's 503s included).
pub async fn tag_request(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = request_id_of(&request);
    request.extensions_mut().insert(RequestId(id.clone()));
    // The request cannot be cloned before routing (actix routes it in place), so an error is
    // answered as its response with the header added, not as a response built here.
    let header = HeaderValue::from_str(&id).ok();
    match next.call(request).await {
        Ok(mut response) => {
            if let Some(value) = header {
                response.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
            }
            Ok(response)
        }
        Err(error) => {
            let mut response = error.error_response();
            if let Some(value) = header {
                response.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
            }
            Err(actix_web::error::InternalError::from_response(error.to_string(), response).into())
        }
    }
}

/// The root span of each request (one log line when it closes): method, route, path, status,
/// the client's address as the peer (never a header a client can forge) and the request id of
/// [`tag_request`]. The Authorization header is never recorded.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request.extensions().get::<RequestId>().map(|id| id.0.clone()).unwrap_or_default();
        let route = request.match_pattern().unwrap_or_else(|| "default".to_owned());
        let peer = request.peer_addr().map(|address| address.ip().to_string()).unwrap_or_default();
        tracing::info_span!(
            "HTTP request",
            request_id = %request_id,
            http.method = %request.method(),
            http.route = %route,
            http.target = %request.uri().path(),
            http.peer = %peer,
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn only_plain_bounded_ids_are_kept() {
        for id in ["a", "3f2b7c1e-0d4a-4b8e-9c2f-1a2b3c4d5e6f", "pos-17:2026.12.07_0001", &"x".repeat(128)] {
            assert!(is_valid(id), "{id:?}");
        }
        for id in ["", " ", "a b", "a\"b", "a=b", "ü", &"x".repeat(129), "a\nb"] {
            assert!(!is_valid(id), "{id:?}");
        }
    }
}
