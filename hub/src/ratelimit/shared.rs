//! The request budget shared by every replica on PostgreSQL (issue 15 item 2).
//!
//! Governor (in process) stays the first limiter: it alone decides on SQLite, where the hub is one
//! process. On PostgreSQL each replica also counts what it admitted, per identity URI and fixed
//! window (`rate_limits.shared.window_ms`, windows start at multiples of it since the epoch), and
//! adds its counts to the table `rate_windows` in ONE statement per flush (`unnest` + `INSERT … ON
//! CONFLICT DO UPDATE SET n = n + excluded.n RETURNING`), every `rate_limits.shared.flush_ms`. The
//! statement returns the deployment-wide count of every identity flushed, so each replica learns it.
//!
//! The window budget of a role is `burst + per_second × window` (what one process's governor can
//! admit in any interval of that length), so the shared layer never refuses what a single replica
//! would have admitted, and N replicas together admit about what one would.
//!
//! Admission (no database round trip in the common case), per identity and current window, with
//! `known` the last deployment-wide count this replica learned and `pending` what it admitted since
//! (not yet reflected in `known`):
//! - `known + pending >= budget`: refused, 429 `rate_limited` with `Retry-After` until the window
//!   ends (the metric `hub_ratelimit_shared_refused_total{role}`). `known + pending` never exceeds
//!   the true count, so this never refuses early.
//! - `pending >= k`, with `k` the larger of `max_unflushed` and a sixteenth of the budget: the
//!   request waits for a flush (started at once, shared by every request waiting on this replica;
//!   `hub_ratelimit_shared_waits_total`) and is judged again. Only an identity sending more than `k`
//!   requests per flush interval to one replica pays this round trip, once per `k` requests.
//! - otherwise admitted, `pending += 1`.
//!
//! Tolerance: in one window an identity is admitted at most `budget + (replicas − 1) × k`
//! requests, whatever the timing (each other replica can have at most `k` admissions the deciding
//! replica has not learned of). In practice it is lower: about `replicas × (requests per replica in
//! one flush interval and one flush's latency)`, capped by that bound. With the defaults (10 s
//! windows, flushes every 200 ms, `max_unflushed` 8) a caseworker's budget is 30 + 5 × 10 = 80
//! requests per 10 s and three replicas admit at most 80 + 2 × 8 = 96; a department's is 200 + 100 ×
//! 10 = 1200 and three replicas admit at most 1200 + 2 × 75 = 1350.
//!
//! Known limits: windows are fixed, so across a window boundary an identity can be admitted up to a
//! budget at the end of one window and another at the start of the next (each replica's governor
//! still limits its share); a window is read on each replica's own clock, so clock skew moves
//! requests near a boundary into the neighbouring window; replicas must share `window_ms` (rows are
//! keyed by window start). When a flush fails (the database is unreachable) or takes more than
//! `5 × flush_ms` (at least a second) the counts are kept for the next flush and waiting requests
//! are admitted (fail open to the in-process budget; the metric
//! `hub_ratelimit_shared_flush_errors_total` and a warning say so) rather than refusing every caller
//! because the budget could not be counted. The cleanup task deletes ended windows. Metrics never
//! carry an identity (only the role).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schemas::Role;
use serde::Deserialize;
use tokio::sync::{Notify, watch};

use crate::ratelimit::Budget;
use crate::store::rate_windows::{self, WindowRow};
use crate::store::{Db, StoreError};

/// `[rate_limits.shared]` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedConfig {
    /// The fixed window the budget is counted in.
    #[serde(default = "default_window_ms")]
    pub window_ms: u64,
    /// How often a replica adds its counts to the database and learns the totals.
    #[serde(default = "default_flush_ms")]
    pub flush_ms: u64,
    /// Admissions of one identity a replica may make before it must learn the total (the
    /// tolerance per other replica).
    #[serde(default = "default_max_unflushed")]
    pub max_unflushed: u32,
}

fn default_window_ms() -> u64 {
    10_000
}
fn default_flush_ms() -> u64 {
    200
}
fn default_max_unflushed() -> u32 {
    8
}

