//! Login throttling: a password-guessing run is slowed to a crawl, and the login's owner is not
//! kept out for long. Pure: the caller passes the time; `http/session.rs` asks before any
//! password work and reports how each attempt ended.
//!
//! Two kinds of bucket, each a GCRA (one "theoretical arrival time" per key, so O(1) state):
//!
//! - **per login**: [`Settings::login_burst`] attempts at once, then
//!   [`Settings::login_per_minute`]. An attempt is charged when it starts, so concurrent guesses
//!   count too, and is given back when no password was checked (waiting room, overload, no
//!   password yet) or the password was right. So only failures count, and a refusal's
//!   Retry-After is at most one interval (60 s by default; more only after guesses spread over
//!   several servers, below). A right password does not clear the
//!   failures before it: they drain at the login's rate, or the owner's every login would hand a
//!   guesser a fresh burst (measured: 65 guesses in two minutes instead of 7 when it did).
//! - **per client address** (an IPv4 address, or an IPv6 /64, one subscriber's block):
//!   [`Settings::address_burst`] failures, then [`Settings::address_per_minute`], charged when a
//!   failure is known. Generous, since many citizens share a carrier's NAT address; it stops one
//!   address spraying guesses over many logins.
//!
//! A login under attack would keep its owner out as long as the guessing lasts: the guesser takes
//! each attempt as it comes free. So a throttled login still takes a few attempts
//! ([`BYPASS_BURST`], then one per [`BYPASS_INTERVAL_MS`]) from addresses with no failed login in
//! the last [`CLEAN_AFTER_MS`]: the owner at home gets in; a guesser, whose address keeps
//! failing, does not. A guesser with many fresh addresses gains at most that trickle.
//!
//! Both maps are bounded by [`Settings::entries_max`]: records that have nothing left to say are
//! purged every few seconds ([`Throttle::purge`]); when a map is full of live records, an
//! arbitrary one (the map's randomly seeded hash order) makes room.
//!
//! **One throttle for all the servers of a database.** The maps are in memory, per server; each
//! failure is also kept for sharing ([`Throttle::take_unshared`], at most [`UNSHARED_MAX`]), and
//! `jobs::throttle` writes them to the database and charges the other servers' here
//! ([`Throttle::charge_shared`]) every 500 ms. So a failure on one server counts on every other
//! within two of those syncs (about a second). Attempts that land on several servers within that
//! second are each let through if that server's bucket had room, and all are charged everywhere
//! after: the bucket then runs over, up to [`SHARED_OVERRUN_BURSTS`] bursts, and its wait grows
//! with it, so a guesser spreading over servers is paid back by waiting, not handed a rate. Before
//! (each server with its own budget), 2 servers took twice the guesses forever.
//!
//! Logins and addresses are keyed by salted 64-bit digests ([`Keys`]), the form they are shared
//! in: the shared table holds no login as typed (a password typed in the login box would
//! otherwise be written down) and no client address.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use sha2::{Digest, Sha256};

/// A throttled login still takes this many attempts at once from addresses that are not failing.
pub const BYPASS_BURST: i64 = 3;
/// ... and then one per this long.
pub const BYPASS_INTERVAL_MS: i64 = 20_000;
/// An address with no failed login for this long counts as not failing.
pub const CLEAN_AFTER_MS: i64 = 15 * 60 * 1_000;
/// Failures kept for sharing until the next sync takes them, at most: a sync takes them every
/// 500 ms, and one server checks far fewer than this many passwords a second; more are dropped
/// (counted), so a database that cannot be written for a while costs memory up to this only.
pub const UNSHARED_MAX: usize = 10_000;
/// Failures shared by other servers may run a bucket over its burst by this many bursts (so a
/// wait of up to this many bursts' intervals more): what guesses spread over several servers
/// within one sync took beyond the budget is paid back by waiting, within a bound (6 minutes
/// for a login and 102 s for an address, by default).
pub const SHARED_OVERRUN_BURSTS: i64 = 1;

