//! `wallet-server`: the command line of the regional-currency wallet backend.
//!
//! `serve` runs the REST API (applying pending migrations first); `admin create` makes the
//! first city admin. Configuration is by environment variables, listed in the README.

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use clap::{Parser, Subcommand};

use wallet_server::config::Config;
use wallet_server::state::{AppState, BooksCheck};
use wallet_server::{admission, auth, clock, demo, handover, http, jobs, log_limits, store, writer};

#[derive(Parser)]
#[command(name = "wallet-server", version, about = "The regional-currency wallet backend")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run the REST API (WALLET_BIND, WALLET_DATABASE_URL, ... in the environment).
    Serve {
        /// First seed a demo city (admin, merchants, citizens, some history) into an empty
        /// database and print its logins; a database with data is refused.
        #[arg(long)]
        demo: bool,
    },
    /// Manage city admins.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Operator handover bundles (docs/HANDOVER.md).
    Handover {
        #[command(subcommand)]
        command: HandoverCommand,
    },
    /// City programs (docs/API.md, Part 2).
    Programs {
        #[command(subcommand)]
        command: ProgramsCommand,
    },
}

#[derive(Subcommand)]
enum ProgramsCommand {
    /// Grant an allowance program to every wallet of a CSV file (`wallet_id,amount`) through the
    /// serving server (its writer's bulk lane: payments go first), as a city admin whose password
    /// is the first line of standard input; run it again after a crash to grant the rest (nobody
    /// is granted twice).
    Grant {
        program_id: String,
        #[arg(value_name = "FILE.csv")]
        file: std::path::PathBuf,
        /// The city admin's login.
        #[arg(long)]
        login: String,
        /// The serving server's URL; by default `http://` and `WALLET_BIND` (0.0.0.0 read as
        /// 127.0.0.1).
        #[arg(long)]
        server: Option<String>,
    },
}

