//! Business dates and months in Korea Standard Time.
//!
//! The city's books close by the KST calendar day (UTC+09:00, no daylight saving), and monthly
//! limits reset on the first of the KST month. Every function here takes the instant as an
//! argument: the core reads no clock.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// KST is nine hours ahead of UTC all year round.
const KST_OFFSET_SECONDS: i32 = 9 * 3600;

fn kst() -> FixedOffset {
    FixedOffset::east_opt(KST_OFFSET_SECONDS).expect("nine hours is a valid offset")
}

/// The calendar date in KST on which something happened: the unit of settlement.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BusinessDate(NaiveDate);

/// A calendar month in KST: the period of the charge limit and the cashback cap.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Month {
    year: i32,
    /// 1 to 12.
    month: u32,
}

/// Why a text is not a business date or a month.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("{0:?} is not a date; write it as YYYY-MM-DD, e.g. \"2026-12-01\"")]
    NotDate(String),
    #[error("{0:?} is not a month; write it as YYYY-MM, e.g. \"2026-12\"")]
    NotMonth(String),
}

impl BusinessDate {
    /// The KST date of a UTC instant.
    pub fn of(instant: DateTime<Utc>) -> BusinessDate {
        BusinessDate(instant.with_timezone(&kst()).date_naive())
    }

    /// Parses exactly `YYYY-MM-DD` (ten characters, a real calendar date).
    pub fn parse(text: &str) -> Result<BusinessDate, CalendarError> {
        let is_shape = text.len() == 10
            && text.bytes().enumerate().all(|(index, byte)| match index {
                4 | 7 => byte == b'-',
                _ => byte.is_ascii_digit(),
            });
        if !is_shape {
            return Err(CalendarError::NotDate(text.to_owned()));
        }
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(BusinessDate)
            .map_err(|_| CalendarError::NotDate(text.to_owned()))
    }

    pub fn from_naive(date: NaiveDate) -> BusinessDate {
        BusinessDate(date)
    }

    pub fn naive(self) -> NaiveDate {
        self.0
    }

    pub fn month(self) -> Month {
        Month { year: self.0.year(), month: self.0.month() }
    }

    /// The day after, for walking a range of dates.
    pub fn next(self) -> Option<BusinessDate> {
        self.0.succ_opt().map(BusinessDate)
    }

    /// The day before.
    pub fn previous(self) -> Option<BusinessDate> {
        self.0.pred_opt().map(BusinessDate)
    }

    /// The instant the day begins: 00:00 KST (the previous day's [`BusinessDate::end`]).
    pub fn start(self) -> Option<DateTime<Utc>> {
        self.previous()?.end()
    }

    /// The instant the day ends: 24:00 KST, the first instant of the next day. An allowance
    /// granted "until" a date may be spent up to, not including, this instant.
    pub fn end(self) -> Option<DateTime<Utc>> {
        let next = self.0.succ_opt()?.and_hms_opt(0, 0, 0)?;
        Some(next.and_local_timezone(kst()).single()?.with_timezone(&Utc))
    }

    /// The date `days` days later, if the calendar has it.
    pub fn plus_days(self, days: u32) -> Option<BusinessDate> {
        self.0.checked_add_days(chrono::Days::new(u64::from(days))).map(BusinessDate)
    }

    /// When a day left open becomes overdue for its close: 06:00 KST of the next day. Merchants
    /// are paid from the close, and a close run by a nightly timer is done well before then.
    pub fn close_overdue_at(self) -> Option<DateTime<Utc>> {
        let next = self.0.succ_opt()?;
        let six = next.and_hms_opt(CLOSE_OVERDUE_HOUR_KST, 0, 0)?;
        Some(six.and_local_timezone(kst()).single()?.with_timezone(&Utc))
    }

    /// The latest business date that is overdue for its close at `now`, if it is open: the day
    /// before yesterday before 06:00 KST, yesterday from then on.
    pub fn latest_overdue(now: DateTime<Utc>) -> Option<BusinessDate> {
        let yesterday = BusinessDate::of(now).previous()?;
        if yesterday.close_overdue_at()? <= now {
            Some(yesterday)
        } else {
            yesterday.previous()
        }
    }
}

