//! Signed webhooks: every meeting event of a tenant (but voice activity), POSTed as JSON to
//! each of its webhooks, with `X-Conclave-Signature: sha256=<hex HMAC-SHA256 of the body with
//! the webhook's secret>` and a delivery id (`X-Conclave-Delivery`) that stays the same across
//! retries.
//!
//! Deliveries are durable: one consumer takes every event from the meetings (a queue it
//! drains in batches, so it never falls behind the way a reader of the database per event
//! did) and writes a row per event and webhook (`webhook_deliveries`); a sender makes them,
//! at least once, retrying with backoff (1 s doubling to 5 min) for a day, across restarts.
//! Nothing is dropped silently: a full queue and a delivery given up are counted
//! (`conclave_webhook_events_dropped_total`, `conclave_webhook_deliveries_total{outcome}`)
//! and logged.
//!
//! Targets must be public unless the installation allows otherwise
//! (`webhooks_allow_private_targets`): a private, loopback or link-local address is refused
//! when the webhook is created and again when each delivery connects (names are resolved
//! by our resolver, which gives the client public addresses only, so a name that later
//! points inside — DNS rebinding — reaches nothing). Redirects are not followed.

use crate::meeting::{LiveEvent, Meetings};
use conclave_store::model::WebhookDelivery;
use conclave_store::{Store, new_id, now_ms, repo};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc};

/// A delivery is retried for this long after its event, then given up (and logged).
const GIVE_UP_AFTER_MS: i64 = 24 * 3600 * 1000;
/// The longest wait between two attempts.
const MAX_BACKOFF_MS: i64 = 300_000;
/// Deliveries in flight at once.
const PARALLEL: usize = 16;
/// The longest sleep of the delivery loop when nothing is due (new events wake it at once).
const IDLE_POLL_MS: i64 = 30_000;
/// Events stored in one transaction at most.
const BATCH: usize = 500;

/// The delivery loops of the process, each with its store: directory changes are queued
/// inside their own transaction (not through the meetings' channel), and the loop of the store
/// that holds them learns of them once they are committed (`wake_when_committed`).
static LOOPS: Mutex<Vec<(Store, Arc<Notify>)>> = Mutex::new(Vec::new());
/// How often, and for how long at most, a queued directory change is looked for.
const COMMIT_CHECK_EVERY: Duration = Duration::from_millis(20);
const COMMIT_CHECK_FOR: Duration = Duration::from_secs(5);

/// What `audit` targets count as directory changes.
pub const DIRECTORY_TARGETS: [&str; 5] = ["department", "user", "contact", "group", "directory"];

/// Queues a directory change (`type`: `directory.<action>`, e.g. `directory.createDepartment`,
/// `directory.importDirectory`, `directory.scimPatchUser`) for each webhook of the tenant, in
/// the caller's transaction: the change and its deliveries commit together, or neither.
pub async fn queue_directory_change(
    conn: &mut conclave_store::Conn,
    tenant_id: &str,
    actor: &str,
    action: &str,
    target_type: &str,
    target_id: Option<&str>,
    detail: &serde_json::Value,
) -> conclave_store::Result<()> {
    let hooks = repo::webhooks::of_tenant(conn, tenant_id).await?;
    if hooks.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let kind = format!("directory.{action}");
    let body = serde_json::json!({
        "actor": actor,
        "at": now,
        "event": {
            "type": kind,
            "target_type": target_type,
            "id": target_id,
            "detail": detail,
        },
    })
    .to_string();
    let mut last = None;
    for hook in hooks {
        let delivery = WebhookDelivery {
            id: new_id(),
            webhook_id: hook.id,
            event_kind: kind.clone(),
            body: body.clone(),
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
        };
        repo::webhook_deliveries::insert(conn, &delivery).await?;
        last = Some(delivery.id);
    }
    if let Some(id) = last {
        tokio::spawn(wake_when_committed(id));
    }
    Ok(())
}

