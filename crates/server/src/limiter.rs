//! One limiter for every secret a stranger can guess: web logins, SIP digest (REGISTER) and
//! room PINs. Failures are counted per target (an account, an extension, a room) and per
//! source address, so neither many addresses against one target nor one address against many
//! targets gets far.
//!
//! Check and count are one step: [`Limiter::attempt`] takes a slot before the secret is
//! checked, so a burst of parallel attempts cannot all pass a check that none has yet failed.
//! The attempt's [`Permit`] then says how it went: [`Permit::succeeded`] gives back its own
//! slot and clears the target's count (and only that target's: one's own account logged into
//! between guesses at another clears nothing there); [`Permit::not_checked`] gives the slot
//! back without clearing anything (the secret was never tested, e.g. a stale nonce); dropping
//! the permit, or [`Permit::failed`], leaves the slot counted as a failure.
//!
//! Blocks expire, old failures are forgotten after a window, and each table is capped (expired
//! entries go first, then the stalest). Metrics: `conclave_limiter_attempts_total{limiter,
//! outcome}` and `conclave_limiter_entries{limiter}`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What an attempt tries to open.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A web or API account, by its (lower-case) username.
    Account(String),
    /// A SIP extension, as `extension@domain`.
    Extension(String),
    /// A room, by its id.
    Room(String),
    /// A live stream, by its id.
    Stream(String),
    /// A recording shared by link, by its id.
    Shared(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Failures against one target, from anywhere, before the target is blocked.
    pub per_target: u32,
    /// Failures from one address, against anything, before the address is blocked.
    pub per_source: u32,
    /// Failures older than this are forgotten.
    pub window: Duration,
    /// How long a block lasts.
    pub block_for: Duration,
    /// Most targets and most addresses tracked (each).
    pub max_entries: usize,
}

impl LimiterConfig {
    /// Web logins: ten wrong passwords for an account, twenty from an address.
    pub fn login() -> Self {
        LimiterConfig {
            per_target: 10,
            per_source: 20,
            window: Duration::from_secs(15 * 60),
            block_for: Duration::from_secs(5 * 60),
            max_entries: 100_000,
        }
    }

    /// SIP digest: phones retry on their own, so the same order as logins.
    pub fn sip_digest() -> Self {
        LimiterConfig {
            per_target: 10,
            per_source: 20,
            window: Duration::from_secs(15 * 60),
            block_for: Duration::from_secs(15 * 60),
            max_entries: 100_000,
        }
    }

    /// Room PINs: short secrets, so fewer tries.
    pub fn room_pin() -> Self {
        LimiterConfig {
            per_target: 10,
            per_source: 10,
            window: Duration::from_secs(15 * 60),
            block_for: Duration::from_secs(10 * 60),
            max_entries: 100_000,
        }
    }
}

/// Refused without checking the secret: try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    pub retry_after: Duration,
    /// Whether the address (rather than the target) is what is blocked.
    pub source: bool,
}

impl Blocked {
    /// Whole seconds to wait, at least one (for Retry-After).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs().max(1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Failures in the window, including attempts still in flight.
    count: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant, window: Duration) -> bool {
        self.blocked_until.is_some_and(|until| now < until)
            || now.saturating_duration_since(self.last) <= window
    }
}

/// A capped table of entries with expiry.
struct Table<K> {
    entries: HashMap<K, Entry>,
}

impl<K: Eq + Hash + Clone> Table<K> {
    fn new() -> Self {
        Table {
            entries: HashMap::new(),
        }
    }

    /// Seconds of block left for `key`, if blocked; forgets a stale count.
    fn blocked(&mut self, key: &K, now: Instant, window: Duration) -> Option<Duration> {
        let entry = self.entries.get_mut(key)?;
        if let Some(until) = entry.blocked_until {
            if now < until {
                return Some(until - now);
            }
            entry.blocked_until = None;
            entry.count = 0;
        }
        if now.saturating_duration_since(entry.last) > window {
            entry.count = 0;
        }
        None
    }

    /// Counts one more attempt; blocks the key when it reaches `limit`.
    fn take(&mut self, key: &K, now: Instant, cfg: &LimiterConfig, limit: u32) {
        if !self.entries.contains_key(key) && self.entries.len() >= cfg.max_entries {
            self.make_room(now, cfg);
        }
        let entry = self.entries.entry(key.clone()).or_insert(Entry {
            count: 0,
            last: now,
            blocked_until: None,
        });
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        if entry.count >= limit {
            entry.blocked_until = Some(now + cfg.block_for);
        }
    }

