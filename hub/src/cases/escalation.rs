//! 超期督办: the escalation scan (issue 11 item 5) and the stored nearest deadline that makes it
//! cheap.
//!
//! **The stored deadline.** Every filing and every move writes, in the same transaction, the
//! case's nearest open deadline (`cases.next_due_ms`, `next_due_kind`, `due_provisional`) and
//! `next_check_ms`: the next instant at which something about the case must be noticed (an open
//! clock entering `due_soon`, or passing its deadline). Both come from [`super::clocks`]
//! ([`Due::of`]); both are indexed. So the scan is one indexed query (`next_check_ms <= now`) that
//! touches only the cases with something to notice, however many cases are open, and
//! `GET /v1/cases?overdue=true` is `next_due_ms < now` in SQL.
//!
//! **The scan** ([`scan`]), run by the lease holder every `[escalation] interval_secs`
//! ([`crate::notify::worker`]): for each case due a check it recomputes the clocks from the
//! timeline and, in one transaction that is written only at the case version it read:
//! - an open clock past its deadline → one `escalations` row per (case, clock kind) (a re-scan
//!   finds the row and adds nothing) and a `deadline_missed` notification with it;
//! - an open clock in `due_soon` → one `deadline_near` notification (deduplicated per case,
//!   clock and deadline);
//! - the case's stored deadline columns, with `next_check_ms` moved to the next threshold.
//!
//! A move that meets a clock resolves its escalation (`resolved_ms`) in the move's transaction.
//! A move keeps a `next_check_ms` that is already due, so a threshold passed before the move is
//! still noticed by the next scan.
//!
//! **Provisional deadlines** (a count reaching into a year without a calendar file) are stored as
//! computed Monday–Friday with `due_provisional = 1`. The case's own read recomputes them on
//! every request; the stored columns are refreshed by the scan: on its first run in a process
//! and whenever the set of calendar years loaded changes (a calendar file added and the policies
//! reloaded), it sets `next_check_ms = 0` on every provisional row ([`recheck_provisional`]), so
//! the next pass recomputes them on the new calendar.
//!
//! **Overdue referral slips** (转办单) go to the same queue. A slip without feedback carries its own
//! `next_check_ms` (`0012_slip_escalation.sql`): first the instant it enters the last quarter of
//! its period, then one past its due time; feedback clears it. After the cases, the scan reads
//! the slips due a check (a partial index holds only those still to be noticed): in the last
//! quarter → one `deadline_near`; past due → one `escalations` row with
//! `clock = 'slip:<slip id>'` and `slip_id` set (the case's tier, the township the case was with
//! when the slip was issued) and one `deadline_missed`, and nothing is left to notice. The
//! feedback's transaction resolves the escalation ([`super::slips_store::apply_slip_move`]).
//!
//! **Batches.** Both passes read and write [`BATCH`] rows per transaction (the events of a
//! batch's cases in one query) and renew the lease between batches ([`scan_with`]): a catch-up
//! over tens of thousands of due cases (a first start, a long outage) never holds SQLite's write
//! lock for more than one batch, another replica cannot take the lease over a long pass, and what
//! a crashed scan committed stays done (those rows' `next_check_ms` has moved on).

use crate::store::BeginWrite as _;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::clocks::{self, Clock, ClockKind, ClockStatus, Timeline};
use crate::notify::{self, Notice, NotificationKind};
use crate::store::{Db, StoreError, on_db};
use schemas::Urgency;

/// RFC 3339 in Beijing time (+08:00) of unix ms.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(time::macros::offset!(+8))
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn due_ms(c: &Clock) -> Option<i64> {
    OffsetDateTime::parse(&c.due_at, &Rfc3339).ok().map(to_ms)
}

pub fn kind_code(k: ClockKind) -> &'static str {
    match k {
        ClockKind::FirstHelp => "first_help",
        ClockKind::Materials => "materials",
        ClockKind::InitialOpinion => "initial_opinion",
        ClockKind::Decision => "decision",
    }
}

