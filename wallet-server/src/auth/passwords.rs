//! Passwords (argon2id on a bounded pool) and session tokens (256-bit random, stored hashed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::turns::{Claim, Turn, Turns};
use crate::api::ApiError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The cost of argon2id: memory in KiB, passes, lanes. Default: OWASP's m=19456, t=2, p=1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub passes: u32,
    pub lanes: u32,
}

impl Default for Argon2Settings {
    fn default() -> Argon2Settings {
        Argon2Settings { memory_kib: 19_456, passes: 2, lanes: 1 }
    }
}

impl Argon2Settings {
    /// Parses `m=19456,t=2,p=1`.
    pub fn parse(text: &str) -> Result<Argon2Settings, String> {
        let mut settings = Argon2Settings::default();
        for part in text.split(',') {
            let (name, value) =
                part.split_once('=').ok_or_else(|| format!("WALLET_ARGON2 part {part:?} is not name=value"))?;
            let value: u32 =
                value.trim().parse().map_err(|_| format!("WALLET_ARGON2 {name} value {value:?} is not a number"))?;
            match name.trim() {
                "m" => settings.memory_kib = value,
                "t" => settings.passes = value,
                "p" => settings.lanes = value,
                other => return Err(format!("WALLET_ARGON2 has unknown parameter {other:?}; use m, t and p")),
            }
        }
        settings.argon2().map_err(|error| format!("WALLET_ARGON2={text:?} is refused by argon2: {error}"))?;
        Ok(settings)
    }

    fn argon2(&self) -> Result<Argon2<'static>, argon2::Error> {
        let params = Params::new(self.memory_kib, self.passes, self.lanes, None)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Hashes and verifies passwords on its own threads, one per core, so a storm of logins cannot
/// take all the memory (about `m` KiB per hash in flight) or all threads. (They are its own
/// threads, not the shared blocking pool, because the allocator keeps freed memory per thread:
/// argon2 run on hundreds of pool threads held gigabytes after a storm.)
/// Turns go by priority ([`Claim`]); at most `queue_max` citizens without a ticket wait for one,
/// and past that a citizen login is sent to the waiting room and a registration is refused
/// `overloaded` (see `http/session.rs`).
#[derive(Clone)]
pub struct PasswordPool {
    settings: Argon2Settings,
    turns: Turns,
    queue_max: usize,
    threads: HashThreads,
    /// A hash of a random password, verified when a login is unknown, so that an unknown
    /// login takes as long as a wrong password and logins cannot be probed by timing.
    decoy_hash: Arc<str>,
}

impl PasswordPool {
    pub fn new(settings: Argon2Settings, queue_max: usize) -> PasswordPool {
        let cores = std::thread::available_parallelism().map(|cores| cores.get()).unwrap_or(2);
        let decoy = hex::encode(random_bytes());
        // Timed: the first measure of a check's cost, before any login has been checked.
        let started = Instant::now();
        let decoy_hash = hash_now(settings, &decoy).expect("settings were validated at start");
        let job_cost = JobCost::starting_at(started.elapsed().as_secs_f64());
        PasswordPool {
            settings,
            turns: Turns::new(cores, queue_max),
            threads: HashThreads::start(cores, job_cost),
            queue_max,
            decoy_hash: decoy_hash.into(),
        }
    }

    /// Whether a citizen without a ticket would find the queue full.
    pub fn is_saturated(&self) -> bool {
        self.turns.is_full()
    }

    /// How many more tickets from the waiting room may be let in now without the queue for the
    /// password threads growing past its bound: the waiting room lets in no more than this, so
    /// that a ticket let in is checked within moments instead of waiting behind a crowd.
    pub fn room_for_line(&self) -> usize {
        self.queue_max.saturating_sub(self.turns.waiting())
    }

    /// Password checks a second all the threads do, measured: the threads divided by the moving
    /// average of a job's time on its thread (wall time, so a thread preempted by request
    /// threads under load counts as slower, which it is). The waiting room's wait estimate
    /// starts from it.
    pub fn checks_per_s(&self) -> f64 {
        self.threads.count as f64 / self.threads.job_cost.seconds()
    }

    async fn turn(&self, claim: Claim) -> Result<Turn, PoolError> {
        self.turns.take(claim).await.map_err(|_| PoolError::Busy)
    }

    pub async fn hash(&self, password: String) -> Result<String, PoolError> {
        let _turn = self.turn(Claim::Citizen).await?;
        let settings = self.settings;
        let hashed = self.threads.run(move || hash_now(settings, &password)).await?;
        hashed.map_err(|_| PoolError::Failed(ApiError::internal()))
    }

