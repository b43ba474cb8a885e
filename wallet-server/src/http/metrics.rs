//! `GET /metrics` (Prometheus text) and the middleware that counts every request by route and
//! status.
//!
//! Requests are counted by the matched route pattern (`/v1/payments/{payment_id}/refunds`), not
//! the path, so ids never add series: the series are the rows of the route table
//! (`http::routes`), fixed at start, and everything else (unknown paths, a method a route does
//! not serve) is one `route="unmatched"` series. Counting is relaxed atomic adds on arrays made at start: no lock
//! and no map insert on the request path.

use std::collections::HashMap;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::Method;
use actix_web::{web, HttpResponse};

use super::{with_connection, State};
use crate::api::ApiError;
use crate::metrics::{Exposition, Histogram, LATENCY_BOUNDS_US};
use crate::store;

/// Methods told apart, in the order of [`method_slot`].
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];
/// Status codes counted one by one; anything outside (none is sent) counts as the nearest end.
const STATUS_MIN: u16 = 100;
const STATUS_MAX: u16 = 599;
/// The series of requests that matched no route.
pub(super) const UNMATCHED: usize = 0;

pub(super) fn method_slot(method: &Method) -> Option<usize> {
    match *method {
        Method::GET => Some(0),
        Method::POST => Some(1),
        Method::PUT => Some(2),
        Method::DELETE => Some(3),
        Method::PATCH => Some(4),
        _ => None,
    }
}

/// Counts and latencies of one operation (method and route pattern).
struct RouteSeries {
    method: &'static str,
    route: &'static str,
    /// One counter per status code from [`STATUS_MIN`] to [`STATUS_MAX`].
    statuses: Box<[AtomicU64]>,
    /// Until the response head is ready (the body may stream on), in microseconds.
    latency_us: Histogram,
}

impl RouteSeries {
    fn new(method: &'static str, route: &'static str) -> RouteSeries {
        RouteSeries {
            method,
            route,
            statuses: (STATUS_MIN..=STATUS_MAX).map(|_| AtomicU64::new(0)).collect(),
            latency_us: Histogram::new(&LATENCY_BOUNDS_US),
        }
    }
}

/// Requests by operation and status, and their latency; one per server, shared by its workers.
pub struct RequestMetrics {
    routes: Vec<RouteSeries>,
    /// Route pattern → the series index of each method in [`METHODS`] it serves.
    index: HashMap<&'static str, [Option<usize>; METHODS.len()]>,
}

impl RequestMetrics {
    /// One series per operation, given as method and route pattern (the rows of the route
    /// table: `http::request_metrics`), plus the unmatched one.
    ///
    /// # Panics
    ///
    /// On a method outside [`METHODS`] or an operation given twice: the table is fixed, so that
    /// is a mistake in it, found at start.
    pub fn of_operations<'a>(operations: impl IntoIterator<Item = (&'a Method, &'static str)>) -> RequestMetrics {
        let mut routes = vec![RouteSeries::new("other", "unmatched")];
        let mut index: HashMap<&'static str, [Option<usize>; METHODS.len()]> = HashMap::new();
        for (method, pattern) in operations {
            let slot = method_slot(method).expect("a route's method is one the metrics tell apart");
            let slots = index.entry(pattern).or_default();
            assert!(slots[slot].is_none(), "{method} {pattern} is given twice");
            slots[slot] = Some(routes.len());
            routes.push(RouteSeries::new(METHODS[slot], pattern));
        }
        RequestMetrics { routes, index }
    }

    pub(super) fn series_of(&self, method: Option<usize>, pattern: Option<&str>) -> usize {
        let found = pattern.and_then(|pattern| self.index.get(pattern)).zip(method).and_then(|(slots, m)| slots[m]);
        found.unwrap_or(UNMATCHED)
    }

    fn record(&self, series: usize, status: u16, took: Duration) {
        let series = &self.routes[series];
        let status = usize::from(status.clamp(STATUS_MIN, STATUS_MAX) - STATUS_MIN);
        series.statuses[status].fetch_add(1, Ordering::Relaxed);
        series.latency_us.observe(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
    }

    /// The request series: only those with requests, so an idle route adds no lines.
    fn render(&self, out: &mut Exposition) {
        out.family(
            "wallet_http_requests_total",
            "counter",
            "HTTP requests answered, by method, route pattern and status (route=\"unmatched\": no API operation).",
        );
        for series in &self.routes {
            for (offset, count) in series.statuses.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let status = (STATUS_MIN + offset as u16).to_string();
                    let labels = [("method", series.method), ("route", series.route), ("status", &status)];
                    out.sample("wallet_http_requests_total", &labels, count);
                }
            }
        }
        out.family(
            "wallet_http_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to its response head, by method and route pattern.",
        );
        for series in &self.routes {
            let snapshot = series.latency_us.snapshot();
            if snapshot.count() > 0 {
                let labels = [("method", series.method), ("route", series.route)];
                out.histogram("wallet_http_request_duration_seconds", &labels, &snapshot, 1_000_000);
            }
        }
    }
}

