//! The sender: outbox rows → `outbox_deliveries` (one per configured webhook whose `kinds` name
//! the row) → signed HTTPS POSTs. Runs on the lease holder only ([`super::worker`]), so one
//! replica sends at a time; this was chosen over `FOR UPDATE SKIP LOCKED` row claiming because it
//! works the same on SQLite and PostgreSQL and keeps per-case order simple (one sender).
//!
//! Each request: `POST {url}` with a JSON body `{delivery_id, kind, created_at, ...payload}` and
//! the headers `Jsj-Delivery-Id` (the outbox row id: the idempotency id), `Jsj-Kind`,
//! `Jsj-Timestamp` (unix ms of the attempt), `Jsj-Key-Id` and `Jsj-Signature` (hex Ed25519 over
//! [`super::signing_input`]). A 2xx answer marks the delivery done; anything else counts an
//! attempt, records the error (status or transport error, never the body: no personal data either
//! way) and retries after `min(cap, base × 2^attempts) × U(0.5, 1)`. A case's later notification
//! waits while an earlier one is pending (in order per case).

use crate::store::BeginWrite as _;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::NotificationKind;
use super::config::NotificationsConfig;
use crate::keys::HubKeys;
use crate::store::{Db, StoreError, on_db};

/// One configured receiver.
struct Webhook {
    name: String,
    url: reqwest::Url,
    kinds: HashSet<NotificationKind>,
    client: reqwest::Client,
}

/// Delivers the outbox to the configured webhooks.
pub struct Sender {
    webhooks: Vec<Webhook>,
    keys: Arc<HubKeys>,
    key_id: String,
    retry_base_ms: u64,
    retry_cap_ms: u64,
}

/// Rows read per round.
const BATCH: i64 = 500;

