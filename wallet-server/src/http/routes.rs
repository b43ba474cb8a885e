//! The route table: every operation of the API once, with everything the server needs to know
//! about it (method, path pattern, handler, admission class).
//!
//! Before this table a route's facts lived in four lists — the actix registrations, the OpenAPI
//! path list, the admission gate's string matching and the metrics series — and the gate gave
//! any route it did not know the read class, so a new money `POST` would have been served at read
//! priority without a word. Now:
//!
//! - actix registers exactly these rows ([`register`]);
//! - the admission gate classifies a request by matching it against these rows
//!   ([`admission_of`]), and every row must name its class (the field has no default);
//! - the request metrics keep one series per row, labelled with its path pattern;
//! - the 405 answer's `Allow` lists the methods of the rows whose pattern matches the path
//!   ([`methods_allowed`]).
//!
//! The OpenAPI document is still generated from the handlers' `#[utoipa::path]` attributes; a
//! test checks that it lists the same (method, path) set as this table, both ways.

use actix_web::http::Method;
use actix_web::web;

use super::metrics::RequestMetrics;
use super::{
    accounts, admin, audit, citizen, console, merchant, metrics, openapi, password, programs, session, status,
};
use crate::admission::gate::Admit;
use crate::admission::limiter::Class;

/// One operation of the API.
pub struct Route {
    pub method: Method,
    /// The path as the OpenAPI document and actix write it: `{name}` is one non-empty segment.
    /// It is also the `route` label of the operation's request metrics.
    pub path: &'static str,
    /// How the admission gate treats the operation's requests: a priority class, or exempt.
    pub admit: Admit,
    /// The largest body the operation takes (413 above it).
    pub body_bytes_max: usize,
    /// The actix route calling the operation's handler (the method guard is added by [`register`]).
    handler: fn() -> actix_web::Route,
}

/// A row of [`ROUTES`]: `METHOD "path" => handler, admission`.
macro_rules! route {
    ($method:ident $path:literal => $handler:path, $admit:expr) => {
        route!($method $path => $handler, $admit, body_max = super::BODY_BYTES_MAX)
    };
    ($method:ident $path:literal => $handler:path, $admit:expr, body_max = $max:expr) => {
        Route {
            method: Method::$method,
            path: $path,
            admit: $admit,
            body_bytes_max: $max,
            handler: || web::route().to($handler),
        }
    };
}

use Admit::{Exempt, In};
use Class::{Admin, CitizenMoney, Logins, Pos, Reads};

