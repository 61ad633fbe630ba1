//! 监测预警 (early warning): department events (部门事件) pushed to the hub, the low-income
//! monitoring list (低收入人口动态监测) civil affairs keeps, the warning rules run on every placed
//! event, and the township warning queue.
//!
//! - [`events`]: `POST /v1/events` (one signed event per request) and `GET /v1/events/unmatched`.
//! - [`monitoring`]: `POST /v1/monitoring/uploads` (CSV or JSON lines, streamed),
//!   `POST /v1/monitoring/households` (add or update one) and
//!   `POST /v1/monitoring/households/remove` (the resident ID in the body, never in a URL).
//! - [`rules`]: the warning rules (`policies/warnings.toml`) evaluated in the transaction that
//!   stores (or later places) an event: one open warning per household and rule.
//! - [`queue`]: `GET /v1/warnings`, `GET /v1/warnings/{id}`, `POST /v1/warnings/{id}/acknowledge`,
//!   `/dismiss`, `/convert` (to a case, channel `warning`).
//! - [`village`]: `POST /v1/village-reports` (a village assistant reports a household of its
//!   village; the report feeds the rules like an event) and `GET /v1/village-reports`.
//! - [`store`]: the `village_reports` table (`0015_village_reports.sql`), the `warnings` and `warning_signals` tables (`0013_warnings.sql`) and the `dept_events`, `monitored_households` and `monitoring_uploads` tables
//!   (`0011_events_monitoring.sql`, SQLite and PostgreSQL).
//!
//! Invariants:
//! - A resident ID is never stored, logged or answered in clear: rows hold the keyed pseudonym
//!   ([`crate::keys::HubKeys::pseudonym`], the access log's scheme), the event as received and the
//!   household head's ID are sealed ([`crate::keys::HubKeys::seal`]) bound to the event id or to
//!   (pseudonym, category). Held by e2e `events::the_resident_id_is_nowhere_in_clear_*`.
//! - An accepted event is applied once: the first receipt of an `event_id` stores it (201), the
//!   same signed event again answers the same receipt (200) and applies nothing, another event
//!   under the same id is 409 `event_id_reused`. Its access-log entry (`event_received`) and its
//!   row are durable before the answer.
//! - An event about a person the hub cannot place is kept (`unmatched`), counted and listed, never
//!   dropped; it is placed when the person appears on the monitoring list.
//! - Departments are looked up by code string (`[departments.<code>]`), never by a closed enum, so
//!   a department added as data needs no change here. Who may push, manage and read is Cedar's
//!   (`departments.cedar`, `warning.cedar`).

pub mod events;
pub mod monitoring;
pub mod queue;
pub mod rules;
pub mod store;
pub mod village;

use std::collections::BTreeSet;

use axum::Router;
use axum::http::StatusCode;
use schemas::Identity;
use schemas::access_log::{
    AccessLogEntry, Action as LogAction, Actor, Decision as LogDecision, Effect, FORMAT_V1,
    Outcome, SubjectPseudonym,
};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::api::{ApiError, AppState};
use crate::keys::SealError;

/// The routes of this module, merged into the main router.
pub fn routes() -> Router<AppState> {
    events::routes()
        .merge(monitoring::routes())
        .merge(queue::routes())
        .merge(village::routes())
}

/// The body limit of a route of this module that takes more than `server.max_body_bytes` (the
/// streamed bulk upload); `None` for every other path.
pub fn body_limit(path: &str) -> Option<usize> {
    (path == monitoring::UPLOAD_PATH).then_some(monitoring::MAX_UPLOAD_BYTES)
}