#[derive(Subcommand)]
enum HandoverCommand {
    /// Check a bundle without touching the database.
    Verify {
        /// A bundle directory, or a .tar, .tar.gz or .tgz of one (unpacked into TMPDIR meanwhile).
        bundle: std::path::PathBuf,
        /// The CSV files' encoding: utf-8 (the format's), or cp949 for legacy files.
        #[arg(long, default_value = "utf-8", value_parser = ["utf-8", "cp949"])]
        encoding: String,
    },
    /// Verify, then apply a snapshot or the next delta (the server may be running meanwhile).
    Import {
        /// A bundle directory, or a .tar, .tar.gz or .tgz of one (unpacked into TMPDIR meanwhile).
        bundle: std::path::PathBuf,
        #[arg(long, default_value = "utf-8", value_parser = ["utf-8", "cp949"])]
        encoding: String,
    },
    /// The last bundle applied, its time and its totals.
    Status,
    /// Write this system's data as a bundle into a new directory, or a new .tar.gz, .tgz or .tar.
    Export {
        /// A new directory; or, ending in .tar.gz, .tgz or .tar, a new archive (files at the top).
        #[arg(value_name = "OUT")]
        dir: std::path::PathBuf,
        /// A delta: what changed after the bundle of this sequence was exported from here.
        #[arg(long)]
        since: Option<u64>,
        /// The operator named in the manifest.
        #[arg(long, default_value = "regional-wallet")]
        operator: String,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a city admin; the password is read from the first line of standard input.
    Create {
        #[arg(long)]
        login: String,
    },
}

/// Malloc arenas at most: glibc gives every thread that allocates its own arena and keeps what
/// it frees there, so a storm that touches many threads would hold memory it no longer uses.
const MALLOC_ARENAS_MAX: libc::c_int = 4;
/// Allocations from this size up are mapped on their own and given back when freed. Fixed, so
/// glibc does not raise it after the first freed argon2 buffer (19 MiB) and keep every later one.
const MALLOC_MMAP_THRESHOLD_BYTES: libc::c_int = 1 << 20;

fn main() -> ExitCode {
    // SAFETY: mallopt only sets an allocator parameter; it is called before any other thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS_MAX);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD_BYTES);
    }
    {
        use tracing_subscriber::filter::{dynamic_filter_fn, FilterExt, Targets};
        use tracing_subscriber::prelude::*;
        let levels =
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,actix_server=warn".into());
        let log = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            // One line per request when its span closes: method, route, status, request id, time.
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            // A client's malformed requests reach the log a few a second at most (log_limits).
            // (Dynamic: asked for every event, where a plain filter function is asked once a callsite.)
            .with_filter(levels.and(dynamic_filter_fn(|metadata, _| log_limits::log_line_allowed(metadata))));
        let count = log_limits::CountMalformed
            .with_filter(Targets::new().with_target(log_limits::DISPATCHER_TARGET, tracing::Level::ERROR));
        tracing_subscriber::registry().with(log).with(count).init();
    }
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("wallet-server: configuration error: {message}");
            return ExitCode::from(2);
        }
    };
    if matches!(
        &cli.command,
        Commands::Handover { command: HandoverCommand::Verify { .. } | HandoverCommand::Import { .. } }
    ) {
        // Before any thread starts: so that an interrupted command removes what it unpacked.
        if let Err(message) = handover::interrupt::clean_up_on_signal() {
            handover_format::output::note(format_args!("wallet-server: {message}"));
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Commands::Serve { demo } => serve(config, demo),
        Commands::Admin { command: AdminCommand::Create { login } } => create_admin(config, &login),
        Commands::Handover { command: HandoverCommand::Verify { bundle, encoding } } => {
            handover::verify(&bundle, encoding_named(&encoding), config.handover_memory_bytes)
        }
        Commands::Handover { command: HandoverCommand::Import { bundle, encoding } } => open_database(&config)
            .and_then(|pool| Ok((server_clock(&config, &pool)?.now(), pool)))
            .and_then(|(now, pool)| Ok((now, pool.get().map_err(|error| error.to_string())?)))
            .and_then(|(now, mut connection)| {
                handover::import(&mut connection, &bundle, encoding_named(&encoding), config.handover_memory_bytes, now)
            }),
        Commands::Handover { command: HandoverCommand::Export { dir, since, operator } } => open_database(&config)
            .and_then(|pool| Ok((server_clock(&config, &pool)?.now(), pool)))
            .and_then(|(now, pool)| Ok((now, pool.get().map_err(|error| error.to_string())?)))
            .and_then(|(now, mut connection)| {
                // A .tar.gz, .tgz or .tar is exported into a staging directory, then packed.
                let target = handover_format::archive::ExportTarget::prepare(&dir)?;
                let dir = target.dir().to_owned();
                let summary = handover::export::export(
                    &mut connection,
                    &dir,
                    &operator,
                    // The server's clock, the test clock included: `as_of` is the time the
                    // server's data is as of.
                    now,
                    since.map(|since| since.min(i64::MAX as u64 - 1) as i64),
                )?;
                handover_format::output::say(format_args!("{}", target.finish(summary)?));
                Ok(())
            }),
        Commands::Programs { command: ProgramsCommand::Grant { program_id, file, login, server } } => read_password()
            .map(|password| wallet_server::grant_file::Server {
                url: server.unwrap_or_else(|| local_url(&config.bind)),
                login,
                password,
            })
            .and_then(|server| Ok((server, open_database(&config)?)))
            .and_then(|(server, pool)| wallet_server::grant_file::grant(pool, &config, &server, &program_id, &file))
            .map(|summary| println!("{summary}")),
        Commands::Handover { command: HandoverCommand::Status } => open_database(&config)
            .and_then(|pool| pool.get().map_err(|error| error.to_string()))
            .and_then(|mut connection| handover::status(&mut connection)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Not eprintln!: a closed stderr would turn the refusal into a panic (exit 101).
            handover_format::output::note(format_args!("wallet-server: {message}"));
            ExitCode::FAILURE
        }
    }
}

fn encoding_named(name: &str) -> handover_format::bundle::Encoding {
    if name == "cp949" {
        handover_format::bundle::Encoding::Cp949
    } else {
        handover_format::bundle::Encoding::Utf8
    }
}

/// Opens the pool and applies pending migrations.
fn open_database(config: &Config) -> Result<store::DbPool, String> {
    let pool = store::open_pool(&config.database, config.pool_size + 1)
        .map_err(|error| format!("cannot open the database: {error}"))?;
    let mut connection = pool.get().map_err(|error| format!("cannot connect to the database: {error}"))?;
    let applied = store::migrate(&mut connection).map_err(|error| error.to_string())?;
    if applied > 0 {
        tracing::info!(applied, "applied database migrations");
    }
    Ok(pool)
}

