//! Configuration from the environment, typed and bounded. Every variable is listed in the README
//! and in `wallet.env.example`, with its default; a test below keeps that file in step with this
//! code.

use std::time::Duration;

use crate::auth::Argon2Settings;
use crate::store::DatabaseUrl;

/// Lines a grants request of `wallet-server programs grant` by default: a hundred-line grant
/// command adds a few milliseconds to the batch of payments it rides with.
pub const GRANT_LINES_PER_COMMAND_DEFAULT: usize = 100;

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
    /// `WALLET_GRANT_LINES_PER_COMMAND`: lines of `wallet-server programs grant`'s file per grant
    /// request (1 to 1,000, the API's limit; default [`GRANT_LINES_PER_COMMAND_DEFAULT`]). The
    /// writer takes one grant command a batch, so smaller makes that batch's payments wait less.
    pub grant_lines_per_command: usize,
    /// `WALLET_BATCH_WAIT_US`: how long the writer waits for more requests to fill a batch,
    /// and only while the previous batch had company (under load); 0, the default, never waits.
    pub batch_wait: Duration,
    /// `WALLET_SESSION_IDLE_S`: a session unused this long is over.
    pub session_idle: Duration,
    /// `WALLET_SESSION_MAX_S`: a session is over this long after login, used or not.
    pub session_lifetime: Duration,
    /// `WALLET_SESSION_HOLD_EXPECTED_S`: how long a citizen is expected to hold a session slot
    /// (from login to logout, or to the idle timeout for one who just leaves); the waiting room's
    /// wait estimate starts from it before the line's pace is measured. Default: the idle timeout.
    pub session_hold_expected: Duration,
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
    pub throttle: Option<crate::auth::throttle::Settings>,
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
    /// `WALLET_HANDOVER_MEMORY_MIB`: memory `handover verify` and `import` use for the checks
    /// across a bundle's rows (duplicate ids, references, histories), in bytes; past it they
    /// work on disk. It bounds the commands' memory, whatever the bundle's size.
    pub handover_memory_bytes: u64,
}

/// The variables as the configuration reads them: one set to the empty string counts as unset.
struct Vars<Lookup: Fn(&str) -> Option<String>>(Lookup);

impl<Lookup: Fn(&str) -> Option<String>> Vars<Lookup> {
    fn var(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|value| !value.is_empty())
    }

    fn number<T>(&self, name: &str, default: T, range: std::ops::RangeInclusive<T>) -> Result<T, String>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(text) = self.var(name) else { return Ok(default) };
        let value: T = text.parse().map_err(|_| format!("{name}={text:?} is not a number"))?;
        if !range.contains(&value) {
            return Err(format!("{name}={value} is outside {}..={}", range.start(), range.end()));
        }
        Ok(value)
    }
}

