//! Operations endpoints: liveness, readiness, the caller's own identity, and connected clients.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use policies::{Action, RequestCtx, ResourceCtx};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::identity::Caller;
use crate::store::ClientSeen;

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Health {
    pub status: &'static str,
    pub uptime_seconds: u64,
}

/// The process is alive.
pub async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        uptime_seconds: state.started.elapsed().as_secs(),
    })
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Check {
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CrlStatus {
    pub file: String,
    pub issuer: String,
    /// RFC 3339; absent when the CRL has no nextUpdate.
    pub next_update: Option<String>,
    pub fresh: bool,
    pub revoked: usize,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Readiness {
    pub ready: bool,
    /// This process, `<replica_id>#<pid>` (`[log] replica_id`, by default from `HUB_REPLICA_ID`,
    /// `POD_NAME` or the host name): which replica behind the load balancer answered.
    pub replica: String,
    pub database: Check,
    pub crls: Vec<CrlStatus>,
    pub signing_key: Check,
    /// 工作日历: the official working-day calendar's years. A warning only: `ok` is false when this
    /// year's file, or from 1 December next year's, is missing, but that does not make the hub unready
    /// (deadlines into a missing year are computed Monday–Friday and marked provisional).
    pub calendar: Check,
}

/// The calendar's state on `today` (Beijing date): loaded years, and a warning naming every year
/// whose State Council notice is not loaded — this year, and from 1 December next year.
pub fn calendar_check(calendar: &policies::WorkingCalendar, today: time::Date) -> Check {
    let years: Vec<i32> = calendar.years().map(|y| y.year).collect();
    let loaded = match (years.first(), years.last()) {
        (Some(first), Some(last)) if first == last => format!("{first} loaded"),
        (Some(first), Some(last)) => format!("{first}–{last} loaded"),
        _ => "no year loaded".to_owned(),
    };
    let mut missing = Vec::new();
    if !calendar.has_year(today.year()) {
        missing.push(today.year());
    }
    missing.extend(calendar.missing_next_year(today));
    let warnings: Vec<String> = missing
        .iter()
        .map(|y| {
            format!(
                "calendar: {y} missing (国务院节假日安排通知未载入 / the State Council's holiday notice \
                 for {y} is not loaded; deadlines into {y} are provisional, Monday–Friday)"
            )
        })
        .collect();
    Check {
        ok: warnings.is_empty(),
        detail: if warnings.is_empty() {
            format!("calendar: {loaded}")
        } else {
            format!("{}; {loaded}", warnings.join("; "))
        },
    }
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Ready to serve: database reachable, every CRL fresh, signing keys loaded. 503 otherwise.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let database =
        match tokio::time::timeout(std::time::Duration::from_secs(3), state.store.ping()).await {
            Ok(Ok(())) => Check {
                ok: true,
                detail: format!("{} reachable", state.store.backend().name()),
            },
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: database unreachable");
                Check {
                    ok: false,
                    detail: "database unreachable".into(),
                }
            }
            Err(_) => Check {
                ok: false,
                detail: "database ping timed out".into(),
            },
        };
    let now = SystemTime::now();
    let crls: Vec<CrlStatus> = state
        .tls
        .crls()
        .iter()
        .map(|c| CrlStatus {
            file: c
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            issuer: c.issuer.clone(),
            next_update: c.next_update.map(rfc3339),
            fresh: c.is_fresh(now),
            revoked: c.revoked_count,
        })
        .collect();
    let signing_key = Check {
        ok: true,
        // The identifier reports carry and `/v1/report-key` publishes, one id everywhere.
        detail: format!(
            "ed25519 {}",
            schemas::protocol::key_id_for(&state.keys.signing_public_key())
        ),
    };
    let today = time::OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+8))
        .date();
    // A warning, not a readiness condition: see `Readiness::calendar`.
    let calendar = calendar_check(state.authz.engine().calendar(), today);
    let ready = database.ok && crls.iter().all(|c| c.fresh) && signing_key.ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            ready,
            replica: state.log.instance().to_owned(),
            database,
            crls,
            signing_key,
            calendar,
        }),
    )
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct WhoAmI {
    pub uri: String,
    pub principal: String,
    pub role: String,
    pub organisation: String,
    pub division: String,
    pub display_name: String,
    pub serial: String,
}

/// The identity the hub derived from the caller's certificate.
pub async fn whoami(Caller(id): Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        uri: id.uri.clone(),
        principal: id.principal.clone(),
        role: id.role.code().to_owned(),
        organisation: id.organisation.clone(),
        division: id.division.to_string(),
        display_name: id.display_name.clone(),
        serial: id.serial.clone(),
    })
}

/// Client certificates that have connected (admin only).
pub async fn clients(
    State(state): State<AppState>,
    Caller(id): Caller,
) -> Result<Json<Vec<ClientSeen>>, ApiError> {
    state
        .authz
        .require(
            &id,
            Action::Administer,
            &ResourceCtx::default(),
            &RequestCtx::default(),
        )
        .map_err(|(_, e)| e)?;
    Ok(Json(state.store.clients_seen().await?))
}

#[cfg(test)]
mod tests {
    use super::calendar_check;
    use time::macros::date;

    fn shipped() -> policies::WorkingCalendar {
        policies::WorkingCalendar::load_dir(policies::WorkingCalendar::shipped_dir())
            .expect("shipped calendar")
    }

    #[test]
    fn readyz_warns_of_next_years_missing_calendar_from_the_first_of_december() {
        let cal = shipped();
        let nov = calendar_check(&cal, date!(2026 - 11 - 30));
        assert!(nov.ok, "{}", nov.detail);
        assert_eq!(nov.detail, "calendar: 2021–2026 loaded");
        let dec = calendar_check(&cal, date!(2026 - 12 - 01));
        assert!(!dec.ok);
        assert!(
            dec.detail
                .starts_with("calendar: 2027 missing (国务院节假日安排通知未载入"),
            "{}",
            dec.detail
        );
        assert!(!dec.detail.contains("2026 missing"), "{}", dec.detail);
    }

    #[test]
    fn readyz_warns_when_this_years_calendar_is_missing() {
        let empty = calendar_check(&policies::WorkingCalendar::empty(), date!(2026 - 06 - 01));
        assert!(!empty.ok);
        assert!(empty.detail.contains("2026 missing"), "{}", empty.detail);
        assert!(empty.detail.ends_with("no year loaded"), "{}", empty.detail);
        let later = calendar_check(&shipped(), date!(2027 - 03 - 01));
        assert!(later.detail.contains("2027 missing"), "{}", later.detail);
        assert!(!later.detail.contains("2028"), "{}", later.detail);
    }
}