/// The server's clock: the real time, or with `WALLET_TEST_CLOCK=1` the test clock where it was
/// last moved to (its offset is kept in the database).
fn server_clock(config: &Config, pool: &store::DbPool) -> Result<clock::Clock, String> {
    if !config.test_clock {
        return Ok(clock::Clock::new(false, 0));
    }
    let mut connection = pool.get().map_err(|error| format!("cannot connect to the database: {error}"))?;
    let offset_us = store::test_clock::offset_us(&mut connection).map_err(|error| error.to_string())?;
    Ok(clock::Clock::new(true, offset_us.unwrap_or(0)))
}

/// The login throttle's keys, with the database's salt (kept now if this is the first server to
/// start with the throttle on), so that every server of the database keys a login alike.
fn throttle_keys(pool: &store::DbPool) -> Result<auth::throttle::Keys, String> {
    let mut connection = pool.get().map_err(|error| format!("cannot connect to the database: {error}"))?;
    let new_salt = hex::encode(rand::random::<[u8; 16]>());
    let salt = store::login_failures::salt(&mut connection, &new_salt)
        .map_err(|error| format!("cannot read the login throttle's salt: {error}"))?;
    Ok(auth::throttle::Keys::new(salt.as_bytes()))
}

/// The password on the first line of standard input.
fn read_password() -> Result<String, String> {
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).map_err(|error| format!("cannot read the password: {error}"))?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    if !(8..=128).contains(&password.chars().count()) {
        return Err("the password (first line of standard input) must be 8 to 128 characters".into());
    }
    Ok(password)
}

/// The URL of a server listening on `bind`, as a client on the same machine reaches it.
fn local_url(bind: &str) -> String {
    let bind = bind.strip_prefix("0.0.0.0:").map_or_else(|| bind.to_owned(), |port| format!("127.0.0.1:{port}"));
    format!("http://{bind}")
}

fn create_admin(config: Config, login: &str) -> Result<(), String> {
    let login = http_login(login)?;
    let password = read_password()?;
    let pool = open_database(&config)?;
    let hash = actix_web::rt::System::new().block_on(auth::PasswordPool::new(config.argon2, 1).hash(password));
    let hash = hash.map_err(|error| wallet_server::api::ApiError::from(error).to_string())?;
    let mut connection = pool.get().map_err(|error| error.to_string())?;
    let id = uuid::Uuid::new_v4().to_string();
    // The command line has no test clock: its time is the real time.
    let now = chrono::Utc::now();
    let created = store::write_transaction(&mut connection, |connection| {
        if !store::principals::insert_principal(connection, &id, &login, "admin", &hash, store::time::millis(now))? {
            return Ok(false);
        }
        let entry = store::audit::Entry {
            at: now,
            actor: store::audit::Actor::CommandLine,
            action: store::audit::Action::AdminCreated,
            detail: serde_json::json!({"admin_id": id, "login": login}),
            idempotency_key: None,
        };
        store::audit::record(connection, entry)?;
        Ok::<_, store::StoreError>(true)
    })
    .map_err(|error| error.to_string())?;
    if !created {
        return Err(format!("the login {login:?} is taken; choose another"));
    }
    println!("created admin {login} ({id})");
    Ok(())
}

fn http_login(login: &str) -> Result<String, String> {
    let valid = (3..=64).contains(&login.len())
        && login.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"._-".contains(&byte));
    if valid {
        Ok(login.to_owned())
    } else {
        Err("login must be 3 to 64 characters of a-z, 0-9, '.', '_' and '-'".into())
    }
}