    /// Whether `password` matches `stored` (a PHC string of argon2i/d/id, scrypt or
    /// pbkdf2-sha256, or a bcrypt hash: what an outgoing operator may hand over). `None`
    /// verifies against the decoy. A match on anything but argon2id at this server's cost
    /// also returns the password's new argon2id hash, to store in place of the old one.
    /// `claim` says whose check this is and so when its turn comes.
    pub async fn verify(&self, password: String, stored: Option<String>, claim: Claim) -> Result<Checked, PoolError> {
        let _turn = self.turn(claim).await?;
        let (stored, real) = match stored {
            Some(stored) if !stored.is_empty() => (stored, true),
            _ => (self.decoy_hash.to_string(), false),
        };
        let settings = self.settings;
        let checked = self
            .threads
            .run(move || {
                if !verify_any(settings, &password, &stored) {
                    return Checked { matches: false, upgrade: None };
                }
                let upgrade = if is_current(settings, &stored) { None } else { hash_now(settings, &password).ok() };
                Checked { matches: true, upgrade }
            })
            .await?;
        Ok(if real { checked } else { Checked { matches: false, upgrade: None } })
    }
}

/// The result of a password check.
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
    pub matches: bool,
    /// The password hashed anew with argon2id at this server's cost, when the stored hash was
    /// of another scheme or cost.
    pub upgrade: Option<String>,
}

/// Verifies `password` against a hash of any scheme a handover may carry.
fn verify_any(settings: Argon2Settings, password: &str, stored: &str) -> bool {
    if ["$2a$", "$2b$", "$2y$"].iter().any(|prefix| stored.starts_with(prefix)) {
        return bcrypt::verify(password, stored).unwrap_or(false);
    }
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    let password = password.as_bytes();
    match parsed.algorithm.as_str() {
        // The hash carries its own variant and cost; argon2 verifies with those.
        "argon2id" | "argon2i" | "argon2d" => {
            settings.argon2().is_ok_and(|argon2| argon2.verify_password(password, &parsed).is_ok())
        }
        "scrypt" => scrypt::Scrypt.verify_password(password, &parsed).is_ok(),
        "pbkdf2-sha256" => pbkdf2::Pbkdf2.verify_password(password, &parsed).is_ok(),
        _ => false,
    }
}

/// Whether `stored` is argon2id at exactly this server's cost.
fn is_current(settings: Argon2Settings, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    let Ok(params) = argon2::Params::try_from(&parsed) else { return false };
    parsed.algorithm.as_str() == "argon2id"
        && params.m_cost() == settings.memory_kib
        && params.t_cost() == settings.passes
        && params.p_cost() == settings.lanes
}

type Job = Box<dyn FnOnce() + Send>;

/// Niceness of the password threads where `SCHED_IDLE` is refused: a login storm keeps both
/// cores busy hashing, and without this, payments and reads wait for the CPU behind it (on 2
/// cores their p99 rose thirtyfold).
const PASSWORD_THREAD_NICE: libc::c_int = 10;

/// Linux's `SCHED_IDLE` policy (`<sched.h>`; the libc crate names it only for some targets).
const SCHED_IDLE: libc::c_int = 5;

/// Puts the calling thread in Linux's `SCHED_IDLE` class: it runs only on CPU time nothing else
/// of normal priority wants, and a waking request thread preempts it at once. (Nice 10 alone still
/// left payments' p99 at 3.5 times its quiet value during a storm: a niced thread keeps the core
/// for its time slice.) Failing that, it lowers the thread's nice value.
fn lower_priority() {
    // SAFETY: sched_setscheduler reads the param struct we pass by reference; gettid and
    // setpriority take no pointers. Failure only leaves the priority as it was. (pid 0 is the
    // calling thread.)
    let idle = unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, SCHED_IDLE, &param)
    };
    if idle == 0 {
        return;
    }
    let niced = unsafe {
        let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread, PASSWORD_THREAD_NICE)
    };
    if niced != 0 {
        tracing::warn!("could not lower the password threads' priority; logins may slow payments under a storm");
    }
}

/// A fixed set of threads for password work. At most one job per thread is ever outstanding
/// (each holds one of the pool's turns), so the channel needs no other bound.
#[derive(Clone)]
struct HashThreads {
    sender: std::sync::mpsc::Sender<Job>,
    count: usize,
    job_cost: Arc<JobCost>,
}

/// Weight of the newest job in [`JobCost`]'s moving average: about the last 20 jobs count.
const JOB_COST_WEIGHT: f64 = 0.05;
/// Shortest job time counted, so that a rate computed from it stays finite.
const JOB_COST_S_MIN: f64 = 1e-6;

/// The moving average of a password job's time on its thread, in seconds (an `f64`'s bits, so
/// every thread updates it without a lock).
struct JobCost {
    seconds_bits: AtomicU64,
}

impl JobCost {
    fn starting_at(seconds: f64) -> Arc<JobCost> {
        Arc::new(JobCost { seconds_bits: AtomicU64::new(seconds.max(JOB_COST_S_MIN).to_bits()) })
    }

    fn seconds(&self) -> f64 {
        f64::from_bits(self.seconds_bits.load(Ordering::Relaxed))
    }

