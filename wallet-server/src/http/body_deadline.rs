//! A deadline on request bodies. actix-http bounds the time to receive a connection's first
//! request head (`client_request_timeout`), but not a body: a client that sends a head with
//! `Content-Length: 60000` and then a byte a minute would hold its connection, and the request
//! limiter's place it was given, for as long as it liked. Here the body must have arrived in full
//! within [`BodyDeadline`]'s timeout of the request's head; past it, reading the body fails with
//! a timed-out I/O error, which `json_error` answers 408 `request_timeout`.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use actix_web::HttpMessage;
use futures_util::Stream;

/// The middleware: every request's body stream ends in an error once `timeout` has passed.
pub struct BodyDeadline(pub Duration);

impl<S, B> Transform<S, ServiceRequest> for BodyDeadline
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = BodyDeadlineService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(BodyDeadlineService { service, timeout: self.0 }))
    }
}

pub struct BodyDeadlineService<S> {
    service: S,
    timeout: Duration,
}

impl<S, B> Service<ServiceRequest> for BodyDeadlineService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = S::Future;

    actix_web::dev::forward_ready!(service);

    fn call(&self, mut request: ServiceRequest) -> Self::Future {
        let payload = request.take_payload();
        let deadline = tokio::time::sleep(self.timeout);
        let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
            Box::pin(DeadlineStream { payload, deadline: Box::pin(deadline), expired: false });
        request.set_payload(Payload::from(stream));
        self.service.call(request)
    }
}

/// A body stream that fails once its deadline has passed with bytes still to come.
struct DeadlineStream {
    payload: Payload,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

/// Whether a body read failed because its deadline passed (so the answer is 408, not 400).
pub fn is_deadline_error(error: &PayloadError) -> bool {
    matches!(error, PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
}

impl Stream for DeadlineStream {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.payload).poll_next(cx) {
            Poll::Pending => {}
            ready => return ready,
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired = true;
            let error = std::io::Error::new(std::io::ErrorKind::TimedOut, "the request body arrived too slowly");
            return Poll::Ready(Some(Err(PayloadError::Io(error))));
        }
        Poll::Pending
    }
}