impl Config {
    /// The configuration from the process environment.
    pub fn from_env() -> Result<Config, String> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// The configuration from `lookup`, which gives a variable's value by name (`None`: unset).
    /// A refusal names the variable, the value and what it accepts.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let vars = Vars(lookup);
        let cores = std::thread::available_parallelism().map(|cores| cores.get()).unwrap_or(2);
        let session_idle_s = vars.number("WALLET_SESSION_IDLE_S", 15 * 60, 10..=86_400)?;
        Ok(Config {
            bind: vars.var("WALLET_BIND").unwrap_or_else(|| "127.0.0.1:8080".into()),
            database: DatabaseUrl::parse(&vars.var("WALLET_DATABASE_URL").unwrap_or_else(|| "wallet.sqlite3".into())),
            sessions_capacity: vars.number("WALLET_MAX_SESSIONS", 50_000, 1..=10_000_000)?,
            argon2: match vars.var("WALLET_ARGON2") {
                Some(text) => Argon2Settings::parse(&text)?,
                None => Argon2Settings::default(),
            },
            test_clock: vars.var("WALLET_TEST_CLOCK").as_deref() == Some("1"),
            pool_size: vars.number("WALLET_DB_POOL_SIZE", 8, 1..=256)?,
            workers: vars.number("WALLET_WORKERS", cores, 1..=256)?,
            writer_queue_max: vars.number("WALLET_WRITER_QUEUE_MAX", 4_096, 1..=1_000_000)?,
            batch_size_max: vars.number("WALLET_BATCH_SIZE_MAX", 256, 1..=10_000)?,
            grant_lines_per_command: vars.number(
                "WALLET_GRANT_LINES_PER_COMMAND",
                GRANT_LINES_PER_COMMAND_DEFAULT,
                1..=wallet_core::program::GRANTS_PER_COMMAND_MAX,
            )?,
            batch_wait: Duration::from_micros(vars.number("WALLET_BATCH_WAIT_US", 0, 0..=100_000)?),
            session_idle: Duration::from_secs(session_idle_s),
            session_lifetime: Duration::from_secs(vars.number("WALLET_SESSION_MAX_S", 12 * 3_600, 60..=30 * 86_400)?),
            session_hold_expected: Duration::from_secs(vars.number(
                "WALLET_SESSION_HOLD_EXPECTED_S",
                session_idle_s,
                1..=30 * 86_400,
            )?),
            admission: match vars.var("WALLET_ADMISSION").as_deref() {
                None | Some("on") => true,
                Some("off") => false,
                Some(other) => return Err(format!("WALLET_ADMISSION={other:?}; use on or off")),
            },
            listen_backlog: vars.number("WALLET_LISTEN_BACKLOG", 4_096, 16..=65_535)?,
            keep_alive: Duration::from_secs(vars.number("WALLET_KEEP_ALIVE_S", 30, 1..=600)?),
            argon2_queue_max: vars.number("WALLET_ARGON2_QUEUE_MAX", 64, 1..=100_000)?,
            concurrency_max: vars.number("WALLET_CONCURRENCY_MAX", 1_024, 2..=100_000)?,
            throttle: match vars.var("WALLET_THROTTLE").as_deref() {
                None | Some("on") => Some(throttle_settings(&vars)?),
                Some("off") => None,
                Some(other) => return Err(format!("WALLET_THROTTLE={other:?}; use on or off")),
            },
            trusted_proxies: match vars.var("WALLET_TRUSTED_PROXIES") {
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
            client_request_timeout: Duration::from_secs(vars.number("WALLET_CLIENT_REQUEST_TIMEOUT_S", 5, 1..=120)?),
            client_disconnect_timeout: Duration::from_millis(vars.number(
                "WALLET_CLIENT_DISCONNECT_TIMEOUT_MS",
                1_000,
                0..=60_000,
            )?),
            body_timeout: Duration::from_secs(vars.number("WALLET_BODY_TIMEOUT_S", 10, 1..=600)?),
            connections_max: vars.number("WALLET_MAX_CONNECTIONS", 25_000, 16..=1_000_000)?,
            idempotency_retention: Duration::from_secs(vars.number(
                "WALLET_IDEMPOTENCY_RETENTION_S",
                24 * 3_600,
                3_600..=365 * 86_400,
            )?),
            payment_code_retention: Duration::from_secs(vars.number(
                "WALLET_PAYMENT_CODE_RETENTION_S",
                24 * 3_600,
                0..=365 * 86_400,
            )?),
            handover_memory_bytes: vars.number("WALLET_HANDOVER_MEMORY_MIB", 128u64, 8..=65_536)? << 20,
        })
    }
}