/// Every operation the server serves, in the order of the API document.
pub static ROUTES: [Route; 48] = [
    // Never queued or shed: liveness, scraping and the document must answer under any load.
    route!(GET "/healthz" => super::healthz, Exempt),
    route!(GET "/metrics" => metrics::scrape, Exempt),
    route!(GET "/openapi.json" => openapi::openapi_json, Exempt),
    route!(POST "/v1/citizens" => session::register, In(Logins)),
    // Logins are admitted by the waiting room and the bounded password pool instead, so that a
    // citizen turned away gets a place in line rather than an error.
    route!(POST "/v1/sessions" => session::login, Exempt),
    route!(GET "/v1/waiting-room/{ticket}" => session::poll, In(Reads)),
    // A logout frees a session slot: worth more than a read.
    route!(DELETE "/v1/sessions/current" => session::logout, In(CitizenMoney)),
    route!(GET "/v1/wallet" => citizen::wallet, In(Reads)),
    route!(POST "/v1/wallet/charges" => citizen::charge, In(CitizenMoney)),
    route!(POST "/v1/wallet/gifts" => citizen::gift, In(CitizenMoney)),
    route!(POST "/v1/wallet/payment-codes" => citizen::payment_code, In(CitizenMoney)),
    route!(GET "/v1/wallet/transactions" => citizen::transactions, In(Reads)),
    route!(POST "/v1/payments" => merchant::pay, In(Pos)),
    route!(POST "/v1/payments/{payment_id}/refunds" => merchant::refund, In(Pos)),
    route!(GET "/v1/merchant/sales" => merchant::sales, In(Reads)),
    route!(GET "/v1/merchant/settlements" => merchant::settlements, In(Reads)),
    route!(GET "/v1/merchant/payments" => merchant::payments, In(Reads)),
    route!(POST "/v1/admin/merchants" => admin::create_merchant, In(Admin)),
    route!(PATCH "/v1/admin/merchants/{merchant_id}" => admin::patch_merchant, In(Admin)),
    route!(GET "/v1/admin/merchants" => accounts::list_merchants, In(Admin)),
    route!(GET "/v1/admin/merchants/{merchant_id}" => accounts::get_merchant, In(Admin)),
    route!(PUT "/v1/admin/merchants/{merchant_id}/suspension" => accounts::suspend_merchant, In(Admin)),
    route!(DELETE "/v1/admin/merchants/{merchant_id}/suspension" => accounts::reinstate_merchant, In(Admin)),
    route!(GET "/v1/admin/citizens" => accounts::list_citizens, In(Admin)),
    route!(GET "/v1/admin/citizens/{login}" => accounts::get_citizen, In(Admin)),
    route!(PUT "/v1/admin/citizens/{login}/lock" => accounts::lock_citizen, In(Admin)),
    route!(DELETE "/v1/admin/citizens/{login}/lock" => accounts::unlock_citizen, In(Admin)),
    route!(POST "/v1/admin/admins" => accounts::create_admin, In(Admin)),
    route!(GET "/v1/admin/policy" => admin::get_policy, In(Admin)),
    route!(PUT "/v1/admin/policy" => admin::put_policy, In(Admin)),
    route!(POST "/v1/admin/cashback-budget/top-ups" => admin::top_up, In(Admin)),
    route!(GET "/v1/admin/cashback-budget" => admin::budget, In(Admin)),
    route!(POST "/v1/admin/settlements" => admin::close_day, In(Admin)),
    route!(GET "/v1/admin/settlements" => admin::list_settlements, In(Admin)),
    route!(GET "/v1/admin/settlements/{business_date}" => admin::settlement, In(Admin)),
    route!(GET "/v1/admin/ledger/trial-balance" => admin::trial_balance, In(Admin)),
    route!(GET "/v1/admin/admission" => admin::admission, In(Admin)),
    route!(PUT "/v1/admin/test-clock" => admin::test_clock, In(Admin)),
    route!(POST "/v1/admin/citizens/{login}/password-reset" => password::issue, In(Admin)),
    route!(POST "/v1/citizens/password" => password::set_password, In(Logins)),
    // A password change hashes twice, as a login does: it waits with the logins, not the reads.
    route!(POST "/v1/me/password" => password::change_own_password, In(Logins)),
    route!(GET "/v1/admin/status" => status::status, In(Admin)),
    route!(GET "/v1/admin/audit-log" => audit::audit_log, In(Admin)),
    route!(POST "/v1/admin/programs" => programs::create_program, In(Admin)),
    route!(GET "/v1/admin/programs" => programs::list_programs, In(Admin)),
    route!(GET "/v1/admin/programs/{program_id}" => programs::get_program, In(Admin)),
    route!(POST "/v1/admin/programs/{program_id}/budget-top-ups" => programs::top_up_program, In(Admin)),
    route!(POST "/v1/admin/programs/{program_id}/grants" => programs::grant, In(Admin), body_max = programs::GRANTS_BODY_BYTES_MAX),
];

/// The class of a request that matches no row (an unknown path, or a method its path does not
/// take). It is answered 404 or 405 without touching anything, so it must stay cheap and must
/// not crowd out money: it waits and is shed with the reads.
pub const UNMATCHED: Admit = In(Reads);

/// Registers every row of [`ROUTES`] with actix.
/// One actix resource a path, with every method the table serves on it (a resource that
/// matches the path answers for it: a second resource of the same path would never be asked),
/// and its body limit where it is not the usual one.
pub fn register(config: &mut web::ServiceConfig) {
    let mut paths: Vec<&'static str> = Vec::new();
    for route in &ROUTES {
        if !paths.contains(&route.path) {
            paths.push(route.path);
        }
    }
    for path in paths {
        let mut resource = web::resource(path);
        let mut body_bytes_max = super::BODY_BYTES_MAX;
        for route in ROUTES.iter().filter(|route| route.path == path) {
            resource = resource.route((route.handler)().method(route.method.clone()));
            body_bytes_max = body_bytes_max.max(route.body_bytes_max);
        }
        if body_bytes_max != super::BODY_BYTES_MAX {
            resource = resource.app_data(super::json_config(body_bytes_max));
        }
        // A method the path does not take gets the app's 405 (a JSON body and `Allow`), not
        // actix's empty one.
        config.service(resource.default_service(web::to(super::no_route)));
    }
}

