//! 通知: notifications of the closed loop through a durable outbox (issue 11 item 5), delivered
//! to configured webhooks (the province platform, an SMS gateway), signed by the hub.
//!
//! - [`enqueue`]: write one notification into the `outbox` table **inside the caller's
//!   transaction** (the move in `cases::store::apply_move`, the escalation row of the scan, later a
//!   referral slip), so that a change that commits has its notification and a change rolled back
//!   has none.
//! - [`deliver`]: the sender: fans each outbox row out to the webhooks whose `kinds` name it, and
//!   POSTs it, at least once, in order per case, with exponential backoff and jitter; each request
//!   carries the delivery id and an Ed25519 signature by the hub's signing key ([`signing_input`]).
//! - [`lease`]: the deployment-wide lease that lets one replica at a time run the escalation scan
//!   and the sender ([`worker`]).
//! - [`config`]: `[escalation]` and `[notifications]`.
//!
//! Invariants:
//! - Payloads carry ids, kinds, township and times, **never** a resident ID, a name, a phone or a
//!   description: a webhook is another system, outside the hub's access log.
//! - Nothing enqueued is lost: a row is only marked delivered after a 2xx answer; a crash between
//!   the answer and the mark sends it again (receivers deduplicate on `Jsj-Delivery-Id`).
//! - Per case, notifications are delivered in outbox order: a case's later notification waits
//!   while an earlier one is retried. Every enqueue for a case happens in a transaction that also
//!   updates the case row, so per-case outbox order is commit order on both backends.

pub mod config;
pub mod deliver;
pub mod lease;
pub mod worker;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// 已受理: a township accepted a case.
    CaseAccepted,
    /// 转办单已发出: a referral slip was issued (enqueued by the slips module).
    SlipIssued,
    /// 即将到期: a statutory clock entered `due_soon`.
    DeadlineNear,
    /// 已超期督办: a statutory clock passed its deadline and was escalated to the county.
    DeadlineMissed,
    /// 已决定: a case was decided (approved or refused).
    CaseDecided,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 5] = [
        NotificationKind::CaseAccepted,
        NotificationKind::SlipIssued,
        NotificationKind::DeadlineNear,
        NotificationKind::DeadlineMissed,
        NotificationKind::CaseDecided,
    ];

    pub fn code(self) -> &'static str {
        match self {
            NotificationKind::CaseAccepted => "case_accepted",
            NotificationKind::SlipIssued => "slip_issued",
            NotificationKind::DeadlineNear => "deadline_near",
            NotificationKind::DeadlineMissed => "deadline_missed",
            NotificationKind::CaseDecided => "case_decided",
        }
    }

    pub fn from_code(c: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == c)
    }
}

/// One notification to enqueue. `payload` must hold no personal data (ids, kinds, township,
/// times); the sender wraps it with the delivery id, the kind and the time.
#[derive(Debug, Clone)]
pub struct Notice {
    pub kind: NotificationKind,
    /// The case it concerns (delivery is ordered per case), if any.
    pub case_id: Option<String>,
    /// Makes a notice that may be enqueued again (a re-scan) one row: a second enqueue with the
    /// same key is dropped.
    pub dedup_key: Option<String>,
    pub payload: Value,
}

/// A connection inside an open transaction, on either backend (`&mut *tx`).
pub enum Conn<'a> {
    Sqlite(&'a mut sqlx::SqliteConnection),
    Postgres(&'a mut sqlx::PgConnection),
}

impl<'a> From<&'a mut sqlx::SqliteConnection> for Conn<'a> {
    fn from(c: &'a mut sqlx::SqliteConnection) -> Self {
        Conn::Sqlite(c)
    }
}

impl<'a> From<&'a mut sqlx::PgConnection> for Conn<'a> {
    fn from(c: &'a mut sqlx::PgConnection) -> Self {
        Conn::Postgres(c)
    }
}