/// The stored deadline columns of a case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Due {
    pub next_due_ms: Option<i64>,
    pub next_due_kind: Option<String>,
    pub provisional: bool,
    pub next_check_ms: Option<i64>,
}

/// A clock with its deadline and the instant it enters `due_soon`, as unix ms.
struct Timed<'a> {
    clock: &'a Clock,
    due_ms: i64,
    soon_ms: i64,
}

/// The instants of the open clocks. A clock enters `due_soon` when less than a quarter of its
/// period is left (the rule of [`clocks`]); the period starts at filing (first help), at
/// acceptance (materials, decision) or at the materials deadline (initial opinion).
fn timed<'a>(cs: &'a [Clock], t: &Timeline) -> Vec<Timed<'a>> {
    let materials_due = cs
        .iter()
        .find(|c| c.kind == ClockKind::Materials)
        .and_then(due_ms);
    cs.iter()
        .filter(|c| c.open())
        .filter_map(|c| {
            let due = due_ms(c)?;
            let start = match c.kind {
                ClockKind::FirstHelp => t.filed_ms,
                ClockKind::Materials | ClockKind::Decision => t.accepted_ms?,
                ClockKind::InitialOpinion => materials_due?,
            };
            Some(Timed {
                clock: c,
                due_ms: due,
                soon_ms: due - (due - start) / 4,
            })
        })
        .collect()
}

impl Due {
    /// The columns for clocks `cs` of timeline `t`, evaluated at `now_ms`.
    pub fn of(cs: &[Clock], t: &Timeline, now_ms: i64) -> Due {
        let open = timed(cs, t);
        let nearest = open.iter().min_by_key(|c| c.due_ms);
        let next_check_ms = open
            .iter()
            .filter_map(|c| {
                if now_ms < c.soon_ms {
                    Some(c.soon_ms)
                } else if now_ms <= c.due_ms {
                    // One past the deadline: the clock is overdue then.
                    Some(c.due_ms + 1)
                } else {
                    None
                }
            })
            .min();
        Due {
            next_due_ms: nearest.map(|c| c.due_ms),
            next_due_kind: nearest.map(|c| kind_code(c.clock.kind).to_owned()),
            provisional: open.iter().any(|c| c.clock.provisional),
            next_check_ms,
        }
    }
}

/// Clocks and stored columns of a case at `now`.
pub fn case_due(
    tier: Urgency,
    t: &Timeline,
    calendar: &policies::WorkingCalendar,
    periods: &policies::CasePeriods,
    now: OffsetDateTime,
) -> (Vec<Clock>, Due) {
    let cs = clocks::clocks(tier, t, calendar, periods, now);
    let due = Due::of(&cs, t, to_ms(now));
    (cs, due)
}

/// The kinds of the clocks that are met (their escalations are resolved).
pub fn met_kinds(cs: &[Clock]) -> Vec<String> {
    cs.iter()
        .filter(|c| c.status == ClockStatus::Met)
        .map(|c| kind_code(c.kind).to_owned())
        .collect()
}

/// `first 6 digits` of a township: its county.
pub fn county_of(township: &str) -> &str {
    township.get(..6).unwrap_or(township)
}

/// Write `due` on case `id` inside a transaction. A `next_check_ms` already due is kept (the scan
/// has not noticed it yet).
pub(crate) const SET_DUE_SQL: &str = "UPDATE cases SET next_due_ms = $1, next_due_kind = $2, due_provisional = $3, \
     next_check_ms = CASE WHEN next_check_ms IS NOT NULL AND next_check_ms <= $4 THEN next_check_ms ELSE $5 END \
     WHERE id = $6";

/// Resolve the open escalations of `case_id` whose clock kind is in `kinds`.
pub(crate) const RESOLVE_SQL: &str = "UPDATE escalations SET resolved_ms = $1 WHERE case_id = $2 AND clock = $3 AND resolved_ms IS NULL";