/// The rows of a directory change are visible once the caller commits: looks for one of them
/// (every 20 ms, for 5 s at most) and wakes the delivery loop of the store that has it. A
/// transaction that rolled back leaves nothing to find, and this gives up; one that takes
/// longer than 5 s is delivered by the loop's idle poll (30 s), the safety net.
async fn wake_when_committed(id: String) {
    let deadline = tokio::time::Instant::now() + COMMIT_CHECK_FOR;
    loop {
        tokio::time::sleep(COMMIT_CHECK_EVERY).await;
        let loops: Vec<(Store, Arc<Notify>)> = {
            let mut loops = LOOPS.lock().unwrap_or_else(|p| p.into_inner());
            loops.retain(|(store, _)| !store.is_closed());
            loops.clone()
        };
        for (store, queued) in loops {
            let Ok(mut conn) = store.conn().await else {
                continue;
            };
            if let Ok(true) = repo::webhook_deliveries::exists(&mut conn, &id).await {
                queued.notify_one();
                return;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return;
        }
    }
}

/// The signature header's value for a body.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(), // unreachable: HMAC takes keys of any length
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether an address is on the public internet: not private (RFC 1918, unique local),
/// loopback, link-local, shared (100.64/10), unspecified, multicast, documentation or
/// otherwise reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96): the IPv4 address inside decides.
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || s[0..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated)
                || s[0] & 0xfe00 == 0xfc00 // unique local fc00::/7
                || s[0] & 0xffc0 == 0xfe80 // link-local fe80::/10
                || s[0] & 0xffc0 == 0xfec0 // site-local (deprecated)
                || s[0] & 0xff00 == 0xff00 // multicast
                || (s[0] == 0x2001 && s[1] == 0x0db8)) // documentation
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0
        || a == 10
        || a == 127
        || (a == 100 && b & 0xc0 == 64)
        || (a == 169 && b == 254)
        || (a == 172 && b & 0xf0 == 16)
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 198 && b & 0xfe == 18)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224)
}

/// Whether a webhook may target this URL: an http(s) URL whose host is (or resolves only
/// to) public addresses, unless private targets are allowed. The reason when not.
pub async fn check_target(url: &str, allow_private: bool) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "must be an http:// or https:// URL")?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".into());
    }
    if allow_private {
        return Ok(());
    }
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addrs: Vec<IpAddr> = match (host_ip(&parsed), parsed.host_str()) {
        (Some(ip), _) => vec![ip],
        (None, Some(name)) if !name.is_empty() => {
            let looked = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::net::lookup_host((name, port)),
            )
            .await;
            match looked {
                Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
                _ => return Err(format!("{name} does not resolve")),
            }
        }
        _ => return Err("must be an http:// or https:// URL".into()),
    };
    if addrs.is_empty() || addrs.iter().any(|ip| !is_public(*ip)) {
        return Err(
            "must be a public address: private, loopback and link-local targets are refused \
             (setting webhooks_allow_private_targets)"
                .into(),
        );
    }
    Ok(())
}

/// Resolves names for the webhook client, keeping public addresses only: the check and the
/// connection use the same answer, so a name cannot be re-pointed inside in between.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The webhooks' queue and sender, started with the server.
#[derive(Clone)]
pub struct Webhooks {
    /// A batch of events is being written.
    storing: Arc<AtomicBool>,
}

