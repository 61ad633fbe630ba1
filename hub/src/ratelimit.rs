//! Rate limits: a request budget per authenticated identity, by role (governor, in process), and the
//! anti-trawling caps on what one caseworker may look up (in the hub's database).
//!
//! Anti-trawling (防止拖网式查询; issue 10, finding 2). Every cap is keyed by the caller's full
//! identity URI (never the bare principal id, which two organisations may both issue) and counts
//! what a verification looks up once it has passed the first policy decision and before any
//! department, civil affairs' registration check included, is asked:
//! - distinct households per rolling hour (`households_per_hour`), refused with `household_limit`;
//! - distinct people per rolling hour (`people_per_hour`): every member of every household, by keyed
//!   pseudonym, so that packing strangers into one "household" does not get around the household
//!   cap; refused with `people_limit`;
//! - emergency (2 h) and urgent (24 h) checks without an authorization letter per rolling 24 hours
//!   (one cap for both tiers: either may run before its letter)
//!   (`emergency_without_letter_per_day`), refused with `emergency_limit`.
//!
//! The household itself is limited in policy: `policies/policies/trawling.cedar` caps the members of
//! one request and those unrelated to the applicant (relation `other`).
//!
//! Invariants:
//! - A refusal is HTTP 429 with `Retry-After` (whole seconds, at least 1: when the oldest lookup
//!   counted leaves its window) and a stable code: `rate_limited`, `household_limit`,
//!   `people_limit` or `emergency_limit`. The caller records the refusal in the access log as a
//!   denied `verification_requested` entry with the policy id of [`LimitExceeded::policy_id`].
//! - Windows: a lookup at `t` counts at `now` while `now - t < window` (one hour, or 24 hours for the
//!   emergency cap); a cap of N admits the N-th distinct household, person or letterless emergency
//!   check in the window and refuses the N+1-th. Looking up the same household or person again only
//!   moves its time forward.
//! - Crossing a cap, or a refusal by a rule of `trawling.cedar`, raises an alert for auditors: an
//!   error-level log line with the caseworker's identity URI (never a household, person or resident
//!   ID) and the metric `hub_trawling_alerts_total{pattern=...}` (`distinct_households`,
//!   `distinct_people`, `emergency_without_letter`, `household_members`).
//! - The lookups live in the `lookups` table (migration 0007, both backends), so the caps survive a
//!   restart and, on PostgreSQL, are shared by every replica: they are per caseworker for the whole
//!   deployment, not per process. The cleanup task prunes rows outside their windows. Only keyed
//!   pseudonyms and verification ids are stored.
//! - Concurrency: recording and counting is one transaction serialized per caseworker (SQLite: the
//!   database write lock, taken by its first statement; PostgreSQL: a transaction-scoped advisory
//!   lock on the identity URI, across replicas), and a refused request is rolled back. So concurrent
//!   requests of one caseworker never get past a cap together. What remains is at the window's
//!   edge: a lookup's time is the recording replica's clock, read just before the lock is taken, so
//!   the edge moves by the replicas' clock skew plus the lock wait (milliseconds). A request that
//!   passes the caps and is refused later (jurisdiction from civil affairs, a department failing)
//!   still counts: civil affairs was asked about those people.
//! - The request budget (governor) is per process. On PostgreSQL a shared layer ([`shared`]) holds
//!   it across replicas: each replica counts what it admitted per identity URI and fixed window and
//!   adds it to the database in one statement per flush (every `rate_limits.shared.flush_ms`),
//!   learning the deployment-wide count; an identity that spent its window budget (`burst +
//!   per_second × window`) is refused on every replica until the window ends. No database round
//!   trip per request; the tolerance is at most `(replicas − 1) × max_unflushed` requests over the
//!   window budget (see [`shared`]). On SQLite (one process) governor alone decides, as before.
//!   Governor's keys are authenticated principals only (the TLS layer refused everyone else) and a
//!   cleanup task drops idle keys (`retain_recent` + `shrink_to_fit`) and exports the key count, so
//!   memory stays bounded even when many identities churn through.

