//! Configuration from the environment, typed and bounded. Every variable is listed in the README.

use std::time::Duration;

use crate::auth::Argon2Settings;
use crate::store::DatabaseUrl;

#[derive(Clone, Debug)]
pub struct Config {
    /// `WALLET_BIND`: where the server listens.
    pub bind: String,
    /// `WALLET_DATABASE_URL`: a SQLite file path (default `wallet.sqlite3` in the working
    /// directory) or a `postgres://` URL.
    pub database: DatabaseUrl,
    /// `WALLET_MAX_SESSIONS`: concurrent citizen sessions held at most.
    pub sessions_capacity: i64,
    /// `WALLET_ARGON2`: password hashing cost, `m=<KiB>,t=<passes>,p=<lanes>`.
    pub argon2: Argon2Settings,
    /// `WALLET_TEST_CLOCK=1`: enables `PUT /v1/admin/test-clock`.
    pub test_clock: bool,
    /// `WALLET_DB_POOL_SIZE`: connections for reads and logins (the writer has one more).
    pub pool_size: u32,
    /// `WALLET_WORKERS`: HTTP worker threads.
    pub workers: usize,
    /// `WALLET_WRITER_QUEUE_MAX`: money requests waiting for the writer before `overloaded`.
    pub writer_queue_max: usize,
    /// `WALLET_BATCH_SIZE_MAX`: money requests committed in one transaction at most.
    pub batch_size_max: usize,
    /// `WALLET_BATCH_WAIT_US`: how long the writer waits for more requests to fill a batch,
    /// and only while the previous batch had company (under load); 0, the default, never waits.
    pub batch_wait: Duration,
    /// `WALLET_SESSION_IDLE_S`: a session unused this long is over.
    pub session_idle: Duration,
    /// `WALLET_SESSION_MAX_S`: a session is over this long after login, used or not.
    pub session_lifetime: Duration,
    /// `WALLET_ADMISSION=off` turns admission control off: the request limiter, the session
    /// capacity with its waiting room, and the bound on queued password work (for measuring
    /// what they prevent).
    pub admission: bool,
    /// `WALLET_ARGON2_QUEUE_MAX`: password checks waiting for a core before logins go to the
    /// waiting room and registrations are refused.
    pub argon2_queue_max: usize,
    /// `WALLET_LISTEN_BACKLOG`: connections the kernel holds for accepting. A cutover storm
    /// opens thousands at once; past the backlog they are refused before the server sees them.
    pub listen_backlog: u32,
    /// `WALLET_KEEP_ALIVE_S`: an idle keep-alive connection is closed after this long. Longer
    /// than a waiting citizen's usual retry sleep (up to 5 s), so an app polling its ticket keeps
    /// its connection instead of racing the server's close of it (a request sent as the server
    /// closes an idle connection fails on the client's side).
    pub keep_alive: Duration,
    /// `WALLET_CONCURRENCY_MAX`: the most requests the adaptive limiter ever lets in at once.
    pub concurrency_max: usize,
    /// Login throttling (`WALLET_THROTTLE*`, see `throttle.rs`); `None` with `WALLET_THROTTLE=off`.
    pub throttle: Option<crate::throttle::Settings>,
    /// `WALLET_TRUSTED_PROXIES`: peers (comma-separated IP addresses) whose last
    /// `X-Forwarded-For` entry is taken as the client's address; empty: the peer is the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// `WALLET_CLIENT_REQUEST_TIMEOUT_S`: a connection must deliver its first request's head
    /// within this long, else it gets 408 and is closed (slow-header clients).
    pub client_request_timeout: Duration,
    /// `WALLET_CLIENT_DISCONNECT_TIMEOUT_MS`: a connection the server is closing is dropped
    /// after this long even if the client has not closed its side.
    pub client_disconnect_timeout: Duration,
    /// `WALLET_BODY_TIMEOUT_S`: a request body must arrive in full within this long of its
    /// request's head, else 408 `request_timeout` (slow-body clients would otherwise hold a
    /// connection and a place in the request limiter as long as they like).
    pub body_timeout: Duration,
    /// `WALLET_MAX_CONNECTIONS`: open connections at most, over all workers; past it the server
    /// stops accepting until one closes (the kernel's backlog holds the rest).
    pub connections_max: usize,
    /// `WALLET_IDEMPOTENCY_RETENTION_S`: how long a money request's stored answer is kept for
    /// retries with its Idempotency-Key; afterwards the key is treated as new.
    pub idempotency_retention: Duration,
    /// `WALLET_PAYMENT_CODE_RETENTION_S`: how long a payment code is kept after it expired
    /// (used or not), so a late attempt is told "used" or "expired" rather than "unknown".
    pub payment_code_retention: Duration,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

fn number<T>(name: &str, default: T, range: std::ops::RangeInclusive<T>) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(text) = var(name) else { return Ok(default) };
    let value: T = text.parse().map_err(|_| format!("{name}={text:?} is not a number"))?;
    if !range.contains(&value) {
        return Err(format!("{name}={value} is outside {}..={}", range.start(), range.end()));
    }
    Ok(value)
}