    fn refund(&mut self, key: &K, clear: bool) {
        if let Some(entry) = self.entries.get_mut(key) {
            if clear {
                self.entries.remove(key);
            } else {
                entry.count = entry.count.saturating_sub(1);
            }
        }
    }

    fn make_room(&mut self, now: Instant, cfg: &LimiterConfig) {
        self.entries.retain(|_, e| e.live(now, cfg.window));
        if self.entries.len() >= cfg.max_entries {
            // Forget whoever has been quiet longest (a block ends soonest among equals).
            if let Some(key) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| (e.blocked_until.is_some(), e.last))
                .map(|(k, _)| k.clone())
            {
                self.entries.remove(&key);
            }
        }
    }
}

struct State {
    targets: Table<Target>,
    sources: Table<IpAddr>,
}

pub struct Limiter {
    name: &'static str,
    cfg: LimiterConfig,
    state: Mutex<State>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("name", &self.name).finish()
    }
}

impl Limiter {
    /// `name` labels the metrics (`login`, `sip_digest`, `room_pin`).
    pub fn new(name: &'static str, cfg: LimiterConfig) -> Arc<Limiter> {
        Arc::new(Limiter {
            name,
            cfg,
            state: Mutex::new(State {
                targets: Table::new(),
                sources: Table::new(),
            }),
        })
    }

    pub fn config(&self) -> LimiterConfig {
        self.cfg
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn outcome(&self, outcome: &'static str) {
        metrics::counter!("conclave_limiter_attempts_total", "limiter" => self.name, "outcome" => outcome)
            .increment(1);
    }

    /// An attempt at `target` from `source`: refused while either is blocked, otherwise it
    /// takes its slot now (counted as a failure unless the permit says otherwise).
    pub fn attempt(self: &Arc<Self>, target: Target, source: IpAddr) -> Result<Permit, Blocked> {
        self.attempt_at(Instant::now(), target, source)
    }

    pub fn attempt_at(
        self: &Arc<Self>,
        now: Instant,
        target: Target,
        source: IpAddr,
    ) -> Result<Permit, Blocked> {
        let cfg = self.cfg;
        let mut state = self.lock();
        let by_source = state.sources.blocked(&source, now, cfg.window);
        let by_target = state.targets.blocked(&target, now, cfg.window);
        if let Some(wait) = by_source.or(by_target) {
            drop(state);
            self.outcome("blocked");
            return Err(Blocked {
                retry_after: wait,
                source: by_source.is_some(),
            });
        }
        state.targets.take(&target, now, &cfg, cfg.per_target);
        state.sources.take(&source, now, &cfg, cfg.per_source);
        let entries = state.targets.entries.len() + state.sources.entries.len();
        drop(state);
        metrics::gauge!("conclave_limiter_entries", "limiter" => self.name).set(entries as f64);
        self.outcome("allowed");
        Ok(Permit {
            limiter: self.clone(),
            target,
            source,
            settled: false,
        })
    }

    /// Is this address blocked now (for refusing early, before any work)?
    pub fn source_blocked(&self, source: IpAddr) -> Option<Duration> {
        let window = self.cfg.window;
        self.lock().sources.blocked(&source, Instant::now(), window)
    }

    /// Entries tracked (targets and addresses), for tests and metrics.
    pub fn tracked(&self) -> usize {
        let state = self.lock();
        state.targets.entries.len() + state.sources.entries.len()
    }
}

/// One attempt's slot. Dropped unsettled, it stays counted as a failure.
#[must_use = "say how the attempt went: succeeded(), failed() or not_checked()"]
pub struct Permit {
    limiter: Arc<Limiter>,
    target: Target,
    source: IpAddr,
    settled: bool,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("target", &self.target)
            .field("source", &self.source)
            .finish()
    }
}

impl Permit {
    /// The secret was right: this attempt's slot comes back, the target's count is cleared
    /// (the address keeps what its other attempts cost).
    pub fn succeeded(mut self) {
        self.settled = true;
        let mut state = self.limiter.lock();
        state.targets.refund(&self.target, true);
        state.sources.refund(&self.source, false);
        drop(state);
        self.limiter.outcome("succeeded");
    }

    /// The secret was never tested (stale nonce, store error): the slot comes back.
    pub fn not_checked(mut self) {
        self.settled = true;
        let mut state = self.limiter.lock();
        state.targets.refund(&self.target, false);
        state.sources.refund(&self.source, false);
    }

