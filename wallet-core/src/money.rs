//! Money: whole Korean won, exact, over `rust_decimal`.
//!
//! The currency has no subunit, so every amount is a whole number of won. [`Won`] is a signed
//! whole amount (balances and history items can be negative); [`Amount`] is what a person may
//! ask to move: strictly positive and at most [`Amount::MAX_WON`]. [`Rate`] is a fraction from 0 to
//! 1 (cashback and fee rates). No float touches any of them.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest text accepted for an amount: enough for any `i64`, short enough that a hostile
/// megabyte of digits is refused before it is read.
const AMOUNT_TEXT_LEN_MAX: usize = 20;

/// A signed whole number of won.
///
/// Invariant: the decimal has scale 0 (no fractional digits), so equality, hashing and display
/// never see `1500.0` beside `1500`. Arithmetic is checked: an overflow is an error, never a wrap.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Won(Decimal);

/// Why a text is not an amount of money. The message says what was wrong and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is empty; give a whole number of won as a string, e.g. \"15000\"")]
    Empty,
    #[error("amount {0:?} is too long; at most {AMOUNT_TEXT_LEN_MAX} characters")]
    TooLong(String),
    #[error("amount {0:?} has a sign; give a positive whole number of won without + or -")]
    Signed(String),
    #[error("amount {0:?} has a fraction; the won has no subunit, give a whole number")]
    Fraction(String),
    #[error("amount {0:?} is not a plain whole number of won (digits 0-9 only, no exponent, separators or spaces)")]
    NotDigits(String),
    #[error("amount {0:?} has leading zeros; write it without them")]
    LeadingZeros(String),
    #[error("amount must be greater than zero")]
    Zero,
    #[error("amount {0} is above the maximum of {max} won", max = Amount::MAX_WON)]
    AboveMaximum(String),
    #[error("amount {0:?} is outside the range of a ledger amount")]
    OutOfRange(String),
}

/// An arithmetic result left the range the ledger can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("amount arithmetic overflowed")]
pub struct Overflow;

impl Won {
    pub const ZERO: Won = Won(Decimal::ZERO);

    /// A whole amount from an integer number of won.
    pub fn from_i64(won: i64) -> Won {
        Won(Decimal::from(won))
    }

    /// The whole number of won as an `i64`, the form the database stores.
    ///
    /// Returns `None` only for sums beyond ±9.2 × 10^18 won, which no ledger of this currency
    /// can reach (every amount is at most 10^12 and the holding limit bounds wallets).
    pub fn to_i64(self) -> Option<i64> {
        self.0.to_i64()
    }

    /// The value as a decimal (scale 0).
    pub fn to_decimal(self) -> Decimal {
        self.0
    }

    /// A decimal that must already be whole; `None` if it has a fractional part.
    pub fn from_decimal(value: Decimal) -> Option<Won> {
        if value.fract().is_zero() {
            Some(Won(normalize(value)))
        } else {
            None
        }
    }

    /// Parses a signed plain integer, as written in handover CSV files and history output:
    /// `15000`, `-300`, `0`. No `+`, no fraction, no exponent, no leading zeros.
    pub fn parse_signed(text: &str) -> Result<Won, AmountError> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if text.starts_with('+') {
            return Err(AmountError::Signed(text.to_owned()));
        }
        let magnitude = parse_digits(text, digits)?;
        if negative && magnitude.is_zero() {
            return Err(AmountError::NotDigits(text.to_owned()));
        }
        Ok(if negative { Won(-magnitude) } else { Won(magnitude) })
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    pub fn is_negative(self) -> bool {
        self.0.is_sign_negative() && !self.0.is_zero()
    }

    pub fn checked_add(self, other: Won) -> Result<Won, Overflow> {
        self.0.checked_add(other.0).map(Won).ok_or(Overflow)
    }

    pub fn checked_sub(self, other: Won) -> Result<Won, Overflow> {
        self.0.checked_sub(other.0).map(Won).ok_or(Overflow)
    }

    /// The additive inverse. Cannot overflow: the decimal range is symmetric.
    pub fn negate(self) -> Won {
        Won(normalize(-self.0))
    }

    /// `max(self - other, 0)`: what is left of a limit, which is zero (not negative) when the
    /// limit was lowered below what was already used.
    pub fn remaining_after(self, used: Won) -> Result<Won, Overflow> {
        let left = self.checked_sub(used)?;
        Ok(if left.is_negative() { Won::ZERO } else { left })
    }

    /// `floor(self × rate)`, the rule for cashback and merchant fees. Defined for non-negative
    /// amounts only; the product of two exact decimals is exact before the floor.
    pub fn floor_times(self, rate: Rate) -> Result<Won, Overflow> {
        assert!(!self.is_negative(), "floor_times of a negative amount {self}");
        let product = self.0.checked_mul(rate.0).ok_or(Overflow)?;
        Ok(Won(normalize(product.round_dp_with_strategy(0, RoundingStrategy::ToZero))))
    }

