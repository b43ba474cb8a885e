//! Sessions this server has checked against the database in the last moment, so that most
//! requests authenticate without a trip to the database (a payment then goes straight to the
//! writer; a balance read makes one trip, for the wallet).
//!
//! Exactness: an entry is only used within [`RECHECK_MS`] of being read from the database, and
//! only while the session is within its lifetime and idle timeout by the same rules as the
//! database path ([`is_live`], with `last_seen` as stored there, so every server's sweep agrees),
//! and before its `last_seen` needs the once-a-minute refresh ([`needs_touch`]), which goes
//! through the database path. A logout or a password reset on this server forgets the tokens at
//! once; one on another server over the same database is honoured here within `RECHECK_MS`.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{is_live, needs_touch, Role};

/// How long a session read from the database is trusted without reading it again.
pub const RECHECK_MS: i64 = 1_000;
/// Sessions remembered at most (two generations of half as many; a full generation is
/// dropped whole, so the cache never holds more and never scans).
const ENTRIES_MAX: usize = 200_000;
/// `last_seen` is written back to the database once it is this old (see [`needs_touch`]).
pub const TOUCH_AFTER_MS: i64 = 60_000;

/// A session as read from the database, and when.
#[derive(Clone, Debug)]
pub struct Cached {
    pub principal_id: String,
    pub role: Role,
    pub last_seen_ms: i64,
    pub expires_at_ms: i64,
    pub checked_at_ms: i64,
}

impl Cached {
    /// Whether the entry may stand in for the database at `now_ms`.
    fn usable(&self, now_ms: i64, idle_ms: i64) -> bool {
        (self.checked_at_ms..self.checked_at_ms + RECHECK_MS).contains(&now_ms)
            && is_live(self.expires_at_ms, self.last_seen_ms, now_ms, idle_ms)
            && !needs_touch(self.last_seen_ms, now_ms)
    }
}

#[derive(Default)]
struct Generations {
    current: HashMap<String, Cached>,
    previous: HashMap<String, Cached>,
}

#[derive(Default)]
pub struct SessionCache {
    generations: Mutex<Generations>,
}

impl SessionCache {
    /// The session of `token_hash` if it was checked recently and is still live at `now_ms`.
    pub fn get(&self, token_hash: &str, now_ms: i64, idle_ms: i64) -> Option<Cached> {
        let generations = self.generations.lock().ok()?;
        let entry = generations.current.get(token_hash).or_else(|| generations.previous.get(token_hash))?;
        entry.usable(now_ms, idle_ms).then(|| entry.clone())
    }

    pub fn put(&self, token_hash: String, entry: Cached) {
        let Ok(mut generations) = self.generations.lock() else { return };
        if generations.current.len() >= ENTRIES_MAX / 2 {
            generations.previous = std::mem::take(&mut generations.current);
        }
        generations.current.insert(token_hash, entry);
    }

    /// Forgets every session of a principal (a password reset ends them all). Scans the cache:
    /// rare, and bounded by its size.
    pub fn forget_principal(&self, principal_id: &str) {
        if let Ok(mut generations) = self.generations.lock() {
            generations.current.retain(|_, entry| entry.principal_id != principal_id);
            generations.previous.retain(|_, entry| entry.principal_id != principal_id);
        }
    }

    /// Forgets a token (a logout): the next request with it goes to the database.
    pub fn forget(&self, token_hash: &str) {
        if let Ok(mut generations) = self.generations.lock() {
            generations.current.remove(token_hash);
            generations.previous.remove(token_hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE_MS: i64 = 900_000;

    fn entry(checked_at_ms: i64) -> Cached {
        Cached {
            principal_id: "p".into(),
            role: Role::Citizen,
            last_seen_ms: checked_at_ms,
            expires_at_ms: checked_at_ms + 3_600_000,
            checked_at_ms,
        }
    }

    #[test]
    fn an_entry_serves_only_until_it_must_be_checked_again() {
        let cache = SessionCache::default();
        cache.put("t".into(), entry(10_000));
        assert!(cache.get("t", 10_000, IDLE_MS).is_some());
        assert!(cache.get("t", 10_000 + RECHECK_MS - 1, IDLE_MS).is_some());
        assert!(cache.get("t", 10_000 + RECHECK_MS, IDLE_MS).is_none());
        // A clock that went backward (another server's view) is not trusted either.
        assert!(cache.get("t", 9_999, IDLE_MS).is_none());
        assert!(cache.get("other", 10_000, IDLE_MS).is_none());
    }

    #[test]
    fn expired_idle_and_forgotten_sessions_are_not_served() {
        let cache = SessionCache::default();
        let mut expired = entry(10_000);
        expired.expires_at_ms = 10_000;
        cache.put("expired".into(), expired);
        assert!(cache.get("expired", 10_000, IDLE_MS).is_none());
        let mut idle = entry(10_000);
        idle.last_seen_ms = 10_000 - IDLE_MS;
        cache.put("idle".into(), idle);
        assert!(cache.get("idle", 10_000, IDLE_MS).is_none());
        let mut stale = entry(10_000);
        stale.last_seen_ms = 10_000 - TOUCH_AFTER_MS - 1;
        cache.put("stale".into(), stale);
        assert!(cache.get("stale", 10_000, IDLE_MS).is_none(), "last_seen must be written back first");
        cache.put("gone".into(), entry(10_000));
        cache.forget("gone");
        assert!(cache.get("gone", 10_000, IDLE_MS).is_none());
        let mut someone_else = entry(10_000);
        someone_else.principal_id = "q".into();
        cache.put("reset-1".into(), entry(10_000));
        cache.put("reset-2".into(), entry(10_000));
        cache.put("kept".into(), someone_else);
        cache.forget_principal("p");
        assert!(cache.get("reset-1", 10_000, IDLE_MS).is_none() && cache.get("reset-2", 10_000, IDLE_MS).is_none());
        assert!(cache.get("kept", 10_000, IDLE_MS).is_some());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = SessionCache::default();
        for index in 0..ENTRIES_MAX + 10 {
            cache.put(format!("t{index}"), entry(10_000));
        }
        let generations = cache.generations.lock().unwrap();
        assert!(generations.current.len() + generations.previous.len() <= ENTRIES_MAX);
        assert!(generations.current.contains_key(&format!("t{}", ENTRIES_MAX + 9)));
    }
}
