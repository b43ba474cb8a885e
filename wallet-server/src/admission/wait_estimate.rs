//! The wait a citizen in line is told, from what the server knows before it has measured anything,
//! blended with what it measures as the line moves.
//!
//! Why a prior: every ticket of a storm is issued in the storm's first second or two, before a
//! single admission from the line has been measured. The first cutover benchmark told them 2 s a
//! place (the old default): 1,634 s at the median against 69 s actually waited, and a citizen told
//! "27 minutes" gives up or retries in a loop. Yet the server knows what bounds the line's pace:
//! how fast its password threads check passwords (measured, `auth::passwords`), how many session
//! slots it has and how many are free, and how long a citizen holds a slot (the operator's
//! expectation, `WALLET_SESSION_HOLD_EXPECTED_S`, by default the idle timeout).
//!
//! The estimate is a promise, not a forecast: being let in early disappoints nobody, being let in
//! late breaks the trust the number is for. So it is the expected wait times [`WAIT_MARGIN`], and
//! `Retry-After` is never later than it (`http/session.rs`). Pure: no clock, no I/O.

/// How much the prior counts, in admissions from the line: after this many measured in the rate
/// window, measurement and prior weigh the same; after ten times as many the prior is a tenth.
pub const PRIOR_WEIGHT_ADMISSIONS: f64 = 20.0;
/// The expected wait is multiplied by this before it is told. A line moves in bursts (a storm's
/// sessions, taken together, end together, and their places are refilled at the password
/// threads' pace after each app's retry sleep), so a wait told without margin is a wait half the
/// line exceeds.
pub const WAIT_MARGIN: f64 = 1.5;
/// The longest wait told (a day): past it the number means "not today" whatever it is.
pub const WAIT_S_MAX: u64 = 86_400;

/// What the server knows of the line's pace before measuring it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prior {
    checks_per_s: f64,
    slots_capacity: usize,
    slots_free: usize,
    session_hold_s: f64,
}

impl Prior {
    /// `checks_per_s`: password checks a second the password threads do (all threads together);
    /// `slots_capacity` and `slots_free`: citizen session slots, and of them free now;
    /// `session_hold_s`: how long a citizen is expected to hold a slot.
    ///
    /// Panics on a rate or hold that is not a positive finite number or a capacity of 0: the
    /// callers pass measured and configured values that are, by construction.
    pub fn new(checks_per_s: f64, slots_capacity: usize, slots_free: usize, session_hold_s: f64) -> Prior {
        assert!(checks_per_s.is_finite() && checks_per_s > 0.0, "a password check rate of {checks_per_s}/s");
        assert!(slots_capacity > 0, "a session capacity of 0");
        assert!(session_hold_s.is_finite() && session_hold_s > 0.0, "a session hold of {session_hold_s} s");
        Prior { checks_per_s, slots_capacity, slots_free: slots_free.min(slots_capacity), session_hold_s }
    }

    /// The same prior with `slots_free` free now.
    pub fn with_slots_free(self, slots_free: usize) -> Prior {
        Prior { slots_free: slots_free.min(self.slots_capacity), ..self }
    }

    /// The expected wait of the place `position` (1 for the head), in seconds: every place up to
    /// it needs a password check, and every place beyond the free slots needs a slot to free,
    /// which with `capacity` slots each held `hold` seconds happens `capacity ÷ hold` times a
    /// second. The two are added, not overlapped: in a storm a freed batch of slots is refilled at
    /// the checks' pace before the next batch frees.
    pub fn wait_s(&self, position: usize) -> f64 {
        let checks_s = position as f64 / self.checks_per_s;
        let turnover_s =
            position.saturating_sub(self.slots_free) as f64 * self.session_hold_s / self.slots_capacity as f64;
        checks_s + turnover_s
    }
}

/// Admissions from the line over the rate window, and their rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    pub admissions: usize,
    pub rate_per_s: f64,
}

