//! Calls to phone numbers cost the tenant money (toll fraud is the risk), so they are a
//! permission with limits, enforced where every such call is placed (`SipHandle::invite`),
//! whichever channel asked for it: who may call out (administrators, and users the tenant's
//! policy grants it), which numbers (the policy's patterns), and how many (at once, and in
//! any hour, per tenant). Check and count are one step under one lock, so a burst of
//! parallel requests cannot all pass a limit none of them has reached yet.

use conclave_store::model::{AccountKind, OutboundPolicy};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Who asks for a call, as the policy sees them.
#[derive(Debug, Clone)]
pub struct Dialer {
    pub user_id: String,
    pub kind: AccountKind,
}

impl Dialer {
    pub fn of(user: &conclave_store::model::User) -> Dialer {
        Dialer {
            user_id: user.id.clone(),
            kind: user.kind,
        }
    }
}

/// Why a call to a number was not placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The dialer may not call phone numbers, or not this one.
    NotAllowed(String),
    /// The tenant's limit is reached; try again after this many seconds.
    Limited { reason: String, retry_after: u64 },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotAllowed(reason) | Refusal::Limited { reason, .. } => f.write_str(reason),
        }
    }
}

/// Whether the policy lets `dialer` call `number` (as sent to the gateway); no counting.
pub fn permitted(dialer: &Dialer, policy: &OutboundPolicy, number: &str) -> Result<(), Refusal> {
    let admin = matches!(
        dialer.kind,
        AccountKind::SystemAdmin | AccountKind::TenantAdmin
    );
    if !admin && !policy.granted_users.contains(&dialer.user_id) {
        return Err(Refusal::NotAllowed(
            "calling phone numbers is for administrators and the users the tenant's outbound \
             policy grants it"
                .into(),
        ));
    }
    let allowed = policy
        .allowed_patterns
        .iter()
        .any(|pattern| crate::trunks::compile(pattern).is_ok_and(|re| re.is_match(number)));
    if !allowed {
        return Err(Refusal::NotAllowed(format!(
            "{number} is not among the numbers the tenant's outbound policy allows"
        )));
    }
    Ok(())
}

const HOUR: Duration = Duration::from_secs(3600);

#[derive(Default)]
struct Usage {
    /// Calls through a trunk that are up (placed and not yet ended).
    active: u32,
    /// When each call of the last hour was placed, oldest first.
    placed: VecDeque<Instant>,
}

/// Each tenant's calls through its trunks: how many are up, how many in the last hour.
#[derive(Clone, Default)]
pub struct OutboundCalls {
    tenants: Arc<Mutex<HashMap<String, Usage>>>,
}

/// A call's place under its tenant's limit of concurrent calls, given back when dropped
/// (the call ended, or could not be placed).
pub struct Permit {
    tenants: Arc<Mutex<HashMap<String, Usage>>>,
    tenant_id: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(usage) = tenants.get_mut(&self.tenant_id) {
            usage.active = usage.active.saturating_sub(1);
            if usage.active == 0 && usage.placed.is_empty() {
                tenants.remove(&self.tenant_id);
            }
        }
    }
}

impl OutboundCalls {
    /// Checks the policy and takes a place under both limits in one step.
    pub fn admit(
        &self,
        tenant_id: &str,
        dialer: &Dialer,
        policy: &OutboundPolicy,
        number: &str,
        now: Instant,
    ) -> Result<Permit, Refusal> {
        let outcome = self.take(tenant_id, dialer, policy, number, now);
        let label = match &outcome {
            Ok(_) => "placed",
            Err(Refusal::NotAllowed(_)) => "not_allowed",
            Err(Refusal::Limited { .. }) => "limited",
        };
        metrics::counter!("conclave_outbound_calls_total", "outcome" => label).increment(1);
        if let Err(refusal) = &outcome {
            tracing::info!(tenant_id, user_id = dialer.user_id, number, %refusal, "call to a number refused");
        }
        outcome
    }

    fn take(
        &self,
        tenant_id: &str,
        dialer: &Dialer,
        policy: &OutboundPolicy,
        number: &str,
        now: Instant,
    ) -> Result<Permit, Refusal> {
        permitted(dialer, policy, number)?;
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let usage = tenants.entry(tenant_id.to_owned()).or_default();
        while usage
            .placed
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= HOUR)
        {
            usage.placed.pop_front();
        }
        if usage.active >= policy.concurrent_calls {
            return Err(Refusal::Limited {
                reason: format!(
                    "the tenant has {} calls to numbers up, its limit",
                    usage.active
                ),
                retry_after: 10,
            });
        }
        if usage.placed.len() >= policy.calls_per_hour as usize {
            let oldest = usage.placed.front().copied().unwrap_or(now);
            let wait = HOUR.saturating_sub(now.saturating_duration_since(oldest));
            return Err(Refusal::Limited {
                reason: format!(
                    "the tenant placed {} calls to numbers in the last hour, its limit",
                    usage.placed.len()
                ),
                retry_after: wait.as_secs().max(1),
            });
        }
        usage.active += 1;
        usage.placed.push_back(now);
        Ok(Permit {
            tenants: self.tenants.clone(),
            tenant_id: tenant_id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialer(kind: AccountKind) -> Dialer {
        Dialer {
            user_id: "u".into(),
            kind,
        }
    }

    #[test]
    fn plain_users_need_a_grant_and_numbers_a_pattern() {
        let mut policy = OutboundPolicy::default();
        let user = dialer(AccountKind::User);
        assert!(matches!(
            permitted(&user, &policy, "+4930123"),
            Err(Refusal::NotAllowed(_))
        ));
        assert!(permitted(&dialer(AccountKind::TenantAdmin), &policy, "+4930123").is_ok());
        policy.granted_users.push("u".into());
        assert!(permitted(&user, &policy, "+4930123").is_ok());
        policy.allowed_patterns = vec![r"\+86\d+".into()];
        assert!(permitted(&user, &policy, "+4930123").is_err());
        assert!(permitted(&user, &policy, "+8610123").is_ok());
        // Whole numbers only: a pattern does not match a part.
        assert!(permitted(&user, &policy, "+8610123#900").is_err());
        policy.allowed_patterns.clear();
        assert!(permitted(&user, &policy, "+8610123").is_err());
    }

    #[test]
    fn limits_hold_and_places_come_back() {
        let calls = OutboundCalls::default();
        let admin = dialer(AccountKind::SystemAdmin);
        let policy = OutboundPolicy {
            concurrent_calls: 2,
            calls_per_hour: 3,
            ..OutboundPolicy::default()
        };
        let t0 = Instant::now();
        let a = calls.admit("t", &admin, &policy, "1", t0).expect("first");
        let _b = calls.admit("t", &admin, &policy, "1", t0).expect("second");
        assert!(matches!(
            calls.admit("t", &admin, &policy, "1", t0),
            Err(Refusal::Limited { .. })
        ));
        // Another tenant has its own count.
        assert!(calls.admit("other", &admin, &policy, "1", t0).is_ok());
        drop(a);
        let _c = calls
            .admit("t", &admin, &policy, "1", t0)
            .expect("a place came back");
        drop(_c);
        // Three in the hour: the fourth waits for the oldest to age out.
        assert!(matches!(
            calls.admit("t", &admin, &policy, "1", t0),
            Err(Refusal::Limited { .. })
        ));
        assert!(calls.admit("t", &admin, &policy, "1", t0 + HOUR).is_ok());
    }
}