/// The throttle's limits (`WALLET_THROTTLE_*`).
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Failed attempts at one login before it is throttled.
    pub login_burst: i64,
    /// Failed attempts at one login per minute once throttled; 60 s / this is the longest wait.
    pub login_per_minute: i64,
    /// Failed logins from one address before it is throttled.
    pub address_burst: i64,
    /// Failed logins from one address per minute once throttled.
    pub address_per_minute: i64,
    /// Records kept at most in each map (logins, addresses).
    pub entries_max: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            login_burst: 5,
            login_per_minute: 1,
            address_burst: 50,
            address_per_minute: 30,
            entries_max: 100_000,
        }
    }
}

impl Settings {
    fn login_interval_ms(&self) -> i64 {
        60_000 / self.login_per_minute.max(1)
    }

    fn address_interval_ms(&self) -> i64 {
        60_000 / self.address_per_minute.max(1)
    }
}

/// Where an attempt comes from: an IPv4 address, or the /64 of an IPv6 one (a subscriber gets a
/// whole /64, so one address each would throttle nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    V4(u32),
    V6Prefix(u64),
}

impl Source {
    pub fn of(address: IpAddr) -> Source {
        match address {
            IpAddr::V4(v4) => Source::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(u32::from(v4)),
                None => Source::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// A login as the throttle keys it (see [`Keys`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LoginKey(pub i64);

/// A client address ([`Source`]) as the throttle keys it (see [`Keys`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddressKey(pub i64);

/// Makes the throttle's keys: the first 8 bytes of SHA-256 over the database's salt, a tag for
/// the kind, and the login or the address. Every server of a database has the same salt
/// (`store::login_failures::salt`), so they key a login alike and can charge each other's
/// failures. Why digests: the keys are written to the shared table, and a login field sometimes
/// holds a password typed in the wrong box; an address is personal data. The salt keeps a
/// table of digests made once from serving every database; it is kept in the same database, so
/// whoever reads that table could still try every IPv4 address: the rows are kept a minute only.
/// Why 64 bits: two of 100,000 logins share a record with a chance of about 3 in 10^10, and
/// without the salt nobody can make two collide on purpose.
#[derive(Clone)]
pub struct Keys {
    salt: Vec<u8>,
}

impl Keys {
    pub fn new(salt: &[u8]) -> Keys {
        Keys { salt: salt.to_vec() }
    }

    fn digest(&self, tag: u8, value: &[u8]) -> i64 {
        let digest = Sha256::new().chain_update(&self.salt).chain_update([tag]).chain_update(value).finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(first)
    }

    pub fn login(&self, login: &str) -> LoginKey {
        LoginKey(self.digest(b'l', login.as_bytes()))
    }

    pub fn address(&self, source: Source) -> AddressKey {
        AddressKey(match source {
            Source::V4(v4) => self.digest(b'4', &v4.to_be_bytes()),
            Source::V6Prefix(prefix) => self.digest(b'6', &prefix.to_be_bytes()),
        })
    }
}

/// A failed login as the servers share it: its keys (`None` for a login that cannot exist or an
/// unknown address) and when it failed, on the clock of the server that saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    pub login: Option<LoginKey>,
    pub address: Option<AddressKey>,
    pub failed_ms: i64,
}

/// Why an attempt was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Login,
    Address,
}

/// An attempt refused before any password work: try again in `retry_after_s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub retry_after_s: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Charge {
    /// No login bucket (the login cannot exist): only the address counts the failure.
    None,
    Login,
    Bypass,
}

/// An attempt let through; report how it ended with [`Throttle::failed`],
/// [`Throttle::succeeded`] or [`Throttle::abandoned`].
#[derive(Debug)]
pub struct Attempt {
    login: Option<LoginKey>,
    source: Option<AddressKey>,
    charge: Charge,
}

struct LoginRecord {
    tat_ms: i64,
    bypass_tat_ms: i64,
}