/// What one scan did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanReport {
    /// Cases due a check that were recomputed.
    pub checked: u64,
    /// Slips without feedback due a check (entering their last quarter, or past due).
    pub slips_checked: u64,
    /// New escalations, of case clocks and slips (each with a `deadline_missed` notification).
    pub escalated: u64,
    /// Of those, slips (转办单超期).
    pub slips_escalated: u64,
    /// New `deadline_near` notifications.
    pub near: u64,
    /// Transactions written (one per batch).
    pub batches: u64,
    /// The longest batch's write transaction (begin to commit), in microseconds: about how long
    /// the scan held SQLite's write lock at a time.
    pub longest_batch_us: u64,
    /// The lease was lost between two batches: the scan stopped there (the new holder goes on).
    pub lease_lost: bool,
}

impl ScanReport {
    fn batch_done(&mut self, started: std::time::Instant) {
        self.batches += 1;
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.longest_batch_us = self.longest_batch_us.max(us);
    }
}

/// How a scan runs: the batch size, and the lease it renews between batches.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Cases (or slips) read and written per transaction.
    pub batch: usize,
    /// `(holder, ttl_ms)`: renew [`crate::notify::lease::ESCALATION_LEASE`] for `holder` after
    /// every batch and stop if it is lost. `None`: no lease (tests, benchmarks).
    pub lease: Option<(String, i64)>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            batch: BATCH,
            lease: None,
        }
    }
}

/// Cases (or slips) per batch: one transaction each, so a catch-up over tens of thousands of
/// due cases never holds SQLite's write lock for long, and what a crashed scan committed stays
/// done (the next scan starts where it stopped: `next_check_ms` has moved on).
pub const BATCH: usize = 500;

/// id, tier, created_ms, township, version, next_check_ms as read.
type CaseKey = (String, String, i64, String, i64, i64);

/// Rows marked for recomputation because their deadlines are provisional.
pub async fn recheck_provisional(db: &Db) -> Result<u64, StoreError> {
    Ok(on_db!(db, p, _DB => {
        sqlx::query("UPDATE cases SET next_check_ms = 0 WHERE due_provisional = 1 AND next_due_ms IS NOT NULL")
            .execute(p)
            .await?
            .rows_affected()
    }))
}

/// One escalation scan at `now` on `calendar`, in batches of [`BATCH`], without a lease (see
/// the module doc and [`scan_with`]).
pub async fn scan(
    db: &Db,
    calendar: &policies::WorkingCalendar,
    periods: &policies::CasePeriods,
    now: OffsetDateTime,
) -> Result<ScanReport, StoreError> {
    scan_with(db, calendar, periods, now, &ScanOptions::default()).await
}

