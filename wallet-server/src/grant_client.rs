//! The grants endpoint as `wallet-server programs grant` uses it: a client of the serving server
//! like any other, logged in as a city admin, so a city-wide grant goes through the one write
//! path (the writer's bulk lane) instead of a second writer on the same database.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wallet_core::{GrantLine, ProgramId};

/// Where the command sends its grants, and as whom.
pub struct Server {
    /// The serving server's base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// A city admin's login.
    pub login: String,
    pub password: String,
}

/// One request's limit: a grants request of 1,000 lines commits in well under a second.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a request is retried while the server answers 503 (overloaded, or its bulk lane
/// full) before the command gives up (having granted what it did: a rerun grants the rest).
const BUSY_RETRY_MAX: Duration = Duration::from_secs(300);
/// The longest pause between two tries, whatever `Retry-After` says.
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(5);

pub struct GrantClient {
    agent: ureq::Agent,
    url: String,
    login: String,
    password: String,
    token: Mutex<String>,
}

/// One answer: status and JSON body (`Null` when it was not JSON).
struct Reply {
    status: u16,
    retry_after: Option<Duration>,
    body: Value,
}

impl GrantClient {
    /// Logs in as `server.login`; refuses at once if the server cannot be reached or the login
    /// is not a city admin's.
    pub fn log_in(server: &Server) -> Result<GrantClient, String> {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .max_redirects(0)
            .build()
            .into();
        let client = GrantClient {
            agent,
            url: server.url.trim_end_matches('/').to_owned(),
            login: server.login.clone(),
            password: server.password.clone(),
            token: Mutex::new(String::new()),
        };
        client.renew_session()?;
        Ok(client)
    }

    fn renew_session(&self) -> Result<(), String> {
        let body = json!({ "login": self.login, "password": self.password });
        let reply = self.send("/v1/sessions", "", None, &body)?;
        match (reply.status, reply.body["role"].as_str(), reply.body["token"].as_str()) {
            (201, Some("admin"), Some(token)) => {
                *self.token.lock().map_err(|_| "the session lock is poisoned")? = token.to_owned();
                Ok(())
            }
            (201, Some(role), _) => Err(format!("{} is a {role}'s login; a city admin's is needed", self.login)),
            (status, _, _) => Err(format!("logging in as {} failed: {status} {}", self.login, reply.body)),
        }
    }

    /// Grants `lines` of `program` in one request, all or none. A line the server says was
    /// granted already (a request of an earlier, killed run landed after its check) is left out
    /// and the rest sent again; busy answers are waited out; an expired session is renewed once.
    pub fn grant(&self, program: &ProgramId, lines: &[GrantLine]) -> Result<(), String> {
        let mut lines: Vec<&GrantLine> = lines.iter().collect();
        let path = format!("/v1/admin/programs/{program}/grants");
        let busy_since = Instant::now();
        let mut renewed = false;
        while !lines.is_empty() {
            let grants: Vec<Value> = lines
                .iter()
                .map(|line| {
                    json!({
                        "wallet_id": line.wallet.as_str(),
                        "amount": line.amount.won().to_string(),
                        "grant_id": line.grant.as_str(),
                    })
                })
                .collect();
            let token = self.token.lock().map_err(|_| "the session lock is poisoned")?.clone();
            let key = idempotency_key(&lines);
            let reply = self.send(&path, &token, Some(&key), &json!({ "grants": grants }))?;
            match reply.status {
                201 => return Ok(()),
                401 if !renewed => {
                    renewed = true;
                    self.renew_session()?;
                }
                503 | 429 if busy_since.elapsed() < BUSY_RETRY_MAX => {
                    std::thread::sleep(reply.retry_after.unwrap_or(Duration::from_secs(1)).min(RETRY_PAUSE_MAX));
                }
                422 if granted_already(&reply.body).is_some() => {
                    let landed = granted_already(&reply.body).unwrap_or_default();
                    lines = lines
                        .into_iter()
                        .enumerate()
                        .filter(|(index, _)| !landed.contains(index))
                        .map(|(_, line)| line)
                        .collect();
                }
                status => return Err(format!("{status} {}", reply.body)),
            }
        }
        Ok(())
    }

    fn send(&self, path: &str, token: &str, key: Option<&str>, body: &Value) -> Result<Reply, String> {
        let mut request = self.agent.post(format!("{}{path}", self.url)).header("Content-Type", "application/json");
        if !token.is_empty() {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let mut response =
            request.send(serde_json::to_vec(body).expect("a Value always serializes")).map_err(|error| {
                format!("cannot reach the server at {}: {error}; is `wallet-server serve` running?", self.url)
            })?;
        let retry_after = response
            .headers()
            .get("Retry-After")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.body_mut().read_to_string().map_err(|error| format!("{path}: {error}"))?;
        Ok(Reply {
            status: response.status().as_u16(),
            retry_after,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        })
    }
}

/// A request's Idempotency-Key: a hash of its lines' grant ids, so the same lines sent again (a
/// rerun within the key's retention) get the first answer, and fewer lines (some found granted)
/// are a new request with a key of their own.
fn idempotency_key(lines: &[&GrantLine]) -> String {
    let mut hasher = Sha256::new();
    for line in lines {
        hasher.update((line.grant.as_str().len() as u64).to_be_bytes());
        hasher.update(line.grant.as_str());
    }
    format!("grant-file-{}", &hex::encode(hasher.finalize())[..40])
}

/// The indexes of a refusal whose every row is `grant_exists`; `None` for any other refusal.
fn granted_already(body: &Value) -> Option<Vec<usize>> {
    let rows = body["rows"].as_array().filter(|rows| !rows.is_empty())?;
    rows.iter()
        .map(|row| match (row["code"].as_str(), row["index"].as_u64()) {
            (Some("grant_exists"), Some(index)) => usize::try_from(index).ok(),
            _ => None,
        })
        .collect()
}
