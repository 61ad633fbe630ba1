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
    pub database: Check,
    pub crls: Vec<CrlStatus>,
    pub signing_key: Check,
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
        detail: format!(
            "ed25519 {}",
            hex::encode(&state.keys.signing_public_key()[..8])
        ),
    };
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
            database,
            crls,
            signing_key,
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
        uri: id.uri,
        principal: id.principal,
        role: id.role.code().to_owned(),
        organisation: id.organisation,
        division: id.division.to_string(),
        display_name: id.display_name,
        serial: id.serial,
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