struct AddressRecord {
    tat_ms: i64,
    failed_ms: i64,
}

pub struct Throttle {
    settings: Settings,
    keys: Keys,
    logins: HashMap<LoginKey, LoginRecord>,
    addresses: HashMap<AddressKey, AddressRecord>,
    /// Failures seen here, not yet taken for sharing, oldest first.
    unshared: Vec<Failure>,
    /// Attempts refused, since the start.
    pub refused_total: u64,
    /// Live records dropped to make room, since the start.
    pub evicted_total: u64,
    /// Failures of other servers charged here, since the start.
    pub shared_in_total: u64,
    /// Failures seen here and written for the other servers, since the start.
    pub shared_out_total: u64,
    /// Failures seen here and never shared ([`UNSHARED_MAX`] were waiting), since the start.
    pub unshared_dropped_total: u64,
}

/// Whether a bucket with arrival time `tat_ms` has room for one more at `now_ms`, and if not,
/// how long until it has.
fn wait_ms(tat_ms: i64, now_ms: i64, burst: i64, interval_ms: i64) -> i64 {
    tat_ms.max(now_ms) + interval_ms - now_ms - burst * interval_ms
}

fn seconds_rounded_up(ms: i64) -> u64 {
    u64::try_from(ms.max(1)).unwrap_or(1).div_ceil(1_000)
}

/// A bucket's arrival time `tat_ms` (`None`: no record) after one more charge at `at_ms`, run
/// over by at most [`SHARED_OVERRUN_BURSTS`] bursts beyond a full bucket at `now_ms`.
fn overrun(tat_ms: Option<i64>, at_ms: i64, now_ms: i64, burst: i64, interval_ms: i64) -> i64 {
    let full_ms = now_ms + burst * interval_ms;
    (tat_ms.unwrap_or(at_ms).max(at_ms) + interval_ms).min(full_ms + SHARED_OVERRUN_BURSTS * burst * interval_ms)
}

/// Makes room for a new key in `map` (at most `max` entries); true when a live record was dropped.
fn make_room<K: Clone + Eq + Hash, V>(map: &mut HashMap<K, V>, max: usize) -> bool {
    if map.len() < max {
        return false;
    }
    match map.keys().next().cloned() {
        Some(victim) => map.remove(&victim).is_some(),
        None => false,
    }
}

impl Throttle {
    pub fn new(settings: Settings, keys: Keys) -> Throttle {
        Throttle {
            settings,
            keys,
            logins: HashMap::new(),
            addresses: HashMap::new(),
            unshared: Vec::new(),
            refused_total: 0,
            evicted_total: 0,
            shared_in_total: 0,
            shared_out_total: 0,
            unshared_dropped_total: 0,
        }
    }

    /// Asks whether an attempt at `login` (`None` for one that cannot exist) from `source`
    /// (`None` when unknown) may check its password now.
    pub fn begin(&mut self, login: Option<&str>, source: Option<Source>, now_ms: i64) -> Result<Attempt, Refusal> {
        let settings = self.settings;
        let source = source.map(|source| self.keys.address(source));
        let login = login.map(|login| self.keys.login(login));
        let address = source.and_then(|source| self.addresses.get(&source));
        if let Some(record) = address {
            let wait = wait_ms(record.tat_ms, now_ms, settings.address_burst, settings.address_interval_ms());
            if wait > 0 {
                self.refused_total += 1;
                return Err(Refusal { reason: Reason::Address, retry_after_s: seconds_rounded_up(wait) });
            }
        }
        // An unknown address may be a proxy's for many: it never counts as not failing.
        let clean = source.is_some() && address.is_none_or(|record| now_ms - record.failed_ms >= CLEAN_AFTER_MS);
        let Some(login) = login else { return Ok(Attempt { login: None, source, charge: Charge::None }) };
        if !self.logins.contains_key(&login) && make_room(&mut self.logins, settings.entries_max) {
            self.evicted_total += 1;
        }
        let record = self.logins.entry(login).or_insert(LoginRecord { tat_ms: now_ms, bypass_tat_ms: now_ms });
        let interval_ms = settings.login_interval_ms();
        let wait = wait_ms(record.tat_ms, now_ms, settings.login_burst, interval_ms);
        let charge = if wait <= 0 {
            record.tat_ms = record.tat_ms.max(now_ms) + interval_ms;
            Charge::Login
        } else if clean && wait_ms(record.bypass_tat_ms, now_ms, BYPASS_BURST, BYPASS_INTERVAL_MS) <= 0 {
            record.bypass_tat_ms = record.bypass_tat_ms.max(now_ms) + BYPASS_INTERVAL_MS;
            Charge::Bypass
        } else {
            self.refused_total += 1;
            return Err(Refusal { reason: Reason::Login, retry_after_s: seconds_rounded_up(wait) });
        };
        Ok(Attempt { login: Some(login), source, charge })
    }