/// Enqueue `n` inside the caller's transaction (`enqueue((&mut *tx).into(), &n, now_ms)`): it
/// commits or rolls back with the change that causes it. `false` when `dedup_key` was already
/// enqueued (nothing written).
pub async fn enqueue(conn: Conn<'_>, n: &Notice, now_ms: i64) -> Result<bool, sqlx::Error> {
    let id = uuid::Uuid::now_v7().to_string();
    let payload = n.payload.to_string();
    let sql = "INSERT INTO outbox (id, kind, case_id, dedup_key, payload, created_ms) \
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";
    let n = match conn {
        Conn::Sqlite(c) => {
            sqlx::query(sql)
                .bind(&id)
                .bind(n.kind.code())
                .bind(&n.case_id)
                .bind(&n.dedup_key)
                .bind(&payload)
                .bind(now_ms)
                .execute(c)
                .await?
        }
        .rows_affected(),
        Conn::Postgres(c) => {
            sqlx::query(sql)
                .bind(&id)
                .bind(n.kind.code())
                .bind(&n.case_id)
                .bind(&n.dedup_key)
                .bind(&payload)
                .bind(now_ms)
                .execute(c)
                .await?
        }
        .rows_affected(),
    };
    Ok(n == 1)
}

/// Domain separation of the webhook signature: the first line of the signed bytes.
pub const SIGNATURE_DOMAIN: &str = "jishijiu-hub-webhook-v1";

/// The bytes the hub signs for one delivery: `jishijiu-hub-webhook-v1\n{delivery_id}\n{kind}\n
/// {timestamp_ms}\n` followed by the exact request body. A receiver recomputes them from the
/// `Jsj-Delivery-Id`, `Jsj-Kind` and `Jsj-Timestamp` headers and the body, and checks
/// `Jsj-Signature` (hex) with the Ed25519 key `GET /v1/report-key` publishes under `Jsj-Key-Id`.
pub fn signing_input(delivery_id: &str, kind: &str, timestamp_ms: i64, body: &[u8]) -> Vec<u8> {
    let mut out =
        format!("{SIGNATURE_DOMAIN}\n{delivery_id}\n{kind}\n{timestamp_ms}\n").into_bytes();
    out.extend_from_slice(body);
    out
}

/// The verification recipe in code (what a receiver does): `true` when `signature_hex` is the
/// hub's signature over [`signing_input`] under the 32-byte Ed25519 `public_key`.
pub fn verify_delivery(
    public_key: &[u8],
    delivery_id: &str,
    kind: &str,
    timestamp_ms: i64,
    body: &[u8],
    signature_hex: &str,
) -> bool {
    let Ok(sig) = hex::decode(signature_hex) else {
        return false;
    };
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(&signing_input(delivery_id, kind, timestamp_ms, body), &sig)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in NotificationKind::ALL {
            assert_eq!(NotificationKind::from_code(k.code()), Some(k));
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                Value::String(k.code().into())
            );
        }
        assert_eq!(NotificationKind::from_code("nope"), None);
    }

    #[test]
    fn signatures_verify_only_for_the_signed_bytes() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let kp = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        use ring::signature::KeyPair as _;
        let body = br#"{"kind":"case_accepted"}"#;
        let sig = hex::encode(
            kp.sign(&signing_input("d1", "case_accepted", 7, body))
                .as_ref(),
        );
        let pk = kp.public_key().as_ref();
        assert!(verify_delivery(pk, "d1", "case_accepted", 7, body, &sig));
        assert!(!verify_delivery(pk, "d2", "case_accepted", 7, body, &sig));
        assert!(!verify_delivery(pk, "d1", "case_decided", 7, body, &sig));
        assert!(!verify_delivery(pk, "d1", "case_accepted", 8, body, &sig));
        assert!(!verify_delivery(pk, "d1", "case_accepted", 7, b"{}", &sig));
        assert!(!verify_delivery(pk, "d1", "case_accepted", 7, body, "zz"));
    }
}
