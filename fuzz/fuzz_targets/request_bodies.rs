//! Every request body parser of `wallet-server` (`http::requests`, what each handler calls on
//! its body) on any bytes.
//!
//! The bytes are read as the JSON extractor reads them (at most `BODY_BYTES_MAX`, else 413; not
//! JSON, else 400), then given to every parser. Checked: no parser panics; a refusal is a 4xx
//! with a code and a message (never a 5xx, which would say the server failed); what a parser
//! accepts matches the body: amounts re-render to the body's strings, ids and dates are the
//! body's.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wallet_server::api::ApiError;
use wallet_server::http::requests;

#[track_caller]
fn refused_well(endpoint: &str, error: &ApiError) {
    assert!((400..500).contains(&error.status), "{endpoint}: a body gave {error}");
    assert!(!error.message.is_empty(), "{endpoint}: {error:?}");
    let body = error.body();
    assert_eq!(body["error"]["code"], error.code.as_str(), "{endpoint}");
}

fn text<'a>(body: &'a Value, field: &str) -> &'a str {
    body[field].as_str().unwrap_or_else(|| panic!("an accepted body's {field} is a string: {body}"))
}

fuzz_target!(|data: &[u8]| {
    if data.len() > requests::BODY_BYTES_MAX {
        return; // 413 before any parser (actix's JSON limit).
    }
    let Ok(body) = serde_json::from_slice::<Value>(data) else { return }; // 400
    match requests::parse_charge(body.clone()) {
        Ok(amount) => assert_eq!(amount.to_string(), text(&body, "amount")),
        Err(error) => refused_well("charge", &error),
    }
    match requests::parse_gift(body.clone()) {
        Ok((to, amount)) => {
            assert_eq!(amount.to_string(), text(&body, "amount"));
            assert_eq!(to.as_str(), text(&body, "to_wallet_id"));
        }
        Err(error) => refused_well("gift", &error),
    }
    match requests::parse_payment(body.clone()) {
        Ok((code, amount)) => {
            assert_eq!(amount.to_string(), text(&body, "amount"));
            assert_eq!(code.as_str(), text(&body, "payment_code"));
        }
        Err(error) => refused_well("payment", &error),
    }
    // The payment id of the path, here taken from the body's first string field if any.
    let path_id = body.as_object().and_then(|fields| fields.values().find_map(Value::as_str)).unwrap_or("p-1");
    match requests::parse_refund(path_id, body.clone()) {
        Ok((payment, amount)) => {
            assert_eq!(amount.to_string(), text(&body, "amount"));
            assert_eq!(payment.as_str(), path_id);
        }
        Err(error) => refused_well("refund", &error),
    }
    match requests::parse_top_up(body.clone()) {
        Ok(amount) => assert_eq!(amount.to_string(), text(&body, "amount")),
        Err(error) => refused_well("top-up", &error),
    }
    match requests::parse_policy(body.clone()) {
        Ok(policy) => {
            for (field, won) in [
                ("cashback_monthly_spend_cap", policy.cashback_monthly_spend_cap),
                ("monthly_charge_limit", policy.monthly_charge_limit),
                ("holding_limit", policy.holding_limit),
            ] {
                assert_eq!(won.to_string(), text(&body, field));
                assert!(!won.is_negative() && won.to_i64().is_some_and(|won| won <= 1_000_000_000_000));
            }
            for (field, rate) in
                [("cashback_rate", policy.cashback_rate), ("merchant_fee_rate", policy.merchant_fee_rate)]
            {
                assert_eq!(wallet_core::Rate::parse(text(&body, field)), Ok(rate));
            }
        }
        Err(error) => refused_well("policy", &error),
    }
    match requests::parse_close_day(body.clone()) {
        Ok(date) => assert_eq!(date.to_string(), text(&body, "business_date")),
        Err(error) => refused_well("close day", &error),
    }
    match requests::parse_test_clock(body.clone()) {
        Ok(now) => {
            let given = chrono::DateTime::parse_from_rfc3339(text(&body, "now")).unwrap();
            assert_eq!(now, given);
        }
        Err(error) => refused_well("test clock", &error),
    }
    match requests::parse_merchant(body.clone()) {
        Ok(merchant) => {
            assert_eq!(merchant.login, text(&body, "login"));
            for field in [&merchant.name, &merchant.business_number, &merchant.bank_account]
                .into_iter()
                .chain(merchant.category.as_ref())
            {
                assert!(!field.is_empty() && field.len() <= 200 && field.trim() == field);
                assert!(!field.chars().any(char::is_control));
            }
        }
        Err(error) => refused_well("merchant", &error),
    }
    match requests::parse_registration(body.clone()) {
        Ok((login, password)) => {
            assert!((3..=64).contains(&login.len()) && (8..=128).contains(&password.chars().count()));
        }
        Err(error) => refused_well("registration", &error),
    }
    match requests::parse_login_body(body.clone()) {
        Ok(login) => assert_eq!(login.login, text(&body, "login")),
        Err(error) => refused_well("login", &error),
    }
    match requests::parse_new_password(body.clone()) {
        Ok(new) => assert!(new.reset_code.len() <= 64 && (8..=128).contains(&new.password.chars().count())),
        Err(error) => refused_well("new password", &error),
    }
    // Programs (docs/API.md, Part 2), checked on a fixed instant: the core refuses an
    // `expires_on` before it.
    let now = chrono::DateTime::from_timestamp(1_900_000_000, 0).expect("a valid instant");
    match requests::parse_program(body.clone(), now) {
        Ok(program) => {
            assert_eq!(program.name, text(&body, "name").trim());
            assert!(!program.name.is_empty() && program.name.chars().count() <= 200);
        }
        Err(error) => refused_well("program", &error),
    }
    match requests::parse_program_top_up(body.clone()) {
        Ok(amount) => assert_eq!(amount.to_string(), text(&body, "amount")),
        Err(error) => refused_well("program top-up", &error),
    }
    match requests::parse_grants(body.clone()) {
        Ok(lines) => {
            let given = body["grants"].as_array().expect("accepted grants are a list");
            assert_eq!(lines.len(), given.len());
            assert!((1..=1000).contains(&lines.len()));
            for (line, given) in lines.iter().zip(given) {
                assert_eq!(line.wallet.as_str(), text(given, "wallet_id"));
                assert_eq!(line.amount.to_string(), text(given, "amount"));
            }
        }
        Err(error) => refused_well("grants", &error),
    }
    match requests::parse_merchant_patch(body.clone()) {
        Ok(patch) => {
            for field in patch.name.iter().chain(patch.bank_account.iter()).chain(patch.category.iter().flatten()) {
                assert!(!field.is_empty() && field.chars().count() <= 200 && field.trim() == field);
            }
        }
        Err(error) => refused_well("merchant patch", &error),
    }
});