pub mod shared;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

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
use crate::store::lookups::{self, LookupCounts, LookupKind, Since};
use crate::store::{Db, StoreError};

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
    /// Intake systems (the 12345 platform, the QR service) file for a whole city.
    #[serde(default = "default_department")]
    pub intake: Budget,
    /// Distinct households one caseworker may verify per rolling hour.
    #[serde(default = "default_households_per_hour")]
    pub households_per_hour: u32,
    /// Distinct people (every member of every household, by keyed pseudonym) one caseworker may
    /// look up per rolling hour.
    #[serde(default = "default_people_per_hour")]
    pub people_per_hour: u32,
    /// Emergency or urgent checks without an authorization letter (both tiers count against one cap)
    /// one caseworker may run per rolling 24 hours. The key keeps its name for existing configs.
    #[serde(default = "default_emergency_without_letter_per_day")]
    pub emergency_without_letter_per_day: u32,
    /// How often idle keys are dropped and lookups outside their windows pruned.
    #[serde(default = "default_cleanup_ms")]
    pub cleanup_interval_ms: u64,
    /// The request budget shared by the replicas on PostgreSQL.
    #[serde(default)]
    pub shared: shared::SharedConfig,
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
/// 60 households of about 2.5 people each, with room for larger ones.
fn default_people_per_hour() -> u32 {
    150
}
/// An emergency check without a letter is the exception (temporary assistance, 2 hours); ten a day
/// is far more than one township sees.
fn default_emergency_without_letter_per_day() -> u32 {
    10
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
            intake: default_department(),
            households_per_hour: default_households_per_hour(),
            people_per_hour: default_people_per_hour(),
            emergency_without_letter_per_day: default_emergency_without_letter_per_day(),
            cleanup_interval_ms: default_cleanup_ms(),
            shared: shared::SharedConfig::default(),
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
            ("rate_limits.intake", self.intake),
        ] {
            if b.per_second == 0 || b.burst == 0 {
                return Err((key, "per_second and burst must be greater than 0".into()));
            }
        }
        for (key, cap) in [
            ("rate_limits.households_per_hour", self.households_per_hour),
            ("rate_limits.people_per_hour", self.people_per_hour),
            (
                "rate_limits.emergency_without_letter_per_day",
                self.emergency_without_letter_per_day,
            ),
        ] {
            if cap == 0 {
                return Err((key, "must be greater than 0".into()));
            }
        }
        if self.people_per_hour < self.households_per_hour {
            return Err((
                "rate_limits.people_per_hour",
                format!(
                    "must be at least households_per_hour ({}): every household has a member",
                    self.households_per_hour
                ),
            ));
        }
        if self.cleanup_interval_ms == 0 {
            return Err((
                "rate_limits.cleanup_interval_ms",
                "must be greater than 0".into(),
            ));
        }
        self.shared.validate()
    }
}

/// The anti-trawling caps of one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrawlingCaps {
    pub households_per_hour: u32,
    pub people_per_hour: u32,
    pub emergency_without_letter_per_day: u32,
}

/// An unusual pattern the hub alerts auditors about (the `pattern` label of
/// `hub_trawling_alerts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrawlingPattern {
    /// More distinct households in an hour than `households_per_hour`.
    DistinctHouseholds,
    /// More distinct people in an hour than `people_per_hour`.
    DistinctPeople,
    /// More emergency checks without a letter in 24 hours than `emergency_without_letter_per_day`.
    EmergencyWithoutLetter,
    /// A request refused by a household-size rule of `trawling.cedar` (too many members, too many
    /// unrelated to the applicant).
    HouseholdMembers,
}

impl TrawlingPattern {
    pub fn code(self) -> &'static str {
        match self {
            TrawlingPattern::DistinctHouseholds => "distinct_households",
            TrawlingPattern::DistinctPeople => "distinct_people",
            TrawlingPattern::EmergencyWithoutLetter => "emergency_without_letter",
            TrawlingPattern::HouseholdMembers => "household_members",
        }
    }
}

/// Raise an alert for auditors: an error-level log line naming the caseworker's identity URI (never
/// a household, person or resident ID) and the metric `hub_trawling_alerts_total{pattern}`.
pub fn trawling_alert(pattern: TrawlingPattern, principal_uri: &str, detail: &str) {
    metrics::counter!("hub_trawling_alerts_total", "pattern" => pattern.code()).increment(1);
    tracing::error!(
        alert = "trawling",
        pattern = pattern.code(),
        principal = principal_uri,
        detail,
        "unusual lookup pattern; auditors should review this identity"
    );
}

/// The file whose rules, when they refuse a request, raise a [`TrawlingPattern::HouseholdMembers`]
/// alert.
pub const TRAWLING_POLICY_FILE: &str = "trawling.cedar";

/// Alert when a decision was refused by a rule of [`TRAWLING_POLICY_FILE`].
pub fn alert_on_trawling_rules(
    engine: &policies::PolicyEngine,
    principal_uri: &str,
    decision: &policies::Decision,
) {
    if decision.allowed {
        return;
    }
    let rules: Vec<&str> = decision
        .policy_ids
        .iter()
        .map(String::as_str)
        .filter(|id| {
            engine
                .policy_source(id)
                .is_some_and(|(file, _)| file.file_name() == Some(TRAWLING_POLICY_FILE.as_ref()))
        })
        .collect();
    if !rules.is_empty() {
        trawling_alert(
            TrawlingPattern::HouseholdMembers,
            principal_uri,
            &format!("refused by {}", rules.join(", ")),
        );
    }
}

