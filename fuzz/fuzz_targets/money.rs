//! The money parsers of `wallet-core` (`Amount`, `Won`, `Rate`) on any text, against the forms
//! API.md and the OpenAPI document allow, and the floor rule on what they accept.
//!
//! The input is split at its first `,`; each side is parsed as an amount, a signed amount and a
//! rate. Checked: no parser panics; an accepted text re-renders to itself (a rate to a text that
//! parses back to the same rate); a text is accepted exactly when it has the documented form and
//! range; serde agrees with the parser; `floor_times` and `floor_share` of accepted figures match
//! an independent computation in `i128`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wallet_core::{Amount, Rate, Won};

const MAX_WON: i128 = 1_000_000_000_000;

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// `^[1-9][0-9]{0,12}$`, the OpenAPI pattern of a request amount, and at most 10^12.
fn is_documented_amount(text: &str) -> bool {
    all_digits(text) && !text.starts_with('0') && text.len() <= 13 && text.parse::<i128>().unwrap() <= MAX_WON
}

/// `0` or an optional `-` before digits without a leading zero, at most 20 characters: the
/// signed plain integer of the handover CSV files and of every amount the API writes.
fn is_signed_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    text.len() <= 20 && all_digits(digits) && (digits == "0" && digits.len() == text.len() || !digits.starts_with('0'))
}

/// `^[01](\.[0-9]{1,9})?$`, the OpenAPI pattern of a rate, and at most 1.
fn is_documented_rate(text: &str) -> bool {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let form = (whole == "0" || whole == "1")
        && fraction.is_none_or(|fraction| (1..=9).contains(&fraction.len()) && all_digits(fraction));
    form && (whole == "0" || fraction.is_none_or(|fraction| fraction.bytes().all(|byte| byte == b'0')))
}

/// A rate as `numerator / 10^9`, exactly (at most 9 fraction digits).
fn rate_billionths(rate: Rate) -> i128 {
    let decimal = rate.to_decimal();
    let scale = decimal.scale();
    assert!(scale <= 9, "rate {rate} has {scale} fraction digits");
    decimal.mantissa() * 10i128.pow(9 - scale)
}

/// The exact value (a `Won` has scale 0, so its mantissa is its value).
fn won_i128(won: Won) -> i128 {
    let decimal = won.to_decimal();
    assert_eq!(decimal.scale(), 0, "{won:?} has a fraction");
    decimal.mantissa()
}

struct Parsed {
    amount: Option<Amount>,
    signed: Option<Won>,
    rate: Option<Rate>,
}

fn check(text: &str) -> Parsed {
    let amount = match Amount::parse(text) {
        Ok(amount) => {
            assert_eq!(amount.to_string(), text, "an accepted amount re-renders as given");
            assert!(is_documented_amount(text), "{text:?} accepted as an amount");
            assert_eq!(Won::parse_signed(text), Ok(amount.won()), "an amount is a signed amount too");
            let json = serde_json::to_string(&amount).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Amount>(&json).unwrap(), amount);
            Some(amount)
        }
        Err(error) => {
            assert!(!is_documented_amount(text), "{text:?} refused as an amount: {error}");
            assert!(!error.to_string().is_empty());
            assert!(serde_json::from_value::<Amount>(serde_json::Value::String(text.to_owned())).is_err());
            None
        }
    };
    let signed = match Won::parse_signed(text) {
        Ok(won) => {
            assert_eq!(won.to_string(), text, "an accepted signed amount re-renders as given");
            assert!(is_signed_integer(text), "{text:?} accepted as a signed amount");
            assert_eq!(won_i128(won), text.parse::<i128>().unwrap());
            assert_eq!(won.negate().negate(), won);
            Some(won)
        }
        Err(error) => {
            assert!(!is_signed_integer(text), "{text:?} refused as a signed amount: {error}");
            assert!(!error.to_string().is_empty());
            None
        }
    };
    let rate = match Rate::parse(text) {
        Ok(rate) => {
            assert!(is_documented_rate(text), "{text:?} accepted as a rate");
            let shown = rate.to_string();
            assert_eq!(Rate::parse(&shown), Ok(rate), "a rate's rendering {shown:?} parses back to it");
            let billionths = rate_billionths(rate);
            assert!((0..=1_000_000_000).contains(&billionths), "rate {rate} outside 0..=1");
            Some(rate)
        }
        Err(error) => {
            assert!(!is_documented_rate(text), "{text:?} refused as a rate: {error}");
            assert!(!error.to_string().is_empty());
            None
        }
    };
    Parsed { amount, signed, rate }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (left, right) = text.split_once(',').unwrap_or((text, ""));
    let (left, right) = (check(left), check(right));
    if let (Some(amount), Some(rate)) = (left.amount, right.rate) {
        let cashback = amount.won().floor_times(rate).expect("amount × rate fits");
        assert_eq!(won_i128(cashback), won_i128(amount.won()) * rate_billionths(rate) / 1_000_000_000);
    }
    if let (Some(amount), Some(share)) = (left.amount, right.amount) {
        // floor(a × s / a') with a' ≥ 1: the refund share rule on two accepted amounts.
        let part = amount.won().floor_share(share.won(), amount.won()).expect("shares fit");
        assert_eq!(won_i128(part), won_i128(amount.won()) * won_i128(share.won()) / won_i128(amount.won()));
    }
    if let (Some(left), Some(right)) = (left.signed, right.signed) {
        let sum = left.checked_add(right).expect("two 20-character integers add without overflow");
        assert_eq!(won_i128(sum), won_i128(left) + won_i128(right));
    }
});
