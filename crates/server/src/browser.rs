//! Browsers in meetings: each one's session, from its offer to its leaving.
//!
//! The join API (`api/join.rs`) answers a browser's WebRTC offer and hands the meeting a leg
//! like a SIP call's; this keeps what the page holds between requests: a token scoped to that
//! one leg, and where the leg stands (waiting, in as member N, gone and why). The token
//! lives in memory only and dies with the leg: when the member leaves, is removed, or the
//! meeting ends, it is worth nothing.
//!
//! Bounded like the SIP side's waiting callers: so many sessions per address and in all, so
//! an anonymous client cannot fill the server with half-open browsers.

use crate::meeting::leg::{LegControl, LegEvent, LegId, LegKind, LegSignals};
use conclave_conference::live::{MemberId, Refused};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Where a browser's leg stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stand {
    /// Handed to the meeting, not yet taken in.
    Waiting,
    /// A member of the meeting.
    Member(MemberId),
    /// Gone: the reason the meeting gave when it turned the browser away, if it did.
    Gone(Option<String>),
}

/// One browser's session.
pub struct Session {
    pub id: u64,
    pub leg: LegId,
    pub tenant_id: String,
    pub room_id: String,
    pub room_number: String,
    pub room_name: String,
    pub name: String,
    pub ip: IpAddr,
    pub signals: LegSignals,
    stand: tokio::sync::watch::Sender<Stand>,
    /// Roster streams open on this session (`/join/me/events`), at most [`MAX_WATCHERS`].
    watchers: AtomicUsize,
}

/// Roster streams one browser session may hold at once: its page, and the page reloaded
/// while the old socket is still closing.
pub const MAX_WATCHERS: usize = 2;

/// One roster stream's place on its session, given back when the stream ends.
pub struct Watcher(Arc<Session>);

impl Drop for Watcher {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Session {
    pub fn stand(&self) -> Stand {
        self.stand.borrow().clone()
    }

    /// What the meeting decides about this browser, as it changes.
    pub fn stand_changes(&self) -> tokio::sync::watch::Receiver<Stand> {
        self.stand.subscribe()
    }

    /// A place for one more roster stream, unless the session holds [`MAX_WATCHERS`] already
    /// (checked and counted in one step).
    pub fn watch(self: &Arc<Self>) -> Option<Watcher> {
        self.watchers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_WATCHERS).then_some(n + 1)
            })
            .ok()
            .map(|_| Watcher(self.clone()))
    }

    /// Waits until the meeting has taken the browser in or turned it away (or `within` ends).
    pub async fn settled(&self, within: std::time::Duration) -> Stand {
        let mut rx = self.stand.subscribe();
        let settled = rx.wait_for(|s| *s != Stand::Waiting);
        match tokio::time::timeout(within, settled).await {
            Ok(Ok(s)) => s.clone(),
            _ => self.stand(),
        }
    }

    /// The browser leaves: the meeting hears it as a hang-up.
    pub fn leave(&self) {
        self.signals.emit(
            self.leg,
            LegEvent::Ended(crate::meeting::leg::EndCause::Hangup),
        );
    }
}

/// Why a new session is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// This address has as many as it may.
    Address,
    /// The server has as many as it may.
    Server,
}

#[derive(Default)]
struct Registry {
    by_token: HashMap<String, Arc<Session>>,
    token_of: HashMap<u64, String>,
    per_address: HashMap<IpAddr, usize>,
}

/// Every browser's session; cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Mutex<Registry>>,
    per_address: usize,
    total: usize,
}

/// Browser session ids share the console's "call id" space with SIP calls: they are told
/// apart by this bit.
const SESSION_ID_BIT: u64 = 1 << 62;
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// What a new session is made of.
pub struct NewSession {
    pub leg: LegId,
    pub tenant_id: String,
    pub room_id: String,
    pub room_number: String,
    pub room_name: String,
    pub name: String,
    pub ip: IpAddr,
    pub signals: LegSignals,
}