/// What one verification looks up, as the caps count it.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    /// The caseworker's full identity URI: the key of every cap.
    pub principal_uri: &'a str,
    pub verification_id: &'a str,
    /// The household's pseudonym (the applicant's).
    pub household: &'a str,
    /// Every member's keyed pseudonym.
    pub people: &'a [String],
    /// An emergency check run without a covering authorization letter.
    pub emergency_without_letter: bool,
}

/// An anti-trawling cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// `households_per_hour`.
    Households,
    /// `people_per_hour`.
    People,
    /// `emergency_without_letter_per_day`.
    EmergencyWithoutLetter,
}

impl Cap {
    /// The alert raised when the cap is crossed.
    pub fn pattern(self) -> TrawlingPattern {
        match self {
            Cap::Households => TrawlingPattern::DistinctHouseholds,
            Cap::People => TrawlingPattern::DistinctPeople,
            Cap::EmergencyWithoutLetter => TrawlingPattern::EmergencyWithoutLetter,
        }
    }

    /// The stable error code of the 429.
    pub fn code(self) -> &'static str {
        match self {
            Cap::Households => "household_limit",
            Cap::People => "people_limit",
            Cap::EmergencyWithoutLetter => "emergency_limit",
        }
    }

    /// The policy id recorded in the denied access-log entry.
    pub fn policy_id(self) -> &'static str {
        match self {
            Cap::Households => "hub-household-limit",
            Cap::People => "hub-people-limit",
            Cap::EmergencyWithoutLetter => "hub-emergency-limit",
        }
    }

    fn kind(self) -> LookupKind {
        match self {
            Cap::Households => LookupKind::Household,
            Cap::People => LookupKind::Person,
            Cap::EmergencyWithoutLetter => LookupKind::EmergencyWithoutLetter,
        }
    }
}

/// A cap refused a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    pub cap: Cap,
    /// The cap's value.
    pub limit: u32,
    /// When the oldest lookup counted leaves its window.
    pub retry_after: Duration,
}

impl LimitExceeded {
    /// The stable error code of the 429.
    pub fn code(&self) -> &'static str {
        self.cap.code()
    }

    /// The policy id recorded in the denied access-log entry.
    pub fn policy_id(&self) -> &'static str {
        self.cap.policy_id()
    }

    /// The caseworker-readable reason, Chinese first.
    pub fn message(&self) -> String {
        let n = self.limit;
        match self.cap {
            Cap::Households => format!(
                "每小时最多核对 {n} 户不同的家庭 / at most {n} distinct households per hour"
            ),
            Cap::People => format!(
                "每小时最多核对 {n} 名不同的人员（各户成员合计）/ at most {n} distinct people (all household members) per hour"
            ),
            Cap::EmergencyWithoutLetter => format!(
                "每 24 小时最多 {n} 次无授权书的紧急或急难核对，请先登记授权书 / at most {n} emergency or urgent checks without an authorization letter per 24 hours; record the letter first"
            ),
        }
    }

    /// The 429 with `Retry-After`.
    pub fn response(&self) -> Response {
        too_many(self.code(), self.message(), self.retry_after)
    }
}

pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;

/// The window of each kind of lookup, in milliseconds.
pub(crate) fn window_ms(kind: LookupKind) -> i64 {
    match kind {
        LookupKind::Household | LookupKind::Person => HOUR_MS,
        LookupKind::EmergencyWithoutLetter => DAY_MS,
    }
}

/// The windows ending at `now_ms`: a lookup at `t` is inside while `t > now - window`, i.e.
/// `now - t < window`.
pub(crate) fn windows_at(now_ms: i64) -> Since {
    let start = |k| now_ms.saturating_sub(window_ms(k));
    Since {
        households: start(LookupKind::Household),
        people: start(LookupKind::Person),
        emergencies: start(LookupKind::EmergencyWithoutLetter),
    }
}

/// How long until the oldest lookup counted leaves its window: at least one second, at most the
/// window (a lookup stamped in the future by a replica whose clock runs ahead frees at most a window
/// from now).
pub(crate) fn retry_after(oldest_ms: Option<i64>, window_ms: i64, now_ms: i64) -> Duration {
    let left = oldest_ms.map_or(window_ms, |oldest| {
        oldest.saturating_add(window_ms).saturating_sub(now_ms)
    });
    Duration::from_millis(left.clamp(1000, window_ms.max(1000)) as u64)
}

/// Judge the counts of a caseworker's lookups, this request's included: the first cap crossed.
pub(crate) fn judge(
    caps: &TrawlingCaps,
    counts: &LookupCounts,
    emergency_without_letter: bool,
    now_ms: i64,
) -> Option<LimitExceeded> {
    [
        (
            Cap::Households,
            &counts.households,
            caps.households_per_hour,
        ),
        (Cap::People, &counts.people, caps.people_per_hour),
        (
            Cap::EmergencyWithoutLetter,
            &counts.emergencies,
            caps.emergency_without_letter_per_day,
        ),
    ]
    .into_iter()
    // The letterless-emergency count is this request's business only when it is one itself.
    .filter(|(cap, _, _)| *cap != Cap::EmergencyWithoutLetter || emergency_without_letter)
    .find(|(_, w, limit)| w.count > u64::from(*limit))
    .map(|(cap, w, limit)| LimitExceeded {
        cap,
        limit,
        retry_after: retry_after(w.oldest_ms, window_ms(cap.kind()), now_ms),
    })
}

