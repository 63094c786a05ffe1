//! Signed webhooks: every meeting event of a tenant, POSTed as JSON to each of its webhooks,
//! with `X-Conclave-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook's secret>`.
//! A failed delivery is retried with backoff (1 s, 2 s, 4 s), then dropped and logged.

use crate::meeting::{LiveChange, LiveEvent};
use conclave_conference::live::Event;
use conclave_store::{Store, repo};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use tokio::sync::broadcast;

const RETRIES: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// The signature header's value for a body.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(), // unreachable: HMAC takes keys of any length
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Delivers meeting events to the tenants' webhooks until the server stops.
pub async fn deliver(
    store: Store,
    sealer: std::sync::Arc<crate::secrets::Sealer>,
    mut events: broadcast::Receiver<LiveEvent>,
) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(%err, "webhooks disabled: cannot build an HTTP client");
            return;
        }
    };
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "webhook delivery fell behind; events were skipped");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        // Voice activity changes many times a second: it stays on the WebSocket.
        if matches!(event.event, LiveChange::Meeting(Event::Talking { .. })) {
            continue;
        }
        let hooks = match store.conn().await {
            Ok(mut conn) => repo::webhooks::of_tenant(&mut conn, &event.tenant_id)
                .await
                .unwrap_or_default(),
            Err(_) => continue,
        };
        if hooks.is_empty() {
            continue;
        }
        let Ok(body) = serde_json::to_vec(&event) else {
            continue;
        };
        let kind = serde_json::to_value(&event.event)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
            .unwrap_or_default();
        for hook in hooks {
            let (client, body, kind) = (client.clone(), body.clone(), kind.clone());
            let sealer = sealer.clone();
            tokio::spawn(async move {
                let Some(secret) = sealer.open(&hook.secret) else {
                    tracing::warn!(
                        url = hook.url,
                        "the webhook's secret does not open with this data directory's key"
                    );
                    return;
                };
                let signature = signature(&secret, &body);
                let delivery = conclave_store::new_id();
                for (attempt, wait) in std::iter::once(Duration::ZERO).chain(RETRIES).enumerate() {
                    tokio::time::sleep(wait).await;
                    let sent = client
                        .post(&hook.url)
                        .header("content-type", "application/json")
                        .header("x-conclave-signature", &signature)
                        .header("x-conclave-event", &kind)
                        .header("x-conclave-delivery", &delivery)
                        .body(body.clone())
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => {
                            metrics::counter!("conclave_webhook_deliveries_total", "outcome" => "ok").increment(1);
                            return;
                        }
                        Ok(r) => {
                            tracing::info!(url = hook.url, status = %r.status(), attempt, "webhook refused")
                        }
                        Err(err) => {
                            tracing::info!(url = hook.url, %err, attempt, "webhook unreachable")
                        }
                    }
                }
                metrics::counter!("conclave_webhook_deliveries_total", "outcome" => "dropped")
                    .increment(1);
                tracing::warn!(url = hook.url, delivery, "webhook delivery given up");
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            super::signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