impl Sender {
    /// Build the HTTP clients: https with the webhook's CA and the hub's outbound client
    /// certificate (ring, the department setup), or plain http where allowed.
    pub fn build(
        cfg: &NotificationsConfig,
        outbound: Option<(&std::path::Path, &std::path::Path)>,
        keys: Arc<HubKeys>,
    ) -> anyhow::Result<Sender> {
        let mut webhooks = Vec::new();
        for w in &cfg.webhooks {
            let url = reqwest::Url::parse(&w.url)
                .with_context(|| format!("notifications.webhooks.{}: url", w.name))?;
            let builder = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_millis(w.timeout_ms));
            let client = if url.scheme() == "https" {
                let (cert, key) = outbound
                    .context("https webhooks need departments.outbound_cert and outbound_key")?;
                let ca_path =
                    w.ca.as_ref()
                        .with_context(|| format!("notifications.webhooks.{}: ca", w.name))?;
                let tls = connectors::tls::client_config_from_pem(
                    &std::fs::read(ca_path)?,
                    &std::fs::read(cert)?,
                    &std::fs::read(key)?,
                )
                .with_context(|| format!("notifications.webhooks.{}: TLS", w.name))?;
                builder
                    .tls_backend_preconfigured(tls)
                    .https_only(true)
                    .build()?
            } else {
                anyhow::ensure!(
                    cfg.allow_plain_http,
                    "notifications.webhooks.{}: plain http is not allowed",
                    w.name
                );
                builder.build()?
            };
            webhooks.push(Webhook {
                name: w.name.clone(),
                url,
                kinds: w.kinds.iter().copied().collect(),
                client,
            });
        }
        let key_id = schemas::protocol::key_id_for(&keys.signing_public_key());
        Ok(Sender {
            webhooks,
            keys,
            key_id,
            retry_base_ms: cfg.retry_base_ms,
            retry_cap_ms: cfg.retry_cap_ms,
        })
    }

    /// One round: fan out new outbox rows, send what is due, refresh the pending gauge.
    pub async fn round(&self, db: &Db) -> Result<(), StoreError> {
        while fan_out(db, &self.webhooks).await? == BATCH as usize {}
        for w in &self.webhooks {
            self.send_due(db, w).await?;
        }
        let pending = pending(db).await?;
        metrics::gauge!("hub_notifications_pending").set(pending as f64);
        Ok(())
    }

    async fn send_due(&self, db: &Db, w: &Webhook) -> Result<(), StoreError> {
        type Row = (i64, Option<String>, i64, i64, String, String, String, i64);
        let rows: Vec<Row> = on_db!(db, p, _DB => {
            sqlx::query_as(
                "SELECT d.outbox_seq, d.case_id, d.attempts, d.next_attempt_ms, o.id, o.kind, o.payload, o.created_ms \
                 FROM outbox_deliveries d JOIN outbox o ON o.seq = d.outbox_seq \
                 WHERE d.webhook = $1 AND d.delivered_ms IS NULL ORDER BY d.outbox_seq LIMIT $2",
            )
            .bind(&w.name)
            .bind(BATCH)
            .fetch_all(p)
            .await?
        });
        let mut blocked: HashSet<String> = HashSet::new();
        for (seq, case_id, attempts, next_ms, id, kind, payload, created_ms) in rows {
            if let Some(c) = &case_id
                && blocked.contains(c)
            {
                continue;
            }
            let now = crate::store::now_ms();
            if next_ms > now {
                if let Some(c) = case_id {
                    blocked.insert(c);
                }
                continue;
            }
            match self.post(w, &id, &kind, &payload, created_ms, now).await {
                Ok(()) => {
                    on_db!(db, p, _DB => {
                        sqlx::query("UPDATE outbox_deliveries SET delivered_ms = $1, attempts = attempts + 1, last_error = NULL WHERE outbox_seq = $2 AND webhook = $3")
                            .bind(now)
                            .bind(seq)
                            .bind(&w.name)
                            .execute(p)
                            .await?;
                    });
                    metrics::counter!("hub_notifications_delivered_total", "webhook" => w.name.clone(), "kind" => kind.clone()).increment(1);
                    tracing::info!(webhook = %w.name, delivery_id = %id, kind = %kind, "notification delivered");
                }
                Err(e) => {
                    let wait = self.backoff(attempts);
                    let error: String = e.chars().take(300).collect();
                    on_db!(db, p, _DB => {
                        sqlx::query("UPDATE outbox_deliveries SET attempts = attempts + 1, next_attempt_ms = $1, last_error = $2 WHERE outbox_seq = $3 AND webhook = $4")
                            .bind(now + wait)
                            .bind(&error)
                            .bind(seq)
                            .bind(&w.name)
                            .execute(p)
                            .await?;
                    });
                    metrics::counter!("hub_notifications_failed_attempts_total", "webhook" => w.name.clone()).increment(1);
                    tracing::warn!(webhook = %w.name, delivery_id = %id, kind = %kind, attempts = attempts + 1, retry_in_ms = wait, error = %error, "notification delivery failed");
                    if let Some(c) = case_id {
                        blocked.insert(c);
                    }
                }
            }
        }
        Ok(())
    }

    /// `min(cap, base × 2^attempts)`, times a uniform factor in [0.5, 1) (jitter).
    fn backoff(&self, attempts: i64) -> i64 {
        let exp = self
            .retry_base_ms
            .saturating_mul(1u64 << attempts.clamp(0, 30))
            .min(self.retry_cap_ms);
        let jitter = 0.5 + rand::random::<f64>() * 0.5;
        ((exp as f64) * jitter).max(1.0) as i64
    }

    async fn post(
        &self,
        w: &Webhook,
        id: &str,
        kind: &str,
        payload: &str,
        created_ms: i64,
        now: i64,
    ) -> Result<(), String> {
        let body = body(id, kind, payload, created_ms).map_err(|e| e.to_string())?;
        let sig = self
            .keys
            .signing
            .sign(&super::signing_input(id, kind, now, &body));
        let r = w
            .client
            .post(w.url.clone())
            .header("content-type", "application/json")
            .header("Jsj-Delivery-Id", id)
            .header("Jsj-Kind", kind)
            .header("Jsj-Timestamp", now.to_string())
            .header("Jsj-Key-Id", &self.key_id)
            .header("Jsj-Signature", hex::encode(sig.as_ref()))
            .body(body)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", r.status().as_u16()))
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// The request body: the stored payload (an object) with the delivery id, kind and time.
fn body(id: &str, kind: &str, payload: &str, created_ms: i64) -> serde_json::Result<Vec<u8>> {
    let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(payload)?;
    v.insert("delivery_id".into(), id.into());
    v.insert("kind".into(), kind.into());
    v.insert(
        "created_at".into(),
        crate::cases::escalation::rfc3339(created_ms).into(),
    );
    serde_json::to_vec(&v)
}

/// Give each new outbox row one delivery row per webhook that takes its kind, and mark it fanned
/// out, in one transaction. Returns how many rows were fanned out.
async fn fan_out(db: &Db, webhooks: &[Webhook]) -> Result<usize, StoreError> {
    let now = crate::store::now_ms();
    let n = on_db!(db, p, _DB => {
        let mut tx = p.begin_write().await?;
        let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
            "SELECT seq, kind, case_id FROM outbox WHERE fanned_out = 0 ORDER BY seq LIMIT $1",
        )
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        for (seq, kind, case_id) in &rows {
            let kind = NotificationKind::from_code(kind);
            for w in webhooks.iter().filter(|w| kind.is_some_and(|k| w.kinds.contains(&k))) {
                sqlx::query("INSERT INTO outbox_deliveries (outbox_seq, webhook, case_id, next_attempt_ms) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                    .bind(seq)
                    .bind(&w.name)
                    .bind(case_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE outbox SET fanned_out = 1 WHERE seq = $1")
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        rows.len()
    });
    Ok(n)
}

/// Notifications not yet delivered: deliveries pending plus rows not yet fanned out.
pub async fn pending(db: &Db) -> Result<i64, StoreError> {
    Ok(on_db!(db, p, _DB => {
        let (a,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox_deliveries WHERE delivered_ms IS NULL")
            .fetch_one(p)
            .await?;
        let (b,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE fanned_out = 0")
            .fetch_one(p)
            .await?;
        a + b
    }))
}

/// Delivery state per webhook (for operators and tests): (webhook, delivered, pending).
pub async fn summary(db: &Db) -> Result<HashMap<String, (i64, i64)>, StoreError> {
    let rows: Vec<(String, i64, i64)> = on_db!(db, p, _DB => {
        sqlx::query_as(
            "SELECT webhook, SUM(CASE WHEN delivered_ms IS NULL THEN 0 ELSE 1 END), SUM(CASE WHEN delivered_ms IS NULL THEN 1 ELSE 0 END) \
             FROM outbox_deliveries GROUP BY webhook",
        )
        .fetch_all(p)
        .await?
    });
    Ok(rows.into_iter().map(|(w, d, p)| (w, (d, p))).collect())
}
