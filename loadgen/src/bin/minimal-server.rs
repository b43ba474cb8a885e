//! `minimal-server`: the ceiling for the payments benchmark. An actix-web server that does no
//! work: `GET /v1/wallet` and `POST /v1/payments` answer fixed JSON of the same shape as the
//! wallet server's, after the same cheap checks a request must pass before any real work (a
//! Bearer header; for payments an `Idempotency-Key` and a JSON body). No database, no state.
//!
//! `minimal-server 127.0.0.1:PORT [WORKERS]`; WORKERS defaults to the number of cores, as
//! wallet-server's `WALLET_WORKERS` does. Loopback only.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

/// Same as wallet-server's default `WALLET_KEEP_ALIVE_S`.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// Bodies larger than this are refused (a payment body is under 100 bytes).
const BODY_BYTES_MAX: usize = 16 * 1024;

fn has_bearer(request: &HttpRequest) -> bool {
    request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("Bearer ") && value.len() > "Bearer ".len())
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .json(serde_json::json!({"error": {"code": "unauthorized", "message": "a Bearer token is required"}}))
}

async fn wallet(request: HttpRequest) -> HttpResponse {
    if !has_bearer(&request) {
        return unauthorized();
    }
    HttpResponse::Ok().json(serde_json::json!({
        "wallet_id": "00000000-0000-4000-8000-000000000001",
        "balance": "1900000",
        "currency": "KRW",
        "month": "2026-11",
        "charged_this_month": "1900000",
        "charge_limit_remaining": "100000",
        "cashback_earned_this_month": "0",
        "cashback_eligible_spend_remaining": "500000",
    }))
}

async fn pay(request: HttpRequest, body: web::Json<serde_json::Value>) -> HttpResponse {
    if !has_bearer(&request) {
        return unauthorized();
    }
    if request.headers().get("idempotency-key").is_none() {
        return HttpResponse::BadRequest().json(
            serde_json::json!({"error": {"code": "validation_failed", "message": "Idempotency-Key is required"}}),
        );
    }
    let amount = body.get("amount").cloned().unwrap_or(serde_json::Value::Null);
    HttpResponse::Created().json(serde_json::json!({
        "payment_id": "00000000-0000-4000-8000-000000000002",
        "amount": amount,
        "cashback": "100",
        "status": "approved",
        "at": "2026-11-25T12:00:00Z",
    }))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

fn main() -> ExitCode {
    let mut arguments = std::env::args().skip(1);
    let Some(bind) = arguments.next() else {
        eprintln!("usage: minimal-server 127.0.0.1:PORT [WORKERS]");
        return ExitCode::FAILURE;
    };
    let address: SocketAddr = match bind.parse() {
        Ok(address) => address,
        Err(error) => {
            eprintln!("minimal-server: {bind:?} is not an address (give 127.0.0.1:PORT): {error}");
            return ExitCode::FAILURE;
        }
    };
    if !address.ip().is_loopback() {
        eprintln!("minimal-server: {address} is not a loopback address; give 127.0.0.1:PORT");
        return ExitCode::FAILURE;
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = match arguments.next().map(|text| text.parse::<usize>()) {
        None => cores,
        Some(Ok(workers)) if (1..=256).contains(&workers) => workers,
        Some(_) => {
            eprintln!("minimal-server: WORKERS must be 1 to 256");
            return ExitCode::FAILURE;
        }
    };
    let result = actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| {
            App::new()
                .app_data(web::JsonConfig::default().limit(BODY_BYTES_MAX))
                .route("/healthz", web::get().to(healthz))
                .route("/v1/wallet", web::get().to(wallet))
                .route("/v1/payments", web::post().to(pay))
        })
        .workers(workers)
        .keep_alive(KEEP_ALIVE)
        .bind(address)?
        .run()
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("minimal-server: {error}");
            ExitCode::FAILURE
        }
    }
}