impl Webhooks {
    /// Starts the consumer of the meetings' events and the sender of deliveries.
    pub fn start(
        store: Store,
        sealer: Arc<crate::secrets::Sealer>,
        meetings: &Meetings,
        allow_private: bool,
    ) -> Webhooks {
        let queued = Arc::new(Notify::new());
        let storing = Arc::new(AtomicBool::new(false));
        tokio::spawn(enqueue(
            store.clone(),
            meetings.webhook_events(),
            queued.clone(),
            storing.clone(),
        ));
        let mut client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none());
        if !allow_private {
            client = client.dns_resolver(Arc::new(PublicOnly));
        }
        match client.build() {
            Ok(client) => {
                LOOPS
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((store.clone(), queued.clone()));
                tokio::spawn(send(store, sealer, client, queued, allow_private));
            }
            Err(err) => tracing::error!(%err, "webhooks disabled: cannot build an HTTP client"),
        }
        Webhooks { storing }
    }

    /// Waits (at most `within`) until every event published so far is stored, so a clean
    /// stop loses none of the last ones (a meeting's end).
    pub async fn flush(&self, meetings: &Meetings, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        let idle = || meetings.webhook_backlog() == 0 && !self.storing.load(Ordering::SeqCst);
        // Idle twice in a row: the consumer may be between taking an event and marking
        // itself busy.
        let mut idle_seen = 0;
        while idle_seen < 2 && tokio::time::Instant::now() < deadline {
            idle_seen = if idle() { idle_seen + 1 } else { 0 };
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The one consumer of meeting events: writes them, in batches, as deliveries for each of
/// the tenant's webhooks. A batch the store refuses is kept and tried again.
async fn enqueue(
    store: Store,
    mut events: mpsc::Receiver<LiveEvent>,
    queued: Arc<Notify>,
    storing: Arc<AtomicBool>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        storing.store(false, Ordering::SeqCst);
        let Some(first) = events.recv().await else {
            return;
        };
        storing.store(true, Ordering::SeqCst);
        batch.clear();
        batch.push(first);
        while batch.len() < BATCH {
            match events.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        loop {
            match store_batch(&store, &batch).await {
                Ok(0) => break,
                Ok(_) => {
                    queued.notify_one();
                    break;
                }
                Err(err) if store.is_closed() => {
                    tracing::warn!(%err, events = batch.len(), "webhook events not stored: the server stopped");
                    return;
                }
                Err(err) => {
                    tracing::warn!(%err, events = batch.len(), "cannot store webhook events; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// One transaction: a delivery row per event and webhook of its tenant. How many rows.
async fn store_batch(store: &Store, batch: &[LiveEvent]) -> conclave_store::Result<usize> {
    let mut tx = store.begin().await?;
    let mut hooks: HashMap<&str, Vec<String>> = HashMap::new();
    let now = now_ms();
    let mut rows = 0;
    for event in batch {
        if !hooks.contains_key(event.tenant_id.as_str()) {
            let ids = repo::webhooks::of_tenant(&mut tx, &event.tenant_id)
                .await?
                .into_iter()
                .map(|w| w.id)
                .collect();
            hooks.insert(&event.tenant_id, ids);
        }
        let ids = &hooks[event.tenant_id.as_str()];
        if ids.is_empty() {
            continue;
        }
        let body = serde_json::to_value(event).unwrap_or_default();
        let kind = body["event"]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let body = body.to_string();
        for webhook_id in ids {
            let delivery = WebhookDelivery {
                id: new_id(),
                webhook_id: webhook_id.clone(),
                event_kind: kind.clone(),
                body: body.clone(),
                attempts: 0,
                next_attempt_at: now,
                created_at: now,
            };
            repo::webhook_deliveries::insert(&mut tx, &delivery).await?;
            rows += 1;
        }
    }
    tx.commit().await?;
    Ok(rows)
}

/// Makes the deliveries that are due, a few at a time, until the store closes.
async fn send(
    store: Store,
    sealer: Arc<crate::secrets::Sealer>,
    client: reqwest::Client,
    queued: Arc<Notify>,
    allow_private: bool,
) {
    // What waited when the server stopped is tried at once.
    if let Ok(mut conn) = store.conn().await {
        match repo::webhook_deliveries::all_due(&mut conn, now_ms()).await {
            Ok(0) => {}
            Ok(waiting) => tracing::info!(waiting, "resuming webhook deliveries"),
            Err(err) => tracing::warn!(%err, "cannot read the webhook deliveries"),
        }
    }
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let slots = Arc::new(Semaphore::new(PARALLEL));
    loop {
        if store.is_closed() {
            return;
        }
        let now = now_ms();
        let due = match store.conn().await {
            Ok(mut conn) => repo::webhook_deliveries::due(&mut conn, now, 200).await,
            Err(err) => Err(err),
        };
        let due = match due {
            Ok(due) => due,
            Err(err) => {
                if !store.is_closed() {
                    tracing::warn!(%err, "cannot read the webhook deliveries");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut started = 0;
        for delivery in due {
            if !in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(delivery.id.clone())
            {
                continue;
            }
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            started += 1;
            let (store, sealer, client) = (store.clone(), sealer.clone(), client.clone());
            let (in_flight, queued) = (in_flight.clone(), queued.clone());
            tokio::spawn(async move {
                let id = delivery.id.clone();
                attempt(&store, &sealer, &client, delivery, allow_private).await;
                in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                drop(slot);
                queued.notify_one();
            });
        }
        if started > 0 {
            continue;
        }
        // Nothing new to start: sleep until the next is due, new ones are queued or one in
        // flight finishes. With nothing due, a slow poll only notices the store closing (an
        // idle server should not query its database every second).
        let wait = match store.conn().await {
            Ok(mut conn) => repo::webhook_deliveries::next_due(&mut conn)
                .await
                .ok()
                .flatten()
                .map_or(IDLE_POLL_MS, |at| (at - now_ms()).clamp(0, IDLE_POLL_MS)),
            Err(_) => 1000,
        };
        tokio::select! {
            _ = queued.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(wait.max(10) as u64)) => {}
        }
    }
}

/// One attempt at one delivery; the row is removed when delivered or given up, else its
/// next attempt is scheduled.
async fn attempt(
    store: &Store,
    sealer: &crate::secrets::Sealer,
    client: &reqwest::Client,
    delivery: WebhookDelivery,
    allow_private: bool,
) {
    let webhook = match store.conn().await {
        Ok(mut conn) => repo::webhooks::get(&mut conn, &delivery.webhook_id).await,
        Err(err) => Err(err),
    };
    let webhook = match webhook {
        Ok(Some(webhook)) => webhook,
        Ok(None) => return finish(store, &delivery.id).await, // the webhook was deleted
        Err(err) => {
            tracing::info!(%err, "cannot read a webhook; its delivery waits");
            return;
        }
    };
    let Some(secret) = sealer.open(&webhook.secret) else {
        tracing::warn!(
            url = webhook.url,
            delivery = delivery.id,
            "webhook delivery given up: the secret does not open with this data directory's key"
        );
        metrics::counter!("conclave_webhook_deliveries_total", "outcome" => "dropped").increment(1);
        return finish(store, &delivery.id).await;
    };
    let outcome = match literal_private(&webhook.url) {
        Some(ip) if !allow_private => Err(format!("{ip} is not a public address")),
        _ => {
            let body = delivery.body.clone().into_bytes();
            client
                .post(&webhook.url)
                .header("content-type", "application/json")
                .header("x-conclave-signature", signature(&secret, &body))
                .header("x-conclave-event", &delivery.event_kind)
                .header("x-conclave-delivery", &delivery.id)
                .body(body)
                .send()
                .await
                .map_err(|err| format!("{err:#}"))
                .and_then(|r| {
                    if r.status().is_success() {
                        Ok(())
                    } else {
                        Err(format!("answered {}", r.status()))
                    }
                })
        }
    };
    let attempts = delivery.attempts + 1;
    match outcome {
        Ok(()) => {
            metrics::counter!("conclave_webhook_deliveries_total", "outcome" => "ok").increment(1);
            finish(store, &delivery.id).await;
        }
        Err(reason) if now_ms() - delivery.created_at >= GIVE_UP_AFTER_MS => {
            metrics::counter!("conclave_webhook_deliveries_total", "outcome" => "dropped")
                .increment(1);
            tracing::warn!(
                url = webhook.url,
                delivery = delivery.id,
                attempts,
                reason,
                "webhook delivery given up after a day of retries"
            );
            finish(store, &delivery.id).await;
        }
        Err(reason) => {
            metrics::counter!("conclave_webhook_deliveries_total", "outcome" => "retry")
                .increment(1);
            tracing::info!(
                url = webhook.url,
                delivery = delivery.id,
                attempts,
                reason,
                "webhook delivery failed; will retry"
            );
            let backoff = (1000_i64 << (attempts - 1).clamp(0, 20)).min(MAX_BACKOFF_MS);
            if let Ok(mut conn) = store.conn().await
                && let Err(err) = repo::webhook_deliveries::retry_at(
                    &mut conn,
                    &delivery.id,
                    attempts,
                    now_ms() + backoff,
                )
                .await
            {
                tracing::warn!(%err, delivery = delivery.id, "cannot schedule a webhook retry");
            }
        }
    }
}

/// The URL's host when it is an IP address that is not public (names are checked by the
/// resolver as they are looked up).
fn literal_private(url: &str) -> Option<IpAddr> {
    let ip = host_ip(&reqwest::Url::parse(url).ok()?)?;
    (!is_public(ip)).then_some(ip)
}

/// The URL's host, when it is an IP address (IPv6 in brackets).
fn host_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

async fn finish(store: &Store, id: &str) {
    let removed = match store.conn().await {
        Ok(mut conn) => repo::webhook_deliveries::delete(&mut conn, id).await,
        Err(err) => Err(err),
    };
    if let Err(err) = removed {
        tracing::warn!(%err, delivery = id, "cannot remove a finished webhook delivery");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn private_loopback_and_link_local_addresses_are_not_public() {
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
        ] {
            let ip: IpAddr = inside.parse().expect(inside);
            assert!(!is_public(ip), "{inside} is not public");
        }
        for outside in [
            "1.1.1.1",
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = outside.parse().expect(outside);
            assert!(is_public(ip), "{outside} is public");
        }
    }

    #[tokio::test]
    async fn targets_inside_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://[::1]/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost/hook",
            "https://[fe80::1]/",
            "http://0.0.0.0/",
        ] {
            assert!(check_target(url, false).await.is_err(), "{url}");
            assert!(check_target(url, true).await.is_ok(), "{url}");
        }
        assert!(
            check_target("http://93.184.215.14/hook", false)
                .await
                .is_ok()
        );
        assert!(check_target("ftp://example.com/", true).await.is_err());
    }
}