impl Default for SharedConfig {
    fn default() -> Self {
        SharedConfig {
            window_ms: default_window_ms(),
            flush_ms: default_flush_ms(),
            max_unflushed: default_max_unflushed(),
        }
    }
}

impl SharedConfig {
    /// Validation for `Config::validate`: names the key at fault.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(1_000..=3_600_000).contains(&self.window_ms) {
            return Err((
                "rate_limits.shared.window_ms",
                "must be between 1000 (1 s) and 3600000 (1 h)".into(),
            ));
        }
        if self.flush_ms == 0 || self.flush_ms >= self.window_ms {
            return Err((
                "rate_limits.shared.flush_ms",
                format!(
                    "must be greater than 0 and less than window_ms ({})",
                    self.window_ms
                ),
            ));
        }
        if self.max_unflushed == 0 {
            return Err((
                "rate_limits.shared.max_unflushed",
                "must be greater than 0".into(),
            ));
        }
        Ok(())
    }
}

/// The start of the window holding `now_ms` (windows start at multiples of `window_ms`).
pub(crate) fn window_start(now_ms: i64, window_ms: i64) -> i64 {
    now_ms.div_euclid(window_ms) * window_ms
}

/// How long until the window holding `now_ms` ends: at least one second (`Retry-After` is in whole
/// seconds), at most the window.
pub(crate) fn until_window_end(now_ms: i64, window_ms: i64) -> Duration {
    let left = window_start(now_ms, window_ms) + window_ms - now_ms;
    Duration::from_millis(left.clamp(1000, window_ms.max(1000)) as u64)
}

/// A role's budget per window: `burst + per_second × window` (what one governor admits at most in
/// any interval of that length).
pub(crate) fn window_budget(b: Budget, window_ms: u64) -> u64 {
    u64::from(b.burst).saturating_add(u64::from(b.per_second).saturating_mul(window_ms) / 1000)
}

/// A replica may admit this share of a window budget unflushed (when it is more than
/// `max_unflushed`): large budgets (departments, benchmarks) then rarely wait for a flush, and the
/// tolerance stays a small fraction of the budget.
pub(crate) const UNFLUSHED_SHARE: u64 = 16;

/// The admissions a replica may make unflushed: the larger of `max_unflushed` and
/// `budget / UNFLUSHED_SHARE`.
pub(crate) fn max_unflushed(budget: u64, max_unflushed: u32) -> u32 {
    u32::try_from(budget / UNFLUSHED_SHARE)
        .unwrap_or(u32::MAX)
        .max(max_unflushed)
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Admit,
    /// Wait for a flush, then judge again.
    Flush,
    /// Refused until the window ends.
    Refuse,
}

/// Judge a request from what this replica knows: `known` the last learned deployment-wide count of
/// this window, `pending` this replica's admissions not reflected in it.
pub(crate) fn judge(known: u64, pending: u32, budget: u64, max_unflushed: u32) -> Verdict {
    if known.saturating_add(u64::from(pending)) >= budget {
        Verdict::Refuse
    } else if pending >= max_unflushed {
        Verdict::Flush
    } else {
        Verdict::Admit
    }
}

#[derive(Default)]
struct State {
    /// Admitted here and not yet reflected in `known`, per (identity URI, window start).
    pending: HashMap<(String, i64), u32>,
    /// The last deployment-wide count learned, per identity URI: (window start, count).
    known: HashMap<String, (i64, u64)>,
}

/// The outcome of a flush, as waiting requests see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flushed {
    generation: u64,
    ok: bool,
}

/// One replica's part of the shared budget.
pub struct SharedBudget {
    cfg: SharedConfig,
    /// Per role: the window budget and the admissions a replica may make unflushed.
    budgets: HashMap<Role, (u64, u32)>,
    state: Mutex<State>,
    wake: Notify,
    flushed: watch::Sender<Flushed>,
}