fn serve(config: Config, demo: bool) -> Result<(), String> {
    let pool = open_database(&config)?;
    let clock = Arc::new(server_clock(&config, &pool)?);
    if clock.is_test_clock() {
        tracing::warn!(
            now = %clock.now().to_rfc3339(),
            ahead_of_real_time_s = clock.offset().num_seconds(),
            "the TEST CLOCK is on (WALLET_TEST_CLOCK=1): never use this setting in production"
        );
    }
    let batching = writer::Batching { size_max: config.batch_size_max, wait: config.batch_wait };
    let writer = writer::Writer::start(
        pool.clone(),
        clock.clone(),
        config.writer_queue_max,
        batching,
        config.idempotency_retention,
    );
    if demo {
        demo::seed(&pool, &clock, &config)?;
    }
    store::start_checkpointer(&config.database);
    let bind = config.bind.clone();
    let workers = config.workers;
    let backlog = config.listen_backlog;
    let keep_alive = config.keep_alive;
    let (client_request_timeout, client_disconnect_timeout) =
        (config.client_request_timeout, config.client_disconnect_timeout);
    let body_timeout = config.body_timeout;
    // actix counts connections per worker; the configured bound is for the whole server.
    let connections_per_worker = config.connections_max.div_ceil(workers.max(1));
    let blocking_threads = (config.pool_size as usize).div_ceil(workers.max(1)) + 2;
    tracing::info!(%bind, database = ?config.database, "starting");
    let defaults = admission::limiter::Settings::default();
    let limits = admission::limiter::Settings {
        limit_max: config.concurrency_max,
        limit_initial: defaults.limit_initial.min(config.concurrency_max),
        limit_min: defaults.limit_min.min(config.concurrency_max),
        ..defaults
    };
    let gate = admission::gate::Gate::new(limits, config.admission);
    let throttle = match config.throttle {
        Some(settings) => Some(auth::throttle::Throttle::new(settings, throttle_keys(&pool)?)),
        None => None,
    };
    actix_web::rt::System::new().block_on(async move {
        // With admission off, password work queues without bound, as a server without admission would.
        let argon2_queue_max = if config.admission { config.argon2_queue_max } else { usize::MAX };
        let passwords = auth::PasswordPool::new(config.argon2, argon2_queue_max);
        // No slot counted free until the first login counts them: a wait told before is not short.
        let prior = http::line_prior(&config, &passwords, 0);
        let waiting_room = std::sync::Mutex::new(admission::waiting_room::WaitingRoom::new(prior));
        let sessions_active = auth::sessions::SessionCount::default();
        let requests = Arc::new(http::request_metrics());
        let state = web::Data::new(AppState {
            config,
            pool,
            writer,
            clock,
            passwords,
            waiting_room,
            sessions_active,
            gate: gate.clone(),
            session_cache: auth::sessions::SessionCache::default(),
            started: std::time::Instant::now(),
            books: BooksCheck::default(),
            throttle: throttle.map(std::sync::Mutex::new),
            swept: store::expiry::SweptCounts::default(),
        });
        actix_web::rt::spawn(jobs::keep_line_and_sweeps(state.clone().into_inner()));
        actix_web::rt::spawn(jobs::keep_books_checked(state.clone().into_inner()));
        actix_web::rt::spawn(jobs::keep_throttle_shared(state.clone().into_inner()));
        // Each request gets a tracing span with its request id (kept from X-Request-Id or made,
        // and sent back on every answer), method, route and status; the Authorization header
        // (the token) is never recorded. Outermost first: the request count, security headers
        // (on every answer, the gate's 503s included), the body deadline, the request id, the
        // span, the gate.
        HttpServer::new(move || {
            App::new()
                .wrap(admission::gate::Admission(gate.clone(), http::admission_of))
                .wrap(actix_web::middleware::from_fn(http::header_limits::cap_headers))
                .wrap(tracing_actix_web::TracingLogger::<http::request_id::RequestSpan>::new())
                // Outside the span, so the span and every answer inside it carry the same id.
                .wrap(actix_web::middleware::from_fn(http::request_id::tag_request))
                .wrap(http::body_deadline::BodyDeadline(body_timeout))
                .wrap(http::security_headers())
                // Outermost: counts every answer, including admission's 503s, with the latency
                // the client sees.
                .wrap(http::CountRequests(requests.clone()))
                .app_data(state.clone())
                .app_data(web::Data::from(requests.clone()))
                .configure(http::routes)
        })
        .workers(workers)
        .backlog(backlog)
        .max_connections(connections_per_worker)
        .keep_alive(keep_alive)
        // A connection must send its first request head within the first timeout (408 and
        // closed otherwise: slow-header clients); one being closed is dropped after the second.
        // Heads are bounded by actix-http itself: 96 header fields and 128 KiB (431 past either).
        .client_request_timeout(client_request_timeout)
        .client_disconnect_timeout(client_disconnect_timeout)
        // Blocking work (database reads, logins) runs on at most this many threads per worker:
        // enough for the pool, and few, since each thread's allocator arena keeps memory.
        .worker_max_blocking_threads(blocking_threads)
        .shutdown_timeout(30)
        .bind(&bind)
        .map_err(|error| format!("cannot listen on {bind}: {error}"))?
        .run()
        .await
        .map_err(|error| format!("server error: {error}"))
    })
}