/// `[events]` in the hub's config.
///
/// ```toml
/// [events]
/// max_age_s = 86400        # an event issued longer ago is refused (replay window)
/// max_skew_s = 300         # an event issued this far in the future is still accepted
/// kinds = ["emergency.evacuated"]   # kinds besides the built-in ones (free-form details)
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    #[serde(default = "default_max_age_s")]
    pub max_age_s: u64,
    #[serde(default = "default_max_skew_s")]
    pub max_skew_s: u64,
    /// Event kinds accepted besides [`schemas::events::KnownKind`] (`<department>.<event>`).
    #[serde(default)]
    pub kinds: Vec<String>,
}

fn default_max_age_s() -> u64 {
    24 * 3600
}
fn default_max_skew_s() -> u64 {
    300
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            max_age_s: default_max_age_s(),
            max_skew_s: default_max_skew_s(),
            kinds: Vec::new(),
        }
    }
}

fn code_ok(code: &str, max: usize) -> bool {
    let b = code.as_bytes();
    (2..=max).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || *c == b'_')
}

/// A kind `<department>.<event>` as [`schemas::events::EVENT_KIND_PATTERN`] states it.
fn kind_ok(kind: &str) -> bool {
    kind.split_once('.')
        .is_some_and(|(d, e)| code_ok(d, 32) && code_ok(e, 48))
}

impl EventsConfig {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_age_s == 0 || self.max_age_s > 30 * 24 * 3600 {
            return Err(("events.max_age_s", "must be 1 s to 30 days".into()));
        }
        if self.max_skew_s > 3600 {
            return Err(("events.max_skew_s", "must be at most 3600 s".into()));
        }
        for (i, k) in self.kinds.iter().enumerate() {
            if !kind_ok(k) {
                return Err((
                    "events.kinds",
                    format!("[{i}]: must be <department>.<event> in lower case and underscores"),
                ));
            }
        }
        Ok(())
    }
}

/// `[monitoring]` in the hub's config.
///
/// ```toml
/// [monitoring]
/// categories = ["severe_disability"]   # besides dibao_edge, expenditure_hardship, poverty_risk
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringConfig {
    #[serde(default)]
    pub categories: Vec<String>,
}

/// The built-in monitoring categories: 低保边缘 (just above the 低保 line), 支出型困难 (hardship
/// from necessary expenditure), 易返贫致贫 (at risk of falling (back) into poverty).
pub const BUILT_IN_CATEGORIES: [&str; 3] = ["dibao_edge", "expenditure_hardship", "poverty_risk"];

impl MonitoringConfig {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (i, c) in self.categories.iter().enumerate() {
            if !code_ok(c, 32) {
                return Err((
                    "monitoring.categories",
                    format!("[{i}]: must be 2-32 lower-case letters and underscores"),
                ));
            }
        }
        Ok(())
    }
}

/// What the handlers of this module need from the config.
#[derive(Debug, Clone)]
pub struct WarningSettings {
    pub freshness: schemas::events::Freshness,
    /// Kinds accepted besides the built-in ones.
    pub extra_kinds: BTreeSet<String>,
    /// Every monitoring category accepted (built-in and configured).
    pub categories: BTreeSet<String>,
}

impl Default for WarningSettings {
    fn default() -> Self {
        Self::new(&EventsConfig::default(), &MonitoringConfig::default())
    }
}

impl WarningSettings {
    pub fn new(events: &EventsConfig, monitoring: &MonitoringConfig) -> Self {
        Self {
            freshness: schemas::events::Freshness {
                max_age: time::Duration::seconds(events.max_age_s as i64),
                max_skew: time::Duration::seconds(events.max_skew_s as i64),
            },
            extra_kinds: events.kinds.iter().cloned().collect(),
            categories: BUILT_IN_CATEGORIES
                .iter()
                .map(|c| (*c).to_owned())
                .chain(monitoring.categories.iter().cloned())
                .collect(),
        }
    }

    pub fn from_config(config: &crate::config::Config) -> Self {
        Self::new(&config.events, &config.monitoring)
    }

    /// Is this kind one the hub accepts (built-in or configured)?
    pub fn knows_kind(&self, kind: &str) -> bool {
        schemas::events::KnownKind::from_code(kind).is_some() || self.extra_kinds.contains(kind)
    }
}