/// One escalation scan: the cases due a check, then the slips due a check, each in batches of
/// `opts.batch` rows per transaction, renewing the lease between batches.
pub async fn scan_with(
    db: &Db,
    calendar: &policies::WorkingCalendar,
    periods: &policies::CasePeriods,
    now: OffsetDateTime,
    opts: &ScanOptions,
) -> Result<ScanReport, StoreError> {
    let now_ms = to_ms(now);
    let batch = opts.batch.max(1);
    let mut report = ScanReport::default();
    let mut skipped: std::collections::HashSet<String> = Default::default();
    loop {
        let rows: Vec<CaseKey> = on_db!(db, p, _DB => {
            sqlx::query_as(
                "SELECT id, tier, created_ms, township, version, next_check_ms FROM cases \
                 WHERE next_check_ms IS NOT NULL AND next_check_ms <= $1 ORDER BY next_check_ms, id LIMIT $2",
            )
            .bind(now_ms)
            .bind((batch + skipped.len()) as i64)
            .fetch_all(p)
            .await?
        });
        let fresh: Vec<CaseKey> = rows
            .into_iter()
            .filter(|r| !skipped.contains(&r.0))
            .collect();
        if fresh.is_empty() {
            break;
        }
        let planned = plan_cases(db, calendar, periods, now, fresh).await?;
        let started = std::time::Instant::now();
        // Moved or re-marked meanwhile (the write is conditional on the version and the check
        // time read): the row is still due; look again next scan.
        for id in write_cases(db, &planned, now_ms, &mut report).await? {
            skipped.insert(id);
        }
        report.batch_done(started);
        if !renew(db, opts).await? {
            report.lease_lost = true;
            return Ok(report);
        }
    }
    let mut skipped: std::collections::HashSet<String> = Default::default();
    loop {
        let rows: Vec<SlipKey> = on_db!(db, p, _DB => {
            sqlx::query_as(
                "SELECT s.id, s.case_id, s.kind, s.to_department, s.to_township, s.region, s.issued_ms, \
                        s.due_ms, s.next_check_ms, c.tier \
                 FROM slips s JOIN cases c ON c.id = s.case_id \
                 WHERE s.next_check_ms IS NOT NULL AND s.next_check_ms <= $1 \
                 ORDER BY s.next_check_ms, s.id LIMIT $2",
            )
            .bind(now_ms)
            .bind((batch + skipped.len()) as i64)
            .fetch_all(p)
            .await?
        });
        let fresh: Vec<SlipKey> = rows
            .into_iter()
            .filter(|r| !skipped.contains(&r.id))
            .collect();
        if fresh.is_empty() {
            break;
        }
        let started = std::time::Instant::now();
        for id in write_slips(db, &fresh, now_ms, &mut report).await? {
            skipped.insert(id);
        }
        report.batch_done(started);
        if !renew(db, opts).await? {
            report.lease_lost = true;
            return Ok(report);
        }
    }
    Ok(report)
}

/// Renew the scan's lease, if it has one; `false` when it is lost.
async fn renew(db: &Db, opts: &ScanOptions) -> Result<bool, StoreError> {
    match &opts.lease {
        None => Ok(true),
        Some((holder, ttl_ms)) => {
            notify::lease::acquire(
                db,
                notify::lease::ESCALATION_LEASE,
                holder,
                crate::store::now_ms(),
                *ttl_ms,
            )
            .await
        }
    }
}

