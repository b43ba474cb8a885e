//! A citizen's login through the waiting room, as API.md tells a client to do it: on 503
//! `waiting_room` keep the ticket and retry the same credentials with it after `Retry-After`.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::client::{Api, Call, Outcome};

/// How a client waits between login attempts.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Longest sleep between two attempts, whatever `Retry-After` says. The server drops a
    /// ticket not polled for 60 s, so a client must come back well within that.
    pub retry_after_cap: Duration,
    /// Up to this much random delay is added to every sleep (never subtracted).
    pub jitter_max: Duration,
    /// Between login retries, poll `GET /v1/waiting-room/{ticket}` and retry the login only once
    /// it says `ready` (or the ticket is gone).
    pub poll_waiting_room: bool,
    /// Most requests (logins plus polls) one journey sends.
    pub requests_max: u32,
}

/// Sleeps shorter than this are raised to it, so a `Retry-After: 0` cannot make a hot loop.
const SLEEP_MIN: Duration = Duration::from_millis(100);

/// The sleep before the next attempt: `Retry-After` (or 1 s without one), limited to the cap,
/// plus `jitter`. Returns whether the cap shortened it.
pub fn retry_delay(retry_after_s: Option<u64>, cap: Duration, jitter: Duration) -> (Duration, bool) {
    let asked = Duration::from_secs(retry_after_s.unwrap_or(1));
    let capped = asked > cap;
    (asked.min(cap).max(SLEEP_MIN) + jitter, capped)
}

/// The first `waiting_room` answer a citizen got.
#[derive(Debug, Clone, Copy)]
pub struct FirstTicket {
    pub position: u64,
    pub estimated_wait_s: u64,
    pub at: Instant,
}

/// How a login journey ended.
#[derive(Debug, Clone)]
pub enum LoginEnd {
    Admitted {
        token: String,
        at: Instant,
    },
    /// A final answer that is not worth retrying (401, 422...), as `"<status> <code>"`.
    Refused(String),
    Deadline,
    RequestsExhausted,
}

/// Everything one citizen's login went through.
#[derive(Debug, Clone)]
pub struct LoginJourney {
    pub end: LoginEnd,
    pub first_ticket: Option<FirstTicket>,
    /// Distinct tickets received; more than one means the server dropped or replaced a ticket.
    pub tickets_distinct: u32,
    pub login_attempts: u32,
    pub polls: u32,
    /// Sleeps that the cap made shorter than `Retry-After`.
    pub sleeps_capped: u32,
    pub retry_after_s_max: u64,
    /// `charge_bonus_opens_at` of the last `waiting_room` answer that carried one (the opening
    /// of this citizen's cohort of a charge bonus program shown).
    pub charge_bonus_opens_at: Option<String>,
}