/// The hour (KST) of the day after a business date from which its close is overdue.
const CLOSE_OVERDUE_HOUR_KST: u32 = 6;

impl Month {
    /// The KST month of a UTC instant.
    pub fn of(instant: DateTime<Utc>) -> Month {
        BusinessDate::of(instant).month()
    }

    /// Parses exactly `YYYY-MM`.
    pub fn parse(text: &str) -> Result<Month, CalendarError> {
        let error = || CalendarError::NotMonth(text.to_owned());
        let is_shape = text.len() == 7
            && text.bytes().enumerate().all(|(index, byte)| match index {
                4 => byte == b'-',
                _ => byte.is_ascii_digit(),
            });
        if !is_shape {
            return Err(error());
        }
        let year: i32 = text[..4].parse().map_err(|_| error())?;
        let month: u32 = text[5..].parse().map_err(|_| error())?;
        if !(1..=12).contains(&month) {
            return Err(error());
        }
        Ok(Month { year, month })
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn number(self) -> u32 {
        self.month
    }
}

impl fmt::Display for BusinessDate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0.format("%Y-%m-%d"))
    }
}

impl fmt::Debug for BusinessDate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, formatter)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:04}-{:02}", self.year, self.month)
    }
}

impl fmt::Debug for Month {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, formatter)
    }
}

impl FromStr for BusinessDate {
    type Err = CalendarError;
    fn from_str(text: &str) -> Result<Self, CalendarError> {
        BusinessDate::parse(text)
    }
}

impl FromStr for Month {
    type Err = CalendarError;
    fn from_str(text: &str) -> Result<Self, CalendarError> {
        Month::parse(text)
    }
}

macro_rules! serde_as_text {
    ($type:ty) => {
        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_as_text!(BusinessDate);
serde_as_text!(Month);

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn business_date_turns_at_kst_midnight() {
        assert_eq!(BusinessDate::of(utc("2026-11-30T14:59:59Z")).to_string(), "2026-11-30");
        assert_eq!(BusinessDate::of(utc("2026-11-30T15:00:00Z")).to_string(), "2026-12-01");
    }

    #[test]
    fn month_turns_at_kst_midnight_of_the_first() {
        assert_eq!(Month::of(utc("2026-11-30T14:59:59Z")).to_string(), "2026-11");
        assert_eq!(Month::of(utc("2026-11-30T15:00:00Z")).to_string(), "2026-12");
        assert_eq!(Month::of(utc("2026-12-31T15:00:00Z")).to_string(), "2027-01");
        assert!(Month::parse("2026-11").unwrap() < Month::parse("2027-01").unwrap());
    }

    #[test]
    fn a_day_is_overdue_for_its_close_from_six_kst_the_next_morning() {
        let date = BusinessDate::parse("2026-11-30").unwrap();
        assert_eq!(date.close_overdue_at(), Some(utc("2026-11-30T21:00:00Z")));
        assert_eq!(BusinessDate::latest_overdue(utc("2026-11-30T20:59:59Z")).unwrap().to_string(), "2026-11-29");
        assert_eq!(BusinessDate::latest_overdue(utc("2026-11-30T21:00:00Z")).unwrap().to_string(), "2026-11-30");
        assert_eq!(BusinessDate::latest_overdue(utc("2026-12-01T14:59:59Z")).unwrap().to_string(), "2026-11-30");
    }

    #[test]
    fn parsing_takes_only_the_exact_forms() {
        assert_eq!(BusinessDate::parse("2026-02-28").unwrap().to_string(), "2026-02-28");
        for text in ["2026-02-30", "2026-2-28", "26-02-28", "2026-02-28T00:00", "", "2026/02/28", "+026-02-28"] {
            assert!(BusinessDate::parse(text).is_err(), "{text:?}");
        }
        assert_eq!(Month::parse("2026-12").unwrap().number(), 12);
        for text in ["2026-13", "2026-00", "2026-1", "2026", "2026-12-01"] {
            assert!(Month::parse(text).is_err(), "{text:?}");
        }
    }
}
