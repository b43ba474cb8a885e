//! An adaptive concurrency limit with priority classes.
//!
//! The server protects its latency by bounding the requests it works on at once. The bound
//! adapts to measured latency in the manner of Netflix's Gradient2 limiter: a slow average of
//! request latency is the no-load baseline, a fast average is the present; while the present
//! stays within `rtt_tolerance` of the baseline the limit grows (by about its square root each
//! adjustment), and when latency climbs the limit shrinks in proportion.
//!
//! Classes share the limit by priority: a class may start a request only while the requests in
//! flight are below its share of the limit (POS payments 100%, citizen money 90%, reads 75%,
//! logins 50%, admin exports 30%), so as load rises the low classes are shed first and the
//! headroom above their shares is kept for merchants. A request that finds no room waits a
//! short, class-specific time in a FIFO per class (higher classes are woken first), and is then
//! refused: the caller answers 503 `overloaded` at once, having changed nothing.
//!
//! This module is pure: it takes the time as an argument and does no I/O, so the adaptation is
//! unit-tested deterministically; `middleware.rs` puts it in front of the HTTP handlers.

use std::collections::VecDeque;
use std::time::Duration;

/// Priority classes, highest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Merchants' payments and refunds: must always work.
    Pos = 0,
    /// Citizens' charges, gifts and payment codes.
    CitizenMoney = 1,
    /// Balance, history and sales reads.
    Reads = 2,
    /// Logins and registrations (argon2 work).
    Logins = 3,
    /// The back office: settlement exports, policy, oversight.
    Admin = 4,
}

impl Class {
    pub const ALL: [Class; 5] = [Class::Pos, Class::CitizenMoney, Class::Reads, Class::Logins, Class::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Pos => "pos",
            Class::CitizenMoney => "citizen_money",
            Class::Reads => "reads",
            Class::Logins => "logins",
            Class::Admin => "admin",
        }
    }

    /// The share of the limit this class may fill, in percent.
    fn share_percent(self) -> usize {
        match self {
            Class::Pos => 100,
            Class::CitizenMoney => 90,
            Class::Reads => 75,
            Class::Logins => 50,
            Class::Admin => 30,
        }
    }

    /// How long a request of this class may wait for room before it is refused.
    pub fn wait_max(self) -> Duration {
        match self {
            Class::Pos => Duration::from_millis(2_000),
            Class::CitizenMoney => Duration::from_millis(500),
            Class::Reads => Duration::from_millis(200),
            Class::Logins => Duration::from_millis(100),
            Class::Admin => Duration::from_millis(100),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The limiter's parameters. Every one has a bound; the defaults suit a 2-core machine.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub limit_initial: usize,
    pub limit_min: usize,
    pub limit_max: usize,
    /// How much slower than the baseline the present may be before the limit shrinks.
    pub rtt_tolerance: f64,
    /// Weight of a new sample in the fast (present) and slow (baseline) latency averages.
    pub short_weight: f64,
    pub long_weight: f64,
    /// Weight of a new computed limit against the current one.
    pub smoothing: f64,
    /// Requests waiting for room, per class, at most.
    pub waiting_max_per_class: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            limit_initial: 64,
            limit_min: 8,
            limit_max: 1_024,
            rtt_tolerance: 2.0,
            short_weight: 0.1,
            long_weight: 0.01,
            smoothing: 0.2,
            waiting_max_per_class: 1_024,
        }
    }
}

/// What `try_start` decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start now.
    Admitted,
    /// Wait in line; `Limiter::next_to_wake` will name this ticket when there is room.
    Queued(u64),
    /// No room and no place in line: refuse at once.
    Refused,
}

/// Counters for oversight.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub limit: usize,
    pub in_flight: usize,
    pub in_flight_by_class: [usize; 5],
    pub waiting_by_class: [usize; 5],
    pub admitted_by_class: [u64; 5],
    pub shed_by_class: [u64; 5],
    pub rtt_short_ms: f64,
    pub rtt_long_ms: f64,
}

impl Stats {
    /// The most requests of `class` that may be in flight under the current limit.
    pub fn class_limit(&self, class: Class) -> usize {
        class_limit(self.limit, class)
    }
}

fn class_limit(limit: usize, class: Class) -> usize {
    (limit * class.share_percent()).div_ceil(100).max(1)
}

/// The limiter's state. Not thread-safe by itself: the middleware holds it in a mutex, and
/// every call is short.
pub struct Limiter {
    settings: Settings,
    limit: f64,
    in_flight: usize,
    in_flight_by_class: [usize; 5],
    waiting: [VecDeque<u64>; 5],
    next_ticket: u64,
    rtt_short_ms: Option<f64>,
    rtt_long_ms: Option<f64>,
    admitted: [u64; 5],
    shed: [u64; 5],
}