    /// The password was wrong: the login keeps its charge, the address is charged, and the
    /// failure is kept for sharing.
    pub fn failed(&mut self, attempt: Attempt, now_ms: i64) {
        let settings = self.settings;
        self.keep_unshared(Failure { login: attempt.login, address: attempt.source, failed_ms: now_ms });
        if let Some(source) = attempt.source {
            if !self.addresses.contains_key(&source) && make_room(&mut self.addresses, settings.entries_max) {
                self.evicted_total += 1;
            }
            let record = self.addresses.entry(source).or_insert(AddressRecord { tat_ms: now_ms, failed_ms: now_ms });
            let interval_ms = settings.address_interval_ms();
            // Failures that were in flight together may overfill the bucket; the wait stays
            // within one interval.
            record.tat_ms =
                (record.tat_ms.max(now_ms) + interval_ms).min(now_ms + settings.address_burst * interval_ms);
            record.failed_ms = now_ms;
        }
        if attempt.charge == Charge::Bypass {
            if let Some(record) = attempt.login.and_then(|login| self.logins.get_mut(&login)) {
                let interval_ms = settings.login_interval_ms();
                record.tat_ms =
                    (record.tat_ms.max(now_ms) + interval_ms).min(now_ms + settings.login_burst * interval_ms);
            }
        }
    }

    /// The password was right: the attempt's charge is given back; earlier failures still count.
    pub fn succeeded(&mut self, attempt: Attempt) {
        self.abandoned(attempt);
    }

    /// No password was checked: the attempt's charge is given back.
    pub fn abandoned(&mut self, attempt: Attempt) {
        let Some(record) = attempt.login.and_then(|login| self.logins.get_mut(&login)) else { return };
        match attempt.charge {
            Charge::Login => record.tat_ms -= self.settings.login_interval_ms(),
            Charge::Bypass => record.bypass_tat_ms -= BYPASS_INTERVAL_MS,
            Charge::None => {}
        }
    }

    /// Charges a failure another server saw as if it had failed here: one to its login and one
    /// to its address, at the time it failed (taken as `now_ms` at the latest: another server's
    /// clock may be ahead). Unlike a failure here, it may run a bucket over, up to
    /// [`SHARED_OVERRUN_BURSTS`] bursts: it was let through elsewhere while this server's
    /// bucket had no room, and the wait pays it back.
    pub fn charge_shared(&mut self, failure: Failure, now_ms: i64) {
        let settings = self.settings;
        let at_ms = failure.failed_ms.min(now_ms);
        self.shared_in_total += 1;
        if let Some(login) = failure.login {
            let interval_ms = settings.login_interval_ms();
            let record = self.logins.get(&login);
            let tat_ms = overrun(record.map(|record| record.tat_ms), at_ms, now_ms, settings.login_burst, interval_ms);
            // A failure already spent makes no record.
            if record.is_some() || tat_ms > now_ms {
                if record.is_none() && make_room(&mut self.logins, settings.entries_max) {
                    self.evicted_total += 1;
                }
                self.logins.entry(login).or_insert(LoginRecord { tat_ms, bypass_tat_ms: now_ms }).tat_ms = tat_ms;
            }
        }
        if let Some(address) = failure.address {
            let interval_ms = settings.address_interval_ms();
            let record = self.addresses.get(&address);
            let tat_ms =
                overrun(record.map(|record| record.tat_ms), at_ms, now_ms, settings.address_burst, interval_ms);
            let failed_ms = record.map_or(at_ms, |record| record.failed_ms.max(at_ms));
            if record.is_some() || tat_ms > now_ms || now_ms - failed_ms < CLEAN_AFTER_MS {
                if record.is_none() && make_room(&mut self.addresses, settings.entries_max) {
                    self.evicted_total += 1;
                }
                self.addresses.insert(address, AddressRecord { tat_ms, failed_ms });
            }
        }
    }

