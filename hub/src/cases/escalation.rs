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
//! **Adding overdue referral slips** (转办单) is one more query in [`scan`]: select
//! `referral_slips` with `due_ms < now` and no feedback time and no `escalations` row, and insert
//! an `escalations` row with `clock = 'slip:<slip id>'` (the same table, queue and notification;
//! resolved when the feedback arrives, in the feedback's transaction). An index on `(due_ms)`
//! where the feedback time is NULL keeps it cheap.

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
    /// New escalations (each with a `deadline_missed` notification).
    pub escalated: u64,
    /// New `deadline_near` notifications.
    pub near: u64,
}

/// Cases read per batch.
const BATCH: i64 = 500;

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

/// One escalation scan at `now` on `calendar` (see the module doc).
pub async fn scan(
    db: &Db,
    calendar: &policies::WorkingCalendar,
    periods: &policies::CasePeriods,
    now: OffsetDateTime,
) -> Result<ScanReport, StoreError> {
    let now_ms = to_ms(now);
    let mut report = ScanReport::default();
    let mut skipped: std::collections::HashSet<String> = Default::default();
    loop {
        let rows: Vec<CaseKey> = on_db!(db, p, _DB => {
            sqlx::query_as(
                "SELECT id, tier, created_ms, township, version, next_check_ms FROM cases \
                 WHERE next_check_ms IS NOT NULL AND next_check_ms <= $1 ORDER BY next_check_ms, id LIMIT $2",
            )
            .bind(now_ms)
            .bind(BATCH + skipped.len() as i64)
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
        for row in fresh {
            if !check_case(db, calendar, periods, now, &row, &mut report).await? {
                // Moved or re-marked meanwhile (the write is conditional on the version and the
                // check time read): the row is still due; look again next scan.
                skipped.insert(row.0.clone());
            }
        }
    }
    Ok(report)
}

/// Recompute one case and write what it needs; `false` when the case changed since it was read.
async fn check_case(
    db: &Db,
    calendar: &policies::WorkingCalendar,
    periods: &policies::CasePeriods,
    now: OffsetDateTime,
    (id, tier, created_ms, township, version, checked_at): &CaseKey,
    report: &mut ScanReport,
) -> Result<bool, StoreError> {
    let now_ms = to_ms(now);
    let events: Vec<(String, i64)> = on_db!(db, p, _DB => {
        sqlx::query_as("SELECT action, at_ms FROM case_events WHERE case_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(p)
            .await?
    });
    let t = Timeline::from_events(*created_ms, events.iter().map(|(a, m)| (a.as_str(), *m)));
    let tier_u: Urgency =
        serde_json::from_value(serde_json::Value::String(tier.clone())).unwrap_or(Urgency::Normal);
    let (cs, due) = case_due(tier_u, &t, calendar, periods, now);
    let county = county_of(township).to_owned();
    let timed = timed(&cs, &t);
    let (mut escalated, mut near) = (0u64, 0u64);
    let ok = on_db!(db, p, _DB => {
        let mut tx = p.begin().await?;
        let n = sqlx::query("UPDATE cases SET next_due_ms = $1, next_due_kind = $2, due_provisional = $3, next_check_ms = $4 WHERE id = $5 AND version = $6 AND next_check_ms = $7")
            .bind(due.next_due_ms)
            .bind(&due.next_due_kind)
            .bind(i64::from(due.provisional))
            .bind(due.next_check_ms)
            .bind(id)
            .bind(version)
            .bind(checked_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n != 1 {
            tx.rollback().await?;
            false
        } else {
            for c in &timed {
                let kind = kind_code(c.clock.kind);
                if c.clock.status == ClockStatus::Overdue {
                    let esc_id = uuid::Uuid::now_v7().to_string();
                    let inserted = sqlx::query("INSERT INTO escalations (id, case_id, clock, tier, township, county, due_ms, escalated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING")
                        .bind(&esc_id)
                        .bind(id)
                        .bind(kind)
                        .bind(tier)
                        .bind(township)
                        .bind(&county)
                        .bind(c.due_ms)
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
                                "due_at": rfc3339(c.due_ms),
                                "escalated_at": rfc3339(now_ms),
                            }),
                        };
                        notify::enqueue((&mut *tx).into(), &n, now_ms).await?;
                    }
                } else if c.clock.status == ClockStatus::DueSoon {
                    let n = Notice {
                        kind: NotificationKind::DeadlineNear,
                        case_id: Some(id.clone()),
                        dedup_key: Some(format!("deadline_near:{id}:{kind}:{}", c.due_ms)),
                        payload: json!({
                            "case_id": id,
                            "clock": kind,
                            "tier": tier,
                            "township": township,
                            "county": county,
                            "due_at": rfc3339(c.due_ms),
                        }),
                    };
                    if notify::enqueue((&mut *tx).into(), &n, now_ms).await? {
                        near += 1;
                    }
                }
            }
            tx.commit().await?;
            true
        }
    });
    if ok {
        report.checked += 1;
        report.escalated += escalated;
        report.near += near;
        if escalated > 0 {
            metrics::counter!("hub_escalations_total").increment(escalated);
            tracing::info!(case_id = %id, township = %township, escalated, "case escalated (超期督办)");
        }
    }
    Ok(ok)
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

/// The queue, newest first.
pub async fn list(db: &Db, f: &EscalationFilter) -> Result<Vec<EscalationRow>, StoreError> {
    type T = (
        String,
        String,
        String,
        String,
        String,
        String,
        i64,
        i64,
        Option<i64>,
    );
    let like = |d: &str| format!("{d}%");
    let open = f.open.map(i64::from);
    let rows: Vec<T> = on_db!(db, p, _DB => {
        sqlx::query_as(
            "SELECT id, case_id, clock, tier, township, county, due_ms, escalated_ms, resolved_ms FROM escalations \
             WHERE township LIKE $1 \
               AND ($2 IS NULL OR township LIKE $2) \
               AND ($3 IS NULL OR ($3 = 1 AND resolved_ms IS NULL) OR ($3 = 0 AND resolved_ms IS NOT NULL)) \
               AND ($4 IS NULL OR id < $4) \
             ORDER BY id DESC LIMIT $5",
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
            id: t.0,
            case_id: t.1,
            clock: t.2,
            tier: t.3,
            township: t.4,
            county: t.5,
            due_ms: t.6,
            escalated_ms: t.7,
            resolved_ms: t.8,
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