    fn record(&self, seconds: f64) {
        let seconds = seconds.max(JOB_COST_S_MIN);
        // A lost race drops one sample of an average; the retry makes that rare anyway.
        let _ = self.seconds_bits.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            let average = f64::from_bits(bits);
            Some((average + JOB_COST_WEIGHT * (seconds - average)).to_bits())
        });
    }
}

impl HashThreads {
    fn start(count: usize, job_cost: Arc<JobCost>) -> HashThreads {
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        for index in 0..count {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // the pool is gone
                        }
                    }
                })
                .expect("the password threads start");
        }
        HashThreads { sender, count, job_cost }
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job_cost = Arc::clone(&self.job_cost);
        let job: Job = Box::new(move || {
            let started = Instant::now();
            let done = work();
            job_cost.record(started.elapsed().as_secs_f64());
            let _ = reply.send(done);
        });
        self.sender.send(job).map_err(|_| ApiError::internal())?;
        answer.await.map_err(|_| ApiError::internal())
    }
}

/// Why the password pool did not do the work.
#[derive(Debug)]
pub enum PoolError {
    /// The queue is full: try later.
    Busy,
    Failed(ApiError),
}

impl From<ApiError> for PoolError {
    fn from(error: ApiError) -> PoolError {
        PoolError::Failed(error)
    }
}

impl From<PoolError> for ApiError {
    fn from(error: PoolError) -> ApiError {
        match error {
            PoolError::Busy => ApiError::overloaded(
                "password checks are queued to capacity; retry after the time given in Retry-After",
            ),
            PoolError::Failed(error) => error,
        }
    }
}

fn hash_now(settings: Argon2Settings, password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&random_bytes()[..16])?;
    let argon2 = settings.argon2().map_err(argon2::password_hash::Error::from)?;
    Ok(argon2.hash_password(password.as_bytes(), &salt)?.to_string())
}

fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// A new session token (256 random bits, hex) and the hash that is all the database keeps.
pub fn new_token() -> (String, String) {
    let token = hex::encode(random_bytes());
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// An unguessable payment code: 128 random bits, hex.
pub fn new_payment_code() -> String {
    hex::encode(&random_bytes()[..16])
}

/// SHA-256 of a request, for telling an idempotent retry from a reuse of its key.
pub fn request_hash(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;

    const CHEAP: Argon2Settings = Argon2Settings { memory_kib: 64, passes: 1, lanes: 1 };

    fn salt() -> SaltString {
        SaltString::encode_b64(b"handover-salt-16").unwrap()
    }

    #[test]
    fn every_scheme_a_handover_carries_verifies_and_only_with_the_right_password() {
        let hashes = [
            hash_now(CHEAP, "correct horse").unwrap(),
            Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::new(64, 1, 1, None).unwrap())
                .hash_password(b"correct horse", &salt())
                .unwrap()
                .to_string(),
            Argon2::new(Algorithm::Argon2d, Version::V0x13, Params::new(64, 1, 1, None).unwrap())
                .hash_password(b"correct horse", &salt())
                .unwrap()
                .to_string(),
            bcrypt::hash("correct horse", 4).unwrap(),
            scrypt::Scrypt
                .hash_password_customized(
                    b"correct horse",
                    None,
                    None,
                    scrypt::Params::new(4, 8, 1, 32).unwrap(),
                    &salt(),
                )
                .unwrap()
                .to_string(),
            pbkdf2::Pbkdf2
                .hash_password_customized(
                    b"correct horse",
                    Some(pbkdf2::Algorithm::Pbkdf2Sha256.ident()),
                    None,
                    pbkdf2::Params { rounds: 1_000, output_length: 32 },
                    &salt(),
                )
                .unwrap()
                .to_string(),
        ];
        for hash in &hashes {
            assert!(verify_any(CHEAP, "correct horse", hash), "{hash} did not verify");
            assert!(!verify_any(CHEAP, "wrong horse", hash), "{hash} verified a wrong password");
        }
        assert!(hashes[5].starts_with("$pbkdf2-sha256$"), "{}", hashes[5]);
        assert!(!verify_any(CHEAP, "correct horse", "$md5$whatever"));
        assert!(!verify_any(CHEAP, "correct horse", ""));
    }

    #[test]
    fn the_job_cost_average_moves_toward_new_jobs_and_stays_positive() {
        let cost = JobCost::starting_at(0.030);
        for _ in 0..200 {
            cost.record(0.010);
        }
        assert!((cost.seconds() - 0.010).abs() < 1e-4, "{}", cost.seconds());
        cost.record(0.0);
        assert!(cost.seconds() > 0.0);
        assert_eq!(JobCost::starting_at(0.0).seconds(), JOB_COST_S_MIN, "a rate from it stays finite");
    }

    #[test]
    fn only_argon2id_at_this_cost_is_current() {
        assert!(is_current(CHEAP, &hash_now(CHEAP, "pw").unwrap()));
        assert!(!is_current(Argon2Settings::default(), &hash_now(CHEAP, "pw").unwrap()));
        assert!(!is_current(CHEAP, &bcrypt::hash("pw", 4).unwrap()));
    }
}