    /// `floor(self × numerator / denominator)` in exact integer arithmetic: the proportional
    /// share rule of refunds (cashback reversed, eligible spend given back).
    pub fn floor_share(self, numerator: Won, denominator: Won) -> Result<Won, Overflow> {
        assert!(!self.is_negative() && !numerator.is_negative(), "floor_share of negatives");
        assert!(!denominator.is_negative() && !denominator.is_zero(), "floor_share by {denominator}");
        let product = self.mantissa().checked_mul(numerator.mantissa()).ok_or(Overflow)?;
        let quotient = product / denominator.mantissa();
        i64::try_from(quotient).map(Won::from_i64).map_err(|_| Overflow)
    }

    /// `ceil(self / rate)` in exact integer arithmetic: the smallest amount whose share at
    /// `rate` is at least `self` (what of a charge bonus quota a cut bonus used). `rate` > 0.
    pub fn ceil_over(self, rate: Rate) -> Result<Won, Overflow> {
        assert!(!self.is_negative(), "ceil_over of a negative amount {self}");
        assert!(rate.0 > Decimal::ZERO, "ceil_over a zero rate");
        // rate = mantissa / 10^scale, so self / rate = self × 10^scale / mantissa.
        let scale = 10i128.checked_pow(rate.0.scale()).ok_or(Overflow)?;
        let numerator = self.mantissa().checked_mul(scale).ok_or(Overflow)?;
        let denominator = rate.0.mantissa();
        let quotient = (numerator + denominator - 1) / denominator;
        i64::try_from(quotient).map(Won::from_i64).map_err(|_| Overflow)
    }

    pub fn min(self, other: Won) -> Won {
        if self <= other {
            self
        } else {
            other
        }
    }

    pub fn max(self, other: Won) -> Won {
        if self >= other {
            self
        } else {
            other
        }
    }

    fn mantissa(self) -> i128 {
        debug_assert_eq!(self.0.scale(), 0);
        self.0.mantissa()
    }
}

/// Sets scale 0 and drops a negative zero, keeping the invariant of [`Won`].
fn normalize(value: Decimal) -> Decimal {
    let mut whole = value;
    whole.rescale(0);
    if whole.is_zero() {
        Decimal::ZERO
    } else {
        whole
    }
}

/// Parses the digits of an amount (no sign): at least one ASCII digit, no leading zero unless
/// the amount is zero itself. `original` is the whole text, for the error message.
fn parse_digits(original: &str, digits: &str) -> Result<Decimal, AmountError> {
    if original.is_empty() {
        return Err(AmountError::Empty);
    }
    if original.len() > AMOUNT_TEXT_LEN_MAX {
        let shown: String = original.chars().take(AMOUNT_TEXT_LEN_MAX).collect();
        return Err(AmountError::TooLong(format!("{shown}…")));
    }
    if digits.is_empty() {
        return Err(AmountError::NotDigits(original.to_owned()));
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        let is_fraction = digits.split_once('.').is_some_and(|(whole, fraction)| {
            !whole.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && fraction.bytes().all(|b| b.is_ascii_digit())
        });
        return Err(if is_fraction {
            AmountError::Fraction(original.to_owned())
        } else {
            AmountError::NotDigits(original.to_owned())
        });
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return Err(AmountError::LeadingZeros(original.to_owned()));
    }
    // Twenty digits at most fit the 96-bit mantissa of a decimal with room to spare.
    Decimal::from_str(digits).map_err(|_| AmountError::OutOfRange(original.to_owned()))
}

impl fmt::Display for Won {
    /// Plain integer, `-` for negatives: the API and CSV form.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, formatter)
    }
}

impl fmt::Debug for Won {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "₩{}", self.0)
    }
}

impl Serialize for Won {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Won {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Won::parse_signed(&text).map_err(serde::de::Error::custom)
    }
}

/// An amount a person asks to move: a whole number of won, greater than zero and at most
/// [`Amount::MAX_WON`]. Every command of the ledger takes this type, so a zero, negative,
/// fractional or absurd amount cannot reach a money rule.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Amount(Won);

impl Amount {
    /// The largest amount one command may move: one trillion won (API.md, Money conventions).
    pub const MAX_WON: i64 = 1_000_000_000_000;

    /// Parses an input amount exactly as API.md allows: a non-empty string of ASCII digits,
    /// no sign, fraction, exponent, separator, space or leading zero, from 1 to 10^12.
    pub fn parse(text: &str) -> Result<Amount, AmountError> {
        if text.starts_with(['+', '-']) {
            return Err(AmountError::Signed(text.to_owned()));
        }
        let value = parse_digits(text, text)?;
        Amount::try_from(Won(value))
    }