impl SharedBudget {
    pub fn new(cfg: SharedConfig, budgets: &HashMap<Role, Budget>) -> Arc<SharedBudget> {
        Arc::new(SharedBudget {
            cfg,
            budgets: budgets
                .iter()
                .map(|(role, b)| {
                    let budget = window_budget(*b, cfg.window_ms);
                    (*role, (budget, max_unflushed(budget, cfg.max_unflushed)))
                })
                .collect(),
            state: Mutex::default(),
            wake: Notify::new(),
            flushed: watch::Sender::new(Flushed {
                generation: 0,
                ok: true,
            }),
        })
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.cfg.window_ms).unwrap_or(i64::MAX)
    }

    /// The budget per window of `role`.
    pub fn budget(&self, role: Role) -> u64 {
        self.budgets.get(&role).map_or(0, |b| b.0)
    }

    /// The admissions of one identity of `role` a replica may make before it must learn the total.
    pub fn unflushed_limit(&self, role: Role) -> u32 {
        self.budgets.get(&role).map_or(1, |b| b.1)
    }

    /// Judge and, when admitted, count one request of `identity` at `now_ms`. `force` admits
    /// whatever the unflushed count (after a failed flush).
    fn try_admit(&self, role: Role, identity: &str, now_ms: i64, force: bool) -> Verdict {
        let start = window_start(now_ms, self.window_ms());
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let known = match st.known.get(identity) {
            Some((w, n)) if *w == start => *n,
            _ => 0,
        };
        let key = (identity.to_owned(), start);
        let pending = st.pending.get(&key).copied().unwrap_or(0);
        let verdict = match judge(
            known,
            pending,
            self.budget(role),
            self.unflushed_limit(role),
        ) {
            Verdict::Flush if force => Verdict::Admit,
            v => v,
        };
        if verdict == Verdict::Admit {
            *st.pending.entry(key).or_insert(0) += 1;
        }
        verdict
    }

    /// Spend one request of `identity`'s shared budget: `Err(wait)` (until the window ends) when
    /// the deployment has admitted its budget in this window.
    pub async fn check(&self, role: Role, identity: &str) -> Result<(), Duration> {
        // While flushes fail (the database is unreachable) nobody waits for one.
        let mut force = !self.flushed.borrow().ok;
        loop {
            // Subscribe before judging, so a flush finishing in between is not missed.
            let mut rx = self.flushed.subscribe();
            let now = crate::store::now_ms();
            match self.try_admit(role, identity, now, force) {
                Verdict::Admit => return Ok(()),
                Verdict::Refuse => {
                    metrics::counter!("hub_ratelimit_shared_refused_total", "role" => role.code())
                        .increment(1);
                    return Err(until_window_end(now, self.window_ms()));
                }
                Verdict::Flush => {
                    metrics::counter!("hub_ratelimit_shared_waits_total").increment(1);
                    self.wake.notify_one();
                    // A slow database delays a request by a bounded wait at most; then the
                    // in-process budget decides for it.
                    let bound =
                        Duration::from_millis(self.cfg.flush_ms.saturating_mul(5).max(1000));
                    force = match tokio::time::timeout(bound, rx.changed()).await {
                        Ok(Ok(())) => !rx.borrow_and_update().ok,
                        Ok(Err(_)) | Err(_) => true,
                    };
                }
            }
        }
    }

    /// Add this replica's pending counts to the database and learn the totals. On failure the
    /// counts stay pending for the next flush. Returns how many rows were flushed.
    pub async fn flush(&self, db: &Db) -> Result<usize, StoreError> {
        let batch = self.batch();
        if batch.is_empty() {
            return Ok(0);
        }
        let started = Instant::now();
        let totals = rate_windows::add(db, &batch).await?;
        metrics::histogram!("hub_ratelimit_shared_flush_seconds")
            .record(started.elapsed().as_secs_f64());
        self.learn(&batch, totals, crate::store::now_ms());
        Ok(batch.len())
    }

    /// What a flush sends: every pending count.
    fn batch(&self) -> Vec<WindowRow> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.pending
            .iter()
            .map(|((id, w), n)| (id.clone(), *w, i64::from(*n)))
            .collect()
    }

    /// After `batch` was added: take it off the pending counts (admissions made while the flush was
    /// in flight stay pending) and keep the totals of current windows.
    fn learn(&self, batch: &[WindowRow], totals: Vec<WindowRow>, now_ms: i64) {
        let current = window_start(now_ms, self.window_ms());
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (id, w, n) in batch {
            let key = (id.clone(), *w);
            let left = st.pending.get(&key).copied().unwrap_or(0);
            let flushed = u32::try_from(*n).unwrap_or(u32::MAX);
            if left <= flushed {
                st.pending.remove(&key);
            } else {
                st.pending.insert(key, left - flushed);
            }
        }
        for (id, w, n) in totals {
            if w < current {
                continue;
            }
            let n = u64::try_from(n).unwrap_or(0);
            match st.known.get_mut(&id) {
                // A later window is already known.
                Some(k) if k.0 > w => {}
                // Totals only grow within a window; a flush that overtook another is no news.
                Some(k) if k.0 == w => k.1 = k.1.max(n),
                Some(k) => *k = (w, n),
                None => {
                    st.known.insert(id, (w, n));
                }
            }
        }
    }

    /// Flush on the configured interval, or at once when a request waits, forever.
    pub async fn flush_loop(self: Arc<Self>, db: Db) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.cfg.flush_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut generation = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.wake.notified() => {}
            }
            let ok = match self.flush(&db).await {
                Ok(_) => true,
                Err(e) => {
                    metrics::counter!("hub_ratelimit_shared_flush_errors_total").increment(1);
                    tracing::warn!(error = %e, "flushing the shared request budget failed; the in-process budget decides until a flush succeeds");
                    false
                }
            };
            generation += 1;
            self.flushed.send_replace(Flushed { generation, ok });
        }
    }

    /// Forget what is known of ended windows (the cleanup task), and export how many identities
    /// this replica tracks.
    pub fn forget_ended(&self, now_ms: i64) {
        let current = window_start(now_ms, self.window_ms());
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.known.retain(|_, (w, _)| *w >= current);
        st.known.shrink_to_fit();
        metrics::gauge!("hub_ratelimit_shared_identities").set(st.known.len() as f64);
    }

    /// Delete the windows that ended before `now_ms` from the database; returns how many.
    pub async fn prune(&self, db: &Db, now_ms: i64) -> Result<u64, StoreError> {
        rate_windows::prune(db, window_start(now_ms, self.window_ms())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = 10_000;
    const T0: i64 = 1_800_000_003_000; // 3 s into a 10 s window

    fn budgets(per_second: u32, burst: u32) -> HashMap<Role, Budget> {
        [(Role::Caseworker, Budget { per_second, burst })]
            .into_iter()
            .collect()
    }

    #[test]
    fn windows_start_at_multiples_and_retry_after_is_the_rest_of_the_window() {
        assert_eq!(window_start(T0, W), 1_800_000_000_000);
        assert_eq!(window_start(1_800_000_000_000, W), 1_800_000_000_000);
        assert_eq!(window_start(1_799_999_999_999, W), 1_799_999_990_000);
        // Before the epoch too (a clock gone wrong must not panic or split windows).
        assert_eq!(window_start(-1, W), -W);
        assert_eq!(until_window_end(T0, W), Duration::from_millis(7_000));
        assert_eq!(
            until_window_end(1_800_000_009_999, W),
            Duration::from_secs(1),
            "at least a second"
        );
        assert_eq!(
            until_window_end(1_800_000_000_000, W),
            Duration::from_millis(10_000)
        );
    }

    #[test]
    fn the_window_budget_is_what_one_governor_admits_in_a_window() {
        let b = Budget {
            per_second: 5,
            burst: 30,
        };
        assert_eq!(window_budget(b, 10_000), 80);
        assert_eq!(window_budget(b, 1_500), 37, "rounded down");
        let huge = Budget {
            per_second: u32::MAX,
            burst: u32::MAX,
        };
        assert!(window_budget(huge, 3_600_000) > u64::from(u32::MAX));
    }

    #[test]
    fn large_budgets_may_run_further_ahead_of_a_flush() {
        assert_eq!(max_unflushed(80, 8), 8);
        assert_eq!(max_unflushed(1200, 8), 75);
        assert_eq!(max_unflushed(0, 1), 1);
        assert_eq!(max_unflushed(u64::MAX, 8), u32::MAX);
    }

    #[test]
    fn judge_refuses_at_the_budget_and_flushes_at_max_unflushed() {
        assert_eq!(judge(0, 0, 10, 4), Verdict::Admit);
        assert_eq!(judge(6, 3, 10, 4), Verdict::Admit);
        assert_eq!(
            judge(6, 4, 10, 4),
            Verdict::Refuse,
            "known + pending = budget"
        );
        assert_eq!(judge(2, 4, 10, 4), Verdict::Flush);
        assert_eq!(judge(12, 0, 10, 4), Verdict::Refuse);
        assert_eq!(judge(u64::MAX, u32::MAX, 10, 4), Verdict::Refuse);
    }

    #[test]
    fn config_keys_are_checked() {
        let d = SharedConfig::default();
        assert_eq!(d.validate(), Ok(()));
        let bad = |c: SharedConfig| c.validate().unwrap_err().0;
        assert_eq!(
            bad(SharedConfig {
                window_ms: 999,
                ..d
            }),
            "rate_limits.shared.window_ms"
        );
        assert_eq!(
            bad(SharedConfig {
                flush_ms: 10_000,
                ..d
            }),
            "rate_limits.shared.flush_ms"
        );
        assert_eq!(
            bad(SharedConfig {
                max_unflushed: 0,
                ..d
            }),
            "rate_limits.shared.max_unflushed"
        );
    }

    async fn sqlite(dir: &std::path::Path) -> Db {
        let url = format!("sqlite://{}", dir.join("hub.db").display());
        let store = crate::store::sqlite::SqliteStore::connect(&url, 4)
            .await
            .unwrap();
        Db::Sqlite(store.pool().clone())
    }

    /// Two "replicas" on one database file, driven by hand: a replica admits at most
    /// `max_unflushed` it has not flushed, learns the others' admissions when it flushes, and the
    /// total in a window never exceeds `budget + (replicas − 1) × max_unflushed`.
    #[tokio::test]
    async fn two_replicas_learn_each_others_counts_and_stay_within_the_tolerance() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(dir.path()).await;
        let cfg = SharedConfig {
            window_ms: W as u64,
            flush_ms: 200,
            max_unflushed: 3,
        };
        // Budget per window: 10 + 1 × 10 = 20.
        let a = SharedBudget::new(cfg, &budgets(1, 10));
        let b = SharedBudget::new(cfg, &budgets(1, 10));
        assert_eq!(a.budget(Role::Caseworker), 20);
        let id = "spiffe://jishijiu.jining/caseworker/mz-370811002/370811002/cw-1";
        let other = "spiffe://jishijiu.jining/caseworker/mz-370811002/370811002/cw-2";
        let cw = Role::Caseworker;
        let mut admitted = 0;
        // Alternate between the replicas; each flushes whenever it is told to wait.
        for i in 0..100 {
            let r = if i % 2 == 0 { &a } else { &b };
            loop {
                match r.try_admit(cw, id, T0, false) {
                    Verdict::Admit => admitted += 1,
                    Verdict::Flush => {
                        r.flush(&db).await.unwrap();
                        continue;
                    }
                    Verdict::Refuse => {}
                }
                break;
            }
        }
        assert!(admitted >= 20, "never refused below the budget: {admitted}");
        assert!(admitted <= 20 + 3, "budget + (2 − 1) × 3: {admitted}");
        a.flush(&db).await.unwrap();
        b.flush(&db).await.unwrap();
        let start = window_start(T0, W);
        assert_eq!(
            rate_windows::total(&db, id, start).await.unwrap(),
            admitted,
            "every admission is counted once"
        );
        // Both replicas now refuse until the window ends; another identity is unaffected.
        assert_eq!(a.try_admit(cw, id, T0, false), Verdict::Refuse);
        assert_eq!(b.try_admit(cw, id, T0, false), Verdict::Refuse);
        assert_eq!(b.try_admit(cw, other, T0, false), Verdict::Admit);
        // The next window starts afresh.
        assert_eq!(a.try_admit(cw, id, T0 + W, false), Verdict::Admit);
        // Pruning deletes the ended window only.
        a.flush(&db).await.unwrap();
        assert_eq!(a.prune(&db, T0 + W).await.unwrap(), 1);
        assert_eq!(rate_windows::total(&db, id, start + W).await.unwrap(), 1);
        a.forget_ended(T0 + W);
        assert_eq!(a.try_admit(cw, id, T0 + W, false), Verdict::Admit);
    }

    /// Admissions made while a flush is in flight stay pending and are flushed next time.
    #[tokio::test]
    async fn admissions_during_a_flush_are_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(dir.path()).await;
        let cfg = SharedConfig {
            window_ms: W as u64,
            flush_ms: 200,
            max_unflushed: 100,
        };
        let a = SharedBudget::new(cfg, &budgets(1, 1000));
        let id = "spiffe://x/caseworker/o/370811002/cw-1";
        let cw = Role::Caseworker;
        for _ in 0..5 {
            assert_eq!(a.try_admit(cw, id, T0, false), Verdict::Admit);
        }
        // A flush reads its batch, then two more are admitted before its answer arrives.
        let batch = a.batch();
        assert_eq!(a.try_admit(cw, id, T0, false), Verdict::Admit);
        assert_eq!(a.try_admit(cw, id, T0, false), Verdict::Admit);
        let totals = rate_windows::add(&db, &batch).await.unwrap();
        assert_eq!(totals, vec![(id.to_owned(), window_start(T0, W), 5)]);
        a.learn(&batch, totals, T0);
        assert_eq!(a.batch(), vec![(id.to_owned(), window_start(T0, W), 2)]);
        a.flush(&db).await.unwrap();
        assert_eq!(
            rate_windows::total(&db, id, window_start(T0, W))
                .await
                .unwrap(),
            7
        );
        assert!(a.batch().is_empty());
        // A stale answer (a smaller total of the same window) does not lower what is known.
        a.learn(&[], vec![(id.to_owned(), window_start(T0, W), 3)], T0);
        assert_eq!(a.state.lock().unwrap().known[id], (window_start(T0, W), 7));
    }

    /// A waiting request is released by a flush started at once, not at the next tick (a minute
    /// away here).
    #[tokio::test]
    async fn a_request_over_max_unflushed_waits_for_a_flush_and_is_admitted() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(dir.path()).await;
        const MINUTE: i64 = 60_000;
        let cfg = SharedConfig {
            window_ms: MINUTE as u64,
            flush_ms: 59_000,
            max_unflushed: 2,
        };
        // Budget 20 + 60 = 80 per minute: 5 unflushed.
        let a = SharedBudget::new(cfg, &budgets(1, 20));
        assert_eq!(a.unflushed_limit(Role::Caseworker), 5);
        let id = "spiffe://x/caseworker/o/370811002/cw-1";
        let looping = tokio::spawn(a.clone().flush_loop(db.clone()));
        let admitted = tokio::time::timeout(Duration::from_secs(20), async {
            for _ in 0..12 {
                a.check(Role::Caseworker, id).await.unwrap();
            }
        })
        .await;
        assert!(admitted.is_ok(), "the waiting requests were not released");
        // Everything but the last unflushed admissions is in the database (the window may have
        // turned meanwhile: both windows are summed).
        let start = window_start(crate::store::now_ms(), MINUTE);
        let total = rate_windows::total(&db, id, start).await.unwrap()
            + rate_windows::total(&db, id, start - MINUTE).await.unwrap();
        assert!((7..=12).contains(&total), "{total}");
        looping.abort();
    }
}
