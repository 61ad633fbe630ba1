//! Rate limits (governor): a request budget per authenticated identity, by role, and a cap on the
//! distinct households one caseworker may look up per hour (anti-trawling).
//!
//! Invariants:
//! - Keys are authenticated principals only (the TLS layer refused everyone else), so the key space
//!   is bounded by the issued certificates; a cleanup task still drops idle keys
//!   (`retain_recent` + `shrink_to_fit`) and exports the key count, so memory stays bounded even when
//!   many identities churn through.
//! - A refusal is HTTP 429 with `Retry-After` (whole seconds, at least 1) and the stable code
//!   `rate_limited` or `household_limit`.
//! - Crossing the distinct-household limit raises an alert for auditors: an error-level log line with
//!   the principal (never the household) and the metric `hub_trawling_alerts_total`.
//! - Limits are per process: with N replicas the effective budget is N times the configured one.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use schemas::Role;
use serde::Deserialize;

use crate::api::ApiError;
use crate::identity::Caller;

/// A budget: a sustained rate and a burst.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub per_second: u32,
    pub burst: u32,
}

/// `[rate_limits]` in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    #[serde(default = "default_caseworker")]
    pub caseworker: Budget,
    #[serde(default = "default_department")]
    pub department: Budget,
    #[serde(default = "default_auditor")]
    pub auditor: Budget,
    #[serde(default = "default_caseworker")]
    pub admin: Budget,
    /// Distinct households one caseworker may verify per rolling hour.
    #[serde(default = "default_households_per_hour")]
    pub households_per_hour: u32,
    /// How often idle keys are dropped.
    #[serde(default = "default_cleanup_ms")]
    pub cleanup_interval_ms: u64,
}

fn default_caseworker() -> Budget {
    Budget {
        per_second: 5,
        burst: 30,
    }
}
/// Auditors fetch the log tile by tile (`hub audit verify` over mTLS), so their budget is larger.
fn default_auditor() -> Budget {
    Budget {
        per_second: 200,
        burst: 1000,
    }
}
fn default_department() -> Budget {
    Budget {
        per_second: 100,
        burst: 200,
    }
}
fn default_households_per_hour() -> u32 {
    60
}
fn default_cleanup_ms() -> u64 {
    30_000
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            caseworker: default_caseworker(),
            department: default_department(),
            auditor: default_auditor(),
            admin: default_caseworker(),
            households_per_hour: default_households_per_hour(),
            cleanup_interval_ms: default_cleanup_ms(),
        }
    }
}

impl RateLimitConfig {
    /// Validation for `Config::validate`: names the key at fault.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, b) in [
            ("rate_limits.caseworker", self.caseworker),
            ("rate_limits.department", self.department),
            ("rate_limits.auditor", self.auditor),
            ("rate_limits.admin", self.admin),
        ] {
            if b.per_second == 0 || b.burst == 0 {
                return Err((key, "per_second and burst must be greater than 0".into()));
            }
        }
        if self.households_per_hour == 0 {
            return Err((
                "rate_limits.households_per_hour",
                "must be greater than 0".into(),
            ));
        }
        if self.cleanup_interval_ms == 0 {
            return Err((
                "rate_limits.cleanup_interval_ms",
                "must be greater than 0".into(),
            ));
        }
        Ok(())
    }
}

/// A distinct-household lookup was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdLimitExceeded {
    pub limit: u32,
    pub retry_after: Duration,
}

const HOUR: Duration = Duration::from_secs(3600);

/// The limiters of one process.
pub struct RateLimits {
    by_role: HashMap<Role, DefaultKeyedRateLimiter<String>>,
    /// principal → (household pseudonym → last lookup). Each inner map holds at most the limit.
    households: Mutex<HashMap<String, HashMap<String, Instant>>>,
    households_per_hour: u32,
    cleanup_interval: Duration,
}