    /// An amount from an integer, checked like a parsed one.
    pub fn from_i64(won: i64) -> Result<Amount, AmountError> {
        Amount::try_from(Won::from_i64(won))
    }

    pub fn won(self) -> Won {
        self.0
    }
}

impl TryFrom<Won> for Amount {
    type Error = AmountError;

    fn try_from(value: Won) -> Result<Amount, AmountError> {
        if value.is_negative() {
            return Err(AmountError::Signed(value.to_string()));
        }
        if value.is_zero() {
            return Err(AmountError::Zero);
        }
        if value > Won::from_i64(Amount::MAX_WON) {
            return Err(AmountError::AboveMaximum(value.to_string()));
        }
        Ok(Amount(value))
    }
}

impl From<Amount> for Won {
    fn from(amount: Amount) -> Won {
        amount.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, formatter)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, formatter)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Amount::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A fraction from 0 to 1 inclusive: a cashback or fee rate.
///
/// Written as a plain decimal string (`"0"`, `"0.1"`, `"0.005"`, `"1"`), at most
/// [`Rate::FRACTION_DIGITS_MAX`] fractional digits, so `floor(amount × rate)` stays exact.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Rate(Decimal);

/// Why a text is not a rate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("rate {0:?} is not a plain decimal like \"0.1\" (digits, one optional point, no sign or exponent)")]
    NotDecimal(String),
    #[error("rate {0:?} has more than {max} fractional digits", max = Rate::FRACTION_DIGITS_MAX)]
    TooPrecise(String),
    #[error("rate {0:?} is above 1; rates go from \"0\" to \"1\"")]
    AboveOne(String),
}

impl Rate {
    pub const ZERO: Rate = Rate(Decimal::ZERO);
    pub const ONE: Rate = Rate(Decimal::ONE);
    pub const FRACTION_DIGITS_MAX: usize = 9;

    pub fn parse(text: &str) -> Result<Rate, RateError> {
        let not_decimal = || RateError::NotDecimal(text.to_owned());
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
            Some(_) => return Err(not_decimal()),
            None => (text, ""),
        };
        let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || whole.len() > 1 || !all_digits(whole) || !all_digits(fraction) {
            return Err(if whole.len() > 1 && all_digits(whole) && all_digits(fraction) {
                RateError::AboveOne(text.to_owned())
            } else {
                not_decimal()
            });
        }
        if fraction.len() > Rate::FRACTION_DIGITS_MAX {
            return Err(RateError::TooPrecise(text.to_owned()));
        }
        let value = Decimal::from_str(text).map_err(|_| not_decimal())?;
        if value > Decimal::ONE {
            return Err(RateError::AboveOne(text.to_owned()));
        }
        Ok(Rate(value.normalize()))
    }

    pub fn to_decimal(self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, formatter)
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Rate({})", self.0)
    }
}