// ==== shared helpers ====

fn seal_error(e: SealError) -> ApiError {
    match e {
        SealError::Unconfigured => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "data_key_unconfigured",
            "本枢纽未配置数据加密密钥，不能保存事件或监测名单 / no data-encryption key is configured; events and the monitoring list cannot be stored",
        ),
        other => ApiError::internal(other),
    }
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn rfc3339(ms: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// One access-log entry of this module.
#[allow(clippy::too_many_arguments)]
fn entry(
    id: &Identity,
    action: LogAction,
    allowed: bool,
    outcome: Outcome,
    policy_ids: Vec<String>,
    rid: &str,
    case_ref: Option<&str>,
    subject: Option<&str>,
) -> Result<AccessLogEntry, ApiError> {
    let subjects = subject
        .map(SubjectPseudonym::parse)
        .transpose()
        .map_err(ApiError::internal)?
        .into_iter()
        .collect();
    let mut e = AccessLogEntry {
        format: FORMAT_V1.into(),
        time: OffsetDateTime::now_utc(),
        actor: Actor {
            uri: id.uri.clone(),
            principal: id.principal.clone(),
            role: id.role,
            organisation: id.organisation.clone(),
            division: id.division.clone(),
        },
        action,
        purpose: None,
        case_ref: case_ref.map(str::to_owned),
        decision: LogDecision {
            effect: if allowed { Effect::Allow } else { Effect::Deny },
            policy_ids,
        },
        departments: schemas::Department::from_code(&id.organisation)
            .filter(|_| id.role == schemas::Role::Department)
            .into_iter()
            .collect(),
        fact_kinds: Vec::new(),
        outcome,
        request_id: rid.to_owned(),
        subjects,
    };
    e.normalize();
    Ok(e)
}

/// 400 `validation_failed` naming `field`: "`field`: `rule`".
pub(crate) fn invalid(field: &str, rule: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("validation_failed", field, format!("{field}: {rule}"))
}

/// A list's `village` filter: 12 digits, else 400 naming `village`.
pub(crate) fn village_filter(v: Option<&str>) -> Result<Option<String>, ApiError> {
    v.map(str::trim)
        .map(|v| {
            if v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()) {
                Ok(v.to_owned())
            } else {
                Err(invalid("village", "must be a village code (12 digits)"))
            }
        })
        .transpose()
}

/// A list's `cursor`: the UUID of the last item of the previous page, else 400 naming `cursor`.
pub(crate) fn cursor_filter(c: Option<&str>) -> Result<Option<String>, ApiError> {
    c.map(|c| {
        uuid::Uuid::parse_str(c)
            .map(|u| u.to_string())
            .map_err(|_| invalid("cursor", "must be a cursor from a previous page"))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_kinds_and_categories_are_checked() {
        let ok = EventsConfig {
            kinds: vec!["emergency.evacuated".into()],
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        for bad in ["emergency", "Emergency.x", "a.b", "emergency.", "x.y-z"] {
            let c = EventsConfig {
                kinds: vec![bad.into()],
                ..Default::default()
            };
            assert_eq!(c.validate().unwrap_err().0, "events.kinds", "{bad}");
        }
        let m = MonitoringConfig {
            categories: vec!["severe disability".into()],
        };
        assert_eq!(m.validate().unwrap_err().0, "monitoring.categories");
        let s = WarningSettings::new(&ok, &MonitoringConfig::default());
        assert!(s.knows_kind("health.hospitalisation"));
        assert!(s.knows_kind("emergency.evacuated"));
        assert!(!s.knows_kind("health.sneezed"));
        assert!(s.categories.contains("dibao_edge"));
        assert_eq!(body_limit("/v1/monitoring/uploads"), Some(64 << 20));
        assert_eq!(body_limit("/v1/events"), None);
    }
}