fn quota(b: Budget) -> Quota {
    let rate = NonZeroU32::new(b.per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(b.burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

impl RateLimits {
    pub fn new(cfg: &RateLimitConfig) -> Arc<RateLimits> {
        let by_role = [
            (Role::Caseworker, cfg.caseworker),
            (Role::Department, cfg.department),
            (Role::Auditor, cfg.auditor),
            (Role::Admin, cfg.admin),
        ]
        .into_iter()
        .map(|(role, b)| (role, RateLimiter::keyed(quota(b))))
        .collect();
        Arc::new(RateLimits {
            by_role,
            households: Mutex::new(HashMap::new()),
            households_per_hour: cfg.households_per_hour,
            cleanup_interval: Duration::from_millis(cfg.cleanup_interval_ms),
        })
    }

    /// Spend one request of `principal`'s budget; `Err(wait)` when exhausted.
    pub fn check(&self, role: Role, principal: &str) -> Result<(), Duration> {
        let limiter = &self.by_role[&role];
        limiter
            .check_key(&principal.to_owned())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Record that `principal` looks up `household` (a pseudonym). Refused once the principal has
    /// looked up `households_per_hour` other households within the last hour.
    pub fn note_household(
        &self,
        principal: &str,
        household: &str,
    ) -> Result<(), HouseholdLimitExceeded> {
        self.note_household_at(principal, household, Instant::now())
    }

    /// [`RateLimits::note_household`] at a given instant (tests and benchmarks move time forward).
    pub fn note_household_at(
        &self,
        principal: &str,
        household: &str,
        now: Instant,
    ) -> Result<(), HouseholdLimitExceeded> {
        let mut all = self.households.lock().unwrap_or_else(|e| e.into_inner());
        let seen = all.entry(principal.to_owned()).or_default();
        seen.retain(|_, at| now.duration_since(*at) < HOUR);
        if let Some(at) = seen.get_mut(household) {
            *at = now;
            return Ok(());
        }
        if seen.len() as u32 >= self.households_per_hour {
            let oldest = seen.values().min().copied().unwrap_or(now);
            let retry_after = HOUR
                .saturating_sub(now.duration_since(oldest))
                .max(Duration::from_secs(1));
            metrics::counter!("hub_trawling_alerts_total").increment(1);
            tracing::error!(
                alert = "household_trawling",
                principal,
                limit = self.households_per_hour,
                "caseworker exceeded the distinct-household limit; auditors should review this identity"
            );
            return Err(HouseholdLimitExceeded {
                limit: self.households_per_hour,
                retry_after,
            });
        }
        seen.insert(household.to_owned(), now);
        Ok(())
    }

    /// Keys currently held (request limiters + household trackers).
    pub fn len(&self) -> usize {
        self.by_role.values().map(|l| l.len()).sum::<usize>()
            + self.households.lock().map(|h| h.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop keys whose state is indistinguishable from a fresh one, and idle household trackers.
    pub fn cleanup(&self) {
        self.cleanup_at(Instant::now())
    }

    /// [`RateLimits::cleanup`] with household windows judged at `now`.
    pub fn cleanup_at(&self, now: Instant) {
        for limiter in self.by_role.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let mut all = self.households.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, seen| {
            seen.retain(|_, at| now.duration_since(*at) < HOUR);
            !seen.is_empty()
        });
        all.shrink_to_fit();
        metrics::gauge!("hub_rate_limit_keys")
            .set(self.by_role.values().map(|l| l.len()).sum::<usize>() as f64 + all.len() as f64);
    }

    /// Run [`RateLimits::cleanup`] forever on the configured interval.
    pub async fn cleanup_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.cleanup_interval);
        loop {
            tick.tick().await;
            self.cleanup();
        }
    }
}

/// 429 with `Retry-After`.
pub fn too_many(code: &'static str, message: String, wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
}

/// Middleware: spend one request of the caller's budget before the handler runs.
pub async fn limit_requests(
    State(limits): State<Arc<RateLimits>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(Caller(id)) = req.extensions().get::<Caller>()
        && let Err(wait) = limits.check(id.role, &id.principal)
    {
        metrics::counter!("hub_rate_limited_total", "role" => id.role.code()).increment(1);
        return too_many(
            "rate_limited",
            "请求过于频繁，请稍后再试 / too many requests; retry later".into(),
            wait,
        );
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(households: u32) -> Arc<RateLimits> {
        RateLimits::new(&RateLimitConfig {
            caseworker: Budget {
                per_second: 1000,
                burst: 3,
            },
            households_per_hour: households,
            ..RateLimitConfig::default()
        })
    }

    #[test]
    fn the_burst_is_spent_then_refused_with_a_wait() {
        let l = limits(10);
        for _ in 0..3 {
            assert!(l.check(Role::Caseworker, "cw-1").is_ok());
        }
        let wait = l.check(Role::Caseworker, "cw-1").unwrap_err();
        assert!(wait > Duration::ZERO);
        // Another identity has its own budget.
        assert!(l.check(Role::Caseworker, "cw-2").is_ok());
    }

    #[test]
    fn distinct_households_are_capped_per_hour() {
        let metrics = crate::telemetry::prometheus();
        let l = limits(3);
        let t0 = Instant::now();
        for h in ["h1", "h2", "h3"] {
            assert!(l.note_household_at("cw-1", h, t0).is_ok());
        }
        // The same household again is fine; a fourth is refused.
        assert!(l.note_household_at("cw-1", "h2", t0).is_ok());
        let err = l
            .note_household_at("cw-1", "h4", t0 + Duration::from_secs(60))
            .unwrap_err();
        assert_eq!(err.limit, 3);
        assert_eq!(err.retry_after, HOUR - Duration::from_secs(60));
        // The trawling alert for auditors: a metric (and an error-level log line) per refusal.
        let alerts = metrics
            .render()
            .lines()
            .find(|l| l.starts_with("hub_trawling_alerts_total"))
            .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok());
        assert!(alerts.is_some_and(|n| n >= 1.0), "alert metric: {alerts:?}");
        // Other caseworkers are unaffected; an hour later the window has moved on.
        assert!(l.note_household_at("cw-2", "h4", t0).is_ok());
        assert!(
            l.note_household_at("cw-1", "h4", t0 + HOUR + Duration::from_secs(1))
                .is_ok()
        );
    }

    #[test]
    fn cleanup_forgets_idle_keys() {
        let l = limits(10);
        for i in 0..1000 {
            l.check(Role::Caseworker, &format!("cw-{i}")).unwrap();
        }
        assert!(l.len() >= 1000);
        // With 1000/s a single spent cell is back to fresh after 1 ms.
        std::thread::sleep(Duration::from_millis(20));
        l.cleanup();
        assert_eq!(l.len(), 0);
    }
}