impl FromStr for Rate {
    type Err = RateError;
    fn from_str(text: &str) -> Result<Rate, RateError> {
        Rate::parse(text)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Rate::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl PartialEq<Won> for Amount {
    fn eq(&self, other: &Won) -> bool {
        self.0 == *other
    }
}

impl PartialOrd<Won> for Amount {
    fn partial_cmp(&self, other: &Won) -> Option<Ordering> {
        self.0.partial_cmp(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn won(value: i64) -> Won {
        Won::from_i64(value)
    }

    #[test]
    fn parses_the_allowed_input_forms() {
        assert_eq!(Amount::parse("15000").unwrap().won(), won(15_000));
        assert_eq!(Amount::parse("1").unwrap().won(), won(1));
        assert_eq!(Amount::parse("1000000000000").unwrap().won(), won(1_000_000_000_000));
    }

    #[test]
    fn refuses_every_other_input_form_with_its_reason() {
        type Expectation = fn(&AmountError) -> bool;
        let cases: &[(&str, Expectation)] = &[
            ("", |e| matches!(e, AmountError::Empty)),
            ("10.5", |e| matches!(e, AmountError::Fraction(_))),
            ("10.0", |e| matches!(e, AmountError::Fraction(_))),
            ("1e3", |e| matches!(e, AmountError::NotDigits(_))),
            ("1E3", |e| matches!(e, AmountError::NotDigits(_))),
            ("+100", |e| matches!(e, AmountError::Signed(_))),
            ("-100", |e| matches!(e, AmountError::Signed(_))),
            ("0", |e| matches!(e, AmountError::Zero)),
            ("00", |e| matches!(e, AmountError::LeadingZeros(_))),
            ("0100", |e| matches!(e, AmountError::LeadingZeros(_))),
            ("1000000000001", |e| matches!(e, AmountError::AboveMaximum(_))),
            ("99999999999999999999", |e| matches!(e, AmountError::AboveMaximum(_))),
            ("999999999999999999999", |e| matches!(e, AmountError::TooLong(_))),
            ("15,000", |e| matches!(e, AmountError::NotDigits(_))),
            (" 15000", |e| matches!(e, AmountError::NotDigits(_))),
            ("15000 ", |e| matches!(e, AmountError::NotDigits(_))),
            ("١٥", |e| matches!(e, AmountError::NotDigits(_))),
            (".5", |e| matches!(e, AmountError::NotDigits(_))),
            ("5.", |e| matches!(e, AmountError::Fraction(_))),
            ("NaN", |e| matches!(e, AmountError::NotDigits(_))),
            ("0x10", |e| matches!(e, AmountError::NotDigits(_))),
        ];
        for (text, expected) in cases {
            let error = Amount::parse(text).expect_err(text);
            assert!(expected(&error), "{text:?} gave {error:?}");
            assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn signed_form_round_trips_and_refuses_plus_and_minus_zero() {
        for value in [-300, 0, 15_000, -1, i64::MAX] {
            let text = won(value).to_string();
            assert_eq!(Won::parse_signed(&text).unwrap(), won(value));
        }
        assert!(Won::parse_signed("+5").is_err());
        assert!(Won::parse_signed("-0").is_err());
        assert!(Won::parse_signed("-").is_err());
        assert!(Won::parse_signed("-05").is_err());
    }

    #[test]
    fn floor_times_floors_toward_zero() {
        let tenth = Rate::parse("0.1").unwrap();
        assert_eq!(won(12_345).floor_times(tenth).unwrap(), won(1_234));
        assert_eq!(won(9).floor_times(tenth).unwrap(), won(0));
        assert_eq!(won(5).floor_times(Rate::ONE).unwrap(), won(5));
        let fee = Rate::parse("0.005").unwrap();
        assert_eq!(won(199_999).floor_times(fee).unwrap(), won(999));
        assert_eq!(
            won(1_000_000_000_000).floor_times(Rate::parse("0.999999999").unwrap()).unwrap(),
            won(999_999_999_000)
        );
    }

    #[test]
    fn floor_share_is_exact_for_large_figures() {
        assert_eq!(won(1_234).floor_share(won(1_000), won(12_345)).unwrap(), won(99));
        let big = won(1_000_000_000_000);
        assert_eq!(big.floor_share(big, big).unwrap(), big);
        assert_eq!(won(999_999_999_999).floor_share(won(1), big).unwrap(), won(0));
    }

    #[test]
    fn arithmetic_overflow_is_an_error_not_a_wrap() {
        let huge = Won::from_decimal(Decimal::MAX).unwrap();
        assert_eq!(huge.checked_add(won(1)), Err(Overflow));
        assert_eq!(huge.negate().checked_sub(won(1)), Err(Overflow));
    }

    #[test]
    fn remaining_after_is_zero_when_overused() {
        assert_eq!(won(100).remaining_after(won(30)).unwrap(), won(70));
        assert_eq!(won(100).remaining_after(won(130)).unwrap(), won(0));
    }

    #[test]
    fn rates_parse_from_zero_to_one_only() {
        for (text, shown) in
            [("0", "0"), ("1", "1"), ("0.1", "0.1"), ("0.10", "0.1"), ("1.000", "1"), ("0.005", "0.005")]
        {
            assert_eq!(Rate::parse(text).unwrap().to_string(), shown);
        }
        for text in ["", ".5", "5.", "-0.1", "+0.1", "1.5", "2", "10", "1e-1", "0.1234567891", "0,1", " 0.1"] {
            assert!(Rate::parse(text).is_err(), "{text:?} accepted");
        }
        assert!(matches!(Rate::parse("1.0001"), Err(RateError::AboveOne(_))));
        assert!(matches!(Rate::parse("12.5"), Err(RateError::AboveOne(_))));
    }

    #[test]
    fn money_serializes_as_strings_and_parses_strictly() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Body {
            balance: Won,
            amount: Amount,
            rate: Rate,
        }
        let body =
            Body { balance: won(-300), amount: Amount::from_i64(15_000).unwrap(), rate: Rate::parse("0.1").unwrap() };
        let text = serde_json::to_string(&body).unwrap();
        assert_eq!(text, r#"{"balance":"-300","amount":"15000","rate":"0.1"}"#);
        assert_eq!(serde_json::from_str::<Body>(&text).unwrap(), body);
        assert!(serde_json::from_str::<Body>(r#"{"balance":"0","amount":15000,"rate":"0.1"}"#).is_err());
        assert!(serde_json::from_str::<Body>(r#"{"balance":"0","amount":"1.5","rate":"0.1"}"#).is_err());
    }
}
