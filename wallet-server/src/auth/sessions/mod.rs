//! Sessions: when a stored session is still live, and the check of a bearer token's session,
//! from the cache of sessions read in the last moment ([`cache`]) or from the database.
//!
//! The rules are plain functions of the stored times and `now`, so the database path, the cache
//! and the tests apply the same ones. The HTTP layer takes the token from the request, hashes it
//! and asks here; the sweep of idle and expired sessions (`store::sessions::sweep_citizen_sessions`)
//! deletes by the same rules in SQL.

pub mod cache;
pub mod slots;

pub use cache::SessionCache;
pub use slots::{SessionCount, SessionSlot};

use crate::api::ApiError;
use crate::store::{self, DbConn, StoreResult};
use cache::{Cached, TOUCH_AFTER_MS};

/// Which role a session has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Citizen,
    Merchant,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Citizen => "citizen",
            Role::Merchant => "merchant",
            Role::Admin => "admin",
        }
    }

    /// The role of a stored principal or session; `None` for text the code does not know.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "citizen" => Some(Role::Citizen),
            "merchant" => Some(Role::Merchant),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The role as the API sends it.
impl From<Role> for crate::api::wire::Role {
    fn from(role: Role) -> crate::api::wire::Role {
        match role {
            Role::Citizen => crate::api::wire::Role::Citizen,
            Role::Merchant => crate::api::wire::Role::Merchant,
            Role::Admin => crate::api::wire::Role::Admin,
        }
    }
}

/// The authenticated caller.
pub struct Principal {
    pub id: String,
    pub role: Role,
    pub token_hash: String,
}

impl Principal {
    /// The caller, when `required` is its role or `None`; else 403 naming the role it has.
    fn of_role(self, required: Option<Role>) -> Result<Principal, ApiError> {
        match required {
            Some(required) if required != self.role => Err(ApiError::forbidden(self.role.as_str())),
            _ => Ok(self),
        }
    }
}

/// Whether a session ending at `expires_at_ms` and last seen at `last_seen_ms` is live at
/// `now_ms`: within its lifetime, and used within the idle timeout `idle_ms`.
pub fn is_live(expires_at_ms: i64, last_seen_ms: i64, now_ms: i64, idle_ms: i64) -> bool {
    now_ms < expires_at_ms && now_ms < last_seen_ms + idle_ms
}

/// Whether a live session's `last_seen` is old enough at `now_ms` to be written back (at most
/// once every [`TOUCH_AFTER_MS`], so a busy session does not write on every request).
pub fn needs_touch(last_seen_ms: i64, now_ms: i64) -> bool {
    now_ms - last_seen_ms > TOUCH_AFTER_MS
}

/// The caller of `token_hash` from `cache`, with the role checked; `None` when the database
/// must say (not cached, or no longer usable at `now_ms`).
pub fn cached(
    cache: &SessionCache,
    token_hash: &str,
    required: Option<Role>,
    now_ms: i64,
    idle_ms: i64,
) -> Option<Result<Principal, ApiError>> {
    let cached = cache.get(token_hash, now_ms, idle_ms)?;
    let principal = Principal { id: cached.principal_id, role: cached.role, token_hash: token_hash.to_owned() };
    Some(principal.of_role(required))
}

/// The caller of `token_hash` as the database has it at `now_ms`: 401 without a live session
/// (a dead one is deleted and forgotten), 403 for another role than `required`. A live session
/// has its `last_seen` written back when due ([`needs_touch`]) and goes into `cache`, whatever
/// its role.
pub fn check_stored(
    connection: &mut DbConn,
    cache: &SessionCache,
    token_hash: String,
    required: Option<Role>,
    now_ms: i64,
    idle_ms: i64,
) -> StoreResult<Result<Principal, ApiError>> {
    let Some(session) = store::sessions::find_session(connection, &token_hash)? else {
        return Ok(Err(ApiError::unauthorized()));
    };
    if !is_live(session.expires_at_ms, session.last_seen_ms, now_ms, idle_ms) {
        cache.forget(&token_hash);
        store::sessions::delete_session(connection, &token_hash)?;
        return Ok(Err(ApiError::unauthorized()));
    }
    let mut last_seen_ms = session.last_seen_ms;
    if needs_touch(session.last_seen_ms, now_ms) {
        store::sessions::touch_session(connection, &token_hash, now_ms)?;
        last_seen_ms = now_ms;
    }
    let Some(role) = Role::parse(&session.role) else { return Ok(Err(ApiError::internal())) };
    let cached = Cached {
        principal_id: session.principal_id.clone(),
        role,
        last_seen_ms,
        expires_at_ms: session.expires_at_ms,
        checked_at_ms: now_ms,
    };
    cache.put(token_hash.clone(), cached);
    Ok(Principal { id: session.principal_id, role, token_hash }.of_role(required))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE_MS: i64 = 900_000;

    #[test]
    fn a_session_lives_until_its_end_or_its_idle_timeout_whichever_comes_first() {
        assert!(is_live(10_000, 5_000, 9_999, IDLE_MS));
        assert!(!is_live(10_000, 5_000, 10_000, IDLE_MS), "the end is exclusive");
        assert!(is_live(10_000_000, 5_000, 5_000 + IDLE_MS - 1, IDLE_MS));
        assert!(!is_live(10_000_000, 5_000, 5_000 + IDLE_MS, IDLE_MS), "idle for the whole timeout");
    }

    #[test]
    fn last_seen_is_written_back_only_once_it_is_a_minute_old() {
        assert!(!needs_touch(0, TOUCH_AFTER_MS));
        assert!(needs_touch(0, TOUCH_AFTER_MS + 1));
    }

    #[test]
    fn the_wire_role_is_the_stored_name() {
        for role in [Role::Citizen, Role::Merchant, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            let wire = serde_json::to_value(crate::api::wire::Role::from(role)).expect("a role serializes");
            assert_eq!(wire, serde_json::json!(role.as_str()));
        }
        assert_eq!(Role::parse("auditor"), None);
    }
}