/// The wait told to the place `position`: the prior's wait and the measured rate's, weighted by
/// how many admissions were measured, times [`WAIT_MARGIN`], in whole seconds (rounded up, at
/// most [`WAIT_S_MAX`]). Never shorter for a place further back, for the same inputs.
pub fn estimate_wait_s(position: usize, prior: &Prior, measured: Option<Measured>) -> u64 {
    let prior_s = prior.wait_s(position);
    let expected_s = match measured {
        Some(Measured { admissions, rate_per_s }) if admissions > 0 && rate_per_s > 0.0 => {
            let weight = admissions as f64 / (admissions as f64 + PRIOR_WEIGHT_ADMISSIONS);
            (1.0 - weight) * prior_s + weight * position as f64 / rate_per_s
        }
        _ => prior_s,
    };
    let told_s = (expected_s * WAIT_MARGIN).ceil();
    if told_s.is_finite() && told_s < WAIT_S_MAX as f64 {
        told_s as u64
    } else {
        WAIT_S_MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first cutover benchmark's server: about 60 checks a second, 300 slots of which 214 free
    /// when the first ticket is issued.
    fn storm(hold_s: f64) -> Prior {
        Prior::new(60.0, 300, 214, hold_s)
    }

    #[test]
    fn before_any_measurement_the_wait_is_the_priors() {
        // The head, within the free slots, waits for password checks only.
        assert_eq!(estimate_wait_s(60, &storm(20.0), None), 2, "60 checks at 60/s, 1.5x");
        // The benchmark's median place (817), citizens holding 20 s: checks 13.6 s + 603 places
        // beyond the free slots at 300 / 20 s = 40.2 s; told 1.5x = 81 s (69 s were waited).
        assert_eq!(estimate_wait_s(817, &storm(20.0), None), 81);
        // Within 2x of the 69 s waited there, and not under it (the old rule told 1,634 s).
        assert!((69..=138).contains(&estimate_wait_s(817, &storm(20.0), None)));
        // Held for the whole idle timeout (the default expectation), the same place waits long.
        assert_eq!(estimate_wait_s(817, &storm(900.0), None), (1.5_f64 * (817.0 / 60.0 + 603.0 * 3.0)).ceil() as u64);
    }

    #[test]
    fn measurement_takes_over_as_admissions_are_seen() {
        let prior = storm(20.0);
        let prior_only = estimate_wait_s(600, &prior, None);
        let measured = |admissions| Some(Measured { admissions, rate_per_s: 5.0 });
        // 600 places at 5/s measured: 120 s, told 180 s.
        let told: Vec<u64> =
            [1, 20, 200, 20_000].iter().map(|&admissions| estimate_wait_s(600, &prior, measured(admissions))).collect();
        assert!(told.windows(2).all(|pair| pair[0] < pair[1]), "moves toward the measured wait: {told:?}");
        assert!(told[0] > prior_only && told[3] <= 180, "{prior_only} then {told:?}");
        assert_eq!(
            told[1],
            ((prior.wait_s(600) + 120.0) / 2.0 * 1.5).ceil() as u64,
            "20 admissions weigh as the prior"
        );
        assert_eq!(estimate_wait_s(600, &prior, Some(Measured { admissions: 0, rate_per_s: 0.0 })), prior_only);
    }

    #[test]
    fn the_blend_is_monotonic_in_place_and_between_prior_and_measurement() {
        // A property over a grid of priors and measurements: further back is never told less,
        // and the told wait lies between the prior's and the measured rate's (both with margin).
        for &checks_per_s in &[0.5, 8.0, 60.0, 5_000.0] {
            for &(capacity, free) in &[(1, 0), (3, 3), (300, 214), (50_000, 0)] {
                for &hold_s in &[1.0, 20.0, 900.0, 43_200.0] {
                    let prior = Prior::new(checks_per_s, capacity, free, hold_s);
                    for measured in [None, Some((1, 0.2)), Some((20, 11.0)), Some((5_000, 70.0))] {
                        let measured = measured.map(|(admissions, rate_per_s)| Measured { admissions, rate_per_s });
                        let mut last = 0;
                        for position in (1..3_000).step_by(7) {
                            let told = estimate_wait_s(position, &prior, measured);
                            assert!(told >= last, "place {position} told {told} < {last}: {prior:?} {measured:?}");
                            last = told;
                            let by_prior = estimate_wait_s(position, &prior, None);
                            let by_rate = measured.map_or(by_prior, |m| {
                                ((position as f64 / m.rate_per_s * WAIT_MARGIN).ceil() as u64).min(WAIT_S_MAX)
                            });
                            let (low, high) = (by_prior.min(by_rate), by_prior.max(by_rate));
                            assert!((low.saturating_sub(1)..=high).contains(&told), "{told} outside {low}..={high}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_wait_told_is_bounded() {
        let slow = Prior::new(1e-9, 1, 0, 43_200.0);
        assert_eq!(estimate_wait_s(1_000_000, &slow, None), WAIT_S_MAX);
        assert_eq!(estimate_wait_s(1, &storm(20.0), None), 1, "the head is told at least a second");
        assert_eq!(storm(20.0).with_slots_free(10_000), Prior::new(60.0, 300, 300, 20.0), "free slots cap at capacity");
    }

    #[test]
    #[should_panic(expected = "a password check rate of 0")]
    fn a_zero_rate_is_refused_loudly() {
        Prior::new(0.0, 1, 0, 1.0);
    }
}