/// What the scan writes for one case: computed outside the transaction.
struct Planned {
    key: CaseKey,
    due: Due,
    /// Overdue clocks: (kind, deadline).
    missed: Vec<(&'static str, i64)>,
    /// Clocks in `due_soon`: (kind, deadline).
    near: Vec<(&'static str, i64)>,
}

/// Recompute the clocks of `cases` from their timelines (one query for the batch's events).
async fn plan_cases(
    db: &Db,
    calendar: &policies::WorkingCalendar,
    periods: &policies::CasePeriods,
    now: OffsetDateTime,
    cases: Vec<CaseKey>,
) -> Result<Vec<Planned>, StoreError> {
    // The ids are UUIDs read from the table, bound one by one; the placeholders are ours.
    let marks: Vec<String> = (1..=cases.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT case_id, action, at_ms FROM case_events WHERE case_id IN ({}) ORDER BY case_id, seq",
        marks.join(", ")
    );
    let events: Vec<(String, String, i64)> = on_db!(db, p, _DB => {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for c in &cases {
            q = q.bind(&c.0);
        }
        q.fetch_all(p).await?
    });
    let mut by_case: std::collections::HashMap<&str, Vec<(&str, i64)>> = Default::default();
    for (case_id, action, at) in &events {
        by_case
            .entry(case_id.as_str())
            .or_default()
            .push((action.as_str(), *at));
    }
    let mut out = Vec::with_capacity(cases.len());
    for key in &cases {
        let t = Timeline::from_events(
            key.2,
            by_case.get(key.0.as_str()).into_iter().flatten().copied(),
        );
        let tier: Urgency = serde_json::from_value(serde_json::Value::String(key.1.clone()))
            .unwrap_or(Urgency::Normal);
        let (cs, due) = case_due(tier, &t, calendar, periods, now);
        let (mut missed, mut near) = (Vec::new(), Vec::new());
        for c in timed(&cs, &t) {
            match c.clock.status {
                ClockStatus::Overdue => missed.push((kind_code(c.clock.kind), c.due_ms)),
                ClockStatus::DueSoon => near.push((kind_code(c.clock.kind), c.due_ms)),
                _ => {}
            }
        }
        out.push(Planned {
            key: key.clone(),
            due,
            missed,
            near,
        });
    }
    Ok(out)
}

/// Write one batch of planned cases in one transaction; returns the ids that changed since they
/// were read (nothing written for them).
async fn write_cases(
    db: &Db,
    planned: &[Planned],
    now_ms: i64,
    report: &mut ScanReport,
) -> Result<Vec<String>, StoreError> {
    let mut changed = Vec::new();
    let mut done: Vec<(&str, &str, u64, u64)> = Vec::new();
    on_db!(db, p, _DB => {
        let mut tx = p.begin_write().await?;
        for pl in planned {
            let (id, tier, _, township, version, checked_at) = &pl.key;
            let n = sqlx::query("UPDATE cases SET next_due_ms = $1, next_due_kind = $2, due_provisional = $3, next_check_ms = $4 WHERE id = $5 AND version = $6 AND next_check_ms = $7")
                .bind(pl.due.next_due_ms)
                .bind(&pl.due.next_due_kind)
                .bind(i64::from(pl.due.provisional))
                .bind(pl.due.next_check_ms)
                .bind(id)
                .bind(version)
                .bind(checked_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n != 1 {
                changed.push(id.clone());
                continue;
            }
            let county = county_of(township);
            let (mut escalated, mut near) = (0u64, 0u64);
            for (kind, due_ms) in &pl.missed {
                let esc_id = uuid::Uuid::now_v7().to_string();
                let inserted = sqlx::query("INSERT INTO escalations (id, case_id, clock, tier, township, county, due_ms, escalated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING")
                    .bind(&esc_id)
                    .bind(id)
                    .bind(*kind)
                    .bind(tier)
                    .bind(township)
                    .bind(county)
                    .bind(due_ms)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if inserted == 1 {
                    escalated += 1;
                    let n = Notice {
                        kind: NotificationKind::DeadlineMissed,
                        case_id: Some(id.clone()),
                        dedup_key: Some(format!("deadline_missed:{id}:{kind}")),
                        payload: json!({
                            "case_id": id,
                            "escalation_id": esc_id,
                            "clock": kind,
                            "tier": tier,
                            "township": township,
                            "county": county,
                            "due_at": rfc3339(*due_ms),
                            "escalated_at": rfc3339(now_ms),
                        }),
                    };
                    notify::enqueue((&mut *tx).into(), &n, now_ms).await?;
                }
            }
            for (kind, due_ms) in &pl.near {
                let n = Notice {
                    kind: NotificationKind::DeadlineNear,
                    case_id: Some(id.clone()),
                    dedup_key: Some(format!("deadline_near:{id}:{kind}:{due_ms}")),
                    payload: json!({
                        "case_id": id,
                        "clock": kind,
                        "tier": tier,
                        "township": township,
                        "county": county,
                        "due_at": rfc3339(*due_ms),
                    }),
                };
                if notify::enqueue((&mut *tx).into(), &n, now_ms).await? {
                    near += 1;
                }
            }
            done.push((id.as_str(), township.as_str(), escalated, near));
        }
        tx.commit().await?;
    });
    for (id, township, escalated, near) in done {
        report.checked += 1;
        report.escalated += escalated;
        report.near += near;
        if escalated > 0 {
            metrics::counter!("hub_escalations_total").increment(escalated);
            tracing::info!(case_id = %id, township = %township, escalated, "case escalated (超期督办)");
        }
    }
    Ok(changed)
}

/// A slip due a check, with its case's tier, as read.
#[derive(Debug, Clone)]
struct SlipKey {
    id: String,
    case_id: String,
    kind: String,
    to_department: Option<String>,
    to_township: Option<String>,
    /// The case's township when the slip was issued: whose supervisor sees the escalation.
    region: String,
    issued_ms: i64,
    due_ms: i64,
    next_check_ms: i64,
    tier: String,
}
crate::store::from_row!(SlipKey {
    id,
    case_id,
    kind,
    to_department,
    to_township,
    region,
    issued_ms,
    due_ms,
    next_check_ms,
    tier
});

/// Write one batch of slips due a check in one transaction: past due → an escalation row
/// (`clock = 'slip:<id>'`) and `deadline_missed`, nothing left to notice; in the last quarter →
/// `deadline_near`, next check one past the due time. Returns the ids that changed since read.
async fn write_slips(
    db: &Db,
    slips: &[SlipKey],
    now_ms: i64,
    report: &mut ScanReport,
) -> Result<Vec<String>, StoreError> {
    let mut changed = Vec::new();
    let (mut checked, mut escalated, mut near) = (0u64, 0u64, 0u64);
    on_db!(db, p, _DB => {
        let mut tx = p.begin_write().await?;
        for sl in slips {
            let overdue = now_ms > sl.due_ms;
            let next = if overdue {
                None
            } else {
                Some(sl.due_ms + 1)
            };
            // The case row first (a no-op update): the case's notifications stay in commit
            // order, as for every other enqueue of a case.
            sqlx::query("UPDATE cases SET version = version WHERE id = $1")
                .bind(&sl.case_id)
                .execute(&mut *tx)
                .await?;
            let n = sqlx::query("UPDATE slips SET next_check_ms = $1 WHERE id = $2 AND next_check_ms = $3 AND answered_ms IS NULL")
                .bind(next)
                .bind(&sl.id)
                .bind(sl.next_check_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n != 1 {
                changed.push(sl.id.clone());
                continue;
            }
            checked += 1;
            let county = county_of(&sl.region);
            let clock = super::slips_store::slip_clock(&sl.id);
            let common = json!({
                "case_id": sl.case_id,
                "clock": "slip",
                "slip_id": sl.id,
                "slip_kind": sl.kind,
                "to_department": sl.to_department,
                "to_township": sl.to_township,
                "tier": sl.tier,
                "township": sl.region,
                "county": county,
                "issued_at": rfc3339(sl.issued_ms),
                "due_at": rfc3339(sl.due_ms),
            });
            if overdue {
                let esc_id = uuid::Uuid::now_v7().to_string();
                let inserted = sqlx::query("INSERT INTO escalations (id, case_id, clock, tier, township, county, due_ms, escalated_ms, slip_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING")
                    .bind(&esc_id)
                    .bind(&sl.case_id)
                    .bind(&clock)
                    .bind(&sl.tier)
                    .bind(&sl.region)
                    .bind(county)
                    .bind(sl.due_ms)
                    .bind(now_ms)
                    .bind(&sl.id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if inserted == 1 {
                    escalated += 1;
                    let mut payload = common;
                    payload["escalation_id"] = json!(esc_id);
                    payload["escalated_at"] = json!(rfc3339(now_ms));
                    let n = Notice {
                        kind: NotificationKind::DeadlineMissed,
                        case_id: Some(sl.case_id.clone()),
                        dedup_key: Some(format!("deadline_missed:{}:{clock}", sl.case_id)),
                        payload,
                    };
                    notify::enqueue((&mut *tx).into(), &n, now_ms).await?;
                    tracing::info!(slip_id = %sl.id, case_id = %sl.case_id, township = %sl.region, "referral slip escalated (转办单超期督办)");
                }
            } else {
                let n = Notice {
                    kind: NotificationKind::DeadlineNear,
                    case_id: Some(sl.case_id.clone()),
                    dedup_key: Some(format!("deadline_near:{}:{clock}:{}", sl.case_id, sl.due_ms)),
                    payload: common,
                };
                if notify::enqueue((&mut *tx).into(), &n, now_ms).await? {
                    near += 1;
                }
            }
        }
        tx.commit().await?;
    });
    report.slips_checked += checked;
    report.escalated += escalated;
    report.slips_escalated += escalated;
    report.near += near;
    if escalated > 0 {
        metrics::counter!("hub_escalations_total").increment(escalated);
    }
    Ok(changed)
}

/// One row of the supervisor's queue (no personal data).
#[derive(Debug, Clone)]
pub struct EscalationRow {
    pub id: String,
    pub case_id: String,
    pub clock: String,
    pub tier: String,
    pub township: String,
    pub county: String,
    pub due_ms: i64,
    pub escalated_ms: i64,
    pub resolved_ms: Option<i64>,
    /// For a slip's escalation (`clock = 'slip:<id>'`): the slip.
    pub slip: Option<EscalatedSlipRow>,
}

/// The slip of a slip's escalation: id, kind and addressee (no personal data).
#[derive(Debug, Clone)]
pub struct EscalatedSlipRow {
    pub id: String,
    pub kind: String,
    pub to_department: Option<String>,
    pub to_township: Option<String>,
}

/// Filters of the queue: `division` is a prefix of the township (a county sees its townships).
#[derive(Debug, Clone, Default)]
pub struct EscalationFilter {
    pub division: String,
    pub township: Option<String>,
    /// `Some(true)`: open only; `Some(false)`: resolved only.
    pub open: Option<bool>,
    /// Only ids below this (UUIDv7: newest first is id order).
    pub before: Option<String>,
    pub limit: i64,
}

/// 超期未办结: how many escalations are open (an overdue stage or slip not yet resolved), the
/// `hub_escalations_open` gauge.
pub async fn open_count(db: &Db) -> Result<i64, StoreError> {
    let (n,): (i64,) = on_db!(db, p, _DB => {
        sqlx::query_as("SELECT COUNT(*) FROM escalations WHERE resolved_ms IS NULL")
            .fetch_one(p)
            .await?
    });
    Ok(n)
}

/// The queue, newest first.
pub async fn list(db: &Db, f: &EscalationFilter) -> Result<Vec<EscalationRow>, StoreError> {
    struct T {
        id: String,
        case_id: String,
        clock: String,
        tier: String,
        township: String,
        county: String,
        due_ms: i64,
        escalated_ms: i64,
        resolved_ms: Option<i64>,
        slip_id: Option<String>,
        slip_kind: Option<String>,
        to_department: Option<String>,
        to_township: Option<String>,
    }
    crate::store::from_row!(T {
        id,
        case_id,
        clock,
        tier,
        township,
        county,
        due_ms,
        escalated_ms,
        resolved_ms,
        slip_id,
        slip_kind,
        to_department,
        to_township
    });
    let like = |d: &str| format!("{d}%");
    let open = f.open.map(i64::from);
    let rows: Vec<T> = on_db!(db, p, _DB => {
        sqlx::query_as(
            "SELECT e.id, e.case_id, e.clock, e.tier, e.township, e.county, e.due_ms, e.escalated_ms, e.resolved_ms, \
                    e.slip_id, s.kind AS slip_kind, s.to_department, s.to_township \
             FROM escalations e LEFT JOIN slips s ON s.id = e.slip_id \
             WHERE e.township LIKE $1 \
               AND ($2 IS NULL OR e.township LIKE $2) \
               AND ($3 IS NULL OR ($3 = 1 AND e.resolved_ms IS NULL) OR ($3 = 0 AND e.resolved_ms IS NOT NULL)) \
               AND ($4 IS NULL OR e.id < $4) \
             ORDER BY e.id DESC LIMIT $5",
        )
        .bind(like(&f.division))
        .bind(f.township.as_deref().map(like))
        .bind(open)
        .bind(&f.before)
        .bind(f.limit)
        .fetch_all(p)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(|t| EscalationRow {
            slip: t.slip_id.map(|id| EscalatedSlipRow {
                id,
                kind: t.slip_kind.unwrap_or_default(),
                to_department: t.to_department,
                to_township: t.to_township,
            }),
            id: t.id,
            case_id: t.case_id,
            clock: t.clock,
            tier: t.tier,
            township: t.township,
            county: t.county,
            due_ms: t.due_ms,
            escalated_ms: t.escalated_ms,
            resolved_ms: t.resolved_ms,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn cal() -> policies::WorkingCalendar {
        policies::WorkingCalendar::load_dir(policies::WorkingCalendar::shipped_dir())
            .expect("shipped calendar")
    }

    fn periods() -> policies::CasePeriods {
        policies::Deadlines::statutory().case
    }

    #[test]
    fn an_emergency_filing_is_checked_when_due_soon_then_when_overdue() {
        let filed = datetime!(2026-03-02 09:00 +8);
        let t = Timeline {
            filed_ms: to_ms(filed),
            ..Default::default()
        };
        let (_, d) = case_due(Urgency::Emergency, &t, &cal(), &periods(), filed);
        let due = to_ms(datetime!(2026-03-02 11:00 +8));
        assert_eq!(d.next_due_ms, Some(due));
        assert_eq!(d.next_due_kind.as_deref(), Some("first_help"));
        assert!(!d.provisional);
        // Due soon with 30 minutes (a quarter of 2 h) left.
        assert_eq!(d.next_check_ms, Some(to_ms(datetime!(2026-03-02 10:30 +8))));
        let (cs, d) = case_due(
            Urgency::Emergency,
            &t,
            &cal(),
            &periods(),
            datetime!(2026-03-02 10:31 +8),
        );
        assert_eq!(cs[0].status, ClockStatus::DueSoon);
        assert_eq!(d.next_check_ms, Some(due + 1));
        let (cs, d) = case_due(
            Urgency::Emergency,
            &t,
            &cal(),
            &periods(),
            datetime!(2026-03-02 11:01 +8),
        );
        assert_eq!(cs[0].status, ClockStatus::Overdue);
        assert_eq!(d.next_check_ms, None, "nothing left to notice");
        assert_eq!(d.next_due_ms, Some(due), "still the nearest open deadline");
    }

    #[test]
    fn met_clocks_leave_the_columns_and_a_normal_filing_has_none() {
        let filed = datetime!(2026-03-02 09:00 +8);
        let t = Timeline {
            filed_ms: to_ms(filed),
            ..Default::default()
        };
        assert_eq!(
            case_due(Urgency::Normal, &t, &cal(), &periods(), filed).1,
            Due::default()
        );
        let t = Timeline::from_events(
            to_ms(filed),
            [
                ("accept", to_ms(filed)),
                ("first_help", to_ms(filed)),
                ("investigate", to_ms(filed)),
                ("decide", to_ms(filed)),
            ],
        );
        let (cs, d) = case_due(Urgency::Emergency, &t, &cal(), &periods(), filed);
        assert_eq!(d, Due::default());
        assert_eq!(met_kinds(&cs).len(), 4);
    }

    #[test]
    fn after_acceptance_the_nearest_is_materials_and_a_2027_decision_is_provisional() {
        let accepted = datetime!(2026-12-15 09:00 +8);
        let t = Timeline {
            filed_ms: to_ms(accepted),
            accepted_ms: Some(to_ms(accepted)),
            ..Default::default()
        };
        let (_, d) = case_due(Urgency::Normal, &t, &cal(), &periods(), accepted);
        assert_eq!(d.next_due_kind.as_deref(), Some("materials"));
        assert!(d.provisional, "the decision clock counts into 2027");
        assert!(d.next_check_ms.unwrap() > to_ms(accepted));
        assert_eq!(county_of("370811002"), "370811");
    }
}