/// The request counters: one series per row, labelled with its method and path pattern, and
/// one for the console's files.
pub fn request_metrics() -> RequestMetrics {
    let console = [(&Method::GET, console::FILE_PATTERN)];
    RequestMetrics::of_operations(ROUTES.iter().map(|route| (&route.method, route.path)).chain(console))
}

/// Whether a request path matches a path pattern: the same number of segments, each literal equal
/// and each `{parameter}` non-empty (as actix matches `{name}`).
fn matches(pattern: &str, path: &str) -> bool {
    let mut expected = pattern.split('/');
    let mut given = path.split('/');
    loop {
        match (expected.next(), given.next()) {
            (None, None) => return true,
            (Some(literal), Some(segment)) if !is_parameter(literal) && literal == segment => {}
            (Some(parameter), Some(segment)) if is_parameter(parameter) && !segment.is_empty() => {}
            _ => return false,
        }
    }
}

fn is_parameter(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

/// The row a request is for, if any. The admission gate runs before actix routes the request, so
/// it matches the table itself.
pub fn route_of(method: &Method, path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|route| route.method == method && matches(route.path, path))
}

/// How the admission gate treats a request: its row's class, or [`UNMATCHED`]'s. The console's
/// files (`/console/`, outside the API and its document) are exempt: served from memory, they
/// cost less than the gate's own bookkeeping, and the city's page must load while reads are shed
/// (its API calls then take their turn like any client's).
pub fn admission_of(method: &Method, path: &str) -> Admit {
    if console::is_console_path(path) {
        return Exempt;
    }
    route_of(method, path).map_or(UNMATCHED, |route| route.admit)
}