impl Config {
    pub fn from_env() -> Result<Config, String> {
        let cores = std::thread::available_parallelism().map(|cores| cores.get()).unwrap_or(2);
        Ok(Config {
            bind: var("WALLET_BIND").unwrap_or_else(|| "127.0.0.1:8080".into()),
            database: DatabaseUrl::parse(&var("WALLET_DATABASE_URL").unwrap_or_else(|| "wallet.sqlite3".into())),
            sessions_capacity: number("WALLET_MAX_SESSIONS", 50_000, 1..=10_000_000)?,
            argon2: match var("WALLET_ARGON2") {
                Some(text) => Argon2Settings::parse(&text)?,
                None => Argon2Settings::default(),
            },
            test_clock: var("WALLET_TEST_CLOCK").as_deref() == Some("1"),
            pool_size: number("WALLET_DB_POOL_SIZE", 8, 1..=256)?,
            workers: number("WALLET_WORKERS", cores, 1..=256)?,
            writer_queue_max: number("WALLET_WRITER_QUEUE_MAX", 4_096, 1..=1_000_000)?,
            batch_size_max: number("WALLET_BATCH_SIZE_MAX", 256, 1..=10_000)?,
            batch_wait: Duration::from_micros(number("WALLET_BATCH_WAIT_US", 0, 0..=100_000)?),
            session_idle: Duration::from_secs(number("WALLET_SESSION_IDLE_S", 15 * 60, 10..=86_400)?),
            session_lifetime: Duration::from_secs(number("WALLET_SESSION_MAX_S", 12 * 3_600, 60..=30 * 86_400)?),
            admission: match var("WALLET_ADMISSION").as_deref() {
                None | Some("on") => true,
                Some("off") => false,
                Some(other) => return Err(format!("WALLET_ADMISSION={other:?}; use on or off")),
            },
            listen_backlog: number("WALLET_LISTEN_BACKLOG", 4_096, 16..=65_535)?,
            keep_alive: Duration::from_secs(number("WALLET_KEEP_ALIVE_S", 30, 1..=600)?),
            argon2_queue_max: number("WALLET_ARGON2_QUEUE_MAX", 64, 1..=100_000)?,
            concurrency_max: number("WALLET_CONCURRENCY_MAX", 1_024, 2..=100_000)?,
            throttle: match var("WALLET_THROTTLE").as_deref() {
                None | Some("on") => Some(throttle_settings()?),
                Some("off") => None,
                Some(other) => return Err(format!("WALLET_THROTTLE={other:?}; use on or off")),
            },
            trusted_proxies: match var("WALLET_TRUSTED_PROXIES") {
                None => Vec::new(),
                Some(text) => text
                    .split(',')
                    .map(|item| {
                        item.trim().parse().map_err(|_| {
                            format!("WALLET_TRUSTED_PROXIES: {item:?} is not an IP address (list them comma-separated)")
                        })
                    })
                    .collect::<Result<_, _>>()?,
            },
            client_request_timeout: Duration::from_secs(number("WALLET_CLIENT_REQUEST_TIMEOUT_S", 5, 1..=120)?),
            client_disconnect_timeout: Duration::from_millis(number(
                "WALLET_CLIENT_DISCONNECT_TIMEOUT_MS",
                1_000,
                0..=60_000,
            )?),
            body_timeout: Duration::from_secs(number("WALLET_BODY_TIMEOUT_S", 10, 1..=600)?),
            connections_max: number("WALLET_MAX_CONNECTIONS", 25_000, 16..=1_000_000)?,
            idempotency_retention: Duration::from_secs(number(
                "WALLET_IDEMPOTENCY_RETENTION_S",
                24 * 3_600,
                3_600..=365 * 86_400,
            )?),
            payment_code_retention: Duration::from_secs(number(
                "WALLET_PAYMENT_CODE_RETENTION_S",
                24 * 3_600,
                0..=365 * 86_400,
            )?),
        })
    }
}

/// The login throttle's limits from `WALLET_THROTTLE_*` (defaults in `throttle.rs`).
fn throttle_settings() -> Result<crate::throttle::Settings, String> {
    use crate::throttle::Settings;
    let defaults = Settings::default();
    Ok(Settings {
        login_burst: number("WALLET_THROTTLE_LOGIN_BURST", defaults.login_burst, 1..=1_000)?,
        login_per_minute: number("WALLET_THROTTLE_LOGIN_PER_MIN", defaults.login_per_minute, 1..=600)?,
        address_burst: number("WALLET_THROTTLE_ADDRESS_BURST", defaults.address_burst, 1..=100_000)?,
        address_per_minute: number("WALLET_THROTTLE_ADDRESS_PER_MIN", defaults.address_per_minute, 1..=60_000)?,
        entries_max: number("WALLET_THROTTLE_ENTRIES_MAX", defaults.entries_max, 1_000..=10_000_000)?,
    })
}