    /// The secret was wrong: the slot stays counted.
    pub fn failed(mut self) {
        self.settled = true;
        self.limiter.outcome("failed");
    }

    pub fn target(&self) -> &Target {
        &self.target
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.settled {
            self.limiter.outcome("failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LimiterConfig {
        LimiterConfig {
            per_target: 5,
            per_source: 8,
            window: Duration::from_secs(600),
            block_for: Duration::from_secs(60),
            max_entries: 1000,
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    fn room(id: &str) -> Target {
        Target::Room(id.into())
    }

    #[test]
    fn parallel_attempts_take_their_slots_before_any_is_checked() {
        let limiter = Limiter::new("test", cfg());
        let t0 = Instant::now();
        // Twelve attempts in flight at once, none settled yet: only five get a permit.
        let permits: Vec<_> = (0..12)
            .map(|i| limiter.attempt_at(t0, room("r1"), ip(i)))
            .collect();
        assert_eq!(permits.iter().filter(|p| p.is_ok()).count(), 5);
        // The right PIN, keyed while the room is blocked, is refused without being checked.
        let blocked = limiter.attempt_at(t0, room("r1"), ip(99)).unwrap_err();
        assert!(!blocked.source);
        assert_eq!(blocked.retry_after, Duration::from_secs(60));
        // The block lifts.
        let later = t0 + Duration::from_secs(61);
        limiter
            .attempt_at(later, room("r1"), ip(99))
            .expect("unblocked")
            .succeeded();
    }

    #[test]
    fn a_success_clears_only_its_own_target() {
        let limiter = Limiter::new("test", cfg());
        let t0 = Instant::now();
        let me = ip(1);
        // Guess at room r1, entering one's own room r2 rightly between guesses.
        for _ in 0..4 {
            limiter.attempt_at(t0, room("r1"), me).unwrap().failed();
            limiter.attempt_at(t0, room("r2"), me).unwrap().succeeded();
        }
        // The fifth wrong guess blocks r1: the successes elsewhere cleared nothing there.
        limiter.attempt_at(t0, room("r1"), me).unwrap().failed();
        assert!(limiter.attempt_at(t0, room("r1"), ip(2)).is_err());
        // r2 is still open to its rightful caller.
        assert!(limiter.attempt_at(t0, room("r2"), ip(3)).is_ok());
    }

    #[test]
    fn an_address_guessing_many_targets_is_blocked() {
        let limiter = Limiter::new("test", cfg());
        let t0 = Instant::now();
        for n in 0..8 {
            limiter
                .attempt_at(t0, room(&format!("r{n}")), ip(7))
                .unwrap()
                .failed();
        }
        let blocked = limiter.attempt_at(t0, room("fresh"), ip(7)).unwrap_err();
        assert!(blocked.source);
        assert!(limiter.source_blocked(ip(7)).is_some());
        // Others are not.
        assert!(limiter.attempt_at(t0, room("fresh"), ip(8)).is_ok());
    }

    #[test]
    fn unchecked_attempts_and_old_failures_cost_nothing() {
        let limiter = Limiter::new("test", cfg());
        let t0 = Instant::now();
        for _ in 0..20 {
            limiter
                .attempt_at(t0, room("r"), ip(1))
                .unwrap()
                .not_checked();
        }
        for _ in 0..4 {
            let _dropped = limiter.attempt_at(t0, room("r"), ip(1)).unwrap();
        }
        // Four failures, then the window passes: forgotten.
        let later = t0 + Duration::from_secs(601);
        for _ in 0..4 {
            limiter
                .attempt_at(later, room("r"), ip(1))
                .unwrap()
                .failed();
        }
        assert!(limiter.attempt_at(later, room("r"), ip(1)).is_ok());
    }

    #[test]
    fn memory_is_bounded() {
        let limiter = Limiter::new(
            "test",
            LimiterConfig {
                max_entries: 100,
                ..cfg()
            },
        );
        let t0 = Instant::now();
        for n in 0..5000u32 {
            let source = IpAddr::from(n.to_be_bytes());
            let at = t0 + Duration::from_millis(u64::from(n));
            if let Ok(permit) = limiter.attempt_at(at, room(&n.to_string()), source) {
                permit.failed();
            }
        }
        assert!(limiter.tracked() <= 200, "{}", limiter.tracked());
    }
}