    /// Takes the failures seen here since the last take, oldest first, for sharing.
    pub fn take_unshared(&mut self) -> Vec<Failure> {
        std::mem::take(&mut self.unshared)
    }

    /// Notes how a take ended: `written` were shared; `unwritten` (the writing failed) are kept
    /// again for the next sync, before any failure since, as far as [`UNSHARED_MAX`] allows.
    pub fn return_unshared(&mut self, written: usize, unwritten: Vec<Failure>) {
        self.shared_out_total += written as u64;
        if unwritten.is_empty() {
            return;
        }
        let since = std::mem::replace(&mut self.unshared, unwritten);
        for failure in since {
            self.keep_unshared(failure);
        }
        if self.unshared.len() > UNSHARED_MAX {
            self.unshared_dropped_total += (self.unshared.len() - UNSHARED_MAX) as u64;
            self.unshared.truncate(UNSHARED_MAX);
        }
    }

    fn keep_unshared(&mut self, failure: Failure) {
        if failure.login.is_none() && failure.address.is_none() {
            return;
        }
        if self.unshared.len() < UNSHARED_MAX {
            self.unshared.push(failure);
        } else {
            self.unshared_dropped_total += 1;
        }
    }

    /// Drops the records that no longer hold anything back or mark an address as failing.
    pub fn purge(&mut self, now_ms: i64) {
        self.logins.retain(|_, record| record.tat_ms > now_ms || record.bypass_tat_ms > now_ms);
        self.addresses.retain(|_, record| record.tat_ms > now_ms || now_ms - record.failed_ms < CLEAN_AFTER_MS);
    }