/// The middleware factory: counts each request once its response (or error) is ready. Wrapped
/// outermost, so what admission sheds is counted too, and the latency is the one clients see.
pub struct CountRequests(pub Arc<RequestMetrics>);

impl<S, B> Transform<S, ServiceRequest> for CountRequests
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = CountRequestsService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(CountRequestsService { service, metrics: self.0.clone() }))
    }
}

pub struct CountRequestsService<S> {
    service: S,
    metrics: Arc<RequestMetrics>,
}

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

impl<S, B> Service<ServiceRequest> for CountRequestsService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<Result<Self::Response, Self::Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let method = method_slot(request.method());
        let metrics = self.metrics.clone();
        let response = self.service.call(request);
        Box::pin(async move {
            let response = response.await;
            let (pattern, status) = match &response {
                // After routing, the pattern comes from the matched resource, not a new match.
                Ok(response) => (response.request().match_pattern(), response.status().as_u16()),
                Err(error) => (None, error.as_response_error().status_code().as_u16()),
            };
            metrics.record(metrics.series_of(method, pattern.as_deref()), status, started.elapsed());
            response
        })
    }
}

/// Prometheus metrics in the text exposition format.
///
/// Requests by route and status with latency histograms, the writer's batches, admission and
/// sessions, the cashback budget left, and the last trial-balance check (made in the background
/// every 30 s, not on scrape). Bind it to an internal address in production.
#[utoipa::path(get, path = "/metrics", operation_id = "get_metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4.", body = String,
            content_type = "text/plain; version=0.0.4"),
        (status = 500, response = inline(crate::api::wire::InternalError)),
        (status = 503, response = inline(crate::api::wire::Overloaded))
    )
)]
pub async fn scrape(state: State, requests: web::Data<RequestMetrics>) -> Result<HttpResponse, ApiError> {
    // Two one-row reads: the city row and the session-slot count.
    let (budget, active) = with_connection(&state, |connection, _| {
        let (_, budget, _) = store::ledger_state::load_state(connection, false)?;
        let active = store::sessions::citizen_slots_used(connection)?;
        Ok((budget, active))
    })
    .await?;
    let mut out = Exposition::default();
    let now_ms = store::time::millis(state.clock.now());
    out.family("wallet_build_info", "gauge", "The running server's version.");
    out.sample("wallet_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);
    out.single(
        "wallet_uptime_seconds",
        "gauge",
        "Seconds since this server started.",
        state.started.elapsed().as_secs(),
    );
    out.single("wallet_sessions_active", "gauge", "Citizen sessions holding a slot.", active);
    out.single(
        "wallet_sessions_capacity",
        "gauge",
        "Citizen sessions allowed at once.",
        state.config.sessions_capacity,
    );
    if let Ok(room) = state.waiting_room.lock() {
        let waiting = room.waiting();
        out.single("wallet_waiting_room_tickets", "gauge", "Citizens waiting for a session slot.", waiting);
        out.single(
            "wallet_waiting_room_estimated_wait_seconds",
            "gauge",
            "Estimated wait of the last one in line.",
            room.estimated_wait_s(waiting, now_ms),
        );
        out.single("wallet_citizen_logins_admitted_total", "counter", "Citizen logins let in.", room.admitted_total);
        out.single(
            "wallet_citizen_logins_queued_total",
            "counter",
            "Citizen logins answered with a place in line.",
            room.shed_total,
        );
    }
    out.single(
        "wallet_malformed_requests_total",
        "counter",
        "Request heads actix-http could not parse, and broken streams: each answered 400 or closed; their log \
         lines are limited to a few a second.",
        crate::log_limits::malformed_seen(),
    );
    out.single(
        "wallet_cashback_budget_remaining_won",
        "gauge",
        "Unspent cashback budget.",
        budget.remaining().to_i64().unwrap_or(i64::MAX),
    );
    if let Some(checked) = state.books.last() {
        out.single(
            "wallet_books_balanced",
            "gauge",
            "1 when the last trial balance totalled zero, else 0.",
            u8::from(checked.total.is_zero()),
        );
        out.single(
            "wallet_trial_balance_total_won",
            "gauge",
            "The total of the last trial balance (always 0 in sound books).",
            checked.total.to_i64().unwrap_or(i64::MAX),
        );
        out.single(
            "wallet_books_check_age_seconds",
            "gauge",
            "Seconds since the last trial balance was taken.",
            checked.taken.elapsed().as_secs(),
        );
    }
    out.single(
        "wallet_books_check_failures_total",
        "counter",
        "Trial-balance checks that could not be taken.",
        state.books.failures_total(),
    );
    let stats = state.gate.stats();
    out.single("wallet_request_limit", "gauge", "Adaptive limit on requests in flight.", stats.limit);
    out.single("wallet_requests_in_flight", "gauge", "Requests being served.", stats.in_flight);
    let by_class = |out: &mut Exposition, name: &str, help: &str, values: [u64; 5]| {
        out.family(name, "counter", help);
        for class in crate::admission::limiter::Class::ALL {
            out.sample(name, &[("class", class.as_str())], values[class as usize]);
        }
    };
    by_class(
        &mut out,
        "wallet_requests_admitted_total",
        "Requests let in, by priority class.",
        stats.admitted_by_class,
    );
    by_class(
        &mut out,
        "wallet_requests_shed_total",
        "Requests refused 503 overloaded, by priority class.",
        stats.shed_by_class,
    );
    let writer = state.writer.stats();
    out.family("wallet_writer_batch_commands", "histogram", "Requests per batch the writer committed.");
    out.histogram("wallet_writer_batch_commands", &[], &writer.batch_commands.snapshot(), 1);
    out.family(
        "wallet_writer_commit_duration_seconds",
        "histogram",
        "Time from opening a batch's transaction to its commit.",
    );
    out.histogram("wallet_writer_commit_duration_seconds", &[], &writer.commit_us.snapshot(), 1_000_000);
    out.single(
        "wallet_writer_batches_failed_total",
        "counter",
        "Batches of which nothing was committed (each request answered with an error).",
        writer.batches_failed_total.load(Ordering::Relaxed),
    );
    requests.render(&mut out);
    if let Some(Ok(throttle)) = state.throttle.as_ref().map(|throttle| throttle.lock()) {
        out.single(
            "wallet_login_attempts_throttled_total",
            "counter",
            "Login attempts refused 429 too_many_attempts before any password check.",
            throttle.refused_total,
        );
        let (logins, addresses) = throttle.entries();
        out.family("wallet_login_throttle_records", "gauge", "Records the login throttle holds, by map.");
        out.sample("wallet_login_throttle_records", &[("map", "login")], logins);
        out.sample("wallet_login_throttle_records", &[("map", "address")], addresses);
        out.single(
            "wallet_login_throttle_evicted_total",
            "counter",
            "Live throttle records dropped to stay within WALLET_THROTTLE_ENTRIES_MAX.",
            throttle.evicted_total,
        );
        out.family(
            "wallet_login_failures_shared_total",
            "counter",
            "Failed logins shared through the database: written for the other servers (out), theirs charged here (in).",
        );
        out.sample("wallet_login_failures_shared_total", &[("way", "out")], throttle.shared_out_total);
        out.sample("wallet_login_failures_shared_total", &[("way", "in")], throttle.shared_in_total);
        out.single(
            "wallet_login_failures_unshared_total",
            "counter",
            "Failed logins never shared with the other servers: too many waited for a database that could not be written.",
            throttle.unshared_dropped_total,
        );
    }
    let (idempotency_swept, codes_swept) = state.swept.totals();
    out.family(
        "wallet_expired_rows_deleted_total",
        "counter",
        "Rows past their retention deleted by this server's sweep, by table.",
    );
    out.sample("wallet_expired_rows_deleted_total", &[("table", "idempotency")], idempotency_swept);
    out.sample("wallet_expired_rows_deleted_total", &[("table", "payment_codes")], codes_swept);
    out.single(
        "wallet_expiry_sweeps_total",
        "counter",
        "Runs of this server's sweep of expired idempotency records and payment codes.",
        state.swept.sweeps(),
    );
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(out.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Series for a few operations, as the route table gives them.
    fn some_operations() -> RequestMetrics {
        RequestMetrics::of_operations([
            (&Method::GET, "/v1/wallet"),
            (&Method::POST, "/v1/payments"),
            (&Method::POST, "/v1/payments/{payment_id}/refunds"),
            (&Method::GET, "/v1/admin/policy"),
            (&Method::PUT, "/v1/admin/policy"),
        ])
    }

    #[test]
    fn each_operation_is_a_series_and_the_rest_is_one() {
        let metrics = some_operations();
        let post = method_slot(&Method::POST);
        let get = method_slot(&Method::GET);
        let payments = metrics.series_of(post, Some("/v1/payments"));
        assert_ne!(payments, UNMATCHED);
        let refunds = metrics.series_of(post, Some("/v1/payments/{payment_id}/refunds"));
        assert_ne!(refunds, UNMATCHED);
        assert_ne!(refunds, payments);
        assert_ne!(
            metrics.series_of(get, Some("/v1/admin/policy")),
            metrics.series_of(method_slot(&Method::PUT), Some("/v1/admin/policy"))
        );
        assert_eq!(metrics.series_of(get, Some("/v1/payments")), UNMATCHED, "GET is no operation of /v1/payments");
        assert_eq!(metrics.series_of(get, None), UNMATCHED);
        assert_eq!(metrics.series_of(None, Some("/v1/payments")), UNMATCHED);
    }

    #[test]
    fn a_request_counts_under_its_status_and_its_latency_bucket() {
        let metrics = some_operations();
        let payments = metrics.series_of(method_slot(&Method::POST), Some("/v1/payments"));
        metrics.record(payments, 201, Duration::from_millis(3));
        metrics.record(payments, 422, Duration::from_millis(3));
        metrics.record(UNMATCHED, 404, Duration::from_micros(10));
        let mut out = Exposition::default();
        metrics.render(&mut out);
        let text = out.finish();
        for line in [
            "wallet_http_requests_total{method=\"POST\",route=\"/v1/payments\",status=\"201\"} 1",
            "wallet_http_requests_total{method=\"POST\",route=\"/v1/payments\",status=\"422\"} 1",
            "wallet_http_requests_total{method=\"other\",route=\"unmatched\",status=\"404\"} 1",
            "wallet_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/payments\",le=\"0.0025\"} 0",
            "wallet_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/payments\",le=\"0.005\"} 2",
            "wallet_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/payments\"} 2",
        ] {
            assert!(text.lines().any(|seen| seen == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("/v1/wallet\""), "a route without requests adds no series:\n{text}");
    }
}