impl Limiter {
    pub fn new(settings: Settings) -> Limiter {
        assert!(settings.limit_min >= 1 && settings.limit_min <= settings.limit_initial);
        assert!(settings.limit_initial <= settings.limit_max);
        Limiter {
            settings,
            limit: settings.limit_initial as f64,
            in_flight: 0,
            in_flight_by_class: [0; 5],
            waiting: Default::default(),
            next_ticket: 1,
            rtt_short_ms: None,
            rtt_long_ms: None,
            admitted: [0; 5],
            shed: [0; 5],
        }
    }

    pub fn limit(&self) -> usize {
        self.limit.round() as usize
    }

    fn has_room(&self, class: Class) -> bool {
        self.in_flight < class_limit(self.limit(), class)
    }

    /// Whether a higher or equal class is already waiting: newcomers do not overtake it.
    fn someone_ahead(&self, class: Class) -> bool {
        self.waiting[..=class.index()].iter().any(|line| !line.is_empty())
    }

    /// A request of `class` arrives.
    pub fn try_start(&mut self, class: Class) -> Decision {
        if self.has_room(class) && !self.someone_ahead(class) {
            self.start(class);
            return Decision::Admitted;
        }
        if self.waiting[class.index()].len() >= self.settings.waiting_max_per_class {
            self.shed[class.index()] += 1;
            return Decision::Refused;
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.waiting[class.index()].push_back(ticket);
        Decision::Queued(ticket)
    }

    fn start(&mut self, class: Class) {
        self.in_flight += 1;
        self.in_flight_by_class[class.index()] += 1;
        self.admitted[class.index()] += 1;
    }

    /// The next waiting request that now has room, highest class first, oldest first within a
    /// class; it is started and its ticket returned. Call until `None` after every change.
    pub fn next_to_wake(&mut self) -> Option<u64> {
        for class in Class::ALL {
            if self.waiting[class.index()].is_empty() || !self.has_room(class) {
                continue;
            }
            let ticket = self.waiting[class.index()].pop_front()?;
            self.start(class);
            return Some(ticket);
        }
        None
    }

    /// A waiting request gave up (its wait ran out): it is refused.
    pub fn abandon(&mut self, class: Class, ticket: u64) -> bool {
        let line = &mut self.waiting[class.index()];
        match line.iter().position(|waiting| *waiting == ticket) {
            Some(index) => {
                line.remove(index);
                self.shed[class.index()] += 1;
                true
            }
            None => false, // already woken: the caller must treat it as started
        }
    }

    /// A started request finished after `latency`; the limit adapts.
    pub fn finish(&mut self, class: Class, latency: Duration) {
        assert!(self.in_flight > 0 && self.in_flight_by_class[class.index()] > 0, "finish without start");
        self.in_flight -= 1;
        self.in_flight_by_class[class.index()] -= 1;
        self.observe(latency);
    }

    fn observe(&mut self, latency: Duration) {
        let sample = latency.as_secs_f64() * 1_000.0;
        let short = ewma(self.rtt_short_ms, sample, self.settings.short_weight);
        // The baseline stands for the latency without load: it follows samples within the
        // tolerance at its normal pace, congested ones ten times slower (so sustained queueing
        // does not become the new normal within seconds), and a speed-up at once.
        let long = match self.rtt_long_ms {
            None => sample,
            Some(long) if sample <= long * self.settings.rtt_tolerance => {
                ewma(Some(long), sample, self.settings.long_weight).min(short.max(long * 0.9))
            }
            Some(long) => ewma(Some(long), sample, self.settings.long_weight / 10.0),
        };
        self.rtt_short_ms = Some(short);
        self.rtt_long_ms = Some(long);
        let baseline = self.rtt_long_ms.unwrap_or(sample);
        let gradient = (self.settings.rtt_tolerance * baseline / short.max(1e-3)).clamp(0.5, 1.0);
        let headroom = self.limit.sqrt();
        let target = self.limit * gradient + headroom;
        let smoothed = self.limit * (1.0 - self.settings.smoothing) + target * self.settings.smoothing;
        self.limit = smoothed.clamp(self.settings.limit_min as f64, self.settings.limit_max as f64);
    }

    pub fn stats(&self) -> Stats {
        Stats {
            limit: self.limit(),
            in_flight: self.in_flight,
            in_flight_by_class: self.in_flight_by_class,
            waiting_by_class: std::array::from_fn(|index| self.waiting[index].len()),
            admitted_by_class: self.admitted,
            shed_by_class: self.shed,
            rtt_short_ms: self.rtt_short_ms.unwrap_or(0.0),
            rtt_long_ms: self.rtt_long_ms.unwrap_or(0.0),
        }
    }
}

fn ewma(previous: Option<f64>, sample: f64, weight: f64) -> f64 {
    match previous {
        Some(previous) => previous * (1.0 - weight) + sample * weight,
        None => sample,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(limit: usize) -> Limiter {
        Limiter::new(Settings { limit_initial: limit, limit_min: 1, ..Settings::default() })
    }

    #[test]
    fn low_classes_are_shed_before_high_ones() {
        let mut limiter = limiter(10);
        // Admin may fill 30% (3), logins 50% (5), reads 75% (8), citizen money 90% (9), POS 100%.
        for _ in 0..3 {
            assert_eq!(limiter.try_start(Class::Admin), Decision::Admitted);
        }
        assert!(matches!(limiter.try_start(Class::Admin), Decision::Queued(_)));
        for _ in 0..2 {
            assert_eq!(limiter.try_start(Class::Logins), Decision::Admitted);
        }
        assert!(matches!(limiter.try_start(Class::Logins), Decision::Queued(_)));
        for _ in 0..3 {
            assert_eq!(limiter.try_start(Class::Reads), Decision::Admitted);
        }
        assert_eq!(limiter.try_start(Class::CitizenMoney), Decision::Admitted);
        assert_eq!(limiter.try_start(Class::Pos), Decision::Admitted);
        assert!(matches!(limiter.try_start(Class::Pos), Decision::Queued(_)));
        assert_eq!(limiter.stats().in_flight, 10);
    }

    #[test]
    fn freed_room_goes_to_the_highest_waiting_class_first_in_order() {
        let mut limiter = limiter(2);
        limiter.try_start(Class::Pos);
        limiter.try_start(Class::Pos);
        let Decision::Queued(reads) = limiter.try_start(Class::Reads) else { panic!() };
        let Decision::Queued(first_pos) = limiter.try_start(Class::Pos) else { panic!() };
        let Decision::Queued(second_pos) = limiter.try_start(Class::Pos) else { panic!() };
        limiter.finish(Class::Pos, Duration::from_millis(1));
        assert_eq!(limiter.next_to_wake(), Some(first_pos));
        assert_eq!(limiter.next_to_wake(), None);
        limiter.finish(Class::Pos, Duration::from_millis(1));
        assert_eq!(limiter.next_to_wake(), Some(second_pos));
        limiter.finish(Class::Pos, Duration::from_millis(1));
        limiter.finish(Class::Pos, Duration::from_millis(1));
        assert_eq!(limiter.next_to_wake(), Some(reads));
    }

    #[test]
    fn a_newcomer_does_not_overtake_a_waiting_request_of_its_class() {
        let mut limiter = limiter(1);
        limiter.try_start(Class::Reads);
        let Decision::Queued(waiting) = limiter.try_start(Class::Reads) else { panic!() };
        limiter.finish(Class::Reads, Duration::from_millis(1));
        assert!(matches!(limiter.try_start(Class::Reads), Decision::Queued(_)));
        assert_eq!(limiter.next_to_wake(), Some(waiting));
    }

    #[test]
    fn a_full_line_refuses_at_once_and_counts_it() {
        let mut limiter =
            Limiter::new(Settings { limit_initial: 1, limit_min: 1, waiting_max_per_class: 1, ..Settings::default() });
        limiter.try_start(Class::Logins);
        let Decision::Queued(ticket) = limiter.try_start(Class::Logins) else { panic!() };
        assert_eq!(limiter.try_start(Class::Logins), Decision::Refused);
        assert!(limiter.abandon(Class::Logins, ticket));
        assert_eq!(limiter.stats().shed_by_class[Class::Logins as usize], 2);
    }

    #[test]
    fn the_limit_grows_while_latency_holds_and_shrinks_when_it_climbs() {
        let mut limiter = Limiter::new(Settings { limit_initial: 20, limit_min: 4, ..Settings::default() });
        for _ in 0..200 {
            limiter.try_start(Class::Reads);
            limiter.finish(Class::Reads, Duration::from_millis(5));
        }
        let grown = limiter.limit();
        assert!(grown > 20, "limit {grown} did not grow under steady latency");
        for _ in 0..200 {
            limiter.try_start(Class::Reads);
            limiter.finish(Class::Reads, Duration::from_millis(100));
        }
        let shrunk = limiter.limit();
        assert!(shrunk < grown / 2, "limit {shrunk} did not shrink from {grown} when latency rose 20x");
        assert!(shrunk >= 4, "limit went below its minimum");
    }
}