    /// Records held: (logins, addresses).
    pub fn entries(&self) -> (usize, usize) {
        (self.logins.len(), self.addresses.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: Source = Source::V4(0x0a00_0001);
    const GUESSER: Source = Source::V4(0x0a00_0002);

    fn keys() -> Keys {
        Keys::new(b"the database's salt")
    }

    fn throttle() -> Throttle {
        Throttle::new(Settings::default(), keys())
    }

    /// Fails `count` attempts at `login` from `source` at `now_ms`; panics if one is refused.
    fn fail(throttle: &mut Throttle, login: &str, source: Source, count: usize, now_ms: i64) {
        for index in 0..count {
            let attempt = throttle
                .begin(Some(login), Some(source), now_ms)
                .unwrap_or_else(|refusal| panic!("attempt {index} refused: {refusal:?}"));
            throttle.failed(attempt, now_ms);
        }
    }

    #[test]
    fn a_login_takes_its_burst_then_one_a_minute() {
        let mut throttle = throttle();
        fail(&mut throttle, "kim", GUESSER, 5, 0);
        let refusal = throttle.begin(Some("kim"), Some(GUESSER), 0).unwrap_err();
        assert_eq!(refusal, Refusal { reason: Reason::Login, retry_after_s: 60 });
        assert_eq!(throttle.begin(Some("kim"), Some(GUESSER), 59_999).unwrap_err().retry_after_s, 1);
        fail(&mut throttle, "kim", GUESSER, 1, 60_000);
        assert!(throttle.begin(Some("kim"), Some(GUESSER), 60_000).is_err());
        // Another login is not affected.
        assert!(throttle.begin(Some("lee"), Some(GUESSER), 60_000).is_ok());
        assert_eq!(throttle.refused_total, 3);
    }

    #[test]
    fn concurrent_attempts_count_before_they_end() {
        let mut throttle = throttle();
        // The guesser's address has failed before, so it gets no bypass of a throttled login.
        fail(&mut throttle, "other", GUESSER, 1, 0);
        let held: Vec<_> = (0..5).map(|_| throttle.begin(Some("kim"), Some(GUESSER), 0).unwrap()).collect();
        assert_eq!(throttle.begin(Some("kim"), Some(GUESSER), 0).unwrap_err().reason, Reason::Login);
        // Attempts that checked no password give their charge back.
        for attempt in held {
            throttle.abandoned(attempt);
        }
        fail(&mut throttle, "kim", GUESSER, 5, 0);
    }

    #[test]
    fn a_right_password_is_not_counted_and_clears_nothing() {
        let mut throttle = throttle();
        for _ in 0..20 {
            let attempt = throttle.begin(Some("kim"), Some(GUESSER), 0).unwrap();
            throttle.succeeded(attempt);
        }
        fail(&mut throttle, "kim", GUESSER, 4, 0);
        let attempt = throttle.begin(Some("kim"), Some(HOME), 0).unwrap();
        throttle.succeeded(attempt);
        // The owner's login did not hand the guesser a fresh burst.
        fail(&mut throttle, "kim", GUESSER, 1, 0);
        assert_eq!(throttle.begin(Some("kim"), Some(GUESSER), 0).unwrap_err().reason, Reason::Login);
        assert_eq!(throttle.entries(), (1, 1));
    }

    #[test]
    fn the_owner_from_a_clean_address_gets_a_few_attempts_while_the_guesser_waits() {
        let mut throttle = throttle();
        fail(&mut throttle, "kim", GUESSER, 5, 0);
        assert!(throttle.begin(Some("kim"), Some(GUESSER), 1_000).is_err());
        // Three from clean addresses, then one per 20 s.
        for index in 0..3 {
            let attempt = throttle.begin(Some("kim"), Some(Source::V4(100 + index)), 1_000).unwrap();
            throttle.abandoned(attempt);
            let attempt = throttle.begin(Some("kim"), Some(Source::V4(100 + index)), 1_000).unwrap();
            throttle.failed(attempt, 1_000);
        }
        let refusal = throttle.begin(Some("kim"), Some(HOME), 1_000).unwrap_err();
        assert_eq!(refusal.reason, Reason::Login);
        let attempt = throttle.begin(Some("kim"), Some(HOME), 21_000).unwrap();
        throttle.succeeded(attempt);
        // The owner got in, and the guesser is still held back; an address that failed is not
        // clean for 15 minutes.
        assert!(throttle.begin(Some("kim"), Some(GUESSER), 21_000).is_err());
        assert!(throttle.begin(Some("kim"), Some(Source::V4(100)), 30_000).is_err());
        let later_ms = 1_000 + CLEAN_AFTER_MS;
        fail(&mut throttle, "kim", GUESSER, 5, later_ms);
        assert!(throttle.begin(Some("kim"), Some(GUESSER), later_ms).is_err());
        assert!(throttle.begin(Some("kim"), Some(Source::V4(100)), later_ms).is_ok());
        // An unknown address never bypasses.
        assert!(throttle.begin(Some("kim"), None, 30_000).is_err());
    }

    #[test]
    fn an_address_spraying_many_logins_is_throttled() {
        let mut throttle = throttle();
        for index in 0..50 {
            fail(&mut throttle, &format!("user{index}"), GUESSER, 1, 0);
        }
        let refusal = throttle.begin(Some("fresh"), Some(GUESSER), 0).unwrap_err();
        assert_eq!(refusal, Refusal { reason: Reason::Address, retry_after_s: 2 });
        // Logins that cannot exist still count against the address.
        assert!(throttle.begin(None, Some(GUESSER), 0).is_err());
        assert!(throttle.begin(Some("fresh"), Some(HOME), 0).is_ok());
        let attempt = throttle.begin(None, Some(GUESSER), 2_000).unwrap();
        throttle.failed(attempt, 2_000);
        assert!(throttle.begin(None, Some(GUESSER), 2_000).is_err());
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Source::of(one), Source::of(other));
        assert_ne!(Source::of(one), Source::of(elsewhere));
        let mapped: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        assert_eq!(Source::of(mapped), GUESSER);
    }

    #[test]
    fn maps_stay_within_their_bound_and_purge_what_is_spent() {
        let mut throttle = Throttle::new(Settings { entries_max: 1_000, ..Settings::default() }, keys());
        for index in 0..3_000u32 {
            fail(&mut throttle, &format!("user{index}"), Source::V4(index), 1, 0);
        }
        assert_eq!(throttle.entries(), (1_000, 1_000));
        assert_eq!(throttle.evicted_total, 4_000);
        // A login's single failure is spent after a minute; an address stays marked 15 minutes.
        throttle.purge(60_000);
        assert_eq!(throttle.entries(), (0, 1_000));
        throttle.purge(CLEAN_AFTER_MS);
        assert_eq!(throttle.entries(), (0, 0));
    }
    /// Charges every failure `from` has kept for sharing to `to`, at `now_ms`.
    fn share(from: &mut Throttle, to: &mut Throttle, now_ms: i64) {
        let failures = from.take_unshared();
        from.return_unshared(failures.len(), Vec::new());
        for failure in failures {
            to.charge_shared(failure, now_ms);
        }
    }

    #[test]
    fn failures_on_another_server_count_here() {
        let (mut one, mut other) = (throttle(), throttle());
        fail(&mut one, "kim", GUESSER, 5, 0);
        let before = other.begin(Some("kim"), Some(GUESSER), 500).unwrap();
        other.abandoned(before);
        share(&mut one, &mut other, 500);
        let refusal = other.begin(Some("kim"), Some(GUESSER), 500).unwrap_err();
        assert_eq!(refusal, Refusal { reason: Reason::Login, retry_after_s: 60 });
        assert_eq!((one.shared_out_total, other.shared_in_total), (5, 5));
        // The guesser's address failed, so it is not clean on the other server either; an
        // address that did not fail still bypasses.
        assert!(other.begin(Some("kim"), Some(GUESSER), 21_000).is_err());
        assert!(other.begin(Some("kim"), Some(HOME), 21_000).is_ok());
        // The address's failures count there too: 45 more anywhere, and it waits everywhere.
        for index in 0..45 {
            fail(&mut one, &format!("user{index}"), GUESSER, 1, 1_000);
        }
        share(&mut one, &mut other, 1_500);
        assert_eq!(other.begin(Some("lee"), Some(GUESSER), 1_500).unwrap_err().reason, Reason::Address);
    }

    #[test]
    fn guesses_spread_over_servers_within_one_sync_are_paid_back_by_waiting() {
        let (mut one, mut other) = (throttle(), throttle());
        // Both servers let the burst through before either hears of the other's.
        fail(&mut one, "kim", GUESSER, 5, 0);
        fail(&mut other, "kim", GUESSER, 5, 0);
        share(&mut one, &mut other, 500);
        share(&mut other, &mut one, 500);
        // Ten failures against a budget of 5: the five over it are waited out, one a minute.
        for throttle in [&mut one, &mut other] {
            let refusal = throttle.begin(Some("kim"), Some(GUESSER), 500).unwrap_err();
            assert_eq!(refusal, Refusal { reason: Reason::Login, retry_after_s: 360 });
            assert!(throttle.begin(Some("kim"), Some(GUESSER), 359_999).is_err());
            let attempt = throttle.begin(Some("kim"), Some(GUESSER), 360_000).unwrap();
            throttle.abandoned(attempt);
        }
        // Charges beyond one burst over are not kept: the wait stays bounded.
        let mut third = throttle();
        for _ in 0..100 {
            third.charge_shared(Failure { login: Some(keys().login("lee")), address: None, failed_ms: 0 }, 0);
        }
        assert_eq!(third.begin(Some("lee"), None, 0).unwrap_err().retry_after_s, 360);
    }

    #[test]
    fn shared_failures_already_spent_make_no_record() {
        let mut throttle = throttle();
        let key = keys().login("kim");
        let address = keys().address(GUESSER);
        // A login's failure is spent after a minute; an address stays failing for 15 minutes.
        throttle.charge_shared(Failure { login: Some(key), address: Some(address), failed_ms: 0 }, 60_000);
        assert_eq!(throttle.entries(), (0, 1));
        throttle.charge_shared(Failure { login: Some(key), address: Some(address), failed_ms: 0 }, CLEAN_AFTER_MS);
        assert_eq!(throttle.entries(), (0, 1), "the record already held is updated");
        throttle.purge(CLEAN_AFTER_MS);
        assert_eq!(throttle.entries(), (0, 0));
        // Another server's clock ahead of this one's: charged as now.
        throttle.charge_shared(Failure { login: Some(key), address: None, failed_ms: 10_000_000 }, 0);
        let refusal = throttle.begin(Some("kim"), Some(HOME), 0);
        assert!(refusal.is_ok(), "one failure of five");
        assert_eq!(throttle.shared_in_total, 3);
    }

    #[test]
    fn keys_are_the_same_on_every_server_of_a_database_and_only_there() {
        let (one, other) = (keys(), keys());
        assert_eq!(one.login("kim"), other.login("kim"));
        assert_eq!(one.address(GUESSER), other.address(GUESSER));
        assert_ne!(one.login("kim"), one.login("lee"));
        assert_ne!(one.address(GUESSER), one.address(HOME));
        assert_ne!(one.address(Source::V4(7)).0, one.address(Source::V6Prefix(7)).0);
        let elsewhere = Keys::new(b"another database's salt");
        assert_ne!(one.login("kim"), elsewhere.login("kim"));
        assert_ne!(one.address(GUESSER), elsewhere.address(GUESSER));
    }

    #[test]
    fn failures_wait_for_sharing_within_their_bound() {
        let mut throttle = throttle();
        // A failure with neither key (a login that cannot exist, an unknown address) says
        // nothing to another server.
        let attempt = throttle.begin(None, None, 0).unwrap();
        throttle.failed(attempt, 0);
        assert!(throttle.take_unshared().is_empty());
        for index in 0..UNSHARED_MAX + 5 {
            let attempt = throttle.begin(Some(&format!("user{index}")), None, 0).unwrap();
            throttle.failed(attempt, 0);
        }
        assert_eq!(throttle.unshared_dropped_total, 5);
        let taken = throttle.take_unshared();
        assert_eq!(taken.len(), UNSHARED_MAX);
        assert_eq!(taken[0].login, Some(keys().login("user0")));
        // A write that failed: its failures go back before the ones since, within the bound.
        let attempt = throttle.begin(Some("later"), None, 1).unwrap();
        throttle.failed(attempt, 1);
        throttle.return_unshared(0, taken);
        assert_eq!(throttle.unshared_dropped_total, 6);
        let again = throttle.take_unshared();
        assert_eq!((again.len(), again[0].login), (UNSHARED_MAX, Some(keys().login("user0"))));
        throttle.return_unshared(again.len(), Vec::new());
        assert_eq!(throttle.shared_out_total, UNSHARED_MAX as u64);
    }
}