/// The login throttle's limits from `WALLET_THROTTLE_*` (defaults in `throttle.rs`).
fn throttle_settings(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<crate::auth::throttle::Settings, String> {
    use crate::auth::throttle::Settings;
    let defaults = Settings::default();
    Ok(Settings {
        login_burst: vars.number("WALLET_THROTTLE_LOGIN_BURST", defaults.login_burst, 1..=1_000)?,
        login_per_minute: vars.number("WALLET_THROTTLE_LOGIN_PER_MIN", defaults.login_per_minute, 1..=600)?,
        address_burst: vars.number("WALLET_THROTTLE_ADDRESS_BURST", defaults.address_burst, 1..=100_000)?,
        address_per_minute: vars.number("WALLET_THROTTLE_ADDRESS_PER_MIN", defaults.address_per_minute, 1..=60_000)?,
        entries_max: vars.number("WALLET_THROTTLE_ENTRIES_MAX", defaults.entries_max, 1_000..=10_000_000)?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use super::Config;

    const PREFIX: &str = "WALLET_";

    /// `wallet.env.example` at the top of the repository.
    fn example_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../wallet.env.example")
    }

    /// The example's `#WALLET_NAME=value` lines, by name; each must follow a `# meaning` line.
    fn example_variables() -> BTreeMap<String, String> {
        let path = example_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let mut variables = BTreeMap::new();
        let mut previous = "";
        for (index, line) in text.lines().enumerate() {
            assert!(
                line.is_empty() || line.starts_with('#'),
                "wallet.env.example line {}: {line:?} sets a variable; keep the file inert (comment it out)",
                index + 1
            );
            if let Some((name, value)) =
                line.strip_prefix('#').filter(|rest| rest.starts_with(PREFIX)).and_then(|rest| rest.split_once('='))
            {
                assert!(
                    previous.starts_with("# "),
                    "wallet.env.example line {}: {name} needs a `# meaning` line above it",
                    index + 1
                );
                let earlier = variables.insert(name.to_owned(), value.to_owned());
                assert!(earlier.is_none(), "wallet.env.example line {}: {name} is listed twice", index + 1);
            }
            previous = line;
        }
        variables
    }

    /// Every string literal in `text` that is exactly a `WALLET_[A-Z0-9_]+` name: how the
    /// configuration code names a variable it reads (messages mention names inside longer text).
    fn variable_literals(text: &str) -> BTreeSet<String> {
        let quoted = format!("\"{PREFIX}");
        let mut names = BTreeSet::new();
        for (start, _) in text.match_indices(&quoted) {
            let rest = &text[start + 1..];
            let length = rest.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'));
            if let Some(length) = length.filter(|length| *length > PREFIX.len() && rest[*length..].starts_with('"')) {
                names.insert(rest[..length].to_owned());
            }
        }
        names
    }

    /// The `.rs` files under `dir`, recursively.
    fn sources(dir: &Path, files: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry of the source tree").path();
            if path.is_dir() {
                sources(&path, files);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                files.push(path);
            }
        }
    }

    #[test]
    fn the_example_lists_every_variable_the_server_reads() {
        let mut files = Vec::new();
        sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
        let mut read = BTreeSet::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap_or_else(|error| panic!("{}: {error}", file.display()));
            read.extend(variable_literals(&text));
        }
        assert!(read.contains("WALLET_DATABASE_URL"), "the scan of {files:?} found no variables: {read:?}");
        let listed: BTreeSet<String> = example_variables().into_keys().collect();
        let missing: Vec<_> = read.difference(&listed).collect();
        let stale: Vec<_> = listed.difference(&read).collect();
        assert!(missing.is_empty(), "read by the server but not in wallet.env.example: {missing:?}");
        assert!(stale.is_empty(), "in wallet.env.example but read nowhere in wallet-server/src: {stale:?}");
    }

    #[test]
    fn the_example_values_are_the_defaults() {
        let defaults: BTreeMap<String, String> =
            example_variables().into_iter().filter(|(_, value)| !value.is_empty()).collect();
        assert!(defaults.len() > 20, "too few values in wallet.env.example: {defaults:?}");
        // WALLET_WORKERS defaults to the core count, so the example leaves it empty; an empty
        // value counts as unset, so both sides below take the same default.
        assert_eq!(example_variables().get("WALLET_WORKERS").map(String::as_str), Some(""));
        let with_example = Config::from_lookup(|name| defaults.get(name).cloned())
            .unwrap_or_else(|message| panic!("wallet.env.example's values are refused: {message}"));
        let with_nothing = Config::from_lookup(|_| None).expect("the defaults are a valid configuration");
        assert_eq!(
            format!("{with_example:?}"),
            format!("{with_nothing:?}"),
            "a value in wallet.env.example is not the default"
        );
    }

    #[test]
    fn the_expected_session_hold_defaults_to_the_idle_timeout() {
        let config = Config::from_lookup(|name| (name == "WALLET_SESSION_IDLE_S").then(|| "120".to_owned()))
            .expect("120 s is a valid idle timeout");
        assert_eq!(config.session_hold_expected, std::time::Duration::from_secs(120));
        let config = Config::from_lookup(|name| match name {
            "WALLET_SESSION_IDLE_S" => Some("120".to_owned()),
            "WALLET_SESSION_HOLD_EXPECTED_S" => Some("20".to_owned()),
            _ => None,
        })
        .expect("20 s is a valid expected hold");
        assert_eq!(config.session_hold_expected, std::time::Duration::from_secs(20));
    }

    #[test]
    fn a_variable_set_to_a_value_other_than_its_default_changes_the_configuration() {
        // The comparison above would pass vacuously if lookups were ignored.
        let changed = Config::from_lookup(|name| (name == "WALLET_BATCH_SIZE_MAX").then(|| "7".to_owned()))
            .expect("7 is a valid batch size");
        assert_eq!(changed.batch_size_max, 7);
        let refused = Config::from_lookup(|name| (name == "WALLET_BATCH_SIZE_MAX").then(|| "0".to_owned()));
        assert!(refused.is_err_and(|message| message.contains("WALLET_BATCH_SIZE_MAX")));
    }
}