/// The limiters of one process and the anti-trawling caps of the deployment.
pub struct RateLimits {
    by_role: HashMap<Role, DefaultKeyedRateLimiter<String>>,
    /// The budget shared by the replicas (PostgreSQL only).
    shared: Option<Arc<shared::SharedBudget>>,
    caps: TrawlingCaps,
    cleanup_interval: Duration,
}

fn quota(b: Budget) -> Quota {
    let rate = NonZeroU32::new(b.per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(b.burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

impl RateLimits {
    /// The limiters of one process alone (SQLite: the hub is one process).
    pub fn new(cfg: &RateLimitConfig) -> Arc<RateLimits> {
        Arc::new(Self::build(cfg, false))
    }

    /// The limiters for the database the hub runs on: with the shared budget on PostgreSQL, where
    /// several replicas may share it. Start [`RateLimits::shared_loop`] beside the server.
    pub fn for_db(cfg: &RateLimitConfig, db: &Db) -> Arc<RateLimits> {
        Arc::new(Self::build(cfg, matches!(db, Db::Postgres(_))))
    }

    fn build(cfg: &RateLimitConfig, shared: bool) -> RateLimits {
        let budgets: HashMap<Role, Budget> = [
            (Role::Caseworker, cfg.caseworker),
            (Role::Department, cfg.department),
            (Role::Auditor, cfg.auditor),
            (Role::Admin, cfg.admin),
            (Role::Intake, cfg.intake),
            // A village assistant works at a caseworker's pace.
            (Role::VillageAssistant, cfg.caseworker),
        ]
        .into_iter()
        .collect();
        let by_role = budgets
            .iter()
            .map(|(role, b)| (*role, RateLimiter::keyed(quota(*b))))
            .collect();
        RateLimits {
            by_role,
            shared: shared.then(|| shared::SharedBudget::new(cfg.shared, &budgets)),
            caps: TrawlingCaps {
                households_per_hour: cfg.households_per_hour,
                people_per_hour: cfg.people_per_hour,
                emergency_without_letter_per_day: cfg.emergency_without_letter_per_day,
            },
            cleanup_interval: Duration::from_millis(cfg.cleanup_interval_ms),
        }
    }

    /// The shared budget, when the hub runs on PostgreSQL.
    pub fn shared(&self) -> Option<&Arc<shared::SharedBudget>> {
        self.shared.as_ref()
    }

    /// Flush the shared budget forever (returns at once without one).
    pub async fn shared_loop(self: Arc<Self>, db: Db) {
        if let Some(shared) = self.shared.clone() {
            shared.flush_loop(db).await;
        }
    }

    pub fn caps(&self) -> TrawlingCaps {
        self.caps
    }

    /// Spend one request of `principal`'s in-process budget; `Err(wait)` when exhausted.
    pub fn check(&self, role: Role, principal: &str) -> Result<(), Duration> {
        let limiter = &self.by_role[&role];
        limiter
            .check_key(&principal.to_owned())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Record a verification's lookups in the database and apply the anti-trawling caps: `Ok(Err)`
    /// when a cap refuses it (nothing is recorded, and the alert is raised), `Err` when the database
    /// fails (the caller refuses the request: fail closed).
    pub async fn note_lookup(
        &self,
        db: &Db,
        lookup: &Lookup<'_>,
    ) -> Result<Result<(), LimitExceeded>, StoreError> {
        self.note_lookup_at(db, lookup, crate::store::now_ms())
            .await
    }

    /// [`RateLimits::note_lookup`] at a given time (unix milliseconds; tests move time forward).
    pub async fn note_lookup_at(
        &self,
        db: &Db,
        lookup: &Lookup<'_>,
        now_ms: i64,
    ) -> Result<Result<(), LimitExceeded>, StoreError> {
        let mut keys: Vec<(LookupKind, &str)> = Vec::with_capacity(lookup.people.len() + 2);
        keys.push((LookupKind::Household, lookup.household));
        keys.extend(
            lookup
                .people
                .iter()
                .map(|p| (LookupKind::Person, p.as_str())),
        );
        if lookup.emergency_without_letter {
            keys.push((LookupKind::EmergencyWithoutLetter, lookup.verification_id));
        }
        let caps = self.caps;
        let emergency = lookup.emergency_without_letter;
        let recorded = lookups::record(
            db,
            lookup.principal_uri,
            &keys,
            now_ms,
            windows_at(now_ms),
            |counts| judge(&caps, counts, emergency, now_ms),
        )
        .await?;
        Ok(recorded.map(|_| ()).inspect_err(|limit| {
            trawling_alert(
                limit.cap.pattern(),
                lookup.principal_uri,
                &format!("refused with {} (limit {})", limit.code(), limit.limit),
            );
        }))
    }

    /// [`RateLimits::note_lookup`] for a hub whose access log lives in the same database. On
    /// SQLite inside the log's group commit ([`crate::log::AccessLog::attach`]): the same
    /// statements and the same judgement in the log writer's batch transaction (in a savepoint,
    /// rolled back on a refusal) instead of a write lock and a commit of their own, which on SQLite
    /// (one writer, one fsync per commit) serialized every check. On PostgreSQL as before, in a
    /// transaction of its own: there commits of concurrent transactions already share WAL flushes,
    /// and one batch holding several caseworkers' advisory locks (taken in no fixed order) could
    /// deadlock with another replica's. Durable when it returns `Ok(Ok(()))`; `Err` when the
    /// batch or the statements fail (fail closed).
    pub async fn note_lookup_logged(
        &self,
        log: &crate::log::AccessLog,
        lookup: &Lookup<'_>,
    ) -> Result<Result<(), LimitExceeded>, crate::api::ApiError> {
        if matches!(log.db(), Db::Postgres(_)) {
            return Ok(self.note_lookup(log.db(), lookup).await?);
        }
        let now_ms = crate::store::now_ms();
        let mut keys: Vec<(LookupKind, String)> = Vec::with_capacity(lookup.people.len() + 2);
        keys.push((LookupKind::Household, lookup.household.to_owned()));
        keys.extend(
            lookup
                .people
                .iter()
                .map(|p| (LookupKind::Person, p.clone())),
        );
        if lookup.emergency_without_letter {
            keys.push((
                LookupKind::EmergencyWithoutLetter,
                lookup.verification_id.to_owned(),
            ));
        }
        let outcome = LookupOutcome::default();
        log.attach(Box::new(LookupWrite {
            principal: lookup.principal_uri.to_owned(),
            keys,
            now_ms,
            caps: self.caps,
            emergency: lookup.emergency_without_letter,
            outcome: outcome.clone(),
        }))
        .await?;
        let judged = outcome.take();
        match judged {
            Some(Ok(None)) => Ok(Ok(())),
            Some(Ok(Some(limit))) => {
                trawling_alert(
                    limit.cap.pattern(),
                    lookup.principal_uri,
                    &format!("refused with {} (limit {})", limit.code(), limit.limit),
                );
                Ok(Err(limit))
            }
            Some(Err(e)) => Err(ApiError::internal(format!(
                "recording the anti-trawling lookups failed: {e}"
            ))),
            None => Err(ApiError::internal(
                "the anti-trawling lookups were not recorded",
            )),
        }
    }

    /// Keys currently held by the request limiters.
    pub fn len(&self) -> usize {
        self.by_role.values().map(|l| l.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop keys whose state is indistinguishable from a fresh one.
    pub fn cleanup(&self) {
        for limiter in self.by_role.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        metrics::gauge!("hub_rate_limit_keys").set(self.len() as f64);
    }

    /// Delete the lookups outside their windows at `now_ms`; returns how many.
    pub async fn prune_lookups(db: &Db, now_ms: i64) -> Result<u64, StoreError> {
        lookups::prune(db, windows_at(now_ms)).await
    }

    /// Run [`RateLimits::cleanup`] and prune the lookups forever on the configured interval.
    pub async fn cleanup_loop(self: Arc<Self>, db: Db) {
        let mut tick = tokio::time::interval(self.cleanup_interval);
        loop {
            tick.tick().await;
            self.cleanup();
            let now = crate::store::now_ms();
            if let Err(e) = Self::prune_lookups(&db, now).await {
                tracing::warn!(error = %e, "pruning the anti-trawling lookups failed");
            }
            if let Some(shared) = &self.shared {
                shared.forget_ended(now);
                if let Err(e) = shared.prune(&db, now).await {
                    tracing::warn!(error = %e, "pruning the shared request budget's windows failed");
                }
            }
        }
    }
}

/// What [`LookupWrite`] found: the refusal, if a cap refused (its rows rolled back), or why the
/// statements failed.
type LookupOutcome = crate::log::Outcome<Result<Option<LimitExceeded>, String>>;

/// The lookups of one verification, recorded and judged inside the access log's batch
/// transaction ([`RateLimits::note_lookup_logged`]).
struct LookupWrite {
    principal: String,
    keys: Vec<(LookupKind, String)>,
    now_ms: i64,
    caps: TrawlingCaps,
    emergency: bool,
    outcome: LookupOutcome,
}

impl crate::log::Attached for LookupWrite {
    fn write<'a>(
        &'a mut self,
        conn: crate::log::TxConn<'a>,
        _placed: &'a crate::log::Placed,
    ) -> crate::log::AttachedFuture<'a> {
        Box::pin(async move {
            let keys: Vec<(LookupKind, &str)> =
                self.keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let judged = lookups::record_in(
                conn,
                &self.principal,
                &keys,
                self.now_ms,
                windows_at(self.now_ms),
            )
            .await
            .map(|counts| judge(&self.caps, &counts, self.emergency, self.now_ms))
            .map_err(|e| e.to_string());
            // Keep the rows only when recorded and no cap refused.
            let keep = matches!(judged, Ok(None));
            self.outcome.set(judged);
            keep
        })
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
    if let Some(Caller(id)) = req.extensions().get::<Caller>() {
        let spent = match limits.check(id.role, &id.principal) {
            Err(wait) => Err(wait),
            // The deployment-wide budget, after the local one (which refuses without counting).
            Ok(()) => match &limits.shared {
                Some(shared) => shared.check(id.role, &id.uri).await,
                None => Ok(()),
            },
        };
        if let Err(wait) = spent {
            metrics::counter!("hub_rate_limited_total", "role" => id.role.code()).increment(1);
            return too_many(
                "rate_limited",
                "请求过于频繁，请稍后再试 / too many requests; retry later".into(),
                wait,
            );
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::lookups::WindowCount;

    fn limits(households: u32, people: u32, emergencies: u32) -> Arc<RateLimits> {
        RateLimits::new(&RateLimitConfig {
            caseworker: Budget {
                per_second: 1000,
                burst: 3,
            },
            households_per_hour: households,
            people_per_hour: people,
            emergency_without_letter_per_day: emergencies,
            ..RateLimitConfig::default()
        })
    }

    /// A SQLite file in a temporary directory (dropped with the directory).
    async fn sqlite(dir: &std::path::Path) -> Db {
        let url = format!("sqlite://{}", dir.join("hub.db").display());
        let store = crate::store::sqlite::SqliteStore::connect(&url, 4)
            .await
            .unwrap();
        Db::Sqlite(store.pool().clone())
    }

    fn people(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn lookup<'a>(
        cw: &'a str,
        vid: &'a str,
        household: &'a str,
        people: &'a [String],
    ) -> Lookup<'a> {
        Lookup {
            principal_uri: cw,
            verification_id: vid,
            household,
            people,
            emergency_without_letter: false,
        }
    }

    fn alerts(pattern: &str) -> f64 {
        let series = format!("hub_trawling_alerts_total{{pattern=\"{pattern}\"}}");
        crate::telemetry::prometheus()
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    const CW1: &str = "spiffe://jishijiu.jining/caseworker/mz-370811002/370811002/cw-1";
    const CW2: &str = "spiffe://jishijiu.jining/caseworker/mz-370811005/370811005/cw-1";
    const T0: i64 = 1_800_000_000_000;
    const MINUTE: i64 = 60_000;

    #[test]
    fn the_burst_is_spent_then_refused_with_a_wait() {
        let l = limits(10, 100, 10);
        for _ in 0..3 {
            assert!(l.check(Role::Caseworker, "cw-1").is_ok());
        }
        let wait = l.check(Role::Caseworker, "cw-1").unwrap_err();
        assert!(wait > Duration::ZERO);
        // Another identity has its own budget.
        assert!(l.check(Role::Caseworker, "cw-2").is_ok());
    }

    #[test]
    fn a_lookup_counts_for_exactly_its_window() {
        let w = windows_at(T0);
        // Inside while now - t < window: one hour old is out, a millisecond younger is in.
        assert_eq!(w.households, T0 - HOUR_MS);
        assert_eq!(w.people, T0 - HOUR_MS);
        assert_eq!(w.emergencies, T0 - DAY_MS);
        let inside = |t: i64, since: i64| t > since;
        assert!(!inside(T0 - HOUR_MS, w.people));
        assert!(inside(T0 - HOUR_MS + 1, w.people));
        assert!(inside(T0 - HOUR_MS, w.emergencies));
        assert!(!inside(T0 - DAY_MS, w.emergencies));
        // No overflow at the ends of time.
        assert_eq!(windows_at(i64::MIN).households, i64::MIN);
    }

    #[test]
    fn retry_after_is_when_the_oldest_leaves_its_window() {
        // The oldest lookup a minute ago frees its slot 59 minutes from now.
        assert_eq!(
            retry_after(Some(T0 - MINUTE), HOUR_MS, T0),
            Duration::from_millis((HOUR_MS - MINUTE) as u64)
        );
        assert_eq!(
            retry_after(Some(T0 - HOUR_MS + 1), HOUR_MS, T0),
            Duration::from_secs(1),
            "at least one second"
        );
        assert_eq!(
            retry_after(Some(T0 + 5 * MINUTE), HOUR_MS, T0),
            Duration::from_millis(HOUR_MS as u64),
            "a future stamp (clock skew) waits at most one window"
        );
        assert_eq!(
            retry_after(None, DAY_MS, T0),
            Duration::from_millis(DAY_MS as u64)
        );
    }

    #[test]
    fn judge_refuses_the_first_cap_crossed_and_letterless_only_when_letterless() {
        let caps = TrawlingCaps {
            households_per_hour: 2,
            people_per_hour: 5,
            emergency_without_letter_per_day: 1,
        };
        let w = |count, oldest_ms| WindowCount {
            count,
            oldest_ms: Some(oldest_ms),
        };
        let at_cap = LookupCounts {
            households: w(2, T0 - 10 * MINUTE),
            people: w(5, T0 - 20 * MINUTE),
            emergencies: w(2, T0 - HOUR_MS),
        };
        // At every cap: admitted, except a letterless emergency check (two, cap one).
        assert_eq!(judge(&caps, &at_cap, false, T0), None);
        let e = judge(&caps, &at_cap, true, T0).unwrap();
        assert_eq!((e.cap, e.limit), (Cap::EmergencyWithoutLetter, 1));
        assert_eq!(
            e.retry_after,
            Duration::from_millis((DAY_MS - HOUR_MS) as u64)
        );
        let people = LookupCounts {
            people: w(6, T0 - 20 * MINUTE),
            ..at_cap
        };
        let e = judge(&caps, &people, false, T0).unwrap();
        assert_eq!(
            (e.cap, e.code(), e.policy_id()),
            (Cap::People, "people_limit", "hub-people-limit")
        );
        assert_eq!(e.retry_after, Duration::from_millis((40 * MINUTE) as u64));
        let both = LookupCounts {
            households: w(3, T0 - 10 * MINUTE),
            ..people
        };
        assert_eq!(judge(&caps, &both, false, T0).unwrap().cap, Cap::Households);
    }

    #[tokio::test]
    async fn distinct_households_are_capped_per_hour() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(dir.path()).await;
        let before = alerts("distinct_households");
        let l = limits(3, 100, 10);
        let p = people(&["p"]);
        for (i, h) in ["h1", "h2", "h3"].into_iter().enumerate() {
            let v = format!("v{i}");
            assert_eq!(
                l.note_lookup_at(&db, &lookup(CW1, &v, h, &p), T0)
                    .await
                    .unwrap(),
                Ok(())
            );
        }
        // The same household again is fine; a fourth is refused.
        let again = l
            .note_lookup_at(&db, &lookup(CW1, "v4", "h2", &p), T0)
            .await
            .unwrap();
        assert_eq!(again, Ok(()));
        let err = l
            .note_lookup_at(&db, &lookup(CW1, "v5", "h4", &p), T0 + MINUTE)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!((err.cap, err.limit), (Cap::Households, 3));
        assert_eq!(
            err.retry_after,
            Duration::from_millis((HOUR_MS - MINUTE) as u64)
        );
        // The trawling alert for auditors: a metric (and an error-level log line) per refusal.
        assert!(alerts("distinct_households") >= before + 1.0);
        // The refused lookup left no trace.
        let c = lookups::counts(&db, CW1, windows_at(T0 + MINUTE))
            .await
            .unwrap();
        assert_eq!(c.households.count, 3);
        // Another identity (even with the same principal id) is unaffected; an hour after the
        // last lookups the window has moved on.
        assert_eq!(
            l.note_lookup_at(&db, &lookup(CW2, "v6", "h4", &p), T0)
                .await
                .unwrap(),
            Ok(())
        );
        assert_eq!(
            l.note_lookup_at(&db, &lookup(CW1, "v7", "h4", &p), T0 + HOUR_MS)
                .await
                .unwrap(),
            Ok(())
        );
    }

    #[tokio::test]
    async fn every_member_counts_as_a_person_and_the_counts_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(dir.path()).await;
        let before = alerts("distinct_people");
        let l = limits(60, 5, 10);
        let first = people(&["a", "b", "c"]);
        assert_eq!(
            l.note_lookup_at(&db, &lookup(CW1, "v1", "a", &first), T0)
                .await
                .unwrap(),
            Ok(())
        );
        // Two of the same people in another household: one new person, four in all.
        let second = people(&["d", "a", "b"]);
        assert_eq!(
            l.note_lookup_at(&db, &lookup(CW1, "v2", "d", &second), T0 + MINUTE)
                .await
                .unwrap(),
            Ok(())
        );
        drop(db);
        // A new process on the same file: still four people this hour.
        let db = sqlite(dir.path()).await;
        let l = limits(60, 5, 10);
        let third = people(&["e", "f"]);
        let err = l
            .note_lookup_at(&db, &lookup(CW1, "v3", "e", &third), T0 + 2 * MINUTE)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            (err.cap, err.code(), err.limit),
            (Cap::People, "people_limit", 5)
        );
        // "c" (looked up at T0 only) is the first to leave the window.
        assert_eq!(
            err.retry_after,
            Duration::from_millis((HOUR_MS - 2 * MINUTE) as u64)
        );
        assert!(alerts("distinct_people") >= before + 1.0);
        // One new person still fits; then the cap is full.
        let fourth = people(&["e"]);
        assert_eq!(
            l.note_lookup_at(&db, &lookup(CW1, "v4", "e", &fourth), T0 + 2 * MINUTE)
                .await
                .unwrap(),
            Ok(())
        );
        let c = lookups::counts(&db, CW1, windows_at(T0 + 2 * MINUTE))
            .await
            .unwrap();
        assert_eq!((c.households.count, c.people.count), (3, 5));
        // "a", "b" and "c" leave the window an hour after their latest lookups ("c" at T0).
        let c = lookups::counts(&db, CW1, windows_at(T0 + HOUR_MS))
            .await
            .unwrap();
        assert_eq!(c.people.count, 4);
    }

    #[tokio::test]
    async fn letterless_emergency_checks_are_capped_per_day_and_pruned_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(dir.path()).await;
        let before = alerts("emergency_without_letter");
        let l = limits(1000, 1000, 2);
        let p = people(&["p"]);
        let emergency = |vid: &'static str, h: &'static str| Lookup {
            emergency_without_letter: true,
            ..lookup(CW1, vid, h, &p)
        };
        for (i, vid) in ["v1", "v2"].into_iter().enumerate() {
            let at = T0 + i as i64 * HOUR_MS;
            assert_eq!(
                l.note_lookup_at(&db, &emergency(vid, "h"), at)
                    .await
                    .unwrap(),
                Ok(())
            );
        }
        // A third within 24 hours of the first is refused; checks with a letter are not counted.
        let at = T0 + 3 * HOUR_MS;
        let err = l
            .note_lookup_at(&db, &emergency("v3", "h"), at)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            (err.cap, err.code(), err.limit),
            (Cap::EmergencyWithoutLetter, "emergency_limit", 2)
        );
        assert_eq!(
            err.retry_after,
            Duration::from_millis((DAY_MS - 3 * HOUR_MS) as u64)
        );
        assert!(alerts("emergency_without_letter") >= before + 1.0);
        assert_eq!(
            l.note_lookup_at(&db, &lookup(CW1, "v4", "h", &p), at)
                .await
                .unwrap(),
            Ok(())
        );
        // A day after the first, one slot is free again.
        assert_eq!(
            l.note_lookup_at(&db, &emergency("v5", "h"), T0 + DAY_MS)
                .await
                .unwrap(),
            Ok(())
        );
        // Pruning keeps exactly the rows still inside their windows.
        let now = T0 + DAY_MS + 30 * MINUTE;
        let kept = lookups::counts(&db, CW1, windows_at(now)).await.unwrap();
        let pruned = RateLimits::prune_lookups(&db, now).await.unwrap();
        // Gone: the first emergency (T0); the household and the person (last seen at T0 + DAY_MS)
        // stay, as does the second emergency (T0 + 1 h).
        assert_eq!(pruned, 1);
        assert_eq!(
            lookups::counts(&db, CW1, windows_at(now)).await.unwrap(),
            kept
        );
        assert_eq!(
            (
                kept.households.count,
                kept.people.count,
                kept.emergencies.count
            ),
            (1, 1, 2)
        );
        assert_eq!(
            RateLimits::prune_lookups(&db, now + DAY_MS).await.unwrap(),
            4
        );
    }

    #[test]
    fn cleanup_forgets_idle_keys() {
        let l = limits(10, 100, 10);
        for i in 0..1000 {
            l.check(Role::Caseworker, &format!("cw-{i}")).unwrap();
        }
        assert!(l.len() >= 1000);
        // With 1000/s a single spent cell is back to fresh after 1 ms.
        std::thread::sleep(Duration::from_millis(20));
        l.cleanup();
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn config_caps_must_be_positive_and_people_at_least_households() {
        let bad = |c: RateLimitConfig| c.validate().unwrap_err().0;
        let d = RateLimitConfig::default;
        assert_eq!(d().validate(), Ok(()));
        assert_eq!(
            bad(RateLimitConfig {
                people_per_hour: 0,
                ..d()
            }),
            "rate_limits.people_per_hour"
        );
        assert_eq!(
            bad(RateLimitConfig {
                people_per_hour: 59,
                ..d()
            }),
            "rate_limits.people_per_hour"
        );
        assert_eq!(
            bad(RateLimitConfig {
                emergency_without_letter_per_day: 0,
                ..d()
            }),
            "rate_limits.emergency_without_letter_per_day"
        );
    }
}
