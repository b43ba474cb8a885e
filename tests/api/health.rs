//! Health and operations endpoints.

use serde_json::json;

use crate::support::{Backend, TestServer, ADMIN_LOGIN, PASSWORD};

/// Paths of the contract without path parameters; the OpenAPI document must describe them all.
const CONTRACT_PATHS: [&str; 18] = [
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/v1/citizens",
    "/v1/sessions",
    "/v1/sessions/current",
    "/v1/wallet",
    "/v1/wallet/charges",
    "/v1/wallet/gifts",
    "/v1/wallet/payment-codes",
    "/v1/wallet/transactions",
    "/v1/payments",
    "/v1/merchant/sales",
    "/v1/admin/merchants",
    "/v1/admin/policy",
    "/v1/admin/cashback-budget/top-ups",
    "/v1/admin/cashback-budget",
    "/v1/admin/ledger/trial-balance",
];

fn operations_endpoints_answer(backend: Backend) {
    let server = TestServer::start(backend);
    let api = &server.client();

    assert_eq!(api.get("/healthz", "").expect(200), json!({"status": "ok"}));

    let metrics = api.get("/metrics", "");
    assert_eq!(metrics.status, 200, "{metrics}");
    assert!(metrics.header("content-type").starts_with("text/plain"), "Prometheus text expected: {metrics}");
    for line in [
        "wallet_sessions_active 0",
        "wallet_sessions_capacity 1000",
        "wallet_waiting_room_tickets 0",
        "wallet_requests_shed_total{class=\"pos\"} 0",
        "# TYPE wallet_requests_admitted_total counter",
    ] {
        assert!(metrics.text.lines().any(|seen| seen == line), "/metrics lacks {line:?}:\n{}", metrics.text);
    }

    // An admin created while the server runs can log in.
    server.create_admin(ADMIN_LOGIN, PASSWORD);
    let admin = api.login(ADMIN_LOGIN, PASSWORD);
    let trial = api.get("/v1/admin/ledger/trial-balance", &admin).expect(200);
    assert_eq!(trial["total"], "0", "{trial}");
}

scenarios!(operations_endpoints_answer);

#[test]
fn openapi_document_describes_the_contract() {
    let server = TestServer::start(Backend::Sqlite);
    let openapi = server.client().get("/openapi.json", "").expect(200);
    let version = openapi["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "not an OpenAPI 3 document: openapi = {:?}", openapi["openapi"]);
    for path in CONTRACT_PATHS {
        assert!(openapi["paths"].get(path).is_some(), "the OpenAPI document does not describe {path}");
    }
    for path in
        ["/v1/waiting-room/{ticket}", "/v1/payments/{payment_id}/refunds", "/v1/admin/settlements/{business_date}"]
    {
        assert!(openapi["paths"].get(path).is_some(), "the OpenAPI document does not describe {path}");
    }
    let payment = &openapi["paths"]["/v1/payments"]["post"];
    assert!(payment["responses"].get("422").is_some(), "POST /v1/payments documents no 422: {payment}");
}