impl Sessions {
    pub fn new(per_address: usize, total: usize) -> Sessions {
        Sessions {
            inner: Arc::default(),
            per_address,
            total,
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session and its token, unless its address or the server is at the limit
    /// (checked and counted in one step).
    pub fn open(&self, new: NewSession) -> Result<(Arc<Session>, String), Full> {
        let mut r = self.registry();
        let here = r.per_address.get(&new.ip).copied().unwrap_or(0);
        if here >= self.per_address {
            metrics::counter!("conclave_browser_sessions_refused_total", "why" => "address")
                .increment(1);
            return Err(Full::Address);
        }
        if r.by_token.len() >= self.total {
            metrics::counter!("conclave_browser_sessions_refused_total", "why" => "server")
                .increment(1);
            return Err(Full::Server);
        }
        let id = SESSION_ID_BIT | NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        let token = crate::credentials::new_session_token();
        let session = Arc::new(Session {
            id,
            leg: new.leg,
            tenant_id: new.tenant_id,
            room_id: new.room_id,
            room_number: new.room_number,
            room_name: new.room_name,
            name: new.name,
            ip: new.ip,
            signals: new.signals,
            stand: tokio::sync::watch::Sender::new(Stand::Waiting),
            watchers: AtomicUsize::new(0),
        });
        *r.per_address.entry(new.ip).or_default() += 1;
        r.by_token.insert(token.clone(), session.clone());
        r.token_of.insert(id, token.clone());
        metrics::gauge!("conclave_browser_sessions").set(r.by_token.len() as f64);
        Ok((session, token))
    }

    /// The session a token belongs to (while its leg lives).
    pub fn get(&self, token: &str) -> Option<Arc<Session>> {
        self.registry().by_token.get(token).cloned()
    }

    fn by_id(&self, id: u64) -> Option<Arc<Session>> {
        let r = self.registry();
        r.token_of.get(&id).and_then(|t| r.by_token.get(t)).cloned()
    }

    /// The leg is gone: its token is worth nothing from now on.
    pub fn close(&self, id: u64, reason: Option<String>) {
        let session = {
            let mut r = self.registry();
            let Some(token) = r.token_of.remove(&id) else {
                return;
            };
            let session = r.by_token.remove(&token);
            if let Some(s) = &session
                && let Some(n) = r.per_address.get_mut(&s.ip)
            {
                *n -= 1;
                if *n == 0 {
                    r.per_address.remove(&s.ip);
                }
            }
            metrics::gauge!("conclave_browser_sessions").set(r.by_token.len() as f64);
            session
        };
        if let Some(s) = session {
            let reason = reason.or_else(|| match s.stand() {
                Stand::Gone(reason) => reason,
                _ => None,
            });
            s.stand.send_replace(Stand::Gone(reason));
        }
    }

    /// Sessions open now.
    pub fn count(&self) -> usize {
        self.registry().by_token.len()
    }
}

/// What the meeting does to a browser's leg reaches its session.
impl LegControl for Sessions {
    fn hang_up(&self, kind: &LegKind) {
        if let LegKind::Browser { session } = *kind {
            self.close(session, None);
        }
    }

    fn admitted(&self, kind: &LegKind, member: MemberId) {
        if let LegKind::Browser { session } = *kind
            && let Some(s) = self.by_id(session)
        {
            s.stand.send_replace(Stand::Member(member));
        }
    }

    fn refused(&self, kind: &LegKind, reason: &Refused) {
        if let LegKind::Browser { session } = *kind
            && let Some(s) = self.by_id(session)
        {
            s.stand.send_replace(Stand::Gone(Some(reason.to_string())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(ip: &str) -> NewSession {
        NewSession {
            leg: 1,
            tenant_id: "t".into(),
            room_id: "r".into(),
            room_number: "100".into(),
            room_name: "Room".into(),
            name: "Guest".into(),
            ip: ip.parse().unwrap(),
            signals: LegSignals::default(),
        }
    }

    #[test]
    fn sessions_are_bounded_per_address_and_in_all_and_a_closed_token_is_worthless() {
        let sessions = Sessions::new(2, 3);
        let (a, token_a) = sessions.open(new("192.0.2.1")).expect("first");
        sessions.open(new("192.0.2.1")).expect("second");
        assert_eq!(
            sessions.open(new("192.0.2.1")).err(),
            Some(Full::Address),
            "two per address"
        );
        sessions.open(new("192.0.2.2")).expect("another address");
        assert_eq!(sessions.open(new("192.0.2.3")).err(), Some(Full::Server));
        assert!(sessions.get(&token_a).is_some());
        sessions.hang_up(&LegKind::Browser { session: a.id });
        assert!(sessions.get(&token_a).is_none(), "gone with its leg");
        assert_eq!(a.stand(), Stand::Gone(None));
        sessions
            .open(new("192.0.2.1"))
            .expect("a place given back is taken again");
    }

    #[test]
    fn the_meetings_verdict_reaches_the_session() {
        let sessions = Sessions::new(2, 3);
        let (a, _) = sessions.open(new("192.0.2.1")).expect("open");
        let kind = LegKind::Browser { session: a.id };
        sessions.admitted(&kind, 7);
        assert_eq!(a.stand(), Stand::Member(7));
        let (b, _) = sessions.open(new("192.0.2.1")).expect("open");
        let kind = LegKind::Browser { session: b.id };
        sessions.refused(&kind, &Refused::Locked);
        sessions.hang_up(&kind);
        assert!(
            matches!(b.stand(), Stand::Gone(Some(ref why)) if why.contains("locked")),
            "{:?}",
            b.stand()
        );
    }
}
