//! The report page's sessions: a bounded table in memory, so a person signs in once with
//! a bearer token and then browses with an HttpOnly cookie that holds only a random id.
//!
//! A session id is 32 random bytes from the thread's CSPRNG, sent as hex. The table keys
//! sessions by the SM3 hash of the id (as the token table keys tokens), so the table
//! holds nothing a cookie could be made from. It holds at most its capacity: a sign-in
//! past it first drops expired sessions, then the one closest to expiry. Sessions do not
//! survive a restart; a person signs in again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::Rng as _;

use crate::api::auth::{Principal, Role};
use crate::storage::record::sm3_digest;

/// Who a session belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub principal: String,
    pub role: Role,
    pub expires: Instant,
}

/// The sessions, bounded in count and in time.
pub struct SessionTable {
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    capacity: usize,
    lifetime: Duration,
}

impl SessionTable {
    pub fn new(capacity: usize, lifetime: Duration) -> SessionTable {
        SessionTable {
            sessions: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            lifetime,
        }
    }

    /// Opens a session for `principal`; returns its id (for the cookie).
    pub fn open(&self, principal: &Principal, now: Instant) -> String {
        let mut id = [0u8; 32];
        rand::rng().fill(&mut id);
        let id = hex::encode(id);
        let session = Session {
            principal: principal.name.clone(),
            role: principal.role,
            expires: now + self.lifetime,
        };
        let mut sessions = self.sessions.lock();
        if sessions.len() >= self.capacity {
            sessions.retain(|_, session| session.expires > now);
        }
        if sessions.len() >= self.capacity {
            let closest = sessions
                .iter()
                .min_by_key(|(_, session)| session.expires)
                .map(|(key, _)| *key);
            if let Some(key) = closest {
                sessions.remove(&key);
            }
        }
        sessions.insert(sm3_digest(id.as_bytes()), session);
        id
    }

    /// The session with this id, if it exists and has not expired (an expired one is
    /// dropped).
    pub fn find(&self, id: &str, now: Instant) -> Option<Session> {
        let key = sm3_digest(id.as_bytes());
        let mut sessions = self.sessions.lock();
        match sessions.get(&key) {
            Some(session) if session.expires > now => Some(session.clone()),
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends a session (sign-out); an unknown id is ignored.
    pub fn close(&self, id: &str) {
        self.sessions.lock().remove(&sm3_digest(id.as_bytes()));
    }

    /// Sessions held now (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bureau() -> Principal {
        Principal {
            name: "bureau".into(),
            role: Role::Bureau,
            subject: None,
        }
    }

    #[test]
    fn a_session_is_found_by_its_id_until_it_expires_or_is_closed() {
        let table = SessionTable::new(4, Duration::from_secs(60));
        let now = Instant::now();
        let id = table.open(&bureau(), now);
        assert_eq!(id.len(), 64, "32 random bytes in hex");
        let found = table.find(&id, now).expect("open session");
        assert_eq!(
            (found.principal.as_str(), found.role),
            ("bureau", Role::Bureau)
        );
        assert!(table.find("not-an-id", now).is_none());
        assert!(table.find(&id, now + Duration::from_secs(61)).is_none());
        assert!(table.is_empty(), "the expired session was dropped");

        let id = table.open(&bureau(), now);
        table.close(&id);
        assert!(table.find(&id, now).is_none());
    }

    #[test]
    fn two_sign_ins_get_different_ids() {
        let table = SessionTable::new(4, Duration::from_secs(60));
        let now = Instant::now();
        assert_ne!(table.open(&bureau(), now), table.open(&bureau(), now));
    }

    #[test]
    fn a_full_table_drops_the_session_closest_to_expiry() {
        let table = SessionTable::new(3, Duration::from_secs(60));
        let start = Instant::now();
        let ids: Vec<String> = (0..3)
            .map(|second| table.open(&bureau(), start + Duration::from_secs(second)))
            .collect();
        let newest = table.open(&bureau(), start + Duration::from_secs(10));
        assert_eq!(table.len(), 3, "never more than the capacity");
        let now = start + Duration::from_secs(10);
        assert!(table.find(&ids[0], now).is_none(), "the oldest went");
        assert!(table.find(&ids[1], now).is_some());
        assert!(table.find(&ids[2], now).is_some());
        assert!(table.find(&newest, now).is_some());
    }
}
