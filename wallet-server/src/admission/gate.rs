//! The gate in front of every handler: classifies each request, asks the [`Limiter`] for room,
//! waits a bounded time in line, and answers 503 `overloaded` with `Retry-After` when there is
//! none, before the handler has done anything.

use std::collections::HashMap;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::Method;
use actix_web::ResponseError;
use tokio::sync::oneshot;

use super::limiter::{Class, Decision, Limiter, Settings, Stats};
use crate::api::ApiError;

/// How the gate treats a request: it takes its turn in a priority class, or it is exempt (never
/// queued or shed). The server's route table gives each route one, explicitly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    Exempt,
    In(Class),
}

/// How the gate finds a request's [`Admit`], from its method and path. The gate runs before
/// routing and knows no route itself: the server passes the lookup of its route table.
pub type Classify = fn(&Method, &str) -> Admit;

struct Inner {
    limiter: Limiter,
    waiters: HashMap<u64, oneshot::Sender<()>>,
}

/// The shared admission state of one server.
pub struct Gate {
    inner: Mutex<Inner>,
    enabled: bool,
}

impl Gate {
    pub fn new(settings: Settings, enabled: bool) -> Arc<Gate> {
        Arc::new(Gate {
            inner: Mutex::new(Inner { limiter: Limiter::new(settings), waiters: HashMap::new() }),
            enabled,
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub fn stats(&self) -> Stats {
        self.inner.lock().map(|inner| inner.limiter.stats()).unwrap_or_default()
    }

    /// Waits for room for a request of `class`: a permit, or `None` when it must be refused.
    async fn enter(self: &Arc<Gate>, class: Class) -> Option<Permit> {
        let waiting = {
            let mut inner = self.inner.lock().ok()?;
            match inner.limiter.try_start(class) {
                Decision::Admitted => None,
                Decision::Refused => return None,
                Decision::Queued(ticket) => {
                    let (sender, receiver) = oneshot::channel();
                    inner.waiters.insert(ticket, sender);
                    Some((ticket, receiver))
                }
            }
        };
        if let Some((ticket, receiver)) = waiting {
            if !matches!(tokio::time::timeout(class.wait_max(), receiver).await, Ok(Ok(()))) {
                let mut inner = self.inner.lock().ok()?;
                inner.waiters.remove(&ticket);
                if inner.limiter.abandon(class, ticket) {
                    return None;
                }
                // Woken just as the wait ran out: the limiter has started it, so it goes ahead.
            }
        }
        Some(Permit { gate: self.clone(), class, started: Instant::now() })
    }

    fn release(&self, class: Class, started: Instant) {
        let Ok(mut inner) = self.inner.lock() else { return };
        inner.limiter.finish(class, started.elapsed());
        while let Some(ticket) = inner.limiter.next_to_wake() {
            if let Some(sender) = inner.waiters.remove(&ticket) {
                // A waiter whose wait has just run out finds itself started; see `enter`.
                let _ = sender.send(());
            }
        }
    }
}

/// Room for one request; dropping it (the response is done, or the client went away) frees the
/// room and feeds the request's latency to the limiter.
struct Permit {
    gate: Arc<Gate>,
    class: Class,
    started: Instant,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.release(self.class, self.started);
    }
}

/// The actix middleware factory: the gate, and how it classifies a request.
pub struct Admission(pub Arc<Gate>, pub Classify);

impl<S, B> Transform<S, ServiceRequest> for Admission
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = AdmissionService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AdmissionService { service: Rc::new(service), gate: self.0.clone(), classify: self.1 }))
    }
}

pub struct AdmissionService<S> {
    service: Rc<S>,
    gate: Arc<Gate>,
    classify: Classify,
}

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

impl<S, B> Service<ServiceRequest> for AdmissionService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<Result<Self::Response, Self::Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let gate = self.gate.clone();
        let admit = if gate.is_enabled() { (self.classify)(request.method(), request.path()) } else { Admit::Exempt };
        Box::pin(async move {
            let Admit::In(class) = admit else {
                return service.call(request).await.map(ServiceResponse::map_into_left_body);
            };
            let Some(permit) = gate.enter(class).await else {
                let refusal = ApiError::overloaded(
                    "the server is at capacity for this kind of request; retry after the time given in Retry-After",
                );
                return Ok(request.into_response(refusal.error_response()).map_into_right_body());
            };
            let response = service.call(request).await;
            drop(permit);
            response.map(ServiceResponse::map_into_left_body)
        })
    }
}