/// Logs in through the waiting room until admitted, refused, out of requests or past `deadline`.
pub async fn login_through_waiting_room(
    api: &Api,
    kind: &'static str,
    login: &str,
    password: &str,
    policy: RetryPolicy,
    deadline: Instant,
) -> LoginJourney {
    let mut journey = LoginJourney {
        end: LoginEnd::RequestsExhausted,
        first_ticket: None,
        tickets_distinct: 0,
        login_attempts: 0,
        polls: 0,
        sleeps_capped: 0,
        retry_after_s_max: 0,
        charge_bonus_opens_at: None,
    };
    let mut ticket: Option<String> = None;
    while journey.login_attempts + journey.polls < policy.requests_max {
        journey.login_attempts += 1;
        let body = match &ticket {
            Some(ticket) => json!({"login": login, "password": password, "ticket": ticket}),
            None => json!({"login": login, "password": password}),
        };
        let outcome = api.send(Call::post(kind, "/v1/sessions", None, body), deadline).await;
        let retry_after_s = match outcome {
            Outcome::Answered(answer) if answer.status == 201 => {
                journey.end = match answer.body.get("token").and_then(Value::as_str) {
                    Some(token) => LoginEnd::Admitted { token: token.to_owned(), at: Instant::now() },
                    None => LoginEnd::Refused("201 without a token".to_owned()),
                };
                return journey;
            }
            Outcome::Answered(answer) if answer.status == 503 && answer.code.as_deref() == Some("waiting_room") => {
                let room = &answer.body["waiting_room"];
                let Some(issued) = room.get("ticket").and_then(Value::as_str) else {
                    journey.end = LoginEnd::Refused("503 waiting_room without a ticket".to_owned());
                    return journey;
                };
                if ticket.as_deref() != Some(issued) {
                    journey.tickets_distinct += 1;
                    ticket = Some(issued.to_owned());
                }
                if let Some(opens_at) = room.get("charge_bonus_opens_at").and_then(Value::as_str) {
                    journey.charge_bonus_opens_at = Some(opens_at.to_owned());
                }
                if journey.first_ticket.is_none() {
                    journey.first_ticket = Some(FirstTicket {
                        position: room.get("position").and_then(Value::as_u64).unwrap_or(0),
                        estimated_wait_s: room.get("estimated_wait_s").and_then(Value::as_u64).unwrap_or(0),
                        at: Instant::now(),
                    });
                }
                answer.retry_after_s
            }
            Outcome::Answered(answer) if answer.status >= 500 => answer.retry_after_s,
            Outcome::Answered(answer) => {
                journey.end = LoginEnd::Refused(match answer.code {
                    Some(code) => format!("{} {code}", answer.status),
                    None => answer.status.to_string(),
                });
                return journey;
            }
            Outcome::Timeout | Outcome::ConnectionError(_) => None,
            Outcome::CutAtDeadline => {
                journey.end = LoginEnd::Deadline;
                return journey;
            }
        };
        journey.retry_after_s_max = journey.retry_after_s_max.max(retry_after_s.unwrap_or(0));
        if !sleep_before_retry(&mut journey, policy, retry_after_s, deadline).await {
            return journey;
        }
        if let (true, Some(held)) = (policy.poll_waiting_room, &ticket) {
            // Poll at the same pace until the ticket is ready or gone, then retry the login.
            while journey.login_attempts + journey.polls < policy.requests_max {
                journey.polls += 1;
                let poll =
                    api.send(Call::get("waiting_room_poll", format!("/v1/waiting-room/{held}"), None), deadline).await;
                match poll {
                    Outcome::Answered(answer)
                        if answer.status == 200 && answer.body.get("ready").and_then(Value::as_bool) == Some(false) =>
                    {
                        if !sleep_before_retry(&mut journey, policy, retry_after_s, deadline).await {
                            return journey;
                        }
                    }
                    Outcome::CutAtDeadline => {
                        journey.end = LoginEnd::Deadline;
                        return journey;
                    }
                    _ => break,
                }
            }
        }
    }
    journey
}

/// Sleeps as [`retry_delay`] says; false (and the journey ended) when the deadline comes first.
async fn sleep_before_retry(
    journey: &mut LoginJourney,
    policy: RetryPolicy,
    retry_after_s: Option<u64>,
    deadline: Instant,
) -> bool {
    let jitter_ms = policy.jitter_max.as_millis() as u64;
    let jitter = Duration::from_millis(if jitter_ms == 0 { 0 } else { fastrand::u64(0..=jitter_ms) });
    let (delay, capped) = retry_delay(retry_after_s, policy.retry_after_cap, jitter);
    journey.sleeps_capped += u32::from(capped);
    let wake = Instant::now() + delay;
    if wake >= deadline {
        tokio::time::sleep_until(deadline).await;
        journey.end = LoginEnd::Deadline;
        return false;
    }
    tokio::time::sleep_until(wake).await;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_honours_retry_after_up_to_the_cap() {
        let cap = Duration::from_secs(5);
        assert_eq!(retry_delay(Some(2), cap, Duration::ZERO), (Duration::from_secs(2), false));
        assert_eq!(retry_delay(Some(5), cap, Duration::from_millis(30)), (Duration::from_millis(5030), false));
        assert_eq!(retry_delay(Some(60), cap, Duration::ZERO), (cap, true));
        assert_eq!(retry_delay(None, cap, Duration::ZERO), (Duration::from_secs(1), false));
        assert_eq!(retry_delay(Some(0), cap, Duration::ZERO), (SLEEP_MIN, false));
    }
}