/// The methods the rows whose pattern matches `path` take, in the order of an `Allow` header
/// (`GET, PUT, POST, DELETE, PATCH`); `None` when no row's pattern matches.
pub fn methods_allowed(path: &str) -> Option<String> {
    let order = [Method::GET, Method::PUT, Method::POST, Method::DELETE, Method::PATCH];
    let taken: Vec<&str> = order
        .iter()
        .filter(|method| ROUTES.iter().any(|route| route.method == **method && matches(route.path, path)))
        .map(Method::as_str)
        .collect();
    (!taken.is_empty()).then(|| taken.join(", "))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use utoipa::OpenApi;

    use super::*;

    /// A request path for a pattern, each `{parameter}` given a value.
    fn example_path(pattern: &str) -> String {
        pattern
            .split('/')
            .map(|segment| if is_parameter(segment) { "x-1" } else { segment })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn the_table_and_the_api_document_list_the_same_operations() {
        let document = openapi::ApiDoc::openapi();
        let mut documented = BTreeSet::new();
        for (path, item) in &document.paths.paths {
            let operations = [
                (Method::GET, &item.get),
                (Method::PUT, &item.put),
                (Method::POST, &item.post),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
                (Method::HEAD, &item.head),
                (Method::OPTIONS, &item.options),
                (Method::TRACE, &item.trace),
            ];
            for (method, operation) in operations {
                if operation.is_some() {
                    documented.insert((method.to_string(), path.clone()));
                }
            }
        }
        let table: BTreeSet<(String, String)> =
            ROUTES.iter().map(|route| (route.method.to_string(), route.path.to_owned())).collect();
        assert_eq!(table.len(), ROUTES.len(), "a (method, path) is in the table twice");
        let undocumented: Vec<_> = table.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&table).collect();
        assert!(
            undocumented.is_empty(),
            "routes the API document does not list (add #[utoipa::path]): {undocumented:?}"
        );
        assert!(unserved.is_empty(), "documented operations the route table does not serve: {unserved:?}");
    }

    #[test]
    fn no_request_that_changes_something_waits_with_the_reads() {
        for route in &ROUTES {
            if route.method != Method::GET {
                assert_ne!(
                    route.admit,
                    In(Reads),
                    "{} {} changes something: give it a class of its own",
                    route.method,
                    route.path
                );
            }
        }
    }

    #[test]
    fn each_row_is_found_by_a_request_for_it_and_nothing_else_is() {
        for route in &ROUTES {
            let path = example_path(route.path);
            let found = route_of(&route.method, &path).map(|found| found.path);
            assert_eq!(found, Some(route.path), "{} {path}", route.method);
            assert!(methods_allowed(&path).is_some_and(|allowed| allowed.contains(route.method.as_str())));
        }
        for path in ["/", "", "/v1", "/v1/wallet/", "/v1/payments//refunds", "/v1/payments/a/b/refunds", "/healthz/x"] {
            assert!(route_of(&Method::GET, path).is_none() && route_of(&Method::POST, path).is_none(), "{path}");
            assert_eq!(methods_allowed(path), None, "{path}");
            assert_eq!(admission_of(&Method::POST, path), UNMATCHED);
        }
        assert!(route_of(&Method::GET, "/v1/payments").is_none(), "GET is no operation of /v1/payments");
        assert_eq!(admission_of(&Method::GET, "/v1/payments"), UNMATCHED);
        assert_eq!(methods_allowed("/v1/admin/settlements").as_deref(), Some("GET, POST"));
        assert_eq!(methods_allowed("/v1/admin/policy").as_deref(), Some("GET, PUT"));
    }

    /// The gate's `classify` as it was before this table (string matching; an unknown route in
    /// the read class), kept as the oracle that moving the classes into the table changed none.
    fn classify_before_the_table(method: &Method, path: &str) -> Option<Class> {
        match (method, path) {
            (_, "/healthz" | "/metrics" | "/openapi.json") => None,
            (&Method::POST, "/v1/payments") => Some(Class::Pos),
            (&Method::POST, path) if path.starts_with("/v1/payments/") && path.ends_with("/refunds") => {
                Some(Class::Pos)
            }
            (&Method::POST, "/v1/wallet/charges" | "/v1/wallet/gifts" | "/v1/wallet/payment-codes") => {
                Some(Class::CitizenMoney)
            }
            (&Method::DELETE, "/v1/sessions/current") => Some(Class::CitizenMoney),
            (&Method::POST, "/v1/sessions") => None,
            (&Method::POST, "/v1/citizens" | "/v1/citizens/password") => Some(Class::Logins),
            (_, path) if path.starts_with("/v1/admin/") => Some(Class::Admin),
            _ => Some(Class::Reads),
        }
    }

    #[test]
    fn every_route_keeps_the_class_it_had_before_the_table() {
        // Rows added since, whose class was chosen in the row and which the old matching would
        // have put with the reads.
        let added_since = [(Method::POST, "/v1/me/password")];
        for route in ROUTES.iter().filter(|route| !added_since.contains(&(route.method.clone(), route.path))) {
            let path = example_path(route.path);
            let before = match classify_before_the_table(&route.method, &path) {
                None => Exempt,
                Some(class) => In(class),
            };
            assert_eq!(admission_of(&route.method, &path), before, "{} {}", route.method, route.path);
        }
    }

    #[test]
    fn requests_are_classified_by_who_needs_them_most() {
        assert_eq!(admission_of(&Method::POST, "/v1/payments"), In(Pos));
        assert_eq!(admission_of(&Method::POST, "/v1/payments/abc/refunds"), In(Pos));
        assert_eq!(admission_of(&Method::POST, "/v1/wallet/charges"), In(CitizenMoney));
        assert_eq!(admission_of(&Method::GET, "/v1/wallet"), In(Reads));
        assert_eq!(admission_of(&Method::GET, "/v1/merchant/sales"), In(Reads));
        assert_eq!(admission_of(&Method::POST, "/v1/citizens"), In(Logins));
        assert_eq!(admission_of(&Method::POST, "/v1/sessions"), Exempt);
        assert_eq!(admission_of(&Method::GET, "/v1/admin/settlements/2030-01-01"), In(Admin));
        assert_eq!(admission_of(&Method::GET, "/healthz"), Exempt);
        assert_eq!(admission_of(&Method::GET, "/console/"), Exempt);
        assert_eq!(admission_of(&Method::GET, "/console/pages/overview.js"), Exempt);
        assert_eq!(admission_of(&Method::POST, "/console"), Exempt, "answered 405 from memory");
        assert_eq!(admission_of(&Method::GET, "/consoles"), UNMATCHED);
    }

    #[test]
    fn each_row_has_a_request_series_of_its_own() {
        let metrics = request_metrics();
        let series: BTreeSet<usize> = ROUTES
            .iter()
            .map(|route| metrics.series_of(metrics::method_slot(&route.method), Some(route.path)))
            .collect();
        assert!(!series.contains(&metrics::UNMATCHED), "a row without a series");
        assert_eq!(series.len(), ROUTES.len(), "two rows counted in one series");
    }
}
